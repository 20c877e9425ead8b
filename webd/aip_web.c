/*  aip_web.c — the web view's actor: one libwebsockets loop that also
    watches the actor pipe, the broker's sockets and the commands run for
    the pages. Its parts are classes of their own: aip_webhttp (files,
    routes, login, the checks), aip_webpages (the WebSockets and their
    queues), aip_webrooms (rooms, keys and the page's views), aip_webjobs
    (the commands run for the pages). What is left here is the loop, one
    handler per socket, the broker's replies and events dispatched by
    table, and the requests the pages make. See aip_web.h for the
    protocol. */
#include "aip_web.h"
#include "aip_client.h"
#include "aip_event.h"
#include "aip_home.h"
#include "aip_identity.h"
#include "aip_json.h"
#include "aip_limits.h"
#include "aip_proto.h"
#include "aip_util.h"
#include "aip_webhttp.h"
#include "aip_webjobs.h"
#include "aip_webmode.h"
#include "aip_webpages.h"
#include "aip_webrooms.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <zmq.h>

//  How often finished commands are looked for after their output ended
#define REAP_POLL_US (50 * 1000)

//  Per connection (lws allocates it, zeroed, for HTTP and WebSocket alike)
typedef struct {
    aip_webhttp_conn_t http;    //  its HTTP side (aip_webhttp's)
    aip_webpage_t *page;        //  once an upgraded, logged-in WebSocket
} s_conn_t;

//  What a request to the broker was for (indexes s_replies)
typedef enum {
    CALL_ROOM_LIST,             //  room.list for a page (or all pages)
    CALL_ROOM_GET,              //  room.get with_key: a room becomes known
    CALL_HISTORY,               //  msg.list when a page opens a room
    CALL_SEND,                  //  msg.send of a page's post
    CALL_DISCOVER,              //  spawn.discover for the tool picker
    CALL_KINDS                  //  how many
} s_call_kind_t;

typedef struct {
    s_call_kind_t kind;         //  what it was for
    uint64_t serial;            //  the page that asked (0: none)
    char room [AIP_MAX_ID + 1]; //  its room, when it has one
    char *mentions;             //  CALL_SEND: "a b" tools to invite once sent
} s_call_t;

typedef struct _s_web_t s_web_t;

//  What reads an adopted descriptor when lws says it is readable
typedef struct {
    int (*recv) (s_web_t *self, struct lws *wsi, aip_webjobs_run_t *run);  //  -1 closes it
    aip_webjobs_run_t *run;     //  a command's stdout: its run
} s_fd_t;

struct _s_web_t {
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
    aip_webhttp_t *http;        //  files, routes, login, checks
    aip_webpages_t *pages;      //  the open pages and their queues
    aip_webrooms_t *rooms;      //  rooms known, their keys, the views
    zhashx_t *calls;            //  request id -> s_call_t
    zlistx_t *tools;            //  tool names (char *) from discover
    aip_webjobs_t *jobs;        //  commands running for pages
    lws_sorted_usec_list_t reap_sul;    //  looks for finished commands
    s_fd_t fd_pipe, fd_broker, fd_events;   //  tags of the adopted sockets
    aip_pack_t *pk;             //  request being built
    bool draining;              //  inside s_drain (no recursion)
    bool terminated;            //  leave the loop
};

static void s_drain (s_web_t *self);

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
            aip_webpages_error (self->pages, serial, "%s", err);
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

//  The room, known or being learnt (a room.get sent when it must be)
static aip_webroom_t *
s_room_want (s_web_t *self, const char *room_id)
{
    bool fetch;
    aip_webroom_t *room = aip_webrooms_want (self->rooms, room_id, &fetch);
    if (fetch) {
        uint64_t id = s_call_begin (self, AIP_OP_ROOM_GET, 2);
        aip_pack_kstr (self->pk, "id", room_id);
        aip_pack_kbool (self->pk, "with_key", true);
        s_call_send (self, id, CALL_ROOM_GET, 0, room_id);
    }
    return room;
}

