/*  ai-peer-interactive — `ai-peer chat ROOM -i`: a human in a room.

    A separate program so that libedit is loaded only here, not by every
    ai-peer command. It subscribes to the broker's events for the room, so
    messages from any local command, AI answers and relayed messages appear
    at once, printed above the line being typed (libedit keeps the half-
    typed line). `@tool question` posts the line and starts
    `ai-peer invite` in the background: the prompt stays usable, a status
    line says who is thinking. When stdin is not a terminal, lines are sent
    in order and the command ends at EOF with the JSON envelope.

    The parts: aip_chat (the session), aip_screen and aip_layout (what is
    shown), aip_editor (libedit), aip_feed (the room's events), aip_invites
    (background invites), aip_commands (the /command table). This file
    parses the arguments, reads piped input and runs the loop.

    usage: ai-peer-interactive ROOM [--as NAME] [--tool T] [--type ai|human] [message...] */
#include "cli.h"
#include "aip_chat.h"
#include "aip_commands.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define TICK_MS         1000        //  status line and broker checks

static volatile sig_atomic_t s_interrupted;

static void
s_on_sigint (int sig)
{
    s_interrupted = 1;
}

//  A line typed on the terminal (NULL: Ctrl-D)
static void
s_on_line (void *arg, char *line)
{
    aip_chat_t *chat = (aip_chat_t *) arg;
    if (!line) {
        chat->quit = true;
        return;
    }
    aip_screen_enter (chat->screen, line);
    aip_commands_run (chat, line);
    if (!chat->quit) {
        aip_editor_restart (chat->editor);
        aip_screen_refresh (chat->screen);
    }
}

//  A line from a pipe (len bytes, no newline): refused whole, saying which
//  line and why, when it could not be sent as it is
static void
s_input_line (aip_chat_t *chat, char *text, size_t len, long line_no)
{
    char line [200];
    const char *nul = (const char *) memchr (text, 0, len);
    if (nul)
        snprintf (line, sizeof line, "  ! line %ld not sent: it holds a NUL byte (at byte %zu)",
                  line_no, (size_t) (nul - text) + 1);
    else
    if (!aip_utf8_valid (text, len))
        snprintf (line, sizeof line, "  ! line %ld not sent: it is not valid UTF-8", line_no);
    else {
        text [len] = 0;
        chat->line_no = line_no;
        aip_commands_run (chat, text);
        chat->line_no = 0;
        return;
    }
    aip_screen_print (chat->screen, line);
    chat->not_sent++;
}

//  Scripted input, read with read(2)
typedef struct {
    char *buffer;               //  AIP_MAX_CONTENT + 2 bytes: a line being read
    size_t used;                //  bytes in buffer
    long line_no;               //  of the line being read, for errors
    bool dropping;              //  skipping the rest of a line too long
    bool eof;                   //  stdin has ended
} s_input_t;

//  Read what stdin has, send each whole line; a line over the limit of a
//  message is refused whole, its tail too
static void
s_read_input (aip_chat_t *chat, s_input_t *in)
{
    ssize_t got = read (0, in->buffer + in->used, AIP_MAX_CONTENT + 1 - in->used);
    if (got <= 0 && !(got < 0 && errno == EINTR)) {
        in->eof = true;
        if (in->used && !in->dropping)  //  a last line without newline
            s_input_line (chat, in->buffer, in->used, in->line_no);
        in->used = 0;
    }
    else
    if (got > 0) {
        in->used += (size_t) got;
        char *start = in->buffer, *nl;
        while ((nl = memchr (start, '\n', in->used - (size_t) (start - in->buffer)))) {
            if (in->dropping)
                in->dropping = false;   //  the end of a line too long
            else
                s_input_line (chat, start, (size_t) (nl - start), in->line_no);
            in->line_no++;
            start = nl + 1;
        }
        in->used -= (size_t) (start - in->buffer);
        memmove (in->buffer, start, in->used);
        if (!in->dropping && in->used > AIP_MAX_CONTENT) {
            //  No newline within the limit: the whole line goes,
            //  its tail too, up to the next newline
            char line [200];
            snprintf (line, sizeof line, "  ! line %ld not sent: longer than "
                      "256 KiB (%d bytes, the limit of a message)", in->line_no,
                      AIP_MAX_CONTENT);
            aip_screen_print (chat->screen, line);
            chat->not_sent++;
            in->dropping = true;
        }
        if (in->dropping)
            in->used = 0;
    }
}

//  How the room is synced, for the first line
static const char *
s_room_mode (aip_chat_t *chat)
{
    if (!chat->room.public)
        return chat->room.lan ? "LAN hub (live push)" : "local (live push)";
    if (chat->room.lan)
        return cli_relay_ok (chat->cli, chat->room_id)
               ? "LAN, hub in sync (live push)"
               : "LAN, hub unreachable (messages queue here, delivered later)";
    return cli_relay_ok (chat->cli, chat->room_id)
           ? "public, relay in sync (live push)"
           : "public, relay unreachable (messages queue here, delivered later)";
}

