/*  aip_broker.c — routing broker actor: clients, workers and events.

    The broker owns its classes and routes between them: aip_workers (the
    worker table: who serves what, the requests they hold and those that
    wait), aip_jobs (the asynchronous jobs), aip_clients (what each client
    holds here), aip_supervisor (the worker daemons it starts) and
    aip_lanmode (the CURVE endpoint, beacon and peers of LAN mode). Each
    keeps its own state and hands back what to send; what is left here is
    routing: a request's envelope says where it goes, the broker's own
    operations are a handler table indexed by op, and the loop below names
    one handler per socket. */
#include "aip_broker.h"
#include "aip_clients.h"
#include "aip_crypto.h"
#include "aip_home.h"
#include "aip_jobs.h"
#include "aip_lan.h"
#include "aip_lanmode.h"
#include "aip_proto.h"
#include "aip_supervisor.h"
#include "aip_util.h"
#include "aip_webmode.h"
#include "aip_worker.h"
#include "aip_workers.h"

//  Routing ids of clients on the LAN socket carry this first byte, so that
//  their replies go out there (ZeroMQ's own routing ids start with 0)
#define REMOTE_MARK 0xFF

typedef struct {
    zsock_t *pipe;              //  actor pipe
    aip_broker_args_t args;     //  configuration (strings borrowed)
    char home [AIP_PATH_MAX];   //  $AI_PEERS_HOME
    zsock_t *clients;           //  ROUTER for clients
    zsock_t *workers;           //  ROUTER for workers
    zsock_t *events;            //  PUB for events
    aip_workers_t *table;       //  the workers and their requests (once events is bound)
    aip_supervisor_t *supervisor;             //  the daemons we run, or NULL (none)
    int64_t started_ms;         //  for uptime
    int ready_fd;               //  start-up pipe, -1 once used
    bool stopping;              //  daemon stop requested
    char stop_reason [600];     //  why, when the start failed ("" for daemon stop)
    bool terminated;            //  leave the loop
    aip_pack_t *pk;             //  scratch packer
    aip_jobs_t *jobs;           //  asynchronous jobs (invite --async)
    aip_clients_t *budgets;     //  what each client holds here, in bytes
    int64_t sweep_at;           //  next time idle clients are forgotten
    aip_lanmode_t *lan;         //  LAN mode while it is on, else NULL
} s_broker_t;

//  ---------------------------------------------------------------------
//  Helpers

//  Send a reply body to a client
static void
s_send_client (s_broker_t *self, zframe_t *client, const void *data, size_t size)
{
    const byte *id = zframe_data (client);
    bool remote = zframe_size (client) > 1 && id [0] == REMOTE_MARK;
    if (remote && !self->lan)
        return;                 //  LAN mode went away with its clients
    //  A client that went away is no reason to block or fail; one that
    //  does not read has its replies kept, within its budget
    void *sock = zsock_resolve (remote ? aip_lanmode_sock (self->lan) : self->clients);
    aip_clients_send (self->budgets, sock, client, remote ? id + 1 : id,
                      zframe_size (client) - (remote ? 1 : 0), data, size);
}

//  Send what a class handed back: pairs of [client][reply body]
static void
s_send_out (s_broker_t *self, zmsg_t *out)
{
    while (zmsg_size (out) >= 2) {
        zframe_t *client = zmsg_pop (out);
        zframe_t *body = zmsg_pop (out);
        s_send_client (self, client, zframe_data (body), zframe_size (body));
        zframe_destroy (&client);
        zframe_destroy (&body);
    }
}

//  Send the reply packed in self->pk
static void
s_send_packed (s_broker_t *self, zframe_t *client)
{
    size_t size;
    const void *data = aip_pack_data (self->pk, &size);
    s_send_client (self, client, data, size);
}

static void
s_reply_error (s_broker_t *self, zframe_t *client, uint64_t request_id, const char *code,
               const char *message)
{
    aip_pack_reset (self->pk);
    aip_reply_error (self->pk, request_id, code, message);
    s_send_packed (self, client);
}

//  Start the success reply to req in self->pk; the caller packs its data
static aip_pack_t *
s_reply_begin (s_broker_t *self, const aip_request_t *req)
{
    aip_pack_reset (self->pk);
    aip_reply_ok_begin (self->pk, req->id);
    return self->pk;
}

//  ---------------------------------------------------------------------
//  The workers (aip_workers)

static void s_signal_ready (s_broker_t *self);

//  What the worker table changed: our beacon tells the AI tools of this
//  machine, those the local spawn workers said they have in their READY;
//  storage up starts the spawn workers that wait for it, and the first
//  one means the daemon set can serve
static void
s_workers_changed (s_broker_t *self, unsigned changed)
{
    if ((changed & AIP_WORKERS_TOOLS) && self->lan) {
        char tools [512];
        aip_workers_local_tools (self->table, tools, sizeof tools);
        aip_lanmode_set_tools (self->lan, tools);
    }
    if (changed & AIP_WORKERS_STORE_UP) {
        if (self->supervisor)
            aip_supervisor_release (self->supervisor, AIP_SVC_SPAWN);
        s_signal_ready (self);
    }
}

//  One message from a worker on sock (consumed)
static void
s_worker_message (s_broker_t *self, zsock_t *sock, zmsg_t *msg, bool remote)
{
    zmsg_t *out = zmsg_new ();
    unsigned changed = aip_workers_recv (self->table, sock, &msg, remote, self->lan, out);
    s_send_out (self, out);
    zmsg_destroy (&out);
    s_workers_changed (self, changed);
}

//  Handle one message from a local worker; false when none was waiting
static bool
s_handle_worker (s_broker_t *self)
{
    zmsg_t *msg = zmsg_recv_nowait (self->workers);
    if (!msg)
        return false;
    s_worker_message (self, self->workers, msg, false);
    return true;
}

//  ---------------------------------------------------------------------
//  Broker's own operations: one handler per op, in s_own_ops below

//  The spawnd children we run (daemon start --workers N)
static int
s_spawn_children (s_broker_t *self)
{
    int count = 0;
    size_t children = self->supervisor ? aip_supervisor_size (self->supervisor) : 0;
    for (size_t i = 0; i < children; i++)
        if (aip_supervisor_child (self->supervisor, i)->svc == AIP_SVC_SPAWN)
            count++;
    return count;
}

static void
s_op_ping (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    aip_pack_t *pk = s_reply_begin (self, req);
    aip_pack_map (pk, 1);
    aip_pack_kstr (pk, "pong", AIP_VERSION_STRING);
    s_send_packed (self, client);
}

