/*  cmd_room.c — ai-peer room create|join|list|delete. */
#include "cli.h"
#include "aip_term.h"
#include "aip_crypto.h"
#include "aip_peerurl.h"

#include <time.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

//  relay.join waits for HTTP (probe + join) and then for the history
#define RELAY_JOIN_TIMEOUT_MS (2 * AIP_RELAY_HTTP_TIMEOUT_MS + 12000)
//  --relay default|URL into a checked base URL
static int
s_relay_url (cli_t *cli, const char *value, char *out, size_t size)
{
    const char *url = value;
    if (strcmp (value, "default") == 0) {
        const char *env = getenv ("AI_PEER_RELAY");
        url = env && *env ? env : AIP_RELAY_DEFAULT_URL;
    }
    char err [512];
    if (aip_relay_url_check (url, out, size, err, sizeof err))
        return cli_fail (cli, "%s", err);
    return 0;
}

//  Join a room on its relay through relayd; with name, relayd creates the
//  local room once the relay accepted the join (nothing half-written)
static int
s_relay_join (cli_t *cli, const char *room_id, const char *url, const char *token,
              const char *name, bool probe, const char *key, const cli_peer_t *me,
              json_t **data)
{
    uint64_t id = cli_request (cli, AIP_OP_RELAY_JOIN, key ? 7 : 6);
    if (key)
        aip_pack_kstr (cli->pk, "key", key);
    aip_pack_kstr (cli->pk, "room_id", room_id);
    aip_pack_kstr (cli->pk, "relay_url", url);
    aip_pack_kstr (cli->pk, "token", token);
    aip_pack_kstr (cli->pk, "name", name);
    aip_pack_kbool (cli->pk, "probe", probe);
    cli_pack_peer (cli, me);
    return cli_call_timeout (cli, id, RELAY_JOIN_TIMEOUT_MS, data);
}

//  A room others join (public or LAN) is answered with its connection string
static void
s_shared_room (cli_t *cli, json_t *room, const char *url, const char *room_id, const char *token,
               const char *kdf, bool encrypted)
{
    char cs [AIP_MAX_URL * 2];
    aip_peerurl_format (url, room_id, token, cs, sizeof cs);
    //  aip1 rooms carry their cipher and key parameters (not the key);
    //  Fernet rooms stay in the original's form, which its clients can join
    if (kdf && *kdf)
        aip_peerurl_add_cipher (cs, sizeof cs, "aip1", kdf);
    json_object_set_new (room, "connection_string", json_string (cs));
    if (encrypted)
        json_object_set_new (room, "encrypted", json_true ());
    cli->data = room;
}

static int
s_create_public (cli_t *cli, const char *name, const char *relay, const char *password,
                 const char *cipher)
{
    char url [AIP_MAX_URL + 1];
    if (s_relay_url (cli, relay, url, sizeof url))
        return -1;
    cli_peer_t me;
    if (cli_resolve_peer (cli, NULL, NULL, NULL, &me))
        return -1;
    char room_id [AIP_ROOM_ID_LEN + 1];
    aip_room_id_new (room_id);
    char token [AIP_RELAY_TOKEN_HEX + 1];
    if (aip_crypto_random_hex (token, AIP_RELAY_TOKEN_HEX / 2))
        return cli_fail (cli, "cannot make a random room token");
    //  An encrypted public room: the relay only ever sees ciphertext
    char key [AIP_ROOMKEY_MAX] = "";
    char err [256];
    if (password && aip_roomkey_create (password, room_id, cipher, 0, 0, key, err, sizeof err))
        return cli_fail (cli, "%s", err);
    json_t *data = NULL;
    int rc = s_relay_join (cli, room_id, url, token, name, false, *key ? key : NULL, &me, &data);
    if (rc) {
        char why [sizeof cli->err];
        snprintf (why, sizeof why, "%s", cli->err);
        sodium_memzero (key, sizeof key);
        return cli_fail (cli, "Failed to create the public room: %s. Nothing was created.", why);
    }
    json_t *room = json_incref (json_object_get (data, "room"));
    json_decref (data);
    if (!room) {
        sodium_memzero (key, sizeof key);
        return cli_fail (cli, "relayd answered without the room");
    }
    s_shared_room (cli, room, url, room_id, token, aip_roomkey_kdf (key), password != NULL);
    sodium_memzero (key, sizeof key);
    return 0;
}

