/*  aip_hub.c — the LAN hub's operations, run by storaged for the LAN rooms
    this machine hubs: lan.info, lan.join and lan.post. The token check, the
    peer's claim and the insert happen in the request's one savepoint (one
    round trip from the broker), and the room's token never leaves
    storaged. relayd holds the lan.fetch and reads its page with lan.read:
    the token check and the messages after the cursor, in one round trip. */
#include "aip_hub.h"
#include "aip_crypto.h"
#include "aip_util.h"

#include <czmq.h>
#include <sodium.h>

//  The room of the request must be a LAN room this machine hubs and (with
//  need_token) the caller must know its token. 0, or -1 with the error set.
static int
s_hub_room (aip_store_t *self, const aip_request_t *req, bool need_token, aip_store_room_t *room)
{
    size_t len;
    const char *rid = aip_obj_str (aip_req_arg (req, "room_id"), &len);
    if (!rid)
        rid = "";
    if (aip_store_room (self, rid, len, room) != 0
    ||  !streq (room->mode, "lan") || room->relay_url) {
        sodium_memzero (room, sizeof *room);
        return aip_store_fail (self, AIP_ERR_NOT_FOUND,
                               "room %.*s is not a LAN room of this machine", (int) len, rid);
    }
    char given [AIP_MAX_NAME + 1];
    if (need_token
    &&  (!*room->token
         || !aip_obj_get_str (req->args, "token", given, sizeof given, NULL)
         || aip_crypto_compare_str (room->token, given) != 0)) {
        zsys_warning ("hub: room %s: a LAN request with a wrong token refused", room->id);
        sodium_memzero (room, sizeof *room);
        return aip_store_fail (self, AIP_ERR_INVALID, "Invalid join token");
    }
    sodium_memzero (room->token, sizeof room->token);
    return 0;
}

//  The peer of a LAN request must be who it was when it first joined (its
//  signature), and not one of the hub's own members
static int
s_hub_claim (aip_store_t *self, const aip_request_t *req, const aip_obj_t *peer)
{
    char rid [AIP_MAX_ID + 1], peer_id [AIP_MAX_ID + 1], signature [129];
    aip_obj_get_str (req->args, "room_id", rid, sizeof rid, "");
    aip_obj_get_str (peer, "id", peer_id, sizeof peer_id, "");
    aip_obj_get_str (req->args, "peer_signature", signature, sizeof signature, "");
    return aip_store_claim (self, rid, peer_id, signature);
}

//  {id, name, created_at, encrypted} of a room
static void
s_hub_pack_room (aip_pack_t *pk, const aip_store_room_t *room)
{
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "id", room->id);
    aip_pack_kstr (pk, "name", room->name);
    aip_pack_kstr (pk, "created_at", room->created_at);
    aip_pack_kbool (pk, "encrypted", room->encrypted);
}

//  lan.info: what a joining member needs to know of the room (an aip1
//  room's key parameters, never its key)
int
aip_hub_info (aip_store_t *self, const aip_request_t *req)
{
    aip_store_room_t room;
    if (s_hub_room (self, req, false, &room))
        return -1;
    const char *kdf = room.encrypted && *room.key ? aip_roomkey_kdf (room.key) : NULL;
    aip_pack_t *pk = aip_store_reply (self);
    aip_pack_map_begin (pk);
    aip_pack_kstr (pk, "room_id", room.id);
    aip_pack_kstr (pk, "name", room.name);
    aip_pack_kstr (pk, "created_at", room.created_at);
    aip_pack_kbool (pk, "encrypted", room.encrypted);
    aip_pack_kbool (pk, "has_token", true);
    if (kdf) {
        aip_pack_kstr (pk, "cipher", "aip1");
        aip_pack_kstr (pk, "kdf", kdf);
    }
    aip_pack_map_end (pk);
    sodium_memzero (&room, sizeof room);
    return 0;
}