static void
s_op_daemon_status (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    aip_pack_t *pk = s_reply_begin (self, req);
    aip_pack_map_begin (pk);
    aip_pack_kbool (pk, "running", true);
    aip_pack_kint (pk, "workers", s_spawn_children (self));
    if (self->lan) {
        aip_pack_key (pk, "lan");
        aip_lanmode_pack_status (self->lan, pk);
    }
    aip_pack_kint (pk, "pid", getpid ());
    aip_pack_kstr (pk, "mode", self->args.lan ? "lan" : "local");
    aip_pack_kint (pk, "uptime_s", (aip_clock_ms () - self->started_ms) / 1000);
    aip_pack_kint (pk, "requests", (int64_t) aip_workers_routed (self->table));
    aip_pack_key (pk, "daemons");
    aip_workers_pack_daemons (self->table, self->supervisor, pk);
    aip_pack_map_end (pk);
    s_send_packed (self, client);
}

static void
s_op_daemon_stop (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    aip_pack_t *pk = s_reply_begin (self, req);
    aip_pack_map (pk, 2);
    aip_pack_kstr (pk, "status", "stopping");
    aip_pack_kint (pk, "pid", getpid ());
    self->stopping = true;
    s_send_packed (self, client);
}

//  job.list, job.wait, job.cancel: aip_jobs answers; a cancel may need
//  its running request's worker told, or its queued request dropped
static void
s_op_job (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    zmsg_t *out = zmsg_new ();
    if (req->op == AIP_OP_JOB_LIST)
        aip_jobs_list (self->jobs, client, req->id, out);
    else
    if (req->op == AIP_OP_JOB_WAIT)
        aip_jobs_wait (self->jobs, client, req, out);
    else {
        bool dequeue;
        uint64_t tag = aip_jobs_cancel (self->jobs, client, req, out, &dequeue);
        aip_workers_cancel (self->table, tag);
        char id [AIP_MAX_ID + 1];
        if (dequeue)
            aip_workers_dequeue (self->table, aip_obj_get_str (req->args, "id", id, sizeof id, ""));
    }
    s_send_out (self, out);
    zmsg_destroy (&out);
}

static int s_write_files (s_broker_t *self);
static void s_client_message (s_broker_t *self, zmsg_t *msg, bool remote);

//  Turn LAN mode on: bind tcp://*:port with CURVE, beacon, remember it
static int
s_lan_start (s_broker_t *self, int port, char *err, size_t errlen)
{
    if (self->lan) {
        if (port == self->args.port)
            return 0;
        snprintf (err, errlen, "LAN mode is already on, on port %d: stop the daemons "
                  "('ai-peer daemon stop') to change the port", self->args.port);
        return -1;
    }
    self->lan = aip_lanmode_new (self->home, port, err, errlen);
    if (!self->lan)
        return -1;
    self->args.port = port;
    self->args.lan = true;
    s_workers_changed (self, AIP_WORKERS_TOOLS);
    if (self->args.write_files && s_write_files (self))
        zsys_warning ("broker: cannot update daemon.json");
    return 0;
}

//  lan.start: LAN mode on a running broker (room create --lan)
static void
s_op_lan_start (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    int port = (int) aip_obj_get_int (req->args, "port", self->lan ? self->args.port
                                                                  : AIP_LAN_DEFAULT_PORT);
    char err [512];
    if (s_lan_start (self, port, err, sizeof err)) {
        s_reply_error (self, client, req->id, AIP_ERR_INVALID, err);
        return;
    }
    aip_pack_t *pk = s_reply_begin (self, req);
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "mode", "lan");
    aip_pack_kstr (pk, "address", aip_lanmode_address (self->lan));
    aip_pack_kint (pk, "port", self->args.port);
    aip_pack_kstr (pk, "public_key", aip_lanmode_key_hex (self->lan));
    s_send_packed (self, client);
}

static void
s_op_lan_peers (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    aip_pack_t *pk = s_reply_begin (self, req);
    aip_lanmode_pack_peers (self->lan, pk);
    s_send_packed (self, client);
}

//  web.start: remember the port, (re)start webd on it (webd is one more
//  supervised child while web/mode says so); answers {port, pid} (the
//  port webd actually listens on is in run/web.json once it does)
static void
s_op_web_start (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    int port = (int) aip_obj_get_int (req->args, "port", AIP_WEB_PORT);
    char exe [AIP_PATH_MAX + 8];
    snprintf (exe, sizeof exe, "%s/webd", self->args.bin_dir ? self->args.bin_dir : ".");
    if (!self->supervisor || access (exe, X_OK) != 0) {
        s_reply_error (self, client, req->id, AIP_ERR_UNAVAILABLE,
                       "webd is not installed next to brokerd: reinstall ai-peer");
        return;
    }
    bool changed = aip_webmode_get (self->home) != port;
    if (aip_webmode_set (self->home, port)) {
        s_reply_error (self, client, req->id, AIP_ERR_INTERNAL,
                       "cannot write web/mode in the ai-peer home");
        return;
    }
    //  A new port needs a new webd; the same port keeps the running one
    pid_t pid = aip_supervisor_start_now (self->supervisor, "webd", changed);
    if (pid < 0 && aip_supervisor_add (self->supervisor, "webd", AIP_SVC_BROKER, false) == 0)
        pid = aip_supervisor_start_now (self->supervisor, "webd", false);
    aip_pack_t *pk = s_reply_begin (self, req);
    aip_pack_map (pk, 2);
    aip_pack_kint (pk, "port", port);
    aip_pack_kint (pk, "pid", pid > 0 ? pid : 0);
    s_send_packed (self, client);
}

//  web.stop: webd stops and is forgotten (not started again)
static void
s_op_web_stop (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    pid_t pid = self->supervisor ? aip_supervisor_remove (self->supervisor, "webd") : -1;
    if (aip_webmode_set (self->home, -1)) {
        s_reply_error (self, client, req->id, AIP_ERR_INTERNAL,
                       "cannot remove web/mode from the ai-peer home");
        return;
    }
    aip_pack_t *pk = s_reply_begin (self, req);
    aip_pack_map (pk, 2);
    aip_pack_kstr (pk, "status", pid > 0 ? "stopped" : "not running");
    aip_pack_kint (pk, "pid", pid > 0 ? pid : 0);
    s_send_packed (self, client);
}

