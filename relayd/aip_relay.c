/*  aip_relay.c — relay-sync actor: outbox delivery, catch-up, WebSocket
    push, and the relay.* operations (see aip_relay.h). */
#include "aip_relay.h"
#include "aip_relay_ws.h"

#include "aip_client.h"
#include "aip_crypto.h"
#include "aip_home.h"
#include "aip_identity.h"
#include "aip_json.h"
#include "aip_lan.h"
#include "aip_limits.h"
#include "aip_peerurl.h"
#include "aip_proto.h"
#include "aip_roomkey.h"
#include "aip_util.h"
#include "aip_worker.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

//  Requests relayd takes at once (relay.push waits, so many may be open)
#define RELAY_SLOTS         1024
//  Ids of recently inserted remote messages kept per room (skip storaged)
#define RECENT_IDS_MAX      4096
//  Outcomes of delivered or refused messages remembered for relay.push
#define OUTCOMES_MAX        4096
//  Catch-up of a room that has no cursor yet starts here
#define EPOCH_CURSOR        "1970-01-01T00:00:00.000Z"
//  The loop wakes at least this often for timers
#define TICK_MS             100
//  A room's cursor is saved at most this often: after a crash the catch-up
//  starts a little earlier, and ids remove the overlap
#define CURSOR_SAVE_MS      1000
//  relay.join waits at most this long for the room's history
#define JOIN_HISTORY_WAIT_MS 10000
//  LAN hubs one relayd talks to at once
#define LAN_MAX_LINKS       64
//  lan.fetch requests a hub holds at once: each holds one of our slots, and
//  the local work needs some (past this, joiners are told to poll)
#define HUB_MAX_HELD        768

typedef enum { WS_DOWN, WS_CONNECTING, WS_UP } s_ws_state_t;

//  A public room kept in sync
typedef struct {
    char id [AIP_MAX_ID + 1];           //  room id (the same here and on the relay)
    char url [AIP_MAX_URL + 1];         //  relay base URL
    char token [AIP_MAX_NAME + 1];      //  room token
    char cursor [AIP_MAX_TIME + 1];     //  newest relay created_at seen, "" if none
    bool cursor_dirty;                  //  cursor not saved in storaged yet
    int64_t cursor_save_at;             //  save it then (at most once a CURSOR_SAVE_MS)
    s_ws_state_t ws_state;              //  push channel
    int ws_backoff_ms;                  //  next reconnect delay
    int64_t ws_retry_at;                //  when to reconnect
    int64_t poll_at;                    //  next catch-up while the WebSocket is down
    bool fetching;                      //  a catch-up GET is in flight
    bool fetch_again;                   //  another catch-up is wanted after it
    bool fetch_stale;                   //  the one in flight asked from a dropped cursor
    bool ok;                            //  the relay answered our last request
    bool posting;                       //  a POST or peer join is in flight (order!)
    bool listed;                        //  present in the last sync.rooms
    zhashx_t *joined;                   //  peer ids joined on the relay by this run
    zhashx_t *recent;                   //  ids inserted lately
    zlistx_t *join_waiters;             //  relay.join requests waiting for history
    bool no_batch;                      //  the relay has no batch endpoint (the original's)
    int singles;                        //  post this many one by one (a batch was refused)
    bool lan;                           //  a LAN room: url is its hub (peer+lan://)
    uint64_t fetch_id;                  //  LAN: the lan.fetch in flight (others are stale)
} s_room_t;

//  A message of the outbox
typedef struct {
    char id [AIP_MAX_ID + 1];           //  local id = relay id
    char room_id [AIP_MAX_ID + 1];
    char peer_id [AIP_MAX_ID + 1];
    char peer_name [AIP_MAX_NAME + 1];
    char peer_tool [AIP_MAX_NAME + 1];
    char peer_type [16];
    char type [16];
    char created_at [AIP_MAX_TIME + 1]; //  LAN hubs keep the sender's time
    char *content;                      //  the text
    int backoff_ms;                     //  next retry delay
    int64_t next_at;                    //  not before this
    bool inflight;                      //  being posted
    char error [256];                   //  why the last attempt failed
} s_outmsg_t;

//  A request that waits for something (relay.push, relay.join)
typedef struct {
    uint64_t tag;                       //  the broker's tag
    uint64_t request_id;                //  the client's request id
    char msg_id [AIP_MAX_ID + 1];       //  relay.push: the message awaited
    int64_t deadline;                   //  answer by then at the latest
    json_t *data;                       //  relay.join: the reply data
} s_waiter_t;

//  A relay.join in progress (probe, then join)
typedef struct _s_joinreq_t s_joinreq_t;
struct _s_joinreq_t {
    uint64_t tag;                       //  the broker's tag
    uint64_t request_id;                //  the client's request id
    char room_id [AIP_MAX_ID + 1];
    char url [AIP_MAX_URL + 1];
    char token [AIP_MAX_NAME + 1];
    char name [AIP_MAX_NAME + 1];       //  local room name (create) or ""
    bool create;                        //  create the local room on success
    char key [AIP_MAX_NAME + 1];        //  stored key of an encrypted room, or ""
    json_t *peer;                       //  {id, name, type, tool, machine}
    json_t *info;                       //  /info answer (or null)
    bool lan;                           //  a LAN hub (url is peer+lan://)
    bool info_only;                     //  answer with the room's info, do not join
};

typedef enum { HTTP_INFO, HTTP_JOIN, HTTP_PEER_JOIN, HTTP_POST, HTTP_BATCH, HTTP_FETCH } s_http_kind_t;
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
    struct _s_joinreq_t *join;          //  INFO / JOIN: the relay.join
    int64_t deadline;                   //  give up then
} s_lanreq_t;

//  A lan.fetch held by this hub until something new comes
typedef struct {
    uint64_t tag;                       //  the broker's tag
    uint64_t request_id;                //  the remote client's request id
    char room_id [AIP_MAX_ID + 1];
    int64_t after;                      //  its cursor
    int64_t limit;                      //  page size
    int64_t deadline;                   //  answer (empty) by then
} s_hubwait_t;

//  One HTTP exchange with a relay
typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    char *buf;                          //  the answer, capped
    size_t len;
    bool overflow;                      //  the answer passed AIP_RELAY_MAX_BODY
    s_http_kind_t kind;
    char room_id [AIP_MAX_ID + 1];
    char msg_id [AIP_MAX_ID + 1];       //  POST / PEER_JOIN: the outbox message
    s_joinreq_t *join;                  //  INFO / JOIN: the request
    zlistx_t *batch;                    //  BATCH: ids of the messages posted, in order
    char errbuf [CURL_ERROR_SIZE];      //  libcurl's explanation
} s_http_t;

typedef struct {
    zsock_t *pipe;                      //  actor pipe
    char home [AIP_PATH_MAX];
    aip_worker_t *worker;               //  serving "relay"
    aip_client_t *store;                //  client of "store" (lazily connected)
    zsock_t *events;                    //  SUB "outbox" from the broker
    aip_relay_ws_t *ws;                 //  WebSocket thread
    CURLM *multi;                       //  HTTP transfers
    zlistx_t *transfers;                //  s_http_t running (owned)
    int inflight;                       //  HTTP transfers running
    aip_identity_t identity;            //  to sign as the human and its AI peers
    bool identity_ok;
    zhashx_t *rooms;                    //  room id -> s_room_t
    zlistx_t *outbox;                   //  s_outmsg_t, oldest first
    zhashx_t *outbox_ids;               //  id -> s_outmsg_t (borrowed)
    zlistx_t *push_waiters;             //  s_waiter_t of relay.push
    zhashx_t *outcomes;                 //  id -> error text ("" = delivered) of messages
                                        //  that left the outbox lately: a relay.push
                                        //  that comes late still gets the truth
    bool outbox_dirty;                  //  read new outbox entries soon
    int64_t outbox_seq;                 //  newest outbox seq read
    int64_t rescan_at;                  //  next periodic reload
    aip_pack_t *pk;                     //  scratch
    bool terminated;
    zhashx_t *links;                    //  LAN hub URL -> s_lanlink_t
    zlistx_t *lan_pending;              //  s_lanreq_t sent to hubs
    zcert_t *lan_cert;                  //  our CURVE client key pair (per run)
    uint64_t lan_next_id;               //  ids of requests to hubs
    zlistx_t *hub_waiters;              //  s_hubwait_t: fetches we hold as a hub
} s_relay_t;

static void s_fetch (s_relay_t *self, s_room_t *room);
static void s_join_accepted (s_relay_t *self, s_joinreq_t *join);
static void s_lan_join_send (s_relay_t *self, s_joinreq_t *join, s_lan_kind_t kind);
static void s_lan_fetch (s_relay_t *self, s_room_t *room);
static void s_lan_deliver (s_relay_t *self, s_room_t *room, s_outmsg_t *om);
static void s_outbox_retry_now (s_relay_t *self, const char *room_id);

//  ---------------------------------------------------------------------
//  Small helpers

static int
s_jitter (int ms)
{
    //  ms * [0.5, 1.5): retries of many clients do not line up
    uint32_t r;
    aip_random_bytes (&r, sizeof r);
    return ms / 2 + (int) (r % (uint32_t) (ms > 0 ? ms : 1));
}

static void
s_room_free (void **item)
{
    s_room_t *r = (s_room_t *) *item;
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
    s_outmsg_t *m = (s_outmsg_t *) *item;
    if (m) {
        free (m->content);
        free (m);
        *item = NULL;
    }
}

static void
s_waiter_free (void **item)
{
    s_waiter_t *w = (s_waiter_t *) *item;
    if (w) {
        json_decref (w->data);
        free (w);
        *item = NULL;
    }
}

static void
s_joinreq_free (s_joinreq_t **join_p)
{
    s_joinreq_t *join = *join_p;
    if (join) {
        json_decref (join->peer);
        json_decref (join->info);
        free (join);
        *join_p = NULL;
    }
}

//  String member of a JSON object, or NULL
static const char *
s_jstr (const json_t *o, const char *key)
{
    return json_string_value (json_object_get (o, key));
}

//  ---------------------------------------------------------------------
//  Replies to our own clients (through the broker)

