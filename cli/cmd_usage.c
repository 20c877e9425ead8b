/*  cmd_usage.c — token usage: `ai-peer usage [ROOM]`, and the sums that
    quick and discuss report.

    A usage object is what spawnd puts in an answer's metadata.usage and in
    invite's data.usage: {input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cost_usd (when the tool reports it), model (when
    known), duration_ms}. Values come from tools and peers: only integers
    within AIP_USAGE_MAX_* are counted, the rest is ignored. storaged keeps
    the sums per room and tool as answers are stored (see aip_schema.c), so
    a large database answers in a few rows. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

//  The integer keys of a usage object, and the bound of each
static const struct {
    const char *key;
    json_int_t max;
} s_int_keys [] = {
    { "input_tokens", AIP_USAGE_MAX_TOKENS },
    { "output_tokens", AIP_USAGE_MAX_TOKENS },
    { "cache_read_tokens", AIP_USAGE_MAX_TOKENS },
    { "cache_write_tokens", AIP_USAGE_MAX_TOKENS },
    { "duration_ms", AIP_USAGE_MAX_DURATION_MS },
};
#define S_INT_KEYS (sizeof s_int_keys / sizeof s_int_keys [0])

//  An integer of a usage object within [0, max], or -1 when absent or absurd
static json_int_t
s_int (const json_t *usage, const char *key, json_int_t max)
{
    json_t *value = json_object_get (usage, key);
    if (!json_is_integer (value))
        return -1;
    json_int_t n = json_integer_value (value);
    return n >= 0 && n <= max ? n : -1;
}

//  The cost of a usage object, or -1 when absent or absurd
static double
s_cost (const json_t *usage)
{
    json_t *value = json_object_get (usage, "cost_usd");
    if (!json_is_number (value))
        return -1;
    double cost = json_number_value (value);
    return isfinite (cost) && cost >= 0 && cost <= AIP_USAGE_MAX_COST_USD ? cost : -1;
}

json_t *
cli_usage_new (void)
{
    json_t *sum = json_object ();
    for (size_t i = 0; i < S_INT_KEYS; i++)
        json_object_set_new (sum, s_int_keys [i].key, json_integer (0));
    return sum;
}

void
cli_usage_add (json_t *sum, const json_t *usage)
{
    if (!json_is_object (usage))
        return;
    for (size_t i = 0; i < S_INT_KEYS; i++) {
        json_int_t n = s_int (usage, s_int_keys [i].key, s_int_keys [i].max);
        if (n > 0) {
            json_int_t had = json_integer_value (json_object_get (sum, s_int_keys [i].key));
            json_object_set_new (sum, s_int_keys [i].key, json_integer (had + n));
        }
    }
    double cost = s_cost (usage);
    if (cost >= 0) {
        double had = json_number_value (json_object_get (sum, "cost_usd"));
        json_object_set_new (sum, "cost_usd", json_real (had + cost));
    }
}

long long
cli_usage_tokens (const json_t *usage)
{
    json_int_t in = s_int (usage, "input_tokens", AIP_USAGE_MAX_TOKENS);
    json_int_t out = s_int (usage, "output_tokens", AIP_USAGE_MAX_TOKENS);
    return (long long) (in > 0 ? in : 0) + (long long) (out > 0 ? out : 0);
}

void
cli_usage_add_tool (json_t *sum, const char *tool, const json_t *usage)
{
    if (!json_is_object (usage))
        return;
    cli_usage_add (sum, usage);
    json_t *by_tool = json_object_get (sum, "by_tool");
    if (!by_tool) {
        by_tool = json_object ();
        json_object_set_new (sum, "by_tool", by_tool);
    }
    json_t *mine = json_object_get (by_tool, tool);
    if (!mine) {
        mine = cli_usage_new ();
        json_object_set_new (by_tool, tool, mine);
    }
    cli_usage_add (mine, usage);
    //  The model, when the tool named one (a short, printable name)
    const char *model = json_string_value (json_object_get (usage, "model"));
    if (model && strlen (model) <= AIP_MAX_NAME && aip_utf8_valid (model, strlen (model)))
        json_object_set_new (mine, "model", json_string (model));
}

//  ---------------------------------------------------------------------
//  ai-peer usage [ROOM]

//  One row of usage.sum as a usage object (+ answers, rooms)
static json_t *
s_row_usage (const aip_obj_t *row, bool with_rooms)
{
    json_t *usage = json_object ();
    json_object_set_new (usage, "answers",
                         json_integer (aip_obj_get_int (row, "answers", 0)));
    for (size_t i = 0; i < S_INT_KEYS; i++)
        json_object_set_new (usage, s_int_keys [i].key,
                             json_integer (aip_obj_get_int (row, s_int_keys [i].key, 0)));
    //  The cost only when some answer reported one
    const aip_obj_t *cost = aip_obj_get (row, "cost_usd");
    if (aip_obj_get_int (row, "costed", 0) > 0)
        json_object_set_new (usage, "cost_usd", json_real (aip_obj_is_real (cost)
                                                           ? aip_obj_real (cost)
                                                           : (double) aip_obj_int (cost)));
    if (with_rooms)
        json_object_set_new (usage, "rooms", json_integer (aip_obj_get_int (row, "rooms", 0)));
    return usage;
}

int
cmd_usage (cli_t *cli, int argc, char **argv)
{
    char *pos [1];
    int npos;
    if (cli_parse (cli, "usage", argc, argv, NULL, pos, 1, &npos))
        return -1;
    const char *room_id = npos > 0 ? pos [0] : NULL;
    if (room_id && cli_check_room_id (cli, room_id))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_USAGE_SUM, room_id ? 1 : 0);
    if (room_id)
        aip_pack_kstr (cli->pk, "room_id", room_id);
    aip_reply_t rep;
    if (cli_call_reply (cli, id, &rep))
        return -1;
    const aip_obj_t *rows = aip_obj_get (rep.data, "by_tool");
    json_t *totals = cli_usage_new ();
    json_t *by_tool = json_object ();
    json_int_t answers = 0;
    bool costed = false;
    for (size_t i = 0; i < aip_obj_size (rows); i++) {
        const aip_obj_t *row = aip_obj_at (rows, i);
        char tool [4 * AIP_MAX_ID + 1];     //  64 characters (SQL substr)
        aip_obj_get_str (row, "tool", tool, sizeof tool, "?");
        json_t *usage = s_row_usage (row, !room_id);
        answers += json_integer_value (json_object_get (usage, "answers"));
        costed = costed || json_object_get (usage, "cost_usd");
        cli_usage_add (totals, usage);
        json_object_set_new (by_tool, tool, usage);
    }
    if (costed && !json_object_get (totals, "cost_usd"))
        json_object_set_new (totals, "cost_usd", json_real (0));
    cli->data = json_object ();
    if (room_id)
        json_object_set_new (cli->data, "room", json_string (room_id));
    json_object_set_new (cli->data, "answers", json_integer (answers));
    json_object_update (cli->data, totals);
    json_object_set_new (cli->data, "by_tool", by_tool);
    if (aip_obj_size (rows) >= AIP_MAX_USAGE_TOOLS)
        json_object_set_new (cli->data, "truncated", json_true ());
    json_decref (totals);
    aip_reply_free (&rep);
    return 0;
}
