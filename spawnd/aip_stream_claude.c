/*  aip_stream_claude.c — the claude-stream-json adapter of aip_stream:
    claude -p --output-format stream-json --verbose --include-partial-messages
    prints NDJSON events; the answer is the result event's (see
    aip_stream_ops.h for what an adapter is). */
#include "aip_stream_ops.h"
#include <czmq.h>
#include "aip_limits.h"

static void
s_claude_event (aip_stream_t *self, void *state, json_t *ev)
{
    const char *type = aip_stream_str (ev, "type");
    if (!type) {
        self->skipped++;
        return;
    }
    if (streq (type, "system")) {
        if (aip_stream_is (ev, "subtype", "init")) {
            aip_stream_session_set (self, aip_stream_str (ev, "session_id"));
            aip_stream_usage_model (self, aip_stream_str (ev, "model"));
        }
    }
    else
    if (streq (type, "stream_event")) {
        json_t *event = json_object_get (ev, "event");
        if (aip_stream_is (event, "type", "message_start"))
            aip_stream_text_reset (self);       //  a new assistant message: its text is the answer
        else
        if (aip_stream_is (event, "type", "content_block_delta")) {
            json_t *delta = json_object_get (event, "delta");
            const char *text = aip_stream_is (delta, "type", "text_delta")
                             ? aip_stream_str (delta, "text") : NULL;
            if (text)
                aip_stream_text_add (self, text, strlen (text));
        }
    }
    else
    if (streq (type, "assistant")) {
        //  A whole assistant message: its text blocks (tool_use blocks are
        //  chatter). The last one is the answer if the result has none.
        json_t *content = json_object_get (json_object_get (ev, "message"), "content");
        size_t i;
        json_t *block;
        bool any = false;
        json_array_foreach (content, i, block) {
            const char *text = aip_stream_is (block, "type", "text")
                             ? aip_stream_str (block, "text") : NULL;
            if (text) {
                if (!any)
                    aip_stream_buf_reset (&self->answer);
                aip_stream_buf_add (&self->answer, text, strlen (text));
                any = true;
            }
        }
    }
    else
    if (streq (type, "result")) {
        self->done = true;
        aip_stream_session_set (self, aip_stream_str (ev, "session_id"));
        json_t *usage = json_object_get (ev, "usage");
        aip_stream_usage_int (self, "input_tokens", json_object_get (usage, "input_tokens"), false);
        aip_stream_usage_int (self, "output_tokens", json_object_get (usage, "output_tokens"),
                              false);
        aip_stream_usage_int (self, "cache_read_tokens",
                              json_object_get (usage, "cache_read_input_tokens"), false);
        aip_stream_usage_int (self, "cache_write_tokens",
                              json_object_get (usage, "cache_creation_input_tokens"), false);
        aip_stream_usage_cost (self, json_object_get (ev, "total_cost_usd"));
        aip_stream_usage_duration (self, json_object_get (ev, "duration_ms"));
        //  modelUsage names the model(s) used
        json_t *models = json_object_get (ev, "modelUsage");
        if (json_is_object (models) && json_object_size (models) >= 1
        &&  !json_object_get (self->usage, "model"))
            aip_stream_usage_model (self, json_object_iter_key (json_object_iter (models)));
        const char *result = aip_stream_str (ev, "result");
        const char *subtype = aip_stream_str (ev, "subtype");
        bool is_error = json_is_true (json_object_get (ev, "is_error"))
                     || (subtype && strncmp (subtype, "error", 5) == 0);
        if (is_error) {
            json_t *status = json_object_get (ev, "api_error_status");
            const char *why = result && *result ? result
                            : subtype ? subtype : "the run failed";
            if (subtype && streq (subtype, "error_max_budget_usd"))
                aip_stream_fail (self, AIP_STREAM_ERR_BUDGET,
                                 "stopped at its cost budget (--max-cost)");
            else
                aip_stream_fail (self, aip_stream_classify (why, (int) json_integer_value (status)),
                                 "%s", why);
        }
        else
        if (result)
            aip_stream_buf_set (&self->answer, result);
        //  else the last assistant message's text blocks are the answer
    }
    else
        self->skipped++;        //  user (tool results), rate_limit_event, ...: not ours
}

