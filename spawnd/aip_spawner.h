/*  aip_spawner.h — the spawner actor: one worker of the "spawn" service.

    It takes one job at a time (slots = 1; run several spawnd for
    concurrency). For spawn.run it reads the room and its history from the
    store service through the broker (as a client), builds the prompt, runs
    the tool under aip_proc, posts the answer (or "[spawn error] ...") in
    the room as the AI peer <host>-<tool>, and replies with the result.
    While a tool runs the actor keeps answering heartbeats, so a two-minute
    invite never looks like a dead worker.

    Remote mode (spawnd --hub): both sockets connect to a LAN hub's CURVE
    TCP endpoint (worker_endpoint == client_endpoint), pinning its public
    key, and every store request carries the hub's worker token: the room
    and its history live on the hub, the tool runs here. */
#ifndef AIP_SPAWNER_H_INCLUDED
#define AIP_SPAWNER_H_INCLUDED

#include <czmq.h>

typedef struct {
    const char *home;               //  $AI_PEERS_HOME (tools.json, temp prompt files)
    const char *worker_endpoint;    //  the broker's worker socket
    const char *client_endpoint;    //  the broker's client socket (store requests)
    const char *name;               //  shown by daemon status
    const uint8_t *hub_key;         //  a LAN hub's public key (32 bytes): CURVE; NULL: local
    const char *token;              //  the hub's worker token (with hub_key), else NULL
} aip_spawner_args_t;

//  zactor body: zactor_new (aip_spawner, &args)
void aip_spawner (zsock_t *pipe, void *args);

void aip_spawner_test (bool verbose);

#endif
