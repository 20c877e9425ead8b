/*  webd — the ai-peer web view: a thin main around aip_web. Serves the
    page on 127.0.0.1 only; started and supervised by brokerd while the web
    view is on (ai-peer web). */
#include "aip_home.h"
#include "aip_opts.h"
#include "aip_web.h"
#include "aip_worker.h"

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512];
    //  brokerd gives every child its workers' endpoint; webd is a client
    //  and finds the broker from --home, so --endpoint is taken and unused
    const char *home_arg = NULL, *endpoint_unused = NULL;
    aip_web_args_t args = { .port = -1 };
    aip_opt_t opts [] = {
        { .name = "--home",     .kind = AIP_OPT_STR, .value = &home_arg,        .meta = "DIR" },
        { .name = "--endpoint", .kind = AIP_OPT_STR, .value = &endpoint_unused, .meta = "EP" },
        { .name = "--port",     .kind = AIP_OPT_INT, .value = &args.port, .min = 0,
          .max = 65535, .meta = "P" },
        { .name = NULL }
    };
    if (aip_opts_parse (opts, argc, argv, err, sizeof err)) {
        char usage [128];
        aip_opts_usage ("webd", opts, usage, sizeof usage);
        fprintf (stderr, "webd: %s\n%s\n", err, usage);
        return 1;
    }
    if (aip_home_pick (home_arg, home, sizeof home, err, sizeof err)) {
        fprintf (stderr, "webd: %s\n", err);
        return 1;
    }
    args.home = home;
    zsys_init ();
    zsys_set_logident ("webd");
    zsys_set_logstream (stdout);
    aip_signals_block ();
    zactor_t *web = zactor_new (aip_web, &args);
    aip_signals_unblock ();
    if (!web)
        return 1;           //  the actor logged why (and wrote run/web.json)
    //  Until SIGTERM (from brokerd, or because brokerd died)
    int rc = 0;
    while (!zsys_interrupted) {
        char *message = zstr_recv (web);
        if (!message)
            break;
        bool failed = streq (message, "FAILED");
        free (message);
        if (failed) {
            rc = 1;
            break;
        }
    }
    zactor_destroy (&web);
    return rc;
}
