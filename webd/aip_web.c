/*  aip_web.c — the web view's actor: HTTP + WebSocket for the page, a
    client of brokerd behind it. See aip_web.h for the protocol. */
#include "aip_web.h"
#include "aip_client.h"
#include "aip_home.h"
#include "aip_identity.h"
#include "aip_json.h"
#include "aip_limits.h"
#include "aip_markdown.h"
#include "aip_proto.h"
#include "aip_roomkey.h"
#include "aip_util.h"
#include "aip_webjob.h"
#include "aip_webmode.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <zmq.h>

//  The page's files, built into the binary (aip_web_assets.c, generated)
typedef struct {
    const char *path;           //  URL path ("/app.js")
    const char *type;           //  Content-Type
    const unsigned char *data;  //  bytes
    size_t size;                //  byte count
    bool public;                //  served without a session (the login shell)
} aip_web_asset_t;
extern const aip_web_asset_t aip_web_assets [];

#define SESSION_COOKIE "aip_session"
//  How often finished commands are looked for after their output ended
#define REAP_POLL_US (50 * 1000)
//  Refused requests within FLOOD_WINDOW_MS after which a page is closed
#define FLOOD_CLOSE_AFTER 500
#define FLOOD_WINDOW_MS 10000

//  One frame for the pages, shared by every connection it is queued on
typedef struct {
    int refs;                   //  connections holding it
    size_t size;                //  payload bytes (after LWS_PRE)
    unsigned char data [];      //  LWS_PRE headroom, then the payload
} s_frame_t;

//  An HTTP answer being written
typedef struct {
    unsigned status;            //  200, 204, 401, ...
    const char *type;           //  Content-Type, or NULL
    const unsigned char *body;  //  borrowed (an asset) or NULL
    size_t size;                //  body bytes
    size_t sent;                //  body bytes written so far
    bool headers_sent;          //  headers are out
    bool pending;               //  an answer waits for WRITEABLE
    char cookie [160];          //  a Set-Cookie value, or ""
} s_answer_t;

//  Per connection (lws allocates it, zeroed, for HTTP and WebSocket alike)
typedef struct {
    struct lws *wsi;            //  the connection
    uint64_t serial;            //  its id in calls and jobs (0: not a page yet)
    bool page;                  //  an upgraded, logged-in WebSocket
    char room [AIP_MAX_ID + 1]; //  the room open in the page, or ""
    char *rx;                   //  WebSocket message being assembled
    size_t rx_size;             //  bytes in rx
    bool rx_overflow;           //  the message went over AIP_WEB_MAX_FRAME
    zlistx_t *out;              //  s_frame_t queued for this page
    size_t out_bytes;           //  bytes in out
    bool killed;                //  closed for not reading
    bool closing;               //  closed for flooding once its queue is out
    double tokens;              //  rate limit: requests allowed now
    int64_t tokens_at;          //  when tokens was last topped up
    int refused;                //  requests refused in this window (flood)
    int64_t refused_since;      //  when the window began
    int64_t refused_said;       //  when the page was last told it is refused
    s_answer_t answer;          //  HTTP: the answer
    bool post;                  //  HTTP: a POST whose body is being read
    bool login;                 //  HTTP: ... to /login
    char body [AIP_WEB_MAX_BODY + 1];   //  HTTP: the posted body
    size_t body_size;           //  bytes in body
    bool body_overflow;         //  the body went over AIP_WEB_MAX_BODY
} s_conn_t;

//  What a request to the broker was for
typedef enum {
    CALL_ROOM_LIST,             //  room.list for a page (or all pages)
    CALL_ROOM_GET,              //  room.get with_key: a room becomes known
    CALL_HISTORY,               //  msg.list when a page opens a room
    CALL_SEND,                  //  msg.send of a page's post
    CALL_DISCOVER               //  spawn.discover for the tool picker
} s_call_kind_t;

typedef struct {
    s_call_kind_t kind;         //  what it was for
    uint64_t serial;            //  the page that asked (0: none)
    char room [AIP_MAX_ID + 1]; //  its room, when it has one
    char *mentions;             //  CALL_SEND: "a b" tools to invite once sent
} s_call_t;

//  A room as webd knows it
typedef struct {
    char id [AIP_MAX_ID + 1];   //  room id
    bool ready;                 //  room.get answered
    bool loading;               //  room.get sent
    bool encrypted;             //  a password room
    aip_roomkey_t key;          //  its key, when encrypted
    json_t *info;               //  {id, name, mode, created_at, encrypted} (no token)
    zlistx_t *waiting;          //  s_wait_t: what needs the room to be ready
} s_room_t;

//  An event or a history page that waits for its room's key
typedef struct {
    aip_doc_t *doc;             //  the decoded event or reply
    uint64_t serial;            //  history: the page; event: 0
} s_wait_t;

//  An ai-peer command run for a page
typedef struct {
    aip_webjob_t *job;          //  the child, or NULL when the slot is free
    struct lws *fdwsi;          //  its adopted stdout, NULL once closed
    uint64_t serial;            //  the page that asked
    char id [24];               //  "job-N", the page's handle
    char kind [16];             //  invite, quick, discuss, join, create, export
    char what [200];            //  "codex in room-…", for the page
    char room [AIP_MAX_ID + 1]; //  its room, when it has one
    char format [8];            //  export: md or json
    bool output_done;           //  its stdout ended
} s_job_t;

//  What an adopted descriptor is
typedef enum {
    FD_PIPE,                    //  the actor pipe
    FD_BROKER,                  //  the DEALER to brokerd
    FD_EVENTS,                  //  the SUB to brokerd's events
    FD_JOB                      //  a command's stdout
} s_fd_kind_t;

typedef struct {
    s_fd_kind_t kind;           //  which
    s_job_t *job;               //  FD_JOB: its job
} s_fd_t;

typedef struct {
    zsock_t *pipe;              //  actor pipe
    char home [AIP_PATH_MAX];   //  $AI_PEERS_HOME
    char cli [AIP_PATH_MAX + 16];   //  the ai-peer executable next to webd
    char cwd [AIP_PATH_MAX];    //  where the commands run (the tools' directory)
    aip_identity_t me;          //  the human the page posts as
    aip_client_t *client;       //  connection to brokerd
    void *dealer;               //  its socket (borrowed)
    zsock_t *events;            //  SUB to run/events.ipc
    struct lws_context *lws;    //  HTTP / WebSocket
    struct lws_vhost *vhost;    //  the one vhost
    int port;                   //  where it listens
    char hosts [2][32];         //  Host headers we answer to
    char origins [2][48];       //  Origin headers we accept
    char csp [400];             //  Content-Security-Policy
    char sessions [AIP_WEB_MAX_SESSIONS][AIP_WEB_TOKEN_HEX + 1];   //  "" or a session id
    size_t next_session;        //  slot the next login takes (oldest first)
    zlistx_t *pages;            //  s_conn_t of the open pages (borrowed)
    uint64_t next_serial;       //  serials of pages
    zhashx_t *calls;            //  request id -> s_call_t
    zhashx_t *rooms;            //  room id -> s_room_t
    zlistx_t *tools;            //  tool names (char *) from discover
    s_job_t jobs [AIP_WEB_MAX_JOBS];    //  commands running for pages
    uint64_t next_job;          //  ids of jobs
    lws_sorted_usec_list_t reap_sul;    //  looks for finished commands
    s_fd_t fd_pipe, fd_broker, fd_events;   //  tags of the adopted sockets
    aip_pack_t *pk;             //  request being built
    bool draining;              //  inside s_drain (no recursion)
    bool terminated;            //  leave the loop
    uint64_t delivered;         //  message frames queued, for the log
} s_web_t;

