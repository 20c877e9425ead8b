/*  brokerd — the ai-peer routing broker: a thin main around aip_broker.
    Started by the CLI on first use (or by 'ai-peer daemon start'); starts
    and supervises the other daemons. */
#include "aip_broker.h"
#include "aip_client.h"
#include "aip_home.h"
#include "aip_lan.h"
#include "aip_opts.h"
#include "aip_worker.h"

#include <fcntl.h>

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512], bin_dir [AIP_PATH_MAX];
    const char *home_arg = NULL;
    bool local = false;
    aip_broker_args_t args = {
        .ready_fd = -1,
        .port = AIP_LAN_DEFAULT_PORT,
        .write_files = true,
        .spawn_workers = AIP_SPAWN_WORKERS,
    };
    aip_opt_t opts [] = {
        { .name = "--home",     .kind = AIP_OPT_STR,  .value = &home_arg,   .meta = "DIR" },
        { .name = "--ready-fd", .kind = AIP_OPT_INT,  .value = &args.ready_fd, .min = 0,
          .max = 65535 },
        { .name = "--lan",      .kind = AIP_OPT_FLAG, .value = &args.lan },
        { .name = "--local",    .kind = AIP_OPT_FLAG, .value = &local },
        { .name = "--port",     .kind = AIP_OPT_INT,  .value = &args.port, .min = 1,
          .max = 65535 },
        { .name = "--workers",  .kind = AIP_OPT_INT,  .value = &args.spawn_workers, .min = 0,
          .max = AIP_MAX_SPAWN_WORKERS },
        { .name = NULL }
    };
    if (aip_opts_parse (opts, argc, argv, err, sizeof err)) {
        char usage [256];
        aip_opts_usage ("brokerd", opts, usage, sizeof usage);
        fprintf (stderr, "brokerd: %s\n%s\n"
                 "  without --lan or --local, LAN mode is on if it was on last time (lan/mode)\n",
                 err, usage);
        return 1;
    }
    if (aip_home_pick (home_arg, home, sizeof home, err, sizeof err)) {
        fprintf (stderr, "brokerd: %s\n", err);
        return 1;
    }
    if (args.ready_fd >= 0)
        fcntl (args.ready_fd, F_SETFD, FD_CLOEXEC);
    if (aip_home_prepare (home, err, sizeof err)) {
        fprintf (stderr, "brokerd: %s\n", err);
        if (args.ready_fd >= 0)
            dprintf (args.ready_fd, "error: %s\n", err);
        return 1;
    }
    if (aip_exe_dir (bin_dir, sizeof bin_dir)) {
        fprintf (stderr, "brokerd: cannot find its own directory\n");
        return 1;
    }
    args.home = home;
    args.bin_dir = bin_dir;
    //  LAN mode comes back as it was, so the rooms this machine hubs stay
    //  reachable after any restart; an explicit local start forgets it
    if (local)
        aip_lan_mode_set (home, 0);
    else
    if (!args.lan && aip_lan_mode_get (home)) {
        args.lan = true;
        args.lan_optional = true;
        args.port = aip_lan_mode_get (home);
    }

    //  Everything these daemons create is the owner's alone
    umask (077);
    zsys_init ();
    zsys_set_logident ("brokerd");
    zsys_set_logstream (stdout);
    aip_signals_block ();
    zactor_t *broker = zactor_new (aip_broker, &args);
    aip_signals_unblock ();
    //  A broker that cannot start (daemon.pid unwritable, the disk full,
    //  the LAN port taken) exits: the command that started it has the reason
    //  from the ready pipe, and no broker is left that nobody can see
    if (!broker || args.failed) {
        zactor_destroy (&broker);
        return 1;
    }
    //  Wait for a signal (SIGTERM, SIGINT) or for the broker to stop itself
    zpoller_t *poller = zpoller_new (broker, NULL);
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, -1);
        if (which == broker) {
            char *message = zstr_recv (broker);
            bool stopped = message && streq (message, "STOPPED");
            free (message);
            if (stopped)
                break;
        }
        else
        if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    zactor_destroy (&broker);
    return 0;
}
