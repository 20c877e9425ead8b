/*  aip_workers.c — the broker's worker table (see aip_workers.h): READY,
    heartbeats and BYE, picking a worker, the requests workers hold and the
    queues of those that wait for one. */
#include "aip_workers.h"
#include "aip_frames.h"
#include "aip_home.h"
#include "aip_util.h"
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
    zframe_t *client;           //  routing id of the client, or NULL (an async job's)
    s_worker_t *worker;         //  who holds it
    aip_work_t work;            //  what it is
    int64_t since;              //  when it was handed over
} s_pending_t;

//  A request waiting for a worker of its service
typedef struct {
    zframe_t *client;           //  routing id of the client, or NULL (an async job's)
    zframe_t *body;             //  the request as received
    aip_work_t work;            //  what it is
    int64_t expiry;             //  give up past this
} s_queued_t;

struct _aip_workers_t {
    aip_clients_t *budgets;     //  the clients' budgets (the broker's)
    aip_jobs_t *jobs;           //  async jobs (the broker's)
    zsock_t *events;            //  PUB for the workers' events (the broker's)
    char home [AIP_PATH_MAX];   //  $AI_PEERS_HOME, named in errors
    int queue_wait_ms;          //  how long a request waits for a worker
    zhashx_t *worker_map;       //  key -> s_worker_t
    zlistx_t *worker_list [AIP_SVC_COUNT];    //  workers per service
    zhashx_t *pending;          //  tag -> s_pending_t
    zlistx_t *queue [AIP_SVC_COUNT];          //  waiting requests per service
    uint64_t next_tag;          //  tags for pending requests
    uint64_t routed;            //  requests handed to workers, for status
    int64_t heartbeat_at;       //  next heartbeat to workers
    int64_t refused_log_at;     //  next time a refused remote worker is logged
};

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

//  A request ended with this reply (a worker's, or our error; taken):
//  its cost is free again, and the reply goes to its job, or its client
static void
s_end (aip_workers_t *self, zframe_t *client, const aip_work_t *work, zframe_t **reply_p,
       zmsg_t *out)
{
    if (client)
        aip_clients_release (self->budgets, client, work->cost);
    if (*work->job_id)
        aip_jobs_finish (self->jobs, work->job_id, zframe_data (*reply_p),
                         zframe_size (*reply_p), out);
    else
    if (client) {
        zmsg_add (out, zframe_dup (client));
        zmsg_append (out, reply_p);
    }
    zframe_destroy (reply_p);
}

static void
s_fail (aip_workers_t *self, zframe_t *client, const aip_work_t *work, const char *code,
        const char *message, zmsg_t *out)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_reply_error (pk, work->request_id, code, message);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    zframe_t *reply = zframe_new (data, size);
    s_end (self, client, work, &reply, out);
    aip_pack_destroy (&pk);
}

//  ---------------------------------------------------------------------
//  Picking a worker, handing it requests

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
s_worker_pick (aip_workers_t *self, aip_svc_t svc, const char *tool)
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
s_dispatch (aip_workers_t *self, s_worker_t *worker, zframe_t **client_p, zframe_t **body_p,
            const aip_work_t *work)
{
    s_pending_t *p = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    p->tag = ++self->next_tag;
    p->work = *work;
    if (*work->job_id)
        aip_jobs_started (self->jobs, work->job_id, p->tag);
    p->since = aip_clock_ms ();
    p->client = *client_p;
    *client_p = NULL;
    p->worker = worker;
    zhashx_insert (self->pending, &p->tag, p);
    worker->inflight++;
    self->routed++;
    aip_frames_send (worker->sock, worker->routing_id, AIP_FRAME_REQ, p->tag, NULL, body_p);
}

