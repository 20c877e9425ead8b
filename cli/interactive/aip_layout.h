/*  aip_layout.h — one line of chat -i laid out for the terminal.

    Names, messages and errors come from peers (also remote ones, through a
    relay) and from AI tools: all of it goes through aip_term_clean, so none
    can retitle, clear or paint the terminal. A message is laid out so that
    no content can start a row as a speaker line does: every row after the
    first starts with AIP_LAYOUT_INDENT, also where a long row wraps (chat -i
    wraps at the terminal's width itself, counting every non-ASCII character
    as two columns so the terminal never wraps first). */
#ifndef AIP_LAYOUT_H_INCLUDED
#define AIP_LAYOUT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define AIP_LAYOUT_INDENT "    "    //  starts every row after the first

typedef struct _aip_layout_t aip_layout_t;

//  A line for a terminal width columns wide (0: no wrapping); NULL when out
//  of memory
aip_layout_t *aip_layout_new (size_t width);
//  Safe to call twice; NULLs the caller's pointer
void aip_layout_destroy (aip_layout_t **self_p);
//  Text that aip_term_clean returned (valid UTF-8, no control character but
//  newline and tab), wrapped and indented
void aip_layout_text (aip_layout_t *self, const char *text);
//  Untrusted text (NULL: nothing), cleaned; one_line for names and errors
void aip_layout_untrusted (aip_layout_t *self, const char *text, bool one_line);
//  Our own colour codes: no width
void aip_layout_codes (aip_layout_t *self, const char *codes);
//  The line laid out (the caller frees it), or NULL when out of memory;
//  nothing more can be added after
char *aip_layout_take (aip_layout_t *self);

void aip_layout_test (bool verbose);

#endif
