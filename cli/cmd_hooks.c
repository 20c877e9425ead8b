/*  cmd_hooks.c — registering ai-peer in agents' own config files:
    `ai-peer mcp install|uninstall claude-code|codex|gemini|opencode` (the
    MCP server) and `ai-peer hooks install|uninstall|status claude-code`
    and `ai-peer hooks install|uninstall|status claude-code|gemini|codex` (room
    news delivered into a running agent session). Every edit
    merges into what is there, is idempotent, and removes only our entry. */
#include "mcp.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Our entry's name in the agents' MCP server lists
#define SERVER_NAME "ai-peer"
//  Our block in codex's config.toml
#define TOML_BEGIN  "# >>> ai-peer mcp (managed by 'ai-peer mcp install codex')"
#define TOML_END    "# <<< ai-peer mcp"

//  This program's path (the daemons and agents call it by it)
static int
s_exe (cli_t *cli, char *buf, size_t size)
{
    char dir [AIP_PATH_MAX];
    if (aip_exe_dir (dir, sizeof dir))
        return cli_fail (cli, "cannot tell where ai-peer is installed (/proc/self/exe)");
    snprintf (buf, size, "%s/ai-peer", dir);
    return 0;
}

static int
s_home_dir (cli_t *cli, char *buf, size_t size)
{
    const char *home = getenv ("HOME");
    if (!home || !*home)
        return cli_fail (cli, "$HOME is not set: cannot find the user's config");
    snprintf (buf, size, "%s", home);
    return 0;
}

