/*  mcp_tools.c — the MCP tools of `ai-peer mcp`, one row each, their JSON
    Schemas, and a call's arguments turned into the command's argv. */
#include "mcp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARG_END { NULL, NULL, MCP_STR, false, 0, 0, NULL, NULL }
#define TIMEOUT_ARG(what) { "timeout", "--timeout", MCP_INT, false, 1, AIP_MAX_TOOL_TIMEOUT_S, \
                            NULL, what }
#define MAX_TOKENS_ARG(what) { "max_tokens", "--max-tokens", MCP_INT, false, 1, \
                               AIP_MAX_TOKEN_BUDGET, NULL, what }

static const mcp_arg_t s_room_create [] = {
    { "name", NULL, MCP_STR, false, 0, 0, NULL, "the room's name (default \"default\")" },
    { "password", "--password", MCP_STR, false, 0, 0, NULL,
      "end-to-end encrypt the room with this password" },
    { "cipher", "--cipher", MCP_STR, false, 0, 0, "aip1|fernet",
      "encryption format (aip1, or fernet: the original's)" },
    { "relay", "--relay", MCP_STR, false, 0, 0, NULL,
      "a public room on this relay: \"default\" or a URL" },
    { "lan", "--lan", MCP_BOOL, false, 0, 0, NULL, "a LAN room this machine hubs" },
    ARG_END
};

static const mcp_arg_t s_no_args [] = { ARG_END };

static const mcp_arg_t s_room_join [] = {
    { "room", NULL, MCP_STR, true, 0, 0, NULL,
      "a room id, or a connection string peer://... or peer+lan://..." },
    { "relay", "--relay", MCP_STR, false, 0, 0, NULL, "the relay URL (with a room id)" },
    { "token", "--token", MCP_STR, false, 0, 0, NULL, "the room token (with a room id)" },
    { "password", "--password", MCP_STR, false, 0, 0, NULL, "the password of an encrypted room" },
    { "lan", "--lan", MCP_BOOL, false, 0, 0, NULL, "find the room's hub on this network" },
    ARG_END
};

static const mcp_arg_t s_room_only [] = {
    { "room", NULL, MCP_STR, true, 0, 0, NULL, "the room id" },
    ARG_END
};

static const mcp_arg_t s_chat_send [] = {
    { "room", NULL, MCP_STR, true, 0, 0, NULL, "the room id" },
    { "message", NULL, MCP_STR, true, 0, 0, NULL, "the text to post (at most 256 KiB)" },
    { "as", "--as", MCP_STR, false, 0, 0, NULL, "display name (default: your tool's name)" },
    ARG_END
};

static const mcp_arg_t s_chat_read [] = {
    { "room", NULL, MCP_STR, true, 0, 0, NULL, "the room id" },
    { "n", "-n", MCP_INT, false, 1, 1000000, NULL, "how many of the newest messages (20)" },
    ARG_END
};

static const mcp_arg_t s_wait_messages [] = {
    { "room", NULL, MCP_STR, false, 0, 0, NULL,
      "only this room (default: every room you joined)" },
    { "timeout_s", NULL, MCP_INT, false, 0, 300, NULL,
      "how long to wait for a message, in seconds (default 60, at most 300)" },
    { "n", NULL, MCP_INT, false, 1, AIP_MAX_PAGE, NULL, "at most this many messages (50)" },
    ARG_END
};

static const mcp_arg_t s_invite [] = {
    { "tool", "--tool", MCP_STR, true, 0, 0, NULL,
      "the AI tool to run: claude, codex, opencode, gemini, or one of tools.json" },
    { "room", "--room", MCP_STR, true, 0, 0, NULL, "the room whose history it reads" },
    { "context", "--context", MCP_STR, false, 0, 0, NULL, "extra instructions for it" },
    TIMEOUT_ARG ("seconds before the tool is killed (120)"),
    { "cwd", "--cwd", MCP_STR, false, 0, 0, NULL, "the directory it runs in" },
    { "model", "--model", MCP_STR, false, 0, 0, NULL, "the model it uses" },
    { "history", "--history", MCP_INT, false, 1, AIP_MAX_PROMPT_HISTORY, NULL,
      "messages of history in its prompt (30)" },
    { "async", "--async", MCP_BOOL, false, 0, 0, NULL,
      "answer at once with a job id (then job_wait)" },
    { "fresh", "--fresh", MCP_BOOL, false, 0, 0, NULL,
      "start a new session of the tool instead of resuming its last one in the room" },
    { "sessions", "--sessions", MCP_BOOL, false, 0, 0, NULL,
      "in a password room, let the tool keep its session too" },
    { "max_cost", "--max-cost", MCP_NUM, false, 0, 10000, NULL,
      "a spending cap in USD for tools that take one (claude); more than 0, at most 10000" },
    ARG_END
};

