/*  aip_stream.c — structured output of the AI tools, parsed line by line
    (see aip_stream.h). */
#include "aip_stream.h"
#include <czmq.h>
#include "aip_home.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <ctype.h>
#include <math.h>

//  Usage numbers above these are absurd: dropped, not shown
#define STREAM_MAX_TOKENS   1000000000000LL
#define STREAM_MAX_COST     100000.0
#define STREAM_MAX_DURATION (7LL * 24 * 3600 * 1000)

//  JSON-RPC ids of our requests (protocol formats)
enum { RPC_INITIALIZE = 1, RPC_SESSION = 2, RPC_PROMPT = 3, RPC_MODEL = 4 };

//  A growing byte buffer with a cap (past it, bytes are counted, not kept)
typedef struct {
    char *data;                 //  NUL-terminated, or NULL
    size_t len;                 //  bytes kept
    size_t cap;                 //  allocated
    size_t max;                 //  keep at most this
    bool cut;                   //  bytes were dropped
} s_buf_t;

struct _aip_stream_t {
    aip_format_t format;        //  what the tool prints
    char *tool;                 //  its name, for messages
    s_buf_t line;               //  the line being read
    bool line_too_long;         //  ... is past the limit: skip to its end
    size_t lines;               //  lines seen
    size_t skipped;             //  lines not JSON or unknown
    s_buf_t text;               //  answer text so far (deltas)
    s_buf_t answer;             //  final answer
    bool have_answer;           //  the final answer was given whole
    uint64_t changes;           //  text changed this many times
    char current_item [129];    //  codex: the agent message the deltas belong to;
                                //  acp: the messageId of the chunks so far
    char current_turn [129];    //  codex: our turn (a resumed thread reports old ones)
    json_t *usage;              //  the usage object
    char session_id [129];      //  validated, or ""
    bool done;                  //  final event seen
    bool broken;                //  the stream cannot be read further
    aip_stream_err_t err;       //  error kind
    char errmsg [1024];         //  error message
    s_buf_t out;                //  requests to write (protocol formats)
    char *prompt;               //  protocol formats: the turn's text
    size_t prompt_len;
    char *cwd;                  //  ... working directory
    char *model;                //  ... model or NULL
    char resume_id [129];       //  ... session to resume or ""
    bool ephemeral;             //  ... keep nothing on disk
    bool prompt_sent;           //  ... the turn started (updates before are replays)
    int64_t started;            //  monotonic ms (duration when the tool says none)
};

//  ---------------------------------------------------------------------
//  Buffers

static void
s_buf_init (s_buf_t *b, size_t max)
{
    memset (b, 0, sizeof *b);
    b->max = max;
}

static void
s_buf_free (s_buf_t *b)
{
    free (b->data);
    memset (b, 0, sizeof *b);
}

static void
s_buf_reset (s_buf_t *b)
{
    b->len = 0;
    b->cut = false;
    if (b->data)
        b->data [0] = 0;
}

//  Append; false when the cap cut it
static bool
s_buf_add (s_buf_t *b, const char *data, size_t len)
{
    size_t keep = len;
    if (b->len + keep > b->max) {
        keep = b->max - b->len;
        b->cut = true;
    }
    if (b->len + keep + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + keep + 1)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        b->data = (char *) realloc (b->data, cap);
        assert (b->data);
        b->cap = cap;
    }
    if (keep)
        memcpy (b->data + b->len, data, keep);
    b->len += keep;
    b->data [b->len] = 0;
    return keep == len;
}

static void
s_buf_set (s_buf_t *b, const char *s)
{
    s_buf_reset (b);
    s_buf_add (b, s, strlen (s));
}

//  ---------------------------------------------------------------------
//  Names and ids

static const char *s_format_names [] = {
    "text", "claude-stream-json", "gemini-stream-json", "codex-app-server", "codex-json",
    "opencode-acp", "opencode-json"
};

int
aip_format_from_name (const char *name)
{
    for (size_t i = 0; i < sizeof s_format_names / sizeof s_format_names [0]; i++)
        if (streq (name, s_format_names [i]))
            return (int) i;
    return -1;
}

const char *
aip_format_name (aip_format_t format)
{
    return (size_t) format < sizeof s_format_names / sizeof s_format_names [0]
         ? s_format_names [format] : "?";
}

bool
aip_format_is_protocol (aip_format_t format)
{
    return format == AIP_FORMAT_CODEX_SERVER || format == AIP_FORMAT_ACP;
}

