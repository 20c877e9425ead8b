/*  aip_lanmode.c — LAN mode of the broker: the CURVE endpoint, our beacon
    and the peers heard. See aip_lanmode.h. */
#include "aip_lanmode.h"
#include "aip_crypto.h"
#include "aip_frames.h"
#include "aip_home.h"
#include "aip_lan.h"
#include "aip_util.h"

//  A LAN peer heard by beacon
typedef struct {
    aip_lan_beacon_t beacon;    //  what it says about itself
    char address [64];          //  where its beacon came from
    int64_t heard_ms;           //  when we last heard it (monotonic)
    char heard_at [AIP_TIME_LEN + 1];   //  the same as UTC time
} s_lanpeer_t;

struct _aip_lanmode_t {
    zsock_t *sock;              //  ROUTER on tcp://*:port with CURVE
    zactor_t *beacon;           //  zbeacon (presence and discovery), or NULL
    zcert_t *cert;              //  our long-term key pair
    int port;                   //  the TCP port
    char address [64];          //  our address on the network
    char key_hex [AIP_LAN_KEY_HEX + 1];             //  our public key
    char worker_token [AIP_RELAY_TOKEN_HEX + 1];    //  remote spawn workers show it
    aip_lan_beacon_t mine;      //  what our beacon says
    zhashx_t *peers;            //  public key hex -> s_lanpeer_t
};

static void
s_lanpeer_free (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_beacon_publish (aip_lanmode_t *self)
{
    if (!self->beacon)
        return;
    uint8_t buf [AIP_LAN_BEACON_MAX];
    size_t size = aip_lan_beacon_pack (&self->mine, buf);
    zsock_send (self->beacon, "sbi", "PUBLISH", buf, size, AIP_LAN_BEACON_MS);
}

//  Our address on the network: AI_PEER_LAN_ADDRESS, else the address of
//  the interface zbeacon broadcasts on
static int
s_beacon_start (aip_lanmode_t *self, char *err, size_t errlen)
{
    self->beacon = zactor_new (zbeacon, NULL);
    if (!self->beacon) {
        snprintf (err, errlen, "cannot start LAN discovery (zbeacon)");
        return -1;
    }
    zsock_send (self->beacon, "si", "CONFIGURE", AIP_LAN_BEACON_PORT);
    char *hostname = zstr_recv (self->beacon);
    const char *fixed = getenv ("AI_PEER_LAN_ADDRESS");
    if (fixed && *fixed)
        snprintf (self->address, sizeof self->address, "%s", fixed);
    else
    if (hostname && *hostname)
        snprintf (self->address, sizeof self->address, "%s", hostname);
    bool can_beacon = hostname && *hostname;
    free (hostname);
    if (!*self->address) {
        snprintf (err, errlen, "no network interface that can broadcast was found: LAN mode "
                  "needs one (set ZSYS_INTERFACE=<interface> to choose it, or "
                  "AI_PEER_LAN_ADDRESS=<address> to skip discovery)");
        zactor_destroy (&self->beacon);
        return -1;
    }
    if (!can_beacon) {
        zsys_warning ("broker: no broadcast interface: LAN discovery is off");
        zactor_destroy (&self->beacon);
        return 0;
    }
    self->mine.version = AIP_PROTO_VERSION;
    char host [64];
    aip_hostname (host, sizeof host);
    snprintf (self->mine.machine, sizeof self->mine.machine, "%s", host);
    snprintf (self->mine.user, sizeof self->mine.user, "%s", aip_username ());
    self->mine.port = self->port;
    memcpy (self->mine.key, zcert_public_key (self->cert), 32);
    s_beacon_publish (self);
    zsock_send (self->beacon, "sb", "SUBSCRIBE", AIP_LAN_BEACON_PREFIX,
                strlen (AIP_LAN_BEACON_PREFIX));
    return 0;
}

aip_lanmode_t *
aip_lanmode_new (const char *home, int port, char *err, size_t errlen)
{
    if (!zsys_has_curve ()) {
        snprintf (err, errlen, "this libzmq has no CURVE security: LAN mode needs it");
        return NULL;
    }
    aip_lanmode_t *self = (aip_lanmode_t *) zmalloc (sizeof (aip_lanmode_t));
    self->port = port;
    self->peers = zhashx_new ();
    zhashx_set_destructor (self->peers, s_lanpeer_free);
    if (!(self->cert = aip_lan_cert_load (home, err, errlen))
    ||  aip_lan_worker_token (home, self->worker_token, err, errlen))
        goto failed;
    aip_lan_key_to_hex (zcert_public_key (self->cert), self->key_hex);
    self->sock = zsock_new (ZMQ_ROUTER);
    assert (self->sock);
    zsock_set_linger (self->sock, 0);
    zsock_set_maxmsgsize (self->sock, AIP_MAX_REQUEST);
    //  As the local client socket: a full pipe to a client says so (the
    //  broker keeps the reply within the client's budget); never blocks
    zsock_set_sndhwm (self->sock, AIP_CLIENT_SNDHWM);
    zsock_set_router_mandatory (self->sock, 1);
    zsock_set_sndtimeo (self->sock, 0);
    zcert_apply (self->cert, self->sock);
    zsock_set_curve_server (self->sock, 1);
    if (zsock_bind (self->sock, "tcp://*:%d", port) < 0) {
        snprintf (err, errlen, "cannot listen on TCP port %d: %s (is another ai-peer in LAN "
                  "mode using it? choose another with --port)", port, zmq_strerror (zmq_errno ()));
        goto failed;
    }
    if (s_beacon_start (self, err, errlen))
        goto failed;
    if (aip_lan_mode_set (home, port))
        zsys_warning ("broker: cannot remember LAN mode in %s/lan/mode", home);
    zsys_info ("broker: LAN mode on tcp://%s:%d (CURVE key %s)", self->address, port,
               self->key_hex);
    return self;
failed:
    aip_lanmode_destroy (&self);
    return NULL;
}

void
aip_lanmode_destroy (aip_lanmode_t **self_p)
{
    aip_lanmode_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->beacon);
    zsock_destroy (&self->sock);
    zcert_destroy (&self->cert);
    zhashx_destroy (&self->peers);
    free (self);
    *self_p = NULL;
}

