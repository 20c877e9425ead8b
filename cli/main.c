/*  main.c — the ai-peer command: dispatch, help and the JSON envelope. */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;           //  command word
    cli_cmd_fn *fn;             //  handler
    const char *group;          //  help heading
    const char *summary;        //  one line of help
    const char *usage;          //  'ai-peer <name> --help'
} s_command_t;

static const s_command_t s_commands [] = {
    { "room", cmd_room, "Room & Chat", "create, join, list, delete rooms",
      "Usage: ai-peer room create|join|list|delete [args]\n"
      "  create <name> [--relay default|URL] [--lan] [--password PW] [--password-file F]\n"
      "         [--cipher aip1|fernet]\n"
      "  join <room-id|peer://relay/room?token=T|peer+lan://...> [--relay URL] [--lan]\n"
      "         [--token T] [--password PW] [--password-file F]\n"
      "  list\n"
      "  delete <room-id>\n"
      "  A password keeps out of 'ps' with --password-file F or $AI_PEER_PASSWORD.\n" },
    { "chat", cmd_chat, "Room & Chat", "send/read messages, interactive mode (-i)",
      "Usage: ai-peer chat <room-id> [message...] [--as NAME] [--tool TOOL] [--type ai|human]\n"
      "       ai-peer chat <room-id> [-n N]        read the last N messages (20)\n"
      "       ai-peer chat <room-id> -i            interactive mode\n"
      "  --tool TOOL alone speaks as the AI peer <host>-TOOL; --as sets the display name.\n"
      "  Put -- before a message that starts with '-'.\n" },
    { "history", cmd_history, "Room & Chat", "view conversation history",
      "Usage: ai-peer history [room-id] [-n N]\n"
      "  Without a room: the rooms. With one: its last N messages (50).\n" },
    { "export", cmd_export, "Room & Chat", "export room as Markdown or JSON",
      "Usage: ai-peer export <room-id> [--format md|json] [--output FILE]\n" },
    { "invite", cmd_invite, "AI", "spawn an AI tool into a room",
      "Usage: ai-peer invite --tool TOOL --room ROOM [--context TEXT] [--timeout S] [--cwd DIR]\n"
      "                      [--model M] [--history N] [--async] [--fresh] [--sessions]\n"
      "                      [--max-cost USD]\n"
      "  Runs TOOL (claude, codex, opencode, gemini, or one of $AI_PEERS_HOME/tools.json) with\n"
      "  the room's last 30 messages as its prompt (on stdin) and posts its answer as the AI\n"
      "  peer <host>-TOOL. --timeout (120 s) kills the tool and everything it started.\n"
      "  --cwd: where the tool runs (default: this directory). --history: messages in the\n"
      "  prompt (30).\n"
      "  Each tool resumes its own session in the room and is sent only the messages since;\n"
      "  --fresh starts a new one; --sessions lets it keep one in a password room too.\n"
      "  --max-cost USD: a spending cap for tools that take one (claude: --max-budget-usd).\n"
      "  --async: print a job id at once; then 'ai-peer wait JOB', 'jobs', 'cancel JOB'.\n" },
    { "jobs", cmd_jobs, "AI", "list asynchronous invites (invite --async)",
      "Usage: ai-peer jobs\n" },
    { "wait", cmd_wait, "AI", "wait for an asynchronous invite and print its result",
      "Usage: ai-peer wait <job-id> [--timeout S]\n" },
    { "cancel", cmd_cancel, "AI", "cancel an asynchronous invite (kills the tool)",
      "Usage: ai-peer cancel <job-id>\n" },
    { "quick", cmd_quick, "AI", "one-command AI conversation (create+send+invite)",
      "Usage: ai-peer quick \"<question>\" --tools a,b [--name N] [--timeout S] [--cwd DIR]\n"
      "                     [--max-tokens N] [--password PW] [--password-file F] [--cipher C]\n"
      "  Creates a room, posts the question, asks every tool at once (in parallel).\n"
      "  data.usage: the tokens of all answers, and by_tool. --max-tokens N (input + output,\n"
      "  all tools): data.over_budget lists the tools, in the order their answers arrived,\n"
      "  whose answer took the total past N (they all run at once: none is stopped).\n" },
    { "discuss", cmd_discuss, "AI", "multi-round AI debate (auto-orchestrated)",
      "Usage: ai-peer discuss --tools a,b [--rounds N] [--room ROOM] [--context TEXT] [--timeout S]\n"
      "                       [--cwd DIR] [--follow-mentions N] [--max-tokens N]\n"
      "  Rounds x tools, one after the other: each AI sees everything said before it.\n"
      "  --follow-mentions N: also invite a tool an answer @mentions, at most N hops per turn.\n"
      "  --max-tokens N: start no turn once the input + output tokens of all tools reach N;\n"
      "  then data.stopped says \"token budget of N reached after K invites\". data.usage: the\n"
      "  tokens of all turns, and by_tool.\n" },
    { "usage", cmd_usage, "AI", "tokens and cost of AI answers, per tool",
      "Usage: ai-peer usage [room-id]\n"
      "  Sums the token usage the tools reported (input, output, cache read and write, cost in\n"
      "  USD when reported, duration) per tool: of one room, or of every room on this machine.\n"
      "  data: answers, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,\n"
      "  cost_usd, duration_ms, by_tool {tool: the same (+ rooms without a room-id)}.\n" },
    { "discover", cmd_discover, "AI", "find installed AI CLI tools",
      "Usage: ai-peer discover\n"
      "  Lists the tools on PATH and in tools.json with their versions, registers them as peers.\n" },
    { "inbox", cmd_inbox, "Agents", "unread messages from others for an AI peer",
      "Usage: ai-peer inbox [--tool T] [--room R] [--peek] [-n N]\n"
      "  The messages others wrote that the AI peer <host>-T (without --tool: you) has not\n"
      "  seen, in the rooms it joined, oldest first; reading marks them seen unless --peek.\n"
      "  --hook stop|prompt: as a Claude Code hook (see 'ai-peer hooks install').\n" },
    { "mcp", cmd_mcp, "Agents", "MCP server for AI agents (stdio); install it into an agent",
      "Usage: ai-peer mcp [--tool T]                 serve MCP on stdin/stdout\n"
      "       ai-peer mcp install|uninstall claude-code|codex|gemini|opencode [--scope user|project]\n"
      "  The server posts as the AI peer <host>-T: --tool, else the client's name\n"
      "  (claude-code, codex, gemini, opencode). install registers it in that agent's config\n"
      "  (user: its home config, the default; project: the current directory).\n" },
    { "hooks", cmd_hooks, "Agents", "room news into a running Claude Code, Gemini or Codex session",
      "Usage: ai-peer hooks install|uninstall|status claude-code|gemini|codex [--scope project|user]\n"
      "  claude-code: Stop and UserPromptSubmit hooks in .claude/settings.json (project, the\n"
      "  default) or ~/.claude/settings.json (user); gemini: AfterAgent and BeforeAgent hooks in\n"
      "  .gemini/settings.json or ~/.gemini/settings.json; codex: Stop and UserPromptSubmit in\n"
      "  .codex/hooks.json or $CODEX_HOME/hooks.json (trust them once in codex: /hooks).\n"
      "  New messages reach the agent once, fenced as untrusted. A hook with the daemons\n"
      "  down prints nothing and exits 0.\n" },
    { "daemon", cmd_daemon, "System", "start, stop, status",
      "Usage: ai-peer daemon start|stop|status [--lan] [--port N] [--workers N]\n"
      "  --workers N: spawnd processes, i.e. invites that run at once (default 4); it\n"
      "    applies at start: to daemons running another count, stop them first\n"
      "  The daemons start by themselves on the first command; 'start' is rarely needed.\n" },
    { "web", cmd_web, "System", "the web view of your rooms (this machine only)",
      "Usage: ai-peer web [--port P] [--open] [--stop]\n"
      "  Turns the web view on (127.0.0.1 only; default port 7898, remembered) and prints\n"
      "  {url, port}: the URL logs in once. --open opens it in the browser; --stop turns it off.\n" },
    { "identity", cmd_identity, "System", "show current identity",
      "Usage: ai-peer identity\n" },
    { "list", cmd_list, "System", "show all known peers",
      "Usage: ai-peer list\n" },
    { "register", cmd_register, "System", "manually add a remote peer",
      "Usage: ai-peer register <name> <ai|human> <tool> [--host H] [--port P]\n" },
    { NULL, NULL, NULL, NULL, NULL }
};

