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

//  Self-test: what the LAN transport decides by itself, and what it says to
//  a hub and does with its answers, against one in this process (a CURVE
//  ROUTER on loopback) and a stand-in for storaged (tests/test_lan.py
//  drives it between real hosts)

#define TEST_STORE_ENDPOINT "inproc://aip-relay-lan-test-store"
#define TEST_WAIT_MS        5000

static void s_test_against_hub (bool verbose);

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
    s_test_against_hub (verbose);
    printf ("OK\n");
}

//  The stand-in for storaged: answers every request ok, and tells the test
//  the id of each message it was asked to store
static void
s_test_store (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert (router);
    zsock_set_linger (router, 0);
    assert (zsock_bind (router, TEST_STORE_ENDPOINT) == 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    aip_pack_t *pk = aip_pack_new ();
    zsock_signal (pipe, 0);
    while (zpoller_wait (poller, -1) == router) {
        zmsg_t *msg = zmsg_recv (router);
        assert (msg && zmsg_size (msg) == 2);
        zframe_t *peer = zmsg_pop (msg);
        zframe_t *body = zmsg_pop (msg);
        aip_request_t req;
        uint64_t id;
        char err [256];
        assert (aip_request_decode (zframe_data (body), zframe_size (body), &req, &id, err,
                                    sizeof err) == 0);
        if (req.op == AIP_OP_MSG_SEND) {
            char mid [AIP_MAX_ID + 1];
            zstr_send (pipe, aip_obj_get_str (req.args, "id", mid, sizeof mid, ""));
        }
        aip_request_free (&req);
        aip_pack_reset (pk);
        aip_reply_ok_begin (pk, id);
        aip_pack_nil (pk);
        size_t size;
        const void *data = aip_pack_data (pk, &size);
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &peer);
        zmsg_addmem (reply, data, size);
        zmsg_send (&reply, router);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
    }
    aip_pack_destroy (&pk);
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

//  One turn of relayd's loop as far as the transport goes, with the hub's
//  socket in the poll; true if the hub has something to read
static bool
s_test_turn (aip_relayd_t *self, zsock_t *hub)
{
    zmq_pollitem_t items [2 * LAN_MAX_LINKS + 1];
    long timeout = TICK_MS;
    int n = aip_sync_lan.poll_add (self, items, 2 * LAN_MAX_LINKS, &timeout);
    items [n] = (zmq_pollitem_t) { zsock_resolve (hub), 0, ZMQ_POLLIN, 0 };
    assert (zmq_poll (items, n + 1, timeout) >= 0);
    aip_sync_lan.poll_done (self, items, n);
    aip_sync_lan.expire (self);
    return (items [n].revents & ZMQ_POLLIN) != 0;
}

//  The hub's next request, decoded and checked against its op's schema;
//  returns the routing id to answer it by
static zframe_t *
s_test_hub_recv (aip_relayd_t *self, zsock_t *hub, aip_request_t *req)
{
    int64_t deadline = aip_clock_ms () + TEST_WAIT_MS;
    while (!s_test_turn (self, hub))
        assert (aip_clock_ms () < deadline);
    zmsg_t *msg = zmsg_recv (hub);
    assert (msg && zmsg_size (msg) == 2);
    zframe_t *peer = zmsg_pop (msg);
    zframe_t *body = zmsg_pop (msg);
    uint64_t id;
    char err [256];
    assert (aip_request_decode (zframe_data (body), zframe_size (body), req, &id, err,
                                sizeof err) == 0);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    return peer;
}

//  True while request id waits for the hub's answer
static bool
s_test_pending (aip_relayd_t *self, uint64_t id)
{
    for (s_lanreq_t *r = (s_lanreq_t *) zlistx_first (self->lan_pending); r;
         r = (s_lanreq_t *) zlistx_next (self->lan_pending))
        if (r->id == id)
            return true;
    return false;
}

//  Answer req with the data in json (a valid reply of its op where one is
//  declared) or with an error, then run the loop until the transport has
//  handled it
static void
s_test_hub_answer (aip_relayd_t *self, zsock_t *hub, zframe_t **peer_p,
                   const aip_request_t *req, json_t *json, const char *code, const char *message)
{
    aip_pack_t *pk = aip_pack_new ();
    if (code)
        aip_reply_error (pk, req->id, code, message);
    else {
        aip_reply_ok_begin (pk, req->id);
        aip_json_pack (pk, json);
    }
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_reply_t rep;
    char err [256];
    assert (aip_reply_decode (data, size, &rep, err, sizeof err) == 0);
    if (!code && aip_op_reply_fields (req->op))
        assert (aip_reply_check (req->op, rep.data, err, sizeof err) == 0);
    aip_reply_free (&rep);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, peer_p);
    zmsg_addmem (msg, data, size);
    assert (zmsg_send (&msg, hub) == 0);
    aip_pack_destroy (&pk);
    json_decref (json);
    int64_t deadline = aip_clock_ms () + TEST_WAIT_MS;
    while (s_test_pending (self, req->id)) {
        assert (aip_clock_ms () < deadline);
        s_test_turn (self, hub);
    }
}

