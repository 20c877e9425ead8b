/*  ai-peer-interactive — `ai-peer chat ROOM -i`: a human in a room.

    A separate program so that libedit is loaded only here, not by every
    ai-peer command. It subscribes to the broker's events for the room, so
    messages from any local command, AI answers and relayed messages appear
    at once, printed above the line being typed (libedit keeps the half-
    typed line). `@tool question` posts the line and starts
    `ai-peer invite` in the background: the prompt stays usable, a status
    line says who is thinking. When stdin is not a terminal, lines are sent
    in order and the command ends at EOF with the JSON envelope.

    usage: ai-peer-interactive ROOM [--as NAME] [--tool T] [--type ai|human] [message...] */
#include "cli.h"
#include "aip_term.h"

#include <editline/readline.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_PENDING     16          //  invites running at once
#define SEEN_MAX        4096        //  ids remembered for de-duplication
#define TICK_MS         1000        //  status line and broker checks
#define MAX_LIVE        (MAX_PENDING + 8)   //  answers growing on screen at once
#define PROMPT          "[You]: "
#define LIVE_TEXT_MAX   (64 * 1024) //  text of one progress event shown
#define LIVE_LINGER_MS  5000        //  a block whose invite ended, at most
#define LIVE_STALE_MS   120000      //  somebody else's block without events

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

//  An invite running in the background
typedef struct {
    pid_t pid;                      //  the ai-peer invite process
    char tool [AIP_MAX_NAME + 1];   //  who is thinking
    int64_t started;                //  since when
    int64_t progress_shown;         //  last progress line about it
} s_pending_t;

typedef struct {
    cli_t *cli;                     //  shared CLI state
    const char *room_id;            //  the room
    cli_room_t room;                //  its key when encrypted
    cli_peer_t me;                  //  who types
    bool tty;                       //  stdin is a terminal
    bool color;                     //  colours on stderr
    void *ctx;                      //  zmq context for the subscription
    void *sub;                      //  SUB to run/events.ipc
    pid_t broker_pid;               //  to notice a restart
    char cursor_ts [AIP_MAX_TIME + 1];  //  newest message shown
    char cursor_id [AIP_MAX_ID + 1];
    char *seen [SEEN_MAX];          //  ids shown or sent by this session (ring)
    size_t seen_next;
    s_pending_t pending [MAX_PENDING];  //  invites running
    int sent;                       //  lines sent
    int not_sent;                   //  lines refused (too long, NUL, not UTF-8, error)
    long line_no;                   //  piped input: the line being sent; 0 on a terminal
    bool quit;                      //  leave the loop
    unsigned ticks;                 //  seconds in the room
    char exe_dir [AIP_PATH_MAX];    //  where ai-peer lives
    s_live_t live [MAX_LIVE];       //  answers growing above the prompt
    json_t *names;                  //  display names two peers share (cli_name_shared)
    int live_rows;                  //  terminal rows they take now
} s_chat_t;

static void s_live_hide (s_chat_t *self);
static void s_live_draw (s_chat_t *self);

static s_chat_t *s_chat;            //  for the libedit line callback
static volatile sig_atomic_t s_interrupted;

//  ---------------------------------------------------------------------
//  Output above the prompt
//
//  Names, messages and errors come from peers (also remote ones, through a
//  relay) and from AI tools: all of it goes through aip_term_clean, so none
//  can retitle, clear or paint the terminal. A message is laid out so that
//  no content can start a row as a speaker line does: every row after the
//  first starts with INDENT, also where a long row wraps (chat -i wraps at
//  the terminal's width itself, counting every non-ASCII character as two
//  columns so the terminal never wraps first).

#define INDENT "    "

//  A line being laid out for the terminal
typedef struct {
    FILE *out;                      //  memstream of the line
    size_t col;                     //  display column reached
    size_t width;                   //  the terminal's width; 0: no wrapping
} s_layout_t;

static void
s_layout_open (s_chat_t *self, s_layout_t *lay, char **line, size_t *len)
{
    lay->out = open_memstream (line, len);
    lay->col = 0;
    lay->width = 0;
    struct winsize ws;
    if (self->tty && ioctl (STDERR_FILENO, TIOCGWINSZ, &ws) == 0
    &&  ws.ws_col > strlen (INDENT) + 8)
        lay->width = ws.ws_col;
}

static void
s_layout_break (s_layout_t *lay)
{
    fputs ("\n" INDENT, lay->out);
    lay->col = strlen (INDENT);
}

//  Text that aip_term_clean returned (valid UTF-8, no control character
//  but newline and tab), wrapped and indented
static void
s_layout_text (s_layout_t *lay, const char *text)
{
    const unsigned char *p = (const unsigned char *) text;
    while (*p) {
        if (*p == '\n') {
            s_layout_break (lay);
            p++;
            continue;
        }
        if (*p == '\t') {
            //  Spaces to the next tab stop, so the width stays known
            size_t spaces = 8 - lay->col % 8;
            for (size_t i = 0; i < spaces; i++) {
                if (lay->width && lay->col + 1 > lay->width)
                    s_layout_break (lay);
                fputc (' ', lay->out);
                lay->col++;
            }
            p++;
            continue;
        }
        size_t bytes = *p < 0x80 ? 1 : *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
        size_t columns = *p < 0x80 ? 1 : 2;
        if (lay->width && lay->col + columns > lay->width)
            s_layout_break (lay);
        fwrite (p, 1, bytes, lay->out);
        lay->col += columns;
        p += bytes;
    }
}

