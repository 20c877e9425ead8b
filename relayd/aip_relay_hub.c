/*  aip_relay_hub.c — lan.fetch for the LAN rooms this machine hubs, held
    until something new is committed. lan.info, lan.join and lan.post are
    store operations (storaged/aip_hub.c). */
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