//  Hand queued requests of svc to workers with free slots, in order; an
//  invite waiting for a tool's worker does not hold up one for another tool
static void
s_drain_queue (aip_workers_t *self, aip_svc_t svc)
{
    s_queued_t *q = (s_queued_t *) zlistx_first (self->queue [svc]);
    while (q) {
        s_worker_t *worker = s_worker_pick (self, svc, q->work.tool);
        if (!worker) {
            if (!*q->work.tool)
                break;
            q = (s_queued_t *) zlistx_next (self->queue [svc]);
            continue;
        }
        s_dispatch (self, worker, &q->client, &q->body, &q->work);
        zlistx_delete (self->queue [svc], zlistx_cursor (self->queue [svc]));
        q = (s_queued_t *) zlistx_first (self->queue [svc]);
    }
}

void
aip_workers_route (aip_workers_t *self, aip_svc_t svc, zframe_t **client_p, zframe_t **body_p,
                   const aip_work_t *work, zmsg_t *out)
{
    s_worker_t *worker = s_worker_pick (self, svc, work->tool);
    if (worker && zlistx_size (self->queue [svc]) == 0)
        s_dispatch (self, worker, client_p, body_p, work);
    else
    if (zlistx_size (self->queue [svc]) >= AIP_MAX_QUEUED) {
        char message [256];
        snprintf (message, sizeof message, "%s is overloaded (%d requests waiting): retry later",
                  s_svc_daemon (svc), AIP_MAX_QUEUED);
        s_fail (self, *client_p, work, AIP_ERR_UNAVAILABLE, message, out);
    }
    else {
        s_queued_t *q = (s_queued_t *) zmalloc (sizeof (s_queued_t));
        q->client = *client_p;
        q->body = *body_p;
        *client_p = *body_p = NULL;
        q->work = *work;
        //  Invites last minutes: a spawn request waits longer for a worker
        q->expiry = aip_clock_ms () + (svc == AIP_SVC_SPAWN && self->queue_wait_ms
                                       == AIP_QUEUE_WAIT_MS ? AIP_SPAWN_QUEUE_WAIT_MS
                                                            : self->queue_wait_ms);
        zlistx_add_end (self->queue [svc], q);
        //  Queued behind invites that wait for another tool's worker, it
        //  may still go at once
        s_drain_queue (self, svc);
    }
    zframe_destroy (client_p);
    zframe_destroy (body_p);
}

//  ---------------------------------------------------------------------
//  Workers coming and going

//  A worker is gone: fail what it held, forget it
static unsigned
s_worker_drop (aip_workers_t *self, s_worker_t *worker, const char *why, zmsg_t *out)
{
    zsys_warning ("broker: %s worker %s (pid %d) lost: %s; failing %d in-flight request(s)",
                  aip_svc_name (worker->svc), worker->name, worker->pid, why, worker->inflight);
    zlistx_t *held = zlistx_new ();
    for (s_pending_t *p = (s_pending_t *) zhashx_first (self->pending); p;
         p = (s_pending_t *) zhashx_next (self->pending))
        if (p->worker == worker)
            zlistx_add_end (held, p);
    for (s_pending_t *p = (s_pending_t *) zlistx_first (held); p;
         p = (s_pending_t *) zlistx_next (held)) {
        char message [256];
        snprintf (message, sizeof message, "%s stopped while handling '%s' (%s); it is being "
                  "restarted — retry the command", s_svc_daemon (worker->svc),
                  aip_op_name (p->work.op), why);
        uint64_t tag = p->tag;
        s_fail (self, p->client, &p->work, AIP_ERR_WORKER_LOST, message, out);
        zhashx_delete (self->pending, &tag);
    }
    zlistx_destroy (&held);
    void *handle = zlistx_find (self->worker_list [worker->svc], worker);
    if (handle)
        zlistx_detach (self->worker_list [worker->svc], handle);
    zhashx_delete (self->worker_map, worker->key);
    return AIP_WORKERS_TOOLS;
}