static void s_drain (s_web_t *self);
static void s_send_error (s_web_t *self, uint64_t serial, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

//  ---------------------------------------------------------------------
//  Frames and the pages' queues

static s_frame_t *
s_frame_new (const char *text, size_t size)
{
    s_frame_t *frame = (s_frame_t *) malloc (sizeof (s_frame_t) + LWS_PRE + size);
    assert (frame);
    frame->refs = 0;
    frame->size = size;
    memcpy (frame->data + LWS_PRE, text, size);
    return frame;
}

static s_frame_t *
s_frame_json (json_t *doc)
{
    char *text = json_dumps (doc, JSON_COMPACT);
    assert (text);
    s_frame_t *frame = s_frame_new (text, strlen (text));
    free (text);
    return frame;
}

static void
s_frame_unref (s_frame_t *frame)
{
    if (frame && --frame->refs <= 0)
        free (frame);
}

static s_conn_t *
s_page (s_web_t *self, uint64_t serial)
{
    for (s_conn_t *c = (s_conn_t *) zlistx_first (self->pages); c;
         c = (s_conn_t *) zlistx_next (self->pages))
        if (c->serial == serial)
            return c;
    return NULL;
}

//  Queue a frame for one page. A page that has more than AIP_WEB_MAX_QUEUE
//  waiting does not read: it is closed, so it cannot hold webd's memory.
static void
s_queue (s_web_t *self, s_conn_t *c, s_frame_t *frame)
{
    if (c->killed)
        return;
    if (c->out_bytes + frame->size > AIP_WEB_MAX_QUEUE) {
        zsys_warning ("webd: a page stopped reading (%zu bytes waiting): closing it",
                      c->out_bytes);
        c->killed = true;
        //  Reset, not a graceful close: what the kernel holds for it is
        //  dropped too, instead of trickling out to a reader that stalls
        struct linger abort = { 1, 0 };
        setsockopt (lws_get_socket_fd (c->wsi), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
        lws_set_timeout (c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, LWS_TO_KILL_ASYNC);
        return;
    }
    frame->refs++;
    zlistx_add_end (c->out, frame);
    c->out_bytes += frame->size;
    lws_callback_on_writable (c->wsi);
}

static void
s_send_json (s_web_t *self, uint64_t serial, json_t *doc)
{
    s_conn_t *c = doc ? s_page (self, serial) : NULL;
    if (c) {
        s_frame_t *frame = s_frame_json (doc);
        s_queue (self, c, frame);
        if (frame->refs == 0)
            free (frame);
    }
    json_decref (doc);
}

//  To every page, or (room not NULL) to the pages that have room open
static void
s_broadcast (s_web_t *self, json_t *doc, const char *room)
{
    if (!doc)
        return;             //  a string that was not UTF-8 (cut short, say)
    s_frame_t *frame = s_frame_json (doc);
    frame->refs++;              //  held while queuing
    for (s_conn_t *c = (s_conn_t *) zlistx_first (self->pages); c;
         c = (s_conn_t *) zlistx_next (self->pages))
        if (!room || streq (c->room, room))
            s_queue (self, c, frame);
    s_frame_unref (frame);
    json_decref (doc);
}

static void
s_send_error (s_web_t *self, uint64_t serial, const char *fmt, ...)
{
    char message [1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    json_t *doc = json_pack ("{s:s, s:s}", "type", "error", "message", message);
    if (!doc)       //  a message that is not UTF-8 (it quotes the page)
        doc = json_pack ("{s:s, s:s}", "type", "error", "message", "request refused");
    s_send_json (self, serial, doc);
}

//  ---------------------------------------------------------------------
//  Requests to the broker

static uint64_t
s_call_begin (s_web_t *self, aip_op_t op, size_t nargs)
{
    uint64_t id = aip_client_next_id (self->client);
    aip_pack_reset (self->pk);
    aip_request_begin (self->pk, id, op, nargs);
    return id;
}

static void
s_call_free (void **item)
{
    s_call_t *call = (s_call_t *) *item;
    if (call) {
        free (call->mentions);
        free (call);
        *item = NULL;
    }
}

//  Send the request in self->pk, remembering what it was for
static int
s_call_send (s_web_t *self, uint64_t id, s_call_kind_t kind, uint64_t serial, const char *room)
{
    char err [512];
    if (aip_client_send (self->client, self->pk, err, sizeof err)) {
        zsys_error ("webd: %s", err);
        if (serial)
            s_send_error (self, serial, "%s", err);
        return -1;
    }
    s_call_t *call = (s_call_t *) zmalloc (sizeof (s_call_t));
    call->kind = kind;
    call->serial = serial;
    snprintf (call->room, sizeof call->room, "%s", room ? room : "");
    char key [24];
    snprintf (key, sizeof key, "%" PRIu64, id);
    zhashx_update (self->calls, key, call);
    //  A send may consume the socket's readiness signal: look again
    s_drain (self);
    return 0;
}

//  ---------------------------------------------------------------------
//  Rooms and messages as the page sees them

static void
s_wait_free (void **item)
{
    s_wait_t *wait = (s_wait_t *) *item;
    if (wait) {
        aip_doc_destroy (&wait->doc);
        free (wait);
        *item = NULL;
    }
}

static void
s_room_free (void **item)
{
    s_room_t *room = (s_room_t *) *item;
    if (room) {
        json_decref (room->info);
        zlistx_destroy (&room->waiting);
        sodium_memzero (&room->key, sizeof room->key);
        free (room);
        *item = NULL;
    }
}

//  The page's view of a stored room: never its token or key
static json_t *
s_room_info (const aip_obj_t *row)
{
    json_t *info = json_object ();
    static const char *keys [] = { "id", "name", "mode", "created_at" };
    for (size_t i = 0; i < sizeof keys / sizeof keys [0]; i++) {
        size_t len;
        const char *value = aip_obj_str (aip_obj_get (row, keys [i]), &len);
        json_object_set_new (info, keys [i], value ? json_stringn (value, len) : json_null ());
    }
    bool lan = aip_obj_streq (aip_obj_get (row, "mode"), "lan");
    bool synced = aip_obj_streq (aip_obj_get (row, "mode"), "public")
               || (lan && aip_obj_is_str (aip_obj_get (row, "relay_url")));
    json_object_set_new (info, "synced", json_boolean (synced));
    json_object_set_new (info, "encrypted",
                         json_boolean (aip_obj_get_bool (row, "encrypted", false)));
    return info;
}

//  The room, known (ready) or being asked for; NULL for a bad id
static s_room_t *
s_room (s_web_t *self, const char *room_id)
{
    if (!aip_id_valid (room_id, strlen (room_id)))
        return NULL;
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, room_id);
    if (!room) {
        room = (s_room_t *) zmalloc (sizeof (s_room_t));
        snprintf (room->id, sizeof room->id, "%s", room_id);
        room->waiting = zlistx_new ();
        zlistx_set_destructor (room->waiting, s_wait_free);
        zhashx_insert (self->rooms, room_id, room);
    }
    if (!room->ready && !room->loading) {
        room->loading = true;
        uint64_t id = s_call_begin (self, AIP_OP_ROOM_GET, 2);
        aip_pack_kstr (self->pk, "id", room_id);
        aip_pack_kbool (self->pk, "with_key", true);
        s_call_send (self, id, CALL_ROOM_GET, 0, room_id);
    }
    return room;
}

//  metadata.usage as the page shows it: only the contract's keys, bounded
static json_t *
s_usage (const aip_obj_t *m)
{
    size_t len;
    const char *text = aip_obj_str (aip_obj_get (m, "metadata"), &len);
    if (!text || len == 0)
        return NULL;
    json_t *meta = json_loadb (text, len, 0, NULL);
    json_t *usage = json_object_get (meta, "usage");
    json_t *out = NULL;
    if (json_is_object (usage)) {
        out = json_object ();
        static const char *counts [] = { "input_tokens", "output_tokens", "cache_read_tokens",
                                         "cache_write_tokens", "duration_ms" };
        for (size_t i = 0; i < sizeof counts / sizeof counts [0]; i++) {
            json_t *v = json_object_get (usage, counts [i]);
            if (json_is_integer (v) && json_integer_value (v) >= 0
            &&  json_integer_value (v) <= 1000000000000LL)
                json_object_set (out, counts [i], v);
        }
        json_t *cost = json_object_get (usage, "cost_usd");
        if (json_is_number (cost) && json_number_value (cost) >= 0
        &&  json_number_value (cost) <= 1000000)
            json_object_set_new (out, "cost_usd", json_real (json_number_value (cost)));
        json_t *model = json_object_get (usage, "model");
        if (json_is_string (model) && json_string_length (model) <= 128)
            json_object_set (out, "model", model);
        if (json_object_size (out) == 0) {
            json_decref (out);
            out = NULL;
        }
    }
    json_decref (meta);
    return out;
}

//  A stored message as the page gets it: plain strings for the names, the
//  text only as safe HTML
static json_t *
s_message (s_room_t *room, const aip_obj_t *m)
{
    json_t *out = json_object ();
    static const char *keys [] = { "id", "room_id", "peer_id", "peer_name", "peer_tool",
                                   "peer_type", "type", "created_at" };
    for (size_t i = 0; i < sizeof keys / sizeof keys [0]; i++) {
        size_t len;
        const char *value = aip_obj_str (aip_obj_get (m, keys [i]), &len);
        json_t *s = value ? json_stringn (value, len) : NULL;
        json_object_set_new (out, keys [i], s ? s : json_string (""));
    }
    size_t len;
    const char *content = aip_obj_str (aip_obj_get (m, "content"), &len);
    char *revealed = NULL;
    if (content && room->encrypted) {
        char id [AIP_MAX_ID + 1], peer [AIP_MAX_ID + 1], type [16];
        aip_obj_get_str (m, "id", id, sizeof id, "");
        aip_obj_get_str (m, "peer_id", peer, sizeof peer, "");
        aip_obj_get_str (m, "type", type, sizeof type, "message");
        revealed = aip_roomkey_reveal (&room->key, room->id, id, peer, type, content, len, &len);
        content = revealed;
    }
    char *html = aip_markdown_render (content ? content : "", content ? len : 0);
    json_object_set_new (out, "html", json_string (html ? html : ""));
    free (html);
    free (revealed);
    json_t *usage = s_usage (m);
    if (usage)
        json_object_set_new (out, "usage", usage);
    return out;
}

//  A message event of a ready room: to every page (unread counts)
static void
s_event_message (s_web_t *self, s_room_t *room, const aip_obj_t *root)
{
    json_t *doc = json_pack ("{s:s, s:o}", "type", "message", "message",
                             s_message (room, aip_obj_get (root, "data")));
    self->delivered++;
    s_broadcast (self, doc, NULL);
}

//  A tool's progress: to the pages that have the room open; the answer so
//  far (text, when the tool streams it) rendered like a message
static void
s_event_progress (s_web_t *self, const char *room_id, const aip_obj_t *data)
{
    bool watched = false;
    for (s_conn_t *c = (s_conn_t *) zlistx_first (self->pages); c && !watched;
         c = (s_conn_t *) zlistx_next (self->pages))
        watched = streq (c->room, room_id);
    if (!watched)
        return;
    char tool [AIP_MAX_NAME + 1], msg_id [AIP_MAX_ID + 1];
    aip_obj_get_str (data, "tool", tool, sizeof tool, "");
    aip_obj_get_str (data, "msg_id", msg_id, sizeof msg_id, "");
    json_t *doc = json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I, s:b}", "type", "progress",
                             "room", room_id, "msg_id", msg_id, "tool", tool,
                             "bytes", (json_int_t) aip_obj_get_int (data, "bytes", 0),
                             "elapsed_ms", (json_int_t) aip_obj_get_int (data, "elapsed_ms", 0),
                             "done", aip_obj_get_bool (data, "done", false));
    if (!doc)
        return;
    size_t len;
    const char *text = aip_obj_str (aip_obj_get (data, "text"), &len);
    if (text && len > 0) {
        char *html = aip_markdown_render (text, len);
        json_object_set_new (doc, "html", json_string (html ? html : ""));
        free (html);
    }
    s_broadcast (self, doc, room_id);
}

