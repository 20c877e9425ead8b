/*  aip_supervisor.c — start, reap and restart the worker daemons.
    See aip_supervisor.h. */
#include "aip_supervisor.h"
#include "aip_home.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define CHILD_MAX (4 + AIP_MAX_SPAWN_WORKERS)
//  A child that ran this long gets its backoff reset
#define CHILD_HEALTHY_MS 30000

struct _aip_supervisor_t {
    char home [AIP_PATH_MAX];           //  $AI_PEERS_HOME
    char bin_dir [AIP_PATH_MAX];        //  where the daemons' executables are
    aip_child_t children [CHILD_MAX];   //  supervised daemons
    size_t count;                       //  children in use
};

aip_supervisor_t *
aip_supervisor_new (const char *home, const char *bin_dir)
{
    aip_supervisor_t *self = (aip_supervisor_t *) zmalloc (sizeof (aip_supervisor_t));
    snprintf (self->home, sizeof self->home, "%s", home);
    snprintf (self->bin_dir, sizeof self->bin_dir, "%s", bin_dir);
    return self;
}

void
aip_supervisor_destroy (aip_supervisor_t **self_p)
{
    aip_supervisor_t *self = *self_p;
    if (!self)
        return;
    aip_supervisor_stop (self);
    free (self);
    *self_p = NULL;
}

int
aip_supervisor_add (aip_supervisor_t *self, const char *name, aip_svc_t svc, bool held)
{
    if (self->count >= CHILD_MAX)
        return -1;
    aip_child_t *c = &self->children [self->count++];
    memset (c, 0, sizeof *c);
    c->name = name;
    c->svc = svc;
    c->held = held;
    c->backoff_ms = AIP_RESTART_MIN_MS;
    c->start_at = held ? 0 : 1;         //  1: now
    return 0;
}

void
aip_supervisor_release (aip_supervisor_t *self, aip_svc_t svc)
{
    for (size_t i = 0; i < self->count; i++) {
        aip_child_t *c = &self->children [i];
        if (c->svc == svc && c->held) {
            c->held = false;
            if (!c->pid && !c->start_at && !c->restarts)
                c->start_at = 1;
        }
    }
}

static void
s_child_start (aip_supervisor_t *self, aip_child_t *child)
{
    char exe [AIP_PATH_MAX], endpoint [AIP_PATH_MAX], err [256];
    snprintf (exe, sizeof exe, "%s/%s", self->bin_dir, child->name);
    aip_home_endpoint (self->home, "workers", endpoint, sizeof endpoint, err, sizeof err);
    pid_t parent = getpid ();
    //  Signals wait until the child has dropped the broker's handlers: a
    //  SIGTERM sent between fork and exec would otherwise only set the
    //  broker's "interrupted" flag in the child, and be lost
    sigset_t all, before;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &before);
    pid_t pid = fork ();
    if (pid < 0) {
        pthread_sigmask (SIG_SETMASK, &before, NULL);
        zsys_error ("broker: cannot fork %s: %s", child->name, strerror (errno));
        child->start_at = aip_clock_ms () + child->backoff_ms;
        return;
    }
    if (pid == 0) {
        //  Die with the broker, even after a kill -9 of it
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (1);
        //  The broker's signal handlers and mask are not the child's
        for (int sig = 1; sig < NSIG; sig++) {
            struct sigaction sa;
            if (sig != SIGKILL && sig != SIGSTOP && sigaction (sig, NULL, &sa) == 0
            &&  sa.sa_handler != SIG_IGN && sa.sa_handler != SIG_DFL)
                signal (sig, SIG_DFL);
        }
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        const char *argv [] = { exe, "--home", self->home, "--endpoint", endpoint, NULL };
        execv (exe, (char *const *) argv);
        fprintf (stderr, "brokerd: cannot exec %s: %s\n", exe, strerror (errno));
        _exit (127);
    }
    pthread_sigmask (SIG_SETMASK, &before, NULL);
    child->pid = pid;
    child->start_at = 0;
    child->started_at = aip_clock_ms ();
    zsys_info ("broker: started %s (pid %d)", child->name, (int) pid);
}