static void
s_reply_json (s_relay_t *self, uint64_t tag, uint64_t request_id, const json_t *data)
{
    aip_pack_reset (self->pk);
    aip_reply_ok_begin (self->pk, request_id);
    aip_json_pack (self->pk, data);
    size_t size;
    const void *bytes = aip_pack_data (self->pk, &size);
    aip_worker_reply (self->worker, tag, bytes, size);
}

static void
s_reply_error (s_relay_t *self, uint64_t tag, uint64_t request_id, const char *code,
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

static aip_client_t *
s_store (s_relay_t *self)
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
static int
s_store_call (s_relay_t *self, uint64_t id, aip_reply_t *rep)
{
    aip_client_t *store = s_store (self);
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

static uint64_t
s_store_begin (s_relay_t *self, aip_op_t op, size_t nargs)
{
    aip_client_t *store = s_store (self);
    uint64_t id = store ? aip_client_next_id (store) : 1;
    aip_pack_reset (self->pk);
    aip_request_begin (self->pk, id, op, nargs);
    return id;
}

//  ---------------------------------------------------------------------
//  Signatures: the human's own, and those of its AI peers (DESIGN.md §7)

static int
s_signature (s_relay_t *self, const char *room_id, const char *peer_id, const char *tool,
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

static size_t
s_http_write (char *data, size_t size, size_t nmemb, void *user)
{
    s_http_t *http = (s_http_t *) user;
    size_t n = size * nmemb;
    if (http->len + n > AIP_RELAY_MAX_BODY) {
        http->overflow = true;
        return 0;               //  aborts the transfer
    }
    char *grown = (char *) realloc (http->buf, http->len + n + 1);
    if (!grown)
        return 0;
    http->buf = grown;
    memcpy (http->buf + http->len, data, n);
    http->len += n;
    http->buf [http->len] = 0;
    return n;
}

static void
s_http_free (s_http_t **http_p)
{
    s_http_t *http = *http_p;
    if (http) {
        if (http->easy)
            curl_easy_cleanup (http->easy);
        curl_slist_free_all (http->headers);
        free (http->buf);
        s_joinreq_free (&http->join);
        zlistx_destroy (&http->batch);
        free (http);
        *http_p = NULL;
    }
}

//  Start a request: GET when body is NULL, else POST of body (JSON)
static s_http_t *
s_http_start (s_relay_t *self, s_http_kind_t kind, const char *url, const char *token,
              const char *body)
{
    s_http_t *http = (s_http_t *) zmalloc (sizeof (s_http_t));
    http->kind = kind;
    http->easy = curl_easy_init ();
    if (!http->easy) {
        free (http);
        return NULL;
    }
    CURL *e = http->easy;
    curl_easy_setopt (e, CURLOPT_URL, url);
    curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, (long) AIP_RELAY_HTTP_TIMEOUT_MS);
    curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, (long) AIP_RELAY_CONNECT_TIMEOUT_MS);
    curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, s_http_write);
    curl_easy_setopt (e, CURLOPT_WRITEDATA, http);
    curl_easy_setopt (e, CURLOPT_PRIVATE, http);
    curl_easy_setopt (e, CURLOPT_ERRORBUFFER, http->errbuf);
    curl_easy_setopt (e, CURLOPT_USERAGENT, "ai-peer-relayd/" AIP_VERSION_STRING);
    curl_easy_setopt (e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
    http->headers = curl_slist_append (http->headers, "Accept: application/json");
    if (token) {
        char auth [AIP_MAX_NAME + 32];
        snprintf (auth, sizeof auth, "Authorization: Bearer %s", token);
        http->headers = curl_slist_append (http->headers, auth);
    }
    if (body) {
        http->headers = curl_slist_append (http->headers, "Content-Type: application/json");
        curl_easy_setopt (e, CURLOPT_COPYPOSTFIELDS, body);
    }
    curl_easy_setopt (e, CURLOPT_HTTPHEADER, http->headers);
    curl_multi_add_handle (self->multi, e);
    zlistx_add_end (self->transfers, http);
    self->inflight++;
    return http;
}

//  The relay's error text from a JSON error answer, or a fallback
static void
s_http_error_text (s_http_t *http, long status, CURLcode code, char *out, size_t size)
{
    if (code != CURLE_OK) {
        if (http->overflow)
            snprintf (out, size, "the relay's answer is larger than %d bytes", AIP_RELAY_MAX_BODY);
        else
            snprintf (out, size, "%s", *http->errbuf ? http->errbuf : curl_easy_strerror (code));
        return;
    }
    json_t *doc = http->buf ? json_loadb (http->buf, http->len, 0, NULL) : NULL;
    const char *text = doc ? s_jstr (doc, "error") : NULL;
    if (text)
        snprintf (out, size, "%.200s (HTTP %ld)", text, status);
    else
        snprintf (out, size, "HTTP %ld", status);
    json_decref (doc);
}

//  Statuses that retrying cannot fix
static bool
s_status_permanent (long status)
{
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

//  ---------------------------------------------------------------------
//  Rooms

static s_room_t *
s_room_add (s_relay_t *self, const char *id, const char *url, const char *token,
            const char *cursor)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, id);
    if (room) {
        bool moved = !streq (room->url, url) || !streq (room->token, token);
        snprintf (room->url, sizeof room->url, "%s", url);
        snprintf (room->token, sizeof room->token, "%s", token);
        if (cursor && strcmp (cursor, room->cursor) > 0)
            snprintf (room->cursor, sizeof room->cursor, "%s", cursor);
        room->lan = aip_lan_url_is (url);
        if (moved) {
            aip_relay_ws_close (self->ws, id);
            room->ws_state = WS_DOWN;
            room->ws_retry_at = 0;
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
    room = (s_room_t *) zmalloc (sizeof (s_room_t));
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
    zlistx_set_destructor (room->join_waiters, s_waiter_free);
    room->lan = aip_lan_url_is (url);
    zhashx_insert (self->rooms, id, room);
    zsys_info ("relay: syncing room %s with %s", id, url);
    return room;
}

//  (Re)load the public rooms from storaged; forget deleted ones
static void
s_rooms_load (s_relay_t *self)
{
    uint64_t id = s_store_begin (self, AIP_OP_SYNC_ROOMS, 0);
    aip_reply_t rep;
    if (s_store_call (self, id, &rep))
        return;
    if (rep.ok) {
        for (s_room_t *r = (s_room_t *) zhashx_first (self->rooms); r;
             r = (s_room_t *) zhashx_next (self->rooms))
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
        for (s_room_t *r = (s_room_t *) zhashx_first (self->rooms); r;
             r = (s_room_t *) zhashx_next (self->rooms))
            if (!r->listed && !r->fetching && !r->posting && zlistx_size (r->join_waiters) == 0)
                zlistx_add_end (gone, r->id);
        for (char *rid = (char *) zlistx_first (gone); rid; rid = (char *) zlistx_next (gone)) {
            zsys_info ("relay: room %s is gone; no longer synced", rid);
            aip_relay_ws_close (self->ws, rid);
            //  Its outbox went with it (storaged deleted the rows)
            s_outmsg_t *om = (s_outmsg_t *) zlistx_first (self->outbox);
            while (om) {
                if (streq (om->room_id, rid) && !om->inflight) {
                    zhashx_delete (self->outbox_ids, om->id);
                    zlistx_delete (self->outbox, zlistx_cursor (self->outbox));
                    om = (s_outmsg_t *) zlistx_first (self->outbox);
                    continue;
                }
                om = (s_outmsg_t *) zlistx_next (self->outbox);
            }
            zhashx_delete (self->rooms, rid);
        }
        zlistx_destroy (&gone);
    }
    aip_reply_free (&rep);
}

//  Answer the relay.join requests waiting for a room's history
static void
s_join_waiters_done (s_relay_t *self, s_room_t *room, const char *history_error)
{
    s_waiter_t *w;
    while ((w = (s_waiter_t *) zlistx_first (room->join_waiters))) {
        if (history_error)
            json_object_set_new (w->data, "history_error", json_string (history_error));
        s_reply_json (self, w->tag, w->request_id, w->data);
        zlistx_delete (room->join_waiters, zlistx_cursor (room->join_waiters));
    }
}

//  ---------------------------------------------------------------------
//  Receiving: insert remote messages into storaged

//  Pack a msg.send for one relay message; false if it is not acceptable
static bool
s_pack_remote (s_relay_t *self, s_room_t *room, const json_t *m, uint64_t id)
{
    const char *mid = s_jstr (m, "id");
    const char *peer_id = s_jstr (m, "peer_id");
    const char *content = s_jstr (m, "content");
    const char *created_at = s_jstr (m, "created_at");
    const char *peer_name = s_jstr (m, "peer_name");
    const char *peer_tool = s_jstr (m, "peer_tool");
    const char *type = s_jstr (m, "type");
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
    const char *peer_type = s_jstr (m, "peer_type");
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
    aip_pack_map (self->pk, peer_tool && *peer_tool ? 4 : 3);
    aip_pack_kstr (self->pk, "id", peer_id);
    aip_pack_kstr (self->pk, "name", peer_name);
    aip_pack_kstr (self->pk, "type", human ? "human" : "ai");
    if (peer_tool && *peer_tool)
        aip_pack_kstr (self->pk, "tool", peer_tool);
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
static int
s_ingest (s_relay_t *self, s_room_t *room, const json_t *messages)
{
    aip_client_t *store = s_store (self);
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
        const char *mid = s_jstr (m, "id");
        //  The cursor: the relay's time, or a LAN hub's seq (zero-padded,
        //  so that it compares as a string like the times do)
        const char *mark = s_jstr (m, "created_at");
        char seq [32];
        if (room->lan) {
            const json_t *value = json_object_get (m, "seq");
            mark = NULL;
            if (json_is_integer (value) && json_integer_value (value) > 0) {
                snprintf (seq, sizeof seq, "%020" JSON_INTEGER_FORMAT, json_integer_value (value));
                mark = seq;
            }
        }
        if (mark && strlen (mark) <= AIP_MAX_TIME && strcmp (mark, newest) > 0)
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
            const char *mid = s_jstr (json_array_get (messages, i), "id");
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
static void
s_fetch (s_relay_t *self, s_room_t *room)
{
    if (room->fetching) {
        room->fetch_again = true;
        return;
    }
    if (room->lan) {
        s_lan_fetch (self, room);
        return;
    }
    char *since = curl_easy_escape (NULL, *room->cursor ? room->cursor : EPOCH_CURSOR, 0);
    char url [AIP_MAX_URL + AIP_MAX_ID + 256];
    snprintf (url, sizeof url, "%s/rooms/%s/messages?since=%s&limit=%d", room->url, room->id,
              since ? since : "", AIP_RELAY_PAGE);
    curl_free (since);
    s_http_t *http = s_http_start (self, HTTP_FETCH, url, room->token, NULL);
    if (!http)
        return;
    snprintf (http->room_id, sizeof http->room_id, "%s", room->id);
    room->fetching = true;
    room->fetch_again = false;
}

static void
s_fetch_done (s_relay_t *self, s_http_t *http, long status, CURLcode code)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, http->room_id);
    if (!room)
        return;
    room->fetching = false;
    if (room->fetch_stale) {
        room->fetch_stale = false;
        s_fetch (self, room);
        return;
    }
    room->poll_at = aip_clock_ms () + (room->ws_state == WS_UP ? AIP_RELAY_SAFETY_POLL_MS
                                                               : AIP_RELAY_POLL_MS);
    char why [300];
    if (code != CURLE_OK || status != 200) {
        s_http_error_text (http, status, code, why, sizeof why);
        if (room->ok)
            zsys_warning ("relay: room %s: catch-up from %s failed: %s", room->id, room->url, why);
        room->ok = false;
        room->fetch_again = false;      //  the next poll retries
        s_join_waiters_done (self, room, why);
        return;
    }
    json_t *doc = json_loadb (http->buf ? http->buf : "", http->len, 0, NULL);
    json_t *messages = doc ? json_object_get (doc, "messages") : NULL;
    if (!json_is_array (messages)) {
        zsys_warning ("relay: room %s: the relay's answer to a catch-up is not "
                      "{\"messages\": [...]}", room->id);
        room->ok = false;
        json_decref (doc);
        s_join_waiters_done (self, room, "the relay's answer was malformed");
        return;
    }
    if (!room->ok) {
        zsys_info ("relay: room %s: relay %s reachable", room->id, room->url);
        s_outbox_retry_now (self, room->id);
    }
    room->ok = true;
    char before [AIP_MAX_TIME + 1];
    snprintf (before, sizeof before, "%s", room->cursor);
    int stored = s_ingest (self, room, messages);
    bool full = json_array_size (messages) >= AIP_RELAY_PAGE;
    bool advanced = strcmp (room->cursor, before) > 0;
    json_decref (doc);
    if (stored >= 0 && ((full && advanced) || room->fetch_again))
        s_fetch (self, room);           //  more pages, or asked again meanwhile
    else
        s_join_waiters_done (self, room, stored < 0 ? "could not store the history" : NULL);
}

//  One WebSocket message: {"type":"message","data":{...}}
static void
s_ws_message (s_relay_t *self, const char *room_id, const char *text, size_t len)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, room_id);
    if (!room)
        return;
    json_t *doc = json_loadb (text, len, 0, NULL);
    if (!doc) {
        //  The relay's "pong" and other non-JSON text are not messages
        return;
    }
    const json_t *data = json_object_get (doc, "data");
    if (streq (s_jstr (doc, "type") ? s_jstr (doc, "type") : "", "message") && json_is_object (data)) {
        json_t *one = json_array ();
        json_array_append (one, (json_t *) data);
        if (s_ingest (self, room, one) < 0)
            s_fetch (self, room);       //  not stored: the catch-up will bring it
        json_decref (one);
    }
    json_decref (doc);
}

