/*  aip_home.h — the $AI_PEERS_HOME directory (default ~/.ai-peers) and the
    files in it: peers.db, identity.json, daemon.json, daemon.pid, logs,
    and run/ with the daemons' ipc sockets (mode 0700: only the owner can
    talk to the daemons). */
#ifndef AIP_HOME_H_INCLUDED
#define AIP_HOME_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define AIP_PATH_MAX 4096
//  ipc:// endpoints are unix socket paths: 107 bytes at most
#define AIP_IPC_PATH_MAX 107

//  Resolve the home directory into buf. Returns 0 or -1 with err filled.
int aip_home_resolve (char *buf, size_t size, char *err, size_t errlen);
//  Refuse a home that exists and is not the user's alone: owned by another
//  uid, or writable by group or others (err says how to fix it)
int aip_home_check (const char *home, char *err, size_t errlen);
//  Check home (aip_home_check), create it (0700 if new) and home/run (0700);
//  check it is writable.
int aip_home_prepare (const char *home, char *err, size_t errlen);
//  A daemon's --home: given (arg not NULL), else as aip_home_resolve; then
//  aip_home_check
int aip_home_pick (const char *arg, char *buf, size_t size, char *err, size_t errlen);
//  A daemon's --endpoint: given (arg not NULL), else home's <name> endpoint
int aip_home_endpoint_pick (const char *home, const char *name, const char *arg, char *buf,
                            size_t size, char *err, size_t errlen);
//  home + "/" + name into buf
void aip_home_path (const char *home, const char *name, char *buf, size_t size);
//  "ipc://" + home/run/<name>.ipc; -1 if the path is too long for a socket
int aip_home_endpoint (const char *home, const char *name, char *buf, size_t size,
                       char *err, size_t errlen);
//  This machine's name (as Python's platform.node())
void aip_hostname (char *buf, size_t size);
//  The login name: $USER, else $USERNAME, else "user"
const char *aip_username (void);

void aip_home_test (bool verbose);

#endif
