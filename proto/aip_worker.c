/*  aip_worker.c — worker side of the broker protocol (its frames are
    aip_frames'). */
#include "aip_worker.h"
#include "aip_frames.h"
#include "aip_util.h"

#include <pthread.h>
#include <sodium.h>
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
    int byes_in_a_row;          //  BYEs with nothing else between: READY refused
    bool curve;                 //  a remote worker: CURVE client of a LAN hub
    uint8_t server_key [32];    //  ... the hub's public key, pinned
    char *token;                //  ... the hub's worker token, sent in READY
    char *tools;                //  spawn: the AI tools installed here, sent in READY
};

static void
s_send_ready (aip_worker_t *self)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map_begin (pk);
    aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
    aip_pack_kstr (pk, "svc", aip_svc_name (self->svc));
    aip_pack_kint (pk, "slots", self->slots);
    aip_pack_kstr (pk, "name", self->name);
    aip_pack_kint (pk, "pid", getpid ());
    if (self->token)
        aip_pack_kstr (pk, "token", self->token);
    if (self->tools)
        aip_pack_kstr (pk, "tools", self->tools);
    aip_pack_map_end (pk);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    zmsg_t *msg = aip_frames_pack_mem (NULL, AIP_FRAME_READY, 0, NULL, data, size);
    zmsg_send (&msg, self->sock);
    zmsg_destroy (&msg);
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
    //  A fresh key pair per connection: nothing to keep on disk, and the
    //  hub knows us by the token in READY
    if (self->curve)
        aip_curve_client_apply (self->sock, self->server_key);
    if (zsock_connect (self->sock, "%s", self->endpoint) != 0)
        zsys_error ("worker %s: cannot connect to %s", self->name, self->endpoint);
    s_send_ready (self);
    self->heartbeat_at = aip_clock_ms () + AIP_HEARTBEAT_MS;
    self->broker_expiry = aip_clock_ms () + AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS;
}

static aip_worker_t *
s_worker_new (const char *endpoint, aip_svc_t svc, int slots, const char *name,
              const uint8_t *server_key, const char *token)
{
    aip_worker_t *self = (aip_worker_t *) zmalloc (sizeof (aip_worker_t));
    self->endpoint = strdup (endpoint);
    self->svc = svc;
    self->slots = slots;
    self->name = strdup (name);
    if (server_key) {
        self->curve = true;
        memcpy (self->server_key, server_key, sizeof self->server_key);
    }
    if (token)
        self->token = strdup (token);
    s_connect (self);
    return self;
}

aip_worker_t *
aip_worker_new (const char *endpoint, aip_svc_t svc, int slots, const char *name)
{
    return s_worker_new (endpoint, svc, slots, name, NULL, NULL);
}

aip_worker_t *
aip_worker_new_remote (const char *endpoint, aip_svc_t svc, int slots, const char *name,
                       const uint8_t server_key [32], const char *token)
{
    assert (server_key && token);
    if (!zsys_has_curve ()) {
        zsys_error ("worker %s: this libzmq has no CURVE: cannot reach %s", name, endpoint);
        return NULL;
    }
    return s_worker_new (endpoint, svc, slots, name, server_key, token);
}

void
aip_worker_set_tools (aip_worker_t *self, const char *tools)
{
    free (self->tools);
    self->tools = strdup (tools);
    s_send_ready (self);
}

int
aip_curve_client_apply (zsock_t *sock, const uint8_t server_key [32])
{
    if (!zsys_has_curve ())
        return -1;
    zcert_t *cert = zcert_new ();
    if (!cert)
        return -1;
    zcert_apply (cert, sock);
    zsock_set_curve_serverkey_bin (sock, server_key);
    zcert_destroy (&cert);
    return 0;
}