//  The loop: the room's events, what is typed or piped, and a tick each
//  second, until /quit, Ctrl-D, Ctrl-C without invites, or the end of
//  piped input and of its invites
static void
s_run (aip_chat_t *chat, s_input_t *input)
{
    int64_t next_tick = aip_clock_ms () + TICK_MS;
    while (!chat->quit) {
        if (s_interrupted) {
            s_interrupted = 0;
            if (!aip_invites_cancel_all (chat->invites))
                break;
        }
        zmq_pollitem_t items [] = {
            { .socket = aip_feed_socket (chat->feed), .events = ZMQ_POLLIN },
            { .fd = 0, .events = ZMQ_POLLIN },
        };
        int nitems = input->eof ? 1 : 2;
        int64_t wait = next_tick - aip_clock_ms ();
        if (zmq_poll (items, nitems, wait > 0 ? wait : 0) < 0 && zmq_errno () != EINTR)
            break;
        if (items [0].revents & ZMQ_POLLIN)
            aip_feed_recv (chat->feed);
        //  A closed pipe polls as an error (POLLHUP), not as readable
        if (nitems > 1 && (items [1].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
            if (chat->editor)
                aip_editor_read (chat->editor);
            else
                s_read_input (chat, input);
        }
        if (aip_clock_ms () >= next_tick) {
            aip_chat_tick (chat);
            next_tick = aip_clock_ms () + TICK_MS;
        }
        //  Scripted: after EOF, wait for the invites, then leave
        if (input->eof && !aip_invites_any (chat->invites))
            break;
    }
}

int
main (int argc, char **argv)
{
    signal (SIGPIPE, SIG_IGN);
    cli_t cli;
    memset (&cli, 0, sizeof cli);
    cli.pk = aip_pack_new ();
    aip_chat_t *chat = NULL;
    s_input_t input = { .line_no = 1 };
    char err [1024];
    int rc = 1;
    char **pos = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    enum { OPT_AS, OPT_TOOL, OPT_TYPE, OPT_INTERACTIVE, OPT_LIMIT, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_AS] = CLI_OPT_VALUE ("--as"),
        [OPT_TOOL] = CLI_OPT_VALUE ("--tool"),
        [OPT_TYPE] = CLI_OPT_VALUE ("--type"),
        [OPT_INTERACTIVE] = { .name = "--interactive", .alias = "-i" },
        [OPT_LIMIT] = CLI_OPT_VALUE ("-n"),
    };
    int npos = 0;
    if (aip_home_resolve (cli.home, sizeof cli.home, err, sizeof err)) {
        cli_fail (&cli, "%s", err);
        goto done;
    }
    if (cli_parse (&cli, "chat", argc - 1, argv + 1, opts, pos, argc, &npos))
        goto done;
    if (npos < 1) {
        cli_fail (&cli, "Usage: ai-peer chat <room-id> -i [--as NAME] [--tool TOOL]");
        goto done;
    }
    bool tty = isatty (0) && isatty (2);
    chat = aip_chat_new (&cli, pos [0], tty);
    if (!chat) {
        cli_fail (&cli, "out of memory");
        goto done;
    }
    if (cli_check_room_id (&cli, chat->room_id)
    ||  cli_resolve_peer (&cli, opts [OPT_AS].value, opts [OPT_TOOL].value, opts [OPT_TYPE].value,
                          &chat->me)
    ||  cli_room_open (&cli, chat->room_id, &chat->room)
    ||  aip_chat_open (chat, tty && !getenv ("NO_COLOR")))
        goto done;
    fprintf (stderr, "Room %s — %s%s. /help for commands, Ctrl-D to leave.\n", chat->room_id,
             chat->room.encrypted ? "encrypted, " : "", s_room_mode (chat));
    if (aip_chat_fetch (chat, 20, false, true))
        goto done;
    if (npos > 1) {
        //  An initial message on the command line
        char *text = cli_join_words (pos + 1, npos - 1);
        if (text)
            aip_commands_run (chat, text);
        free (text);
    }

    //  Scripted input is read with read(2), not stdio: poll cannot see
    //  lines already sitting in a stdio buffer
    input.buffer = (char *) malloc (AIP_MAX_CONTENT + 2);
    if (!input.buffer) {
        cli_fail (&cli, "out of memory");
        goto done;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sigint;
    sigaction (SIGINT, &sa, NULL);
    if (tty)
        chat->editor = aip_editor_new (s_on_line, chat);
    s_run (chat, &input);
    if (tty) {
        aip_screen_clear (chat->screen);
        aip_editor_destroy (&chat->editor);
        fprintf (stderr, "\nLeft the room.\n");
    }
    aip_invites_cancel_all (chat->invites);
    cli.data = json_pack ("{s:s, s:s, s:i, s:i}", "status", "exited", "room", chat->room_id,
                          "sent", chat->sent, "not_sent", chat->not_sent);
    rc = 0;
done:
    {
        json_t *root = json_object ();
        json_object_set_new (root, "ok", json_boolean (rc == 0));
        json_object_set_new (root, "schema_version", json_string ("1"));
        if (rc == 0)
            json_object_set (root, "data", cli.data);
        else
            json_object_set_new (root, "error", json_string (*cli.err ? cli.err : "failed"));
        char *text = aip_json_dumps (root);
        if (text) {
            puts (text);
            free (text);
        }
        json_decref (root);
    }
    free (input.buffer);
    aip_chat_destroy (&chat);
    json_decref (cli.data);
    aip_client_destroy (&cli.client);
    aip_pack_destroy (&cli.pk);
    free (pos);
    return rc ? 1 : 0;
}
