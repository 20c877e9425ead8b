/*  aip_adapter.h — how each AI tool is run and how its answer is read.

    Built in: claude, codex, opencode, gemini, with the command lines that
    current releases accept (DESIGN.md §7b). Users add or override tools in
    $AI_PEERS_HOME/tools.json (see docs/invite.md):

      {"tools": {"mytool": {"argv": ["mytool", "--quiet", "{model_args}"],
                            "model_args": ["--model", "{model}"],
                            "prompt": "stdin" | "file",   ({prompt_file} in argv)
                            "format": "claude-stream-json" | "gemini-stream-json"
                                    | "codex-app-server" | "codex-json"
                                    | "opencode-acp" | "opencode-json" | "text",
                            "resume_args": ["--resume", "{session_id}"],
                            "ephemeral_args": ["--no-session-persistence"],
                            "max_cost_args": ["--max-budget-usd", "{max_cost}"],
                            "output": "text" | "json" | "ndjson",  (format "text")
                            "answer": "result",           (dotted JSON path)
                            "event": {"type": "text"},    (ndjson: answer events)
                            "error_flag": "is_error", "usage": "usage",
                            "env": {"K": "V"}, "unset_env": ["X"],
                            "errors_on": "stderr" | "stdout",
                            "install": "...", "login": "..."}}}

    The adapter also turns a failed run into an error in the tool's own
    words, and repairs what a tool prints (invalid UTF-8, ANSI escapes). */
#ifndef AIP_ADAPTER_H_INCLUDED
#define AIP_ADAPTER_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "aip_stream.h"

typedef enum { AIP_PROMPT_STDIN, AIP_PROMPT_FILE } aip_prompt_via_t;
typedef enum { AIP_OUT_TEXT, AIP_OUT_JSON, AIP_OUT_NDJSON } aip_out_mode_t;

typedef struct {
    char *name;                 //  what --tool names
    char **argv;                //  template, NULL-terminated; argv [0] is the binary
    char **model_args;          //  spliced at {model_args} (or appended) with --model
    aip_prompt_via_t prompt_via;    //  stdin, or a temp file named by {prompt_file}
    aip_out_mode_t output;      //  how stdout carries the answer
    char *answer_path;          //  json/ndjson: dotted path of the answer text
    char *event_key;            //  ndjson: events whose event_key ...
    char *event_value;          //  ... equals this carry the answer
    char *error_path;           //  json/ndjson: a true value here means failure
    char *usage_path;           //  json/ndjson: token usage object
    char **env_set;             //  "K=V" added to the environment
    char **env_unset;           //  names removed from the environment
    bool errors_on_stdout;      //  the tool explains failures on stdout (claude)
    char *install_hint;         //  how to install it
    char *login_hint;           //  how to log in
    bool configured;            //  from tools.json (else built in)
    aip_format_t format;        //  structured output (AIP_FORMAT_TEXT: see output)
    char **resume_args;         //  to resume {session_id}, or NULL (no resume)
    char **ephemeral_args;      //  to keep no session on disk, or NULL
    char **max_cost_args;       //  to cap the cost at {max_cost} USD, or NULL
    char **fallback_argv;       //  a protocol server cannot run: this instead, or NULL
    aip_format_t fallback_format;   //  ... in this format
    char **fallback_ephemeral_args; //  ... and to keep no session on disk, or NULL
} aip_tool_t;

//  What one run adds to the command line
typedef struct {
    const char *model;          //  or NULL
    const char *prompt_file;    //  {prompt_file}, or NULL
    const char *session_id;     //  resume this (validated), or NULL
    bool ephemeral;             //  keep no session on disk
    const char *max_cost;       //  USD, or NULL
    bool fallback;              //  use fallback_argv
} aip_tool_run_t;

typedef struct _aip_adapter_t aip_adapter_t;

//  Built-in tools plus those of home/tools.json (home may be NULL). A bad
//  tools.json is reported in warning (the built-ins still work).
aip_adapter_t *aip_adapter_new (const char *home, char *warning, size_t warnlen);
void aip_adapter_destroy (aip_adapter_t **self_p);
//  A tool by name ("claude-code" is claude, and the other way), or NULL
const aip_tool_t *aip_adapter_find (aip_adapter_t *self, const char *name);
size_t aip_adapter_count (aip_adapter_t *self);
const aip_tool_t *aip_adapter_at (aip_adapter_t *self, size_t index);
//  The names of the tools whose binary is on PATH, "a,b,c" (cut to size)
void aip_adapter_installed (aip_adapter_t *self, char *buf, size_t size);

//  Find a binary on $PATH (or check an absolute path); 0 with its path
int aip_which (const char *binary, char *path, size_t size);

//  The command for one run: argv (argv [0] resolved on PATH) and envp,
//  both NULL-terminated, for aip_strv_free. -1 with err when the binary is
//  not installed.
int aip_tool_command (const aip_tool_t *tool, const aip_tool_run_t *run, char ***argv,
                      char ***envp, char *err, size_t errlen);
void aip_strv_free (char ***strv_p);

//  Read the answer from stdout. *answer (caller frees) may be empty;
//  *usage is set when the tool reported token usage; *is_error when the
//  tool flagged its output as an error. -1 when structured output could
//  not be parsed (err says why).
int aip_tool_answer (const aip_tool_t *tool, const char *out, size_t len, char **answer,
                     json_t **usage, bool *is_error, char *err, size_t errlen);

//  The tool's own words: the first lines of text (ANSI escapes removed,
//  whitespace trimmed, bounded), into buf
void aip_tool_words (const char *text, size_t len, char *buf, size_t size);
//  Does this text say the tool is not logged in / has no credentials?
bool aip_tool_auth_failure (const char *text);

//  A copy of s with invalid UTF-8 replaced by U+FFFD and NULs dropped;
//  caller frees
char *aip_utf8_repair (const char *s, size_t len, size_t *out_len);

void aip_adapter_test (bool verbose);

#endif
