/*  aip_broker.c — routing broker actor: clients, workers and events.

    The broker owns three classes and routes between them: aip_jobs (the
    asynchronous jobs), aip_supervisor (the worker daemons it starts) and
    aip_lanmode (the CURVE endpoint, beacon and peers of LAN mode). Each
    keeps its own state and hands back what to send; the loop below names
    one handler per socket. */
#include "aip_broker.h"
#include "aip_clients.h"
#include "aip_crypto.h"
#include "aip_frames.h"
#include "aip_home.h"
#include "aip_jobs.h"
#include "aip_lan.h"
#include "aip_lanmode.h"
#include "aip_proto.h"
#include "aip_supervisor.h"
#include "aip_util.h"
#include "aip_webmode.h"
#include "aip_worker.h"

//  A worker connected to us
typedef struct {
    char *key;                  //  hex of its routing id
    zframe_t *routing_id;       //  where to send
    zsock_t *sock;              //  on which socket (ipc workers, or the LAN one)
    bool remote;                //  came in over the LAN socket
    aip_svc_t svc;              //  service it serves
    int slots;                  //  requests it takes at once
    int inflight;               //  requests it holds now
    char *name;                 //  for daemon status
    int pid;                    //  its process
    int64_t expiry;             //  silent past this: dead
    uint64_t processed;         //  requests answered
    char *tools;                //  spawn: ",a,b," the AI tools it has, or NULL (unknown)
} s_worker_t;

//  A request handed to a worker, waiting for its reply
typedef struct {
    uint64_t tag;               //  our handle for it
    zframe_t *client;           //  routing id of the client
    uint64_t request_id;        //  client's request id
    s_worker_t *worker;         //  who holds it
    aip_op_t op;                //  for logs and errors
    char job [160];             //  what it does, for daemon status ("" if nothing to say)
    int64_t since;              //  when it was handed over
    char job_id [AIP_MAX_ID + 1];   //  async job whose result this is, or ""
    size_t cost;                //  charged to its client's budget until it ends
} s_pending_t;

//  A request waiting for a worker of its service
typedef struct {
    zframe_t *client;           //  routing id of the client
    zframe_t *body;             //  the request as received
    uint64_t request_id;        //  client's request id
    aip_op_t op;                //  its operation
    int64_t expiry;             //  give up past this
    char job [160];             //  what it does, for daemon status
    char job_id [AIP_MAX_ID + 1];   //  async job, or ""
    char tool [AIP_MAX_NAME + 1];   //  spawn.run: the tool it needs, or ""
    size_t cost;                //  charged to its client's budget until it ends
} s_queued_t;

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
    zhashx_t *worker_map;       //  key -> s_worker_t
    zlistx_t *worker_list [AIP_SVC_COUNT];    //  workers per service
    zhashx_t *pending;          //  tag -> s_pending_t
    zlistx_t *queue [AIP_SVC_COUNT];          //  waiting requests
    uint64_t next_tag;          //  tags for pending requests
    aip_supervisor_t *supervisor;             //  the daemons we run, or NULL (none)
    int64_t heartbeat_at;       //  next heartbeat to workers
    int64_t started_ms;         //  for uptime
    int ready_fd;               //  start-up pipe, -1 once used
    bool stopping;              //  daemon stop requested
    char stop_reason [600];     //  why, when the start failed ("" for daemon stop)
    bool terminated;            //  leave the loop
    aip_pack_t *pk;             //  scratch packer
    uint64_t routed;            //  requests routed, for status
    aip_jobs_t *jobs;           //  asynchronous jobs (invite --async)
    aip_clients_t *budgets;     //  what each client holds here, in bytes
    int64_t sweep_at;           //  next time idle clients are forgotten
    aip_lanmode_t *lan;         //  LAN mode while it is on, else NULL
    int64_t refused_log_at;     //  next time a refused remote worker is logged
} s_broker_t;

//  ---------------------------------------------------------------------
//  Helpers

static void
s_worker_free (void **item)
{
    s_worker_t *w = (s_worker_t *) *item;
    if (w) {
        zframe_destroy (&w->routing_id);
        free (w->key);
        free (w->name);
        free (w->tools);
        free (w);
        *item = NULL;
    }
}

static void
s_pending_free (void **item)
{
    s_pending_t *p = (s_pending_t *) *item;
    if (p) {
        zframe_destroy (&p->client);
        free (p);
        *item = NULL;
    }
}

static void
s_queued_free (void **item)
{
    s_queued_t *q = (s_queued_t *) *item;
    if (q) {
        zframe_destroy (&q->client);
        zframe_destroy (&q->body);
        free (q);
        *item = NULL;
    }
}

static size_t
s_tag_hash (const void *key)
{
    return (size_t) *(const uint64_t *) key;
}

