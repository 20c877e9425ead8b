/*  aip_relay_lan.c — the LAN transport: a CURVE DEALER per hub
    (peer+lan://host:port?key=...), shared by the rooms it hubs; lan.*
    requests, and a held lan.fetch as the push channel. */
#include "aip_relay_int.h"

typedef enum { LAN_INFO, LAN_JOIN, LAN_PEER_JOIN, LAN_POST, LAN_FETCH } s_lan_kind_t;

//  A connection to a LAN hub, shared by the rooms it hubs
typedef struct {
    char url [AIP_MAX_URL + 1];         //  peer+lan://host:port?key=hex
    char endpoint [AIP_MAX_URL + 1];    //  tcp://host:port
    zsock_t *sock;                      //  DEALER, CURVE client pinned to the hub's key
    zactor_t *monitor;                  //  its connection events
    bool up;                            //  handshake done, not disconnected since
    bool lost;                          //  disconnected since the last handshake
} s_lanlink_t;

//  A request to a hub waiting for its answer
typedef struct {
    uint64_t id;                        //  request id (unique in this relayd)
    s_lan_kind_t kind;
    char link [AIP_MAX_URL + 1];        //  the hub's URL
    char room_id [AIP_MAX_ID + 1];
    char msg_id [AIP_MAX_ID + 1];       //  POST / PEER_JOIN: the outbox message
    struct _aip_joinreq_t *join;          //  INFO / JOIN: the relay.join
    int64_t deadline;                   //  give up then
} s_lanreq_t;

static s_lanlink_t *
s_lan_link (aip_relayd_t *self, const char *url)
{
    s_lanlink_t *link = (s_lanlink_t *) zhashx_lookup (self->links, url);
    if (link)
        return link;
    char endpoint [AIP_MAX_URL + 1], key_hex [AIP_LAN_KEY_HEX + 1];
    uint8_t key [32];
    if (aip_lan_url_parse (url, endpoint, sizeof endpoint, key_hex)
    ||  aip_lan_key_from_hex (key_hex, key)) {
        zsys_warning ("relay: '%.200s' is not a LAN hub URL", url);
        return NULL;
    }
    if (zhashx_size (self->links) >= LAN_MAX_LINKS) {
        zsys_warning ("relay: more than %d LAN hubs; %s is not synced", LAN_MAX_LINKS, url);
        return NULL;
    }
    //  One client key pair per run: the hub authorises by room token
    if (!self->lan_cert && !(self->lan_cert = zcert_new ()))
        return NULL;
    link = (s_lanlink_t *) zmalloc (sizeof (s_lanlink_t));
    snprintf (link->url, sizeof link->url, "%s", url);
    snprintf (link->endpoint, sizeof link->endpoint, "%s", endpoint);
    link->sock = zsock_new (ZMQ_DEALER);
    assert (link->sock);
    zsock_set_linger (link->sock, 0);
    zsock_set_maxmsgsize (link->sock, AIP_LAN_MAX_REPLY);
    zcert_apply (self->lan_cert, link->sock);
    zsock_set_curve_serverkey_bin (link->sock, key);
    zsock_set_reconnect_ivl (link->sock, 250);
    zsock_set_reconnect_ivl_max (link->sock, 5000);
    //  ZMTP heartbeats notice a hub that vanished without closing
    zsock_set_heartbeat_ivl (link->sock, 2000);
    zsock_set_heartbeat_timeout (link->sock, 6000);
    link->monitor = zactor_new (zmonitor, link->sock);
    zstr_sendx (link->monitor, "LISTEN", "HANDSHAKE_SUCCEEDED", "DISCONNECTED", NULL);
    zstr_sendx (link->monitor, "START", NULL);
    zsock_wait (link->monitor);
    if (zsock_connect (link->sock, "%s", endpoint))
        zsys_warning ("relay: cannot connect to LAN hub %s", endpoint);
    zhashx_insert (self->links, url, link);
    return link;
}

static void
s_lanlink_free (void **item)
{
    s_lanlink_t *link = (s_lanlink_t *) *item;
    if (link) {
        zactor_destroy (&link->monitor);
        zsock_destroy (&link->sock);
        free (link);
        *item = NULL;
    }
}

