/*  bench_stream.c — CPU that spawnd spends parsing a tool's structured
    output (spawnd/aip_stream.c): a 1 MB event stream of each format, fed
    in 64 KiB reads as a pipe delivers it, timed with the process CPU clock.
    Target (issue 12): at most 5 ms of CPU per 1 MB stream.

    Usage: aip_bench_stream [RUNS]   (default 50; the median is printed) */
#include <czmq.h>
#include <time.h>

#include "aip_stream.h"

#define STREAM_BYTES (1024 * 1024)

//  A stream of about 1 MB: deltas of a realistic size (about 40 bytes of
//  text), each line in the shape the real tool prints it (as recorded in
//  tests/fixtures/tools), then the final event(s)
static char *
s_make (aip_format_t format, size_t *len)
{
    zchunk_t *c = zchunk_new (NULL, STREAM_BYTES + 4096);
    const char *text = "the cache must be bounded, count bytes ";
    char line [1024];
    if (format == AIP_FORMAT_CODEX_SERVER)
        zchunk_extend (c, "{\"id\":1,\"result\":{}}\n{\"id\":2,\"result\":{\"thread\":{\"id\":\"t-1\"}}}\n"
                          "{\"id\":3,\"result\":{\"turn\":{\"id\":\"u-1\"}}}\n", 109);
    if (format == AIP_FORMAT_ACP)
        zchunk_extend (c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"agentCapabilities\":{}}}\n"
                          "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"sessionId\":\"ses_1\"}}\n", 116);
    while (zchunk_size (c) < STREAM_BYTES) {
        int n = 0;
        if (format == AIP_FORMAT_CLAUDE)
            n = snprintf (line, sizeof line, "{\"type\":\"stream_event\",\"event\":{\"type\":"
                          "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                          "\"text\":\"%s\"}},\"session_id\":\"3f2a7c1e-0000-4000-8000-0123456789ab\","
                          "\"parent_tool_use_id\":null,\"uuid\":\"c2ad4965-9136-43c7-bb37-deef45fea8a1\","
                          "\"api_message_id\":\"msg_fake5a7fdd17ab1b45d4933d\"}\n", text);
        else
        if (format == AIP_FORMAT_GEMINI)
            n = snprintf (line, sizeof line, "{\"type\":\"message\",\"timestamp\":"
                          "\"2026-12-03T12:58:38.010Z\",\"role\":\"assistant\",\"content\":\"%s\","
                          "\"delta\":true}\n", text);
        else
        if (format == AIP_FORMAT_CODEX_SERVER)
            n = snprintf (line, sizeof line, "{\"method\":\"item/agentMessage/delta\",\"params\":"
                          "{\"threadId\":\"t-1\",\"turnId\":\"u-1\",\"itemId\":\"msg_1\",\"delta\":"
                          "\"%s\"},\"emittedAtMs\":1796303305276}\n", text);
        else
            n = snprintf (line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\","
                          "\"params\":{\"sessionId\":\"ses_1\",\"update\":{\"sessionUpdate\":"
                          "\"agent_message_chunk\",\"messageId\":\"msg_23c056df00010ggnXAoCixqkB7\","
                          "\"content\":{\"type\":\"text\",\"text\":\"%s\"}}}}\n",
                          text);
        zchunk_extend (c, line, (size_t) n);
    }
    const char *end = format == AIP_FORMAT_CLAUDE
        ? "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"done\","
          "\"session_id\":\"s-1\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}\n"
        : format == AIP_FORMAT_GEMINI
        ? "{\"type\":\"result\",\"status\":\"success\",\"stats\":{\"input_tokens\":1}}\n"
        : format == AIP_FORMAT_CODEX_SERVER
        ? "{\"method\":\"turn/completed\",\"params\":{\"turn\":{\"id\":\"u-1\",\"status\":\"completed\"}}}\n"
        : "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"stopReason\":\"end_turn\"}}\n";
    zchunk_extend (c, end, strlen (end));
    *len = zchunk_size (c);
    char *data = (char *) malloc (*len);
    memcpy (data, zchunk_data (c), *len);
    zchunk_destroy (&c);
    return data;
}

static double
s_cpu_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
    int runs = argc > 1 ? atoi (argv [1]) : 50;
    if (runs < 1 || runs > 10000)
        runs = 50;
    aip_format_t formats [] = { AIP_FORMAT_CLAUDE, AIP_FORMAT_GEMINI, AIP_FORMAT_CODEX_SERVER,
                                AIP_FORMAT_ACP };
    double *times = (double *) calloc ((size_t) runs, sizeof (double));
    for (size_t f = 0; f < 4; f++) {
        size_t len;
        char *data = s_make (formats [f], &len);
        size_t lines = 0;
        for (size_t i = 0; i < len; i++)
            lines += data [i] == '\n';
        for (int r = 0; r < runs; r++) {
            aip_stream_args_t args = { "prompt", 6, "/tmp", NULL, NULL, false };
            double start = s_cpu_ms ();
            aip_stream_t *s = aip_stream_new (formats [f], "bench", &args);
            for (size_t at = 0; at < len; at += 65536) {
                aip_stream_feed (s, data + at, len - at < 65536 ? len - at : 65536);
                size_t out_len;
                free (aip_stream_output (s, &out_len));
            }
            int rc = aip_stream_end (s);
            times [r] = s_cpu_ms () - start;
            if (rc != 0) {
                const char *why;
                aip_stream_error (s, &why);
                fprintf (stderr, "%s: stream failed: %s\n", aip_format_name (formats [f]), why);
                return 1;
            }
            aip_stream_destroy (&s);
        }
        qsort (times, (size_t) runs, sizeof (double), s_cmp);
        printf ("%-20s %7zu bytes %6zu lines  CPU ms: min %.2f  median %.2f  max %.2f\n",
                aip_format_name (formats [f]), len, lines, times [0], times [runs / 2],
                times [runs - 1]);
        free (data);
    }
    free (times);
    return 0;
}
