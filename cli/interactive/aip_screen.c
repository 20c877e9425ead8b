/*  aip_screen.c — chat -i's output on stderr: lines above the prompt and
    the answers growing in place (see aip_screen.h). */
#include "aip_screen.h"
#include "aip_term.h"
#include "aip_util.h"
#include "cli.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

//  An AI answer growing on screen (from progress events), until the posted
//  message with the same id replaces it
typedef struct {
    bool used;                      //  the slot is taken
    char msg_id [AIP_MAX_ID + 1];   //  the answer's id ("" until an event names it)
    char tool [AIP_MAX_NAME + 1];   //  whose answer
    pid_t pid;                      //  our invite process, or 0 (somebody else's)
    char *text;                     //  the answer so far, as the event had it, or NULL
    int64_t started;                //  since when it is shown
    int64_t heard;                  //  the last event about it
    int64_t finished;               //  our invite process ended (0: running)
} s_live_t;

struct _aip_screen_t {
    FILE *out;                      //  stderr
    bool tty;                       //  a terminal: drawn in place, the prompt kept
    bool color;                     //  peers in colours
    const aip_screen_editor_t *editor;  //  the line editor below, or NULL
    json_t *names;                  //  display names two peers share (cli_name_shared)
    s_live_t live [AIP_SCREEN_MAX_LIVE];    //  answers growing above the prompt
    int live_rows;                  //  terminal rows they take now
};

static void s_live_hide (aip_screen_t *self);
static void s_live_draw (aip_screen_t *self);

aip_screen_t *
aip_screen_new (FILE *out, bool tty, bool color, const aip_screen_editor_t *editor,
                json_t *names)
{
    aip_screen_t *self = (aip_screen_t *) calloc (1, sizeof *self);
    if (!self) {
        json_decref (names);
        return NULL;
    }
    self->out = out;
    self->tty = tty;
    self->color = color;
    self->editor = editor;
    self->names = names ? names : json_object ();
    return self;
}

static void
s_live_free (s_live_t *live)
{
    free (live->text);
    memset (live, 0, sizeof *live);
}

void
aip_screen_destroy (aip_screen_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    aip_screen_t *self = *self_p;
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE; i++)
        s_live_free (&self->live [i]);
    json_decref (self->names);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Output above the prompt

aip_layout_t *
aip_screen_layout (aip_screen_t *self)
{
    size_t width = 0;
    struct winsize ws;
    if (self->tty && ioctl (fileno (self->out), TIOCGWINSZ, &ws) == 0
    &&  ws.ws_col > strlen (AIP_LAYOUT_INDENT) + 8)
        width = ws.ws_col;
    return aip_layout_new (width);
}

static void
s_redraw_prompt (aip_screen_t *self)
{
    if (self->editor && self->editor->redraw)
        self->editor->redraw ();
}

void
aip_screen_print_raw (aip_screen_t *self, const char *text)
{
    if (!self->tty) {
        fprintf (self->out, "%s\n", text);
        return;
    }
    //  Keep what is half-typed: clear the line, print above it, and let
    //  the editor redraw the prompt with the text and cursor as they were;
    //  the growing answers stay below what is printed, above the prompt
    s_live_hide (self);
    fprintf (self->out, "\r\033[K%s\n", text);
    s_live_draw (self);
    fflush (self->out);
    s_redraw_prompt (self);
}

void
aip_screen_print_layout (aip_screen_t *self, aip_layout_t **layout_p)
{
    if (!*layout_p)
        return;
    char *line = aip_layout_take (*layout_p);
    aip_layout_destroy (layout_p);
    if (line)
        aip_screen_print_raw (self, line);
    free (line);
}

void
aip_screen_print (aip_screen_t *self, const char *text)
{
    aip_layout_t *lay = aip_screen_layout (self);
    if (!lay)
        return;
    aip_layout_untrusted (lay, text, true);
    aip_screen_print_layout (self, &lay);
}

