/*  aip_jobs.h — the broker's asynchronous jobs (invite --async).

    A job is a spawn.run whose client got a job id at once: the broker
    holds its result until someone asks (job.wait) and can cancel it
    (job.cancel). This class keeps the jobs and their waiters; it never
    sends anything itself: every answer it has for a client is appended to
    an `out` message as a pair of frames [client routing id][reply body],
    which the broker sends. */
#ifndef AIP_JOBS_H_INCLUDED
#define AIP_JOBS_H_INCLUDED

#include <czmq.h>
#include "aip_proto.h"

typedef struct _aip_jobs_t aip_jobs_t;

aip_jobs_t *aip_jobs_new (void);
void aip_jobs_destroy (aip_jobs_t **self_p);

//  A new job doing "what": its id (borrowed), or NULL when too many are
//  unfinished (finished jobs are forgotten oldest first to make room)
const char *aip_jobs_add (aip_jobs_t *self, const char *what);

//  The job was handed to a worker, whose request the broker calls tag
void aip_jobs_started (aip_jobs_t *self, const char *id, uint64_t tag);

//  The worker's reply (or the broker's error) ends the job; the answers of
//  its waiters go to out
void aip_jobs_finish (aip_jobs_t *self, const char *id, const void *data, size_t size,
                      zmsg_t *out);

//  job.list, job.wait, job.cancel from client; answers go to out (a
//  job.wait on an unfinished job is held until it ends). job.cancel
//  returns the tag of the running request to send CANCEL for (0: none),
//  and sets *dequeue when the job still waits in the broker's queue: the
//  broker takes it out (the job has then ended as cancelled).
void aip_jobs_list (aip_jobs_t *self, zframe_t *client, uint64_t request_id, zmsg_t *out);
void aip_jobs_wait (aip_jobs_t *self, zframe_t *client, const aip_request_t *req, zmsg_t *out);
uint64_t aip_jobs_cancel (aip_jobs_t *self, zframe_t *client, const aip_request_t *req,
                          zmsg_t *out, bool *dequeue);

//  Jobs known (finished or not), for tests and status
size_t aip_jobs_size (aip_jobs_t *self);

void aip_jobs_test (bool verbose);

#endif