static const mcp_arg_t s_quick [] = {
    { "question", NULL, MCP_STR, true, 0, 0, NULL, "the question" },
    { "tools", "--tools", MCP_LIST, true, 0, 0, NULL, "the AI tools to ask, at once" },
    { "name", "--name", MCP_STR, false, 0, 0, NULL, "the new room's name (quick)" },
    TIMEOUT_ARG ("seconds each tool may take (120)"),
    { "cwd", "--cwd", MCP_STR, false, 0, 0, NULL, "the directory the tools run in" },
    { "password", "--password", MCP_STR, false, 0, 0, NULL, "encrypt the new room" },
    MAX_TOKENS_ARG ("report which answers took the tokens of all the tools past N"),
    ARG_END
};

static const mcp_arg_t s_discuss [] = {
    { "tools", "--tools", MCP_LIST, true, 0, 0, NULL, "two or more AI tools, in turn" },
    { "rounds", "--rounds", MCP_INT, false, 1, AIP_MAX_DISCUSS_ROUNDS, NULL, "rounds (2)" },
    { "room", "--room", MCP_STR, false, 0, 0, NULL, "continue in this room" },
    { "context", "--context", MCP_STR, false, 0, 0, NULL, "the topic" },
    TIMEOUT_ARG ("seconds each turn may take (120)"),
    { "cwd", "--cwd", MCP_STR, false, 0, 0, NULL, "the directory the tools run in" },
    { "follow_mentions", "--follow-mentions", MCP_INT, false, 0, AIP_MAX_FOLLOW_MENTIONS, NULL,
      "also invite a tool an answer @mentions, at most N hops" },
    MAX_TOKENS_ARG ("start no turn once the tools' input + output tokens reach N"),
    ARG_END
};

static const mcp_arg_t s_export [] = {
    { "room", NULL, MCP_STR, true, 0, 0, NULL, "the room id" },
    { "format", "--format", MCP_STR, false, 0, 0, "md|json", "md (default) or json" },
    { "output", "--output", MCP_STR, false, 0, 0, NULL, "write it to this file instead" },
    ARG_END
};

static const mcp_arg_t s_job_wait [] = {
    { "job", NULL, MCP_STR, true, 0, 0, NULL, "the job id (invite with async)" },
    TIMEOUT_ARG ("seconds to wait at most"),
    ARG_END
};

#define MESSAGE_LIST "messages:array"