//  Untrusted text (NULL: nothing), cleaned; one_line for names and errors
static void
s_layout_untrusted (s_layout_t *lay, const char *text, bool one_line)
{
    if (!text)
        return;
    char *clean = one_line ? aip_term_clean_line (text, strlen (text), NULL)
                           : aip_term_clean (text, strlen (text), NULL);
    if (clean)
        s_layout_text (lay, clean);
    free (clean);
}

//  Our own colour codes: no width
static void
s_layout_codes (s_layout_t *lay, const char *codes)
{
    fputs (codes, lay->out);
}

//  Print text of ours as it is (it may hold our colour codes)
static void
s_print_raw (s_chat_t *self, const char *text)
{
    if (!self->tty) {
        fprintf (stderr, "%s\n", text);
        return;
    }
    //  Keep what is half-typed: clear the line, print above it, and let
    //  libedit redraw the prompt with the text and cursor as they were;
    //  the growing answers stay below what is printed, above the prompt
    s_live_hide (self);
    fprintf (stderr, "\r\033[K%s\n", text);
    s_live_draw (self);
    fflush (stderr);
    rl_forced_update_display ();
}

static void
s_layout_print (s_chat_t *self, s_layout_t *lay, char **line)
{
    fclose (lay->out);
    if (*line)
        s_print_raw (self, *line);
    free (*line);
    *line = NULL;
}

//  A status line: ours, but it may quote a tool name or an error from a
//  daemon or relay, so it is cleaned as one line
static void
s_print (s_chat_t *self, const char *text)
{
    char *line = NULL;
    size_t len;
    s_layout_t lay;
    s_layout_open (self, &lay, &line, &len);
    s_layout_untrusted (&lay, text, true);
    s_layout_print (self, &lay, &line);
}

static bool
s_seen (s_chat_t *self, const char *id)
{
    for (size_t i = 0; i < SEEN_MAX; i++)
        if (self->seen [i] && strcmp (self->seen [i], id) == 0)
            return true;
    free (self->seen [self->seen_next]);
    self->seen [self->seen_next] = strdup (id);
    self->seen_next = (self->seen_next + 1) % SEEN_MAX;
    return false;
}

static const char *
s_color (s_chat_t *self, const char *peer_id)
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

//  The one place that prints a message: "[name (tool)]: text", or
//  "  * name text" for a system message; every field is cleaned
static void
s_print_message (s_chat_t *self, const char *peer_id, const char *name, const char *tool,
                 const char *type, const char *content)
{
    char *line = NULL;
    size_t len;
    s_layout_t lay;
    s_layout_open (self, &lay, &line, &len);
    const char *color = s_color (self, peer_id ? peer_id : "");
    const char *reset = self->color ? "\033[0m" : "";
    const char *who = name ? name : peer_id ? peer_id : "?";
    //  A name another peer has too is shown with its peer id
    bool shared = peer_id && cli_name_shared (self->names, who, peer_id)
               && strcmp (who, peer_id) != 0;
    if (type && strcmp (type, "system") == 0) {
        s_layout_text (&lay, "  * ");
        s_layout_codes (&lay, color);
        s_layout_untrusted (&lay, who, true);
        if (shared) {
            s_layout_text (&lay, " (");
            s_layout_untrusted (&lay, peer_id, true);
            s_layout_text (&lay, ")");
        }
        s_layout_codes (&lay, reset);
        s_layout_text (&lay, " ");
    }
    else {
        s_layout_codes (&lay, color);
        s_layout_text (&lay, "[");
        s_layout_untrusted (&lay, who, true);
        if (shared || (tool && *tool)) {
            s_layout_text (&lay, " (");
            if (shared)
                s_layout_untrusted (&lay, peer_id, true);
            if (shared && tool && *tool)
                s_layout_text (&lay, ", ");
            if (tool && *tool)
                s_layout_untrusted (&lay, tool, true);
            s_layout_text (&lay, ")");
        }
        s_layout_text (&lay, "]");
        s_layout_codes (&lay, reset);
        s_layout_text (&lay, ": ");
    }
    s_layout_untrusted (&lay, content ? content : "", false);
    s_layout_print (self, &lay, &line);
}

//  ---------------------------------------------------------------------
//  Answers growing in place (a terminal only)
//
//  Progress events carry an answer's text so far and the id it will be
//  posted under. Each growing answer is a block of rows right above the
//  prompt: "⏳ TOOL is thinking… N s" until text comes, then "✎ TOOL is
//  writing… N s" and the last rows of the text. Whatever is printed goes
//  above the blocks (s_print_raw hides and redraws them), and when the
//  posted message arrives its block goes and the message is printed as any
//  other. The rows are laid out by s_layout (which wraps before the
//  terminal does), so the number of rows drawn is exact and the blocks can
//  be taken away by moving the cursor up that many rows.

