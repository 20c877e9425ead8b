/*  aip_jsonrpc.h — the wire side of `ai-peer mcp`: a bounded line reader for
    stdin and the JSON-RPC 2.0 message classifier (one object per line, as
    MCP's stdio transport sends them). It faces whatever the client writes,
    so it is fuzzed (tests/fuzz/fuzz_jsonrpc.c). */
#ifndef AIP_JSONRPC_H_INCLUDED
#define AIP_JSONRPC_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

//  Longest line accepted (a longer one is refused, never held whole)
#define AIP_JSONRPC_MAX_LINE    (1024 * 1024)

//  Standard JSON-RPC error codes
#define AIP_JSONRPC_PARSE_ERROR      -32700
#define AIP_JSONRPC_INVALID_REQUEST  -32600
#define AIP_JSONRPC_METHOD_NOT_FOUND -32601
#define AIP_JSONRPC_INVALID_PARAMS   -32602
#define AIP_JSONRPC_INTERNAL_ERROR   -32603

typedef struct _aip_jsonrpc_line_t aip_jsonrpc_line_t;

//  A complete line (without its newline), or too_long with line NULL for a
//  line over the limit (whose bytes were dropped as they came)
typedef void (aip_jsonrpc_line_fn) (void *arg, const char *line, size_t len, bool too_long);

//  A reader of lines at most max bytes long (0: AIP_JSONRPC_MAX_LINE)
aip_jsonrpc_line_t *aip_jsonrpc_line_new (size_t max);
void aip_jsonrpc_line_destroy (aip_jsonrpc_line_t **self_p);
//  Feed bytes as they arrive; fn is called for each line they complete
void aip_jsonrpc_line_feed (aip_jsonrpc_line_t *self, const char *data, size_t size,
                            aip_jsonrpc_line_fn *fn, void *arg);
//  End of input: a last line without a newline is delivered too
void aip_jsonrpc_line_finish (aip_jsonrpc_line_t *self, aip_jsonrpc_line_fn *fn, void *arg);

typedef enum {
    AIP_JSONRPC_REQUEST,        //  method + id: answer it
    AIP_JSONRPC_NOTIFICATION,   //  method, no id: never answered
    AIP_JSONRPC_RESPONSE,       //  result or error with an id (to a request of ours)
    AIP_JSONRPC_INVALID         //  answer with code and error (id when known)
} aip_jsonrpc_kind_t;

typedef struct {
    aip_jsonrpc_kind_t kind;
    json_t *root;               //  the parsed line (owned), or NULL
    json_t *id;                 //  borrowed from root: string or integer, or NULL
    const char *method;         //  borrowed, for requests and notifications
    json_t *params;             //  borrowed: object or array, or NULL
    int code;                   //  INVALID: the JSON-RPC error code
    char error [256];           //  INVALID: what is wrong
} aip_jsonrpc_msg_t;

//  Classify one line. Blank lines return -1 with kind INVALID and code 0
//  (ignore them); everything else returns 0 with msg filled.
int aip_jsonrpc_parse (const char *line, size_t len, aip_jsonrpc_msg_t *msg);
void aip_jsonrpc_msg_free (aip_jsonrpc_msg_t *msg);

//  Replies (caller owns): {jsonrpc, id, result} and {jsonrpc, id, error}
//  (id NULL: null). result is taken over.
json_t *aip_jsonrpc_result (json_t *id, json_t *result);
json_t *aip_jsonrpc_error (json_t *id, int code, const char *message);

void aip_jsonrpc_test (bool verbose);

#endif
