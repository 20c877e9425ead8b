/*  aip_jsonrpc.c — bounded line reader and JSON-RPC 2.0 classifier for the
    MCP stdio transport. */
#include "aip_jsonrpc.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _aip_jsonrpc_line_t {
    char *buf;                  //  the line so far
    size_t len;                 //  bytes in buf
    size_t size;                //  allocated
    size_t max;                 //  longest line accepted
    bool dropping;              //  inside a line over max: drop until newline
};

aip_jsonrpc_line_t *
aip_jsonrpc_line_new (size_t max)
{
    aip_jsonrpc_line_t *self = (aip_jsonrpc_line_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->max = max ? max : AIP_JSONRPC_MAX_LINE;
    return self;
}

void
aip_jsonrpc_line_destroy (aip_jsonrpc_line_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->buf);
        free (*self_p);
        *self_p = NULL;
    }
}

//  Append to the line; false when it would pass the limit
static bool
s_append (aip_jsonrpc_line_t *self, const char *data, size_t size)
{
    if (size > self->max - self->len)
        return false;
    if (self->len + size + 1 > self->size) {
        size_t want = self->size ? self->size : 4096;
        while (want < self->len + size + 1)
            want *= 2;
        if (want > self->max + 1)
            want = self->max + 1;
        char *grown = (char *) realloc (self->buf, want);
        if (!grown)
            return false;
        self->buf = grown;
        self->size = want;
    }
    memcpy (self->buf + self->len, data, size);
    self->len += size;
    self->buf [self->len] = 0;
    return true;
}

void
aip_jsonrpc_line_feed (aip_jsonrpc_line_t *self, const char *data, size_t size,
                       aip_jsonrpc_line_fn *fn, void *arg)
{
    while (size > 0) {
        const char *nl = (const char *) memchr (data, '\n', size);
        size_t chunk = nl ? (size_t) (nl - data) : size;
        if (!self->dropping && !s_append (self, data, chunk)) {
            //  Too long: what was held goes, the rest is dropped as it comes
            self->dropping = true;
            self->len = 0;
            //  Memory of a huge line is not kept for the next ones
            free (self->buf);
            self->buf = NULL;
            self->size = 0;
        }
        if (!nl)
            return;
        if (self->dropping)
            fn (arg, NULL, 0, true);
        else {
            //  CRLF senders
            size_t len = self->len;
            if (len && self->buf [len - 1] == '\r')
                len--;
            fn (arg, self->buf ? self->buf : "", len, false);
        }
        self->dropping = false;
        self->len = 0;
        data = nl + 1;
        size -= chunk + 1;
    }
}

void
aip_jsonrpc_line_finish (aip_jsonrpc_line_t *self, aip_jsonrpc_line_fn *fn, void *arg)
{
    if (self->dropping)
        fn (arg, NULL, 0, true);
    else
    if (self->len)
        fn (arg, self->buf, self->len, false);
    self->dropping = false;
    self->len = 0;
}

static int
s_invalid (aip_jsonrpc_msg_t *msg, int code, const char *error)
{
    msg->kind = AIP_JSONRPC_INVALID;
    msg->code = code;
    snprintf (msg->error, sizeof msg->error, "%s", error);
    return 0;
}