static int
s_tag_compare (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

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

static void
s_reply_error (s_broker_t *self, zframe_t *client, uint64_t request_id, const char *code,
               const char *message)
{
    aip_pack_reset (self->pk);
    aip_reply_error (self->pk, request_id, code, message);
    size_t size;
    const void *data = aip_pack_data (self->pk, &size);
    s_send_client (self, client, data, size);
}

//  A worker's answer (or our error) goes to its client, or to its job
static void
s_deliver (s_broker_t *self, zframe_t *client, const char *job_id, const void *data, size_t size)
{
    if (*job_id) {
        zmsg_t *out = zmsg_new ();
        aip_jobs_finish (self->jobs, job_id, data, size, out);
        s_send_out (self, out);
        zmsg_destroy (&out);
    }
    else
    if (client)
        s_send_client (self, client, data, size);
}

static void
s_fail_request (s_broker_t *self, zframe_t *client, const char *job_id, uint64_t request_id,
                const char *code, const char *message)
{
    aip_pack_reset (self->pk);
    aip_reply_error (self->pk, request_id, code, message);
    size_t size;
    const void *data = aip_pack_data (self->pk, &size);
    s_deliver (self, client, job_id, data, size);
}

static const char *
s_svc_daemon (aip_svc_t svc)
{
    switch (svc) {
        case AIP_SVC_STORE: return "storaged";
        case AIP_SVC_SPAWN: return "spawnd";
        case AIP_SVC_RELAY: return "relayd";
        default: return "brokerd";
    }
}

//  ---------------------------------------------------------------------
//  Workers

//  Does the worker have the tool? (a worker that did not say might)
static bool
s_worker_has (s_worker_t *w, const char *tool)
{
    if (!tool || !*tool || !w->tools)
        return true;
    char needle [AIP_MAX_NAME + 3];
    snprintf (needle, sizeof needle, ",%s,", tool);
    return strstr (w->tools, needle) != NULL;
}

//  The worker of svc with the most free slots; for an invite (tool), only
//  workers that have the tool, as long as any has it (remote spawn workers
//  run on other machines, with other tools): then a busy one is waited for
static s_worker_t *
s_worker_pick (s_broker_t *self, aip_svc_t svc, const char *tool)
{
    s_worker_t *best = NULL;
    bool anyone_has = false;
    for (s_worker_t *w = (s_worker_t *) zlistx_first (self->worker_list [svc]); w;
         w = (s_worker_t *) zlistx_next (self->worker_list [svc]))
        if (w->tools && s_worker_has (w, tool))
            anyone_has = true;
    for (s_worker_t *w = (s_worker_t *) zlistx_first (self->worker_list [svc]); w;
         w = (s_worker_t *) zlistx_next (self->worker_list [svc])) {
        int free_slots = w->slots - w->inflight;
        if (anyone_has && !s_worker_has (w, tool))
            continue;
        if (free_slots > 0 && (!best || free_slots > best->slots - best->inflight))
            best = w;
    }
    return best;
}

static void
s_dispatch (s_broker_t *self, s_worker_t *worker, zframe_t **client_p, zframe_t **body_p,
            uint64_t request_id, aip_op_t op, const char *job, const char *job_id, size_t cost)
{
    s_pending_t *p = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    p->tag = ++self->next_tag;
    snprintf (p->job_id, sizeof p->job_id, "%s", job_id);
    if (*job_id)
        aip_jobs_started (self->jobs, job_id, p->tag);
    snprintf (p->job, sizeof p->job, "%s", job ? job : "");
    p->since = aip_clock_ms ();
    p->client = *client_p;
    *client_p = NULL;
    p->request_id = request_id;
    p->worker = worker;
    p->op = op;
    p->cost = cost;
    zhashx_insert (self->pending, &p->tag, p);
    worker->inflight++;
    self->routed++;

    aip_frames_send (worker->sock, worker->routing_id, AIP_FRAME_REQ, p->tag, NULL, body_p);
}

//  Hand queued requests of svc to workers with free slots, in order; an
//  invite waiting for a tool's worker does not hold up one for another tool
static void
s_drain_queue (s_broker_t *self, aip_svc_t svc)
{
    s_queued_t *q = (s_queued_t *) zlistx_first (self->queue [svc]);
    while (q) {
        s_worker_t *worker = s_worker_pick (self, svc, q->tool);
        if (!worker) {
            if (!*q->tool)
                break;
            q = (s_queued_t *) zlistx_next (self->queue [svc]);
            continue;
        }
        s_dispatch (self, worker, &q->client, &q->body, q->request_id, q->op, q->job, q->job_id,
                    q->cost);
        zlistx_delete (self->queue [svc], zlistx_cursor (self->queue [svc]));
        q = (s_queued_t *) zlistx_first (self->queue [svc]);
    }
}

//  Our beacon tells the AI tools of this machine: those the local spawn
//  workers said they have in their READY
static void
s_beacon_tools (s_broker_t *self)
{
    if (!self->lan)
        return;
    char tools [512] = "";
    size_t len = 0;
    for (s_worker_t *w = (s_worker_t *) zlistx_first (self->worker_list [AIP_SVC_SPAWN]); w;
         w = (s_worker_t *) zlistx_next (self->worker_list [AIP_SVC_SPAWN])) {
        if (w->remote || !w->tools)
            continue;
        //  w->tools is ",a,b,": add each tool not listed yet
        char copy [1024];
        snprintf (copy, sizeof copy, "%s", w->tools);
        for (char *tool = strtok (copy, ","); tool; tool = strtok (NULL, ",")) {
            char needle [AIP_MAX_NAME + 3];
            snprintf (needle, sizeof needle, ",%s,", tool);
            char listed [sizeof tools + 2];
            snprintf (listed, sizeof listed, ",%s,", tools);
            if (!strstr (listed, needle) && len + strlen (tool) + 2 < sizeof tools)
                len += (size_t) snprintf (tools + len, sizeof tools - len, "%s%s",
                                          len ? "," : "", tool);
        }
    }
    aip_lanmode_set_tools (self->lan, tools);
}

//  A worker is gone: fail what it held, forget it
static void
s_worker_drop (s_broker_t *self, s_worker_t *worker, const char *why)
{
    zsys_warning ("broker: %s worker %s (pid %d) lost: %s; failing %d in-flight request(s)",
                  aip_svc_name (worker->svc), worker->name, worker->pid, why, worker->inflight);
    zlistx_t *tags = zlistx_new ();
    for (s_pending_t *p = (s_pending_t *) zhashx_first (self->pending); p;
         p = (s_pending_t *) zhashx_next (self->pending))
        if (p->worker == worker)
            zlistx_add_end (tags, p);
    for (s_pending_t *p = (s_pending_t *) zlistx_first (tags); p;
         p = (s_pending_t *) zlistx_next (tags)) {
        char message [256];
        snprintf (message, sizeof message, "%s stopped while handling '%s' (%s); it is being "
                  "restarted — retry the command", s_svc_daemon (worker->svc),
                  aip_op_name (p->op), why);
        uint64_t tag = p->tag;
        s_fail_request (self, p->client, p->job_id, p->request_id, AIP_ERR_WORKER_LOST, message);
        aip_clients_release (self->budgets, p->client, p->cost);
        zhashx_delete (self->pending, &tag);
    }
    zlistx_destroy (&tags);
    void *handle = zlistx_find (self->worker_list [worker->svc], worker);
    if (handle)
        zlistx_detach (self->worker_list [worker->svc], handle);
    zhashx_delete (self->worker_map, worker->key);
    s_beacon_tools (self);
}

static void
s_worker_ready (s_broker_t *self, zsock_t *sock, zframe_t *routing_id, const char *key,
                zframe_t *body, bool remote)
{
    char err [256];
    aip_doc_t *doc = body ? aip_doc_decode (zframe_data (body), zframe_size (body), err, sizeof err) : NULL;
    if (!doc) {
        zsys_warning ("broker: malformed READY from a worker: %s", body ? err : "no body");
        return;
    }
    const aip_obj_t *root = aip_doc_root (doc);
    size_t len;
    const char *svcname = aip_obj_str (aip_obj_get (root, "svc"), &len);
    int svc = svcname ? aip_svc_lookup (svcname, len) : -1;
    int64_t slots = aip_obj_get_int (root, "slots", 1);
    if (svc <= AIP_SVC_BROKER || slots < 1 || slots > 100000) {
        zsys_warning ("broker: READY with unknown service or bad slots; ignored");
        aip_doc_destroy (&doc);
        return;
    }
    //  Another machine may only serve spawn, and only with the worker token
    char token [AIP_MAX_NAME + 1];
    if (remote && (svc != AIP_SVC_SPAWN
                   || !aip_obj_get_str (root, "token", token, sizeof token, NULL)
                   || !self->lan
                   || !aip_lanmode_worker_token_ok (self->lan, token, strlen (token)))) {
        //  A refused worker asks again every second: say it now and then
        if (aip_clock_ms () >= self->refused_log_at) {
            zsys_warning ("broker: a remote %s worker was refused: %s",
                          aip_svc_name ((aip_svc_t) svc),
                          svc != AIP_SVC_SPAWN ? "only spawn workers may connect over the LAN"
                                               : "wrong or missing worker token");
            self->refused_log_at = aip_clock_ms () + 30000;
        }
        aip_doc_destroy (&doc);
        return;
    }
    //  The AI tools a spawn worker has: ",a,b," for an exact match
    char tools [1024];
    const char *said = aip_obj_get_str (root, "tools", tools + 1, sizeof tools - 2, NULL);
    if (said) {
        tools [0] = ',';
        strcat (tools, ",");
    }
    s_worker_t *old = (s_worker_t *) zhashx_lookup (self->worker_map, key);
    if (old) {
        //  The same connection says more about itself: what it holds stays
        old->slots = (int) slots;
        free (old->tools);
        old->tools = said ? strdup (tools) : NULL;
        old->expiry = aip_clock_ms () + AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS;
        aip_doc_destroy (&doc);
        s_beacon_tools (self);
        s_drain_queue (self, old->svc);
        return;
    }
    s_worker_t *w = (s_worker_t *) zmalloc (sizeof (s_worker_t));
    w->tools = said ? strdup (tools) : NULL;
    w->key = strdup (key);
    w->routing_id = zframe_dup (routing_id);
    w->sock = sock;
    w->remote = remote;
    w->svc = (aip_svc_t) svc;
    w->slots = (int) slots;
    char name [64];
    w->name = strdup (aip_obj_get_str (root, "name", name, sizeof name, "?"));
    w->pid = (int) aip_obj_get_int (root, "pid", 0);
    w->expiry = aip_clock_ms () + AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS;
    zhashx_insert (self->worker_map, key, w);
    zlistx_add_end (self->worker_list [svc], w);
    zsys_info ("broker: %s%s worker %s (pid %d) ready with %d slot(s)", remote ? "remote " : "",
               aip_svc_name (w->svc), w->name, w->pid, w->slots);
    aip_doc_destroy (&doc);
    s_beacon_tools (self);
    s_drain_queue (self, w->svc);

    //  Storage is up: start the spawn workers that wait for it
    if (w->svc == AIP_SVC_STORE && self->supervisor)
        aip_supervisor_release (self->supervisor, AIP_SVC_SPAWN);
    //  First storage worker up: the daemon set can serve
    if (self->ready_fd >= 0 && w->svc == AIP_SVC_STORE) {
        if (write (self->ready_fd, "ready\n", 6) != 6)
            zsys_warning ("broker: could not signal readiness");
        close (self->ready_fd);
        self->ready_fd = -1;
    }
}

static void
s_worker_reply (s_broker_t *self, s_worker_t *worker, uint64_t tag, zframe_t *body)
{
    s_pending_t *p = (s_pending_t *) zhashx_lookup (self->pending, &tag);
    if (!p || p->worker != worker) {
        zsys_debug ("broker: late reply %llu from %s dropped", (unsigned long long) tag,
                    worker->name);
        return;
    }
    s_deliver (self, p->client, p->job_id, zframe_data (body), zframe_size (body));
    aip_clients_release (self->budgets, p->client, p->cost);
    zhashx_delete (self->pending, &tag);
    worker->inflight--;
    worker->processed++;
    s_drain_queue (self, worker->svc);
}

//  Handle one message from a worker on sock (destroys it)
static void
s_worker_message (s_broker_t *self, zsock_t *sock, zmsg_t *msg, bool remote)
{
    zframe_t *routing_id = zmsg_pop (msg);
    if (!routing_id) {
        zsys_warning ("broker: empty message on the worker socket");
        zmsg_destroy (&msg);
        return;
    }
    //  Routing ids of the two sockets may coincide: keys tell them apart
    char *hex = zframe_strhex (routing_id);
    char *key = zsys_sprintf ("%s%s", remote ? "L" : "", hex);
    free (hex);
    s_worker_t *worker = (s_worker_t *) zhashx_lookup (self->worker_map, key);
    aip_frames_t frames;
    char err [128];
    bool valid = aip_frames_decode (&msg, AIP_FRAME_F_WORKER, &frames, err, sizeof err) == 0;
    if (valid && frames.type == AIP_FRAME_READY)
        s_worker_ready (self, sock, routing_id, key, frames.body, remote);
    else
    if (!worker)
        //  Not registered (we restarted, or it was dropped): ask it to
        //  register again
        aip_frames_send (sock, routing_id, AIP_FRAME_BYE, 0, NULL, NULL);
    else {
        worker->expiry = aip_clock_ms () + AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS;
        if (!valid)
            zsys_warning ("broker: malformed frames from worker %s: %s", worker->name, err);
        else
        if (frames.type == AIP_FRAME_REPLY)
            s_worker_reply (self, worker, frames.tag, frames.body);
        else
        if (frames.type == AIP_FRAME_EVENT) {
            //  [topic][body] out on PUB, unchanged
            zmsg_t *event = zmsg_new ();
            zmsg_append (event, &frames.topic);
            zmsg_append (event, &frames.body);
            zmsg_send (&event, self->events);
        }
        else
        if (frames.type == AIP_FRAME_BYE)
            s_worker_drop (self, worker, "said goodbye");
    }
    aip_frames_free (&frames);
    free (key);
    zframe_destroy (&routing_id);
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
//  Broker's own operations

//  Was the worker started by us (one of the supervised children)?
static bool
s_worker_ours (s_broker_t *self, s_worker_t *w)
{
    const aip_child_t *c = self->supervisor ? aip_supervisor_find (self->supervisor, w->pid)
                                            : NULL;
    return c && c->svc == w->svc;
}

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

//  A spawn worker's tools, as its READY said them: an array of names (so
//  the CLI can tell an unknown tool from one a LAN worker serves), or nil
static void
s_pack_tools (aip_pack_t *pk, const s_worker_t *w)
{
    aip_pack_key (pk, "tools");
    if (!w || !w->tools) {
        aip_pack_nil (pk);
        return;
    }
    //  ",a,b," has a name between each two commas; ",," (no tools) none
    size_t count = 0;
    for (const char *c = w->tools + 1; *c; c++)
        count += *c == ',' && c [-1] != ',';
    aip_pack_array (pk, count);
    for (const char *from = w->tools + 1; *from; ) {
        const char *comma = strchr (from, ',');
        if (comma > from)
            aip_pack_strn (pk, from, (size_t) (comma - from));
        from = comma + 1;
    }
}

static void
s_status_reply (s_broker_t *self, zframe_t *client, uint64_t request_id)
{
    aip_pack_t *pk = self->pk;
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, request_id);
    aip_pack_map (pk, self->lan ? 8 : 7);
    aip_pack_kbool (pk, "running", true);
    aip_pack_kint (pk, "workers", s_spawn_children (self));
    if (self->lan) {
        aip_pack_key (pk, "lan");
        aip_lanmode_pack_status (self->lan, pk);
    }
    aip_pack_kint (pk, "pid", getpid ());
    aip_pack_kstr (pk, "mode", self->args.lan ? "lan" : "local");
    aip_pack_kint (pk, "uptime_s", (aip_clock_ms () - self->started_ms) / 1000);
    aip_pack_kint (pk, "requests", (int64_t) self->routed);
    aip_pack_key (pk, "daemons");
    size_t children = self->supervisor ? aip_supervisor_size (self->supervisor) : 0;
    size_t count = 1 + children;
    //  Workers not started by us (remote or manual) are listed too
    for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
         w = (s_worker_t *) zhashx_next (self->worker_map))
        if (!s_worker_ours (self, w))
            count++;
    aip_pack_array (pk, count);
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "name", "brokerd");
    aip_pack_kint (pk, "pid", getpid ());
    aip_pack_kstr (pk, "state", "running");
    aip_pack_kint (pk, "queued", (int64_t) (zlistx_size (self->queue [AIP_SVC_STORE])
                                          + zlistx_size (self->queue [AIP_SVC_SPAWN])
                                          + zlistx_size (self->queue [AIP_SVC_RELAY])));
    for (size_t i = 0; i < children; i++) {
        const aip_child_t *c = aip_supervisor_child (self->supervisor, i);
        s_worker_t *worker = NULL;
        for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
             w = (s_worker_t *) zhashx_next (self->worker_map))
            if (c->pid && w->pid == c->pid)
                worker = w;
        //  A spawn worker's current job
        s_pending_t *job = NULL;
        for (s_pending_t *p = (s_pending_t *) zhashx_first (self->pending); worker && p;
             p = (s_pending_t *) zhashx_next (self->pending))
            if (p->worker == worker && *p->job)
                job = p;
        aip_pack_map (pk, c->svc == AIP_SVC_SPAWN ? 9 : 7);
        aip_pack_kstr (pk, "name", c->name);
        aip_pack_kint (pk, "pid", c->pid);
        if (c->svc == AIP_SVC_SPAWN) {
            aip_pack_key (pk, "job");
            if (job) {
                aip_pack_map (pk, 2);
                aip_pack_kstr (pk, "what", job->job);
                aip_pack_kint (pk, "running_s", (aip_clock_ms () - job->since) / 1000);
            }
            else
                aip_pack_nil (pk);
            s_pack_tools (pk, worker);
        }
        aip_pack_kstr (pk, "service", aip_svc_name (c->svc));
        //  webd is a client, never a worker: running is all it can be
        aip_pack_kstr (pk, "state", !c->pid ? "restarting" : worker ? "ready"
                                  : c->svc == AIP_SVC_BROKER ? "running" : "starting");
        aip_pack_kint (pk, "restarts", c->restarts);
        aip_pack_kint (pk, "inflight", worker ? worker->inflight : 0);
        aip_pack_kint (pk, "processed", worker ? (int64_t) worker->processed : 0);
    }
    for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
         w = (s_worker_t *) zhashx_next (self->worker_map)) {
        if (s_worker_ours (self, w))
            continue;
        aip_pack_map (pk, w->svc == AIP_SVC_SPAWN ? 8 : 7);
        aip_pack_kstr (pk, "name", w->name);
        aip_pack_kint (pk, "pid", w->pid);
        if (w->svc == AIP_SVC_SPAWN)
            s_pack_tools (pk, w);
        aip_pack_kbool (pk, "remote", w->remote);
        aip_pack_kstr (pk, "service", aip_svc_name (w->svc));
        aip_pack_kstr (pk, "state", "ready");
        aip_pack_kint (pk, "inflight", w->inflight);
        aip_pack_kint (pk, "processed", (int64_t) w->processed);
    }
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    s_send_client (self, client, data, size);
}