zsock_t *
aip_lanmode_sock (aip_lanmode_t *self)
{
    return self->sock;
}

void *
aip_lanmode_beacon (aip_lanmode_t *self)
{
    return self->beacon ? zsock_resolve (self->beacon) : NULL;
}

const char *
aip_lanmode_address (aip_lanmode_t *self)
{
    return self->address;
}

int
aip_lanmode_port (aip_lanmode_t *self)
{
    return self->port;
}

const char *
aip_lanmode_key_hex (aip_lanmode_t *self)
{
    return self->key_hex;
}

bool
aip_lanmode_worker_token_ok (aip_lanmode_t *self, const char *token, size_t len)
{
    return token && len == AIP_RELAY_TOKEN_HEX
        && aip_crypto_compare (token, self->worker_token, len) == 0;
}

zmsg_t *
aip_lanmode_recv (aip_lanmode_t *self, bool *from_worker)
{
    zmsg_t *msg = zmsg_recv_nowait (self->sock);
    *from_worker = false;
    if (!msg)
        return NULL;
    zframe_t *first = zmsg_first (msg);
    zframe_t *second = first ? zmsg_next (msg) : NULL;
    if (second && zframe_size (second) < 16) {
        char command [16];
        memcpy (command, zframe_data (second), zframe_size (second));
        command [zframe_size (second)] = 0;
        *from_worker = aip_frame_from_worker (command);
    }
    return msg;
}

void
aip_lanmode_set_tools (aip_lanmode_t *self, const char *tools)
{
    char cut [sizeof self->mine.tools];
    snprintf (cut, sizeof cut, "%s", tools);
    if (streq (cut, self->mine.tools))
        return;
    snprintf (self->mine.tools, sizeof self->mine.tools, "%s", cut);
    s_beacon_publish (self);
}