//  The handlers of the broker's own operations, indexed by op: every op
//  of AIP_SVC_BROKER has one, and no other op does (the self-test checks)
typedef void (s_own_op_fn) (s_broker_t *self, zframe_t *client, const aip_request_t *req);
static s_own_op_fn *const s_own_ops [AIP_OP_COUNT] = {
    [AIP_OP_PING]          = s_op_ping,
    [AIP_OP_DAEMON_STATUS] = s_op_daemon_status,
    [AIP_OP_DAEMON_STOP]   = s_op_daemon_stop,
    [AIP_OP_JOB_LIST]      = s_op_job,
    [AIP_OP_JOB_WAIT]      = s_op_job,
    [AIP_OP_JOB_CANCEL]    = s_op_job,
    [AIP_OP_LAN_START]     = s_op_lan_start,
    [AIP_OP_LAN_PEERS]     = s_op_lan_peers,
    [AIP_OP_WEB_START]     = s_op_web_start,
    [AIP_OP_WEB_STOP]      = s_op_web_stop,
};

//  ---------------------------------------------------------------------
//  Routing

//  Handle one message on the LAN socket: a remote spawn worker's, or a
//  request from another machine; false when none was waiting
static bool
s_handle_lan (s_broker_t *self)
{
    bool worker;
    zmsg_t *msg = aip_lanmode_recv (self->lan, &worker);
    if (!msg)
        return false;
    if (worker)
        s_worker_message (self, aip_lanmode_sock (self->lan), msg, true);
    else
        s_client_message (self, msg, true);
    return true;
}

//  A remote client (on the LAN socket) may call only the lan.* operations,
//  unless it shows the worker token (a remote spawn worker reading and
//  answering in rooms)
static bool
s_remote_allowed (s_broker_t *self, const aip_request_t *req)
{
    if (aip_op_remote (req->op))
        return true;
    size_t alen = 0;
    const char *auth = req->auth ? aip_obj_str (req->auth, &alen) : NULL;
    return self->lan && aip_lanmode_worker_token_ok (self->lan, auth, alen)
        && (aip_op_flags (req->op) & AIP_OP_F_REMOTE_WORKER);
}

//  Why a request for a worker cannot be taken now, or NULL: the daemons
//  are stopping, or an invite would wait for a spawn worker nobody starts
static const char *
s_refusal (s_broker_t *self, aip_svc_t svc, char *message, size_t size)
{
    if (self->stopping) {
        //  A command that meets a broker giving up on a failed start gets
        //  the reason, as the one that started it did
        snprintf (message, size, "the ai-peer daemons are stopping%s%s",
                  *self->stop_reason ? ": " : "", self->stop_reason);
        return message;
    }
    //  No spawnd of ours (--workers 0) and no other worker connected
    if (svc == AIP_SVC_SPAWN && aip_workers_size (self->table, svc) == 0
    &&  s_spawn_children (self) == 0)
        return AIP_NO_SPAWN_WORKER;
    return NULL;
}

//  An async spawn.run: the client gets the job id now, the result waits
//  in the job (work->job_id). -1 when too many jobs are unfinished.
static int
s_job_start (s_broker_t *self, zframe_t *client, uint64_t request_id, aip_work_t *work)
{
    const char *job_id = aip_jobs_add (self->jobs, work->job);
    if (!job_id) {
        s_reply_error (self, client, request_id, AIP_ERR_UNAVAILABLE, "too many unfinished "
                       "jobs: wait for some or cancel them ('ai-peer jobs')");
        return -1;
    }
    snprintf (work->job_id, sizeof work->job_id, "%s", job_id);
    aip_pack_reset (self->pk);
    aip_reply_ok_begin (self->pk, request_id);
    aip_pack_map (self->pk, 3);
    aip_pack_kstr (self->pk, "job", work->job_id);
    aip_pack_kstr (self->pk, "status", "queued");
    aip_pack_kstr (self->pk, "what", work->job);
    s_send_packed (self, client);
    return 0;
}

//  Handle one request from a client (destroys msg): the broker's own ops
//  are answered here, the others go to a worker of their service, picked
//  by the routing facts of the envelope
static void
s_client_message (s_broker_t *self, zmsg_t *msg, bool remote)
{
    zframe_t *client = zmsg_pop (msg);
    if (client && remote) {
        zframe_t *marked = zframe_new (NULL, zframe_size (client) + 1);
        zframe_data (marked) [0] = REMOTE_MARK;
        memcpy (zframe_data (marked) + 1, zframe_data (client), zframe_size (client));
        zframe_destroy (&client);
        client = marked;
    }
    zframe_t *body = zmsg_pop (msg);
    if (!client || !body || zmsg_size (msg) != 0) {
        //  Not our framing: answer if we can, never crash
        zsys_warning ("broker: request with %zu extra frame(s) refused",
                      zmsg_size (msg) + (body ? 0 : 1));
        if (client)
            s_reply_error (self, client, 0, AIP_ERR_MALFORMED,
                           "a request is exactly one frame of msgpack");
        goto cleanup;
    }
    aip_request_t req;
    uint64_t id;
    char err [512];
    if (aip_request_decode (zframe_data (body), zframe_size (body), &req, &id, err, sizeof err)) {
        zsys_warning ("broker: malformed request %llu refused: %s", (unsigned long long) id, err);
        char message [320];
        snprintf (message, sizeof message, "malformed request: %s", err);
        s_reply_error (self, client, id, AIP_ERR_MALFORMED, message);
        goto cleanup;
    }
    if (remote && !s_remote_allowed (self, &req)) {
        zsys_warning ("broker: '%s' from another machine refused", aip_op_name (req.op));
        char message [256];
        snprintf (message, sizeof message, "'%s' is not allowed from another machine",
                  aip_op_name (req.op));
        s_reply_error (self, client, req.id, AIP_ERR_INVALID, message);
        aip_request_free (&req);
        goto cleanup;
    }
    aip_svc_t svc = aip_op_service (req.op);
    if (svc == AIP_SVC_BROKER) {
        s_own_ops [req.op] (self, client, &req);
        aip_request_free (&req);
        goto cleanup;
    }
    //  The envelope's routing facts pick the worker and describe a spawn
    //  job in daemon status; the service's arguments are its own
    aip_work_t work = { .request_id = req.id, .op = req.op };
    snprintf (work.tool, sizeof work.tool, "%s", req.route.tool);
    if (req.op == AIP_OP_SPAWN_RUN)
        snprintf (work.job, sizeof work.job, "%.64s in %s", *work.tool ? work.tool : "?",
                  *req.route.room_id ? req.route.room_id : "?");
    else
    if (req.op == AIP_OP_SPAWN_DISCOVER)
        snprintf (work.job, sizeof work.job, "discover");
    bool async = req.op == AIP_OP_SPAWN_RUN && req.route.async;
    aip_request_free (&req);
    char message [700];
    const char *refused = s_refusal (self, svc, message, sizeof message);
    if (refused) {
        s_reply_error (self, client, work.request_id, AIP_ERR_UNAVAILABLE, refused);
        goto cleanup;
    }
    //  Within its budget, or refused before any work is done (an async
    //  job's client is answered at once: the job holds nothing for it)
    work.cost = async ? 0 : aip_clients_cost (work.op, zframe_size (body));
    if (work.cost && aip_clients_admit (self->budgets, client, work.cost, err, sizeof err)) {
        s_reply_error (self, client, work.request_id, AIP_ERR_UNAVAILABLE, err);
        goto cleanup;
    }
    if (async) {
        if (s_job_start (self, client, work.request_id, &work))
            goto cleanup;
        zframe_destroy (&client);
    }
    zmsg_t *out = zmsg_new ();
    aip_workers_route (self->table, svc, &client, &body, &work, out);
    s_send_out (self, out);
    zmsg_destroy (&out);
cleanup:
    zframe_destroy (&client);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
}

