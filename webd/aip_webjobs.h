/*  aip_webjobs.h — the ai-peer commands webd runs for the pages (invite,
    quick, discuss, room join, room create, export), at most
    AIP_WEB_MAX_JOBS at once, each an aip_webjob. The page that asked hears
    {type:"job", state:"running"} when one starts and "done" or "failed"
    (with the command's own error) when it ends; an export's file comes as
    {type:"export"}. One row of a table says what each kind of command
    shows when it ends.

    It does not watch descriptors: the caller polls a job's stdout
    (aip_webjobs_fd), hands what is readable to aip_webjobs_read, and calls
    aip_webjobs_reap until no job runs. */
#ifndef AIP_WEBJOBS_H_INCLUDED
#define AIP_WEBJOBS_H_INCLUDED

#include "aip_webpages.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct _aip_webjobs_t aip_webjobs_t;
//  One command running for a page
typedef struct _aip_webjobs_run_t aip_webjobs_run_t;

//  Commands run with home as $AI_PEERS_HOME; the pages hear of them (borrowed)
aip_webjobs_t *aip_webjobs_new (const char *home, aip_webpages_t *pages);
//  Kills the commands that still run
void aip_webjobs_destroy (aip_webjobs_t **self_p);

//  Start argv (an absolute path first; it ends at its first NULL) for the
//  page of serial: kind is a row of the table ("invite", "quick",
//  "discuss", "join", "create", "export"), what says it for the page, room
//  its room or NULL, format export's "md" or "json" (else NULL); a
//  password goes into its environment only. The run, or NULL when it
//  cannot start (the page was told why).
aip_webjobs_run_t *aip_webjobs_start (aip_webjobs_t *self, uint64_t serial, const char *kind,
                                      const char *what, const char *room, const char *format,
                                      const char *const *argv, const char *password);
//  The read end of its stdout (the caller watches it; closing it is the
//  caller's, and then aip_webjobs_output_done)
int aip_webjobs_fd (aip_webjobs_run_t *run);
//  Read what fd has: 0 while more may come, -1 at its end (or when it
//  went over AIP_WEB_MAX_JOB_OUTPUT: the command is killed)
int aip_webjobs_read (aip_webjobs_run_t *run, int fd);
//  Its stdout is closed: it is reaped once it exits
void aip_webjobs_output_done (aip_webjobs_run_t *run);
//  Reap what exited after its output ended, and tell each page how its
//  command went. True while a command still runs; *rooms_changed is set
//  when one made or joined a room (every page's list changes).
bool aip_webjobs_reap (aip_webjobs_t *self, bool *rooms_changed);

void aip_webjobs_test (bool verbose);

#endif