static void
s_test_outmsg_free (void **item)
{
    aip_outmsg_t *om = (aip_outmsg_t *) *item;
    if (om) {
        free (om->content);
        free (om);
        *item = NULL;
    }
}

//  A message in the outbox, as s_outbox_add puts it there
static aip_outmsg_t *
s_test_outmsg (aip_relayd_t *self, const char *id, const char *peer_id, const char *tool,
               const char *content)
{
    aip_outmsg_t *om = (aip_outmsg_t *) zmalloc (sizeof (aip_outmsg_t));
    snprintf (om->id, sizeof om->id, "%s", id);
    snprintf (om->room_id, sizeof om->room_id, "room-000000000001");
    snprintf (om->peer_id, sizeof om->peer_id, "%s", peer_id);
    snprintf (om->peer_name, sizeof om->peer_name, "%s", peer_id);
    snprintf (om->peer_tool, sizeof om->peer_tool, "%s", tool);
    snprintf (om->peer_type, sizeof om->peer_type, "%s", streq (tool, "cli") ? "human" : "ai");
    snprintf (om->type, sizeof om->type, "message");
    snprintf (om->created_at, sizeof om->created_at, "2026-12-04T20:00:00.000Z");
    om->content = strdup (content);
    om->backoff_ms = AIP_RELAY_RETRY_MIN_MS;
    zlistx_add_end (self->outbox, om);
    zhashx_insert (self->outbox_ids, om->id, om);
    return om;
}

//  The hub's room and the stored message of a lan.post, as the hub answers
static json_t *
s_test_sent (const aip_request_t *req)
{
    const aip_obj_t *m = aip_req_arg (req, "message");
    char id [AIP_MAX_ID + 1], content [64];
    return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}", "id",
                      aip_obj_get_str (m, "id", id, sizeof id, ""), "room_id",
                      "room-000000000001", "peer_id", "h-alice", "content",
                      aip_obj_get_str (m, "content", content, sizeof content, ""), "type",
                      "message", "created_at", "2026-12-04T20:00:00.000Z");
}

static json_t *
s_test_joined (const char *peer_id)
{
    return json_pack ("{s:s, s:s, s:b, s:b, s:{s:s, s:s, s:s, s:b}}", "room_id",
                      "room-000000000001", "peer_id", peer_id, "joined", 1, "new_member", 1,
                      "room", "id", "room-000000000001", "name", "lan room", "created_at",
                      "2026-12-04T19:00:00.000Z", "encrypted", 0);
}