void
aip_supervisor_start_due (aip_supervisor_t *self)
{
    int64_t now = aip_clock_ms ();
    for (size_t i = 0; i < self->count; i++) {
        aip_child_t *c = &self->children [i];
        if (!c->pid && c->start_at && now >= c->start_at)
            s_child_start (self, c);
    }
}

//  A spawnd that died without cleaning up (kill -9) leaves its running
//  tool's process group in run/spawn-<pid>.pgid: kill that group
static void
s_child_kill_tools (aip_supervisor_t *self, pid_t pid)
{
    char path [AIP_PATH_MAX];
    snprintf (path, sizeof path, "%s/run/spawn-%d.pgid", self->home, (int) pid);
    size_t len;
    char *text = aip_file_read (path, 32, &len);
    if (!text)
        return;
    long pgid = strtol (text, NULL, 10);
    free (text);
    if (pgid > 1 && kill ((pid_t) -pgid, SIGKILL) == 0)
        zsys_warning ("broker: killed the tools left by spawnd (pid %d): group %ld", (int) pid, pgid);
    unlink (path);
}

bool
aip_supervisor_reap (aip_supervisor_t *self, aip_child_exit_t *exit)
{
    for (size_t i = 0; i < self->count; i++) {
        aip_child_t *c = &self->children [i];
        if (!c->pid)
            continue;
        int status;
        if (waitpid (c->pid, &status, WNOHANG) != c->pid)
            continue;
        memset (exit, 0, sizeof *exit);
        exit->index = i;
        exit->name = c->name;
        exit->svc = c->svc;
        exit->pid = c->pid;
        if (WIFSIGNALED (status))
            snprintf (exit->why, sizeof exit->why, "killed by signal %d", WTERMSIG (status));
        else
            snprintf (exit->why, sizeof exit->why, "exited with status %d", WEXITSTATUS (status));
        if (c->svc == AIP_SVC_SPAWN)
            s_child_kill_tools (self, c->pid);
        c->pid = 0;
        c->start_at = 0;
        return true;
    }
    return false;
}

void
aip_supervisor_restart (aip_supervisor_t *self, const aip_child_exit_t *exit)
{
    assert (exit->index < self->count);
    aip_child_t *c = &self->children [exit->index];
    int64_t now = aip_clock_ms ();
    if (now - c->started_at > CHILD_HEALTHY_MS)
        c->backoff_ms = AIP_RESTART_MIN_MS;
    zsys_warning ("broker: %s (pid %d) %s; restarting in %d ms", c->name, (int) exit->pid,
                  exit->why, c->backoff_ms);
    c->restarts++;
    c->start_at = now + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > AIP_RESTART_MAX_MS ? AIP_RESTART_MAX_MS
                                                           : c->backoff_ms * 2;
}

//  A child that fails to start says why on stderr, which is daemon.log:
//  find its last "<name>: ..." line there
void
aip_supervisor_last_error (aip_supervisor_t *self, const char *name, char *buf, size_t size)
{
    *buf = 0;
    char path [AIP_PATH_MAX], tail [4096];
    aip_home_path (self->home, "daemon.log", path, sizeof path);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek (fd, 0, SEEK_END);
    ssize_t got = end < 0 ? -1 : pread (fd, tail, sizeof tail - 1,
                                        end > (off_t) sizeof tail - 1 ? end - (off_t) sizeof tail + 1 : 0);
    close (fd);
    if (got <= 0)
        return;
    tail [got] = 0;
    size_t prefix = strlen (name);
    for (char *line = strtok (tail, "\n"); line; line = strtok (NULL, "\n"))
        if (strncmp (line, name, prefix) == 0 && line [prefix] == ':' && line [prefix + 1] == ' ')
            snprintf (buf, size, "%s", line + prefix + 2);
}

void
aip_supervisor_stop (aip_supervisor_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        self->children [i].start_at = 0;
        if (self->children [i].pid)
            kill (self->children [i].pid, SIGTERM);
    }
    int64_t deadline = aip_clock_ms () + 3000;
    for (size_t i = 0; i < self->count; i++) {
        aip_child_t *c = &self->children [i];
        while (c->pid) {
            pid_t r = waitpid (c->pid, NULL, WNOHANG);
            if (r == c->pid || (r < 0 && errno == ECHILD))
                c->pid = 0;
            else
            if (aip_clock_ms () > deadline) {
                zsys_warning ("broker: %s (pid %d) ignored SIGTERM; killing it", c->name, (int) c->pid);
                kill (c->pid, SIGKILL);
                waitpid (c->pid, NULL, 0);
                if (c->svc == AIP_SVC_SPAWN)
                    s_child_kill_tools (self, c->pid);
                c->pid = 0;
            }
            else
                zclock_sleep (10);      //  bounded wait for a child to exit
        }
    }
}

