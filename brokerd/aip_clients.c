/*  aip_clients.c — per-client byte budgets and the replies kept for
    clients whose pipe is full. See aip_clients.h. */
#include "aip_clients.h"
#include "aip_limits.h"
#include "aip_util.h"

//  One client the broker holds something for
typedef struct {
    char *key;                  //  hex of its routing id as the broker keeps it
    void *sock;                 //  where its replies go
    zframe_t *id;               //  its routing id on that socket
    zlistx_t *kept;             //  zframe_t replies waiting for room in its pipe
    size_t kept_bytes;          //  bytes in kept
    size_t inflight_bytes;      //  cost of its requests in flight
    size_t inflight;            //  its requests in flight
    int64_t warned_at;          //  last time its being over budget was logged
} s_client_t;

struct _aip_clients_t {
    size_t budget;              //  bytes per client
    zhashx_t *clients;          //  key -> s_client_t
    size_t waiting;             //  clients with replies kept
};

static void
s_client_free (void **item)
{
    s_client_t *c = (s_client_t *) *item;
    if (c) {
        free (c->key);
        zframe_destroy (&c->id);
        zlistx_destroy (&c->kept);
        free (c);
        *item = NULL;
    }
}

static void
s_frame_free (void **item)
{
    zframe_destroy ((zframe_t **) item);
}

aip_clients_t *
aip_clients_new (size_t budget)
{
    aip_clients_t *self = (aip_clients_t *) zmalloc (sizeof (aip_clients_t));
    self->budget = budget;
    self->clients = zhashx_new ();
    zhashx_set_destructor (self->clients, s_client_free);
    return self;
}

void
aip_clients_destroy (aip_clients_t **self_p)
{
    aip_clients_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->clients);
    free (self);
    *self_p = NULL;
}

size_t
aip_clients_cost (aip_op_t op, size_t size)
{
    //  The operations whose answer is a page of messages
    if (aip_op_flags (op) & AIP_OP_F_PAGED)
        size += AIP_MAX_PAGE_BYTES;
    return size < AIP_CLIENT_MIN_COST ? AIP_CLIENT_MIN_COST : size;
}

static s_client_t *
s_lookup (aip_clients_t *self, zframe_t *client, bool create)
{
    char *key = zframe_strhex (client);
    s_client_t *c = (s_client_t *) zhashx_lookup (self->clients, key);
    if (!c && create) {
        c = (s_client_t *) zmalloc (sizeof (s_client_t));
        c->key = key;
        key = NULL;
        c->kept = zlistx_new ();
        zlistx_set_destructor (c->kept, s_frame_free);
        zhashx_insert (self->clients, c->key, c);
    }
    free (key);
    return c;
}

//  Log at most every 10 s per client
static bool
s_warn_now (s_client_t *c)
{
    int64_t now = aip_clock_ms ();
    if (now < c->warned_at + 10000)
        return false;
    c->warned_at = now;
    return true;
}

int
aip_clients_admit (aip_clients_t *self, zframe_t *client, size_t cost, char *err,
                   size_t errlen)
{
    s_client_t *c = s_lookup (self, client, true);
    size_t used = c->inflight_bytes + c->kept_bytes;
    if (used + cost > self->budget && c->inflight + zlistx_size (c->kept) > 0) {
        snprintf (err, errlen, "this client holds %.1f MiB in the broker (%zu request(s) in "
                  "flight, %zu reply(ies) it has not read) and may hold %.1f MiB: read the "
                  "replies before sending more requests", (double) used / (1 << 20),
                  c->inflight, zlistx_size (c->kept), (double) self->budget / (1 << 20));
        if (s_warn_now (c))
            zsys_warning ("broker: a client over its budget is refused: %s", err);
        return -1;
    }
    c->inflight_bytes += cost;
    c->inflight++;
    return 0;
}

