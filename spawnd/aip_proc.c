/*  aip_proc.c — run a child process under hard control (see aip_proc.h). */
#include "aip_proc.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

//  Without a pidfd the child's exit is noticed by polling this often
#define PROC_EXIT_POLL_MS 10

typedef struct {
    int fd;                     //  read end, -1 once closed
    char *data;                 //  kept bytes
    size_t len;                 //  bytes kept
    size_t max;                 //  keep at most this
    size_t total;               //  bytes seen
    void (*cb) (void *arg, const char *data, size_t len);  //  told of each read, or NULL
    void *cb_arg;               //  its argument
} s_capture_t;

//  The children running under an aip_proc now (aip_proc_sweep spares them)
#define PROC_MAX_LIVE 64
static pid_t s_live [PROC_MAX_LIVE];
static pthread_mutex_t s_live_lock = PTHREAD_MUTEX_INITIALIZER;

static void
s_live_set (pid_t pid, bool live)
{
    pthread_mutex_lock (&s_live_lock);
    for (int i = 0; i < PROC_MAX_LIVE; i++) {
        if (live && s_live [i] == 0) {
            s_live [i] = pid;
            break;
        }
        if (!live && s_live [i] == pid)
            s_live [i] = 0;
    }
    pthread_mutex_unlock (&s_live_lock);
}

struct _aip_proc_t {
    pid_t pid;                  //  the child, also its process group
    int pidfd;                  //  readable when it exits, or -1
    int stdin_fd;               //  write end, -1 once closed
    char *input;                //  bytes queued for stdin (ours)
    size_t input_len;
    size_t input_sent;
    bool keep_stdin;            //  stdin stays open when the queue is empty
    bool finishing;             //  aip_proc_finish: the deadline is not a timeout
    s_capture_t out;            //  stdout
    s_capture_t err;            //  stderr
    int64_t started;            //  monotonic ms
    int64_t deadline;           //  SIGTERM at this time
    int64_t kill_at;            //  SIGKILL at this time, once TERM was sent
    int64_t eof_deadline;       //  after exit, stop waiting for EOF here
    int64_t ended;              //  when it was done
    bool term_sent;
    bool exited;                //  child reaped
    int status;                 //  its wait status
    bool timed_out;
    bool cancelled;
};

static void
s_capture_close (s_capture_t *c)
{
    if (c->fd >= 0) {
        close (c->fd);
        c->fd = -1;
    }
}

static void
s_capture_read (s_capture_t *c)
{
    char buf [65536];
    while (c->fd >= 0) {
        ssize_t n = read (c->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            s_capture_close (c);
            return;
        }
        c->total += (size_t) n;
        if (c->cb)
            c->cb (c->cb_arg, buf, (size_t) n);
        size_t room = c->max - c->len;
        size_t keep = (size_t) n < room ? (size_t) n : room;
        if (keep) {
            memcpy (c->data + c->len, buf, keep);
            c->len += keep;
            c->data [c->len] = 0;
        }
    }
}

static void
s_close_stdin (aip_proc_t *self)
{
    if (self->stdin_fd >= 0) {
        close (self->stdin_fd);
        self->stdin_fd = -1;
    }
}

static void
s_write_stdin (aip_proc_t *self)
{
    while (self->stdin_fd >= 0 && self->input_sent < self->input_len) {
        ssize_t n = write (self->stdin_fd, self->input + self->input_sent,
                           self->input_len - self->input_sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            //  EPIPE: the tool does not read its stdin; nothing to wait for
            s_close_stdin (self);
            return;
        }
        self->input_sent += (size_t) n;
    }
    if (self->input_sent >= self->input_len) {
        free (self->input);
        self->input = NULL;
        self->input_len = self->input_sent = 0;
        if (!self->keep_stdin)
            s_close_stdin (self);
    }
}

