/*  spawnd — the ai-peer AI tool runner: a thin main around aip_spawner.
    One job at a time; brokerd starts several (daemon start --workers N).
    Started by brokerd, or by hand to add capacity:
      spawnd --home DIR [--endpoint ipc://.../workers] [--client-endpoint EP] */
#include "aip_home.h"
#include "aip_worker.h"
#include "aip_spawner.h"

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512], endpoint [AIP_PATH_MAX], client [AIP_PATH_MAX];
    char name [64];
    const char *home_arg = NULL, *endpoint_arg = NULL, *client_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--home") && i + 1 < argc)
            home_arg = argv [++i];
        else
        if (streq (argv [i], "--endpoint") && i + 1 < argc)
            endpoint_arg = argv [++i];
        else
        if (streq (argv [i], "--client-endpoint") && i + 1 < argc)
            client_arg = argv [++i];
        else {
            fprintf (stderr, "usage: spawnd [--home DIR] [--endpoint EP] [--client-endpoint EP]\n");
            return 1;
        }
    }
    if (home_arg)
        snprintf (home, sizeof home, "%s", home_arg);
    else
    if (aip_home_resolve (home, sizeof home, err, sizeof err)) {
        fprintf (stderr, "spawnd: %s\n", err);
        return 1;
    }
    if (endpoint_arg)
        snprintf (endpoint, sizeof endpoint, "%s", endpoint_arg);
    else
    if (aip_home_endpoint (home, "workers", endpoint, sizeof endpoint, err, sizeof err)) {
        fprintf (stderr, "spawnd: %s\n", err);
        return 1;
    }
    if (client_arg)
        snprintf (client, sizeof client, "%s", client_arg);
    else
    if (aip_home_endpoint (home, "broker", client, sizeof client, err, sizeof err)) {
        fprintf (stderr, "spawnd: %s\n", err);
        return 1;
    }
    snprintf (name, sizeof name, "spawnd-%d", (int) getpid ());
    aip_spawner_args_t args = { home, endpoint, client, name };

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
    return 0;
}