static void
s_ws_event (s_relay_t *self)
{
    zmsg_t *msg = zmsg_recv (aip_relay_ws_sock (self->ws));
    if (!msg)
        return;
    char *event = zmsg_popstr (msg);
    char *room_id = zmsg_popstr (msg);
    s_room_t *room = room_id ? (s_room_t *) zhashx_lookup (self->rooms, room_id) : NULL;
    if (event && room) {
        if (streq (event, "UP")) {
            zsys_info ("relay: room %s: WebSocket connected", room->id);
            room->ws_state = WS_UP;
            room->ws_backoff_ms = AIP_RELAY_WS_RETRY_MIN_MS;
            s_outbox_retry_now (self, room->id);
            s_fetch (self, room);       //  catch up on what happened while away
        }
        else
        if (streq (event, "DOWN")) {
            char *why = zmsg_popstr (msg);
            int delay = s_jitter (room->ws_backoff_ms);
            if (room->ws_state == WS_UP || room->ws_backoff_ms == AIP_RELAY_WS_RETRY_MIN_MS)
                zsys_info ("relay: room %s: WebSocket down (%s); polling, reconnect in %d ms",
                           room->id, why ? why : "?", delay);
            room->ws_state = WS_DOWN;
            room->ws_retry_at = aip_clock_ms () + delay;
            room->ws_backoff_ms = room->ws_backoff_ms * 2 > AIP_RELAY_WS_RETRY_MAX_MS
                                ? AIP_RELAY_WS_RETRY_MAX_MS : room->ws_backoff_ms * 2;
            room->poll_at = 0;
            free (why);
        }
        else
        if (streq (event, "MSG")) {
            zframe_t *text = zmsg_pop (msg);
            if (text)
                s_ws_message (self, room->id, (const char *) zframe_data (text), zframe_size (text));
            zframe_destroy (&text);
        }
    }
    free (event);
    free (room_id);
    zmsg_destroy (&msg);
}

//  WebSocket reconnects and polling, per room
//  Save a room's cursor (the reply is not awaited: a later call skips it)
static void
s_cursor_save (s_relay_t *self, s_room_t *room)
{
    if (!room->cursor_dirty || !s_store (self))
        return;
    s_store_begin (self, AIP_OP_SYNC_CURSOR, 2);
    aip_pack_kstr (self->pk, "room_id", room->id);
    aip_pack_kstr (self->pk, "cursor", room->cursor);
    char err [512];
    if (aip_client_send (self->store, self->pk, err, sizeof err) == 0)
        room->cursor_dirty = false;
}

static void
s_rooms_tick (s_relay_t *self)
{
    int64_t now = aip_clock_ms ();
    for (s_room_t *room = (s_room_t *) zhashx_first (self->rooms); room;
         room = (s_room_t *) zhashx_next (self->rooms)) {
        if (room->cursor_dirty && now >= room->cursor_save_at)
            s_cursor_save (self, room);
        if (room->lan) {
            //  Its held lan.fetch is the push channel: restart it after a failure
            if (!room->fetching && now >= room->poll_at)
                s_fetch (self, room);
            continue;
        }
        if (room->ws_state == WS_DOWN && now >= room->ws_retry_at) {
            room->ws_state = WS_CONNECTING;
            aip_relay_ws_open (self->ws, room->id, room->url, room->token);
        }
        //  Polling: every AIP_RELAY_POLL_MS while the WebSocket is down, and
        //  now and then while it is up, in case it went silent without
        //  closing (the keep-alive takes up to 45 s to notice)
        if (now >= room->poll_at && !room->fetching && self->inflight < AIP_RELAY_MAX_INFLIGHT) {
            room->poll_at = now + (room->ws_state == WS_UP ? AIP_RELAY_SAFETY_POLL_MS
                                                           : AIP_RELAY_POLL_MS);
            s_fetch (self, room);
        }
    }
}

//  ---------------------------------------------------------------------
//  Sending: the outbox

//  Read the outbox: only entries newer than the last read, or (full) all
//  of it, which also finds what an earlier read missed
static void
s_outbox_load (s_relay_t *self, bool full)
{
    self->outbox_dirty = false;
    if (zlistx_size (self->outbox) >= AIP_RELAY_OUTBOX_BATCH)
        return;                 //  enough in hand; the rest comes as these go
    uint64_t id = s_store_begin (self, AIP_OP_OUTBOX_LIST, 2);
    aip_pack_kint (self->pk, "limit", AIP_RELAY_OUTBOX_BATCH);
    aip_pack_kint (self->pk, "after", full ? 0 : self->outbox_seq);
    aip_reply_t rep;
    if (s_store_call (self, id, &rep))
        return;
    const aip_obj_t *messages = rep.ok ? aip_obj_get (rep.data, "messages") : NULL;
    bool unknown_room = false;
    for (size_t i = 0; i < aip_obj_size (messages); i++) {
        const aip_obj_t *m = aip_obj_at (messages, i);
        int64_t seq = aip_obj_get_int (m, "seq", 0);
        if (seq > self->outbox_seq)
            self->outbox_seq = seq;
        char mid [AIP_MAX_ID + 1];
        if (!aip_obj_get_str (m, "id", mid, sizeof mid, NULL) || zhashx_lookup (self->outbox_ids, mid))
            continue;
        s_outmsg_t *om = (s_outmsg_t *) zmalloc (sizeof (s_outmsg_t));
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
        if (!zhashx_lookup (self->rooms, om->room_id))
            unknown_room = true;
    }
    aip_reply_free (&rep);
    if (unknown_room)
        s_rooms_load (self);
}

//  Answer the relay.push requests waiting for msg_id
static void
s_push_waiters_done (s_relay_t *self, const char *msg_id, bool delivered, bool refused,
                     const char *error)
{
    s_waiter_t *w = (s_waiter_t *) zlistx_first (self->push_waiters);
    while (w) {
        if (streq (w->msg_id, msg_id)) {
            json_t *data = json_pack ("{s:b}", "delivered", delivered);
            if (refused)
                json_object_set_new (data, "refused", json_true ());
            if (error)
                json_object_set_new (data, "error", json_string (error));
            s_reply_json (self, w->tag, w->request_id, data);
            json_decref (data);
            zlistx_delete (self->push_waiters, zlistx_cursor (self->push_waiters));
            w = (s_waiter_t *) zlistx_first (self->push_waiters);
            continue;
        }
        w = (s_waiter_t *) zlistx_next (self->push_waiters);
    }
}

