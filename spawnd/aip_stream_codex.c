/*  aip_stream_codex.c — the codex adapters of aip_stream (see
    aip_stream_ops.h for what an adapter is):

      codex-app-server   codex app-server: JSON-RPC 2.0 on stdio, driven by
                         us (initialize, thread/start|resume, turn/start);
                         its approval requests are declined
      codex-json         codex exec --json: JSONL events, no text deltas
                         (the fallback where the app server cannot run) */
#include "aip_stream_ops.h"
#include <czmq.h>

//  codex counts the cached part inside the input; the usage object keeps
//  them apart (as Anthropic does)
static void
s_codex_usage (aip_stream_t *self, json_t *usage, bool camel, bool add)
{
    json_t *input = json_object_get (usage, camel ? "inputTokens" : "input_tokens");
    json_t *cached = json_object_get (usage, camel ? "cachedInputTokens" : "cached_input_tokens");
    json_t *uncached = NULL;
    if (json_is_integer (input) && json_is_integer (cached)
    &&  json_integer_value (cached) <= json_integer_value (input))
        uncached = json_integer (json_integer_value (input) - json_integer_value (cached));
    aip_stream_usage_int (self, "input_tokens", uncached ? uncached : input, add);
    json_decref (uncached);
    aip_stream_usage_int (self, "output_tokens",
                          json_object_get (usage, camel ? "outputTokens" : "output_tokens"), add);
    aip_stream_usage_int (self, "cache_read_tokens", cached, add);
    aip_stream_usage_int (self, "cache_write_tokens",
                          json_object_get (usage, camel ? "cacheWriteInputTokens"
                                                        : "cache_write_input_tokens"), add);
}

//  ---------------------------------------------------------------------
//  codex exec --json

static void
s_exec_event (aip_stream_t *self, void *state, json_t *ev)
{
    const char *type = aip_stream_str (ev, "type");
    if (!type) {
        self->skipped++;
        return;
    }
    if (streq (type, "thread.started"))
        aip_stream_session_set (self, aip_stream_str (ev, "thread_id"));
    else
    if (streq (type, "item.completed")) {
        json_t *item = json_object_get (ev, "item");
        const char *text = aip_stream_str (item, "text");
        if (aip_stream_is (item, "type", "agent_message") && text) {
            aip_stream_text_reset (self);
            aip_stream_text_add (self, text, strlen (text));
            aip_stream_buf_set (&self->answer, text);
        }
    }
    else
    if (streq (type, "turn.completed")) {
        self->done = true;
        s_codex_usage (self, json_object_get (ev, "usage"), false, false);
    }
    else
    if (streq (type, "turn.failed")) {
        self->done = true;
        const char *why = aip_stream_str (json_object_get (ev, "error"), "message");
        aip_stream_fail (self, aip_stream_classify (why, 0), "%s", why ? why : "the turn failed");
    }
    else
    if (!streq (type, "error"))         //  an error's message comes again in turn.failed
        self->skipped++;
}

const aip_stream_ops_t aip_stream_codex_exec_ops = {
    .name = "codex-json",
    .event = s_exec_event
};

//  ---------------------------------------------------------------------
//  codex app-server

typedef struct {
    char item [129];            //  the agent message the deltas belong to
    char turn [129];            //  our turn (a resumed thread reports old ones)
} s_server_t;

static void
s_server_start (aip_stream_t *self, void *state)
{
    aip_stream_request (self, AIP_RPC_INITIALIZE, "initialize",
                        json_pack ("{s:{s:s, s:s, s:s}}", "clientInfo", "name", "ai-peer", "title",
                                   "ai-peer", "version", "1"));
}

static void
s_server_thread (aip_stream_t *self)
{
    json_t *params = json_pack ("{s:s, s:s, s:s}", "cwd", self->cwd, "approvalPolicy", "never",
                                "sandbox", "read-only");
    if (self->model)
        json_object_set_new (params, "model", json_string (self->model));
    if (*self->resume_id) {
        json_object_set_new (params, "threadId", json_string (self->resume_id));
        json_object_set_new (params, "excludeTurns", json_true ());
        aip_stream_request (self, AIP_RPC_SESSION, "thread/resume", params);
    }
    else {
        json_object_set_new (params, "ephemeral", json_boolean (self->ephemeral));
        aip_stream_request (self, AIP_RPC_SESSION, "thread/start", params);
    }
}

