/*  relayd — the ai-peer relay-sync daemon: a thin main around aip_relay.
    Keeps public rooms in sync with their relay. Started by brokerd. */
#include "aip_home.h"
#include "aip_relay.h"
#include "aip_worker.h"

#include <curl/curl.h>

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512], endpoint [AIP_PATH_MAX];
    const char *home_arg = NULL, *endpoint_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--home") && i + 1 < argc)
            home_arg = argv [++i];
        else
        if (streq (argv [i], "--endpoint") && i + 1 < argc)
            endpoint_arg = argv [++i];
        else {
            fprintf (stderr, "usage: relayd [--home DIR] [--endpoint EP]\n");
            return 1;
        }
    }
    if (aip_home_pick (home_arg, home, sizeof home, err, sizeof err)
    ||  aip_home_endpoint_pick (home, "workers", endpoint_arg, endpoint, sizeof endpoint, err,
                                sizeof err)) {
        fprintf (stderr, "relayd: %s\n", err);
        return 1;
    }
    //  Before any thread exists (libcurl's global init is not thread-safe)
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf (stderr, "relayd: cannot initialise libcurl\n");
        return 1;
    }
    zsys_init ();
    zsys_set_logident ("relayd");
    zsys_set_logstream (stdout);
    aip_relay_args_t args = { home, endpoint };
    aip_signals_block ();
    zactor_t *relay = zactor_new (aip_relay, &args);
    aip_signals_unblock ();
    if (!relay) {
        curl_global_cleanup ();
        return 1;           //  the actor logged why
    }
    //  Until SIGTERM (from brokerd, or because brokerd died)
    while (!zsys_interrupted) {
        char *message = zstr_recv (relay);
        if (!message)
            break;
        free (message);
    }
    zactor_destroy (&relay);
    curl_global_cleanup ();
    return 0;
}