//  Remove a message from the outbox (delivered, or refused for good)
static void
s_outmsg_finish (s_relay_t *self, s_outmsg_t *om, bool delivered, const char *error)
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
    s_store_begin (self, AIP_OP_OUTBOX_DONE, 1);
    aip_pack_kstr (self->pk, "id", mid);
    char err [512];
    if (self->store && aip_client_send (self->store, self->pk, err, sizeof err))
        zsys_warning ("relay: storaged: %s", err);
    zhashx_delete (self->outbox_ids, mid);
    void *handle = zlistx_find (self->outbox, om);
    if (handle)
        zlistx_delete (self->outbox, handle);
}

static void
s_outmsg_retry_later (s_relay_t *self, s_outmsg_t *om, const char *why)
{
    if (!streq (om->error, why))
        zsys_warning ("relay: message %s (room %s, peer %s) not delivered: %s; retrying",
                      om->id, om->room_id, om->peer_id, why);
    snprintf (om->error, sizeof om->error, "%s", why);
    om->inflight = false;
    om->next_at = aip_clock_ms () + s_jitter (om->backoff_ms);
    om->backoff_ms = om->backoff_ms * 2 > AIP_RELAY_RETRY_MAX_MS ? AIP_RELAY_RETRY_MAX_MS
                                                                 : om->backoff_ms * 2;
}

//  The relay is back: what waited for it goes now, backoff forgotten
static void
s_outbox_retry_now (s_relay_t *self, const char *room_id)
{
    for (s_outmsg_t *om = (s_outmsg_t *) zlistx_first (self->outbox); om;
         om = (s_outmsg_t *) zlistx_next (self->outbox))
        if (streq (om->room_id, room_id)) {
            om->next_at = 0;
            om->backoff_ms = AIP_RELAY_RETRY_MIN_MS;
        }
}

//  JSON body of a join for a peer
static char *
s_join_body (s_relay_t *self, const char *room_id, const char *token, const char *peer_id,
             const char *name, const char *type, const char *tool, const char *machine,
             const char *kdf)
{
    char sig [AIP_CRYPTO_HEX_SIZE];
    if (s_signature (self, room_id, peer_id, tool, sig))
        return NULL;
    json_t *body = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", peer_id, "name", name,
                              "type", type, "tool", tool ? tool : "", "machine",
                              machine ? machine : "", "token", token, "peer_signature", sig);
    //  An aip1 room's public key parameters, for members who join with the
    //  room id, token and password only (our relay keeps those of its creator)
    if (body && kdf) {
        json_object_set_new (body, "room_cipher", json_string ("aip1"));
        json_object_set_new (body, "room_kdf", json_string (kdf));
    }
    char *text = body ? json_dumps (body, JSON_COMPACT) : NULL;
    json_decref (body);
    return text;
}

//  The outbox drains in order, one message at a time per room; a run of
//  messages of one peer goes in one POST /rooms/{id}/batch when the relay
//  has it (ours does; the original's answers 404, and then singles go).
//  True if a batch went (or the run is one message: false).
static bool
s_deliver_batch (s_relay_t *self, s_room_t *room, s_outmsg_t *head, const char *sig)
{
    if (room->no_batch || room->singles > 0) {
        if (room->singles > 0)
            room->singles--;
        return false;
    }
    json_t *items = json_array ();
    zlistx_t *ids = zlistx_new ();
    zlistx_set_destructor (ids, (zlistx_destructor_fn *) zstr_free);
    size_t bytes = 0;
    //  zlistx_find puts the outbox's cursor on head: walk on from there
    zlistx_find (self->outbox, head);
    for (s_outmsg_t *om = head; om && json_array_size (items) < AIP_RELAY_BATCH;
         om = (s_outmsg_t *) zlistx_next (self->outbox)) {
        if (!streq (om->room_id, room->id))
            continue;
        //  Another peer's message: the order is kept, it goes next
        if (!streq (om->peer_id, head->peer_id) || om->inflight)
            break;
        bytes += strlen (om->content);
        if (json_array_size (items) && bytes > AIP_RELAY_BATCH_BYTES)
            break;
        json_array_append_new (items, json_pack ("{s:s, s:s, s:s, s:s, s:s}", "id", om->id,
                                                 "peer_name", om->peer_name, "peer_tool",
                                                 om->peer_tool, "content", om->content,
                                                 "type", om->type));
        zlistx_add_end (ids, strdup (om->id));
    }
    bool batch = json_array_size (items) > 1;
    char *text = NULL;
    if (batch) {
        json_t *body = json_pack ("{s:s, s:s, s:o}", "peer_id", head->peer_id,
                                  "peer_signature", sig, "messages", items);
        items = NULL;
        text = body ? json_dumps (body, JSON_COMPACT) : NULL;
        json_decref (body);
    }
    json_decref (items);
    char url [AIP_MAX_URL + AIP_MAX_ID + 64];
    snprintf (url, sizeof url, "%s/rooms/%s/batch", room->url, room->id);
    s_http_t *http = text ? s_http_start (self, HTTP_BATCH, url, room->token, text) : NULL;
    free (text);
    if (!http) {
        zlistx_destroy (&ids);
        return false;
    }
    snprintf (http->room_id, sizeof http->room_id, "%s", room->id);
    snprintf (http->msg_id, sizeof http->msg_id, "%s", head->id);
    http->batch = ids;
    for (const char *id = (const char *) zlistx_first (ids); id;
         id = (const char *) zlistx_next (ids)) {
        s_outmsg_t *om = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, id);
        if (om)
            om->inflight = true;
    }
    room->posting = true;
    return true;
}

static void
s_deliver (s_relay_t *self, s_room_t *room, s_outmsg_t *om)
{
    if (room->lan) {
        s_lan_deliver (self, room, om);
        return;
    }
    char url [AIP_MAX_URL + AIP_MAX_ID + 64];
    char sig [AIP_CRYPTO_HEX_SIZE];
    if (s_signature (self, room->id, om->peer_id, om->peer_tool, sig)) {
        s_outmsg_finish (self, om, false, "this machine cannot sign for that peer (no secret "
                         "for it in identity.json)");
        return;
    }
    if (!zhashx_lookup (room->joined, om->peer_id)) {
        //  Each peer joins the relay room with its own signature first
        char host [AIP_MAX_NAME + 1];
        aip_hostname (host, sizeof host);
        char *body = s_join_body (self, room->id, room->token, om->peer_id, om->peer_name,
                                  om->peer_type, om->peer_tool, host, NULL);
        snprintf (url, sizeof url, "%s/rooms/%s/join", room->url, room->id);
        s_http_t *http = body ? s_http_start (self, HTTP_PEER_JOIN, url, room->token, body) : NULL;
        free (body);
        if (!http)
            return;
        snprintf (http->room_id, sizeof http->room_id, "%s", room->id);
        snprintf (http->msg_id, sizeof http->msg_id, "%s", om->id);
    }
    else
    if (s_deliver_batch (self, room, om, sig))
        return;
    else {
        json_t *body = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", om->id,
                                  "peer_id", om->peer_id, "peer_name", om->peer_name,
                                  "peer_tool", om->peer_tool, "content", om->content,
                                  "type", om->type, "peer_signature", sig);
        char *text = body ? json_dumps (body, JSON_COMPACT) : NULL;
        json_decref (body);
        snprintf (url, sizeof url, "%s/rooms/%s/messages", room->url, room->id);
        s_http_t *http = text ? s_http_start (self, HTTP_POST, url, room->token, text) : NULL;
        free (text);
        if (!http)
            return;
        snprintf (http->room_id, sizeof http->room_id, "%s", room->id);
        snprintf (http->msg_id, sizeof http->msg_id, "%s", om->id);
    }
    om->inflight = true;
    room->posting = true;
}

//  Post what is due: in order, one message at a time per room
static void
s_outbox_flush (s_relay_t *self)
{
    int64_t now = aip_clock_ms ();
    zhashx_t *seen = zhashx_new ();             //  rooms whose head we passed
    zhashx_set_destructor (seen, NULL);
    zhashx_set_duplicator (seen, NULL);
    zlistx_t *due = zlistx_new ();              //  borrowed s_outmsg_t
    for (s_outmsg_t *om = (s_outmsg_t *) zlistx_first (self->outbox); om;
         om = (s_outmsg_t *) zlistx_next (self->outbox)) {
        if (zhashx_lookup (seen, om->room_id))
            continue;
        zhashx_insert (seen, om->room_id, (void *) "");
        s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, om->room_id);
        if (room && !room->posting && !om->inflight && now >= om->next_at)
            zlistx_add_end (due, om);
    }
    for (s_outmsg_t *om = (s_outmsg_t *) zlistx_first (due); om;
         om = (s_outmsg_t *) zlistx_next (due)) {
        if (self->inflight >= AIP_RELAY_MAX_INFLIGHT)
            break;
        s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, om->room_id);
        s_deliver (self, room, om);
    }
    zlistx_destroy (&due);
    zhashx_destroy (&seen);
}

static void
s_post_done (s_relay_t *self, s_http_t *http, long status, CURLcode code)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, http->room_id);
    s_outmsg_t *om = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, http->msg_id);
    if (room)
        room->posting = false;
    if (!om)
        return;
    om->inflight = false;
    char why [300];
    bool ok = code == CURLE_OK && status >= 200 && status < 300;
    if (!ok)
        s_http_error_text (http, status, code, why, sizeof why);
    if (room)
        room->ok = ok || (code == CURLE_OK && status < 500 && status != 429);
    if (http->kind == HTTP_PEER_JOIN) {
        if (ok) {
            if (room)
                zhashx_insert (room->joined, om->peer_id, (void *) "");
            om->next_at = 0;
            om->backoff_ms = AIP_RELAY_RETRY_MIN_MS;
        }
        else
        if (code == CURLE_OK && s_status_permanent (status)) {
            char message [400];
            snprintf (message, sizeof message, "the relay refused peer %s: %s", om->peer_id, why);
            zsys_warning ("relay: message %s: %s; dropped from the outbox", om->id, message);
            s_outmsg_finish (self, om, false, message);
        }
        else
            s_outmsg_retry_later (self, om, why);
        return;
    }
    if (ok) {
        if (*om->error)
            zsys_info ("relay: message %s delivered after retries", om->id);
        if (room)
            zhashx_insert (room->recent, om->id, (void *) "");
        s_outmsg_finish (self, om, true, NULL);
    }
    else
    if (code == CURLE_OK && status == 403 && http->buf && strstr (http->buf, "not registered")) {
        //  The relay forgot the peer (or never knew it): join again
        if (room)
            zhashx_delete (room->joined, om->peer_id);
        s_outmsg_retry_later (self, om, why);
        om->next_at = 0;
    }
    else
    if (code == CURLE_OK && s_status_permanent (status)) {
        char message [400];
        snprintf (message, sizeof message, "the relay refused the message: %s", why);
        zsys_warning ("relay: message %s: %s; dropped from the outbox", om->id, message);
        s_outmsg_finish (self, om, false, message);
    }
    else
        s_outmsg_retry_later (self, om, why);
}