static void
s_lanreq_free (void **item)
{
    s_lanreq_t *r = (s_lanreq_t *) *item;
    if (r) {
        aip_relay_joinreq_free (&r->join);
        free (r);
        *item = NULL;
    }
}

//  Start a request to a hub in self->pk; returns its id
static uint64_t
s_lan_begin (aip_relayd_t *self, aip_op_t op, size_t nargs)
{
    uint64_t id = ++self->lan_next_id;
    aip_pack_reset (self->pk);
    aip_request_begin (self->pk, id, op, nargs);
    return id;
}

//  Send the request in self->pk to the hub of url; NULL if it cannot go
static s_lanreq_t *
s_lan_send (aip_relayd_t *self, const char *url, s_lan_kind_t kind, uint64_t id, int timeout_ms)
{
    s_lanlink_t *link = s_lan_link (self, url);
    if (!link)
        return NULL;
    size_t size;
    const void *data = aip_pack_data (self->pk, &size);
    zframe_t *frame = zframe_new (data, size);
    if (zframe_send (&frame, link->sock, ZFRAME_DONTWAIT)) {
        zframe_destroy (&frame);
        return NULL;
    }
    s_lanreq_t *r = (s_lanreq_t *) zmalloc (sizeof (s_lanreq_t));
    r->id = id;
    r->kind = kind;
    snprintf (r->link, sizeof r->link, "%s", url);
    r->deadline = aip_clock_ms () + timeout_ms;
    zlistx_add_end (self->lan_pending, r);
    return r;
}

//  The peer map of an outbox message, for the hub
static void
s_lan_pack_peer (aip_relayd_t *self, const aip_outmsg_t *om)
{
    char host [AIP_MAX_NAME + 1];
    aip_hostname (host, sizeof host);
    aip_pack_map_begin (self->pk);
    aip_pack_kstr (self->pk, "id", om->peer_id);
    aip_pack_kstr (self->pk, "name", *om->peer_name ? om->peer_name : om->peer_id);
    aip_pack_kstr (self->pk, "type", streq (om->peer_type, "ai") ? "ai" : "human");
    aip_pack_kstr (self->pk, "machine", host);
    if (*om->peer_tool)
        aip_pack_kstr (self->pk, "tool", om->peer_tool);
    aip_pack_map_end (self->pk);
}

//  Post an outbox message to its hub (its peer joins first, once)
static void
s_lan_deliver (aip_relayd_t *self, aip_sync_room_t *room, aip_outmsg_t *om)
{
    //  The hub holds each peer id to the signature it first joined with
    char sig [AIP_CRYPTO_HEX_SIZE];
    if (aip_relay_signature (self, room->id, om->peer_id, om->peer_tool, sig)) {
        aip_relay_outmsg_finish (self, om, false, "this machine cannot sign for that peer (no secret "
                         "for it in identity.json)");
        return;
    }
    bool join = !zhashx_lookup (room->joined, om->peer_id);
    uint64_t id = s_lan_begin (self, join ? AIP_OP_LAN_JOIN : AIP_OP_LAN_POST, 4);
    aip_pack_kstr (self->pk, "room_id", room->id);
    aip_pack_kstr (self->pk, "token", room->token);
    aip_pack_kstr (self->pk, "peer_signature", sig);
    if (join) {
        aip_pack_key (self->pk, "peer");
        s_lan_pack_peer (self, om);
    }
    else {
        aip_pack_key (self->pk, "message");
        aip_pack_map (self->pk, 5);
        aip_pack_kstr (self->pk, "id", om->id);
        aip_pack_kstr (self->pk, "content", om->content);
        aip_pack_kstr (self->pk, "type", om->type);
        aip_pack_kstr (self->pk, "created_at", om->created_at);
        aip_pack_key (self->pk, "peer");
        s_lan_pack_peer (self, om);
    }
    s_lanreq_t *r = s_lan_send (self, room->url, join ? LAN_PEER_JOIN : LAN_POST, id,
                                AIP_LAN_TIMEOUT_MS);
    if (!r) {
        aip_relay_outmsg_retry_later (self, om, "the LAN hub's connection is full");
        return;
    }
    snprintf (r->room_id, sizeof r->room_id, "%s", room->id);
    snprintf (r->msg_id, sizeof r->msg_id, "%s", om->id);
    om->inflight = true;
    room->posting = true;
}

