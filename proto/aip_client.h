/*  aip_client.h — a client of the daemon set: finds (or starts) brokerd for
    an $AI_PEERS_HOME and exchanges requests and replies with it.

    Two kinds of caller. The CLI sends a request and waits for its reply
    (aip_client_call). An actor (spawnd, relayd) cannot wait: it sends with
    aip_client_begin, polls aip_client_socket in its own loop, and takes the
    reply to each id (aip_client_take) when it has come; a blocking wait of
    the same client keeps the replies of the others for them.

    Raw libzmq only (no czmq): the CLI is started for every command, so what
    it loads is the user's latency. Starting the daemons is aip_daemon's. */
#ifndef AIP_CLIENT_H_INCLUDED
#define AIP_CLIENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "aip_daemon.h"
#include "aip_proto.h"

typedef struct _aip_client_t aip_client_t;

//  Connect to the daemons of home; start them first when they are not
//  running and autostart is true. NULL with err filled on failure.
aip_client_t *aip_client_new (const char *home, bool autostart, char *err, size_t errlen);
//  An actor's client of endpoint (the broker's client socket, or a LAN
//  hub's with its CURVE key server_key, 32 bytes), a DEALER in the actor's
//  zmq context ctx (zsys_init ()); never starts the daemons. NULL with err.
aip_client_t *aip_client_new_actor (void *ctx, const char *endpoint,
                                    const uint8_t *server_key, char *err, size_t errlen);
void aip_client_destroy (aip_client_t **self_p);

//  A fresh request id
uint64_t aip_client_next_id (aip_client_t *self);
//  Send one packed request (the pack is left as is)
int aip_client_send (aip_client_t *self, aip_pack_t *request, char *err, size_t errlen);
//  Wait up to timeout_ms for the reply to request id (0: to any request).
//  0 when a reply
//  arrived (check rep->ok), -1 on timeout or when the daemon died (err says
//  which; *daemon_died set for the latter).
int aip_client_recv (aip_client_t *self, uint64_t id, int timeout_ms, aip_reply_t *rep,
                     bool *daemon_died, char *err, size_t errlen);
//  Send and wait. When the daemon dies mid-request (a kill -9, a crash) it
//  is restarted and the request sent once more: every operation is
//  idempotent (clients choose the ids of what they create).
int aip_client_call (aip_client_t *self, aip_pack_t *request, uint64_t id, int timeout_ms,
                     aip_reply_t *rep, char *err, size_t errlen);
//  Send a request (id: the one packed in it) and return at once; its reply
//  is taken with aip_client_take within timeout_ms. -1 (err) when it could
//  not be sent or too many requests are in flight.
int aip_client_begin (aip_client_t *self, aip_pack_t *request, uint64_t id, int timeout_ms,
                      char *err, size_t errlen);
//  Read what the socket holds, without waiting, and take the reply to a
//  begun request: 1 with rep filled (the caller frees it), 0 when it has
//  not come yet, -1 when it timed out or id is no begun request (err).
//  After 1 or -1 the id is forgotten.
int aip_client_take (aip_client_t *self, uint64_t id, aip_reply_t *rep, char *err,
                     size_t errlen);
//  Forget a begun request: its reply, when it comes, is dropped
void aip_client_forget (aip_client_t *self, uint64_t id);
//  Requests begun and not yet taken or forgotten
size_t aip_client_pending (aip_client_t *self);
//  A daemon stopping: waits give up (within LIVENESS_CHECK_MS) once *stop
//  is non-zero (e.g. &zsys_interrupted), so a SIGTERM is not held up by a
//  daemon that will not answer any more
void aip_client_set_stop (aip_client_t *self, volatile int *stop);
//  The socket to brokerd (a ZeroMQ DEALER, borrowed), for an actor that
//  polls it in its own loop (POLLIN: call aip_client_take), or one that
//  decodes the replies itself (webd)
void *aip_client_socket (aip_client_t *self);
//  Pid of the broker this client talks to
pid_t aip_client_broker_pid (aip_client_t *self);

void aip_client_test (bool verbose);

#endif