//  ---------------------------------------------------------------------
//  LAN mode (aip_lanmode): turned on at start or by lan.start

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
    s_beacon_tools (self);
    if (self->args.write_files && s_write_files (self))
        zsys_warning ("broker: cannot update daemon.json");
    return 0;
}

//  lan.start: LAN mode on a running broker (room create --lan)
static void
s_lan_start_reply (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    int port = (int) aip_obj_get_int (req->args, "port", self->lan ? self->args.port
                                                                  : AIP_LAN_DEFAULT_PORT);
    char err [512];
    if (s_lan_start (self, port, err, sizeof err)) {
        s_reply_error (self, client, req->id, AIP_ERR_INVALID, err);
        return;
    }
    aip_pack_t *pk = self->pk;
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, req->id);
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "mode", "lan");
    aip_pack_kstr (pk, "address", aip_lanmode_address (self->lan));
    aip_pack_kint (pk, "port", self->args.port);
    aip_pack_kstr (pk, "public_key", aip_lanmode_key_hex (self->lan));
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    s_send_client (self, client, data, size);
}

//  ---------------------------------------------------------------------
//  The web view: webd is one more supervised child while web/mode says so

//  web.start: remember the port, (re)start webd on it; answers {port, pid}
//  (the port webd actually listens on is in run/web.json once it does)
static void
s_web_start_reply (s_broker_t *self, zframe_t *client, const aip_request_t *req)
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
    aip_pack_t *pk = self->pk;
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, req->id);
    aip_pack_map (pk, 2);
    aip_pack_kint (pk, "port", port);
    aip_pack_kint (pk, "pid", pid > 0 ? pid : 0);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    s_send_client (self, client, data, size);
}

