/*  aip_worker.c — worker side of the broker protocol. */
#include "aip_worker.h"
#include "aip_util.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

struct _aip_worker_t {
    char *endpoint;             //  broker's worker endpoint
    aip_svc_t svc;              //  service we serve
    int slots;                  //  requests we take at once
    char *name;                 //  shown in daemon status
    zsock_t *sock;              //  DEALER to the broker
    int64_t heartbeat_at;       //  when to send our next heartbeat
    int64_t broker_expiry;      //  when the broker counts as gone
    uint64_t cancel_tag;        //  last request the broker asked to cancel, or 0
};

static void
s_send_ready (aip_worker_t *self)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map (pk, 5);
    aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
    aip_pack_kstr (pk, "svc", aip_svc_name (self->svc));
    aip_pack_kint (pk, "slots", self->slots);
    aip_pack_kstr (pk, "name", self->name);
    aip_pack_kint (pk, "pid", getpid ());
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "READY");
    zmsg_addmem (msg, data, size);
    zmsg_send (&msg, self->sock);
    aip_pack_destroy (&pk);
}

static void
s_connect (aip_worker_t *self)
{
    zsock_destroy (&self->sock);
    self->sock = zsock_new (ZMQ_DEALER);
    assert (self->sock);
    zsock_set_linger (self->sock, 0);
    zsock_set_maxmsgsize (self->sock, AIP_MAX_REPLY);
    //  A worker must never block on a slow broker: drop rather than hang
    zsock_set_sndhwm (self->sock, 100000);
    if (zsock_connect (self->sock, "%s", self->endpoint) != 0)
        zsys_error ("worker %s: cannot connect to %s", self->name, self->endpoint);
    s_send_ready (self);
    self->heartbeat_at = aip_clock_ms () + AIP_HEARTBEAT_MS;
    self->broker_expiry = aip_clock_ms () + AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS;
}

aip_worker_t *
aip_worker_new (const char *endpoint, aip_svc_t svc, int slots, const char *name)
{
    aip_worker_t *self = (aip_worker_t *) zmalloc (sizeof (aip_worker_t));
    self->endpoint = strdup (endpoint);
    self->svc = svc;
    self->slots = slots;
    self->name = strdup (name);
    s_connect (self);
    return self;
}

void
aip_worker_destroy (aip_worker_t **self_p)
{
    if (self_p && *self_p) {
        aip_worker_t *self = *self_p;
        zsock_destroy (&self->sock);
        free (self->endpoint);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
aip_worker_sock (aip_worker_t *self)
{
    return self->sock;
}

int
aip_worker_recv (aip_worker_t *self, uint64_t *tag, zframe_t **body)
{
    zmsg_t *msg = zmsg_recv_nowait (self->sock);
    if (!msg)
        return -1;
    self->broker_expiry = aip_clock_ms () + AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS;
    int rc = 0;
    char *command = zmsg_popstr (msg);
    if (command && streq (command, "REQ") && zmsg_size (msg) == 2) {
        zframe_t *tagf = zmsg_pop (msg);
        if (zframe_size (tagf) == sizeof (uint64_t)) {
            memcpy (tag, zframe_data (tagf), sizeof (uint64_t));
            *body = zmsg_pop (msg);
            rc = 1;
        }
        zframe_destroy (&tagf);
    }
    else
    if (command && streq (command, "CANCEL") && zmsg_size (msg) == 1
    &&  zframe_size (zmsg_first (msg)) == sizeof (uint64_t))
        memcpy (&self->cancel_tag, zframe_data (zmsg_first (msg)), sizeof (uint64_t));
    else
    if (command && streq (command, "BYE")) {
        //  The broker does not know us (it restarted): announce again
        zsys_info ("worker %s: broker asked us to register again", self->name);
        s_send_ready (self);
    }
    //  "HB" and anything unknown: liveness only
    free (command);
    zmsg_destroy (&msg);
    return rc;
}

bool
aip_worker_take_cancel (aip_worker_t *self, uint64_t tag)
{
    if (!tag || self->cancel_tag != tag)
        return false;
    self->cancel_tag = 0;
    return true;
}

int
aip_worker_reply (aip_worker_t *self, uint64_t tag, const void *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "REPLY");
    zmsg_addmem (msg, &tag, sizeof tag);
    zmsg_addmem (msg, data, size);
    return zmsg_send (&msg, self->sock);
}

int
aip_worker_event (aip_worker_t *self, const char *topic, const void *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "EVENT");
    zmsg_addstr (msg, topic);
    zmsg_addmem (msg, data, size);
    return zmsg_send (&msg, self->sock);
}