//  A text delta in the shape claude prints it (with or without its
//  api_message_id): its text without a JSON tree
static bool
s_claude_fast_line (aip_stream_t *self, void *state, const char *line, size_t len)
{
    aip_stream_span_t caps [6];
    if (aip_stream_shape (line, len, "{\"type\":\"stream_event\",\"event\":{\"type\":"
                          "\"content_block_delta\",\"index\":%i,\"delta\":{\"type\":\"text_delta\","
                          "\"text\":%s}},\"session_id\":%s,\"parent_tool_use_id\":null,\"uuid\":%s,"
                          "\"api_message_id\":%s}", caps, 6)
    ||  aip_stream_shape (line, len, "{\"type\":\"stream_event\",\"event\":{\"type\":"
                          "\"content_block_delta\",\"index\":%i,\"delta\":{\"type\":\"text_delta\","
                          "\"text\":%s}},\"session_id\":%s,\"parent_tool_use_id\":null,\"uuid\":%s}",
                          caps, 6))
        return aip_stream_span_text (self, &caps [0]);
    return false;
}

const aip_stream_ops_t aip_stream_claude_ops = {
    .name = "claude-stream-json",
    .fast_line = s_claude_fast_line,
    .event = s_claude_event
};

//  ---------------------------------------------------------------------
//  Self-test

