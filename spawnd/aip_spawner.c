/*  aip_spawner.c — the spawner actor (see aip_spawner.h). */
#include "aip_spawner.h"
#include "aip_roomkey.h"

#include <sodium.h>
#include "aip_adapter.h"
#include "aip_answer.h"
#include "aip_client.h"
#include "aip_event.h"
#include "aip_home.h"
#include "aip_json.h"
#include "aip_limits.h"
#include "aip_proc.h"
#include "aip_prompt.h"
#include "aip_proto.h"
#include "aip_stream.h"
#include "aip_util.h"
#include "aip_worker.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

//  A store request (history, posting) gets this long
#define SPAWN_STORE_TIMEOUT_MS 10000

typedef struct {
    zsock_t *pipe;                  //  actor pipe
    aip_spawner_args_t args;        //  configuration (strings borrowed)
    aip_worker_t *worker;           //  our side of the spawn service
    aip_client_t *store;            //  client of the broker's client socket (or the hub's)
    aip_pack_t *pk;                 //  scratch packer
    char host [AIP_MAX_NAME + 1];   //  this machine, for the AI peer
    char host_id [AIP_MAX_NAME + 1];    //  the same, as an id
    bool terminated;                //  $TERM received
    bool busy;                      //  a job runs
    uint64_t current_tag;           //  the broker's tag of that job
    bool cancelled;                 //  the broker asked to cancel it
    const char *progress_room;      //  progress events of the running tool go here
    const char *progress_tool;      //  ... about this tool
    const char *progress_msg_id;    //  ... and the answer's message id ("" if none)
    aip_stream_t *stream;           //  the running tool's structured output, or NULL
    bool encrypted;                 //  the job's room is end-to-end encrypted
    aip_roomkey_t room_key;         //  ... with this key (only during the job)
} s_spawner_t;

//  A reply to one request: either data (packed) or an error
typedef struct {
    aip_pack_t *data;               //  success: the reply's data, one msgpack value
    char code [32];                 //  error code
    char message [2048];            //  error message
} s_result_t;

//  ---------------------------------------------------------------------
//  Worker traffic while busy: heartbeats keep flowing, a request that
//  arrives anyway (it should not: one slot) is refused

static void
s_reply (s_spawner_t *self, uint64_t tag, uint64_t request_id, s_result_t *result)
{
    aip_pack_reset (self->pk);
    if (result->data) {
        aip_reply_ok_begin (self->pk, request_id);
        size_t size;
        const void *data = aip_pack_data (result->data, &size);
        aip_pack_raw (self->pk, data, size);
    }
    else
        aip_reply_error (self->pk, request_id, result->code, result->message);
    size_t size;
    const void *data = aip_pack_data (self->pk, &size);
    aip_worker_reply (self->worker, tag, data, size);
}

static void s_handle_request (s_spawner_t *self, uint64_t tag, zframe_t *body);

//  Read everything the worker socket holds
static void
s_worker_input (s_spawner_t *self)
{
    uint64_t tag;
    zframe_t *body;
    int rc;
    while ((rc = aip_worker_recv (self->worker, &tag, &body)) >= 0) {
        if (rc == 1) {
            s_handle_request (self, tag, body);
            zframe_destroy (&body);
        }
    }
}

