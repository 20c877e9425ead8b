/*  aip_term.c — neutralising control characters and escape sequences in
    text shown on a terminal (see aip_term.h for what becomes what). */
#include "aip_term.h"
#include "aip_util.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLACEMENT "\xef\xbf\xbd"  //  U+FFFD
#define ESC 0x1b

//  One pass over the input
typedef struct {
    const uint8_t *s;               //  the input
    size_t len;                     //  its length
    bool no_terminator;             //  no string terminator after some point: stop looking
} s_scan_t;

//  Length of the valid UTF-8 character at i (2 to 4 bytes, lead byte >= 0x80),
//  its code point in *cp; 0 if the bytes there are not valid UTF-8
static size_t
s_utf8_char (const s_scan_t *scan, size_t i, uint32_t *cp)
{
    uint8_t c = scan->s [i];
    size_t need = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (!need || i + need >= scan->len)
        return 0;
    uint32_t value = c & (need == 1 ? 0x1f : need == 2 ? 0x0f : 0x07);
    for (size_t k = 1; k <= need; k++) {
        if ((scan->s [i + k] & 0xc0) != 0x80)
            return 0;
        value = (value << 6) | (scan->s [i + k] & 0x3f);
    }
    if ((need == 2 && value < 0x800) || (need == 3 && value < 0x10000)
    ||  value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
        return 0;
    *cp = value;
    return need + 1;
}

//  End of a CSI whose parameters start at j: after its final byte, or 0
static size_t
s_csi_end (const s_scan_t *scan, size_t j)
{
    while (j < scan->len && scan->s [j] >= 0x30 && scan->s [j] <= 0x3f)
        j++;                        //  parameter bytes
    while (j < scan->len && scan->s [j] >= 0x20 && scan->s [j] <= 0x2f)
        j++;                        //  intermediate bytes
    if (j < scan->len && scan->s [j] >= 0x40 && scan->s [j] <= 0x7e)
        return j + 1;
    return 0;
}

//  End of a control string (OSC, DCS, SOS, PM, APC) whose body starts at j:
//  after BEL, ST (ESC \ or U+009C), CAN or SUB; before another ESC, which
//  aborts the string as terminals do. 0 if it never ends.
static size_t
s_string_end (s_scan_t *scan, size_t j)
{
    //  Once a scan found no terminator up to the end, none later will:
    //  this keeps a text full of unterminated strings linear
    if (scan->no_terminator)
        return 0;
    for (; j < scan->len; j++) {
        uint8_t c = scan->s [j];
        if (c == 0x07 || c == 0x18 || c == 0x1a)
            return j + 1;
        if (c == ESC)
            return j + 1 < scan->len && scan->s [j + 1] == '\\' ? j + 2 : j;
        if (c == 0xc2 && j + 1 < scan->len && scan->s [j + 1] == 0x9c)
            return j + 2;
    }
    scan->no_terminator = true;
    return 0;
}

//  End of the escape sequence whose ESC is at i, or 0 if it is incomplete
static size_t
s_escape_end (s_scan_t *scan, size_t i)
{
    if (i + 1 >= scan->len)
        return 0;
    uint8_t c = scan->s [i + 1];
    if (c == '[')
        return s_csi_end (scan, i + 2);
    if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_')
        return s_string_end (scan, i + 2);
    if (c >= 0x20 && c <= 0x2f) {
        //  ESC ( B and the like: intermediates, then a final byte
        size_t j = i + 1;
        while (j < scan->len && scan->s [j] >= 0x20 && scan->s [j] <= 0x2f)
            j++;
        return j < scan->len && scan->s [j] >= 0x30 && scan->s [j] <= 0x7e ? j + 1 : 0;
    }
    if (c >= 0x30 && c <= 0x7e)
        return i + 2;               //  ESC c, ESC 7, ESC M, ...
    return 0;
}

//  End of what the C1 control cp (2 bytes at i) introduces, or 0
static size_t
s_c1_end (s_scan_t *scan, size_t i, uint32_t cp)
{
    if (cp == 0x9b)
        return s_csi_end (scan, i + 2);
    if (cp == 0x9d || cp == 0x90 || cp == 0x98 || cp == 0x9e || cp == 0x9f)
        return s_string_end (scan, i + 2);
    return i + 2;
}

static char *
s_clean (const char *str, size_t len, size_t *out_len, bool one_line)
{
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    //  Worst case: every byte becomes U+FFFD
    char *out = (char *) malloc (len * 3 + 1);
    if (!out)
        return NULL;
    s_scan_t scan = { (const uint8_t *) str, len, false };
    const uint8_t *s = scan.s;
    size_t o = 0, i = 0;
    while (i < len) {
        uint8_t c = s [i];
        if ((c == '\n' || c == '\t') && !one_line) {
            out [o++] = (char) c;
            i++;
        }
        else
        if (c == '\r' && !one_line && i + 1 < len && s [i + 1] == '\n')
            i++;                    //  CR LF shows as LF
        else
        if (c == ESC) {
            size_t end = s_escape_end (&scan, i);
            out [o++] = '^';
            out [o++] = '[';
            i = end ? end : i + 1;
        }
        else
        if (c < 0x20 || c == 0x7f) {
            out [o++] = '^';
            out [o++] = c == 0x7f ? '?' : (char) (c + 0x40);
            i++;
        }
        else
        if (c < 0x80)
            out [o++] = (char) s [i++];
        else {
            uint32_t cp = 0;
            size_t n = s_utf8_char (&scan, i, &cp);
            if (n && cp >= 0x80 && cp <= 0x9f) {
                size_t end = s_c1_end (&scan, i, cp);
                memcpy (out + o, REPLACEMENT, 3);
                o += 3;
                i = end ? end : i + 2;
            }
            else
            if (n) {
                memcpy (out + o, s + i, n);
                o += n;
                i += n;
            }
            else {
                memcpy (out + o, REPLACEMENT, 3);
                o += 3;
                i++;
            }
        }
    }
    out [o] = 0;
    if (out_len)
        *out_len = o;
    return out;
}

char *
aip_term_clean (const char *s, size_t len, size_t *out_len)
{
    return s_clean (s, len, out_len, false);
}

char *
aip_term_clean_line (const char *s, size_t len, size_t *out_len)
{
    return s_clean (s, len, out_len, true);
}

bool
aip_term_safe (const char *s, size_t len)
{
    const uint8_t *u = (const uint8_t *) s;
    for (size_t i = 0; i < len; i++)
        if ((u [i] < 0x20 && u [i] != '\n' && u [i] != '\t') || u [i] == 0x7f
        ||  (u [i] == 0xc2 && i + 1 < len && u [i + 1] >= 0x80 && u [i + 1] <= 0x9f))
            return false;
    return aip_utf8_valid (s, len);
}

//  ---------------------------------------------------------------------
//  Self-test

static void
s_expect (const char *in, size_t len, bool one_line, const char *want)
{
    size_t out_len;
    char *out = s_clean (in, len, &out_len, one_line);
    assert (out);
    if (strcmp (out, want) != 0 || out_len != strlen (want)) {
        fprintf (stderr, "aip_term: cleaning gave [%s], expected [%s]\n", out, want);
        assert (false);
    }
    assert (aip_term_safe (out, out_len));
    free (out);
}

#define EXPECT(in, want) s_expect (in, sizeof in - 1, false, want)
#define EXPECT_LINE(in, want) s_expect (in, sizeof in - 1, true, want)

void
aip_term_test (bool verbose)
{
    printf (" * aip_term: ");
    //  Text is kept byte-exact: ASCII, UTF-8, newline, tab
    EXPECT ("plain text", "plain text");
    EXPECT ("\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 caf\xc3\xa9\n\tindented",
            "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 caf\xc3\xa9\n\tindented");
    EXPECT ("\xc2\xa0nbsp", "\xc2\xa0nbsp");            //  U+00A0 is text
    EXPECT ("", "");
    assert (aip_term_safe ("a\nb\tc \xc3\xa9", 8));

    //  Retitling: OSC ended by BEL, by ST (ESC \), by 8-bit ST
    EXPECT ("\x1b]0;pwned\x07" "after", "^[after");
    EXPECT ("\x1b]2;pwned\x1b\\after", "^[after");
    EXPECT ("\x1b]2;pwned\xc2\x9c" "after", "^[after");
    //  Clearing, moving, painting: CSI
    EXPECT ("\x1b[2J\x1b[H\x1b[31mred\x1b[0m", "^[^[^[red^[");
    EXPECT ("\x1b[?1049h\x1b[38;5;196mX", "^[^[X");
    EXPECT ("\x1b[1;1H\x1b[K[alice]: fake", "^[^[[alice]: fake");
    //  DCS, APC, PM, SOS up to ST
    EXPECT ("\x1bP1$tq\x1b\\x", "^[x");
    EXPECT ("\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\x", "^[^[^[x");
    //  Short forms: reset, charset, save cursor, keypad
    EXPECT ("\x1b" "c\x1b(0\x1b" "7\x1b=x", "^[^[^[^[x");
    //  An ESC inside a string ends it; the sequence it starts goes too
    EXPECT ("\x1b]0;a\x1b[2Jb", "^[^[b");
    //  Incomplete: the ESC is shown, the rest stays visible as text
    EXPECT ("\x1b]0;no end", "^[]0;no end");
    EXPECT ("abc\x1b", "abc^[");
    EXPECT ("\x1b[12", "^[[12");
    EXPECT ("\x1b[1\n2J", "^[[1\n2J");
    EXPECT ("\x1b\x1b[A", "^[^[");
    //  Lone C0 controls and DEL in caret notation; CR LF is LF
    EXPECT ("a\rb", "a^Mb");
    EXPECT ("a\r\nb\r", "a\nb^M");
    EXPECT ("\x07\x08\x00\x7f\x0c", "^G^H^@^?^L");
    //  8-bit C1 in UTF-8 form, with what it introduces
    EXPECT ("\xc2\x9b" "2Jx", "\xef\xbf\xbdx");            //  CSI 2 J
    EXPECT ("\xc2\x9d" "0;t\x07x", "\xef\xbf\xbdx");       //  OSC
    EXPECT ("\xc2\x9d" "0;t\xc2\x9cx", "\xef\xbf\xbdx");
    EXPECT ("\xc2\x85x\xc2\x9f", "\xef\xbf\xbdx\xef\xbf\xbd");
    //  Invalid UTF-8 (raw 8-bit C1 included), byte by byte
    EXPECT ("\x9b" "2J", "\xef\xbf\xbd" "2J");
    EXPECT ("\xff\xe4\xbd", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT ("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT ("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    //  One-line fields keep no newline or tab
    EXPECT_LINE ("bob\n[alice]: hi\tx\r\n", "bob^J[alice]: hi^Ix^M^J");
    EXPECT_LINE ("\x1b]0;t\x07name", "^[name");
    assert (!aip_term_safe ("a\x1b", 2));
    assert (!aip_term_safe ("\xc2\x9b", 2));
    assert (!aip_term_safe ("a\r\n", 3));
    assert (!aip_term_safe ("\xff", 1));

    //  Any bytes at all: the copy is safe, bounded, and cleaning it again
    //  changes nothing
    static const uint8_t alphabet [] = { 0x1b, '[', ']', 'P', '\\', 0x07, '\n', '\t', '\r',
                                         0x00, 0x7f, 0xc2, 0x9b, 0x9c, 0x9d, 0x85, 'a', '0',
                                         ';', 'm', 0xe4, 0xbd, 0xa0, 0xff, 0x18, '(' };
    uint8_t in [64];
    for (int round = 0; round < 20000; round++) {
        uint8_t rnd [65];
        aip_random_bytes (rnd, sizeof rnd);
        size_t len = rnd [64] % sizeof in;
        for (size_t k = 0; k < len; k++)
            in [k] = alphabet [rnd [k] % sizeof alphabet];
        size_t a_len, b_len;
        char *a = aip_term_clean ((const char *) in, len, &a_len);
        assert (a && a_len <= 3 * len && strlen (a) == a_len);
        assert (aip_term_safe (a, a_len));
        char *b = aip_term_clean (a, a_len, &b_len);
        assert (b && b_len == a_len && memcmp (a, b, a_len) == 0);
        free (b);
        char *line = aip_term_clean_line ((const char *) in, len, &b_len);
        assert (line && !memchr (line, '\n', b_len) && !memchr (line, '\t', b_len));
        assert (aip_term_safe (line, b_len));
        free (line);
        free (a);
    }
    //  A message full of unterminated strings is cleaned in linear time
    size_t big = 256 * 1024;
    char *hostile = (char *) malloc (big);
    assert (hostile);
    for (size_t k = 0; k + 1 < big; k += 2) {
        hostile [k] = (char) 0xc2;      //  8-bit OSC, never terminated
        hostile [k + 1] = (char) 0x9d;
    }
    int64_t start = aip_clock_ms ();
    size_t out_len;
    char *out = aip_term_clean (hostile, big, &out_len);
    assert (out && out_len == big / 2 * 3);
    if (verbose)
        printf ("(256 KiB of unterminated OSC in %lld ms) ", (long long) (aip_clock_ms () - start));
    free (out);
    free (hostile);
    printf ("OK\n");
}
