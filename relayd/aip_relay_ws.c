/*  aip_relay_ws.c — WebSocket client connections to relays (libwebsockets
    in a dedicated thread; see aip_relay_ws.h). */
#include "aip_relay_ws.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <libwebsockets.h>

struct _aip_relay_ws_t {
    zactor_t *actor;                //  the lws thread
    struct lws_context *context;    //  set by the thread before it signals
};

//  One connection, owned by the thread's table
typedef struct {
    char room_id [AIP_MAX_ID + 1];  //  the room it serves
    struct lws *wsi;                //  the connection, NULL once gone
    char *buf;                      //  message being reassembled
    size_t len;                     //  bytes in buf
    bool overflow;                  //  this message passed the cap: drop it
    bool closing;                   //  closed on request: no DOWN
    bool dead;                      //  failed while being created
} s_conn_t;

//  State of the thread
typedef struct {
    zsock_t *pipe;                  //  commands in, events out
    struct lws_context *context;
    zhashx_t *conns;                //  room_id -> s_conn_t
    bool stop;                      //  leave the service loop
    bool term;                      //  $TERM read: the owner is done with the context
    s_conn_t *connecting;           //  inside lws_client_connect_via_info
} s_ws_thread_t;

static void
s_conn_free (void **item)
{
    s_conn_t *c = (s_conn_t *) *item;
    if (c) {
        free (c->buf);
        free (c);
        *item = NULL;
    }
}

static s_ws_thread_t *
s_thread_of (struct lws *wsi)
{
    return (s_ws_thread_t *) lws_context_user (lws_get_context (wsi));
}

//  A connection is gone: tell the relay actor (unless it asked for it)
static void
s_conn_gone (s_ws_thread_t *self, s_conn_t *conn, const char *reason)
{
    if (!conn->closing && !conn->dead)
        zstr_sendx (self->pipe, "DOWN", conn->room_id, reason ? reason : "closed", NULL);
    if (conn == self->connecting) {
        //  Failed inside lws_client_connect_via_info: s_open frees it
        conn->dead = true;
        return;
    }
    //  Only forget it if the table still holds this very connection (a
    //  reopen may have replaced it)
    if (zhashx_lookup (self->conns, conn->room_id) == conn)
        zhashx_delete (self->conns, conn->room_id);
    else
        s_conn_free ((void **) &conn);
}

static void
s_open (s_ws_thread_t *self, const char *room_id, const char *url, const char *token)
{
    s_conn_t *old = (s_conn_t *) zhashx_lookup (self->conns, room_id);
    if (old && old->wsi) {
        //  Already connected or connecting
        return;
    }
    bool tls = strncmp (url, "https://", 8) == 0;
    const char *hostport = url + (tls ? 8 : 7);
    char host [AIP_MAX_NAME + 1], hosthdr [AIP_MAX_NAME + 1];
    snprintf (hosthdr, sizeof hosthdr, "%s", hostport);
    int port = tls ? 443 : 80;
    //  [v6]:port or name:port
    char *end = hosthdr [0] == '[' ? strchr (hosthdr, ']') : hosthdr;
    char *colon = end ? strchr (end, ':') : NULL;
    if (colon)
        port = atoi (colon + 1);
    size_t hlen = colon ? (size_t) (colon - hosthdr) : strlen (hosthdr);
    if (hosthdr [0] == '[' && hlen >= 2)
        snprintf (host, sizeof host, "%.*s", (int) hlen - 2, hosthdr + 1);
    else
        snprintf (host, sizeof host, "%.*s", (int) hlen, hosthdr);
    char path [AIP_MAX_ID + AIP_MAX_NAME + 64];
    snprintf (path, sizeof path, "/rooms/%s/ws?token=%s", room_id, token);

    s_conn_t *conn = (s_conn_t *) zmalloc (sizeof (s_conn_t));
    snprintf (conn->room_id, sizeof conn->room_id, "%s", room_id);
    zhashx_update (self->conns, room_id, conn);

    //  Keep-alive: a ping after 20 s of silence, hang up after 45 s
    static const lws_retry_bo_t retry = { .secs_since_valid_ping = 20,
                                          .secs_since_valid_hangup = 45 };
    struct lws_client_connect_info info;
    memset (&info, 0, sizeof info);
    info.context = self->context;
    info.address = host;
    info.port = port;
    info.path = path;
    info.host = hosthdr;
    info.origin = hosthdr;
    info.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
    info.local_protocol_name = "aip-relay";
    info.retry_and_idle_policy = &retry;
    info.opaque_user_data = conn;
    self->connecting = conn;
    struct lws *wsi = lws_client_connect_via_info (&info);
    self->connecting = NULL;
    if (conn->dead)
        s_conn_gone (self, conn, NULL);
    else
    if (!wsi)
        s_conn_gone (self, conn, "cannot start the connection");
    else
        conn->wsi = wsi;
}

