/*  aip_stream_gemini.c — the gemini-stream-json adapter of aip_stream:
    gemini -p "" --output-format stream-json prints NDJSON events; the
    answer is the assistant's deltas since the last tool call (see
    aip_stream_ops.h for what an adapter is). */
#include "aip_stream_ops.h"
#include <czmq.h>

typedef struct {
    char error [1024];          //  an error event's message: the cause if the result fails
} s_gemini_t;

static void
s_gemini_event (aip_stream_t *self, void *state, json_t *ev)
{
    s_gemini_t *gemini = (s_gemini_t *) state;
    const char *type = aip_stream_str (ev, "type");
    if (!type) {
        self->skipped++;
        return;
    }
    if (streq (type, "init")) {
        aip_stream_session_set (self, aip_stream_str (ev, "session_id"));
        aip_stream_usage_model (self, aip_stream_str (ev, "model"));
    }
    else
    if (streq (type, "message")) {
        const char *content = aip_stream_str (ev, "content");
        if (aip_stream_is (ev, "role", "assistant") && content) {
            if (!json_is_true (json_object_get (ev, "delta")))
                aip_stream_text_reset (self);    //  a whole message replaces the deltas
            aip_stream_text_add (self, content, strlen (content));
        }
    }
    else
    if (streq (type, "tool_use") || streq (type, "tool_result"))
        aip_stream_text_reset (self);            //  what came before a tool call was chatter
    else
    if (streq (type, "error")) {
        //  Warnings go on; an error is the cause if the result fails
        if (!aip_stream_is (ev, "severity", "warning") && aip_stream_str (ev, "message"))
            snprintf (gemini->error, sizeof gemini->error, "%s", aip_stream_str (ev, "message"));
    }
    else
    if (streq (type, "result")) {
        self->done = true;
        json_t *stats = json_object_get (ev, "stats");
        //  "input" is the uncached part ("input_tokens" includes the cache)
        json_t *input = json_object_get (stats, "input");
        if (!input)
            input = json_object_get (stats, "input_tokens");
        aip_stream_usage_int (self, "input_tokens", input, false);
        aip_stream_usage_int (self, "output_tokens", json_object_get (stats, "output_tokens"),
                              false);
        aip_stream_usage_int (self, "cache_read_tokens", json_object_get (stats, "cached"), false);
        aip_stream_usage_duration (self, json_object_get (stats, "duration_ms"));
        json_t *models = json_object_get (stats, "models");
        if (json_is_object (models) && json_object_size (models) >= 1
        &&  !json_object_get (self->usage, "model"))
            aip_stream_usage_model (self, json_object_iter_key (json_object_iter (models)));
        if (!aip_stream_is (ev, "status", "success")) {
            const char *why = aip_stream_str (json_object_get (ev, "error"), "message");
            if (!why)
                why = *gemini->error ? gemini->error : "the run failed";
            aip_stream_fail (self, aip_stream_classify (why, 0), "%s", why);
        }
        else
            aip_stream_buf_set (&self->answer, self->text.data ? self->text.data : "");
        gemini->error [0] = 0;
    }
    else
        self->skipped++;
}

//  A text delta in the shape gemini prints it: its text without a JSON tree
static bool
s_gemini_fast_line (aip_stream_t *self, void *state, const char *line, size_t len)
{
    aip_stream_span_t caps [6];
    if (aip_stream_shape (line, len, "{\"type\":\"message\",\"timestamp\":%s,\"role\":\"assistant\","
                          "\"content\":%s,\"delta\":true}", caps, 6))
        return aip_stream_span_text (self, &caps [1]);
    return false;
}

const aip_stream_ops_t aip_stream_gemini_ops = {
    .name = "gemini-stream-json",
    .state_size = sizeof (s_gemini_t),
    .fast_line = s_gemini_fast_line,
    .event = s_gemini_event
};

//  ---------------------------------------------------------------------
//  Self-test