//  The directory of path, created (mode 0755) when missing
static int
s_parent (cli_t *cli, const char *path)
{
    char dir [AIP_PATH_MAX];
    snprintf (dir, sizeof dir, "%s", path);
    char *slash = strrchr (dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    if (aip_mkdir_p (dir, 0755))
        return cli_fail (cli, "cannot create %s: %s", dir, strerror (errno));
    return 0;
}

//  --scope user|project (default dflt)
static int
s_scope (cli_t *cli, const cli_opt_t *opt, const char *dflt, bool *user)
{
    const char *scope = opt->present ? opt->value : dflt;
    if (strcmp (scope, "user") != 0 && strcmp (scope, "project") != 0)
        return cli_fail (cli, "--scope must be 'user' or 'project', not '%.32s'", scope);
    *user = strcmp (scope, "user") == 0;
    return 0;
}

//  ---------------------------------------------------------------------
//  MCP servers

typedef enum { AGENT_CLAUDE, AGENT_CODEX, AGENT_GEMINI, AGENT_OPENCODE } s_agent_t;

static int
s_agent (cli_t *cli, const char *name, s_agent_t *agent)
{
    if (strcmp (name, "claude-code") == 0 || strcmp (name, "claude") == 0)
        *agent = AGENT_CLAUDE;
    else
    if (strcmp (name, "codex") == 0)
        *agent = AGENT_CODEX;
    else
    if (strcmp (name, "gemini") == 0)
        *agent = AGENT_GEMINI;
    else
    if (strcmp (name, "opencode") == 0)
        *agent = AGENT_OPENCODE;
    else
        return cli_fail (cli, "unknown agent '%.64s': use claude-code, codex, gemini or opencode",
                         name);
    return 0;
}

static const char *s_agent_tool [] = { "claude-code", "codex", "gemini", "opencode" };

//  Where an agent keeps its MCP servers
static int
s_mcp_path (cli_t *cli, s_agent_t agent, bool user, char *path, size_t size)
{
    char home [AIP_PATH_MAX], cwd [AIP_PATH_MAX];
    if (user && s_home_dir (cli, home, sizeof home))
        return -1;
    if (!user && !getcwd (cwd, sizeof cwd))
        return cli_fail (cli, "cannot read the current directory: %s", strerror (errno));
    const char *base = user ? home : cwd;
    switch (agent) {
        case AGENT_CLAUDE:
            snprintf (path, size, "%s/%s", base, user ? ".claude.json" : ".mcp.json");
            break;
        case AGENT_GEMINI:
            snprintf (path, size, "%s/.gemini/settings.json", base);
            break;
        case AGENT_OPENCODE:
            if (user) {
                const char *xdg = getenv ("XDG_CONFIG_HOME");
                if (xdg && *xdg)
                    snprintf (path, size, "%s/opencode/opencode.json", xdg);
                else
                    snprintf (path, size, "%s/.config/opencode/opencode.json", home);
            }
            else
                snprintf (path, size, "%s/opencode.json", cwd);
            break;
        case AGENT_CODEX:
            if (user) {
                const char *codex_home = getenv ("CODEX_HOME");
                if (codex_home && *codex_home)
                    snprintf (path, size, "%s/config.toml", codex_home);
                else
                    snprintf (path, size, "%s/.codex/config.toml", home);
            }
            else
                snprintf (path, size, "%s/.codex/config.toml", cwd);
            break;
    }
    return 0;
}

//  A TOML basic string
static void
s_toml_string (FILE *out, const char *s)
{
    fputc ('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf (out, "\\%c", *s);
        else
        if ((unsigned char) *s < 0x20)
            fprintf (out, "\\u%04x", (unsigned char) *s);
        else
            fputc (*s, out);
    }
    fputc ('"', out);
}

//  codex: our block in config.toml, delimited by marker lines
static int
s_codex_edit (cli_t *cli, const char *path, bool install, const char *exe, bool *changed)
{
    size_t len = 0;
    char *text = aip_file_read (path, 4 * 1024 * 1024, &len);
    if (!text && errno != ENOENT)
        return cli_fail (cli, "cannot read %s: %s", path, strerror (errno));
    char *kept = NULL;
    size_t kept_size = 0;
    FILE *out = open_memstream (&kept, &kept_size);
    if (!out) {
        free (text);
        return cli_fail (cli, "cannot edit %s: out of memory", path);
    }
    //  Everything but our block
    bool in_block = false, had = false, foreign = false;
    for (char *line = text, *next; line && *line; line = next) {
        char *nl = strchr (line, '\n');
        next = nl ? nl + 1 : line + strlen (line);
        size_t llen = (size_t) (next - line);
        if (strncmp (line, TOML_BEGIN, strlen (TOML_BEGIN)) == 0) {
            in_block = had = true;
            continue;
        }
        if (in_block) {
            if (strncmp (line, TOML_END, strlen (TOML_END)) == 0)
                in_block = false;
            continue;
        }
        if (strncmp (line, "[mcp_servers.ai-peer]", 21) == 0
        ||  strncmp (line, "[mcp_servers.\"ai-peer\"]", 23) == 0)
            foreign = true;
        fwrite (line, 1, llen, out);
    }
    if (foreign && install) {
        fclose (out);
        free (kept);
        free (text);
        return cli_fail (cli, "%s already has an [mcp_servers.ai-peer] table that ai-peer did "
                         "not write: remove it, then run this again", path);
    }
    if (install) {
        if (kept_size && kept [kept_size - 1] != '\n')
            fputc ('\n', out);
        fprintf (out, "%s\n[mcp_servers.ai-peer]\ncommand = ", TOML_BEGIN);
        s_toml_string (out, exe);
        fprintf (out, "\nargs = [\"mcp\", \"--tool\", \"codex\"]\n%s\n", TOML_END);
    }
    fclose (out);
    int rc = 0;
    *changed = install || had;
    if (*changed && (s_parent (cli, path)
                     || aip_file_write_atomic (path, kept, kept_size, 0644)))
        rc = *cli->err ? -1 : cli_fail (cli, "cannot write %s: %s", path, strerror (errno));
    free (kept);
    free (text);
    return rc;
}

int
mcp_install (cli_t *cli, bool install, int argc, char **argv)
{
    enum { OPT_SCOPE, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_SCOPE] = CLI_OPT_VALUE ("--scope"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "mcp", argc, argv, opts, pos, 1, &npos))
        return -1;
    if (npos < 1)
        return cli_fail (cli, "Usage: ai-peer mcp %s claude-code|codex|gemini|opencode "
                         "[--scope user|project]", install ? "install" : "uninstall");
    s_agent_t agent = AGENT_CLAUDE;
    bool user = true;
    char exe [AIP_PATH_MAX], path [AIP_PATH_MAX], err [1024];
    if (s_agent (cli, pos [0], &agent) || s_scope (cli, &opts [OPT_SCOPE], "user", &user)
    ||  s_exe (cli, exe, sizeof exe) || s_mcp_path (cli, agent, user, path, sizeof path))
        return -1;
    bool changed = false;
    if (agent == AGENT_CODEX) {
        if (s_codex_edit (cli, path, install, exe, &changed))
            return -1;
    }
    else {
        json_t *config = mcp_config_load (path, err, sizeof err);
        if (!config)
            return cli_fail (cli, "%s", err);
        const char *key = agent == AGENT_OPENCODE ? "mcp" : "mcpServers";
        json_t *servers = json_object_get (config, key);
        if (servers && !json_is_object (servers)) {
            json_decref (config);
            return cli_fail (cli, "%s: \"%s\" is not an object: fix it first, nothing was "
                             "changed", path, key);
        }
        const char *tool = s_agent_tool [agent];
        json_t *entry = NULL;
        if (agent == AGENT_OPENCODE)
            entry = json_pack ("{s:s, s:[s, s, s, s], s:b}", "type", "local", "command", exe,
                               "mcp", "--tool", tool, "enabled", 1);
        else
        if (agent == AGENT_CLAUDE)
            entry = json_pack ("{s:s, s:s, s:[s, s, s]}", "type", "stdio", "command", exe,
                               "args", "mcp", "--tool", tool);
        else
            entry = json_pack ("{s:s, s:[s, s, s]}", "command", exe, "args", "mcp", "--tool",
                               tool);
        if (install) {
            if (!servers) {
                servers = json_object ();
                json_object_set_new (config, key, servers);
            }
            changed = !json_equal (json_object_get (servers, SERVER_NAME), entry);
            json_object_set (servers, SERVER_NAME, entry);
        }
        else
        if (servers && json_object_get (servers, SERVER_NAME)) {
            json_object_del (servers, SERVER_NAME);
            changed = true;
        }
        json_decref (entry);
        int rc = 0;
        if (changed && (s_parent (cli, path) || mcp_config_save (path, config, err, sizeof err)))
            rc = *cli->err ? -1 : cli_fail (cli, "%s", err);
        json_decref (config);
        if (rc)
            return -1;
    }
    cli->data = json_pack ("{s:s, s:s, s:s, s:b, s:s}", "agent", s_agent_tool [agent],
                           "scope", user ? "user" : "project", "path", path, "changed", changed,
                           "server", SERVER_NAME);
    json_object_set_new (cli->data, install ? "installed" : "uninstalled", json_true ());
    if (install)
        json_object_set_new (cli->data, "command", json_pack ("[s, s, s, s]", exe, "mcp",
                                                              "--tool", s_agent_tool [agent]));
    return 0;
}