static void
s_pipe_input (s_spawner_t *self)
{
    char *command = zstr_recv_nowait (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    free (command);
}

//  One poll over the pipe, the worker and extra items; services the
//  first two. Returns the number of extra items ready.
static int
s_poll (s_spawner_t *self, zmq_pollitem_t *extra, int nextra, int timeout_ms)
{
    zmq_pollitem_t items [8];
    assert (nextra <= 6);
    items [0] = (zmq_pollitem_t) { zsock_resolve (self->pipe), 0, ZMQ_POLLIN, 0 };
    items [1] = (zmq_pollitem_t) { zsock_resolve (aip_worker_sock (self->worker)), 0, ZMQ_POLLIN, 0 };
    for (int i = 0; i < nextra; i++)
        items [2 + i] = extra [i];
    int wait = aip_worker_timeout (self->worker);
    if (timeout_ms >= 0 && timeout_ms < wait)
        wait = timeout_ms;
    int rc = zmq_poll (items, 2 + nextra, wait);
    if (rc < 0) {
        if (zmq_errno () != EINTR || zsys_interrupted)
            self->terminated = true;
        return 0;
    }
    if (items [0].revents & ZMQ_POLLIN)
        s_pipe_input (self);
    if (items [1].revents & ZMQ_POLLIN)
        s_worker_input (self);
    aip_worker_tick (self->worker);
    int ready = 0;
    for (int i = 0; i < nextra; i++) {
        extra [i].revents = items [2 + i].revents;
        if (extra [i].revents)
            ready++;
    }
    return ready;
}

//  ---------------------------------------------------------------------
//  Store requests through the broker

//  Send self->pk (a request with id) and wait for its reply; heartbeats go
//  on meanwhile. 0 with *rep (ok; the caller frees it), or -1 with result
//  filled.
static int
s_store_call (s_spawner_t *self, uint64_t id, aip_reply_t *rep, s_result_t *result)
{
    char err [256];
    if (aip_client_begin (self->store, self->pk, id, SPAWN_STORE_TIMEOUT_MS, err, sizeof err)) {
        snprintf (result->code, sizeof result->code, "%s", AIP_ERR_UNAVAILABLE);
        snprintf (result->message, sizeof result->message, "spawnd cannot reach the broker");
        return -1;
    }
    int64_t deadline = aip_clock_ms () + SPAWN_STORE_TIMEOUT_MS;
    int rc;
    while ((rc = aip_client_take (self->store, id, rep, err, sizeof err)) == 0
       &&  !self->terminated) {
        zmq_pollitem_t item = { aip_client_socket (self->store), 0, ZMQ_POLLIN, 0 };
        s_poll (self, &item, 1, (int) (deadline - aip_clock_ms ()));
    }
    if (rc == 1 && rep->ok)
        return 0;
    if (rc == 1) {
        snprintf (result->code, sizeof result->code, "%s", rep->code);
        snprintf (result->message, sizeof result->message, "%s", rep->message);
        aip_reply_free (rep);
        return -1;
    }
    aip_client_forget (self->store, id);
    snprintf (result->code, sizeof result->code, "%s", AIP_ERR_UNAVAILABLE);
    snprintf (result->message, sizeof result->message, "%s",
              self->terminated ? "spawnd is stopping"
                               : "the store did not answer spawnd in time");
    return -1;
}

static uint64_t
s_store_begin (s_spawner_t *self, aip_op_t op, size_t nargs)
{
    uint64_t id = aip_client_next_id (self->store);
    aip_pack_reset (self->pk);
    //  A LAN hub serves a remote worker's store requests only with its token
    aip_request_begin_auth (self->pk, id, op, nargs, self->args.token);
    return id;
}

//  The message an answer was posted as
typedef struct {
    char id [AIP_MAX_ID + 1];       //  its id, or ""
    char peer_id [AIP_MAX_ID * 2 + 2];  //  who posted it, or ""
} s_sent_t;

//  Post content in the room as the AI peer of tool
static int
s_post (s_spawner_t *self, const char *room_id, const char *msg_id, const char *tool,
        const char *content, size_t len, const char *metadata, s_sent_t *sent,
        s_result_t *result)
{
    char peer_id [AIP_MAX_NAME * 2 + 2];
    snprintf (peer_id, sizeof peer_id, "%s-%s", self->host_id, tool);
    if (!aip_id_valid (peer_id, strlen (peer_id))) {
        snprintf (result->code, sizeof result->code, "%s", AIP_ERR_INVALID);
        snprintf (result->message, sizeof result->message, "the peer id '%s' is not valid",
                  peer_id);
        return -1;
    }
    //  In an encrypted room the answer is encrypted here, bound to its id
    //  and sender, before it goes anywhere
    char new_id [AIP_MSG_ID_LEN + 1];
    char *cipher = NULL;
    if (self->encrypted) {
        if (!msg_id) {
            aip_msg_id_new (new_id);
            msg_id = new_id;
        }
        if (aip_roomkey_encrypt (&self->room_key, room_id, msg_id, peer_id, content, len,
                                 &cipher)) {
            snprintf (result->code, sizeof result->code, "%s", AIP_ERR_INTERNAL);
            snprintf (result->message, sizeof result->message, "cannot encrypt the answer");
            return -1;
        }
        content = cipher;
        len = strlen (cipher);
    }
    uint64_t id = s_store_begin (self, AIP_OP_MSG_SEND, msg_id ? 6 : 5);
    aip_pack_kstr (self->pk, "room_id", room_id);
    if (msg_id)
        aip_pack_kstr (self->pk, "id", msg_id);
    aip_pack_kstrn (self->pk, "content", content, len);
    free (cipher);
    aip_pack_kstr (self->pk, "type", "message");
    aip_pack_kstr (self->pk, "metadata", metadata);
    aip_pack_key (self->pk, "peer");
    aip_pack_map (self->pk, 5);
    aip_pack_kstr (self->pk, "id", peer_id);
    aip_pack_kstr (self->pk, "name", tool);
    aip_pack_kstr (self->pk, "type", "ai");
    aip_pack_kstr (self->pk, "tool", tool);
    aip_pack_kstr (self->pk, "machine", self->host);
    aip_reply_t rep;
    if (s_store_call (self, id, &rep, result))
        return -1;
    aip_obj_get_str (rep.data, "id", sent->id, sizeof sent->id, "");
    aip_obj_get_str (rep.data, "peer_id", sent->peer_id, sizeof sent->peer_id, "");
    aip_reply_free (&rep);
    return 0;
}

//  ---------------------------------------------------------------------
//  Running a process while staying responsive

//  The last max bytes of text, starting on a character, repaired
static char *
s_text_tail (const char *text, size_t len, size_t max, size_t *out_len)
{
    size_t start = aip_utf8_tail (text, len, max);
    return aip_utf8_repair (text + start, len - start, out_len);
}

//  Progress of the running tool on topic room.<id> (local only: events
//  never leave the machine, an encrypted room's text never leaves this one):
//  a progress event (aip_event.h) whose text is the answer so far (a text
//  tool's stdout), its last AIP_PROGRESS_TEXT_MAX bytes
static void
s_progress (s_spawner_t *self, aip_proc_t *proc, bool done)
{
    size_t len;
    const char *text = self->stream ? aip_stream_text (self->stream, &len)
                                    : aip_proc_stdout (proc, &len);
    size_t tail_len, text_len;
    char *tail = s_text_tail (text, len, AIP_PROGRESS_TAIL, &tail_len);
    char *latest = s_text_tail (text, len, AIP_PROGRESS_TEXT_MAX, &text_len);
    aip_progress_t progress = {
        .tool = self->progress_tool,
        .msg_id = self->progress_msg_id,
        .bytes = (int64_t) aip_proc_stdout_total (proc),
        .elapsed_ms = aip_proc_elapsed_ms (proc),
        .done = done
    };
    //  Events are never stored nor sent to a relay: locally they are only
    //  seen by this user's processes (the events socket is in the home), so
    //  an encrypted room's text goes out only there, never to a LAN hub's
    //  broker (remote mode)
    if (!(self->encrypted && self->args.hub_key)) {
        progress.partial = tail;
        progress.partial_len = tail_len;
        progress.text = latest;
        progress.text_len = text_len;
    }
    aip_pack_t *pk = aip_pack_new ();
    aip_event_pack_progress (pk, self->progress_room, &progress);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    char topic [AIP_MAX_ID + 8];
    aip_event_topic (AIP_EVENT_PROGRESS, self->progress_room, topic, sizeof topic);
    aip_worker_event (self->worker, topic, data, size);
    aip_pack_destroy (&pk);
    free (tail);
    free (latest);
}

//  The tool printed something: its stream reads it
static void
s_on_stdout (void *arg, const char *data, size_t len)
{
    aip_stream_feed ((aip_stream_t *) arg, data, len);
}

//  Requests the stream has for the tool go to its stdin; once the stream
//  has its final event, a protocol server is let go
static void
s_stream_pump (s_spawner_t *self, aip_proc_t *proc, bool *finishing)
{
    if (!self->stream)
        return;
    size_t len;
    char *out = aip_stream_output (self->stream, &len);
    if (out) {
        aip_proc_write (proc, out, len);
        free (out);
    }
    if (!*finishing && aip_stream_done (self->stream)) {
        *finishing = true;
        aip_proc_finish (proc, AIP_TOOL_FINISH_GRACE_MS);
    }
}

//  Run proc to its end; false if we are terminating (proc is killed)
static bool
s_proc_run (s_spawner_t *self, aip_proc_t *proc)
{
    //  Progress when the text changed, at most every AIP_PROGRESS_TEXT_MS
    int64_t progress_at = aip_clock_ms () + AIP_PROGRESS_TEXT_MS;
    uint64_t progress_seen = 0;
    bool finishing = false;
    s_stream_pump (self, proc, &finishing);
    while (!aip_proc_done (proc)) {
        if (self->progress_room && aip_clock_ms () >= progress_at) {
            progress_at = aip_clock_ms () + AIP_PROGRESS_TEXT_MS;
            uint64_t now_seen = self->stream ? aip_stream_changes (self->stream)
                                             : aip_proc_stdout_total (proc);
            if (now_seen != progress_seen) {
                progress_seen = now_seen;
                s_progress (self, proc, false);
            }
        }
        if (self->terminated) {
            aip_proc_cancel (proc);
            return false;
        }
        if (!self->cancelled && aip_worker_take_cancel (self->worker, self->current_tag)) {
            zsys_info ("spawner: job cancelled: stopping pid %d", aip_proc_pid (proc));
            self->cancelled = true;
            aip_proc_cancel (proc);
        }
        zmq_pollitem_t items [4];
        int count = aip_proc_items (proc, items, 4);
        int timeout = aip_proc_timeout (proc);
        if (self->progress_room && timeout > AIP_PROGRESS_TEXT_MS)
            timeout = AIP_PROGRESS_TEXT_MS;
        if (s_poll (self, items, count, timeout) > 0)
            aip_proc_handle (proc, items, count);
        aip_proc_tick (proc);
        s_stream_pump (self, proc, &finishing);
    }
    if (self->progress_room)
        s_progress (self, proc, true);
    return true;
}

//  ---------------------------------------------------------------------
//  spawn.run

typedef struct {
    char tool [AIP_MAX_NAME + 1];
    char room_id [AIP_MAX_ID + 1];
    char msg_id [AIP_MAX_ID + 1];
    char model [AIP_MAX_NAME + 1];
    char cwd [AIP_PATH_MAX];
    char *context;                  //  or NULL
    int timeout_s;
    int history;
    bool fresh;                     //  start a new tool session
    bool sessions;                  //  a password room's tool may keep its session
    char max_cost [17];             //  USD for the tool's budget flag, or ""
} s_job_t;

//  The prompt of a tool that reads a file ("prompt": "file"): an anonymous
//  memory file (memfd) the tool opens as /proc/<spawnd>/fd/<n>, so the
//  text (a password room's, decrypted) is never on disk and nothing is left
//  behind, not even by a kill -9 of spawnd. Only where the kernel has no
//  memfd: a private temp file in run/, removed after the run.
static int
s_prompt_file (s_spawner_t *self, const char *prompt, size_t len, char *path, size_t size,
               int *fd_out)
{
    *fd_out = -1;
    bool memory = true;
    int fd = memfd_create ("ai-peer-prompt", MFD_CLOEXEC);
    if (fd < 0) {
        memory = false;
        snprintf (path, size, "%s/run/prompt-XXXXXX", self->args.home);
        fd = mkstemp (path);
        if (fd < 0)
            return -1;
    }
    fchmod (fd, 0600);
    size_t done = 0;
    while (done < len) {
        ssize_t n = write (fd, prompt + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t) n;
    }
    if (done != len) {
        int saved = errno;
        close (fd);
        if (!memory)
            unlink (path);
        *path = 0;
        errno = saved;
        return -1;
    }
    if (!memory) {
        close (fd);
        return 0;
    }
    //  The tool does not inherit our descriptors: it opens ours by path
    snprintf (path, size, "/proc/%d/fd/%d", (int) getpid (), fd);
    *fd_out = fd;
    return 0;
}

//  Done with the prompt file: the memfd closed, or the temp file removed
static void
s_prompt_release (char *path, int *fd)
{
    if (*fd >= 0)
        close (*fd);
    else
    if (*path)
        unlink (path);
    *fd = -1;
    *path = 0;
}

//  Prompt files of an older ai-peer, or of a spawnd killed before prompts
//  were memfds, hold plaintext in run/: where this kernel makes memfds,
//  every spawnd here uses them, so any run/prompt-* is such a leftover
static void
s_prompt_leftovers_remove (s_spawner_t *self)
{
    int probe = memfd_create ("ai-peer-probe", MFD_CLOEXEC);
    if (probe < 0)
        return;
    close (probe);
    char run [AIP_PATH_MAX], path [AIP_PATH_MAX];
    aip_home_path (self->args.home, "run", run, sizeof run);
    DIR *dir = opendir (run);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (strncmp (entry->d_name, "prompt-", 7) == 0) {
            snprintf (path, sizeof path, "%s/%s", run, entry->d_name);
            if (unlink (path) == 0)
                zsys_info ("spawner: removed a prompt file left behind: %s", path);
        }
    closedir (dir);
}

//  A tool's session in a room, as the store keeps it
typedef struct {
    char session_id [129];          //  the tool's session id (validated)
    char seen_ts [AIP_MAX_TIME + 1];    //  created_at of the newest message it was sent
    char seen_id [AIP_MAX_ID + 1];  //  ... its id
    char answer_id [AIP_MAX_ID + 1];    //  the session's own last answer
    aip_prompt_seen_t seen;         //  the three above, NULL where the store has none
} s_session_t;

//  The tool's session in this room: false when there is none (or the store
//  cannot say: no resume then)
static bool
s_session_get (s_spawner_t *self, const char *room_id, const char *tool, s_session_t *session)
{
    uint64_t id = s_store_begin (self, AIP_OP_SESSION_GET, 2);
    aip_pack_kstr (self->pk, "room_id", room_id);
    aip_pack_kstr (self->pk, "tool", tool);
    aip_reply_t rep;
    s_result_t ignored;
    memset (&ignored, 0, sizeof ignored);
    if (s_store_call (self, id, &rep, &ignored))
        return false;
    const aip_obj_t *row = aip_obj_at (aip_obj_get (rep.data, "sessions"), 0);
    bool found = aip_obj_get_str (row, "session_id", session->session_id,
                                  sizeof session->session_id, NULL)
              && aip_session_id_valid (session->session_id);
    session->seen.seen_ts = aip_obj_get_str (row, "seen_ts", session->seen_ts,
                                             sizeof session->seen_ts, NULL);
    session->seen.seen_id = aip_obj_get_str (row, "seen_id", session->seen_id,
                                             sizeof session->seen_id, NULL);
    session->seen.answer_id = aip_obj_get_str (row, "answer_id", session->answer_id,
                                               sizeof session->answer_id, NULL);
    aip_reply_free (&rep);
    return found;
}

//  Remember the session: it has seen the newest of messages and answer_id
static void
s_session_put (s_spawner_t *self, const char *room_id, const char *tool, const char *session_id,
               const aip_obj_t *messages, const char *answer_id)
{
    const aip_obj_t *newest = aip_obj_size (messages)
                            ? aip_obj_at (messages, aip_obj_size (messages) - 1) : NULL;
    char ts [AIP_MAX_TIME + 1], mid [AIP_MAX_ID + 1];
    uint64_t id = s_store_begin (self, AIP_OP_SESSION_PUT, 6);
    aip_pack_kstr (self->pk, "room_id", room_id);
    aip_pack_kstr (self->pk, "tool", tool);
    aip_pack_kstr (self->pk, "session_id", session_id);
    aip_pack_kstr (self->pk, "seen_ts", aip_obj_get_str (newest, "created_at", ts, sizeof ts, ""));
    aip_pack_kstr (self->pk, "seen_id", aip_obj_get_str (newest, "id", mid, sizeof mid, ""));
    aip_pack_kstr (self->pk, "answer_id", answer_id);
    aip_reply_t rep;
    s_result_t failed;
    memset (&failed, 0, sizeof failed);
    if (s_store_call (self, id, &rep, &failed))
        zsys_warning ("spawner: cannot keep %s's session in room %s: %s", tool, room_id,
                      failed.message);
    else
        aip_reply_free (&rep);
}

//  How an attempt went, beyond its result
typedef struct {
    bool server_silent;             //  a protocol server said nothing we understood
    aip_stream_err_t kind;          //  the stream's error kind
    char session_id [129];          //  the session the tool reported (validated), or ""
} s_outcome_t;

//  Run the tool once. 0 with the answer and usage (an object, caller
//  owns); -1 with result filled; -2 when spawnd stops (result filled).
static int
s_attempt (s_spawner_t *self, const aip_tool_t *tool, s_job_t *job, const aip_tool_run_t *run,
           const char *prompt, size_t prompt_len, char **answer, size_t *answer_len,
           json_t **usage, s_outcome_t *outcome, s_result_t *result)
{
    memset (outcome, 0, sizeof *outcome);
    char **argv = NULL, **envp = NULL;
    aip_proc_t *proc = NULL;
    int rc = -1;
    aip_format_t format = run->fallback ? tool->fallback_format : tool->format;
    if (aip_tool_command (tool, run, &argv, &envp, result->message, sizeof result->message)) {
        snprintf (result->code, sizeof result->code, "%s", SPAWN_ERR_TOOL);
        goto cleanup;
    }
    bool protocol = aip_format_is_protocol (format);
    char cwd [AIP_PATH_MAX];
    if (*job->cwd)
        snprintf (cwd, sizeof cwd, "%s", job->cwd);
    else
    if (!getcwd (cwd, sizeof cwd))
        snprintf (cwd, sizeof cwd, "/");
    if (format != AIP_FORMAT_TEXT) {
        aip_stream_args_t sargs = { prompt, prompt_len, cwd, job->model, run->session_id,
                                    run->ephemeral };
        self->stream = aip_stream_new (format, tool->name, &sargs);
    }
    bool via_stdin = tool->prompt_via == AIP_PROMPT_STDIN && !protocol;
    aip_proc_opts_t opts = { argv, envp, *job->cwd ? job->cwd : NULL,
                             via_stdin ? prompt : NULL, via_stdin ? prompt_len : 0,
                             job->timeout_s * 1000,
                             self->stream ? AIP_MAX_TOOL_STDERR : AIP_MAX_TOOL_OUTPUT,
                             AIP_MAX_TOOL_STDERR, protocol,
                             self->stream ? s_on_stdout : NULL, self->stream };
    int start_errno;
    proc = aip_proc_new (&opts, &start_errno, result->message, sizeof result->message);
    if (!proc) {
        snprintf (result->code, sizeof result->code, "%s", SPAWN_ERR_TOOL);
        goto cleanup;
    }
    zsys_info ("spawner: %s (pid %d, %s) runs for room %s, prompt %zu bytes%s%s", tool->name,
               aip_proc_pid (proc), aip_format_name (format), job->room_id, prompt_len,
               run->session_id ? ", resuming " : "", run->session_id ? run->session_id : "");
    //  If we die (kill -9), brokerd kills the tool's group from this file
    char pgid_path [AIP_PATH_MAX], pgid_text [32];
    snprintf (pgid_path, sizeof pgid_path, "%s/run/spawn-%d.pgid", self->args.home, (int) getpid ());
    snprintf (pgid_text, sizeof pgid_text, "%d\n", aip_proc_pid (proc));
    if (aip_file_write_atomic (pgid_path, pgid_text, strlen (pgid_text), 0600))
        zsys_warning ("spawner: cannot write %s: %s", pgid_path, strerror (errno));
    self->progress_room = job->room_id;
    self->progress_tool = tool->name;
    self->progress_msg_id = job->msg_id;
    bool finished = s_proc_run (self, proc);
    self->progress_room = NULL;
    if (!finished)
        aip_proc_destroy (&proc);       //  kills the group now, before the file goes
    unlink (pgid_path);
    if (!finished) {
        snprintf (result->code, sizeof result->code, "%s", AIP_ERR_UNAVAILABLE);
        snprintf (result->message, sizeof result->message, "spawnd stopped while %s ran",
                  tool->name);
        rc = -2;
        goto cleanup;
    }
    aip_answer_error_t why = { "", "" };
    if (self->stream) {
        rc = aip_answer_stream (tool, proc, self->stream, job->timeout_s, answer, answer_len,
                                &why, &outcome->kind);
        if (rc == 0)
            *usage = json_deep_copy (aip_stream_usage (self->stream));
        const char *sid = aip_stream_session_id (self->stream);
        if (sid)
            snprintf (outcome->session_id, sizeof outcome->session_id, "%s", sid);
        outcome->server_silent = protocol && rc && aip_stream_lines (self->stream) == 0
                              && !aip_proc_timed_out (proc) && !aip_proc_cancelled (proc);
    }
    else {
        json_t *raw = NULL;
        rc = aip_answer_text (tool, proc, job->timeout_s, answer, answer_len, &raw, &why);
        if (rc == 0) {
            *usage = aip_usage_normalize (raw);
            json_object_set_new (*usage, "duration_ms", json_integer (aip_proc_elapsed_ms (proc)));
        }
        json_decref (raw);
    }
    if (rc) {
        snprintf (result->code, sizeof result->code, "%s", why.code);
        snprintf (result->message, sizeof result->message, "%s", why.message);
    }
cleanup:
    aip_proc_destroy (&proc);
    //  What the tool detached from its group (setsid) goes too
    int swept = aip_proc_sweep ();
    if (swept)
        zsys_info ("spawner: killed %d process(es) %s left behind", swept, tool->name);
    aip_stream_destroy (&self->stream);
    aip_strv_free (&argv);
    aip_strv_free (&envp);
    return rc;
}

//  The room of a job: its name copied into name, its key loaded into self
//  when it is encrypted; -1 with the error in result
static int
s_room_load (s_spawner_t *self, const char *room_id, char *name, size_t size,
             s_result_t *result)
{
    aip_reply_t rep;
    uint64_t id = s_store_begin (self, AIP_OP_ROOM_GET, 2);
    aip_pack_kstr (self->pk, "id", room_id);
    aip_pack_kbool (self->pk, "with_key", true);
    if (s_store_call (self, id, &rep, result))
        return -1;
    //  An encrypted room answers {room, key}: its history is decrypted for
    //  the prompt, the answer encrypted before it is posted
    const aip_obj_t *room = rep.data;
    char key [AIP_ROOMKEY_MAX];
    int rc = 0;
    if (aip_obj_get_str (rep.data, "key", key, sizeof key, NULL)) {
        room = aip_obj_get (rep.data, "room");
        self->encrypted = aip_roomkey_decode (key, &self->room_key) == 0;
        sodium_memzero (key, sizeof key);
        if (!self->encrypted) {
            snprintf (result->code, sizeof result->code, "%s", AIP_ERR_INTERNAL);
            snprintf (result->message, sizeof result->message, "the key of room %s is damaged",
                      room_id);
            rc = -1;
        }
    }
    aip_obj_get_str (room, "name", name, size, "");
    aip_reply_free (&rep);
    return rc;
}

//  The job's tool, when it is known and its model and working directory
//  are usable; NULL with the error in result
static const aip_tool_t *
s_tool_check (s_spawner_t *self, aip_adapter_t *adapter, const char *warning, s_job_t *job,
              s_result_t *result)
{
    const aip_tool_t *tool = aip_adapter_find (adapter, job->tool);
    if (!tool) {
        snprintf (result->code, sizeof result->code, "%s", AIP_ERR_INVALID);
        char names [512] = "";
        for (size_t i = 0; i < aip_adapter_count (adapter); i++)
            snprintf (names + strlen (names), sizeof names - strlen (names), "%s%s",
                      i ? ", " : "", aip_adapter_at (adapter, i)->name);
        if (*warning)
            snprintf (result->message, sizeof result->message, "unknown tool '%s': the tools "
                      "file is broken: %s (known tools are %s)", job->tool, warning, names);
        else
            snprintf (result->message, sizeof result->message, "unknown tool '%s': known tools "
                      "are %s (add your own in %s/tools.json)", job->tool, names, self->args.home);
        return NULL;
    }
    if (job->model [0] == '-') {
        //  A model is a value, never an option of the tool
        snprintf (result->code, sizeof result->code, "%s", AIP_ERR_INVALID);
        snprintf (result->message, sizeof result->message, "invalid model '%s': a model name "
                  "cannot start with '-'", job->model);
        return NULL;
    }
    if (*job->cwd) {
        struct stat st;
        if (stat (job->cwd, &st) || !S_ISDIR (st.st_mode)) {
            snprintf (result->code, sizeof result->code, "%s", AIP_ERR_INVALID);
            snprintf (result->message, sizeof result->message, "the working directory %s does "
                      "not exist on %s", job->cwd, self->host);
            return NULL;
        }
    }
    return tool;
}

//  The prompt file could not be written (errno says why)
static void
s_prompt_file_error (s_spawner_t *self, s_result_t *result)
{
    snprintf (result->code, sizeof result->code, "%s", AIP_ERR_INTERNAL);
    snprintf (result->message, sizeof result->message, "cannot write the prompt file in "
              "%s/run: %s", self->args.home, strerror (errno));
}

//  As the original: a failed run shows in the room too, posted as the tool
static void
s_post_failure (s_spawner_t *self, s_job_t *job, const char *speaker, s_result_t *result)
{
    zsys_warning ("spawner: %s in room %s failed: %s", job->tool, job->room_id, result->message);
    char *content = zsys_sprintf ("[spawn error] %s", result->message);
    char *tool_id = strdup (speaker);
    aip_id_sanitize (tool_id);
    s_result_t post_result;
    memset (&post_result, 0, sizeof post_result);
    s_sent_t ignored;
    if (s_post (self, job->room_id, *job->msg_id ? job->msg_id : NULL, tool_id, content,
                strlen (content), "{\"error\":true}", &ignored, &post_result))
        zsys_warning ("spawner: could not post the error: %s", post_result.message);
    free (tool_id);
    free (content);
}

//  The spawn.run reply of an answer that was posted as sent
static aip_pack_t *
s_answer_data (aip_adapter_t *adapter, const char *tool, const char *room_id, const char *answer,
               size_t answer_len, int64_t started, json_t *usage, const char *session_id,
               bool resumed, const char *warning, const s_sent_t *sent, size_t dropped)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map_begin (pk);
    aip_pack_kstr (pk, "tool", tool);
    aip_pack_kstrn (pk, "response", answer, answer_len);
    aip_pack_kstr (pk, "room", room_id);
    const char *mentions [AIP_MAX_TOOLS * 2];
    size_t count = aip_answer_mentions (adapter, tool, answer, mentions, AIP_MAX_TOOLS * 2);
    if (count) {
        aip_pack_key (pk, "mentions");
        aip_pack_array (pk, count);
        for (size_t i = 0; i < count; i++)
            aip_pack_str (pk, mentions [i]);
    }
    aip_pack_key (pk, "elapsed_s");
    aip_pack_real (pk, (double) (aip_clock_ms () - started) / 1000.0);
    if (usage) {
        //  The tool's own figures, from its JSON output
        aip_pack_key (pk, "usage");
        aip_json_pack (pk, usage);
    }
    if (*session_id)
        aip_pack_kstr (pk, "session_id", session_id);
    aip_pack_kbool (pk, "resumed", resumed);
    if (*warning)
        aip_pack_kstr (pk, "warning", warning);
    if (*sent->id)
        aip_pack_kstr (pk, "message_id", sent->id);
    if (*sent->peer_id)
        aip_pack_kstr (pk, "peer_id", sent->peer_id);
    if (dropped)
        aip_pack_kint (pk, "history_dropped", (int64_t) dropped);
    aip_pack_map_end (pk);
    return pk;
}