//  A LAN room this machine hubs: LAN mode on, a token, and a connection
//  string that pins this machine's public key
static int
s_create_lan (cli_t *cli, const char *name, const char *password, const char *cipher)
{
    json_t *lan;
    if (cli_lan_start (cli, 0, &lan))
        return cli_fail (cli, "cannot start LAN mode: %s", cli->err);
    char hub [AIP_MAX_URL + 1];
    const char *address = json_string_value (json_object_get (lan, "address"));
    const char *key = json_string_value (json_object_get (lan, "public_key"));
    int port = (int) json_integer_value (json_object_get (lan, "port"));
    int hrc = address && key ? aip_lan_url_format (address, port, key, hub, sizeof hub) : -1;
    json_decref (lan);
    if (hrc)
        return cli_fail (cli, "brokerd did not say where LAN mode listens");
    cli_peer_t me;
    if (cli_resolve_peer (cli, NULL, NULL, NULL, &me))
        return -1;
    char token [AIP_RELAY_TOKEN_HEX + 1];
    if (aip_crypto_random_hex (token, AIP_RELAY_TOKEN_HEX / 2))
        return cli_fail (cli, "cannot make a random room token");
    char room_id [AIP_ROOM_ID_LEN + 1], kdf [AIP_MAX_NAME + 1] = "";
    json_t *room = NULL;
    if (cli_room_create_hub (cli, name, password, cipher, token, &me, room_id, &room, kdf,
                             sizeof kdf))
        return -1;
    s_shared_room (cli, room, hub, room_id, token, kdf, password != NULL);
    return 0;
}

//  room join ROOM --lan: find the hub among the LAN peers heard (beacons
//  come every second: a peer that just started is waited for a little)
static int
s_lan_find (cli_t *cli, aip_peerurl_t *pu, const cli_peer_t *me)
{
    json_t *lan;
    if (cli_lan_start (cli, 0, &lan))
        return cli_fail (cli, "cannot start LAN mode to discover the room: %s", cli->err);
    json_decref (lan);
    json_t *asked = json_object ();          //  hubs already asked
    int64_t deadline = aip_clock_ms () + 3 * AIP_LAN_BEACON_MS + 500;
    bool found = false;
    char machine [AIP_MAX_NAME + 1] = "";
    while (!found) {
        uint64_t id = cli_request (cli, AIP_OP_LAN_PEERS, 0);
        json_t *peers = NULL;
        if (cli_call (cli, id, &peers))
            break;
        size_t i;
        json_t *p;
        json_array_foreach (json_object_get (peers, "peers"), i, p) {
            const char *address = json_string_value (json_object_get (p, "address"));
            const char *key = json_string_value (json_object_get (p, "public_key"));
            const char *status = json_string_value (json_object_get (p, "status"));
            char hub [AIP_MAX_URL + 1];
            if (!address || !key || !status || strcmp (status, "active") != 0
            ||  aip_lan_url_format (address, (int) json_integer_value (json_object_get (p, "port")),
                                    key, hub, sizeof hub)
            ||  json_object_get (asked, hub))
                continue;
            json_object_set_new (asked, hub, json_true ());
            json_t *data = NULL;
            uint64_t jid = cli_request (cli, AIP_OP_RELAY_JOIN, 6);
            aip_pack_kstr (cli->pk, "room_id", pu->room_id);
            aip_pack_kstr (cli->pk, "relay_url", hub);
            aip_pack_kstr (cli->pk, "token", "-");
            aip_pack_kbool (cli->pk, "probe", true);
            aip_pack_kbool (cli->pk, "info_only", true);
            cli_pack_peer (cli, me);
            if (cli_call_timeout (cli, jid, AIP_LAN_TIMEOUT_MS + 2000, &data) == 0) {
                snprintf (pu->relay_url, sizeof pu->relay_url, "%s", hub);
                snprintf (machine, sizeof machine, "%s",
                          json_string_value (json_object_get (p, "machine")) ?: "?");
                found = true;
                json_decref (data);
                break;
            }
        }
        json_decref (peers);
        if (found || aip_clock_ms () > deadline)
            break;
        struct timespec pause = { 0, 200 * 1000000 };
        nanosleep (&pause, NULL);
    }
    json_decref (asked);
    cli->err [0] = 0;
    if (!found)
        return cli_fail (cli, "no LAN peer heard on this network has room %s: check that its "
                         "machine runs 'ai-peer daemon start --lan' ('ai-peer discover' lists "
                         "the peers heard), or join with its connection string "
                         "(peer+lan://...)", pu->room_id);
    if (!*pu->token)
        return cli_fail (cli, "room %s is on %s, but joining it needs its token: ask for the "
                         "connection string (peer+lan://...) or pass --token T", pu->room_id,
                         machine);
    pu->lan = true;
    return 0;
}

