/*  cmd_room.c — ai-peer room create|join|list|delete. */
#include "cli.h"
#include "aip_crypto.h"
#include "aip_peerurl.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

//  relay.join waits for HTTP (probe + join) and then for the history
#define RELAY_JOIN_TIMEOUT_MS (2 * AIP_RELAY_HTTP_TIMEOUT_MS + 12000)
//  relay_ok: how long reading a public room asks relayd
#define RELAY_STATUS_TIMEOUT_MS 500

int
cli_relay_wait_ms (void)
{
    const char *env = getenv ("AI_PEER_RELAY_WAIT_MS");
    if (env && *env) {
        char *end;
        long ms = strtol (env, &end, 10);
        if (*end == 0 && ms >= 0 && ms <= AIP_RELAY_MAX_WAIT_MS)
            return (int) ms;
    }
    return AIP_RELAY_WAIT_MS;
}

bool
cli_relay_ok (cli_t *cli, const char *room_id)
{
    uint64_t id = cli_request (cli, AIP_OP_RELAY_STATUS, 1);
    aip_pack_kstr (cli->pk, "id", room_id);
    json_t *data = NULL;
    if (cli_call_timeout (cli, id, RELAY_STATUS_TIMEOUT_MS, &data)) {
        cli->err [0] = 0;
        return false;
    }
    bool ok = json_is_true (json_object_get (data, "ok"));
    json_decref (data);
    return ok;
}

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
              const char *name, bool probe, const cli_peer_t *me, json_t **data)
{
    uint64_t id = cli_request (cli, AIP_OP_RELAY_JOIN, 6);
    aip_pack_kstr (cli->pk, "room_id", room_id);
    aip_pack_kstr (cli->pk, "relay_url", url);
    aip_pack_kstr (cli->pk, "token", token);
    aip_pack_kstr (cli->pk, "name", name);
    aip_pack_kbool (cli->pk, "probe", probe);
    cli_pack_peer (cli, me);
    return cli_call_timeout (cli, id, RELAY_JOIN_TIMEOUT_MS, data);
}

static int
s_create_public (cli_t *cli, const char *name, const char *relay)
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
    json_t *data = NULL;
    if (s_relay_join (cli, room_id, url, token, name, false, &me, &data)) {
        char why [sizeof cli->err];
        snprintf (why, sizeof why, "%s", cli->err);
        return cli_fail (cli, "Failed to create the public room: %s. Nothing was created.", why);
    }
    json_t *room = json_incref (json_object_get (data, "room"));
    json_decref (data);
    if (!room)
        return cli_fail (cli, "relayd answered without the room");
    char cs [AIP_MAX_URL * 2];
    aip_peerurl_format (url, room_id, token, cs, sizeof cs);
    json_object_set_new (room, "connection_string", json_string (cs));
    cli->data = room;
    return 0;
}

