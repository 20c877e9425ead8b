/*  mcp.h — `ai-peer mcp`: the MCP tools as a table. Each tool is one row:
    the CLI command that does the work, its arguments (JSON keys mapped to
    the command's flags, the JSON Schema made from them) and the keys of
    the data it returns. A tool call becomes the command's argv, so the CLI
    and MCP share every line of command logic. */
#ifndef MCP_H_INCLUDED
#define MCP_H_INCLUDED

#include "cli.h"

//  Kinds of tool arguments
typedef enum {
    MCP_STR,                    //  a string: --flag VALUE (or a positional)
    MCP_INT,                    //  an integer in [min, max]
    MCP_NUM,                    //  a number in (min, max]: --flag 0.5
    MCP_BOOL,                   //  true: --flag
    MCP_LIST                    //  an array of names: --flag a,b
} mcp_kind_t;

typedef struct {
    const char *key;            //  JSON key; NULL ends a list
    const char *flag;           //  "--room", or NULL for a positional
    mcp_kind_t kind;            //  its type
    bool required;              //  must be given
    long min, max;              //  MCP_INT and MCP_NUM bounds
    const char *values;         //  MCP_STR: allowed values "a|b", or NULL
    const char *description;    //  for the schema
} mcp_arg_t;

typedef struct {
    const char *name;           //  the tool's name (the contract)
    const char *description;    //  what it does, for the agent
    cli_cmd_fn *fn;             //  the command; NULL: the server's own (wait_messages)
    const char *word;           //  first argv word (room create: "create"), or NULL
    const mcp_arg_t *args;      //  its arguments
    const char *output;         //  data keys "key:type,..." (type: string, object, ...)
    bool long_running;          //  reports progress while it runs
} mcp_tool_t;

//  The tools, ending with a NULL name
extern const mcp_tool_t mcp_tools [];

//  A tool by name, or NULL
const mcp_tool_t *mcp_tool_find (const char *name);
//  The tools/list answer's "tools" array (caller owns)
json_t *mcp_tools_json (void);
//  The command's argv for a call's arguments (argv [0] is the first
//  argument, as commands get it); -1 with a message naming the bad
//  argument. Free with mcp_argv_free.
int mcp_tool_argv (const mcp_tool_t *tool, json_t *arguments, char ***argv, int *argc,
                   char *err, size_t errlen);
void mcp_argv_free (char **argv, int argc);

//  Agent config files (mcp install, hooks install): read a JSON object
//  from path (absent: empty), write it back atomically
json_t *mcp_config_load (const char *path, char *err, size_t errlen);
int mcp_config_save (const char *path, json_t *config, char *err, size_t errlen);
//  ai-peer mcp install|uninstall TOOL [--scope user|project]
int mcp_install (cli_t *cli, bool install, int argc, char **argv);

#endif