//  The cipher and key parameters an aip1 room's relay or hub keeps for it
//  (our relay: those its creator left; the original's relay keeps none)
static int
s_remote_cipher (cli_t *cli, aip_peerurl_t *pu, const cli_peer_t *me)
{
    json_t *data = NULL;
    uint64_t id = cli_request (cli, AIP_OP_RELAY_JOIN, 6);
    aip_pack_kstr (cli->pk, "room_id", pu->room_id);
    aip_pack_kstr (cli->pk, "relay_url", pu->relay_url);
    aip_pack_kstr (cli->pk, "token", pu->token);
    aip_pack_kbool (cli->pk, "probe", true);
    aip_pack_kbool (cli->pk, "info_only", true);
    cli_pack_peer (cli, me);
    if (cli_call_timeout (cli, id, RELAY_JOIN_TIMEOUT_MS, &data)) {
        char why [sizeof cli->err];
        snprintf (why, sizeof why, "%s", cli->err);
        return cli_fail (cli, "Failed to join room %s: %s", pu->room_id, why);
    }
    const json_t *info = json_object_get (data, "remote_info");
    const char *cipher = json_string_value (json_object_get (info, "cipher"));
    const char *kdf = json_string_value (json_object_get (info, "kdf"));
    if (cipher && strcmp (cipher, "aip1") == 0 && kdf && strlen (kdf) < sizeof pu->kdf) {
        snprintf (pu->cipher, sizeof pu->cipher, "aip1");
        snprintf (pu->kdf, sizeof pu->kdf, "%s", kdf);
    }
    json_decref (data);
    return 0;
}

//  After joining an encrypted room: if what it holds does not decrypt, the
//  password is wrong; the local room is removed again. guessed: the cipher
//  was not given (nor kept by the relay), so the original's was tried.
static int
s_check_password (cli_t *cli, const char *room_id, bool was_new, bool guessed,
                  const char *relay_url, const char *token)
{
    json_t *messages = NULL;
    if (cli_messages_json (cli, room_id, &messages, NULL))
        return -1;
    //  What the stored ciphertext says about its format
    size_t i, aip1 = 0;
    json_t *m;
    json_array_foreach (messages, i, m) {
        const char *content = json_string_value (json_object_get (m, "content"));
        if (content && strncmp (content, "aip1:", 5) == 0)
            aip1++;
    }
    cli_room_t room;
    if (cli_room_open (cli, room_id, &room)) {
        json_decref (messages);
        return -1;
    }
    cli_room_reveal_json (&room, messages);
    sodium_memzero (&room, sizeof room);
    size_t readable = 0, unreadable = 0;
    json_array_foreach (messages, i, m) {
        if (json_is_string (json_object_get (m, "type"))
        &&  strcmp (json_string_value (json_object_get (m, "type")), "system") == 0)
            continue;
        const char *content = json_string_value (json_object_get (m, "content"));
        if (content && strcmp (content, AIP_ROOMKEY_UNREADABLE) == 0)
            unreadable++;
        else
            readable++;
    }
    json_decref (messages);
    if (unreadable && !readable) {
        if (was_new) {
            uint64_t id = cli_request (cli, AIP_OP_ROOM_DELETE, 1);
            aip_pack_kstr (cli->pk, "id", room_id);
            cli_call (cli, id, NULL);
        }
        if (guessed && aip1) {
            char cs [AIP_MAX_URL * 2];
            aip_peerurl_format (relay_url, room_id, token, cs, sizeof cs);
            return cli_fail (cli, "Room %s is encrypted with aip1, and %s does not keep its key "
                             "parameters, so the password alone cannot open it%s. Join with "
                             "the room's full connection string instead: ai-peer room join "
                             "'%s&cipher=aip1&kdf=...' --password PW (its creator has it: "
                             "'room create' printed it)", room_id, relay_url,
                             was_new ? "; nothing was saved" : "", cs);
        }
        return cli_fail (cli, "Wrong password for room %s: its messages do not decrypt with it%s",
                         room_id, was_new ? "; nothing was saved" : "");
    }
    return 0;
}

