/*  aip_relay.c — relay-sync actor: the loop, the rooms, the outbox and the
    relay.* operations (see aip_relay.h). How a room is joined, sent to and
    read from is its transport's (aip_relay_int.h). */
#include "aip_relay_int.h"
#include "aip_event.h"

#include <sodium.h>

//  The transports, in the order they are asked to claim a URL (the relay
//  one, last, takes every other URL)
static const aip_sync_transport_t *s_transports [] = { &aip_sync_lan, &aip_sync_http };
#define TRANSPORTS (sizeof s_transports / sizeof s_transports [0])

const aip_sync_transport_t *
aip_sync_transport_for (const char *url)
{
    for (size_t i = 0; i < TRANSPORTS; i++)
        if (s_transports [i]->claims (url))
            return s_transports [i];
    return &aip_sync_http;
}

//  ---------------------------------------------------------------------
//  Small helpers

int
aip_relay_jitter (int ms)
{
    //  ms * [0.5, 1.5): retries of many clients do not line up
    uint32_t r;
    aip_random_bytes (&r, sizeof r);
    return ms / 2 + (int) (r % (uint32_t) (ms > 0 ? ms : 1));
}

static void
s_room_free (void **item)
{
    aip_sync_room_t *r = (aip_sync_room_t *) *item;
    if (r) {
        zhashx_destroy (&r->joined);
        zhashx_destroy (&r->recent);
        zlistx_destroy (&r->join_waiters);
        free (r);
        *item = NULL;
    }
}

static void
s_outmsg_free (void **item)
{
    aip_outmsg_t *m = (aip_outmsg_t *) *item;
    if (m) {
        free (m->content);
        free (m);
        *item = NULL;
    }
}

void
aip_relay_waiter_free (void **item)
{
    aip_relay_waiter_t *w = (aip_relay_waiter_t *) *item;
    if (w) {
        json_decref (w->data);
        free (w);
        *item = NULL;
    }
}

void
aip_relay_joinreq_free (aip_joinreq_t **join_p)
{
    aip_joinreq_t *join = *join_p;
    if (join) {
        json_decref (join->peer);
        json_decref (join->info);
        free (join);
        *join_p = NULL;
    }
}

//  String member of a JSON object, or NULL
const char *
aip_relay_jstr (const json_t *o, const char *key)
{
    return json_string_value (json_object_get (o, key));
}

bool
aip_relay_time_cursor_ok (const char *mark)
{
    int64_t ms;
    return aip_time_valid (mark, strlen (mark), &ms)
        && ms <= aip_time_ms () + AIP_CURSOR_AHEAD_MAX_MS;
}

//  ---------------------------------------------------------------------
//  Replies to our own clients (through the broker)

void
aip_relay_reply_json (aip_relayd_t *self, uint64_t tag, uint64_t request_id, const json_t *data)
{
    aip_pack_reset (self->pk);
    aip_reply_ok_begin (self->pk, request_id);
    aip_json_pack (self->pk, data);
    size_t size;
    const void *bytes = aip_pack_data (self->pk, &size);
    aip_worker_reply (self->worker, tag, bytes, size);
}

void
aip_relay_reply_error (aip_relayd_t *self, uint64_t tag, uint64_t request_id, const char *code,
               const char *message)
{
    aip_pack_reset (self->pk);
    aip_reply_error (self->pk, request_id, code, message);
    size_t size;
    const void *bytes = aip_pack_data (self->pk, &size);
    aip_worker_reply (self->worker, tag, bytes, size);
}

//  ---------------------------------------------------------------------
//  storaged (synchronous: it is local and answers in about a millisecond)

aip_client_t *
aip_relay_store (aip_relayd_t *self)
{
    if (!self->store) {
        char err [512];
        self->store = aip_client_new (self->home, false, err, sizeof err);
        if (!self->store)
            zsys_warning ("relay: cannot reach storaged yet: %s", err);
        else
            aip_client_set_stop (self->store, &zsys_interrupted);
    }
    return self->store;
}

//  Send the request in self->pk and wait for its reply. 0 with rep filled
//  (check rep->ok), or -1.
int
aip_relay_store_call (aip_relayd_t *self, uint64_t id, aip_reply_t *rep)
{
    aip_client_t *store = aip_relay_store (self);
    if (!store)
        return -1;
    char err [512];
    if (aip_client_send (store, self->pk, err, sizeof err)
    ||  aip_client_recv (store, id, AIP_RELAY_STORE_TIMEOUT_MS, rep, NULL, err, sizeof err)) {
        zsys_warning ("relay: storaged: %s", err);
        //  Reconnect next time (a restarted daemon set has a new broker)
        aip_client_destroy (&self->store);
        return -1;
    }
    return 0;
}

uint64_t
aip_relay_store_begin (aip_relayd_t *self, aip_op_t op, size_t nargs)
{
    aip_client_t *store = aip_relay_store (self);
    uint64_t id = store ? aip_client_next_id (store) : 1;
    aip_pack_reset (self->pk);
    aip_request_begin (self->pk, id, op, nargs);
    return id;
}

//  ---------------------------------------------------------------------
//  Signatures: the human's own, and those of its AI peers (DESIGN.md §7)

int
aip_relay_signature (aip_relayd_t *self, const char *room_id, const char *peer_id, const char *tool,
             char sig [AIP_CRYPTO_HEX_SIZE])
{
    if (!self->identity_ok)
        return -1;
    if (streq (peer_id, self->identity.id))
        return aip_crypto_peer_signature (self->identity.secret, room_id, sig);
    if (!tool || !*tool)
        return -1;
    char secret [AIP_CRYPTO_HEX_SIZE];
    if (aip_crypto_ai_secret (self->identity.secret, tool, secret))
        return -1;
    int rc = aip_crypto_peer_signature (secret, room_id, sig);
    sodium_memzero (secret, sizeof secret);
    return rc;
}

//  ---------------------------------------------------------------------
//  HTTP

//  ---------------------------------------------------------------------
//  Rooms