static void
s_history (s_web_t *self, s_room_t *room, uint64_t serial, const aip_obj_t *data)
{
    const aip_obj_t *messages = aip_obj_get (data, "messages");
    json_t *list = json_array ();
    for (size_t i = 0; i < aip_obj_size (messages); i++)
        json_array_append_new (list, s_message (room, aip_obj_at (messages, i)));
    s_send_json (self, serial, json_pack ("{s:s, s:s, s:o}", "type", "history", "room",
                                          room->id, "messages", list));
}

//  What waited for a room that is now ready (or gone)
static void
s_room_flush (s_web_t *self, s_room_t *room)
{
    s_wait_t *wait;
    while ((wait = (s_wait_t *) zlistx_first (room->waiting))) {
        const aip_obj_t *root = aip_doc_root (wait->doc);
        if (room->ready) {
            if (wait->serial)
                s_history (self, room, wait->serial, aip_obj_get (root, "data"));
            else
                s_event_message (self, room, root);
        }
        else
        if (wait->serial)
            s_send_error (self, wait->serial, "room %s was not found", room->id);
        zlistx_delete (room->waiting, zlistx_cursor (room->waiting));
    }
}

//  ---------------------------------------------------------------------
//  Replies and events from the broker

static void
s_reply_room_get (s_web_t *self, s_call_t *call, aip_reply_t *rep)
{
    s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, call->room);
    if (!room)
        return;
    room->loading = false;
    if (!rep->ok) {
        zsys_warning ("webd: room %s: %s", call->room, rep->message);
        s_room_flush (self, room);
        zhashx_delete (self->rooms, call->room);
        return;
    }
    //  An encrypted room answers {room, key}; a plain one the room itself
    const aip_obj_t *row = aip_obj_get (rep->data, "room");
    if (!row)
        row = rep->data;
    char stored [AIP_ROOMKEY_MAX];
    const char *key = aip_obj_get_str (rep->data, "key", stored, sizeof stored, NULL);
    if (key) {
        room->encrypted = aip_roomkey_decode (key, &room->key) == 0;
        if (!room->encrypted)
            zsys_warning ("webd: the key of room %s is damaged", room->id);
        sodium_memzero (stored, sizeof stored);
    }
    bool was_known = room->info != NULL;
    json_decref (room->info);
    room->info = s_room_info (row);
    if (key)
        json_object_set_new (room->info, "encrypted", json_true ());
    room->ready = true;
    if (!was_known)
        s_broadcast (self, json_pack ("{s:s, s:O}", "type", "room", "room", room->info), NULL);
    s_room_flush (self, room);
}

static void
s_reply_room_list (s_web_t *self, s_call_t *call, aip_reply_t *rep)
{
    if (!rep->ok) {
        s_send_error (self, call->serial, "cannot list the rooms: %s", rep->message);
        return;
    }
    const aip_obj_t *rows = aip_obj_get (rep->data, "rooms");
    json_t *list = json_array ();
    for (size_t i = 0; i < aip_obj_size (rows); i++) {
        const aip_obj_t *row = aip_obj_at (rows, i);
        json_array_append_new (list, s_room_info (row));
        //  Known from now on, with its key, for its events
        char id [AIP_MAX_ID + 1];
        if (aip_obj_get_str (row, "id", id, sizeof id, NULL))
            s_room (self, id);
    }
    json_t *doc = json_pack ("{s:s, s:o}", "type", "rooms", "rooms", list);
    if (call->serial)
        s_send_json (self, call->serial, doc);
    else
        s_broadcast (self, doc, NULL);
}

static void
s_job_start (s_web_t *self, uint64_t serial, const char *kind, const char *what,
             const char *room, const char *const *argv, const char *password);

//  Start an invite of tool into room, in the background
static void
s_invite (s_web_t *self, uint64_t serial, const char *room, const char *tool,
          const char *context)
{
    char what [200];
    snprintf (what, sizeof what, "%s in %s", tool, room);
    const char *argv [] = { self->cli, "invite", "--tool", tool, "--room", room,
                            context ? "--context" : NULL, context, NULL };
    s_job_start (self, serial, "invite", what, room, argv, NULL);
}

static void
s_reply_send (s_web_t *self, s_call_t *call, aip_reply_t *rep)
{
    if (!rep->ok) {
        s_send_error (self, call->serial, "not sent: %s", rep->message);
        return;
    }
    char id [AIP_MAX_ID + 1];
    aip_obj_get_str (rep->data, "id", id, sizeof id, "");
    s_send_json (self, call->serial, json_pack ("{s:s, s:s, s:s}", "type", "sent", "room",
                                                call->room, "id", id));
    //  @tool in the post brings the tool in, once the post is stored
    char *cursor = call->mentions;
    for (char *tool = cursor ? strtok_r (cursor, " ", &cursor) : NULL; tool;
         tool = strtok_r (NULL, " ", &cursor))
        s_invite (self, call->serial, call->room, tool, NULL);
}

static void
s_reply_discover (s_web_t *self, s_call_t *call, aip_reply_t *rep)
{
    if (!rep->ok) {
        s_send_error (self, call->serial, "cannot discover the AI tools: %s", rep->message);
        return;
    }
    const aip_obj_t *found = aip_obj_get (rep->data, "discovered");
    json_t *list = json_array ();
    zlistx_purge (self->tools);
    for (size_t i = 0; i < aip_obj_size (found); i++) {
        const aip_obj_t *one = aip_obj_at (found, i);
        char tool [AIP_MAX_NAME + 1], version [128];
        if (!aip_obj_get_str (one, "tool", tool, sizeof tool, NULL))
            continue;
        aip_obj_get_str (one, "version", version, sizeof version, "");
        zlistx_add_end (self->tools, strdup (tool));
        json_array_append_new (list, json_pack ("{s:s, s:s}", "tool", tool, "version", version));
    }
    json_t *doc = json_pack ("{s:s, s:o}", "type", "tools", "tools", list);
    if (call->serial)
        s_send_json (self, call->serial, doc);
    else
        s_broadcast (self, doc, NULL);
}

//  ---------------------------------------------------------------------
//  Commands the page asks for (JSON over the WebSocket)

static const char *
s_str (json_t *req, const char *key)
{
    return json_string_value (json_object_get (req, key));
}

static bool
s_check_room (s_web_t *self, s_conn_t *c, const char *room)
{
    if (!room || !aip_id_valid (room, strlen (room))) {
        s_send_error (self, c->serial, "a room id is letters, digits, '_' and '-' (at most 64)");
        return false;
    }
    return true;
}

static bool
s_check_tool (s_web_t *self, s_conn_t *c, const char *tool)
{
    if (!tool || !*tool || strlen (tool) > AIP_MAX_ID || !aip_id_valid (tool, strlen (tool))) {
        s_send_error (self, c->serial, "a tool name is letters, digits, '_' and '-'");
        return false;
    }
    return true;
}

static bool
s_known_tool (s_web_t *self, const char *name, size_t len)
{
    //  "claude" is spawnd's alias of claude-code
    bool claude = len == 6 && memcmp (name, "claude", 6) == 0;
    for (char *tool = (char *) zlistx_first (self->tools); tool;
         tool = (char *) zlistx_next (self->tools))
        if ((strlen (tool) == len && memcmp (tool, name, len) == 0)
        ||  (claude && streq (tool, "claude-code")))
            return true;
    return false;
}

//  "@tool" words of a post that name discovered tools: "a b", or NULL
static char *
s_mentions (s_web_t *self, const char *text)
{
    char found [512] = "";
    size_t count = 0;
    for (const char *p = text; *p && count < 4; p++) {
        if (*p != '@' || (p > text && !isspace ((unsigned char) p [-1])))
            continue;
        const char *name = p + 1;
        size_t len = 0;
        while (isalnum ((unsigned char) name [len]) || name [len] == '_' || name [len] == '-')
            len++;
        if (len == 0 || len > AIP_MAX_ID || !s_known_tool (self, name, len))
            continue;
        char word [AIP_MAX_ID + 2];
        snprintf (word, sizeof word, "%.*s ", (int) len, name);
        if (!strstr (found, word) && strlen (found) + strlen (word) < sizeof found) {
            strcat (found, word);
            count++;
        }
    }
    return count ? strdup (found) : NULL;
}

static void
s_op_rooms (s_web_t *self, s_conn_t *c, json_t *req)
{
    uint64_t id = s_call_begin (self, AIP_OP_ROOM_LIST, 0);
    s_call_send (self, id, CALL_ROOM_LIST, c->serial, NULL);
}

static void
s_op_open (s_web_t *self, s_conn_t *c, json_t *req)
{
    const char *room = s_str (req, "room");
    if (!s_check_room (self, c, room))
        return;
    snprintf (c->room, sizeof c->room, "%s", room);
    s_room (self, room);
    uint64_t id = s_call_begin (self, AIP_OP_MSG_LIST, 2);
    aip_pack_kstr (self->pk, "room_id", room);
    aip_pack_kint (self->pk, "limit", AIP_WEB_HISTORY);
    s_call_send (self, id, CALL_HISTORY, c->serial, room);
}

