/*  cmd_peer.c — ai-peer identity, list, register. */
#include "cli.h"

#include <string.h>

int
cmd_identity (cli_t *cli, int argc, char **argv)
{
    char *pos [1];
    int npos;
    if (cli_parse (cli, "identity", argc, argv, NULL, pos, 0, &npos))
        return -1;
    const aip_identity_t *me;
    if (cli_identity (cli, &me))
        return -1;
    //  Never the secret
    cli->data = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "id", me->id, "name", me->name,
                           "type", me->type, "tool", me->tool, "machine", me->machine);
    return 0;
}

int
cmd_list (cli_t *cli, int argc, char **argv)
{
    char *pos [1];
    int npos;
    if (cli_parse (cli, "list", argc, argv, NULL, pos, 0, &npos))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_PEER_LIST, 0);
    if (cli_call (cli, id, &cli->data))
        return -1;
    //  LAN peers heard by beacon come after the registered ones
    json_t *peers = json_object_get (cli->data, "peers");
    json_t *lan = cli_lan_peers (cli);
    size_t i;
    json_t *p;
    json_array_foreach (lan, i, p) {
        json_t *entry = json_pack ("{s:O, s:O, s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:O}",
                                   "id", json_object_get (p, "id"),
                                   "name", json_object_get (p, "user"), "type", "lan",
                                   "tool", "ai-peer", "machine", json_object_get (p, "machine"),
                                   "last_seen", json_object_get (p, "last_seen"),
                                   "address", json_object_get (p, "address"),
                                   "port", json_object_get (p, "port"),
                                   "tools", json_object_get (p, "tools"),
                                   "status", json_object_get (p, "status"));
        if (entry && json_is_array (peers))
            json_array_append_new (peers, entry);
        else
            json_decref (entry);
    }
    json_decref (lan);
    return 0;
}

int
cmd_register (cli_t *cli, int argc, char **argv)
{
    enum { OPT_HOST, OPT_PORT, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_HOST] = CLI_OPT_VALUE ("--host"),
        [OPT_PORT] = CLI_OPT_VALUE ("--port"),
    };
    char *pos [3];
    int npos;
    if (cli_parse (cli, "register", argc, argv, opts, pos, 3, &npos))
        return -1;
    if (npos < 3)
        return cli_fail (cli, "Usage: ai-peer register <name> <type:ai|human> <tool> "
                         "[--host host] [--port N]");
    const char *name = pos [0], *type = pos [1], *tool = pos [2];
    if (strcmp (type, "ai") != 0 && strcmp (type, "human") != 0)
        return cli_fail (cli, "the type must be 'ai' or 'human', not '%.32s'", type);
    long port = 0;
    if (cli_opt_int (cli, &opts [OPT_PORT], 1, 65535, &port))
        return -1;
    const char *host = opts [OPT_HOST].value;
    if (host && (strlen (host) == 0 || strlen (host) > AIP_MAX_NAME))
        return cli_fail (cli, "--host must be 1 to %d bytes", AIP_MAX_NAME);
    char machine [AIP_MAX_NAME + 1];
    if (host)
        snprintf (machine, sizeof machine, "%s", host);
    else
        aip_hostname (machine, sizeof machine);
    //  As the original: the peer id is <host or this machine>-<tool>
    char peer_id [2 * AIP_MAX_NAME + 2];
    snprintf (peer_id, sizeof peer_id, "%s-%s", machine, tool);
    if (strlen (peer_id) > AIP_MAX_ID)
        return cli_fail (cli, "the peer id '%.80s' (host-tool) is longer than %d characters",
                         peer_id, AIP_MAX_ID);
    aip_id_sanitize (peer_id);
    if (!aip_utf8_valid (name, strlen (name)) || !*name || strlen (name) > AIP_MAX_NAME)
        return cli_fail (cli, "the name must be 1 to %d bytes of UTF-8", AIP_MAX_NAME);
    uint64_t id = cli_request (cli, AIP_OP_PEER_REGISTER, 5 + (host ? 1 : 0) + (port ? 1 : 0));
    aip_pack_kstr (cli->pk, "id", peer_id);
    aip_pack_kstr (cli->pk, "name", name);
    aip_pack_kstr (cli->pk, "type", type);
    aip_pack_kstr (cli->pk, "tool", tool);
    aip_pack_kstr (cli->pk, "machine", machine);
    if (host)
        aip_pack_kstr (cli->pk, "host", host);
    if (port)
        aip_pack_kint (cli->pk, "port", port);
    return cli_call (cli, id, &cli->data);
}
