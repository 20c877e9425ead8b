/*  cmd_chat.c — ai-peer chat (send, read) and history. */
#include "cli.h"
#include "aip_term.h"

#include <sodium.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

//  Read the newest `limit` messages (paging backwards past one page);
//  peer, when given, joins the room on the way (as the original's chat)
static int
s_read (cli_t *cli, const char *room_id, long limit, const cli_peer_t *peer)
{
    cli_room_t room;
    if (cli_room_open (cli, room_id, &room))
        return -1;
    json_t *all = NULL;
    char before_ts [AIP_MAX_TIME + 1] = "", before_id [AIP_MAX_ID + 1] = "";
    long left = limit;
    while (left > 0) {
        long page = left > AIP_MAX_PAGE ? AIP_MAX_PAGE : left;
        size_t nargs = 2 + (peer ? 2 : 0) + (*before_ts ? 2 : 0);
        uint64_t id = cli_request (cli, AIP_OP_MSG_LIST, nargs);
        aip_pack_kstr (cli->pk, "room_id", room_id);
        aip_pack_kint (cli->pk, "limit", page);
        if (peer) {
            //  The reader has seen the newest messages now (its inbox)
            cli_pack_peer (cli, peer);
            aip_pack_kbool (cli->pk, "mark_read", true);
        }
        if (*before_ts) {
            aip_pack_kstr (cli->pk, "before_ts", before_ts);
            aip_pack_kstr (cli->pk, "before_id", before_id);
        }
        json_t *data;
        if (cli_call (cli, id, &data)) {
            json_decref (all);
            return -1;
        }
        peer = NULL;            //  joined once is enough
        json_t *messages = json_object_get (data, "messages");
        size_t count = json_array_size (messages);
        if (!all)
            all = json_incref (messages);
        else {
            //  Older page goes in front
            json_array_extend (messages, all);
            json_decref (all);
            all = json_incref (messages);
        }
        json_decref (data);
        left -= (long) count;
        if ((long) count < page || count == 0)
            break;
        json_t *first = json_array_get (all, 0);
        snprintf (before_ts, sizeof before_ts, "%s",
                  json_string_value (json_object_get (first, "created_at")));
        snprintf (before_id, sizeof before_id, "%s",
                  json_string_value (json_object_get (first, "id")));
    }
    if (!all)
        all = json_array ();
    cli_room_reveal_json (&room, all);
    bool public = room.public;
    sodium_memzero (&room, sizeof room);
    //  Local rooms have no relay: the local copy is the whole truth. A
    //  public room is as good as relayd's sync of it.
    bool relay_ok = public ? cli_relay_ok (cli, room_id) : true;
    cli->data = json_object ();
    json_object_set_new (cli->data, "messages", all);
    json_object_set_new (cli->data, "relay_ok", json_boolean (relay_ok));
    return 0;
}

//  The result of a send: {sent, warning?}
static int
s_sent (cli_t *cli, json_t *sent, const char *warning)
{
    cli->data = json_object ();
    json_object_set_new (cli->data, "sent", sent);
    if (warning) {
        json_object_set_new (cli->data, "warning", json_string (warning));
        //  The warning may quote a relay: shown cleaned of escapes
        char *shown = aip_term_clean_line (warning, strlen (warning), NULL);
        fprintf (stderr, "⚠ %s\n", shown ? shown : "");
        free (shown);
    }
    return 0;
}

//  A public room: the message is committed here and queued; relayd
//  delivers it. Wait a bounded time for the relay's answer.
static int
s_relay_wait (cli_t *cli, const char *room_id, bool lan, json_t *sent)
{
    const char *msg_id = json_string_value (json_object_get (sent, "id"));
    if (!msg_id)
        return s_sent (cli, sent, NULL);
    int wait_ms = cli_relay_wait_ms ();
    uint64_t id = cli_request (cli, AIP_OP_RELAY_PUSH, 3);
    aip_pack_kstr (cli->pk, "room_id", room_id);
    aip_pack_kstr (cli->pk, "id", msg_id);
    aip_pack_kint (cli->pk, "wait_ms", wait_ms);
    json_t *push = NULL;
    bool delivered = cli_call_timeout (cli, id, wait_ms + 2000, &push) == 0
                  && json_is_true (json_object_get (push, "delivered"));
    cli->err [0] = 0;
    if (!delivered && push && json_is_true (json_object_get (push, "refused"))) {
        const char *why = json_string_value (json_object_get (push, "error"));
        cli_fail (cli, "%s. The message %s is kept in your local copy only.",
                  why ? why : "the relay refused the message", msg_id);
        json_decref (push);
        json_decref (sent);
        return -1;
    }
    json_decref (push);
    return s_sent (cli, sent, delivered ? NULL
                              : lan ? "LAN hub unreachable — message saved locally only"
                                    : "Relay unreachable — message saved locally only");
}