void
aip_lanmode_beacon_recv (aip_lanmode_t *self)
{
    char *address = zstr_recv (self->beacon);
    zframe_t *content = address ? zframe_recv (self->beacon) : NULL;
    aip_lan_beacon_t beacon;
    if (content && aip_lan_beacon_decode (zframe_data (content), zframe_size (content), &beacon) == 0
    &&  !streq (beacon.key_hex, self->key_hex)) {
        s_lanpeer_t *peer = (s_lanpeer_t *) zhashx_lookup (self->peers, beacon.key_hex);
        if (!peer && zhashx_size (self->peers) < AIP_LAN_MAX_PEERS) {
            peer = (s_lanpeer_t *) zmalloc (sizeof (s_lanpeer_t));
            zhashx_insert (self->peers, beacon.key_hex, peer);
            zsys_info ("broker: LAN peer %s@%s heard at %s", beacon.user, beacon.machine, address);
        }
        if (peer) {
            peer->beacon = beacon;
            snprintf (peer->address, sizeof peer->address, "%s", address);
            peer->heard_ms = aip_clock_ms ();
            aip_time_now (peer->heard_at);
        }
    }
    zframe_destroy (&content);
    free (address);
}

void
aip_lanmode_expire (aip_lanmode_t *self)
{
    int64_t now = aip_clock_ms ();
    zlistx_t *gone = zlistx_new ();
    for (s_lanpeer_t *p = (s_lanpeer_t *) zhashx_first (self->peers); p;
         p = (s_lanpeer_t *) zhashx_next (self->peers))
        if (now - p->heard_ms > AIP_LAN_FORGET_MS)
            zlistx_add_end (gone, (void *) zhashx_cursor (self->peers));
    for (const char *key = (const char *) zlistx_first (gone); key;
         key = (const char *) zlistx_next (gone))
        zhashx_delete (self->peers, key);
    zlistx_destroy (&gone);
}

void
aip_lanmode_pack_status (aip_lanmode_t *self, aip_pack_t *pk)
{
    aip_pack_map (pk, 5);
    aip_pack_kstr (pk, "address", self->address);
    aip_pack_kint (pk, "port", self->port);
    aip_pack_kstr (pk, "public_key", self->key_hex);
    aip_pack_kstr (pk, "worker_token", self->worker_token);
    aip_pack_kint (pk, "peers_heard", (int64_t) zhashx_size (self->peers));
}

void
aip_lanmode_pack_peers (aip_lanmode_t *self, aip_pack_t *pk)
{
    aip_pack_map (pk, 2);
    aip_pack_kbool (pk, "lan", self != NULL);
    aip_pack_key (pk, "peers");
    aip_pack_array (pk, self ? zhashx_size (self->peers) : 0);
    if (!self)
        return;
    int64_t now = aip_clock_ms ();
    for (s_lanpeer_t *p = (s_lanpeer_t *) zhashx_first (self->peers); p;
         p = (s_lanpeer_t *) zhashx_next (self->peers)) {
        aip_pack_map (pk, 10);
        char id [AIP_MAX_ID + 1];
        //  Several daemon sets may run on one machine: the key tells them apart
        snprintf (id, sizeof id, "%s-lan-%s-%.8s", p->beacon.machine, p->beacon.user,
                  p->beacon.key_hex);
        aip_id_sanitize (id);
        aip_pack_kstr (pk, "id", id);
        aip_pack_kstr (pk, "machine", p->beacon.machine);
        aip_pack_kstr (pk, "user", p->beacon.user);
        aip_pack_kstr (pk, "address", p->address);
        aip_pack_kint (pk, "port", p->beacon.port);
        aip_pack_kstr (pk, "public_key", p->beacon.key_hex);
        aip_pack_kstr (pk, "tools", p->beacon.tools);
        aip_pack_kint (pk, "version", p->beacon.version);
        aip_pack_kstr (pk, "last_seen", p->heard_at);
        aip_pack_kstr (pk, "status", now - p->heard_ms > AIP_LAN_GONE_MS ? "gone" : "active");
    }
}

//  ---------------------------------------------------------------------
//  Self-test: LAN mode on loopback with a fixed address (no discovery
//  needed), a CURVE client that reaches it, and a beacon fed by hand