static void
s_op_send (s_web_t *self, s_conn_t *c, json_t *req)
{
    const char *room_id = s_str (req, "room");
    json_t *text = json_object_get (req, "text");
    if (!s_check_room (self, c, room_id))
        return;
    if (!json_is_string (text) || json_string_length (text) == 0) {
        s_send_error (self, c->serial, "nothing to send: the text is empty");
        return;
    }
    size_t len = json_string_length (text);
    if (len > AIP_MAX_CONTENT) {
        s_send_error (self, c->serial, "not sent: the message is %zu bytes; the limit is %d",
                      len, AIP_MAX_CONTENT);
        return;
    }
    s_room_t *room = s_room (self, room_id);
    if (!room || !room->ready) {
        s_send_error (self, c->serial, "room %s is not known (yet): open it first", room_id);
        return;
    }
    char msg_id [AIP_MSG_ID_LEN + 1];
    aip_msg_id_new (msg_id);
    char *cipher = NULL;
    if (room->encrypted
    &&  aip_roomkey_encrypt (&room->key, room_id, msg_id, self->me.id, json_string_value (text),
                             len, &cipher)) {
        s_send_error (self, c->serial, "not sent: cannot encrypt the message");
        return;
    }
    uint64_t id = s_call_begin (self, AIP_OP_MSG_SEND, 4);
    aip_pack_kstr (self->pk, "room_id", room_id);
    aip_pack_kstr (self->pk, "id", msg_id);
    if (cipher)
        aip_pack_kstr (self->pk, "content", cipher);
    else
        aip_pack_kstrn (self->pk, "content", json_string_value (text), len);
    free (cipher);
    aip_pack_key (self->pk, "peer");
    aip_pack_map (self->pk, 5);
    aip_pack_kstr (self->pk, "id", self->me.id);
    aip_pack_kstr (self->pk, "name", self->me.name);
    aip_pack_kstr (self->pk, "type", "human");
    aip_pack_kstr (self->pk, "tool", self->me.tool);
    aip_pack_kstr (self->pk, "machine", self->me.machine);
    char *mentions = s_mentions (self, json_string_value (text));
    if (s_call_send (self, id, CALL_SEND, c->serial, room_id) == 0) {
        char key [24];
        snprintf (key, sizeof key, "%" PRIu64, id);
        s_call_t *call = (s_call_t *) zhashx_lookup (self->calls, key);
        if (call) {
            call->mentions = mentions;
            mentions = NULL;
        }
    }
    free (mentions);
}

static void
s_op_discover (s_web_t *self, s_conn_t *c, json_t *req)
{
    uint64_t id = s_call_begin (self, AIP_OP_SPAWN_DISCOVER, 0);
    s_call_send (self, id, CALL_DISCOVER, c->serial, NULL);
}

static void
s_op_invite (s_web_t *self, s_conn_t *c, json_t *req)
{
    const char *room = s_str (req, "room"), *tool = s_str (req, "tool");
    const char *context = s_str (req, "context");
    if (!s_check_room (self, c, room) || !s_check_tool (self, c, tool))
        return;
    if (context && (!*context || strlen (context) > AIP_MAX_CONTENT))
        context = NULL;
    s_invite (self, c->serial, room, tool, context);
}

//  "a,b" from a JSON array of tool names, or -1 (the page was told)
static int
s_tool_list (s_web_t *self, s_conn_t *c, json_t *tools, char *buf, size_t size, size_t min)
{
    *buf = 0;
    size_t i, count = 0;
    json_t *t;
    if (!json_is_array (tools) || json_array_size (tools) < min || json_array_size (tools) > 8) {
        s_send_error (self, c->serial, "choose %zu to 8 tools", min);
        return -1;
    }
    json_array_foreach (tools, i, t) {
        if (!s_check_tool (self, c, json_string_value (t)))
            return -1;
        if (strlen (buf) + strlen (json_string_value (t)) + 2 > size)
            return -1;
        if (count++)
            strcat (buf, ",");
        strcat (buf, json_string_value (t));
    }
    return 0;
}

static void
s_op_quick (s_web_t *self, s_conn_t *c, json_t *req)
{
    const char *question = s_str (req, "question");
    char tools [600], what [200];
    if (!question || !*question || strlen (question) > AIP_MAX_CONTENT) {
        s_send_error (self, c->serial, "ask a question (at most 256 KiB)");
        return;
    }
    if (s_tool_list (self, c, json_object_get (req, "tools"), tools, sizeof tools, 1))
        return;
    snprintf (what, sizeof what, "quick: %s", tools);
    const char *argv [] = { self->cli, "quick", "--tools", tools, "--", question, NULL };
    s_job_start (self, c->serial, "quick", what, NULL, argv, NULL);
}

static void
s_op_discuss (s_web_t *self, s_conn_t *c, json_t *req)
{
    const char *room = s_str (req, "room");
    json_t *rounds = json_object_get (req, "rounds");
    char tools [600], what [200], rounds_text [16];
    if (s_tool_list (self, c, json_object_get (req, "tools"), tools, sizeof tools, 2)
    ||  (room && !s_check_room (self, c, room)))
        return;
    if (!json_is_integer (rounds) || json_integer_value (rounds) < 1
    ||  json_integer_value (rounds) > 10) {
        s_send_error (self, c->serial, "rounds: 1 to 10");
        return;
    }
    snprintf (rounds_text, sizeof rounds_text, "%d", (int) json_integer_value (rounds));
    snprintf (what, sizeof what, "discuss: %s, %s rounds", tools, rounds_text);
    const char *argv [] = { self->cli, "discuss", "--tools", tools, "--rounds", rounds_text,
                            room ? "--room" : NULL, room, NULL };
    s_job_start (self, c->serial, "discuss", what, room, argv, NULL);
}

static void
s_op_join (s_web_t *self, s_conn_t *c, json_t *req)
{
    const char *link = s_str (req, "link"), *password = s_str (req, "password");
    if (!link || !*link || strlen (link) > 2048) {
        s_send_error (self, c->serial, "paste a connection string (peer://… or peer+lan://…)");
        return;
    }
    if (link [0] == '-') {
        s_send_error (self, c->serial, "a connection string starts with peer:// or peer+lan://");
        return;
    }
    //  The password goes to the command's environment only: never argv,
    //  never a log line
    const char *argv [] = { self->cli, "room", "join", link, NULL };
    s_job_start (self, c->serial, "join", "joining a room", NULL, argv,
                 password && *password ? password : NULL);
}

static void
s_op_create (s_web_t *self, s_conn_t *c, json_t *req)
{
    const char *name = s_str (req, "name");
    if (!name || !*name || strlen (name) > AIP_MAX_NAME || name [0] == '-') {
        s_send_error (self, c->serial, "a room name is 1 to %d bytes, not starting with '-'",
                      AIP_MAX_NAME);
        return;
    }
    const char *argv [] = { self->cli, "room", "create", name, NULL };
    s_job_start (self, c->serial, "create", "creating a room", NULL, argv, NULL);
}

static void
s_op_export (s_web_t *self, s_conn_t *c, json_t *req)
{
    const char *room = s_str (req, "room"), *format = s_str (req, "format");
    if (!s_check_room (self, c, room))
        return;
    if (!format || (!streq (format, "md") && !streq (format, "json"))) {
        s_send_error (self, c->serial, "export as md or json");
        return;
    }
    const char *argv [] = { self->cli, "export", room, "--format", format, NULL };
    s_job_start (self, c->serial, "export", "export", room, argv, NULL);
    for (int i = 0; i < AIP_WEB_MAX_JOBS; i++)
        if (self->jobs [i].job && self->jobs [i].serial == c->serial
        &&  streq (self->jobs [i].kind, "export") && !*self->jobs [i].format)
            snprintf (self->jobs [i].format, sizeof self->jobs [i].format, "%s", format);
}

typedef void (s_op_fn) (s_web_t *self, s_conn_t *c, json_t *req);
static const struct {
    const char *name;           //  "op" of the request
    s_op_fn *fn;                //  its handler
} s_ops [] = {
    { "rooms",    s_op_rooms },
    { "open",     s_op_open },
    { "send",     s_op_send },
    { "discover", s_op_discover },
    { "invite",   s_op_invite },
    { "quick",    s_op_quick },
    { "discuss",  s_op_discuss },
    { "join",     s_op_join },
    { "create",   s_op_create },
    { "export",   s_op_export },
};

//  A page may ask AIP_WEB_RATE times a second (bursts of AIP_WEB_BURST)
static bool
s_rate_ok (s_conn_t *c)
{
    int64_t now = aip_clock_ms ();
    c->tokens += (double) (now - c->tokens_at) * AIP_WEB_RATE / 1000.0;
    if (c->tokens > AIP_WEB_BURST)
        c->tokens = AIP_WEB_BURST;
    c->tokens_at = now;
    if (c->tokens < 1)
        return false;
    c->tokens -= 1;
    return true;
}

