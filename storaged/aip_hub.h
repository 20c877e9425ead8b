/*  aip_hub.h — the LAN hub's operations (lan.info, lan.join, lan.post, and
    lan.read for the lan.fetch relayd holds),
    run by storaged inside its request's savepoint, and what aip_storage.c
    lends them. */
#ifndef AIP_HUB_H
#define AIP_HUB_H

#include "aip_proto.h"
#include "aip_roomkey.h"

//  The storage actor (aip_storage.c); a hub handler only borrows it
typedef struct aip_store_s aip_store_t;

//  What the hub reads of a room row (the token and the key stay in storaged)
typedef struct {
    char id [AIP_MAX_ID + 1];           //  room id
    char name [AIP_MAX_NAME + 1];       //  display name
    char created_at [AIP_MAX_TIME + 1]; //  creation time
    char mode [16];                     //  local, public or lan
    bool relay_url;                     //  has a relay or hub url (joined, not hubbed)
    char token [AIP_MAX_NAME + 1];      //  join token ("" when none or too long)
    char key [AIP_ROOMKEY_MAX];         //  stored room key ("" when not encrypted)
    bool encrypted;                     //  the room has a key
} aip_store_room_t;

//  The reply data being built for the current request
aip_pack_t *aip_store_reply (aip_store_t *self);
//  Set the request's error; returns -1
int aip_store_fail (aip_store_t *self, const char *code, const char *fmt, ...);
//  Read room id (len bytes): 0 with *room filled, 1 when there is none
int aip_store_room (aip_store_t *self, const char *id, size_t len, aip_store_room_t *room);
//  The LAN member claim of peer_id (member.claim); -1 with the error set
int aip_store_claim (aip_store_t *self, const char *room_id, const char *peer_id,
                     const char *signature);
//  Run a store operation's handler on req, packing into the reply
int aip_store_run (aip_store_t *self, const aip_request_t *req);

//  The hub's handlers (storaged's handler table)
int aip_hub_info (aip_store_t *self, const aip_request_t *req);
int aip_hub_join (aip_store_t *self, const aip_request_t *req);
int aip_hub_post (aip_store_t *self, const aip_request_t *req);
int aip_hub_read (aip_store_t *self, const aip_request_t *req);

#endif
