/*  cmd_room.c — ai-peer room create|join|list|delete. */
#include "cli.h"

#include <sodium.h>
#include <stdlib.h>

#include <string.h>

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
    if (opts [1].present)
        return cli_fail (cli, "public rooms (--relay) are not available in this build of "
                         "ai-peer yet");
    //  As the original: a room without a name is called "default"
    const char *name = npos ? pos [0] : "default";
    size_t len = strlen (name);
    if (len == 0 || len > AIP_MAX_NAME || aip_blank (name, len))
        return cli_fail (cli, "a room name must be 1 to %d bytes and not blank", AIP_MAX_NAME);
    if (!aip_utf8_valid (name, len))
        return cli_fail (cli, "the room name is not valid UTF-8");
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
        return cli_fail (cli, "joining a remote room needs relay support (relayd), which this "
                         "build of ai-peer does not include yet");
    return cli_fail (cli, "Unknown room action: %.64s. Available: create, join, list, delete",
                     action);
}