//  Handle one request from a local client; false when none was waiting
static bool
s_handle_client (s_broker_t *self)
{
    zmsg_t *msg = zmsg_recv_nowait (self->clients);
    if (!msg)
        return false;
    s_client_message (self, msg, false);
    return true;
}

//  ---------------------------------------------------------------------
//  Supervision of the worker daemons (aip_supervisor)

static void s_signal_failure (s_broker_t *self, const char *message);

//  Children that exited: fail what their workers held now, rather than at
//  heartbeat expiry, and restart them; start those whose time has come
static void
s_children_check (s_broker_t *self)
{
    if (!self->supervisor)
        return;
    aip_child_exit_t exit;
    while (aip_supervisor_reap (self->supervisor, &exit)) {
        zmsg_t *out = zmsg_new ();
        unsigned changed = aip_workers_drop_pid (self->table, exit.pid, exit.why, out);
        s_send_out (self, out);
        zmsg_destroy (&out);
        s_workers_changed (self, changed);
        //  The store never came up (peers.db unusable, say): restarting
        //  it cannot help; tell the waiting command why, and stop
        if (self->ready_fd >= 0 && exit.svc == AIP_SVC_STORE) {
            char reason [400], message [600];
            aip_supervisor_last_error (self->supervisor, exit.name, reason, sizeof reason);
            snprintf (message, sizeof message, "%s %s during start-up%s%s", exit.name,
                      exit.why, *reason ? ": " : "", reason);
            s_signal_failure (self, message);
            snprintf (self->stop_reason, sizeof self->stop_reason, "%s", message);
            self->stopping = true;
        }
        else
            aip_supervisor_restart (self->supervisor, &exit);
    }
    if (!self->stopping)
        aip_supervisor_start_due (self->supervisor);
}

//  ---------------------------------------------------------------------
//  Timers

static void
s_tick (s_broker_t *self)
{
    int64_t now = aip_clock_ms ();
    //  Heartbeats, silent workers, requests that waited too long
    zmsg_t *out = zmsg_new ();
    unsigned changed = aip_workers_tick (self->table, out);
    s_send_out (self, out);
    zmsg_destroy (&out);
    s_workers_changed (self, changed);
    s_children_check (self);
    if (self->lan)
        aip_lanmode_expire (self->lan);
    //  Replies kept for clients whose pipe was full
    aip_clients_flush (self->budgets);
    if (now >= self->sweep_at) {
        aip_clients_sweep (self->budgets);
        self->sweep_at = now + 1000;
    }
}

static int
s_next_timeout (s_broker_t *self)
{
    int64_t now = aip_clock_ms ();
    int64_t next = aip_workers_next_due (self->table);
    //  Children are polled often so a crash fails its requests promptly
    if (self->supervisor && now + 50 < next)
        next = now + 50;
    //  Replies wait for room in a client's pipe: look again soon
    if (aip_clients_flush (self->budgets) && now + 2 < next)
        next = now + 2;
    return next <= now ? 0 : (int) (next - now);
}

//  ---------------------------------------------------------------------
//  Setup and the loop

static int
s_write_files (s_broker_t *self)
{
    char path [AIP_PATH_MAX], text [128];
    snprintf (text, sizeof text, "%d\n", (int) getpid ());
    aip_home_path (self->home, "daemon.pid", path, sizeof path);
    if (aip_file_write_atomic (path, text, strlen (text), 0600))
        return -1;
    snprintf (text, sizeof text, "{\n  \"host\": \"%s\",\n  \"port\": %d,\n  \"mode\": \"%s\"\n}",
              self->lan ? aip_lanmode_address (self->lan) : "127.0.0.1", self->args.port,
              self->lan ? "lan" : "local");
    aip_home_path (self->home, "daemon.json", path, sizeof path);
    return aip_file_write_atomic (path, text, strlen (text), 0600);
}

static void
s_remove_files (s_broker_t *self)
{
    char path [AIP_PATH_MAX];
    aip_home_path (self->home, "daemon.pid", path, sizeof path);
    //  Only our own pid file: a newer broker may have replaced it
    size_t len;
    char *text = aip_file_read (path, 64, &len);
    if (text && atoi (text) == (int) getpid ())
        unlink (path);
    free (text);
    const char *sockets [] = { "broker", "workers", "events" };
    for (size_t i = 0; i < 3; i++) {
        snprintf (path, sizeof path, "%s/run/%s.ipc", self->home, sockets [i]);
        unlink (path);
    }
}

//  The first storage worker is up: the daemon set can serve
static void
s_signal_ready (s_broker_t *self)
{
    if (self->ready_fd >= 0) {
        if (write (self->ready_fd, "ready\n", 6) != 6)
            zsys_warning ("broker: could not signal readiness");
        close (self->ready_fd);
        self->ready_fd = -1;
    }
}

static void
s_signal_failure (s_broker_t *self, const char *message)
{
    zsys_error ("broker: %s", message);
    if (self->ready_fd >= 0) {
        dprintf (self->ready_fd, "error: %s\n", message);
        close (self->ready_fd);
        self->ready_fd = -1;
    }
}