static aip_sync_room_t *
s_room_add (aip_relayd_t *self, const char *id, const char *url, const char *token,
            const char *cursor)
{
    //  A relay cursor stored before they were checked ('zzzz' sorts after
    //  every time): catch up from the start (ids de-duplicate) rather than never
    if (cursor && *cursor && !aip_sync_transport_for (url)->cursor_ok (cursor)) {
        zsys_warning ("relay: room %s: stored cursor '%.40s' is not a time; catching up "
                      "from the beginning", id, cursor);
        cursor = NULL;
    }
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, id);
    if (room) {
        bool moved = !streq (room->url, url) || !streq (room->token, token);
        snprintf (room->url, sizeof room->url, "%s", url);
        snprintf (room->token, sizeof room->token, "%s", token);
        if (cursor && strcmp (cursor, room->cursor) > 0)
            snprintf (room->cursor, sizeof room->cursor, "%s", cursor);
        room->transport = aip_sync_transport_for (url);
        if (moved) {
            room->transport->forget (self, room);
            zhashx_purge (room->joined);
        }
        room->listed = true;
        return room;
    }
    if (zhashx_size (self->rooms) >= AIP_RELAY_MAX_ROOMS) {
        zsys_warning ("relay: more than %d public rooms; room %s is not synced",
                      AIP_RELAY_MAX_ROOMS, id);
        return NULL;
    }
    room = (aip_sync_room_t *) zmalloc (sizeof (aip_sync_room_t));
    snprintf (room->id, sizeof room->id, "%s", id);
    snprintf (room->url, sizeof room->url, "%s", url);
    snprintf (room->token, sizeof room->token, "%s", token);
    snprintf (room->cursor, sizeof room->cursor, "%s", cursor ? cursor : "");
    room->ws_backoff_ms = AIP_RELAY_WS_RETRY_MIN_MS;
    //  relay_ok is earned: false until the relay answered
    room->ok = false;
    room->listed = true;
    room->joined = zhashx_new ();
    zhashx_set_destructor (room->joined, NULL);
    zhashx_set_duplicator (room->joined, NULL);
    room->recent = zhashx_new ();
    zhashx_set_destructor (room->recent, NULL);
    zhashx_set_duplicator (room->recent, NULL);
    room->join_waiters = zlistx_new ();
    zlistx_set_destructor (room->join_waiters, aip_relay_waiter_free);
    room->transport = aip_sync_transport_for (url);
    zhashx_insert (self->rooms, id, room);
    zsys_info ("relay: syncing room %s with %s", id, url);
    return room;
}

//  (Re)load the public rooms from storaged; forget deleted ones
static void
s_rooms_load (aip_relayd_t *self)
{
    uint64_t id = aip_relay_store_begin (self, AIP_OP_SYNC_ROOMS, 0);
    aip_reply_t rep;
    if (aip_relay_store_call (self, id, &rep))
        return;
    if (rep.ok) {
        for (aip_sync_room_t *r = (aip_sync_room_t *) zhashx_first (self->rooms); r;
             r = (aip_sync_room_t *) zhashx_next (self->rooms))
            r->listed = false;
        const aip_obj_t *rooms = aip_obj_get (rep.data, "rooms");
        for (size_t i = 0; i < aip_obj_size (rooms); i++) {
            const aip_obj_t *r = aip_obj_at (rooms, i);
            char rid [AIP_MAX_ID + 1], url [AIP_MAX_URL + 1], token [AIP_MAX_NAME + 1];
            char cursor [AIP_MAX_TIME + 1];
            if (!aip_obj_get_str (r, "id", rid, sizeof rid, NULL)
            ||  !aip_obj_get_str (r, "relay_url", url, sizeof url, NULL)
            ||  !aip_obj_get_str (r, "token", token, sizeof token, NULL))
                continue;
            s_room_add (self, rid, url, token, aip_obj_get_str (r, "cursor", cursor,
                                                                sizeof cursor, NULL));
        }
        //  Rooms deleted locally: stop syncing them
        zlistx_t *gone = zlistx_new ();
        for (aip_sync_room_t *r = (aip_sync_room_t *) zhashx_first (self->rooms); r;
             r = (aip_sync_room_t *) zhashx_next (self->rooms))
            if (!r->listed && !r->fetching && !r->posting && zlistx_size (r->join_waiters) == 0)
                zlistx_add_end (gone, r->id);
        for (char *rid = (char *) zlistx_first (gone); rid; rid = (char *) zlistx_next (gone)) {
            zsys_info ("relay: room %s is gone; no longer synced", rid);
            aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, rid);
            room->transport->forget (self, room);
            //  Its outbox went with it (storaged deleted the rows)
            aip_outmsg_t *om = (aip_outmsg_t *) zlistx_first (self->outbox);
            while (om) {
                if (streq (om->room_id, rid) && !om->inflight) {
                    zhashx_delete (self->outbox_ids, om->id);
                    zlistx_delete (self->outbox, zlistx_cursor (self->outbox));
                    om = (aip_outmsg_t *) zlistx_first (self->outbox);
                    continue;
                }
                om = (aip_outmsg_t *) zlistx_next (self->outbox);
            }
            zhashx_delete (self->rooms, rid);
        }
        zlistx_destroy (&gone);
    }
    aip_reply_free (&rep);
}

//  Answer the relay.join requests waiting for a room's history
void
aip_relay_join_waiters_done (aip_relayd_t *self, aip_sync_room_t *room, const char *history_error)
{
    aip_relay_waiter_t *w;
    while ((w = (aip_relay_waiter_t *) zlistx_first (room->join_waiters))) {
        if (history_error)
            json_object_set_new (w->data, "history_error", json_string (history_error));
        aip_relay_reply_json (self, w->tag, w->request_id, w->data);
        zlistx_delete (room->join_waiters, zlistx_cursor (room->join_waiters));
    }
}

//  ---------------------------------------------------------------------
//  Receiving: insert remote messages into storaged

