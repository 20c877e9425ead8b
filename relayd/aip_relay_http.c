/*  aip_relay_http.c — the relay transport: HTTPS to our relay (or the
    original's) through libcurl's multi interface, and the WebSocket
    thread (aip_relay_ws) that pushes new messages. */
#include "aip_relay_int.h"

#include <curl/curl.h>

typedef enum { HTTP_INFO, HTTP_JOIN, HTTP_PEER_JOIN, HTTP_POST, HTTP_BATCH, HTTP_FETCH } s_http_kind_t;

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
    aip_joinreq_t *join;                  //  INFO / JOIN: the request
    zlistx_t *batch;                    //  BATCH: ids of the messages posted, in order
    char errbuf [CURL_ERROR_SIZE];      //  libcurl's explanation
} s_http_t;

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
        aip_relay_joinreq_free (&http->join);
        zlistx_destroy (&http->batch);
        free (http);
        *http_p = NULL;
    }
}

//  Start a request: GET when body is NULL, else POST of body (JSON)
static s_http_t *
s_http_start (aip_relayd_t *self, s_http_kind_t kind, const char *url, const char *token,
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
    const char *text = doc ? aip_relay_jstr (doc, "error") : NULL;
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

//  HTTP: GET /rooms/<id>/messages?since=<cursor>
static void
s_http_fetch (aip_relayd_t *self, aip_sync_room_t *room)
{
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
s_fetch_done (aip_relayd_t *self, s_http_t *http, long status, CURLcode code)
{
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, http->room_id);
    if (!room)
        return;
    room->fetching = false;
    if (room->fetch_stale) {
        room->fetch_stale = false;
        aip_relay_fetch (self, room);
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
        aip_relay_join_waiters_done (self, room, why);
        return;
    }
    json_t *doc = json_loadb (http->buf ? http->buf : "", http->len, 0, NULL);
    json_t *messages = doc ? json_object_get (doc, "messages") : NULL;
    if (!json_is_array (messages)) {
        zsys_warning ("relay: room %s: the relay's answer to a catch-up is not "
                      "{\"messages\": [...]}", room->id);
        room->ok = false;
        json_decref (doc);
        aip_relay_join_waiters_done (self, room, "the relay's answer was malformed");
        return;
    }
    if (!room->ok) {
        zsys_info ("relay: room %s: relay %s reachable", room->id, room->url);
        aip_relay_outbox_retry_now (self, room->id);
    }
    room->ok = true;
    char before [AIP_MAX_TIME + 1];
    snprintf (before, sizeof before, "%s", room->cursor);
    int stored = aip_relay_ingest (self, room, messages);
    bool full = json_array_size (messages) >= AIP_RELAY_PAGE;
    bool advanced = strcmp (room->cursor, before) > 0;
    json_decref (doc);
    if (stored >= 0 && ((full && advanced) || room->fetch_again))
        aip_relay_fetch (self, room);           //  more pages, or asked again meanwhile
    else
        aip_relay_join_waiters_done (self, room, stored < 0 ? "could not store the history" : NULL);
}

//  One WebSocket message: {"type":"message","data":{...}}
static void
s_ws_message (aip_relayd_t *self, const char *room_id, const char *text, size_t len)
{
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, room_id);
    if (!room)
        return;
    json_t *doc = json_loadb (text, len, 0, NULL);
    if (!doc) {
        //  The relay's "pong" and other non-JSON text are not messages
        return;
    }
    const json_t *data = json_object_get (doc, "data");
    if (streq (aip_relay_jstr (doc, "type") ? aip_relay_jstr (doc, "type") : "", "message") && json_is_object (data)) {
        json_t *one = json_array ();
        json_array_append (one, (json_t *) data);
        if (aip_relay_ingest (self, room, one) < 0)
            aip_relay_fetch (self, room);       //  not stored: the catch-up will bring it
        json_decref (one);
    }
    json_decref (doc);
}