static const char *
s_color (aip_screen_t *self, const char *peer_id)
{
    static const char *palette [] = { "\033[36m", "\033[33m", "\033[35m", "\033[32m",
                                      "\033[34m", "\033[91m" };
    if (!self->color)
        return "";
    unsigned h = 5381;
    for (const char *p = peer_id; *p; p++)
        h = h * 33 + (unsigned char) *p;
    return palette [h % 6];
}

void
aip_screen_message (aip_screen_t *self, const char *peer_id, const char *name,
                    const char *tool, const char *type, const char *content)
{
    aip_layout_t *lay = aip_screen_layout (self);
    if (!lay)
        return;
    const char *color = s_color (self, peer_id ? peer_id : "");
    const char *reset = self->color ? "\033[0m" : "";
    const char *who = name ? name : peer_id ? peer_id : "?";
    //  A name another peer has too is shown with its peer id
    bool shared = peer_id && cli_name_shared (self->names, who, peer_id)
               && strcmp (who, peer_id) != 0;
    if (type && strcmp (type, "system") == 0) {
        aip_layout_text (lay, "  * ");
        aip_layout_codes (lay, color);
        aip_layout_untrusted (lay, who, true);
        if (shared) {
            aip_layout_text (lay, " (");
            aip_layout_untrusted (lay, peer_id, true);
            aip_layout_text (lay, ")");
        }
        aip_layout_codes (lay, reset);
        aip_layout_text (lay, " ");
    }
    else {
        aip_layout_codes (lay, color);
        aip_layout_text (lay, "[");
        aip_layout_untrusted (lay, who, true);
        if (shared || (tool && *tool)) {
            aip_layout_text (lay, " (");
            if (shared)
                aip_layout_untrusted (lay, peer_id, true);
            if (shared && tool && *tool)
                aip_layout_text (lay, ", ");
            if (tool && *tool)
                aip_layout_untrusted (lay, tool, true);
            aip_layout_text (lay, ")");
        }
        aip_layout_text (lay, "]");
        aip_layout_codes (lay, reset);
        aip_layout_text (lay, ": ");
    }
    aip_layout_untrusted (lay, content ? content : "", false);
    aip_screen_print_layout (self, &lay);
}

//  ---------------------------------------------------------------------
//  Answers growing in place (a terminal only)

