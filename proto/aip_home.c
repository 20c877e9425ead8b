/*  aip_home.c — locating and preparing $AI_PEERS_HOME. */
#include "aip_home.h"
#include "aip_util.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

int
aip_home_resolve (char *buf, size_t size, char *err, size_t errlen)
{
    const char *env = getenv ("AI_PEERS_HOME");
    int n;
    if (env && *env)
        n = snprintf (buf, size, "%s", env);
    else {
        const char *home = getenv ("HOME");
        if (!home || !*home) {
            snprintf (err, errlen, "cannot find the home directory: set HOME or AI_PEERS_HOME");
            return -1;
        }
        n = snprintf (buf, size, "%s/.ai-peers", home);
    }
    if (n < 0 || (size_t) n >= size) {
        snprintf (err, errlen, "AI_PEERS_HOME path is too long");
        return -1;
    }
    //  Trailing slashes would double up in every path
    while (n > 1 && buf [n - 1] == '/')
        buf [--n] = 0;
    return 0;
}

int
aip_home_check (const char *home, char *err, size_t errlen)
{
    struct stat st;
    if (stat (home, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;               //  aip_home_prepare creates it, or says why not
        snprintf (err, errlen, "cannot use %s: %s", home, strerror (errno));
        return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
        snprintf (err, errlen, "%s is not a directory (set AI_PEERS_HOME to a directory of "
                  "your own)", home);
        return -1;
    }
    //  Whoever can write the home can replace identity.json, and so know
    //  the signing secret: refuse, as ssh refuses such files
    if (st.st_uid != geteuid ()) {
        snprintf (err, errlen, "%s is owned by uid %ld, not by you (uid %ld): its owner could "
                  "replace your identity; use a home of your own (chown -R %ld %s, or set "
                  "AI_PEERS_HOME)", home, (long) st.st_uid, (long) geteuid (),
                  (long) geteuid (), home);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf (err, errlen, "%s is writable by %s (mode %04o): another user could replace "
                  "your identity; fix it with: chmod 700 %s", home,
                  (st.st_mode & S_IWOTH) ? "everyone" : "its group",
                  (unsigned) (st.st_mode & 07777), home);
        return -1;
    }
    return 0;
}

int
aip_home_prepare (const char *home, char *err, size_t errlen)
{
    char run [AIP_PATH_MAX];
    if (aip_home_check (home, err, errlen))
        return -1;
    if (aip_mkdir_p (home, 0700)) {
        snprintf (err, errlen, "cannot create %s: %s (set AI_PEERS_HOME to a writable directory)",
                  home, strerror (errno));
        return -1;
    }
    if (access (home, W_OK | X_OK) != 0) {
        snprintf (err, errlen, "%s is not writable: %s (set AI_PEERS_HOME to a writable directory)",
                  home, strerror (errno));
        return -1;
    }
    aip_home_path (home, "run", run, sizeof run);
    if (aip_mkdir_p (run, 0700)) {
        snprintf (err, errlen, "cannot create %s: %s", run, strerror (errno));
        return -1;
    }
    //  The sockets' directory must stay private even if it existed before
    if (chmod (run, 0700) != 0) {
        snprintf (err, errlen, "cannot set mode 0700 on %s: %s", run, strerror (errno));
        return -1;
    }
    return 0;
}

void
aip_home_path (const char *home, const char *name, char *buf, size_t size)
{
    snprintf (buf, size, "%s/%s", home, name);
}

int
aip_home_pick (const char *arg, char *buf, size_t size, char *err, size_t errlen)
{
    if (!arg) {
        if (aip_home_resolve (buf, size, err, errlen))
            return -1;
    }
    else
    if ((size_t) snprintf (buf, size, "%s", arg) >= size) {
        snprintf (err, errlen, "the home directory path is too long");
        return -1;
    }
    return aip_home_check (buf, err, errlen);
}

int
aip_home_endpoint_pick (const char *home, const char *name, const char *arg, char *buf,
                        size_t size, char *err, size_t errlen)
{
    if (!arg)
        return aip_home_endpoint (home, name, buf, size, err, errlen);
    if ((size_t) snprintf (buf, size, "%s", arg) >= size) {
        snprintf (err, errlen, "the endpoint '%.80s...' is too long", arg);
        return -1;
    }
    return 0;
}

int
aip_home_endpoint (const char *home, const char *name, char *buf, size_t size,
                   char *err, size_t errlen)
{
    int n = snprintf (buf, size, "ipc://%s/run/%s.ipc", home, name);
    if (n < 0 || (size_t) n >= size || (size_t) n - 6 > AIP_IPC_PATH_MAX) {
        snprintf (err, errlen, "AI_PEERS_HOME path is too long for a local socket "
                  "(%d bytes, the limit is %d): use a shorter AI_PEERS_HOME",
                  n - 6, AIP_IPC_PATH_MAX);
        return -1;
    }
    return 0;
}

void
aip_hostname (char *buf, size_t size)
{
    struct utsname u;
    if (uname (&u) == 0 && u.nodename [0])
        snprintf (buf, size, "%s", u.nodename);
    else
        snprintf (buf, size, "localhost");
}

const char *
aip_username (void)
{
    const char *user = getenv ("USER");
    if (!user || !*user)
        user = getenv ("USERNAME");
    return user && *user ? user : "user";
}

void
aip_home_test (bool verbose)
{
    printf (" * aip_home: ");
    char dir [] = "/tmp/aip_home_test_XXXXXX";
    assert (mkdtemp (dir));
    char home [256], err [256], buf [AIP_PATH_MAX];
    snprintf (home, sizeof home, "%s/h", dir);
    setenv ("AI_PEERS_HOME", home, 1);
    assert (aip_home_resolve (buf, sizeof buf, err, sizeof err) == 0);
    assert (strcmp (buf, home) == 0);
    assert (aip_home_prepare (buf, err, sizeof err) == 0);
    struct stat st;
    aip_home_path (home, "run", buf, sizeof buf);
    assert (stat (buf, &st) == 0 && (st.st_mode & 0777) == 0700);
    assert (aip_home_endpoint (home, "broker", buf, sizeof buf, err, sizeof err) == 0);
    assert (strncmp (buf, "ipc://", 6) == 0 && strstr (buf, "/run/broker.ipc"));

    //  A home under a file cannot be created: clear error
    snprintf (buf, sizeof buf, "%s/file", dir);
    FILE *f = fopen (buf, "w");
    fclose (f);
    snprintf (home, sizeof home, "%s/file/sub", dir);
    assert (aip_home_prepare (home, err, sizeof err) == -1);
    assert (strstr (err, "cannot create"));
    if (verbose)
        printf ("(%s) ", err);

    //  A home others can write, or another user's, is refused
    snprintf (home, sizeof home, "%s/shared", dir);
    assert (mkdir (home, 0700) == 0 && chmod (home, 0777) == 0);
    assert (aip_home_prepare (home, err, sizeof err) == -1);
    assert (strstr (err, "writable by everyone") && strstr (err, "chmod 700"));
    if (verbose)
        printf ("(%s) ", err);
    assert (aip_home_pick (home, buf, sizeof buf, err, sizeof err) == -1);
    assert (chmod (home, 0720) == 0);
    assert (aip_home_check (home, err, sizeof err) == -1 && strstr (err, "its group"));
    assert (chmod (home, 0755) == 0);
    assert (aip_home_prepare (home, err, sizeof err) == 0);
    if (geteuid () == 0) {
        assert (chown (home, 4242, 4242) == 0);
        assert (aip_home_prepare (home, err, sizeof err) == -1);
        assert (strstr (err, "owned by uid 4242"));
        if (verbose)
            printf ("(%s) ", err);
    }

    char longhome [200];
    memset (longhome, 'a', sizeof longhome - 1);
    longhome [0] = '/';
    longhome [sizeof longhome - 1] = 0;
    assert (aip_home_endpoint (longhome, "broker", buf, sizeof buf, err, sizeof err) == -1);
    char host [256];
    aip_hostname (host, sizeof host);
    assert (*host);
    unsetenv ("AI_PEERS_HOME");
    snprintf (buf, sizeof buf, "rm -rf %s", dir);
    assert (system (buf) == 0);
    printf ("OK\n");
}