//  May this READY stand? Another machine may only serve spawn, and only
//  with the worker token
static bool
s_ready_allowed (aip_workers_t *self, const aip_obj_t *root, int svc, bool remote,
                 aip_lanmode_t *lan)
{
    char token [AIP_MAX_NAME + 1];
    if (!remote || (svc == AIP_SVC_SPAWN
                    && aip_obj_get_str (root, "token", token, sizeof token, NULL)
                    && lan && aip_lanmode_worker_token_ok (lan, token, strlen (token))))
        return true;
    //  A refused worker asks again every second: say it now and then
    if (aip_clock_ms () >= self->refused_log_at) {
        zsys_warning ("broker: a remote %s worker was refused: %s",
                      aip_svc_name ((aip_svc_t) svc),
                      svc != AIP_SVC_SPAWN ? "only spawn workers may connect over the LAN"
                                           : "wrong or missing worker token");
        self->refused_log_at = aip_clock_ms () + 30000;
    }
    return false;
}

static unsigned
s_worker_ready (aip_workers_t *self, zsock_t *sock, zframe_t *routing_id, const char *key,
                zframe_t *body, bool remote, aip_lanmode_t *lan)
{
    char err [256];
    aip_doc_t *doc = aip_doc_decode (zframe_data (body), zframe_size (body), err, sizeof err);
    if (!doc) {
        zsys_warning ("broker: malformed READY from a worker: %s", err);
        return 0;
    }
    const aip_obj_t *root = aip_doc_root (doc);
    size_t len;
    const char *svcname = aip_obj_str (aip_obj_get (root, "svc"), &len);
    int svc = svcname ? aip_svc_lookup (svcname, len) : -1;
    int64_t slots = aip_obj_get_int (root, "slots", 1);
    if (svc <= AIP_SVC_BROKER || slots < 1 || slots > 100000) {
        zsys_warning ("broker: READY with unknown service or bad slots; ignored");
        aip_doc_destroy (&doc);
        return 0;
    }
    if (!s_ready_allowed (self, root, svc, remote, lan)) {
        aip_doc_destroy (&doc);
        return 0;
    }
    //  The AI tools a spawn worker has: ",a,b," for an exact match
    char tools [1024];
    const char *said = aip_obj_get_str (root, "tools", tools + 1, sizeof tools - 2, NULL);
    if (said) {
        tools [0] = ',';
        strcat (tools, ",");
    }
    s_worker_t *w = (s_worker_t *) zhashx_lookup (self->worker_map, key);
    if (w) {
        //  The same connection says more about itself: what it holds stays
        w->slots = (int) slots;
        free (w->tools);
        w->tools = said ? strdup (tools) : NULL;
        w->expiry = aip_clock_ms () + AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS;
        aip_doc_destroy (&doc);
        s_drain_queue (self, w->svc);
        return AIP_WORKERS_TOOLS;
    }
    w = (s_worker_t *) zmalloc (sizeof (s_worker_t));
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
    s_drain_queue (self, w->svc);
    return AIP_WORKERS_TOOLS | (w->svc == AIP_SVC_STORE ? AIP_WORKERS_STORE_UP : 0);
}

static void
s_worker_reply (aip_workers_t *self, s_worker_t *worker, uint64_t tag, zframe_t **body_p,
                zmsg_t *out)
{
    s_pending_t *p = (s_pending_t *) zhashx_lookup (self->pending, &tag);
    if (!p || p->worker != worker) {
        zsys_debug ("broker: late reply %llu from %s dropped", (unsigned long long) tag,
                    worker->name);
        return;
    }
    s_end (self, p->client, &p->work, body_p, out);
    zhashx_delete (self->pending, &tag);
    worker->inflight--;
    worker->processed++;
    s_drain_queue (self, worker->svc);
}