//  One spawn.run: load the room and its history, build the prompt, run the
//  tool (retrying as its fallback or afresh), post the answer or the error
static void
s_run (s_spawner_t *self, s_job_t *job, s_result_t *result)
{
    int64_t started = aip_clock_ms ();
    char warning [512];
    aip_adapter_t *adapter = aip_adapter_new (self->args.home, warning, sizeof warning);
    if (*warning)
        zsys_warning ("spawner: %s", warning);
    json_t *usage = NULL;
    aip_reply_t history = { 0 };
    aip_prompt_msg_t *all = NULL, *unseen = NULL;
    size_t all_count = 0, unseen_count = 0;
    char room_name [AIP_MAX_NAME + 1];
    s_sent_t sent = { "", "" };
    char *prompt = NULL, *answer = NULL;
    char prompt_path [AIP_PATH_MAX] = "";
    int prompt_fd = -1;             //  the memfd behind prompt_path
    size_t answer_len = 0;
    bool post_error = false;
    const char *speaker = job->tool;    //  who posts an error: the tool, once known
    s_outcome_t outcome;
    memset (&outcome, 0, sizeof outcome);

    //  The room must exist; the tool must be known
    if (s_room_load (self, job->room_id, room_name, sizeof room_name, result))
        goto cleanup;
    post_error = true;
    const aip_tool_t *tool = s_tool_check (self, adapter, warning, job, result);
    if (!tool)
        goto cleanup;
    speaker = tool->name;
    //  History, newest last
    uint64_t id = s_store_begin (self, AIP_OP_MSG_LIST, 2);
    aip_pack_kstr (self->pk, "room_id", job->room_id);
    aip_pack_kint (self->pk, "limit", job->history);
    if (s_store_call (self, id, &history, result))
        goto cleanup;
    //  A tool that can resume keeps one session per room: it is sent only
    //  what it has not seen. A password room's tool keeps nothing on disk
    //  (and so cannot resume) unless the invite says --sessions.
    const aip_obj_t *messages = aip_obj_get (history.data, "messages");
    const aip_roomkey_t *key = self->encrypted ? &self->room_key : NULL;
    all = aip_prompt_history (messages, NULL, key, &all_count);
    bool resumable = tool->format != AIP_FORMAT_TEXT
                  && (tool->resume_args || aip_format_is_protocol (tool->format));
    bool persist = !self->encrypted || job->sessions;
    s_session_t session;
    bool resuming = resumable && persist && !job->fresh
                 && s_session_get (self, job->room_id, tool->name, &session);
    if (resuming)
        unseen = aip_prompt_history (messages, &session.seen, key, &unseen_count);
    if (!all || (resuming && !unseen)) {
        snprintf (result->code, sizeof result->code, "%s", AIP_ERR_INTERNAL);
        snprintf (result->message, sizeof result->message, "out of memory");
        goto cleanup;
    }
    size_t prompt_len, dropped;
    aip_prompt_args_t pargs = { .tool = tool->name, .room_id = job->room_id,
                                .room_name = *room_name ? room_name : NULL,
                                .messages = resuming ? unseen : all,
                                .count = resuming ? unseen_count : all_count,
                                .context = job->context, .max = AIP_MAX_PROMPT,
                                .resumed = resuming };
    prompt = aip_prompt_build (&pargs, &prompt_len, &dropped);
    if (tool->prompt_via == AIP_PROMPT_FILE
    &&  s_prompt_file (self, prompt, prompt_len, prompt_path, sizeof prompt_path, &prompt_fd)) {
        s_prompt_file_error (self, result);
        goto cleanup;
    }
    //  A structured tool runs once; again with its fallback command if its
    //  protocol server cannot run here, or afresh (full history) if its
    //  session cannot be resumed
    aip_tool_run_t run = { job->model, *prompt_path ? prompt_path : NULL,
                           resuming ? session.session_id : NULL,
                           !persist, *job->max_cost ? job->max_cost : NULL, false };
    char warning_out [1024] = "";
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = s_attempt (self, tool, job, &run, prompt, prompt_len, &answer, &answer_len,
                            &usage, &outcome, result);
        if (rc == 0)
            break;
        if (rc == -2)
            goto cleanup;
        if (outcome.server_silent && tool->fallback_argv && !run.fallback) {
            snprintf (warning_out, sizeof warning_out, "%s's protocol server (%s) could not "
                      "run here (%.300s); used '%s %s' instead, which does not stream",
                      tool->name, aip_format_name (tool->format), result->message,
                      tool->fallback_argv [0], tool->fallback_argv [1]);
            zsys_warning ("spawner: %s", warning_out);
            run.fallback = true;
            run.session_id = NULL;      //  the fallbacks start afresh
            continue;
        }
        bool resume_failed = run.session_id && outcome.kind != AIP_STREAM_OK
                          && outcome.kind != AIP_STREAM_ERR_AUTH
                          && outcome.kind != AIP_STREAM_ERR_RATE
                          && outcome.kind != AIP_STREAM_ERR_BUDGET;
        if (resume_failed) {
            snprintf (warning_out, sizeof warning_out, "could not resume %s's session %s "
                      "(%.300s); started a new session with the full history", tool->name,
                      run.session_id, result->message);
            zsys_warning ("spawner: %s", warning_out);
            run.session_id = NULL;
            free (prompt);
            pargs.messages = all;
            pargs.count = all_count;
            pargs.resumed = false;
            prompt = aip_prompt_build (&pargs, &prompt_len, &dropped);
            if (*prompt_path) {
                s_prompt_release (prompt_path, &prompt_fd);
                if (s_prompt_file (self, prompt, prompt_len, prompt_path, sizeof prompt_path,
                                   &prompt_fd)) {
                    s_prompt_file_error (self, result);
                    goto cleanup;
                }
                run.prompt_file = prompt_path;
            }
            continue;
        }
        goto cleanup;
    }
    double elapsed = (double) (aip_clock_ms () - started) / 1000.0;
    json_t *meta = json_pack ("{s:s, s:f, s:i}", "tool", tool->name, "elapsed_s", elapsed,
                              "prompt_bytes", (int) prompt_len);
    if (*job->model)
        json_object_set_new (meta, "model", json_string (job->model));
    if (usage)
        json_object_set (meta, "usage", usage);
    char *metadata = json_dumps (meta, JSON_COMPACT);
    json_decref (meta);
    if (!metadata || strlen (metadata) > AIP_MAX_METADATA) {
        free (metadata);
        metadata = strdup ("{}");
    }
    int rc = s_post (self, job->room_id, *job->msg_id ? job->msg_id : NULL, tool->name, answer,
                     answer_len, metadata, &sent, result);
    free (metadata);
    if (rc) {
        post_error = false;
        goto cleanup;
    }
    //  The session has now seen the history it was sent and its own answer
    if (resumable && persist && *outcome.session_id)
        s_session_put (self, job->room_id, tool->name, outcome.session_id, messages, sent.id);
    result->data = s_answer_data (adapter, tool->name, job->room_id, answer, answer_len,
                                  started, usage, outcome.session_id, run.session_id != NULL,
                                  *warning_out ? warning_out : warning, &sent, dropped);
    zsys_info ("spawner: %s answered in room %s (%zu bytes, %.2f s)", tool->name, job->room_id,
               answer_len, elapsed);
