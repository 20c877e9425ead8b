/*  aip_clients.h — what the broker holds for each client, in bytes.

    A client that sends requests and does not read its replies must not
    take the broker (and the store behind it) with it. Each client has a
    budget (AIP_CLIENT_BUDGET bytes): its requests in flight count their
    cost (aip_clients_admit / aip_clients_release), and so do the replies
    its socket would not take yet (ZeroMQ's pipe to it is kept short,
    AIP_CLIENT_SNDHWM). A request that would go over the budget is refused
    before any work is done; the other clients do not notice.

    The sockets given to aip_clients_send are ROUTERs with
    ZMQ_ROUTER_MANDATORY on: a full pipe then says EAGAIN instead of
    dropping the reply, and the reply waits here until aip_clients_flush
    finds room. */
#ifndef AIP_CLIENTS_H_INCLUDED
#define AIP_CLIENTS_H_INCLUDED

#include <czmq.h>
#include "aip_proto.h"

typedef struct _aip_clients_t aip_clients_t;

//  budget: bytes per client (AIP_CLIENT_BUDGET; smaller in tests)
aip_clients_t *aip_clients_new (size_t budget);
void aip_clients_destroy (aip_clients_t **self_p);

//  What a request of op with a body of size bytes costs while in flight:
//  its body, plus a page for the operations that answer with one
size_t aip_clients_cost (aip_op_t op, size_t size);
//  Charge a new request's cost to client (its routing id as the broker
//  keeps it): 0, or -1 with a clear message when that would go over its
//  budget (nothing charged)
int aip_clients_admit (aip_clients_t *self, zframe_t *client, size_t cost, char *err,
                       size_t errlen);
//  The request ended (answered or failed): its cost is free again
void aip_clients_release (aip_clients_t *self, zframe_t *client, size_t cost);

//  Send data to client over sock, whose routing id is id (idlen bytes;
//  for a LAN client, without our mark). Kept here while the pipe is full;
//  dropped (and logged) only past twice the budget, or when the client is
//  gone.
void aip_clients_send (aip_clients_t *self, void *sock, zframe_t *client, const void *id,
                       size_t idlen, const void *data, size_t size);
//  Retry the replies kept here; true while some are still waiting
bool aip_clients_flush (aip_clients_t *self);
//  Forget clients with nothing in flight and nothing kept
void aip_clients_sweep (aip_clients_t *self);

//  Bytes charged to client now (in flight + kept), for tests and status
size_t aip_clients_used (aip_clients_t *self, zframe_t *client);
size_t aip_clients_size (aip_clients_t *self);

void aip_clients_test (bool verbose);

#endif
