/*  aip_storage.h — the storage actor: the only owner of peers.db.

    It serves the "store" service of the broker. Requests that arrive
    together are executed in one transaction (group commit): each in its own
    savepoint, so one bad request fails alone; the batch is committed (WAL,
    synchronous=FULL by default: the commit is on disk) before any reply or
    event leaves — a write is acknowledged only once durable. Message
    inserts are idempotent by message id, so a client may retry freely. */
#ifndef AIP_STORAGE_H_INCLUDED
#define AIP_STORAGE_H_INCLUDED

#include <czmq.h>

typedef struct {
    const char *db_path;        //  peers.db
    const char *endpoint;       //  broker's worker endpoint
    int slots;                  //  requests taken at once (0: AIP_MAX_BATCH)
    bool sync_normal;           //  synchronous=NORMAL instead of FULL
} aip_storage_args_t;

//  zactor body: zactor_new (aip_storage, &args). Signals 0 once the
//  database is open and migrated, -1 (and logs why) if it cannot be.
void aip_storage (zsock_t *pipe, void *args);

void aip_storage_test (bool verbose);

#endif
