/*  aip_stream_opencode.c — the opencode adapters of aip_stream (see
    aip_stream_ops.h for what an adapter is):

      opencode-acp    opencode acp: the Agent Client Protocol, JSON-RPC on
                      stdio, driven by us (initialize, session/new|load,
                      session/prompt); its permission, file and terminal
                      requests are refused
      opencode-json   opencode run --format json: NDJSON, no deltas (the
                      fallback where acp cannot run) */
#include "aip_stream_ops.h"
#include <czmq.h>

//  ---------------------------------------------------------------------
//  opencode acp

typedef struct {
    char message [129];         //  the messageId of the chunks so far
    bool prompt_sent;           //  the turn started (updates before are replays)
} s_acp_t;

static void
s_acp_start (aip_stream_t *self, void *state)
{
    aip_stream_request (self, AIP_RPC_INITIALIZE, "initialize",
                        json_pack ("{s:i, s:{s:{s:b, s:b}, s:b}}", "protocolVersion", 1,
                                   "clientCapabilities", "fs", "readTextFile", 0, "writeTextFile",
                                   0, "terminal", 0));
}

//  A chunk of another message (opencode retrying a cut-off stream sends
//  the answer again under a new messageId) starts the text anew
static void
s_acp_message (aip_stream_t *self, s_acp_t *acp, const char *id, size_t len)
{
    if (!id || !len)
        return;
    if (strlen (acp->message) == len && memcmp (acp->message, id, len) == 0)
        return;
    if (*acp->message)
        aip_stream_text_reset (self);
    if (len >= sizeof acp->message)
        len = sizeof acp->message - 1;
    memcpy (acp->message, id, len);
    acp->message [len] = 0;
}

static void
s_acp_session (aip_stream_t *self, json_t *capabilities)
{
    bool can_load = json_is_true (json_object_get (capabilities, "loadSession"));
    if (*self->resume_id && !can_load) {
        self->done = true;
        aip_stream_fail (self, AIP_STREAM_ERR_RESUME, "this agent cannot load session %s",
                         self->resume_id);
        return;
    }
    json_t *params = json_pack ("{s:s, s:[]}", "cwd", self->cwd, "mcpServers");
    if (*self->resume_id) {
        json_object_set_new (params, "sessionId", json_string (self->resume_id));
        aip_stream_request (self, AIP_RPC_SESSION, "session/load", params);
    }
    else
        aip_stream_request (self, AIP_RPC_SESSION, "session/new", params);
}

static void
s_acp_prompt (aip_stream_t *self, s_acp_t *acp)
{
    json_t *prompt = json_pack ("[{s:s, s:s%}]", "type", "text", "text", self->prompt,
                                self->prompt_len);
    aip_stream_request (self, AIP_RPC_PROMPT, "session/prompt",
                        json_pack ("{s:s, s:o}", "sessionId", self->session_id, "prompt", prompt));
    acp->prompt_sent = true;
    aip_stream_text_reset (self);
}

static void
s_acp_usage (aip_stream_t *self, json_t *usage)
{
    aip_stream_usage_int (self, "input_tokens", json_object_get (usage, "inputTokens"), false);
    aip_stream_usage_int (self, "output_tokens", json_object_get (usage, "outputTokens"), false);
    aip_stream_usage_int (self, "cache_read_tokens", json_object_get (usage, "cachedReadTokens"),
                          false);
    aip_stream_usage_int (self, "cache_write_tokens", json_object_get (usage, "cachedWriteTokens"),
                          false);
}