void
aip_stream_claude_test (bool verbose)
{
    printf (" * aip_stream_claude: ");
    //  The real CLI's recorded outputs (tests/fixtures/tools)
    const char *one = "First answer: the sky is blue because of Rayleigh scattering.";
    const char *two = "Second answer: sunsets are red for the same reason.";
    aip_stream_fixture_t fixtures [] = {
        { AIP_FORMAT_CLAUDE, "claude/turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_CLAUDE, "claude/turn2-resume.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_CLAUDE, "claude/error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_CLAUDE, "claude/error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_CLAUDE, "claude/resume-unknown.jsonl", NULL, AIP_STREAM_ERR_API, -1, -1, -1 },
    };
    aip_stream_test_fixtures (fixtures, sizeof fixtures / sizeof fixtures [0], NULL, NULL, verbose);

    int rc;
    const char *err;
    //  Deltas, tool chatter, result with usage, in any pieces
    const char *claude =
        "{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"3f2a-b\",\"model\":\"claude-x\"}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\"}}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me look.\"}}}\n"
        "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"Let me look.\"},{\"type\":\"tool_use\",\"name\":\"Read\"}]}}\n"
        "{\"type\":\"user\",\"message\":{}}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\"}}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}}\n"
        "{\"type\":\"some_new_event\",\"x\":1}\n"
        "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"Hello\"}]}}\n"
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"Hello\","
        "\"session_id\":\"3f2a-b\",\"total_cost_usd\":0.0125,\"duration_ms\":900,"
        "\"usage\":{\"input_tokens\":12,\"output_tokens\":3,\"cache_read_input_tokens\":100,"
        "\"cache_creation_input_tokens\":7}}\n";
    size_t pieces [] = { 1, 7, 100000 };
    for (size_t i = 0; i < 3; i++) {
        aip_stream_t *s = aip_stream_test_parse (AIP_FORMAT_CLAUDE, claude, pieces [i], &rc);
        assert (rc == 0 && aip_stream_done (s));
        assert (streq (aip_stream_test_answer (s), "Hello"));
        size_t len;
        assert (streq (aip_stream_text (s, &len), "Hello"));
        assert (streq (aip_stream_session_id (s), "3f2a-b"));
        json_t *u = aip_stream_usage (s);
        assert (json_integer_value (json_object_get (u, "input_tokens")) == 12);
        assert (json_integer_value (json_object_get (u, "output_tokens")) == 3);
        assert (json_integer_value (json_object_get (u, "cache_read_tokens")) == 100);
        assert (json_integer_value (json_object_get (u, "cache_write_tokens")) == 7);
        assert (json_integer_value (json_object_get (u, "duration_ms")) == 900);
        assert (json_real_value (json_object_get (u, "cost_usd")) == 0.0125);
        assert (streq (json_string_value (json_object_get (u, "model")), "claude-x"));
        assert (aip_stream_lines (s) == 11);
        aip_stream_destroy (&s);
    }
    //  No result event = an error, nothing to post
    aip_stream_t *s = aip_stream_test_parse (AIP_FORMAT_CLAUDE,
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"half\"}}}\n",
        1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_OUTPUT);
    assert (strstr (err, "without its final event"));
    aip_stream_destroy (&s);
    //  An error result is classified
    s = aip_stream_test_parse (AIP_FORMAT_CLAUDE,
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,"
        "\"result\":\"Invalid API key · Please run /login\"}", 1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_AUTH);
    aip_stream_destroy (&s);
    s = aip_stream_test_parse (AIP_FORMAT_CLAUDE,
        "{\"type\":\"result\",\"is_error\":true,\"api_error_status\":429,\"result\":\"API Error\"}\n",
        1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_RATE);
    aip_stream_destroy (&s);
    s = aip_stream_test_parse (AIP_FORMAT_CLAUDE,
        "{\"type\":\"result\",\"subtype\":\"error_max_budget_usd\",\"is_error\":true}\n",
        1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_BUDGET);
    assert (strstr (err, "--max-cost"));
    aip_stream_destroy (&s);
    //  A result without its text: the last assistant message's text blocks
    s = aip_stream_test_parse (AIP_FORMAT_CLAUDE,
        "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"old\"}]}}\n"
        "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"A \"},"
        "{\"type\":\"tool_use\"},{\"type\":\"text\",\"text\":\"B\"}]}}\n"
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,"
        "\"modelUsage\":{\"claude-y\":{}}}\n", 1000, &rc);
    assert (rc == 0 && streq (aip_stream_test_answer (s), "A B"));
    assert (streq (json_string_value (json_object_get (aip_stream_usage (s), "model")), "claude-y"));
    aip_stream_destroy (&s);
    //  Absurd usage and a bad session id are dropped; text after the
    //  final event and non-JSON lines are ignored
    s = aip_stream_test_parse (AIP_FORMAT_CLAUDE,
        "banner line\n{\"type\":\"result\",\"is_error\":false,\"result\":\"ok\","
        "\"session_id\":\"x; rm -rf /\",\"total_cost_usd\":1e300,"
        "\"usage\":{\"input_tokens\":-5,\"output_tokens\":99999999999999999,"
        "\"cache_read_input_tokens\":100000000000000000000000000}}\n"
        "plain text after\n", 3, &rc);
    assert (rc == 0 && streq (aip_stream_test_answer (s), "ok"));
    assert (!aip_stream_session_id (s));
    assert (!json_object_get (aip_stream_usage (s), "input_tokens"));
    assert (!json_object_get (aip_stream_usage (s), "output_tokens"));
    assert (!json_object_get (aip_stream_usage (s), "cost_usd"));
    assert (!json_object_get (aip_stream_usage (s), "cache_read_tokens"));
    aip_stream_destroy (&s);
    //  The fast path for deltas gives what a full parse gives: the real
    //  shape (escapes decoded, invalid UTF-8 in its place), a broken string
    //  skipped, another shape parsed in full
    const char *tail = ",\"session_id\":\"s\",\"parent_tool_use_id\":null,\"uuid\":\"u\"";
    char fast [2048];
    snprintf (fast, sizeof fast,
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\"}}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\nb\\u00e9 \"}}%s,\"api_message_id\":\"m\"}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"bad\\x\"}}%s}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"index\":12,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\xff\"}}%s}\n"
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\" end\"},\"index\":0}%s}\n"
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false}\n", tail, tail, tail, tail);
    s = aip_stream_test_parse (AIP_FORMAT_CLAUDE, fast, 1000, &rc);
    size_t len;
    assert (rc == 0 && streq (aip_stream_text (s, &len), "a\nb\xc3\xa9 x\xef\xbf\xbd end"));
    assert (aip_stream_changes (s) == 3);
    aip_stream_destroy (&s);
    if (verbose)
        printf ("(deltas, results, errors, fast path) ");
    printf ("OK\n");
}