//  web.stop: webd stops and is forgotten (not started again)
static void
s_web_stop_reply (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    pid_t pid = self->supervisor ? aip_supervisor_remove (self->supervisor, "webd") : -1;
    if (aip_webmode_set (self->home, -1)) {
        s_reply_error (self, client, req->id, AIP_ERR_INTERNAL,
                       "cannot remove web/mode from the ai-peer home");
        return;
    }
    aip_pack_t *pk = self->pk;
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, req->id);
    aip_pack_map (pk, 2);
    aip_pack_kstr (pk, "status", pid > 0 ? "stopped" : "not running");
    aip_pack_kint (pk, "pid", pid > 0 ? pid : 0);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    s_send_client (self, client, data, size);
}

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

//  job.list, job.wait, job.cancel: aip_jobs answers; a cancel may need
//  its running request's worker told, or its queued request dropped
static void
s_job_request (s_broker_t *self, zframe_t *client, const aip_request_t *req)
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
        s_pending_t *p = tag ? (s_pending_t *) zhashx_lookup (self->pending, &tag) : NULL;
        if (p) {
            //  The worker kills the tool and answers "cancelled"
            aip_frames_send (p->worker->sock, p->worker->routing_id, AIP_FRAME_CANCEL, p->tag,
                             NULL, NULL);
        }
        char id [AIP_MAX_ID + 1];
        aip_obj_get_str (req->args, "id", id, sizeof id, "");
        zlistx_t *queue = self->queue [AIP_SVC_SPAWN];
        for (s_queued_t *q = (s_queued_t *) zlistx_first (queue); dequeue && q;
             q = (s_queued_t *) zlistx_next (queue))
            if (streq (q->job_id, id)) {
                zlistx_delete (queue, zlistx_cursor (queue));
                break;
            }
    }
    s_send_out (self, out);
    zmsg_destroy (&out);
}