int
cmd_chat (cli_t *cli, int argc, char **argv)
{
    enum { OPT_AS, OPT_TOOL, OPT_TYPE, OPT_LIMIT, OPT_INTERACTIVE, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_AS] = CLI_OPT_VALUE ("--as"),
        [OPT_TOOL] = CLI_OPT_VALUE ("--tool"),
        [OPT_TYPE] = CLI_OPT_VALUE ("--type"),
        [OPT_LIMIT] = CLI_OPT_VALUE ("-n"),
        [OPT_INTERACTIVE] = { .name = "--interactive", .alias = "-i" },
    };
    char **pos = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    int npos;
    int rc = -1;
    char *message = NULL;
    if (!pos || cli_parse (cli, "chat", argc, argv, opts, pos, argc, &npos))
        goto cleanup;
    if (npos < 1) {
        cli_fail (cli, "Usage: ai-peer chat <room-id> [message] [--as name] [--tool tool] [-i] "
                  "(no message = read recent)");
        goto cleanup;
    }
    const char *room_id = pos [0];
    if (cli_check_room_id (cli, room_id))
        goto cleanup;
    long limit = 20;
    if (cli_opt_int (cli, &opts [OPT_LIMIT], 1, 1000000, &limit))
        goto cleanup;
    if (opts [OPT_INTERACTIVE].present) {
        //  Interactive mode is its own program: only it loads libedit
        char dir [AIP_PATH_MAX], exe [AIP_PATH_MAX + 32];
        if (aip_exe_dir (dir, sizeof dir) == 0) {
            snprintf (exe, sizeof exe, "%s/ai-peer-interactive", dir);
            argv [-1] = exe;
            execv (exe, argv - 1);
        }
        cli_fail (cli, "cannot start interactive mode (ai-peer-interactive): %s", strerror (errno));
        goto cleanup;
    }
    cli_peer_t peer;
    if (cli_resolve_peer (cli, opts [OPT_AS].value, opts [OPT_TOOL].value, opts [OPT_TYPE].value,
                          &peer))
        goto cleanup;
    if (npos == 1) {
        rc = s_read (cli, room_id, limit, &peer);
        goto cleanup;
    }
    message = cli_join_words (pos + 1, npos - 1);
    size_t len = message ? strlen (message) : 0;
    if (!message)
        cli_fail (cli, "out of memory");
    else
    if (aip_blank (message, len))
        cli_fail (cli, "the message is empty: write some text after the room id");
    else
    if (len > AIP_MAX_CONTENT)
        cli_fail (cli, "the message is %zu bytes; the limit is %d bytes (256 KiB)", len,
                  AIP_MAX_CONTENT);
    else
    if (!aip_utf8_valid (message, len))
        cli_fail (cli, "the message is not valid UTF-8");
    else {
        //  Sent as it is, unless storaged says the room is encrypted: then
        //  with the room's key, encrypted here
        json_t *sent;
        bool queued = false, lan = false;
        int plain = cli_send_plain (cli, room_id, &peer, message, len, &sent, &queued, &lan);
        if (plain == 0)
            rc = queued ? s_relay_wait (cli, room_id, lan, sent) : s_sent (cli, sent, NULL);
        else
        if (plain == 1) {
            cli_room_t room;
            if (cli_room_open (cli, room_id, &room) == 0
            &&  cli_send (cli, room_id, &room, &peer, message, len, &sent) == 0)
                rc = room.public ? s_relay_wait (cli, room_id, room.lan, sent)
                                 : s_sent (cli, sent, NULL);
            sodium_memzero (&room, sizeof room);
        }
    }
cleanup:
    free (message);
    free (pos);
    return rc;
}

int
cmd_history (cli_t *cli, int argc, char **argv)
{
    enum { OPT_LIMIT, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_LIMIT] = CLI_OPT_VALUE ("-n"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "history", argc, argv, opts, pos, 1, &npos))
        return -1;
    long limit = 50;
    if (cli_opt_int (cli, &opts [OPT_LIMIT], 1, 1000000, &limit))
        return -1;
    if (npos == 0) {
        uint64_t id = cli_request (cli, AIP_OP_ROOM_LIST, 0);
        return cli_call (cli, id, &cli->data);
    }
    if (cli_check_room_id (cli, pos [0]))
        return -1;
    return s_read (cli, pos [0], limit, NULL);
}
