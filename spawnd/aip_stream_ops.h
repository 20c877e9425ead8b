/*  aip_stream_ops.h — what a protocol adapter of aip_stream sees (inside
    spawnd only; callers use aip_stream.h).

    The core (aip_stream.c) reads the tool's output into lines, parses each
    line as JSON and keeps the common results: the text so far, the answer,
    the usage object, the session id, the error. It knows nothing of any
    tool's events: each format is an adapter, one ops struct (nng's
    transports), and the core calls it without asking which it holds:

      aip_stream_claude.c     claude-stream-json
      aip_stream_gemini.c     gemini-stream-json
      aip_stream_codex.c      codex-app-server, codex-json
      aip_stream_opencode.c   opencode-acp, opencode-json

    The one table that maps a format to its ops is in aip_stream.c. An
    adapter's own state (ops->state_size bytes, zeroed) is kept by the core
    and handed to every op. */
#ifndef AIP_STREAM_OPS_H_INCLUDED
#define AIP_STREAM_OPS_H_INCLUDED

#include "aip_stream.h"

//  JSON-RPC ids of our requests (protocol formats)
enum { AIP_RPC_INITIALIZE = 1, AIP_RPC_SESSION = 2, AIP_RPC_PROMPT = 3, AIP_RPC_MODEL = 4 };

//  A growing byte buffer with a cap (past it, bytes are counted, not kept)
typedef struct {
    char *data;                 //  NUL-terminated, or NULL
    size_t len;                 //  bytes kept
    size_t cap;                 //  allocated
    size_t max;                 //  keep at most this
    bool cut;                   //  bytes were dropped
} aip_stream_buf_t;

//  One format's adapter
typedef struct {
    const char *name;           //  its tools.json name ("claude-stream-json")
    bool protocol;              //  we drive the tool: requests go to its stdin
    size_t state_size;          //  bytes of the adapter's own state, or 0
    //  The stream is made: send the first requests (or NULL: nothing to send)
    void (*start) (aip_stream_t *self, void *state);
    //  A line in the exact shape of the tool's text delta, taken without a
    //  JSON tree; false: the core parses it and calls event (or NULL)
    bool (*fast_line) (aip_stream_t *self, void *state, const char *line, size_t len);
    //  One JSON object the tool printed (borrowed)
    void (*event) (aip_stream_t *self, void *state, json_t *ev);
} aip_stream_ops_t;

//  The adapters (one table in aip_stream.c maps a format to them)
extern const aip_stream_ops_t aip_stream_claude_ops;
extern const aip_stream_ops_t aip_stream_gemini_ops;
extern const aip_stream_ops_t aip_stream_codex_server_ops;
extern const aip_stream_ops_t aip_stream_codex_exec_ops;
extern const aip_stream_ops_t aip_stream_acp_ops;
extern const aip_stream_ops_t aip_stream_opencode_run_ops;

//  The common state; adapters read it and write it through the helpers
//  below (the fields they set directly are done and skipped)
struct _aip_stream_t {
    const aip_stream_ops_t *ops;  //  the format's adapter
    void *state;                //  the adapter's own state, or NULL
    char *tool;                 //  the tool's name, for messages
    aip_stream_buf_t line;      //  the line being read
    bool line_too_long;         //  ... is past the limit: skip to its end
    size_t lines;               //  lines seen
    size_t skipped;             //  lines not JSON or unknown
    aip_stream_buf_t text;      //  answer text so far (deltas)
    aip_stream_buf_t answer;    //  final answer
    uint64_t changes;           //  text changed this many times
    json_t *usage;              //  the usage object
    char session_id [129];      //  validated, or ""
    bool done;                  //  final event seen
    bool broken;                //  the stream cannot be read further
    aip_stream_err_t err;       //  error kind
    char errmsg [1024];         //  error message
    aip_stream_buf_t out;       //  requests to write (protocol formats)
    char *prompt;               //  protocol formats: the turn's text
    size_t prompt_len;          //  ... its length
    char *cwd;                  //  ... working directory
    char *model;                //  ... model or NULL
    char resume_id [129];       //  ... session to resume or ""
    bool ephemeral;             //  ... keep nothing on disk
    int64_t started;            //  monotonic ms (duration when the tool says none)
};

