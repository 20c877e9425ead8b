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

struct _aip_client_t {
    char home [AIP_PATH_MAX];       //  $AI_PEERS_HOME
    char endpoint [AIP_PATH_MAX];   //  ipc://home/run/broker.ipc
    void *ctx;                      //  zmq context
    void *dealer;                   //  socket to brokerd
    pid_t broker_pid;               //  the broker we talk to
    bool autostart;                 //  may (re)start the daemons
    uint64_t next_id;               //  request ids
    volatile int *stop;             //  when set and non-zero, a wait gives up
};

//  How often a waiting client checks that the broker is still alive
#define LIVENESS_CHECK_MS 200

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
    self->dealer = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->dealer) {
        snprintf (err, errlen, "zmq_socket: %s", zmq_strerror (zmq_errno ()));
        return -1;
    }
    int linger = 0;
    int64_t maxmsg = AIP_MAX_REPLY;
    zmq_setsockopt (self->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_connect (self->dealer, self->endpoint) != 0) {
        snprintf (err, errlen, "cannot connect to %s: %s", self->endpoint,
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
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

void
aip_client_destroy (aip_client_t **self_p)
{
    if (self_p && *self_p) {
        aip_client_t *self = *self_p;
        if (self->dealer)
            zmq_close (self->dealer);
        if (self->ctx)
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
        aip_reply_free (rep);       //  a late reply to an earlier attempt
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
    char path [AIP_PATH_MAX];
    snprintf (path, sizeof path, "rm -rf %s", dir);
    assert (system (path) == 0);
    printf ("OK\n");
}