//  Pack a msg.send for one relay message; false if it is not acceptable
static bool
s_pack_remote (aip_relayd_t *self, aip_sync_room_t *room, const json_t *m, uint64_t id)
{
    const char *mid = aip_relay_jstr (m, "id");
    const char *peer_id = aip_relay_jstr (m, "peer_id");
    const char *content = aip_relay_jstr (m, "content");
    const char *created_at = aip_relay_jstr (m, "created_at");
    const char *peer_name = aip_relay_jstr (m, "peer_name");
    const char *peer_tool = aip_relay_jstr (m, "peer_tool");
    const char *type = aip_relay_jstr (m, "type");
    if (!mid || !aip_id_valid (mid, strlen (mid))
    ||  !peer_id || !aip_id_valid (peer_id, strlen (peer_id))
    ||  !content || strlen (content) > AIP_MAX_CONTENT_WIRE
    ||  !created_at || strlen (created_at) > AIP_MAX_TIME || !*created_at)
        return false;
    if (!peer_name || !*peer_name || strlen (peer_name) > AIP_MAX_NAME)
        peer_name = peer_id;
    if (peer_tool && strlen (peer_tool) > AIP_MAX_NAME)
        peer_tool = NULL;
    if (!type || (!streq (type, "message") && !streq (type, "system") && !streq (type, "invite")))
        type = "message";
    //  The relay does not say whether a peer is a human: humans use "cli"
    //  (a LAN hub does say)
    const char *peer_type = aip_relay_jstr (m, "peer_type");
    bool human = peer_type ? !streq (peer_type, "ai")
                           : !peer_tool || !*peer_tool || streq (peer_tool, "cli");
    aip_pack_reset (self->pk);
    aip_request_begin (self->pk, id, AIP_OP_MSG_SEND, 7);
    aip_pack_kstr (self->pk, "room_id", room->id);
    aip_pack_kstr (self->pk, "id", mid);
    aip_pack_kstr (self->pk, "content", content);
    aip_pack_kstr (self->pk, "type", type);
    aip_pack_kstr (self->pk, "created_at", created_at);
    aip_pack_kbool (self->pk, "remote", true);
    aip_pack_key (self->pk, "peer");
    aip_pack_map_begin (self->pk);
    aip_pack_kstr (self->pk, "id", peer_id);
    aip_pack_kstr (self->pk, "name", peer_name);
    aip_pack_kstr (self->pk, "type", human ? "human" : "ai");
    if (peer_tool && *peer_tool)
        aip_pack_kstr (self->pk, "tool", peer_tool);
    aip_pack_map_end (self->pk);
    return true;
}

//  True when storaged refused this very message (it would refuse it again):
//  only then may the cursor move past it. worker_lost, unavailable, timeout,
//  not_found (the room is not there yet) and internal are retried.
static bool
s_refused (const aip_reply_t *rep)
{
    return streq (rep->code, AIP_ERR_INVALID) || streq (rep->code, AIP_ERR_MALFORMED);
}

//  Insert an array of relay messages (pipelined); advance the cursor when
//  all of them are stored. Returns the number stored, -1 on storage failure.
int
aip_relay_ingest (aip_relayd_t *self, aip_sync_room_t *room, const json_t *messages)
{
    aip_client_t *store = aip_relay_store (self);
    if (!store)
        return -1;
    size_t count = json_array_size (messages);
    uint64_t *ids = (uint64_t *) calloc (count + 1, sizeof (uint64_t));
    char newest [AIP_MAX_TIME + 1];
    snprintf (newest, sizeof newest, "%s", room->cursor);
    char err [512];
    int stored = 0, rc = 0;
    size_t sent = 0;
    for (size_t i = 0; i < count; i++) {
        const json_t *m = json_array_get (messages, i);
        const char *mid = aip_relay_jstr (m, "id");
        //  The cursor, as the transport orders messages
        char mark [AIP_MAX_TIME + 2];
        room->transport->cursor_of (m, mark, sizeof mark);
        if (*mark && strlen (mark) <= AIP_MAX_TIME && strcmp (mark, newest) > 0)
            snprintf (newest, sizeof newest, "%s", mark);
        if (mid && (zhashx_lookup (room->recent, mid) || zhashx_lookup (self->outbox_ids, mid)))
            continue;               //  seen a moment ago (overlap), or our own (echo)
        uint64_t id = aip_client_next_id (store);
        if (!s_pack_remote (self, room, m, id)) {
            zsys_warning ("relay: room %s: skipped a malformed message from the relay (id %.64s)",
                          room->id, mid ? mid : "?");
            continue;
        }
        if (aip_client_send (store, self->pk, err, sizeof err)) {
            rc = -1;
            break;
        }
        ids [sent++] = id;
    }
    for (size_t i = 0; i < sent; i++) {
        aip_reply_t rep;
        if (aip_client_recv (store, ids [i], AIP_RELAY_STORE_TIMEOUT_MS, &rep, NULL, err,
                             sizeof err)) {
            zsys_warning ("relay: room %s: storaged: %s", room->id, err);
            aip_client_destroy (&self->store);
            rc = -1;
            break;
        }
        if (rep.ok)
            stored++;
        else
        if (s_refused (&rep))
            zsys_warning ("relay: room %s: a remote message was refused: %s", room->id,
                          rep.message);
        else {
            //  Not an answer about this message (storaged died, was away,
            //  or slow): the cursor stays, the next catch-up brings it again
            zsys_warning ("relay: room %s: a remote message was not stored (%s): %s; "
                          "will retry", room->id, rep.code, rep.message);
            rc = -1;
        }
        aip_reply_free (&rep);
    }
    free (ids);
    if (rc == 0) {
        if (zhashx_size (room->recent) > RECENT_IDS_MAX)
            zhashx_purge (room->recent);
        for (size_t i = 0; i < count; i++) {
            const char *mid = aip_relay_jstr (json_array_get (messages, i), "id");
            if (mid && aip_id_valid (mid, strlen (mid)))
                zhashx_insert (room->recent, mid, (void *) "");
        }
        if (strcmp (newest, room->cursor) > 0) {
            snprintf (room->cursor, sizeof room->cursor, "%s", newest);
            if (!room->cursor_dirty)
                room->cursor_save_at = aip_clock_ms () + CURSOR_SAVE_MS;
            room->cursor_dirty = true;
        }
    }
    return rc ? -1 : stored;
}

//  Catch up: GET /messages?since=<cursor> (the relay includes messages at
//  the cursor's own time: an overlap that ids de-duplicate)
void
aip_relay_fetch (aip_relayd_t *self, aip_sync_room_t *room)
{
    if (room->fetching) {
        room->fetch_again = true;
        return;
    }
    room->transport->fetch (self, room);
}