static int
s_join (cli_t *cli, int argc, char **argv)
{
    enum { OPT_RELAY, OPT_TOKEN, OPT_PASSWORD, OPT_PASSWORD_FILE, OPT_LAN, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_RELAY] = CLI_OPT_VALUE ("--relay"),
        [OPT_TOKEN] = CLI_OPT_VALUE ("--token"),
        [OPT_PASSWORD] = CLI_OPT_VALUE ("--password"),
        [OPT_PASSWORD_FILE] = CLI_OPT_VALUE ("--password-file"),
        [OPT_LAN] = CLI_OPT_FLAG ("--lan"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "room", argc, argv, opts, pos, 1, &npos))
        return -1;
    if (npos < 1)
        return cli_fail (cli, "Usage: ai-peer room join <room-id|peer://relay/room?token=T|"
                         "peer+lan://host:port/room?token=T&key=K> [--relay URL] [--token T] "
                         "[--lan]  Example: ai-peer room join "
                         "peer://relay.ai-peer.chat/room-abc?token=xxx");
    aip_peerurl_t pu;
    char err [1024];
    if (strncmp (pos [0], "peer://", 7) == 0 || strncmp (pos [0], "peer+lan://", 11) == 0) {
        if (aip_peerurl_parse (pos [0], &pu, err, sizeof err))
            return cli_fail (cli, "Invalid connection string: %s", err);
    }
    else
    if (strstr (pos [0], "://"))
        return cli_fail (cli, "Invalid connection string '%.200s': it must start with peer:// "
                         "or peer+lan://", pos [0]);
    else {
        memset (&pu, 0, sizeof pu);
        if (cli_check_room_id (cli, pos [0]))
            return -1;
        snprintf (pu.room_id, sizeof pu.room_id, "%s", pos [0]);
    }
    if (opts [OPT_RELAY].present && opts [OPT_LAN].present)
        return cli_fail (cli, "--relay and --lan do not go together: a room is on a relay or "
                         "on the LAN");
    if (opts [OPT_RELAY].present
    &&  s_relay_url (cli, opts [OPT_RELAY].value, pu.relay_url, sizeof pu.relay_url))
        return -1;
    if (opts [OPT_TOKEN].present) {
        if (!aip_token_valid (opts [OPT_TOKEN].value))
            return cli_fail (cli, "--token must be 1 to %d printable characters without spaces",
                             AIP_MAX_NAME);
        snprintf (pu.token, sizeof pu.token, "%s", opts [OPT_TOKEN].value);
    }
    cli_peer_t me;
    if (cli_resolve_peer (cli, NULL, NULL, NULL, &me))
        return -1;
    if (!*pu.relay_url && opts [OPT_LAN].present && s_lan_find (cli, &pu, &me))
        return -1;
    if (!*pu.relay_url)
        return cli_fail (cli, "--relay <url> is required to join a remote room (or --lan for a "
                         "room on this network). Or use a connection string: ai-peer room join "
                         "peer://<relay>/<room-id>?token=xxx");
    if (!*pu.token)
        return cli_fail (cli, "Missing room token. Use a full connection string: ai-peer room "
                         "join peer://<relay>/<room-id>?token=xxx (or --token T)");
    //  The key of an encrypted room, derived here: the password goes nowhere
    char *password;
    if (cli_password (cli, &opts [OPT_PASSWORD], &opts [OPT_PASSWORD_FILE], &password))
        return -1;
    //  Joined with the room id, token and password only: an aip1 room's key
    //  parameters are with its relay (ours) or LAN hub
    bool asked_cipher = false;
    if (password && !*pu.cipher) {
        asked_cipher = true;
        if (s_remote_cipher (cli, &pu, &me)) {
            sodium_memzero (password, strlen (password));
            free (password);
            return -1;
        }
    }
    if (!password && *pu.cipher)
        return cli_fail (cli, "room %s is encrypted (%s): give its password with --password, "
                         "--password-file or AI_PEER_PASSWORD", pu.room_id, pu.cipher);
    char key [AIP_ROOMKEY_MAX] = "";
    if (password) {
        char kerr [256];
        int krc = aip_roomkey_join (password, pu.room_id, pu.cipher, pu.kdf, key, kerr, sizeof kerr);
        sodium_memzero (password, strlen (password));
        free (password);
        if (krc)
            return cli_fail (cli, "%s", kerr);
    }
    //  Joining again keeps the room's name and messages
    char name [AIP_MAX_NAME + 1];
    snprintf (name, sizeof name, "%s", pu.room_id);
    uint64_t id = cli_request (cli, AIP_OP_ROOM_GET, 1);
    aip_pack_kstr (cli->pk, "id", pu.room_id);
    json_t *existing = NULL;
    bool was_new = true;
    if (cli_call (cli, id, &existing) == 0) {
        was_new = false;
        const char *old = json_string_value (json_object_get (existing, "name"));
        if (old)
            snprintf (name, sizeof name, "%s", old);
        json_decref (existing);
    }
    else
    if (!cli->client)
        return -1;
    cli->err [0] = 0;
    json_t *data = NULL;
    int jrc = s_relay_join (cli, pu.room_id, pu.relay_url, pu.token, name, true,
                            *key ? key : NULL, &me, &data);
    sodium_memzero (key, sizeof key);
    if (jrc) {
        char why [sizeof cli->err];
        snprintf (why, sizeof why, "%s", cli->err);
        return cli_fail (cli, "Failed to join room %s: %s", pu.room_id, why);
    }
    json_t *info = json_object_get (data, "remote_info");
    if (!pu.lan && (!json_is_object (info) || !json_is_true (json_object_get (info, "has_token"))))
        fprintf (stderr, "⚠ Room '%s' not yet active on relay. Joining anyway.\n", pu.room_id);
    const char *history_error = json_string_value (json_object_get (data, "history_error"));
    if (history_error) {
        //  It may quote the relay: shown cleaned of escapes
        char *shown = aip_term_clean_line (history_error, strlen (history_error), NULL);
        fprintf (stderr, "⚠ The room's history is not complete yet (%s); it keeps syncing.\n",
                 shown ? shown : "");
        free (shown);
    }
    if ((opts [OPT_PASSWORD].present || opts [OPT_PASSWORD_FILE].present
         || getenv ("AI_PEER_PASSWORD"))
    &&  s_check_password (cli, pu.room_id, was_new, asked_cipher && !*pu.cipher, pu.relay_url,
                          pu.token)) {
        json_decref (data);
        return -1;
    }
    cli->data = json_object ();
    json_object_set_new (cli->data, "joined", json_string (pu.room_id));
    json_object_set_new (cli->data, "relay", json_string (pu.relay_url));
    json_object_set (cli->data, "remote_info", info ? info : json_null ());
    json_decref (data);
    return 0;
}