static void
s_server_turn (aip_stream_t *self)
{
    json_t *input = json_pack ("[{s:s, s:s%}]", "type", "text", "text", self->prompt,
                               self->prompt_len);
    aip_stream_request (self, AIP_RPC_PROMPT, "turn/start",
                        json_pack ("{s:s, s:o}", "threadId", self->session_id, "input", input));
}

//  The kind of a codex error (codexErrorInfo is a string or a one-key object)
static aip_stream_err_t
s_server_error_kind (json_t *error)
{
    json_t *info = json_object_get (error, "codexErrorInfo");
    const char *name = json_is_string (info) ? json_string_value (info)
                     : json_is_object (info) ? json_object_iter_key (json_object_iter (info))
                     : NULL;
    int status = 0;
    if (json_is_object (info)) {
        json_t *inner = json_object_iter_value (json_object_iter (info));
        status = (int) json_integer_value (json_object_get (inner, "httpStatusCode"));
    }
    if (name && streq (name, "unauthorized"))
        return AIP_STREAM_ERR_AUTH;
    if (name && (streq (name, "usageLimitExceeded") || streq (name, "rateLimitExceeded")
              || streq (name, "serverOverloaded")))
        return AIP_STREAM_ERR_RATE;
    if (name && streq (name, "sessionBudgetExceeded"))
        return AIP_STREAM_ERR_BUDGET;
    return aip_stream_classify (aip_stream_str (error, "message"), status);
}

//  The server asks: approvals are declined (the tool is a guest: read-only,
//  no commands), anything else refused
static void
s_server_request (aip_stream_t *self, json_t *msg, const char *method)
{
    json_t *id = json_object_get (msg, "id");
    if (streq (method, "item/commandExecution/requestApproval")
    ||  streq (method, "item/fileChange/requestApproval"))
        aip_stream_reply (self, id, json_pack ("{s:s}", "decision", "decline"));
    else
    if (streq (method, "execCommandApproval") || streq (method, "applyPatchApproval"))
        aip_stream_reply (self, id, json_pack ("{s:s}", "decision", "denied"));
    else
        aip_stream_refuse (self, id, "ai-peer does not allow this");
}

//  A reply to one of our requests: each one leads to the next
static void
s_server_reply (aip_stream_t *self, s_server_t *server, json_t *msg, json_int_t n)
{
    json_t *result = json_object_get (msg, "result");
    if (json_object_get (msg, "error") || !result) {
        const char *why = aip_stream_rpc_error (msg);
        self->done = true;
        if (n == AIP_RPC_SESSION && *self->resume_id)
            aip_stream_fail (self, AIP_STREAM_ERR_RESUME, "cannot resume thread %s: %s",
                             self->resume_id, why);
        else
            aip_stream_fail (self, aip_stream_classify (why, 0), "%s", why);
        return;
    }
    if (n == AIP_RPC_INITIALIZE) {
        aip_stream_send (self, json_pack ("{s:s}", "method", "initialized"));
        s_server_thread (self);
    }
    else
    if (n == AIP_RPC_SESSION) {
        json_t *thread = json_object_get (result, "thread");
        aip_stream_session_set (self, aip_stream_str (thread, "id"));
        aip_stream_usage_model (self, aip_stream_str (result, "model"));
        if (!*self->session_id) {
            self->done = true;
            aip_stream_fail (self, AIP_STREAM_ERR_OUTPUT, "the app server gave no valid thread id");
            return;
        }
        s_server_turn (self);
    }
    else
    if (n == AIP_RPC_PROMPT) {
        const char *turn = aip_stream_str (json_object_get (result, "turn"), "id");
        if (turn)
            snprintf (server->turn, sizeof server->turn, "%s", turn);
    }
}

