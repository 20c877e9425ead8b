/*  aip_client.c — talking to the daemon set (see aip_client.h). */
#include "aip_client.h"
#include "aip_home.h"
#include "aip_util.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

//  A request begun by an actor, waiting to be taken
typedef struct {
    uint64_t id;                    //  its request id
    int64_t deadline;               //  taken after this: timed out
    bool arrived;                   //  its reply is in rep
    aip_reply_t rep;                //  the reply, once arrived
} s_pending_t;

struct _aip_client_t {
    char home [AIP_PATH_MAX];       //  $AI_PEERS_HOME ("" for an actor's client)
    char endpoint [AIP_PATH_MAX];   //  ipc://home/run/broker.ipc
    void *ctx;                      //  zmq context
    bool own_ctx;                   //  ctx is ours to terminate (not an actor's)
    void *dealer;                   //  socket to brokerd
    pid_t broker_pid;               //  the broker we talk to
    bool autostart;                 //  may (re)start the daemons
    uint64_t next_id;               //  request ids
    volatile int *stop;             //  when set and non-zero, a wait gives up
    s_pending_t *pending;           //  requests begun, not yet taken
    size_t pending_count;           //  ... how many
    size_t pending_max;             //  ... room allocated
};

//  How often a waiting client checks that the broker is still alive
#define LIVENESS_CHECK_MS 200