static zsock_t *
s_bind (s_broker_t *self, int type, const char *name, int64_t maxmsg)
{
    char endpoint [AIP_PATH_MAX], err [256];
    if (aip_home_endpoint (self->home, name, endpoint, sizeof endpoint, err, sizeof err)) {
        s_signal_failure (self, err);
        return NULL;
    }
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_linger (sock, 0);
    if (maxmsg)
        zsock_set_maxmsgsize (sock, (int) maxmsg);
    if (type == ZMQ_ROUTER)
        zsock_set_router_mandatory (sock, 0);
    if (streq (name, "broker")) {
        //  Clients: a full pipe says so (aip_clients keeps the reply and
        //  counts it) rather than blocking the broker or dropping it
        zsock_set_sndhwm (sock, AIP_CLIENT_SNDHWM);
        zsock_set_router_mandatory (sock, 1);
        zsock_set_sndtimeo (sock, 0);
    }
    if (type == ZMQ_PUB)
        zsock_set_sndhwm (sock, 100000);
    if (zsock_bind (sock, "%s", endpoint) != 0) {
        snprintf (err, sizeof err, "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        s_signal_failure (self, err);
        zsock_destroy (&sock);
    }
    return sock;
}

static s_broker_t *
s_broker_new (zsock_t *pipe, aip_broker_args_t *args)
{
    s_broker_t *self = (s_broker_t *) zmalloc (sizeof (s_broker_t));
    self->pipe = pipe;
    self->args = *args;
    if (!self->args.queue_wait_ms)
        self->args.queue_wait_ms = AIP_QUEUE_WAIT_MS;
    if (!self->args.port)
        self->args.port = 7899;
    snprintf (self->home, sizeof self->home, "%s", args->home);
    self->ready_fd = args->ready_fd;
    self->pk = aip_pack_new ();
    self->jobs = aip_jobs_new ();
    self->budgets = aip_clients_new (AIP_CLIENT_BUDGET);
    self->started_ms = aip_clock_ms ();
    if (args->bin_dir) {
        self->supervisor = aip_supervisor_new (self->home, args->bin_dir);
        aip_supervisor_add (self->supervisor, "storaged", AIP_SVC_STORE, false);
        int workers = args->spawn_workers < 0 ? 0
                    : args->spawn_workers > AIP_MAX_SPAWN_WORKERS ? AIP_MAX_SPAWN_WORKERS
                    : args->spawn_workers;
        //  Started once storaged is ready: the first command waits for
        //  storaged only, not for four spawnd competing for the CPUs
        for (int i = 0; i < workers; i++)
            aip_supervisor_add (self->supervisor, "spawnd", AIP_SVC_SPAWN, true);
        //  relayd keeps public rooms in sync; a build without it has no
        //  public rooms (relay.* requests then fail as unavailable)
        char relayd [AIP_PATH_MAX];
        snprintf (relayd, sizeof relayd, "%s/relayd", args->bin_dir);
        if (access (relayd, X_OK) == 0)
            aip_supervisor_add (self->supervisor, "relayd", AIP_SVC_RELAY, false);
        //  The web view comes back as it was (ai-peer web turned it on)
        char webd [AIP_PATH_MAX];
        snprintf (webd, sizeof webd, "%s/webd", args->bin_dir);
        if (aip_webmode_get (self->home) >= 0 && access (webd, X_OK) == 0)
            aip_supervisor_add (self->supervisor, "webd", AIP_SVC_BROKER, false);
    }
    return self;
}

static void
s_broker_destroy (s_broker_t **self_p)
{
    s_broker_t *self = *self_p;
    if (!self)
        return;
    aip_supervisor_destroy (&self->supervisor);
    aip_workers_destroy (&self->table);
    aip_jobs_destroy (&self->jobs);
    aip_clients_destroy (&self->budgets);
    zsock_destroy (&self->clients);
    zsock_destroy (&self->workers);
    zsock_destroy (&self->events);
    aip_lanmode_destroy (&self->lan);
    if (self->args.write_files)
        s_remove_files (self);
    if (self->ready_fd >= 0)
        close (self->ready_fd);
    aip_pack_destroy (&self->pk);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  The loop's socket handlers

//  One socket the loop watches, and the handler that reads it
typedef struct {
    void *socket;                           //  for zmq_poll, or NULL: not now
    void (*handler) (s_broker_t *self);     //  reads what waits there
} s_reader_t;

//  The actor pipe: $TERM from main
static void
s_recv_pipe (s_broker_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    free (command);
}

//  The handlers drain without polling between messages (each poll is a
//  system call), at most 1000 at a time so that no socket starves the rest
static void
s_recv_workers (s_broker_t *self)
{
    for (int n = 0; n < 1000 && s_handle_worker (self); n++)
        ;
}

static void
s_recv_clients (s_broker_t *self)
{
    for (int n = 0; n < 1000 && s_handle_client (self); n++)
        ;
}

static void
s_recv_lan (s_broker_t *self)
{
    for (int n = 0; self->lan && n < 1000 && s_handle_lan (self); n++)
        ;
}

static void
s_recv_beacon (s_broker_t *self)
{
    if (self->lan)
        aip_lanmode_beacon_recv (self->lan);
}

void
aip_broker (zsock_t *pipe, void *args)
{
    s_broker_t *self = s_broker_new (pipe, (aip_broker_args_t *) args);
    self->clients = s_bind (self, ZMQ_ROUTER, "broker", AIP_MAX_REQUEST);
    self->workers = self->clients ? s_bind (self, ZMQ_ROUTER, "workers", AIP_MAX_REPLY) : NULL;
    self->events = self->workers ? s_bind (self, ZMQ_PUB, "events", 0) : NULL;
    if (self->events)
        self->table = aip_workers_new (self->budgets, self->jobs, self->events, self->home,
                                       self->args.queue_wait_ms);
    if (!self->events) {
        ((aip_broker_args_t *) args)->failed = true;
        zsock_signal (pipe, 1);
        s_broker_destroy (&self);
        return;
    }
    if (self->args.write_files && s_write_files (self)) {
        char message [256];
        snprintf (message, sizeof message, "cannot write daemon.pid in %s: %s", self->home,
                  strerror (errno));
        s_signal_failure (self, message);
        ((aip_broker_args_t *) args)->failed = true;
        zsock_signal (pipe, 1);
        s_broker_destroy (&self);
        return;
    }
    if (self->args.lan) {
        char err [512];
        self->args.lan = false;
        if (s_lan_start (self, self->args.port, err, sizeof err) && self->args.lan_optional)
            zsys_warning ("broker: LAN mode (on last time) cannot start: %s; serving this "
                          "machine only ('ai-peer daemon start --lan' to retry)", err);
        else
        if (!self->args.lan) {
            s_signal_failure (self, err);
            ((aip_broker_args_t *) args)->failed = true;
            zsock_signal (pipe, 1);
            s_broker_destroy (&self);
            return;
        }
    }
    zsock_signal (pipe, 0);
    zsys_info ("broker: serving %s (pid %d, %s mode)", self->home, (int) getpid (),
               self->args.lan ? "lan" : "local");

    while (!self->terminated) {
        s_tick (self);
        //  The loop's table of contents: one handler per socket. Workers
        //  come before clients: their replies free slots for the clients.
        //  LAN mode may start at any time: the table follows.
        s_reader_t readers [] = {
            { zsock_resolve (pipe), s_recv_pipe },
            { zsock_resolve (self->workers), s_recv_workers },
            { zsock_resolve (self->clients), s_recv_clients },
            { self->lan ? zsock_resolve (aip_lanmode_sock (self->lan)) : NULL, s_recv_lan },
            { self->lan ? aip_lanmode_beacon (self->lan) : NULL, s_recv_beacon },
        };
        zmq_pollitem_t items [sizeof readers / sizeof readers [0]];
        s_reader_t *which [sizeof readers / sizeof readers [0]];
        int count = 0;
        for (size_t i = 0; i < sizeof readers / sizeof readers [0]; i++)
            if (readers [i].socket) {
                items [count] = (zmq_pollitem_t) { readers [i].socket, 0, ZMQ_POLLIN, 0 };
                which [count++] = &readers [i];
            }
        int rc = zmq_poll (items, count, s_next_timeout (self));
        if (rc < 0) {
            if (zmq_errno () == EINTR && !zsys_interrupted)
                continue;
            break;                  //  interrupted: main will send $TERM
        }
        for (int i = 0; i < count; i++)
            if (items [i].revents & ZMQ_POLLIN)
                which [i]->handler (self);
        if (self->stopping && !self->terminated) {
            zsys_info ("broker: stop requested");
            zstr_send (pipe, "STOPPED");
            //  Wait for $TERM from main
            char *command = zstr_recv (pipe);
            free (command);
            self->terminated = true;
        }
    }
    zsys_info ("broker: shutting down");
    s_broker_destroy (&self);
}

//  ---------------------------------------------------------------------
//  Self-test: a broker in this process, a worker and a client over ipc

static zsock_t *
s_test_client (const char *home)
{
    char endpoint [AIP_PATH_MAX], err [256];
    aip_home_endpoint (home, "broker", endpoint, sizeof endpoint, err, sizeof err);
    zsock_t *client = zsock_new_dealer (endpoint);
    assert (client);
    zsock_set_rcvtimeo (client, 5000);
    return client;
}

static void
s_test_request (zsock_t *client, uint64_t id, aip_op_t op)
{
    aip_pack_t *pk = aip_pack_new ();
    if (op == AIP_OP_ROOM_GET) {
        aip_request_begin (pk, id, op, 1);
        aip_pack_kstr (pk, "id", "room-000000000001");
    }
    else
        aip_request_begin (pk, id, op, 0);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    zsock_send (client, "b", data, size);
    aip_pack_destroy (&pk);
}

static void
s_test_reply (zsock_t *client, aip_reply_t *rep)
{
    zframe_t *frame = zframe_recv (client);
    assert (frame);
    char err [256];
    assert (aip_reply_decode (zframe_data (frame), zframe_size (frame), rep, err, sizeof err) == 0);
    zframe_destroy (&frame);
}

//  The reply to a request of op, a success checked against op's declared
//  reply fields
static void
s_test_checked (zsock_t *client, aip_op_t op, aip_reply_t *rep)
{
    s_test_reply (client, rep);
    char err [320];
    if (rep->ok && aip_reply_check (op, rep->data, err, sizeof err)) {
        fprintf (stderr, "\n   %s\n", err);
        assert (false);
    }
}

//  A spawn.run whose envelope routes it to tool's worker (its arguments
//  may name another tool: the broker does not read them)
static void
s_test_spawn (zsock_t *client, uint64_t id, const char *tool, const char *arg_tool, bool async)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_request_begin_route (pk, id, AIP_OP_SPAWN_RUN, 2, tool, "room-000000000001", async);
    aip_pack_kstr (pk, "tool", arg_tool);
    aip_pack_kstr (pk, "room_id", "room-000000000001");
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    zsock_send (client, "b", data, size);
    aip_pack_destroy (&pk);
}

static void
s_test_job_op (zsock_t *client, uint64_t id, aip_op_t op, const char *job_id)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_request_begin (pk, id, op, job_id ? 1 : 0);
    if (job_id)
        aip_pack_kstr (pk, "id", job_id);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    zsock_send (client, "b", data, size);
    aip_pack_destroy (&pk);
}

