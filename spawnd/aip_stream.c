/*  aip_stream.c — structured output of the AI tools, parsed line by line
    (see aip_stream.h): the core. It splits the output into lines, parses
    each as JSON and keeps the common results (text, answer, usage, session
    id, error); what a line means is the format's adapter's business (see
    aip_stream_ops.h), found in the one table below. */
#include "aip_stream_ops.h"
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

//  ---------------------------------------------------------------------
//  The formats: raw text is parsed by nobody (every line is skipped)

static void
s_text_event (aip_stream_t *self, void *state, json_t *ev)
{
    self->skipped++;
}

static const aip_stream_ops_t s_text_ops = {
    .name = "text",
    .event = s_text_event
};

//  The one place that knows which adapter reads which format
static const aip_stream_ops_t *const s_formats [AIP_FORMAT_COUNT] = {
    [AIP_FORMAT_TEXT]         = &s_text_ops,
    [AIP_FORMAT_CLAUDE]       = &aip_stream_claude_ops,
    [AIP_FORMAT_GEMINI]       = &aip_stream_gemini_ops,
    [AIP_FORMAT_CODEX_SERVER] = &aip_stream_codex_server_ops,
    [AIP_FORMAT_CODEX_EXEC]   = &aip_stream_codex_exec_ops,
    [AIP_FORMAT_ACP]          = &aip_stream_acp_ops,
    [AIP_FORMAT_OPENCODE_RUN] = &aip_stream_opencode_run_ops
};

static const aip_stream_ops_t *
s_ops (aip_format_t format)
{
    return (size_t) format < AIP_FORMAT_COUNT ? s_formats [format] : NULL;
}

//  ---------------------------------------------------------------------
//  Buffers

static void
s_buf_init (aip_stream_buf_t *b, size_t max)
{
    memset (b, 0, sizeof *b);
    b->max = max;
}

static void
s_buf_free (aip_stream_buf_t *b)
{
    free (b->data);
    memset (b, 0, sizeof *b);
}

void
aip_stream_buf_reset (aip_stream_buf_t *b)
{
    b->len = 0;
    b->cut = false;
    if (b->data)
        b->data [0] = 0;
}

bool
aip_stream_buf_add (aip_stream_buf_t *b, const char *data, size_t len)
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

void
aip_stream_buf_set (aip_stream_buf_t *b, const char *s)
{
    aip_stream_buf_reset (b);
    aip_stream_buf_add (b, s, strlen (s));
}

//  ---------------------------------------------------------------------
//  Names and ids

int
aip_format_from_name (const char *name)
{
    for (int i = 0; i < AIP_FORMAT_COUNT; i++)
        if (streq (name, s_formats [i]->name))
            return i;
    return -1;
}

const char *
aip_format_name (aip_format_t format)
{
    const aip_stream_ops_t *ops = s_ops (format);
    return ops ? ops->name : "?";
}