//  Catch up and wait for more: lan.fetch after the cursor. The hub holds
//  it while there is nothing new, which makes it the push channel too.
static void
s_lan_fetch (aip_relayd_t *self, aip_sync_room_t *room)
{
    //  A join waits for its history: nothing to hold then
    int wait_ms = zlistx_size (room->join_waiters) || room->fetch_again ? 0
                                                                         : AIP_LAN_FETCH_WAIT_MS;
    uint64_t id = s_lan_begin (self, AIP_OP_LAN_FETCH, 5);
    aip_pack_kstr (self->pk, "room_id", room->id);
    aip_pack_kstr (self->pk, "token", room->token);
    aip_pack_kint (self->pk, "after", *room->cursor ? strtoll (room->cursor, NULL, 10) : 0);
    aip_pack_kint (self->pk, "limit", AIP_LAN_PAGE);
    aip_pack_kint (self->pk, "wait_ms", wait_ms);
    s_lanreq_t *r = s_lan_send (self, room->url, LAN_FETCH, id, wait_ms + AIP_LAN_TIMEOUT_MS);
    if (!r) {
        room->poll_at = aip_clock_ms () + AIP_RELAY_POLL_MS;
        return;
    }
    snprintf (r->room_id, sizeof r->room_id, "%s", room->id);
    room->fetch_id = id;
    room->fetching = true;
    room->fetch_again = false;
}

static void
s_lan_fetch_done (aip_relayd_t *self, s_lanreq_t *r, aip_reply_t *rep, const char *why)
{
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, r->room_id);
    if (!room || room->fetch_id != r->id)
        return;                 //  a fetch we gave up on
    room->fetching = false;
    if (!rep || !rep->ok) {
        const char *reason = rep ? rep->message : why;
        if (room->ok)
            zsys_warning ("relay: room %s: catch-up from LAN hub %s failed: %s", room->id,
                          room->url, reason);
        room->ok = false;
        room->poll_at = aip_clock_ms () + AIP_RELAY_POLL_MS;
        aip_relay_join_waiters_done (self, room, reason);
        return;
    }
    json_t *messages = aip_json_from_obj (aip_obj_get (rep->data, "messages"));
    if (!json_is_array (messages)) {
        zsys_warning ("relay: room %s: the LAN hub's answer to a catch-up has no messages",
                      room->id);
        json_decref (messages);
        room->ok = false;
        room->poll_at = aip_clock_ms () + AIP_RELAY_POLL_MS;
        aip_relay_join_waiters_done (self, room, "the LAN hub's answer was malformed");
        return;
    }
    if (!room->ok) {
        zsys_info ("relay: room %s: LAN hub %s reachable", room->id, room->url);
        aip_relay_outbox_retry_now (self, room->id);
    }
    room->ok = true;
    int stored = aip_relay_ingest (self, room, messages);
    bool full = json_array_size (messages) >= AIP_LAN_PAGE;
    json_decref (messages);
    if (stored < 0) {
        room->poll_at = aip_clock_ms () + AIP_RELAY_POLL_MS;
        aip_relay_join_waiters_done (self, room, "could not store the history");
        return;
    }
    if (full)
        room->fetch_again = true;       //  more pages: do not wait for them
    else
        aip_relay_join_waiters_done (self, room, NULL);
    aip_relay_fetch (self, room);
}

//  True for a hub's answers that will not change on a retry
static bool
s_lan_permanent (const aip_reply_t *rep)
{
    return streq (rep->code, AIP_ERR_INVALID) || streq (rep->code, AIP_ERR_NOT_FOUND)
        || streq (rep->code, AIP_ERR_MALFORMED);
}

