/*  aip_jobs.c — the broker's asynchronous jobs: ids, states, held results
    and the clients that wait for them. See aip_jobs.h. */
#include "aip_jobs.h"
#include "aip_limits.h"
#include "aip_util.h"

//  A client blocked in job.wait
typedef struct {
    zframe_t *client;           //  routing id
    uint64_t request_id;        //  its request
} s_waiter_t;

//  One job
typedef struct {
    char id [AIP_MAX_ID + 1];   //  "job-" + 12 hex
    char what [160];            //  "codex in room-..."
    const char *state;          //  queued, running, cancelling, done, failed, cancelled
    int64_t created;            //  monotonic ms
    int64_t ended;              //  when it ended, or 0
    uint64_t tag;               //  the broker's tag of its request while running, or 0
    bool cancel_requested;      //  job.cancel was asked while it ran
    zframe_t *result;           //  the worker's reply once ended
    zlistx_t *waiters;          //  s_waiter_t
} s_job_t;

struct _aip_jobs_t {
    zhashx_t *jobs;             //  id -> s_job_t
    zlistx_t *order;            //  s_job_t in creation order (borrowed)
    size_t waiter_count;        //  clients blocked in job.wait, all jobs
    aip_pack_t *pk;             //  scratch packer for answers
};

static void
s_waiter_free (void **item)
{
    s_waiter_t *w = (s_waiter_t *) *item;
    if (w) {
        zframe_destroy (&w->client);
        free (w);
        *item = NULL;
    }
}

static void
s_job_free (void **item)
{
    s_job_t *job = (s_job_t *) *item;
    if (job) {
        zframe_destroy (&job->result);
        zlistx_destroy (&job->waiters);
        free (job);
        *item = NULL;
    }
}

aip_jobs_t *
aip_jobs_new (void)
{
    aip_jobs_t *self = (aip_jobs_t *) zmalloc (sizeof (aip_jobs_t));
    self->jobs = zhashx_new ();
    zhashx_set_destructor (self->jobs, s_job_free);
    self->order = zlistx_new ();
    self->pk = aip_pack_new ();
    return self;
}

void
aip_jobs_destroy (aip_jobs_t **self_p)
{
    aip_jobs_t *self = *self_p;
    if (!self)
        return;
    zlistx_destroy (&self->order);
    zhashx_destroy (&self->jobs);
    aip_pack_destroy (&self->pk);
    free (self);
    *self_p = NULL;
}

size_t
aip_jobs_size (aip_jobs_t *self)
{
    return zhashx_size (self->jobs);
}

//  Queue the packed answer in self->pk for client
static void
s_out (aip_jobs_t *self, zmsg_t *out, zframe_t *client)
{
    size_t size;
    const void *data = aip_pack_data (self->pk, &size);
    zmsg_add (out, zframe_dup (client));
    zmsg_addmem (out, data, size);
}

static void
s_out_error (aip_jobs_t *self, zmsg_t *out, zframe_t *client, uint64_t request_id,
             const char *code, const char *message)
{
    aip_pack_reset (self->pk);
    aip_reply_error (self->pk, request_id, code, message);
    s_out (self, out, client);
}

//  A job's result, answered under the waiter's own request id
static void
s_answer (aip_jobs_t *self, zmsg_t *out, zframe_t *client, uint64_t request_id, s_job_t *job)
{
    aip_reply_t rep;
    char err [256];
    aip_pack_reset (self->pk);
    if (aip_reply_decode (zframe_data (job->result), zframe_size (job->result), &rep, err,
                          sizeof err) == 0) {
        if (rep.ok) {
            aip_reply_ok_begin (self->pk, request_id);
            aip_pack_obj (self->pk, rep.data);
        }
        else
            aip_reply_error (self->pk, request_id, rep.code, rep.message);
        aip_reply_free (&rep);
    }
    else
        aip_reply_error (self->pk, request_id, AIP_ERR_INTERNAL, err);
    s_out (self, out, client);
}

