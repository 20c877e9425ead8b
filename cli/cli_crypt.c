/*  cli_crypt.c — end-to-end encrypted rooms in the CLI: the key comes from
    storaged (owner-only socket), content is encrypted here before it is
    sent and revealed here after it is read. */
#include "cli.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

//  A password file holds the password on its first line
#define PASSWORD_FILE_MAX 4096

int
cli_password (cli_t *cli, const cli_opt_t *password, const cli_opt_t *file, char **out)
{
    *out = NULL;
    if (password->present && file->present)
        return cli_fail (cli, "give --password or --password-file, not both");
    if (password->present)
        *out = strdup (password->value);
    else
    if (file->present) {
        size_t len;
        char *text = aip_file_read (file->value, PASSWORD_FILE_MAX, &len);
        if (!text)
            return cli_fail (cli, "cannot read the password file %s: %s", file->value,
                             errno == EFBIG ? "larger than 4 KiB" : strerror (errno));
        text [strcspn (text, "\r\n")] = 0;
        *out = text;
    }
    else {
        const char *env = getenv ("AI_PEER_PASSWORD");
        if (env && *env)
            *out = strdup (env);
    }
    if (*out && !**out) {
        free (*out);
        *out = NULL;
        return cli_fail (cli, "the password is empty");
    }
    return 0;
}

int
cli_room_open (cli_t *cli, const char *room_id, cli_room_t *room)
{
    memset (room, 0, sizeof *room);
    uint64_t id = cli_request (cli, AIP_OP_ROOM_GET, 2);
    aip_pack_kstr (cli->pk, "id", room_id);
    aip_pack_kbool (cli->pk, "with_key", true);
    aip_reply_t rep;
    if (cli_call_reply (cli, id, &rep))
        return -1;
    //  An encrypted room answers {room, key}; a plain one the room itself
    const aip_obj_t *row = aip_obj_get (rep.data, "room");
    //  A LAN room joined from another machine syncs with its hub like a
    //  public room with its relay (the hub's own copy has no hub URL)
    const aip_obj_t *fields = row ? row : rep.data;
    room->lan = aip_obj_streq (aip_obj_get (fields, "mode"), "lan");
    room->public = aip_obj_streq (aip_obj_get (fields, "mode"), "public")
                || (room->lan && aip_obj_is_str (aip_obj_get (fields, "relay_url")));
    char stored [AIP_ROOMKEY_MAX];
    const char *key = aip_obj_get_str (rep.data, "key", stored, sizeof stored, NULL);
    int rc = 0;
    if (key) {
        room->encrypted = true;
        if (aip_roomkey_decode (key, &room->key))
            rc = cli_fail (cli, "the key of room %s is damaged in peers.db", room_id);
        sodium_memzero (stored, sizeof stored);
    }
    aip_reply_free (&rep);
    return rc;
}

void
cli_room_reveal_json (cli_room_t *room, json_t *messages)
{
    if (room->encrypted)
        aip_roomkey_reveal_json (&room->key, messages);
}

int
cli_room_create (cli_t *cli, const char *name, const char *password, const char *cipher,
                 const cli_peer_t *me, char room_id [AIP_ROOM_ID_LEN + 1], json_t **room)
{
    return cli_room_create_hub (cli, name, password, cipher, NULL, me, room_id, room, NULL, 0);
}

int
cli_room_create_hub (cli_t *cli, const char *name, const char *password, const char *cipher,
                     const char *lan_token, const cli_peer_t *me,
                     char room_id [AIP_ROOM_ID_LEN + 1], json_t **room, char *kdf, size_t kdfsize)
{
    //  The id is chosen here so that a retry after a daemon crash is
    //  idempotent (and so that the Fernet key can be derived with it as salt)
    aip_room_id_new (room_id);
    char key [AIP_ROOMKEY_MAX];
    if (password) {
        char err [256];
        if (aip_roomkey_create (password, room_id, cipher, 0, 0, key, err, sizeof err))
            return cli_fail (cli, "%s", err);
        if (kdf && aip_roomkey_kdf (key))
            snprintf (kdf, kdfsize, "%s", aip_roomkey_kdf (key));
    }
    uint64_t id = cli_request (cli, AIP_OP_ROOM_CREATE, (password ? 5 : 4) + (lan_token ? 1 : 0));
    aip_pack_kstr (cli->pk, "id", room_id);
    aip_pack_kstr (cli->pk, "name", name);
    aip_pack_kstr (cli->pk, "mode", lan_token ? "lan" : "local");
    if (lan_token)
        aip_pack_kstr (cli->pk, "token", lan_token);
    if (password)
        aip_pack_kstr (cli->pk, "key", key);
    cli_pack_peer (cli, me);
    sodium_memzero (key, sizeof key);
    json_t *data = NULL;
    int rc = cli_call (cli, id, &data);
    if (room)
        *room = data;
    else
        json_decref (data);
    return rc;
}