static void
s_server_event (aip_stream_t *self, void *state, json_t *msg)
{
    s_server_t *server = (s_server_t *) state;
    const char *method = aip_stream_str (msg, "method");
    json_t *id = json_object_get (msg, "id");
    if (method && id) {
        s_server_request (self, msg, method);
        return;
    }
    if (!method && json_is_integer (id)) {
        s_server_reply (self, server, msg, json_integer_value (id));
        return;
    }
    if (!method) {
        self->skipped++;
        return;
    }
    json_t *params = json_object_get (msg, "params");
    //  What belongs to another turn (a resumed thread's past) is not ours
    const char *turn = aip_stream_str (params, "turnId");
    if (!turn)
        turn = aip_stream_str (json_object_get (params, "turn"), "id");
    if (turn && (!*server->turn || !streq (turn, server->turn))
    &&  (streq (method, "thread/tokenUsage/updated") || streq (method, "turn/completed")
      || streq (method, "item/completed") || streq (method, "item/agentMessage/delta"))) {
        self->skipped++;
        return;
    }
    if (streq (method, "item/agentMessage/delta")) {
        const char *delta = aip_stream_str (params, "delta");
        const char *item = aip_stream_str (params, "itemId");
        if (item && !streq (item, server->item)) {
            //  A new agent message: the text so far was commentary
            snprintf (server->item, sizeof server->item, "%s", item);
            aip_stream_text_reset (self);
        }
        if (delta)
            aip_stream_text_add (self, delta, strlen (delta));
    }
    else
    if (streq (method, "item/completed")) {
        json_t *item = json_object_get (params, "item");
        const char *text = aip_stream_str (item, "text");
        if (aip_stream_is (item, "type", "agentMessage") && text) {
            aip_stream_buf_set (&self->answer, text);
            if (!self->text.len || !streq (self->text.data, text)) {
                aip_stream_text_reset (self);
                aip_stream_text_add (self, text, strlen (text));
            }
        }
    }
    else
    if (streq (method, "thread/tokenUsage/updated")) {
        //  "last" is one model response; a turn with tool calls has several
        json_t *usage = json_object_get (params, "tokenUsage");
        s_codex_usage (self, json_object_get (usage, "last"), true, true);
    }
    else
    if (streq (method, "error")) {
        json_t *error = json_object_get (params, "error");
        if (!json_is_true (json_object_get (params, "willRetry"))
        &&  aip_stream_str (error, "message"))
            aip_stream_fail (self, s_server_error_kind (error), "%s",
                             aip_stream_str (error, "message"));
    }
    else
    if (streq (method, "turn/completed")) {
        self->done = true;
        json_t *ended = json_object_get (params, "turn");
        aip_stream_usage_duration (self, json_object_get (ended, "durationMs"));
        const char *status = aip_stream_str (ended, "status");
        if (!status || !streq (status, "completed")) {
            json_t *error = json_object_get (ended, "error");
            const char *why = aip_stream_str (error, "message");
            aip_stream_fail (self, error ? s_server_error_kind (error) : AIP_STREAM_ERR_API,
                             "the turn %s%s%s", status ? status : "ended", why ? ": " : "",
                             why ? why : "");
        }
    }
    else
        self->skipped++;
}

//  A text delta in the shape the app server prints it, within our turn
//  and the agent message already begun: its text without a JSON tree
static bool
s_server_fast_line (aip_stream_t *self, void *state, const char *line, size_t len)
{
    s_server_t *server = (s_server_t *) state;
    aip_stream_span_t caps [6];
    if (aip_stream_shape (line, len, "{\"method\":\"item/agentMessage/delta\",\"params\":{"
                          "\"threadId\":%s,\"turnId\":%s,\"itemId\":%s,\"delta\":%s},"
                          "\"emittedAtMs\":%i}", caps, 6)
    &&  aip_stream_span_is (&caps [1], server->turn)
    &&  aip_stream_span_is (&caps [2], server->item))
        return aip_stream_span_text (self, &caps [3]);
    return false;
}

const aip_stream_ops_t aip_stream_codex_server_ops = {
    .name = "codex-app-server",
    .protocol = true,
    .state_size = sizeof (s_server_t),
    .start = s_server_start,
    .fast_line = s_server_fast_line,
    .event = s_server_event
};

//  ---------------------------------------------------------------------
//  Self-test

