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
    room->public = aip_obj_streq (aip_obj_get (rep.data, "mode"), "public");
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
    if (!room->encrypted)
        return;
    size_t i;
    json_t *m;
    json_array_foreach (messages, i, m) {
        json_t *content = json_object_get (m, "content");
        size_t len;
        char *plain = aip_roomkey_reveal (&room->key,
            json_string_value (json_object_get (m, "room_id")),
            json_string_value (json_object_get (m, "id")),
            json_string_value (json_object_get (m, "peer_id")),
            json_string_value (json_object_get (m, "type")),
            json_string_value (content), json_string_length (content), &len);
        if (plain) {
            json_object_set_new (m, "content", json_stringn_nocheck (plain, len));
            sodium_memzero (plain, len);
            free (plain);
        }
    }
}
