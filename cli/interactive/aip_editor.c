/*  aip_editor.c — libedit in callback mode for chat -i: the prompt, the
    half-typed line, history (see aip_editor.h). */
#include "aip_editor.h"

#include <assert.h>
#include <editline/readline.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct _aip_editor_t {
    aip_editor_line_fn *on_line;    //  a line was typed
    void *arg;                      //  passed to on_line
};

//  libedit's line callback takes no argument: the one editor
static aip_editor_t *s_editor;

static void
s_on_line (char *line)
{
    if (s_editor)
        s_editor->on_line (s_editor->arg, line);
    free (line);
}

aip_editor_t *
aip_editor_new (aip_editor_line_fn *on_line, void *arg)
{
    if (s_editor)
        return NULL;
    aip_editor_t *self = (aip_editor_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->on_line = on_line;
    self->arg = arg;
    s_editor = self;
    rl_callback_handler_install (AIP_EDITOR_PROMPT, s_on_line);
    return self;
}

void
aip_editor_destroy (aip_editor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rl_callback_handler_remove ();
    if (s_editor == *self_p)
        s_editor = NULL;
    free (*self_p);
    *self_p = NULL;
}

void
aip_editor_read (aip_editor_t *self)
{
    rl_callback_read_char ();
}

void
aip_editor_restart (aip_editor_t *self)
{
    rl_callback_handler_remove ();
    rl_callback_handler_install (AIP_EDITOR_PROMPT, s_on_line);
}

void
aip_editor_remember (aip_editor_t *self, const char *line)
{
    add_history (line);
}

void
aip_editor_redraw (void)
{
    rl_forced_update_display ();
}

size_t
aip_editor_cursor (void)
{
    return rl_point > 0 ? (size_t) rl_point : 0;
}

//  ---------------------------------------------------------------------
//  Self-test

//  What the test's line callback saw
typedef struct {
    int lines;                      //  lines typed
    bool eof;                       //  Ctrl-D (end of input)
    char last [64];                 //  the last line
} s_test_typed_t;

static void
s_test_line (void *arg, char *line)
{
    s_test_typed_t *typed = (s_test_typed_t *) arg;
    if (!line) {
        typed->eof = true;
        return;
    }
    typed->lines++;
    snprintf (typed->last, sizeof typed->last, "%s", line);
}

//  Feed what the pty has to the editor until a line is typed (a deadline)
static void
s_test_read (aip_editor_t *editor, int fd, s_test_typed_t *typed, int lines)
{
    for (int i = 0; i < 64 && typed->lines < lines; i++) {
        struct pollfd item = { .fd = fd, .events = POLLIN };
        if (poll (&item, 1, 5000) <= 0)
            break;
        aip_editor_read (editor);
    }
}

void
aip_editor_test (bool verbose)
{
    printf (" * aip_editor: ");
    //  Typing on a pseudo-terminal of our own
    int master = posix_openpt (O_RDWR | O_NOCTTY);
    assert (master >= 0 && grantpt (master) == 0 && unlockpt (master) == 0);
    int slave = open (ptsname (master), O_RDWR | O_NOCTTY);
    assert (slave >= 0);
    FILE *in = fdopen (slave, "r");
    FILE *out = fdopen (dup (slave), "w");
    assert (in && out);
    rl_instream = in;
    rl_outstream = out;
    s_test_typed_t typed = { 0 };
    aip_editor_t *editor = aip_editor_new (s_test_line, &typed);
    assert (editor);
    //  One editor at a time: libedit's state is the process's
    assert (!aip_editor_new (s_test_line, &typed));
    assert (write (master, "hello\r", 6) == 6);
    s_test_read (editor, slave, &typed, 1);
    assert (typed.lines == 1 && strcmp (typed.last, "hello") == 0);
    //  A remembered line comes back with the up arrow, at a fresh prompt
    aip_editor_remember (editor, "hello");
    aip_editor_restart (editor);
    (void) aip_editor_cursor ();
    assert (write (master, "\033[A\r", 4) == 4);
    s_test_read (editor, slave, &typed, 2);
    assert (typed.lines == 2 && strcmp (typed.last, "hello") == 0);
    aip_editor_destroy (&editor);
    aip_editor_destroy (&editor);
    assert (!editor);
    //  Gone: a new one can start
    editor = aip_editor_new (s_test_line, &typed);
    assert (editor);
    aip_editor_destroy (&editor);
    rl_instream = stdin;
    rl_outstream = stdout;
    fclose (in);
    fclose (out);
    close (master);
    printf ("OK\n");
}
