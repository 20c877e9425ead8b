/*  cmd_daemon.c — ai-peer daemon start|stop|status. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Largest daemon.json read (it holds two fields)
#define AIP_DAEMON_JSON_MAX (64 * 1024)

//  daemon.json: {host, port} of the last start. Only a record: when it is
//  unreadable, too large or not what it should be, status goes on without
//  it and *problem says why (the next daemon start writes it again)
static void
s_read_daemon_json (cli_t *cli, json_t **config, char *problem, size_t size)
{
    char path [AIP_PATH_MAX];
    aip_home_path (cli->home, "daemon.json", path, sizeof path);
    size_t len;
    char *text = aip_file_read (path, AIP_DAEMON_JSON_MAX, &len);
    *config = NULL;
    *problem = 0;
    if (!text) {
        if (errno != ENOENT)
            snprintf (problem, size, "cannot read %s (%s): ignored; the next 'ai-peer daemon "
                      "start' writes it again", path, errno == EFBIG ? "larger than 64 KiB"
                                                                      : strerror (errno));
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb (text, len, 0, &jerr);
    free (text);
    if (!root || !json_is_object (root)
    ||  (json_object_get (root, "port") && !json_is_integer (json_object_get (root, "port")))
    ||  (json_object_get (root, "host") && !json_is_string (json_object_get (root, "host")))) {
        snprintf (problem, size, "%s is corrupted (%s): ignored; the next 'ai-peer daemon "
                  "start' writes it again", path, root ? "bad host or port" : jerr.text);
        json_decref (root);
        return;
    }
    *config = root;
}

//  One request to a running broker (never starting one): 0 with *rep, or
//  -1 with err
static int
s_ask_broker (cli_t *cli, aip_op_t op, int timeout_ms, aip_reply_t *rep, char *err, size_t errlen)
{
    aip_client_t *client = aip_client_new (cli->home, false, err, errlen);
    if (!client)
        return -1;
    aip_pack_reset (cli->pk);
    uint64_t id = aip_client_next_id (client);
    aip_request_begin (cli->pk, id, op, 0);
    bool died;
    int rc = aip_client_send (client, cli->pk, err, errlen);
    if (rc == 0)
        rc = aip_client_recv (client, id, timeout_ms, rep, &died, err, errlen);
    aip_client_destroy (&client);
    return rc;
}

static bool
s_process_gone (pid_t pid)
{
    if (kill (pid, 0) != 0)
        return errno == ESRCH;
    //  A zombie has released its sockets and files: it is gone for us,
    //  however late its parent (a container's init, maybe) reaps it
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    size_t len;
    char *text = aip_file_read (path, 4096, &len);
    char *rp = text ? strrchr (text, ')') : NULL;
    bool zombie = rp && rp [1] == ' ' && rp [2] == 'Z';
    free (text);
    return zombie;
}

//  Wait (bounded) for a process to exit; true if it did
static bool
s_wait_gone (pid_t pid, int timeout_ms)
{
    int64_t deadline = aip_clock_ms () + timeout_ms;
    while (aip_clock_ms () < deadline) {
        if (s_process_gone (pid))
            return true;
        usleep (5000);
    }
    return s_process_gone (pid);
}

//  LAN mode on (lan), or just its details if it is on; *info NULL if it is off
static int
s_lan_start_or_query (cli_t *cli, bool lan, int port, json_t **info)
{
    *info = NULL;
    if (lan)
        return cli_lan_start (cli, port, info);
    uint64_t id = cli_request (cli, AIP_OP_DAEMON_STATUS, 0);
    json_t *status;
    if (cli_call (cli, id, &status))
        return -1;
    json_t *detail = json_object_get (status, "lan");
    if (json_is_object (detail)) {
        *info = json_deep_copy (detail);
        json_object_del (*info, "worker_token");
    }
    json_decref (status);
    return 0;
}

//  --workers N given to daemons that already run: fine if they run N
//  spawnd, else an error saying how many they run and how to restart
static int
s_check_workers (cli_t *cli, long wanted)
{
    uint64_t id = cli_request (cli, AIP_OP_DAEMON_STATUS, 0);
    json_t *status;
    if (cli_call (cli, id, &status))
        return -1;
    json_t *running = json_object_get (status, "workers");
    long have = json_is_integer (running) ? (long) json_integer_value (running) : -1;
    json_decref (status);
    if (have == wanted)
        return 0;
    if (have < 0)
        return cli_fail (cli, "the daemons already run and do not say how many spawn workers "
                         "they have: --workers %ld applies when they start; restart them with "
                         "'ai-peer daemon stop' then 'ai-peer daemon start --workers %ld'",
                         wanted, wanted);
    return cli_fail (cli, "the daemons already run with %ld spawn worker%s: --workers %ld "
                     "applies when they start; restart them with 'ai-peer daemon stop' then "
                     "'ai-peer daemon start --workers %ld'", have, have == 1 ? "" : "s",
                     wanted, wanted);
}

static int
s_start (cli_t *cli, int argc, char **argv)
{
    enum { OPT_LAN, OPT_PORT, OPT_WORKERS, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_LAN] = CLI_OPT_FLAG ("--lan"),
        [OPT_PORT] = CLI_OPT_VALUE ("--port"),
        [OPT_WORKERS] = CLI_OPT_VALUE ("--workers"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "daemon", argc, argv, opts, pos, 0, &npos))
        return -1;
    long workers = AIP_SPAWN_WORKERS;
    if (cli_opt_int (cli, &opts [OPT_WORKERS], 0, AIP_MAX_SPAWN_WORKERS, &workers))
        return -1;
    long port = 7899;
    if (cli_opt_int (cli, &opts [OPT_PORT], 1, 65535, &port))
        return -1;
    bool lan = opts [OPT_LAN].present;
    //  0 workers is asked for explicitly: no invites on this machine
    aip_daemon_opts_t dopts = { .mode = lan ? AIP_DAEMON_LAN : AIP_DAEMON_LOCAL,
                                .port = (int) port, .workers = workers ? (int) workers : -1 };
    bool started;
    char err [1024];
    if (aip_daemon_start (cli->home, &dopts, &started, err, sizeof err))
        return cli_fail (cli, "%s", err);
    pid_t pid = 0;
    aip_daemon_running (cli->home, &pid);
    //  Running daemons keep their spawnd count: a different --workers is
    //  not silently ignored
    if (!started && opts [OPT_WORKERS].present && s_check_workers (cli, workers))
        return -1;
    json_t *info = NULL;
    //  A running local daemon set switches to LAN mode; a LAN one says where
    if ((lan || !started) && s_lan_start_or_query (cli, lan, (int) port, &info))
        return -1;
    if (info) {
        cli->data = json_pack ("{s:s, s:O, s:s, s:i, s:O, s:O}", "status", "started",
                               "port", json_object_get (info, "port"), "mode", "lan",
                               "pid", (int) pid, "address", json_object_get (info, "address"),
                               "public_key", json_object_get (info, "public_key"));
        json_decref (info);
    }
    else
        cli->data = json_pack ("{s:s, s:i, s:s, s:i}", "status", "started", "port", (int) port,
                               "mode", "local (127.0.0.1)", "pid", (int) pid);
    if (!started)
        json_object_set_new (cli->data, "already_running", json_true ());
    return 0;
}

static int
s_stop (cli_t *cli)
{
    pid_t pid;
    if (!aip_daemon_running (cli->home, &pid)) {
        //  The same keys as a stop (DESIGN.md §6): no broker, no pid, as
        //  daemon status says it
        cli->data = json_pack ("{s:s, s:n}", "status", "not running", "pid");
        return 0;
    }
    //  Ask nicely first, then by signal
    char err [1024];
    aip_reply_t rep;
    if (s_ask_broker (cli, AIP_OP_DAEMON_STOP, 2000, &rep, err, sizeof err) == 0)
        aip_reply_free (&rep);
    if (!s_wait_gone (pid, AIP_STOP_TIMEOUT_MS)) {
        kill (pid, SIGTERM);
        if (!s_wait_gone (pid, AIP_STOP_TIMEOUT_MS)) {
            kill (pid, SIGKILL);
            if (!s_wait_gone (pid, 2000))
                return cli_fail (cli, "brokerd (pid %d) did not stop, even after SIGKILL", (int) pid);
        }
    }
    cli->data = json_pack ("{s:s, s:i}", "status", "stopped", "pid", (int) pid);
    return 0;
}

static int
s_status (cli_t *cli)
{
    json_t *config;
    char problem [AIP_PATH_MAX + 256];
    s_read_daemon_json (cli, &config, problem, sizeof problem);
    json_t *port = config ? json_object_get (config, "port") : NULL;
    json_t *host = config ? json_object_get (config, "host") : NULL;
    pid_t pid;
    bool running = aip_daemon_running (cli->home, &pid);
    cli->data = json_pack ("{s:b, s:O, s:O, s:O}", "running", running,
                           "pid", running ? json_integer (pid) : json_null (),
                           "port", port ? port : json_integer (7899),
                           "host", host ? host : json_string ("127.0.0.1"));
    //  json_pack's O took a reference of the fresh values too: drop ours
    if (running)
        json_decref (json_object_get (cli->data, "pid"));
    if (!port)
        json_decref (json_object_get (cli->data, "port"));
    if (!host)
        json_decref (json_object_get (cli->data, "host"));
    json_decref (config);
    if (*problem) {
        fprintf (stderr, "⚠ %s\n", problem);
        json_object_set_new (cli->data, "warning", json_string (problem));
    }
    if (!running)
        return 0;
    char err [1024];
    aip_reply_t rep;
    if (s_ask_broker (cli, AIP_OP_DAEMON_STATUS, 3000, &rep, err, sizeof err) == 0) {
        if (rep.ok) {
            json_t *detail = aip_json_from_obj (rep.data);
            json_object_set (cli->data, "mode", json_object_get (detail, "mode"));
            json_object_set (cli->data, "uptime_s", json_object_get (detail, "uptime_s"));
            json_object_set (cli->data, "requests", json_object_get (detail, "requests"));
            json_object_set (cli->data, "daemons", json_object_get (detail, "daemons"));
            if (json_is_integer (json_object_get (detail, "workers")))
                json_object_set (cli->data, "workers", json_object_get (detail, "workers"));
            json_t *lan = json_object_get (detail, "lan");
            if (lan)
                json_object_set (cli->data, "lan", lan);
            //  Without a readable daemon.json, the broker says where it listens
            if (*problem && json_is_integer (json_object_get (lan, "port"))) {
                json_object_set (cli->data, "port", json_object_get (lan, "port"));
                if (json_is_string (json_object_get (lan, "address")))
                    json_object_set (cli->data, "host", json_object_get (lan, "address"));
            }
            json_decref (detail);
        }
        aip_reply_free (&rep);
    }
    else {
        json_object_set_new (cli->data, "responding", json_false ());
        json_object_set_new (cli->data, "warning", json_string (err));
    }
    return 0;
}

int
cmd_daemon (cli_t *cli, int argc, char **argv)
{
    if (argc < 1)
        return cli_fail (cli, "Usage: ai-peer daemon start|stop|status [--lan] [--port N] "
                         "[--workers N]");
    const char *action = argv [0];
    if (strcmp (action, "start") == 0)
        return s_start (cli, argc - 1, argv + 1);
    enum { OPT_PORT, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_PORT] = CLI_OPT_VALUE ("--port"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "daemon", argc - 1, argv + 1, opts, pos, 0, &npos))
        return -1;
    if (strcmp (action, "stop") == 0)
        return s_stop (cli);
    if (strcmp (action, "status") == 0)
        return s_status (cli);
    return cli_fail (cli, "Unknown daemon action: %.64s. Available: start, stop, status", action);
}
