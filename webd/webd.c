/*  webd — the ai-peer web view: a thin main around aip_web. Serves the
    page on 127.0.0.1 only; started and supervised by brokerd while the web
    view is on (ai-peer web). */
#include "aip_home.h"
#include "aip_web.h"
#include "aip_worker.h"

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512];
    const char *home_arg = NULL;
    aip_web_args_t args = { NULL, -1 };
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--home") && i + 1 < argc)
            home_arg = argv [++i];
        else
        //  brokerd gives every child its workers' endpoint; webd is a
        //  client and finds the broker from --home
        if (streq (argv [i], "--endpoint") && i + 1 < argc)
            i++;
        else
        if (streq (argv [i], "--port") && i + 1 < argc) {
            args.port = atoi (argv [++i]);
            if (args.port < 0 || args.port > 65535) {
                fprintf (stderr, "webd: --port takes 0 to 65535\n");
                return 1;
            }
        }
        else {
            fprintf (stderr, "usage: webd [--home DIR] [--port P]\n");
            return 1;
        }
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
