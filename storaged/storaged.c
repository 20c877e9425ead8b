/*  storaged — the ai-peer storage daemon: a thin main around aip_storage.
    The only process that opens peers.db. Started by brokerd. */
#include "aip_home.h"
#include "aip_opts.h"
#include "aip_worker.h"
#include "aip_storage.h"

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512], db [AIP_PATH_MAX], endpoint [AIP_PATH_MAX];
    const char *home_arg = NULL, *endpoint_arg = NULL, *sync_arg = "full";
    aip_opt_t opts [] = {
        { .name = "--home",     .kind = AIP_OPT_STR,    .value = &home_arg,     .meta = "DIR" },
        { .name = "--endpoint", .kind = AIP_OPT_STR,    .value = &endpoint_arg, .meta = "EP" },
        { .name = "--sync",     .kind = AIP_OPT_CHOICE, .value = &sync_arg,
          .choices = "full|normal" },
        { .name = NULL }
    };
    if (aip_opts_parse (opts, argc, argv, err, sizeof err)) {
        char usage [256];
        aip_opts_usage ("storaged", opts, usage, sizeof usage);
        fprintf (stderr, "storaged: %s\n%s\n", err, usage);
        return 1;
    }
    aip_storage_args_t args = { .sync_normal = streq (sync_arg, "normal") };
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