static void
s_close (s_ws_thread_t *self, const char *room_id)
{
    s_conn_t *conn = (s_conn_t *) zhashx_lookup (self->conns, room_id);
    if (!conn)
        return;
    conn->closing = true;
    if (conn->wsi)
        lws_callback_on_writable (conn->wsi);
    else
        zhashx_delete (self->conns, room_id);
}

//  Commands from the relay actor (woken by lws_cancel_service)
static void
s_commands (s_ws_thread_t *self)
{
    while (zsock_events (self->pipe) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv (self->pipe);
        if (!msg)
            break;
        char *command = zmsg_popstr (msg);
        if (command && (streq (command, "$TERM") || streq (command, "STOP"))) {
            self->stop = true;
            self->term = self->term || streq (command, "$TERM");
        }
        else
        if (command && streq (command, "OPEN") && zmsg_size (msg) == 3) {
            char *room = zmsg_popstr (msg), *url = zmsg_popstr (msg), *token = zmsg_popstr (msg);
            s_open (self, room, url, token);
            free (room), free (url), free (token);
        }
        else
        if (command && streq (command, "CLOSE") && zmsg_size (msg) == 1) {
            char *room = zmsg_popstr (msg);
            s_close (self, room);
            free (room);
        }
        free (command);
        zmsg_destroy (&msg);
    }
    if (self->stop)
        lws_cancel_service (self->context);
}

static int
s_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    s_ws_thread_t *self = wsi ? s_thread_of (wsi) : NULL;
    s_conn_t *conn = wsi ? (s_conn_t *) lws_get_opaque_user_data (wsi) : NULL;
    switch (reason) {
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            if (self)
                s_commands (self);
            break;
        case LWS_CALLBACK_CLIENT_ESTABLISHED:
            if (conn && !conn->closing)
                zstr_sendx (self->pipe, "UP", conn->room_id, NULL);
            break;
        case LWS_CALLBACK_CLIENT_RECEIVE:
            if (!conn || conn->closing)
                break;
            if (!conn->overflow) {
                if (conn->len + len > AIP_RELAY_MAX_WS_MESSAGE) {
                    zsys_warning ("relay: room %s: a WebSocket message passed %d bytes; dropped",
                                  conn->room_id, AIP_RELAY_MAX_WS_MESSAGE);
                    conn->overflow = true;
                }
                else {
                    char *grown = (char *) realloc (conn->buf, conn->len + len + 1);
                    if (!grown)
                        conn->overflow = true;
                    else {
                        conn->buf = grown;
                        memcpy (conn->buf + conn->len, in, len);
                        conn->len += len;
                    }
                }
            }
            if (lws_is_final_fragment (wsi) && lws_remaining_packet_payload (wsi) == 0) {
                if (!conn->overflow && !lws_frame_is_binary (wsi)) {
                    zmsg_t *msg = zmsg_new ();
                    zmsg_addstr (msg, "MSG");
                    zmsg_addstr (msg, conn->room_id);
                    zmsg_addmem (msg, conn->buf ? conn->buf : "", conn->len);
                    zmsg_send (&msg, self->pipe);
                }
                free (conn->buf);
                conn->buf = NULL;
                conn->len = 0;
                conn->overflow = false;
            }
            break;
        case LWS_CALLBACK_CLIENT_WRITEABLE:
            if (conn && conn->closing)
                return -1;          //  closes the connection
            break;
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
            if (conn) {
                char why [256];
                snprintf (why, sizeof why, "%.*s", in ? (int) (len ? len : strlen ((char *) in)) : 0,
                          in ? (const char *) in : "");
                conn->wsi = NULL;
                lws_set_opaque_user_data (wsi, NULL);
                s_conn_gone (self, conn, *why ? why : "connection failed");
            }
            break;
        case LWS_CALLBACK_CLIENT_CLOSED:
            if (conn) {
                conn->wsi = NULL;
                lws_set_opaque_user_data (wsi, NULL);
                s_conn_gone (self, conn, "closed by the relay");
            }
            break;
        default:
            break;
    }
    return 0;
}