static void
s_ask_rooms (s_web_t *self, uint64_t serial)
{
    uint64_t id = s_call_begin (self, AIP_OP_ROOM_LIST, 0);
    s_call_send (self, id, CALL_ROOM_LIST, serial, NULL);
}

static void
s_ask_tools (s_web_t *self, uint64_t serial)
{
    uint64_t id = s_call_begin (self, AIP_OP_SPAWN_DISCOVER, 0);
    s_call_send (self, id, CALL_DISCOVER, serial, NULL);
}

static void s_job_start (s_web_t *self, uint64_t serial, const char *kind, const char *what,
                         const char *room, const char *format, const char *const *argv,
                         const char *password);

//  Start an invite of tool into room, in the background
static void
s_invite (s_web_t *self, uint64_t serial, const char *room, const char *tool,
          const char *context)
{
    char what [200];
    snprintf (what, sizeof what, "%s in %s", tool, room);
    const char *argv [] = { self->cli, "invite", "--tool", tool, "--room", room,
                            context ? "--context" : NULL, context, NULL };
    s_job_start (self, serial, "invite", what, room, NULL, argv, NULL);
}

//  ---------------------------------------------------------------------
//  The broker's replies, by what their request was for

static void
s_reply_room_list (s_web_t *self, s_call_t *call, aip_reply_t *rep)
{
    if (!rep->ok) {
        aip_webpages_error (self->pages, call->serial, "cannot list the rooms: %s", rep->message);
        return;
    }
    const aip_obj_t *rows = aip_obj_get (rep->data, "rooms");
    json_t *list = json_array ();
    for (size_t i = 0; i < aip_obj_size (rows); i++) {
        const aip_obj_t *row = aip_obj_at (rows, i);
        json_array_append_new (list, aip_webrooms_info (row));
        //  Known from now on, with its key, for its events
        char id [AIP_MAX_ID + 1];
        if (aip_obj_get_str (row, "id", id, sizeof id, NULL))
            s_room_want (self, id);
    }
    json_t *doc = json_pack ("{s:s, s:o}", "type", "rooms", "rooms", list);
    if (call->serial)
        aip_webpages_send (self->pages, call->serial, doc);
    else
        aip_webpages_broadcast (self->pages, doc, NULL);
}

static void
s_reply_room_get (s_web_t *self, s_call_t *call, aip_reply_t *rep)
{
    aip_webrooms_loaded (self->rooms, call->room, rep);
}

static void
s_reply_history (s_web_t *self, s_call_t *call, aip_reply_t *rep)
{
    aip_webrooms_history (self->rooms, call->room, call->serial, rep);
}

static void
s_reply_send (s_web_t *self, s_call_t *call, aip_reply_t *rep)
{
    if (!rep->ok) {
        aip_webpages_error (self->pages, call->serial, "not sent: %s", rep->message);
        return;
    }
    char id [AIP_MAX_ID + 1];
    aip_obj_get_str (rep->data, "id", id, sizeof id, "");
    aip_webpages_send (self->pages, call->serial, json_pack ("{s:s, s:s, s:s}", "type", "sent",
                                                             "room", call->room, "id", id));
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
        aip_webpages_error (self->pages, call->serial, "cannot discover the AI tools: %s",
                            rep->message);
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
        aip_webpages_send (self->pages, call->serial, doc);
    else
        aip_webpages_broadcast (self->pages, doc, NULL);
}

typedef void (s_reply_fn) (s_web_t *self, s_call_t *call, aip_reply_t *rep);
static s_reply_fn *const s_replies [CALL_KINDS] = {
    [CALL_ROOM_LIST] = s_reply_room_list,
    [CALL_ROOM_GET]  = s_reply_room_get,
    [CALL_HISTORY]   = s_reply_history,
    [CALL_SEND]      = s_reply_send,
    [CALL_DISCOVER]  = s_reply_discover,
};

//  ---------------------------------------------------------------------
//  The broker's events, by their type

static void
s_event_message (s_web_t *self, const char *room_id, aip_doc_t **doc_p)
{
    aip_webroom_t *room = s_room_want (self, room_id);
    if (room)
        aip_webrooms_message (self->rooms, room, doc_p);
}

