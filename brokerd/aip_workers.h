/*  aip_workers.h — the broker's worker table: who serves what, and the
    requests they hold or that wait for them.

    A worker registers with READY (its service, slots and, for spawn, the
    AI tools it has), stays alive by heartbeats, answers REQ with REPLY
    and leaves with BYE, by falling silent, or when its process dies. This
    class keeps the workers, the requests handed to them (by tag) and, per
    service, the requests waiting for a free slot. It talks to the workers
    itself (aip_frames) and publishes their events; everything it has for
    a client is appended to an `out` message as pairs of frames [client
    routing id][reply body], which the broker sends. A request's cost is
    released from its client's budget (aip_clients) when it ends, and an
    async job's result goes to its job (aip_jobs): both are the broker's,
    borrowed here. */
#ifndef AIP_WORKERS_H_INCLUDED
#define AIP_WORKERS_H_INCLUDED

#include <czmq.h>
#include "aip_clients.h"
#include "aip_jobs.h"
#include "aip_lanmode.h"
#include "aip_proto.h"
#include "aip_supervisor.h"

typedef struct _aip_workers_t aip_workers_t;

//  A request for a worker, as the router described it
typedef struct {
    uint64_t request_id;            //  the client's request id
    aip_op_t op;                    //  its operation (logs and errors)
    char tool [AIP_MAX_NAME + 1];   //  the AI tool its worker must have, or ""
    char job [160];                 //  what it does, for daemon status ("" if nothing to say)
    char job_id [AIP_MAX_ID + 1];   //  the async job whose result it is, or ""
    size_t cost;                    //  charged to its client's budget until it ends
} aip_work_t;

//  What a call changed that the broker acts on
#define AIP_WORKERS_STORE_UP 0x01   //  a store worker registered
#define AIP_WORKERS_TOOLS    0x02   //  the local spawn workers' tools may have changed

//  events: the PUB socket for the workers' events; home and
//  queue_wait_ms say how long a request waits and where to look then
aip_workers_t *aip_workers_new (aip_clients_t *budgets, aip_jobs_t *jobs, zsock_t *events,
                                const char *home, int queue_wait_ms);
void aip_workers_destroy (aip_workers_t **self_p);

//  One message from a worker on sock, a ROUTER (routing id first); remote
//  when it is the LAN socket, whose workers lan checks. Consumes *msg_p.
//  Returns AIP_WORKERS_* flags.
unsigned aip_workers_recv (aip_workers_t *self, zsock_t *sock, zmsg_t **msg_p, bool remote,
                           aip_lanmode_t *lan, zmsg_t *out);

//  Hand a request of svc to the worker with the most free slots (that has
//  work->tool, while any has), or queue it; *client_p and *body_p are
//  taken. A queue that is full fails it at once.
void aip_workers_route (aip_workers_t *self, aip_svc_t svc, zframe_t **client_p,
                        zframe_t **body_p, const aip_work_t *work, zmsg_t *out);

//  Heartbeats to the workers, the silent ones dropped, requests that
//  waited too long failed. Returns AIP_WORKERS_* flags.
unsigned aip_workers_tick (aip_workers_t *self, zmsg_t *out);
//  When aip_workers_tick is next due (aip_clock_ms time)
int64_t aip_workers_next_due (aip_workers_t *self);

//  The process pid died (why): fail what its worker held and forget it.
//  Returns AIP_WORKERS_* flags.
unsigned aip_workers_drop_pid (aip_workers_t *self, int pid, const char *why, zmsg_t *out);

//  Tell the worker that holds request tag to stop it (job.cancel)
void aip_workers_cancel (aip_workers_t *self, uint64_t tag);
//  Forget the queued request of async job job_id (it was cancelled)
void aip_workers_dequeue (aip_workers_t *self, const char *job_id);

//  Workers of svc connected now; requests waiting; requests handed over
//  since the start
size_t aip_workers_size (aip_workers_t *self, aip_svc_t svc);
size_t aip_workers_queued (aip_workers_t *self);
uint64_t aip_workers_routed (aip_workers_t *self);
//  The AI tools of this machine's spawn workers, "a,b" (the LAN beacon)
void aip_workers_local_tools (aip_workers_t *self, char *buf, size_t size);
//  daemon status's "daemons": brokerd, each child of supervisor (may be
//  NULL) with its worker, then the workers it did not start
void aip_workers_pack_daemons (aip_workers_t *self, aip_supervisor_t *supervisor,
                               aip_pack_t *pk);

void aip_workers_test (bool verbose);

#endif
