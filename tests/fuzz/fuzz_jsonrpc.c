/*  fuzz_jsonrpc.c — libFuzzer target for what `ai-peer mcp` reads from its
    client: the bounded line reader (fed in chunks the input chooses, with a
    small limit so that over-long lines are exercised too) and the JSON-RPC
    classifier of each line, with the replies it would build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aip_jsonrpc.h"

//  A small limit: over-long lines come up often
#define FUZZ_MAX_LINE 512

static void
s_line (void *arg, const char *line, size_t len, bool too_long)
{
    if (too_long) {
        if (line || len)
            abort ();
        return;
    }
    if (len > FUZZ_MAX_LINE || memchr (line, '\n', len))
        abort ();
    aip_jsonrpc_msg_t msg;
    if (aip_jsonrpc_parse (line, len, &msg) == 0) {
        json_t *reply = NULL;
        switch (msg.kind) {
            case AIP_JSONRPC_INVALID:
                if (msg.code >= 0 || !*msg.error)
                    abort ();
                reply = aip_jsonrpc_error (msg.id, msg.code, msg.error);
                break;
            case AIP_JSONRPC_REQUEST:
                if (!msg.id || !msg.method)
                    abort ();
                reply = aip_jsonrpc_result (msg.id, json_deep_copy (msg.params));
                break;
            case AIP_JSONRPC_NOTIFICATION:
                if (msg.id || !msg.method)
                    abort ();
                break;
            case AIP_JSONRPC_RESPONSE:
                if (!msg.id)
                    abort ();
                break;
        }
        //  A reply is one line of JSON
        char *text = reply ? json_dumps (reply, JSON_COMPACT) : NULL;
        if (text && strchr (text, '\n'))
            abort ();
        free (text);
        json_decref (reply);
    }
    aip_jsonrpc_msg_free (&msg);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    //  The first byte picks the chunk size the reader is fed with
    size_t chunk = (size_t) data [0] % 64 + 1;
    data++;
    size--;
    aip_jsonrpc_line_t *reader = aip_jsonrpc_line_new (FUZZ_MAX_LINE);
    for (size_t at = 0; at < size; at += chunk)
        aip_jsonrpc_line_feed (reader, (const char *) data + at,
                               size - at < chunk ? size - at : chunk, s_line, NULL);
    aip_jsonrpc_line_finish (reader, s_line, NULL);
    aip_jsonrpc_line_destroy (&reader);
    return 0;
}