unsigned
aip_workers_recv (aip_workers_t *self, zsock_t *sock, zmsg_t **msg_p, bool remote,
                  aip_lanmode_t *lan, zmsg_t *out)
{
    zframe_t *routing_id = zmsg_pop (*msg_p);
    if (!routing_id) {
        zsys_warning ("broker: empty message on the worker socket");
        zmsg_destroy (msg_p);
        return 0;
    }
    //  Routing ids of the two sockets may coincide: keys tell them apart
    char *hex = zframe_strhex (routing_id);
    char *key = zsys_sprintf ("%s%s", remote ? "L" : "", hex);
    free (hex);
    s_worker_t *worker = (s_worker_t *) zhashx_lookup (self->worker_map, key);
    aip_frames_t frames;
    char err [128];
    bool valid = aip_frames_decode (msg_p, AIP_FRAME_F_WORKER, &frames, err, sizeof err) == 0;
    unsigned changed = 0;
    if (valid && frames.type == AIP_FRAME_READY)
        changed = s_worker_ready (self, sock, routing_id, key, frames.body, remote, lan);
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
            s_worker_reply (self, worker, frames.tag, &frames.body, out);
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
            changed = s_worker_drop (self, worker, "said goodbye", out);
    }
    aip_frames_free (&frames);
    free (key);
    zframe_destroy (&routing_id);
    return changed;
}

unsigned
aip_workers_drop_pid (aip_workers_t *self, int pid, const char *why, zmsg_t *out)
{
    for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
         w = (s_worker_t *) zhashx_next (self->worker_map))
        if (w->pid == pid)
            return s_worker_drop (self, w, why, out);
    return 0;
}

//  ---------------------------------------------------------------------
//  Timers

unsigned
aip_workers_tick (aip_workers_t *self, zmsg_t *out)
{
    int64_t now = aip_clock_ms ();
    unsigned changed = 0;
    //  Heartbeats to workers, and expiry of silent ones
    if (now >= self->heartbeat_at) {
        zlistx_t *dead = zlistx_new ();
        for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
             w = (s_worker_t *) zhashx_next (self->worker_map))
            if (now >= w->expiry)
                zlistx_add_end (dead, w);
            else
                aip_frames_send (w->sock, w->routing_id, AIP_FRAME_HB, 0, NULL, NULL);
        for (s_worker_t *w = (s_worker_t *) zlistx_first (dead); w;
             w = (s_worker_t *) zlistx_next (dead))
            changed |= s_worker_drop (self, w, "no heartbeat", out);
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
                      aip_svc_name ((aip_svc_t) svc), self->queue_wait_ms / 1000, self->home);
            void *cursor = zlistx_cursor (self->queue [svc]);
            s_fail (self, q->client, &q->work, AIP_ERR_UNAVAILABLE, message, out);
            zlistx_delete (self->queue [svc], cursor);
        }
    }
    return changed;
}

int64_t
aip_workers_next_due (aip_workers_t *self)
{
    int64_t next = self->heartbeat_at;
    for (int svc = 0; svc < AIP_SVC_COUNT; svc++) {
        s_queued_t *q = (s_queued_t *) zlistx_first (self->queue [svc]);
        if (q && q->expiry < next)
            next = q->expiry;
    }
    return next;
}

//  ---------------------------------------------------------------------
//  Jobs, counts and status

void
aip_workers_cancel (aip_workers_t *self, uint64_t tag)
{
    s_pending_t *p = tag ? (s_pending_t *) zhashx_lookup (self->pending, &tag) : NULL;
    //  The worker kills the tool and answers "cancelled"
    if (p)
        aip_frames_send (p->worker->sock, p->worker->routing_id, AIP_FRAME_CANCEL, p->tag,
                         NULL, NULL);
}

void
aip_workers_dequeue (aip_workers_t *self, const char *job_id)
{
    zlistx_t *queue = self->queue [AIP_SVC_SPAWN];
    for (s_queued_t *q = (s_queued_t *) zlistx_first (queue); q;
         q = (s_queued_t *) zlistx_next (queue))
        if (streq (q->work.job_id, job_id)) {
            zlistx_delete (queue, zlistx_cursor (queue));
            break;
        }
}

