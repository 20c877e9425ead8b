/*  aip_webmode.c — the web view's files: its remembered port, the one-time
    login token and webd's ready note. */
#include "aip_webmode.h"
#include "aip_home.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int
aip_webmode_get (const char *home)
{
    char path [AIP_PATH_MAX];
    aip_home_path (home, "web/mode", path, sizeof path);
    size_t len;
    char *text = aip_file_read (path, 64, &len);
    if (!text)
        return -1;
    char *end;
    long port = strtol (text, &end, 10);
    bool valid = end != text && port >= 0 && port <= 65535;
    free (text);
    return valid ? (int) port : -1;
}

int
aip_webmode_set (const char *home, int port)
{
    char dir [AIP_PATH_MAX], path [AIP_PATH_MAX + 8];
    aip_home_path (home, "web", dir, sizeof dir);
    snprintf (path, sizeof path, "%s/mode", dir);
    if (port < 0)
        return unlink (path) == 0 || errno == ENOENT ? 0 : -1;
    if (port > 65535 || aip_mkdir_p (dir, 0700))
        return -1;
    char text [16];
    int n = snprintf (text, sizeof text, "%d\n", port);
    return aip_file_write_atomic (path, text, (size_t) n, 0600);
}

int
aip_webmode_token_new (const char *home, char token [AIP_WEB_TOKEN_HEX + 1],
                       char *err, size_t errlen)
{
    unsigned char raw [AIP_WEB_TOKEN_HEX / 2];
    randombytes_buf (raw, sizeof raw);
    sodium_bin2hex (token, AIP_WEB_TOKEN_HEX + 1, raw, sizeof raw);
    sodium_memzero (raw, sizeof raw);
    char path [AIP_PATH_MAX];
    aip_home_path (home, "run/web.token", path, sizeof path);
    if (aip_file_write_atomic (path, token, AIP_WEB_TOKEN_HEX, 0600)) {
        snprintf (err, errlen, "cannot write the login token %s: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

bool
aip_webmode_token_take (const char *home, const char *given, size_t len)
{
    if (len != AIP_WEB_TOKEN_HEX)
        return false;
    char path [AIP_PATH_MAX];
    aip_home_path (home, "run/web.token", path, sizeof path);
    struct stat st;
    if (stat (path, &st) != 0 || !S_ISREG (st.st_mode))
        return false;
    size_t size;
    char *stored = aip_file_read (path, AIP_WEB_TOKEN_HEX + 16, &size);
    if (!stored)
        return false;
    bool fresh = time (NULL) - st.st_mtime <= AIP_WEB_TOKEN_TTL_S;
    bool match = size == AIP_WEB_TOKEN_HEX
              && sodium_memcmp (stored, given, AIP_WEB_TOKEN_HEX) == 0;
    sodium_memzero (stored, size);
    free (stored);
    //  Once used it is gone; a stale one is removed too
    if (match || !fresh)
        unlink (path);
    return match && fresh;
}

void
aip_webmode_test (bool verbose)
{
    printf (" * aip_webmode: ");
    char home [] = "/tmp/aip-webmode-XXXXXX";
    assert (mkdtemp (home));
    char run [AIP_PATH_MAX];
    aip_home_path (home, "run", run, sizeof run);
    assert (aip_mkdir_p (run, 0700) == 0);

    assert (aip_webmode_get (home) == -1);
    assert (aip_webmode_set (home, 7898) == 0 && aip_webmode_get (home) == 7898);
    assert (aip_webmode_set (home, 0) == 0 && aip_webmode_get (home) == 0);
    assert (aip_webmode_set (home, -1) == 0 && aip_webmode_get (home) == -1);
    assert (aip_webmode_set (home, -1) == 0);
    assert (aip_webmode_set (home, 70000) == -1);

    char token [AIP_WEB_TOKEN_HEX + 1], err [256];
    assert (aip_webmode_token_new (home, token, err, sizeof err) == 0);
    assert (strlen (token) == AIP_WEB_TOKEN_HEX);
    char path [AIP_PATH_MAX];
    aip_home_path (home, "run/web.token", path, sizeof path);
    struct stat st;
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600);
    //  A wrong or short token does not log in, nor spend the right one
    char wrong [AIP_WEB_TOKEN_HEX + 1];
    memcpy (wrong, token, sizeof wrong);
    wrong [0] = wrong [0] == 'a' ? 'b' : 'a';
    assert (!aip_webmode_token_take (home, wrong, AIP_WEB_TOKEN_HEX));
    assert (!aip_webmode_token_take (home, token, 10));
    //  The right one works once
    assert (aip_webmode_token_take (home, token, AIP_WEB_TOKEN_HEX));
    assert (!aip_webmode_token_take (home, token, AIP_WEB_TOKEN_HEX));
    //  A new token replaces the old one
    char second [AIP_WEB_TOKEN_HEX + 1];
    assert (aip_webmode_token_new (home, token, err, sizeof err) == 0);
    assert (aip_webmode_token_new (home, second, err, sizeof err) == 0);
    assert (strcmp (token, second) != 0);
    assert (!aip_webmode_token_take (home, token, AIP_WEB_TOKEN_HEX));
    //  An old token has expired
    struct timespec old [2] = { { time (NULL) - AIP_WEB_TOKEN_TTL_S - 5, 0 },
                                { time (NULL) - AIP_WEB_TOKEN_TTL_S - 5, 0 } };
    assert (utimensat (AT_FDCWD, path, old, 0) == 0);
    assert (!aip_webmode_token_take (home, second, AIP_WEB_TOKEN_HEX));
    assert (access (path, F_OK) != 0);

    char cmd [AIP_PATH_MAX + 16];
    snprintf (cmd, sizeof cmd, "rm -rf %s", home);
    assert (system (cmd) == 0);
    printf ("OK\n");
}
