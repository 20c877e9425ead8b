/*  storaged — the ai-peer storage daemon: a thin main around aip_storage.
    The only process that opens peers.db. Started by brokerd. */
#include "aip_home.h"
#include "aip_worker.h"
#include "aip_storage.h"

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512], db [AIP_PATH_MAX], endpoint [AIP_PATH_MAX];
    const char *home_arg = NULL, *endpoint_arg = NULL;
    aip_storage_args_t args = { NULL, NULL, 0, false };
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--home") && i + 1 < argc)
            home_arg = argv [++i];
        else
        if (streq (argv [i], "--endpoint") && i + 1 < argc)
            endpoint_arg = argv [++i];
        else
        if (streq (argv [i], "--sync") && i + 1 < argc) {
            const char *mode = argv [++i];
            if (!streq (mode, "full") && !streq (mode, "normal")) {
                fprintf (stderr, "storaged: --sync takes 'full' or 'normal'\n");
                return 1;
            }
            args.sync_normal = streq (mode, "normal");
        }
        else {
            fprintf (stderr, "usage: storaged [--home DIR] [--endpoint EP] [--sync full|normal]\n");
            return 1;
        }
    }
    if (aip_home_pick (home_arg, home, sizeof home, err, sizeof err)
    ||  aip_home_endpoint_pick (home, "workers", endpoint_arg, endpoint, sizeof endpoint, err,
                                sizeof err)) {
        fprintf (stderr, "storaged: %s\n", err);
        return 1;
    }
    const char *sync = getenv ("AI_PEER_STORAGE_SYNC");
    if (sync && streq (sync, "normal"))
        args.sync_normal = true;
    aip_home_path (home, "peers.db", db, sizeof db);
    args.db_path = db;
    args.endpoint = endpoint;

    //  Everything these daemons create is the owner's alone
    umask (077);
    zsys_init ();
    zsys_set_logident ("storaged");
    zsys_set_logstream (stdout);
    aip_signals_block ();
    zactor_t *storage = zactor_new (aip_storage, &args);
    aip_signals_unblock ();
    if (!storage)
        return 1;           //  the actor logged why
    //  Until SIGTERM (from brokerd, or because brokerd died). The actor
    //  says nothing while it serves; "FAILED" means it cannot open peers.db.
    bool failed = false;
    while (!zsys_interrupted && !failed) {
        char *message = zstr_recv (storage);
        if (!message)
            break;
        free (message);
        failed = true;
    }
    zactor_destroy (&storage);
    return failed ? 1 : 0;
}