size_t
aip_workers_size (aip_workers_t *self, aip_svc_t svc)
{
    return zlistx_size (self->worker_list [svc]);
}

size_t
aip_workers_queued (aip_workers_t *self)
{
    size_t queued = 0;
    for (int svc = 0; svc < AIP_SVC_COUNT; svc++)
        queued += zlistx_size (self->queue [svc]);
    return queued;
}

uint64_t
aip_workers_routed (aip_workers_t *self)
{
    return self->routed;
}

void
aip_workers_local_tools (aip_workers_t *self, char *tools, size_t size)
{
    assert (size > 0);
    *tools = 0;
    size_t len = 0;
    for (s_worker_t *w = (s_worker_t *) zlistx_first (self->worker_list [AIP_SVC_SPAWN]); w;
         w = (s_worker_t *) zlistx_next (self->worker_list [AIP_SVC_SPAWN])) {
        if (w->remote || !w->tools)
            continue;
        //  w->tools is ",a,b,": add each tool not listed yet
        char copy [1024];
        snprintf (copy, sizeof copy, "%s", w->tools);
        char *saved = NULL;
        for (char *tool = strtok_r (copy, ",", &saved); tool; tool = strtok_r (NULL, ",", &saved)) {
            char needle [AIP_MAX_NAME + 3];
            snprintf (needle, sizeof needle, ",%s,", tool);
            char *listed = zsys_sprintf (",%s,", tools);
            if (!strstr (listed, needle) && len + strlen (tool) + 2 < size)
                len += (size_t) snprintf (tools + len, size - len, "%s%s", len ? "," : "", tool);
            zstr_free (&listed);
        }
    }
}

//  Was the worker started by us (one of the supervised children)?
static bool
s_worker_ours (aip_supervisor_t *supervisor, s_worker_t *w)
{
    const aip_child_t *c = supervisor ? aip_supervisor_find (supervisor, w->pid) : NULL;
    return c && c->svc == w->svc;
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
    aip_pack_array_begin (pk);
    for (const char *from = w->tools + 1; *from; ) {
        const char *comma = strchr (from, ',');
        if (comma > from)
            aip_pack_strn (pk, from, (size_t) (comma - from));
        from = comma + 1;
    }
    aip_pack_array_end (pk);
}

//  One supervised child, with its worker (NULL: none connected)
static void
s_pack_child (aip_workers_t *self, const aip_child_t *c, aip_pack_t *pk)
{
    s_worker_t *worker = NULL;
    for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
         w = (s_worker_t *) zhashx_next (self->worker_map))
        if (c->pid && w->pid == c->pid)
            worker = w;
    //  A spawn worker's current job
    s_pending_t *job = NULL;
    for (s_pending_t *p = (s_pending_t *) zhashx_first (self->pending); worker && p;
         p = (s_pending_t *) zhashx_next (self->pending))
        if (p->worker == worker && *p->work.job)
            job = p;
    aip_pack_map_begin (pk);
    aip_pack_kstr (pk, "name", c->name);
    aip_pack_kint (pk, "pid", c->pid);
    if (c->svc == AIP_SVC_SPAWN) {
        aip_pack_key (pk, "job");
        if (job) {
            aip_pack_map (pk, 2);
            aip_pack_kstr (pk, "what", job->work.job);
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
    aip_pack_map_end (pk);
}

void
aip_workers_pack_daemons (aip_workers_t *self, aip_supervisor_t *supervisor, aip_pack_t *pk)
{
    size_t children = supervisor ? aip_supervisor_size (supervisor) : 0;
    aip_pack_array_begin (pk);
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "name", "brokerd");
    aip_pack_kint (pk, "pid", getpid ());
    aip_pack_kstr (pk, "state", "running");
    aip_pack_kint (pk, "queued", (int64_t) aip_workers_queued (self));
    for (size_t i = 0; i < children; i++)
        s_pack_child (self, aip_supervisor_child (supervisor, i), pk);
    //  Workers not started by us (remote or manual) are listed too
    for (s_worker_t *w = (s_worker_t *) zhashx_first (self->worker_map); w;
         w = (s_worker_t *) zhashx_next (self->worker_map)) {
        if (s_worker_ours (supervisor, w))
            continue;
        aip_pack_map_begin (pk);
        aip_pack_kstr (pk, "name", w->name);
        aip_pack_kint (pk, "pid", w->pid);
        if (w->svc == AIP_SVC_SPAWN)
            s_pack_tools (pk, w);
        aip_pack_kbool (pk, "remote", w->remote);
        aip_pack_kstr (pk, "service", aip_svc_name (w->svc));
        aip_pack_kstr (pk, "state", "ready");
        aip_pack_kint (pk, "inflight", w->inflight);
        aip_pack_kint (pk, "processed", (int64_t) w->processed);
        aip_pack_map_end (pk);
    }
    aip_pack_array_end (pk);
}

