/*  aip_daemon.c — finding and starting the daemon set (see aip_daemon.h). */
#include "aip_daemon.h"
#include "aip_home.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int
aip_exe_dir (char *buf, size_t size)
{
    ssize_t n = readlink ("/proc/self/exe", buf, size - 1);
    if (n <= 0)
        return -1;
    buf [n] = 0;
    char *slash = strrchr (buf, '/');
    if (!slash)
        return -1;
    *slash = 0;
    return 0;
}

static pid_t
s_read_pid (const char *home)
{
    char path [AIP_PATH_MAX];
    aip_home_path (home, "daemon.pid", path, sizeof path);
    size_t len;
    char *text = aip_file_read (path, 64, &len);
    if (!text)
        return 0;
    char *end;
    long pid = strtol (text, &end, 10);
    bool valid = end != text && pid > 1 && pid < INT_MAX;
    free (text);
    return valid ? (pid_t) pid : 0;
}

bool
aip_daemon_pid_alive (pid_t pid)
{
    if (pid <= 1 || kill (pid, 0) != 0)
        return false;           //  gone, or another user's process
    //  A pid file outlives its process after kill -9; the pid may since
    //  belong to another program.
    char path [64], comm [64] = "";
    snprintf (path, sizeof path, "/proc/%d/comm", (int) pid);
    size_t len;
    char *text = aip_file_read (path, 63, &len);
    if (!text)
        return false;
    snprintf (comm, sizeof comm, "%s", text);
    free (text);
    comm [strcspn (comm, "\n")] = 0;
    if (strcmp (comm, "brokerd") != 0)
        return false;
    //  A zombie is dead for our purposes
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    text = aip_file_read (path, 4096, &len);
    bool zombie = false;
    if (text) {
        char *rp = strrchr (text, ')');
        zombie = rp && rp [1] == ' ' && rp [2] == 'Z';
        free (text);
    }
    return !zombie;
}

//  A pid file copied with its home, or a pid reused after a crash, may name
//  the live broker of another home: it is not ours
static bool
s_pid_serves_home (pid_t pid, const char *home)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
    size_t len;
    char *argv = aip_file_read (path, 16 * 1024, &len);
    if (!argv)
        return false;
    bool serves = true;         //  started by hand without --home: trust it
    for (size_t i = 0; i < len; i += strlen (argv + i) + 1)
        if (strcmp (argv + i, "--home") == 0) {
            size_t next = i + strlen (argv + i) + 1;
            serves = next < len && strcmp (argv + next, home) == 0;
            break;
        }
    free (argv);
    return serves;
}

bool
aip_daemon_running (const char *home, pid_t *pid)
{
    pid_t p = s_read_pid (home);
    bool alive = p && aip_daemon_pid_alive (p) && s_pid_serves_home (p, home);
    if (pid)
        *pid = alive ? p : 0;
    return alive;
}