static int
s_create (cli_t *cli, int argc, char **argv)
{
    enum { OPT_LAN, OPT_RELAY, OPT_PASSWORD, OPT_PASSWORD_FILE, OPT_CIPHER, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_LAN] = CLI_OPT_FLAG ("--lan"),
        [OPT_RELAY] = CLI_OPT_VALUE ("--relay"),
        [OPT_PASSWORD] = CLI_OPT_VALUE ("--password"),
        [OPT_PASSWORD_FILE] = CLI_OPT_VALUE ("--password-file"),
        [OPT_CIPHER] = CLI_OPT_VALUE ("--cipher"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "room", argc, argv, opts, pos, 1, &npos))
        return -1;
    if (opts [OPT_LAN].present && opts [OPT_RELAY].present)
        return cli_fail (cli, "--lan and --relay do not go together: a room is on the LAN or "
                         "on a relay");
    //  As the original: a room without a name is called "default"
    const char *name = npos ? pos [0] : "default";
    size_t len = strlen (name);
    if (len == 0 || len > AIP_MAX_NAME || aip_blank (name, len))
        return cli_fail (cli, "a room name must be 1 to %d bytes and not blank", AIP_MAX_NAME);
    if (!aip_utf8_valid (name, len))
        return cli_fail (cli, "the room name is not valid UTF-8");
    const char *cipher = opts [OPT_CIPHER].value;
    if (cipher && strcmp (cipher, "aip1") != 0 && strcmp (cipher, "fernet") != 0)
        return cli_fail (cli, "--cipher must be 'aip1' (default) or 'fernet' (the original's "
                         "format), not '%.32s'", cipher);
    char *password;
    if (cli_password (cli, &opts [OPT_PASSWORD], &opts [OPT_PASSWORD_FILE], &password))
        return -1;
    if (cipher && !password) {
        free (password);
        return cli_fail (cli, "--cipher needs a password (--password, --password-file or "
                         "AI_PEER_PASSWORD)");
    }
    if (opts [OPT_LAN].present || opts [OPT_RELAY].present) {
        int rc = opts [OPT_LAN].present
               ? s_create_lan (cli, name, password, cipher)
               : s_create_public (cli, name, opts [OPT_RELAY].value, password, cipher);
        if (password) {
            sodium_memzero (password, strlen (password));
            free (password);
        }
        return rc;
    }
    cli_peer_t me;
    if (cli_resolve_peer (cli, NULL, NULL, NULL, &me)) {
        free (password);
        return -1;
    }
    char room_id [AIP_ROOM_ID_LEN + 1];
    int rc = cli_room_create (cli, name, password, cipher, &me, room_id, &cli->data);
    if (password) {
        sodium_memzero (password, strlen (password));
        free (password);
    }
    return rc;
}

