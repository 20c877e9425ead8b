/*  cmd_ai.c — ai-peer invite, quick, discuss: the AI commands (discover
    and the asynchronous jobs are in cmd_jobs.c). The tools run in spawnd
    workers (one job each); quick sends all its invites at once, so its wall
    time is the slowest tool, not the sum. */
#include "cli.h"
#include "aip_event.h"
#include "aip_term.h"

#include <sodium.h>
#include <sys/ioctl.h>

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

//  Progress on stderr (terminals only): the clock at most this often, the
//  first line after PROGRESS_FIRST_MS, events read every PROGRESS_POLL_MS
#define PROGRESS_MS 1000
#define PROGRESS_FIRST_MS 300
#define PROGRESS_POLL_MS 50
//  Text of a progress event beyond this is not shown (the contract's bound)
#define SHOW_TEXT_MAX (64 * 1024)
//  Characters of an answer quoted in discuss's log
#define SNIPPET_CHARS 200

//  An invite to send: what spawn.run needs
typedef struct {
    const char *tool;
    const char *room_id;
    const char *context;        //  or NULL
    const char *model;          //  or NULL
    const char *cwd;            //  absolute
    long timeout_s;
    bool async;                 //  the broker answers with a job id at once
    long history;               //  messages of history in the prompt (0: default)
    bool fresh;                 //  start a new tool session (no resume)
    bool sessions;              //  a password room: let the tool keep its session
    const char *max_cost;       //  USD the tool may spend (claude), or NULL
    uint64_t request_id;        //  set when sent
    char msg_id [AIP_MSG_ID_LEN + 1];   //  id of the answer, for progress events
    int64_t streamed;           //  bytes of output so far (progress events)
    json_t *data;               //  the reply's data, or NULL
    char error [2048];          //  the error, when data is NULL
    bool done;
    int arrival;                //  1 for the first reply to arrive, 2 next...
} s_invite_t;

//  A formatted string the caller frees (the CLI does not load czmq)
static char *
s_sprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static char *
s_sprintf (const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    char *text = NULL;
    if (vasprintf (&text, fmt, args) < 0)
        text = NULL;
    va_end (args);
    assert (text);
    return text;
}

static int
s_invite_send (cli_t *cli, s_invite_t *inv)
{
    if (cli_connect (cli))
        return -1;
    aip_msg_id_new (inv->msg_id);
    const char *msg_id = inv->msg_id;
    size_t nargs = 5 + (inv->context ? 1 : 0) + (inv->model ? 1 : 0)
                 + (inv->history ? 1 : 0) + (inv->fresh ? 1 : 0) + (inv->sessions ? 1 : 0)
                 + (inv->max_cost ? 1 : 0);
    //  The broker routes by the envelope: the tool's worker, the room for
    //  daemon status, and whether it runs as a job
    inv->request_id = aip_client_next_id (cli->client);
    aip_pack_reset (cli->pk);
    aip_request_begin_route (cli->pk, inv->request_id, AIP_OP_SPAWN_RUN, nargs, inv->tool,
                             inv->room_id, inv->async || cli->hooks);
    aip_pack_kstr (cli->pk, "tool", inv->tool);
    aip_pack_kstr (cli->pk, "room_id", inv->room_id);
    aip_pack_kint (cli->pk, "timeout", inv->timeout_s);
    aip_pack_kstr (cli->pk, "cwd", inv->cwd);
    aip_pack_kstr (cli->pk, "msg_id", msg_id);
    if (inv->context)
        aip_pack_kstr (cli->pk, "context", inv->context);
    if (inv->model)
        aip_pack_kstr (cli->pk, "model", inv->model);
    if (inv->history)
        aip_pack_kint (cli->pk, "history", inv->history);
    if (inv->fresh)
        aip_pack_kbool (cli->pk, "fresh", true);
    if (inv->sessions)
        aip_pack_kbool (cli->pk, "sessions", true);
    if (inv->max_cost)
        aip_pack_kstr (cli->pk, "max_cost", inv->max_cost);
    char err [1024];
    if (aip_client_send (cli->client, cli->pk, err, sizeof err))
        return cli_fail (cli, "%s", err);
    if (!cli->hooks || inv->async)
        return 0;
    //  For a caller that may cancel: the invite runs as a job (the broker
    //  can kill it), whose result is then waited for like a reply
    aip_reply_t rep;
    bool died = false;
    if (aip_client_recv (cli->client, inv->request_id, AIP_CLIENT_TIMEOUT_MS, &rep, &died, err,
                         sizeof err))
        return cli_fail (cli, "%s", err);
    if (!rep.ok) {
        cli_fail (cli, "%s", rep.message);
        aip_reply_free (&rep);
        return -1;
    }
    char job_id [AIP_MAX_ID + 1];
    aip_obj_get_str (rep.data, "job", job_id, sizeof job_id, "");
    aip_reply_free (&rep);
    if (cli->hooks->job)
        cli->hooks->job (cli->hooks->arg, job_id, inv->msg_id);
    inv->request_id = cli_request (cli, AIP_OP_JOB_WAIT, 1);
    aip_pack_kstr (cli->pk, "id", job_id);
    if (aip_client_send (cli->client, cli->pk, err, sizeof err))
        return cli_fail (cli, "%s", err);
    return 0;
}

