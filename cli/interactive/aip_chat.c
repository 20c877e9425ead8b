/*  aip_chat.c — a chat -i session: reading the room from a cursor, showing
    each message once, sending, and the once-a-second checks (see
    aip_chat.h). */
#include "aip_chat.h"

#include <assert.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

//  The screen asks the line editor to draw the prompt again
static const aip_screen_editor_t s_editor_hooks = {
    .prompt = AIP_EDITOR_PROMPT,
    .redraw = aip_editor_redraw,
    .cursor = aip_editor_cursor,
};

aip_chat_t *
aip_chat_new (cli_t *cli, const char *room_id, bool tty)
{
    aip_chat_t *self = (aip_chat_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cli = cli;
    self->room_id = room_id;
    self->tty = tty;
    aip_exe_dir (self->exe_dir, sizeof self->exe_dir);
    return self;
}

void
aip_chat_destroy (aip_chat_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    aip_chat_t *self = *self_p;
    aip_editor_destroy (&self->editor);
    aip_feed_destroy (&self->feed);
    aip_invites_destroy (&self->invites);
    aip_screen_destroy (&self->screen);
    for (size_t i = 0; i < AIP_CHAT_SEEN_MAX; i++)
        free (self->seen [i]);
    sodium_memzero (&self->room, sizeof self->room);
    free (self);
    *self_p = NULL;
}

//  Was id shown or sent? If not, it is from now on
static bool
s_seen (aip_chat_t *self, const char *id)
{
    for (size_t i = 0; i < AIP_CHAT_SEEN_MAX; i++)
        if (self->seen [i] && strcmp (self->seen [i], id) == 0)
            return true;
    free (self->seen [self->seen_next]);
    self->seen [self->seen_next] = strdup (id);
    self->seen_next = (self->seen_next + 1) % AIP_CHAT_SEEN_MAX;
    return false;
}

//  Was this message shown already? (a late event must not bring it back)
static bool
s_shown (aip_chat_t *self, const char *id)
{
    for (size_t i = 0; i < AIP_CHAT_SEEN_MAX; i++)
        if (self->seen [i] && strcmp (self->seen [i], id) == 0)
            return true;
    return false;
}

void
aip_chat_forget (aip_chat_t *self)
{
    for (size_t i = 0; i < AIP_CHAT_SEEN_MAX; i++) {
        free (self->seen [i]);
        self->seen [i] = NULL;
    }
}

//  What this session sent is in the seen ids from the moment it is sent
//  (the user saw it as typed); what the same identity sent from elsewhere
//  (another terminal, an agent running as the user) is shown like anyone's.
void
aip_chat_show (aip_chat_t *self, json_t *m)
{
    const char *id = json_string_value (json_object_get (m, "id"));
    const char *ts = json_string_value (json_object_get (m, "created_at"));
    if (!id || !ts)
        return;
    aip_screen_live_end (self->screen, id);
    //  Advance the cursor even for what is not shown
    if (strcmp (ts, self->cursor_ts) > 0
    ||  (strcmp (ts, self->cursor_ts) == 0 && strcmp (id, self->cursor_id) > 0)) {
        snprintf (self->cursor_ts, sizeof self->cursor_ts, "%s", ts);
        snprintf (self->cursor_id, sizeof self->cursor_id, "%s", id);
    }
    if (s_seen (self, id))
        return;
    aip_screen_message (self->screen, json_string_value (json_object_get (m, "peer_id")),
                        json_string_value (json_object_get (m, "peer_name")),
                        json_string_value (json_object_get (m, "peer_tool")),
                        json_string_value (json_object_get (m, "type")),
                        json_string_value (json_object_get (m, "content")));
}

int
aip_chat_fetch (aip_chat_t *self, long n, bool after_cursor, bool join)
{
    cli_t *cli = self->cli;
    size_t nargs = 2 + (after_cursor ? 2 : 0) + (join ? 1 : 0);
    uint64_t id = cli_request (cli, AIP_OP_MSG_LIST, nargs);
    aip_pack_kstr (cli->pk, "room_id", self->room_id);
    aip_pack_kint (cli->pk, "limit", n);
    if (after_cursor) {
        aip_pack_kstr (cli->pk, "after_ts", self->cursor_ts);
        aip_pack_kstr (cli->pk, "after_id", self->cursor_id);
    }
    if (join)
        cli_pack_peer (cli, &self->me);
    json_t *data;
    if (cli_call (cli, id, &data))
        return -1;
    json_t *messages = json_object_get (data, "messages");
    cli_room_reveal_json (&self->room, messages);
    size_t i;
    json_t *m;
    json_array_foreach (messages, i, m)
        aip_chat_show (self, m);
    json_decref (data);
    return 0;
}

int
aip_chat_send (aip_chat_t *self, const char *text)
{
    cli_t *cli = self->cli;
    size_t len = strlen (text);
    char where [32] = "";
    if (self->line_no)
        snprintf (where, sizeof where, "line %ld ", self->line_no);
    if (len > AIP_MAX_CONTENT || !aip_utf8_valid (text, len)) {
        char line [200];
        snprintf (line, sizeof line, "  ! %snot sent: %s", where, len > AIP_MAX_CONTENT
                  ? "a message is at most 256 KiB" : "it is not valid UTF-8");
        aip_screen_print (self->screen, line);
        self->not_sent++;
        return -1;
    }
    char msg_id [AIP_MSG_ID_LEN + 1];
    aip_msg_id_new (msg_id);
    char *cipher = NULL;
    if (self->room.encrypted
    &&  aip_roomkey_encrypt (&self->room.key, self->room_id, msg_id, self->me.id, text, len,
                             &cipher))
        return -1;
    uint64_t id = cli_request (cli, AIP_OP_MSG_SEND, 4);
    aip_pack_kstr (cli->pk, "room_id", self->room_id);
    aip_pack_kstr (cli->pk, "id", msg_id);
    aip_pack_kstr (cli->pk, "content", cipher ? cipher : text);
    cli_pack_peer (cli, &self->me);
    free (cipher);
    s_seen (self, msg_id);
    if (cli_call (cli, id, NULL)) {
        char line [2200];
        snprintf (line, sizeof line, "  ! %snot sent: %s", where, cli->err);
        aip_screen_print (self->screen, line);
        self->not_sent++;
        return -1;
    }
    self->sent++;
    return 0;
}

//  A message event: revealed and shown
static void
s_on_message (void *arg, const aip_obj_t *data)
{
    aip_chat_t *self = (aip_chat_t *) arg;
    json_t *one = json_array ();
    json_array_append_new (one, aip_json_from_obj (data));
    cli_room_reveal_json (&self->room, one);
    aip_chat_show (self, json_array_get (one, 0));
    json_decref (one);
}

//  A tool is producing output: in place on a terminal, else a line now
//  and then about our own invites
static void
s_on_progress (void *arg, const aip_obj_t *data)
{
    aip_chat_t *self = (aip_chat_t *) arg;
    if (!self->tty) {
        aip_invites_progress (self->invites, data);
        return;
    }
    char msg_id [AIP_MAX_ID + 1];
    aip_obj_get_str (data, "msg_id", msg_id, sizeof msg_id, "");
    if (!s_shown (self, msg_id))
        aip_screen_live_progress (self->screen, data);
}

int
aip_chat_open (aip_chat_t *self, bool color)
{
    self->screen = aip_screen_new (stderr, self->tty, color, &s_editor_hooks,
                                   cli_room_names (self->cli, self->room_id, NULL));
    self->invites = self->screen
                  ? aip_invites_new (self->exe_dir, self->room_id, self->screen, self->tty)
                  : NULL;
    aip_daemon_running (self->cli->home, &self->broker_pid);
    aip_feed_handlers_t handlers = { .message = s_on_message, .progress = s_on_progress,
                                     .arg = self };
    self->feed = self->invites ? aip_feed_new (self->cli->home, self->room_id, &handlers) : NULL;
    if (!self->feed)
        return cli_fail (self->cli, "out of memory");
    return 0;
}

void
aip_chat_tick (aip_chat_t *self)
{
    aip_invites_reap (self->invites);
    pid_t pid = 0;
    aip_daemon_running (self->cli->home, &pid);
    if (pid && pid != self->broker_pid) {
        //  A new broker: reconnect and catch up from the cursor, so nothing
        //  is skipped (and the seen ids keep anything from showing twice)
        self->broker_pid = pid;
        aip_client_destroy (&self->cli->client);
        aip_feed_resubscribe (self->feed);
        aip_chat_fetch (self, AIP_MAX_PAGE, true, false);
    }
    //  Who is thinking, and for how long: on a terminal, in place; else
    //  a line every 10 s
    aip_screen_tick (self->screen);
    if (!self->tty && aip_invites_any (self->invites) && ++self->ticks % 10 == 0)
        aip_invites_status (self->invites);
}

//  ---------------------------------------------------------------------
//  Self-test

void
aip_chat_test (bool verbose)
{
    printf (" * aip_chat: ");
    cli_t cli;
    memset (&cli, 0, sizeof cli);
    aip_chat_t *chat = aip_chat_new (&cli, "room1", false);
    assert (chat && *chat->exe_dir);
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&buf, &size);
    chat->screen = aip_screen_new (out, false, false, NULL, NULL);
    //  Each message is shown once; the cursor is the newest seen
    json_t *b = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "id", "b", "created_at", "2026-01-02",
                           "peer_id", "host-claude", "peer_name", "claude", "content", "two");
    json_t *a = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "id", "a", "created_at", "2026-01-01",
                           "peer_id", "host-claude", "peer_name", "claude", "content", "one");
    json_t *bad = json_pack ("{s:s}", "content", "no id");
    aip_chat_show (chat, b);
    aip_chat_show (chat, a);
    aip_chat_show (chat, b);
    aip_chat_show (chat, bad);
    fflush (out);
    assert (strcmp (buf, "[claude]: two\n[claude]: one\n") == 0);
    assert (strcmp (chat->cursor_ts, "2026-01-02") == 0 && strcmp (chat->cursor_id, "b") == 0);
    //  Forgotten: shown again (/history)
    aip_chat_forget (chat);
    aip_chat_show (chat, a);
    fflush (out);
    assert (strcmp (buf, "[claude]: two\n[claude]: one\n[claude]: one\n") == 0);
    assert (strcmp (chat->cursor_id, "b") == 0);
    //  The ring keeps the newest AIP_CHAT_SEEN_MAX ids
    for (int i = 0; i < AIP_CHAT_SEEN_MAX; i++) {
        char id [16];
        snprintf (id, sizeof id, "x%d", i);
        assert (!s_seen (chat, id));
    }
    assert (!s_shown (chat, "a") && s_shown (chat, "x0") && s_seen (chat, "x4095"));
    json_decref (a);
    json_decref (b);
    json_decref (bad);
    aip_chat_destroy (&chat);
    aip_chat_destroy (&chat);
    assert (!chat);
    fclose (out);
    free (buf);
    printf ("OK\n");
}
