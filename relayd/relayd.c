/*  relayd — the ai-peer relay-sync daemon: a thin main around aip_relay.
    Keeps public rooms in sync with their relay. Started by brokerd. */
#include "aip_home.h"
#include "aip_opts.h"
#include "aip_relay.h"
#include "aip_worker.h"

#include <curl/curl.h>

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512], endpoint [AIP_PATH_MAX];
    const char *home_arg = NULL, *endpoint_arg = NULL;
    aip_opt_t opts [] = {
        { .name = "--home",     .kind = AIP_OPT_STR, .value = &home_arg,     .meta = "DIR" },
        { .name = "--endpoint", .kind = AIP_OPT_STR, .value = &endpoint_arg, .meta = "EP" },
        { .name = NULL }
    };
    if (aip_opts_parse (opts, argc, argv, err, sizeof err)) {
        char usage [128];
        aip_opts_usage ("relayd", opts, usage, sizeof usage);
        fprintf (stderr, "relayd: %s\n%s\n", err, usage);
        return 1;
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
    aip_relay_args_t args = { .home = home, .endpoint = endpoint };
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