//  A reply to one of our requests: each one leads to the next
static void
s_acp_reply (aip_stream_t *self, s_acp_t *acp, json_t *msg, json_int_t n)
{
    json_t *result = json_object_get (msg, "result");
    if (json_object_get (msg, "error")) {
        const char *why = aip_stream_rpc_error (msg);
        self->done = true;
        if (n == AIP_RPC_SESSION && *self->resume_id)
            aip_stream_fail (self, AIP_STREAM_ERR_RESUME, "cannot load session %s: %s",
                             self->resume_id, why);
        else
        if (n == AIP_RPC_MODEL)
            aip_stream_fail (self, AIP_STREAM_ERR_API, "cannot use model %s: %s", self->model,
                             why);
        else
            aip_stream_fail (self, aip_stream_classify (why, 0), "%s", why);
        return;
    }
    if (n == AIP_RPC_INITIALIZE)
        s_acp_session (self, json_object_get (result, "agentCapabilities"));
    else
    if (n == AIP_RPC_SESSION) {
        if (*self->resume_id)
            snprintf (self->session_id, sizeof self->session_id, "%s", self->resume_id);
        else
            aip_stream_session_set (self, aip_stream_str (result, "sessionId"));
        json_t *models = json_object_get (result, "models");
        aip_stream_usage_model (self, aip_stream_str (models, "currentModelId"));
        json_t *option;
        size_t i;
        json_array_foreach (json_object_get (result, "configOptions"), i, option)
            if (aip_stream_is (option, "id", "model"))
                aip_stream_usage_model (self, aip_stream_str (option, "currentValue"));
        if (!*self->session_id) {
            self->done = true;
            aip_stream_fail (self, AIP_STREAM_ERR_OUTPUT, "the agent gave no valid session id");
            return;
        }
        if (self->model)
            aip_stream_request (self, AIP_RPC_MODEL, "session/set_model",
                                json_pack ("{s:s, s:s}", "sessionId", self->session_id,
                                           "modelId", self->model));
        else
            s_acp_prompt (self, acp);
    }
    else
    if (n == AIP_RPC_MODEL) {
        aip_stream_usage_model (self, self->model);
        s_acp_prompt (self, acp);
    }
    else
    if (n == AIP_RPC_PROMPT) {
        self->done = true;
        s_acp_usage (self, json_object_get (result, "usage"));
        const char *stop = aip_stream_str (result, "stopReason");
        if (stop && (streq (stop, "end_turn") || streq (stop, "max_tokens")))
            aip_stream_buf_set (&self->answer, self->text.data ? self->text.data : "");
        else
            aip_stream_fail (self, AIP_STREAM_ERR_API, "the turn stopped: %s",
                             stop ? stop : "no reason given");
    }
}

static void
s_acp_event (aip_stream_t *self, void *state, json_t *msg)
{
    s_acp_t *acp = (s_acp_t *) state;
    const char *method = aip_stream_str (msg, "method");
    json_t *id = json_object_get (msg, "id");
    json_t *params = json_object_get (msg, "params");
    if (method && id) {
        //  The agent asks: permissions are cancelled, files and terminals refused
        if (streq (method, "session/request_permission"))
            aip_stream_reply (self, id, json_pack ("{s:{s:s}}", "outcome", "outcome",
                                                   "cancelled"));
        else
            aip_stream_refuse (self, id, "ai-peer does not allow this");
        return;
    }
    if (!method && json_is_integer (id)) {
        s_acp_reply (self, acp, msg, json_integer_value (id));
        return;
    }
    if (method && streq (method, "session/update") && acp->prompt_sent) {
        //  Updates before our prompt replay a loaded session: not this answer
        json_t *update = json_object_get (params, "update");
        const char *kind = aip_stream_str (update, "sessionUpdate");
        json_t *content = json_object_get (update, "content");
        if (kind && streq (kind, "agent_message_chunk")
        &&  aip_stream_is (content, "type", "text")) {
            const char *text = aip_stream_str (content, "text");
            const char *message_id = aip_stream_str (update, "messageId");
            s_acp_message (self, acp, message_id, message_id ? strlen (message_id) : 0);
            if (text)
                aip_stream_text_add (self, text, strlen (text));
        }
        else
        if (kind && streq (kind, "tool_call"))
            aip_stream_text_reset (self);
        else
        if (kind && streq (kind, "usage_update"))
            aip_stream_usage_cost (self, json_object_get (json_object_get (update, "cost"),
                                                          "amount"));
        return;
    }
    self->skipped++;
}