static aip_child_t *
s_child_named (aip_supervisor_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (streq (self->children [i].name, name))
            return &self->children [i];
    return NULL;
}

//  Stop one child now: SIGTERM, then SIGKILL after 3 s
static void
s_child_halt (aip_child_t *c)
{
    c->start_at = 0;
    if (!c->pid)
        return;
    kill (c->pid, SIGTERM);
    int64_t deadline = aip_clock_ms () + 3000;
    while (waitpid (c->pid, NULL, WNOHANG) == 0) {
        if (aip_clock_ms () > deadline) {
            zsys_warning ("broker: %s (pid %d) ignored SIGTERM; killing it", c->name, (int) c->pid);
            kill (c->pid, SIGKILL);
            waitpid (c->pid, NULL, 0);
            break;
        }
        zclock_sleep (5);       //  bounded wait for the child to exit
    }
    c->pid = 0;
}

pid_t
aip_supervisor_start_now (aip_supervisor_t *self, const char *name, bool restart)
{
    aip_child_t *c = s_child_named (self, name);
    if (!c)
        return -1;
    if (restart)
        s_child_halt (c);
    c->held = false;
    c->backoff_ms = AIP_RESTART_MIN_MS;
    if (!c->pid)
        s_child_start (self, c);
    return c->pid;
}

pid_t
aip_supervisor_remove (aip_supervisor_t *self, const char *name)
{
    aip_child_t *c = s_child_named (self, name);
    if (!c)
        return -1;
    pid_t pid = c->pid;
    s_child_halt (c);
    size_t index = (size_t) (c - self->children);
    memmove (c, c + 1, (self->count - index - 1) * sizeof *c);
    self->count--;
    return pid;
}

size_t
aip_supervisor_size (aip_supervisor_t *self)
{
    return self->count;
}

const aip_child_t *
aip_supervisor_child (aip_supervisor_t *self, size_t index)
{
    return index < self->count ? &self->children [index] : NULL;
}

const aip_child_t *
aip_supervisor_find (aip_supervisor_t *self, pid_t pid)
{
    for (size_t i = 0; pid > 0 && i < self->count; i++)
        if (self->children [i].pid == pid)
            return &self->children [i];
    return NULL;
}

//  ---------------------------------------------------------------------
//  Self-test: real children (shell scripts) that fail, run and stop