static void
s_help (FILE *out)
{
    fprintf (out, "Usage: ai-peer <command> [args]   (ai-peer <command> --help for details)\n");
    const char *group = NULL;
    for (const s_command_t *c = s_commands; c->name; c++) {
        if (!group || strcmp (group, c->group) != 0) {
            group = c->group;
            fprintf (out, "\n%s:\n", group);
        }
        fprintf (out, "  %-9s %s\n", c->name, c->summary);
    }
    fprintf (out, "\nEvery command prints one JSON document: {\"ok\": true, \"data\": ...} "
                  "(exit 0) or\n{\"ok\": false, \"error\": \"...\"} (exit 1). "
                  "Data lives in $AI_PEERS_HOME (default ~/.ai-peers).\n");
}

//  Error messages quote what the user typed, which may not be UTF-8:
//  JSON cannot carry those bytes, so each becomes '?'
static json_t *
s_error_string (const char *error)
{
    json_t *string = json_string (error);
    if (string)
        return string;
    char *copy = strdup (error);
    if (!copy)
        return json_string ("out of memory");
    for (size_t i = 0; copy [i]; ) {
        size_t len = 1;
        while (len < 4 && copy [i + len] && !aip_utf8_valid (copy + i, len))
            len++;
        if (aip_utf8_valid (copy + i, len))
            i += len;
        else
            copy [i++] = '?';
    }
    string = json_string (copy);
    free (copy);
    return string;
}