//  Buffers: append (false when the cap cut it), replace, empty
bool aip_stream_buf_add (aip_stream_buf_t *b, const char *data, size_t len);
void aip_stream_buf_set (aip_stream_buf_t *b, const char *s);
void aip_stream_buf_reset (aip_stream_buf_t *b);

//  Results. The first error is the cause; later ones are not kept
void aip_stream_fail (aip_stream_t *self, aip_stream_err_t kind, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
//  Sort an error text (and an HTTP status, or 0) into a kind
aip_stream_err_t aip_stream_classify (const char *text, int http_status);
//  The text so far: append (a change), start anew
void aip_stream_text_add (aip_stream_t *self, const char *text, size_t len);
void aip_stream_text_reset (aip_stream_t *self);
//  The session id the tool reports: kept only if valid
void aip_stream_session_set (aip_stream_t *self, const char *id);
//  Usage numbers, each kept only if it is one and not absurd; add: sum
void aip_stream_usage_int (aip_stream_t *self, const char *key, json_t *value, bool add);
void aip_stream_usage_cost (aip_stream_t *self, json_t *value);
void aip_stream_usage_model (aip_stream_t *self, const char *model);
void aip_stream_usage_duration (aip_stream_t *self, json_t *value);

//  JSON: a string member (or NULL); is the member this string?
const char *aip_stream_str (json_t *o, const char *key);
bool aip_stream_is (json_t *o, const char *key, const char *value);

//  JSON-RPC to the tool (protocol formats): send takes msg; request takes
//  params; refuse answers a request of the tool with an error; reply with
//  a result (taken)
void aip_stream_send (aip_stream_t *self, json_t *msg);
void aip_stream_request (aip_stream_t *self, int id, const char *method, json_t *params);
void aip_stream_refuse (aip_stream_t *self, json_t *id, const char *why);
void aip_stream_reply (aip_stream_t *self, json_t *id, json_t *result);
//  The text of a JSON-RPC error reply
const char *aip_stream_rpc_error (json_t *msg);

//  Shapes of delta lines (the fast path): a JSON string literal, quotes
//  included, captured from a line
typedef struct {
    const char *at;             //  its first byte (the quote)
    size_t len;                 //  its bytes, quotes included
} aip_stream_span_t;

//  Does the line have exactly this shape? "%s" is a JSON string literal
//  (captured, at most max), "%i" digits; everything else literal bytes
bool aip_stream_shape (const char *line, size_t len, const char *shape,
                       aip_stream_span_t *caps, int max);
//  Add the captured string to the text (false if it is not a valid JSON
//  string: then nothing was added)
bool aip_stream_span_text (aip_stream_t *self, const aip_stream_span_t *span);
//  Is the captured string (no escapes) this value, and not empty?
bool aip_stream_span_is (const aip_stream_span_t *span, const char *value);

//  For the adapters' self-tests: feed text in pieces of piece bytes, then
//  end (*rc is aip_stream_end's); the answer so far
aip_stream_t *aip_stream_test_parse (aip_format_t format, const char *text, size_t piece,
                                     int *rc);
const char *aip_stream_test_answer (aip_stream_t *s);

//  A recorded output of the real CLI (tests/fixtures/tools, see its
//  README): answer, usage and error kind as the fake model gave them
typedef struct {
    aip_format_t format;        //  what the tool printed
    const char *file;           //  under tests/fixtures/tools
    const char *answer;         //  or NULL: an error of kind
    aip_stream_err_t kind;      //  error kind (AIP_STREAM_OK with an answer)
    int input;                  //  usage input_tokens expected with an answer
    int output;                 //  ... output_tokens
    int cache_read;             //  ... cache_read_tokens
} aip_stream_fixture_t;

//  Replay each recorded output through the stream and check what it gives
//  (asserts). A transcript of a protocol format replays what the tool sent;
//  when we resumed a session there, resume_method is our request that did
//  and resume_key its parameter that named it (else both NULL)
void aip_stream_test_fixtures (const aip_stream_fixture_t *cases, size_t count,
                               const char *resume_method, const char *resume_key, bool verbose);

#endif