//  WebSocket reconnects and polling, per room
//  Save a room's cursor (the reply is not awaited: a later call skips it)
static void
s_cursor_save (aip_relayd_t *self, aip_sync_room_t *room)
{
    if (!room->cursor_dirty || !aip_relay_store (self))
        return;
    aip_relay_store_begin (self, AIP_OP_SYNC_CURSOR, 2);
    aip_pack_kstr (self->pk, "room_id", room->id);
    aip_pack_kstr (self->pk, "cursor", room->cursor);
    char err [512];
    if (aip_client_send (self->store, self->pk, err, sizeof err) == 0)
        room->cursor_dirty = false;
}

static void
s_rooms_tick (aip_relayd_t *self)
{
    int64_t now = aip_clock_ms ();
    for (aip_sync_room_t *room = (aip_sync_room_t *) zhashx_first (self->rooms); room;
         room = (aip_sync_room_t *) zhashx_next (self->rooms)) {
        if (room->cursor_dirty && now >= room->cursor_save_at)
            s_cursor_save (self, room);
        room->transport->tick (self, room, now);
    }
}

//  ---------------------------------------------------------------------
//  Sending: the outbox

//  Take message m (an outbox row, or the message an outbox event carries)
//  into the outbox. 0 when it is there (or was already), 1 when it is but
//  its room is not one we know yet, -1 when m has no id.
static int
s_outbox_add (aip_relayd_t *self, const aip_obj_t *m)
{
    char mid [AIP_MAX_ID + 1];
    if (!aip_obj_get_str (m, "id", mid, sizeof mid, NULL))
        return -1;
    if (zhashx_lookup (self->outbox_ids, mid))
        return 0;
    aip_outmsg_t *om = (aip_outmsg_t *) zmalloc (sizeof (aip_outmsg_t));
    snprintf (om->id, sizeof om->id, "%s", mid);
    aip_obj_get_str (m, "room_id", om->room_id, sizeof om->room_id, "");
    aip_obj_get_str (m, "peer_id", om->peer_id, sizeof om->peer_id, "");
    aip_obj_get_str (m, "peer_name", om->peer_name, sizeof om->peer_name, om->peer_id);
    aip_obj_get_str (m, "peer_tool", om->peer_tool, sizeof om->peer_tool, "");
    aip_obj_get_str (m, "peer_type", om->peer_type, sizeof om->peer_type, "human");
    aip_obj_get_str (m, "type", om->type, sizeof om->type, "message");
    aip_obj_get_str (m, "created_at", om->created_at, sizeof om->created_at, "");
    om->content = aip_obj_strdup (aip_obj_get (m, "content"));
    if (!om->content)
        om->content = strdup ("");
    om->backoff_ms = AIP_RELAY_RETRY_MIN_MS;
    zlistx_add_end (self->outbox, om);
    zhashx_insert (self->outbox_ids, om->id, om);
    return zhashx_lookup (self->rooms, om->room_id) ? 0 : 1;
}

//  Read the outbox: only entries newer than the last read, or (full) all
//  of it, which also finds what an earlier read missed
static void
s_outbox_load (aip_relayd_t *self, bool full)
{
    self->outbox_dirty = false;
    if (zlistx_size (self->outbox) >= AIP_RELAY_OUTBOX_BATCH)
        return;                 //  enough in hand; the rest comes as these go
    uint64_t id = aip_relay_store_begin (self, AIP_OP_OUTBOX_LIST, 2);
    aip_pack_kint (self->pk, "limit", AIP_RELAY_OUTBOX_BATCH);
    aip_pack_kint (self->pk, "after", full ? 0 : self->outbox_seq);
    aip_reply_t rep;
    if (aip_relay_store_call (self, id, &rep))
        return;
    const aip_obj_t *messages = rep.ok ? aip_obj_get (rep.data, "messages") : NULL;
    bool unknown_room = false;
    for (size_t i = 0; i < aip_obj_size (messages); i++) {
        const aip_obj_t *m = aip_obj_at (messages, i);
        int64_t seq = aip_obj_get_int (m, "seq", 0);
        if (seq > self->outbox_seq)
            self->outbox_seq = seq;
        if (s_outbox_add (self, m) == 1)
            unknown_room = true;
    }
    aip_reply_free (&rep);
    if (unknown_room)
        s_rooms_load (self);
}

//  An outbox event: the message it carries goes into the outbox as it is
//  (no read back); one that carries none, or that does not decode, has the
//  outbox read
static void
s_outbox_event (aip_relayd_t *self, zmsg_t *event)
{
    zframe_t *body = zmsg_first (event);
    aip_event_t ev;
    char err [256];
    if (!body || aip_event_decode (zframe_data (body), zframe_size (body), &ev, err, sizeof err)) {
        zsys_warning ("relay: an outbox event that does not decode (%s): reading the outbox",
                      body ? err : "no body");
        self->outbox_dirty = true;
        return;
    }
    //  As many in hand as a read would take; the rest stays in the store's
    //  outbox until these go (the relay may be down for long)
    bool room = zlistx_size (self->outbox) < AIP_RELAY_OUTBOX_BATCH;
    int added = room && ev.type == AIP_EVENT_OUTBOX && ev.data ? s_outbox_add (self, ev.data) : -1;
    aip_event_free (&ev);
    if (added == 1)
        s_rooms_load (self);        //  a room new to us: learn how it syncs
    else
    if (added == -1)
        self->outbox_dirty = true;
}

//  Answer the relay.push requests waiting for msg_id
static void
s_push_waiters_done (aip_relayd_t *self, const char *msg_id, bool delivered, bool refused,
                     const char *error)
{
    aip_relay_waiter_t *w = (aip_relay_waiter_t *) zlistx_first (self->push_waiters);
    while (w) {
        if (streq (w->msg_id, msg_id)) {
            json_t *data = json_pack ("{s:b}", "delivered", delivered);
            if (refused)
                json_object_set_new (data, "refused", json_true ());
            if (error)
                json_object_set_new (data, "error", json_string (error));
            aip_relay_reply_json (self, w->tag, w->request_id, data);
            json_decref (data);
            zlistx_delete (self->push_waiters, zlistx_cursor (self->push_waiters));
            w = (aip_relay_waiter_t *) zlistx_first (self->push_waiters);
            continue;
        }
        w = (aip_relay_waiter_t *) zlistx_next (self->push_waiters);
    }
}