//  ---------------------------------------------------------------------
//  Agent hooks: Claude Code and Gemini CLI take a command's output into a
//  running session (a stop hook that blocks once with a reason, a prompt
//  hook that adds context), in nearly the same JSON

//  What marks our hooks (" inbox --tool T --hook MODE")
#define HOOK_MARK_INBOX " inbox --tool "
#define HOOK_MARK_MODE  " --hook "

typedef struct {
    const char *agent;          //  as named on the command line
    const char *tool;           //  the AI peer its hooks read for
    const char *dir;            //  its config directory ("" + file: in the base)
    const char *file;           //  the settings file in it
    const char *stop_event;     //  its event before the agent stops
    const char *prompt_event;   //  its event on a new user prompt
    int timeout;                //  the hook's timeout, in the agent's unit
    bool named;                 //  hooks carry a "name"
} s_hook_agent_t;

static const s_hook_agent_t s_hook_agents [] = {
    //  Claude Code: timeout in seconds
    { "claude-code", "claude-code", ".claude", "settings.json", "Stop", "UserPromptSubmit", 5,
      false },
    //  Gemini CLI: AfterAgent "deny"/"block" + reason retries the turn with
    //  the reason as the prompt; BeforeAgent additionalContext; milliseconds
    { "gemini", "gemini", ".gemini", "settings.json", "AfterAgent", "BeforeAgent", 5000, true },
    //  Codex (0.171): Claude Code's events and output in hooks.json ($CODEX_HOME); each
    //  hook runs only once the user trusted it (codex's /hooks), or under
    //  --dangerously-bypass-hook-trust
    { "codex", "codex", ".codex", "hooks.json", "Stop", "UserPromptSubmit", 5, false },
    { NULL, NULL, NULL, NULL, NULL, NULL, 0, false }
};

