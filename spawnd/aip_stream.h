/*  aip_stream.h — reading an AI tool's structured output, one line at a time.

    Each built-in tool runs in its structured mode (DESIGN.md §7b):

      claude-stream-json   claude -p --output-format stream-json --verbose
                           --include-partial-messages (NDJSON events)
      gemini-stream-json   gemini -p "" --output-format stream-json (NDJSON)
      codex-app-server     codex app-server: JSON-RPC 2.0 lines on stdio; we
                           drive it (initialize, thread/start|resume, turn/start)
      codex-json           codex exec --json (JSONL events; no text deltas)
      opencode-acp         opencode acp: the Agent Client Protocol (JSON-RPC
                           lines; initialize, session/new|load, session/prompt)
      opencode-json        opencode run --format json (NDJSON; no deltas)

    The stream is fed what the tool prints, in any pieces. Every line is
    bounded (AIP_MAX_STREAM_LINE: a longer line breaks the stream, it is not
    kept); lines that are not JSON and events we do not know are skipped.
    The answer is the tool's final assistant text, taken from the final
    event; a stream that ends without its final event is an error. For the
    two protocol formats the stream also writes: requests to send to the
    tool's stdin (aip_stream_output), including refusals of what the tool
    asks of us (approvals, file access, permissions).

    What a finished stream gives: the answer, the usage object of TEAM.md
    ({input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    cost_usd, model, duration_ms}, absurd values dropped), the session id
    (validated, else none) and, on failure, an error kind and message.

    Each format is read by its adapter, an ops struct behind this one API
    (aip_stream_ops.h; aip_stream_claude.c, _gemini.c, _codex.c,
    _opencode.c); aip_stream.c is the core that calls them. */
#ifndef AIP_STREAM_H_INCLUDED
#define AIP_STREAM_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    AIP_FORMAT_TEXT,            //  raw text (not parsed here)
    AIP_FORMAT_CLAUDE,          //  claude-stream-json
    AIP_FORMAT_GEMINI,          //  gemini-stream-json
    AIP_FORMAT_CODEX_SERVER,    //  codex-app-server (JSON-RPC, we drive it)
    AIP_FORMAT_CODEX_EXEC,      //  codex-json (codex exec --json)
    AIP_FORMAT_ACP,             //  opencode-acp (Agent Client Protocol)
    AIP_FORMAT_OPENCODE_RUN,    //  opencode-json (opencode run --format json)
    AIP_FORMAT_COUNT            //  how many formats there are (not one)
} aip_format_t;

typedef enum {
    AIP_STREAM_OK,              //  no error
    AIP_STREAM_ERR_AUTH,        //  not logged in, bad key
    AIP_STREAM_ERR_RATE,        //  rate limit, quota, overloaded
    AIP_STREAM_ERR_API,         //  the model's API or the tool reported a failure
    AIP_STREAM_ERR_RESUME,      //  the session to resume is not there
    AIP_STREAM_ERR_BUDGET,      //  the tool stopped at its cost budget
    AIP_STREAM_ERR_OUTPUT       //  the output itself is broken (line too long, no final event)
} aip_stream_err_t;

//  What a protocol format needs to drive the tool (borrowed)
typedef struct {
    const char *prompt;         //  the turn's text
    size_t prompt_len;
    const char *cwd;            //  absolute working directory
    const char *model;          //  or NULL
    const char *resume_id;      //  session to resume (validated), or NULL
    bool ephemeral;             //  ask the tool to keep nothing on disk
} aip_stream_args_t;

typedef struct _aip_stream_t aip_stream_t;

//  A format by its tools.json name ("claude-stream-json", ...); -1 if none
int aip_format_from_name (const char *name);
const char *aip_format_name (aip_format_t format);
//  Formats where we write requests to the tool's stdin
bool aip_format_is_protocol (aip_format_t format);

//  Is this a session id we store and put in argv? ^[A-Za-z0-9_.:-]{1,128}$
bool aip_session_id_valid (const char *id);

//  tool names the tool in messages; args may be NULL for output-only formats
aip_stream_t *aip_stream_new (aip_format_t format, const char *tool, const aip_stream_args_t *args);
void aip_stream_destroy (aip_stream_t **self_p);

//  Feed bytes of stdout. Returns -1 once the stream is broken (then
//  everything further is ignored).
int aip_stream_feed (aip_stream_t *self, const char *data, size_t len);
//  Stdout ended: a last line without newline is read; -1 if the stream
//  is broken or ended without its final event
int aip_stream_end (aip_stream_t *self);
//  Bytes to write to the tool's stdin now (protocol formats); the caller
//  takes them (free). NULL when there is nothing.
char *aip_stream_output (aip_stream_t *self, size_t *len);

//  The final event arrived (the answer, or the tool's error, is known)
bool aip_stream_done (aip_stream_t *self);
//  The text so far (deltas of the current answer), for progress; bumps
//  *version-style counter aip_stream_changes when it changes
const char *aip_stream_text (aip_stream_t *self, size_t *len);
uint64_t aip_stream_changes (aip_stream_t *self);
//  The final answer (valid when done without error); "" if none
const char *aip_stream_answer (aip_stream_t *self, size_t *len);
//  Usage object (borrowed), never NULL; empty when the tool said nothing
json_t *aip_stream_usage (aip_stream_t *self);
//  The session id the tool reported (validated), or NULL
const char *aip_stream_session_id (aip_stream_t *self);
//  Error kind and message (AIP_STREAM_OK and "" when none)
aip_stream_err_t aip_stream_error (aip_stream_t *self, const char **message);
//  Lines seen and lines skipped (not JSON or unknown)
size_t aip_stream_lines (aip_stream_t *self);

//  A tool's own usage object (tools.json "usage") as the usage object:
//  known keys kept, absurd values and everything else dropped. New object;
//  raw may be NULL.
json_t *aip_usage_normalize (json_t *raw);

void aip_stream_test (bool verbose);

#endif