static void
s_print_envelope (bool ok, json_t *data, const char *error)
{
    json_t *root = json_object ();
    json_object_set_new (root, "ok", json_boolean (ok));
    json_object_set_new (root, "schema_version", json_string ("1"));
    if (ok)
        json_object_set (root, "data", data ? data : json_null ());
    else
        json_object_set_new (root, "error", s_error_string (error));
    //  Straight into stdout's buffer: a large export is not built twice
    if (aip_json_dumpf (root, stdout) == 0)
        fputc ('\n', stdout);
    fflush (stdout);
    json_decref (root);
}

int
main (int argc, char **argv)
{
    //  A reader that went away is not a crash
    signal (SIGPIPE, SIG_IGN);
    if (argc < 2 || strcmp (argv [1], "-h") == 0 || strcmp (argv [1], "--help") == 0
    ||  strcmp (argv [1], "help") == 0) {
        s_help (stdout);
        return 0;
    }
    if (strcmp (argv [1], "--version") == 0 || strcmp (argv [1], "-V") == 0) {
        printf ("ai-peer %s (protocol %d)\n", AIP_VERSION_STRING, AIP_PROTO_VERSION);
        return 0;
    }
    const s_command_t *command = NULL;
    for (const s_command_t *c = s_commands; c->name; c++)
        if (strcmp (c->name, argv [1]) == 0)
            command = c;
    cli_t cli;
    memset (&cli, 0, sizeof cli);
    if (!command) {
        char names [256] = "";
        for (const s_command_t *c = s_commands; c->name; c++)
            snprintf (names + strlen (names), sizeof names - strlen (names), "%s%s",
                      *names ? ", " : "", c->name);
        snprintf (cli.err, sizeof cli.err, "Unknown command: %.64s. Available: %s "
                  "(see 'ai-peer --help')", argv [1], names);
        s_print_envelope (false, NULL, cli.err);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp (argv [i], "--") == 0)
            break;
        if (strcmp (argv [i], "--help") == 0 || strcmp (argv [i], "-h") == 0) {
            fputs (command->usage, stdout);
            return 0;
        }
    }
    char err [1024];
    //  Every command, not only those that load the identity: a home others
    //  can write (made so while the daemons run) could hold anything
    if (aip_home_resolve (cli.home, sizeof cli.home, err, sizeof err)
    ||  aip_home_check (cli.home, err, sizeof err)) {
        s_print_envelope (false, NULL, err);
        return 1;
    }
    cli.pk = aip_pack_new ();
    int rc = command->fn (&cli, argc - 2, argv + 2);
    if (rc == 0)
        s_print_envelope (true, cli.data, NULL);
    else
        s_print_envelope (false, NULL, *cli.err ? cli.err : "failed");
    json_decref (cli.data);
    aip_pack_destroy (&cli.pk);
    aip_client_destroy (&cli.client);
    return rc == 0 ? 0 : 1;
}