int
cli_send (cli_t *cli, const char *room_id, const cli_room_t *room, const cli_peer_t *me,
          const char *text, size_t len, json_t **sent)
{
    //  The id is chosen here: a retry after a daemon crash stores it once
    char msg_id [AIP_MSG_ID_LEN + 1];
    aip_msg_id_new (msg_id);
    char *cipher = NULL;
    if (room->encrypted
    &&  aip_roomkey_encrypt (&room->key, room_id, msg_id, me->id, text, len, &cipher))
        return cli_fail (cli, "cannot encrypt the message");
    uint64_t id = cli_request (cli, AIP_OP_MSG_SEND, 4);
    aip_pack_kstr (cli->pk, "room_id", room_id);
    aip_pack_kstr (cli->pk, "id", msg_id);
    if (cipher)
        aip_pack_kstr (cli->pk, "content", cipher);
    else
        aip_pack_kstrn (cli->pk, "content", text, len);
    cli_pack_peer (cli, me);
    free (cipher);
    json_t *stored = NULL;
    if (cli_call (cli, id, &stored))
        return -1;
    //  The sender sees what it wrote, not the ciphertext
    json_object_set_new (stored, "content", json_stringn_nocheck (text, len));
    //  storaged's note that a public room's message waits for relayd
    json_object_del (stored, "queued");
    json_object_del (stored, "lan");
    if (sent)
        *sent = stored;
    else
        json_decref (stored);
    return 0;
}

int
cli_send_plain (cli_t *cli, const char *room_id, const cli_peer_t *me, const char *text,
                size_t len, json_t **sent, bool *queued, bool *lan)
{
    char msg_id [AIP_MSG_ID_LEN + 1];
    aip_msg_id_new (msg_id);
    uint64_t id = cli_request (cli, AIP_OP_MSG_SEND, 5);
    aip_pack_kstr (cli->pk, "room_id", room_id);
    aip_pack_kstr (cli->pk, "id", msg_id);
    aip_pack_kstrn (cli->pk, "content", text, len);
    aip_pack_kbool (cli->pk, "plain", true);
    cli_pack_peer (cli, me);
    if (!cli->client)
        return -1;              //  cli_request recorded why
    aip_reply_t rep;
    char err [1024];
    if (aip_client_call (cli->client, cli->pk, id, AIP_CLIENT_TIMEOUT_MS, &rep, err, sizeof err))
        return cli_fail (cli, "%s", err);
    if (!rep.ok) {
        bool encrypted = strcmp (rep.code, AIP_ERR_ENCRYPTED) == 0;
        if (!encrypted)
            cli_fail (cli, "%s", rep.message);
        aip_reply_free (&rep);
        return encrypted ? 1 : -1;
    }
    json_t *stored = aip_json_from_obj (rep.data);
    aip_reply_free (&rep);
    if (!json_is_object (stored)) {
        json_decref (stored);
        return cli_fail (cli, "storaged's answer to msg.send is not a message");
    }
    //  storaged's note that a public (or joined LAN) room's message waits
    //  for relayd
    *queued = json_is_true (json_object_get (stored, "queued"));
    *lan = json_is_true (json_object_get (stored, "lan"));
    json_object_del (stored, "queued");
    json_object_del (stored, "lan");
    *sent = stored;
    return 0;
}

//  Append a page of messages (as JSON) to the array arg
static int
s_append_page (cli_t *cli, const aip_obj_t *messages, void *arg)
{
    json_t *page = aip_json_from_obj (messages);
    if (json_is_array (page))
        json_array_extend ((json_t *) arg, page);
    json_decref (page);
    return 0;
}

int
cli_messages_json (cli_t *cli, const char *room_id, json_t **messages, size_t *total)
{
    *messages = json_array ();
    if (cli_each_page (cli, room_id, s_append_page, *messages, total)) {
        json_decref (*messages);
        *messages = NULL;
        return -1;
    }
    return 0;
}

int
cli_conversation (cli_t *cli, const char *room_id, json_t **messages)
{
    cli_room_t room;
    if (cli_room_open (cli, room_id, &room))
        return -1;
    int rc = cli_messages_json (cli, room_id, messages, NULL);
    if (rc == 0)
        cli_room_reveal_json (&room, *messages);
    sodium_memzero (&room, sizeof room);
    return rc;
}