//  What worker sent before has been handled once an event it publishes
//  now reaches sub (one worker's frames are handled in order)
static void
s_test_barrier (aip_worker_t *worker, zsock_t *sub)
{
    static int round;
    char topic [32];
    snprintf (topic, sizeof topic, "room.barrier-%d", ++round);
    bool seen = false;
    for (int i = 0; i < 50 && !seen; i++) {
        aip_worker_event (worker, topic, "evt", 3);
        zmsg_t *ev;
        while (!seen && (ev = zmsg_recv (sub))) {
            seen = zframe_streq (zmsg_first (ev), topic);
            zmsg_destroy (&ev);
        }
    }
    assert (seen);
}

//  The next request a worker gets; returns its tag
static uint64_t
s_test_take (aip_worker_t *worker, zpoller_t *poller, aip_request_t *req)
{
    uint64_t tag = 0, id;
    zframe_t *body = NULL;
    int rc = 0;
    while (rc != 1) {
        assert (zpoller_wait (poller, 5000));
        rc = aip_worker_recv (worker, &tag, &body);
    }
    char err [256];
    assert (aip_request_decode (zframe_data (body), zframe_size (body), req, &id, err, sizeof err) == 0);
    zframe_destroy (&body);
    return tag;
}

void
aip_broker_test (bool verbose)
{
    printf (" * aip_broker: ");
    char home [] = "/tmp/aip_broker_test_XXXXXX";
    assert (mkdtemp (home));
    char err [256];
    assert (aip_home_prepare (home, err, sizeof err) == 0);
    aip_broker_args_t args = { home, NULL, -1, false, 0, false, 300, 0, false, false };
    zactor_t *broker = zactor_new (aip_broker, &args);
    assert (broker);
    zsock_t *client = s_test_client (home);

    //  Every op the broker serves itself has a handler, and no other op
    for (int op = 0; op < AIP_OP_COUNT; op++)
        assert ((s_own_ops [op] != NULL) == (aip_op_service ((aip_op_t) op) == AIP_SVC_BROKER));

    //  Broker's own op
    aip_reply_t rep;
    s_test_request (client, 1, AIP_OP_PING);
    s_test_checked (client, AIP_OP_PING, &rep);
    assert (rep.ok && rep.id == 1);
    aip_reply_free (&rep);

    //  No store worker: the request waits, then fails clearly
    s_test_request (client, 2, AIP_OP_ROOM_LIST);
    s_test_reply (client, &rep);
    assert (!rep.ok && rep.id == 2 && streq (rep.code, AIP_ERR_UNAVAILABLE));
    if (verbose)
        printf ("\n   %s", rep.message);
    aip_reply_free (&rep);

    //  Malformed frames: errors, and the broker still serves
    zsock_send (client, "s", "not msgpack");
    s_test_reply (client, &rep);
    assert (!rep.ok && streq (rep.code, AIP_ERR_MALFORMED));
    if (verbose)
        printf ("\n   %s", rep.message);
    aip_reply_free (&rep);
    zsock_send (client, "ss", "two", "frames");
    s_test_reply (client, &rep);
    assert (!rep.ok && streq (rep.code, AIP_ERR_MALFORMED));
    aip_reply_free (&rep);

    //  A worker: requests are routed to it, replies come back
    char endpoint [AIP_PATH_MAX];
    aip_home_endpoint (home, "workers", endpoint, sizeof endpoint, err, sizeof err);
    aip_worker_t *worker = aip_worker_new (endpoint, AIP_SVC_STORE, 2, "test-store");
    s_test_request (client, 3, AIP_OP_ROOM_LIST);
    zpoller_t *poller = zpoller_new (aip_worker_sock (worker), NULL);
    assert (zpoller_wait (poller, 5000));
    uint64_t tag;
    zframe_t *body;
    int rc;
    while ((rc = aip_worker_recv (worker, &tag, &body)) == 0)
        assert (zpoller_wait (poller, 5000));
    assert (rc == 1);
    aip_request_t req;
    uint64_t id;
    assert (aip_request_decode (zframe_data (body), zframe_size (body), &req, &id, err, sizeof err) == 0);
    assert (req.op == AIP_OP_ROOM_LIST && req.id == 3);
    aip_pack_t *pk = aip_pack_new ();
    aip_reply_ok_begin (pk, req.id);
    aip_pack_str (pk, "routed");
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_worker_reply (worker, tag, data, size);
    aip_request_free (&req);
    zframe_destroy (&body);
    s_test_reply (client, &rep);
    assert (rep.ok && rep.id == 3 && aip_obj_streq (rep.data, "routed"));
    aip_reply_free (&rep);

    //  A worker that leaves while holding a request: the client gets a
    //  clear error at once instead of hanging
    s_test_request (client, 4, AIP_OP_ROOM_GET);
    assert (zpoller_wait (poller, 5000));
    while ((rc = aip_worker_recv (worker, &tag, &body)) == 0)
        assert (zpoller_wait (poller, 5000));
    zframe_destroy (&body);
    aip_worker_bye (worker);
    s_test_reply (client, &rep);
    assert (!rep.ok && rep.id == 4 && streq (rep.code, AIP_ERR_WORKER_LOST));
    if (verbose)
        printf ("\n   %s\n   ", rep.message);
    aip_reply_free (&rep);

    //  Events published by a worker reach subscribers
    zpoller_destroy (&poller);
    aip_worker_destroy (&worker);
    worker = aip_worker_new (endpoint, AIP_SVC_STORE, 1, "test-store-2");
    char events_ep [AIP_PATH_MAX];
    aip_home_endpoint (home, "events", events_ep, sizeof events_ep, err, sizeof err);
    zsock_t *sub = zsock_new_sub (events_ep, "room.");
    zsock_set_rcvtimeo (sub, 200);
    //  A subscription takes effect asynchronously: publish until one arrives
    char *topic = NULL;
    for (int i = 0; i < 50 && !topic; i++) {
        aip_worker_event (worker, "room.x", "evt", 3);
        zmsg_t *ev = zmsg_recv (sub);
        if (ev) {
            topic = zmsg_popstr (ev);
            zmsg_destroy (&ev);
        }
    }
    assert (topic && streq (topic, "room.x"));
    free (topic);

    //  Status lists the worker
    s_test_request (client, 5, AIP_OP_DAEMON_STATUS);
    s_test_checked (client, AIP_OP_DAEMON_STATUS, &rep);
    assert (rep.ok && aip_obj_get_bool (rep.data, "running", false));
    aip_reply_free (&rep);

    //  Asynchronous jobs: answered at once, result held for job.wait,
    //  cancel reaches the worker
    aip_worker_t *spawner = aip_worker_new (endpoint, AIP_SVC_SPAWN, 1, "test-spawn");
    zpoller_t *spoller = zpoller_new (aip_worker_sock (spawner), NULL);
    //  Registered before the first invite: with no spawn worker at all the
    //  broker refuses it at once
    s_test_barrier (spawner, sub);
    char job_id [AIP_MAX_ID + 1];
    s_test_spawn (client, 10, "codex", "codex", true);
    s_test_checked (client, AIP_OP_SPAWN_RUN, &rep);
    assert (rep.ok && rep.id == 10);
    assert (aip_obj_get_str (rep.data, "job", job_id, sizeof job_id, NULL));
    assert (aip_obj_streq (aip_obj_get (rep.data, "what"), "codex in room-000000000001"));
    aip_reply_free (&rep);
    uint64_t job_tag = s_test_take (spawner, spoller, &req);
    //  Waiting: no answer until the worker replies, then under our id
    s_test_job_op (client, 11, AIP_OP_JOB_WAIT, job_id);
    s_test_job_op (client, 12, AIP_OP_JOB_LIST, NULL);
    s_test_checked (client, AIP_OP_JOB_LIST, &rep);
    assert (rep.ok && rep.id == 12);
    const aip_obj_t *jobs = aip_obj_get (rep.data, "jobs");
    assert (aip_obj_size (jobs) == 1);
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (jobs, 0), "state"), "running"));
    aip_reply_free (&rep);
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, req.id);
    //  An answer as spawnd packs it: job.wait passes it on unchanged
    aip_pack_map (pk, 5);
    aip_pack_kstr (pk, "tool", "codex");
    aip_pack_kstr (pk, "response", "the answer");
    aip_pack_kstr (pk, "room", "room-000000000001");
    aip_pack_key (pk, "elapsed_s");
    aip_pack_real (pk, 0.5);
    aip_pack_kbool (pk, "resumed", false);
    data = aip_pack_data (pk, &size);
    aip_worker_reply (spawner, job_tag, data, size);
    aip_request_free (&req);
    s_test_checked (client, AIP_OP_JOB_WAIT, &rep);
    assert (rep.ok && rep.id == 11 && aip_obj_streq (aip_obj_get (rep.data, "response"),
                                                      "the answer"));
    aip_reply_free (&rep);
    //  A finished job answers at once, again
    s_test_job_op (client, 13, AIP_OP_JOB_WAIT, job_id);
    s_test_checked (client, AIP_OP_JOB_WAIT, &rep);
    assert (rep.ok && rep.id == 13 && aip_obj_streq (aip_obj_get (rep.data, "response"),
                                                      "the answer"));
    aip_reply_free (&rep);
    //  Cancel a running job: the worker hears CANCEL for its tag
    s_test_spawn (client, 14, "codex", "codex", true);
    s_test_checked (client, AIP_OP_SPAWN_RUN, &rep);
    assert (aip_obj_get_str (rep.data, "job", job_id, sizeof job_id, NULL));
    aip_reply_free (&rep);
    job_tag = s_test_take (spawner, spoller, &req);
    s_test_job_op (client, 15, AIP_OP_JOB_CANCEL, job_id);
    s_test_checked (client, AIP_OP_JOB_CANCEL, &rep);
    assert (rep.ok && rep.id == 15 && aip_obj_get_bool (rep.data, "cancelled", false));
    aip_reply_free (&rep);
    int64_t deadline = aip_clock_ms () + 5000;
    while (!aip_worker_take_cancel (spawner, job_tag) && aip_clock_ms () < deadline)
        if (zpoller_wait (spoller, 100))
            aip_worker_recv (spawner, &tag, &body);
    aip_pack_reset (pk);
    aip_reply_error (pk, req.id, "cancelled", "codex was cancelled");
    data = aip_pack_data (pk, &size);
    aip_worker_reply (spawner, job_tag, data, size);
    aip_request_free (&req);
    s_test_job_op (client, 16, AIP_OP_JOB_WAIT, job_id);
    s_test_reply (client, &rep);
    assert (!rep.ok && rep.id == 16 && streq (rep.code, "cancelled"));
    aip_reply_free (&rep);
    //  Unknown job
    s_test_job_op (client, 17, AIP_OP_JOB_WAIT, "job-000000000000");
    s_test_reply (client, &rep);
    assert (!rep.ok && streq (rep.code, AIP_ERR_NOT_FOUND));
    aip_reply_free (&rep);

    //  Routed by the envelope: a spawn.run goes to a worker that has the
    //  tool its route names, whatever its arguments say
    aip_worker_t *claude = aip_worker_new (endpoint, AIP_SVC_SPAWN, 1, "test-claude");
    aip_worker_t *codex = aip_worker_new (endpoint, AIP_SVC_SPAWN, 1, "test-codex");
    aip_worker_set_tools (spawner, "gemini");
    aip_worker_set_tools (claude, "claude");
    aip_worker_set_tools (codex, "codex,opencode");
    s_test_barrier (spawner, sub);
    s_test_barrier (claude, sub);
    s_test_barrier (codex, sub);
    zpoller_t *claude_poller = zpoller_new (aip_worker_sock (claude), NULL);
    zpoller_t *codex_poller = zpoller_new (aip_worker_sock (codex), NULL);
    s_test_spawn (client, 20, "codex", "claude", false);
    s_test_spawn (client, 21, "claude", "codex", false);
    tag = s_test_take (codex, codex_poller, &req);
    assert (req.id == 20 && streq (req.route.tool, "codex") && !req.route.async);
    aip_request_free (&req);
    uint64_t claude_tag = s_test_take (claude, claude_poller, &req);
    assert (req.id == 21 && streq (req.route.tool, "claude"));
    aip_request_free (&req);
    for (int i = 0; i < 2; i++) {
        aip_pack_reset (pk);
        aip_reply_ok_begin (pk, 20 + i);
        aip_pack_str (pk, i ? "from claude" : "from codex");
        data = aip_pack_data (pk, &size);
        aip_worker_reply (i ? claude : codex, i ? claude_tag : tag, data, size);
        s_test_reply (client, &rep);
        assert (rep.ok && rep.id == (uint64_t) (20 + i));
        assert (aip_obj_streq (rep.data, i ? "from claude" : "from codex"));
        aip_reply_free (&rep);
    }
    //  A malformed routing fact is refused as malformed: a tool name over
    //  the limit, an async that is not a boolean
    for (int c = 0; c < 2; c++) {
        char long_tool [AIP_MAX_NAME + 2];
        memset (long_tool, 'x', sizeof long_tool - 1);
        long_tool [sizeof long_tool - 1] = 0;
        aip_pack_reset (pk);
        aip_pack_map (pk, 5);
        aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
        aip_pack_kint (pk, "id", 22 + c);
        aip_pack_kstr (pk, "op", aip_op_name (AIP_OP_SPAWN_RUN));
        aip_pack_key (pk, "route");
        aip_pack_map (pk, 1);
        if (c == 0)
            aip_pack_kstr (pk, "tool", long_tool);
        else
            aip_pack_kint (pk, "async", 1);
        aip_pack_key (pk, "a");
        aip_pack_map (pk, 2);
        aip_pack_kstr (pk, "tool", "codex");
        aip_pack_kstr (pk, "room_id", "room-000000000001");
        data = aip_pack_data (pk, &size);
        zsock_send (client, "b", data, size);
        s_test_reply (client, &rep);
        assert (!rep.ok && rep.id == (uint64_t) (22 + c) && streq (rep.code, AIP_ERR_MALFORMED));
        assert (strstr (rep.message, "route"));
        if (verbose)
            printf ("\n   %s", rep.message);
        aip_reply_free (&rep);
    }
    if (verbose)
        printf ("\n   ");
    zpoller_destroy (&claude_poller);
    zpoller_destroy (&codex_poller);
    aip_worker_destroy (&claude);
    aip_worker_destroy (&codex);
    zpoller_destroy (&spoller);
    aip_worker_destroy (&spawner);

    zsock_destroy (&sub);
    aip_pack_destroy (&pk);
    aip_worker_destroy (&worker);
    zsock_destroy (&client);
    zactor_destroy (&broker);
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", home);
    assert (system (cmd) == 0);
    printf ("OK\n");
}