//  A message chunk in the shape opencode prints it, once our prompt is
//  sent: its text without a JSON tree
static bool
s_acp_fast_line (aip_stream_t *self, void *state, const char *line, size_t len)
{
    s_acp_t *acp = (s_acp_t *) state;
    aip_stream_span_t caps [6];
    if (acp->prompt_sent
    &&  aip_stream_shape (line, len, "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":"
                          "{\"sessionId\":%s,\"update\":{\"sessionUpdate\":\"agent_message_chunk\","
                          "\"messageId\":%s,\"content\":{\"type\":\"text\",\"text\":%s}}}}", caps, 6)) {
        s_acp_message (self, acp, caps [1].at + 1, caps [1].len - 2);
        return aip_stream_span_text (self, &caps [2]);
    }
    return false;
}

const aip_stream_ops_t aip_stream_acp_ops = {
    .name = "opencode-acp",
    .protocol = true,
    .state_size = sizeof (s_acp_t),
    .start = s_acp_start,
    .fast_line = s_acp_fast_line,
    .event = s_acp_event
};

//  ---------------------------------------------------------------------
//  opencode run --format json

static void
s_run_event (aip_stream_t *self, void *state, json_t *ev)
{
    const char *type = aip_stream_str (ev, "type");
    json_t *part = json_object_get (ev, "part");
    if (!type) {
        self->skipped++;
        return;
    }
    aip_stream_session_set (self, aip_stream_str (ev, "sessionID"));
    if (streq (type, "text")) {
        const char *text = aip_stream_str (part, "text");
        if (text) {
            aip_stream_text_reset (self);
            aip_stream_text_add (self, text, strlen (text));
            aip_stream_buf_set (&self->answer, text);
        }
    }
    else
    if (streq (type, "step_finish")) {
        json_t *tokens = json_object_get (part, "tokens");
        aip_stream_usage_int (self, "input_tokens", json_object_get (tokens, "input"), true);
        aip_stream_usage_int (self, "output_tokens", json_object_get (tokens, "output"), true);
        json_t *cache = json_object_get (tokens, "cache");
        aip_stream_usage_int (self, "cache_read_tokens", json_object_get (cache, "read"), true);
        aip_stream_usage_int (self, "cache_write_tokens", json_object_get (cache, "write"), true);
        aip_stream_usage_cost (self, json_object_get (part, "cost"));
        //  A step that ends for tool calls is followed by another
        if (!aip_stream_is (part, "reason", "tool-calls"))
            self->done = true;
    }
    else
    if (streq (type, "error")) {
        json_t *error = json_object_get (ev, "error");
        const char *why = aip_stream_str (json_object_get (error, "data"), "message");
        if (!why)
            why = aip_stream_str (error, "name");
        self->done = true;
        aip_stream_fail (self, aip_stream_classify (why, 0), "%s", why ? why : "the run failed");
    }
    else
    if (!streq (type, "step_start") && !streq (type, "tool_use"))
        self->skipped++;
}

const aip_stream_ops_t aip_stream_opencode_run_ops = {
    .name = "opencode-json",
    .event = s_run_event
};

//  ---------------------------------------------------------------------
//  Self-test