//  The answer to a batch: {results: [{status, message | error}]} in order
static void
s_batch_done (s_relay_t *self, s_http_t *http, long status, CURLcode code)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, http->room_id);
    if (room)
        room->posting = false;
    size_t count = zlistx_size (http->batch);
    s_outmsg_t *head = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, http->msg_id);
    for (const char *id = (const char *) zlistx_first (http->batch); id;
         id = (const char *) zlistx_next (http->batch)) {
        s_outmsg_t *om = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, id);
        if (om)
            om->inflight = false;
    }
    char why [300];
    bool ok = code == CURLE_OK && status == 200;
    if (!ok)
        s_http_error_text (http, status, code, why, sizeof why);
    if (room)
        room->ok = ok || (code == CURLE_OK && status < 500 && status != 429);
    if (code == CURLE_OK && (status == 404 || status == 405)) {
        //  The original's relay: no batches there, singles from now on
        zsys_info ("relay: room %s: %s has no batch endpoint; posting one by one",
                   http->room_id, room ? room->url : "the relay");
        if (room)
            room->no_batch = true;
        if (head)
            head->next_at = 0;
        return;
    }
    json_t *doc = ok && http->buf ? json_loadb (http->buf, http->len, 0, NULL) : NULL;
    json_t *results = json_object_get (doc, "results");
    if (!ok || !json_is_array (results)) {
        if (ok)
            snprintf (why, sizeof why, "the relay's answer to a batch has no results");
        if (room && code == CURLE_OK && status == 403 && http->buf
        &&  strstr (http->buf, "not registered") && head)
            zhashx_delete (room->joined, head->peer_id);
        else
        if (room && code == CURLE_OK && s_status_permanent (status))
            room->singles = (int) count;    //  one of them is refused: find which
        if (head)
            s_outmsg_retry_later (self, head, why);
        json_decref (doc);
        return;
    }
    size_t i = 0;
    for (const char *id = (const char *) zlistx_first (http->batch); id;
         id = (const char *) zlistx_next (http->batch), i++) {
        s_outmsg_t *om = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, id);
        const json_t *result = json_array_get (results, i);
        long item_status = (long) json_integer_value (json_object_get (result, "status"));
        if (!om)
            continue;
        if (item_status >= 200 && item_status < 300) {
            if (room)
                zhashx_insert (room->recent, om->id, (void *) "");
            s_outmsg_finish (self, om, true, NULL);
        }
        else
        if (item_status >= 400 && item_status < 500 && item_status != 429) {
            const char *error = json_string_value (json_object_get (result, "error"));
            char message [400];
            snprintf (message, sizeof message, "the relay refused the message: %s (HTTP %ld)",
                      error ? error : "refused", item_status);
            zsys_warning ("relay: message %s: %s; dropped from the outbox", om->id, message);
            s_outmsg_finish (self, om, false, message);
        }
        else {
            //  Rate-limited or missing: it and what follows go again later
            const char *error = json_string_value (json_object_get (result, "error"));
            s_outmsg_retry_later (self, om, error ? error : "the relay did not take it yet");
            break;
        }
    }
    json_decref (doc);
}

//  ---------------------------------------------------------------------
//  relay.join: probe, join, create the local room, pull the history

static void
s_join_fail (s_relay_t *self, s_joinreq_t *join, const char *fmt, ...)
{
    char message [600];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    s_reply_error (self, join->tag, join->request_id, AIP_ERR_INVALID, message);
}

static void
s_join_post (s_relay_t *self, s_joinreq_t *join)
{
    const json_t *p = join->peer;
    char *body = s_join_body (self, join->room_id, join->token, s_jstr (p, "id"),
                              s_jstr (p, "name"), s_jstr (p, "type"), s_jstr (p, "tool"),
                              s_jstr (p, "machine"), aip_roomkey_kdf (join->key));
    if (!body) {
        s_join_fail (self, join, "cannot sign as peer %s: identity.json has no peer_secret",
                     s_jstr (p, "id"));
        s_joinreq_free (&join);
        return;
    }
    char url [AIP_MAX_URL + AIP_MAX_ID + 64];
    snprintf (url, sizeof url, "%s/rooms/%s/join", join->url, join->room_id);
    s_http_t *http = s_http_start (self, HTTP_JOIN, url, NULL, body);
    free (body);
    if (!http) {
        s_join_fail (self, join, "cannot start an HTTP request");
        s_joinreq_free (&join);
        return;
    }
    http->join = join;
}

static void
s_join_http_done (s_relay_t *self, s_http_t *http, long status, CURLcode code)
{
    s_joinreq_t *join = http->join;
    http->join = NULL;
    char why [300];
    if (http->kind == HTTP_INFO) {
        if (code != CURLE_OK) {
            s_http_error_text (http, status, code, why, sizeof why);
            s_join_fail (self, join, "cannot reach the relay at %s: %s", join->url, why);
            s_joinreq_free (&join);
            return;
        }
        json_t *doc = status == 200 && http->buf ? json_loadb (http->buf, http->len, 0, NULL) : NULL;
        join->info = json_is_object (doc) ? doc : json_null ();
        if (!json_is_object (doc))
            json_decref (doc);
        if (join->info_only) {
            json_t *data = json_pack ("{s:O}", "remote_info", join->info);
            s_reply_json (self, join->tag, join->request_id, data);
            json_decref (data);
            s_joinreq_free (&join);
            return;
        }
        s_join_post (self, join);
        return;
    }
    //  HTTP_JOIN
    if (code != CURLE_OK || status < 200 || status >= 300) {
        s_http_error_text (http, status, code, why, sizeof why);
        if (code != CURLE_OK)
            s_join_fail (self, join, "cannot reach the relay at %s: %s", join->url, why);
        else
            s_join_fail (self, join, "the relay %s refused to let %s join room %s: %s",
                         join->url, s_jstr (join->peer, "id"), join->room_id, why);
        s_joinreq_free (&join);
        return;
    }
    s_join_accepted (self, join);
}

//  A room joined anew after it was deleted here (a join refused for a wrong
//  password, room delete) may still be in our table with the cursor and
//  the ids of what was deleted: the new room must pull its whole history
static void
s_room_forget_deleted (s_relay_t *self, const char *room_id)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, room_id);
    if (!room)
        return;
    uint64_t id = s_store_begin (self, AIP_OP_ROOM_GET, 1);
    aip_pack_kstr (self->pk, "id", room_id);
    aip_reply_t rep;
    if (s_store_call (self, id, &rep))
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
    if (room->fetching) {
        if (room->lan) {
            room->fetching = false;
            room->fetch_id = 0;
        }
        else
            room->fetch_stale = true;
    }
}

//  The hub (relay or LAN) let us in: create the local room (relay.join with
//  a name), start syncing it, answer once its history is in. Frees join.
static void
s_join_accepted (s_relay_t *self, s_joinreq_t *join)
{
    json_t *data = json_object ();
    if (join->create)
        s_room_forget_deleted (self, join->room_id);
    if (join->create) {
        //  Only now that the relay accepted us does the room exist here
        uint64_t id = s_store_begin (self, AIP_OP_ROOM_CREATE, *join->key ? 7 : 6);
        aip_pack_kstr (self->pk, "id", join->room_id);
        if (*join->key)
            aip_pack_kstr (self->pk, "key", join->key);
        aip_pack_kstr (self->pk, "name", *join->name ? join->name : join->room_id);
        aip_pack_kstr (self->pk, "mode", join->lan ? "lan" : "public");
        aip_pack_kstr (self->pk, "relay_url", join->url);
        aip_pack_kstr (self->pk, "token", join->token);
        aip_pack_key (self->pk, "peer");
        aip_json_pack (self->pk, join->peer);
        aip_reply_t rep;
        if (s_store_call (self, id, &rep)) {
            s_join_fail (self, join, "joined on the %s, but storaged did not answer: the "
                         "room was not created here; try again", join->lan ? "hub" : "relay");
            json_decref (data);
            s_joinreq_free (&join);
            return;
        }
        if (!rep.ok) {
            s_join_fail (self, join, "joined on the %s, but the room could not be saved: %s",
                         join->lan ? "hub" : "relay", rep.message);
            aip_reply_free (&rep);
            json_decref (data);
            s_joinreq_free (&join);
            return;
        }
        json_object_set_new (data, "room", aip_json_from_obj (rep.data));
        aip_reply_free (&rep);
    }
    json_object_set_new (data, "joined", json_string (join->room_id));
    json_object_set_new (data, "relay", json_string (join->url));
    json_object_set (data, "remote_info", join->info ? join->info : json_null ());
    s_room_t *room = s_room_add (self, join->room_id, join->url, join->token, NULL);
    if (!room) {
        s_reply_json (self, join->tag, join->request_id, data);
        json_decref (data);
        s_joinreq_free (&join);
        return;
    }
    zhashx_insert (room->joined, s_jstr (join->peer, "id"), (void *) "");
    //  Answer once the history is in (or after a bounded wait)
    s_waiter_t *w = (s_waiter_t *) zmalloc (sizeof (s_waiter_t));
    w->tag = join->tag;
    w->request_id = join->request_id;
    w->deadline = aip_clock_ms () + JOIN_HISTORY_WAIT_MS;
    w->data = data;
    zlistx_add_end (room->join_waiters, w);
    s_fetch (self, room);
    if (room->ws_state == WS_DOWN)
        room->ws_retry_at = 0;
    s_joinreq_free (&join);
}