bool
aip_format_is_protocol (aip_format_t format)
{
    const aip_stream_ops_t *ops = s_ops (format);
    return ops && ops->protocol;
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

void
aip_stream_fail (aip_stream_t *self, aip_stream_err_t kind, const char *fmt, ...)
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

//  The tools say it in words
aip_stream_err_t
aip_stream_classify (const char *text, int http_status)
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

void
aip_stream_text_add (aip_stream_t *self, const char *text, size_t len)
{
    if (!len)
        return;
    aip_stream_buf_add (&self->text, text, len);
    self->changes++;
}

void
aip_stream_text_reset (aip_stream_t *self)
{
    if (self->text.len) {
        aip_stream_buf_reset (&self->text);
        self->changes++;
    }
}

void
aip_stream_session_set (aip_stream_t *self, const char *id)
{
    //  A bad id is never kept: no resume, rather than a bad argv
    if (id && aip_session_id_valid (id))
        snprintf (self->session_id, sizeof self->session_id, "%s", id);
}

void
aip_stream_usage_int (aip_stream_t *self, const char *key, json_t *value, bool add)
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

void
aip_stream_usage_cost (aip_stream_t *self, json_t *value)
{
    if (!json_is_number (value))
        return;
    double cost = json_number_value (value);
    if (isfinite (cost) && cost >= 0 && cost <= STREAM_MAX_COST)
        json_object_set_new (self->usage, "cost_usd", json_real (cost));
}

void
aip_stream_usage_model (aip_stream_t *self, const char *model)
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

void
aip_stream_usage_duration (aip_stream_t *self, json_t *value)
{
    if (json_is_integer (value) && json_integer_value (value) >= 0
    &&  json_integer_value (value) <= STREAM_MAX_DURATION)
        json_object_set_new (self->usage, "duration_ms", json_integer (json_integer_value (value)));
}

const char *
aip_stream_str (json_t *o, const char *key)
{
    return json_string_value (json_object_get (o, key));
}

bool
aip_stream_is (json_t *o, const char *key, const char *value)
{
    const char *s = aip_stream_str (o, key);
    return s && streq (s, value);
}

//  ---------------------------------------------------------------------
//  Protocol output

void
aip_stream_send (aip_stream_t *self, json_t *msg)
{
    json_object_set_new (msg, "jsonrpc", json_string ("2.0"));
    char *line = json_dumps (msg, JSON_COMPACT);
    json_decref (msg);
    if (!line)
        return;
    aip_stream_buf_add (&self->out, line, strlen (line));
    aip_stream_buf_add (&self->out, "\n", 1);
    free (line);
}

void
aip_stream_request (aip_stream_t *self, int id, const char *method, json_t *params)
{
    aip_stream_send (self, json_pack ("{s:i, s:s, s:o}", "id", id, "method", method, "params",
                                      params));
}

void
aip_stream_refuse (aip_stream_t *self, json_t *id, const char *why)
{
    aip_stream_send (self, json_pack ("{s:O, s:{s:i, s:s}}", "id", id, "error", "code", -32601,
                             "message", why));
}

void
aip_stream_reply (aip_stream_t *self, json_t *id, json_t *result)
{
    aip_stream_send (self, json_pack ("{s:O, s:o}", "id", id, "result", result));
}

const char *
aip_stream_rpc_error (json_t *msg)
{
    json_t *error = json_object_get (msg, "error");
    const char *text = aip_stream_str (error, "message");
    return text ? text : "unknown error";
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

bool
aip_stream_shape (const char *line, size_t len, const char *shape, aip_stream_span_t *caps,
                  int max)
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

bool
aip_stream_span_text (aip_stream_t *self, const aip_stream_span_t *span)
{
    const char *text = span->at + 1;
    size_t len = span->len - 2;
    bool plain = true;
    for (size_t i = 0; i < len && plain; i++)
        plain = (unsigned char) text [i] >= 0x20 && text [i] != '\\';
    if (plain && aip_utf8_valid (text, len)) {
        aip_stream_text_add (self, text, len);
        return true;
    }
    json_t *value = json_loadb (span->at, span->len, JSON_DECODE_ANY, NULL);
    bool ok = json_is_string (value);
    if (ok)
        aip_stream_text_add (self, json_string_value (value), json_string_length (value));
    json_decref (value);
    return ok;
}

bool
aip_stream_span_is (const aip_stream_span_t *span, const char *value)
{
    size_t n = strlen (value);
    return span->len == n + 2 && memcmp (span->at + 1, value, n) == 0 && n;
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
    if (self->done && !self->ops->protocol) {
        self->skipped++;        //  after the final event: nothing counts
        return;
    }
    if (self->ops->fast_line && self->ops->fast_line (self, self->state, line, len))
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
    self->ops->event (self, self->state, ev);
    json_decref (ev);
}

static void
s_break (aip_stream_t *self, const char *why)
{
    aip_stream_fail (self, AIP_STREAM_ERR_OUTPUT, "%s", why);
    self->broken = true;
    s_buf_free (&self->line);
}

//  ---------------------------------------------------------------------
//  Public API

aip_stream_t *
aip_stream_new (aip_format_t format, const char *tool, const aip_stream_args_t *args)
{
    aip_stream_t *self = (aip_stream_t *) zmalloc (sizeof (aip_stream_t));
    self->ops = s_ops (format);
    if (!self->ops)
        self->ops = &s_text_ops;        //  not a format: nothing is understood
    if (self->ops->state_size)
        self->state = zmalloc (self->ops->state_size);
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
    if (self->ops->start)
        self->ops->start (self, self->state);
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
    free (self->state);
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
            if (!aip_stream_buf_add (&self->line, p, n))
                self->line_too_long = true;
            else
            if (nl) {
                s_line (self, self->line.data, self->line.len);
                aip_stream_buf_reset (&self->line);
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
        aip_stream_buf_reset (&self->line);
    }
    if (self->broken)
        return -1;
    if (!self->done) {
        aip_stream_fail (self, AIP_STREAM_ERR_OUTPUT, "%s's output ended without its final event "
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
        aip_stream_usage_int (s, keys [i][1], json_object_get (raw, keys [i][0]), false);
    aip_stream_usage_cost (s, json_object_get (raw, "cost_usd"));
    aip_stream_usage_cost (s, json_object_get (raw, "total_cost_usd"));
    aip_stream_usage_model (s, aip_stream_str (raw, "model"));
    json_t *usage = json_incref (s->usage);
    aip_stream_destroy (&s);
    return usage;
}

//  ---------------------------------------------------------------------
//  Helpers for the adapters' self-tests

aip_stream_t *
aip_stream_test_parse (aip_format_t format, const char *text, size_t piece, int *rc)
{
    aip_stream_t *s = aip_stream_new (format, "tool", NULL);
    size_t len = strlen (text);
    for (size_t i = 0; i < len; i += piece)
        aip_stream_feed (s, text + i, len - i < piece ? len - i : piece);
    *rc = aip_stream_end (s);
    return s;
}

const char *
aip_stream_test_answer (aip_stream_t *s)
{
    size_t len;
    return aip_stream_answer (s, &len);
}

//  A transcript of a protocol server: what it sent us is fed, as we
//  received it; the session we resumed is the one our resume request named
static aip_stream_t *
s_test_replay (aip_format_t format, char *text, const char *resume_method,
               const char *resume_key)
{
    char resume [129] = "";
    char *copy = strdup (text);
    for (char *line = strtok (copy, "\n"); line && resume_method; line = strtok (NULL, "\n")) {
        json_t *entry = json_loads (line, 0, NULL);
        assert (entry);
        json_t *msg = json_object_get (entry, "msg");
        if (aip_stream_is (entry, "dir", "send") && aip_stream_is (msg, "method", resume_method)
        &&  !*resume) {
            const char *id = aip_stream_str (json_object_get (msg, "params"), resume_key);
            assert (id);
            snprintf (resume, sizeof resume, "%s", id);
        }
        json_decref (entry);
    }
    free (copy);
    aip_stream_args_t args = { .prompt = "the prompt", .prompt_len = 10, .cwd = "/tmp",
                               .resume_id = *resume ? resume : NULL };
    aip_stream_t *s = aip_stream_new (format, "tool", &args);
    for (char *line = strtok (text, "\n"); line; line = strtok (NULL, "\n")) {
        json_t *entry = json_loads (line, 0, NULL);
        assert (entry);
        if (aip_stream_is (entry, "dir", "recv")) {
            char *msg = json_dumps (json_object_get (entry, "msg"), JSON_COMPACT);
            aip_stream_feed (s, msg, strlen (msg));
            aip_stream_feed (s, "\n", 1);
            free (msg);
        }
        json_decref (entry);
        size_t len;
        free (aip_stream_output (s, &len));
    }
    return s;
}

void
aip_stream_test_fixtures (const aip_stream_fixture_t *cases, size_t count,
                          const char *resume_method, const char *resume_key, bool verbose)
{
    char dir [AIP_PATH_MAX];
    snprintf (dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr (dir, '/');
    assert (slash);
    snprintf (slash, sizeof dir - (size_t) (slash - dir), "/../tests/fixtures/tools");
    for (size_t i = 0; i < count; i++) {
        const aip_stream_fixture_t *c = &cases [i];
        char path [AIP_PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", dir, c->file);
        size_t len;
        char *text = aip_file_read (path, 16 * 1024 * 1024, &len);
        if (!text)
            fprintf (stderr, "aip_stream: cannot read the recorded output %s\n", path);
        assert (text);
        aip_stream_t *s;
        if (aip_format_is_protocol (c->format))
            s = s_test_replay (c->format, text, resume_method, resume_key);
        else {
            s = aip_stream_new (c->format, "tool", NULL);
            aip_stream_feed (s, text, len);
        }
        int rc = aip_stream_end (s);
        const char *why;
        aip_stream_err_t kind = aip_stream_error (s, &why);
        json_t *u = aip_stream_usage (s);
        if (verbose)
            printf ("\n   %s: rc %d kind %d %s in %d", c->file, rc, (int) kind, why,
                    (int) json_integer_value (json_object_get (u, "input_tokens")));
        fflush (stdout);
        assert (kind == c->kind);
        if (c->answer) {
            assert (rc == 0 && streq (aip_stream_test_answer (s), c->answer));
            assert (json_integer_value (json_object_get (u, "input_tokens")) == c->input);
            assert (json_integer_value (json_object_get (u, "output_tokens")) == c->output);
            assert (json_integer_value (json_object_get (u, "cache_read_tokens")) == c->cache_read);
            assert (aip_stream_session_id (s));
        }
        else
            assert (rc == -1);
        aip_stream_destroy (&s);
        free (text);
    }
    if (verbose)
        printf ("\n   (%zu recorded outputs) ", count);
}

//  ---------------------------------------------------------------------
//  Self-test of the core (each adapter has its own: aip_stream_<tool>_test)

void
aip_stream_test (bool verbose)
{
    printf (" * aip_stream: ");
    //  Lines come in any pieces; blank ones and a last one without its
    //  newline count, \r and trailing blanks do not; raw text is not
    //  understood, so it never ends with a final event
    size_t pieces [] = { 1, 3, 100000 };
    const char *lines = "banner\r\n\n  \n{\"type\":\"result\"}  \n[1, 2]\n\t\nlast";
    for (size_t i = 0; i < 3; i++) {
        int rc;
        aip_stream_t *s = aip_stream_test_parse (AIP_FORMAT_TEXT, lines, pieces [i], &rc);
        const char *err;
        assert (rc == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_OUTPUT);
        assert (streq (err, "tool's output ended without its final event (5 lines, 5 not "
                            "understood)"));
        assert (aip_stream_lines (s) == 5 && !aip_stream_done (s));
        size_t len;
        assert (streq (aip_stream_text (s, &len), "") && len == 0);
        assert (!aip_stream_session_id (s) && json_object_size (aip_stream_usage (s)) == 0);
        assert (!aip_stream_output (s, &len));
        aip_stream_destroy (&s);
    }

    //  A line past the limit breaks the stream without being kept
    aip_stream_t *s = aip_stream_new (AIP_FORMAT_TEXT, "tool", NULL);
    char *big = (char *) malloc (1024 * 1024);
    memset (big, 'x', 1024 * 1024);
    for (int i = 0; i < AIP_MAX_STREAM_LINE / (1024 * 1024) + 2; i++)
        assert (aip_stream_feed (s, big, 1024 * 1024) == 0);
    assert (aip_stream_feed (s, "\n", 1) == -1);
    assert (aip_stream_feed (s, "more\n", 5) == -1 && aip_stream_done (s));
    const char *err;
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_OUTPUT);
    assert (strstr (err, "tool printed a line longer than"));
    aip_stream_destroy (&s);
    //  ... and at the end of the output, without its newline, too
    s = aip_stream_new (AIP_FORMAT_TEXT, "tool", NULL);
    for (int i = 0; i < AIP_MAX_STREAM_LINE / (1024 * 1024) + 2; i++)
        aip_stream_feed (s, big, 1024 * 1024);
    assert (aip_stream_end (s) == -1 && aip_stream_error (s, &err) == AIP_STREAM_ERR_OUTPUT);
    assert (strstr (err, "longer than"));
    aip_stream_destroy (&s);
    free (big);
    aip_stream_destroy (&s);            //  safe twice

    //  A tool's own usage object: known keys kept, the rest dropped
    json_t *raw = json_pack ("{s:i, s:i, s:s, s:f}", "input_tokens", 12, "output_tokens", -1,
                             "junk", "x", "total_cost_usd", 0.5);
    json_t *norm = aip_usage_normalize (raw);
    assert (json_object_size (norm) == 2 && json_integer_value (json_object_get (norm, "input_tokens")) == 12);
    json_decref (norm);
    json_decref (raw);
    raw = json_pack ("{s:I, s:i, s:s, s:f}", "cache_creation_input_tokens", (json_int_t) 2000000000000LL,
                     "cache_read_input_tokens", 5, "model", "bad\nmodel", "cost_usd", 1e9);
    norm = aip_usage_normalize (raw);
    assert (json_object_size (norm) == 1
         && json_integer_value (json_object_get (norm, "cache_read_tokens")) == 5);
    json_decref (norm);
    json_decref (raw);
    norm = aip_usage_normalize (NULL);
    assert (json_object_size (norm) == 0);
    json_decref (norm);

    //  Names and ids: every format has its adapter, named in tools.json
    for (int i = 0; i < AIP_FORMAT_COUNT; i++)
        assert (aip_format_from_name (aip_format_name ((aip_format_t) i)) == i);
    assert (aip_format_from_name ("claude-stream-json") == AIP_FORMAT_CLAUDE);
    assert (aip_format_from_name ("nope") == -1);
    assert (streq (aip_format_name (AIP_FORMAT_ACP), "opencode-acp"));
    assert (streq (aip_format_name (AIP_FORMAT_COUNT), "?"));
    assert (aip_format_is_protocol (AIP_FORMAT_CODEX_SERVER) && aip_format_is_protocol (AIP_FORMAT_ACP));
    assert (!aip_format_is_protocol (AIP_FORMAT_CLAUDE) && !aip_format_is_protocol (AIP_FORMAT_TEXT));
    assert (!aip_format_is_protocol (AIP_FORMAT_COUNT));
    assert (aip_session_id_valid ("0199a-b_c.d:e"));
    assert (!aip_session_id_valid ("") && !aip_session_id_valid ("a b") && !aip_session_id_valid ("$(x)"));
    assert (!aip_session_id_valid (NULL));
    char longid [200];
    memset (longid, 'a', 129);
    longid [129] = 0;
    assert (!aip_session_id_valid (longid));
    longid [128] = 0;
    assert (aip_session_id_valid (longid));
    if (verbose)
        printf ("(lines, limits, usage, names) ");
    printf ("OK\n");
}
