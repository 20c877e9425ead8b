/*  aip_relay_hub.c — the lan.* operations this machine answers for the
    LAN rooms it hubs (info, join, post, and lan.fetch held until something
    new is committed). */
#include "aip_relay_int.h"

//  A lan.fetch held by this hub until something new comes
typedef struct {
    uint64_t tag;                       //  the broker's tag
    uint64_t request_id;                //  the remote client's request id
    char room_id [AIP_MAX_ID + 1];
    int64_t after;                      //  its cursor
    int64_t limit;                      //  page size
    int64_t deadline;                   //  answer (empty) by then
} s_hubwait_t;

static void
s_hubwait_free (void **item)
{
    free (*item);
    *item = NULL;
}

//  The room must be a LAN room this machine hubs, and (need_token) the
//  caller must know its token. 0 with its row in rep, or -1 once answered.
static int
s_hub_room (aip_relayd_t *self, uint64_t tag, const aip_request_t *req, bool need_token,
            aip_reply_t *rep)
{
    char rid [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "room_id", rid, sizeof rid, "");
    uint64_t id = aip_relay_store_begin (self, AIP_OP_ROOM_GET, 1);
    aip_pack_kstr (self->pk, "id", rid);
    if (aip_relay_store_call (self, id, rep)) {
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        return -1;
    }
    char mode [16], token [AIP_MAX_NAME + 1], given [AIP_MAX_NAME + 1];
    bool hub = rep->ok && aip_obj_get_str (rep->data, "mode", mode, sizeof mode, NULL)
            && streq (mode, "lan") && !aip_obj_is_str (aip_obj_get (rep->data, "relay_url"));
    if (!hub) {
        aip_reply_free (rep);
        char message [200];
        snprintf (message, sizeof message, "room %s is not a LAN room of this machine", rid);
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_NOT_FOUND, message);
        return -1;
    }
    if (need_token
    &&  (!aip_obj_get_str (rep->data, "token", token, sizeof token, NULL)
         || !aip_obj_get_str (req->args, "token", given, sizeof given, NULL)
         || aip_crypto_compare_str (token, given) != 0)) {
        aip_reply_free (rep);
        zsys_warning ("relay: room %s: a LAN request with a wrong token refused", rid);
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_INVALID, "Invalid join token");
        return -1;
    }
    return 0;
}

//  {id, name, created_at, encrypted} of a room row
static json_t *
s_hub_room_json (const aip_obj_t *row)
{
    char id [AIP_MAX_ID + 1], name [AIP_MAX_NAME + 1], created [AIP_MAX_TIME + 1];
    return json_pack ("{s:s, s:s, s:s, s:b}",
                      "id", aip_obj_get_str (row, "id", id, sizeof id, ""),
                      "name", aip_obj_get_str (row, "name", name, sizeof name, ""),
                      "created_at", aip_obj_get_str (row, "created_at", created, sizeof created, ""),
                      "encrypted", aip_obj_get_bool (row, "encrypted", false));
}

//  An aip1 room's public key parameters (never its key) into a lan.info
//  answer: a member joining with the room id, token and password needs them
static void
s_hub_info_cipher (aip_relayd_t *self, const char *room_id, json_t *info)
{
    if (!room_id || !json_is_true (json_object_get (info, "encrypted")))
        return;
    uint64_t id = aip_relay_store_begin (self, AIP_OP_ROOM_GET, 2);
    aip_pack_kstr (self->pk, "id", room_id);
    aip_pack_kbool (self->pk, "with_key", true);
    aip_reply_t rep;
    if (aip_relay_store_call (self, id, &rep))
        return;
    char key [AIP_ROOMKEY_MAX] = "";
    const char *kdf = rep.ok && aip_obj_get_str (rep.data, "key", key, sizeof key, NULL)
                    ? aip_roomkey_kdf (key) : NULL;
    if (kdf) {
        json_object_set_new (info, "cipher", json_string ("aip1"));
        json_object_set_new (info, "kdf", json_string (kdf));
    }
    sodium_memzero (key, sizeof key);
    aip_reply_free (&rep);
}

void
aip_relay_hub_info (aip_relayd_t *self, uint64_t tag, const aip_request_t *req)
{
    aip_reply_t rep;
    if (s_hub_room (self, tag, req, false, &rep))
        return;
    json_t *room = s_hub_room_json (rep.data);
    json_t *data = json_pack ("{s:O, s:O, s:O, s:b, s:b}", "room_id", json_object_get (room, "id"),
                              "name", json_object_get (room, "name"),
                              "created_at", json_object_get (room, "created_at"),
                              "encrypted", json_is_true (json_object_get (room, "encrypted")),
                              "has_token", true);
    s_hub_info_cipher (self, json_string_value (json_object_get (room, "id")), data);
    aip_relay_reply_json (self, tag, req->id, data);
    json_decref (data);
    json_decref (room);
    aip_reply_free (&rep);
}