bool
aip_session_id_valid (const char *id)
{
    size_t n = id ? strlen (id) : 0;
    if (n < 1 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) id [i];
        if (!(isalnum (c) || c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

//  ---------------------------------------------------------------------
//  Results

static void
s_fail (aip_stream_t *self, aip_stream_err_t kind, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_fail (aip_stream_t *self, aip_stream_err_t kind, const char *fmt, ...)
{
    //  The first error is the cause; later ones are its consequences
    if (self->err != AIP_STREAM_OK)
        return;
    self->err = kind;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (self->errmsg, sizeof self->errmsg, fmt, ap);
    va_end (ap);
    //  Cut on a character boundary
    size_t n = strlen (self->errmsg);
    while (n && !aip_utf8_valid (self->errmsg, n))
        self->errmsg [--n] = 0;
}

//  Sort an error text into a kind (the tools say it in words)
static aip_stream_err_t
s_classify (const char *text, int http_status)
{
    if (http_status == 401 || http_status == 403)
        return AIP_STREAM_ERR_AUTH;
    if (http_status == 429 || http_status == 529)
        return AIP_STREAM_ERR_RATE;
    char lower [512];
    size_t i;
    for (i = 0; text && text [i] && i < sizeof lower - 1; i++)
        lower [i] = (char) tolower ((unsigned char) text [i]);
    lower [i] = 0;
    const char *auth [] = { "not logged in", "/login", "invalid api key", "unauthorized",
                            "authenticat", "api key", "api_key", "credentials", "401", NULL };
    const char *rate [] = { "rate limit", "rate_limit", "ratelimit", "429", "quota",
                            "overloaded", "usage limit", "too many requests", NULL };
    for (const char **s = auth; *s; s++)
        if (strstr (lower, *s))
            return AIP_STREAM_ERR_AUTH;
    for (const char **s = rate; *s; s++)
        if (strstr (lower, *s))
            return AIP_STREAM_ERR_RATE;
    return AIP_STREAM_ERR_API;
}

static void
s_text_add (aip_stream_t *self, const char *text, size_t len)
{
    if (!len)
        return;
    s_buf_add (&self->text, text, len);
    self->changes++;
}

static void
s_text_reset (aip_stream_t *self)
{
    if (self->text.len) {
        s_buf_reset (&self->text);
        self->changes++;
    }
}

//  acp: a chunk of another message (opencode retrying a cut-off stream
//  sends the answer again under a new messageId) starts the text anew
static void
s_acp_message (aip_stream_t *self, const char *id, size_t len)
{
    if (!id || !len)
        return;
    if (strlen (self->current_item) == len && memcmp (self->current_item, id, len) == 0)
        return;
    if (*self->current_item)
        s_text_reset (self);
    if (len >= sizeof self->current_item)
        len = sizeof self->current_item - 1;
    memcpy (self->current_item, id, len);
    self->current_item [len] = 0;
}

static void
s_answer_set (aip_stream_t *self, const char *text)
{
    s_buf_set (&self->answer, text);
    self->have_answer = true;
}

static void
s_session_set (aip_stream_t *self, const char *id)
{
    //  A bad id is never kept: no resume, rather than a bad argv
    if (id && aip_session_id_valid (id))
        snprintf (self->session_id, sizeof self->session_id, "%s", id);
}

//  One usage number, if it is one and not absurd
static void
s_usage_int (aip_stream_t *self, const char *key, json_t *value, bool add)
{
    if (!json_is_integer (value))
        return;
    json_int_t v = json_integer_value (value);
    if (v < 0 || v > STREAM_MAX_TOKENS)
        return;
    if (add) {
        json_int_t was = json_integer_value (json_object_get (self->usage, key));
        if (was + v > STREAM_MAX_TOKENS)
            return;
        v += was;
    }
    json_object_set_new (self->usage, key, json_integer (v));
}

static void
s_usage_cost (aip_stream_t *self, json_t *value)
{
    if (!json_is_number (value))
        return;
    double cost = json_number_value (value);
    if (isfinite (cost) && cost >= 0 && cost <= STREAM_MAX_COST)
        json_object_set_new (self->usage, "cost_usd", json_real (cost));
}

static void
s_usage_model (aip_stream_t *self, const char *model)
{
    if (!model || !*model || strlen (model) > 128)
        return;
    for (const char *p = model; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return;
    if (!aip_utf8_valid (model, strlen (model)))
        return;
    json_object_set_new (self->usage, "model", json_string (model));
}

static void
s_usage_duration (aip_stream_t *self, json_t *value)
{
    if (json_is_integer (value) && json_integer_value (value) >= 0
    &&  json_integer_value (value) <= STREAM_MAX_DURATION)
        json_object_set_new (self->usage, "duration_ms", json_integer (json_integer_value (value)));
}

static const char *
s_str (json_t *o, const char *key)
{
    return json_string_value (json_object_get (o, key));
}

static bool
s_is (json_t *o, const char *key, const char *value)
{
    const char *s = s_str (o, key);
    return s && streq (s, value);
}

//  ---------------------------------------------------------------------
//  Protocol output

static void
s_send (aip_stream_t *self, json_t *msg)
{
    json_object_set_new (msg, "jsonrpc", json_string ("2.0"));
    char *line = json_dumps (msg, JSON_COMPACT);
    json_decref (msg);
    if (!line)
        return;
    s_buf_add (&self->out, line, strlen (line));
    s_buf_add (&self->out, "\n", 1);
    free (line);
}

static void
s_request (aip_stream_t *self, int id, const char *method, json_t *params)
{
    s_send (self, json_pack ("{s:i, s:s, s:o}", "id", id, "method", method, "params", params));
}

//  Answer a request of the tool with a JSON-RPC error (we allow nothing)
static void
s_refuse (aip_stream_t *self, json_t *id, const char *why)
{
    s_send (self, json_pack ("{s:O, s:{s:i, s:s}}", "id", id, "error", "code", -32601,
                             "message", why));
}

static void
s_reply (aip_stream_t *self, json_t *id, json_t *result)
{
    s_send (self, json_pack ("{s:O, s:o}", "id", id, "result", result));
}

//  The text of a JSON-RPC error reply
static const char *
s_rpc_error (json_t *msg)
{
    json_t *error = json_object_get (msg, "error");
    const char *text = s_str (error, "message");
    return text ? text : "unknown error";
}

//  ---------------------------------------------------------------------
//  claude -p --output-format stream-json --verbose --include-partial-messages

static void
s_claude_event (aip_stream_t *self, json_t *ev)
{
    const char *type = s_str (ev, "type");
    if (!type) {
        self->skipped++;
        return;
    }
    if (streq (type, "system")) {
        if (s_is (ev, "subtype", "init")) {
            s_session_set (self, s_str (ev, "session_id"));
            s_usage_model (self, s_str (ev, "model"));
        }
    }
    else
    if (streq (type, "stream_event")) {
        json_t *event = json_object_get (ev, "event");
        if (s_is (event, "type", "message_start"))
            s_text_reset (self);       //  a new assistant message: its text is the answer
        else
        if (s_is (event, "type", "content_block_delta")) {
            json_t *delta = json_object_get (event, "delta");
            const char *text = s_is (delta, "type", "text_delta") ? s_str (delta, "text") : NULL;
            if (text)
                s_text_add (self, text, strlen (text));
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
            const char *text = s_is (block, "type", "text") ? s_str (block, "text") : NULL;
            if (text) {
                if (!any)
                    s_buf_reset (&self->answer);
                s_buf_add (&self->answer, text, strlen (text));
                any = true;
            }
        }
    }
    else
    if (streq (type, "result")) {
        self->done = true;
        s_session_set (self, s_str (ev, "session_id"));
        json_t *usage = json_object_get (ev, "usage");
        s_usage_int (self, "input_tokens", json_object_get (usage, "input_tokens"), false);
        s_usage_int (self, "output_tokens", json_object_get (usage, "output_tokens"), false);
        s_usage_int (self, "cache_read_tokens",
                     json_object_get (usage, "cache_read_input_tokens"), false);
        s_usage_int (self, "cache_write_tokens",
                     json_object_get (usage, "cache_creation_input_tokens"), false);
        s_usage_cost (self, json_object_get (ev, "total_cost_usd"));
        s_usage_duration (self, json_object_get (ev, "duration_ms"));
        //  modelUsage names the model(s) used
        json_t *models = json_object_get (ev, "modelUsage");
        if (json_is_object (models) && json_object_size (models) >= 1
        &&  !json_object_get (self->usage, "model"))
            s_usage_model (self, json_object_iter_key (json_object_iter (models)));
        const char *result = s_str (ev, "result");
        const char *subtype = s_str (ev, "subtype");
        bool is_error = json_is_true (json_object_get (ev, "is_error"))
                     || (subtype && strncmp (subtype, "error", 5) == 0);
        if (is_error) {
            json_t *status = json_object_get (ev, "api_error_status");
            const char *why = result && *result ? result
                            : subtype ? subtype : "the run failed";
            if (subtype && streq (subtype, "error_max_budget_usd"))
                s_fail (self, AIP_STREAM_ERR_BUDGET, "stopped at its cost budget (--max-cost)");
            else
                s_fail (self, s_classify (why, (int) json_integer_value (status)), "%s", why);
        }
        else
        if (result)
            s_answer_set (self, result);
        else
            self->have_answer = self->answer.len > 0;
    }
    else
        self->skipped++;        //  user (tool results), rate_limit_event, ...: not ours
}

//  ---------------------------------------------------------------------
//  gemini -p "" --output-format stream-json

static void
s_gemini_event (aip_stream_t *self, json_t *ev)
{
    const char *type = s_str (ev, "type");
    if (!type) {
        self->skipped++;
        return;
    }
    if (streq (type, "init")) {
        s_session_set (self, s_str (ev, "session_id"));
        s_usage_model (self, s_str (ev, "model"));
    }
    else
    if (streq (type, "message")) {
        const char *content = s_str (ev, "content");
        if (s_is (ev, "role", "assistant") && content) {
            if (!json_is_true (json_object_get (ev, "delta")))
                s_text_reset (self);    //  a whole message replaces the deltas
            s_text_add (self, content, strlen (content));
        }
    }
    else
    if (streq (type, "tool_use") || streq (type, "tool_result"))
        s_text_reset (self);            //  what came before a tool call was chatter
    else
    if (streq (type, "error")) {
        //  Warnings go on; an error is the cause if the result fails
        if (!s_is (ev, "severity", "warning") && s_str (ev, "message"))
            snprintf (self->errmsg, sizeof self->errmsg, "%s", s_str (ev, "message"));
    }
    else
    if (streq (type, "result")) {
        self->done = true;
        json_t *stats = json_object_get (ev, "stats");
        //  "input" is the uncached part ("input_tokens" includes the cache)
        json_t *input = json_object_get (stats, "input");
        if (!input)
            input = json_object_get (stats, "input_tokens");
        s_usage_int (self, "input_tokens", input, false);
        s_usage_int (self, "output_tokens", json_object_get (stats, "output_tokens"), false);
        s_usage_int (self, "cache_read_tokens", json_object_get (stats, "cached"), false);
        s_usage_duration (self, json_object_get (stats, "duration_ms"));
        json_t *models = json_object_get (stats, "models");
        if (json_is_object (models) && json_object_size (models) >= 1
        &&  !json_object_get (self->usage, "model"))
            s_usage_model (self, json_object_iter_key (json_object_iter (models)));
        if (!s_is (ev, "status", "success")) {
            json_t *error = json_object_get (ev, "error");
            const char *why = s_str (error, "message");
            if (!why)
                why = *self->errmsg ? self->errmsg : "the run failed";
            char copy [1024];
            snprintf (copy, sizeof copy, "%s", why);
            self->errmsg [0] = 0;
            s_fail (self, s_classify (copy, 0), "%s", copy);
        }
        else {
            self->errmsg [0] = 0;
            s_answer_set (self, self->text.data ? self->text.data : "");
        }
    }
    else
        self->skipped++;
}

//  ---------------------------------------------------------------------
//  codex exec --json (fallback where the app server cannot run)

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
    s_usage_int (self, "input_tokens", uncached ? uncached : input, add);
    json_decref (uncached);
    s_usage_int (self, "output_tokens",
                 json_object_get (usage, camel ? "outputTokens" : "output_tokens"), add);
    s_usage_int (self, "cache_read_tokens", cached, add);
    s_usage_int (self, "cache_write_tokens",
                 json_object_get (usage, camel ? "cacheWriteInputTokens" : "cache_write_input_tokens"),
                 add);
}

static void
s_codex_exec_event (aip_stream_t *self, json_t *ev)
{
    const char *type = s_str (ev, "type");
    if (!type) {
        self->skipped++;
        return;
    }
    if (streq (type, "thread.started"))
        s_session_set (self, s_str (ev, "thread_id"));
    else
    if (streq (type, "item.completed")) {
        json_t *item = json_object_get (ev, "item");
        const char *text = s_str (item, "text");
        if (s_is (item, "type", "agent_message") && text) {
            s_text_reset (self);
            s_text_add (self, text, strlen (text));
            s_buf_set (&self->answer, text);
        }
    }
    else
    if (streq (type, "turn.completed")) {
        self->done = true;
        s_codex_usage (self, json_object_get (ev, "usage"), false, false);
        self->have_answer = self->answer.len > 0;
    }
    else
    if (streq (type, "turn.failed")) {
        self->done = true;
        const char *why = s_str (json_object_get (ev, "error"), "message");
        s_fail (self, s_classify (why, 0), "%s", why ? why : "the turn failed");
    }
    else
    if (streq (type, "error")) {
        const char *why = s_str (ev, "message");
        if (why)
            snprintf (self->errmsg, sizeof self->errmsg, "%s", why);
    }
    else
        self->skipped++;
}

//  ---------------------------------------------------------------------
//  codex app-server: JSON-RPC on stdio, driven by us

static void
s_codex_thread (aip_stream_t *self)
{
    json_t *params = json_pack ("{s:s, s:s, s:s}", "cwd", self->cwd, "approvalPolicy", "never",
                                "sandbox", "read-only");
    if (self->model)
        json_object_set_new (params, "model", json_string (self->model));
    if (*self->resume_id) {
        json_object_set_new (params, "threadId", json_string (self->resume_id));
        json_object_set_new (params, "excludeTurns", json_true ());
        s_request (self, RPC_SESSION, "thread/resume", params);
    }
    else {
        json_object_set_new (params, "ephemeral", json_boolean (self->ephemeral));
        s_request (self, RPC_SESSION, "thread/start", params);
    }
}

static void
s_codex_turn (aip_stream_t *self)
{
    json_t *input = json_pack ("[{s:s, s:s%}]", "type", "text", "text", self->prompt,
                               self->prompt_len);
    s_request (self, RPC_PROMPT, "turn/start",
               json_pack ("{s:s, s:o}", "threadId", self->session_id, "input", input));
    self->prompt_sent = true;
}

//  The kind of a codex error (codexErrorInfo is a string or a one-key object)
static aip_stream_err_t
s_codex_error_kind (json_t *error)
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
    return s_classify (s_str (error, "message"), status);
}

static void
s_codex_server_request (aip_stream_t *self, json_t *msg, const char *method)
{
    json_t *id = json_object_get (msg, "id");
    //  Approvals are declined (the tool is a guest: read-only, no commands)
    if (streq (method, "item/commandExecution/requestApproval")
    ||  streq (method, "item/fileChange/requestApproval"))
        s_reply (self, id, json_pack ("{s:s}", "decision", "decline"));
    else
    if (streq (method, "execCommandApproval") || streq (method, "applyPatchApproval"))
        s_reply (self, id, json_pack ("{s:s}", "decision", "denied"));
    else
        s_refuse (self, id, "ai-peer does not allow this");
}

static void
s_codex_server_event (aip_stream_t *self, json_t *msg)
{
    const char *method = s_str (msg, "method");
    json_t *id = json_object_get (msg, "id");
    if (method && id) {
        s_codex_server_request (self, msg, method);
        return;
    }
    if (!method && json_is_integer (id)) {
        //  A reply to one of ours
        json_int_t n = json_integer_value (id);
        json_t *result = json_object_get (msg, "result");
        if (json_object_get (msg, "error") || !result) {
            const char *why = s_rpc_error (msg);
            self->done = true;
            if (n == RPC_SESSION && *self->resume_id)
                s_fail (self, AIP_STREAM_ERR_RESUME, "cannot resume thread %s: %s",
                        self->resume_id, why);
            else
                s_fail (self, s_classify (why, 0), "%s", why);
            return;
        }
        if (n == RPC_INITIALIZE) {
            s_send (self, json_pack ("{s:s}", "method", "initialized"));
            s_codex_thread (self);
        }
        else
        if (n == RPC_SESSION) {
            json_t *thread = json_object_get (result, "thread");
            s_session_set (self, s_str (thread, "id"));
            s_usage_model (self, s_str (result, "model"));
            if (!*self->session_id) {
                self->done = true;
                s_fail (self, AIP_STREAM_ERR_OUTPUT, "the app server gave no valid thread id");
                return;
            }
            s_codex_turn (self);
        }
        else
        if (n == RPC_PROMPT) {
            const char *turn = s_str (json_object_get (result, "turn"), "id");
            if (turn)
                snprintf (self->current_turn, sizeof self->current_turn, "%s", turn);
        }
        return;
    }
    if (!method) {
        self->skipped++;
        return;
    }
    json_t *params = json_object_get (msg, "params");
    //  What belongs to another turn (a resumed thread's past) is not ours
    const char *turn = s_str (params, "turnId");
    if (!turn)
        turn = s_str (json_object_get (params, "turn"), "id");
    if (turn && (!*self->current_turn || !streq (turn, self->current_turn))
    &&  (streq (method, "thread/tokenUsage/updated") || streq (method, "turn/completed")
      || streq (method, "item/completed") || streq (method, "item/agentMessage/delta"))) {
        self->skipped++;
        return;
    }
    if (streq (method, "item/agentMessage/delta")) {
        const char *delta = s_str (params, "delta");
        const char *item = s_str (params, "itemId");
        if (item && !streq (item, self->current_item)) {
            //  A new agent message: the text so far was commentary
            snprintf (self->current_item, sizeof self->current_item, "%s", item);
            s_text_reset (self);
        }
        if (delta)
            s_text_add (self, delta, strlen (delta));
    }
    else
    if (streq (method, "item/completed")) {
        json_t *item = json_object_get (params, "item");
        const char *text = s_str (item, "text");
        if (s_is (item, "type", "agentMessage") && text) {
            s_buf_set (&self->answer, text);
            if (!self->text.len || !streq (self->text.data, text)) {
                s_text_reset (self);
                s_text_add (self, text, strlen (text));
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
        if (!json_is_true (json_object_get (params, "willRetry")) && s_str (error, "message"))
            s_fail (self, s_codex_error_kind (error), "%s", s_str (error, "message"));
    }
    else
    if (streq (method, "turn/completed")) {
        self->done = true;
        json_t *turn = json_object_get (params, "turn");
        s_usage_duration (self, json_object_get (turn, "durationMs"));
        const char *status = s_str (turn, "status");
        if (status && streq (status, "completed"))
            self->have_answer = self->answer.len > 0 || self->err != AIP_STREAM_OK;
        else {
            json_t *error = json_object_get (turn, "error");
            const char *why = s_str (error, "message");
            s_fail (self, error ? s_codex_error_kind (error) : AIP_STREAM_ERR_API,
                    "the turn %s%s%s", status ? status : "ended", why ? ": " : "",
                    why ? why : "");
        }
    }
    else
        self->skipped++;
}

//  ---------------------------------------------------------------------
//  opencode acp: the Agent Client Protocol, driven by us

static void
s_acp_session (aip_stream_t *self, json_t *capabilities)
{
    bool can_load = json_is_true (json_object_get (capabilities, "loadSession"));
    if (*self->resume_id && !can_load) {
        self->done = true;
        s_fail (self, AIP_STREAM_ERR_RESUME, "this agent cannot load session %s",
                self->resume_id);
        return;
    }
    json_t *params = json_pack ("{s:s, s:[]}", "cwd", self->cwd, "mcpServers");
    if (*self->resume_id) {
        json_object_set_new (params, "sessionId", json_string (self->resume_id));
        s_request (self, RPC_SESSION, "session/load", params);
    }
    else
        s_request (self, RPC_SESSION, "session/new", params);
}

static void
s_acp_prompt (aip_stream_t *self)
{
    json_t *prompt = json_pack ("[{s:s, s:s%}]", "type", "text", "text", self->prompt,
                                self->prompt_len);
    s_request (self, RPC_PROMPT, "session/prompt",
               json_pack ("{s:s, s:o}", "sessionId", self->session_id, "prompt", prompt));
    self->prompt_sent = true;
    s_text_reset (self);
}

static void
s_acp_usage (aip_stream_t *self, json_t *usage)
{
    s_usage_int (self, "input_tokens", json_object_get (usage, "inputTokens"), false);
    s_usage_int (self, "output_tokens", json_object_get (usage, "outputTokens"), false);
    s_usage_int (self, "cache_read_tokens", json_object_get (usage, "cachedReadTokens"), false);
    s_usage_int (self, "cache_write_tokens", json_object_get (usage, "cachedWriteTokens"), false);
}

static void
s_acp_event (aip_stream_t *self, json_t *msg)
{
    const char *method = s_str (msg, "method");
    json_t *id = json_object_get (msg, "id");
    json_t *params = json_object_get (msg, "params");
    if (method && id) {
        //  The agent asks: permissions are cancelled, files and terminals refused
        if (streq (method, "session/request_permission"))
            s_reply (self, id, json_pack ("{s:{s:s}}", "outcome", "outcome", "cancelled"));
        else
            s_refuse (self, id, "ai-peer does not allow this");
        return;
    }
    if (!method && json_is_integer (id)) {
        json_int_t n = json_integer_value (id);
        json_t *result = json_object_get (msg, "result");
        if (json_object_get (msg, "error")) {
            const char *why = s_rpc_error (msg);
            self->done = true;
            if (n == RPC_SESSION && *self->resume_id)
                s_fail (self, AIP_STREAM_ERR_RESUME, "cannot load session %s: %s",
                        self->resume_id, why);
            else
            if (n == RPC_MODEL)
                s_fail (self, AIP_STREAM_ERR_API, "cannot use model %s: %s", self->model, why);
            else
                s_fail (self, s_classify (why, 0), "%s", why);
            return;
        }
        if (n == RPC_INITIALIZE)
            s_acp_session (self, json_object_get (result, "agentCapabilities"));
        else
        if (n == RPC_SESSION) {
            if (*self->resume_id)
                snprintf (self->session_id, sizeof self->session_id, "%s", self->resume_id);
            else
                s_session_set (self, s_str (result, "sessionId"));
            json_t *models = json_object_get (result, "models");
            s_usage_model (self, s_str (models, "currentModelId"));
            json_t *option;
            size_t i;
            json_array_foreach (json_object_get (result, "configOptions"), i, option)
                if (s_is (option, "id", "model"))
                    s_usage_model (self, s_str (option, "currentValue"));
            if (!*self->session_id) {
                self->done = true;
                s_fail (self, AIP_STREAM_ERR_OUTPUT, "the agent gave no valid session id");
                return;
            }
            if (self->model)
                s_request (self, RPC_MODEL, "session/set_model",
                           json_pack ("{s:s, s:s}", "sessionId", self->session_id, "modelId",
                                      self->model));
            else
                s_acp_prompt (self);
        }
        else
        if (n == RPC_MODEL) {
            s_usage_model (self, self->model);
            s_acp_prompt (self);
        }
        else
        if (n == RPC_PROMPT) {
            self->done = true;
            s_acp_usage (self, json_object_get (result, "usage"));
            const char *stop = s_str (result, "stopReason");
            if (stop && (streq (stop, "end_turn") || streq (stop, "max_tokens")))
                s_answer_set (self, self->text.data ? self->text.data : "");
            else
                s_fail (self, AIP_STREAM_ERR_API, "the turn stopped: %s",
                        stop ? stop : "no reason given");
        }
        return;
    }
    if (method && streq (method, "session/update") && self->prompt_sent) {
        //  Updates before our prompt replay a loaded session: not this answer
        json_t *update = json_object_get (params, "update");
        const char *kind = s_str (update, "sessionUpdate");
        json_t *content = json_object_get (update, "content");
        if (kind && streq (kind, "agent_message_chunk") && s_is (content, "type", "text")) {
            const char *text = s_str (content, "text");
            const char *message_id = s_str (update, "messageId");
            s_acp_message (self, message_id, message_id ? strlen (message_id) : 0);
            if (text)
                s_text_add (self, text, strlen (text));
        }
        else
        if (kind && streq (kind, "tool_call"))
            s_text_reset (self);
        else
        if (kind && streq (kind, "usage_update"))
            s_usage_cost (self, json_object_get (json_object_get (update, "cost"), "amount"));
        return;
    }
    self->skipped++;
}

//  ---------------------------------------------------------------------
//  opencode run --format json (fallback where acp cannot run)

static void
s_opencode_run_event (aip_stream_t *self, json_t *ev)
{
    const char *type = s_str (ev, "type");
    json_t *part = json_object_get (ev, "part");
    if (!type) {
        self->skipped++;
        return;
    }
    s_session_set (self, s_str (ev, "sessionID"));
    if (streq (type, "text")) {
        const char *text = s_str (part, "text");
        if (text) {
            s_text_reset (self);
            s_text_add (self, text, strlen (text));
            s_buf_set (&self->answer, text);
        }
    }
    else
    if (streq (type, "step_finish")) {
        json_t *tokens = json_object_get (part, "tokens");
        s_usage_int (self, "input_tokens", json_object_get (tokens, "input"), true);
        s_usage_int (self, "output_tokens", json_object_get (tokens, "output"), true);
        json_t *cache = json_object_get (tokens, "cache");
        s_usage_int (self, "cache_read_tokens", json_object_get (cache, "read"), true);
        s_usage_int (self, "cache_write_tokens", json_object_get (cache, "write"), true);
        s_usage_cost (self, json_object_get (part, "cost"));
        //  A step that ends for tool calls is followed by another
        if (!s_is (part, "reason", "tool-calls")) {
            self->done = true;
            self->have_answer = self->answer.len > 0;
        }
    }
    else
    if (streq (type, "error")) {
        json_t *error = json_object_get (ev, "error");
        const char *why = s_str (json_object_get (error, "data"), "message");
        if (!why)
            why = s_str (error, "name");
        self->done = true;
        s_fail (self, s_classify (why, 0), "%s", why ? why : "the run failed");
    }
    else
    if (!streq (type, "step_start") && !streq (type, "tool_use"))
        self->skipped++;
}

//  ---------------------------------------------------------------------
//  Fast path for text deltas
//
//  Most lines of a long answer are text deltas, and building a jansson tree
//  for each costs about 14 ms of CPU per MB. A delta line in the exact
//  shape its tool prints (every byte outside its string values fixed) is
//  matched against that shape instead; its text is taken as is when the
//  string has no escapes (then its bytes are the text: valid UTF-8, no
//  control characters), else decoded by jansson. A line of any other shape
//  goes the general way (a full parse), so the result is the same.

typedef struct {
    const char *at;             //  a JSON string literal, quotes included
    size_t len;
} s_span_t;

//  Does the line have exactly this shape? "%s" is a JSON string literal
//  (captured), "%i" digits; everything else is literal bytes
static bool
s_shape (const char *line, size_t len, const char *shape, s_span_t *caps, int max)
{
    size_t i = 0;
    int n = 0;
    for (const char *p = shape; *p; p++) {
        if (p [0] == '%' && p [1] == 's') {
            if (i >= len || line [i] != '"' || n >= max)
                return false;
            size_t start = i++;
            while (i < len && line [i] != '"')
                i += line [i] == '\\' ? 2 : 1;
            if (i >= len)
                return false;
            i++;
            caps [n].at = line + start;
            caps [n].len = i - start;
            n++;
            p++;
        }
        else
        if (p [0] == '%' && p [1] == 'i') {
            size_t start = i;
            while (i < len && isdigit ((unsigned char) line [i]))
                i++;
            if (i == start)
                return false;
            p++;
        }
        else
        if (i >= len || line [i++] != *p)
            return false;
    }
    return i == len;
}

//  The text of a captured string (false if it is not a valid JSON string)
static bool
s_span_text (aip_stream_t *self, const s_span_t *span)
{
    const char *text = span->at + 1;
    size_t len = span->len - 2;
    bool plain = true;
    for (size_t i = 0; i < len && plain; i++)
        plain = (unsigned char) text [i] >= 0x20 && text [i] != '\\';
    if (plain && aip_utf8_valid (text, len)) {
        s_text_add (self, text, len);
        return true;
    }
    json_t *value = json_loadb (span->at, span->len, JSON_DECODE_ANY, NULL);
    bool ok = json_is_string (value);
    if (ok)
        s_text_add (self, json_string_value (value), json_string_length (value));
    json_decref (value);
    return ok;
}

//  Is the captured string (no escapes) this value?
static bool
s_span_is (const s_span_t *span, const char *value)
{
    size_t n = strlen (value);
    return span->len == n + 2 && memcmp (span->at + 1, value, n) == 0 && n;
}

//  A delta line handled the fast way; false: read it the general way
static bool
s_fast_delta (aip_stream_t *self, const char *line, size_t len)
{
    s_span_t caps [6];
    if (self->format == AIP_FORMAT_CLAUDE) {
        if (s_shape (line, len, "{\"type\":\"stream_event\",\"event\":{\"type\":"
                     "\"content_block_delta\",\"index\":%i,\"delta\":{\"type\":\"text_delta\","
                     "\"text\":%s}},\"session_id\":%s,\"parent_tool_use_id\":null,\"uuid\":%s,"
                     "\"api_message_id\":%s}", caps, 6)
        ||  s_shape (line, len, "{\"type\":\"stream_event\",\"event\":{\"type\":"
                     "\"content_block_delta\",\"index\":%i,\"delta\":{\"type\":\"text_delta\","
                     "\"text\":%s}},\"session_id\":%s,\"parent_tool_use_id\":null,\"uuid\":%s}",
                     caps, 6))
            return s_span_text (self, &caps [0]);
    }
    else
    if (self->format == AIP_FORMAT_GEMINI) {
        if (s_shape (line, len, "{\"type\":\"message\",\"timestamp\":%s,\"role\":\"assistant\","
                     "\"content\":%s,\"delta\":true}", caps, 6))
            return s_span_text (self, &caps [1]);
    }
    else
    if (self->format == AIP_FORMAT_CODEX_SERVER) {
        //  Only within our turn and the agent message already begun
        if (s_shape (line, len, "{\"method\":\"item/agentMessage/delta\",\"params\":{"
                     "\"threadId\":%s,\"turnId\":%s,\"itemId\":%s,\"delta\":%s},"
                     "\"emittedAtMs\":%i}", caps, 6)
        &&  s_span_is (&caps [1], self->current_turn) && s_span_is (&caps [2], self->current_item))
            return s_span_text (self, &caps [3]);
    }
    else
    if (self->format == AIP_FORMAT_ACP && self->prompt_sent) {
        if (s_shape (line, len, "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":"
                     "{\"sessionId\":%s,\"update\":{\"sessionUpdate\":\"agent_message_chunk\","
                     "\"messageId\":%s,\"content\":{\"type\":\"text\",\"text\":%s}}}}", caps, 6)) {
            s_acp_message (self, caps [1].at + 1, caps [1].len - 2);
            return s_span_text (self, &caps [2]);
        }
    }
    return false;
}

//  ---------------------------------------------------------------------
//  Lines

static void
s_line (aip_stream_t *self, const char *line, size_t len)
{
    while (len && (line [len - 1] == '\r' || line [len - 1] == ' '))
        len--;
    if (!len)
        return;
    self->lines++;
    if (self->done && !aip_format_is_protocol (self->format)) {
        self->skipped++;        //  after the final event: nothing counts
        return;
    }
    if (s_fast_delta (self, line, len))
        return;
    json_error_t jerr;
    json_t *ev = json_loadb (line, len, 0, &jerr);
    if (!ev && json_error_code (&jerr) == json_error_numeric_overflow)
        //  A number past int64 (an absurd count): read as a real, so the
        //  event is kept and that number dropped
        ev = json_loadb (line, len, JSON_DECODE_INT_AS_REAL, NULL);
    if (!ev && !aip_utf8_valid (line, len)) {
        //  Invalid UTF-8 inside a string: read it with U+FFFD in its place
        size_t fixed_len = 0;
        char *fixed = (char *) malloc (len * 3 + 1);
        assert (fixed);
        for (size_t i = 0; i < len; ) {
            size_t n = 1;
            unsigned char c = (unsigned char) line [i];
            size_t need = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                        : c >= 0xf0 && c <= 0xf4 ? 3 : 9;
            if (need == 0 || (need < 9 && i + need < len && aip_utf8_valid (line + i, need + 1))) {
                n = need + 1;
                memcpy (fixed + fixed_len, line + i, n);
                fixed_len += n;
            }
            else {
                memcpy (fixed + fixed_len, "\xef\xbf\xbd", 3);
                fixed_len += 3;
            }
            i += n;
        }
        ev = json_loadb (fixed, fixed_len, JSON_REJECT_DUPLICATES, NULL);
        free (fixed);
    }
    if (!json_is_object (ev)) {
        //  Not JSON (a banner, a warning, a switch of format): skipped
        self->skipped++;
        json_decref (ev);
        return;
    }
    switch (self->format) {
        case AIP_FORMAT_CLAUDE:       s_claude_event (self, ev); break;
        case AIP_FORMAT_GEMINI:       s_gemini_event (self, ev); break;
        case AIP_FORMAT_CODEX_EXEC:   s_codex_exec_event (self, ev); break;
        case AIP_FORMAT_CODEX_SERVER: s_codex_server_event (self, ev); break;
        case AIP_FORMAT_ACP:          s_acp_event (self, ev); break;
        case AIP_FORMAT_OPENCODE_RUN: s_opencode_run_event (self, ev); break;
        default:                      self->skipped++; break;
    }
    json_decref (ev);
}

static void
s_break (aip_stream_t *self, const char *why)
{
    s_fail (self, AIP_STREAM_ERR_OUTPUT, "%s", why);
    self->broken = true;
    s_buf_free (&self->line);
}

//  ---------------------------------------------------------------------
//  Public API

aip_stream_t *
aip_stream_new (aip_format_t format, const char *tool, const aip_stream_args_t *args)
{
    aip_stream_t *self = (aip_stream_t *) zmalloc (sizeof (aip_stream_t));
    self->format = format;
    self->tool = strdup (tool ? tool : "the tool");
    s_buf_init (&self->line, AIP_MAX_STREAM_LINE);
    s_buf_init (&self->text, AIP_MAX_TOOL_OUTPUT);
    s_buf_init (&self->answer, AIP_MAX_TOOL_OUTPUT);
    s_buf_init (&self->out, AIP_MAX_PROMPT * 2 + 64 * 1024);
    self->usage = json_object ();
    self->started = aip_clock_ms ();
    if (args) {
        self->prompt = (char *) malloc (args->prompt_len + 1);
        memcpy (self->prompt, args->prompt ? args->prompt : "", args->prompt_len);
        self->prompt [args->prompt_len] = 0;
        self->prompt_len = args->prompt_len;
        self->cwd = strdup (args->cwd && *args->cwd ? args->cwd : "/");
        self->model = args->model && *args->model ? strdup (args->model) : NULL;
        if (args->resume_id && aip_session_id_valid (args->resume_id))
            snprintf (self->resume_id, sizeof self->resume_id, "%s", args->resume_id);
        self->ephemeral = args->ephemeral;
    }
    else
        self->cwd = strdup ("/");
    if (format == AIP_FORMAT_CODEX_SERVER)
        s_request (self, RPC_INITIALIZE, "initialize",
                   json_pack ("{s:{s:s, s:s, s:s}}", "clientInfo", "name", "ai-peer", "title",
                              "ai-peer", "version", "1"));
    else
    if (format == AIP_FORMAT_ACP)
        s_request (self, RPC_INITIALIZE, "initialize",
                   json_pack ("{s:i, s:{s:{s:b, s:b}, s:b}}", "protocolVersion", 1,
                              "clientCapabilities", "fs", "readTextFile", 0, "writeTextFile", 0,
                              "terminal", 0));
    return self;
}

void
aip_stream_destroy (aip_stream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    aip_stream_t *self = *self_p;
    s_buf_free (&self->line);
    s_buf_free (&self->text);
    s_buf_free (&self->answer);
    s_buf_free (&self->out);
    json_decref (self->usage);
    free (self->prompt);
    free (self->cwd);
    free (self->model);
    free (self->tool);
    free (self);
    *self_p = NULL;
}

int
aip_stream_feed (aip_stream_t *self, const char *data, size_t len)
{
    if (self->broken)
        return -1;
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = (const char *) memchr (p, '\n', (size_t) (end - p));
        size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
        if (!self->line_too_long) {
            if (!self->line.len && nl)
                s_line (self, p, n);        //  a whole line: no copy
            else
            if (!s_buf_add (&self->line, p, n))
                self->line_too_long = true;
            else
            if (nl) {
                s_line (self, self->line.data, self->line.len);
                s_buf_reset (&self->line);
            }
        }
        if (self->line_too_long && nl) {
            char why [160];
            snprintf (why, sizeof why, "%s printed a line longer than %d MiB: its output cannot "
                      "be read", self->tool, AIP_MAX_STREAM_LINE / (1024 * 1024));
            s_break (self, why);
            return -1;
        }
        if (self->line_too_long && !nl && self->line.len) {
            //  Keep nothing of it while we look for its end
            s_buf_free (&self->line);
            s_buf_init (&self->line, AIP_MAX_STREAM_LINE);
        }
        p += n + (nl ? 1 : 0);
    }
    return 0;
}

int
aip_stream_end (aip_stream_t *self)
{
    if (!self->broken && self->line_too_long) {
        char why [160];
        snprintf (why, sizeof why, "%s printed a line longer than %d MiB: its output cannot be "
                  "read", self->tool, AIP_MAX_STREAM_LINE / (1024 * 1024));
        s_break (self, why);
    }
    if (!self->broken && self->line.len) {
        s_line (self, self->line.data, self->line.len);
        s_buf_reset (&self->line);
    }
    if (self->broken)
        return -1;
    if (!self->done) {
        s_fail (self, AIP_STREAM_ERR_OUTPUT, "%s's output ended without its final event "
                "(%zu lines, %zu not understood)", self->tool, self->lines, self->skipped);
        return -1;
    }
    if (!json_object_get (self->usage, "duration_ms"))
        json_object_set_new (self->usage, "duration_ms",
                             json_integer (aip_clock_ms () - self->started));
    return self->err == AIP_STREAM_OK ? 0 : -1;
}

char *
aip_stream_output (aip_stream_t *self, size_t *len)
{
    if (!self->out.len)
        return NULL;
    char *data = self->out.data;
    *len = self->out.len;
    size_t max = self->out.max;
    s_buf_init (&self->out, max);
    return data;
}

bool
aip_stream_done (aip_stream_t *self)
{
    return self->done || self->broken;
}

const char *
aip_stream_text (aip_stream_t *self, size_t *len)
{
    *len = self->text.len;
    return self->text.data ? self->text.data : "";
}

uint64_t
aip_stream_changes (aip_stream_t *self)
{
    return self->changes;
}

const char *
aip_stream_answer (aip_stream_t *self, size_t *len)
{
    *len = self->answer.len;
    return self->answer.data ? self->answer.data : "";
}

json_t *
aip_stream_usage (aip_stream_t *self)
{
    return self->usage;
}

const char *
aip_stream_session_id (aip_stream_t *self)
{
    return *self->session_id ? self->session_id : NULL;
}

aip_stream_err_t
aip_stream_error (aip_stream_t *self, const char **message)
{
    if (message)
        *message = self->err == AIP_STREAM_OK ? "" : self->errmsg;
    return self->err;
}

size_t
aip_stream_lines (aip_stream_t *self)
{
    return self->lines;
}

json_t *
aip_usage_normalize (json_t *raw)
{
    aip_stream_t *s = aip_stream_new (AIP_FORMAT_TEXT, NULL, NULL);
    const char *keys [][2] = {
        { "input_tokens", "input_tokens" }, { "output_tokens", "output_tokens" },
        { "cache_read_tokens", "cache_read_tokens" },
        { "cache_read_input_tokens", "cache_read_tokens" },
        { "cache_write_tokens", "cache_write_tokens" },
        { "cache_creation_input_tokens", "cache_write_tokens" } };
    for (size_t i = 0; json_is_object (raw) && i < sizeof keys / sizeof keys [0]; i++)
        s_usage_int (s, keys [i][1], json_object_get (raw, keys [i][0]), false);
    s_usage_cost (s, json_object_get (raw, "cost_usd"));
    s_usage_cost (s, json_object_get (raw, "total_cost_usd"));
    s_usage_model (s, s_str (raw, "model"));
    json_t *usage = json_incref (s->usage);
    aip_stream_destroy (&s);
    return usage;
}

//  ---------------------------------------------------------------------
//  Self-test

//  Feed text in pieces of n bytes, then end
static aip_stream_t *
s_test_parse (aip_format_t format, const char *text, size_t piece, int *rc)
{
    aip_stream_t *s = aip_stream_new (format, "tool", NULL);
    size_t len = strlen (text);
    for (size_t i = 0; i < len; i += piece)
        aip_stream_feed (s, text + i, len - i < piece ? len - i : piece);
    *rc = aip_stream_end (s);
    return s;
}

static const char *
s_test_answer (aip_stream_t *s)
{
    size_t len;
    return aip_stream_answer (s, &len);
}

//  The real CLIs' recorded outputs (tests/fixtures/tools, see its README):
//  answer, usage and error kind as the fake model gave them
typedef struct {
    aip_format_t format;
    const char *file;
    const char *answer;             //  or NULL: an error of kind
    aip_stream_err_t kind;
    int input, output, cache_read;  //  -1: not checked
} s_fixture_t;

static void
s_test_fixtures (bool verbose)
{
    char dir [AIP_PATH_MAX];
    snprintf (dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr (dir, '/');
    if (!slash)
        return;
    snprintf (slash, sizeof dir - (size_t) (slash - dir), "/../tests/fixtures/tools");
    const char *one = "First answer: the sky is blue because of Rayleigh scattering.";
    const char *two = "Second answer: sunsets are red for the same reason.";
    s_fixture_t cases [] = {
        { AIP_FORMAT_CLAUDE, "claude/turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_CLAUDE, "claude/turn2-resume.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_CLAUDE, "claude/error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_CLAUDE, "claude/error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_CLAUDE, "claude/resume-unknown.jsonl", NULL, AIP_STREAM_ERR_API, -1, -1, -1 },
        { AIP_FORMAT_GEMINI, "gemini/turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_GEMINI, "gemini/turn2-resume.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_GEMINI, "gemini/error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_GEMINI, "gemini/error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_GEMINI, "gemini/resume-unknown.jsonl", NULL, AIP_STREAM_ERR_OUTPUT, -1, -1, -1 },
        { AIP_FORMAT_CODEX_EXEC, "codex/exec-turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_CODEX_EXEC, "codex/exec-error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_CODEX_EXEC, "codex/exec-error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-turn2-resume.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-error-429.jsonl", NULL, AIP_STREAM_ERR_RATE, -1, -1, -1 },
        { AIP_FORMAT_CODEX_SERVER, "codex/app-server-resume-unknown.jsonl", NULL, AIP_STREAM_ERR_RESUME, -1, -1, -1 },
        { AIP_FORMAT_OPENCODE_RUN, "opencode/run-turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_OPENCODE_RUN, "opencode/run-turn2-resume.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_OPENCODE_RUN, "opencode/run-error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_ACP, "opencode/acp-turn1.jsonl", one, AIP_STREAM_OK, 1200, 42, 300 },
        { AIP_FORMAT_ACP, "opencode/acp-turn2-load.jsonl", two, AIP_STREAM_OK, 80, 17, 1500 },
        { AIP_FORMAT_ACP, "opencode/acp-error-401.jsonl", NULL, AIP_STREAM_ERR_AUTH, -1, -1, -1 },
        { AIP_FORMAT_ACP, "opencode/acp-load-unknown.jsonl", NULL, AIP_STREAM_ERR_RESUME, -1, -1, -1 },
    };
    int checked = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        s_fixture_t *c = &cases [i];
        char path [AIP_PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", dir, c->file);
        size_t len;
        char *text = aip_file_read (path, 16 * 1024 * 1024, &len);
        if (!text)
            continue;           //  not in this tree
        aip_stream_t *s;
        if (aip_format_is_protocol (c->format)) {
            //  A transcript: replay what the tool sent, resuming where we did
            const char *resume = NULL;
            char resume_id [129] = "";
            const char *at = strstr (text, "\"threadId\":\"");
            const char *key = c->format == AIP_FORMAT_ACP ? "\"method\":\"session/load\""
                                                          : "\"method\":\"thread/resume\"";
            const char *load = strstr (text, key);
            if (load) {
                at = strstr (load, c->format == AIP_FORMAT_ACP ? "\"sessionId\":\""
                                                               : "\"threadId\":\"");
                if (at) {
                    at = strchr (at + 3, ':') + 2;
                    snprintf (resume_id, sizeof resume_id, "%.*s", (int) strcspn (at, "\""), at);
                    resume = resume_id;
                }
            }
            aip_stream_args_t args = { "the prompt", 10, "/tmp", NULL, resume, false };
            s = aip_stream_new (c->format, "tool", &args);
            for (char *line = strtok (text, "\n"); line; line = strtok (NULL, "\n")) {
                json_t *entry = json_loads (line, 0, NULL);
                assert (entry);
                if (s_is (entry, "dir", "recv")) {
                    char *msg = json_dumps (json_object_get (entry, "msg"), JSON_COMPACT);
                    aip_stream_feed (s, msg, strlen (msg));
                    aip_stream_feed (s, "\n", 1);
                    free (msg);
                }
                json_decref (entry);
                free (aip_stream_output (s, &len));
            }
        }
        else {
            s = aip_stream_new (c->format, "tool", NULL);
            aip_stream_feed (s, text, len);
        }
        int rc = aip_stream_end (s);
        const char *why;
        aip_stream_err_t kind = aip_stream_error (s, &why);
        if (verbose)
            printf ("\n   %s: rc %d kind %d %s in %d", c->file, rc, (int) kind, why, (int) json_integer_value (json_object_get (aip_stream_usage (s), "input_tokens")));
        fflush (stdout);
        assert (kind == c->kind);
        if (c->answer) {
            assert (rc == 0 && streq (s_test_answer (s), c->answer));
            json_t *u = aip_stream_usage (s);
            assert (json_integer_value (json_object_get (u, "input_tokens")) == c->input);
            assert (json_integer_value (json_object_get (u, "output_tokens")) == c->output);
            assert (json_integer_value (json_object_get (u, "cache_read_tokens")) == c->cache_read);
            assert (aip_stream_session_id (s));
        }
        else
            assert (rc == -1);
        aip_stream_destroy (&s);
        free (text);
        checked++;
    }
    if (verbose)
        printf ("\n   (%d recorded outputs) ", checked);
}

void
aip_stream_test (bool verbose)
{
    printf (" * aip_stream: ");
    s_test_fixtures (verbose);
    int rc;
    const char *err;
    //  claude: deltas, tool chatter, result with usage, in any pieces
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
        aip_stream_t *s = s_test_parse (AIP_FORMAT_CLAUDE, claude, pieces [i], &rc);
        assert (rc == 0 && aip_stream_done (s));
        assert (streq (s_test_answer (s), "Hello"));
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
        aip_stream_destroy (&s);
    }
    //  claude: no result event = an error, nothing to post
    aip_stream_t *s = s_test_parse (AIP_FORMAT_CLAUDE,
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"half\"}}}\n",
        1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_OUTPUT);
    assert (strstr (err, "without its final event"));
    aip_stream_destroy (&s);
    //  claude: an error result is classified
    s = s_test_parse (AIP_FORMAT_CLAUDE,
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,"
        "\"result\":\"Invalid API key · Please run /login\"}", 1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_AUTH);
    aip_stream_destroy (&s);
    s = s_test_parse (AIP_FORMAT_CLAUDE,
        "{\"type\":\"result\",\"is_error\":true,\"api_error_status\":429,\"result\":\"API Error\"}\n",
        1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_RATE);
    aip_stream_destroy (&s);
    //  Absurd usage and a bad session id are dropped; text after the
    //  final event and non-JSON lines are ignored
    s = s_test_parse (AIP_FORMAT_CLAUDE,
        "banner line\n{\"type\":\"result\",\"is_error\":false,\"result\":\"ok\","
        "\"session_id\":\"x; rm -rf /\",\"total_cost_usd\":1e300,"
        "\"usage\":{\"input_tokens\":-5,\"output_tokens\":99999999999999999,"
        "\"cache_read_input_tokens\":100000000000000000000000000}}\n"
        "plain text after\n", 3, &rc);
    assert (rc == 0 && streq (s_test_answer (s), "ok"));
    assert (!aip_stream_session_id (s));
    assert (!json_object_get (aip_stream_usage (s), "input_tokens"));
    assert (!json_object_get (aip_stream_usage (s), "output_tokens"));
    assert (!json_object_get (aip_stream_usage (s), "cost_usd"));
    assert (!json_object_get (aip_stream_usage (s), "cache_read_tokens"));
    aip_stream_destroy (&s);

    //  A line past the limit breaks the stream without being kept
    s = aip_stream_new (AIP_FORMAT_CLAUDE, "tool", NULL);
    char *big = (char *) malloc (1024 * 1024);
    memset (big, 'x', 1024 * 1024);
    for (int i = 0; i < AIP_MAX_STREAM_LINE / (1024 * 1024) + 2; i++)
        aip_stream_feed (s, big, 1024 * 1024);
    assert (aip_stream_feed (s, "\n", 1) == -1);
    free (big);
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_OUTPUT);
    assert (strstr (err, "longer than"));
    aip_stream_destroy (&s);

    //  gemini: deltas since the last tool call are the answer
    s = s_test_parse (AIP_FORMAT_GEMINI,
        "{\"type\":\"init\",\"session_id\":\"9c1e\",\"model\":\"gemini-x\"}\n"
        "{\"type\":\"message\",\"role\":\"user\",\"content\":\"the prompt\"}\n"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"Reading\",\"delta\":true}\n"
        "{\"type\":\"tool_use\",\"tool_name\":\"read_file\"}\n"
        "{\"type\":\"tool_result\",\"status\":\"success\"}\n"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"Hi \",\"delta\":true}\n"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"there\",\"delta\":true}\n"
        "{\"type\":\"result\",\"status\":\"success\",\"stats\":{\"input_tokens\":40,"
        "\"output_tokens\":2,\"cached\":10,\"duration_ms\":55}}\n", 5, &rc);
    assert (rc == 0 && streq (s_test_answer (s), "Hi there"));
    assert (streq (aip_stream_session_id (s), "9c1e"));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "input_tokens")) == 40);
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "cache_read_tokens")) == 10);
    aip_stream_destroy (&s);
    s = s_test_parse (AIP_FORMAT_GEMINI,
        "{\"type\":\"error\",\"severity\":\"error\",\"message\":\"quota exceeded\"}\n"
        "{\"type\":\"result\",\"status\":\"error\"}\n", 1000, &rc);
    assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_RATE);
    assert (streq (err, "quota exceeded"));
    aip_stream_destroy (&s);

    //  The fast path for deltas gives what a full parse gives: escapes
    //  decoded, a broken string skipped, another shape parsed in full
    s = s_test_parse (AIP_FORMAT_GEMINI,
        "{\"type\":\"message\",\"timestamp\":\"t\",\"role\":\"assistant\",\"content\":\"a\\nb\\u00e9 \",\"delta\":true}\n"
        "{\"type\":\"message\",\"timestamp\":\"t\",\"role\":\"assistant\",\"content\":\"bad\\x\",\"delta\":true}\n"
        "{\"type\":\"message\",\"timestamp\":\"t\",\"role\":\"assistant\",\"content\":\"raw\ttab\",\"delta\":true}\n"
        "{\"delta\":true,\"type\":\"message\",\"role\":\"assistant\",\"content\":\"end\"}\n"
        "{\"type\":\"result\",\"status\":\"success\",\"stats\":{}}\n", 1000, &rc);
    assert (rc == 0 && streq (s_test_answer (s), "a\nb\xc3\xa9 end"));
    aip_stream_destroy (&s);

    //  codex exec --json
    s = s_test_parse (AIP_FORMAT_CODEX_EXEC,
        "{\"type\":\"thread.started\",\"thread_id\":\"0199-aa\"}\n{\"type\":\"turn.started\"}\n"
        "{\"type\":\"item.completed\",\"item\":{\"id\":\"i0\",\"type\":\"reasoning\",\"text\":\"hmm\"}}\n"
        "{\"type\":\"item.completed\",\"item\":{\"id\":\"i1\",\"type\":\"agent_message\",\"text\":\"Done.\"}}\n"
        "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":5,\"cached_input_tokens\":1,"
        "\"output_tokens\":2}}\n", 9, &rc);
    assert (rc == 0 && streq (s_test_answer (s), "Done."));
    assert (streq (aip_stream_session_id (s), "0199-aa"));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "output_tokens")) == 2);
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
            "{\"method\":\"item/agentMessage/delta\",\"params\":{\"itemId\":\"m1\",\"delta\":\" you\"}}\n"
            "{\"method\":\"item/completed\",\"params\":{\"item\":{\"type\":\"agentMessage\",\"id\":\"m1\",\"text\":\"Hi you\"}}}\n"
            "{\"method\":\"thread/tokenUsage/updated\",\"params\":{\"tokenUsage\":{\"last\":{\"inputTokens\":30,"
            "\"cachedInputTokens\":4,\"outputTokens\":2},\"total\":{}}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    assert (streq (aip_stream_text (s, &len), "Hi you"));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "\"id\":7") && strstr (out, "decline"));
    free (out);
    assert (!aip_stream_done (s));
    reply = "{\"method\":\"turn/completed\",\"params\":{\"turn\":{\"id\":\"t\",\"status\":\"completed\",\"items\":[]}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    assert (aip_stream_done (s) && aip_stream_end (s) == 0);
    assert (streq (s_test_answer (s), "Hi you") && streq (aip_stream_session_id (s), "0199-th"));
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

    //  opencode acp: replayed updates of a loaded session are not the answer
    args.resume_id = "ses_abc";
    args.model = NULL;
    s = aip_stream_new (AIP_FORMAT_ACP, "opencode", &args);
    out = aip_stream_output (s, &len);
    assert (strstr (out, "\"protocolVersion\":1"));
    free (out);
    reply = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":1,\"agentCapabilities\":{\"loadSession\":true}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "session/load") && strstr (out, "ses_abc") && strstr (out, "\"mcpServers\":[]"));
    free (out);
    reply = "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"OLD\"}}}}\n"
            "{\"id\":2,\"result\":{}}\n"
            "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"new \"}}}}\n"
            "{\"id\":5,\"method\":\"session/request_permission\",\"params\":{}}\n"
            "{\"id\":6,\"method\":\"fs/read_text_file\",\"params\":{}}\n"
            "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"answer\"}}}}\n"
            "{\"id\":3,\"result\":{\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":8,\"outputTokens\":2}}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    out = aip_stream_output (s, &len);
    assert (strstr (out, "session/prompt") && strstr (out, "cancelled") && strstr (out, "\"id\":6"));
    free (out);
    assert (aip_stream_end (s) == 0 && streq (s_test_answer (s), "new answer"));
    assert (streq (aip_stream_session_id (s), "ses_abc"));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "output_tokens")) == 2);
    aip_stream_destroy (&s);

    //  opencode acp retrying a cut-off stream: each attempt is a new
    //  messageId, and only the last one is the answer (general and fast path)
    args.resume_id = NULL;
    s = aip_stream_new (AIP_FORMAT_ACP, "opencode", &args);
    free (aip_stream_output (s, &len));
    reply = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":1}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    reply = "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"sessionId\":\"ses_r\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    reply = "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"ses_r\",\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"messageId\":\"msg_1\",\"content\":{\"type\":\"text\",\"text\":\"A streamed \"}}}}\n"
            "{\"method\":\"session/update\",\"params\":{\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"messageId\":\"msg_2\",\"content\":{\"type\":\"text\",\"text\":\"A streamed \"}}}}\n"
            "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"ses_r\",\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"messageId\":\"msg_2\",\"content\":{\"type\":\"text\",\"text\":\"answer\"}}}}\n"
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"stopReason\":\"end_turn\"}}\n";
    aip_stream_feed (s, reply, strlen (reply));
    free (aip_stream_output (s, &len));
    assert (aip_stream_end (s) == 0 && streq (s_test_answer (s), "A streamed answer"));
    aip_stream_destroy (&s);

    //  opencode run --format json
    s = s_test_parse (AIP_FORMAT_OPENCODE_RUN,
        "{\"type\":\"step_start\",\"sessionID\":\"ses_1\",\"part\":{}}\n"
        "{\"type\":\"text\",\"sessionID\":\"ses_1\",\"part\":{\"type\":\"text\",\"text\":\"Yes.\"}}\n"
        "{\"type\":\"step_finish\",\"sessionID\":\"ses_1\",\"part\":{\"reason\":\"stop\",\"cost\":0.5,"
        "\"tokens\":{\"input\":9,\"output\":1,\"cache\":{\"read\":2,\"write\":0}}}}\n", 4, &rc);
    assert (rc == 0 && streq (s_test_answer (s), "Yes."));
    assert (json_integer_value (json_object_get (aip_stream_usage (s), "input_tokens")) == 9);
    aip_stream_destroy (&s);

    //  A tool's own usage object: known keys kept, the rest dropped
    json_t *raw = json_pack ("{s:i, s:i, s:s, s:f}", "input_tokens", 12, "output_tokens", -1,
                             "junk", "x", "total_cost_usd", 0.5);
    json_t *norm = aip_usage_normalize (raw);
    assert (json_object_size (norm) == 2 && json_integer_value (json_object_get (norm, "input_tokens")) == 12);
    json_decref (norm);
    json_decref (raw);
    norm = aip_usage_normalize (NULL);
    assert (json_object_size (norm) == 0);
    json_decref (norm);

    //  Names and ids
    assert (aip_format_from_name ("claude-stream-json") == AIP_FORMAT_CLAUDE);
    assert (aip_format_from_name ("nope") == -1);
    assert (streq (aip_format_name (AIP_FORMAT_ACP), "opencode-acp"));
    assert (aip_session_id_valid ("0199a-b_c.d:e"));
    assert (!aip_session_id_valid ("") && !aip_session_id_valid ("a b") && !aip_session_id_valid ("$(x)"));
    char longid [200];
    memset (longid, 'a', 129);
    longid [129] = 0;
    assert (!aip_session_id_valid (longid));
    if (verbose)
        printf ("(all formats) ");
    printf ("OK\n");
}