static void
s_lan_post_done (aip_relayd_t *self, s_lanreq_t *r, aip_reply_t *rep, const char *why)
{
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, r->room_id);
    aip_outmsg_t *om = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, r->msg_id);
    if (room) {
        room->posting = false;
        room->ok = rep != NULL;
    }
    if (!om)
        return;
    om->inflight = false;
    if (!rep) {
        aip_relay_outmsg_retry_later (self, om, why);
        return;
    }
    char message [400];
    if (rep->ok) {
        if (r->kind == LAN_PEER_JOIN) {
            if (room)
                zhashx_insert (room->joined, om->peer_id, (void *) "");
            om->next_at = 0;
            om->backoff_ms = AIP_RELAY_RETRY_MIN_MS;
            return;
        }
        if (*om->error)
            zsys_info ("relay: message %s delivered to the LAN hub after retries", om->id);
        if (room)
            zhashx_insert (room->recent, om->id, (void *) "");
        aip_relay_outmsg_finish (self, om, true, NULL);
    }
    else
    if (s_lan_permanent (rep)) {
        if (r->kind == LAN_PEER_JOIN)
            snprintf (message, sizeof message, "the LAN hub refused peer %s: %s", om->peer_id,
                      rep->message);
        else
            snprintf (message, sizeof message, "the LAN hub refused the message: %s", rep->message);
        zsys_warning ("relay: message %s: %s; dropped from the outbox", om->id, message);
        aip_relay_outmsg_finish (self, om, false, message);
    }
    else
        aip_relay_outmsg_retry_later (self, om, rep->message);
}

//  relay.join of a LAN room: lan.info (probe), then lan.join
static void
s_lan_join_send (aip_relayd_t *self, aip_joinreq_t *join, s_lan_kind_t kind)
{
    uint64_t id;
    if (kind == LAN_INFO) {
        id = s_lan_begin (self, AIP_OP_LAN_INFO, 1);
        aip_pack_kstr (self->pk, "room_id", join->room_id);
    }
    else {
        char sig [AIP_CRYPTO_HEX_SIZE];
        if (aip_relay_signature (self, join->room_id, aip_relay_jstr (join->peer, "id"),
                         aip_relay_jstr (join->peer, "tool"), sig)) {
            aip_relay_join_fail (self, join, "cannot sign as peer %s: identity.json has no peer_secret",
                         aip_relay_jstr (join->peer, "id"));
            aip_relay_joinreq_free (&join);
            return;
        }
        id = s_lan_begin (self, AIP_OP_LAN_JOIN, 4);
        aip_pack_kstr (self->pk, "room_id", join->room_id);
        aip_pack_kstr (self->pk, "token", join->token);
        aip_pack_kstr (self->pk, "peer_signature", sig);
        aip_pack_key (self->pk, "peer");
        aip_json_pack (self->pk, join->peer);
    }
    s_lanreq_t *r = s_lan_send (self, join->url, kind, id, AIP_LAN_TIMEOUT_MS);
    if (!r) {
        aip_relay_join_fail (self, join, "cannot talk to the LAN hub %s", join->url);
        aip_relay_joinreq_free (&join);
        return;
    }
    r->join = join;
}

static void
s_lan_join_done (aip_relayd_t *self, s_lanreq_t *r, aip_reply_t *rep, const char *why)
{
    aip_joinreq_t *join = r->join;
    r->join = NULL;
    char endpoint [AIP_MAX_URL + 1], key [AIP_LAN_KEY_HEX + 1];
    aip_lan_url_parse (join->url, endpoint, sizeof endpoint, key);
    if (!rep) {
        aip_relay_join_fail (self, join, "the LAN hub at %s did not answer (%s): is its daemon running "
                     "in LAN mode there, and are the address and key of the connection string "
                     "right?", endpoint, why);
        aip_relay_joinreq_free (&join);
        return;
    }
    if (!rep->ok) {
        if (r->kind == LAN_INFO)
            aip_relay_join_fail (self, join, "the LAN hub at %s has no room %s: %s", endpoint,
                         join->room_id, rep->message);
        else
            aip_relay_join_fail (self, join, "the LAN hub at %s refused to let %s join room %s: %s",
                         endpoint, aip_relay_jstr (join->peer, "id"), join->room_id, rep->message);
        aip_relay_joinreq_free (&join);
        return;
    }
    if (r->kind == LAN_INFO) {
        join->info = aip_json_from_obj (rep->data);
        if (join->info_only) {
            json_t *data = json_pack ("{s:O}", "remote_info", join->info);
            aip_relay_reply_json (self, join->tag, join->request_id, data);
            json_decref (data);
            aip_relay_joinreq_free (&join);
            return;
        }
        s_lan_join_send (self, join, LAN_JOIN);
        return;
    }
    aip_relay_join_accepted (self, join);
}