static void
s_op_join (s_relay_t *self, uint64_t tag, const aip_request_t *req)
{
    s_joinreq_t *join = (s_joinreq_t *) zmalloc (sizeof (s_joinreq_t));
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
    join->lan = aip_lan_url_is (url);
    join->info_only = aip_obj_get_bool (req->args, "info_only", false);
    if (join->lan) {
        char endpoint [AIP_MAX_URL + 1], key [AIP_LAN_KEY_HEX + 1];
        if (aip_lan_url_parse (url, endpoint, sizeof endpoint, key)) {
            s_join_fail (self, join, "'%.200s' is not a LAN hub (peer+lan://host:port?key=<64 "
                         "hex>)", url);
            s_joinreq_free (&join);
            return;
        }
        snprintf (join->url, sizeof join->url, "%s", url);
    }
    else
    if (aip_relay_url_check (url, join->url, sizeof join->url, err, sizeof err)) {
        s_join_fail (self, join, "%s", err);
        s_joinreq_free (&join);
        return;
    }
    if (!aip_token_valid (join->token)) {
        s_join_fail (self, join, "the room token is empty or has characters a token cannot have");
        s_joinreq_free (&join);
        return;
    }
    if (join->lan)
        s_lan_join_send (self, join, aip_obj_get_bool (req->args, "probe", false)
                                     || join->info_only ? LAN_INFO : LAN_JOIN);
    else
    if (aip_obj_get_bool (req->args, "probe", false) || join->info_only) {
        char info_url [AIP_MAX_URL + AIP_MAX_ID + 64];
        snprintf (info_url, sizeof info_url, "%s/rooms/%s/info", join->url, join->room_id);
        s_http_t *http = s_http_start (self, HTTP_INFO, info_url, NULL, NULL);
        if (!http) {
            s_join_fail (self, join, "cannot start an HTTP request");
            s_joinreq_free (&join);
            return;
        }
        http->join = join;
    }
    else
        s_join_post (self, join);
}

//  ---------------------------------------------------------------------
//  LAN rooms, joiner side: a CURVE DEALER per hub (the hub's key pinned
//  from the connection string), requests matched to answers by id, each
//  with a deadline. The hub pushes by holding a lan.fetch until there is
//  something new; every reconnect catches up from the cursor (the hub's
//  seq) and retries what was in flight (ids make that harmless).

static s_lanlink_t *
s_lan_link (s_relay_t *self, const char *url)
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
s_hubwait_free (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_lanreq_free (void **item)
{
    s_lanreq_t *r = (s_lanreq_t *) *item;
    if (r) {
        s_joinreq_free (&r->join);
        free (r);
        *item = NULL;
    }
}

//  Start a request to a hub in self->pk; returns its id
static uint64_t
s_lan_begin (s_relay_t *self, aip_op_t op, size_t nargs)
{
    uint64_t id = ++self->lan_next_id;
    aip_pack_reset (self->pk);
    aip_request_begin (self->pk, id, op, nargs);
    return id;
}

//  Send the request in self->pk to the hub of url; NULL if it cannot go
static s_lanreq_t *
s_lan_send (s_relay_t *self, const char *url, s_lan_kind_t kind, uint64_t id, int timeout_ms)
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
s_lan_pack_peer (s_relay_t *self, const s_outmsg_t *om)
{
    char host [AIP_MAX_NAME + 1];
    aip_hostname (host, sizeof host);
    aip_pack_map (self->pk, *om->peer_tool ? 5 : 4);
    aip_pack_kstr (self->pk, "id", om->peer_id);
    aip_pack_kstr (self->pk, "name", *om->peer_name ? om->peer_name : om->peer_id);
    aip_pack_kstr (self->pk, "type", streq (om->peer_type, "ai") ? "ai" : "human");
    aip_pack_kstr (self->pk, "machine", host);
    if (*om->peer_tool)
        aip_pack_kstr (self->pk, "tool", om->peer_tool);
}

//  Post an outbox message to its hub (its peer joins first, once)
static void
s_lan_deliver (s_relay_t *self, s_room_t *room, s_outmsg_t *om)
{
    //  The hub holds each peer id to the signature it first joined with
    char sig [AIP_CRYPTO_HEX_SIZE];
    if (s_signature (self, room->id, om->peer_id, om->peer_tool, sig)) {
        s_outmsg_finish (self, om, false, "this machine cannot sign for that peer (no secret "
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
        s_outmsg_retry_later (self, om, "the LAN hub's connection is full");
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
s_lan_fetch (s_relay_t *self, s_room_t *room)
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
s_lan_fetch_done (s_relay_t *self, s_lanreq_t *r, aip_reply_t *rep, const char *why)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, r->room_id);
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
        s_join_waiters_done (self, room, reason);
        return;
    }
    json_t *messages = aip_json_from_obj (aip_obj_get (rep->data, "messages"));
    if (!json_is_array (messages)) {
        zsys_warning ("relay: room %s: the LAN hub's answer to a catch-up has no messages",
                      room->id);
        json_decref (messages);
        room->ok = false;
        room->poll_at = aip_clock_ms () + AIP_RELAY_POLL_MS;
        s_join_waiters_done (self, room, "the LAN hub's answer was malformed");
        return;
    }
    if (!room->ok) {
        zsys_info ("relay: room %s: LAN hub %s reachable", room->id, room->url);
        s_outbox_retry_now (self, room->id);
    }
    room->ok = true;
    int stored = s_ingest (self, room, messages);
    bool full = json_array_size (messages) >= AIP_LAN_PAGE;
    json_decref (messages);
    if (stored < 0) {
        room->poll_at = aip_clock_ms () + AIP_RELAY_POLL_MS;
        s_join_waiters_done (self, room, "could not store the history");
        return;
    }
    if (full)
        room->fetch_again = true;       //  more pages: do not wait for them
    else
        s_join_waiters_done (self, room, NULL);
    s_fetch (self, room);
}

//  True for a hub's answers that will not change on a retry
static bool
s_lan_permanent (const aip_reply_t *rep)
{
    return streq (rep->code, AIP_ERR_INVALID) || streq (rep->code, AIP_ERR_NOT_FOUND)
        || streq (rep->code, AIP_ERR_MALFORMED);
}

static void
s_lan_post_done (s_relay_t *self, s_lanreq_t *r, aip_reply_t *rep, const char *why)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, r->room_id);
    s_outmsg_t *om = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, r->msg_id);
    if (room) {
        room->posting = false;
        room->ok = rep != NULL;
    }
    if (!om)
        return;
    om->inflight = false;
    if (!rep) {
        s_outmsg_retry_later (self, om, why);
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
        s_outmsg_finish (self, om, true, NULL);
    }
    else
    if (s_lan_permanent (rep)) {
        if (r->kind == LAN_PEER_JOIN)
            snprintf (message, sizeof message, "the LAN hub refused peer %s: %s", om->peer_id,
                      rep->message);
        else
            snprintf (message, sizeof message, "the LAN hub refused the message: %s", rep->message);
        zsys_warning ("relay: message %s: %s; dropped from the outbox", om->id, message);
        s_outmsg_finish (self, om, false, message);
    }
    else
        s_outmsg_retry_later (self, om, rep->message);
}

//  relay.join of a LAN room: lan.info (probe), then lan.join
static void
s_lan_join_send (s_relay_t *self, s_joinreq_t *join, s_lan_kind_t kind)
{
    uint64_t id;
    if (kind == LAN_INFO) {
        id = s_lan_begin (self, AIP_OP_LAN_INFO, 1);
        aip_pack_kstr (self->pk, "room_id", join->room_id);
    }
    else {
        char sig [AIP_CRYPTO_HEX_SIZE];
        if (s_signature (self, join->room_id, s_jstr (join->peer, "id"),
                         s_jstr (join->peer, "tool"), sig)) {
            s_join_fail (self, join, "cannot sign as peer %s: identity.json has no peer_secret",
                         s_jstr (join->peer, "id"));
            s_joinreq_free (&join);
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
        s_join_fail (self, join, "cannot talk to the LAN hub %s", join->url);
        s_joinreq_free (&join);
        return;
    }
    r->join = join;
}

static void
s_lan_join_done (s_relay_t *self, s_lanreq_t *r, aip_reply_t *rep, const char *why)
{
    s_joinreq_t *join = r->join;
    r->join = NULL;
    char endpoint [AIP_MAX_URL + 1], key [AIP_LAN_KEY_HEX + 1];
    aip_lan_url_parse (join->url, endpoint, sizeof endpoint, key);
    if (!rep) {
        s_join_fail (self, join, "the LAN hub at %s did not answer (%s): is its daemon running "
                     "in LAN mode there, and are the address and key of the connection string "
                     "right?", endpoint, why);
        s_joinreq_free (&join);
        return;
    }
    if (!rep->ok) {
        if (r->kind == LAN_INFO)
            s_join_fail (self, join, "the LAN hub at %s has no room %s: %s", endpoint,
                         join->room_id, rep->message);
        else
            s_join_fail (self, join, "the LAN hub at %s refused to let %s join room %s: %s",
                         endpoint, s_jstr (join->peer, "id"), join->room_id, rep->message);
        s_joinreq_free (&join);
        return;
    }
    if (r->kind == LAN_INFO) {
        join->info = aip_json_from_obj (rep->data);
        if (join->info_only) {
            json_t *data = json_pack ("{s:O}", "remote_info", join->info);
            s_reply_json (self, join->tag, join->request_id, data);
            json_decref (data);
            s_joinreq_free (&join);
            return;
        }
        s_lan_join_send (self, join, LAN_JOIN);
        return;
    }
    s_join_accepted (self, join);
}

static void
s_lan_done (s_relay_t *self, s_lanreq_t *r, aip_reply_t *rep, const char *why)
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
s_lan_take (s_relay_t *self, uint64_t id, const char *link)
{
    for (s_lanreq_t *r = (s_lanreq_t *) zlistx_first (self->lan_pending); r;
         r = (s_lanreq_t *) zlistx_next (self->lan_pending))
        if (r->id == id && streq (r->link, link))
            return (s_lanreq_t *) zlistx_detach_cur (self->lan_pending);
    return NULL;
}

//  Answers from a hub
static void
s_lan_input (s_relay_t *self, s_lanlink_t *link)
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
s_lan_monitor (s_relay_t *self, s_lanlink_t *link)
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
            for (s_room_t *room = (s_room_t *) zhashx_first (self->rooms); room;
                 room = (s_room_t *) zhashx_next (self->rooms))
                if (room->lan && streq (room->url, link->url)) {
                    room->poll_at = 0;
                    s_outbox_retry_now (self, room->id);
                }
        }
    }
    free (event);
    zmsg_destroy (&msg);
}

