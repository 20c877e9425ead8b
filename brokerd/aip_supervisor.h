/*  aip_supervisor.h — the worker daemons the broker starts and keeps
    running (storaged, spawnd, relayd, ...).

    Each child is an executable in bin_dir started as
    `<name> --home HOME --endpoint <workers endpoint>`; it dies with the
    broker (PR_SET_PDEATHSIG). A child that exits is reaped by
    aip_supervisor_reap, which says which one and why; the broker then
    fails what its worker held and either restarts it (with a doubling
    backoff, reset after a healthy run) or gives up. The supervisor never
    reaches into the broker: the broker asks, and acts on the answers. */
#ifndef AIP_SUPERVISOR_H_INCLUDED
#define AIP_SUPERVISOR_H_INCLUDED

#include <czmq.h>
#include "aip_proto.h"

typedef struct _aip_supervisor_t aip_supervisor_t;

//  One supervised daemon, as daemon status shows it
typedef struct {
    const char *name;           //  executable name ("storaged")
    aip_svc_t svc;              //  the service it serves
    pid_t pid;                  //  running process, or 0
    int restarts;               //  times restarted
    bool held;                  //  waits for aip_supervisor_release before its first start
    int backoff_ms;             //  next restart delay
    int64_t start_at;           //  when to (re)start it, 0 = not scheduled
    int64_t started_at;         //  when it last started
} aip_child_t;

//  A child that exited
typedef struct {
    size_t index;               //  which child (aip_supervisor_child)
    const char *name;           //  its executable name
    aip_svc_t svc;              //  its service
    pid_t pid;                  //  the process that exited
    char why [64];              //  "killed by signal 9", "exited with status 1"
} aip_child_exit_t;

aip_supervisor_t *aip_supervisor_new (const char *home, const char *bin_dir);
//  Stops the children (aip_supervisor_stop) first
void aip_supervisor_destroy (aip_supervisor_t **self_p);

//  A child to run: name must live as long as the supervisor (a literal).
//  held: not started before aip_supervisor_release (self, svc). -1 when
//  there is no room for another child.
int aip_supervisor_add (aip_supervisor_t *self, const char *name, aip_svc_t svc, bool held);
//  Start the held children of svc that never started
void aip_supervisor_release (aip_supervisor_t *self, aip_svc_t svc);
//  Start the children whose time has come
void aip_supervisor_start_due (aip_supervisor_t *self);
//  One child that exited since the last call: true with *exit filled (a
//  spawnd's left-over tool group is killed). It stays down until
//  aip_supervisor_restart.
bool aip_supervisor_reap (aip_supervisor_t *self, aip_child_exit_t *exit);
//  Restart that child after its backoff (logs "name (pid X) why; restarting")
void aip_supervisor_restart (aip_supervisor_t *self, const aip_child_exit_t *exit);
//  The last "<name>: ..." line the child wrote to daemon.log, or ""
void aip_supervisor_last_error (aip_supervisor_t *self, const char *name, char *buf,
                                size_t size);
//  SIGTERM every child, SIGKILL what is still there after 3 s
void aip_supervisor_stop (aip_supervisor_t *self);

//  Start the child called name now, stopping it first when it runs and
//  restart is true (a new port for webd): its pid, or -1 when there is none
pid_t aip_supervisor_start_now (aip_supervisor_t *self, const char *name, bool restart);
//  Stop the child called name (SIGTERM, SIGKILL after 3 s) and forget it:
//  the pid it had (0: it was not running), or -1 when there is none
pid_t aip_supervisor_remove (aip_supervisor_t *self, const char *name);

size_t aip_supervisor_size (aip_supervisor_t *self);
const aip_child_t *aip_supervisor_child (aip_supervisor_t *self, size_t index);
//  The child running as pid, or NULL
const aip_child_t *aip_supervisor_find (aip_supervisor_t *self, pid_t pid);

void aip_supervisor_test (bool verbose);

#endif