static void
s_lan_done (aip_relayd_t *self, s_lanreq_t *r, aip_reply_t *rep, const char *why)
{
    switch (r->kind) {
        case LAN_INFO:
        case LAN_JOIN:      s_lan_join_done (self, r, rep, why); break;
        case LAN_PEER_JOIN:
        case LAN_POST:      s_lan_post_done (self, r, rep, why); break;
        case LAN_FETCH:     s_lan_fetch_done (self, r, rep, why); break;
    }
}

//  Take a pending request off the list (the caller frees it)
static s_lanreq_t *
s_lan_take (aip_relayd_t *self, uint64_t id, const char *link)
{
    for (s_lanreq_t *r = (s_lanreq_t *) zlistx_first (self->lan_pending); r;
         r = (s_lanreq_t *) zlistx_next (self->lan_pending))
        if (r->id == id && streq (r->link, link))
            return (s_lanreq_t *) zlistx_detach_cur (self->lan_pending);
    return NULL;
}

//  Answers from a hub
static void
s_lan_input (aip_relayd_t *self, s_lanlink_t *link)
{
    while (zsock_events (link->sock) & ZMQ_POLLIN) {
        zframe_t *frame = zframe_recv (link->sock);
        if (!frame)
            break;
        aip_reply_t rep;
        char err [256];
        if (aip_reply_decode (zframe_data (frame), zframe_size (frame), &rep, err, sizeof err))
            zsys_warning ("relay: a malformed answer from LAN hub %s: %s", link->endpoint, err);
        else {
            s_lanreq_t *r = s_lan_take (self, rep.id, link->url);
            if (r) {
                s_lan_done (self, r, &rep, NULL);
                s_lanreq_free ((void **) &r);
            }
            aip_reply_free (&rep);
        }
        zframe_destroy (&frame);
    }
}

//  Connection events of a hub: after a reconnect, what was in flight may
//  be lost with the old connection: ask again at once
static void
s_lan_monitor (aip_relayd_t *self, s_lanlink_t *link)
{
    zmsg_t *msg = zmsg_recv (link->monitor);
    char *event = msg ? zmsg_popstr (msg) : NULL;
    if (event && streq (event, "DISCONNECTED")) {
        if (link->up)
            zsys_info ("relay: LAN hub %s: connection lost", link->endpoint);
        link->up = false;
        link->lost = true;
    }
    else
    if (event && streq (event, "HANDSHAKE_SUCCEEDED")) {
        link->up = true;
        if (link->lost) {
            link->lost = false;
            zsys_info ("relay: LAN hub %s: connected again; catching up", link->endpoint);
            s_lanreq_t *r = (s_lanreq_t *) zlistx_first (self->lan_pending);
            while (r) {
                if (streq (r->link, link->url) && r->kind != LAN_INFO && r->kind != LAN_JOIN) {
                    zlistx_detach_cur (self->lan_pending);
                    s_lan_done (self, r, NULL, "the connection to the LAN hub was lost");
                    s_lanreq_free ((void **) &r);
                    r = (s_lanreq_t *) zlistx_first (self->lan_pending);
                    continue;
                }
                r = (s_lanreq_t *) zlistx_next (self->lan_pending);
            }
            for (aip_sync_room_t *room = (aip_sync_room_t *) zhashx_first (self->rooms); room;
                 room = (aip_sync_room_t *) zhashx_next (self->rooms))
                if (room->transport == &aip_sync_lan && streq (room->url, link->url)) {
                    room->poll_at = 0;
                    aip_relay_outbox_retry_now (self, room->id);
                }
        }
    }
    free (event);
    zmsg_destroy (&msg);
}