static size_t
s_term_size (bool rows)
{
    struct winsize ws;
    if (ioctl (STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20 && ws.ws_row >= 8)
        return rows ? ws.ws_row : ws.ws_col;
    return rows ? 24 : 80;
}

//  The row of the prompt the cursor is on (a long line wraps)
static int
s_prompt_row (void)
{
    size_t at = strlen (PROMPT) + (rl_point > 0 ? (size_t) rl_point : 0);
    return (int) (at / s_term_size (false));
}

//  Take the blocks (and the prompt below them) off the screen; the cursor
//  ends at the start of the row where the first block was
static void
s_live_hide (s_chat_t *self)
{
    if (!self->tty || self->live_rows == 0)
        return;
    int up = self->live_rows + s_prompt_row ();
    fprintf (stderr, "\r\033[%dA\033[J", up);
    self->live_rows = 0;
}

//  One block's rows, at most max (one at least), appended to out
static int
s_live_rows (s_chat_t *self, s_live_t *live, int max, FILE *out)
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
    size_t columns = s_term_size (false);
    size_t len = strlen (live->text), cap = (size_t) max * columns * 4;
    const char *tail = live->text + aip_utf8_tail (live->text, len, cap);
    //  A last newline would leave an empty row
    char *trimmed = strdup (tail);
    size_t tlen = strlen (trimmed);
    while (tlen && strchr (" \t\r\n", trimmed [tlen - 1]))
        trimmed [--tlen] = 0;
    char *laid = NULL;
    size_t laid_len;
    s_layout_t lay;
    s_layout_open (self, &lay, &laid, &laid_len);
    s_layout_text (&lay, INDENT);
    s_layout_untrusted (&lay, trimmed, false);
    fclose (lay.out);
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
s_live_draw (s_chat_t *self)
{
    if (!self->tty)
        return;
    int blocks = 0;
    for (int i = 0; i < MAX_LIVE; i++)
        blocks += self->live [i].used;
    if (!blocks)
        return;
    int budget = (int) s_term_size (true) / 2;
    int each = budget / blocks < 2 ? 2 : budget / blocks;
    char *rows = NULL;
    size_t size;
    FILE *out = open_memstream (&rows, &size);
    if (!out)
        return;
    int drawn = 0;
    for (int i = 0; i < MAX_LIVE && drawn < budget; i++)
        if (self->live [i].used)
            drawn += s_live_rows (self, &self->live [i], each < budget - drawn ? each
                                                         : budget - drawn, out);
    fclose (out);
    if (rows)
        fputs (rows, stderr);
    free (rows);
    self->live_rows = drawn;
}

//  Draw the blocks again (new text, the clock) and the prompt below them
static void
s_live_refresh (s_chat_t *self)
{
    if (!self->tty)
        return;
    s_live_hide (self);
    fputs ("\r\033[K", stderr);
    s_live_draw (self);
    fflush (stderr);
    rl_forced_update_display ();
}

static void
s_live_free (s_live_t *live)
{
    free (live->text);
    memset (live, 0, sizeof *live);
}

//  A slot for a new block (NULL: all taken)
static s_live_t *
s_live_new (s_chat_t *self, const char *tool, pid_t pid)
{
    for (int i = 0; i < MAX_LIVE; i++)
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

//  Our invite started: its block says it is thinking
static void
s_live_start (s_chat_t *self, const char *tool, pid_t pid)
{
    if (s_live_new (self, tool, pid))
        s_live_refresh (self);
}

//  Was this message shown already? (a late event must not bring it back)
static bool
s_live_shown (s_chat_t *self, const char *id)
{
    for (size_t i = 0; i < SEEN_MAX; i++)
        if (self->seen [i] && strcmp (self->seen [i], id) == 0)
            return true;
    return false;
}

//  A progress event: the answer so far ("text"; a spawnd without it sends
//  "partial", the tail of the output)
static void
s_live_progress (s_chat_t *self, const aip_obj_t *data)
{
    char tool [AIP_MAX_NAME + 1], msg_id [AIP_MAX_ID + 1];
    aip_obj_get_str (data, "tool", tool, sizeof tool, "");
    aip_obj_get_str (data, "msg_id", msg_id, sizeof msg_id, "");
    if (!*tool || !aip_id_valid (msg_id, strlen (msg_id)) || s_live_shown (self, msg_id))
        return;
    s_live_t *live = NULL;
    for (int i = 0; i < MAX_LIVE && !live; i++)
        if (self->live [i].used && strcmp (self->live [i].msg_id, msg_id) == 0)
            live = &self->live [i];
    //  The first event of one of our invites names its answer
    for (int i = 0; i < MAX_LIVE && !live; i++)
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
    if (text && len > 0 && len <= LIVE_TEXT_MAX) {
        free (live->text);
        live->text = (char *) malloc (len + 1);
        memcpy (live->text, text, len);
        live->text [len] = 0;
    }
    s_live_refresh (self);
}

//  The posted message arrived: its block goes (the message is printed next)
static void
s_live_end (s_chat_t *self, const char *msg_id)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (self->live [i].used && strcmp (self->live [i].msg_id, msg_id) == 0) {
            s_live_hide (self);
            s_live_free (&self->live [i]);
            //  Redrawn by the print of the message that follows
            fputs ("\r\033[K", stderr);
            s_live_draw (self);
            fflush (stderr);
        }
}

//  Our invite process ended: a failure takes its block away; a success
//  leaves it until the message arrives
static void
s_live_exited (s_chat_t *self, pid_t pid, bool ok)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (self->live [i].used && self->live [i].pid == pid) {
            if (ok)
                self->live [i].finished = aip_clock_ms ();
            else {
                s_live_hide (self);
                s_live_free (&self->live [i]);
                s_live_refresh (self);
            }
        }
}