//  Remove a message from the outbox (delivered, or refused for good)
void
aip_relay_outmsg_finish (aip_relayd_t *self, aip_outmsg_t *om, bool delivered, const char *error)
{
    char mid [AIP_MAX_ID + 1];
    snprintf (mid, sizeof mid, "%s", om->id);
    //  The waiting chat first: it only needs the relay's answer
    s_push_waiters_done (self, mid, delivered, !delivered, error);
    if (zhashx_size (self->outcomes) >= OUTCOMES_MAX)
        zhashx_purge (self->outcomes);
    zhashx_update (self->outcomes, mid, strdup (delivered ? "" : error ? error : "refused"));
    //  Then the outbox, without waiting for storaged's answer (a later call
    //  skips it). If storaged missed it, a full reload brings the message
    //  back and the relay answers the re-post with its stored copy: still
    //  delivered once.
    aip_relay_store_begin (self, AIP_OP_OUTBOX_DONE, 1);
    aip_pack_kstr (self->pk, "id", mid);
    char err [512];
    if (self->store && aip_client_send (self->store, self->pk, err, sizeof err))
        zsys_warning ("relay: storaged: %s", err);
    zhashx_delete (self->outbox_ids, mid);
    void *handle = zlistx_find (self->outbox, om);
    if (handle)
        zlistx_delete (self->outbox, handle);
}

void
aip_relay_outmsg_retry_later (aip_relayd_t *self, aip_outmsg_t *om, const char *why)
{
    if (!streq (om->error, why))
        zsys_warning ("relay: message %s (room %s, peer %s) not delivered: %s; retrying",
                      om->id, om->room_id, om->peer_id, why);
    snprintf (om->error, sizeof om->error, "%s", why);
    om->inflight = false;
    om->next_at = aip_clock_ms () + aip_relay_jitter (om->backoff_ms);
    om->backoff_ms = om->backoff_ms * 2 > AIP_RELAY_RETRY_MAX_MS ? AIP_RELAY_RETRY_MAX_MS
                                                                 : om->backoff_ms * 2;
}

//  The relay is back: what waited for it goes now, backoff forgotten
void
aip_relay_outbox_retry_now (aip_relayd_t *self, const char *room_id)
{
    for (aip_outmsg_t *om = (aip_outmsg_t *) zlistx_first (self->outbox); om;
         om = (aip_outmsg_t *) zlistx_next (self->outbox))
        if (streq (om->room_id, room_id)) {
            om->next_at = 0;
            om->backoff_ms = AIP_RELAY_RETRY_MIN_MS;
        }
}

static void
s_deliver (aip_relayd_t *self, aip_sync_room_t *room, aip_outmsg_t *om)
{
    room->transport->deliver (self, room, om);
}

//  Post what is due: in order, one message at a time per room
static void
s_outbox_flush (aip_relayd_t *self)
{
    int64_t now = aip_clock_ms ();
    zhashx_t *seen = zhashx_new ();             //  rooms whose head we passed
    zhashx_set_destructor (seen, NULL);
    zhashx_set_duplicator (seen, NULL);
    zlistx_t *due = zlistx_new ();              //  borrowed aip_outmsg_t
    for (aip_outmsg_t *om = (aip_outmsg_t *) zlistx_first (self->outbox); om;
         om = (aip_outmsg_t *) zlistx_next (self->outbox)) {
        if (zhashx_lookup (seen, om->room_id))
            continue;
        zhashx_insert (seen, om->room_id, (void *) "");
        aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, om->room_id);
        if (room && !room->posting && !om->inflight && now >= om->next_at)
            zlistx_add_end (due, om);
    }
    for (aip_outmsg_t *om = (aip_outmsg_t *) zlistx_first (due); om;
         om = (aip_outmsg_t *) zlistx_next (due)) {
        if (self->inflight >= AIP_RELAY_MAX_INFLIGHT)
            break;
        aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, om->room_id);
        s_deliver (self, room, om);
    }
    zlistx_destroy (&due);
    zhashx_destroy (&seen);
}

//  ---------------------------------------------------------------------
//  relay.join: probe, join, create the local room, pull the history

void
aip_relay_join_fail (aip_relayd_t *self, aip_joinreq_t *join, const char *fmt, ...)
{
    char message [600];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    aip_relay_reply_error (self, join->tag, join->request_id, AIP_ERR_INVALID, message);
}

//  A room joined anew after it was deleted here (a join refused for a wrong
//  password, room delete) may still be in our table with the cursor and
//  the ids of what was deleted: the new room must pull its whole history
void
aip_relay_room_forget_deleted (aip_relayd_t *self, const char *room_id)
{
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, room_id);
    if (!room)
        return;
    uint64_t id = aip_relay_store_begin (self, AIP_OP_ROOM_GET, 1);
    aip_pack_kstr (self->pk, "id", room_id);
    aip_reply_t rep;
    if (aip_relay_store_call (self, id, &rep))
        return;
    bool gone = !rep.ok && streq (rep.code, AIP_ERR_NOT_FOUND);
    aip_reply_free (&rep);
    if (!gone)
        return;
    zsys_info ("relay: room %s was deleted here: its next sync starts from the beginning",
               room_id);
    room->cursor [0] = 0;
    room->cursor_dirty = false;
    zhashx_purge (room->recent);
    //  A catch-up in flight asked from the old cursor: its answer is dropped
    if (room->fetching)
        room->transport->fetch_forget (room);
}

