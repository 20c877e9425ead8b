/*  cli_util.c — option parsing, requests, identity resolution. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int
cli_fail (cli_t *cli, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vsnprintf (cli->err, sizeof cli->err, fmt, args);
    va_end (args);
    return -1;
}

int
cli_parse (cli_t *cli, const char *command, int argc, char **argv, cli_opt_t *opts,
           char **positional, int max_positional, int *npositional)
{
    *npositional = 0;
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv [i];
        if (!options_done && strcmp (arg, "--") == 0) {
            options_done = true;
            continue;
        }
        //  "-" alone and negative numbers are words, not options
        bool looks_like_option = !options_done && arg [0] == '-' && arg [1]
                              && !(arg [1] >= '0' && arg [1] <= '9');
        if (looks_like_option) {
            //  --name=value is accepted too
            const char *eq = strchr (arg, '=');
            size_t name_len = eq && arg [1] == '-' ? (size_t) (eq - arg) : strlen (arg);
            cli_opt_t *opt = NULL;
            for (cli_opt_t *o = opts; o && o->name; o++)
                if ((strlen (o->name) == name_len && strncmp (o->name, arg, name_len) == 0)
                ||  (o->alias && strlen (o->alias) == name_len && strncmp (o->alias, arg, name_len) == 0))
                    opt = o;
            if (!opt)
                return cli_fail (cli, "unknown option '%.*s' for '%s' (see 'ai-peer %s --help')",
                                 (int) name_len, arg, command, command);
            opt->present = true;
            if (opt->takes_value) {
                if (eq && arg [1] == '-')
                    opt->value = eq + 1;
                else
                if (i + 1 < argc)
                    opt->value = argv [++i];
                else
                    return cli_fail (cli, "option '%s' of '%s' needs a value (see 'ai-peer %s "
                                     "--help')", opt->name, command, command);
            }
            else
            if (eq && arg [1] == '-')
                return cli_fail (cli, "option '%s' of '%s' takes no value", opt->name, command);
            continue;
        }
        if (*npositional >= max_positional)
            return cli_fail (cli, "too many arguments for '%s': '%s' (see 'ai-peer %s --help')",
                             command, arg, command);
        positional [(*npositional)++] = argv [i];
    }
    return 0;
}

int
cli_opt_int (cli_t *cli, const cli_opt_t *opt, long min, long max, long *value)
{
    if (!opt->present)
        return 0;
    char *end;
    errno = 0;
    long v = strtol (opt->value, &end, 10);
    if (errno || end == opt->value || *end || v < min || v > max)
        return cli_fail (cli, "%s must be a whole number from %ld to %ld, not '%s'", opt->name,
                         min, max, opt->value);
    *value = v;
    return 0;
}

int
cli_connect (cli_t *cli)
{
    if (cli->client)
        return 0;
    char err [1024];
    cli->client = aip_client_new (cli->home, true, err, sizeof err);
    return cli->client ? 0 : cli_fail (cli, "%s", err);
}

//  Messages per msg.list page when reading a whole room: small enough that
//  each page's memory is reused by the next (page faults dominated exports
//  of whole rooms), large enough that round trips do not
#define CLI_PAGE 1000

uint64_t
cli_request (cli_t *cli, aip_op_t op, size_t nargs)
{
    uint64_t id;
    if (!cli->client) {
        //  Ids only need to be unique per connection: connect lazily
        char err [1024];
        cli->client = aip_client_new (cli->home, true, err, sizeof err);
        if (!cli->client)
            snprintf (cli->err, sizeof cli->err, "%s", err);
    }
    id = cli->client ? aip_client_next_id (cli->client) : 1;
    aip_pack_reset (cli->pk);
    aip_request_begin (cli->pk, id, op, nargs);
    return id;
}

int
cli_call_reply (cli_t *cli, uint64_t id, aip_reply_t *rep)
{
    return cli_call_reply_timeout (cli, id, AIP_CLIENT_TIMEOUT_MS, rep);
}

int
cli_call_reply_timeout (cli_t *cli, uint64_t id, int timeout_ms, aip_reply_t *rep)
{
    if (!cli->client)
        return -1;              //  cli_request recorded why
    char err [1024];
    if (aip_client_call (cli->client, cli->pk, id, timeout_ms, rep, err, sizeof err))
        return cli_fail (cli, "%s", err);
    if (!rep->ok) {
        cli_fail (cli, "%s", rep->message);
        aip_reply_free (rep);
        return -1;
    }
    return 0;
}

bool
cli_cancelled (cli_t *cli)
{
    return cli->hooks && cli->hooks->cancelled && cli->hooks->cancelled (cli->hooks->arg);
}

//  A waiting command checks for cancellation this often
#define CLI_WAIT_SLICE_MS 1000

int
cli_recv (cli_t *cli, uint64_t id, int timeout_ms, aip_reply_t *rep, bool *died,
          char *err, size_t errlen)
{
    if (!cli->hooks)
        return aip_client_recv (cli->client, id, timeout_ms, rep, died, err, errlen);
    int64_t deadline = aip_clock_ms () + timeout_ms;
    while (true) {
        if (cli_cancelled (cli)) {
            snprintf (err, errlen, "cancelled");
            return -1;
        }
        int64_t left = deadline - aip_clock_ms ();
        int slice = (int) (left < CLI_WAIT_SLICE_MS ? (left > 0 ? left : 0) : CLI_WAIT_SLICE_MS);
        if (aip_client_recv (cli->client, id, slice, rep, died, err, errlen) == 0)
            return 0;
        if ((died && *died) || aip_clock_ms () >= deadline)
            return -1;
        if (cli->hooks->tick)
            cli->hooks->tick (cli->hooks->arg);
    }
}

int
cli_call_timeout (cli_t *cli, uint64_t id, int timeout_ms, json_t **data)
{
    aip_reply_t rep;
    if (cli_call_reply_timeout (cli, id, timeout_ms, &rep))
        return -1;
    if (data)
        *data = aip_json_from_obj (rep.data);
    aip_reply_free (&rep);
    return 0;
}

int
cli_reply_result (cli_t *cli, aip_reply_t *rep)
{
    int rc = 0;
    if (rep->ok)
        cli->data = aip_json_from_obj (rep->data);
    else
        rc = cli_fail (cli, "%s", rep->message);
    aip_reply_free (rep);
    return rc;
}

int
cli_call (cli_t *cli, uint64_t id, json_t **data)
{
    return cli_call_timeout (cli, id, AIP_CLIENT_TIMEOUT_MS, data);
}

int
cli_identity (cli_t *cli, const aip_identity_t **identity)
{
    if (!cli->identity_loaded) {
        char err [1024];
        if (aip_home_prepare (cli->home, err, sizeof err)
        ||  aip_identity_load (cli->home, &cli->identity, err, sizeof err))
            return cli_fail (cli, "%s", err);
        cli->identity_loaded = true;
    }
    *identity = &cli->identity;
    return 0;
}

static int
s_check_name (cli_t *cli, const char *what, const char *value)
{
    size_t len = strlen (value);
    if (len == 0 || len > AIP_MAX_NAME)
        return cli_fail (cli, "%s must be 1 to %d bytes long", what, AIP_MAX_NAME);
    if (!aip_utf8_valid (value, len))
        return cli_fail (cli, "%s is not valid UTF-8", what);
    return 0;
}

int
cli_resolve_peer (cli_t *cli, const char *as, const char *tool, const char *type,
                  cli_peer_t *peer)
{
    const aip_identity_t *me;
    if (cli_identity (cli, &me))
        return -1;
    if (type && strcmp (type, "ai") != 0 && strcmp (type, "human") != 0)
        return cli_fail (cli, "--type must be 'ai' or 'human', not '%s'", type);
    if (as && s_check_name (cli, "--as", as))
        return -1;
    if (tool && s_check_name (cli, "--tool", tool))
        return -1;
    //  An agent over MCP speaks as its AI peer, never as the human
    if (!tool && cli->default_tool)
        tool = cli->default_tool;
    memset (peer, 0, sizeof *peer);
    char host [AIP_MAX_NAME + 1], host_id [AIP_MAX_NAME + 1];
    aip_hostname (host, sizeof host);
    snprintf (host_id, sizeof host_id, "%s", host);
    aip_id_sanitize (host_id);
    if (tool) {
        //  --tool X alone: the AI peer X of this machine, id <host>-X
        snprintf (peer->type, sizeof peer->type, "%s", type ? type : "ai");
        snprintf (peer->name, sizeof peer->name, "%s", as ? as : tool);
        snprintf (peer->tool, sizeof peer->tool, "%s", tool);
        snprintf (peer->machine, sizeof peer->machine, "%s", host);
        if (strcmp (peer->type, "ai") == 0)
            snprintf (peer->id, sizeof peer->id, "%s-%s", host_id, tool);
        else
            snprintf (peer->id, sizeof peer->id, "%s-%s", host_id, peer->name);
        if (!aip_id_valid (peer->id, strlen (peer->id)))
            return cli_fail (cli, "the peer id '%s' made from the host name and %s is not "
                             "valid: use letters, digits, '_' and '-' only",
                             peer->id, strcmp (peer->type, "ai") == 0 ? "--tool" : "--as");
        return 0;
    }
    snprintf (peer->id, sizeof peer->id, "%s", me->id);
    snprintf (peer->name, sizeof peer->name, "%s", as ? as : me->name);
    snprintf (peer->type, sizeof peer->type, "%s", type ? type : me->type);
    snprintf (peer->tool, sizeof peer->tool, "%s", me->tool);
    snprintf (peer->machine, sizeof peer->machine, "%s", me->machine);
    if (strcmp (peer->type, "ai") != 0 && strcmp (peer->type, "human") != 0)
        snprintf (peer->type, sizeof peer->type, "human");
    return 0;
}

void
cli_pack_peer (cli_t *cli, const cli_peer_t *peer)
{
    aip_pack_key (cli->pk, "peer");
    aip_pack_map (cli->pk, 5);
    aip_pack_kstr (cli->pk, "id", peer->id);
    aip_pack_kstr (cli->pk, "name", peer->name);
    aip_pack_kstr (cli->pk, "type", peer->type);
    aip_pack_kstr (cli->pk, "tool", peer->tool);
    aip_pack_kstr (cli->pk, "machine", peer->machine);
}

int
cli_check_room_id (cli_t *cli, const char *room_id)
{
    if (!aip_id_valid (room_id, strlen (room_id)))
        return cli_fail (cli, "Invalid room id '%.80s': room ids are 1-64 letters, digits, "
                         "'_' or '-'. Run 'ai-peer room list' to see available rooms.", room_id);
    return 0;
}

int
cli_each_page (cli_t *cli, const char *room_id, cli_page_fn *fn, void *arg, size_t *total)
{
    if (total)
        *total = 0;
    char after_ts [AIP_MAX_TIME + 1] = "", after_id [AIP_MAX_ID + 1] = "";
    while (true) {
        //  ("", "") sorts before every message: the first page starts there
        uint64_t id = cli_request (cli, AIP_OP_MSG_LIST, 4);
        aip_pack_kstr (cli->pk, "room_id", room_id);
        aip_pack_kint (cli->pk, "limit", CLI_PAGE);
        aip_pack_kstr (cli->pk, "after_ts", after_ts);
        aip_pack_kstr (cli->pk, "after_id", after_id);
        aip_reply_t rep;
        if (cli_call_reply (cli, id, &rep))
            return -1;
        const aip_obj_t *page = aip_obj_get (rep.data, "messages");
        size_t count = aip_obj_size (page);
        if (total)
            *total += count;
        if (count > 0) {
            const aip_obj_t *last = aip_obj_at (page, count - 1);
            aip_obj_get_str (last, "created_at", after_ts, sizeof after_ts, "");
            aip_obj_get_str (last, "id", after_id, sizeof after_id, "");
        }
        bool more = count == CLI_PAGE || aip_obj_get_bool (rep.data, "truncated", false);
        int rc = count ? fn (cli, page, arg) : 0;
        aip_reply_free (&rep);
        if (rc)
            return -1;
        if (!more || count == 0)
            return 0;
    }
}

int
cli_lan_start (cli_t *cli, int port, json_t **info)
{
    uint64_t id = cli_request (cli, AIP_OP_LAN_START, port ? 1 : 0);
    if (port)
        aip_pack_kint (cli->pk, "port", port);
    return cli_call (cli, id, info);
}

json_t *
cli_lan_peers (cli_t *cli)
{
    uint64_t id = cli_request (cli, AIP_OP_LAN_PEERS, 0);
    json_t *data = NULL;
    if (cli_call (cli, id, &data)) {
        cli->err [0] = 0;
        return json_array ();
    }
    json_t *peers = json_incref (json_object_get (data, "peers"));
    json_decref (data);
    if (!json_is_array (peers)) {
        json_decref (peers);
        return json_array ();
    }
    //  tools as a list
    size_t i;
    json_t *p;
    json_array_foreach (peers, i, p) {
        const char *tools = json_string_value (json_object_get (p, "tools"));
        json_t *list = json_array ();
        char buf [256];
        snprintf (buf, sizeof buf, "%s", tools ? tools : "");
        for (char *save = NULL, *t = strtok_r (buf, ",", &save); t; t = strtok_r (NULL, ",", &save))
            json_array_append_new (list, json_string (t));
        json_object_set_new (p, "tools", list);
    }
    return peers;
}

bool
cli_name_shared (json_t *names, const char *name, const char *peer_id)
{
    if (!names || !name || !peer_id || !*name)
        return false;
    const char *first = json_string_value (json_object_get (names, name));
    if (!first) {
        json_object_set_new (names, name, json_string (peer_id));
        return false;
    }
    if (!*first)
        return true;
    if (strcmp (first, peer_id) == 0)
        return false;
    json_object_set_new (names, name, json_string (""));
    return true;
}

json_t *
cli_room_names (cli_t *cli, const char *room_id, const json_t *members)
{
    json_t *names = json_object ();
    json_t *data = NULL;
    if (!members) {
        uint64_t id = cli_request (cli, AIP_OP_ROOM_PEERS, 1);
        aip_pack_kstr (cli->pk, "id", room_id);
        if (cli_call (cli, id, &data) == 0)
            members = json_object_get (data, "peers");
        cli->err [0] = 0;               //  names are a nicety: no error for them
    }
    size_t i;
    const json_t *p;
    json_array_foreach (members, i, p)
        cli_name_shared (names, json_string_value (json_object_get (p, "name")),
                         json_string_value (json_object_get (p, "id")));
    json_decref (data);
    return names;
}

size_t
cli_fence_len (const char *text, size_t len)
{
    size_t longest = 0, run = 0;
    for (size_t i = 0; i < len; i++) {
        run = text [i] == '`' ? run + 1 : 0;
        if (run > longest)
            longest = run;
    }
    return longest < 3 ? 3 : longest + 1;
}

char *
cli_join_words (char **words, int count)
{
    size_t size = 1;
    for (int i = 0; i < count; i++)
        size += strlen (words [i]) + 1;
    char *text = (char *) malloc (size);
    if (!text)
        return NULL;
    text [0] = 0;
    char *p = text;
    for (int i = 0; i < count; i++) {
        if (i)
            *p++ = ' ';
        size_t len = strlen (words [i]);
        memcpy (p, words [i], len);
        p += len;
        *p = 0;
    }
    return text;
}