cleanup:
    if (!result->data && post_error && !self->terminated && !self->cancelled)
        s_post_failure (self, job, speaker, result);
    s_prompt_release (prompt_path, &prompt_fd);
    free (prompt);
    free (answer);
    aip_prompt_history_free (&all, all_count);
    aip_prompt_history_free (&unseen, unseen_count);
    aip_reply_free (&history);
    json_decref (usage);
    aip_adapter_destroy (&adapter);
    sodium_memzero (&self->room_key, sizeof self->room_key);
    self->encrypted = false;
}

//  ---------------------------------------------------------------------
//  spawn.discover: tools on PATH and configured, with a bounded --version

static void
s_discover (s_spawner_t *self, s_result_t *result)
{
    char warning [512];
    aip_adapter_t *adapter = aip_adapter_new (self->args.home, warning, sizeof warning);
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map_begin (pk);
    aip_pack_key (pk, "discovered");
    aip_pack_array_begin (pk);
    for (size_t i = 0; i < aip_adapter_count (adapter) && !self->terminated; i++) {
        const aip_tool_t *tool = aip_adapter_at (adapter, i);
        char path [AIP_PATH_MAX];
        if (aip_which (tool->argv [0], path, sizeof path))
            continue;
        char *argv [] = { path, "--version", NULL };
        extern char **environ;
        aip_proc_opts_t opts = { argv, environ, NULL, NULL, 0, AIP_VERSION_TIMEOUT_MS,
                                 AIP_MAX_VERSION, AIP_MAX_VERSION, false, NULL, NULL };
        int start_errno;
        char err [256], version [AIP_MAX_VERSION + 8] = "";
        aip_proc_t *proc = aip_proc_new (&opts, &start_errno, err, sizeof err);
        if (proc && s_proc_run (self, proc) && !aip_proc_timed_out (proc)) {
            size_t len;
            const char *out = aip_proc_stdout (proc, &len);
            aip_tool_words (out, len, version, sizeof version);
        }
        aip_proc_destroy (&proc);
        aip_pack_map (pk, 5);
        aip_pack_kstr (pk, "tool", tool->name);
        aip_pack_kstr (pk, "binary", path);
        aip_pack_kstr (pk, "machine", self->host);
        aip_pack_kstr (pk, "version", version);
        aip_pack_kbool (pk, "configured", tool->configured);
    }
    aip_pack_array_end (pk);
    aip_proc_sweep ();          //  what a --version left behind, detached
    if (*warning)
        aip_pack_kstr (pk, "warning", warning);
    aip_pack_map_end (pk);
    result->data = pk;
    aip_adapter_destroy (&adapter);
}