//  One whole message from a page; -1 closes the connection
static int
s_page_request (s_web_t *self, s_conn_t *c, const char *text, size_t size)
{
    if (c->closing)
        return 0;               //  being closed for flooding: not heard any more
    if (!s_rate_ok (c)) {
        //  Refusals are counted over a window: a flood that lets a request
        //  through now and then (the bucket refills) is still a flood
        if (aip_clock_ms () - c->refused_since > FLOOD_WINDOW_MS) {
            c->refused_since = aip_clock_ms ();
            c->refused = 0;
        }
        if (++c->refused >= FLOOD_CLOSE_AFTER && !c->closing) {
            //  Closed once what is queued (the error saying why) is out;
            //  a flood that does not read either is cut off in 5 s
            zsys_warning ("webd: a page sent %d requests over the limit: closing it", c->refused);
            c->closing = true;
            lws_set_timeout (c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, 5);
            lws_callback_on_writable (c->wsi);
            return 0;
        }
        if (aip_clock_ms () - c->refused_said >= 1000) {
            c->refused_said = aip_clock_ms ();
            s_send_error (self, c->serial, "too many requests: at most %d a second",
                          AIP_WEB_RATE);
        }
        return 0;
    }
    if (!aip_utf8_valid (text, size)) {
        s_send_error (self, c->serial, "a request must be UTF-8 JSON text");
        return 0;
    }
    json_error_t jerr;
    json_t *req = json_loadb (text, size, 0, &jerr);
    const char *op = s_str (req, "op");
    if (!json_is_object (req) || !op) {
        s_send_error (self, c->serial, "a request is a JSON object with an \"op\"");
        json_decref (req);
        return 0;
    }
    size_t i;
    for (i = 0; i < sizeof s_ops / sizeof s_ops [0]; i++)
        if (streq (op, s_ops [i].name)) {
            s_ops [i].fn (self, c, req);
            break;
        }
    if (i == sizeof s_ops / sizeof s_ops [0])
        s_send_error (self, c->serial, "unknown op \"%.40s\"", op);
    json_decref (req);
    return 0;
}

//  ---------------------------------------------------------------------
//  Commands run for the pages (ai-peer invite, quick, ...)

static void s_reap_check (lws_sorted_usec_list_t *sul);

static void
s_job_start (s_web_t *self, uint64_t serial, const char *kind, const char *what,
             const char *room, const char *const *argv, const char *password)
{
    s_job_t *slot = NULL;
    for (int i = 0; i < AIP_WEB_MAX_JOBS && !slot; i++)
        if (!self->jobs [i].job)
            slot = &self->jobs [i];
    if (!slot) {
        s_send_error (self, serial, "%d commands are running already: wait for one to end",
                      AIP_WEB_MAX_JOBS);
        return;
    }
    //  argv may end early (optional arguments given as NULL)
    char err [512];
    aip_webjob_t *job = aip_webjob_new (argv, self->home, password, err, sizeof err);
    if (!job) {
        s_send_error (self, serial, "%s", err);
        return;
    }
    memset (slot, 0, sizeof *slot);
    slot->job = job;
    slot->serial = serial;
    snprintf (slot->id, sizeof slot->id, "job-%" PRIu64, ++self->next_job);
    snprintf (slot->kind, sizeof slot->kind, "%s", kind);
    snprintf (slot->what, sizeof slot->what, "%s", what);
    snprintf (slot->room, sizeof slot->room, "%s", room ? room : "");
    s_fd_t *tag = (s_fd_t *) zmalloc (sizeof (s_fd_t));
    tag->kind = FD_JOB;
    tag->job = slot;
    lws_sock_file_fd_type fd;
    fd.filefd = aip_webjob_fd (job);
    slot->fdwsi = lws_adopt_descriptor_vhost (self->vhost, LWS_ADOPT_RAW_FILE_DESC, fd,
                                              "aip-fd", NULL);
    if (!slot->fdwsi) {
        free (tag);
        close (fd.filefd);
        slot->output_done = true;
    }
    else
        lws_set_opaque_user_data (slot->fdwsi, tag);
    zsys_info ("webd: %s (%s) started, pid %d", slot->id, slot->what, (int) aip_webjob_pid (job));
    json_t *doc = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "type", "job", "id", slot->id,
                             "kind", kind, "state", "running", "what", what);
    if (doc && room)
        json_object_set_new (doc, "room", json_string (room));
    s_send_json (self, serial, doc);
    lws_sul_schedule (self->lws, 0, &self->reap_sul, s_reap_check, REAP_POLL_US);
}

//  A finished command: tell the page how it went
static void
s_job_done (s_web_t *self, s_job_t *slot, int status)
{
    size_t len;
    const char *output = aip_webjob_output (slot->job, &len);
    json_t *doc = json_loadb (output, len, 0, NULL);
    bool ok = json_is_true (json_object_get (doc, "ok")) && status == 0;
    json_t *data = json_object_get (doc, "data");
    const char *error = json_string_value (json_object_get (doc, "error"));
    zsys_info ("webd: %s (%s) %s", slot->id, slot->what, ok ? "done" : "failed");
    json_t *reply = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "type", "job", "id", slot->id,
                               "kind", slot->kind, "state", ok ? "done" : "failed",
                               "what", slot->what);
    if (!ok)
        json_object_set_new (reply, "error", json_string (error ? error
                             : status == 127 ? "cannot run ai-peer next to webd"
                             : "the command failed without saying why"));
    //  The room the command made or joined, for the page to open
    const char *room = json_string_value (json_object_get (data, "room"));
    if (!room)
        room = json_string_value (json_object_get (data, "id"));
    if (ok && (streq (slot->kind, "quick") || streq (slot->kind, "create")
               || streq (slot->kind, "discuss")) && room)
        json_object_set_new (reply, "room", json_string (room));
    if (ok && streq (slot->kind, "export")) {
        //  md: the Markdown text; json: the document itself
        json_t *markdown = json_object_get (data, "markdown");
        char *content = streq (slot->format, "md")
                      ? (json_is_string (markdown) ? strdup (json_string_value (markdown)) : NULL)
                      : json_dumps (data, JSON_INDENT (2));
        char filename [AIP_MAX_ID + 16];
        snprintf (filename, sizeof filename, "%s.%s", slot->room, slot->format);
        s_send_json (self, slot->serial,
                     json_pack ("{s:s, s:s, s:s, s:s, s:s}", "type", "export", "room",
                                slot->room, "format", slot->format, "filename", filename,
                                "content", content ? content : ""));
        free (content);
    }
    s_send_json (self, slot->serial, reply);
    json_decref (doc);
    //  A joined or new room: every page's list changes
    if (ok && (streq (slot->kind, "join") || streq (slot->kind, "create")
               || streq (slot->kind, "quick"))) {
        uint64_t id = s_call_begin (self, AIP_OP_ROOM_LIST, 0);
        s_call_send (self, id, CALL_ROOM_LIST, 0, NULL);
    }
    aip_webjob_destroy (&slot->job);
    memset (slot, 0, sizeof *slot);
}

static void
s_reap_check (lws_sorted_usec_list_t *sul)
{
    s_web_t *self = lws_container_of (sul, s_web_t, reap_sul);
    bool running = false;
    for (int i = 0; i < AIP_WEB_MAX_JOBS; i++) {
        s_job_t *slot = &self->jobs [i];
        int status;
        if (!slot->job)
            continue;
        if (slot->output_done && aip_webjob_reap (slot->job, &status))
            s_job_done (self, slot, status);
        else
            running = true;
    }
    if (running)
        lws_sul_schedule (self->lws, 0, &self->reap_sul, s_reap_check, REAP_POLL_US);
}

//  ---------------------------------------------------------------------
//  The broker's sockets, drained whenever their descriptor says so

static void
s_handle_event (s_web_t *self, zmsg_t *msg)
{
    zframe_t *topic = zmsg_first (msg);
    zframe_t *body = topic ? zmsg_next (msg) : NULL;
    if (!body)
        return;
    char err [256];
    aip_doc_t *doc = aip_doc_decode (zframe_data (body), zframe_size (body), err, sizeof err);
    const aip_obj_t *root = doc ? aip_doc_root (doc) : NULL;
    char room_id [AIP_MAX_ID + 1];
    if (!root || !aip_obj_get_str (root, "room_id", room_id, sizeof room_id, NULL)) {
        aip_doc_destroy (&doc);
        return;
    }
    if (aip_obj_streq (aip_obj_get (root, "type"), "progress"))
        s_event_progress (self, room_id, aip_obj_get (root, "data"));
    else
    if (aip_obj_streq (aip_obj_get (root, "type"), "message")) {
        s_room_t *room = s_room (self, room_id);
        if (room && room->ready)
            s_event_message (self, room, root);
        else
        if (room) {
            s_wait_t *wait = (s_wait_t *) zmalloc (sizeof (s_wait_t));
            wait->doc = doc;
            doc = NULL;
            zlistx_add_end (room->waiting, wait);
        }
    }
    aip_doc_destroy (&doc);
}

