/*  cmd_web.c — ai-peer web [--port P] [--open] [--stop]: the web view.
    brokerd starts webd (and remembers that it is on, in web/mode); this
    command mints a one-time login token, waits until webd listens, and
    prints the URL that carries the token. */
#include "cli.h"
#include "aip_webmode.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  How long webd may take to start listening
#define WEB_READY_MS 10000

//  run/web.json of the webd with this pid: 0 when it listens (*port set),
//  -1 with cli->err when it said why it cannot, 1 while not there yet
static int
s_web_ready (cli_t *cli, pid_t pid, int *port)
{
    char path [AIP_PATH_MAX];
    aip_home_path (cli->home, "run/web.json", path, sizeof path);
    size_t len;
    char *text = aip_file_read (path, 4096, &len);
    if (!text)
        return 1;
    json_t *root = json_loadb (text, len, 0, NULL);
    free (text);
    int rc = 1;
    if (json_is_object (root)
    &&  json_integer_value (json_object_get (root, "pid")) == (json_int_t) pid) {
        const char *error = json_string_value (json_object_get (root, "error"));
        if (error)
            rc = cli_fail (cli, "the web view cannot start: %s", error);
        else {
            *port = (int) json_integer_value (json_object_get (root, "port"));
            rc = 0;
        }
    }
    json_decref (root);
    return rc;
}

static int
s_web_stop (cli_t *cli)
{
    if (!aip_daemon_running (cli->home, NULL)) {
        aip_webmode_set (cli->home, -1);
        cli->data = json_pack ("{s:s}", "status", "not running");
        return 0;
    }
    uint64_t id = cli_request (cli, AIP_OP_WEB_STOP, 0);
    return cli_call (cli, id, &cli->data);
}

//  Open url in the desktop's browser, detached; false when there is none
static bool
s_open_browser (const char *url)
{
    pid_t pid = fork ();
    if (pid < 0)
        return false;
    if (pid == 0) {
        //  A grandchild, so nothing waits for the browser to exit
        if (fork () != 0)
            _exit (0);
        int devnull = open ("/dev/null", O_RDWR);
        dup2 (devnull, 0);
        dup2 (devnull, 1);
        dup2 (devnull, 2);
        setsid ();
        execlp ("xdg-open", "xdg-open", url, (char *) NULL);
        _exit (127);
    }
    int status;
    waitpid (pid, &status, 0);
    //  The grandchild's exec failing is not seen here: check PATH instead
    const char *path = getenv ("PATH");
    char *copy = path ? strdup (path) : NULL;
    bool found = false;
    for (char *dir = copy ? strtok (copy, ":") : NULL; dir && !found; dir = strtok (NULL, ":")) {
        char exe [AIP_PATH_MAX];
        snprintf (exe, sizeof exe, "%s/xdg-open", dir);
        found = access (exe, X_OK) == 0;
    }
    free (copy);
    return found;
}

int
cmd_web (cli_t *cli, int argc, char **argv)
{
    enum { OPT_PORT, OPT_OPEN, OPT_STOP, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_PORT] = CLI_OPT_VALUE ("--port"),
        [OPT_OPEN] = CLI_OPT_FLAG ("--open"),
        [OPT_STOP] = CLI_OPT_FLAG ("--stop"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "web", argc, argv, opts, pos, 0, &npos))
        return -1;
    if (opts [OPT_STOP].present) {
        if (opts [OPT_PORT].present || opts [OPT_OPEN].present)
            return cli_fail (cli, "--stop takes no other option");
        return s_web_stop (cli);
    }
    //  The port asked for, else the one it runs on, else the default
    long port = aip_webmode_get (cli->home);
    if (port < 0)
        port = AIP_WEB_PORT;
    if (cli_opt_int (cli, &opts [OPT_PORT], 0, 65535, &port))
        return -1;
    char err [512], token [AIP_WEB_TOKEN_HEX + 1];
    if (aip_home_prepare (cli->home, err, sizeof err)
    ||  aip_webmode_token_new (cli->home, token, err, sizeof err))
        return cli_fail (cli, "%s", err);
    uint64_t id = cli_request (cli, AIP_OP_WEB_START, 1);
    aip_pack_kint (cli->pk, "port", port);
    json_t *started;
    if (cli_call (cli, id, &started))
        return -1;
    pid_t pid = (pid_t) json_integer_value (json_object_get (started, "pid"));
    json_decref (started);
    int listening = 0;
    int64_t deadline = aip_clock_ms () + WEB_READY_MS;
    int rc;
    while ((rc = s_web_ready (cli, pid, &listening)) == 1) {
        if (aip_clock_ms () > deadline || (pid > 0 && kill (pid, 0) != 0 && errno == ESRCH)) {
            rc = cli_fail (cli, "webd did not start listening within %d s: see %s/daemon.log",
                           WEB_READY_MS / 1000, cli->home);
            break;
        }
        usleep (10 * 1000);     //  polling a file webd writes, with the deadline above
    }
    if (rc) {
        //  Not left restarting in the background on a port it cannot have
        char keep [sizeof cli->err];
        snprintf (keep, sizeof keep, "%s", cli->err);
        uint64_t stop = cli_request (cli, AIP_OP_WEB_STOP, 0);
        json_t *ignored = NULL;
        cli_call (cli, stop, &ignored);
        json_decref (ignored);
        snprintf (cli->err, sizeof cli->err, "%s", keep);
        return -1;
    }
    char url [128];
    snprintf (url, sizeof url, "http://127.0.0.1:%d/#t=%s", listening, token);
    cli->data = json_pack ("{s:s, s:i, s:i, s:s}", "url", url, "port", listening, "pid",
                           (int) pid, "note", "this machine only; the link logs in once");
    if (opts [OPT_OPEN].present && !s_open_browser (url))
        json_object_set_new (cli->data, "warning",
                             json_string ("xdg-open not found: open the URL yourself"));
    return 0;
}