static void
s_ws_event (aip_relayd_t *self)
{
    zmsg_t *msg = zmsg_recv (aip_relay_ws_sock (self->ws));
    if (!msg)
        return;
    char *event = zmsg_popstr (msg);
    char *room_id = zmsg_popstr (msg);
    aip_sync_room_t *room = room_id ? (aip_sync_room_t *) zhashx_lookup (self->rooms, room_id) : NULL;
    if (event && room) {
        if (streq (event, "UP")) {
            zsys_info ("relay: room %s: WebSocket connected", room->id);
            room->ws_state = WS_UP;
            room->ws_backoff_ms = AIP_RELAY_WS_RETRY_MIN_MS;
            aip_relay_outbox_retry_now (self, room->id);
            aip_relay_fetch (self, room);       //  catch up on what happened while away
        }
        else
        if (streq (event, "DOWN")) {
            char *why = zmsg_popstr (msg);
            int delay = aip_relay_jitter (room->ws_backoff_ms);
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

//  HTTP: the WebSocket reconnects, and polling
static void
s_http_tick (aip_relayd_t *self, aip_sync_room_t *room, int64_t now)
{
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
        aip_relay_fetch (self, room);
    }
}

//  HTTP: the cursor is the relay's created_at
static void
s_http_cursor_of (const json_t *m, char *out, size_t size)
{
    const char *created_at = aip_relay_jstr (m, "created_at");
    //  Only a time can be a cursor: 'zzzz' or the year 9999 from a relay
    //  would stop every catch-up
    bool ok = created_at && aip_relay_time_cursor_ok (created_at);
    snprintf (out, size, "%s", ok ? created_at : "");
}

//  HTTP: the catch-up in flight asked from a dropped cursor
static void
s_http_fetch_forget (aip_sync_room_t *room)
{
    room->fetch_stale = true;
}

//  JSON body of a join for a peer
static char *
s_join_body (aip_relayd_t *self, const char *room_id, const char *token, const char *peer_id,
             const char *name, const char *type, const char *tool, const char *machine,
             const char *kdf)
{
    char sig [AIP_CRYPTO_HEX_SIZE];
    if (aip_relay_signature (self, room_id, peer_id, tool, sig))
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
s_deliver_batch (aip_relayd_t *self, aip_sync_room_t *room, aip_outmsg_t *head, const char *sig)
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
    for (aip_outmsg_t *om = head; om && json_array_size (items) < AIP_RELAY_BATCH;
         om = (aip_outmsg_t *) zlistx_next (self->outbox)) {
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
        aip_outmsg_t *om = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, id);
        if (om)
            om->inflight = true;
    }
    room->posting = true;
    return true;
}

//  HTTP: POST the message (or a batch of this peer's messages)
static void
s_http_deliver (aip_relayd_t *self, aip_sync_room_t *room, aip_outmsg_t *om)
{
    char url [AIP_MAX_URL + AIP_MAX_ID + 64];
    char sig [AIP_CRYPTO_HEX_SIZE];
    if (aip_relay_signature (self, room->id, om->peer_id, om->peer_tool, sig)) {
        aip_relay_outmsg_finish (self, om, false, "this machine cannot sign for that peer (no secret "
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

static void
s_post_done (aip_relayd_t *self, s_http_t *http, long status, CURLcode code)
{
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, http->room_id);
    aip_outmsg_t *om = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, http->msg_id);
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
            aip_relay_outmsg_finish (self, om, false, message);
        }
        else
            aip_relay_outmsg_retry_later (self, om, why);
        return;
    }
    if (ok) {
        if (*om->error)
            zsys_info ("relay: message %s delivered after retries", om->id);
        if (room)
            zhashx_insert (room->recent, om->id, (void *) "");
        aip_relay_outmsg_finish (self, om, true, NULL);
    }
    else
    if (code == CURLE_OK && status == 403 && http->buf && strstr (http->buf, "not registered")) {
        //  The relay forgot the peer (or never knew it): join again
        if (room)
            zhashx_delete (room->joined, om->peer_id);
        aip_relay_outmsg_retry_later (self, om, why);
        om->next_at = 0;
    }
    else
    if (code == CURLE_OK && s_status_permanent (status)) {
        char message [400];
        snprintf (message, sizeof message, "the relay refused the message: %s", why);
        zsys_warning ("relay: message %s: %s; dropped from the outbox", om->id, message);
        aip_relay_outmsg_finish (self, om, false, message);
    }
    else
        aip_relay_outmsg_retry_later (self, om, why);
}