static void
s_drain (s_web_t *self)
{
    if (self->draining)
        return;
    self->draining = true;
    bool more = true;
    while (more) {
        more = false;
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, self->dealer, ZMQ_DONTWAIT) >= 0) {
            more = true;
            //  A reply: the call it answers decides what happens
            aip_reply_t rep;
            char err [256];
            if (aip_reply_decode (zmq_msg_data (&msg), zmq_msg_size (&msg), &rep, err,
                                  sizeof err) == 0) {
                char key [24];
                snprintf (key, sizeof key, "%" PRIu64, rep.id);
                s_call_t *call = (s_call_t *) zhashx_lookup (self->calls, key);
                if (call) {
                    switch (call->kind) {
                        case CALL_ROOM_LIST: s_reply_room_list (self, call, &rep); break;
                        case CALL_ROOM_GET:  s_reply_room_get (self, call, &rep); break;
                        case CALL_SEND:      s_reply_send (self, call, &rep); break;
                        case CALL_DISCOVER:  s_reply_discover (self, call, &rep); break;
                        case CALL_HISTORY: {
                            s_room_t *room = (s_room_t *) zhashx_lookup (self->rooms, call->room);
                            if (!rep.ok)
                                s_send_error (self, call->serial, "cannot read room %s: %s",
                                              call->room, rep.message);
                            else
                            if (room && room->ready)
                                s_history (self, room, call->serial, rep.data);
                            else
                            if (room) {
                                //  Waits for the room's key; the reply's
                                //  document moves to the room
                                s_wait_t *wait = (s_wait_t *) zmalloc (sizeof (s_wait_t));
                                wait->doc = rep.doc;
                                rep.doc = NULL;
                                wait->serial = call->serial;
                                zlistx_add_end (room->waiting, wait);
                            }
                            break;
                        }
                    }
                    zhashx_delete (self->calls, key);
                }
                aip_reply_free (&rep);
            }
            else
                zsys_warning ("webd: malformed reply from brokerd: %s", err);
        }
        zmq_msg_close (&msg);
        zmsg_t *event = zmsg_recv_nowait (self->events);
        if (event) {
            more = true;
            s_handle_event (self, event);
            zmsg_destroy (&event);
        }
        char *command = NULL;
        zmsg_t *pipe_msg = zmsg_recv_nowait (self->pipe);
        if (pipe_msg) {
            more = true;
            command = zmsg_popstr (pipe_msg);
            if (command && streq (command, "$TERM")) {
                self->terminated = true;
                lws_cancel_service (self->lws);
            }
            free (command);
            zmsg_destroy (&pipe_msg);
        }
    }
    self->draining = false;
}

