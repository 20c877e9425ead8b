/*  aip_broker.h — the routing broker actor.

    Clients (the CLI, agents, other daemons) send requests to a ROUTER;
    each request names an operation, each operation belongs to a service;
    the broker hands it to a worker of that service that has a free slot
    (Majordomo style), or queues it for a bounded time. Heartbeats run both
    ways; a worker that goes silent or whose process exits is dropped and
    its in-flight requests fail at once with a clear error. Events from
    workers are republished on a PUB socket. The broker also starts and
    supervises the worker daemons (restart with backoff). */
#ifndef AIP_BROKER_H_INCLUDED
#define AIP_BROKER_H_INCLUDED

#include <czmq.h>

typedef struct {
    const char *home;           //  $AI_PEERS_HOME
    const char *bin_dir;        //  where storaged & co live; NULL: supervise nothing
    int ready_fd;               //  write "ready\n" here once serving, or -1
    bool lan;                   //  LAN mode (binds TCP)
    int port;                   //  LAN port
    bool write_files;           //  write daemon.pid / daemon.json
    int queue_wait_ms;          //  how long a request waits for a worker (0: default)
    int spawn_workers;          //  spawnd processes to run (0: none)
    bool lan_optional;          //  LAN mode only remembered: if it cannot start, serve
                                //  locally (and log why) rather than not at all
    bool failed;                //  set by the actor when it cannot start (it then exits)
} aip_broker_args_t;

//  zactor body: zactor_new (aip_broker, &args). The actor sends "STOPPED"
//  on its pipe when a client asked it to stop (daemon stop). When it cannot
//  start (a socket, daemon.pid, the LAN port) it sets args->failed and
//  returns: zactor_new does not say so, the caller must look.
void aip_broker (zsock_t *pipe, void *args);

void aip_broker_test (bool verbose);

#endif
