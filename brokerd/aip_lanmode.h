/*  aip_lanmode.h — the broker's LAN mode: a CURVE ROUTER on every interface (TCP)
    that other machines reach, our beacon (zbeacon) and the table of the
    peers whose beacons we hear.

    The broker owns one while LAN mode is on. It polls aip_lanmode_sock
    (requests from other machines and remote spawn workers, told apart by
    aip_lanmode_recv) and aip_lanmode_beacon (beacons heard). What our
    beacon says of our AI tools is what the local spawn workers said in
    their READY: aip_lanmode_set_tools re-publishes it when it changes. */
#ifndef AIP_LANMODE_H_INCLUDED
#define AIP_LANMODE_H_INCLUDED

#include <czmq.h>
#include "aip_proto.h"

typedef struct _aip_lanmode_t aip_lanmode_t;

//  LAN mode on: load (or make) our key pair and worker token, bind
//  tcp://*:port with CURVE, start the beacon, remember the port in
//  HOME/lan/mode. NULL with a clear err when it cannot.
aip_lanmode_t *aip_lanmode_new (const char *home, int port, char *err, size_t errlen);
void aip_lanmode_destroy (aip_lanmode_t **self_p);

//  The ROUTER, and the beacon's socket to poll (NULL: discovery is off)
zsock_t *aip_lanmode_sock (aip_lanmode_t *self);
void *aip_lanmode_beacon (aip_lanmode_t *self);
//  One message waiting on the ROUTER, or NULL; *from_worker tells a remote
//  spawn worker's frame (READY, HB, REPLY, EVENT, BYE) from a request
zmsg_t *aip_lanmode_recv (aip_lanmode_t *self, bool *from_worker);
//  One beacon heard (call when aip_lanmode_beacon is readable)
void aip_lanmode_beacon_recv (aip_lanmode_t *self);
//  Forget peers silent for long
void aip_lanmode_expire (aip_lanmode_t *self);
//  Our installed AI tools, "a,b,c": the beacon is re-published if they changed
void aip_lanmode_set_tools (aip_lanmode_t *self, const char *tools);
//  True if token (len bytes) is our worker token
bool aip_lanmode_worker_token_ok (aip_lanmode_t *self, const char *token, size_t len);

const char *aip_lanmode_address (aip_lanmode_t *self);
int aip_lanmode_port (aip_lanmode_t *self);
const char *aip_lanmode_key_hex (aip_lanmode_t *self);

//  daemon status's "lan" map: address, port, public_key, worker_token, peers_heard
void aip_lanmode_pack_status (aip_lanmode_t *self, aip_pack_t *pk);
//  lan.peers' data {lan, peers: [...]}; self may be NULL (LAN mode off)
void aip_lanmode_pack_peers (aip_lanmode_t *self, aip_pack_t *pk);

void aip_lanmode_test (bool verbose);

#endif