//  Requests a hub did not answer in time
static void
s_lan_expire (aip_relayd_t *self)
{
    int64_t now = aip_clock_ms ();
    s_lanreq_t *r = (s_lanreq_t *) zlistx_first (self->lan_pending);
    while (r) {
        if (now >= r->deadline) {
            zlistx_detach_cur (self->lan_pending);
            char why [128];
            snprintf (why, sizeof why, "no answer within %d s",
                      (int) ((AIP_LAN_TIMEOUT_MS + 999) / 1000));
            s_lan_done (self, r, NULL, why);
            s_lanreq_free ((void **) &r);
            r = (s_lanreq_t *) zlistx_first (self->lan_pending);
            continue;
        }
        r = (s_lanreq_t *) zlistx_next (self->lan_pending);
    }
}

//  ---------------------------------------------------------------------
//  The transport

static int
s_lan_check_url (const char *url, char *out, size_t size, char *err, size_t errlen)
{
    char endpoint [AIP_MAX_URL + 1], key [AIP_LAN_KEY_HEX + 1];
    if (aip_lan_url_parse (url, endpoint, sizeof endpoint, key)) {
        snprintf (err, errlen, "'%.200s' is not a LAN hub (peer+lan://host:port?key=<64 hex>)",
                  url);
        return -1;
    }
    snprintf (out, size, "%s", url);
    return 0;
}

static void
s_lan_join (aip_relayd_t *self, aip_joinreq_t *join, bool probe)
{
    s_lan_join_send (self, join, probe ? LAN_INFO : LAN_JOIN);
}

//  Its held lan.fetch is the push channel: restart it after a failure
static void
s_lan_tick (aip_relayd_t *self, aip_sync_room_t *room, int64_t now)
{
    if (!room->fetching && now >= room->poll_at)
        aip_relay_fetch (self, room);
}

//  The cursor is the hub's seq, zero-padded so that it compares as a
//  string as the relay's times do
static void
s_lan_cursor_of (const json_t *m, char *out, size_t size)
{
    const json_t *value = json_object_get (m, "seq");
    *out = 0;
    if (json_is_integer (value) && json_integer_value (value) > 0)
        snprintf (out, size, "%020" JSON_INTEGER_FORMAT, json_integer_value (value));
}

//  The lan.fetch in flight asked from a dropped cursor: forget it (its
//  answer is then stale, by its id)
static void
s_lan_fetch_forget (aip_sync_room_t *room)
{
    room->fetching = false;
    room->fetch_id = 0;
}

//  Each link's DEALER and its monitor
static int
s_lan_poll_add (aip_relayd_t *self, zmq_pollitem_t *items, int max, long *timeout)
{
    (void) timeout;
    int n = 0;
    for (s_lanlink_t *link = (s_lanlink_t *) zhashx_first (self->links);
         link && n / 2 < LAN_MAX_LINKS && n + 2 <= max;
         link = (s_lanlink_t *) zhashx_next (self->links)) {
        items [n++] = (zmq_pollitem_t) { zsock_resolve (link->sock), 0, ZMQ_POLLIN, 0 };
        items [n++] = (zmq_pollitem_t) { zsock_resolve (link->monitor), 0, ZMQ_POLLIN, 0 };
    }
    return n;
}

//  The links polled are the first count / 2 of self->links, in order: the
//  table does not change between poll_add and poll_done (links are added
//  and removed only by what runs after)
static void
s_lan_poll_done (aip_relayd_t *self, zmq_pollitem_t *items, int count)
{
    s_lanlink_t *polled [LAN_MAX_LINKS];
    int nlinks = 0;
    for (s_lanlink_t *link = (s_lanlink_t *) zhashx_first (self->links);
         link && nlinks < count / 2; link = (s_lanlink_t *) zhashx_next (self->links))
        polled [nlinks++] = link;
    for (int i = 0; i < nlinks; i++) {
        if (items [2 * i].revents & ZMQ_POLLIN)
            s_lan_input (self, polled [i]);
        if (items [2 * i + 1].revents & ZMQ_POLLIN)
            s_lan_monitor (self, polled [i]);
    }
}