static void
s_event_progress (s_web_t *self, const char *room_id, aip_doc_t **doc_p)
{
    aip_webrooms_progress (self->rooms, room_id, aip_obj_get (aip_doc_root (*doc_p), "data"));
}

//  Each event's handler (it may take the document), by type; outbox
//  events are relayd's
typedef void (s_event_fn) (s_web_t *self, const char *room_id, aip_doc_t **doc_p);
static s_event_fn *const s_events [AIP_EVENT_COUNT] = {
    [AIP_EVENT_MESSAGE]  = s_event_message,
    [AIP_EVENT_PROGRESS] = s_event_progress,
};

//  ---------------------------------------------------------------------
//  Requests the pages make (JSON over the WebSocket)

static const char *
s_str (json_t *req, const char *key)
{
    return json_string_value (json_object_get (req, key));
}

static bool
s_check_room (s_web_t *self, uint64_t serial, const char *room)
{
    if (!room || !aip_id_valid (room, strlen (room))) {
        aip_webpages_error (self->pages, serial,
                            "a room id is letters, digits, '_' and '-' (at most 64)");
        return false;
    }
    return true;
}

static bool
s_check_tool (s_web_t *self, uint64_t serial, const char *tool)
{
    if (!tool || !*tool || strlen (tool) > AIP_MAX_ID || !aip_id_valid (tool, strlen (tool))) {
        aip_webpages_error (self->pages, serial, "a tool name is letters, digits, '_' and '-'");
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
s_op_rooms (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    uint64_t id = s_call_begin (self, AIP_OP_ROOM_LIST, 0);
    s_call_send (self, id, CALL_ROOM_LIST, serial, NULL);
}

static void
s_op_open (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    const char *room = s_str (req, "room");
    if (!s_check_room (self, serial, room))
        return;
    aip_webpage_set_room (page, room);
    s_room_want (self, room);
    uint64_t id = s_call_begin (self, AIP_OP_MSG_LIST, 2);
    aip_pack_kstr (self->pk, "room_id", room);
    aip_pack_kint (self->pk, "limit", AIP_WEB_HISTORY);
    s_call_send (self, id, CALL_HISTORY, serial, room);
}

static void
s_op_send (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    const char *room_id = s_str (req, "room");
    json_t *text = json_object_get (req, "text");
    if (!s_check_room (self, serial, room_id))
        return;
    if (!json_is_string (text) || json_string_length (text) == 0) {
        aip_webpages_error (self->pages, serial, "nothing to send: the text is empty");
        return;
    }
    size_t len = json_string_length (text);
    if (len > AIP_MAX_CONTENT) {
        aip_webpages_error (self->pages, serial,
                            "not sent: the message is %zu bytes; the limit is %d",
                            len, AIP_MAX_CONTENT);
        return;
    }
    aip_webroom_t *room = s_room_want (self, room_id);
    if (!room || !aip_webroom_ready (room)) {
        aip_webpages_error (self->pages, serial, "room %s is not known (yet): open it first",
                            room_id);
        return;
    }
    char msg_id [AIP_MSG_ID_LEN + 1];
    aip_msg_id_new (msg_id);
    char *cipher;
    if (aip_webroom_seal (room, msg_id, self->me.id, json_string_value (text), len, &cipher)) {
        aip_webpages_error (self->pages, serial, "not sent: cannot encrypt the message");
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
    if (s_call_send (self, id, CALL_SEND, serial, room_id) == 0) {
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
s_op_discover (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    uint64_t id = s_call_begin (self, AIP_OP_SPAWN_DISCOVER, 0);
    s_call_send (self, id, CALL_DISCOVER, serial, NULL);
}

static void
s_op_invite (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    const char *room = s_str (req, "room"), *tool = s_str (req, "tool");
    const char *context = s_str (req, "context");
    if (!s_check_room (self, serial, room) || !s_check_tool (self, serial, tool))
        return;
    if (context && (!*context || strlen (context) > AIP_MAX_CONTENT))
        context = NULL;
    s_invite (self, serial, room, tool, context);
}

//  "a,b" from a JSON array of tool names, or -1 (the page was told)
static int
s_tool_list (s_web_t *self, uint64_t serial, json_t *tools, char *buf, size_t size, size_t min)
{
    *buf = 0;
    size_t i, count = 0;
    json_t *t;
    if (!json_is_array (tools) || json_array_size (tools) < min || json_array_size (tools) > 8) {
        aip_webpages_error (self->pages, serial, "choose %zu to 8 tools", min);
        return -1;
    }
    json_array_foreach (tools, i, t) {
        if (!s_check_tool (self, serial, json_string_value (t)))
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
s_op_quick (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    const char *question = s_str (req, "question");
    char tools [600], what [200];
    if (!question || !*question || strlen (question) > AIP_MAX_CONTENT) {
        aip_webpages_error (self->pages, serial, "ask a question (at most 256 KiB)");
        return;
    }
    if (s_tool_list (self, serial, json_object_get (req, "tools"), tools, sizeof tools, 1))
        return;
    snprintf (what, sizeof what, "quick: %s", tools);
    const char *argv [] = { self->cli, "quick", "--tools", tools, "--", question, NULL };
    s_job_start (self, serial, "quick", what, NULL, NULL, argv, NULL);
}

static void
s_op_discuss (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    const char *room = s_str (req, "room");
    json_t *rounds = json_object_get (req, "rounds");
    char tools [600], what [200], rounds_text [16];
    if (s_tool_list (self, serial, json_object_get (req, "tools"), tools, sizeof tools, 2)
    ||  (room && !s_check_room (self, serial, room)))
        return;
    if (!json_is_integer (rounds) || json_integer_value (rounds) < 1
    ||  json_integer_value (rounds) > 10) {
        aip_webpages_error (self->pages, serial, "rounds: 1 to 10");
        return;
    }
    snprintf (rounds_text, sizeof rounds_text, "%d", (int) json_integer_value (rounds));
    snprintf (what, sizeof what, "discuss: %s, %s rounds", tools, rounds_text);
    const char *argv [] = { self->cli, "discuss", "--tools", tools, "--rounds", rounds_text,
                            room ? "--room" : NULL, room, NULL };
    s_job_start (self, serial, "discuss", what, room, NULL, argv, NULL);
}

static void
s_op_join (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    const char *link = s_str (req, "link"), *password = s_str (req, "password");
    if (!link || !*link || strlen (link) > 2048) {
        aip_webpages_error (self->pages, serial,
                            "paste a connection string (peer://… or peer+lan://…)");
        return;
    }
    if (link [0] == '-') {
        aip_webpages_error (self->pages, serial,
                            "a connection string starts with peer:// or peer+lan://");
        return;
    }
    //  The password goes to the command's environment only: never argv,
    //  never a log line
    const char *argv [] = { self->cli, "room", "join", link, NULL };
    s_job_start (self, serial, "join", "joining a room", NULL, NULL, argv,
                 password && *password ? password : NULL);
}

static void
s_op_create (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    const char *name = s_str (req, "name");
    if (!name || !*name || strlen (name) > AIP_MAX_NAME || name [0] == '-') {
        aip_webpages_error (self->pages, serial,
                            "a room name is 1 to %d bytes, not starting with '-'", AIP_MAX_NAME);
        return;
    }
    const char *argv [] = { self->cli, "room", "create", name, NULL };
    s_job_start (self, serial, "create", "creating a room", NULL, NULL, argv, NULL);
}

static void
s_op_export (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    uint64_t serial = aip_webpage_serial (page);
    const char *room = s_str (req, "room"), *format = s_str (req, "format");
    if (!s_check_room (self, serial, room))
        return;
    if (!format || (!streq (format, "md") && !streq (format, "json"))) {
        aip_webpages_error (self->pages, serial, "export as md or json");
        return;
    }
    const char *argv [] = { self->cli, "export", room, "--format", format, NULL };
    s_job_start (self, serial, "export", "export", room, format, argv, NULL);
}

typedef void (s_op_fn) (s_web_t *self, aip_webpage_t *page, json_t *req);
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

//  A request from a page, by its op
static void
s_page_request (s_web_t *self, aip_webpage_t *page, json_t *req)
{
    const char *op = s_str (req, "op");
    for (size_t i = 0; i < sizeof s_ops / sizeof s_ops [0]; i++)
        if (streq (op, s_ops [i].name)) {
            s_ops [i].fn (self, page, req);
            return;
        }
    aip_webpages_error (self->pages, aip_webpage_serial (page), "unknown op \"%.40s\"", op);
}

//  A logged-in WebSocket: hello, the rooms, the tools
static void
s_page_open (s_web_t *self, s_conn_t *c, struct lws *wsi)
{
    c->page = aip_webpages_open (self->pages, wsi);
    uint64_t serial = aip_webpage_serial (c->page);
    aip_webpages_send (self->pages, serial,
                       json_pack ("{s:s, s:{s:s, s:s}, s:i}", "type", "hello", "me", "id",
                                  self->me.id, "name", self->me.name, "port", self->port));
    s_ask_rooms (self, serial);
    if (zlistx_size (self->tools) == 0)
        s_ask_tools (self, serial);
    else {
        json_t *list = json_array ();
        for (char *tool = (char *) zlistx_first (self->tools); tool;
             tool = (char *) zlistx_next (self->tools))
            json_array_append_new (list, json_pack ("{s:s, s:s}", "tool", tool, "version", ""));
        aip_webpages_send (self->pages, serial,
                           json_pack ("{s:s, s:o}", "type", "tools", "tools", list));
    }
}

//  ---------------------------------------------------------------------
//  Commands run for the pages (ai-peer invite, quick, ...)

static void s_reap_check (lws_sorted_usec_list_t *sul);
static int s_recv_job (s_web_t *self, struct lws *wsi, aip_webjobs_run_t *run);

//  Start a command; its stdout is watched in lws's loop
static void
s_job_start (s_web_t *self, uint64_t serial, const char *kind, const char *what,
             const char *room, const char *format, const char *const *argv,
             const char *password)
{
    aip_webjobs_run_t *run = aip_webjobs_start (self->jobs, serial, kind, what, room, format,
                                                argv, password);
    if (!run)
        return;                 //  the page was told why
    s_fd_t *tag = (s_fd_t *) zmalloc (sizeof (s_fd_t));
    tag->recv = s_recv_job;
    tag->run = run;
    lws_sock_file_fd_type fd;
    fd.filefd = aip_webjobs_fd (run);
    struct lws *wsi = lws_adopt_descriptor_vhost (self->vhost, LWS_ADOPT_RAW_FILE_DESC, fd,
                                                  "aip-fd", NULL);
    if (!wsi) {
        free (tag);
        close (fd.filefd);
        aip_webjobs_output_done (run);
    }
    else
        lws_set_opaque_user_data (wsi, tag);
    lws_sul_schedule (self->lws, 0, &self->reap_sul, s_reap_check, REAP_POLL_US);
}

//  Finished commands told to their pages; looked for again while some run
static void
s_reap_check (lws_sorted_usec_list_t *sul)
{
    s_web_t *self = lws_container_of (sul, s_web_t, reap_sul);
    bool rooms_changed;
    bool running = aip_webjobs_reap (self->jobs, &rooms_changed);
    //  A joined or new room: every page's list changes
    if (rooms_changed)
        s_ask_rooms (self, 0);
    if (running)
        lws_sul_schedule (self->lws, 0, &self->reap_sul, s_reap_check, REAP_POLL_US);
}

//  ---------------------------------------------------------------------
//  The sockets, one handler each. ZMQ_FD only says "look", and a send may
//  take a socket's readiness: every socket is read until all are empty.

//  The actor pipe: $TERM
static bool
s_recv_api (s_web_t *self)
{
    zmsg_t *msg = zmsg_recv_nowait (self->pipe);
    if (!msg)
        return false;
    char *command = zmsg_popstr (msg);
    if (command && streq (command, "$TERM")) {
        self->terminated = true;
        lws_cancel_service (self->lws);
    }
    free (command);
    zmsg_destroy (&msg);
    return true;
}

//  The DEALER: a reply, handled by what its request was for
static bool
s_recv_broker (s_web_t *self)
{
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (zmq_msg_recv (&msg, self->dealer, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&msg);
        return false;
    }
    aip_reply_t rep;
    char err [256];
    if (aip_reply_decode (zmq_msg_data (&msg), zmq_msg_size (&msg), &rep, err, sizeof err)) {
        zsys_warning ("webd: malformed reply from brokerd: %s", err);
        zmq_msg_close (&msg);
        return true;
    }
    zmq_msg_close (&msg);
    char key [24];
    snprintf (key, sizeof key, "%" PRIu64, rep.id);
    s_call_t *call = (s_call_t *) zhashx_lookup (self->calls, key);
    if (call) {
        s_replies [call->kind] (self, call, &rep);
        zhashx_delete (self->calls, key);
    }
    aip_reply_free (&rep);
    return true;
}

//  The SUB: a room's event, handled by its type
static bool
s_recv_events (s_web_t *self)
{
    zmsg_t *msg = zmsg_recv_nowait (self->events);
    if (!msg)
        return false;
    zframe_t *topic = zmsg_first (msg);
    zframe_t *body = topic ? zmsg_next (msg) : NULL;
    char err [256];
    aip_event_t ev;
    if (body && aip_event_decode (zframe_data (body), zframe_size (body), &ev, err,
                                  sizeof err) == 0) {
        if (s_events [ev.type])
            s_events [ev.type] (self, ev.room_id, &ev.doc);
        aip_event_free (&ev);
    }
    zmsg_destroy (&msg);
    return true;
}

static void
s_drain (s_web_t *self)
{
    if (self->draining)
        return;
    self->draining = true;
    bool more = true;
    while (more) {
        more = s_recv_broker (self);
        more |= s_recv_events (self);
        more |= s_recv_api (self);
    }
    self->draining = false;
}

//  A broker socket or the pipe is readable
static int
s_recv_zmq (s_web_t *self, struct lws *wsi, aip_webjobs_run_t *run)
{
    s_drain (self);
    return 0;
}

//  A command's stdout is readable
//  A command's stdout is readable: -1 at its end (lws closes it; RAW_CLOSE_FILE follows)
static int
s_recv_job (s_web_t *self, struct lws *wsi, aip_webjobs_run_t *run)
{
    return aip_webjobs_read (run, lws_get_socket_fd (wsi));
}

//  lws's callback of the adopted descriptors: the handler the tag names
static int
s_fd_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    s_web_t *self = (s_web_t *) lws_context_user (lws_get_context (wsi));
    s_fd_t *tag = (s_fd_t *) lws_get_opaque_user_data (wsi);
    if (reason == LWS_CALLBACK_RAW_RX_FILE && tag)
        return tag->recv (self, wsi, tag->run);
    if (reason == LWS_CALLBACK_RAW_CLOSE_FILE && tag && tag->run) {
        aip_webjobs_output_done (tag->run);
        lws_set_opaque_user_data (wsi, NULL);
        free (tag);
        if (!self->terminated)
            lws_sul_schedule (self->lws, 0, &self->reap_sul, s_reap_check, 1);
    }
    return 0;
}

//  lws's callback of the connections: the WebSocket's to the pages, the
//  rest (HTTP, the upgrade's checks) to aip_webhttp
static int
s_conn_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    struct lws_context *context = lws_get_context (wsi);
    s_web_t *self = context ? (s_web_t *) lws_context_user (context) : NULL;
    s_conn_t *c = (s_conn_t *) user;
    if (!self || !self->http)
        return lws_callback_http_dummy (wsi, reason, user, in, len);
    switch (reason) {
        case LWS_CALLBACK_ESTABLISHED:
            s_page_open (self, c, wsi);
            return 0;
        case LWS_CALLBACK_RECEIVE: {
            if (!c->page)
                return -1;
            json_t *req;
            bool final = lws_is_final_fragment (wsi) && lws_remaining_packet_payload (wsi) == 0;
            int rc = aip_webpages_receive (self->pages, c->page, in, len,
                                           lws_frame_is_binary (wsi), final, &req);
            if (rc == 1) {
                s_page_request (self, c->page, req);
                json_decref (req);
            }
            return rc < 0 ? -1 : 0;
        }
        case LWS_CALLBACK_SERVER_WRITEABLE:
            return c->page ? aip_webpages_write (self->pages, c->page) : 0;
        case LWS_CALLBACK_CLOSED:
            aip_webpages_close (self->pages, &c->page);
            return 0;
        default:
            //  The context's and protocol's own callbacks have no connection
            return aip_webhttp_callback (self->http, wsi, reason, c ? &c->http : NULL, in, len);
    }
}

static const struct lws_protocols s_protocols [] = {
    { "http", s_conn_callback, sizeof (s_conn_t), 16 * 1024, 0, NULL, 0 },
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
    self->pages = aip_webpages_new ();
    self->rooms = aip_webrooms_new (self->pages);
    self->jobs = aip_webjobs_new (self->home, self->pages);
    self->calls = zhashx_new ();
    zhashx_set_destructor (self->calls, s_call_free);
    self->tools = zlistx_new ();
    zlistx_set_destructor (self->tools, s_tool_free);
    self->fd_pipe.recv = s_recv_zmq;
    self->fd_broker.recv = s_recv_zmq;
    self->fd_events.recv = s_recv_zmq;
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
    zsock_set_subscribe (self->events, AIP_EVENT_ROOM_PREFIX);
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
    //  From now on the connections' callbacks have their HTTP side
    self->http = aip_webhttp_new (self->home, self->port);
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
    aip_webjobs_destroy (&self->jobs);
    aip_webhttp_destroy (&self->http);
    zhashx_destroy (&self->calls);
    aip_webrooms_destroy (&self->rooms);
    aip_webpages_destroy (&self->pages);
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
    s_ask_rooms (self, 0);
    s_ask_tools (self, 0);
    while (!self->terminated) {
        if (lws_service (self->lws, 0) < 0)
            break;
        //  Whatever a callback sent, look at the sockets once more
        s_drain (self);
    }
    zsys_info ("webd: stopping (%" PRIu64 " messages delivered to pages)",
               aip_webrooms_delivered (self->rooms));
    s_web_destroy (&self);
}

//  ---------------------------------------------------------------------
//  Self-test

void
aip_web_test (bool verbose)
{
    printf (" * aip_web: ");
    //  Every kind of call has its reply's handler; every op its own row
    for (int kind = 0; kind < CALL_KINDS; kind++)
        assert (s_replies [kind]);
    for (size_t i = 0; i < sizeof s_ops / sizeof s_ops [0]; i++) {
        assert (s_ops [i].fn && *s_ops [i].name);
        for (size_t j = 0; j < i; j++)
            assert (!streq (s_ops [i].name, s_ops [j].name));
    }
    //  ... and every room event its handler
    assert (s_events [AIP_EVENT_MESSAGE] && s_events [AIP_EVENT_PROGRESS]);

    //  "@tool" mentions: discovered tools only, each once, at most four,
    //  a word of their own (not an e-mail address); "claude" is claude-code
    s_web_t self;
    memset (&self, 0, sizeof self);
    self.tools = zlistx_new ();
    zlistx_set_destructor (self.tools, s_tool_free);
    const char *tools [] = { "codex", "claude-code", "gemini", "opencode", "aider" };
    for (size_t i = 0; i < sizeof tools / sizeof tools [0]; i++)
        zlistx_add_end (self.tools, strdup (tools [i]));
    char *found = s_mentions (&self, "@codex look, and @nobody; mail me@gemini @codex");
    assert (found && streq (found, "codex "));
    free (found);
    found = s_mentions (&self, "@claude @gemini\n@opencode @aider @codex");
    assert (found && streq (found, "claude gemini opencode aider "));
    free (found);
    assert (!s_mentions (&self, "no mention @ all"));
    assert (!s_mentions (&self, "@codexx @"));
    zlistx_destroy (&self.tools);
    if (verbose)
        printf ("(reply, op and event tables, mentions) ");
    printf ("OK\n");
}