static size_t
s_term_size (aip_screen_t *self, bool rows)
{
    struct winsize ws;
    if (ioctl (fileno (self->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20 && ws.ws_row >= 8)
        return rows ? ws.ws_row : ws.ws_col;
    return rows ? 24 : 80;
}

static const char *
s_prompt (aip_screen_t *self)
{
    return self->editor && self->editor->prompt ? self->editor->prompt : "";
}

//  The row of the prompt the cursor is on (a long line wraps)
static int
s_prompt_row (aip_screen_t *self)
{
    size_t cursor = self->editor && self->editor->cursor ? self->editor->cursor () : 0;
    size_t at = strlen (s_prompt (self)) + cursor;
    return (int) (at / s_term_size (self, false));
}

//  Take the blocks (and the prompt below them) off the screen; the cursor
//  ends at the start of the row where the first block was
static void
s_live_hide (aip_screen_t *self)
{
    if (!self->tty || self->live_rows == 0)
        return;
    int up = self->live_rows + s_prompt_row (self);
    fprintf (self->out, "\r\033[%dA\033[J", up);
    self->live_rows = 0;
}

//  One block's rows, at most max (one at least), appended to out
static int
s_live_rows (aip_screen_t *self, s_live_t *live, int max, FILE *out)
{
    char *clean_tool = aip_term_clean_line (live->tool, strlen (live->tool), NULL);
    long long seconds = (long long) ((aip_clock_ms () - live->started) / 1000);
    if (!live->text) {
        fprintf (out, "  ⏳ %s is thinking… %lld s\n", clean_tool ? clean_tool : "?", seconds);
        free (clean_tool);
        return 1;
    }
    fprintf (out, "  ✎ %s is writing… %lld s\n", clean_tool ? clean_tool : "?", seconds);
    free (clean_tool);
    //  Lay out only the tail that can show (4 bytes a column at most)
    size_t columns = s_term_size (self, false);
    size_t len = strlen (live->text), cap = (size_t) max * columns * 4;
    const char *tail = live->text + aip_utf8_tail (live->text, len, cap);
    //  A last newline would leave an empty row
    char *trimmed = strdup (tail);
    size_t tlen = strlen (trimmed);
    while (tlen && strchr (" \t\r\n", trimmed [tlen - 1]))
        trimmed [--tlen] = 0;
    aip_layout_t *lay = aip_screen_layout (self);
    char *laid = NULL;
    if (lay) {
        aip_layout_text (lay, AIP_LAYOUT_INDENT);
        aip_layout_untrusted (lay, trimmed, false);
        laid = aip_layout_take (lay);
        aip_layout_destroy (&lay);
    }
    free (trimmed);
    if (!laid)
        return 1;
    //  The last max - 1 rows of the text
    int rows = 1;
    for (const char *p = laid; *p; p++)
        rows += *p == '\n';
    const char *from = laid;
    for (int skip = rows - (max - 1); skip > 0 && from; skip--) {
        from = strchr (from, '\n');
        if (from)
            from++;
    }
    int shown = 0;
    if (from && max > 1) {
        fprintf (out, "%s\n", from);
        shown = rows < max - 1 ? rows : max - 1;
    }
    free (laid);
    return 1 + shown;
}

//  Draw the blocks where the cursor is (the start of an empty row), half
//  the screen at most, shared out between them
static void
s_live_draw (aip_screen_t *self)
{
    if (!self->tty)
        return;
    int blocks = 0;
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE; i++)
        blocks += self->live [i].used;
    if (!blocks)
        return;
    int budget = (int) s_term_size (self, true) / 2;
    int each = budget / blocks < 2 ? 2 : budget / blocks;
    char *rows = NULL;
    size_t size;
    FILE *out = open_memstream (&rows, &size);
    if (!out)
        return;
    int drawn = 0;
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE && drawn < budget; i++)
        if (self->live [i].used)
            drawn += s_live_rows (self, &self->live [i], each < budget - drawn ? each
                                                         : budget - drawn, out);
    fclose (out);
    if (rows)
        fputs (rows, self->out);
    free (rows);
    self->live_rows = drawn;
}

void
aip_screen_refresh (aip_screen_t *self)
{
    if (!self->tty)
        return;
    s_live_hide (self);
    fputs ("\r\033[K", self->out);
    s_live_draw (self);
    fflush (self->out);
    s_redraw_prompt (self);
}

//  A slot for a new block (NULL: all taken)
static s_live_t *
s_live_new (aip_screen_t *self, const char *tool, pid_t pid)
{
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE; i++)
        if (!self->live [i].used) {
            s_live_t *live = &self->live [i];
            live->used = true;
            snprintf (live->tool, sizeof live->tool, "%s", tool);
            live->pid = pid;
            live->started = live->heard = aip_clock_ms ();
            return live;
        }
    return NULL;
}

void
aip_screen_live_start (aip_screen_t *self, const char *tool, pid_t pid)
{
    if (s_live_new (self, tool, pid))
        aip_screen_refresh (self);
}