static int
s_fd_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    s_web_t *self = (s_web_t *) lws_context_user (lws_get_context (wsi));
    s_fd_t *tag = (s_fd_t *) lws_get_opaque_user_data (wsi);
    switch (reason) {
        case LWS_CALLBACK_RAW_RX_FILE:
            if (!tag)
                break;
            if (tag->kind == FD_JOB) {
                int rc = aip_webjob_read (tag->job->job, lws_get_socket_fd (wsi));
                if (rc != 0)
                    return -1;      //  closes it; RAW_CLOSE_FILE follows
            }
            else {
                //  ZMQ_FD only says "look": read every socket until empty
                s_drain (self);
            }
            break;
        case LWS_CALLBACK_RAW_CLOSE_FILE:
            if (tag && tag->kind == FD_JOB) {
                tag->job->output_done = true;
                tag->job->fdwsi = NULL;
                lws_set_opaque_user_data (wsi, NULL);
                free (tag);
                if (!self->terminated)
                    lws_sul_schedule (self->lws, 0, &self->reap_sul, s_reap_check, 1);
            }
            break;
        default:
            break;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  HTTP: the page's files, the login, and the checks on every request

//  The request's Host is ours (a DNS-rebinding page would send its own)
static bool
s_host_ok (s_web_t *self, struct lws *wsi)
{
    char host [64];
    if (lws_hdr_copy (wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0)
        return false;
    return streq (host, self->hosts [0]) || streq (host, self->hosts [1]);
}

static bool
s_origin_ok (s_web_t *self, struct lws *wsi, bool required)
{
    char origin [96];
    if (lws_hdr_copy (wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0)
        return !required && lws_hdr_total_length (wsi, WSI_TOKEN_ORIGIN) == 0;
    return streq (origin, self->origins [0]) || streq (origin, self->origins [1]);
}

//  The request carries a live session cookie
static bool
s_session_ok (s_web_t *self, struct lws *wsi)
{
    char value [AIP_WEB_TOKEN_HEX + 8];
    size_t max = sizeof value;
    if (lws_http_cookie_get (wsi, SESSION_COOKIE, value, &max) || max != AIP_WEB_TOKEN_HEX)
        return false;
    bool found = false;
    for (size_t i = 0; i < AIP_WEB_MAX_SESSIONS; i++)
        if (*self->sessions [i]
        &&  sodium_memcmp (self->sessions [i], value, AIP_WEB_TOKEN_HEX) == 0)
            found = true;
    sodium_memzero (value, sizeof value);
    return found;
}

//  A new session (the oldest is forgotten when all slots are taken)
static const char *
s_session_new (s_web_t *self)
{
    unsigned char raw [AIP_WEB_TOKEN_HEX / 2];
    randombytes_buf (raw, sizeof raw);
    char *slot = self->sessions [self->next_session];
    self->next_session = (self->next_session + 1) % AIP_WEB_MAX_SESSIONS;
    sodium_bin2hex (slot, AIP_WEB_TOKEN_HEX + 1, raw, sizeof raw);
    sodium_memzero (raw, sizeof raw);
    return slot;
}

static void
s_answer (struct lws *wsi, s_conn_t *c, unsigned status, const char *type,
          const unsigned char *body, size_t size)
{
    c->answer.status = status;
    c->answer.type = type;
    c->answer.body = body;
    c->answer.size = size;
    c->answer.sent = 0;
    c->answer.headers_sent = false;
    c->answer.pending = true;
    lws_callback_on_writable (wsi);
}

#define S_TEXT(s) (const unsigned char *) (s), sizeof (s) - 1

static void
s_answer_text (struct lws *wsi, s_conn_t *c, unsigned status)
{
    switch (status) {
        case 401: s_answer (wsi, c, status, "text/plain", S_TEXT ("401 Unauthorized\n")); break;
        case 403: s_answer (wsi, c, status, "text/plain", S_TEXT ("403 Forbidden\n")); break;
        case 404: s_answer (wsi, c, status, "text/plain", S_TEXT ("404 Not Found\n")); break;
        case 405: s_answer (wsi, c, status, "text/plain", S_TEXT ("405 Method Not Allowed\n"));
                  break;
        case 413: s_answer (wsi, c, status, "text/plain",
                            S_TEXT ("413 Payload Too Large: at most 4096 bytes\n")); break;
        default:  s_answer (wsi, c, status, "text/plain", S_TEXT ("")); break;
    }
}

//  Write the answer: headers first, then the body in pieces
static int
s_answer_write (s_web_t *self, struct lws *wsi, s_conn_t *c)
{
    s_answer_t *a = &c->answer;
    if (!a->pending)
        return 0;
    if (!a->headers_sent) {
        unsigned char buf [LWS_PRE + 2048];
        unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
        if (lws_add_http_common_headers (wsi, a->status, a->type, a->size, &p, end))
            return -1;
        struct { const char *name, *value; } headers [] = {
            { "content-security-policy:", self->csp },
            { "x-content-type-options:", "nosniff" },
            { "x-frame-options:", "DENY" },
            { "referrer-policy:", "no-referrer" },
            { "cache-control:", "no-store" },
            { "cross-origin-opener-policy:", "same-origin" },
            { "cross-origin-resource-policy:", "same-origin" },
            { "set-cookie:", *a->cookie ? a->cookie : NULL },
        };
        for (size_t i = 0; i < sizeof headers / sizeof headers [0]; i++)
            if (headers [i].value
            &&  lws_add_http_header_by_name (wsi, (const unsigned char *) headers [i].name,
                                             (const unsigned char *) headers [i].value,
                                             (int) strlen (headers [i].value), &p, end))
                return -1;
        sodium_memzero (a->cookie, sizeof a->cookie);
        if (lws_finalize_write_http_header (wsi, start, &p, end))
            return -1;
        a->headers_sent = true;
        if (a->size > 0) {
            lws_callback_on_writable (wsi);
            return 0;
        }
    }
    else {
        unsigned char chunk [LWS_PRE + 16384];
        size_t n = a->size - a->sent < 16384 ? a->size - a->sent : 16384;
        memcpy (chunk + LWS_PRE, a->body + a->sent, n);
        a->sent += n;
        bool last = a->sent >= a->size;
        if (lws_write (wsi, chunk + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP)
            != (int) n)
            return -1;
        if (!last) {
            lws_callback_on_writable (wsi);
            return 0;
        }
    }
    a->pending = false;
    return lws_http_transaction_completed (wsi) ? -1 : 0;
}

static const aip_web_asset_t *
s_asset (const char *path)
{
    if (streq (path, "/"))
        path = "/index.html";
    for (const aip_web_asset_t *a = aip_web_assets; a->path; a++)
        if (streq (a->path, path))
            return a;
    return NULL;
}

static void s_login (s_web_t *self, struct lws *wsi, s_conn_t *c);

static int
s_http_request (s_web_t *self, struct lws *wsi, s_conn_t *c, const char *uri)
{
    memset (&c->answer, 0, sizeof c->answer);
    c->login = false;
    c->post = false;
    c->body_size = 0;
    c->body_overflow = false;
    if (!s_host_ok (self, wsi)) {
        s_answer_text (wsi, c, 403);
        return 0;
    }
    bool post = lws_hdr_total_length (wsi, WSI_TOKEN_POST_URI) > 0;
    if (post) {
        //  Answered once the body is in (HTTP_BODY_COMPLETION)
        c->login = streq (uri, "/login");
        c->post = true;
        //  No length and not chunked: there is no body to wait for
        char length [24] = "";
        lws_hdr_copy (wsi, length, sizeof length, WSI_TOKEN_HTTP_CONTENT_LENGTH);
        if ((!*length || atol (length) == 0)
        &&  lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) == 0) {
            c->post = false;
            if (c->login)
                s_login (self, wsi, c);
            else
                s_answer_text (wsi, c, s_session_ok (self, wsi) ? 405 : 401);
        }
        return 0;
    }
    bool session = s_session_ok (self, wsi);
    const aip_web_asset_t *asset = s_asset (uri);
    if (!lws_hdr_total_length (wsi, WSI_TOKEN_GET_URI))
        s_answer_text (wsi, c, session ? 405 : 401);
    else
    if (asset && (asset->public || session))
        s_answer (wsi, c, 200, asset->type, asset->data, asset->size);
    else
    if (!session)
        s_answer_text (wsi, c, 401);
    else
    if (streq (uri, "/api/session"))
        s_answer (wsi, c, 204, NULL, NULL, 0);
    else
        s_answer_text (wsi, c, 404);
    return 0;
}

//  The posted token for a session cookie, once; nothing else is said
static void
s_login (s_web_t *self, struct lws *wsi, s_conn_t *c)
{
    if (c->body_overflow) {
        s_answer_text (wsi, c, 413);
        return;
    }
    //  A page of another origin cannot log this browser in either
    size_t len = c->body_size;
    while (len > 0 && (c->body [len - 1] == '\n' || c->body [len - 1] == '\r'))
        len--;
    if (!s_origin_ok (self, wsi, false) || !aip_webmode_token_take (self->home, c->body, len)) {
        zsys_warning ("webd: a login with a wrong, used or expired token was refused");
        s_answer_text (wsi, c, 401);
        return;
    }
    sodium_memzero (c->body, sizeof c->body);
    snprintf (c->answer.cookie, sizeof c->answer.cookie,
              SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict", s_session_new (self));
    char cookie [sizeof c->answer.cookie];
    memcpy (cookie, c->answer.cookie, sizeof cookie);
    s_answer (wsi, c, 204, NULL, NULL, 0);
    memcpy (c->answer.cookie, cookie, sizeof cookie);
    sodium_memzero (cookie, sizeof cookie);
    zsys_info ("webd: a browser logged in");
}

//  ---------------------------------------------------------------------
//  The pages' WebSockets

static void
s_page_open (s_web_t *self, struct lws *wsi, s_conn_t *c)
{
    c->wsi = wsi;
    c->page = true;
    c->serial = ++self->next_serial;
    c->out = zlistx_new ();
    c->tokens = AIP_WEB_BURST;
    c->tokens_at = aip_clock_ms ();
    zlistx_add_end (self->pages, c);
    s_send_json (self, c->serial, json_pack ("{s:s, s:{s:s, s:s}, s:i}", "type", "hello", "me",
                                             "id", self->me.id, "name", self->me.name,
                                             "port", self->port));
    uint64_t id = s_call_begin (self, AIP_OP_ROOM_LIST, 0);
    s_call_send (self, id, CALL_ROOM_LIST, c->serial, NULL);
    if (zlistx_size (self->tools) == 0) {
        id = s_call_begin (self, AIP_OP_SPAWN_DISCOVER, 0);
        s_call_send (self, id, CALL_DISCOVER, c->serial, NULL);
    }
    else {
        json_t *list = json_array ();
        for (char *tool = (char *) zlistx_first (self->tools); tool;
             tool = (char *) zlistx_next (self->tools))
            json_array_append_new (list, json_pack ("{s:s, s:s}", "tool", tool, "version", ""));
        s_send_json (self, c->serial, json_pack ("{s:s, s:o}", "type", "tools", "tools", list));
    }
}

static void
s_page_close (s_web_t *self, s_conn_t *c)
{
    if (!c->page)
        return;
    void *handle = zlistx_find (self->pages, c);
    if (handle)
        zlistx_delete (self->pages, handle);
    s_frame_t *frame;
    while ((frame = (s_frame_t *) zlistx_first (c->out))) {
        zlistx_delete (c->out, zlistx_cursor (c->out));
        s_frame_unref (frame);
    }
    zlistx_destroy (&c->out);
    free (c->rx);
    c->rx = NULL;
    c->page = false;
}

static int
s_page_receive (s_web_t *self, struct lws *wsi, s_conn_t *c, const void *in, size_t len)
{
    if (lws_frame_is_binary (wsi)) {
        c->rx_overflow = true;      //  dropped whole: only text is spoken
    }
    if (!c->rx_overflow) {
        if (c->rx_size + len > AIP_WEB_MAX_FRAME) {
            zsys_warning ("webd: a page sent a message over %d bytes: closing it",
                          AIP_WEB_MAX_FRAME);
            lws_close_reason (wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                              (unsigned char *) "message too large (at most 1 MiB)", 33);
            return -1;
        }
        if (!c->rx)
            c->rx = (char *) malloc (AIP_WEB_MAX_FRAME + 1);
        assert (c->rx);
        memcpy (c->rx + c->rx_size, in, len);
        c->rx_size += len;
    }
    if (!lws_is_final_fragment (wsi) || lws_remaining_packet_payload (wsi) > 0)
        return 0;
    int rc = 0;
    if (c->rx_overflow)
        s_send_error (self, c->serial, "binary messages are not understood: send JSON text");
    else
        rc = s_page_request (self, c, c->rx, c->rx_size);
    c->rx_size = 0;
    c->rx_overflow = false;
    //  The buffer is kept only while messages are large
    if (rc == 0 && c->rx) {
        free (c->rx);
        c->rx = NULL;
    }
    return rc;
}

static int
s_page_write (s_web_t *self, struct lws *wsi, s_conn_t *c)
{
    s_frame_t *frame = (s_frame_t *) zlistx_first (c->out);
    if (!frame && c->closing) {
        lws_close_reason (wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                          (unsigned char *) "too many requests", 17);
        return -1;
    }
    if (!frame)
        return 0;
    zlistx_delete (c->out, zlistx_cursor (c->out));
    c->out_bytes -= frame->size;
    int n = lws_write (wsi, frame->data + LWS_PRE, frame->size, LWS_WRITE_TEXT);
    s_frame_unref (frame);
    if (n < 0)
        return -1;
    if (zlistx_size (c->out) || c->closing)
        lws_callback_on_writable (wsi);
    return 0;
}

static int
s_http_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    struct lws_context *context = lws_get_context (wsi);
    s_web_t *self = context ? (s_web_t *) lws_context_user (context) : NULL;
    s_conn_t *c = (s_conn_t *) user;
    switch (reason) {
        case LWS_CALLBACK_HTTP:
            return s_http_request (self, wsi, c, (const char *) in);
        case LWS_CALLBACK_HTTP_BODY:
            if (c->login && c->post && !c->body_overflow && in && len > 0) {
                if (c->body_size + len > AIP_WEB_MAX_BODY)
                    c->body_overflow = true;
                else {
                    memcpy (c->body + c->body_size, in, len);
                    c->body_size += len;
                    c->body [c->body_size] = 0;
                }
            }
            return 0;
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            if (!c->post)
                return 0;
            c->post = false;
            if (c->login)
                s_login (self, wsi, c);
            else
                s_answer_text (wsi, c, s_session_ok (self, wsi) ? 405 : 401);
            return 0;
        case LWS_CALLBACK_HTTP_WRITEABLE:
            return s_answer_write (self, wsi, c);
        case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
            //  Our page only: our Host, our Origin, a live session
            if (!s_host_ok (self, wsi) || !s_origin_ok (self, wsi, true)) {
                zsys_warning ("webd: a WebSocket from another origin was refused");
                lws_return_http_status (wsi, HTTP_STATUS_FORBIDDEN, NULL);
                return 1;
            }
            if (!s_session_ok (self, wsi)) {
                lws_return_http_status (wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
                return 1;
            }
            return 0;
        case LWS_CALLBACK_ESTABLISHED:
            s_page_open (self, wsi, c);
            return 0;
        case LWS_CALLBACK_RECEIVE:
            return s_page_receive (self, wsi, c, in, len);
        case LWS_CALLBACK_SERVER_WRITEABLE:
            return s_page_write (self, wsi, c);
        case LWS_CALLBACK_CLOSED:
            s_page_close (self, c);
            return 0;
        default:
            return lws_callback_http_dummy (wsi, reason, user, in, len);
    }
}

static const struct lws_protocols s_protocols [] = {
    { "http", s_http_callback, sizeof (s_conn_t), 16 * 1024, 0, NULL, 0 },
    { "aip-fd", s_fd_callback, 0, 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

//  ---------------------------------------------------------------------
//  The actor

//  Adopt a ZeroMQ socket's descriptor into lws's loop (a duplicate: lws
//  closes what it adopted, libzmq must keep its own)
static int
s_adopt_zmq (s_web_t *self, void *socket, s_fd_t *tag)
{
    int fd;
    size_t size = sizeof fd;
    if (zmq_getsockopt (socket, ZMQ_FD, &fd, &size))
        return -1;
    lws_sock_file_fd_type desc;
    desc.filefd = dup (fd);
    if (desc.filefd < 0)
        return -1;
    struct lws *wsi = lws_adopt_descriptor_vhost (self->vhost, LWS_ADOPT_RAW_FILE_DESC, desc,
                                                  "aip-fd", NULL);
    if (!wsi) {
        close (desc.filefd);
        return -1;
    }
    lws_set_opaque_user_data (wsi, tag);
    return 0;
}

//  run/web.json: what ai-peer web waits for
static void
s_write_ready (s_web_t *self, const char *error)
{
    json_t *doc = error ? json_pack ("{s:i, s:s}", "pid", (int) getpid (), "error", error)
                        : json_pack ("{s:i, s:i}", "pid", (int) getpid (), "port", self->port);
    char *text = json_dumps (doc, JSON_COMPACT);
    char path [AIP_PATH_MAX];
    aip_home_path (self->home, "run/web.json", path, sizeof path);
    if (!text || aip_file_write_atomic (path, text, strlen (text), 0600))
        zsys_error ("webd: cannot write %s", path);
    free (text);
    json_decref (doc);
}

//  Say why the port cannot be had, as bind itself says it
static int
s_probe_port (int port, char *err, size_t errlen)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons ((uint16_t) port);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int rc = bind (fd, (struct sockaddr *) &addr, sizeof addr);
    if (rc)
        snprintf (err, errlen, "cannot listen on 127.0.0.1:%d: %s (choose another port with "
                  "'ai-peer web --port P')", port, strerror (errno));
    close (fd);
    return rc ? -1 : 0;
}

static void
s_tool_free (void **item)
{
    free (*item);
    *item = NULL;
}

static s_web_t *
s_web_new (zsock_t *pipe, aip_web_args_t *args, char *err, size_t errlen)
{
    s_web_t *self = (s_web_t *) zmalloc (sizeof (s_web_t));
    self->pipe = pipe;
    snprintf (self->home, sizeof self->home, "%s", args->home);
    self->pk = aip_pack_new ();
    self->pages = zlistx_new ();
    self->calls = zhashx_new ();
    zhashx_set_destructor (self->calls, s_call_free);
    self->rooms = zhashx_new ();
    zhashx_set_destructor (self->rooms, s_room_free);
    self->tools = zlistx_new ();
    zlistx_set_destructor (self->tools, s_tool_free);
    self->fd_pipe.kind = FD_PIPE;
    self->fd_broker.kind = FD_BROKER;
    self->fd_events.kind = FD_EVENTS;
    if (!getcwd (self->cwd, sizeof self->cwd))
        snprintf (self->cwd, sizeof self->cwd, "/");
    char dir [AIP_PATH_MAX];
    if (aip_exe_dir (dir, sizeof dir)) {
        snprintf (err, errlen, "cannot find the directory of webd");
        return self;
    }
    snprintf (self->cli, sizeof self->cli, "%s/ai-peer", dir);
    if (aip_identity_load (self->home, &self->me, err, errlen))
        return self;
    sodium_memzero (self->me.secret, sizeof self->me.secret);
    self->client = aip_client_new (self->home, false, err, errlen);
    if (!self->client)
        return self;
    self->dealer = aip_client_socket (self->client);
    char endpoint [AIP_PATH_MAX];
    if (aip_home_endpoint (self->home, "events", endpoint, sizeof endpoint, err, errlen))
        return self;
    self->events = zsock_new (ZMQ_SUB);
    zsock_set_maxmsgsize (self->events, AIP_MAX_REPLY);
    zsock_set_rcvhwm (self->events, 100000);
    zsock_set_subscribe (self->events, "room.");
    if (zsock_connect (self->events, "%s", endpoint)) {
        snprintf (err, errlen, "cannot connect to %s", endpoint);
        return self;
    }
    int port = args->port >= 0 ? args->port : aip_webmode_get (self->home);
    if (port < 0)
        port = AIP_WEB_PORT;
    if (port > 0 && s_probe_port (port, err, errlen))
        return self;
    lws_set_log_level (LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = s_protocols;
    info.user = self;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.fd_limit_per_thread = AIP_WEB_MAX_CONNS + 32;
    info.max_http_header_data = 4096;
    info.timeout_secs = 10;
    self->lws = lws_create_context (&info);
    if (!self->lws) {
        snprintf (err, errlen, "cannot listen on 127.0.0.1:%d (libwebsockets could not start)",
                  port);
        return self;
    }
    self->vhost = lws_get_vhost_by_name (self->lws, "default");
    self->port = self->vhost ? lws_get_vhost_listen_port (self->vhost) : port;
    snprintf (self->hosts [0], sizeof self->hosts [0], "127.0.0.1:%d", self->port);
    snprintf (self->hosts [1], sizeof self->hosts [1], "localhost:%d", self->port);
    snprintf (self->origins [0], sizeof self->origins [0], "http://127.0.0.1:%d", self->port);
    snprintf (self->origins [1], sizeof self->origins [1], "http://localhost:%d", self->port);
    //  Scripts and styles of our own only; no inline script, no other
    //  origin, no plugin, no frame; images of our own (a Markdown image of
    //  another site is not fetched: nothing tells a peer it was read)
    snprintf (self->csp, sizeof self->csp,
              "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
              "connect-src 'self' ws://127.0.0.1:%d ws://localhost:%d; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'", self->port, self->port);
    if (s_adopt_zmq (self, zsock_resolve (pipe), &self->fd_pipe)
    ||  s_adopt_zmq (self, self->dealer, &self->fd_broker)
    ||  s_adopt_zmq (self, zsock_resolve (self->events), &self->fd_events)) {
        snprintf (err, errlen, "cannot watch the broker's sockets");
        lws_context_destroy (self->lws);
        self->lws = NULL;
        return self;
    }
    *err = 0;
    return self;
}

static void
s_web_destroy (s_web_t **self_p)
{
    s_web_t *self = *self_p;
    if (!self)
        return;
    //  lws first: closing the commands' pipes calls back into their jobs
    self->terminated = true;
    if (self->lws)
        lws_context_destroy (self->lws);
    for (int i = 0; i < AIP_WEB_MAX_JOBS; i++)
        aip_webjob_destroy (&self->jobs [i].job);
    zhashx_destroy (&self->calls);
    zhashx_destroy (&self->rooms);
    zlistx_destroy (&self->pages);
    zlistx_destroy (&self->tools);
    zsock_destroy (&self->events);
    aip_client_destroy (&self->client);
    aip_pack_destroy (&self->pk);
    free (self);
    *self_p = NULL;
}

void
aip_web (zsock_t *pipe, void *args)
{
    char err [512] = "";
    s_web_t *self = s_web_new (pipe, (aip_web_args_t *) args, err, sizeof err);
    if (*err) {
        zsys_error ("webd: %s", err);
        s_write_ready (self, err);
        s_web_destroy (&self);
        zsock_signal (pipe, 1);
        zstr_send (pipe, "FAILED");     //  main exits on it
        return;
    }
    s_write_ready (self, NULL);
    zsys_info ("webd: serving http://127.0.0.1:%d/ (this machine only)", self->port);
    zsock_signal (pipe, 0);
    //  Rooms and tools known before the first page asks
    uint64_t id = s_call_begin (self, AIP_OP_ROOM_LIST, 0);
    s_call_send (self, id, CALL_ROOM_LIST, 0, NULL);
    id = s_call_begin (self, AIP_OP_SPAWN_DISCOVER, 0);
    s_call_send (self, id, CALL_DISCOVER, 0, NULL);
    while (!self->terminated) {
        if (lws_service (self->lws, 0) < 0)
            break;
        //  Whatever a callback sent, look at the sockets once more
        s_drain (self);
    }
    zsys_info ("webd: stopping (%" PRIu64 " messages delivered to pages)", self->delivered);
    s_web_destroy (&self);
}

//  ---------------------------------------------------------------------

void
aip_web_test (bool verbose)
{
    printf (" * aip_web: ");
    //  The rate limit: a burst, then AIP_WEB_RATE a second
    s_conn_t c;
    memset (&c, 0, sizeof c);
    c.tokens = AIP_WEB_BURST;
    c.tokens_at = aip_clock_ms ();
    int allowed = 0;
    for (int i = 0; i < AIP_WEB_BURST * 2; i++)
        allowed += s_rate_ok (&c);
    assert (allowed >= AIP_WEB_BURST && allowed <= AIP_WEB_BURST + 2);
    c.tokens_at -= 1000;
    assert (s_rate_ok (&c));

    //  Usage: only the contract's keys, absurd values dropped
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map (pk, 1);
    aip_pack_kstr (pk, "metadata", "{\"usage\":{\"input_tokens\":12,\"output_tokens\":-3,"
                   "\"cost_usd\":0.25,\"model\":\"m1\",\"evil\":\"<b>\","
                   "\"duration_ms\":99999999999999999}}");
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    char err [128];
    aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc);
    json_t *usage = s_usage (aip_doc_root (doc));
    assert (usage);
    assert (json_integer_value (json_object_get (usage, "input_tokens")) == 12);
    assert (!json_object_get (usage, "output_tokens"));
    assert (!json_object_get (usage, "evil"));
    assert (!json_object_get (usage, "duration_ms"));
    assert (json_real_value (json_object_get (usage, "cost_usd")) == 0.25);
    assert (streq (json_string_value (json_object_get (usage, "model")), "m1"));
    json_decref (usage);
    aip_doc_destroy (&doc);

    //  A message: the text only as safe HTML
    aip_pack_reset (pk);
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "id", "msg-1");
    aip_pack_kstr (pk, "peer_name", "<b>eve</b>");
    aip_pack_kstr (pk, "content", "<img src=x onerror=alert(1)> **hi**");
    aip_pack_kstr (pk, "type", "message");
    data = aip_pack_data (pk, &size);
    doc = aip_doc_decode (data, size, err, sizeof err);
    s_room_t room;
    memset (&room, 0, sizeof room);
    snprintf (room.id, sizeof room.id, "room-abc");
    json_t *m = s_message (&room, aip_doc_root (doc));
    const char *html = json_string_value (json_object_get (m, "html"));
    assert (html && !strstr (html, "<img") && strstr (html, "<strong>hi</strong>"));
    assert (streq (json_string_value (json_object_get (m, "peer_name")), "<b>eve</b>"));
    assert (!json_object_get (m, "content"));
    json_decref (m);
    aip_doc_destroy (&doc);
    aip_pack_destroy (&pk);

    //  The files of the page are built in, the login shell public only
    const aip_web_asset_t *index = s_asset ("/");
    assert (index && index->public && index->size > 0);
    assert (s_asset ("/app.js") && !s_asset ("/app.js")->public);
    assert (!s_asset ("/../etc/passwd"));
    printf ("OK\n");
}
