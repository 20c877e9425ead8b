/*  aip_term.h — text from peers and tools, made safe to show on a terminal.

    A room member (also a remote one, through a relay) or an AI tool's output
    must not be able to retitle the terminal, clear it, move the cursor or
    paint fake lines. Whatever reaches a terminal goes through aip_term_clean
    first; the stored text stays byte-exact, and JSON output escapes anyway.

    What the copy holds (what was removed is always made visible):
    - valid UTF-8 text (printable ASCII, U+00A0 and up) byte-exact;
    - newline and tab kept; CR LF becomes LF;
    - a complete escape sequence introduced by ESC — CSI (ESC [ … final),
      OSC (ESC ] … BEL or ST), DCS/SOS/PM/APC (ESC P/X/^/_ … ST), and the
      short ESC forms (ESC x, ESC ( B, …) — becomes the two characters "^[";
      an ESC that starts no complete sequence becomes "^[" alone, the bytes
      after it are shown as text;
    - any other C0 control and DEL become caret notation: "^@" … "^_", "^?"
      (a bell is "^G", a lone CR "^M", a backspace "^H");
    - a C1 control in UTF-8 form (U+0080–U+009F), with the sequence it
      introduces (8-bit CSI, OSC, DCS, …), becomes U+FFFD;
    - each byte that is not valid UTF-8 becomes U+FFFD.
    So the copy is valid UTF-8 with no control character but newline and tab,
    at most 3 times as long as the input. */
#ifndef AIP_TERM_H_INCLUDED
#define AIP_TERM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  A terminal-safe copy of s (len bytes; NUL bytes included), as described
//  above; NUL-terminated, *out_len (if not NULL) its length. The caller
//  frees it. NULL only when out of memory.
char *aip_term_clean (const char *s, size_t len, size_t *out_len);
//  The same for a one-line field (a name, a tool, an error): newline and
//  tab are neutralised too ("^J", "^I"), so the text stays on its line
char *aip_term_clean_line (const char *s, size_t len, size_t *out_len);
//  True if s (len bytes) is shown as is by aip_term_clean: nothing to clean
bool aip_term_safe (const char *s, size_t len);

void aip_term_test (bool verbose);

#endif