static int
s_lan_start_transport (aip_relayd_t *self)
{
    self->links = zhashx_new ();
    zhashx_set_destructor (self->links, s_lanlink_free);
    self->lan_pending = zlistx_new ();
    zlistx_set_destructor (self->lan_pending, s_lanreq_free);
    return 0;
}

static void
s_lan_stop_transport (aip_relayd_t *self)
{
    zlistx_destroy (&self->lan_pending);
    zhashx_destroy (&self->links);
    zcert_destroy (&self->lan_cert);
}

//  A hub's cursor is its seq: strtoll reads what it can, and a cursor it
//  cannot read starts from 0 (ids de-duplicate), so none freezes catch-up
static bool
s_lan_cursor_ok (const char *cursor)
{
    (void) cursor;
    return true;
}

//  The held lan.fetch is answered or expires by itself; the link stays
//  for the other rooms of the hub
static void
s_lan_forget (aip_relayd_t *self, aip_sync_room_t *room)
{
    (void) self;
    (void) room;
}

static void
s_lan_wake (aip_relayd_t *self, aip_sync_room_t *room)
{
    (void) self;
    (void) room;
}

const aip_sync_transport_t aip_sync_lan = {
    .name = "lan",
    .mode = "lan",
    .peer = "hub",
    .claims = aip_lan_url_is,
    .check_url = s_lan_check_url,
    .join = s_lan_join,
    .deliver = s_lan_deliver,
    .fetch = s_lan_fetch,
    .tick = s_lan_tick,
    .cursor_of = s_lan_cursor_of,
    .fetch_forget = s_lan_fetch_forget,
    .cursor_ok = s_lan_cursor_ok,
    .forget = s_lan_forget,
    .wake = s_lan_wake,
    .poll_add = s_lan_poll_add,
    .poll_done = s_lan_poll_done,
    .expire = s_lan_expire,
    .start = s_lan_start_transport,
    .stop = s_lan_stop_transport,
};

//  ---------------------------------------------------------------------
//  Self-test: what the LAN transport decides without a hub (tests/test_lan.py
//  drives it between real hosts)

void
aip_relay_lan_test (bool verbose)
{
    printf (" * aip_relay_lan: ");
    //  The cursor is the hub's seq, padded: it orders as a string
    char a [AIP_MAX_TIME + 2], b [AIP_MAX_TIME + 2];
    json_t *m = json_pack ("{s:i}", "seq", 9);
    aip_sync_lan.cursor_of (m, a, sizeof a);
    json_decref (m);
    m = json_pack ("{s:i}", "seq", 10);
    aip_sync_lan.cursor_of (m, b, sizeof b);
    json_decref (m);
    assert (strlen (a) == 20 && strcmp (a, b) < 0);
    m = json_pack ("{s:s}", "seq", "10");
    aip_sync_lan.cursor_of (m, a, sizeof a);
    assert (*a == 0);
    json_decref (m);
    //  Hub URLs
    char url [AIP_MAX_URL + 1], err [300];
    assert (aip_sync_lan.check_url ("peer+lan://10.0.0.2:7899", url, sizeof url, err,
                                    sizeof err) == -1 && strstr (err, "not a LAN hub"));
    assert (!aip_sync_lan.claims ("https://relay.example"));
    //  A forgotten fetch is no longer in flight
    aip_sync_room_t room;
    memset (&room, 0, sizeof room);
    room.fetching = true;
    room.fetch_id = 5;
    aip_sync_lan.fetch_forget (&room);
    assert (!room.fetching && room.fetch_id == 0);
    //  Started and stopped without a loop; no links, nothing to poll
    aip_relayd_t self;
    memset (&self, 0, sizeof self);
    assert (aip_sync_lan.start (&self) == 0);
    zmq_pollitem_t items [4];
    long timeout = 100;
    assert (aip_sync_lan.poll_add (&self, items, 4, &timeout) == 0);
    aip_sync_lan.expire (&self);
    aip_sync_lan.stop (&self);
    aip_sync_lan.stop (&self);
    if (verbose)
        printf ("(seq cursor, URLs, fetch forgotten, start/stop) ");
    printf ("OK\n");
}