//  Fork + exec brokerd detached, wait for its readiness line.
static int
s_spawn_brokerd (const char *home, const aip_daemon_opts_t *opts, char *err, size_t errlen)
{
    char dir [AIP_PATH_MAX], exe [AIP_PATH_MAX + 16], log [AIP_PATH_MAX + 16];
    if (aip_exe_dir (dir, sizeof dir)) {
        snprintf (err, errlen, "cannot find the directory of this program");
        return -1;
    }
    snprintf (exe, sizeof exe, "%s/brokerd", dir);
    if (access (exe, X_OK) != 0) {
        snprintf (err, errlen, "cannot run %s: %s (is ai-peer installed completely?)",
                  exe, strerror (errno));
        return -1;
    }
    aip_home_path (home, "daemon.log", log, sizeof log);
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC)) {
        snprintf (err, errlen, "pipe: %s", strerror (errno));
        return -1;
    }
    char fdarg [16], portarg [16], workersarg [16];
    snprintf (workersarg, sizeof workersarg, "%d",
              !opts || opts->workers == 0 ? AIP_SPAWN_WORKERS
                                          : opts->workers < 0 ? 0 : opts->workers);
    snprintf (fdarg, sizeof fdarg, "%d", 3);
    snprintf (portarg, sizeof portarg, "%d", opts && opts->port ? opts->port : 7899);
    pid_t child = fork ();
    if (child < 0) {
        snprintf (err, errlen, "fork: %s", strerror (errno));
        close (fds [0]);
        close (fds [1]);
        return -1;
    }
    if (child == 0) {
        //  Detach: own session, stdio to the log, readiness pipe on fd 3
        setsid ();
        int devnull = open ("/dev/null", O_RDONLY);
        int logfd = open (log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (devnull >= 0)
            dup2 (devnull, 0);
        if (logfd >= 0) {
            dup2 (logfd, 1);
            dup2 (logfd, 2);
        }
        dup2 (fds [1], 3);          //  dup2 clears close-on-exec
        for (int fd = 4; fd < 1024; fd++)
            close (fd);
        //  A second fork so brokerd is never our zombie
        pid_t grandchild = fork ();
        if (grandchild != 0)
            _exit (grandchild < 0 ? 1 : 0);
        const char *argv [] = { exe, "--home", home, "--ready-fd", fdarg,
                                "--port", portarg, "--workers", workersarg,
                                !opts || opts->mode == AIP_DAEMON_AUTO ? NULL
                                : opts->mode == AIP_DAEMON_LAN ? "--lan" : "--local", NULL };
        execv (exe, (char *const *) argv);
        dprintf (3, "error: cannot exec %s: %s\n", exe, strerror (errno));
        _exit (127);
    }
    close (fds [1]);
    waitpid (child, NULL, 0);

    //  Wait for "ready" (or "error: ...") from brokerd
    char line [512] = "";
    size_t got = 0;
    int64_t deadline = aip_clock_ms () + AIP_START_TIMEOUT_MS;
    int rc = -1;
    while (true) {
        int64_t left = deadline - aip_clock_ms ();
        if (left <= 0) {
            snprintf (err, errlen, "the daemons did not start within %d s: see %s",
                      AIP_START_TIMEOUT_MS / 1000, log);
            break;
        }
        struct pollfd pfd = { fds [0], POLLIN, 0 };
        int n = poll (&pfd, 1, (int) left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        ssize_t r = read (fds [0], line + got, sizeof line - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            line [got] = 0;
            if (got && strncmp (line, "error: ", 7) == 0)
                snprintf (err, errlen, "the daemons failed to start: %.*s", (int) strcspn (line + 7, "\n"), line + 7);
            else
                snprintf (err, errlen, "the daemons exited during start-up: see %s", log);
            break;
        }
        got += (size_t) r;
        line [got] = 0;
        if (strchr (line, '\n')) {
            if (strncmp (line, "ready", 5) == 0)
                rc = 0;
            else
            if (strncmp (line, "error: ", 7) == 0)
                snprintf (err, errlen, "the daemons failed to start: %.*s",
                          (int) strcspn (line + 7, "\n"), line + 7);
            else
                snprintf (err, errlen, "unexpected start-up message from brokerd: see %s", log);
            break;
        }
        if (got >= sizeof line - 1) {
            snprintf (err, errlen, "unexpected start-up message from brokerd: see %s", log);
            break;
        }
    }
    close (fds [0]);
    return rc;
}

int
aip_daemon_start (const char *home, const aip_daemon_opts_t *opts, bool *started,
                  char *err, size_t errlen)
{
    if (started)
        *started = false;
    if (aip_home_prepare (home, err, errlen))
        return -1;
    if (aip_daemon_running (home, NULL))
        return 0;
    char path [AIP_PATH_MAX];
    aip_home_path (home, "run/start.lock", path, sizeof path);
    int lock = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0) {
        snprintf (err, errlen, "cannot open %s: %s", path, strerror (errno));
        return -1;
    }
    while (flock (lock, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf (err, errlen, "cannot lock %s: %s", path, strerror (errno));
            close (lock);
            return -1;
        }
    }
    int rc = 0;
    //  Another command may have started it while we waited for the lock
    if (!aip_daemon_running (home, NULL)) {
        rc = s_spawn_brokerd (home, opts, err, errlen);
        if (rc == 0 && started)
            *started = true;
    }
    flock (lock, LOCK_UN);
    close (lock);
    return rc;
}

void
aip_daemon_test (bool verbose)
{
    printf (" * aip_daemon: ");
    char dir [] = "/tmp/aip_daemon_test_XXXXXX";
    assert (mkdtemp (dir));
    //  No pid file: nothing runs
    pid_t pid = 1;
    assert (!aip_daemon_running (dir, &pid));
    assert (pid == 0);
    //  A stale pid file (our own pid is not brokerd) is not a daemon
    char path [AIP_PATH_MAX], text [32];
    aip_home_path (dir, "daemon.pid", path, sizeof path);
    snprintf (text, sizeof text, "%d\n", (int) getpid ());
    assert (aip_file_write_atomic (path, text, strlen (text), 0600) == 0);
    assert (!aip_daemon_running (dir, NULL));
    assert (!aip_daemon_pid_alive (getpid ()));
    assert (aip_file_write_atomic (path, "garbage", 7, 0600) == 0);
    assert (!aip_daemon_running (dir, NULL));
    //  The executable's directory is where brokerd is looked for
    char exe [AIP_PATH_MAX];
    assert (aip_exe_dir (exe, sizeof exe) == 0 && *exe == '/');
    if (verbose)
        printf ("(%s) ", exe);
    snprintf (path, sizeof path, "rm -rf %s", dir);
    assert (system (path) == 0);
    printf ("OK\n");
}