void
aip_proc_write (aip_proc_t *self, const char *data, size_t len)
{
    if (self->stdin_fd < 0 || !len)
        return;
    //  Drop what was written, append the new bytes
    size_t left = self->input_len - self->input_sent;
    char *queue = (char *) malloc (left + len);
    assert (queue);
    if (left)
        memcpy (queue, self->input + self->input_sent, left);
    memcpy (queue + left, data, len);
    free (self->input);
    self->input = queue;
    self->input_len = left + len;
    self->input_sent = 0;
    s_write_stdin (self);
}

void
aip_proc_finish (aip_proc_t *self, int grace_ms)
{
    self->keep_stdin = false;
    if (!self->input)
        s_close_stdin (self);
    if (self->exited || self->term_sent)
        return;
    self->finishing = true;
    int64_t at = aip_clock_ms () + grace_ms;
    if (at < self->deadline)
        self->deadline = at;
}

aip_proc_t *
aip_proc_new (const aip_proc_opts_t *opts, int *start_errno, char *err, size_t errlen)
{
    //  A tool that closes its stdin early must not kill us with SIGPIPE
    signal (SIGPIPE, SIG_IGN);
    int in [2] = { -1, -1 }, out [2] = { -1, -1 }, errp [2] = { -1, -1 };
    aip_proc_t *self = NULL;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init (&actions);
    posix_spawnattr_init (&attr);
    *start_errno = 0;
    if (pipe2 (in, O_CLOEXEC) || pipe2 (out, O_CLOEXEC) || pipe2 (errp, O_CLOEXEC)) {
        *start_errno = errno;
        snprintf (err, errlen, "pipe: %s", strerror (errno));
        goto cleanup;
    }
    posix_spawn_file_actions_adddup2 (&actions, in [0], 0);
    posix_spawn_file_actions_adddup2 (&actions, out [1], 1);
    posix_spawn_file_actions_adddup2 (&actions, errp [1], 2);
    //  Nothing of ours leaks into the tool (sockets, eventfds, the db)
    posix_spawn_file_actions_addclosefrom_np (&actions, 3);
    if (opts->cwd && *opts->cwd)
        posix_spawn_file_actions_addchdir_np (&actions, opts->cwd);
    //  New session = new process group: the timeout kills all of it
    sigset_t none, all;
    sigemptyset (&none);
    sigfillset (&all);
    posix_spawnattr_setsigmask (&attr, &none);
    posix_spawnattr_setsigdefault (&attr, &all);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK
                                   | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn (&pid, opts->argv [0], &actions, &attr, opts->argv, opts->envp);
    if (rc != 0) {
        *start_errno = rc;
        snprintf (err, errlen, "cannot run %s%s%s: %s", opts->argv [0],
                  opts->cwd && rc == ENOENT ? " in " : "",
                  opts->cwd && rc == ENOENT ? opts->cwd : "", strerror (rc));
        goto cleanup;
    }
    self = (aip_proc_t *) zmalloc (sizeof (aip_proc_t));
    self->pid = pid;
    self->pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
    self->stdin_fd = in [1];
    in [1] = -1;
    self->out.fd = out [0];
    out [0] = -1;
    self->err.fd = errp [0];
    errp [0] = -1;
    self->out.max = opts->max_stdout;
    self->err.max = opts->max_stderr;
    self->out.data = (char *) malloc (self->out.max + 1);
    self->err.data = (char *) malloc (self->err.max + 1);
    assert (self->out.data && self->err.data);
    self->out.data [0] = self->err.data [0] = 0;
    fcntl (self->stdin_fd, F_SETFL, O_NONBLOCK);
    fcntl (self->out.fd, F_SETFL, O_NONBLOCK);
    fcntl (self->err.fd, F_SETFL, O_NONBLOCK);
    self->keep_stdin = opts->keep_stdin;
    self->out.cb = opts->on_stdout;
    self->out.cb_arg = opts->on_stdout_arg;
    if (opts->input && opts->input_len) {
        self->input = (char *) malloc (opts->input_len);
        assert (self->input);
        memcpy (self->input, opts->input, opts->input_len);
        self->input_len = opts->input_len;
    }
    s_live_set (pid, true);
    self->started = aip_clock_ms ();
    self->deadline = self->started + (opts->timeout_ms > 0 ? opts->timeout_ms : 1);
    s_write_stdin (self);
cleanup:
    posix_spawn_file_actions_destroy (&actions);
    posix_spawnattr_destroy (&attr);
    for (int i = 0; i < 2; i++) {
        if (in [i] >= 0) close (in [i]);
        if (out [i] >= 0) close (out [i]);
        if (errp [i] >= 0) close (errp [i]);
    }
    return self;
}