static const s_hook_agent_t *
s_hook_agent (cli_t *cli, const char *name)
{
    if (strcmp (name, "claude") == 0)
        name = "claude-code";
    for (const s_hook_agent_t *a = s_hook_agents; a->agent; a++)
        if (strcmp (a->agent, name) == 0)
            return a;
    if (strcmp (name, "opencode") == 0)
        cli_fail (cli, "hooks are for claude-code, gemini and codex: opencode cannot take text "
                  "into a running session this way (see docs/mcp.md); use 'ai-peer mcp "
                  "install opencode' and its wait_messages tool");
    else
        cli_fail (cli, "unknown agent '%.64s': hooks are for claude-code, gemini and codex "
                  "(opencode: 'ai-peer mcp install opencode')", name);
    return NULL;
}

static int
s_settings_path (cli_t *cli, const s_hook_agent_t *agent, bool user, char *path, size_t size)
{
    char base [AIP_PATH_MAX];
    const char *codex_home = getenv ("CODEX_HOME");
    if (user && strcmp (agent->agent, "codex") == 0 && codex_home && *codex_home) {
        snprintf (path, size, "%s/%s", codex_home, agent->file);
        return 0;
    }
    if (user ? s_home_dir (cli, base, sizeof base) != 0 : !getcwd (base, sizeof base))
        return *cli->err ? -1 : cli_fail (cli, "cannot read the current directory: %s",
                                          strerror (errno));
    snprintf (path, size, "%s/%s/%s", base, agent->dir, agent->file);
    return 0;
}

//  True if a matcher group holds one of our hooks
static bool
s_group_ours (json_t *group)
{
    size_t i;
    json_t *hook;
    json_array_foreach (json_object_get (group, "hooks"), i, hook) {
        const char *command = json_string_value (json_object_get (hook, "command"));
        if (command && strstr (command, HOOK_MARK_INBOX) && strstr (command, HOOK_MARK_MODE))
            return true;
    }
    return false;
}

//  Remove our groups from an event's list; true if there were any
static bool
s_hooks_strip (json_t *list)
{
    bool found = false;
    for (size_t i = json_array_size (list); i-- > 0; )
        if (s_group_ours (json_array_get (list, i))) {
            json_array_remove (list, i);
            found = true;
        }
    return found;
}

static int
s_hooks_edit (cli_t *cli, const s_hook_agent_t *agent, bool install, bool user)
{
    char path [AIP_PATH_MAX], exe [AIP_PATH_MAX], err [1024];
    if (s_settings_path (cli, agent, user, path, sizeof path) || s_exe (cli, exe, sizeof exe))
        return -1;
    if (strchr (exe, '\'') || strchr (cli->home, '\''))
        return cli_fail (cli, "ai-peer's path %s or its home %s holds a quote: use another "
                         "directory", exe, cli->home);
    json_t *settings = mcp_config_load (path, err, sizeof err);
    if (!settings)
        return cli_fail (cli, "%s", err);
    json_t *hooks = json_object_get (settings, "hooks");
    if (hooks && !json_is_object (hooks)) {
        json_decref (settings);
        return cli_fail (cli, "%s: \"hooks\" is not an object: fix it first, nothing was "
                         "changed", path);
    }
    json_t *before = json_deep_copy (settings);
    if (!hooks && install) {
        hooks = json_object ();
        json_object_set_new (settings, "hooks", hooks);
    }
    const char *events [2] = { agent->stop_event, agent->prompt_event };
    const char *modes [2] = { "stop", "prompt" };
    for (size_t i = 0; hooks && i < 2; i++) {
        json_t *list = json_object_get (hooks, events [i]);
        if (list && !json_is_array (list))
            continue;           //  not ours to repair
        if (list)
            s_hooks_strip (list);
        if (install) {
            if (!list) {
                list = json_array ();
                json_object_set_new (hooks, events [i], list);
            }
            //  The home it reads is the one installed from: agents may run
            //  hooks with a reduced environment
            char command [2 * AIP_PATH_MAX + 128];
            snprintf (command, sizeof command, "AI_PEERS_HOME='%s' '%s'%s%s%s%s", cli->home, exe,
                      HOOK_MARK_INBOX, agent->tool, HOOK_MARK_MODE, modes [i]);
            json_t *hook = json_pack ("{s:s, s:s, s:i}", "type", "command", "command", command,
                                      "timeout", agent->timeout);
            if (agent->named)
                json_object_set_new (hook, "name", json_string (i ? "ai-peer-news"
                                                                  : "ai-peer-news-stop"));
            json_array_append_new (list, json_pack ("{s:[o]}", "hooks", hook));
        }
        else
        if (list && json_array_size (list) == 0)
            json_object_del (hooks, events [i]);
    }
    if (!install && hooks && json_object_size (hooks) == 0)
        json_object_del (settings, "hooks");
    bool changed = !json_equal (before, settings);
    json_decref (before);
    int rc = 0;
    if (changed && (s_parent (cli, path) || mcp_config_save (path, settings, err, sizeof err)))
        rc = *cli->err ? -1 : cli_fail (cli, "%s", err);
    json_decref (settings);
    if (rc)
        return -1;
    cli->data = json_pack ("{s:s, s:s, s:s, s:b}", "agent", agent->agent,
                           "scope", user ? "user" : "project", "path", path, "changed", changed);
    json_object_set_new (cli->data, install ? "installed" : "uninstalled", json_true ());
    if (install)
        json_object_set_new (cli->data, "events", json_pack ("[s, s]", agent->stop_event,
                                                             agent->prompt_event));
    if (install && strcmp (agent->agent, "codex") == 0)
        json_object_set_new (cli->data, "note", json_string (
            "codex runs a hook only once you trusted it: review and trust the two ai-peer "
            "hooks in codex (/hooks)"));
    return 0;
}

