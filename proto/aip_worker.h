/*  aip_worker.h — the worker side of the broker protocol (czmq).

    A daemon that serves a service (storaged: "store", spawnd: "spawn",
    relayd: "relay") owns one aip_worker_t. It connects a DEALER to the
    broker's worker endpoint, announces its service and how many requests
    it takes at once (slots), exchanges heartbeats, and reconnects when the
    broker goes silent (a restarted broker forgets its workers).

    A remote worker (spawnd --hub) connects over TCP to a LAN hub's CURVE
    ROUTER instead: it pins the hub's public key, uses a key pair of its
    own made at start (the hub trusts the worker token, not the key), and
    its READY carries the token. Every reconnect keeps those settings. */
#ifndef AIP_WORKER_H_INCLUDED
#define AIP_WORKER_H_INCLUDED

#include <czmq.h>

#include "aip_proto.h"

typedef struct _aip_worker_t aip_worker_t;

//  Connect and announce. name is shown by 'daemon status'.
aip_worker_t *aip_worker_new (const char *endpoint, aip_svc_t svc, int slots, const char *name);
//  Connect to a LAN hub (tcp://HOST:PORT) with CURVE: server_key is the
//  hub's public key, token its worker token (sent in READY). NULL if this
//  libzmq was built without CURVE.
aip_worker_t *aip_worker_new_remote (const char *endpoint, aip_svc_t svc, int slots,
                                     const char *name, const uint8_t server_key [32],
                                     const char *token);
void aip_worker_destroy (aip_worker_t **self_p);
//  The socket to poll for input (changes after a reconnect: fetch it again)
zsock_t *aip_worker_sock (aip_worker_t *self);
//  Read one message from the broker. Returns 1 and hands over a request
//  (tag, body) to answer with aip_worker_reply, 0 for protocol traffic the
//  worker handled itself, -1 if nothing could be read.
int aip_worker_recv (aip_worker_t *self, uint64_t *tag, zframe_t **body);
//  Did the broker ask to cancel request tag (an async job)? Clears it.
//  CANCEL arrives as protocol traffic (aip_worker_recv returns 0).
bool aip_worker_take_cancel (aip_worker_t *self, uint64_t tag);
//  Answer a request
int aip_worker_reply (aip_worker_t *self, uint64_t tag, const void *data, size_t size);
//  Publish an event through the broker
int aip_worker_event (aip_worker_t *self, const char *topic, const void *data, size_t size);
//  Heartbeats and reconnection: call when aip_worker_timeout() elapses
void aip_worker_tick (aip_worker_t *self);
//  Milliseconds until the next tick is due
int aip_worker_timeout (aip_worker_t *self);
//  A spawn worker tells the broker which AI tools it has ("a,b,c"): an
//  invite goes to a worker that has its tool (READY is sent again)
void aip_worker_set_tools (aip_worker_t *self, const char *tools);
//  Say goodbye (on clean shutdown)
void aip_worker_bye (aip_worker_t *self);

//  Make sock a CURVE client of the server with this public key, with a
//  fresh key pair of its own (call before connecting). -1 if this libzmq
//  has no CURVE.
int aip_curve_client_apply (zsock_t *sock, const uint8_t server_key [32]);

//  Daemons: SIGTERM and SIGINT must reach the main thread, which waits for
//  them; delivered to a busy actor thread they would be lost (the process
//  would then ignore SIGTERM). Block them before creating actors (threads
//  inherit the mask), unblock them in the main thread after.
void aip_signals_block (void);
void aip_signals_unblock (void);

void aip_worker_test (bool verbose);

#endif