//  ---------------------------------------------------------------------
//  Construction

aip_workers_t *
aip_workers_new (aip_clients_t *budgets, aip_jobs_t *jobs, zsock_t *events, const char *home,
                 int queue_wait_ms)
{
    aip_workers_t *self = (aip_workers_t *) zmalloc (sizeof (aip_workers_t));
    self->budgets = budgets;
    self->jobs = jobs;
    self->events = events;
    snprintf (self->home, sizeof self->home, "%s", home);
    self->queue_wait_ms = queue_wait_ms;
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
    self->heartbeat_at = aip_clock_ms () + AIP_HEARTBEAT_MS;
    return self;
}

void
aip_workers_destroy (aip_workers_t **self_p)
{
    aip_workers_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->pending);
    for (int svc = 0; svc < AIP_SVC_COUNT; svc++) {
        zlistx_destroy (&self->worker_list [svc]);
        zlistx_destroy (&self->queue [svc]);
    }
    zhashx_destroy (&self->worker_map);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Self-test: the table behind a ROUTER, real workers (aip_worker) on
//  the other side, over inproc

//  Hand the next message on router to the table; its flags
static unsigned
s_test_pump (aip_workers_t *self, zsock_t *router, zmsg_t *out)
{
    zpoller_t *poller = zpoller_new (router, NULL);
    assert (zpoller_wait (poller, 5000) == router);
    zpoller_destroy (&poller);
    zmsg_t *msg = zmsg_recv (router);
    assert (msg);
    return aip_workers_recv (self, router, &msg, false, NULL, out);
}

//  The next request worker gets: its tag, and its body in *body_p
static uint64_t
s_test_take (aip_worker_t *worker, zframe_t **body_p)
{
    zpoller_t *poller = zpoller_new (aip_worker_sock (worker), NULL);
    uint64_t tag = 0;
    int rc = 0;
    while (rc != 1) {
        assert (zpoller_wait (poller, 5000));
        rc = aip_worker_recv (worker, &tag, body_p);
    }
    zpoller_destroy (&poller);
    return tag;
}

//  A request from client for svc through the table
static void
s_test_route (aip_workers_t *self, aip_svc_t svc, const char *client, const char *tool,
              uint64_t request_id, size_t cost, zmsg_t *out)
{
    aip_work_t work = { .request_id = request_id, .op = AIP_OP_ROOM_LIST, .cost = cost };
    snprintf (work.tool, sizeof work.tool, "%s", tool);
    zframe_t *from = zframe_new (client, strlen (client));
    zframe_t *body = zframe_new ("request", 7);
    aip_workers_route (self, svc, &from, &body, &work, out);
    assert (!from && !body);
}

