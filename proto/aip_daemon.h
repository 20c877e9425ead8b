/*  aip_daemon.h — finding and starting the daemon set of an $AI_PEERS_HOME:
    is its brokerd running (the pid file checked against /proc), and start
    it detached when it is not.

    Auto-start is guarded by an flock on run/start.lock: of ten first
    commands started at once, one starts brokerd and waits for it to say it
    is ready (a line on an inherited pipe); the others wait on the lock and
    then find it running. */
#ifndef AIP_DAEMON_H_INCLUDED
#define AIP_DAEMON_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

//  Modes of a daemon set being started
typedef enum {
    AIP_DAEMON_AUTO,        //  as it was last (LAN mode is remembered in lan/mode)
    AIP_DAEMON_LOCAL,       //  local only (and forget LAN mode)
    AIP_DAEMON_LAN          //  bind TCP with CURVE and beacon (LAN mode)
} aip_daemon_mode_t;

typedef struct {
    aip_daemon_mode_t mode; //  local, LAN, or as last time
    int port;               //  TCP port in LAN mode (7899)
    int workers;            //  spawnd workers (0: the default, AIP_SPAWN_WORKERS; -1: none)
} aip_daemon_opts_t;

//  Is brokerd running for home? Sets *pid (0 if not). Stale pid files (a
//  dead process, or a recycled pid that is not brokerd) count as not
//  running.
bool aip_daemon_running (const char *home, pid_t *pid);
//  Is pid a live brokerd (not a zombie, not a recycled pid)?
bool aip_daemon_pid_alive (pid_t pid);
//  Start the daemon set unless it runs; waits until it is ready.
//  *started says whether this call started it.
int aip_daemon_start (const char *home, const aip_daemon_opts_t *opts, bool *started,
                      char *err, size_t errlen);
//  Directory of the running executable (where brokerd and storaged live)
int aip_exe_dir (char *buf, size_t size);

void aip_daemon_test (bool verbose);

#endif