//  The hub (relay or LAN) let us in: create the local room (relay.join with
//  a name), start syncing it, answer once its history is in. Frees join.
void
aip_relay_join_accepted (aip_relayd_t *self, aip_joinreq_t *join)
{
    json_t *data = json_object ();
    if (join->create)
        aip_relay_room_forget_deleted (self, join->room_id);
    if (join->create) {
        //  Only now that the relay accepted us does the room exist here
        uint64_t id = aip_relay_store_begin (self, AIP_OP_ROOM_CREATE, *join->key ? 7 : 6);
        aip_pack_kstr (self->pk, "id", join->room_id);
        if (*join->key)
            aip_pack_kstr (self->pk, "key", join->key);
        aip_pack_kstr (self->pk, "name", *join->name ? join->name : join->room_id);
        aip_pack_kstr (self->pk, "mode", join->transport->mode);
        aip_pack_kstr (self->pk, "relay_url", join->url);
        aip_pack_kstr (self->pk, "token", join->token);
        aip_pack_key (self->pk, "peer");
        aip_json_pack (self->pk, join->peer);
        aip_reply_t rep;
        if (aip_relay_store_call (self, id, &rep)) {
            aip_relay_join_fail (self, join, "joined on the %s, but storaged did not answer: the "
                         "room was not created here; try again", join->transport->peer);
            json_decref (data);
            aip_relay_joinreq_free (&join);
            return;
        }
        if (!rep.ok) {
            aip_relay_join_fail (self, join, "joined on the %s, but the room could not be saved: %s",
                         join->transport->peer, rep.message);
            aip_reply_free (&rep);
            json_decref (data);
            aip_relay_joinreq_free (&join);
            return;
        }
        json_object_set_new (data, "room", aip_json_from_obj (rep.data));
        aip_reply_free (&rep);
    }
    json_object_set_new (data, "joined", json_string (join->room_id));
    json_object_set_new (data, "relay", json_string (join->url));
    json_object_set (data, "remote_info", join->info ? join->info : json_null ());
    aip_sync_room_t *room = s_room_add (self, join->room_id, join->url, join->token, NULL);
    if (!room) {
        aip_relay_reply_json (self, join->tag, join->request_id, data);
        json_decref (data);
        aip_relay_joinreq_free (&join);
        return;
    }
    zhashx_insert (room->joined, aip_relay_jstr (join->peer, "id"), (void *) "");
    //  Answer once the history is in (or after a bounded wait)
    aip_relay_waiter_t *w = (aip_relay_waiter_t *) zmalloc (sizeof (aip_relay_waiter_t));
    w->tag = join->tag;
    w->request_id = join->request_id;
    w->deadline = aip_clock_ms () + JOIN_HISTORY_WAIT_MS;
    w->data = data;
    zlistx_add_end (room->join_waiters, w);
    aip_relay_fetch (self, room);
    room->transport->wake (self, room);
    aip_relay_joinreq_free (&join);
}

static void
s_op_join (aip_relayd_t *self, uint64_t tag, const aip_request_t *req)
{
    aip_joinreq_t *join = (aip_joinreq_t *) zmalloc (sizeof (aip_joinreq_t));
    join->tag = tag;
    join->request_id = req->id;
    char err [300];
    char url [AIP_MAX_URL + 1];
    aip_obj_get_str (req->args, "room_id", join->room_id, sizeof join->room_id, "");
    aip_obj_get_str (req->args, "relay_url", url, sizeof url, "");
    aip_obj_get_str (req->args, "token", join->token, sizeof join->token, "");
    aip_obj_get_str (req->args, "key", join->key, sizeof join->key, "");
    join->create = aip_obj_get_str (req->args, "name", join->name, sizeof join->name, NULL) != NULL;
    join->peer = aip_json_from_obj (aip_req_arg (req, "peer"));
    join->transport = aip_sync_transport_for (url);
    join->info_only = aip_obj_get_bool (req->args, "info_only", false);
    if (join->transport->check_url (url, join->url, sizeof join->url, err, sizeof err)) {
        aip_relay_join_fail (self, join, "%s", err);
        aip_relay_joinreq_free (&join);
        return;
    }
    if (!aip_token_valid (join->token)) {
        aip_relay_join_fail (self, join, "the room token is empty or has characters a token cannot have");
        aip_relay_joinreq_free (&join);
        return;
    }
    join->transport->join (self, join, aip_obj_get_bool (req->args, "probe", false)
                                       || join->info_only);
}

//  ---------------------------------------------------------------------
//  LAN rooms, joiner side: a CURVE DEALER per hub (the hub's key pinned
//  from the connection string), requests matched to answers by id, each
//  with a deadline. The hub pushes by holding a lan.fetch until there is
//  something new; every reconnect catches up from the cursor (the hub's
//  seq) and retries what was in flight (ids make that harmless).

//  ---------------------------------------------------------------------
//  LAN rooms, hub side: lan.fetch from other machines, held until something
//  new is committed (lan.info, lan.join and lan.post are storaged's, in
//  storaged/aip_hub.c; the broker lets only lan.* through from its LAN socket)

//  ---------------------------------------------------------------------
//  relay.push and relay.status

static void
s_op_push (aip_relayd_t *self, uint64_t tag, const aip_request_t *req)
{
    char mid [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "id", mid, sizeof mid, "");
    aip_outmsg_t *om = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, mid);
    if (!om) {
        s_outbox_load (self, false);
        om = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, mid);
    }
    if (!om) {
        //  No longer in the outbox: it left it a moment ago (delivered or
        //  refused), or before this relayd started (delivered)
        const char *error = (const char *) zhashx_lookup (self->outcomes, mid);
        json_t *data = json_pack ("{s:b}", "delivered", !error || !*error);
        if (error && *error) {
            json_object_set_new (data, "refused", json_true ());
            json_object_set_new (data, "error", json_string (error));
        }
        aip_relay_reply_json (self, tag, req->id, data);
        json_decref (data);
        return;
    }
    //  Someone is waiting: try now, whatever the backoff said
    if (!om->inflight)
        om->next_at = 0;
    int64_t wait_ms = aip_obj_get_int (req->args, "wait_ms", AIP_RELAY_WAIT_MS);
    aip_relay_waiter_t *w = (aip_relay_waiter_t *) zmalloc (sizeof (aip_relay_waiter_t));
    w->tag = tag;
    w->request_id = req->id;
    snprintf (w->msg_id, sizeof w->msg_id, "%s", mid);
    w->deadline = aip_clock_ms () + wait_ms;
    zlistx_add_end (self->push_waiters, w);
    s_outbox_flush (self);
}

static void
s_op_status (aip_relayd_t *self, uint64_t tag, const aip_request_t *req)
{
    char rid [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "id", rid, sizeof rid, "");
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, rid);
    if (!room) {
        s_rooms_load (self);
        room = (aip_sync_room_t *) zhashx_lookup (self->rooms, rid);
    }
    if (!room) {
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_NOT_FOUND, "not a public room");
        return;
    }
    size_t queued = 0;
    for (aip_outmsg_t *om = (aip_outmsg_t *) zlistx_first (self->outbox); om;
         om = (aip_outmsg_t *) zlistx_next (self->outbox))
        if (streq (om->room_id, rid))
            queued++;
    json_t *data = json_pack ("{s:b, s:b, s:I, s:s, s:b}", "ok", room->ok, "websocket",
                              room->ws_state == WS_UP, "queued", (json_int_t) queued, "cursor",
                              room->cursor, "lan", room->transport == &aip_sync_lan);
    aip_relay_reply_json (self, tag, req->id, data);
    json_decref (data);
}

