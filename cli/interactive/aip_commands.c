/*  aip_commands.c — the /command table of chat -i and the handlers it
    names (see aip_commands.h). */
#include "aip_commands.h"

#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  A command: text is the whole line, args what follows the command's name
typedef void (s_command_fn) (aip_chat_t *chat, char *text, const char *args);

//  One row of the table
typedef struct {
    const char *name;               //  as typed: "/who"; "@" is a prefix ("@codex")
    bool args;                      //  arguments may follow the name, after a space
    s_command_fn *fn;               //  what it does
    const char *usage;              //  its line in /help, or NULL: not listed
    const char *help;               //  what it does, for /help
} s_command_t;

static void
s_quit (aip_chat_t *chat, char *text, const char *args)
{
    chat->quit = true;
}

static void
s_help (aip_chat_t *chat, char *text, const char *args)
{
    aip_screen_print_raw (chat->screen, aip_commands_help ());
}

static void
s_who (aip_chat_t *chat, char *text, const char *args)
{
    cli_t *cli = chat->cli;
    uint64_t id = cli_request (cli, AIP_OP_ROOM_PEERS, 1);
    aip_pack_kstr (cli->pk, "id", chat->room_id);
    json_t *data;
    if (cli_call (cli, id, &data)) {
        aip_screen_print (chat->screen, cli->err);
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get (data, "peers"), i, p) {
        const char *tool = json_string_value (json_object_get (p, "tool"));
        aip_layout_t *lay = aip_screen_layout (chat->screen);
        if (!lay)
            break;
        aip_layout_text (lay, "  ");
        aip_layout_untrusted (lay, json_string_value (json_object_get (p, "name")), true);
        if (tool) {
            aip_layout_text (lay, " (");
            aip_layout_untrusted (lay, tool, true);
            aip_layout_text (lay, ")");
        }
        aip_layout_text (lay, " [");
        aip_layout_untrusted (lay, json_string_value (json_object_get (p, "type")), true);
        aip_layout_text (lay, "]");
        aip_screen_print_layout (chat->screen, &lay);
    }
    json_decref (data);
}

static void
s_cancel (aip_chat_t *chat, char *text, const char *args)
{
    if (!aip_invites_cancel_all (chat->invites))
        aip_screen_print (chat->screen, "  no invite is running");
}

static void
s_history (aip_chat_t *chat, char *text, const char *args)
{
    long n = atol (args);
    //  Shown again on request, own messages included
    aip_chat_forget (chat);
    aip_chat_fetch (chat, n > 0 && n <= AIP_MAX_PAGE ? n : 20, false, false);
}

static void
s_export (aip_chat_t *chat, char *text, const char *args)
{
    char format [8] = "md", file [1024] = "";
    sscanf (args, "%7s %1023s", format, file);
    if (!*file)
        snprintf (file, sizeof file, "%s.%s", chat->room_id, format);
    char exe [AIP_PATH_MAX + 16];
    snprintf (exe, sizeof exe, "%s/ai-peer", chat->exe_dir);
    pid_t pid = fork ();
    if (pid == 0) {
        int devnull = open ("/dev/null", O_RDWR);
        dup2 (devnull, 1);
        dup2 (devnull, 2);
        const char *argv [] = { exe, "export", chat->room_id, "--format", format,
                                "--output", file, NULL };
        execv (exe, (char *const *) argv);
        _exit (127);
    }
    int status = 1;
    if (pid > 0)
        waitpid (pid, &status, 0);
    char line [1200];
    snprintf (line, sizeof line, WIFEXITED (status) && WEXITSTATUS (status) == 0
              ? "  exported to %s" : "  ! export to %s failed (format md or json)", file);
    aip_screen_print (chat->screen, line);
}

//  "/invite TOOL [text]", or "@TOOL question": then the human's line goes to
//  the room first, as the original did
static void
s_invite (aip_chat_t *chat, char *text, const char *args)
{
    const char *rest = args;
    while (*rest == ' ')
        rest++;
    size_t tlen = strcspn (rest, " \t");
    char tool [AIP_MAX_NAME + 1];
    snprintf (tool, sizeof tool, "%.*s", (int) tlen, rest);
    const char *context = rest [tlen] ? rest + tlen + 1 : "Please share your thoughts.";
    if (!*tool || !aip_id_valid (tool, strlen (tool))) {
        aip_screen_print (chat->screen, "  ! usage: @<tool> <question>");
        return;
    }
    if (text [0] == '@' && aip_chat_send (chat, text))
        return;
    aip_invites_start (chat->invites, tool, context);
}

static const s_command_t s_commands [] = {
    { .name = "@", .args = true, .fn = s_invite, .usage = "@<tool> <question>",
      .help = "invite an AI (codex, claude-code, opencode, gemini, …)" },
    { .name = "/invite", .args = true, .fn = s_invite, .usage = "/invite TOOL [text]",
      .help = "the same" },
    { .name = "/who", .fn = s_who, .usage = "/who", .help = "participants" },
    { .name = "/history", .args = true, .fn = s_history, .usage = "/history N",
      .help = "the last N messages" },
    { .name = "/export", .args = true, .fn = s_export, .usage = "/export [md|json] [FILE]",
      .help = "" },
    { .name = "/cancel", .fn = s_cancel, .usage = "/cancel", .help = "cancel pending invites" },
    { .name = "/quit", .fn = s_quit, .usage = "/quit",
      .help = "leave (also Ctrl-D; Ctrl-C cancels invites first)" },
    { .name = "/exit", .fn = s_quit },
    { .name = "/help", .fn = s_help },
};
#define S_COMMANDS (sizeof s_commands / sizeof s_commands [0])