void
aip_lanmode_test (bool verbose)
{
    printf (" * aip_lanmode: ");
    if (!zsys_has_curve ()) {
        printf ("(no CURVE in this libzmq) OK\n");
        return;
    }
    char home [] = "/tmp/aip-lanmode-XXXXXX";
    assert (mkdtemp (home));
    setenv ("AI_PEER_LAN_ADDRESS", "127.0.0.1", 1);
    char err [512] = "";
    aip_lanmode_t *lan = NULL;
    int port = 0;
    //  A free port (another process may still take it in between: then
    //  another)
    for (int attempt = 0; !lan && attempt < 5; attempt++) {
        port = aip_free_tcp_port ();
        assert (port > 0);
        lan = aip_lanmode_new (home, port, err, sizeof err);
        if (!lan)
            fprintf (stderr, "(port %d: %s) ", port, err);
    }
    assert (lan);
    assert (streq (aip_lanmode_address (lan), "127.0.0.1"));
    assert (aip_lanmode_port (lan) == port);
    assert (strlen (aip_lanmode_key_hex (lan)) == AIP_LAN_KEY_HEX);
    assert (aip_lan_mode_get (home) == port);       //  remembered for the next start

    //  The same port again cannot be had: a clear error
    aip_lanmode_t *twice = aip_lanmode_new (home, port, err, sizeof err);
    assert (!twice && strstr (err, "cannot listen on TCP port"));

    //  A CURVE client that pins our key reaches the ROUTER; a worker's
    //  frame is told from a request
    zcert_t *client_cert = zcert_new ();
    zsock_t *client = zsock_new (ZMQ_DEALER);
    zcert_apply (client_cert, client);
    uint8_t key [32];
    assert (aip_lan_key_from_hex (aip_lanmode_key_hex (lan), key) == 0);
    zmq_setsockopt (zsock_resolve (client), ZMQ_CURVE_SERVERKEY, key, 32);
    assert (zsock_connect (client, "tcp://127.0.0.1:%d", port) == 0);
    assert (aip_frames_send (client, NULL, AIP_FRAME_HB, 0, NULL, NULL) == 0);
    zpoller_t *poller = zpoller_new (aip_lanmode_sock (lan), NULL);
    assert (zpoller_wait (poller, 5000) == aip_lanmode_sock (lan));
    bool from_worker;
    zmsg_t *msg = aip_lanmode_recv (lan, &from_worker);
    assert (msg && from_worker);
    zmsg_destroy (&msg);
    zstr_send (client, "a request body");
    assert (zpoller_wait (poller, 5000) == aip_lanmode_sock (lan));
    msg = aip_lanmode_recv (lan, &from_worker);
    assert (msg && !from_worker);
    zmsg_destroy (&msg);
    zpoller_destroy (&poller);
    zsock_destroy (&client);
    zcert_destroy (&client_cert);

    //  The worker token from disk is ours; anything else is not
    char token [AIP_RELAY_TOKEN_HEX + 1];
    assert (aip_lan_worker_token (home, token, err, sizeof err) == 0);
    assert (aip_lanmode_worker_token_ok (lan, token, strlen (token)));
    token [0] = token [0] == 'a' ? 'b' : 'a';
    assert (!aip_lanmode_worker_token_ok (lan, token, strlen (token)));
    assert (!aip_lanmode_worker_token_ok (lan, NULL, 0));

    //  Tools and the packed answers
    aip_lanmode_set_tools (lan, "claude,codex");
    aip_lanmode_set_tools (lan, "claude,codex");    //  unchanged: not re-published
    aip_pack_t *pk = aip_pack_new ();
    aip_lanmode_pack_peers (lan, pk);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc && aip_obj_get_bool (aip_doc_root (doc), "lan", false));
    assert (aip_obj_size (aip_obj_get (aip_doc_root (doc), "peers")) == 0);
    aip_doc_destroy (&doc);
    aip_pack_reset (pk);
    aip_lanmode_pack_peers (NULL, pk);
    data = aip_pack_data (pk, &size);
    doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc && !aip_obj_get_bool (aip_doc_root (doc), "lan", true));
    aip_doc_destroy (&doc);
    aip_pack_reset (pk);
    aip_lanmode_pack_status (lan, pk);
    data = aip_pack_data (pk, &size);
    doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc && aip_obj_get_int (aip_doc_root (doc), "port", 0) == port);
    aip_doc_destroy (&doc);
    aip_pack_destroy (&pk);
    aip_lanmode_expire (lan);

    aip_lanmode_destroy (&lan);
    aip_lanmode_destroy (&lan);
    unsetenv ("AI_PEER_LAN_ADDRESS");
    char command [AIP_PATH_MAX + 16];
    snprintf (command, sizeof command, "rm -rf '%s'", home);
    assert (system (command) == 0);
    if (verbose)
        printf ("(CURVE endpoint, worker frames, token, packed answers) ");
    printf ("OK\n");
}