void
aip_screen_live_progress (aip_screen_t *self, const aip_obj_t *data)
{
    char tool [AIP_MAX_NAME + 1], msg_id [AIP_MAX_ID + 1];
    aip_obj_get_str (data, "tool", tool, sizeof tool, "");
    aip_obj_get_str (data, "msg_id", msg_id, sizeof msg_id, "");
    if (!*tool || !aip_id_valid (msg_id, strlen (msg_id)))
        return;
    s_live_t *live = NULL;
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE && !live; i++)
        if (self->live [i].used && strcmp (self->live [i].msg_id, msg_id) == 0)
            live = &self->live [i];
    //  The first event of one of our invites names its answer
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE && !live; i++)
        if (self->live [i].used && self->live [i].pid && !*self->live [i].msg_id
        &&  strcmp (self->live [i].tool, tool) == 0)
            live = &self->live [i];
    //  Somebody else's invite in this room
    if (!live)
        live = s_live_new (self, tool, 0);
    if (!live)
        return;
    snprintf (live->msg_id, sizeof live->msg_id, "%s", msg_id);
    live->heard = aip_clock_ms ();
    size_t len;
    const char *text = aip_obj_str (aip_obj_get (data, "text"), &len);
    if (!text)
        text = aip_obj_str (aip_obj_get (data, "partial"), &len);
    if (text && len > 0 && len <= AIP_SCREEN_TEXT_MAX) {
        free (live->text);
        live->text = (char *) malloc (len + 1);
        memcpy (live->text, text, len);
        live->text [len] = 0;
    }
    aip_screen_refresh (self);
}

void
aip_screen_live_end (aip_screen_t *self, const char *msg_id)
{
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE; i++)
        if (self->live [i].used && strcmp (self->live [i].msg_id, msg_id) == 0) {
            s_live_hide (self);
            s_live_free (&self->live [i]);
            //  Redrawn by the print of the message that follows
            fputs ("\r\033[K", self->out);
            s_live_draw (self);
            fflush (self->out);
        }
}

void
aip_screen_live_exited (aip_screen_t *self, pid_t pid, bool ok)
{
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE; i++)
        if (self->live [i].used && self->live [i].pid == pid) {
            if (ok)
                self->live [i].finished = aip_clock_ms ();
            else {
                s_live_hide (self);
                s_live_free (&self->live [i]);
                aip_screen_refresh (self);
            }
        }
}

void
aip_screen_tick (aip_screen_t *self)
{
    int64_t now = aip_clock_ms ();
    bool any = false;
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE; i++) {
        s_live_t *live = &self->live [i];
        if (!live->used)
            continue;
        if ((live->finished && now - live->finished > AIP_SCREEN_LINGER_MS)
        ||  (!live->pid && now - live->heard > AIP_SCREEN_STALE_MS)) {
            s_live_hide (self);
            s_live_free (live);
        }
        any = true;
    }
    if (any)
        aip_screen_refresh (self);
}

void
aip_screen_enter (aip_screen_t *self, const char *line)
{
    if (!self->tty || self->live_rows == 0)
        return;
    size_t columns = s_term_size (self, false);
    int typed_rows = (int) ((strlen (s_prompt (self)) + strlen (line)) / columns) + 1;
    fprintf (self->out, "\r\033[%dA\033[J", self->live_rows + typed_rows);
    self->live_rows = 0;
    char *clean = aip_term_clean_line (line, strlen (line), NULL);
    fprintf (self->out, "%s%s\n", s_prompt (self), clean ? clean : "");
    free (clean);
    fflush (self->out);
}

void
aip_screen_clear (aip_screen_t *self)
{
    s_live_hide (self);
    for (int i = 0; i < AIP_SCREEN_MAX_LIVE; i++)
        s_live_free (&self->live [i]);
}

//  ---------------------------------------------------------------------
//  Self-test

static int s_test_redraws;          //  prompts the test editor drew

static void
s_test_redraw (void)
{
    s_test_redraws++;
}

//  A progress event's data
static aip_doc_t *
s_test_progress (const char *tool, const char *msg_id, const char *text)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map (pk, 3);
    aip_pack_kstr (pk, "tool", tool);
    aip_pack_kstr (pk, "msg_id", msg_id);
    aip_pack_kstr (pk, "text", text);
    char err [128];
    aip_doc_t *doc = aip_doc_from_pack (&pk, err, sizeof err);
    assert (doc);
    return doc;
}