//  The row a line names, or NULL: its first word is the command's name
//  (so /historyX is no /history), and only a command that takes arguments
//  may have more; "@" names the tool right after it
static const s_command_t *
s_find (const char *text)
{
    size_t word = strcspn (text, " \t");
    for (size_t i = 0; i < S_COMMANDS; i++) {
        const s_command_t *cmd = &s_commands [i];
        size_t len = strlen (cmd->name);
        bool named = strcmp (cmd->name, "@") == 0
                   ? text [0] == '@'
                   : word == len && strncmp (text, cmd->name, len) == 0;
        if (named && (cmd->args || !text [word]))
            return cmd;
    }
    return NULL;
}

const char *
aip_commands_help (void)
{
    static char help [1024];
    if (!*help) {
        size_t used = 0;
        for (size_t i = 0; i < S_COMMANDS; i++)
            if (s_commands [i].usage)
                used += (size_t) snprintf (help + used, sizeof help - used, "%s  %-21s%s",
                                           used ? "\n" : "", s_commands [i].usage,
                                           s_commands [i].help);
        assert (used < sizeof help);
    }
    return help;
}

void
aip_commands_run (aip_chat_t *chat, char *line)
{
    char *text = line;
    while (*text == ' ' || *text == '\t')
        text++;
    size_t len = strlen (text);
    while (len && (text [len - 1] == ' ' || text [len - 1] == '\t' || text [len - 1] == '\n'))
        text [--len] = 0;
    if (!*text)
        return;
    if (chat->tty)
        aip_editor_remember (chat->editor, text);
    const s_command_t *cmd = s_find (text);
    if (cmd)
        cmd->fn (chat, text, text + strlen (cmd->name));
    else
    if (text [0] == '/') {
        char unknown [128];
        int name_len = (int) strcspn (text, " \t");
        snprintf (unknown, sizeof unknown, "  ! unknown command %.*s (/help lists them)",
                  name_len > 64 ? 64 : name_len, text);
        aip_screen_print (chat->screen, unknown);
    }
    else
        aip_chat_send (chat, text);
}

//  ---------------------------------------------------------------------
//  Self-test

void
aip_commands_test (bool verbose)
{
    printf (" * aip_commands: ");
    //  /help lists the commands as chat -i always did
    const char *expected =
        "  @<tool> <question>   invite an AI (codex, claude-code, opencode, gemini, …)\n"
        "  /invite TOOL [text]  the same\n"
        "  /who                 participants\n"
        "  /history N           the last N messages\n"
        "  /export [md|json] [FILE]\n"
        "  /cancel              cancel pending invites\n"
        "  /quit                leave (also Ctrl-D; Ctrl-C cancels invites first)";
    assert (strcmp (aip_commands_help (), expected) == 0);
    assert (aip_commands_help () == aip_commands_help ());
    //  Each row has a handler; names and their arguments as typed
    for (size_t i = 0; i < S_COMMANDS; i++)
        assert (s_commands [i].fn && s_commands [i].name && *s_commands [i].name);
    assert (s_find ("/who")->fn == s_who && !s_find ("/who me") && !s_find ("/whoever"));
    assert (s_find ("/history 5")->fn == s_history && s_find ("/history")->fn == s_history);
    assert (s_find ("/exit")->fn == s_quit && s_find ("/quit")->fn == s_quit);
    assert (s_find ("@claude hi")->fn == s_invite && s_find ("/invite claude")->fn == s_invite);
    //  A name is a whole word: /historyX and /exportfoo are unknown; /invite
    //  alone is /invite (which then shows its usage)
    assert (!s_find ("/historyX") && !s_find ("/exportfoo md") && !s_find ("/invitee x"));
    assert (s_find ("/invite")->fn == s_invite && s_find ("/export\tjson")->fn == s_export);
    assert (!s_find ("hello") && !s_find ("/nope"));

    //  Lines that need no daemon, run on a session writing to a buffer
    cli_t cli;
    memset (&cli, 0, sizeof cli);
    aip_chat_t *chat = aip_chat_new (&cli, "room1", false);
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&buf, &size);
    chat->screen = aip_screen_new (out, false, false, NULL, NULL);
    chat->invites = aip_invites_new (chat->exe_dir, chat->room_id, chat->screen, false);
    char line [128];
    snprintf (line, sizeof line, "  /nope\targs  ");
    aip_commands_run (chat, line);
    snprintf (line, sizeof line, "@");
    aip_commands_run (chat, line);
    snprintf (line, sizeof line, "/cancel");
    aip_commands_run (chat, line);
    snprintf (line, sizeof line, "   ");
    aip_commands_run (chat, line);
    snprintf (line, sizeof line, "/help");
    aip_commands_run (chat, line);
    assert (!chat->quit);
    snprintf (line, sizeof line, "/exit  ");
    aip_commands_run (chat, line);
    assert (chat->quit);
    fflush (out);
    const char *said = "  ! unknown command /nope (/help lists them)\n"
                       "  ! usage: @<tool> <question>\n"
                       "  no invite is running\n";
    assert (strncmp (buf, said, strlen (said)) == 0);
    assert (strncmp (buf + strlen (said), expected, strlen (expected)) == 0);
    assert (strcmp (buf + strlen (said) + strlen (expected), "\n") == 0);
    assert (chat->sent == 0 && chat->not_sent == 0);
    aip_chat_destroy (&chat);
    fclose (out);
    free (buf);
    printf ("OK\n");
}
