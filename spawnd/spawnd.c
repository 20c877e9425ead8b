/*  spawnd — the ai-peer AI tool runner: a thin main around aip_spawner.
    One job at a time; brokerd starts several (daemon start --workers N).
    Started by brokerd, or by hand to add capacity:
      spawnd --home DIR [--endpoint ipc://.../workers] [--client-endpoint EP]
    or on another machine, to run the invites of a LAN hub with this
    machine's AI tools (docs/lan.md, "Remote spawn workers"):
      spawnd --hub tcp://HOST:PORT --hub-key <64 hex> --token <64 hex> [--home DIR]
    The hub's key and worker token are in 'ai-peer daemon status' on the hub
    (lan.public_key, lan.worker_token). */
#include "aip_home.h"
#include "aip_lan.h"
#include "aip_opts.h"
#include "aip_worker.h"
#include "aip_spawner.h"
#include "aip_proc.h"

#include <ctype.h>

#define SPAWND_USAGE \
    "usage: spawnd [--home DIR] [--endpoint EP] [--client-endpoint EP]\n" \
    "       spawnd --hub tcp://HOST:PORT --hub-key KEY --token TOKEN [--home DIR]\n" \
    "  --hub      serve the invites of a LAN hub (its 'daemon start --lan' address)\n" \
    "  --hub-key  the hub's public key, 64 hex chars (hub: daemon status, lan.public_key)\n" \
    "  --token    the hub's worker token, 64 hex chars (hub: daemon status, lan.worker_token)\n"

//  True if s is exactly len hex digits
static bool
s_is_hex (const char *s, size_t len)
{
    if (strlen (s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit ((unsigned char) s [i]))
            return false;
    return true;
}

//  A TCP endpoint with a host and a port: tcp://HOST:PORT
static bool
s_hub_endpoint_valid (const char *endpoint)
{
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host || !colon [1])
        return false;
    char *end;
    long port = strtol (colon + 1, &end, 10);
    return *end == 0 && port > 0 && port < 65536;
}