void
aip_worker_tick (aip_worker_t *self)
{
    int64_t now = aip_clock_ms ();
    if (now >= self->broker_expiry) {
        zsys_warning ("worker %s: broker silent for %d ms, reconnecting", self->name,
                      AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS);
        s_connect (self);
        return;
    }
    if (now >= self->heartbeat_at) {
        zstr_send (self->sock, "HB");
        self->heartbeat_at = now + AIP_HEARTBEAT_MS;
    }
}

int
aip_worker_timeout (aip_worker_t *self)
{
    int64_t now = aip_clock_ms ();
    int64_t next = self->heartbeat_at < self->broker_expiry ? self->heartbeat_at : self->broker_expiry;
    return next <= now ? 0 : (int) (next - now);
}

void
aip_worker_bye (aip_worker_t *self)
{
    zstr_send (self->sock, "BYE");
}

static void
s_signals_mask (int how)
{
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGTERM);
    sigaddset (&set, SIGINT);
    pthread_sigmask (how, &set, NULL);
}

void
aip_signals_block (void)
{
    s_signals_mask (SIG_BLOCK);
}

void
aip_signals_unblock (void)
{
    s_signals_mask (SIG_UNBLOCK);
}

void
aip_worker_test (bool verbose)
{
    printf (" * aip_worker: ");
    //  A fake broker over inproc: READY arrives, a request goes through
    zsock_t *router = zsock_new_router ("inproc://aip_worker_test");
    assert (router);
    aip_worker_t *worker = aip_worker_new ("inproc://aip_worker_test", AIP_SVC_STORE, 4, "test");
    zmsg_t *msg = zmsg_recv (router);
    zframe_t *identity = zmsg_pop (msg);
    char *command = zmsg_popstr (msg);
    assert (streq (command, "READY"));
    zframe_t *body = zmsg_pop (msg);
    char err [128];
    aip_doc_t *doc = aip_doc_decode (zframe_data (body), zframe_size (body), err, sizeof err);
    assert (doc);
    assert (aip_obj_streq (aip_obj_get (aip_doc_root (doc), "svc"), "store"));
    assert (aip_obj_get_int (aip_doc_root (doc), "slots", 0) == 4);
    aip_doc_destroy (&doc);
    zframe_destroy (&body);
    free (command);
    zmsg_destroy (&msg);

    uint64_t tag = 77;
    msg = zmsg_new ();
    zmsg_add (msg, zframe_dup (identity));
    zmsg_addstr (msg, "REQ");
    zmsg_addmem (msg, &tag, sizeof tag);
    zmsg_addstr (msg, "body");
    zmsg_send (&msg, router);
    zpoller_t *poller = zpoller_new (aip_worker_sock (worker), NULL);
    assert (zpoller_wait (poller, 1000) == aip_worker_sock (worker));
    uint64_t got_tag = 0;
    assert (aip_worker_recv (worker, &got_tag, &body) == 1);
    assert (got_tag == 77 && zframe_streq (body, "body"));
    assert (aip_worker_reply (worker, got_tag, "answer", 6) == 0);
    zframe_destroy (&body);
    msg = zmsg_recv (router);
    assert (zmsg_size (msg) == 4);
    zframe_t *f = zmsg_first (msg);
    f = zmsg_next (msg);
    assert (zframe_streq (f, "REPLY"));
    zmsg_destroy (&msg);
    assert (aip_worker_timeout (worker) <= AIP_HEARTBEAT_MS);
    zpoller_destroy (&poller);
    zframe_destroy (&identity);
    aip_worker_destroy (&worker);
    aip_worker_destroy (&worker);
    zsock_destroy (&router);
    printf ("OK\n");
}