int
aip_jsonrpc_parse (const char *line, size_t len, aip_jsonrpc_msg_t *msg)
{
    memset (msg, 0, sizeof *msg);
    size_t start = 0;
    while (start < len && (line [start] == ' ' || line [start] == '\t' || line [start] == '\r'))
        start++;
    if (start == len) {
        msg->kind = AIP_JSONRPC_INVALID;
        return -1;
    }
    json_error_t jerr;
    msg->root = json_loadb (line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!msg->root) {
        char why [256];
        snprintf (why, sizeof why, "Parse error: %s (column %d)", jerr.text, jerr.column);
        return s_invalid (msg, AIP_JSONRPC_PARSE_ERROR, why);
    }
    if (json_is_array (msg->root))
        return s_invalid (msg, AIP_JSONRPC_INVALID_REQUEST,
                          "Invalid Request: JSON-RPC batches are not supported by MCP; "
                          "send one message per line");
    if (!json_is_object (msg->root))
        return s_invalid (msg, AIP_JSONRPC_INVALID_REQUEST,
                          "Invalid Request: a message must be a JSON object");
    json_t *id = json_object_get (msg->root, "id");
    //  An id that cannot be echoed is no id: the error goes to id null
    if (id && (json_is_string (id) || json_is_integer (id)))
        msg->id = id;
    const char *version = json_string_value (json_object_get (msg->root, "jsonrpc"));
    if (!version || strcmp (version, "2.0") != 0)
        return s_invalid (msg, AIP_JSONRPC_INVALID_REQUEST,
                          "Invalid Request: \"jsonrpc\" must be \"2.0\"");
    if (id && !msg->id)
        return s_invalid (msg, AIP_JSONRPC_INVALID_REQUEST,
                          "Invalid Request: \"id\" must be a string or an integer");
    json_t *method = json_object_get (msg->root, "method");
    if (!method) {
        if (msg->id && (json_object_get (msg->root, "result") || json_object_get (msg->root, "error"))) {
            msg->kind = AIP_JSONRPC_RESPONSE;
            return 0;
        }
        return s_invalid (msg, AIP_JSONRPC_INVALID_REQUEST,
                          "Invalid Request: no \"method\"");
    }
    if (!json_is_string (method) || json_string_length (method) == 0)
        return s_invalid (msg, AIP_JSONRPC_INVALID_REQUEST,
                          "Invalid Request: \"method\" must be a non-empty string");
    json_t *params = json_object_get (msg->root, "params");
    if (params && !json_is_object (params) && !json_is_array (params) && !json_is_null (params))
        return s_invalid (msg, AIP_JSONRPC_INVALID_REQUEST,
                          "Invalid Request: \"params\" must be an object");
    msg->method = json_string_value (method);
    msg->params = json_is_null (params) ? NULL : params;
    msg->kind = msg->id ? AIP_JSONRPC_REQUEST : AIP_JSONRPC_NOTIFICATION;
    return 0;
}

void
aip_jsonrpc_msg_free (aip_jsonrpc_msg_t *msg)
{
    json_decref (msg->root);
    memset (msg, 0, sizeof *msg);
}

json_t *
aip_jsonrpc_result (json_t *id, json_t *result)
{
    json_t *reply = json_object ();
    json_object_set_new (reply, "jsonrpc", json_string ("2.0"));
    json_object_set_new (reply, "id", id ? json_deep_copy (id) : json_null ());
    json_object_set_new (reply, "result", result ? result : json_object ());
    return reply;
}

json_t *
aip_jsonrpc_error (json_t *id, int code, const char *message)
{
    json_t *reply = json_object ();
    json_object_set_new (reply, "jsonrpc", json_string ("2.0"));
    json_object_set_new (reply, "id", id ? json_deep_copy (id) : json_null ());
    json_t *error = json_object ();
    json_object_set_new (error, "code", json_integer (code));
    json_t *text = json_string (message);
    json_object_set_new (error, "message", text ? text : json_string ("error"));
    json_object_set_new (reply, "error", error);
    return reply;
}

//  ---------------------------------------------------------------------
//  Self-test

typedef struct {
    char lines [8][64];
    size_t count;
    size_t too_long;
} s_test_lines_t;

static void
s_test_line (void *arg, const char *line, size_t len, bool too_long)
{
    s_test_lines_t *t = (s_test_lines_t *) arg;
    if (too_long) {
        t->too_long++;
        return;
    }
    assert (t->count < 8);
    snprintf (t->lines [t->count++], 64, "%.*s", (int) len, line);
}