//  The DEALER to self->endpoint; with server_key, a CURVE client of it
static int
s_dealer_open (aip_client_t *self, const uint8_t *server_key, char *err, size_t errlen)
{
    self->dealer = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->dealer) {
        snprintf (err, errlen, "zmq_socket: %s", zmq_strerror (zmq_errno ()));
        return -1;
    }
    int linger = 0;
    int64_t maxmsg = AIP_MAX_REPLY;
    zmq_setsockopt (self->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (server_key) {
        //  A fresh key pair per connection: the hub knows us by its token
        char public_z85 [41], secret_z85 [41];
        if (!zmq_has ("curve") || zmq_curve_keypair (public_z85, secret_z85) != 0
        ||  zmq_setsockopt (self->dealer, ZMQ_CURVE_PUBLICKEY, public_z85, 40) != 0
        ||  zmq_setsockopt (self->dealer, ZMQ_CURVE_SECRETKEY, secret_z85, 40) != 0
        ||  zmq_setsockopt (self->dealer, ZMQ_CURVE_SERVERKEY, server_key, 32) != 0) {
            snprintf (err, errlen, "this libzmq has no CURVE: cannot reach %s", self->endpoint);
            return -1;
        }
    }
    if (zmq_connect (self->dealer, self->endpoint) != 0) {
        snprintf (err, errlen, "cannot connect to %s: %s", self->endpoint,
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

static int
s_connect (aip_client_t *self, char *err, size_t errlen)
{
    if (self->dealer) {
        zmq_close (self->dealer);
        self->dealer = NULL;
    }
    if (!aip_daemon_running (self->home, &self->broker_pid)) {
        if (!self->autostart) {
            snprintf (err, errlen, "the ai-peer daemons are not running (start them with "
                      "'ai-peer daemon start')");
            return -1;
        }
        aip_daemon_opts_t opts = { AIP_DAEMON_AUTO, 7899, 0 };
        if (aip_daemon_start (self->home, &opts, NULL, err, errlen))
            return -1;
        if (!aip_daemon_running (self->home, &self->broker_pid)) {
            snprintf (err, errlen, "the daemons started but are not running: see %s/daemon.log",
                      self->home);
            return -1;
        }
    }
    return s_dealer_open (self, NULL, err, errlen);
}

aip_client_t *
aip_client_new (const char *home, bool autostart, char *err, size_t errlen)
{
    aip_client_t *self = (aip_client_t *) calloc (1, sizeof (aip_client_t));
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    snprintf (self->home, sizeof self->home, "%s", home);
    self->autostart = autostart;
    aip_random_bytes (&self->next_id, sizeof self->next_id);
    self->next_id &= 0x7fffffffffffULL;     //  stays a positive msgpack int
    if (aip_home_endpoint (home, "broker", self->endpoint, sizeof self->endpoint, err, errlen))
        goto failed;
    self->ctx = zmq_ctx_new ();
    self->own_ctx = true;
    if (!self->ctx) {
        snprintf (err, errlen, "zmq_ctx_new: %s", zmq_strerror (zmq_errno ()));
        goto failed;
    }
    if (s_connect (self, err, errlen))
        goto failed;
    return self;
failed:
    aip_client_destroy (&self);
    return NULL;
}

aip_client_t *
aip_client_new_actor (void *ctx, const char *endpoint, const uint8_t *server_key, char *err,
                      size_t errlen)
{
    assert (ctx && endpoint);
    aip_client_t *self = (aip_client_t *) calloc (1, sizeof (aip_client_t));
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->ctx = ctx;
    aip_random_bytes (&self->next_id, sizeof self->next_id);
    self->next_id &= 0x7fffffffffffULL;     //  stays a positive msgpack int
    snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
    if (s_dealer_open (self, server_key, err, errlen))
        aip_client_destroy (&self);
    return self;
}

void
aip_client_destroy (aip_client_t **self_p)
{
    if (self_p && *self_p) {
        aip_client_t *self = *self_p;
        for (size_t i = 0; i < self->pending_count; i++)
            if (self->pending [i].arrived)
                aip_reply_free (&self->pending [i].rep);
        free (self->pending);
        if (self->dealer)
            zmq_close (self->dealer);
        if (self->ctx && self->own_ctx)
            zmq_ctx_term (self->ctx);
        free (self);
        *self_p = NULL;
    }
}

uint64_t
aip_client_next_id (aip_client_t *self)
{
    return ++self->next_id;
}

void
aip_client_set_stop (aip_client_t *self, volatile int *stop)
{
    self->stop = stop;
}

void *
aip_client_socket (aip_client_t *self)
{
    return self->dealer;
}

pid_t
aip_client_broker_pid (aip_client_t *self)
{
    return self->broker_pid;
}

int
aip_client_send (aip_client_t *self, aip_pack_t *request, char *err, size_t errlen)
{
    size_t size;
    const void *data = aip_pack_data (request, &size);
    while (zmq_send (self->dealer, data, size, 0) < 0) {
        if (zmq_errno () == EINTR)
            continue;
        snprintf (err, errlen, "cannot send to the daemons: %s", zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

static s_pending_t *
s_pending_find (aip_client_t *self, uint64_t id)
{
    for (size_t i = 0; i < self->pending_count; i++)
        if (self->pending [i].id == id)
            return &self->pending [i];
    return NULL;
}

static void
s_pending_remove (aip_client_t *self, s_pending_t *p)
{
    *p = self->pending [--self->pending_count];
}

//  A reply that is not the one waited for: kept when a begun request is
//  waiting for it, else dropped (a late reply to an abandoned request).
//  Takes rep.
static void
s_keep (aip_client_t *self, aip_reply_t *rep)
{
    s_pending_t *p = s_pending_find (self, rep->id);
    if (p && !p->arrived) {
        p->rep = *rep;
        p->arrived = true;
    }
    else
        aip_reply_free (rep);
}

int
aip_client_begin (aip_client_t *self, aip_pack_t *request, uint64_t id, int timeout_ms,
                  char *err, size_t errlen)
{
    if (self->pending_count >= AIP_CLIENT_MAX_PENDING) {
        snprintf (err, errlen, "too many requests to the daemons in flight (%d)",
                  AIP_CLIENT_MAX_PENDING);
        return -1;
    }
    if (self->pending_count == self->pending_max) {
        size_t max = self->pending_max ? self->pending_max * 2 : 8;
        s_pending_t *grown = (s_pending_t *) realloc (self->pending, max * sizeof *grown);
        if (!grown) {
            snprintf (err, errlen, "out of memory");
            return -1;
        }
        self->pending = grown;
        self->pending_max = max;
    }
    if (aip_client_send (self, request, err, errlen))
        return -1;
    s_pending_t *p = &self->pending [self->pending_count++];
    memset (p, 0, sizeof *p);
    p->id = id;
    p->deadline = aip_clock_ms () + timeout_ms;
    return 0;
}

int
aip_client_take (aip_client_t *self, uint64_t id, aip_reply_t *rep, char *err, size_t errlen)
{
    //  What has come, without waiting
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    while (zmq_msg_recv (&msg, self->dealer, ZMQ_DONTWAIT) >= 0) {
        aip_reply_t got;
        char derr [256];
        if (aip_reply_decode (zmq_msg_data (&msg), zmq_msg_size (&msg), &got, derr,
                              sizeof derr) == 0)
            s_keep (self, &got);
        //  else dropped: with no id it answers nobody, and its request
        //  times out with an error
    }
    zmq_msg_close (&msg);
    s_pending_t *p = s_pending_find (self, id);
    if (!p) {
        snprintf (err, errlen, "no request %llu is waiting for the daemons",
                  (unsigned long long) id);
        return -1;
    }
    if (p->arrived) {
        *rep = p->rep;
        s_pending_remove (self, p);
        return 1;
    }
    if (aip_clock_ms () >= p->deadline) {
        snprintf (err, errlen, "no reply from the daemons in time");
        s_pending_remove (self, p);
        return -1;
    }
    return 0;
}

void
aip_client_forget (aip_client_t *self, uint64_t id)
{
    s_pending_t *p = s_pending_find (self, id);
    if (p) {
        if (p->arrived)
            aip_reply_free (&p->rep);
        s_pending_remove (self, p);
    }
}

size_t
aip_client_pending (aip_client_t *self)
{
    return self->pending_count;
}

int
aip_client_recv (aip_client_t *self, uint64_t id, int timeout_ms, aip_reply_t *rep,
                 bool *daemon_died, char *err, size_t errlen)
{
    if (daemon_died)
        *daemon_died = false;
    int64_t deadline = aip_clock_ms () + timeout_ms;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    int rc = -1;
    while (true) {
        int64_t left = deadline - aip_clock_ms ();
        if (left <= 0) {
            snprintf (err, errlen, "no reply from the ai-peer daemons within %d s: see "
                      "%s/daemon.log, or restart them with 'ai-peer daemon stop'",
                      timeout_ms / 1000, self->home);
            break;
        }
        zmq_pollitem_t item = { self->dealer, 0, ZMQ_POLLIN, 0 };
        int n = zmq_poll (&item, 1, left < LIVENESS_CHECK_MS ? left : LIVENESS_CHECK_MS);
        if (n < 0 && zmq_errno () == EINTR)
            continue;
        if (self->stop && *self->stop) {
            snprintf (err, errlen, "interrupted while waiting for the ai-peer daemons");
            break;
        }
        if (n == 0) {
            //  A broker killed mid-request never answers: notice it
            if (self->broker_pid && !aip_daemon_pid_alive (self->broker_pid)) {
                snprintf (err, errlen, "the ai-peer daemons stopped while handling the request");
                if (daemon_died)
                    *daemon_died = true;
                break;
            }
            continue;
        }
        if (zmq_msg_recv (&msg, self->dealer, 0) < 0) {
            if (zmq_errno () == EINTR)
                continue;
            snprintf (err, errlen, "cannot receive from the daemons: %s",
                      zmq_strerror (zmq_errno ()));
            break;
        }
        char derr [256];
        if (aip_reply_decode (zmq_msg_data (&msg), zmq_msg_size (&msg), rep, derr, sizeof derr)) {
            snprintf (err, errlen, "malformed reply from the daemons: %s", derr);
            break;
        }
        if (id == 0 || rep->id == id) {
            rc = 0;
            break;
        }
        s_keep (self, rep);         //  a begun request's, or a late one: dropped
    }
    zmq_msg_close (&msg);
    return rc;
}

int
aip_client_call (aip_client_t *self, aip_pack_t *request, uint64_t id, int timeout_ms,
                 aip_reply_t *rep, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (aip_client_send (self, request, err, errlen))
            return -1;
        bool died = false;
        if (aip_client_recv (self, id, timeout_ms, rep, &died, err, errlen) == 0) {
            //  A worker that died mid-request: the broker restarts it; retry
            if (!rep->ok && strcmp (rep->code, AIP_ERR_WORKER_LOST) == 0 && attempt == 0) {
                aip_reply_free (rep);
                continue;
            }
            return 0;
        }
        if (!died || !self->autostart || attempt > 0)
            return -1;
        char cerr [512];
        if (s_connect (self, cerr, sizeof cerr)) {
            snprintf (err, errlen, "the ai-peer daemons stopped while handling the request "
                      "and could not be restarted: %s", cerr);
            return -1;
        }
    }
    return -1;
}

void
aip_client_test (bool verbose)
{
    printf (" * aip_client: ");
    char dir [] = "/tmp/aip_client_test_XXXXXX";
    assert (mkdtemp (dir));
    char err [512];
    //  Nothing runs there, and autostart is off: a clear error
    aip_client_t *client = aip_client_new (dir, false, err, sizeof err);
    assert (!client);
    assert (strstr (err, "not running"));
    assert (!aip_daemon_running (dir, NULL));
    if (verbose)
        printf ("(%s) ", err);

    //  An actor's client: requests begun, replies taken by id in any order
    void *ctx = zmq_ctx_new ();
    void *server = zmq_socket (ctx, ZMQ_ROUTER);
    assert (zmq_bind (server, "inproc://aip_client_test") == 0);
    client = aip_client_new_actor (ctx, "inproc://aip_client_test", NULL, err, sizeof err);
    assert (client);
    aip_pack_t *pk = aip_pack_new ();
    uint64_t ids [3];
    for (int i = 0; i < 3; i++) {
        ids [i] = aip_client_next_id (client);
        aip_pack_reset (pk);
        aip_request_begin (pk, ids [i], AIP_OP_PING, 0);
        assert (aip_client_begin (client, pk, ids [i], i == 2 ? 0 : 5000, err, sizeof err) == 0);
    }
    assert (aip_client_pending (client) == 3);
    aip_reply_t rep;
    assert (aip_client_take (client, ids [0], &rep, err, sizeof err) == 0);
    //  The server answers the second, a stranger, then the first
    zmq_msg_t peer [3], body;
    for (int i = 0; i < 3; i++) {
        zmq_msg_init (&peer [i]);
        assert (zmq_msg_recv (&peer [i], server, 0) >= 0);
        zmq_msg_init (&body);
        assert (zmq_msg_recv (&body, server, 0) >= 0);
        zmq_msg_close (&body);
    }
    uint64_t order [3] = { ids [1], 12345, ids [0] };
    for (int i = 0; i < 3; i++) {
        aip_pack_reset (pk);
        aip_reply_ok_begin (pk, order [i]);
        aip_pack_int (pk, (int64_t) i);
        size_t size;
        const void *data = aip_pack_data (pk, &size);
        zmq_msg_t copy;
        zmq_msg_init (&copy);
        zmq_msg_copy (&copy, &peer [0]);
        assert (zmq_msg_send (&copy, server, ZMQ_SNDMORE) >= 0);
        assert (zmq_send (server, data, size, 0) == (int) size);
    }
    for (int i = 0; i < 3; i++)
        zmq_msg_close (&peer [i]);
    //  A blocking wait for the first keeps the second's reply for it
    bool died;
    assert (aip_client_recv (client, ids [0], 2000, &rep, &died, err, sizeof err) == 0);
    assert (rep.ok && aip_obj_int (rep.data) == 2);
    aip_reply_free (&rep);
    aip_client_forget (client, ids [0]);
    assert (aip_client_take (client, ids [1], &rep, err, sizeof err) == 1);
    assert (rep.id == ids [1] && aip_obj_int (rep.data) == 0);
    aip_reply_free (&rep);
    //  The third timed out; what was taken is forgotten
    assert (aip_client_take (client, ids [2], &rep, err, sizeof err) == -1);
    assert (strstr (err, "in time"));
    assert (aip_client_take (client, ids [1], &rep, err, sizeof err) == -1);
    assert (aip_client_pending (client) == 0);
    //  A reply nobody waits for is dropped: begun and forgotten
    uint64_t gone = aip_client_next_id (client);
    aip_pack_reset (pk);
    aip_request_begin (pk, gone, AIP_OP_PING, 0);
    assert (aip_client_begin (client, pk, gone, 5000, err, sizeof err) == 0);
    aip_client_forget (client, gone);
    assert (aip_client_pending (client) == 0);
    aip_pack_destroy (&pk);
    aip_client_destroy (&client);
    aip_client_destroy (&client);       //  safe twice
    zmq_close (server);
    zmq_ctx_term (ctx);

    char path [AIP_PATH_MAX];
    snprintf (path, sizeof path, "rm -rf %s", dir);
    assert (system (path) == 0);
    printf ("OK\n");
}