//  The answer to a batch: {results: [{status, message | error}]} in order
static void
s_batch_done (aip_relayd_t *self, s_http_t *http, long status, CURLcode code)
{
    aip_sync_room_t *room = (aip_sync_room_t *) zhashx_lookup (self->rooms, http->room_id);
    if (room)
        room->posting = false;
    size_t count = zlistx_size (http->batch);
    aip_outmsg_t *head = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, http->msg_id);
    for (const char *id = (const char *) zlistx_first (http->batch); id;
         id = (const char *) zlistx_next (http->batch)) {
        aip_outmsg_t *om = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, id);
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
            aip_relay_outmsg_retry_later (self, head, why);
        json_decref (doc);
        return;
    }
    size_t i = 0;
    for (const char *id = (const char *) zlistx_first (http->batch); id;
         id = (const char *) zlistx_next (http->batch), i++) {
        aip_outmsg_t *om = (aip_outmsg_t *) zhashx_lookup (self->outbox_ids, id);
        const json_t *result = json_array_get (results, i);
        long item_status = (long) json_integer_value (json_object_get (result, "status"));
        if (!om)
            continue;
        if (item_status >= 200 && item_status < 300) {
            if (room)
                zhashx_insert (room->recent, om->id, (void *) "");
            aip_relay_outmsg_finish (self, om, true, NULL);
        }
        else
        if (item_status >= 400 && item_status < 500 && item_status != 429) {
            const char *error = json_string_value (json_object_get (result, "error"));
            char message [400];
            snprintf (message, sizeof message, "the relay refused the message: %s (HTTP %ld)",
                      error ? error : "refused", item_status);
            zsys_warning ("relay: message %s: %s; dropped from the outbox", om->id, message);
            aip_relay_outmsg_finish (self, om, false, message);
        }
        else {
            //  Rate-limited or missing: it and what follows go again later
            const char *error = json_string_value (json_object_get (result, "error"));
            aip_relay_outmsg_retry_later (self, om, error ? error : "the relay did not take it yet");
            break;
        }
    }
    json_decref (doc);
}

static void
s_join_post (aip_relayd_t *self, aip_joinreq_t *join)
{
    const json_t *p = join->peer;
    char *body = s_join_body (self, join->room_id, join->token, aip_relay_jstr (p, "id"),
                              aip_relay_jstr (p, "name"), aip_relay_jstr (p, "type"), aip_relay_jstr (p, "tool"),
                              aip_relay_jstr (p, "machine"), aip_roomkey_kdf (join->key));
    if (!body) {
        aip_relay_join_fail (self, join, "cannot sign as peer %s: identity.json has no peer_secret",
                     aip_relay_jstr (p, "id"));
        aip_relay_joinreq_free (&join);
        return;
    }
    char url [AIP_MAX_URL + AIP_MAX_ID + 64];
    snprintf (url, sizeof url, "%s/rooms/%s/join", join->url, join->room_id);
    s_http_t *http = s_http_start (self, HTTP_JOIN, url, NULL, body);
    free (body);
    if (!http) {
        aip_relay_join_fail (self, join, "cannot start an HTTP request");
        aip_relay_joinreq_free (&join);
        return;
    }
    http->join = join;
}