//  Forward a request to storaged with the args packed by the caller after
//  aip_relay_store_begin; answer with its data (or its error)
static void
s_hub_forward (aip_relayd_t *self, uint64_t tag, uint64_t request_id, uint64_t store_id,
               json_t *extra)
{
    aip_reply_t rep;
    if (aip_relay_store_call (self, store_id, &rep)) {
        aip_relay_reply_error (self, tag, request_id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        json_decref (extra);
        return;
    }
    if (!rep.ok)
        aip_relay_reply_error (self, tag, request_id, rep.code, rep.message);
    else {
        json_t *data = aip_json_from_obj (rep.data);
        if (extra && json_is_object (data))
            json_object_update (data, extra);
        aip_relay_reply_json (self, tag, request_id, data);
        json_decref (data);
    }
    json_decref (extra);
    aip_reply_free (&rep);
}

//  The peer of a LAN request must be who it was when it first joined (its
//  signature), and not one of the hub's own members. 0, or -1 once answered.
static int
s_hub_claim (aip_relayd_t *self, uint64_t tag, const aip_request_t *req, const aip_obj_t *peer)
{
    uint64_t id = aip_relay_store_begin (self, AIP_OP_MEMBER_CLAIM, 3);
    aip_pack_key (self->pk, "room_id");
    aip_pack_obj (self->pk, aip_req_arg (req, "room_id"));
    aip_pack_key (self->pk, "peer_id");
    aip_pack_obj (self->pk, aip_obj_get (peer, "id"));
    aip_pack_key (self->pk, "signature");
    aip_pack_obj (self->pk, aip_req_arg (req, "peer_signature"));
    aip_reply_t rep;
    if (aip_relay_store_call (self, id, &rep)) {
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        return -1;
    }
    int rc = 0;
    if (!rep.ok) {
        char rid [AIP_MAX_ID + 1];
        zsys_warning ("relay: room %s: a LAN request refused: %s",
                      aip_obj_get_str (req->args, "room_id", rid, sizeof rid, "?"), rep.message);
        aip_relay_reply_error (self, tag, req->id, rep.code, rep.message);
        rc = -1;
    }
    aip_reply_free (&rep);
    return rc;
}

void
aip_relay_hub_join (aip_relayd_t *self, uint64_t tag, const aip_request_t *req)
{
    aip_reply_t rep;
    if (s_hub_room (self, tag, req, true, &rep))
        return;
    if (s_hub_claim (self, tag, req, aip_req_arg (req, "peer"))) {
        aip_reply_free (&rep);
        return;
    }
    json_t *extra = json_pack ("{s:o}", "room", s_hub_room_json (rep.data));
    aip_reply_free (&rep);
    uint64_t id = aip_relay_store_begin (self, AIP_OP_ROOM_JOIN, 2);
    aip_pack_key (self->pk, "room_id");
    aip_pack_obj (self->pk, aip_req_arg (req, "room_id"));
    aip_pack_key (self->pk, "peer");
    aip_pack_obj (self->pk, aip_req_arg (req, "peer"));
    s_hub_forward (self, tag, req->id, id, extra);
}

void
aip_relay_hub_post (aip_relayd_t *self, uint64_t tag, const aip_request_t *req)
{
    aip_reply_t rep;
    if (s_hub_room (self, tag, req, true, &rep))
        return;
    aip_reply_free (&rep);
    const aip_obj_t *m = aip_req_arg (req, "message");
    if (s_hub_claim (self, tag, req, aip_obj_get (m, "peer")))
        return;
    uint64_t id = aip_relay_store_begin (self, AIP_OP_MSG_SEND, 7);
    aip_pack_key (self->pk, "room_id");
    aip_pack_obj (self->pk, aip_req_arg (req, "room_id"));
    const char *keys [] = { "id", "content", "created_at", "peer" };
    for (size_t i = 0; i < 4; i++) {
        aip_pack_key (self->pk, keys [i]);
        aip_pack_obj (self->pk, aip_obj_get (m, keys [i]));
    }
    char type [16];
    aip_pack_kstr (self->pk, "type", aip_obj_get_str (m, "type", type, sizeof type, "message"));
    aip_pack_kbool (self->pk, "remote", true);
    s_hub_forward (self, tag, req->id, id, NULL);
}

//  Messages of a room after seq, or none; -1 if storaged failed
static int
s_hub_messages (aip_relayd_t *self, const char *room_id, int64_t after, int64_t limit,
                json_t **messages)
{
    uint64_t id = aip_relay_store_begin (self, AIP_OP_MSG_LIST, 3);
    aip_pack_kstr (self->pk, "room_id", room_id);
    aip_pack_kint (self->pk, "after_seq", after);
    aip_pack_kint (self->pk, "limit", limit);
    aip_reply_t rep;
    if (aip_relay_store_call (self, id, &rep))
        return -1;
    *messages = rep.ok ? aip_json_from_obj (aip_obj_get (rep.data, "messages")) : NULL;
    aip_reply_free (&rep);
    if (!json_is_array (*messages)) {
        json_decref (*messages);
        *messages = NULL;
        return -1;
    }
    return 0;
}

//  Answer a fetch with messages (empty: the wait ran out)
static void
s_hub_fetch_answer (aip_relayd_t *self, uint64_t tag, uint64_t request_id, json_t *messages,
                    int64_t after)
{
    size_t count = json_array_size (messages);
    json_t *last = count ? json_object_get (json_array_get (messages, count - 1), "seq") : NULL;
    json_t *data = json_pack ("{s:o, s:I}", "messages", messages ? messages : json_array (),
                              "seq", (json_int_t) (json_is_integer (last)
                                                   ? json_integer_value (last) : after));
    aip_relay_reply_json (self, tag, request_id, data);
    json_decref (data);
}

void
aip_relay_hub_fetch (aip_relayd_t *self, uint64_t tag, const aip_request_t *req)
{
    aip_reply_t rep;
    if (s_hub_room (self, tag, req, true, &rep))
        return;
    aip_reply_free (&rep);
    char rid [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "room_id", rid, sizeof rid, "");
    int64_t after = aip_obj_get_int (req->args, "after", 0);
    int64_t limit = aip_obj_get_int (req->args, "limit", AIP_LAN_PAGE);
    int64_t wait_ms = aip_obj_get_int (req->args, "wait_ms", 0);
    json_t *messages;
    if (s_hub_messages (self, rid, after, limit < 1 ? 1 : limit, &messages)) {
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        return;
    }
    if (json_array_size (messages) || wait_ms <= 0) {
        s_hub_fetch_answer (self, tag, req->id, messages, after);
        return;
    }
    json_decref (messages);
    if (zlistx_size (self->hub_waiters) >= HUB_MAX_HELD) {
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE, "this hub holds too many "
                       "waiting fetches: poll again later");
        return;
    }
    //  Nothing new: hold it until a message comes (push) or wait_ms passes
    s_hubwait_t *w = (s_hubwait_t *) zmalloc (sizeof (s_hubwait_t));
    w->tag = tag;
    w->request_id = req->id;
    snprintf (w->room_id, sizeof w->room_id, "%s", rid);
    w->after = after;
    w->limit = limit < 1 ? 1 : limit;
    w->deadline = aip_clock_ms () + wait_ms;
    zlistx_add_end (self->hub_waiters, w);
}

