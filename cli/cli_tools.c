/*  cli_tools.c — is an AI tool one that can be invited? Checked before an
    invite, quick or discuss makes anything (a room, a peer, a "[spawn
    error]" post): a tool is known when it is one of spawnd's built-ins, a
    tool of this home's tools.json, or one a connected spawn worker
    announced in its READY (a LAN worker may serve tools this machine has
    never heard of). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The names of this home's tools.json, or NULL (absent); a file that
//  cannot be read or parsed leaves the reason in problem
static json_t *
s_configured (cli_t *cli, char *problem, size_t size)
{
    json_t *root = aip_json_tools_load (cli->home, NULL, NULL, problem, size);
    if (!root)
        return NULL;
    json_t *tools = json_object_get (root, "tools");
    json_t *names = json_array ();
    const char *name;
    json_t *value;
    json_object_foreach (tools, name, value)
        if (aip_id_valid (name, strlen (name)))
            json_array_append_new (names, json_string (name));
    json_decref (root);
    return names;
}

static void
s_add_name (json_t *known, const char *name)
{
    size_t i;
    json_t *item;
    json_array_foreach (known, i, item)
        if (strcmp (json_string_value (item), name) == 0)
            return;
    json_array_append_new (known, json_string (name));
}

int
cli_check_tools (cli_t *cli, const char *const *names, size_t count)
{
    if (!cli->client) {
        char err [1024];
        cli->client = aip_client_new (cli->home, true, err, sizeof err);
        if (!cli->client)
            return cli_fail (cli, "%s", err);
    }
    uint64_t id = cli_request (cli, AIP_OP_DAEMON_STATUS, 0);
    json_t *status;
    if (cli_call (cli, id, &status))
        return -1;
    //  The built-ins, then the configured, then what the workers serve
    static const char *builtins [] = { AIP_BUILTIN_TOOLS };
    json_t *known = json_array ();
    for (size_t i = 0; i < sizeof builtins / sizeof builtins [0]; i++)
        s_add_name (known, builtins [i]);
    char problem [AIP_PATH_MAX + 256];
    json_t *configured = s_configured (cli, problem, sizeof problem);
    size_t i, j;
    json_t *item, *tool;
    json_array_foreach (configured, i, item)
        s_add_name (known, json_string_value (item));
    json_decref (configured);
    bool any_worker = false;
    json_array_foreach (json_object_get (status, "daemons"), i, item) {
        if (!json_is_string (json_object_get (item, "service"))
        ||  strcmp (json_string_value (json_object_get (item, "service")), "spawn") != 0)
            continue;
        any_worker = true;
        json_array_foreach (json_object_get (item, "tools"), j, tool)
            if (json_is_string (tool) && aip_id_valid (json_string_value (tool),
                                                       json_string_length (tool)))
                s_add_name (known, json_string_value (tool));
    }
    json_t *workers = json_object_get (status, "workers");
    bool none = !any_worker && json_is_integer (workers) && json_integer_value (workers) == 0;
    json_decref (status);
    int rc = 0;
    if (none)
        rc = cli_fail (cli, "%s", AIP_NO_SPAWN_WORKER);
    for (size_t n = 0; n < count && rc == 0; n++) {
        bool found = false;
        json_array_foreach (known, i, item)
            if (strcmp (json_string_value (item), names [n]) == 0)
                found = true;
        if (found)
            continue;
        char list [2048] = "";
        json_array_foreach (known, i, item)
            snprintf (list + strlen (list), sizeof list - strlen (list), "%s%s", i ? ", " : "",
                      json_string_value (item));
        if (*problem)
            rc = cli_fail (cli, "unknown tool '%s': known tools are %s (and the tools file is "
                           "broken: %s)", names [n], list, problem);
        else
            rc = cli_fail (cli, "unknown tool '%s': known tools are %s (add your own in "
                           "%s/tools.json; 'ai-peer discover' shows which are installed)",
                           names [n], list, cli->home);
    }
    json_decref (known);
    return rc;
}