//  Requests a hub did not answer in time
static void
s_lan_expire (s_relay_t *self)
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
//  LAN rooms, hub side: lan.info, lan.join, lan.post and lan.fetch from
//  other machines (the broker lets only these through from its LAN socket)

//  The room must be a LAN room this machine hubs, and (need_token) the
//  caller must know its token. 0 with its row in rep, or -1 once answered.
static int
s_hub_room (s_relay_t *self, uint64_t tag, const aip_request_t *req, bool need_token,
            aip_reply_t *rep)
{
    char rid [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "room_id", rid, sizeof rid, "");
    uint64_t id = s_store_begin (self, AIP_OP_ROOM_GET, 1);
    aip_pack_kstr (self->pk, "id", rid);
    if (s_store_call (self, id, rep)) {
        s_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE,
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
        s_reply_error (self, tag, req->id, AIP_ERR_NOT_FOUND, message);
        return -1;
    }
    if (need_token
    &&  (!aip_obj_get_str (rep->data, "token", token, sizeof token, NULL)
         || !aip_obj_get_str (req->args, "token", given, sizeof given, NULL)
         || aip_crypto_compare_str (token, given) != 0)) {
        aip_reply_free (rep);
        zsys_warning ("relay: room %s: a LAN request with a wrong token refused", rid);
        s_reply_error (self, tag, req->id, AIP_ERR_INVALID, "Invalid join token");
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
s_hub_info_cipher (s_relay_t *self, const char *room_id, json_t *info)
{
    if (!room_id || !json_is_true (json_object_get (info, "encrypted")))
        return;
    uint64_t id = s_store_begin (self, AIP_OP_ROOM_GET, 2);
    aip_pack_kstr (self->pk, "id", room_id);
    aip_pack_kbool (self->pk, "with_key", true);
    aip_reply_t rep;
    if (s_store_call (self, id, &rep))
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

static void
s_hub_info (s_relay_t *self, uint64_t tag, const aip_request_t *req)
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
    s_reply_json (self, tag, req->id, data);
    json_decref (data);
    json_decref (room);
    aip_reply_free (&rep);
}

//  Forward a request to storaged with the args packed by the caller after
//  s_store_begin; answer with its data (or its error)
static void
s_hub_forward (s_relay_t *self, uint64_t tag, uint64_t request_id, uint64_t store_id,
               json_t *extra)
{
    aip_reply_t rep;
    if (s_store_call (self, store_id, &rep)) {
        s_reply_error (self, tag, request_id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        json_decref (extra);
        return;
    }
    if (!rep.ok)
        s_reply_error (self, tag, request_id, rep.code, rep.message);
    else {
        json_t *data = aip_json_from_obj (rep.data);
        if (extra && json_is_object (data))
            json_object_update (data, extra);
        s_reply_json (self, tag, request_id, data);
        json_decref (data);
    }
    json_decref (extra);
    aip_reply_free (&rep);
}

//  The peer of a LAN request must be who it was when it first joined (its
//  signature), and not one of the hub's own members. 0, or -1 once answered.
static int
s_hub_claim (s_relay_t *self, uint64_t tag, const aip_request_t *req, const aip_obj_t *peer)
{
    uint64_t id = s_store_begin (self, AIP_OP_MEMBER_CLAIM, 3);
    aip_pack_key (self->pk, "room_id");
    aip_pack_obj (self->pk, aip_req_arg (req, "room_id"));
    aip_pack_key (self->pk, "peer_id");
    aip_pack_obj (self->pk, aip_obj_get (peer, "id"));
    aip_pack_key (self->pk, "signature");
    aip_pack_obj (self->pk, aip_req_arg (req, "peer_signature"));
    aip_reply_t rep;
    if (s_store_call (self, id, &rep)) {
        s_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        return -1;
    }
    int rc = 0;
    if (!rep.ok) {
        char rid [AIP_MAX_ID + 1];
        zsys_warning ("relay: room %s: a LAN request refused: %s",
                      aip_obj_get_str (req->args, "room_id", rid, sizeof rid, "?"), rep.message);
        s_reply_error (self, tag, req->id, rep.code, rep.message);
        rc = -1;
    }
    aip_reply_free (&rep);
    return rc;
}

static void
s_hub_join (s_relay_t *self, uint64_t tag, const aip_request_t *req)
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
    uint64_t id = s_store_begin (self, AIP_OP_ROOM_JOIN, 2);
    aip_pack_key (self->pk, "room_id");
    aip_pack_obj (self->pk, aip_req_arg (req, "room_id"));
    aip_pack_key (self->pk, "peer");
    aip_pack_obj (self->pk, aip_req_arg (req, "peer"));
    s_hub_forward (self, tag, req->id, id, extra);
}

static void
s_hub_post (s_relay_t *self, uint64_t tag, const aip_request_t *req)
{
    aip_reply_t rep;
    if (s_hub_room (self, tag, req, true, &rep))
        return;
    aip_reply_free (&rep);
    const aip_obj_t *m = aip_req_arg (req, "message");
    if (s_hub_claim (self, tag, req, aip_obj_get (m, "peer")))
        return;
    uint64_t id = s_store_begin (self, AIP_OP_MSG_SEND, 7);
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
s_hub_messages (s_relay_t *self, const char *room_id, int64_t after, int64_t limit,
                json_t **messages)
{
    uint64_t id = s_store_begin (self, AIP_OP_MSG_LIST, 3);
    aip_pack_kstr (self->pk, "room_id", room_id);
    aip_pack_kint (self->pk, "after_seq", after);
    aip_pack_kint (self->pk, "limit", limit);
    aip_reply_t rep;
    if (s_store_call (self, id, &rep))
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
s_hub_fetch_answer (s_relay_t *self, uint64_t tag, uint64_t request_id, json_t *messages,
                    int64_t after)
{
    size_t count = json_array_size (messages);
    json_t *last = count ? json_object_get (json_array_get (messages, count - 1), "seq") : NULL;
    json_t *data = json_pack ("{s:o, s:I}", "messages", messages ? messages : json_array (),
                              "seq", (json_int_t) (json_is_integer (last)
                                                   ? json_integer_value (last) : after));
    s_reply_json (self, tag, request_id, data);
    json_decref (data);
}

static void
s_hub_fetch (s_relay_t *self, uint64_t tag, const aip_request_t *req)
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
        s_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        return;
    }
    if (json_array_size (messages) || wait_ms <= 0) {
        s_hub_fetch_answer (self, tag, req->id, messages, after);
        return;
    }
    json_decref (messages);
    if (zlistx_size (self->hub_waiters) >= HUB_MAX_HELD) {
        s_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE, "this hub holds too many "
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
static void
s_hub_wake (s_relay_t *self, const char *room_id)
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

static void
s_hub_expire (s_relay_t *self)
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

//  ---------------------------------------------------------------------
//  relay.push and relay.status

static void
s_op_push (s_relay_t *self, uint64_t tag, const aip_request_t *req)
{
    char mid [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "id", mid, sizeof mid, "");
    s_outmsg_t *om = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, mid);
    if (!om) {
        s_outbox_load (self, false);
        om = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, mid);
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
        s_reply_json (self, tag, req->id, data);
        json_decref (data);
        return;
    }
    //  Someone is waiting: try now, whatever the backoff said
    if (!om->inflight)
        om->next_at = 0;
    int64_t wait_ms = aip_obj_get_int (req->args, "wait_ms", AIP_RELAY_WAIT_MS);
    s_waiter_t *w = (s_waiter_t *) zmalloc (sizeof (s_waiter_t));
    w->tag = tag;
    w->request_id = req->id;
    snprintf (w->msg_id, sizeof w->msg_id, "%s", mid);
    w->deadline = aip_clock_ms () + wait_ms;
    zlistx_add_end (self->push_waiters, w);
    s_outbox_flush (self);
}

static void
s_op_status (s_relay_t *self, uint64_t tag, const aip_request_t *req)
{
    char rid [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "id", rid, sizeof rid, "");
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, rid);
    if (!room) {
        s_rooms_load (self);
        room = (s_room_t *) zhashx_lookup (self->rooms, rid);
    }
    if (!room) {
        s_reply_error (self, tag, req->id, AIP_ERR_NOT_FOUND, "not a public room");
        return;
    }
    size_t queued = 0;
    for (s_outmsg_t *om = (s_outmsg_t *) zlistx_first (self->outbox); om;
         om = (s_outmsg_t *) zlistx_next (self->outbox))
        if (streq (om->room_id, rid))
            queued++;
    json_t *data = json_pack ("{s:b, s:b, s:I, s:s, s:b}", "ok", room->ok, "websocket",
                              room->ws_state == WS_UP, "queued", (json_int_t) queued, "cursor",
                              room->cursor, "lan", room->lan);
    s_reply_json (self, tag, req->id, data);
    json_decref (data);
}

static void
s_handle_request (s_relay_t *self, uint64_t tag, zframe_t *body)
{
    aip_request_t req;
    uint64_t id;
    char err [320];
    if (aip_request_decode (zframe_data (body), zframe_size (body), &req, &id, err, sizeof err)) {
        char message [400];
        snprintf (message, sizeof message, "malformed request: %s", err);
        s_reply_error (self, tag, id, AIP_ERR_MALFORMED, message);
        return;
    }
    switch (req.op) {
        case AIP_OP_RELAY_JOIN:   s_op_join (self, tag, &req); break;
        case AIP_OP_RELAY_PUSH:   s_op_push (self, tag, &req); break;
        case AIP_OP_RELAY_STATUS: s_op_status (self, tag, &req); break;
        case AIP_OP_LAN_INFO:     s_hub_info (self, tag, &req); break;
        case AIP_OP_LAN_JOIN:     s_hub_join (self, tag, &req); break;
        case AIP_OP_LAN_POST:     s_hub_post (self, tag, &req); break;
        case AIP_OP_LAN_FETCH:    s_hub_fetch (self, tag, &req); break;
        default:
            s_reply_error (self, tag, req.id, AIP_ERR_INVALID, "not a relay operation");
    }
    aip_request_free (&req);
}

//  ---------------------------------------------------------------------
//  The loop

static void
s_http_completed (s_relay_t *self)
{
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read (self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        s_http_t *http = NULL;
        curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &http);
        long status = 0;
        curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle (self->multi, easy);
        void *handle = zlistx_find (self->transfers, http);
        if (handle)
            zlistx_detach (self->transfers, handle);
        self->inflight--;
        switch (http->kind) {
            case HTTP_INFO:
            case HTTP_JOIN:       s_join_http_done (self, http, status, code); break;
            case HTTP_PEER_JOIN:
            case HTTP_POST:       s_post_done (self, http, status, code); break;
            case HTTP_BATCH:      s_batch_done (self, http, status, code); break;
            case HTTP_FETCH:      s_fetch_done (self, http, status, code); break;
        }
        s_http_free (&http);
    }
}