void
aip_stream_opencode_test (bool verbose)
{
    printf (" * aip_stream_opencode: ");
    //  The real CLI's recorded outputs (tests/fixtures/tools)
    const char *one = "First answer: the sky is blue because of Rayleigh scattering.";
    const char *two = "Second answer: sunsets are red for the same reason.";
    aip_stream_fixture_t run [] = {
        { AIP_FORMAT_OPENCODE_RUN, "opencode/run-turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_OPENCODE_RUN, "opencode/run-turn2-resume.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_OPENCODE_RUN, "opencode/run-error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_OPENCODE_RUN, "opencode/run-error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_OPENCODE_RUN, "opencode/run-resume-unknown.jsonl", NULL, AIP_STREAM_ERR_OUTPUT, -1, -1, -1 },
    };
    aip_stream_test_fixtures (run, sizeof run / sizeof run [0], NULL, NULL, verbose);
    aip_stream_fixture_t acp [] = {
        { AIP_FORMAT_ACP, "opencode/acp-turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_ACP, "opencode/acp-turn2-load.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_ACP, "opencode/acp-error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_ACP, "opencode/acp-error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_ACP, "opencode/acp-load-unknown.jsonl", NULL, AIP_STREAM_ERR_RESUME, -1, -1, -1 },
    };
    aip_stream_test_fixtures (acp, sizeof acp / sizeof acp [0], "session/load", "sessionId", verbose);

    //  opencode acp: replayed updates of a loaded session are not the answer
    int rc;
    const char *err;
    aip_stream_args_t args = { "the prompt", 10, "/tmp", NULL, "ses_abc", false };
    aip_stream_t *s = aip_stream_new (AIP_FORMAT_ACP, "opencode", &args);
    size_t len;
    char *out = aip_stream_output (s, &len);
    assert (strstr (out, "\"protocolVersion\":1"));
    free (out);
    const char *reply = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":1,\"agentCapabilities\":{\"loadSession\":true}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "session/load") && strstr (out, "ses_abc") && strstr (out, "\"mcpServers\":[]"));
    free (out);
    reply = "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"OLD\"}}}}\n"
            "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"ses_abc\",\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"messageId\":\"msg_0\",\"content\":{\"type\":\"text\",\"text\":\"OLD\"}}}}\n"
            "{\"id\":2,\"result\":{}}\n"
            "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"new \"}}}}\n"
            "{\"id\":5,\"method\":\"session/request_permission\",\"params\":{}}\n"
            "{\"id\":6,\"method\":\"fs/read_text_file\",\"params\":{}}\n"
            "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"usage_update\",\"cost\":{\"amount\":0.25}}}}\n"
            "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"answer\"}}}}\n"
            "{\"id\":3,\"result\":{\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":8,\"outputTokens\":2}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "session/prompt") && strstr (out, "cancelled") && strstr (out, "\"id\":6"));
    free (out);
    assert (aip_stream_end (s) == 0 && streq (aip_stream_test_answer (s), "new answer"));
    assert (streq (aip_stream_session_id (s), "ses_abc"));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "output_tokens")) == 2);
    assert (json_real_value (json_object_get (aip_stream_usage (s), "cost_usd")) == 0.25);
    aip_stream_destroy (&s);

    //  ... retrying a cut-off stream: each attempt is a new messageId, and
    //  only the last one is the answer (general and fast path); a model
    //  is set before the prompt
    args.resume_id = NULL;
    args.model = "big-model";
    s = aip_stream_new (AIP_FORMAT_ACP, "opencode", &args);
    free (aip_stream_output (s, &len));
    reply = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":1}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    reply = "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"sessionId\":\"ses_r\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "session/set_model") && strstr (out, "big-model") && !strstr (out, "session/prompt"));
    free (out);
    reply = "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "session/prompt") && strstr (out, "the prompt"));
    free (out);
    reply = "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"ses_r\",\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"messageId\":\"msg_1\",\"content\":{\"type\":\"text\",\"text\":\"A streamed \"}}}}\n"
            "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"messageId\":\"msg_2\",\"content\":{\"type\":\"text\",\"text\":\"A streamed \"}}}}\n"
            "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"ses_r\",\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"messageId\":\"msg_2\",\"content\":{\"type\":\"text\",\"text\":\"answer\"}}}}\n"
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"stopReason\":\"end_turn\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    assert (aip_stream_end (s) == 0 && streq (aip_stream_test_answer (s), "A streamed answer"));
    assert (streq (json_string_value (json_object_get (aip_stream_usage (s), "model")), "big-model"));
    aip_stream_destroy (&s);

    //  ... an agent that cannot load sessions, a model it refuses, a turn
    //  that stops for another reason
    args.resume_id = "ses_abc";
    args.model = NULL;
    s = aip_stream_new (AIP_FORMAT_ACP, "opencode", &args);
    free (aip_stream_output (s, &len));
    reply = "{\"id\":1,\"result\":{\"agentCapabilities\":{}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    assert (!aip_stream_output (s, &len));
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_RESUME);
    assert (streq (err, "this agent cannot load session ses_abc"));
    aip_stream_destroy (&s);
    args.resume_id = NULL;
    args.model = "nope";
    s = aip_stream_new (AIP_FORMAT_ACP, "opencode", &args);
    reply = "{\"id\":1,\"result\":{}}\n{\"id\":2,\"result\":{\"sessionId\":\"ses_m\"}}\n"
            "{\"id\":4,\"error\":{\"code\":-32602,\"message\":\"unknown model\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_API);
    assert (streq (err, "cannot use model nope: unknown model"));
    aip_stream_destroy (&s);
    args.model = NULL;
    s = aip_stream_new (AIP_FORMAT_ACP, "opencode", &args);
    reply = "{\"id\":1,\"result\":{}}\n{\"id\":2,\"result\":{\"sessionId\":\"ses_m\"}}\n"
            "{\"id\":3,\"result\":{\"stopReason\":\"refusal\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_API);
    assert (streq (err, "the turn stopped: refusal"));
    aip_stream_destroy (&s);

    //  opencode run --format json: a step for tool calls is followed by
    //  another; usage is summed over the steps
    s = aip_stream_test_parse (AIP_FORMAT_OPENCODE_RUN,
        "{\"type\":\"step_start\",\"sessionID\":\"ses_1\",\"part\":{}}\n"
        "{\"type\":\"text\",\"sessionID\":\"ses_1\",\"part\":{\"type\":\"text\",\"text\":\"Reading.\"}}\n"
        "{\"type\":\"tool_use\",\"sessionID\":\"ses_1\",\"part\":{}}\n"
        "{\"type\":\"step_finish\",\"sessionID\":\"ses_1\",\"part\":{\"reason\":\"tool-calls\","
        "\"tokens\":{\"input\":3,\"output\":1,\"cache\":{\"read\":0,\"write\":0}}}}\n"
        "{\"type\":\"text\",\"sessionID\":\"ses_1\",\"part\":{\"type\":\"text\",\"text\":\"Yes.\"}}\n"
        "{\"type\":\"step_finish\",\"sessionID\":\"ses_1\",\"part\":{\"reason\":\"stop\",\"cost\":0.5,"
        "\"tokens\":{\"input\":9,\"output\":1,\"cache\":{\"read\":2,\"write\":0}}}}\n", 4, &rc);
    assert (rc == 0 && streq (aip_stream_test_answer (s), "Yes."));
    assert (streq (aip_stream_session_id (s), "ses_1"));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "input_tokens")) == 12);
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "output_tokens")) == 2);
    aip_stream_destroy (&s);
    s = aip_stream_test_parse (AIP_FORMAT_OPENCODE_RUN,
        "{\"type\":\"error\",\"error\":{\"name\":\"APIError\",\"data\":{\"message\":"
        "\"Unauthorized: bad key\"}}}\n", 1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_AUTH);
    assert (streq (err, "Unauthorized: bad key"));
    aip_stream_destroy (&s);
    s = aip_stream_test_parse (AIP_FORMAT_OPENCODE_RUN,
        "{\"type\":\"error\",\"error\":{\"name\":\"UnknownError\"}}\n", 1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_API);
    assert (streq (err, "UnknownError"));
    aip_stream_destroy (&s);
    if (verbose)
        printf ("(acp requests, replays, retries, errors, run steps) ");
    printf ("OK\n");
}