void
aip_jsonrpc_test (bool verbose)
{
    printf (" * aip_jsonrpc: ");
    //  Lines split anywhere, CRLF, a line over the limit dropped as it comes
    aip_jsonrpc_line_t *reader = aip_jsonrpc_line_new (16);
    assert (reader);
    s_test_lines_t t;
    memset (&t, 0, sizeof t);
    aip_jsonrpc_line_feed (reader, "ab", 2, s_test_line, &t);
    aip_jsonrpc_line_feed (reader, "c\r\nde\n", 6, s_test_line, &t);
    assert (t.count == 2 && strcmp (t.lines [0], "abc") == 0 && strcmp (t.lines [1], "de") == 0);
    for (int i = 0; i < 100; i++)
        aip_jsonrpc_line_feed (reader, "0123456789", 10, s_test_line, &t);
    assert (t.too_long == 0);
    aip_jsonrpc_line_feed (reader, "x\nok\ntail", 9, s_test_line, &t);
    assert (t.too_long == 1 && t.count == 3 && strcmp (t.lines [2], "ok") == 0);
    aip_jsonrpc_line_finish (reader, s_test_line, &t);
    assert (t.count == 4 && strcmp (t.lines [3], "tail") == 0);
    //  Exactly the limit is accepted
    aip_jsonrpc_line_feed (reader, "0123456789abcdef\n", 17, s_test_line, &t);
    assert (t.count == 5 && t.too_long == 1);
    aip_jsonrpc_line_destroy (&reader);
    aip_jsonrpc_line_destroy (&reader);

    //  Classification
    struct {
        const char *line;
        aip_jsonrpc_kind_t kind;
        int code;
    } cases [] = {
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", AIP_JSONRPC_REQUEST, 0 },
        { "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":{}}", AIP_JSONRPC_REQUEST, 0 },
        { "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", AIP_JSONRPC_NOTIFICATION, 0 },
        { "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", AIP_JSONRPC_RESPONSE, 0 },
        { "{not json", AIP_JSONRPC_INVALID, AIP_JSONRPC_PARSE_ERROR },
        { "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", AIP_JSONRPC_INVALID, AIP_JSONRPC_INVALID_REQUEST },
        { "42", AIP_JSONRPC_INVALID, AIP_JSONRPC_INVALID_REQUEST },
        { "{\"id\":1,\"method\":\"ping\"}", AIP_JSONRPC_INVALID, AIP_JSONRPC_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", AIP_JSONRPC_INVALID, AIP_JSONRPC_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", AIP_JSONRPC_INVALID, AIP_JSONRPC_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}", AIP_JSONRPC_INVALID, AIP_JSONRPC_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"x\"}", AIP_JSONRPC_INVALID, AIP_JSONRPC_PARSE_ERROR },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        aip_jsonrpc_msg_t msg;
        assert (aip_jsonrpc_parse (cases [i].line, strlen (cases [i].line), &msg) == 0);
        if (msg.kind != cases [i].kind || msg.code != cases [i].code) {
            fprintf (stderr, "case %zu: kind %d code %d (%s)\n", i, msg.kind, msg.code, msg.error);
            assert (false);
        }
        if (verbose && msg.kind == AIP_JSONRPC_INVALID)
            printf ("\n   %s", msg.error);
        aip_jsonrpc_msg_free (&msg);
    }
    aip_jsonrpc_msg_t msg;
    assert (aip_jsonrpc_parse ("  \r", 3, &msg) == -1);
    aip_jsonrpc_msg_free (&msg);
    json_t *id = json_integer (7);
    json_t *reply = aip_jsonrpc_error (id, AIP_JSONRPC_METHOD_NOT_FOUND, "no");
    assert (json_integer_value (json_object_get (reply, "id")) == 7);
    json_decref (reply);
    reply = aip_jsonrpc_result (NULL, NULL);
    assert (json_is_null (json_object_get (reply, "id")));
    json_decref (reply);
    json_decref (id);
    printf ("OK\n");
}