const mcp_tool_t mcp_tools [] = {
    { "room_create", "Create a chat room (local, LAN or public on a relay; optionally "
      "end-to-end encrypted). You join it.", cmd_room, "create", s_room_create,
      "id:string,name:string,mode:string,created_at:string,connection_string:string,"
      "encrypted:boolean", false },
    { "room_list", "List all rooms, newest first.", cmd_room, "list", s_no_args,
      "rooms:array", false },
    { "room_join", "Join a room by id or connection string (peer://... for a relay, "
      "peer+lan://... for a LAN hub).", cmd_room, "join", s_room_join,
      "joined:string,relay:string,remote_info:any", false },
    { "room_delete", "Delete a room and its messages from this machine.", cmd_room, "delete",
      s_room_only, "deleted:string", false },
    { "chat_send", "Post a message to a room, as your own AI peer.", cmd_chat, NULL, s_chat_send,
      "sent:object,warning:string", false },
    { "chat_read", "Read the newest messages of a room (joining it); they count as seen.",
      cmd_chat, NULL, s_chat_read, MESSAGE_LIST ",relay_ok:boolean", false },
    { "wait_messages", "Messages from others you have not seen yet; when there are none, wait "
      "for the next one (up to timeout_s). Each message is delivered once.", NULL, NULL,
      s_wait_messages, "peer:string," MESSAGE_LIST ",more:boolean,timed_out:boolean", true },
    { "invite", "Run an AI tool with the room's history as its prompt and post its answer "
      "to the room. Long: reports progress.", cmd_invite, NULL, s_invite,
      "tool:string,response:string,room:string,mentions:array,job:string,usage:object", true },
    { "quick", "Ask several AI tools one question at once in a new room.", cmd_quick, NULL,
      s_quick, "room:string,question:string,tools:array,responses:object,conversation:array",
      true },
    { "discuss", "Rounds of discussion between two or more AI tools, each seeing everything "
      "said before.", cmd_discuss, NULL, s_discuss,
      "room:string,tools:array,rounds:integer,total_invites:integer,log:array,"
      "conversation:array", true },
    { "export", "A room's whole conversation as Markdown or JSON.", cmd_export, NULL, s_export,
      "markdown:string,messages:any,room:object,peers:array,exported:string,format:string",
      false },
    { "discover", "The AI tools installed here (and LAN peers heard).", cmd_discover, NULL,
      s_no_args, "discovered:array,registered:integer,lan_peers:array", true },
    { "jobs", "The asynchronous invites (invite with async) and their state.", cmd_jobs, NULL,
      s_no_args, "jobs:array", false },
    { "job_wait", "Wait for an asynchronous invite and return its result.", cmd_wait, NULL,
      s_job_wait, "tool:string,response:string,room:string", true },
    { NULL, NULL, NULL, NULL, NULL, NULL, false }
};

const mcp_tool_t *
mcp_tool_find (const char *name)
{
    for (const mcp_tool_t *t = mcp_tools; t->name; t++)
        if (strcmp (t->name, name) == 0)
            return t;
    return NULL;
}

static json_t *
s_input_schema (const mcp_tool_t *tool)
{
    json_t *props = json_object ();
    json_t *required = json_array ();
    for (const mcp_arg_t *a = tool->args; a->key; a++) {
        json_t *p = json_object ();
        switch (a->kind) {
            case MCP_STR:
                json_object_set_new (p, "type", json_string ("string"));
                if (a->values) {
                    json_t *list = json_array ();
                    char buf [128];
                    snprintf (buf, sizeof buf, "%s", a->values);
                    char *save = NULL;
                    for (char *v = strtok_r (buf, "|", &save); v; v = strtok_r (NULL, "|", &save))
                        json_array_append_new (list, json_string (v));
                    json_object_set_new (p, "enum", list);
                }
                break;
            case MCP_INT:
                json_object_set_new (p, "type", json_string ("integer"));
                json_object_set_new (p, "minimum", json_integer (a->min));
                json_object_set_new (p, "maximum", json_integer (a->max));
                break;
            case MCP_NUM:
                json_object_set_new (p, "type", json_string ("number"));
                json_object_set_new (p, "exclusiveMinimum", json_integer (a->min));
                json_object_set_new (p, "maximum", json_integer (a->max));
                break;
            case MCP_BOOL:
                json_object_set_new (p, "type", json_string ("boolean"));
                break;
            case MCP_LIST:
                json_object_set_new (p, "type", json_string ("array"));
                json_object_set_new (p, "items", json_pack ("{s:s}", "type", "string"));
                json_object_set_new (p, "minItems", json_integer (1));
                break;
        }
        json_object_set_new (p, "description", json_string (a->description));
        json_object_set_new (props, a->key, p);
        if (a->required)
            json_array_append_new (required, json_string (a->key));
    }
    json_t *schema = json_pack ("{s:s, s:o, s:b}", "type", "object", "properties", props,
                                "additionalProperties", 0);
    if (json_array_size (required))
        json_object_set_new (schema, "required", required);
    else
        json_decref (required);
    return schema;
}