void
aip_stream_codex_test (bool verbose)
{
    printf (" * aip_stream_codex: ");
    //  The real CLI's recorded outputs (tests/fixtures/tools); exec's
    //  resumed turn counts the thread's history in its usage
    const char *one = "First answer: the sky is blue because of Rayleigh scattering.";
    const char *two = "Second answer: sunsets are red for the same reason.";
    aip_stream_fixture_t exec [] = {
        { AIP_FORMAT_CODEX_EXEC, "codex/exec-turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_CODEX_EXEC, "codex/exec-turn2-resume.jsonl", two, AIP_STREAM_OK, 1280, 59, 1800 },
        { AIP_FORMAT_CODEX_EXEC, "codex/exec-error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_CODEX_EXEC, "codex/exec-error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_CODEX_EXEC, "codex/exec-resume-unknown.jsonl", NULL, AIP_STREAM_ERR_OUTPUT, -1, -1, -1 },
    };
    aip_stream_test_fixtures (exec, sizeof exec / sizeof exec [0], NULL, NULL, verbose);
    aip_stream_fixture_t server [] = {
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-turn2-resume.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-resume-unknown.jsonl", NULL, AIP_STREAM_ERR_RESUME, -1, -1, -1 },
    };
    aip_stream_test_fixtures (server, sizeof server / sizeof server [0], "thread/resume", "threadId",
                              verbose);

    //  codex exec --json
    int rc;
    const char *err;
    aip_stream_t *s = aip_stream_test_parse (AIP_FORMAT_CODEX_EXEC,
        "{\"type\":\"thread.started\",\"thread_id\":\"0199-aa\"}\n{\"type\":\"turn.started\"}\n"
        "{\"type\":\"item.completed\",\"item\":{\"id\":\"i0\",\"type\":\"reasoning\",\"text\":\"hmm\"}}\n"
        "{\"type\":\"item.completed\",\"item\":{\"id\":\"i1\",\"type\":\"agent_message\",\"text\":\"Done.\"}}\n"
        "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":5,\"cached_input_tokens\":1,"
        "\"output_tokens\":2}}\n", 9, &rc);
    assert (rc == 0 && streq (aip_stream_test_answer (s), "Done."));
    assert (streq (aip_stream_session_id (s), "0199-aa"));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "input_tokens")) == 4);
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "output_tokens")) == 2);
    aip_stream_destroy (&s);
    //  ... a failed turn without its message
    s = aip_stream_test_parse (AIP_FORMAT_CODEX_EXEC,
        "{\"type\":\"error\",\"message\":\"boom\"}\n{\"type\":\"turn.failed\",\"error\":{}}\n",
        1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_API);
    assert (streq (err, "the turn failed"));
    aip_stream_destroy (&s);

    //  codex app-server: we drive it, refuse its approvals
    aip_stream_args_t args = { "the prompt", 10, "/tmp", "gpt-x", NULL, true };
    s = aip_stream_new (AIP_FORMAT_CODEX_SERVER, "codex", &args);
    size_t len;
    char *out = aip_stream_output (s, &len);
    assert (out && strstr (out, "\"method\":\"initialize\"") && out [len - 1] == '\n');
    free (out);
    assert (!aip_stream_output (s, &len));
    const char *reply = "{\"id\":1,\"result\":{\"userAgent\":\"codex\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "\"initialized\"") && strstr (out, "thread/start")
         && strstr (out, "\"ephemeral\":true") && strstr (out, "\"model\":\"gpt-x\""));
    free (out);
    reply = "{\"id\":2,\"result\":{\"thread\":{\"id\":\"0199-th\"},\"model\":\"gpt-x\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "turn/start") && strstr (out, "\"threadId\":\"0199-th\"")
         && strstr (out, "the prompt"));
    free (out);
    reply = "{\"id\":3,\"result\":{\"turn\":{\"id\":\"t\"}}}\n"
            "{\"method\":\"item/agentMessage/delta\",\"params\":{\"itemId\":\"m1\",\"delta\":\"Hi\"}}\n"
            "{\"id\":7,\"method\":\"item/commandExecution/requestApproval\",\"params\":{}}\n"
            "{\"id\":8,\"method\":\"applyPatchApproval\",\"params\":{}}\n"
            "{\"id\":9,\"method\":\"account/login\",\"params\":{}}\n"
            "{\"method\":\"item/agentMessage/delta\",\"params\":{\"threadId\":\"0199-th\",\"turnId\":\"t\",\"itemId\":\"m1\",\"delta\":\" you\"},\"emittedAtMs\":17}\n"
            "{\"method\":\"item/agentMessage/delta\",\"params\":{\"turnId\":\"old\",\"itemId\":\"m0\",\"delta\":\"OLD\"}}\n"
            "{\"method\":\"item/completed\",\"params\":{\"item\":{\"type\":\"agentMessage\",\"id\":\"m1\",\"text\":\"Hi you\"}}}\n"
            "{\"method\":\"thread/tokenUsage/updated\",\"params\":{\"tokenUsage\":{\"last\":{\"inputTokens\":30,"
            "\"cachedInputTokens\":4,\"outputTokens\":2},\"total\":{}}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    assert (streq (aip_stream_text (s, &len), "Hi you"));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "\"id\":7") && strstr (out, "decline"));
    assert (strstr (out, "\"id\":8") && strstr (out, "denied"));
    assert (strstr (out, "\"id\":9") && strstr (out, "-32601"));
    free (out);
    assert (!aip_stream_done (s));
    reply = "{\"method\":\"turn/completed\",\"params\":{\"turn\":{\"id\":\"t\",\"status\":\"completed\",\"items\":[]}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    assert (aip_stream_done (s) && aip_stream_end (s) == 0);
    assert (streq (aip_stream_test_answer (s), "Hi you") && streq (aip_stream_session_id (s), "0199-th"));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "input_tokens")) == 26);
    aip_stream_destroy (&s);
    //  ... a failed resume is its own kind (the caller starts afresh)
    args.resume_id = "0199-gone";
    s = aip_stream_new (AIP_FORMAT_CODEX_SERVER, "codex", &args);
    out = aip_stream_output (s, &len);
    free (out);
    reply = "{\"id\":1,\"result\":{}}\n{\"id\":2,\"error\":{\"code\":-32600,\"message\":\"no rollout found\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "thread/resume") && strstr (out, "0199-gone"));
    free (out);
    assert (aip_stream_done (s) && aip_stream_end (s) == -1);
    assert (aip_stream_error (s, &err) == AIP_STREAM_ERR_RESUME);
    assert (strstr (err, "cannot resume thread 0199-gone: no rollout found"));
    aip_stream_destroy (&s);
    //  ... an unauthorized error
    args.resume_id = NULL;
    s = aip_stream_new (AIP_FORMAT_CODEX_SERVER, "codex", &args);
    free (aip_stream_output (s, &len));
    reply = "{\"id\":1,\"result\":{}}\n{\"id\":2,\"result\":{\"thread\":{\"id\":\"t1\"}}}\n"
            "{\"method\":\"error\",\"params\":{\"error\":{\"message\":\"401 Unauthorized\","
            "\"codexErrorInfo\":\"unauthorized\"},\"willRetry\":false}}\n"
            "{\"method\":\"turn/completed\",\"params\":{\"turn\":{\"status\":\"failed\"}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_AUTH);
    aip_stream_destroy (&s);
    //  ... a thread without a valid id cannot take a turn
    s = aip_stream_new (AIP_FORMAT_CODEX_SERVER, "codex", &args);
    free (aip_stream_output (s, &len));
    reply = "{\"id\":1,\"result\":{}}\n{\"id\":2,\"result\":{\"thread\":{\"id\":\"a b\"}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_OUTPUT);
    assert (strstr (err, "no valid thread id"));
    aip_stream_destroy (&s);
    //  ... a turn failed on the usage limit
    s = aip_stream_new (AIP_FORMAT_CODEX_SERVER, "codex", &args);
    free (aip_stream_output (s, &len));
    reply = "{\"id\":1,\"result\":{}}\n{\"id\":2,\"result\":{\"thread\":{\"id\":\"t1\"}}}\n"
            "{\"method\":\"turn/completed\",\"params\":{\"turn\":{\"status\":\"failed\",\"error\":"
            "{\"message\":\"limit\",\"codexErrorInfo\":{\"usageLimitExceeded\":{}}}}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_RATE);
    assert (streq (err, "the turn failed: limit"));
    aip_stream_destroy (&s);
    if (verbose)
        printf ("(exec events, app server requests, replies, errors, fast path) ");
    printf ("OK\n");
}
