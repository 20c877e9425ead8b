/*  aip_proc.h — one child process run under hard control.

    The child gets its input on stdin (written without blocking, then
    closed: some tools wait for EOF forever), runs in a new session and
    process group, in a given directory, with a given environment. Its
    stdout and stderr are captured up to caps (the rest is counted, not
    kept). A deadline kills the whole group: SIGTERM, then SIGKILL after a
    grace period. When the child itself exits, the rest of its group is
    killed too, so a grandchild that holds stdout open cannot stall us.

    The object is driven from the owner's poll loop (aip_proc_items /
    aip_proc_handle / aip_proc_tick) so that a worker keeps heartbeating
    while a tool runs; aip_proc_wait runs it to the end for simple callers. */
#ifndef AIP_PROC_H_INCLUDED
#define AIP_PROC_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *const *argv;          //  argv [0] is the executable's path
    char *const *envp;          //  environment of the child
    const char *cwd;            //  working directory, or NULL
    const char *input;          //  written to stdin, then stdin is closed
    size_t input_len;
    int timeout_ms;             //  hard limit on the run time
    size_t max_stdout;          //  bytes of stdout kept
    size_t max_stderr;          //  bytes of stderr kept
    bool keep_stdin;            //  stdin stays open after input (aip_proc_write)
    void (*on_stdout) (void *arg, const char *data, size_t len);   //  each read, or NULL
    void *on_stdout_arg;        //  its argument
} aip_proc_opts_t;

typedef struct _aip_proc_t aip_proc_t;

//  Start a process. NULL with err filled when it cannot start (errno in
//  *start_errno: ENOENT, EACCES, ENOTDIR for a bad cwd...).
aip_proc_t *aip_proc_new (const aip_proc_opts_t *opts, int *start_errno, char *err, size_t errlen);
void aip_proc_destroy (aip_proc_t **self_p);

//  Poll integration: fill up to max items (raw fds) to poll; returns count
int aip_proc_items (aip_proc_t *self, zmq_pollitem_t *items, int max);
//  After a poll: handle the items aip_proc_items filled
void aip_proc_handle (aip_proc_t *self, zmq_pollitem_t *items, int count);
//  Deadlines and child exit; call after every poll
void aip_proc_tick (aip_proc_t *self);
//  Milliseconds until aip_proc_tick has something to do
int aip_proc_timeout (aip_proc_t *self);
//  The child exited and its output is read (or given up on)
bool aip_proc_done (aip_proc_t *self);
//  Stop it now (cancel): SIGTERM to the group, SIGKILL after the grace
void aip_proc_cancel (aip_proc_t *self);
//  Run until done (blocking)
void aip_proc_wait (aip_proc_t *self);
//  Queue bytes for stdin (a copy; with keep_stdin), written as it drains
void aip_proc_write (aip_proc_t *self, const char *data, size_t len);
//  The tool said all it had to: close stdin once written, give it
//  grace_ms to exit, then stop the group (not a timeout, not a cancel)
void aip_proc_finish (aip_proc_t *self, int grace_ms);

//  Make this process a child subreaper (PR_SET_CHILD_SUBREAPER): what a
//  tool starts and detaches (setsid, double fork) is reparented to us
//  instead of init, so aip_proc_sweep can kill it. 0 on success.
int aip_proc_subreaper (void);
//  Kill and reap every child of this process not running under an
//  aip_proc now: what escaped a finished tool's group. Returns how many.
int aip_proc_sweep (void);

//  Results (valid once done)
const char *aip_proc_stdout (aip_proc_t *self, size_t *len);
size_t aip_proc_stdout_total (aip_proc_t *self);
const char *aip_proc_stderr (aip_proc_t *self, size_t *len);
bool aip_proc_exited (aip_proc_t *self);       //  normal exit (vs. killed by a signal)
int aip_proc_exit_code (aip_proc_t *self);     //  exit status, or the signal number
bool aip_proc_timed_out (aip_proc_t *self);
bool aip_proc_cancelled (aip_proc_t *self);
int64_t aip_proc_elapsed_ms (aip_proc_t *self);
int aip_proc_pid (aip_proc_t *self);

void aip_proc_test (bool verbose);

#endif
