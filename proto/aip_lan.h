/*  aip_lan.h — what LAN mode keeps on disk and says on the network.

    Files in $AI_PEERS_HOME/lan/ (directory 0700):
      hub.cert, hub.cert_secret   the broker's long-term CURVE key pair
                                  (czmq zcert format; the secret file 0600),
                                  made once: a LAN room's connection string
                                  pins the public key, so it must not change
      worker.token                64 hex chars: a remote spawnd presents it
                                  to use the hub (0600)
      mode                        the port, while LAN mode is on: a broker
                                  started later (auto-start) comes back in
                                  LAN mode, so the rooms it hubs stay reachable

    A beacon (czmq zbeacon, UDP broadcast) is "AIPL" + a msgpack map
      {v: protocol version, m: machine, u: user, p: port, k: key (32 bytes),
       t: "tool,tool,..."}
    in at most AIP_LAN_BEACON_MAX bytes (long names and tool lists are cut). */
#ifndef AIP_LAN_H_INCLUDED
#define AIP_LAN_H_INCLUDED

#include <czmq.h>

#include "aip_limits.h"

//  The prefix every beacon starts with (zbeacon SUBSCRIBE filter)
#define AIP_LAN_BEACON_PREFIX "AIPL"

typedef struct {
    int version;                        //  protocol version of the sender
    char machine [49];                  //  its machine name
    char user [25];                     //  its user
    int port;                           //  its CURVE TCP port
    uint8_t key [32];                   //  its public key
    char key_hex [AIP_LAN_KEY_HEX + 1]; //  the same in hex
    char tools [160];                   //  installed AI tools, comma separated
} aip_lan_beacon_t;

//  Load the broker's key pair, making it on first use. NULL + err on failure.
zcert_t *aip_lan_cert_load (const char *home, char *err, size_t errlen);
//  The worker token (made on first use) into buf. 0, or -1 with err.
int aip_lan_worker_token (const char *home, char buf [AIP_RELAY_TOKEN_HEX + 1], char *err,
                          size_t errlen);
//  The persisted LAN port (0 when LAN mode is off), and setting it (0 = off)
int aip_lan_mode_get (const char *home);
int aip_lan_mode_set (const char *home, int port);
//  32 bytes as 64 hex chars and back (-1 if not 64 hex chars)
void aip_lan_key_to_hex (const uint8_t key [32], char out [AIP_LAN_KEY_HEX + 1]);
int aip_lan_key_from_hex (const char *hex, uint8_t key [32]);
//  Pack a beacon into buf; returns its size (at most AIP_LAN_BEACON_MAX)
size_t aip_lan_beacon_pack (const aip_lan_beacon_t *beacon, uint8_t buf [AIP_LAN_BEACON_MAX]);
//  Decode one; 0, or -1 if it is not a valid beacon
int aip_lan_beacon_decode (const void *data, size_t size, aip_lan_beacon_t *beacon);

void aip_lan_test (bool verbose);

#endif