static int
s_join (cli_t *cli, int argc, char **argv)
{
    cli_opt_t opts [] = { { "--relay", NULL, true, NULL, false },
                          { "--token", NULL, true, NULL, false },
                          { "--password", NULL, true, NULL, false },
                          { NULL, NULL, false, NULL, false } };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "room", argc, argv, opts, pos, 1, &npos))
        return -1;
    if (npos < 1)
        return cli_fail (cli, "Usage: ai-peer room join <room-id|peer://relay/room?token=T> "
                         "[--relay URL] [--token T]  Example: ai-peer room join "
                         "peer://relay.ai-peer.chat/room-abc?token=xxx");
    if (opts [2].present)
        return cli_fail (cli, "encrypted rooms (--password) are not available in this build of "
                         "ai-peer yet");
    aip_peerurl_t pu;
    char err [1024];
    if (strncmp (pos [0], "peer://", 7) == 0) {
        if (aip_peerurl_parse (pos [0], &pu, err, sizeof err))
            return cli_fail (cli, "Invalid connection string: %s", err);
    }
    else
    if (strstr (pos [0], "://"))
        return cli_fail (cli, "Invalid connection string '%.200s': it must start with peer://",
                         pos [0]);
    else {
        memset (&pu, 0, sizeof pu);
        if (cli_check_room_id (cli, pos [0]))
            return -1;
        snprintf (pu.room_id, sizeof pu.room_id, "%s", pos [0]);
    }
    if (opts [0].present && s_relay_url (cli, opts [0].value, pu.relay_url, sizeof pu.relay_url))
        return -1;
    if (opts [1].present) {
        if (!aip_token_valid (opts [1].value))
            return cli_fail (cli, "--token must be 1 to %d printable characters without spaces",
                             AIP_MAX_NAME);
        snprintf (pu.token, sizeof pu.token, "%s", opts [1].value);
    }
    if (!*pu.relay_url)
        return cli_fail (cli, "--relay <url> is required to join a remote room. Or use a "
                         "connection string: ai-peer room join peer://<relay>/<room-id>?token=xxx");
    if (!*pu.token)
        return cli_fail (cli, "Missing room token. Use a full connection string: ai-peer room "
                         "join peer://<relay>/<room-id>?token=xxx (or --token T)");
    cli_peer_t me;
    if (cli_resolve_peer (cli, NULL, NULL, NULL, &me))
        return -1;
    //  Joining again keeps the room's name and messages
    char name [AIP_MAX_NAME + 1];
    snprintf (name, sizeof name, "%s", pu.room_id);
    uint64_t id = cli_request (cli, AIP_OP_ROOM_GET, 1);
    aip_pack_kstr (cli->pk, "id", pu.room_id);
    json_t *existing = NULL;
    if (cli_call (cli, id, &existing) == 0) {
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
    if (s_relay_join (cli, pu.room_id, pu.relay_url, pu.token, name, true, &me, &data)) {
        char why [sizeof cli->err];
        snprintf (why, sizeof why, "%s", cli->err);
        return cli_fail (cli, "Failed to join room %s: %s", pu.room_id, why);
    }
    json_t *info = json_object_get (data, "remote_info");
    if (!json_is_object (info) || !json_is_true (json_object_get (info, "has_token")))
        fprintf (stderr, "⚠ Room '%s' not yet active on relay. Joining anyway.\n", pu.room_id);
    const char *history_error = json_string_value (json_object_get (data, "history_error"));
    if (history_error)
        fprintf (stderr, "⚠ The room's history is not complete yet (%s); it keeps syncing.\n",
                 history_error);
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
    cli_opt_t opts [] = { { "--lan", NULL, false, NULL, false },
                          { "--relay", NULL, true, NULL, false },
                          { "--password", NULL, true, NULL, false },
                          { "--password-file", NULL, true, NULL, false },
                          { "--cipher", NULL, true, NULL, false },
                          { NULL, NULL, false, NULL, false } };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "room", argc, argv, opts, pos, 1, &npos))
        return -1;
    if (opts [0].present)
        return cli_fail (cli, "LAN rooms (--lan) are not available in this build of ai-peer yet");
    //  As the original: a room without a name is called "default"
    const char *name = npos ? pos [0] : "default";
    size_t len = strlen (name);
    if (len == 0 || len > AIP_MAX_NAME || aip_blank (name, len))
        return cli_fail (cli, "a room name must be 1 to %d bytes and not blank", AIP_MAX_NAME);
    if (!aip_utf8_valid (name, len))
        return cli_fail (cli, "the room name is not valid UTF-8");
    if (opts [1].present) {
        if (opts [2].present || opts [3].present || opts [4].present || getenv ("AI_PEER_PASSWORD"))
            return cli_fail (cli, "encrypted public rooms (--relay with a password) are not "
                             "available in this build of ai-peer yet");
        return s_create_public (cli, name, opts [1].value);
    }
    const char *cipher = opts [4].value;
    if (cipher && strcmp (cipher, "aip1") != 0 && strcmp (cipher, "fernet") != 0)
        return cli_fail (cli, "--cipher must be 'aip1' (default) or 'fernet' (the original's "
                         "format), not '%.32s'", cipher);
    char *password;
    if (cli_password (cli, &opts [2], &opts [3], &password))
        return -1;
    if (cipher && !password) {
        free (password);
        return cli_fail (cli, "--cipher needs a password (--password, --password-file or "
                         "AI_PEER_PASSWORD)");
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