const char *
aip_jobs_add (aip_jobs_t *self, const char *what)
{
    if (zhashx_size (self->jobs) >= AIP_MAX_JOBS) {
        //  Forget the oldest finished job nobody waits for
        s_job_t *old = NULL;
        for (s_job_t *j = (s_job_t *) zlistx_first (self->order); j && !old;
             j = (s_job_t *) zlistx_next (self->order))
            if (j->ended && zlistx_size (j->waiters) == 0)
                old = j;
        if (!old)
            return NULL;
        zlistx_delete (self->order, zlistx_find (self->order, old));
        zhashx_delete (self->jobs, old->id);
    }
    s_job_t *job = (s_job_t *) zmalloc (sizeof (s_job_t));
    uint8_t bytes [6];
    aip_random_bytes (bytes, sizeof bytes);
    snprintf (job->id, sizeof job->id, "job-%02x%02x%02x%02x%02x%02x", bytes [0], bytes [1],
              bytes [2], bytes [3], bytes [4], bytes [5]);
    snprintf (job->what, sizeof job->what, "%s", what);
    job->state = "queued";
    job->created = aip_clock_ms ();
    job->waiters = zlistx_new ();
    zlistx_set_destructor (job->waiters, s_waiter_free);
    zhashx_insert (self->jobs, job->id, job);
    zlistx_add_end (self->order, job);
    return job->id;
}

void
aip_jobs_started (aip_jobs_t *self, const char *id, uint64_t tag)
{
    s_job_t *job = (s_job_t *) zhashx_lookup (self->jobs, id);
    if (job && !job->ended) {
        job->tag = tag;
        job->state = "running";
    }
}

void
aip_jobs_finish (aip_jobs_t *self, const char *id, const void *data, size_t size, zmsg_t *out)
{
    s_job_t *job = (s_job_t *) zhashx_lookup (self->jobs, id);
    if (!job || job->ended)
        return;
    aip_reply_t rep;
    char err [256];
    bool ok = false;
    if (aip_reply_decode (data, size, &rep, err, sizeof err) == 0) {
        ok = rep.ok;
        aip_reply_free (&rep);
    }
    job->state = ok ? "done" : job->cancel_requested ? "cancelled" : "failed";
    job->ended = aip_clock_ms ();
    job->tag = 0;
    job->result = zframe_new (data, size);
    for (s_waiter_t *w = (s_waiter_t *) zlistx_first (job->waiters); w;
         w = (s_waiter_t *) zlistx_next (job->waiters))
        s_answer (self, out, w->client, w->request_id, job);
    self->waiter_count -= zlistx_size (job->waiters);
    zlistx_purge (job->waiters);
    zsys_info ("broker: job %s (%s) %s", job->id, job->what, job->state);
}

void
aip_jobs_list (aip_jobs_t *self, zframe_t *client, uint64_t request_id, zmsg_t *out)
{
    aip_pack_t *pk = self->pk;
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, request_id);
    aip_pack_map (pk, 1);
    aip_pack_key (pk, "jobs");
    aip_pack_array (pk, zlistx_size (self->order));
    int64_t now = aip_clock_ms ();
    for (s_job_t *j = (s_job_t *) zlistx_first (self->order); j;
         j = (s_job_t *) zlistx_next (self->order)) {
        aip_pack_map (pk, 4);
        aip_pack_kstr (pk, "id", j->id);
        aip_pack_kstr (pk, "what", j->what);
        aip_pack_kstr (pk, "state", j->state);
        aip_pack_key (pk, "elapsed_s");
        aip_pack_real (pk, (double) ((j->ended ? j->ended : now) - j->created) / 1000.0);
    }
    s_out (self, out, client);
}

//  The job a request names, or NULL (the error is in out)
static s_job_t *
s_find (aip_jobs_t *self, zframe_t *client, const aip_request_t *req, zmsg_t *out)
{
    char id [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "id", id, sizeof id, "");
    s_job_t *job = (s_job_t *) zhashx_lookup (self->jobs, id);
    if (!job) {
        char message [256];
        snprintf (message, sizeof message, "no job %s here (jobs last until the daemons stop; "
                  "'ai-peer jobs' lists them)", id);
        s_out_error (self, out, client, req->id, AIP_ERR_NOT_FOUND, message);
    }
    return job;
}