//  What the command line says (each NULL unless given)
typedef struct {
    const char *home;           //  --home: $AI_PEERS_HOME
    const char *endpoint;       //  --endpoint: the broker's worker socket
    const char *client;         //  --client-endpoint: the broker's client socket
    const char *hub;            //  --hub: a LAN hub's tcp://HOST:PORT
    const char *hub_key;        //  --hub-key: its public key, in hex
    const char *token;          //  --token: its worker token, in hex
} s_flags_t;

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512], endpoint [AIP_PATH_MAX], client [AIP_PATH_MAX];
    char name [64], host [AIP_MAX_NAME + 1];
    s_flags_t flags = { .home = NULL };
    aip_opt_t opts [] = {
        { .name = "--home",     .kind = AIP_OPT_STR, .value = &flags.home,     .meta = "DIR" },
        { .name = "--endpoint", .kind = AIP_OPT_STR, .value = &flags.endpoint, .meta = "EP" },
        { .name = "--client-endpoint", .kind = AIP_OPT_STR, .value = &flags.client, .meta = "EP" },
        { .name = "--hub",      .kind = AIP_OPT_STR, .value = &flags.hub,
          .meta = "tcp://HOST:PORT" },
        { .name = "--hub-key",  .kind = AIP_OPT_STR, .value = &flags.hub_key,  .meta = "KEY" },
        { .name = "--token",    .kind = AIP_OPT_STR, .value = &flags.token,    .meta = "TOKEN" },
        { .name = NULL }
    };
    uint8_t hub_key [32];
    if (aip_opts_parse (opts, argc, argv, err, sizeof err)) {
        //  The usage says the two ways to run, which one table line cannot
        fprintf (stderr, "spawnd: %s\n" SPAWND_USAGE, err);
        return 1;
    }
    //  Remote mode: everything goes to the hub, which must be pinned by its
    //  key, and the hub serves us only with its worker token
    if (flags.hub || flags.hub_key || flags.token) {
        if (!flags.hub) {
            fprintf (stderr, "spawnd: --hub-key and --token go with --hub tcp://HOST:PORT\n");
            return 1;
        }
        if (flags.endpoint || flags.client) {
            fprintf (stderr, "spawnd: --hub replaces --endpoint and --client-endpoint\n");
            return 1;
        }
        if (!s_hub_endpoint_valid (flags.hub)) {
            fprintf (stderr, "spawnd: --hub '%s' is not tcp://HOST:PORT\n", flags.hub);
            return 1;
        }
        if (!flags.hub_key) {
            fprintf (stderr, "spawnd: --hub needs --hub-key, the hub's public key (on the hub: "
                     "ai-peer daemon status, lan.public_key)\n");
            return 1;
        }
        if (aip_lan_key_from_hex (flags.hub_key, hub_key)) {
            fprintf (stderr, "spawnd: --hub-key must be the hub's public key: %d hex "
                     "characters (got '%.80s')\n", AIP_LAN_KEY_HEX, flags.hub_key);
            return 1;
        }
        if (!flags.token) {
            fprintf (stderr, "spawnd: --hub needs --token, the hub's worker token (on the hub: "
                     "ai-peer daemon status, lan.worker_token)\n");
            return 1;
        }
        if (!s_is_hex (flags.token, AIP_RELAY_TOKEN_HEX)) {
            fprintf (stderr, "spawnd: --token must be the hub's worker token: %d hex "
                     "characters\n", AIP_RELAY_TOKEN_HEX);
            return 1;
        }
        if (!zsys_has_curve ()) {
            fprintf (stderr, "spawnd: this libzmq was built without CURVE: it cannot reach a "
                     "LAN hub\n");
            return 1;
        }
    }
    if (aip_home_pick (flags.home, home, sizeof home, err, sizeof err)) {
        fprintf (stderr, "spawnd: %s\n", err);
        return 1;
    }
    if (flags.hub) {
        //  No local brokerd prepared this home: prompt files and the
        //  running tool's pgid go in its run/ directory
        if (aip_home_prepare (home, err, sizeof err)) {
            fprintf (stderr, "spawnd: %s\n", err);
            return 1;
        }
        snprintf (endpoint, sizeof endpoint, "%s", flags.hub);
        snprintf (client, sizeof client, "%s", flags.hub);
    }
    else
    if (aip_home_endpoint_pick (home, "workers", flags.endpoint, endpoint, sizeof endpoint, err,
                                sizeof err)
    ||  aip_home_endpoint_pick (home, "broker", flags.client, client, sizeof client, err,
                                sizeof err)) {
        fprintf (stderr, "spawnd: %s\n", err);
        return 1;
    }
    //  The hub's daemon status lists workers of many machines: say which
    if (flags.hub) {
        aip_hostname (host, sizeof host);
        snprintf (name, sizeof name, "spawnd-%s-%d", host, (int) getpid ());
    }
    else
        snprintf (name, sizeof name, "spawnd-%d", (int) getpid ());
    aip_spawner_args_t args = { .home = home, .worker_endpoint = endpoint,
                                .client_endpoint = client, .name = name,
                                .hub_key = flags.hub ? hub_key : NULL,
                                .token = flags.hub ? flags.token : NULL };

    //  What a tool detaches from its group (setsid) comes back to us, to be
    //  killed after its run (aip_proc_sweep)
    if (aip_proc_subreaper ())
        fprintf (stderr, "spawnd: cannot become a child subreaper (%s): a tool's detached "
                 "processes may outlive its run\n", strerror (errno));
    zsys_init ();
    zsys_set_logident ("spawnd");
    zsys_set_logstream (stdout);
    aip_signals_block ();
    zactor_t *spawner = zactor_new (aip_spawner, &args);
    aip_signals_unblock ();
    if (!spawner)
        return 1;
    //  Until SIGTERM (from brokerd, or because brokerd died); a running
    //  tool's process group is killed on the way out
    while (!zsys_interrupted) {
        char *message = zstr_recv (spawner);
        if (!message)
            break;
        free (message);
    }
    zactor_destroy (&spawner);
    aip_proc_sweep ();
    return 0;
}