//  ---------------------------------------------------------------------
//  Requests

//  spawn.run: the job its arguments describe
static void
s_spawn_run (s_spawner_t *self, const aip_request_t *req, s_result_t *result)
{
    s_job_t job;
    memset (&job, 0, sizeof job);
    aip_obj_get_str (req->args, "tool", job.tool, sizeof job.tool, "");
    aip_obj_get_str (req->args, "room_id", job.room_id, sizeof job.room_id, "");
    aip_obj_get_str (req->args, "msg_id", job.msg_id, sizeof job.msg_id, "");
    aip_obj_get_str (req->args, "model", job.model, sizeof job.model, "");
    aip_obj_get_str (req->args, "cwd", job.cwd, sizeof job.cwd, "");
    job.context = aip_obj_strdup (aip_req_arg (req, "context"));
    job.timeout_s = (int) aip_obj_get_int (req->args, "timeout", AIP_TOOL_TIMEOUT_S);
    if (job.timeout_s < 1)
        job.timeout_s = 1;
    job.history = (int) aip_obj_get_int (req->args, "history", AIP_PROMPT_HISTORY);
    if (job.history < 1)
        job.history = 1;
    job.fresh = aip_obj_get_bool (req->args, "fresh", false);
    job.sessions = aip_obj_get_bool (req->args, "sessions", false);
    aip_obj_get_str (req->args, "max_cost", job.max_cost, sizeof job.max_cost, "");
    s_run (self, &job, result);
    free (job.context);
}