void
aip_jobs_wait (aip_jobs_t *self, zframe_t *client, const aip_request_t *req, zmsg_t *out)
{
    s_job_t *job = s_find (self, client, req, out);
    if (!job)
        return;
    if (job->ended) {
        s_answer (self, out, client, req->id, job);
        return;
    }
    if (self->waiter_count >= AIP_MAX_JOB_WAITERS) {
        s_out_error (self, out, client, req->id, AIP_ERR_UNAVAILABLE,
                     "too many clients wait for jobs: retry later");
        return;
    }
    s_waiter_t *w = (s_waiter_t *) zmalloc (sizeof (s_waiter_t));
    w->client = zframe_dup (client);
    w->request_id = req->id;
    zlistx_add_end (job->waiters, w);
    self->waiter_count++;
}

uint64_t
aip_jobs_cancel (aip_jobs_t *self, zframe_t *client, const aip_request_t *req, zmsg_t *out,
                 bool *dequeue)
{
    *dequeue = false;
    s_job_t *job = s_find (self, client, req, out);
    if (!job)
        return 0;
    uint64_t tag = 0;
    bool cancelled = false;
    if (!job->ended && job->tag) {
        //  Running: the worker kills the tool and answers "cancelled"
        tag = job->tag;
        job->cancel_requested = true;
        job->state = "cancelling";
        cancelled = true;
    }
    else
    if (!job->ended) {
        //  Still queued: it never starts
        *dequeue = true;
        job->cancel_requested = true;
        aip_pack_reset (self->pk);
        aip_reply_error (self->pk, 0, "cancelled", "cancelled before it started");
        size_t size;
        const void *data = aip_pack_data (self->pk, &size);
        zframe_t *result = zframe_new (data, size);
        aip_jobs_finish (self, job->id, zframe_data (result), zframe_size (result), out);
        zframe_destroy (&result);
        cancelled = true;
    }
    aip_pack_reset (self->pk);
    aip_reply_ok_begin (self->pk, req->id);
    aip_pack_map (self->pk, 3);
    aip_pack_kstr (self->pk, "id", job->id);
    aip_pack_kstr (self->pk, "state", job->state);
    aip_pack_kbool (self->pk, "cancelled", cancelled);
    s_out (self, out, client);
    return tag;
}

//  ---------------------------------------------------------------------
//  Self-test

//  Decode the reply of the pair at the head of out (pops it)
static void
s_test_pop (zmsg_t *out, const char *client, aip_reply_t *rep)
{
    zframe_t *to = zmsg_pop (out);
    zframe_t *body = zmsg_pop (out);
    assert (to && body && zframe_streq (to, client));
    char err [256];
    int rc = aip_reply_decode (zframe_data (body), zframe_size (body), rep, err, sizeof err);
    assert (rc == 0);
    zframe_destroy (&to);
    zframe_destroy (&body);
}

static aip_request_t *
s_test_request (aip_pack_t *pk, uint64_t id, aip_op_t op, const char *job_id,
                aip_request_t *req)
{
    aip_pack_reset (pk);
    aip_request_begin (pk, id, op, 1);
    aip_pack_kstr (pk, "id", job_id);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    uint64_t rid;
    char err [256];
    int rc = aip_request_decode (data, size, req, &rid, err, sizeof err);
    assert (rc == 0);
    return req;
}

