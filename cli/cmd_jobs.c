/*  cmd_jobs.c — ai-peer discover (the AI tools the spawn workers find,
    registered as peers) and jobs, wait, cancel: the asynchronous invites
    the broker holds (invite --async). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  discover

int
cmd_discover (cli_t *cli, int argc, char **argv)
{
    char *pos [1];
    int npos;
    if (cli_parse (cli, "discover", argc, argv, NULL, pos, 0, &npos))
        return -1;
    if (cli_connect (cli))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_SPAWN_DISCOVER, 0);
    aip_reply_t rep;
    char err [1024];
    if (aip_client_call (cli->client, cli->pk, id, AIP_SPAWN_REPLY_MARGIN_MS + 8 * AIP_VERSION_TIMEOUT_MS,
                         &rep, err, sizeof err))
        return cli_fail (cli, "%s", err);
    if (!rep.ok) {
        cli_fail (cli, "%s", rep.message);
        aip_reply_free (&rep);
        return -1;
    }
    json_t *data = aip_json_from_obj (rep.data);
    aip_reply_free (&rep);
    json_t *found = json_object_get (data, "discovered");
    int registered = 0;
    char host_id [AIP_MAX_NAME + 1];
    size_t i;
    json_t *entry;
    json_array_foreach (found, i, entry) {
        const char *tool = json_string_value (json_object_get (entry, "tool"));
        const char *machine = json_string_value (json_object_get (entry, "machine"));
        if (!tool || !machine)
            continue;
        snprintf (host_id, sizeof host_id, "%s", machine);
        aip_id_sanitize (host_id);
        char peer_id [AIP_MAX_NAME * 2 + 2];
        snprintf (peer_id, sizeof peer_id, "%s-%s", host_id, tool);
        if (!aip_id_valid (peer_id, strlen (peer_id)))
            continue;
        id = cli_request (cli, AIP_OP_PEER_REGISTER, 5);
        aip_pack_kstr (cli->pk, "id", peer_id);
        aip_pack_kstr (cli->pk, "name", tool);
        aip_pack_kstr (cli->pk, "type", "ai");
        aip_pack_kstr (cli->pk, "tool", tool);
        aip_pack_kstr (cli->pk, "machine", machine);
        json_t *peer;
        if (cli_call (cli, id, &peer)) {
            json_decref (data);
            return -1;
        }
        json_decref (peer);
        registered++;
    }
    json_object_set_new (data, "registered", json_integer (registered));
    //  Other machines running ai-peer in LAN mode, heard by beacon
    json_object_set_new (data, "lan_peers", cli_lan_peers (cli));
    cli->data = data;
    return 0;
}

//  ---------------------------------------------------------------------
//  jobs, wait, cancel: asynchronous invites (held by the broker)

int
cmd_jobs (cli_t *cli, int argc, char **argv)
{
    char *pos [1];
    int npos;
    if (cli_parse (cli, "jobs", argc, argv, NULL, pos, 0, &npos))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_JOB_LIST, 0);
    return cli_call (cli, id, &cli->data);
}

int
cmd_wait (cli_t *cli, int argc, char **argv)
{
    enum { OPT_TIMEOUT, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_TIMEOUT] = CLI_OPT_VALUE ("--timeout"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "wait", argc, argv, opts, pos, 1, &npos))
        return -1;
    if (npos < 1)
        return cli_fail (cli, "Usage: ai-peer wait <job-id> [--timeout S]");
    if (!aip_id_valid (pos [0], strlen (pos [0])))
        return cli_fail (cli, "invalid job id '%.64s' (see 'ai-peer jobs')", pos [0]);
    long timeout_s = AIP_MAX_TOOL_TIMEOUT_S;
    if (cli_opt_int (cli, &opts [OPT_TIMEOUT], 1, AIP_MAX_TOOL_TIMEOUT_S, &timeout_s))
        return -1;
    if (cli_connect (cli))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_JOB_WAIT, 1);
    aip_pack_kstr (cli->pk, "id", pos [0]);
    char err [1024];
    if (aip_client_send (cli->client, cli->pk, err, sizeof err))
        return cli_fail (cli, "%s", err);
    aip_reply_t rep;
    bool died = false;
    if (cli_recv (cli, id, (int) timeout_s * 1000, &rep, &died, err, sizeof err))
        return cli_fail (cli, "%s", died || cli_cancelled (cli) ? err
                                   : "the job did not end within the --timeout");
    return cli_reply_result (cli, &rep);
}

int
cmd_cancel (cli_t *cli, int argc, char **argv)
{
    char *pos [1];
    int npos;
    if (cli_parse (cli, "cancel", argc, argv, NULL, pos, 1, &npos))
        return -1;
    if (npos < 1)
        return cli_fail (cli, "Usage: ai-peer cancel <job-id>");
    if (!aip_id_valid (pos [0], strlen (pos [0])))
        return cli_fail (cli, "invalid job id '%.64s' (see 'ai-peer jobs')", pos [0]);
    uint64_t id = cli_request (cli, AIP_OP_JOB_CANCEL, 1);
    aip_pack_kstr (cli->pk, "id", pos [0]);
    return cli_call (cli, id, &cli->data);
}