void
aip_stream_gemini_test (bool verbose)
{
    printf (" * aip_stream_gemini: ");
    //  The real CLI's recorded outputs (tests/fixtures/tools)
    const char *one = "First answer: the sky is blue because of Rayleigh scattering.";
    const char *two = "Second answer: sunsets are red for the same reason.";
    aip_stream_fixture_t fixtures [] = {
        { AIP_FORMAT_GEMINI, "gemini/turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_GEMINI, "gemini/turn2-resume.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_GEMINI, "gemini/error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_GEMINI, "gemini/error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_GEMINI, "gemini/resume-unknown.jsonl", NULL, AIP_STREAM_ERR_OUTPUT, -1, -1, -1 },
    };
    aip_stream_test_fixtures (fixtures, sizeof fixtures / sizeof fixtures [0], NULL, NULL, verbose);

    int rc;
    const char *err;
    //  Deltas since the last tool call are the answer
    aip_stream_t *s = aip_stream_test_parse (AIP_FORMAT_GEMINI,
        "{\"type\":\"init\",\"session_id\":\"9c1e\",\"model\":\"gemini-x\"}\n"
        "{\"type\":\"message\",\"role\":\"user\",\"content\":\"the prompt\"}\n"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"Reading\",\"delta\":true}\n"
        "{\"type\":\"tool_use\",\"tool_name\":\"read_file\"}\n"
        "{\"type\":\"tool_result\",\"status\":\"success\"}\n"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"Hi \",\"delta\":true}\n"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"there\",\"delta\":true}\n"
        "{\"type\":\"result\",\"status\":\"success\",\"stats\":{\"input_tokens\":40,"
        "\"output_tokens\":2,\"cached\":10,\"duration_ms\":55}}\n", 5, &rc);
    assert (rc == 0 && streq (aip_stream_test_answer (s), "Hi there"));
    assert (streq (aip_stream_session_id (s), "9c1e"));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "input_tokens")) == 40);
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "cache_read_tokens")) == 10);
    assert (streq (json_string_value (json_object_get (aip_stream_usage (s), "model")), "gemini-x"));
    aip_stream_destroy (&s);
    //  An error event is the cause of a failed result; a warning is not
    s = aip_stream_test_parse (AIP_FORMAT_GEMINI,
        "{\"type\":\"error\",\"severity\":\"error\",\"message\":\"quota exceeded\"}\n"
        "{\"type\":\"error\",\"severity\":\"warning\",\"message\":\"slow\"}\n"
        "{\"type\":\"result\",\"status\":\"error\"}\n", 1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_RATE);
    assert (streq (err, "quota exceeded"));
    aip_stream_destroy (&s);
    s = aip_stream_test_parse (AIP_FORMAT_GEMINI,
        "{\"type\":\"result\",\"status\":\"error\",\"error\":{\"message\":\"Not logged in\"}}\n",
        1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_AUTH);
    aip_stream_destroy (&s);
    s = aip_stream_test_parse (AIP_FORMAT_GEMINI, "{\"type\":\"result\"}\n", 1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_API);
    assert (streq (err, "the run failed"));
    aip_stream_destroy (&s);

    //  The fast path for deltas gives what a full parse gives: escapes
    //  decoded, a broken string skipped, another shape parsed in full
    s = aip_stream_test_parse (AIP_FORMAT_GEMINI,
        "{\"type\":\"message\",\"timestamp\":\"t\",\"role\":\"assistant\",\"content\":\"a\\nb\\u00e9 \",\"delta\":true}\n"
        "{\"type\":\"message\",\"timestamp\":\"t\",\"role\":\"assistant\",\"content\":\"bad\\x\",\"delta\":true}\n"
        "{\"type\":\"message\",\"timestamp\":\"t\",\"role\":\"assistant\",\"content\":\"raw\ttab\",\"delta\":true}\n"
        "{\"delta\":true,\"type\":\"message\",\"role\":\"assistant\",\"content\":\"end\"}\n"
        "{\"type\":\"result\",\"status\":\"success\",\"stats\":{}}\n", 1000, &rc);
    assert (rc == 0 && streq (aip_stream_test_answer (s), "a\nb\xc3\xa9 end"));
    aip_stream_destroy (&s);
    if (verbose)
        printf ("(deltas, tool calls, errors, fast path) ");
    printf ("OK\n");
}