static void
s_join_http_done (aip_relayd_t *self, s_http_t *http, long status, CURLcode code)
{
    aip_joinreq_t *join = http->join;
    http->join = NULL;
    char why [300];
    if (http->kind == HTTP_INFO) {
        if (code != CURLE_OK) {
            s_http_error_text (http, status, code, why, sizeof why);
            aip_relay_join_fail (self, join, "cannot reach the relay at %s: %s", join->url, why);
            aip_relay_joinreq_free (&join);
            return;
        }
        json_t *doc = status == 200 && http->buf ? json_loadb (http->buf, http->len, 0, NULL) : NULL;
        join->info = json_is_object (doc) ? doc : json_null ();
        if (!json_is_object (doc))
            json_decref (doc);
        if (join->info_only) {
            json_t *data = json_pack ("{s:O}", "remote_info", join->info);
            aip_relay_reply_json (self, join->tag, join->request_id, data);
            json_decref (data);
            aip_relay_joinreq_free (&join);
            return;
        }
        s_join_post (self, join);
        return;
    }
    //  HTTP_JOIN
    if (code != CURLE_OK || status < 200 || status >= 300) {
        s_http_error_text (http, status, code, why, sizeof why);
        if (code != CURLE_OK)
            aip_relay_join_fail (self, join, "cannot reach the relay at %s: %s", join->url, why);
        else
            aip_relay_join_fail (self, join, "the relay %s refused to let %s join room %s: %s",
                         join->url, aip_relay_jstr (join->peer, "id"), join->room_id, why);
        aip_relay_joinreq_free (&join);
        return;
    }
    aip_relay_join_accepted (self, join);
}

//  HTTP: probe the room (GET /info) or join it (POST /join)
static void
s_http_join (aip_relayd_t *self, aip_joinreq_t *join, bool probe)
{
    if (probe) {
        char info_url [AIP_MAX_URL + AIP_MAX_ID + 64];
        snprintf (info_url, sizeof info_url, "%s/rooms/%s/info", join->url, join->room_id);
        s_http_t *http = s_http_start (self, HTTP_INFO, info_url, NULL, NULL);
        if (!http) {
            aip_relay_join_fail (self, join, "cannot start an HTTP request");
            aip_relay_joinreq_free (&join);
            return;
        }
        http->join = join;
    }
    else
        s_join_post (self, join);
}

static void
s_http_completed (aip_relayd_t *self)
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

//  ---------------------------------------------------------------------
//  The transport

static bool
s_http_claims (const char *url)
{
    (void) url;
    return true;                //  the relay transport takes what no other claims
}

//  The WebSocket thread's socket, then libcurl's
static int
s_http_poll_add (aip_relayd_t *self, zmq_pollitem_t *items, int max, long *timeout)
{
    int n = 0;
    if (max < 1)
        return 0;
    items [n++] = (zmq_pollitem_t) { zsock_resolve (aip_relay_ws_sock (self->ws)), 0, ZMQ_POLLIN, 0 };
    fd_set rd, wr, ex;
    FD_ZERO (&rd);
    FD_ZERO (&wr);
    FD_ZERO (&ex);
    int maxfd = -1;
    curl_multi_fdset (self->multi, &rd, &wr, &ex, &maxfd);
    for (int fd = 0; fd <= maxfd && n < max; fd++) {
        short events = (FD_ISSET (fd, &rd) ? ZMQ_POLLIN : 0) | (FD_ISSET (fd, &wr) ? ZMQ_POLLOUT : 0)
                     | (FD_ISSET (fd, &ex) ? ZMQ_POLLERR : 0);
        if (events)
            items [n++] = (zmq_pollitem_t) { NULL, fd, events, 0 };
    }
    long curl_timeout = -1;
    curl_multi_timeout (self->multi, &curl_timeout);
    if (curl_timeout >= 0 && curl_timeout < *timeout)
        *timeout = curl_timeout;
    if (self->inflight > 0 && maxfd < 0 && *timeout > 10)
        *timeout = 10;          //  curl is resolving or waiting: look again soon
    return n;
}

static void
s_http_poll_done (aip_relayd_t *self, zmq_pollitem_t *items, int count)
{
    if (count > 0 && (items [0].revents & ZMQ_POLLIN))
        s_ws_event (self);
    //  libcurl is driven every time round: its timers need it too
    int running;
    curl_multi_perform (self->multi, &running);
    s_http_completed (self);
}