static void
s_test_against_hub (bool verbose)
{
    if (!zsys_has_curve ()) {
        if (verbose)
            printf ("(no CURVE in this libzmq: no hub) ");
        return;
    }
    //  The hub: a CURVE server on a port the kernel picks
    zcert_t *hub_cert = zcert_new ();
    zsock_t *hub = zsock_new (ZMQ_ROUTER);
    assert (hub_cert && hub);
    zsock_set_linger (hub, 0);
    zcert_apply (hub_cert, hub);
    zsock_set_curve_server (hub, 1);
    assert (zsock_bind (hub, "tcp://127.0.0.1:0") == 0);
    char *bound = zsock_last_endpoint (hub);
    assert (bound && strrchr (bound, ':'));
    int port = atoi (strrchr (bound, ':') + 1);
    zstr_free (&bound);
    char key_hex [AIP_LAN_KEY_HEX + 1], url [AIP_MAX_URL + 1];
    aip_lan_key_to_hex (zcert_public_key (hub_cert), key_hex);
    assert (aip_lan_url_format ("127.0.0.1", port, key_hex, url, sizeof url) == 0);
    zactor_t *store = zactor_new (s_test_store, NULL);
    assert (store);

    //  relayd's state as far as the transport and the outbox need it
    aip_relayd_t self;
    memset (&self, 0, sizeof self);
    self.pk = aip_pack_new ();
    snprintf (self.identity.id, sizeof self.identity.id, "h-alice");
    snprintf (self.identity.secret, sizeof self.identity.secret, "%064d", 7);
    self.identity_ok = true;
    self.rooms = zhashx_new ();
    self.outbox = zlistx_new ();
    zlistx_set_destructor (self.outbox, s_test_outmsg_free);
    self.outbox_ids = zhashx_new ();
    self.push_waiters = zlistx_new ();
    zlistx_set_destructor (self.push_waiters, aip_relay_waiter_free);
    self.outcomes = zhashx_new ();
    zhashx_set_destructor (self.outcomes, (zhashx_destructor_fn *) zstr_free);
    char err [512];
    self.store = aip_client_new_actor (zsys_init (), TEST_STORE_ENDPOINT, NULL, err, sizeof err);
    assert (self.store);
    aip_sync_room_t *room = (aip_sync_room_t *) zmalloc (sizeof (aip_sync_room_t));
    snprintf (room->id, sizeof room->id, "room-000000000001");
    snprintf (room->url, sizeof room->url, "%s", url);
    snprintf (room->token, sizeof room->token, "tok-lan-1");
    room->transport = &aip_sync_lan;
    room->joined = zhashx_new ();
    room->recent = zhashx_new ();
    room->join_waiters = zlistx_new ();
    zlistx_set_destructor (room->join_waiters, aip_relay_waiter_free);
    zhashx_insert (self.rooms, room->id, room);
    assert (aip_sync_lan.start (&self) == 0);

    //  A peer's first message: it joins the hub first, with the room's
    //  token and its signature, over CURVE
    aip_outmsg_t *om = s_test_outmsg (&self, "msg-local-0001", "h-alice", "cli", "hello hub");
    aip_sync_lan.deliver (&self, room, om);
    assert (om->inflight && room->posting);
    aip_request_t req;
    zframe_t *peer = s_test_hub_recv (&self, hub, &req);
    char sig [AIP_CRYPTO_HEX_SIZE], buf [AIP_MAX_CONTENT_WIRE + 1];
    assert (aip_crypto_peer_signature (self.identity.secret, room->id, sig) == 0);
    assert (req.op == AIP_OP_LAN_JOIN);
    assert (streq (aip_obj_get_str (req.args, "room_id", buf, sizeof buf, ""), room->id));
    assert (streq (aip_obj_get_str (req.args, "token", buf, sizeof buf, ""), "tok-lan-1"));
    assert (streq (aip_obj_get_str (req.args, "peer_signature", buf, sizeof buf, ""), sig));
    const aip_obj_t *who = aip_req_arg (&req, "peer");
    assert (streq (aip_obj_get_str (who, "id", buf, sizeof buf, ""), "h-alice"));
    assert (streq (aip_obj_get_str (who, "type", buf, sizeof buf, ""), "human"));
    s_test_hub_answer (&self, hub, &peer, &req, s_test_joined ("h-alice"), NULL, NULL);
    aip_request_free (&req);
    assert (zhashx_lookup (room->joined, "h-alice"));
    assert (!om->inflight && !room->posting && zhashx_lookup (self.outbox_ids, om->id));

    //  Joined, its message goes as lan.post, and leaves the outbox delivered
    aip_sync_lan.deliver (&self, room, om);
    peer = s_test_hub_recv (&self, hub, &req);
    assert (req.op == AIP_OP_LAN_POST);
    assert (streq (aip_obj_get_str (req.args, "token", buf, sizeof buf, ""), "tok-lan-1"));
    assert (streq (aip_obj_get_str (req.args, "peer_signature", buf, sizeof buf, ""), sig));
    const aip_obj_t *posted = aip_req_arg (&req, "message");
    assert (streq (aip_obj_get_str (posted, "id", buf, sizeof buf, ""), "msg-local-0001"));
    assert (streq (aip_obj_get_str (posted, "content", buf, sizeof buf, ""), "hello hub"));
    assert (streq (aip_obj_get_str (posted, "created_at", buf, sizeof buf, ""),
                   "2026-12-04T20:00:00.000Z"));
    s_test_hub_answer (&self, hub, &peer, &req, s_test_sent (&req), NULL, NULL);
    aip_request_free (&req);
    assert (!zhashx_lookup (self.outbox_ids, "msg-local-0001") && zlistx_size (self.outbox) == 0);
    const char *outcome = (const char *) zhashx_lookup (self.outcomes, "msg-local-0001");
    assert (outcome && *outcome == 0);                  //  "" = delivered
    assert (zhashx_lookup (room->recent, "msg-local-0001") && room->ok);

    //  The hub refuses an AI peer's join: its message is dropped, and the
    //  hub's reason is what relay.push reports for it
    om = s_test_outmsg (&self, "msg-local-0002", "h-alice-claude", "claude", "from claude");
    aip_sync_lan.deliver (&self, room, om);
    peer = s_test_hub_recv (&self, hub, &req);
    char ai_secret [AIP_CRYPTO_HEX_SIZE], ai_sig [AIP_CRYPTO_HEX_SIZE];
    assert (aip_crypto_ai_secret (self.identity.secret, "claude", ai_secret) == 0);
    assert (aip_crypto_peer_signature (ai_secret, room->id, ai_sig) == 0);
    assert (req.op == AIP_OP_LAN_JOIN && !streq (ai_sig, sig));
    assert (streq (aip_obj_get_str (req.args, "peer_signature", buf, sizeof buf, ""), ai_sig));
    who = aip_req_arg (&req, "peer");
    assert (streq (aip_obj_get_str (who, "type", buf, sizeof buf, ""), "ai"));
    assert (streq (aip_obj_get_str (who, "tool", buf, sizeof buf, ""), "claude"));
    s_test_hub_answer (&self, hub, &peer, &req, NULL, AIP_ERR_INVALID, "Invalid join token");
    aip_request_free (&req);
    assert (!zhashx_lookup (room->joined, "h-alice-claude"));
    assert (!zhashx_lookup (self.outbox_ids, "msg-local-0002") && zlistx_size (self.outbox) == 0);
    outcome = (const char *) zhashx_lookup (self.outcomes, "msg-local-0002");
    assert (outcome && strstr (outcome, "refused peer h-alice-claude")
            && strstr (outcome, "Invalid join token"));
    assert (!room->posting);

    //  Catch-up: lan.fetch from the cursor, held by the hub; what it
    //  answers goes to storaged (our own echo skipped), the cursor moves to
    //  the hub's seq, and the next fetch asks from there
    aip_relay_fetch (&self, room);
    assert (room->fetching);
    peer = s_test_hub_recv (&self, hub, &req);
    assert (req.op == AIP_OP_LAN_FETCH);
    assert (streq (aip_obj_get_str (req.args, "token", buf, sizeof buf, ""), "tok-lan-1"));
    assert (aip_obj_get_int (req.args, "after", -1) == 0);
    assert (aip_obj_get_int (req.args, "wait_ms", -1) == AIP_LAN_FETCH_WAIT_MS);
    assert (aip_obj_get_int (req.args, "limit", -1) == AIP_LAN_PAGE);
    json_t *page = json_pack (
        "{s:[{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}, {s:s, s:s, s:s, s:s, s:s, s:s, s:i}],"
        " s:i}", "messages",
        "id", "msg-remote-0001", "room_id", room->id, "peer_id", "h-bob", "peer_name", "bob",
        "peer_type", "human", "content", "hello from bob", "type", "message", "created_at",
        "2026-12-04T20:01:00.000Z", "seq", 1,
        "id", "msg-local-0001", "room_id", room->id, "peer_id", "h-alice", "content",
        "hello hub", "type", "message", "created_at", "2026-12-04T20:00:00.000Z", "seq", 2,
        "seq", 2);
    s_test_hub_answer (&self, hub, &peer, &req, page, NULL, NULL);
    aip_request_free (&req);
    zpoller_t *poller = zpoller_new (store, NULL);
    assert (zpoller_wait (poller, TEST_WAIT_MS) == store);
    char *stored = zstr_recv (store);
    assert (stored && streq (stored, "msg-remote-0001"));
    zstr_free (&stored);
    assert (!zpoller_wait (poller, 0));                 //  the echo was not stored
    zpoller_destroy (&poller);
    char cursor [AIP_MAX_TIME + 2];
    json_t *last = json_pack ("{s:i}", "seq", 2);
    aip_sync_lan.cursor_of (last, cursor, sizeof cursor);
    json_decref (last);
    assert (streq (room->cursor, cursor) && room->cursor_dirty);
    assert (zhashx_lookup (room->recent, "msg-remote-0001") && room->ok);
    peer = s_test_hub_recv (&self, hub, &req);
    assert (req.op == AIP_OP_LAN_FETCH && aip_obj_get_int (req.args, "after", -1) == 2);
    assert (room->fetching && room->fetch_id == req.id);
    aip_request_free (&req);
    zframe_destroy (&peer);

    //  Stopped with that fetch still held: its request goes with the links
    aip_sync_lan.stop (&self);
    aip_client_destroy (&self.store);
    zactor_destroy (&store);
    zhashx_destroy (&room->joined);
    zhashx_destroy (&room->recent);
    zlistx_destroy (&room->join_waiters);
    free (room);
    zhashx_destroy (&self.rooms);
    zhashx_destroy (&self.outcomes);
    zlistx_destroy (&self.push_waiters);
    zhashx_destroy (&self.outbox_ids);
    zlistx_destroy (&self.outbox);
    aip_pack_destroy (&self.pk);
    zsock_destroy (&hub);
    zcert_destroy (&hub_cert);
    if (verbose)
        printf ("(hub: join with token and signature, post, refused join, fetch stored) ");
}