static void
s_spawn_discover (s_spawner_t *self, const aip_request_t *req, s_result_t *result)
{
    (void) req;
    s_discover (self, result);
}

//  spawnd's ops, indexed by op (as storaged's and relayd's): each fills in
//  the result its reply carries
typedef void (s_op_fn) (s_spawner_t *self, const aip_request_t *req, s_result_t *result);
static s_op_fn *const s_handlers [AIP_OP_COUNT] = {
    [AIP_OP_SPAWN_RUN]      = s_spawn_run,
    [AIP_OP_SPAWN_DISCOVER] = s_spawn_discover,
};

static void
s_handle_request (s_spawner_t *self, uint64_t tag, zframe_t *body)
{
    aip_request_t req;
    uint64_t request_id;
    s_result_t result;
    memset (&result, 0, sizeof result);
    char err [256];
    if (aip_request_decode (zframe_data (body), zframe_size (body), &req, &request_id, err,
                            sizeof err)) {
        snprintf (result.code, sizeof result.code, "%s", AIP_ERR_MALFORMED);
        snprintf (result.message, sizeof result.message, "malformed request: %s", err);
        s_reply (self, tag, request_id, &result);
        return;
    }
    if (self->busy) {
        snprintf (result.code, sizeof result.code, "%s", AIP_ERR_UNAVAILABLE);
        snprintf (result.message, sizeof result.message, "this spawnd is busy with another job");
        s_reply (self, tag, req.id, &result);
        aip_request_free (&req);
        return;
    }
    self->busy = true;
    self->current_tag = tag;
    self->cancelled = false;
    if (s_handlers [req.op])
        s_handlers [req.op] (self, &req, &result);
    else {
        snprintf (result.code, sizeof result.code, "%s", AIP_ERR_INVALID);
        snprintf (result.message, sizeof result.message, "spawnd does not serve '%s'",
                  aip_op_name (req.op));
    }
    s_reply (self, tag, req.id, &result);
    aip_pack_destroy (&result.data);
    aip_request_free (&req);
    self->busy = false;
    self->current_tag = 0;
}

