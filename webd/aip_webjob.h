/*  aip_webjob.h — an ai-peer command that webd runs for a page (invite,
    quick, discuss, room join, export): the CLI holds the logic of those
    commands and talks to brokerd like any client; webd reads its JSON
    document back. The child runs in its own process group with stdin and
    stderr on /dev/null; a password goes in its environment
    (AI_PEER_PASSWORD), never in argv; the output read back is bounded. */
#ifndef AIP_WEBJOB_H_INCLUDED
#define AIP_WEBJOB_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct _aip_webjob_t aip_webjob_t;

//  Start argv [0] (an absolute path) with argv; password NULL or the
//  password of a room to join. NULL with err on failure.
aip_webjob_t *aip_webjob_new (const char *const *argv, const char *home, const char *password,
                              char *err, size_t errlen);
//  Kills the process group if it still runs
void aip_webjob_destroy (aip_webjob_t **self_p);

//  The read end of the child's stdout (non-blocking); the caller polls it
//  and hands it over: aip_webjob_read never closes it
int aip_webjob_fd (aip_webjob_t *self);
//  Read what is there: 0 while more may come, 1 at end of output, -1 when
//  the output went over max_output (the child is killed)
int aip_webjob_read (aip_webjob_t *self, int fd);
//  True once the child exited; *status is its exit status (-1: killed)
bool aip_webjob_reap (aip_webjob_t *self, int *status);
//  What it printed so far (NUL-terminated, borrowed)
const char *aip_webjob_output (aip_webjob_t *self, size_t *len);
pid_t aip_webjob_pid (aip_webjob_t *self);

void aip_webjob_test (bool verbose);

#endif
