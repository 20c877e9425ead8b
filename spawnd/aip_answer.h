/*  aip_answer.h — a finished tool run: its answer, or why there is none.

    The text of a text tool's stdout (parsed per its output format), or the
    answer a structured stream assembled; trimmed, UTF-8 repaired, cut
    visibly past the content limit. A run with no answer gets a message in
    the tool's own words: timed out, cancelled, crashed, not logged in,
    rate-limited, failed with its exit code, or an empty answer. */
#ifndef AIP_ANSWER_H_INCLUDED
#define AIP_ANSWER_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "aip_adapter.h"
#include "aip_proc.h"
#include "aip_stream.h"

//  Error code of a tool that ran and failed (its message says how)
#define SPAWN_ERR_TOOL "tool_failed"

//  Why a run has no answer
typedef struct {
    char code [32];                 //  error code: SPAWN_ERR_TOOL or "cancelled"
    char message [2048];            //  what happened, in the tool's words
} aip_answer_error_t;

//  A text-format run (proc finished): 0 with *answer (caller frees), its
//  length and *usage (the tool's raw usage, or NULL); -1 with error set
int aip_answer_text (const aip_tool_t *tool, aip_proc_t *proc, int timeout_s, char **answer,
                     size_t *answer_len, json_t **usage, aip_answer_error_t *error);
//  A structured run (its stream fed): the same; *kind says what the stream
//  reported (AIP_STREAM_OK on success)
int aip_answer_stream (const aip_tool_t *tool, aip_proc_t *proc, aip_stream_t *stream,
                       int timeout_s, char **answer, size_t *answer_len,
                       aip_answer_error_t *error, aip_stream_err_t *kind);
//  Trim what is not part of the answer in place: leading blank lines,
//  trailing whitespace (the final newline every tool prints)
void aip_answer_trim (char *answer, size_t *len);
//  The other known tools the answer @mentions (claude-code also as @claude,
//  the name as written): up to max names into mentions (borrowed from
//  adapter), their count returned
size_t aip_answer_mentions (aip_adapter_t *adapter, const char *self_tool, const char *answer,
                            const char **mentions, size_t max);

void aip_answer_test (bool verbose);

#endif
