/*  brokerd — the ai-peer routing broker: a thin main around aip_broker.
    Started by the CLI on first use (or by 'ai-peer daemon start'); starts
    and supervises the other daemons. */
#include "aip_broker.h"
#include "aip_client.h"
#include "aip_home.h"
#include "aip_lan.h"
#include "aip_worker.h"

#include <fcntl.h>

static void
s_usage (void)
{
    fprintf (stderr, "usage: brokerd [--home DIR] [--ready-fd N] [--lan | --local] [--port N] "
             "[--workers N]\n"
             "  without --lan or --local, LAN mode is on if it was on last time (lan/mode)\n");
}

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512], bin_dir [AIP_PATH_MAX];
    const char *home_arg = NULL;
    bool local = false;
    aip_broker_args_t args = { NULL, NULL, -1, false, 7899, true, 0, AIP_SPAWN_WORKERS, false,
                               false };
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--home") && i + 1 < argc)
            home_arg = argv [++i];
        else
        if (streq (argv [i], "--ready-fd") && i + 1 < argc)
            args.ready_fd = atoi (argv [++i]);
        else
        if (streq (argv [i], "--port") && i + 1 < argc)
            args.port = atoi (argv [++i]);
        else
        if (streq (argv [i], "--lan"))
            args.lan = true;
        else
        if (streq (argv [i], "--local"))
            local = true;
        else
        if (streq (argv [i], "--workers") && i + 1 < argc) {
            args.spawn_workers = atoi (argv [++i]);
            if (args.spawn_workers < 0 || args.spawn_workers > AIP_MAX_SPAWN_WORKERS) {
                fprintf (stderr, "brokerd: --workers takes 0 to %d\n", AIP_MAX_SPAWN_WORKERS);
                return 1;
            }
        }
        else {
            s_usage ();
            return 1;
        }
    }
    if (args.port < 1 || args.port > 65535) {
        fprintf (stderr, "brokerd: --port takes 1 to 65535\n");
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