static void
s_http_expire (aip_relayd_t *self)
{
    (void) self;                //  libcurl times its transfers out itself
}

static int
s_http_start_transport (aip_relayd_t *self)
{
    self->transfers = zlistx_new ();
    self->multi = curl_multi_init ();
    self->ws = aip_relay_ws_new ();
    if (!self->multi || !self->ws)
        return -1;
    curl_multi_setopt (self->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) AIP_RELAY_MAX_INFLIGHT);
    return 0;
}

static void
s_http_stop_transport (aip_relayd_t *self)
{
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
    self->multi = NULL;
}

//  The WebSocket goes; the next tick opens one to where the room is now
static void
s_http_forget (aip_relayd_t *self, aip_sync_room_t *room)
{
    aip_relay_ws_close (self->ws, room->id);
    room->ws_state = WS_DOWN;
    room->ws_retry_at = 0;
}

//  A WebSocket that is down reconnects at the next tick
static void
s_http_wake (aip_relayd_t *self, aip_sync_room_t *room)
{
    (void) self;
    if (room->ws_state == WS_DOWN)
        room->ws_retry_at = 0;
}

const aip_sync_transport_t aip_sync_http = {
    .name = "relay",
    .mode = "public",
    .peer = "relay",
    .claims = s_http_claims,
    .check_url = aip_relay_url_check,
    .join = s_http_join,
    .deliver = s_http_deliver,
    .fetch = s_http_fetch,
    .tick = s_http_tick,
    .cursor_of = s_http_cursor_of,
    .fetch_forget = s_http_fetch_forget,
    .cursor_ok = aip_relay_time_cursor_ok,
    .forget = s_http_forget,
    .wake = s_http_wake,
    .poll_add = s_http_poll_add,
    .poll_done = s_http_poll_done,
    .expire = s_http_expire,
    .start = s_http_start_transport,
    .stop = s_http_stop_transport,
};

//  ---------------------------------------------------------------------
//  Self-test: what the relay transport decides without a relay (the
//  system test in tests/test_relay.py drives it against wrangler dev)

void
aip_relay_http_test (bool verbose)
{
    printf (" * aip_relay_http: ");
    //  Which HTTP answers are final for a message, which are retried
    assert (s_status_permanent (403) && s_status_permanent (400) && !s_status_permanent (429));
    assert (!s_status_permanent (503) && !s_status_permanent (408));
    //  The cursor is the relay's time
    char mark [AIP_MAX_TIME + 2];
    json_t *m = json_pack ("{s:s}", "created_at", "2026-01-01T00:00:00.000Z");
    aip_sync_http.cursor_of (m, mark, sizeof mark);
    assert (streq (mark, "2026-01-01T00:00:00.000Z"));
    json_decref (m);
    m = json_pack ("{s:i}", "created_at", 5);
    aip_sync_http.cursor_of (m, mark, sizeof mark);
    assert (*mark == 0);
    json_decref (m);
    //  A stored cursor must be a time ('zzzz' would freeze the catch-up)
    assert (aip_sync_http.cursor_ok ("2026-01-01T00:00:00.000Z"));
    assert (!aip_sync_http.cursor_ok ("zzzz"));
    //  Relay URLs: https (or http on loopback) only
    char url [AIP_MAX_URL + 1], err [300];
    assert (aip_sync_http.check_url ("ftp://x", url, sizeof url, err, sizeof err) == -1);
    assert (aip_sync_http.claims ("https://relay.example"));
    //  Started and stopped without a loop
    aip_relayd_t self;
    memset (&self, 0, sizeof self);
    assert (aip_sync_http.start (&self) == 0);
    zmq_pollitem_t items [8];
    long timeout = 100;
    int n = aip_sync_http.poll_add (&self, items, 8, &timeout);
    assert (n >= 1 && timeout <= 100);
    aip_sync_http.stop (&self);
    aip_sync_http.stop (&self);
    if (verbose)
        printf ("(statuses, cursor, URLs, start/stop) ");
    printf ("OK\n");
}