//  ---------------------------------------------------------------------
//  Progress on a terminal (stderr, when it is one; stdout holds only the
//  JSON). One invite (invite, each turn of discuss): a line "⏳ TOOL is
//  thinking… N s" until text comes, then the answer as it grows, from the
//  progress events' text. Several at once (quick): one status line, a field
//  per tool. Everything a tool wrote goes through aip_term_clean.

//  Progress events of a room, and what the terminal was shown of them
typedef struct {
    void *ctx;                  //  own zmq context (the client's is private)
    void *sub;                  //  SUB to the broker's events
    char **text;                //  per invite: the latest text (or NULL)
    size_t *text_len;           //  ... its length
    bool *writing;              //  ... text has come
    char *shown;                //  one invite: the text printed so far (its tail)
    size_t shown_len;
    bool streaming;             //  one invite: its text is being printed
    bool at_line_start;         //  the last byte printed was a newline
    bool status_line;           //  a line ended by \r is on the terminal
    size_t count;               //  invites
} s_progress_t;

//  The tail of the printed text kept to find where new text starts
#define SHOWN_TAIL 512

static void
s_progress_open (cli_t *cli, s_progress_t *p, const char *room_id, size_t count)
{
    char endpoint [AIP_PATH_MAX], err [256], topic [AIP_MAX_ID + 8];
    memset (p, 0, sizeof *p);
    p->count = count;
    p->text = (char **) calloc (count, sizeof (char *));
    p->text_len = (size_t *) calloc (count, sizeof (size_t));
    p->writing = (bool *) calloc (count, sizeof (bool));
    p->at_line_start = true;
    if (aip_home_endpoint (cli->home, "events", endpoint, sizeof endpoint, err, sizeof err))
        return;
    p->ctx = zmq_ctx_new ();
    p->sub = p->ctx ? zmq_socket (p->ctx, ZMQ_SUB) : NULL;
    if (!p->sub)
        return;
    int linger = 0;
    int64_t maxmsg = AIP_MAX_REPLY;
    zmq_setsockopt (p->sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (p->sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    aip_event_topic (AIP_EVENT_PROGRESS, room_id, topic, sizeof topic);
    zmq_setsockopt (p->sub, ZMQ_SUBSCRIBE, topic, strlen (topic));
    zmq_connect (p->sub, endpoint);
}

//  Read the progress events that arrived; update the invites' counts and
//  texts ("text" is the answer so far; a spawnd without it sends "partial",
//  the tail of the output, which is better than nothing)
static void
s_progress_read (s_progress_t *p, s_invite_t *invs, size_t count)
{
    while (p->sub) {
        zmq_msg_t topic, body;
        zmq_msg_init (&topic);
        zmq_msg_init (&body);
        int more = 0;
        size_t more_size = sizeof more;
        bool got = zmq_msg_recv (&topic, p->sub, ZMQ_DONTWAIT) >= 0
                && zmq_getsockopt (p->sub, ZMQ_RCVMORE, &more, &more_size) == 0 && more
                && zmq_msg_recv (&body, p->sub, ZMQ_DONTWAIT) >= 0;
        if (got) {
            char err [128];
            aip_event_t ev;
            bool progress = aip_event_decode (zmq_msg_data (&body), zmq_msg_size (&body), &ev,
                                              err, sizeof err) == 0
                         && ev.type == AIP_EVENT_PROGRESS;
            const aip_obj_t *data = ev.data;
            if (progress)
                for (size_t i = 0; i < count; i++) {
                    if (strcmp (ev.msg_id, invs [i].msg_id) != 0)
                        continue;
                    invs [i].streamed = aip_obj_get_int (data, "bytes", 0);
                    size_t len;
                    const char *text = aip_obj_str (aip_obj_get (data, "text"), &len);
                    if (!text)
                        text = aip_obj_str (aip_obj_get (data, "partial"), &len);
                    if (text && len > SHOW_TEXT_MAX)
                        len = 0;            //  beyond the contract: not shown
                    if (text && len && i < p->count) {
                        free (p->text [i]);
                        p->text [i] = (char *) malloc (len + 1);
                        memcpy (p->text [i], text, len);
                        p->text [i][len] = 0;
                        p->text_len [i] = len;
                        p->writing [i] = true;
                    }
                }
            aip_event_free (&ev);
        }
        zmq_msg_close (&topic);
        zmq_msg_close (&body);
        if (!got)
            break;
    }
}

//  Print text from a tool, cleaned
static void
s_progress_put (s_progress_t *p, const char *text, size_t len)
{
    if (!len)
        return;
    size_t clean_len;
    char *clean = aip_term_clean (text, len, &clean_len);
    if (clean && clean_len) {
        fwrite (clean, 1, clean_len, stderr);
        p->at_line_start = clean [clean_len - 1] == '\n';
    }
    free (clean);
}

//  Take the status line away
static void
s_progress_unstatus (s_progress_t *p)
{
    if (p->status_line)
        fputs ("\r\033[K", stderr);
    p->status_line = false;
}

//  The terminal's width (80 when it cannot say)
static size_t
s_columns (void)
{
    struct winsize ws;
    if (ioctl (STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

//  One invite: its new text (what follows what was printed), or the line
//  that says it is thinking
static void
s_progress_stream (s_progress_t *p, const s_invite_t *inv, int64_t elapsed_ms)
{
    const char *text = p->text [0];
    size_t len = p->text_len [0];
    if (!text) {
        fprintf (stderr, "\r\033[K  ⏳ %s is thinking… %lld s", inv->tool,
                 (long long) (elapsed_ms / 1000));
        p->status_line = true;
        return;
    }
    const char *from = text;
    if (!p->streaming) {
        s_progress_unstatus (p);
        fprintf (stderr, "[%s]: ", inv->tool);
        p->streaming = true;
    }
    else
    if (p->shown_len == 0)
        from = text;
    else
    if (p->shown_len <= len && memcmp (text, p->shown, p->shown_len) == 0
    &&  p->shown_len < SHOWN_TAIL)
        from = text + p->shown_len;         //  the text so far, grown
    else {
        //  Past SHOWN_TAIL (or the text is a tail of a longer answer): find
        //  where the printed tail ends in the new text
        const char *at = NULL;
        for (const char *q = text; q + p->shown_len <= text + len; q++) {
            q = memchr (q, p->shown [0], (size_t) (text + len - q));
            if (!q || q + p->shown_len > text + len)
                break;
            if (memcmp (q, p->shown, p->shown_len) == 0)
                at = q;
        }
        if (at)
            from = at + p->shown_len;
        else {
            //  Rewritten: say so, then show it again
            fputs (p->at_line_start ? "[…]\n" : "\n[…]\n", stderr);
            p->at_line_start = true;
        }
    }
    s_progress_put (p, from, (size_t) (text + len - from));
    //  Keep the printed tail, starting on a character
    size_t keep = len - aip_utf8_tail (text, len, SHOWN_TAIL);
    free (p->shown);
    p->shown = (char *) malloc (keep + 1);
    memcpy (p->shown, text + len - keep, keep);
    p->shown_len = keep;
}

//  Several invites: one line, a field per tool, cut to the terminal's width
static void
s_progress_status (s_progress_t *p, const s_invite_t *invs, size_t count, int64_t elapsed_ms)
{
    char line [1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < count && used + 1 < sizeof line; i++) {
        const s_invite_t *inv = &invs [i];
        int n;
        if (inv->done)
            n = snprintf (line + used, sizeof line - used, "%s%s: %s", i ? " · " : "",
                          inv->tool, inv->data ? "done" : "failed");
        else
        if (p->writing [i])
            n = snprintf (line + used, sizeof line - used, "%s%s: writing, %lld bytes",
                          i ? " · " : "", inv->tool, (long long) inv->streamed);
        else
            n = snprintf (line + used, sizeof line - used, "%s%s: thinking",
                          i ? " · " : "", inv->tool);
        if (n < 0)
            break;
        used += (size_t) n;
    }
    char head [64];
    snprintf (head, sizeof head, "  ⏳ %lld s · ", (long long) (elapsed_ms / 1000));
    //  Tool names are ids (ASCII): bytes are columns; the "⏳" takes two
    size_t width = s_columns () - 1, room = width > strlen (head) ? width - strlen (head) : 0;
    fprintf (stderr, "\r\033[K%s%.*s", head, (int) (used < room ? used : room), line);
    p->status_line = true;
}

//  The answer as posted: what the last event did not show yet. It may end
//  without the whitespace that was shown, or be told differently (then the
//  JSON has it): only text past the printed tail is printed
static void
s_progress_finish (s_progress_t *p, const char *response)
{
    size_t shown = p->shown_len;
    while (shown > 0 && strchr (" \t\r\n", p->shown [shown - 1]))
        shown--;
    if (!response || shown == 0)
        return;
    const char *at = NULL, *end = response + strlen (response);
    for (const char *q = response; (q = memchr (q, p->shown [0], (size_t) (end - q))); q++) {
        if ((size_t) (end - q) < shown)
            break;
        if (memcmp (q, p->shown, shown) == 0)
            at = q;
    }
    if (!at)
        return;
    const char *rest = at + shown;
    //  The whitespace that was printed after the tail
    for (size_t k = shown; k < p->shown_len && *rest == p->shown [k]; k++)
        rest++;
    if (*rest)
        s_progress_put (p, rest, (size_t) (end - rest));
}

static void
s_progress_show (s_progress_t *p, const s_invite_t *invs, size_t count, int64_t elapsed_ms)
{
    if (count == 1)
        s_progress_stream (p, invs, elapsed_ms);
    else
        s_progress_status (p, invs, count, elapsed_ms);
    fflush (stderr);
}

//  Leave the terminal tidy: the status line gone, a streamed answer ended
//  by a newline
static void
s_progress_close (s_progress_t *p)
{
    s_progress_unstatus (p);
    if (!p->at_line_start)
        fputc ('\n', stderr);
    fflush (stderr);
    if (p->sub)
        zmq_close (p->sub);
    if (p->ctx)
        zmq_ctx_term (p->ctx);
    for (size_t i = 0; i < p->count; i++)
        free (p->text [i]);
    free (p->text);
    free (p->text_len);
    free (p->writing);
    free (p->shown);
    memset (p, 0, sizeof *p);
}

//  Wait for the replies of count invites (sent); each ends done with data
//  or an error. -1 only when the daemons died or nothing came in time.
static int
s_invites_wait (cli_t *cli, s_invite_t *invs, size_t count)
{
    long longest = 0;
    for (size_t i = 0; i < count; i++)
        if (invs [i].timeout_s > longest)
            longest = invs [i].timeout_s;
    int64_t start = aip_clock_ms ();
    //  Invites beyond the worker count queue: allow for them in turn
    int64_t deadline = start + (int64_t) count * (longest * 1000 + AIP_SPAWN_REPLY_MARGIN_MS);
    bool tty = isatty (2) && !cli->hooks;
    s_progress_t progress;
    memset (&progress, 0, sizeof progress);
    if (tty)
        s_progress_open (cli, &progress, invs [0].room_id, count);
    int64_t shown_at = 0;
    size_t left = count;
    int arrived = 0;
    while (left > 0) {
        int64_t now = aip_clock_ms ();
        if (now >= deadline) {
            s_progress_close (&progress);
            return cli_fail (cli, "no answer from spawnd within %ld s: see %s/daemon.log",
                             (long) ((deadline - start) / 1000), cli->home);
        }
        if (tty) {
            //  The first line after a moment (a quick answer shows none),
            //  then as often as text comes, and the clock every second
            s_progress_read (&progress, invs, count);
            bool fresh = count == 1 && progress.text [0] && progress.writing [0];
            if (now - start >= PROGRESS_FIRST_MS && (fresh || now - shown_at >= PROGRESS_MS)) {
                s_progress_show (&progress, invs, count, now - start);
                shown_at = now;
                if (count == 1)
                    progress.writing [0] = false;
            }
        }
        aip_reply_t rep;
        bool died = false;
        char err [1024];
        int step = tty ? PROGRESS_POLL_MS : PROGRESS_MS;
        int wait = (int) (deadline - now < step ? deadline - now : step);
        if (cli_cancelled (cli)) {
            s_progress_close (&progress);
            return cli_fail (cli, "cancelled");
        }
        if (aip_client_recv (cli->client, 0, wait, &rep, &died, err, sizeof err)) {
            if (cli->hooks && cli->hooks->tick)
                cli->hooks->tick (cli->hooks->arg);
            if (died) {
                s_progress_close (&progress);
                return cli_fail (cli, "%s", err);
            }
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            s_invite_t *inv = &invs [i];
            if (inv->done || inv->request_id != rep.id)
                continue;
            inv->done = true;
            inv->arrival = ++arrived;
            left--;
            if (rep.ok)
                inv->data = aip_json_from_obj (rep.data);
            else
                snprintf (inv->error, sizeof inv->error, "%s", rep.message);
        }
        aip_reply_free (&rep);
    }
    if (tty && count == 1 && progress.streaming)
        s_progress_finish (&progress, json_string_value (json_object_get (invs [0].data,
                                                                          "response")));
    s_progress_close (&progress);
    return 0;
}

//  --cwd, or the directory the command runs in
static int
s_cwd (cli_t *cli, const cli_opt_t *opt, char *buf, size_t size)
{
    if (opt->present) {
        char resolved [PATH_MAX];
        if (!realpath (opt->value, resolved))
            return cli_fail (cli, "--cwd %s: %s", opt->value, strerror (errno));
        snprintf (buf, size, "%s", resolved);
        return 0;
    }
    if (!getcwd (buf, size))
        return cli_fail (cli, "cannot read the current directory: %s", strerror (errno));
    return 0;
}

//  Every message of the room, oldest first, as JSON
static int
s_check_tool (cli_t *cli, const char *tool)
{
    size_t len = strlen (tool);
    if (len == 0 || len > AIP_MAX_ID || !aip_id_valid (tool, len))
        return cli_fail (cli, "invalid tool name '%.64s': use letters, digits, '_' or '-' "
                         "(claude, codex, opencode, gemini, or one from tools.json)", tool);
    return 0;
}

static int
s_check_text (cli_t *cli, const char *what, const char *text)
{
    size_t len = strlen (text);
    if (len > AIP_MAX_CONTENT)
        return cli_fail (cli, "%s is %zu bytes; the limit is %d bytes", what, len, AIP_MAX_CONTENT);
    if (!aip_utf8_valid (text, len))
        return cli_fail (cli, "%s is not valid UTF-8", what);
    return 0;
}

//  ---------------------------------------------------------------------
//  invite

int
cmd_invite (cli_t *cli, int argc, char **argv)
{
    enum { OPT_TOOL, OPT_ROOM, OPT_CONTEXT, OPT_TIMEOUT, OPT_CWD, OPT_MODEL, OPT_ASYNC, OPT_HISTORY,
           OPT_FRESH, OPT_SESSIONS, OPT_MAX_COST, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_TOOL] = CLI_OPT_VALUE ("--tool"),
        [OPT_ROOM] = CLI_OPT_VALUE ("--room"),
        [OPT_CONTEXT] = CLI_OPT_VALUE ("--context"),
        [OPT_TIMEOUT] = CLI_OPT_VALUE ("--timeout"),
        [OPT_CWD] = CLI_OPT_VALUE ("--cwd"),
        [OPT_MODEL] = CLI_OPT_VALUE ("--model"),
        [OPT_ASYNC] = CLI_OPT_FLAG ("--async"),
        [OPT_HISTORY] = CLI_OPT_VALUE ("--history"),
        [OPT_FRESH] = CLI_OPT_FLAG ("--fresh"),
        [OPT_SESSIONS] = CLI_OPT_FLAG ("--sessions"),
        [OPT_MAX_COST] = CLI_OPT_VALUE ("--max-cost"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "invite", argc, argv, opts, pos, 0, &npos))
        return -1;
    if (!opts [OPT_TOOL].present || !opts [OPT_ROOM].present)
        return cli_fail (cli, "Usage: ai-peer invite --tool TOOL --room ROOM [--context TEXT] "
                         "[--timeout S] [--cwd DIR] [--model M] [--fresh] [--sessions] "
                         "[--max-cost USD] [--history N] [--async] (see 'ai-peer invite --help')");
    s_invite_t inv;
    memset (&inv, 0, sizeof inv);
    inv.tool = opts [OPT_TOOL].value;
    inv.room_id = opts [OPT_ROOM].value;
    inv.context = opts [OPT_CONTEXT].present ? opts [OPT_CONTEXT].value : NULL;
    inv.model = opts [OPT_MODEL].present ? opts [OPT_MODEL].value : NULL;
    inv.timeout_s = AIP_TOOL_TIMEOUT_S;
    inv.async = opts [OPT_ASYNC].present;
    if (cli_opt_int (cli, &opts [OPT_HISTORY], 1, AIP_MAX_PROMPT_HISTORY, &inv.history))
        return -1;
    inv.fresh = opts [OPT_FRESH].present;
    inv.sessions = opts [OPT_SESSIONS].present;
    if (opts [OPT_MAX_COST].present) {
        //  A plain decimal amount: it becomes a command-line value
        const char *v = opts [OPT_MAX_COST].value;
        char *end = NULL;
        double usd = strtod (v, &end);
        bool plain = *v && strlen (v) <= 16 && strspn (v, "0123456789.") == strlen (v);
        if (!plain || !end || *end || !(usd > 0) || usd > 10000)
            return cli_fail (cli, "--max-cost takes an amount in USD, e.g. 0.50 (more than 0, "
                             "at most 10000)");
        inv.max_cost = v;
    }
    char cwd [PATH_MAX];
    if (s_check_tool (cli, inv.tool) || cli_check_room_id (cli, inv.room_id)
    ||  (inv.context && s_check_text (cli, "--context", inv.context))
    ||  cli_opt_int (cli, &opts [OPT_TIMEOUT], 1, AIP_MAX_TOOL_TIMEOUT_S, &inv.timeout_s)
    ||  (inv.model && (strlen (inv.model) > AIP_MAX_NAME
                       || s_check_text (cli, "--model", inv.model)))
    ||  s_cwd (cli, &opts [OPT_CWD], cwd, sizeof cwd))
        return *cli->err ? -1 : cli_fail (cli, "--model is longer than %d bytes", AIP_MAX_NAME);
    if (cli_check_tools (cli, &inv.tool, 1))
        return -1;
    inv.cwd = cwd;
    if (inv.async) {
        //  The broker answers at once with the job id
        if (s_invite_send (cli, &inv))
            return -1;
        aip_reply_t rep;
        bool died = false;
        char err [1024];
        if (aip_client_recv (cli->client, inv.request_id, AIP_CLIENT_TIMEOUT_MS, &rep, &died,
                             err, sizeof err))
            return cli_fail (cli, "%s", err);
        return cli_reply_result (cli, &rep);
    }
    if (s_invite_send (cli, &inv) || s_invites_wait (cli, &inv, 1))
        return -1;
    if (!inv.data)
        return cli_fail (cli, "%s", inv.error);
    cli->data = inv.data;
    return 0;
}

//  ---------------------------------------------------------------------
//  quick

//  Split "a,b,c" into names (pointers into the copy, which the caller frees)
static int
s_split_tools (cli_t *cli, const char *list, char **copy, const char **names, size_t max,
               size_t *count)
{
    *copy = strdup (list);
    *count = 0;
    char *save = NULL;
    for (char *t = strtok_r (*copy, ",", &save); t; t = strtok_r (NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t len = strlen (t);
        while (len && t [len - 1] == ' ')
            t [--len] = 0;
        if (!len)
            continue;
        if (s_check_tool (cli, t))
            return -1;
        for (size_t i = 0; i < *count; i++)
            if (strcmp (names [i], t) == 0)
                return cli_fail (cli, "--tools names %s twice", t);
        if (*count >= max)
            return cli_fail (cli, "--tools names more than %zu tools", max);
        names [(*count)++] = t;
    }
    if (*count == 0)
        return cli_fail (cli, "--tools needs at least one tool, e.g. --tools claude,codex");
    return 0;
}

//  --max-tokens N: input + output tokens of all the tools together
static int
s_max_tokens (cli_t *cli, const cli_opt_t *opt, long *max_tokens)
{
    return cli_opt_int (cli, opt, 1, AIP_MAX_TOKEN_BUDGET, max_tokens);
}

//  data.usage: the totals of the answers and by_tool; with a budget,
//  data.max_tokens and data.over_budget: the tools, in the order their
//  answers arrived, whose answer took the total past the budget or came
//  after it was passed (all ran at once: quick cannot stop one early)
static void
s_quick_usage (json_t *data, const s_invite_t *invs, size_t count, long max_tokens)
{
    json_t *usage = cli_usage_new ();
    json_t *over = json_array ();
    long long total = 0;
    for (int arrival = 1; arrival <= (int) count; arrival++)
        for (size_t i = 0; i < count; i++) {
            if (invs [i].arrival != arrival || !invs [i].data)
                continue;
            json_t *one = json_object_get (invs [i].data, "usage");
            cli_usage_add_tool (usage, invs [i].tool, one);
            total += cli_usage_tokens (one);
            if (max_tokens && total > max_tokens)
                json_array_append_new (over, json_string (invs [i].tool));
        }
    if (!json_object_get (usage, "by_tool"))
        json_object_set_new (usage, "by_tool", json_object ());
    json_object_set_new (data, "usage", usage);
    if (max_tokens) {
        json_object_set_new (data, "max_tokens", json_integer (max_tokens));
        json_object_set_new (data, "over_budget", over);
    }
    else
        json_decref (over);
}

int
cmd_quick (cli_t *cli, int argc, char **argv)
{
    enum { OPT_TOOLS, OPT_NAME, OPT_TIMEOUT, OPT_RELAY, OPT_PASSWORD, OPT_CWD, OPT_PASSWORD_FILE,
           OPT_CIPHER, OPT_MAX_TOKENS, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_TOOLS] = CLI_OPT_VALUE ("--tools"),
        [OPT_NAME] = CLI_OPT_VALUE ("--name"),
        [OPT_TIMEOUT] = CLI_OPT_VALUE ("--timeout"),
        [OPT_RELAY] = CLI_OPT_VALUE ("--relay"),
        [OPT_PASSWORD] = CLI_OPT_VALUE ("--password"),
        [OPT_CWD] = CLI_OPT_VALUE ("--cwd"),
        [OPT_PASSWORD_FILE] = CLI_OPT_VALUE ("--password-file"),
        [OPT_CIPHER] = CLI_OPT_VALUE ("--cipher"),
        [OPT_MAX_TOKENS] = CLI_OPT_VALUE ("--max-tokens"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "quick", argc, argv, opts, pos, 1, &npos))
        return -1;
    long max_tokens = 0;
    if (s_max_tokens (cli, &opts [OPT_MAX_TOKENS], &max_tokens))
        return -1;
    if (npos < 1 || !opts [OPT_TOOLS].present)
        return cli_fail (cli, "Usage: ai-peer quick \"<question>\" --tools a,b [--name N] "
                         "[--timeout S] [--max-tokens N] (see 'ai-peer quick --help')");
    if (opts [OPT_RELAY].present)
        return cli_fail (cli, "quick in a public room (--relay) is not available in this build "
                         "of ai-peer yet");
    const char *question = pos [0];
    if (aip_blank (question, strlen (question)))
        return cli_fail (cli, "the question is empty");
    if (s_check_text (cli, "the question", question))
        return -1;
    long timeout_s = AIP_TOOL_TIMEOUT_S;
    if (cli_opt_int (cli, &opts [OPT_TIMEOUT], 1, AIP_MAX_TOOL_TIMEOUT_S, &timeout_s))
        return -1;
    char cwd [PATH_MAX];
    if (s_cwd (cli, &opts [OPT_CWD], cwd, sizeof cwd))
        return -1;
    const char *names [AIP_MAX_QUICK_TOOLS];
    size_t count;
    char *copy = NULL;
    s_invite_t *invs = NULL;
    char *password = NULL;
    int rc = -1;
    if (s_split_tools (cli, opts [OPT_TOOLS].value, &copy, names, AIP_MAX_QUICK_TOOLS, &count))
        goto cleanup;
    const char *room_name = opts [OPT_NAME].present ? opts [OPT_NAME].value : "quick";
    if (opts [OPT_NAME].present && (strlen (room_name) > AIP_MAX_NAME
                             || s_check_text (cli, "--name", room_name))) {
        cli_fail (cli, "--name must be 1 to %d bytes of UTF-8", AIP_MAX_NAME);
        goto cleanup;
    }
    if (cli_check_tools (cli, names, count))
        goto cleanup;
    cli_peer_t me;
    char room_id [AIP_ROOM_ID_LEN + 1];
    cli_room_t room;
    memset (&room, 0, sizeof room);
    if (cli_password (cli, &opts [OPT_PASSWORD], &opts [OPT_PASSWORD_FILE], &password)
    ||  cli_resolve_peer (cli, NULL, NULL, NULL, &me)
    ||  cli_room_create (cli, room_name, password, opts [OPT_CIPHER].value, &me, room_id, NULL)
    ||  cli_room_open (cli, room_id, &room)
    ||  cli_send (cli, room_id, &room, &me, question, strlen (question), NULL))
        goto cleanup;
    //  All at once: each goes to its own spawnd
    invs = (s_invite_t *) calloc (count, sizeof (s_invite_t));
    for (size_t i = 0; i < count; i++) {
        invs [i].tool = names [i];
        invs [i].room_id = room_id;
        invs [i].cwd = cwd;
        invs [i].timeout_s = timeout_s;
        if (s_invite_send (cli, &invs [i]))
            goto cleanup;
    }
    if (s_invites_wait (cli, invs, count))
        goto cleanup;
    json_t *responses = json_object ();
    json_t *tools = json_array ();
    for (size_t i = 0; i < count; i++) {
        json_array_append_new (tools, json_string (names [i]));
        if (invs [i].data)
            json_object_set (responses, names [i], json_object_get (invs [i].data, "response"));
        else {
            char *text = s_sprintf ("[error] %s", invs [i].error);
            json_object_set_new (responses, names [i], json_string (text));
            free (text);
        }
    }
    json_t *conversation;
    if (cli_conversation (cli, room_id, &conversation)) {
        json_decref (responses);
        json_decref (tools);
        goto cleanup;
    }
    cli->data = json_pack ("{s:s, s:s, s:o, s:o, s:o}", "room", room_id, "question", question,
                           "tools", tools, "responses", responses, "conversation", conversation);
    s_quick_usage (cli->data, invs, count, max_tokens);
    rc = 0;
cleanup:
    for (size_t i = 0; invs && i < count; i++)
        json_decref (invs [i].data);
    free (invs);
    free (copy);
    if (password) {
        sodium_memzero (password, strlen (password));
        free (password);
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  discuss

//  One invite of a discussion, logged; *mentions (caller frees) are the
//  tools its answer @mentions. -1 only when the daemons failed.
static int
s_discuss_turn (cli_t *cli, const char *room_id, const char *tool, const char *mentioned_by,
                const char *context, const char *cwd, long timeout_s, long round, json_t *log,
                json_t *usage, json_t **mentions)
{
    s_invite_t inv;
    memset (&inv, 0, sizeof inv);
    inv.tool = tool;
    inv.room_id = room_id;
    inv.context = strlen (context) <= AIP_MAX_CONTENT ? context : NULL;
    inv.cwd = cwd;
    inv.timeout_s = timeout_s;
    *mentions = json_array ();
    if (s_invite_send (cli, &inv) || s_invites_wait (cli, &inv, 1))
        return -1;
    json_t *entry = json_pack ("{s:i, s:s}", "round", (int) round, "tool", tool);
    if (mentioned_by)
        json_object_set_new (entry, "mentioned_by", json_string (mentioned_by));
    if (inv.data) {
        const char *response = json_string_value (json_object_get (inv.data, "response"));
        size_t cut = response ? aip_utf8_cut (response, strlen (response), SNIPPET_CHARS) : 0;
        json_object_set_new (entry, "snippet", json_stringn (response ? response : "", cut));
        json_t *m = json_object_get (inv.data, "mentions");
        if (json_is_array (m))
            json_array_extend (*mentions, m);
        json_t *used = json_object_get (inv.data, "usage");
        if (json_is_object (used)) {
            json_object_set (entry, "usage", used);
            cli_usage_add_tool (usage, tool, used);
        }
        json_decref (inv.data);
    }
    else
        json_object_set_new (entry, "error", json_string (inv.error));
    json_array_append_new (log, entry);
    return 0;
}

int
cmd_discuss (cli_t *cli, int argc, char **argv)
{
    enum { OPT_TOOLS, OPT_ROUNDS, OPT_ROOM, OPT_CONTEXT, OPT_TIMEOUT, OPT_CWD, OPT_FOLLOW_MENTIONS,
           OPT_MAX_TOKENS, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_TOOLS] = CLI_OPT_VALUE ("--tools"),
        [OPT_ROUNDS] = CLI_OPT_VALUE ("--rounds"),
        [OPT_ROOM] = CLI_OPT_VALUE ("--room"),
        [OPT_CONTEXT] = CLI_OPT_VALUE ("--context"),
        [OPT_TIMEOUT] = CLI_OPT_VALUE ("--timeout"),
        [OPT_CWD] = CLI_OPT_VALUE ("--cwd"),
        [OPT_FOLLOW_MENTIONS] = CLI_OPT_VALUE ("--follow-mentions"),
        [OPT_MAX_TOKENS] = CLI_OPT_VALUE ("--max-tokens"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "discuss", argc, argv, opts, pos, 0, &npos))
        return -1;
    long max_tokens = 0;
    if (s_max_tokens (cli, &opts [OPT_MAX_TOKENS], &max_tokens))
        return -1;
    long follow = 0;
    if (cli_opt_int (cli, &opts [OPT_FOLLOW_MENTIONS], 0, AIP_MAX_FOLLOW_MENTIONS, &follow))
        return -1;
    if (!opts [OPT_TOOLS].present)
        return cli_fail (cli, "Usage: ai-peer discuss --tools a,b [--rounds N] [--room ROOM] "
                         "[--context TEXT] [--timeout S] [--max-tokens N] "
                         "(see 'ai-peer discuss --help')");
    long rounds = 2, timeout_s = AIP_TOOL_TIMEOUT_S;
    if (cli_opt_int (cli, &opts [OPT_ROUNDS], 1, AIP_MAX_DISCUSS_ROUNDS, &rounds)
    ||  cli_opt_int (cli, &opts [OPT_TIMEOUT], 1, AIP_MAX_TOOL_TIMEOUT_S, &timeout_s))
        return -1;
    const char *topic = opts [OPT_CONTEXT].present ? opts [OPT_CONTEXT].value : NULL;
    if (topic && s_check_text (cli, "--context", topic))
        return -1;
    if (!opts [OPT_ROOM].present && !topic)
        return cli_fail (cli, "discuss needs a topic (--context TEXT) or a room to continue "
                         "(--room ROOM)");
    char cwd [PATH_MAX];
    if (s_cwd (cli, &opts [OPT_CWD], cwd, sizeof cwd))
        return -1;
    const char *names [AIP_MAX_QUICK_TOOLS];
    size_t count;
    char *copy = NULL;
    int rc = -1;
    json_t *log = json_array ();
    json_t *usage = cli_usage_new ();
    char *stopped = NULL;
    if (s_split_tools (cli, opts [OPT_TOOLS].value, &copy, names, AIP_MAX_QUICK_TOOLS, &count))
        goto cleanup;
    if (count < 2) {
        cli_fail (cli, "discuss needs at least two tools (--tools a,b)");
        goto cleanup;
    }
    if (cli_check_tools (cli, names, count))
        goto cleanup;
    cli_peer_t me;
    char room_id [AIP_MAX_ID + 1];
    cli_room_t room;
    memset (&room, 0, sizeof room);
    if (cli_resolve_peer (cli, NULL, NULL, NULL, &me))
        goto cleanup;
    if (opts [OPT_ROOM].present) {
        if (cli_check_room_id (cli, opts [OPT_ROOM].value))
            goto cleanup;
        snprintf (room_id, sizeof room_id, "%s", opts [OPT_ROOM].value);
    }
    else
    if (cli_room_create (cli, "discussion", NULL, NULL, &me, room_id, NULL))
        goto cleanup;
    //  Also checks that a given room exists; encrypted rooms work as any
    if (cli_room_open (cli, room_id, &room))
        goto cleanup;
    bool posted = !topic || cli_send (cli, room_id, &room, &me, topic, strlen (topic), NULL) == 0;
    sodium_memzero (&room, sizeof room);
    if (!posted)
        goto cleanup;
    char tool_list [AIP_MAX_QUICK_TOOLS * (AIP_MAX_ID + 2)] = "";
    for (size_t i = 0; i < count; i++)
        snprintf (tool_list + strlen (tool_list), sizeof tool_list - strlen (tool_list), "%s%s",
                  i ? ", " : "", names [i]);
    long total = 0;
    //  Sequential: each AI sees everything said before it
    for (long r = 1; r <= rounds && !stopped; r++) {
        for (size_t i = 0; i < count && !stopped; i++) {
            char *context = s_sprintf ("Round %ld of %ld of a discussion between %s%s%s. "
                                       "Respond to what the others said: agree, disagree, "
                                       "add what is missing. Be concise.", r, rounds,
                                       tool_list, topic ? ". Topic: " : "", topic ? topic : "");
            char speaker [AIP_MAX_ID + 1], by [AIP_MAX_ID + 1] = "";
            snprintf (speaker, sizeof speaker, "%s", names [i]);
            //  The turn, then up to --follow-mentions hops to a tool it @mentions
            for (long hop = 0; hop <= follow; hop++) {
                //  No turn starts once the budget is spent
                if (max_tokens && cli_usage_tokens (usage) >= max_tokens) {
                    stopped = s_sprintf ("token budget of %ld reached after %ld invites",
                                         max_tokens, total);
                    break;
                }
                json_t *mentions = NULL;
                if (s_discuss_turn (cli, room_id, speaker, *by ? by : NULL, context, cwd,
                                    timeout_s, r, log, usage, &mentions)) {
                    json_decref (mentions);
                    free (context);
                    goto cleanup;
                }
                total++;
                const char *target = NULL;
                size_t k;
                json_t *m;
                json_array_foreach (mentions, k, m)
                    if (!target && strcmp (json_string_value (m), speaker) != 0)
                        target = json_string_value (m);
                if (target) {
                    snprintf (by, sizeof by, "%s", speaker);
                    snprintf (speaker, sizeof speaker, "%s", target);
                }
                json_decref (mentions);
                if (!target)
                    break;
            }
            free (context);
        }
    }
    json_t *conversation;
    if (cli_conversation (cli, room_id, &conversation))
        goto cleanup;
    json_t *tools = json_array ();
    for (size_t i = 0; i < count; i++)
        json_array_append_new (tools, json_string (names [i]));
    cli->data = json_pack ("{s:s, s:o, s:i, s:i, s:O, s:o}", "room", room_id, "tools", tools,
                           "rounds", (int) rounds, "total_invites", (int) total, "log", log,
                           "conversation", conversation);
    if (!json_object_get (usage, "by_tool"))
        json_object_set_new (usage, "by_tool", json_object ());
    json_object_set (cli->data, "usage", usage);
    if (max_tokens)
        json_object_set_new (cli->data, "max_tokens", json_integer (max_tokens));
    if (stopped)
        json_object_set_new (cli->data, "stopped", json_string (stopped));
    rc = 0;
cleanup:
    json_decref (log);
    json_decref (usage);
    free (stopped);
    free (copy);
    return rc;
}