void
aip_worker_destroy (aip_worker_t **self_p)
{
    if (self_p && *self_p) {
        aip_worker_t *self = *self_p;
        zsock_destroy (&self->sock);
        free (self->endpoint);
        free (self->name);
        if (self->token)
            sodium_memzero (self->token, strlen (self->token));
        free (self->token);
        free (self->tools);
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
    aip_frames_t frames;
    char err [128];
    if (aip_frames_decode (&msg, AIP_FRAME_F_BROKER, &frames, err, sizeof err)) {
        //  Liveness only: a broker of another version may say more
        zsys_debug ("worker %s: %s from the broker ignored", self->name, err);
        self->byes_in_a_row = 0;
        return 0;
    }
    if (frames.type != AIP_FRAME_BYE)
        self->byes_in_a_row = 0;
    if (frames.type == AIP_FRAME_REQ) {
        *tag = frames.tag;
        *body = frames.body;
        frames.body = NULL;
        rc = 1;
    }
    else
    if (frames.type == AIP_FRAME_CANCEL)
        self->cancel_tag = frames.tag;
    else
    if (frames.type == AIP_FRAME_BYE) {
        //  The broker does not know us (it restarted): announce again. A
        //  broker that forgets us again at once refused the READY (a LAN
        //  hub does so for a wrong token): say so once, keep trying
        if (++self->byes_in_a_row == 2)
            zsys_warning ("worker %s: broker %s does not accept us%s", self->name,
                          self->endpoint, self->token ? " (is the token its worker token?)" : "");
        else
        if (self->byes_in_a_row == 1)
            zsys_info ("worker %s: broker asked us to register again", self->name);
        s_send_ready (self);
    }
    //  HB: liveness only
    aip_frames_free (&frames);
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
    zframe_t *body = zframe_new (data, size);
    return aip_frames_send (self->sock, NULL, AIP_FRAME_REPLY, tag, NULL, &body);
}

int
aip_worker_event (aip_worker_t *self, const char *topic, const void *data, size_t size)
{
    zframe_t *body = zframe_new (data, size);
    return aip_frames_send (self->sock, NULL, AIP_FRAME_EVENT, 0, topic, &body);
}

void
aip_worker_tick (aip_worker_t *self)
{
    int64_t now = aip_clock_ms ();
    if (now >= self->broker_expiry) {
        //  Over CURVE a wrong hub key fails the handshake without a word:
        //  it looks exactly like a hub that is down
        zsys_warning ("worker %s: broker %s silent for %d ms, reconnecting%s", self->name,
                      self->endpoint, AIP_HEARTBEAT_MS * AIP_HEARTBEAT_LIVENESS,
                      self->curve ? " (is it up, and is the hub key its public key?)" : "");
        s_connect (self);
        return;
    }
    if (now >= self->heartbeat_at) {
        aip_frames_send (self->sock, NULL, AIP_FRAME_HB, 0, NULL, NULL);
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
    aip_frames_send (self->sock, NULL, AIP_FRAME_BYE, 0, NULL, NULL);
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

//  Next READY the fake hub gets within timeout_ms (heartbeats skipped,
//  the worker ticked meanwhile), as its decoded body; the sender's
//  routing id in *identity
static aip_doc_t *
s_test_next_ready (zsock_t *router, aip_worker_t *worker, int timeout_ms, zframe_t **identity)
{
    zpoller_t *poller = zpoller_new (router, NULL);
    int64_t deadline = aip_clock_ms () + timeout_ms;
    aip_doc_t *doc = NULL;
    while (!doc && aip_clock_ms () < deadline) {
        int wait = (int) (deadline - aip_clock_ms ());
        if (worker && aip_worker_timeout (worker) < wait)
            wait = aip_worker_timeout (worker);
        if (zpoller_wait (poller, wait) == router) {
            zmsg_t *msg = zmsg_recv (router);
            zframe_t *from = zmsg_pop (msg);
            aip_frames_t frames;
            char err [128];
            assert (aip_frames_decode (&msg, AIP_FRAME_F_WORKER, &frames, err, sizeof err) == 0);
            if (frames.type == AIP_FRAME_READY) {
                doc = aip_doc_decode (zframe_data (frames.body), zframe_size (frames.body), err,
                                      sizeof err);
                assert (doc);
                zframe_destroy (identity);
                *identity = from;
                from = NULL;
            }
            aip_frames_free (&frames);
            zframe_destroy (&from);
        }
        if (worker)
            aip_worker_tick (worker);
    }
    zpoller_destroy (&poller);
    return doc;
}

static void
s_test_remote (bool verbose)
{
    const char *token = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    zcert_t *hub_cert = zcert_new ();
    assert (hub_cert);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert (router);
    zsock_set_linger (router, 0);
    zcert_apply (hub_cert, router);
    zsock_set_curve_server (router, 1);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert (port > 0);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);

    //  The wrong hub key first: its handshake fails, nothing reaches the hub
    uint8_t wrong_key [32];
    memcpy (wrong_key, zcert_public_key (hub_cert), 32);
    wrong_key [0] ^= 1;
    aip_worker_t *impostor = aip_worker_new_remote (endpoint, AIP_SVC_SPAWN, 1, "wrong-key",
                                                    wrong_key, token);
    assert (impostor);
    aip_worker_t *worker = aip_worker_new_remote (endpoint, AIP_SVC_SPAWN, 1, "remote",
                                                  zcert_public_key (hub_cert), token);
    assert (worker);
    zframe_t *identity = NULL;
    aip_doc_t *doc = s_test_next_ready (router, NULL, 5000, &identity);
    assert (doc);
    const aip_obj_t *root = aip_doc_root (doc);
    assert (aip_obj_streq (aip_obj_get (root, "name"), "remote"));
    assert (aip_obj_streq (aip_obj_get (root, "svc"), "spawn"));
    assert (aip_obj_streq (aip_obj_get (root, "token"), token));
    aip_doc_destroy (&doc);

    //  Requests and replies go through the encrypted link as through ipc
    zframe_t *job = zframe_new ("job", 3);
    assert (aip_frames_send (router, identity, AIP_FRAME_REQ, 5, NULL, &job) == 0);
    zpoller_t *poller = zpoller_new (aip_worker_sock (worker), NULL);
    assert (zpoller_wait (poller, 5000) == aip_worker_sock (worker));
    zpoller_destroy (&poller);
    uint64_t got_tag = 0;
    zframe_t *body = NULL;
    assert (aip_worker_recv (worker, &got_tag, &body) == 1);
    assert (got_tag == 5 && zframe_streq (body, "job"));
    zframe_destroy (&body);
    assert (aip_worker_reply (worker, got_tag, "done", 4) == 0);
    poller = zpoller_new (router, NULL);
    assert (zpoller_wait (poller, 5000) == router);
    zpoller_destroy (&poller);
    zmsg_t *msg = zmsg_recv (router);
    zframe_t *from = zmsg_pop (msg);
    assert (zframe_eq (from, identity));
    zframe_destroy (&from);
    aip_frames_t frames;
    char err [128];
    assert (aip_frames_decode (&msg, AIP_FRAME_F_WORKER, &frames, err, sizeof err) == 0);
    assert (frames.type == AIP_FRAME_REPLY && frames.tag == 5 && zframe_streq (frames.body, "done"));
    aip_frames_free (&frames);

    //  A hub that answers BYE (it restarted, or refused a READY) gets
    //  READY again, token included, on the same connection
    for (int bye = 0; bye < 2; bye++) {
        assert (aip_frames_send (router, identity, AIP_FRAME_BYE, 0, NULL, NULL) == 0);
        poller = zpoller_new (aip_worker_sock (worker), NULL);
        assert (zpoller_wait (poller, 5000) == aip_worker_sock (worker));
        zpoller_destroy (&poller);
        assert (aip_worker_recv (worker, &got_tag, &body) == 0);
        zframe_t *again = NULL;
        doc = s_test_next_ready (router, NULL, 5000, &again);
        assert (doc && zframe_eq (again, identity));
        assert (aip_obj_streq (aip_obj_get (aip_doc_root (doc), "token"), token));
        aip_doc_destroy (&doc);
        zframe_destroy (&again);
    }

    //  The hub stays silent: the worker reconnects (a new connection, so a
    //  new routing id) and announces itself again with the same token. The
    //  impostor, ticked all along, never gets through.
    doc = NULL;
    int64_t deadline = aip_clock_ms () + AIP_HEARTBEAT_MS * (AIP_HEARTBEAT_LIVENESS + 3);
    zframe_t *old_identity = zframe_dup (identity);
    while (!doc && aip_clock_ms () < deadline) {
        doc = s_test_next_ready (router, worker, 100, &identity);
        aip_worker_tick (impostor);
    }
    assert (doc);
    root = aip_doc_root (doc);
    assert (aip_obj_streq (aip_obj_get (root, "name"), "remote"));
    assert (aip_obj_streq (aip_obj_get (root, "token"), token));
    assert (!zframe_eq (identity, old_identity));
    aip_doc_destroy (&doc);
    if (verbose)
        zsys_info ("aip_worker: remote worker reconnected over CURVE to %s", endpoint);

    zframe_destroy (&old_identity);
    zframe_destroy (&identity);
    aip_worker_destroy (&impostor);
    aip_worker_destroy (&worker);
    zsock_destroy (&router);
    zcert_destroy (&hub_cert);
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
    aip_frames_t frames;
    char err [128];
    assert (aip_frames_decode (&msg, AIP_FRAME_F_WORKER, &frames, err, sizeof err) == 0);
    assert (frames.type == AIP_FRAME_READY);
    aip_doc_t *doc = aip_doc_decode (zframe_data (frames.body), zframe_size (frames.body), err,
                                     sizeof err);
    assert (doc);
    assert (aip_obj_streq (aip_obj_get (aip_doc_root (doc), "svc"), "store"));
    assert (aip_obj_get_int (aip_doc_root (doc), "slots", 0) == 4);
    aip_doc_destroy (&doc);
    aip_frames_free (&frames);

    zframe_t *body = zframe_new ("body", 4);
    assert (aip_frames_send (router, identity, AIP_FRAME_REQ, 77, NULL, &body) == 0);
    zpoller_t *poller = zpoller_new (aip_worker_sock (worker), NULL);
    assert (zpoller_wait (poller, 1000) == aip_worker_sock (worker));
    uint64_t got_tag = 0;
    assert (aip_worker_recv (worker, &got_tag, &body) == 1);
    assert (got_tag == 77 && zframe_streq (body, "body"));
    assert (aip_worker_reply (worker, got_tag, "answer", 6) == 0);
    zframe_destroy (&body);
    msg = zmsg_recv (router);
    zframe_t *from = zmsg_pop (msg);
    assert (zframe_eq (from, identity));
    zframe_destroy (&from);
    assert (aip_frames_decode (&msg, AIP_FRAME_F_WORKER, &frames, err, sizeof err) == 0);
    assert (frames.type == AIP_FRAME_REPLY && frames.tag == 77);
    assert (zframe_streq (frames.body, "answer"));
    aip_frames_free (&frames);
    assert (aip_worker_timeout (worker) <= AIP_HEARTBEAT_MS);
    zpoller_destroy (&poller);
    zframe_destroy (&identity);
    aip_worker_destroy (&worker);
    aip_worker_destroy (&worker);
    zsock_destroy (&router);

    //  A remote worker: a fake LAN hub (CURVE server over TCP) gets READY
    //  with the token; a worker with the wrong hub key is never heard; a
    //  reconnect keeps the key and the token
    if (zsys_has_curve ())
        s_test_remote (verbose);
    printf ("OK\n");
}