static void
s_handle_own (s_broker_t *self, zframe_t *client, const aip_request_t *req)
{
    if (req->op == AIP_OP_DAEMON_STATUS) {
        s_status_reply (self, client, req->id);
        return;
    }
    if (req->op == AIP_OP_JOB_LIST || req->op == AIP_OP_JOB_WAIT
    ||  req->op == AIP_OP_JOB_CANCEL) {
        s_job_request (self, client, req);
        return;
    }
    if (req->op == AIP_OP_LAN_START) {
        s_lan_start_reply (self, client, req);
        return;
    }
    if (req->op == AIP_OP_WEB_START) {
        s_web_start_reply (self, client, req);
        return;
    }
    if (req->op == AIP_OP_WEB_STOP) {
        s_web_stop_reply (self, client, req);
        return;
    }
    aip_pack_reset (self->pk);
    aip_reply_ok_begin (self->pk, req->id);
    if (req->op == AIP_OP_LAN_PEERS)
        aip_lanmode_pack_peers (self->lan, self->pk);
    else
    if (req->op == AIP_OP_DAEMON_STOP) {
        aip_pack_map (self->pk, 2);
        aip_pack_kstr (self->pk, "status", "stopping");
        aip_pack_kint (self->pk, "pid", getpid ());
        self->stopping = true;
    }
    else {
        aip_pack_map (self->pk, 1);
        aip_pack_kstr (self->pk, "pong", AIP_VERSION_STRING);
    }
    size_t size;
    const void *data = aip_pack_data (self->pk, &size);
    s_send_client (self, client, data, size);
}