static json_t *
s_hooks_scope_status (cli_t *cli, const s_hook_agent_t *agent, bool user)
{
    char path [AIP_PATH_MAX], err [1024];
    if (s_settings_path (cli, agent, user, path, sizeof path))
        return NULL;
    json_t *status = json_pack ("{s:s}", "path", path);
    json_t *settings = mcp_config_load (path, err, sizeof err);
    if (!settings) {
        json_object_set_new (status, "error", json_string (err));
        return status;
    }
    json_t *events = json_array ();
    const char *names [2] = { agent->stop_event, agent->prompt_event };
    for (size_t i = 0; i < 2; i++) {
        json_t *list = json_object_get (json_object_get (settings, "hooks"), names [i]);
        size_t k;
        json_t *group;
        bool ours = false;
        json_array_foreach (list, k, group)
            ours = ours || s_group_ours (group);
        if (ours)
            json_array_append_new (events, json_string (names [i]));
    }
    json_object_set_new (status, "installed", json_boolean (json_array_size (events) == 2));
    json_object_set_new (status, "events", events);
    json_decref (settings);
    return status;
}

int
cmd_hooks (cli_t *cli, int argc, char **argv)
{
    if (argc < 1)
        return cli_fail (cli, "Usage: ai-peer hooks install|uninstall|status claude-code|gemini|codex "
                         "[--scope project|user]");
    const char *action = argv [0];
    enum { OPT_SCOPE, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_SCOPE] = CLI_OPT_VALUE ("--scope"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "hooks", argc - 1, argv + 1, opts, pos, 1, &npos))
        return -1;
    const s_hook_agent_t *agent = s_hook_agent (cli, npos ? pos [0] : "claude-code");
    if (!agent)
        return -1;
    if (strcmp (action, "status") == 0) {
        json_t *project = s_hooks_scope_status (cli, agent, false);
        json_t *user = s_hooks_scope_status (cli, agent, true);
        if (!project || !user) {
            json_decref (project);
            json_decref (user);
            return -1;
        }
        cli->data = json_pack ("{s:s, s:o, s:o}", "agent", agent->agent, "project", project,
                               "user", user);
        return 0;
    }
    bool install = strcmp (action, "install") == 0;
    if (!install && strcmp (action, "uninstall") != 0)
        return cli_fail (cli, "Unknown hooks action: %.64s. Available: install, uninstall, "
                         "status", action);
    bool user;
    if (s_scope (cli, &opts [OPT_SCOPE], "project", &user))
        return -1;
    return s_hooks_edit (cli, agent, install, user);
}