//  Every second: the clocks; blocks whose message never came are dropped
static void
s_live_tick (s_chat_t *self)
{
    int64_t now = aip_clock_ms ();
    bool any = false;
    for (int i = 0; i < MAX_LIVE; i++) {
        s_live_t *live = &self->live [i];
        if (!live->used)
            continue;
        if ((live->finished && now - live->finished > LIVE_LINGER_MS)
        ||  (!live->pid && now - live->heard > LIVE_STALE_MS)) {
            s_live_hide (self);
            s_live_free (live);
        }
        any = true;
    }
    if (any)
        s_live_refresh (self);
}

//  Enter was pressed: libedit left the typed line on screen below the
//  blocks; print it above them instead, as if it had been printed
static void
s_live_enter (s_chat_t *self, const char *line)
{
    if (!self->tty || self->live_rows == 0)
        return;
    size_t columns = s_term_size (false);
    int typed_rows = (int) ((strlen (PROMPT) + strlen (line)) / columns) + 1;
    fprintf (stderr, "\r\033[%dA\033[J", self->live_rows + typed_rows);
    self->live_rows = 0;
    char *clean = aip_term_clean_line (line, strlen (line), NULL);
    fprintf (stderr, "%s%s\n", PROMPT, clean ? clean : "");
    free (clean);
    fflush (stderr);
}

static void
s_live_destroy (s_chat_t *self)
{
    s_live_hide (self);
    for (int i = 0; i < MAX_LIVE; i++)
        s_live_free (&self->live [i]);
}

//  Show one message (JSON object, content already revealed) once. What
//  this session sent is in the seen ids from the moment it is sent (the
//  user saw it as typed); what the same identity sent from elsewhere (another
//  terminal, an agent running as the user) is shown like anyone's.
static void
s_show (s_chat_t *self, json_t *m)
{
    const char *id = json_string_value (json_object_get (m, "id"));
    const char *ts = json_string_value (json_object_get (m, "created_at"));
    if (!id || !ts)
        return;
    s_live_end (self, id);
    //  Advance the cursor even for what is not shown
    if (strcmp (ts, self->cursor_ts) > 0
    ||  (strcmp (ts, self->cursor_ts) == 0 && strcmp (id, self->cursor_id) > 0)) {
        snprintf (self->cursor_ts, sizeof self->cursor_ts, "%s", ts);
        snprintf (self->cursor_id, sizeof self->cursor_id, "%s", id);
    }
    if (s_seen (self, id))
        return;
    s_print_message (self, json_string_value (json_object_get (m, "peer_id")), json_string_value (json_object_get (m, "peer_name")),
                     json_string_value (json_object_get (m, "peer_tool")),
                     json_string_value (json_object_get (m, "type")),
                     json_string_value (json_object_get (m, "content")));
}

//  ---------------------------------------------------------------------
//  Reading the room

//  Messages after the cursor (or the last n), revealed and shown
static int
s_fetch (s_chat_t *self, long n, bool after_cursor, bool join)
{
    cli_t *cli = self->cli;
    size_t nargs = 2 + (after_cursor ? 2 : 0) + (join ? 1 : 0);
    uint64_t id = cli_request (cli, AIP_OP_MSG_LIST, nargs);
    aip_pack_kstr (cli->pk, "room_id", self->room_id);
    aip_pack_kint (cli->pk, "limit", n);
    if (after_cursor) {
        aip_pack_kstr (cli->pk, "after_ts", self->cursor_ts);
        aip_pack_kstr (cli->pk, "after_id", self->cursor_id);
    }
    if (join)
        cli_pack_peer (cli, &self->me);
    json_t *data;
    if (cli_call (cli, id, &data))
        return -1;
    json_t *messages = json_object_get (data, "messages");
    cli_room_reveal_json (&self->room, messages);
    size_t i;
    json_t *m;
    json_array_foreach (messages, i, m)
        s_show (self, m);
    json_decref (data);
    return 0;
}

static void
s_subscribe (s_chat_t *self)
{
    char endpoint [AIP_PATH_MAX], err [256], topic [AIP_MAX_ID + 8];
    if (self->sub)
        zmq_close (self->sub);
    self->sub = zmq_socket (self->ctx, ZMQ_SUB);
    int linger = 0;
    int64_t maxmsg = AIP_MAX_REPLY;
    zmq_setsockopt (self->sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    snprintf (topic, sizeof topic, "room.%s", self->room_id);
    //  The topic is a prefix: "room.abc" would also match "room.abcd"; the
    //  room id in the body is checked too
    zmq_setsockopt (self->sub, ZMQ_SUBSCRIBE, topic, strlen (topic));
    if (aip_home_endpoint (self->cli->home, "events", endpoint, sizeof endpoint, err, sizeof err) == 0)
        zmq_connect (self->sub, endpoint);
}

//  A tool of ours is producing output: say so, every few seconds at most
static void
s_progress (s_chat_t *self, const aip_obj_t *data)
{
    if (self->tty) {
        s_live_progress (self, data);
        return;
    }
    char tool [AIP_MAX_NAME + 1];
    aip_obj_get_str (data, "tool", tool, sizeof tool, "");
    for (int i = 0; i < MAX_PENDING; i++) {
        s_pending_t *p = &self->pending [i];
        if (!p->pid || strcmp (p->tool, tool) != 0 || aip_clock_ms () - p->progress_shown < 3000)
            continue;
        p->progress_shown = aip_clock_ms ();
        char line [400];
        snprintf (line, sizeof line, "  … %s is writing (%lld bytes, %lld s)", tool,
                  (long long) aip_obj_get_int (data, "bytes", 0),
                  (long long) aip_obj_get_int (data, "elapsed_ms", 0) / 1000);
        s_print (self, line);
        break;
    }
}

static void
s_handle_event (s_chat_t *self)
{
    while (true) {
        zmq_msg_t topic, body;
        zmq_msg_init (&topic);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&topic, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&topic);
            zmq_msg_close (&body);
            return;
        }
        if (zmq_msg_more (&topic) && zmq_msg_recv (&body, self->sub, 0) >= 0) {
            char err [128];
            aip_doc_t *doc = aip_doc_decode (zmq_msg_data (&body), zmq_msg_size (&body), err, sizeof err);
            const aip_obj_t *root = doc ? aip_doc_root (doc) : NULL;
            if (root && aip_obj_streq (aip_obj_get (root, "room_id"), self->room_id)
            &&  aip_obj_streq (aip_obj_get (root, "type"), "progress"))
                s_progress (self, aip_obj_get (root, "data"));
            else
            if (root && aip_obj_streq (aip_obj_get (root, "room_id"), self->room_id)
            &&  aip_obj_streq (aip_obj_get (root, "type"), "message")) {
                json_t *one = json_array ();
                json_array_append_new (one, aip_json_from_obj (aip_obj_get (root, "data")));
                cli_room_reveal_json (&self->room, one);
                s_show (self, json_array_get (one, 0));
                json_decref (one);
            }
            aip_doc_destroy (&doc);
        }
        zmq_msg_close (&topic);
        zmq_msg_close (&body);
    }
}