static void
s_waiters_expire (s_relay_t *self)
{
    int64_t now = aip_clock_ms ();
    s_waiter_t *w = (s_waiter_t *) zlistx_first (self->push_waiters);
    while (w) {
        if (now >= w->deadline) {
            s_outmsg_t *om = (s_outmsg_t *) zhashx_lookup (self->outbox_ids, w->msg_id);
            json_t *data = json_pack ("{s:b, s:s}", "delivered", 0, "error",
                                      om && *om->error ? om->error : "no answer from the relay yet");
            s_reply_json (self, w->tag, w->request_id, data);
            json_decref (data);
            zlistx_delete (self->push_waiters, zlistx_cursor (self->push_waiters));
            w = (s_waiter_t *) zlistx_first (self->push_waiters);
            continue;
        }
        w = (s_waiter_t *) zlistx_next (self->push_waiters);
    }
    for (s_room_t *room = (s_room_t *) zhashx_first (self->rooms); room;
         room = (s_room_t *) zhashx_next (self->rooms)) {
        s_waiter_t *jw = (s_waiter_t *) zlistx_first (room->join_waiters);
        if (jw && now >= jw->deadline)
            s_join_waiters_done (self, room, "the history is still being fetched");
    }
    s_lan_expire (self);
    s_hub_expire (self);
}

static void
s_relay_destroy (s_relay_t **self_p)
{
    s_relay_t *self = *self_p;
    if (!self)
        return;
    aip_relay_ws_destroy (&self->ws);
    if (self->transfers) {
        s_http_t *http;
        while ((http = (s_http_t *) zlistx_detach (self->transfers, NULL))) {
            curl_multi_remove_handle (self->multi, http->easy);
            s_http_free (&http);
        }
        zlistx_destroy (&self->transfers);
    }
    if (self->multi)
        curl_multi_cleanup (self->multi);
    aip_worker_destroy (&self->worker);
    aip_client_destroy (&self->store);
    zsock_destroy (&self->events);
    zhashx_destroy (&self->rooms);
    zhashx_destroy (&self->outbox_ids);
    zlistx_destroy (&self->outbox);
    zlistx_destroy (&self->push_waiters);
    zhashx_destroy (&self->outcomes);
    zlistx_destroy (&self->lan_pending);
    zlistx_destroy (&self->hub_waiters);
    zhashx_destroy (&self->links);
    zcert_destroy (&self->lan_cert);
    aip_pack_destroy (&self->pk);
    sodium_memzero (&self->identity, sizeof self->identity);
    free (self);
    *self_p = NULL;
}

void
aip_relay (zsock_t *pipe, void *args)
{
    aip_relay_args_t *a = (aip_relay_args_t *) args;
    s_relay_t *self = (s_relay_t *) zmalloc (sizeof (s_relay_t));
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
    zlistx_set_destructor (self->push_waiters, s_waiter_free);
    self->transfers = zlistx_new ();
    self->outcomes = zhashx_new ();
    zhashx_set_destructor (self->outcomes, (zhashx_destructor_fn *) zstr_free);
    self->links = zhashx_new ();
    zhashx_set_destructor (self->links, s_lanlink_free);
    self->lan_pending = zlistx_new ();
    zlistx_set_destructor (self->lan_pending, s_lanreq_free);
    self->hub_waiters = zlistx_new ();
    zlistx_set_destructor (self->hub_waiters, s_hubwait_free);
    char err [512];
    if (aip_identity_load (self->home, &self->identity, err, sizeof err) == 0)
        self->identity_ok = true;
    else
        zsys_error ("relay: %s: cannot sign for any peer", err);
    self->multi = curl_multi_init ();
    self->ws = aip_relay_ws_new ();
    char events [AIP_PATH_MAX];
    if (!self->multi || !self->ws
    ||  aip_home_endpoint (self->home, "events", events, sizeof events, err, sizeof err)) {
        zsys_error ("relay: cannot start (HTTP or WebSocket set-up failed)");
        zsock_signal (pipe, 1);
        s_relay_destroy (&self);
        return;
    }
    curl_multi_setopt (self->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) AIP_RELAY_MAX_INFLIGHT);
    //  "outbox": new local messages to deliver; "room.": messages committed
    //  here, which wake the lan.fetch requests this machine holds as a hub
    self->events = zsock_new_sub (events, "outbox");
    if (self->events)
        zsock_set_subscribe (self->events, "room.");
    self->worker = aip_worker_new (a->endpoint, AIP_SVC_RELAY, RELAY_SLOTS, "relayd");
    zsock_signal (pipe, 0);
    zsys_info ("relay: serving (identity %s)", self->identity_ok ? self->identity.id : "none");
    self->outbox_dirty = true;
    self->rescan_at = 0;

    while (!self->terminated) {
        //  zmq sockets + libcurl's sockets in one poll
        zmq_pollitem_t items [4 + 2 * LAN_MAX_LINKS + FD_SETSIZE / 8];
        s_lanlink_t *polled [LAN_MAX_LINKS];
        int n = 0;
        items [n++] = (zmq_pollitem_t) { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 };
        items [n++] = (zmq_pollitem_t) { zsock_resolve (aip_worker_sock (self->worker)), 0, ZMQ_POLLIN, 0 };
        items [n++] = (zmq_pollitem_t) { zsock_resolve (self->events), 0, ZMQ_POLLIN, 0 };
        items [n++] = (zmq_pollitem_t) { zsock_resolve (aip_relay_ws_sock (self->ws)), 0, ZMQ_POLLIN, 0 };
        int nlinks = 0;
        for (s_lanlink_t *link = (s_lanlink_t *) zhashx_first (self->links);
             link && nlinks < LAN_MAX_LINKS; link = (s_lanlink_t *) zhashx_next (self->links)) {
            polled [nlinks++] = link;
            items [n++] = (zmq_pollitem_t) { zsock_resolve (link->sock), 0, ZMQ_POLLIN, 0 };
            items [n++] = (zmq_pollitem_t) { zsock_resolve (link->monitor), 0, ZMQ_POLLIN, 0 };
        }
        fd_set rd, wr, ex;
        FD_ZERO (&rd);
        FD_ZERO (&wr);
        FD_ZERO (&ex);
        int maxfd = -1;
        curl_multi_fdset (self->multi, &rd, &wr, &ex, &maxfd);
        for (int fd = 0; fd <= maxfd && n < (int) (sizeof items / sizeof items [0]); fd++) {
            short events = (FD_ISSET (fd, &rd) ? ZMQ_POLLIN : 0) | (FD_ISSET (fd, &wr) ? ZMQ_POLLOUT : 0)
                         | (FD_ISSET (fd, &ex) ? ZMQ_POLLERR : 0);
            if (events)
                items [n++] = (zmq_pollitem_t) { NULL, fd, events, 0 };
        }
        long curl_timeout = -1;
        curl_multi_timeout (self->multi, &curl_timeout);
        long timeout = aip_worker_timeout (self->worker);
        if (timeout > TICK_MS)
            timeout = TICK_MS;
        if (curl_timeout >= 0 && curl_timeout < timeout)
            timeout = curl_timeout;
        if (self->inflight > 0 && maxfd < 0 && timeout > 10)
            timeout = 10;           //  curl is resolving or waiting: look again soon
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
            if (topic && strncmp (topic, "room.", 5) == 0) {
                if (zlistx_size (self->hub_waiters))
                    s_hub_wake (self, topic + 5);
            }
            else
                self->outbox_dirty = true;
            free (topic);
            zmsg_destroy (&event);
        }
        for (int i = 0; i < nlinks; i++) {
            if (items [4 + 2 * i].revents & ZMQ_POLLIN)
                s_lan_input (self, polled [i]);
            if (items [5 + 2 * i].revents & ZMQ_POLLIN)
                s_lan_monitor (self, polled [i]);
        }
        if (items [3].revents & ZMQ_POLLIN)
            s_ws_event (self);
        int running;
        curl_multi_perform (self->multi, &running);
        s_http_completed (self);
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
    for (s_room_t *room = (s_room_t *) zhashx_first (self->rooms); room;
         room = (s_room_t *) zhashx_next (self->rooms))
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
    //  Jitter stays within [0.5, 1.5) of the delay
    for (int i = 0; i < 1000; i++) {
        int d = s_jitter (1000);
        assert (d >= 500 && d < 1500);
    }
    assert (s_status_permanent (403) && s_status_permanent (400) && !s_status_permanent (429));
    assert (!s_status_permanent (503) && !s_status_permanent (408));
    //  Relay messages: only well-formed ones become msg.send requests
    s_relay_t self;
    memset (&self, 0, sizeof self);
    self.pk = aip_pack_new ();
    s_room_t room;
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