void
aip_jobs_test (bool verbose)
{
    printf (" * aip_jobs: ");
    aip_jobs_t *jobs = aip_jobs_new ();
    aip_pack_t *pk = aip_pack_new ();
    zmsg_t *out = zmsg_new ();
    zframe_t *alice = zframe_from ("alice"), *bob = zframe_from ("bob");
    aip_request_t req;
    aip_reply_t rep;

    //  A job that runs: a waiter gets its result under its own request id
    const char *id = aip_jobs_add (jobs, "codex in room-1");
    assert (id && strncmp (id, "job-", 4) == 0);
    char running [AIP_MAX_ID + 1];
    snprintf (running, sizeof running, "%s", id);
    aip_jobs_started (jobs, running, 7);
    aip_jobs_wait (jobs, bob, s_test_request (pk, 11, AIP_OP_JOB_WAIT, running, &req), out);
    aip_request_free (&req);
    assert (zmsg_size (out) == 0);          //  held
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, 99);
    aip_pack_map (pk, 1);
    aip_pack_kstr (pk, "response", "done it");
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    zframe_t *result = zframe_new (data, size);
    aip_jobs_finish (jobs, running, zframe_data (result), zframe_size (result), out);
    zframe_destroy (&result);
    s_test_pop (out, "bob", &rep);
    assert (rep.ok && rep.id == 11);
    aip_reply_free (&rep);
    //  A second finish is ignored; a late wait is answered at once
    aip_jobs_finish (jobs, running, "x", 1, out);
    assert (zmsg_size (out) == 0);
    aip_jobs_wait (jobs, alice, s_test_request (pk, 12, AIP_OP_JOB_WAIT, running, &req), out);
    aip_request_free (&req);
    s_test_pop (out, "alice", &rep);
    assert (rep.ok && rep.id == 12);
    aip_reply_free (&rep);

    //  Cancel: a running one names its tag, a queued one ends now
    const char *id2 = aip_jobs_add (jobs, "claude in room-2");
    char queued [AIP_MAX_ID + 1];
    snprintf (queued, sizeof queued, "%s", id2);
    bool dequeue;
    aip_jobs_wait (jobs, bob, s_test_request (pk, 13, AIP_OP_JOB_WAIT, queued, &req), out);
    aip_request_free (&req);
    uint64_t tag = aip_jobs_cancel (jobs, alice, s_test_request (pk, 14, AIP_OP_JOB_CANCEL,
                                    queued, &req), out, &dequeue);
    aip_request_free (&req);
    assert (tag == 0 && dequeue);
    s_test_pop (out, "bob", &rep);          //  the waiter: cancelled
    assert (!rep.ok && rep.id == 13 && streq (rep.code, "cancelled"));
    aip_reply_free (&rep);
    s_test_pop (out, "alice", &rep);        //  the canceller
    assert (rep.ok && rep.id == 14);
    aip_reply_free (&rep);
    const char *id3 = aip_jobs_add (jobs, "gemini");
    char busy [AIP_MAX_ID + 1];
    snprintf (busy, sizeof busy, "%s", id3);
    aip_jobs_started (jobs, busy, 42);
    tag = aip_jobs_cancel (jobs, alice, s_test_request (pk, 15, AIP_OP_JOB_CANCEL, busy, &req),
                           out, &dequeue);
    aip_request_free (&req);
    assert (tag == 42 && !dequeue);
    s_test_pop (out, "alice", &rep);
    assert (rep.ok && rep.id == 15);
    aip_reply_free (&rep);

    //  Unknown jobs are a clear not_found; list shows all three
    aip_jobs_wait (jobs, bob, s_test_request (pk, 16, AIP_OP_JOB_WAIT, "job-nope", &req), out);
    aip_request_free (&req);
    s_test_pop (out, "bob", &rep);
    assert (!rep.ok && streq (rep.code, AIP_ERR_NOT_FOUND) && strstr (rep.message, "job-nope"));
    aip_reply_free (&rep);
    aip_jobs_list (jobs, alice, 17, out);
    s_test_pop (out, "alice", &rep);
    assert (rep.ok && aip_obj_size (aip_obj_get (rep.data, "jobs")) == 3);
    aip_reply_free (&rep);

    //  Full: finished jobs make room, unfinished ones do not
    for (size_t i = aip_jobs_size (jobs); i < AIP_MAX_JOBS; i++)
        assert (aip_jobs_add (jobs, "filler"));
    assert (aip_jobs_add (jobs, "one more"));   //  forgets the first finished job
    assert (aip_jobs_size (jobs) == AIP_MAX_JOBS);

    zframe_destroy (&alice);
    zframe_destroy (&bob);
    zmsg_destroy (&out);
    aip_pack_destroy (&pk);
    aip_jobs_destroy (&jobs);
    aip_jobs_destroy (&jobs);
    if (verbose)
        printf ("(jobs held, waited for, cancelled, forgotten) ");
    printf ("OK\n");
}