//  ---------------------------------------------------------------------
//  Sending, invites and commands

static int
s_send (s_chat_t *self, const char *text)
{
    cli_t *cli = self->cli;
    size_t len = strlen (text);
    char where [32] = "";
    if (self->line_no)
        snprintf (where, sizeof where, "line %ld ", self->line_no);
    if (len > AIP_MAX_CONTENT || !aip_utf8_valid (text, len)) {
        char line [200];
        snprintf (line, sizeof line, "  ! %snot sent: %s", where, len > AIP_MAX_CONTENT
                  ? "a message is at most 256 KiB" : "it is not valid UTF-8");
        s_print (self, line);
        self->not_sent++;
        return -1;
    }
    char msg_id [AIP_MSG_ID_LEN + 1];
    aip_msg_id_new (msg_id);
    char *cipher = NULL;
    if (self->room.encrypted
    &&  aip_roomkey_encrypt (&self->room.key, self->room_id, msg_id, self->me.id, text, len, &cipher))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_MSG_SEND, 4);
    aip_pack_kstr (cli->pk, "room_id", self->room_id);
    aip_pack_kstr (cli->pk, "id", msg_id);
    aip_pack_kstr (cli->pk, "content", cipher ? cipher : text);
    cli_pack_peer (cli, &self->me);
    free (cipher);
    s_seen (self, msg_id);
    if (cli_call (cli, id, NULL)) {
        char line [2200];
        snprintf (line, sizeof line, "  ! %snot sent: %s", where, cli->err);
        s_print (self, line);
        self->not_sent++;
        return -1;
    }
    self->sent++;
    return 0;
}

static void
s_invite (s_chat_t *self, const char *tool, const char *context)
{
    int slot = -1;
    for (int i = 0; i < MAX_PENDING; i++)
        if (!self->pending [i].pid)
            slot = i;
    if (slot < 0) {
        s_print (self, "  ! too many invites running: /cancel some first");
        return;
    }
    char exe [AIP_PATH_MAX + 16];
    snprintf (exe, sizeof exe, "%s/ai-peer", self->exe_dir);
    pid_t pid = fork ();
    if (pid == 0) {
        //  The answer arrives as a room event; the JSON result is not needed
        int devnull = open ("/dev/null", O_RDWR);
        dup2 (devnull, 0);
        dup2 (devnull, 1);
        dup2 (devnull, 2);
        setpgid (0, 0);
        const char *argv [] = { exe, "invite", "--tool", tool, "--room", self->room_id,
                                "--context", context, NULL };
        execv (exe, (char *const *) argv);
        _exit (127);
    }
    if (pid < 0) {
        s_print (self, "  ! cannot start the invite");
        return;
    }
    self->pending [slot].pid = pid;
    snprintf (self->pending [slot].tool, sizeof self->pending [slot].tool, "%s", tool);
    self->pending [slot].started = aip_clock_ms ();
    if (self->tty) {
        s_live_start (self, tool, pid);
        return;
    }
    char line [300];
    snprintf (line, sizeof line, "  ⏳ %s is thinking…", tool);
    s_print (self, line);
}

static int
s_cancel_all (s_chat_t *self)
{
    int cancelled = 0;
    for (int i = 0; i < MAX_PENDING; i++)
        if (self->pending [i].pid) {
            kill (-self->pending [i].pid, SIGTERM);
            kill (self->pending [i].pid, SIGTERM);
            cancelled++;
        }
    if (cancelled) {
        char line [64];
        snprintf (line, sizeof line, "  ✗ cancelled %d invite(s)", cancelled);
        s_print (self, line);
    }
    return cancelled;
}

//  Reap finished invites; say how each ended
static void
s_reap (s_chat_t *self)
{
    for (int i = 0; i < MAX_PENDING; i++) {
        s_pending_t *p = &self->pending [i];
        int status;
        if (!p->pid || waitpid (p->pid, &status, WNOHANG) != p->pid)
            continue;
        s_live_exited (self, p->pid, WIFEXITED (status) && WEXITSTATUS (status) == 0);
        if (!(WIFEXITED (status) && WEXITSTATUS (status) == 0)) {
            char line [400];
            snprintf (line, sizeof line, "  ✗ %s did not answer (see the room for "
                      "its [spawn error], or run 'ai-peer invite --tool %s --room %s')",
                      p->tool, p->tool, self->room_id);
            s_print (self, line);
        }
        p->pid = 0;
    }
}