static json_t *
s_output_schema (const mcp_tool_t *tool)
{
    json_t *props = json_object ();
    char buf [512];
    snprintf (buf, sizeof buf, "%s", tool->output);
    char *save = NULL;
    for (char *kv = strtok_r (buf, ",", &save); kv; kv = strtok_r (NULL, ",", &save)) {
        char *colon = strchr (kv, ':');
        if (!colon)
            continue;
        *colon = 0;
        json_t *p = json_object ();
        if (strcmp (colon + 1, "any") != 0)
            json_object_set_new (p, "type", json_string (colon + 1));
        json_object_set_new (props, kv, p);
    }
    return json_pack ("{s:s, s:o}", "type", "object", "properties", props);
}

json_t *
mcp_tools_json (void)
{
    json_t *list = json_array ();
    for (const mcp_tool_t *t = mcp_tools; t->name; t++)
        json_array_append_new (list, json_pack ("{s:s, s:s, s:o, s:o}", "name", t->name,
                                                "description", t->description,
                                                "inputSchema", s_input_schema (t),
                                                "outputSchema", s_output_schema (t)));
    return list;
}

void
mcp_argv_free (char **argv, int argc)
{
    for (int i = 0; argv && i < argc; i++)
        free (argv [i]);
    free (argv);
}

//  The command-line text of one string, number or list argument; -1 with
//  the reason in err when the value is not of its kind
static int
s_arg_text (const mcp_arg_t *a, json_t *v, char **text, char *err, size_t errlen)
{
    *text = NULL;
    if (a->kind == MCP_STR) {
        if (!json_is_string (v)) {
            snprintf (err, errlen, "'%s' must be a string", a->key);
            return -1;
        }
        if (strlen (json_string_value (v)) != json_string_length (v)) {
            snprintf (err, errlen, "'%s' must not contain NUL characters", a->key);
            return -1;
        }
        *text = strdup (json_string_value (v));
        return 0;
    }
    if (a->kind == MCP_INT) {
        if (!json_is_integer (v) || json_integer_value (v) < a->min
        ||  json_integer_value (v) > a->max) {
            snprintf (err, errlen, "'%s' must be a whole number from %ld to %ld", a->key,
                      a->min, a->max);
            return -1;
        }
        if (asprintf (text, "%lld", (long long) json_integer_value (v)) < 0)
            *text = NULL;
        return 0;
    }
    if (a->kind == MCP_NUM) {
        //  A plain decimal, as the flag takes it: at most 6 places, no
        //  exponent, trailing zeros dropped
        double value = json_number_value (v);
        char buf [64] = "";
        if (json_is_number (v) && value > a->min && value <= a->max)
            snprintf (buf, sizeof buf, "%.6f", value);
        size_t len = strlen (buf);
        while (len && strchr (buf, '.') && (buf [len - 1] == '0' || buf [len - 1] == '.'))
            buf [--len] = 0;
        if (!len || strspn (buf, "0.") == len) {
            snprintf (err, errlen, "'%s' must be a number more than %ld and at most %ld", a->key,
                      a->min, a->max);
            return -1;
        }
        *text = strdup (buf);
        return 0;
    }
    //  MCP_LIST: names joined with commas
    size_t size = 1, i;
    json_t *item;
    if (!json_is_array (v) || json_array_size (v) == 0) {
        snprintf (err, errlen, "'%s' must be a non-empty array of names", a->key);
        return -1;
    }
    json_array_foreach (v, i, item) {
        const char *name = json_string_value (item);
        if (!name || !*name || strchr (name, ',') || strlen (name) > AIP_MAX_ID) {
            snprintf (err, errlen, "'%s' must list tool names (strings of letters, digits, "
                      "'_' or '-')", a->key);
            return -1;
        }
        size += strlen (name) + 1;
    }
    *text = (char *) calloc (1, size);
    if (*text)
        json_array_foreach (v, i, item) {
            if (i)
                strcat (*text, ",");
            strcat (*text, json_string_value (item));
        }
    return 0;
}