//  Handle one request from a client (destroys msg). A remote one (on the
//  LAN socket) may call only the lan.* operations, unless it shows the
//  worker token (a remote spawn worker reading and answering in rooms).
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
    if (remote && !aip_op_remote (req.op)) {
        size_t alen = 0;
        const char *auth = req.auth ? aip_obj_str (req.auth, &alen) : NULL;
        bool worker = self->lan && aip_lanmode_worker_token_ok (self->lan, auth, alen)
                   && (aip_op_flags (req.op) & AIP_OP_F_REMOTE_WORKER);
        if (!worker) {
            zsys_warning ("broker: '%s' from another machine refused", aip_op_name (req.op));
            char message [256];
            snprintf (message, sizeof message, "'%s' is not allowed from another machine",
                      aip_op_name (req.op));
            s_reply_error (self, client, req.id, AIP_ERR_INVALID, message);
            aip_request_free (&req);
            goto cleanup;
        }
    }
    aip_svc_t svc = aip_op_service (req.op);
    aip_op_t op = req.op;
    uint64_t request_id = req.id;
    //  The envelope's routing facts pick the worker and describe a spawn
    //  job in daemon status; the service's arguments are its own
    char job [160] = "", tool [AIP_MAX_NAME + 1];
    snprintf (tool, sizeof tool, "%s", req.route.tool);
    if (op == AIP_OP_SPAWN_RUN)
        snprintf (job, sizeof job, "%.64s in %s", *tool ? tool : "?",
                  *req.route.room_id ? req.route.room_id : "?");
    else
    if (op == AIP_OP_SPAWN_DISCOVER)
        snprintf (job, sizeof job, "discover");
    bool async = op == AIP_OP_SPAWN_RUN && req.route.async;
    if (svc == AIP_SVC_BROKER) {
        s_handle_own (self, client, &req);
        aip_request_free (&req);
        goto cleanup;
    }
    aip_request_free (&req);
    if (self->stopping) {
        //  A command that meets a broker giving up on a failed start gets
        //  the reason, as the one that started it did
        char message [700];
        snprintf (message, sizeof message, "the ai-peer daemons are stopping%s%s",
                  *self->stop_reason ? ": " : "", self->stop_reason);
        s_reply_error (self, client, request_id, AIP_ERR_UNAVAILABLE, message);
        goto cleanup;
    }
    //  No spawnd of ours (--workers 0) and no other worker connected: an
    //  invite would wait for a worker that nobody starts
    if (svc == AIP_SVC_SPAWN && zlistx_size (self->worker_list [svc]) == 0
    &&  s_spawn_children (self) == 0) {
        s_reply_error (self, client, request_id, AIP_ERR_UNAVAILABLE, AIP_NO_SPAWN_WORKER);
        goto cleanup;
    }
    //  Within its budget, or refused before any work is done (an async
    //  job's client is answered at once: the job holds nothing for it)
    size_t cost = async ? 0 : aip_clients_cost (op, zframe_size (body));
    if (cost && aip_clients_admit (self->budgets, client, cost, err, sizeof err)) {
        s_reply_error (self, client, request_id, AIP_ERR_UNAVAILABLE, err);
        goto cleanup;
    }
    char job_id [AIP_MAX_ID + 1] = "";
    if (async) {
        //  The client gets the job id now; the result waits in the job
        const char *async_job = aip_jobs_add (self->jobs, job);
        if (!async_job) {
            s_reply_error (self, client, request_id, AIP_ERR_UNAVAILABLE, "too many "
                           "unfinished jobs: wait for some or cancel them ('ai-peer jobs')");
            goto cleanup;
        }
        snprintf (job_id, sizeof job_id, "%s", async_job);
        aip_pack_reset (self->pk);
        aip_reply_ok_begin (self->pk, request_id);
        aip_pack_map (self->pk, 3);
        aip_pack_kstr (self->pk, "job", job_id);
        aip_pack_kstr (self->pk, "status", "queued");
        aip_pack_kstr (self->pk, "what", job);
        size_t size;
        const void *data = aip_pack_data (self->pk, &size);
        s_send_client (self, client, data, size);
        zframe_destroy (&client);
    }
    s_worker_t *worker = s_worker_pick (self, svc, tool);
    if (worker && zlistx_size (self->queue [svc]) == 0)
        s_dispatch (self, worker, &client, &body, request_id, op, job, job_id, cost);
    else
    if (zlistx_size (self->queue [svc]) >= AIP_MAX_QUEUED) {
        char message [256];
        snprintf (message, sizeof message, "%s is overloaded (%d requests waiting): retry later",
                  s_svc_daemon (svc), AIP_MAX_QUEUED);
        s_fail_request (self, client, job_id, request_id, AIP_ERR_UNAVAILABLE, message);
        aip_clients_release (self->budgets, client, cost);
    }
    else {
        s_queued_t *q = (s_queued_t *) zmalloc (sizeof (s_queued_t));
        q->client = client;
        q->body = body;
        client = body = NULL;
        q->request_id = request_id;
        q->op = op;
        q->cost = cost;
        snprintf (q->job, sizeof q->job, "%s", job);
        snprintf (q->job_id, sizeof q->job_id, "%s", job_id);
        snprintf (q->tool, sizeof q->tool, "%s", tool);
        //  Invites last minutes: a spawn request waits longer for a worker
        q->expiry = aip_clock_ms () + (svc == AIP_SVC_SPAWN && self->args.queue_wait_ms
                                       == AIP_QUEUE_WAIT_MS ? AIP_SPAWN_QUEUE_WAIT_MS
                                                            : self->args.queue_wait_ms);
        zlistx_add_end (self->queue [svc], q);
        //  Queued behind invites that wait for another tool's worker, it
        //  may still go at once
        s_drain_queue (self, svc);
    }
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
        for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
             w = (s_worker_t *) zhashx_next (self->worker_map))
            if (w->pid == exit.pid) {
                s_worker_drop (self, w, exit.why);
                break;
            }
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
    //  Heartbeats to workers, and expiry of silent ones
    if (now >= self->heartbeat_at) {
        zlistx_t *dead = zlistx_new ();
        for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
             w = (s_worker_t *) zhashx_next (self->worker_map)) {
            if (now >= w->expiry)
                zlistx_add_end (dead, w);
            else
                aip_frames_send (w->sock, w->routing_id, AIP_FRAME_HB, 0, NULL, NULL);
        }
        for (s_worker_t *w = (s_worker_t *) zlistx_first (dead); w;
             w = (s_worker_t *) zlistx_next (dead))
            s_worker_drop (self, w, "no heartbeat");
        zlistx_destroy (&dead);
        self->heartbeat_at = now + AIP_HEARTBEAT_MS;
    }
    //  Requests that waited too long for a worker
    for (int svc = 0; svc < AIP_SVC_COUNT; svc++) {
        s_queued_t *q;
        while ((q = (s_queued_t *) zlistx_first (self->queue [svc])) && now >= q->expiry) {
            char message [256];
            snprintf (message, sizeof message, "%s is not available (no %s worker answered within "
                      "%d s): see %s/daemon.log", s_svc_daemon ((aip_svc_t) svc),
                      aip_svc_name ((aip_svc_t) svc), self->args.queue_wait_ms / 1000, self->home);
            void *cursor = zlistx_cursor (self->queue [svc]);
            s_fail_request (self, q->client, q->job_id, q->request_id, AIP_ERR_UNAVAILABLE, message);
            aip_clients_release (self->budgets, q->client, q->cost);
            zlistx_delete (self->queue [svc], cursor);
        }
    }
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
    int64_t next = self->heartbeat_at;
    for (int svc = 0; svc < AIP_SVC_COUNT; svc++) {
        s_queued_t *q = (s_queued_t *) zlistx_first (self->queue [svc]);
        if (q && q->expiry < next)
            next = q->expiry;
    }
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
    self->worker_map = zhashx_new ();
    zhashx_set_destructor (self->worker_map, s_worker_free);
    self->pending = zhashx_new ();
    zhashx_set_key_hasher (self->pending, s_tag_hash);
    zhashx_set_key_comparator (self->pending, s_tag_compare);
    zhashx_set_key_duplicator (self->pending, NULL);
    zhashx_set_key_destructor (self->pending, NULL);
    zhashx_set_destructor (self->pending, s_pending_free);
    for (int svc = 0; svc < AIP_SVC_COUNT; svc++) {
        self->worker_list [svc] = zlistx_new ();
        self->queue [svc] = zlistx_new ();
        zlistx_set_destructor (self->queue [svc], s_queued_free);
    }
    self->jobs = aip_jobs_new ();
    self->budgets = aip_clients_new (AIP_CLIENT_BUDGET);
    self->started_ms = aip_clock_ms ();
    self->heartbeat_at = aip_clock_ms () + AIP_HEARTBEAT_MS;
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
    zhashx_destroy (&self->pending);
    aip_jobs_destroy (&self->jobs);
    aip_clients_destroy (&self->budgets);
    for (int svc = 0; svc < AIP_SVC_COUNT; svc++) {
        zlistx_destroy (&self->worker_list [svc]);
        zlistx_destroy (&self->queue [svc]);
    }
    zhashx_destroy (&self->worker_map);
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

    //  Broker's own op
    aip_reply_t rep;
    s_test_request (client, 1, AIP_OP_PING);
    s_test_reply (client, &rep);
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
    s_test_reply (client, &rep);
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
    s_test_reply (client, &rep);
    assert (rep.ok && rep.id == 10);
    assert (aip_obj_get_str (rep.data, "job", job_id, sizeof job_id, NULL));
    assert (aip_obj_streq (aip_obj_get (rep.data, "what"), "codex in room-000000000001"));
    aip_reply_free (&rep);
    uint64_t job_tag = s_test_take (spawner, spoller, &req);
    //  Waiting: no answer until the worker replies, then under our id
    s_test_job_op (client, 11, AIP_OP_JOB_WAIT, job_id);
    s_test_job_op (client, 12, AIP_OP_JOB_LIST, NULL);
    s_test_reply (client, &rep);
    assert (rep.ok && rep.id == 12);
    const aip_obj_t *jobs = aip_obj_get (rep.data, "jobs");
    assert (aip_obj_size (jobs) == 1);
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (jobs, 0), "state"), "running"));
    aip_reply_free (&rep);
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, req.id);
    aip_pack_str (pk, "the answer");
    data = aip_pack_data (pk, &size);
    aip_worker_reply (spawner, job_tag, data, size);
    aip_request_free (&req);
    s_test_reply (client, &rep);
    assert (rep.ok && rep.id == 11 && aip_obj_streq (rep.data, "the answer"));
    aip_reply_free (&rep);
    //  A finished job answers at once, again
    s_test_job_op (client, 13, AIP_OP_JOB_WAIT, job_id);
    s_test_reply (client, &rep);
    assert (rep.ok && rep.id == 13 && aip_obj_streq (rep.data, "the answer"));
    aip_reply_free (&rep);
    //  Cancel a running job: the worker hears CANCEL for its tag
    s_test_spawn (client, 14, "codex", "codex", true);
    s_test_reply (client, &rep);
    assert (aip_obj_get_str (rep.data, "job", job_id, sizeof job_id, NULL));
    aip_reply_free (&rep);
    job_tag = s_test_take (spawner, spoller, &req);
    s_test_job_op (client, 15, AIP_OP_JOB_CANCEL, job_id);
    s_test_reply (client, &rep);
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