void
aip_clients_release (aip_clients_t *self, zframe_t *client, size_t cost)
{
    s_client_t *c = client ? s_lookup (self, client, false) : NULL;
    if (!c || !c->inflight)
        return;
    c->inflight--;
    c->inflight_bytes = c->inflight_bytes > cost ? c->inflight_bytes - cost : 0;
}

//  One try: 0 sent, 1 no room now, -1 gone (or a socket error)
static int
s_try_send (void *sock, const void *id, size_t idlen, const void *data, size_t size)
{
    if (zmq_send (sock, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return zmq_errno () == EAGAIN ? 1 : -1;
    //  The ROUTER took the routing id: the body follows at once
    return zmq_send (sock, data, size, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

void
aip_clients_send (aip_clients_t *self, void *sock, zframe_t *client, const void *id,
                  size_t idlen, const void *data, size_t size)
{
    s_client_t *c = s_lookup (self, client, false);
    if (!c || zlistx_size (c->kept) == 0) {
        //  In order: only when nothing waits before it
        int rc = s_try_send (sock, id, idlen, data, size);
        if (rc <= 0)
            return;             //  sent, or the client went away
        c = s_lookup (self, client, true);
    }
    if (c->kept_bytes + size > 2 * self->budget) {
        if (s_warn_now (c))
            zsys_warning ("broker: a client that reads no replies has %zu MiB waiting: "
                          "a reply to it was dropped", c->kept_bytes >> 20);
        return;
    }
    if (zlistx_size (c->kept) == 0)
        self->waiting++;
    c->sock = sock;
    if (!c->id)
        c->id = zframe_new (id, idlen);
    zlistx_add_end (c->kept, zframe_new (data, size));
    c->kept_bytes += size;
}

bool
aip_clients_flush (aip_clients_t *self)
{
    if (!self->waiting)
        return false;
    for (s_client_t *c = (s_client_t *) zhashx_first (self->clients); c;
         c = (s_client_t *) zhashx_next (self->clients)) {
        zframe_t *reply;
        bool had = zlistx_size (c->kept) > 0;
        while ((reply = (zframe_t *) zlistx_first (c->kept))) {
            int rc = s_try_send (c->sock, zframe_data (c->id), zframe_size (c->id),
                                 zframe_data (reply), zframe_size (reply));
            if (rc == 1)
                break;          //  still full
            if (rc < 0) {
                //  Gone: what it did not read goes with it
                c->kept_bytes = 0;
                zlistx_purge (c->kept);
                break;
            }
            c->kept_bytes -= zframe_size (reply);
            zlistx_delete (c->kept, zlistx_cursor (c->kept));
        }
        if (had && zlistx_size (c->kept) == 0)
            self->waiting--;
    }
    return self->waiting > 0;
}

void
aip_clients_sweep (aip_clients_t *self)
{
    zlistx_t *idle = zlistx_new ();
    for (s_client_t *c = (s_client_t *) zhashx_first (self->clients); c;
         c = (s_client_t *) zhashx_next (self->clients))
        if (c->inflight == 0 && zlistx_size (c->kept) == 0)
            zlistx_add_end (idle, c->key);
    for (const char *key = (const char *) zlistx_first (idle); key;
         key = (const char *) zlistx_next (idle))
        zhashx_delete (self->clients, key);
    zlistx_destroy (&idle);
}

size_t
aip_clients_used (aip_clients_t *self, zframe_t *client)
{
    s_client_t *c = s_lookup (self, client, false);
    return c ? c->inflight_bytes + c->kept_bytes : 0;
}

size_t
aip_clients_size (aip_clients_t *self)
{
    return zhashx_size (self->clients);
}

//  ---------------------------------------------------------------------
//  Self-test: a ROUTER with a short pipe and a DEALER that does not read

void
aip_clients_test (bool verbose)
{
    printf (" * aip_clients: ");
    //  Costs: a page for listing operations, a floor for the rest
    assert (aip_clients_cost (AIP_OP_PING, 10) == AIP_CLIENT_MIN_COST);
    assert (aip_clients_cost (AIP_OP_MSG_LIST, 100) == AIP_MAX_PAGE_BYTES + 100);
    assert (aip_clients_cost (AIP_OP_MSG_SEND, 100000) == 100000);

    size_t budget = 1024 * 1024;
    aip_clients_t *clients = aip_clients_new (budget);
    zframe_t *alice = zframe_from ("alice"), *bob = zframe_from ("bob");
    char err [512];

    //  Admission: up to the budget, then refused with a clear message;
    //  a client with nothing in flight always gets one request through
    assert (aip_clients_admit (clients, alice, 600 * 1024, err, sizeof err) == 0);
    assert (aip_clients_admit (clients, alice, 600 * 1024, err, sizeof err) == -1);
    assert (strstr (err, "read the replies"));
    assert (aip_clients_admit (clients, bob, 600 * 1024, err, sizeof err) == 0);
    assert (aip_clients_used (clients, alice) == 600 * 1024);
    aip_clients_release (clients, alice, 600 * 1024);
    assert (aip_clients_used (clients, alice) == 0);
    assert (aip_clients_admit (clients, alice, 2 * budget, err, sizeof err) == 0);
    aip_clients_release (clients, alice, 2 * budget);
    aip_clients_release (clients, bob, 600 * 1024);
    aip_clients_sweep (clients);
    assert (aip_clients_size (clients) == 0);

    //  A reader that does not read: replies are kept (and counted) once
    //  its pipe is full, and all arrive, in order, once it reads
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_sndhwm (router, 2);
    zsock_set_router_mandatory (router, 1);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert (port > 0);
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_rcvhwm (dealer, 2);
    zsock_set_identity (dealer, "carol");
    assert (zsock_connect (dealer, "tcp://127.0.0.1:%d", port) == 0);
    zstr_send (dealer, "hello");
    char *hello = zstr_recv (router);       //  the routing id, then the body
    zstr_free (&hello);
    hello = zstr_recv (router);
    zstr_free (&hello);
    zframe_t *carol = zframe_from ("carol");
    char body [64 * 1024];
    memset (body, 'x', sizeof body);
    size_t sent = 0;
    int64_t deadline = aip_clock_ms () + 10000;
    while (aip_clients_used (clients, carol) == 0 && aip_clock_ms () < deadline) {
        snprintf (body, 16, "%010zu", sent++);
        aip_clients_send (clients, zsock_resolve (router), carol, "carol", 5, body, sizeof body);
    }
    assert (aip_clients_used (clients, carol) == sizeof body);
    //  Kept replies count against new requests
    assert (aip_clients_admit (clients, carol, budget, err, sizeof err) == -1);
    for (int i = 0; i < 3; i++, sent++) {
        snprintf (body, 16, "%010zu", sent);
        aip_clients_send (clients, zsock_resolve (router), carol, "carol", 5, body, sizeof body);
    }
    zsock_set_rcvtimeo (dealer, 10);
    deadline = aip_clock_ms () + 10000;
    for (size_t i = 0; i < sent; i++) {
        zframe_t *got = NULL;
        while (!got && aip_clock_ms () < deadline) {
            aip_clients_flush (clients);        //  the broker does this in its loop
            got = zframe_recv (dealer);
        }
        assert (got && zframe_size (got) == sizeof body);
        char want [16];
        snprintf (want, sizeof want, "%010zu", i);
        assert (memcmp (zframe_data (got), want, 10) == 0);
        zframe_destroy (&got);
    }
    assert (!aip_clients_flush (clients));
    assert (aip_clients_used (clients, carol) == 0);
    aip_clients_sweep (clients);
    assert (aip_clients_size (clients) == 0);

    zframe_destroy (&carol);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
    zframe_destroy (&alice);
    zframe_destroy (&bob);
    aip_clients_destroy (&clients);
    aip_clients_destroy (&clients);
    if (verbose)
        printf ("(budget, refusal, kept in order while the pipe is full) ");
    printf ("OK\n");
}