//  The relay's ops, indexed by op: each answers (now or later) by its tag
typedef void (s_op_fn) (aip_relayd_t *self, uint64_t tag, const aip_request_t *req);
static s_op_fn *const s_handlers [AIP_OP_COUNT] = {
    [AIP_OP_RELAY_JOIN]   = s_op_join,
    [AIP_OP_RELAY_PUSH]   = s_op_push,
    [AIP_OP_RELAY_STATUS] = s_op_status,
    [AIP_OP_LAN_FETCH]    = aip_relay_hub_fetch,
};

static void
s_handle_request (aip_relayd_t *self, uint64_t tag, zframe_t *body)
{
    aip_request_t req;
    uint64_t id;
    char err [320];
    if (aip_request_decode (zframe_data (body), zframe_size (body), &req, &id, err, sizeof err)) {
        char message [400];
        snprintf (message, sizeof message, "malformed request: %s", err);
        aip_relay_reply_error (self, tag, id, AIP_ERR_MALFORMED, message);
        return;
    }
    if (s_handlers [req.op])
        s_handlers [req.op] (self, tag, &req);
    else
        aip_relay_reply_error (self, tag, req.id, AIP_ERR_INVALID, "not a relay operation");
    aip_request_free (&req);
}

//  ---------------------------------------------------------------------
//  The loop

static void
s_waiters_expire (aip_relayd_t *self)
{
    int64_t now = aip_clock_ms ();
    aip_relay_waiter_t *w = (aip_relay_waiter_t *) zlistx_first (self->push_waiters);
    while (w) {
        if (now >= w->deadline) {
            aip_outmsg_t *om = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, w->msg_id);
            json_t *data = json_pack ("{s:b, s:s}", "delivered", 0, "error",
                                      om && *om->error ? om->error : "no answer from the relay yet");
            aip_relay_reply_json (self, w->tag, w->request_id, data);
            json_decref (data);
            zlistx_delete (self->push_waiters, zlistx_cursor (self->push_waiters));
            w = (aip_relay_waiter_t *) zlistx_first (self->push_waiters);
            continue;
        }
        w = (aip_relay_waiter_t *) zlistx_next (self->push_waiters);
    }
    for (aip_sync_room_t *room = (aip_sync_room_t *) zhashx_first (self->rooms); room;
         room = (aip_sync_room_t *) zhashx_next (self->rooms)) {
        aip_relay_waiter_t *jw = (aip_relay_waiter_t *) zlistx_first (room->join_waiters);
        if (jw && now >= jw->deadline)
            aip_relay_join_waiters_done (self, room, "the history is still being fetched");
    }
    for (size_t i = 0; i < TRANSPORTS; i++)
        s_transports [i]->expire (self);
    aip_relay_hub_expire (self);
}

static void
s_relay_destroy (aip_relayd_t **self_p)
{
    aip_relayd_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < TRANSPORTS; i++)
        s_transports [i]->stop (self);
    aip_relay_hub_stop (self);
    aip_worker_destroy (&self->worker);
    aip_client_destroy (&self->store);
    zsock_destroy (&self->events);
    zhashx_destroy (&self->rooms);
    zhashx_destroy (&self->outbox_ids);
    zlistx_destroy (&self->outbox);
    zlistx_destroy (&self->push_waiters);
    zhashx_destroy (&self->outcomes);
    aip_pack_destroy (&self->pk);
    sodium_memzero (&self->identity, sizeof self->identity);
    free (self);
    *self_p = NULL;
}