//  A message was committed in room_id: answer the fetches held for it
void
aip_relay_hub_wake (aip_relayd_t *self, const char *room_id)
{
    s_hubwait_t *w = (s_hubwait_t *) zlistx_first (self->hub_waiters);
    while (w) {
        json_t *messages;
        if (streq (w->room_id, room_id)
        &&  s_hub_messages (self, w->room_id, w->after, w->limit, &messages) == 0) {
            if (json_array_size (messages)) {
                s_hub_fetch_answer (self, w->tag, w->request_id, messages, w->after);
                zlistx_delete (self->hub_waiters, zlistx_cursor (self->hub_waiters));
                w = (s_hubwait_t *) zlistx_first (self->hub_waiters);
                continue;
            }
            json_decref (messages);
        }
        w = (s_hubwait_t *) zlistx_next (self->hub_waiters);
    }
}

void
aip_relay_hub_expire (aip_relayd_t *self)
{
    int64_t now = aip_clock_ms ();
    s_hubwait_t *w = (s_hubwait_t *) zlistx_first (self->hub_waiters);
    while (w) {
        if (now >= w->deadline) {
            s_hub_fetch_answer (self, w->tag, w->request_id, NULL, w->after);
            zlistx_delete (self->hub_waiters, zlistx_cursor (self->hub_waiters));
            w = (s_hubwait_t *) zlistx_first (self->hub_waiters);
            continue;
        }
        w = (s_hubwait_t *) zlistx_next (self->hub_waiters);
    }
}

void
aip_relay_hub_start (aip_relayd_t *self)
{
    self->hub_waiters = zlistx_new ();
    zlistx_set_destructor (self->hub_waiters, s_hubwait_free);
}

void
aip_relay_hub_stop (aip_relayd_t *self)
{
    zlistx_destroy (&self->hub_waiters);
}
