/*  fuzz_stream.c — libFuzzer target for the parsers of the AI tools'
    structured output (spawnd/aip_stream*.c: the core and every adapter):
    everything a tool prints, or a protocol server sends, goes through
    them. The first byte picks the format, the second how the rest is cut
    into pieces (a tool's output
    arrives in any pieces). Whatever comes in: no crash, a session id only
    if it is valid, usage only within its bounds, requests to the tool only
    as whole lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aip_stream.h"

static void
s_check (aip_stream_t *s)
{
    const char *sid = aip_stream_session_id (s);
    if (sid && !aip_session_id_valid (sid))
        abort ();
    const char *key;
    json_t *value;
    json_object_foreach (aip_stream_usage (s), key, value) {
        if (json_is_integer (value)
        &&  (json_integer_value (value) < 0 || json_integer_value (value) > 1000000000000LL))
            abort ();
        if (json_is_real (value) && !(json_real_value (value) >= 0))
            abort ();
    }
    size_t len;
    char *out = aip_stream_output (s, &len);
    if (out && (len == 0 || out [len - 1] != '\n'))
        abort ();
    free (out);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    //  Every parsed format (all but the first, raw text), so an adapter
    //  added to aip_stream is fuzzed without a change here
    aip_format_t format = (aip_format_t) (1 + data [0] % (AIP_FORMAT_COUNT - 1));
    size_t piece = (size_t) data [1] + 1;
    //  Resume a session in some runs (the protocols then load, not start)
    aip_stream_args_t args = { "the prompt", 10, "/tmp", data [0] & 0x80 ? "m" : NULL,
                               data [0] & 0x40 ? "sess-1" : NULL, (data [0] & 0x20) != 0 };
    aip_stream_t *s = aip_stream_new (format, "fuzz", &args);
    const char *p = (const char *) data + 2;
    size_t left = size - 2;
    while (left) {
        size_t n = left < piece ? left : piece;
        aip_stream_feed (s, p, n);
        s_check (s);
        p += n;
        left -= n;
    }
    int rc = aip_stream_end (s);
    s_check (s);
    size_t len;
    const char *answer = aip_stream_answer (s, &len);
    if (rc == 0 && strlen (answer) != len)
        abort ();           //  jansson's strings hold no NUL
    const char *why;
    if (rc != 0 && aip_stream_error (s, &why) == AIP_STREAM_OK)
        abort ();           //  a failed stream always says why
    aip_stream_destroy (&s);
    return 0;
}