//  The reply body of the next pair in out, for client
static void
s_test_out (zmsg_t *out, const char *client, aip_reply_t *rep)
{
    zframe_t *to = zmsg_pop (out);
    zframe_t *body = zmsg_pop (out);
    assert (to && body && zframe_streq (to, client));
    char err [128];
    assert (aip_reply_decode (zframe_data (body), zframe_size (body), rep, err, sizeof err) == 0);
    zframe_destroy (&to);
    zframe_destroy (&body);
}

void
aip_workers_test (bool verbose)
{
    printf (" * aip_workers: ");
    zsock_t *router = zsock_new_router ("inproc://aip_workers_test");
    zsock_t *events = zsock_new_pub ("inproc://aip_workers_test_events");
    assert (router && events);
    aip_clients_t *budgets = aip_clients_new (AIP_CLIENT_BUDGET);
    aip_jobs_t *jobs = aip_jobs_new ();
    aip_workers_t *self = aip_workers_new (budgets, jobs, events, "/nowhere", 1000);
    zmsg_t *out = zmsg_new ();
    char err [256];
    aip_reply_t rep;

    //  A store worker registers: storage is up
    aip_worker_t *store = aip_worker_new ("inproc://aip_workers_test", AIP_SVC_STORE, 1, "st");
    assert (s_test_pump (self, router, out) & AIP_WORKERS_STORE_UP);
    assert (aip_workers_size (self, AIP_SVC_STORE) == 1 && zmsg_size (out) == 0);

    //  A request goes to it; its reply comes back for the client, whose
    //  budget is free again
    zframe_t *client = zframe_new ("c1", 2);
    assert (aip_clients_admit (budgets, client, 100, err, sizeof err) == 0);
    s_test_route (self, AIP_SVC_STORE, "c1", "", 1, 100, out);
    zframe_t *body;
    uint64_t tag = s_test_take (store, &body);
    assert (zframe_streq (body, "request"));
    zframe_destroy (&body);
    //  Its one slot is taken: the next request waits in the queue
    s_test_route (self, AIP_SVC_STORE, "c1", "", 2, 0, out);
    assert (aip_workers_queued (self) == 1 && aip_workers_routed (self) == 1);
    aip_pack_t *pk = aip_pack_new ();
    aip_reply_ok_begin (pk, 1);
    aip_pack_str (pk, "rooms");
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_worker_reply (store, tag, data, size);
    s_test_pump (self, router, out);
    s_test_out (out, "c1", &rep);
    assert (rep.ok && rep.id == 1 && aip_obj_streq (rep.data, "rooms"));
    aip_reply_free (&rep);
    assert (aip_clients_used (budgets, client) == 0);
    //  ... which freed the slot for the queued one
    assert (aip_workers_queued (self) == 0 && aip_workers_routed (self) == 2);
    tag = s_test_take (store, &body);
    zframe_destroy (&body);

    //  The worker leaves holding it: the client hears why at once
    aip_worker_bye (store);
    assert (s_test_pump (self, router, out) & AIP_WORKERS_TOOLS);
    s_test_out (out, "c1", &rep);
    assert (!rep.ok && rep.id == 2 && streq (rep.code, AIP_ERR_WORKER_LOST));
    if (verbose)
        printf ("\n   %s", rep.message);
    aip_reply_free (&rep);
    assert (aip_workers_size (self, AIP_SVC_STORE) == 0);
    //  Anything else from a worker the table does not know: BYE, and the
    //  worker registers again
    aip_worker_event (store, "room.x", "e", 1);
    s_test_pump (self, router, out);
    zpoller_t *poller = zpoller_new (aip_worker_sock (store), NULL);
    assert (zpoller_wait (poller, 5000));
    zpoller_destroy (&poller);
    assert (aip_worker_recv (store, &tag, &body) == 0);
    assert (s_test_pump (self, router, out) & AIP_WORKERS_STORE_UP);

    //  Spawn workers with tools: an invite goes to one that has its tool,
    //  and waits for it while it is busy rather than go to another
    aip_worker_t *claude = aip_worker_new ("inproc://aip_workers_test", AIP_SVC_SPAWN, 1, "cl");
    aip_worker_t *codex = aip_worker_new ("inproc://aip_workers_test", AIP_SVC_SPAWN, 1, "cx");
    aip_worker_set_tools (claude, "claude");
    aip_worker_set_tools (codex, "codex,gemini");
    for (int i = 0; i < 4; i++)
        s_test_pump (self, router, out);
    char tools [64];
    aip_workers_local_tools (self, tools, sizeof tools);
    assert (strlen (tools) == strlen ("claude,codex,gemini"));
    assert (strstr (tools, "claude") && strstr (tools, "codex,gemini"));
    s_test_route (self, AIP_SVC_SPAWN, "c2", "gemini", 3, 0, out);
    uint64_t codex_tag = s_test_take (codex, &body);
    zframe_destroy (&body);
    s_test_route (self, AIP_SVC_SPAWN, "c2", "codex", 4, 0, out);
    assert (aip_workers_queued (self) == 1);
    s_test_route (self, AIP_SVC_SPAWN, "c2", "claude", 5, 0, out);
    uint64_t claude_tag = s_test_take (claude, &body);
    zframe_destroy (&body);
    assert (aip_workers_queued (self) == 1);

    //  Status: brokerd and the three workers (none started by a supervisor)
    aip_pack_reset (pk);
    aip_workers_pack_daemons (self, NULL, pk);
    data = aip_pack_data (pk, &size);
    aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc && aip_obj_size (aip_doc_root (doc)) == 4);
    assert (aip_obj_get_int (aip_obj_at (aip_doc_root (doc), 0), "queued", -1) == 1);
    aip_doc_destroy (&doc);

    //  Cancel reaches the worker that holds the request
    aip_workers_cancel (self, claude_tag);
    int64_t deadline = aip_clock_ms () + 5000;
    poller = zpoller_new (aip_worker_sock (claude), NULL);
    while (!aip_worker_take_cancel (claude, claude_tag) && aip_clock_ms () < deadline)
        if (zpoller_wait (poller, 100))
            aip_worker_recv (claude, &tag, &body);
    assert (aip_clock_ms () < deadline);
    zpoller_destroy (&poller);

    //  The codex worker's process dies: its request fails, and the one
    //  that waited for codex stays queued until it gives up
    zmsg_t *pid_out = zmsg_new ();
    assert (aip_workers_drop_pid (self, getpid () + 1, "exited", pid_out) == 0);
    zmsg_destroy (&pid_out);
    //  (all three workers are this process: drop the codex one by BYE)
    aip_worker_bye (codex);
    s_test_pump (self, router, out);
    s_test_out (out, "c2", &rep);
    assert (!rep.ok && rep.id == 3 && streq (rep.code, AIP_ERR_WORKER_LOST));
    aip_reply_free (&rep);
    (void) codex_tag;
    deadline = aip_clock_ms () + 5000;
    while (zmsg_size (out) == 0 && aip_clock_ms () < deadline) {
        zclock_sleep (aip_workers_next_due (self) > aip_clock_ms () ? 20 : 0);
        aip_workers_tick (self, out);
    }
    s_test_out (out, "c2", &rep);
    assert (!rep.ok && rep.id == 4 && streq (rep.code, AIP_ERR_UNAVAILABLE));
    if (verbose)
        printf ("\n   %s\n   ", rep.message);
    aip_reply_free (&rep);
    assert (aip_workers_queued (self) == 0);

    aip_pack_destroy (&pk);
    zframe_destroy (&client);
    aip_worker_destroy (&codex);
    aip_worker_destroy (&claude);
    aip_worker_destroy (&store);
    zmsg_destroy (&out);
    aip_workers_destroy (&self);
    aip_workers_destroy (&self);
    aip_jobs_destroy (&jobs);
    aip_clients_destroy (&budgets);
    zsock_destroy (&events);
    zsock_destroy (&router);
    printf ("OK\n");
}
