/*  aip_webjob.c — running one ai-peer command for a page. */
#include "aip_webjob.h"
#include "aip_limits.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct _aip_webjob_t {
    pid_t pid;                  //  the child (its own process group), 0 once reaped
    int fd;                     //  read end of its stdout
    char *output;               //  what it printed, NUL-terminated
    size_t size;                //  bytes in output
    size_t alloc;               //  bytes allocated
    int status;                 //  exit status once reaped
};

aip_webjob_t *
aip_webjob_new (const char *const *argv, const char *home, const char *password,
                char *err, size_t errlen)
{
    int out [2];
    if (pipe2 (out, O_CLOEXEC) != 0) {
        snprintf (err, errlen, "cannot make a pipe: %s", strerror (errno));
        return NULL;
    }
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0) {
        snprintf (err, errlen, "cannot start %s: %s", argv [0], strerror (errno));
        close (out [0]);
        close (out [1]);
        return NULL;
    }
    if (pid == 0) {
        //  Dies with webd; its own group so that a cancel reaches the tool
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (1);
        setpgid (0, 0);
        sigset_t all;
        sigemptyset (&all);
        sigprocmask (SIG_SETMASK, &all, NULL);
        int devnull = open ("/dev/null", O_RDWR);
        dup2 (devnull, 0);
        dup2 (out [1], 1);
        dup2 (devnull, 2);
        setenv ("AI_PEERS_HOME", home, 1);
        if (password)
            setenv ("AI_PEER_PASSWORD", password, 1);
        else
            unsetenv ("AI_PEER_PASSWORD");
        execv (argv [0], (char *const *) argv);
        _exit (127);
    }
    close (out [1]);
    fcntl (out [0], F_SETFL, fcntl (out [0], F_GETFL) | O_NONBLOCK);
    aip_webjob_t *self = (aip_webjob_t *) calloc (1, sizeof (aip_webjob_t));
    assert (self);
    self->pid = pid;
    self->fd = out [0];
    self->alloc = 4096;
    self->output = (char *) malloc (self->alloc);
    assert (self->output);
    self->output [0] = 0;
    return self;
}

void
aip_webjob_destroy (aip_webjob_t **self_p)
{
    if (self_p && *self_p) {
        aip_webjob_t *self = *self_p;
        if (self->pid) {
            kill (-self->pid, SIGKILL);
            kill (self->pid, SIGKILL);
            waitpid (self->pid, NULL, 0);
        }
        free (self->output);
        free (self);
        *self_p = NULL;
    }
}

int
aip_webjob_fd (aip_webjob_t *self)
{
    return self->fd;
}

pid_t
aip_webjob_pid (aip_webjob_t *self)
{
    return self->pid;
}

int
aip_webjob_read (aip_webjob_t *self, int fd)
{
    while (true) {
        if (self->alloc - self->size < 4096) {
            if (self->alloc >= AIP_WEB_MAX_JOB_OUTPUT + 8192) {
                if (self->pid) {
                    kill (-self->pid, SIGKILL);
                    kill (self->pid, SIGKILL);
                }
                return -1;
            }
            self->alloc *= 2;
            self->output = (char *) realloc (self->output, self->alloc);
            assert (self->output);
        }
        ssize_t n = read (fd, self->output + self->size, self->alloc - self->size - 1);
        if (n > 0) {
            self->size += (size_t) n;
            self->output [self->size] = 0;
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? 0 : 1;
    }
}

bool
aip_webjob_reap (aip_webjob_t *self, int *status)
{
    if (self->pid) {
        int raw;
        pid_t r = waitpid (self->pid, &raw, WNOHANG);
        if (r == 0)
            return false;
        self->status = r == self->pid && WIFEXITED (raw) ? WEXITSTATUS (raw) : -1;
        self->pid = 0;
    }
    if (status)
        *status = self->status;
    return true;
}

const char *
aip_webjob_output (aip_webjob_t *self, size_t *len)
{
    if (len)
        *len = self->size;
    return self->output;
}

void
aip_webjob_test (bool verbose)
{
    printf (" * aip_webjob: ");
    char err [256];
    //  The password reaches the environment, not argv; home too
    const char *argv [] = { "/bin/sh", "-c", "printf '%s %s' \"$AI_PEER_PASSWORD\" \"$AI_PEERS_HOME\"",
                            NULL };
    aip_webjob_t *job = aip_webjob_new (argv, "/tmp/home", "s3cret", err, sizeof err);
    assert (job);
    int fd = aip_webjob_fd (job), rc = 0, status = 0;
    while (rc == 0) {
        rc = aip_webjob_read (job, fd);
        if (rc == 0)
            usleep (1000);      //  the test polls a pipe with a bounded loop
    }
    assert (rc == 1);
    while (!aip_webjob_reap (job, &status))
        usleep (1000);
    assert (status == 0);
    assert (strcmp (aip_webjob_output (job, NULL), "s3cret /tmp/home") == 0);
    close (fd);
    aip_webjob_destroy (&job);
    aip_webjob_destroy (&job);

    //  Output beyond the bound kills the command
    const char *flood [] = { "/bin/sh", "-c", "exec cat /dev/zero", NULL };
    job = aip_webjob_new (flood, "/tmp/home", NULL, err, sizeof err);
    assert (job);
    fd = aip_webjob_fd (job);
    rc = 0;
    while (rc == 0)
        rc = aip_webjob_read (job, fd);
    assert (rc == -1);
    while (!aip_webjob_reap (job, &status))
        usleep (1000);
    assert (status == -1);
    close (fd);
    aip_webjob_destroy (&job);

    //  A command that cannot run exits 127
    const char *missing [] = { "/nonexistent/ai-peer", NULL };
    job = aip_webjob_new (missing, "/tmp/home", NULL, err, sizeof err);
    assert (job);
    while (!aip_webjob_reap (job, &status))
        usleep (1000);
    assert (status == 127);
    close (aip_webjob_fd (job));
    aip_webjob_destroy (&job);
    printf ("OK\n");
}