static void
s_test_script (const char *dir, const char *name, const char *body)
{
    char path [AIP_PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen (path, "w");
    assert (f);
    fprintf (f, "#!/bin/sh\n%s\n", body);
    fclose (f);
    chmod (path, 0700);
}

static void
s_test_note_signal (int sig)
{
    (void) sig;
}

static bool
s_test_reap (aip_supervisor_t *sup, aip_child_exit_t *exit)
{
    int64_t deadline = aip_clock_ms () + 10000;
    while (aip_clock_ms () < deadline) {
        if (aip_supervisor_reap (sup, exit))
            return true;
        zclock_sleep (5);           //  polling a child's exit, with a deadline
    }
    return false;
}

void
aip_supervisor_test (bool verbose)
{
    printf (" * aip_supervisor: ");
    char home [] = "/tmp/aip-sup-XXXXXX";
    assert (mkdtemp (home));
    char run [AIP_PATH_MAX];
    snprintf (run, sizeof run, "%s/run", home);
    mkdir (run, 0700);
    s_test_script (home, "failing", "exit 3");
    //  $2 is --home's value; the file says it runs its own code now
    s_test_script (home, "steady", "touch \"$2/steady.up\"; exec sleep 300");

    aip_supervisor_t *sup = aip_supervisor_new (home, home);
    assert (aip_supervisor_add (sup, "failing", AIP_SVC_STORE, false) == 0);
    assert (aip_supervisor_add (sup, "steady", AIP_SVC_SPAWN, true) == 0);
    assert (aip_supervisor_size (sup) == 2);
    aip_supervisor_start_due (sup);
    const aip_child_t *failing = aip_supervisor_child (sup, 0);
    const aip_child_t *steady = aip_supervisor_child (sup, 1);
    assert (failing->pid > 0 && steady->pid == 0);      //  held until released
    pid_t first = failing->pid;
    assert (aip_supervisor_find (sup, first) == failing);

    //  It exits: reaped with why, down until restarted, then with backoff
    aip_child_exit_t exit;
    assert (s_test_reap (sup, &exit));
    assert (exit.index == 0 && exit.pid == first && streq (exit.name, "failing"));
    assert (streq (exit.why, "exited with status 3"));
    assert (failing->pid == 0 && failing->start_at == 0);
    aip_supervisor_restart (sup, &exit);
    assert (failing->restarts == 1 && failing->start_at > 0);
    assert (failing->backoff_ms == 2 * AIP_RESTART_MIN_MS);

    //  Released, the held one runs; stop ends it
    aip_supervisor_release (sup, AIP_SVC_SPAWN);
    aip_supervisor_start_due (sup);
    assert (steady->pid > 0);
    pid_t sleeper = steady->pid;
    char up [AIP_PATH_MAX];
    snprintf (up, sizeof up, "%s/steady.up", home);
    int64_t deadline = aip_clock_ms () + 10000;
    while (access (up, F_OK) != 0 && aip_clock_ms () < deadline)
        zclock_sleep (5);           //  polling for the child's file, with a deadline
    aip_supervisor_stop (sup);
    assert (steady->pid == 0 && kill (sleeper, 0) != 0);

    //  Started now on demand, restarted on demand, removed (webd)
    assert (aip_supervisor_start_now (sup, "missing", false) == -1);
    pid_t now = aip_supervisor_start_now (sup, "steady", false);
    assert (now > 0 && aip_supervisor_start_now (sup, "steady", false) == now);
    pid_t again = aip_supervisor_start_now (sup, "steady", true);
    assert (again > 0 && again != now && kill (now, 0) != 0);
    assert (aip_supervisor_remove (sup, "steady") == again && kill (again, 0) != 0);
    assert (aip_supervisor_size (sup) == 1 && aip_supervisor_remove (sup, "steady") == -1);
    assert (streq (aip_supervisor_child (sup, 0)->name, "failing"));

    //  A SIGTERM sent right after the fork, before the child's exec, ends
    //  the child: the parent's handler (here one like the broker's, that
    //  only notes the signal) is not the child's to swallow it with
    {
        struct sigaction noting = { .sa_handler = s_test_note_signal }, before;
        sigemptyset (&noting.sa_mask);
        sigaction (SIGTERM, &noting, &before);
        assert (aip_supervisor_add (sup, "steady", AIP_SVC_SPAWN, false) == 0);
        pid_t racer = aip_supervisor_start_now (sup, "steady", false);
        assert (racer > 0);
        kill (racer, SIGTERM);
        assert (s_test_reap (sup, &exit));
        assert (exit.pid == racer && streq (exit.why, "killed by signal 15"));
        assert (aip_supervisor_remove (sup, "steady") == 0);
        sigaction (SIGTERM, &before, NULL);
    }

    //  What a child said last in daemon.log
    char path [AIP_PATH_MAX], reason [128];
    snprintf (path, sizeof path, "%s/daemon.log", home);
    const char *log = "storaged: first\nother: x\nstoraged: cannot open peers.db\n";
    assert (aip_file_write_atomic (path, log, strlen (log), 0600) == 0);
    aip_supervisor_last_error (sup, "storaged", reason, sizeof reason);
    assert (streq (reason, "cannot open peers.db"));
    aip_supervisor_last_error (sup, "relayd", reason, sizeof reason);
    assert (*reason == 0);
    aip_supervisor_destroy (&sup);
    aip_supervisor_destroy (&sup);

    char command [AIP_PATH_MAX + 16];
    snprintf (command, sizeof command, "rm -rf '%s'", home);
    assert (system (command) == 0);
    if (verbose)
        printf ("(fail, reap, backoff, hold, release, stop, start now, remove) ");
    printf ("OK\n");
}