//  ---------------------------------------------------------------------
//  The actor

void
aip_spawner (zsock_t *pipe, void *args)
{
    s_spawner_t *self = (s_spawner_t *) zmalloc (sizeof (s_spawner_t));
    self->pipe = pipe;
    self->args = *(aip_spawner_args_t *) args;
    self->pk = aip_pack_new ();
    aip_hostname (self->host, sizeof self->host);
    snprintf (self->host_id, sizeof self->host_id, "%s", self->host);
    aip_id_sanitize (self->host_id);
    char err [512];
    self->store = aip_client_new_actor (zsys_init (), self->args.client_endpoint,
                                        self->args.hub_key, err, sizeof err);
    if (!self->store) {
        zsys_error ("spawner: %s", err);
        zsock_signal (pipe, 1);
        goto cleanup;
    }
    if (self->args.hub_key)
        self->worker = aip_worker_new_remote (self->args.worker_endpoint, AIP_SVC_SPAWN, 1,
                                              self->args.name, self->args.hub_key,
                                              self->args.token);
    else
        self->worker = aip_worker_new (self->args.worker_endpoint, AIP_SVC_SPAWN, 1,
                                       self->args.name);
    if (!self->worker) {
        zsock_signal (pipe, 1);
        goto cleanup;
    }
    //  Invites for a tool go to the workers that have it (a remote spawnd
    //  is on another machine, with other tools)
    char warning [256], tools [1000];
    aip_adapter_t *adapter = aip_adapter_new (self->args.home, warning, sizeof warning);
    if (adapter) {
        aip_adapter_installed (adapter, tools, sizeof tools);
        aip_worker_set_tools (self->worker, tools);
    }
    aip_adapter_destroy (&adapter);
    s_prompt_leftovers_remove (self);
    zsock_signal (pipe, 0);
    zsys_info ("spawner: %s ready (pid %d)%s%s", self->args.name, (int) getpid (),
               self->args.hub_key ? ", serving the LAN hub " : "",
               self->args.hub_key ? self->args.worker_endpoint : "");
    while (!self->terminated)
        s_poll (self, NULL, 0, -1);
    aip_worker_bye (self->worker);
cleanup:
    aip_worker_destroy (&self->worker);
    aip_client_destroy (&self->store);
    aip_pack_destroy (&self->pk);
    free (self);
    //  Fernet rooms use OpenSSL in this thread
    aip_crypto_thread_stop ();
}

void
aip_spawner_test (bool verbose)
{
    printf (" * aip_spawner: ");
    //  The full path (broker, store, tools) is covered by tests/test_invite.py;
    //  here: trimming (mentions: aip_answer's self-test)
    char text [] = "\n\n  # Title\n\nbody @codex and @gemini-x\n\n";
    size_t len = strlen (text);
    aip_answer_trim (text, &len);
    assert (streq (text, "  # Title\n\nbody @codex and @gemini-x"));
    //  Every spawn op has its handler, and no other op has one
    for (int op = 0; op < AIP_OP_COUNT; op++)
        assert ((s_handlers [op] != NULL) == (aip_op_service ((aip_op_t) op) == AIP_SVC_SPAWN));
    printf ("OK\n");
}