static bool
s_any_pending (s_chat_t *self)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (self->pending [i].pid)
            return true;
    return false;
}

static void
s_who (s_chat_t *self)
{
    cli_t *cli = self->cli;
    uint64_t id = cli_request (cli, AIP_OP_ROOM_PEERS, 1);
    aip_pack_kstr (cli->pk, "id", self->room_id);
    json_t *data;
    if (cli_call (cli, id, &data)) {
        s_print (self, cli->err);
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get (data, "peers"), i, p) {
        const char *tool = json_string_value (json_object_get (p, "tool"));
        char *line = NULL;
        size_t len;
        s_layout_t lay;
        s_layout_open (self, &lay, &line, &len);
        s_layout_text (&lay, "  ");
        s_layout_untrusted (&lay, json_string_value (json_object_get (p, "name")), true);
        if (tool) {
            s_layout_text (&lay, " (");
            s_layout_untrusted (&lay, tool, true);
            s_layout_text (&lay, ")");
        }
        s_layout_text (&lay, " [");
        s_layout_untrusted (&lay, json_string_value (json_object_get (p, "type")), true);
        s_layout_text (&lay, "]");
        s_layout_print (self, &lay, &line);
    }
    json_decref (data);
}

static void
s_export (s_chat_t *self, const char *args)
{
    char format [8] = "md", file [1024] = "";
    sscanf (args, "%7s %1023s", format, file);
    if (!*file)
        snprintf (file, sizeof file, "%s.%s", self->room_id, format);
    char exe [AIP_PATH_MAX + 16];
    snprintf (exe, sizeof exe, "%s/ai-peer", self->exe_dir);
    pid_t pid = fork ();
    if (pid == 0) {
        int devnull = open ("/dev/null", O_RDWR);
        dup2 (devnull, 1);
        dup2 (devnull, 2);
        const char *argv [] = { exe, "export", self->room_id, "--format", format,
                                "--output", file, NULL };
        execv (exe, (char *const *) argv);
        _exit (127);
    }
    int status = 1;
    if (pid > 0)
        waitpid (pid, &status, 0);
    char line [1200];
    snprintf (line, sizeof line, WIFEXITED (status) && WEXITSTATUS (status) == 0
              ? "  exported to %s" : "  ! export to %s failed (format md or json)", file);
    s_print (self, line);
}

static const char s_help [] =
    "  @<tool> <question>   invite an AI (codex, claude-code, opencode, gemini, …)\n"
    "  /invite TOOL [text]  the same\n"
    "  /who                 participants\n"
    "  /history N           the last N messages\n"
    "  /export [md|json] [FILE]\n"
    "  /cancel              cancel pending invites\n"
    "  /quit                leave (also Ctrl-D; Ctrl-C cancels invites first)";

static void
s_line (s_chat_t *self, char *line)
{
    char *text = line;
    while (*text == ' ' || *text == '\t')
        text++;
    size_t len = strlen (text);
    while (len && (text [len - 1] == ' ' || text [len - 1] == '\t' || text [len - 1] == '\n'))
        text [--len] = 0;
    if (!*text)
        return;
    if (self->tty)
        add_history (text);
    if (strcmp (text, "/quit") == 0 || strcmp (text, "/exit") == 0)
        self->quit = true;
    else
    if (strcmp (text, "/help") == 0)
        s_print_raw (self, s_help);
    else
    if (strcmp (text, "/who") == 0)
        s_who (self);
    else
    if (strcmp (text, "/cancel") == 0) {
        if (!s_cancel_all (self))
            s_print (self, "  no invite is running");
    }
    else
    if (strncmp (text, "/history", 8) == 0) {
        long n = atol (text + 8);
        //  Shown again on request, own messages included
        for (size_t i = 0; i < SEEN_MAX; i++) {
            free (self->seen [i]);
            self->seen [i] = NULL;
        }
        s_fetch (self, n > 0 && n <= AIP_MAX_PAGE ? n : 20, false, false);
    }
    else
    if (strncmp (text, "/export", 7) == 0)
        s_export (self, text + 7);
    else
    if (strncmp (text, "/invite ", 8) == 0 || text [0] == '@') {
        char *rest = text [0] == '@' ? text + 1 : text + 8;
        while (*rest == ' ')
            rest++;
        size_t tlen = strcspn (rest, " \t");
        char tool [AIP_MAX_NAME + 1];
        snprintf (tool, sizeof tool, "%.*s", (int) tlen, rest);
        const char *context = rest [tlen] ? rest + tlen + 1 : "Please share your thoughts.";
        if (!*tool || !aip_id_valid (tool, strlen (tool))) {
            s_print (self, "  ! usage: @<tool> <question>");
            return;
        }
        //  The human's line goes to the room first, as the original did
        if (text [0] == '@' && s_send (self, text))
            return;
        s_invite (self, tool, context);
    }
    else
    if (text [0] == '/') {
        char line [128];
        snprintf (line, sizeof line, "  ! unknown command %.*s (/help lists them)",
                  (int) strcspn (text, " \t") > 64 ? 64 : (int) strcspn (text, " \t"), text);
        s_print (self, line);
    }
    else
        s_send (self, text);
}