void
aip_proc_destroy (aip_proc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    aip_proc_t *self = *self_p;
    if (!self->exited) {
        //  Destroyed while running (shutdown): nothing may survive us
        kill (-self->pid, SIGKILL);
        waitpid (self->pid, NULL, 0);
    }
    s_live_set (self->pid, false);
    free (self->input);
    s_close_stdin (self);
    s_capture_close (&self->out);
    s_capture_close (&self->err);
    if (self->pidfd >= 0)
        close (self->pidfd);
    free (self->out.data);
    free (self->err.data);
    free (self);
    *self_p = NULL;
}

int
aip_proc_items (aip_proc_t *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    zmq_pollitem_t item = { NULL, -1, 0, 0 };
    if (self->out.fd >= 0 && n < max) {
        item.fd = self->out.fd; item.events = ZMQ_POLLIN; items [n++] = item;
    }
    if (self->err.fd >= 0 && n < max) {
        item.fd = self->err.fd; item.events = ZMQ_POLLIN; items [n++] = item;
    }
    if (self->stdin_fd >= 0 && self->input && n < max) {
        item.fd = self->stdin_fd; item.events = ZMQ_POLLOUT; items [n++] = item;
    }
    if (self->pidfd >= 0 && !self->exited && n < max) {
        item.fd = self->pidfd; item.events = ZMQ_POLLIN; items [n++] = item;
    }
    return n;
}

void
aip_proc_handle (aip_proc_t *self, zmq_pollitem_t *items, int count)
{
    for (int i = 0; i < count; i++) {
        if (!items [i].revents)
            continue;
        if (items [i].fd == self->out.fd)
            s_capture_read (&self->out);
        else
        if (items [i].fd == self->err.fd)
            s_capture_read (&self->err);
        else
        if (items [i].fd == self->stdin_fd)
            s_write_stdin (self);
    }
}