//  Run store operation op on the args map packed into pk (a request made
//  here, validated as any other), packing into the reply
static int
s_hub_run (aip_store_t *self, aip_pack_t *pk)
{
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_request_t inner;
    uint64_t id;
    char err [320];
    if (aip_request_decode (data, size, &inner, &id, err, sizeof err))
        return aip_store_fail (self, AIP_ERR_INVALID, "%s", err);
    int rc = aip_store_run (self, &inner);
    aip_request_free (&inner);
    return rc;
}

//  lan.join: token, claim, then room.join's membership and announcement,
//  answered with {room_id, peer_id, joined, new_member, room}
int
aip_hub_join (aip_store_t *self, const aip_request_t *req)
{
    aip_store_room_t room;
    if (s_hub_room (self, req, true, &room))
        return -1;
    const aip_obj_t *peer = aip_req_arg (req, "peer");
    if (s_hub_claim (self, req, peer))
        return -1;
    aip_pack_t *pk = aip_pack_new ();
    aip_request_begin (pk, 0, AIP_OP_ROOM_JOIN, 2);
    aip_pack_kstr (pk, "room_id", room.id);
    aip_pack_key (pk, "peer");
    aip_pack_obj (pk, peer);
    //  room.join's reply gets the room as one more key
    aip_pack_t *reply = aip_store_reply (self);
    size_t mark;
    aip_pack_data (reply, &mark);
    int rc = s_hub_run (self, pk);
    aip_pack_destroy (&pk);
    if (rc == 0) {
        aip_pack_map_reopen (reply, mark);
        aip_pack_key (reply, "room");
        s_hub_pack_room (reply, &room);
        aip_pack_map_end (reply);
    }
    sodium_memzero (&room, sizeof room);
    return rc;
}

//  lan.post: token, claim, then msg.send's insert (its idempotency, its
//  event), answered with the stored message
int
aip_hub_post (aip_store_t *self, const aip_request_t *req)
{
    aip_store_room_t room;
    if (s_hub_room (self, req, true, &room))
        return -1;
    const aip_obj_t *m = aip_req_arg (req, "message");
    //  Only a hub announces members (the argument table says so too)
    if (aip_obj_streq (aip_obj_get (m, "type"), "system"))
        return aip_store_fail (self, AIP_ERR_INVALID, "a LAN member may not post system "
                               "messages: only the hub announces members");
    if (s_hub_claim (self, req, aip_obj_get (m, "peer")))
        return -1;
    aip_pack_t *pk = aip_pack_new ();
    aip_request_begin (pk, 0, AIP_OP_MSG_SEND, 7);
    aip_pack_kstr (pk, "room_id", room.id);
    const char *keys [] = { "id", "content", "created_at", "peer" };
    for (size_t i = 0; i < 4; i++) {
        aip_pack_key (pk, keys [i]);
        aip_pack_obj (pk, aip_obj_get (m, keys [i]));
    }
    char type [16];
    aip_pack_kstr (pk, "type", aip_obj_get_str (m, "type", type, sizeof type, "message"));
    aip_pack_kbool (pk, "remote", true);
    sodium_memzero (&room, sizeof room);
    int rc = s_hub_run (self, pk);
    aip_pack_destroy (&pk);
    return rc;
}

//  lan.read: a lan.fetch's token check, then msg.list's messages after its
//  cursor (each with its seq)
int
aip_hub_read (aip_store_t *self, const aip_request_t *req)
{
    aip_store_room_t room;
    if (s_hub_room (self, req, true, &room))
        return -1;
    int64_t limit = aip_obj_get_int (req->args, "limit", AIP_LAN_PAGE);
    aip_pack_t *pk = aip_pack_new ();
    aip_request_begin (pk, 0, AIP_OP_MSG_LIST, 3);
    aip_pack_kstr (pk, "room_id", room.id);
    aip_pack_kint (pk, "after_seq", aip_obj_get_int (req->args, "after", 0));
    aip_pack_kint (pk, "limit", limit < 1 ? 1 : limit);
    sodium_memzero (&room, sizeof room);
    int rc = s_hub_run (self, pk);
    aip_pack_destroy (&pk);
    return rc;
}