//  A line from a pipe (len bytes, no newline): refused whole, saying which
//  line and why, when it could not be sent as it is
static void
s_input_line (s_chat_t *self, char *text, size_t len, long line_no)
{
    char line [200];
    const char *nul = (const char *) memchr (text, 0, len);
    if (nul)
        snprintf (line, sizeof line, "  ! line %ld not sent: it holds a NUL byte (at byte %zu)",
                  line_no, (size_t) (nul - text) + 1);
    else
    if (!aip_utf8_valid (text, len))
        snprintf (line, sizeof line, "  ! line %ld not sent: it is not valid UTF-8", line_no);
    else {
        text [len] = 0;
        self->line_no = line_no;
        s_line (self, text);
        self->line_no = 0;
        return;
    }
    s_print (self, line);
    self->not_sent++;
}

static void
s_on_line (char *line)
{
    if (!line) {
        s_chat->quit = true;        //  Ctrl-D
        return;
    }
    s_live_enter (s_chat, line);
    s_line (s_chat, line);
    free (line);
    //  A fresh handler per line: libedit's callback mode reports Ctrl-D on
    //  an empty line (EOF) only at the first prompt of an installed handler
    if (!s_chat->quit) {
        rl_callback_handler_remove ();
        rl_callback_handler_install (PROMPT, s_on_line);
        s_live_refresh (s_chat);
    }
}

static void
s_on_sigint (int sig)
{
    s_interrupted = 1;
}

//  Every second: status of pending invites, and a broker restart check
static void
s_tick (s_chat_t *self)
{
    s_reap (self);
    pid_t pid = 0;
    aip_daemon_running (self->cli->home, &pid);
    if (pid && pid != self->broker_pid) {
        //  A new broker: reconnect and catch up from the cursor, so nothing
        //  is skipped (and the seen ids keep anything from showing twice)
        self->broker_pid = pid;
        aip_client_destroy (&self->cli->client);
        s_subscribe (self);
        s_fetch (self, AIP_MAX_PAGE, true, false);
    }
    //  Who is thinking, and for how long: on a terminal, in place; else
    //  a line every 10 s
    s_live_tick (self);
    if (!self->tty && s_any_pending (self) && ++self->ticks % 10 == 0) {
        char status [512] = "  …";
        for (int i = 0; i < MAX_PENDING; i++)
            if (self->pending [i].pid)
                snprintf (status + strlen (status), sizeof status - strlen (status),
                          " %s (%llds)", self->pending [i].tool,
                          (long long) ((aip_clock_ms () - self->pending [i].started) / 1000));
        snprintf (status + strlen (status), sizeof status - strlen (status), " thinking");
        s_print (self, status);
    }
}

//  Scripted input, read with read(2)
typedef struct {
    char *buffer;               //  AIP_MAX_CONTENT + 2 bytes: a line being read
    size_t used;                //  bytes in buffer
    long line_no;               //  of the line being read, for errors
    bool dropping;              //  skipping the rest of a line too long
    bool eof;                   //  stdin has ended
} s_input_t;

//  Read what stdin has, send each whole line; a line over the limit of a
//  message is refused whole, its tail too
static void
s_read_input (s_chat_t *self, s_input_t *in)
{
    ssize_t got = read (0, in->buffer + in->used, AIP_MAX_CONTENT + 1 - in->used);
    if (got <= 0 && !(got < 0 && errno == EINTR)) {
        in->eof = true;
        if (in->used && !in->dropping)  //  a last line without newline
            s_input_line (self, in->buffer, in->used, in->line_no);
        in->used = 0;
    }
    else
    if (got > 0) {
        in->used += (size_t) got;
        char *start = in->buffer, *nl;
        while ((nl = memchr (start, '\n', in->used - (size_t) (start - in->buffer)))) {
            if (in->dropping)
                in->dropping = false;   //  the end of a line too long
            else
                s_input_line (self, start, (size_t) (nl - start), in->line_no);
            in->line_no++;
            start = nl + 1;
        }
        in->used -= (size_t) (start - in->buffer);
        memmove (in->buffer, start, in->used);
        if (!in->dropping && in->used > AIP_MAX_CONTENT) {
            //  No newline within the limit: the whole line goes,
            //  its tail too, up to the next newline
            char line [200];
            snprintf (line, sizeof line, "  ! line %ld not sent: longer than "
                      "256 KiB (%d bytes, the limit of a message)", in->line_no,
                      AIP_MAX_CONTENT);
            s_print (self, line);
            self->not_sent++;
            in->dropping = true;
        }
        if (in->dropping)
            in->used = 0;
    }
}

