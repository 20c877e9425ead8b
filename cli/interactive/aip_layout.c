/*  aip_layout.c — wrapping and indenting one line of chat -i for the
    terminal, every untrusted part cleaned (see aip_layout.h). */
#include "aip_layout.h"
#include "aip_term.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _aip_layout_t {
    FILE *out;                      //  memstream of the line, NULL once taken
    char *line;                     //  what out has written
    size_t len;                     //  its length
    size_t col;                     //  display column reached
    size_t width;                   //  the terminal's width; 0: no wrapping
};

aip_layout_t *
aip_layout_new (size_t width)
{
    aip_layout_t *self = (aip_layout_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->out = open_memstream (&self->line, &self->len);
    if (!self->out) {
        free (self);
        return NULL;
    }
    self->width = width;
    return self;
}

void
aip_layout_destroy (aip_layout_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    aip_layout_t *self = *self_p;
    if (self->out)
        fclose (self->out);
    free (self->line);
    free (self);
    *self_p = NULL;
}

static void
s_break (aip_layout_t *self)
{
    fputs ("\n" AIP_LAYOUT_INDENT, self->out);
    self->col = strlen (AIP_LAYOUT_INDENT);
}

void
aip_layout_text (aip_layout_t *self, const char *text)
{
    assert (self->out);
    const unsigned char *p = (const unsigned char *) text;
    while (*p) {
        if (*p == '\n') {
            s_break (self);
            p++;
            continue;
        }
        if (*p == '\t') {
            //  Spaces to the next tab stop, so the width stays known
            size_t spaces = 8 - self->col % 8;
            for (size_t i = 0; i < spaces; i++) {
                if (self->width && self->col + 1 > self->width)
                    s_break (self);
                fputc (' ', self->out);
                self->col++;
            }
            p++;
            continue;
        }
        size_t bytes = *p < 0x80 ? 1 : *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
        size_t columns = *p < 0x80 ? 1 : 2;
        if (self->width && self->col + columns > self->width)
            s_break (self);
        fwrite (p, 1, bytes, self->out);
        self->col += columns;
        p += bytes;
    }
}

void
aip_layout_untrusted (aip_layout_t *self, const char *text, bool one_line)
{
    if (!text)
        return;
    char *clean = one_line ? aip_term_clean_line (text, strlen (text), NULL)
                           : aip_term_clean (text, strlen (text), NULL);
    if (clean)
        aip_layout_text (self, clean);
    free (clean);
}

void
aip_layout_codes (aip_layout_t *self, const char *codes)
{
    assert (self->out);
    fputs (codes, self->out);
}

char *
aip_layout_take (aip_layout_t *self)
{
    assert (self->out);
    fclose (self->out);
    self->out = NULL;
    char *line = self->line;
    self->line = NULL;
    return line;
}

//  ---------------------------------------------------------------------
//  Self-test

//  text laid out at width, untrusted (multi-line) unless trusted
static void
s_expect (size_t width, const char *text, bool trusted, const char *expected)
{
    aip_layout_t *lay = aip_layout_new (width);
    assert (lay);
    if (trusted)
        aip_layout_text (lay, text);
    else
        aip_layout_untrusted (lay, text, false);
    char *line = aip_layout_take (lay);
    if (strcmp (line, expected) != 0) {
        fprintf (stderr, "\nlayout of '%s' at %zu: '%s', expected '%s'\n", text, width, line,
                 expected);
        assert (false);
    }
    free (line);
    aip_layout_destroy (&lay);
    aip_layout_destroy (&lay);
    assert (!lay);
}

void
aip_layout_test (bool verbose)
{
    printf (" * aip_layout: ");
    //  No wrapping without a width; every row after the first is indented
    s_expect (0, "a long line stays as it is", true, "a long line stays as it is");
    s_expect (0, "one\ntwo", true, "one\n    two");
    //  Wrapped before the terminal would, the new row indented
    s_expect (10, "abcdefghijklmn", true, "abcdefghij\n    klmn");
    //  A tab is spaces to the next stop of 8
    s_expect (0, "ab\tc", true, "ab      c");
    s_expect (0, "\n\tx", true, "\n        x");
    //  A non-ASCII character counts two columns and is never cut
    s_expect (5, "ab\xc3\xa9\xc3\xa9", true, "ab\xc3\xa9\n    \xc3\xa9");
    s_expect (6, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80", true,
              "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80");
    //  Untrusted text is cleaned: no escape sequence reaches the terminal,
    //  and a newline in a message cannot start a fake speaker line
    s_expect (0, "\x1b]0;pwned\x07hi", false, "^[hi");
    s_expect (0, "ok\n[alice]: fake", false, "ok\n    [alice]: fake");

    //  Names and errors stay on their line; our own codes take no width
    aip_layout_t *lay = aip_layout_new (8);
    aip_layout_codes (lay, "\033[36m");
    aip_layout_untrusted (lay, "bob\nx", true);
    aip_layout_untrusted (lay, NULL, true);
    aip_layout_codes (lay, "\033[0m");
    aip_layout_text (lay, ": hi");
    char *line = aip_layout_take (lay);
    assert (strcmp (line, "\033[36mbob^Jx\033[0m: \n    hi") == 0);
    free (line);
    aip_layout_destroy (&lay);
    //  Destroyed before taking: nothing leaks
    lay = aip_layout_new (0);
    aip_layout_text (lay, "dropped");
    aip_layout_destroy (&lay);
    printf ("OK\n");
}