void
aip_relay (zsock_t *pipe, void *args)
{
    aip_relay_args_t *a = (aip_relay_args_t *) args;
    aip_relayd_t *self = (aip_relayd_t *) zmalloc (sizeof (aip_relayd_t));
    self->pipe = pipe;
    snprintf (self->home, sizeof self->home, "%s", a->home);
    self->pk = aip_pack_new ();
    self->rooms = zhashx_new ();
    zhashx_set_destructor (self->rooms, s_room_free);
    self->outbox = zlistx_new ();
    zlistx_set_destructor (self->outbox, s_outmsg_free);
    self->outbox_ids = zhashx_new ();
    zhashx_set_destructor (self->outbox_ids, NULL);
    zhashx_set_duplicator (self->outbox_ids, NULL);
    self->push_waiters = zlistx_new ();
    zlistx_set_destructor (self->push_waiters, aip_relay_waiter_free);
    self->outcomes = zhashx_new ();
    zhashx_set_destructor (self->outcomes, (zhashx_destructor_fn *) zstr_free);
    aip_relay_hub_start (self);
    char err [512];
    if (aip_identity_load (self->home, &self->identity, err, sizeof err) == 0)
        self->identity_ok = true;
    else
        zsys_error ("relay: %s: cannot sign for any peer", err);
    int started = 0;
    for (size_t i = 0; i < TRANSPORTS; i++)
        if (s_transports [i]->start (self) == 0)
            started++;
    char events [AIP_PATH_MAX];
    if (started < (int) TRANSPORTS
    ||  aip_home_endpoint (self->home, "events", events, sizeof events, err, sizeof err)) {
        zsys_error ("relay: cannot start (HTTP or WebSocket set-up failed)");
        zsock_signal (pipe, 1);
        s_relay_destroy (&self);
        return;
    }
    //  Outbox events: new local messages to deliver; a room's events:
    //  messages committed here, which wake the lan.fetch requests this
    //  machine holds as a hub
    char outbox [32];
    self->events = zsock_new_sub (events, aip_event_topic (AIP_EVENT_OUTBOX, "", outbox,
                                                           sizeof outbox));
    if (self->events)
        zsock_set_subscribe (self->events, AIP_EVENT_ROOM_PREFIX);
    self->worker = aip_worker_new (a->endpoint, AIP_SVC_RELAY, RELAY_SLOTS, "relayd");
    zsock_signal (pipe, 0);
    zsys_info ("relay: serving (identity %s)", self->identity_ok ? self->identity.id : "none");
    self->outbox_dirty = true;
    self->rescan_at = 0;

    while (!self->terminated) {
        //  The actor's sockets, then each transport's (libcurl's and the
        //  WebSocket thread's, the LAN links) in one poll
        zmq_pollitem_t items [3 + 2 * LAN_MAX_LINKS + 1 + FD_SETSIZE / 8 + 1];
        int n = 0;
        items [n++] = (zmq_pollitem_t) { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 };
        items [n++] = (zmq_pollitem_t) { zsock_resolve (aip_worker_sock (self->worker)), 0, ZMQ_POLLIN, 0 };
        items [n++] = (zmq_pollitem_t) { zsock_resolve (self->events), 0, ZMQ_POLLIN, 0 };
        long timeout = aip_worker_timeout (self->worker);
        if (timeout > TICK_MS)
            timeout = TICK_MS;
        int first [TRANSPORTS], count [TRANSPORTS];
        for (size_t t = 0; t < TRANSPORTS; t++) {
            first [t] = n;
            count [t] = s_transports [t]->poll_add (self, items + n,
                                                    (int) (sizeof items / sizeof items [0]) - n - 1,
                                                    &timeout);
            n += count [t];
        }
        //  Replies to the hub's store reads (aip_relay_hub_collect takes them)
        if (self->store && aip_client_pending (self->store))
            items [n++] = (zmq_pollitem_t) { aip_client_socket (self->store), 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (items, n, timeout);
        if (rc < 0) {
            if (zmq_errno () == EINTR && !zsys_interrupted)
                continue;
            break;
        }
        if (items [0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                self->terminated = true;
            free (command);
        }
        if (items [2].revents & ZMQ_POLLIN) {
            zmsg_t *event = zmsg_recv (self->events);
            char *topic = event ? zmsg_popstr (event) : NULL;
            if (aip_event_topic_room (topic))
                aip_relay_hub_wake (self, aip_event_topic_room (topic));
            else
                s_outbox_event (self, event);
            free (topic);
            zmsg_destroy (&event);
        }
        for (size_t t = 0; t < TRANSPORTS; t++)
            s_transports [t]->poll_done (self, items + first [t], count [t]);
        if (items [1].revents & ZMQ_POLLIN) {
            while (zsock_events (aip_worker_sock (self->worker)) & ZMQ_POLLIN) {
                uint64_t tag;
                zframe_t *body = NULL;
                int got = aip_worker_recv (self->worker, &tag, &body);
                if (got < 0)
                    break;
                if (got == 1)
                    s_handle_request (self, tag, body);
                zframe_destroy (&body);
            }
        }
        int64_t now = aip_clock_ms ();
        if (now >= self->rescan_at) {
            s_rooms_load (self);
            s_outbox_load (self, true);
            self->rescan_at = now + AIP_RELAY_RESCAN_MS;
        }
        if (self->outbox_dirty)
            s_outbox_load (self, false);
        s_rooms_tick (self);
        s_outbox_flush (self);
        s_waiters_expire (self);
        aip_worker_tick (self->worker);
    }
    for (aip_sync_room_t *room = (aip_sync_room_t *) zhashx_first (self->rooms); room;
         room = (aip_sync_room_t *) zhashx_next (self->rooms))
        s_cursor_save (self, room);
    if (self->worker)
        aip_worker_bye (self->worker);
    s_relay_destroy (&self);
}

//  ---------------------------------------------------------------------
//  Self-test: what can be tested without a relay (the system test in
//  tests/test_relay.py drives the real thing under wrangler dev)

void
aip_relay_test (bool verbose)
{
    printf (" * aip_relay: ");
    //  Every relay op has its handler, and no other op has one
    for (int op = 0; op < AIP_OP_COUNT; op++)
        assert ((s_handlers [op] != NULL) == (aip_op_service ((aip_op_t) op) == AIP_SVC_RELAY));
    //  Jitter stays within [0.5, 1.5) of the delay
    for (int i = 0; i < 1000; i++) {
        int d = aip_relay_jitter (1000);
        assert (d >= 500 && d < 1500);
    }
    //  A room's transport follows its URL
    assert (aip_sync_transport_for ("https://relay.example") == &aip_sync_http);
    assert (aip_sync_transport_for ("peer+lan://10.0.0.2:7899?key=00") == &aip_sync_lan);
    //  Relay messages: only well-formed ones become msg.send requests
    aip_relayd_t self;
    memset (&self, 0, sizeof self);
    self.pk = aip_pack_new ();
    aip_sync_room_t room;
    memset (&room, 0, sizeof room);
    snprintf (room.id, sizeof room.id, "room-000000000001");
    json_t *good = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", "ab12cd34", "peer_id",
                              "h-claude", "peer_name", "claude", "peer_tool", "claude",
                              "content", "hi", "created_at", "2026-01-01T00:00:00.000Z");
    assert (s_pack_remote (&self, &room, good, 7));
    size_t size;
    const void *data = aip_pack_data (self.pk, &size);
    aip_request_t req;
    uint64_t id;
    char err [256];
    assert (aip_request_decode (data, size, &req, &id, err, sizeof err) == 0);
    assert (req.op == AIP_OP_MSG_SEND && aip_obj_get_bool (req.args, "remote", false));
    const aip_obj_t *peer = aip_req_arg (&req, "peer");
    assert (aip_obj_streq (aip_obj_get (peer, "type"), "ai"));
    aip_request_free (&req);
    json_t *bad [] = {
        json_pack ("{s:s}", "id", "x"),
        json_pack ("{s:s, s:s, s:s, s:s}", "id", "bad id!", "peer_id", "p", "content", "c",
                   "created_at", "t"),
        json_pack ("{s:s, s:s, s:i, s:s}", "id", "a", "peer_id", "p", "content", 5,
                   "created_at", "t"),
        json_pack ("{s:s, s:s, s:s, s:s}", "id", "a", "peer_id", "../x", "content", "c",
                   "created_at", "t"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        assert (!s_pack_remote (&self, &room, bad [i], 8));
        json_decref (bad [i]);
    }
    json_decref (good);
    aip_pack_destroy (&self.pk);
    if (verbose)
        printf ("(malformed relay messages are refused) ");
    printf ("OK\n");
}