int
main (int argc, char **argv)
{
    signal (SIGPIPE, SIG_IGN);
    cli_t cli;
    memset (&cli, 0, sizeof cli);
    s_chat_t self;
    memset (&self, 0, sizeof self);
    self.cli = &cli;
    s_chat = &self;
    cli.pk = aip_pack_new ();
    char err [1024];
    int rc = 1;
    char **pos = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    enum { OPT_AS, OPT_TOOL, OPT_TYPE, OPT_INTERACTIVE, OPT_LIMIT, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_AS] = CLI_OPT_VALUE ("--as"),
        [OPT_TOOL] = CLI_OPT_VALUE ("--tool"),
        [OPT_TYPE] = CLI_OPT_VALUE ("--type"),
        [OPT_INTERACTIVE] = { .name = "--interactive", .alias = "-i" },
        [OPT_LIMIT] = CLI_OPT_VALUE ("-n"),
    };
    int npos = 0;
    if (aip_home_resolve (cli.home, sizeof cli.home, err, sizeof err)) {
        cli_fail (&cli, "%s", err);
        goto done;
    }
    if (cli_parse (&cli, "chat", argc - 1, argv + 1, opts, pos, argc, &npos))
        goto done;
    if (npos < 1) {
        cli_fail (&cli, "Usage: ai-peer chat <room-id> -i [--as NAME] [--tool TOOL]");
        goto done;
    }
    self.room_id = pos [0];
    self.tty = isatty (0) && isatty (2);
    self.color = self.tty && !getenv ("NO_COLOR");
    aip_exe_dir (self.exe_dir, sizeof self.exe_dir);
    if (cli_check_room_id (&cli, self.room_id)
    ||  cli_resolve_peer (&cli, opts [OPT_AS].value, opts [OPT_TOOL].value, opts [OPT_TYPE].value,
                          &self.me)
    ||  cli_room_open (&cli, self.room_id, &self.room))
        goto done;
    self.names = cli_room_names (&cli, self.room_id, NULL);
    aip_daemon_running (cli.home, &self.broker_pid);

    //  Subscribe before reading, so nothing falls between the two
    self.ctx = zmq_ctx_new ();
    s_subscribe (&self);
    fprintf (stderr, "Room %s — %s%s. /help for commands, Ctrl-D to leave.\n", self.room_id,
             self.room.encrypted ? "encrypted, " : "",
             !self.room.public ? (self.room.lan ? "LAN hub (live push)" : "local (live push)")
             : self.room.lan ? (cli_relay_ok (&cli, self.room_id)
                                ? "LAN, hub in sync (live push)"
                                : "LAN, hub unreachable (messages queue here, delivered later)")
             : cli_relay_ok (&cli, self.room_id) ? "public, relay in sync (live push)"
             : "public, relay unreachable (messages queue here, delivered later)");
    if (s_fetch (&self, 20, false, true))
        goto done;
    if (npos > 1) {
        //  An initial message on the command line
        char *text = cli_join_words (pos + 1, npos - 1);
        if (text)
            s_line (&self, text);
        free (text);
    }

    //  Scripted input is read with read(2), not stdio: poll cannot see
    //  lines already sitting in a stdio buffer
    s_input_t input = { (char *) malloc (AIP_MAX_CONTENT + 2), 0, 1, false, false };
    if (!input.buffer) {
        cli_fail (&cli, "out of memory");
        goto done;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sigint;
    sigaction (SIGINT, &sa, NULL);
    if (self.tty)
        rl_callback_handler_install ("[You]: ", s_on_line);
    int64_t next_tick = aip_clock_ms () + TICK_MS;
    while (!self.quit) {
        if (s_interrupted) {
            s_interrupted = 0;
            if (!s_cancel_all (&self))
                break;
        }
        zmq_pollitem_t items [] = {
            { self.sub, 0, ZMQ_POLLIN, 0 },
            { NULL, 0, ZMQ_POLLIN, 0 },
        };
        int nitems = input.eof ? 1 : 2;
        int64_t wait = next_tick - aip_clock_ms ();
        if (zmq_poll (items, nitems, wait > 0 ? wait : 0) < 0 && zmq_errno () != EINTR)
            break;
        if (items [0].revents & ZMQ_POLLIN)
            s_handle_event (&self);
        //  A closed pipe polls as an error (POLLHUP), not as readable
        if (nitems > 1 && (items [1].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
            if (self.tty)
                rl_callback_read_char ();
            else
                s_read_input (&self, &input);
        }
        if (aip_clock_ms () >= next_tick) {
            s_tick (&self);
            next_tick = aip_clock_ms () + TICK_MS;
        }
        //  Scripted: after EOF, wait for the invites, then leave
        if (input.eof && !s_any_pending (&self))
            break;
    }
    free (input.buffer);
    if (self.tty) {
        s_live_destroy (&self);
        rl_callback_handler_remove ();
        fprintf (stderr, "\nLeft the room.\n");
    }
    s_cancel_all (&self);
    cli.data = json_pack ("{s:s, s:s, s:i, s:i}", "status", "exited", "room", self.room_id,
                          "sent", self.sent, "not_sent", self.not_sent);
    rc = 0;
done:
    {
        json_t *root = json_object ();
        json_object_set_new (root, "ok", json_boolean (rc == 0));
        json_object_set_new (root, "schema_version", json_string ("1"));
        if (rc == 0)
            json_object_set (root, "data", cli.data);
        else
            json_object_set_new (root, "error", json_string (*cli.err ? cli.err : "failed"));
        char *text = aip_json_dumps (root);
        if (text) {
            puts (text);
            free (text);
        }
        json_decref (root);
    }
    json_decref (self.names);
    for (size_t i = 0; i < SEEN_MAX; i++)
        free (self.seen [i]);
    for (int i = 0; i < MAX_LIVE; i++)
        s_live_free (&self.live [i]);
    sodium_memzero (&self.room, sizeof self.room);
    json_decref (cli.data);
    if (self.sub)
        zmq_close (self.sub);
    if (self.ctx)
        zmq_ctx_term (self.ctx);
    aip_client_destroy (&cli.client);
    aip_pack_destroy (&cli.pk);
    free (pos);
    return rc ? 1 : 0;
}