void
aip_screen_test (bool verbose)
{
    printf (" * aip_screen: ");
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&buf, &size);
    assert (out);

    //  Not a terminal: a line each, every field cleaned, no colours
    aip_screen_t *screen = aip_screen_new (out, false, false, NULL, NULL);
    assert (screen);
    aip_screen_message (screen, "host-claude", "claude", "claude", "message",
                        "hi\n[bob]: fake");
    aip_screen_message (screen, "host-human-ann", "ann", NULL, "system", "joined the room");
    //  A name another peer has too comes with its peer id
    aip_screen_message (screen, "other-claude", "claude", "claude", "message", "me too");
    aip_screen_print (screen, "  ! \x1b]0;t\x07oops\nx");
    fflush (out);
    const char *expected = "[claude (claude)]: hi\n    [bob]: fake\n"
                           "  * ann joined the room\n"
                           "[claude (other-claude, claude)]: me too\n"
                           "  ! ^[oops^Jx\n";
    if (strcmp (buf, expected) != 0) {
        fprintf (stderr, "\nscreen printed:\n%s", buf);
        assert (false);
    }
    aip_screen_destroy (&screen);
    aip_screen_destroy (&screen);
    assert (!screen);
    fclose (out);
    free (buf);

    //  A terminal: an answer grows in a block above the prompt, output goes
    //  above the block, and the posted message takes the block's place
    buf = NULL;
    out = open_memstream (&buf, &size);
    aip_screen_editor_t editor = { .prompt = "[You]: ", .redraw = s_test_redraw };
    screen = aip_screen_new (out, true, true, &editor, NULL);
    aip_screen_live_start (screen, "claude", 4242);
    fflush (out);
    assert (strstr (buf, "  \xe2\x8f\xb3 claude is thinking\xe2\x80\xa6 0 s\n"));
    assert (s_test_redraws == 1);
    //  The first event of our invite names its answer; its text shows
    aip_doc_t *doc = s_test_progress ("claude", "msg-1", "first row\nsecond row\n");
    aip_screen_live_progress (screen, aip_doc_root (doc));
    aip_doc_destroy (&doc);
    fflush (out);
    size_t mark = size;
    assert (strstr (buf, "  \xe2\x9c\x8e claude is writing\xe2\x80\xa6 0 s\n"
                         "    first row\n    second row\n"));
    //  A line printed meanwhile: the three rows of the block are taken
    //  away, the line printed, the block drawn again below it
    aip_screen_print_raw (screen, "a line");
    fflush (out);
    const char *above = "\r\033[3A\033[J\r\033[Ka line\n  \xe2\x9c\x8e claude is writing";
    assert (strncmp (buf + mark, above, strlen (above)) == 0);
    assert (s_test_redraws == 3);
    //  The answer arrives: the block goes, the message is printed in colour
    mark = size;
    aip_screen_live_end (screen, "msg-1");
    aip_screen_message (screen, "host-claude", "claude", "claude", "message", "answer");
    fflush (out);
    const char *gone = "\r\033[3A\033[J\r\033[K\r\033[K\033[";
    assert (strncmp (buf + mark, gone, strlen (gone)) == 0);
    assert (strstr (buf + mark, "m[claude (claude)]\033[0m: answer\n"));
    assert (!strstr (buf + mark, "writing"));
    //  Somebody else's invite gets a block of its own; a failed invite of
    //  ours loses its block at once
    doc = s_test_progress ("codex", "msg-2", "other");
    aip_screen_live_progress (screen, aip_doc_root (doc));
    aip_doc_destroy (&doc);
    aip_screen_live_start (screen, "gemini", 4343);
    aip_screen_live_exited (screen, 4343, false);
    mark = size;
    fflush (out);
    aip_screen_refresh (screen);
    fflush (out);
    assert (strstr (buf + mark, "codex is writing") && !strstr (buf + mark, "gemini"));
    aip_screen_clear (screen);
    aip_screen_destroy (&screen);
    fclose (out);
    free (buf);
    printf ("OK\n");
}