void
aip_proc_tick (aip_proc_t *self)
{
    int64_t now = aip_clock_ms ();
    if (!self->exited) {
        siginfo_t info;
        memset (&info, 0, sizeof info);
        //  WNOWAIT: the zombie keeps the pid (and group id) reserved while
        //  we kill what is left of its group
        if (waitid (P_PID, (id_t) self->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0
        &&  info.si_pid == self->pid) {
            kill (-self->pid, SIGKILL);
            waitpid (self->pid, &self->status, 0);
            self->exited = true;
            self->eof_deadline = now + AIP_TOOL_EOF_GRACE_MS;
            s_close_stdin (self);
        }
        else
        if (now >= self->deadline && !self->term_sent) {
            self->timed_out = !self->cancelled && !self->finishing;
            self->term_sent = true;
            self->kill_at = now + AIP_TOOL_KILL_GRACE_MS;
            kill (-self->pid, SIGTERM);
        }
        else
        if (self->term_sent && now >= self->kill_at)
            kill (-self->pid, SIGKILL);
    }
    if (self->exited) {
        //  Read what is left; a writer that escaped the group cannot stall us
        s_capture_read (&self->out);
        s_capture_read (&self->err);
        if (now >= self->eof_deadline) {
            s_capture_close (&self->out);
            s_capture_close (&self->err);
        }
        if (self->out.fd < 0 && self->err.fd < 0 && !self->ended)
            self->ended = now;
    }
}

int
aip_proc_timeout (aip_proc_t *self)
{
    int64_t now = aip_clock_ms ();
    int64_t next;
    if (self->exited)
        next = self->eof_deadline;
    else {
        next = self->term_sent ? self->kill_at : self->deadline;
        if (self->pidfd < 0 && now + PROC_EXIT_POLL_MS < next)
            next = now + PROC_EXIT_POLL_MS;
    }
    return next <= now ? 0 : (int) (next - now);
}

bool
aip_proc_done (aip_proc_t *self)
{
    return self->ended != 0;
}

void
aip_proc_cancel (aip_proc_t *self)
{
    if (!self->exited && !self->term_sent) {
        self->cancelled = true;
        self->deadline = aip_clock_ms ();
        aip_proc_tick (self);
    }
}

void
aip_proc_wait (aip_proc_t *self)
{
    while (!aip_proc_done (self)) {
        zmq_pollitem_t items [4];
        int count = aip_proc_items (self, items, 4);
        int rc = zmq_poll (items, count, aip_proc_timeout (self));
        if (rc > 0)
            aip_proc_handle (self, items, count);
        aip_proc_tick (self);
    }
}

const char *
aip_proc_stdout (aip_proc_t *self, size_t *len)
{
    *len = self->out.len;
    return self->out.data;
}

size_t
aip_proc_stdout_total (aip_proc_t *self)
{
    return self->out.total;
}

const char *
aip_proc_stderr (aip_proc_t *self, size_t *len)
{
    *len = self->err.len;
    return self->err.data;
}

bool
aip_proc_exited (aip_proc_t *self)
{
    return WIFEXITED (self->status);
}

int
aip_proc_exit_code (aip_proc_t *self)
{
    return WIFEXITED (self->status) ? WEXITSTATUS (self->status) : WTERMSIG (self->status);
}

bool
aip_proc_timed_out (aip_proc_t *self)
{
    return self->timed_out;
}

bool
aip_proc_cancelled (aip_proc_t *self)
{
    return self->cancelled;
}

int64_t
aip_proc_elapsed_ms (aip_proc_t *self)
{
    return (self->ended ? self->ended : aip_clock_ms ()) - self->started;
}

int
aip_proc_pid (aip_proc_t *self)
{
    return self->pid;
}

int
aip_proc_subreaper (void)
{
    return prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

//  The parent pid of a process, from /proc/PID/stat, or -1
static pid_t
s_parent_of (const char *pid)
{
    char path [64], buf [512];
    snprintf (path, sizeof path, "/proc/%s/stat", pid);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read (fd, buf, sizeof buf - 1);
    close (fd);
    if (n <= 0)
        return -1;
    buf [n] = 0;
    //  "pid (comm) state ppid ...": comm may hold spaces and parentheses
    char *close_paren = strrchr (buf, ')');
    char state;
    int ppid;
    if (!close_paren || sscanf (close_paren + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return (pid_t) ppid;
}

static bool
s_is_live (pid_t pid)
{
    bool live = false;
    pthread_mutex_lock (&s_live_lock);
    for (int i = 0; i < PROC_MAX_LIVE && !live; i++)
        live = s_live [i] == pid;
    pthread_mutex_unlock (&s_live_lock);
    return live;
}

int
aip_proc_sweep (void)
{
    //  A killed orphan's own children are reparented to us in turn: sweep
    //  until no round finds one (bounded)
    int killed = 0;
    pid_t self = getpid ();
    for (int round = 0; round < 32; round++) {
        int found = 0;
        DIR *dir = opendir ("/proc");
        if (!dir)
            break;
        struct dirent *entry;
        while ((entry = readdir (dir))) {
            if (!isdigit ((unsigned char) entry->d_name [0]))
                continue;
            pid_t pid = (pid_t) atoi (entry->d_name);
            if (pid == self || s_parent_of (entry->d_name) != self || s_is_live (pid))
                continue;
            kill (pid, SIGKILL);
            //  Its group too: it may have started a group of its own
            kill (-pid, SIGKILL);
            waitpid (pid, NULL, 0);
            found++;
        }
        closedir (dir);
        killed += found;
        if (!found)
            break;
    }
    //  Reap what died meanwhile (never one of ours that runs)
    return killed;
}

//  ---------------------------------------------------------------------
//  Self-test

static aip_proc_t *
s_test_run (const char *script, const char *input, int timeout_ms, size_t max_out)
{
    char *argv [] = { "/bin/sh", "-c", (char *) script, NULL };
    extern char **environ;
    aip_proc_opts_t opts = { argv, environ, "/tmp", input, input ? strlen (input) : 0,
                             timeout_ms, max_out, 4096, false, NULL, NULL };
    int start_errno;
    char err [256];
    aip_proc_t *proc = aip_proc_new (&opts, &start_errno, err, sizeof err);
    assert (proc);
    aip_proc_wait (proc);
    return proc;
}

//  The group is gone (killed members may take a moment to be reaped)
static bool
s_test_group_gone (int pid)
{
    int64_t deadline = aip_clock_ms () + 3000;
    while (kill (-pid, 0) == 0 && aip_clock_ms () < deadline)
        zclock_sleep (10);      //  polling with a deadline
    return kill (-pid, 0) != 0;
}

void
aip_proc_test (bool verbose)
{
    printf (" * aip_proc: ");
    //  Input on stdin, closed after: cat ends; exact bytes back
    aip_proc_t *proc = s_test_run ("cat; echo err >&2; exit 3", "line 1\nline 2\n", 5000, 1024);
    size_t len;
    const char *out = aip_proc_stdout (proc, &len);
    assert (len == 14 && memcmp (out, "line 1\nline 2\n", 14) == 0);
    assert (aip_proc_exited (proc) && aip_proc_exit_code (proc) == 3);
    assert (streq (aip_proc_stderr (proc, &len), "err\n"));
    assert (!aip_proc_timed_out (proc));
    aip_proc_destroy (&proc);
    aip_proc_destroy (&proc);

    //  Working directory
    proc = s_test_run ("pwd", NULL, 5000, 1024);
    assert (streq (aip_proc_stdout (proc, &len), "/tmp\n"));
    aip_proc_destroy (&proc);

    //  Output past the cap is counted, not kept
    proc = s_test_run ("head -c 1000000 /dev/zero", NULL, 5000, 1000);
    aip_proc_stdout (proc, &len);
    assert (len == 1000 && aip_proc_stdout_total (proc) == 1000000);
    aip_proc_destroy (&proc);

    //  A large input the tool never reads does not block us
    char *big = (char *) malloc (1 << 20);
    memset (big, 'x', (1 << 20) - 1);
    big [(1 << 20) - 1] = 0;
    proc = s_test_run ("exit 0", big, 5000, 1000);
    assert (aip_proc_exited (proc) && aip_proc_exit_code (proc) == 0);
    aip_proc_destroy (&proc);
    free (big);

    //  A tool that ignores SIGTERM and has a grandchild holding stdout:
    //  the timeout kills the whole group, and does so within the grace
    int64_t start = aip_clock_ms ();
    proc = s_test_run ("trap '' TERM; (trap '' TERM; sleep 30) & echo started; "
                       "while true; do sleep 1; done", NULL, 300, 1024);
    int64_t took = aip_clock_ms () - start;
    assert (aip_proc_timed_out (proc));
    assert (!aip_proc_exited (proc) && aip_proc_exit_code (proc) == SIGKILL);
    assert (took < 300 + AIP_TOOL_KILL_GRACE_MS + 1000);
    int pid = aip_proc_pid (proc);
    assert (s_test_group_gone (pid));     //  nothing of the group is left
    if (verbose)
        printf ("(timeout killed the group in %d ms) ", (int) took);
    aip_proc_destroy (&proc);

    //  A tool that exits but leaves a grandchild holding stdout: we do not
    //  wait for the grandchild
    start = aip_clock_ms ();
    proc = s_test_run ("sleep 30 & echo answer", NULL, 10000, 1024);
    took = aip_clock_ms () - start;
    assert (streq (aip_proc_stdout (proc, &len), "answer\n"));
    assert (took < 2000);
    pid = aip_proc_pid (proc);
    assert (s_test_group_gone (pid));
    aip_proc_destroy (&proc);

    //  Stdin kept open: requests written as replies arrive, then finish
    {
        char *argv2 [] = { "/bin/sh", "-c", "read a; echo \"got $a\"; read b; echo \"got $b\"; "
                           "read c && echo never", NULL };
        extern char **environ;
        aip_proc_opts_t kopts = { argv2, environ, NULL, "one\n", 4, 5000, 1024, 1024, true,
                                  NULL, NULL };
        int kerrno;
        char kerr [256];
        aip_proc_t *kproc = aip_proc_new (&kopts, &kerrno, kerr, sizeof kerr);
        assert (kproc);
        bool wrote = false;
        while (!aip_proc_done (kproc)) {
            zmq_pollitem_t items [4];
            int count = aip_proc_items (kproc, items, 4);
            if (zmq_poll (items, count, aip_proc_timeout (kproc)) > 0)
                aip_proc_handle (kproc, items, count);
            aip_proc_tick (kproc);
            const char *o = aip_proc_stdout (kproc, &len);
            if (!wrote && strstr (o, "got one")) {
                aip_proc_write (kproc, "two\n", 4);
                wrote = true;
            }
            if (strstr (o, "got two"))
                aip_proc_finish (kproc, 200);
        }
        assert (streq (aip_proc_stdout (kproc, &len), "got one\ngot two\n"));
        assert (!aip_proc_timed_out (kproc) && !aip_proc_cancelled (kproc));
        aip_proc_destroy (&kproc);
    }

    //  A tool whose grandchild leaves the group (setsid): a subreaper
    //  sweeps it up after the run
    {
        assert (aip_proc_subreaper () == 0);
        char marker [] = "/tmp/aip_proc_test_XXXXXX";
        int mfd = mkstemp (marker);
        assert (mfd >= 0);
        close (mfd);
        unlink (marker);
        char script [512];
        snprintf (script, sizeof script, "setsid sh -c 'echo $$ > %s.tmp; mv %s.tmp %s; "
                  "exec sleep 30' </dev/null >/dev/null 2>&1 & "
                  "while [ ! -s %s ]; do :; done", marker, marker, marker, marker);
        proc = s_test_run (script, NULL, 10000, 1024);
        aip_proc_destroy (&proc);
        char *text = aip_file_read (marker, 64, &len);
        assert (text);
        int escaped = atoi (text);
        free (text);
        unlink (marker);
        assert (escaped > 0 && kill (escaped, 0) == 0);   //  it escaped the group
        assert (aip_proc_sweep () >= 1);
        assert (kill (escaped, 0) != 0);                  //  and is gone now
        if (verbose)
            printf ("(swept pid %d) ", escaped);
    }

    //  Cannot start: a clear errno
    char *argv [] = { "/nonexistent/tool", NULL };
    extern char **environ;
    aip_proc_opts_t opts = { argv, environ, NULL, NULL, 0, 1000, 10, 10, false, NULL, NULL };
    int start_errno;
    char err [256];
    assert (aip_proc_new (&opts, &start_errno, err, sizeof err) == NULL);
    assert (start_errno == ENOENT);
    printf ("OK\n");
}