int
mcp_tool_argv (const mcp_tool_t *tool, json_t *arguments, char ***argv_p, int *argc_p,
               char *err, size_t errlen)
{
    *argv_p = NULL;
    *argc_p = 0;
    if (arguments && !json_is_object (arguments)) {
        snprintf (err, errlen, "the arguments of %s must be an object", tool->name);
        return -1;
    }
    //  Every key must be one of the tool's
    const char *key;
    json_t *value;
    json_object_foreach (arguments, key, value) {
        const mcp_arg_t *a = tool->args;
        while (a->key && strcmp (a->key, key) != 0)
            a++;
        if (!a->key) {
            char names [512] = "";
            for (a = tool->args; a->key; a++)
                snprintf (names + strlen (names), sizeof names - strlen (names), "%s%s",
                          *names ? ", " : "", a->key);
            snprintf (err, errlen, "unknown argument '%.64s' for %s (it takes: %s)", key,
                      tool->name, *names ? names : "no arguments");
            return -1;
        }
    }
    size_t nargs = 0;
    for (const mcp_arg_t *a = tool->args; a->key; a++)
        nargs++;
    //  word, each flag and value, "--", positionals
    char **argv = (char **) calloc (2 * nargs + 3, sizeof (char *));
    char **pos = (char **) calloc (nargs + 1, sizeof (char *));
    int argc = 0, npos = 0;
    if (!argv || !pos) {
        free (argv);
        free (pos);
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    if (tool->word)
        argv [argc++] = strdup (tool->word);
    int rc = 0;
    for (const mcp_arg_t *a = tool->args; a->key && rc == 0; a++) {
        json_t *v = json_object_get (arguments, a->key);
        if (!v || json_is_null (v)) {
            if (a->required) {
                snprintf (err, errlen, "%s needs the argument '%s' (%s)", tool->name, a->key,
                          a->description);
                rc = -1;
            }
            continue;
        }
        if (a->kind == MCP_BOOL) {
            if (!json_is_boolean (v)) {
                snprintf (err, errlen, "'%s' must be true or false", a->key);
                rc = -1;
            }
            else
            if (json_is_true (v))
                argv [argc++] = strdup (a->flag);
            continue;
        }
        char *text = NULL;
        rc = s_arg_text (a, v, &text, err, errlen);
        if (rc || !text) {
            free (text);
            if (!rc) {
                snprintf (err, errlen, "out of memory");
                rc = -1;
            }
            break;
        }
        if (a->flag) {
            argv [argc++] = strdup (a->flag);
            argv [argc++] = text;
        }
        else
            pos [npos++] = text;
    }
    if (rc == 0 && npos) {
        argv [argc++] = strdup ("--");
        for (int i = 0; i < npos; i++)
            argv [argc++] = pos [i];
        npos = 0;
    }
    for (int i = 0; i < npos; i++)
        free (pos [i]);
    free (pos);
    if (rc) {
        mcp_argv_free (argv, argc);
        return -1;
    }
    *argv_p = argv;
    *argc_p = argc;
    return 0;
}

json_t *
mcp_config_load (const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = aip_file_read (path, 16 * 1024 * 1024, &len);
    if (!text) {
        if (errno == ENOENT)
            return json_object ();
        snprintf (err, errlen, "cannot read %s: %s", path, strerror (errno));
        return NULL;
    }
    if (aip_blank (text, len)) {
        free (text);
        return json_object ();
    }
    json_error_t jerr;
    json_t *config = json_loadb (text, len, 0, &jerr);
    free (text);
    if (!json_is_object (config)) {
        snprintf (err, errlen, "%s is not a JSON object (%s, line %d): fix or move it first, "
                  "nothing was changed", path, config ? "another JSON value" : jerr.text,
                  config ? 0 : jerr.line);
        json_decref (config);
        return NULL;
    }
    return config;
}

int
mcp_config_save (const char *path, json_t *config, char *err, size_t errlen)
{
    char *text = json_dumps (config, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
    if (!text) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    size_t len = strlen (text);
    char *withnl = (char *) malloc (len + 2);
    int rc = -1;
    if (withnl) {
        memcpy (withnl, text, len);
        withnl [len] = '\n';
        withnl [len + 1] = 0;
        rc = aip_file_write_atomic (path, withnl, len + 1, 0644);
        if (rc)
            snprintf (err, errlen, "cannot write %s: %s", path, strerror (errno));
    }
    free (withnl);
    free (text);
    return rc;
}
