/*  aip_relay.h — the relay-sync actor: keeps public rooms in sync with
    their relay (DESIGN.md §7, v1 protocol).

    It serves the "relay" service of the broker (relay.join, relay.push,
    relay.status) and is a client of the "store" service:

      out  local messages of public rooms wait in storaged's outbox (written
           in the same transaction as the message); they are posted in order,
           one at a time per room, with the local message id as the relay
           message id (a retry never duplicates), retried with exponential
           backoff and jitter, and removed from the outbox only once the
           relay acknowledged them. A restart resumes from the outbox.
      in   one WebSocket per room (libwebsockets, its own thread) pushes new
           messages; every (re)connect catches up with GET /messages?since=
           from the room's cursor (the newest relay created_at seen, kept in
           storaged); while the WebSocket is down the room is polled every
           AIP_RELAY_POLL_MS. Messages are inserted idempotently by id, so
           overlap is harmless, and storaged publishes them as events.

    HTTP goes through libcurl's multi interface inside the actor's poll
    loop; answers are capped at AIP_RELAY_MAX_BODY and parsed with jansson.
    Nothing a relay sends can crash the daemon: every field is checked
    before use. */
#ifndef AIP_RELAY_H_INCLUDED
#define AIP_RELAY_H_INCLUDED

#include <czmq.h>

typedef struct {
    const char *home;           //  $AI_PEERS_HOME (identity.json, broker endpoints)
    const char *endpoint;       //  broker's worker endpoint
} aip_relay_args_t;

//  zactor body: zactor_new (aip_relay, &args). Signals 0 once serving,
//  -1 (and logs why) if it cannot start.
void aip_relay (zsock_t *pipe, void *args);

void aip_relay_test (bool verbose);

#endif