static int
s_list (cli_t *cli, int argc, char **argv)
{
    char *pos [1];
    int npos;
    if (cli_parse (cli, "room", argc, argv, NULL, pos, 0, &npos))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_ROOM_LIST, 0);
    return cli_call (cli, id, &cli->data);
}

static int
s_delete (cli_t *cli, int argc, char **argv)
{
    char *pos [1];
    int npos;
    if (cli_parse (cli, "room", argc, argv, NULL, pos, 1, &npos))
        return -1;
    if (npos < 1)
        return cli_fail (cli, "Usage: ai-peer room delete <room-id>");
    if (cli_check_room_id (cli, pos [0]))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_ROOM_DELETE, 1);
    aip_pack_kstr (cli->pk, "id", pos [0]);
    return cli_call (cli, id, &cli->data);
}

int
cmd_room (cli_t *cli, int argc, char **argv)
{
    if (argc < 1)
        return cli_fail (cli, "Usage: ai-peer room create|join|list|delete [args] "
                         "(see 'ai-peer room --help')");
    const char *action = argv [0];
    if (strcmp (action, "create") == 0)
        return s_create (cli, argc - 1, argv + 1);
    if (strcmp (action, "list") == 0)
        return s_list (cli, argc - 1, argv + 1);
    if (strcmp (action, "delete") == 0)
        return s_delete (cli, argc - 1, argv + 1);
    if (strcmp (action, "join") == 0)
        return s_join (cli, argc - 1, argv + 1);
    return cli_fail (cli, "Unknown room action: %.64s. Available: create, join, list, delete",
                     action);
}