static const struct lws_protocols s_protocols [] = {
    { "aip-relay", s_callback, 0, 4096, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void
s_ws_actor (zsock_t *pipe, void *args)
{
    aip_relay_ws_t *owner = (aip_relay_ws_t *) args;
    s_ws_thread_t self = { pipe, NULL, zhashx_new (), false, false, NULL };
    zhashx_set_destructor (self.conns, s_conn_free);
    lws_set_log_level (LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = s_protocols;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.gid = -1;
    info.uid = -1;
    info.user = &self;
    self.context = lws_create_context (&info);
    owner->context = self.context;
    zsock_signal (pipe, self.context ? 0 : 1);
    if (self.context) {
        //  Only the owner's STOP ends the loop, not SIGTERM
        while (!self.stop)
            if (lws_service (self.context, 0) < 0)
                break;
    }
    //  The owner calls lws_cancel_service on the context while it stops
    //  us, then zactor_destroy sends $TERM: only then may the context go
    //  (destroying it on SIGTERM, under the owner's feet, was a double
    //  free at shutdown)
    while (!self.term) {
        char *command = zstr_recv (pipe);
        self.term = !command || streq (command, "$TERM");
        free (command);
    }
    if (self.context)
        lws_context_destroy (self.context);
    zhashx_destroy (&self.conns);
}

aip_relay_ws_t *
aip_relay_ws_new (void)
{
    aip_relay_ws_t *self = (aip_relay_ws_t *) zmalloc (sizeof (aip_relay_ws_t));
    self->actor = zactor_new (s_ws_actor, self);
    if (!self->actor || !self->context) {
        zsys_error ("relay: cannot create the WebSocket context");
        zactor_destroy (&self->actor);
        free (self);
        return NULL;
    }
    return self;
}

void
aip_relay_ws_destroy (aip_relay_ws_t **self_p)
{
    aip_relay_ws_t *self = *self_p;
    if (!self)
        return;
    zstr_send (self->actor, "STOP");
    lws_cancel_service (self->context);
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

zsock_t *
aip_relay_ws_sock (aip_relay_ws_t *self)
{
    return zactor_sock (self->actor);
}

void
aip_relay_ws_open (aip_relay_ws_t *self, const char *room_id, const char *relay_url,
                   const char *token)
{
    zstr_sendx (self->actor, "OPEN", room_id, relay_url, token, NULL);
    lws_cancel_service (self->context);
}

void
aip_relay_ws_close (aip_relay_ws_t *self, const char *room_id)
{
    zstr_sendx (self->actor, "CLOSE", room_id, NULL);
    lws_cancel_service (self->context);
}

//  ---------------------------------------------------------------------
//  Self-test: a connection to a port nobody listens on reports DOWN; a
//  close of a room that never connected is harmless; destroy is clean.

void
aip_relay_ws_test (bool verbose)
{
    printf (" * aip_relay_ws: ");
    //  A port that was free a moment ago
    int port = aip_free_tcp_port ();
    assert (port > 0);
    char url [64];
    snprintf (url, sizeof url, "http://127.0.0.1:%d", port);

    aip_relay_ws_t *ws = aip_relay_ws_new ();
    assert (ws);
    aip_relay_ws_close (ws, "room-never-opened");
    aip_relay_ws_open (ws, "room-000000000001", url, "t0k");
    zsock_set_rcvtimeo (aip_relay_ws_sock (ws), 10000);
    zmsg_t *msg = zmsg_recv (aip_relay_ws_sock (ws));
    assert (msg);
    char *event = zmsg_popstr (msg);
    char *room = zmsg_popstr (msg);
    char *why = zmsg_popstr (msg);
    assert (streq (event, "DOWN") && streq (room, "room-000000000001"));
    if (verbose)
        printf ("(%s) ", why);
    free (event), free (room), free (why);
    zmsg_destroy (&msg);
    aip_relay_ws_destroy (&ws);
    aip_relay_ws_destroy (&ws);
    assert (!ws);
    printf ("OK\n");
}
