/*  aip_chat.h — a chat -i session: one human in one room.

    The session owns what is on screen (aip_screen), the invites running in
    the background (aip_invites), the room's events (aip_feed) and, on a
    terminal, the line editor (aip_editor). It reads the room from a cursor
    so that a broker restart loses nothing, and remembers the ids it showed
    or sent so that nothing shows twice. The /commands (aip_commands) work
    on its fields. */
#ifndef AIP_CHAT_H_INCLUDED
#define AIP_CHAT_H_INCLUDED

#include "cli.h"
#include "aip_editor.h"
#include "aip_feed.h"
#include "aip_invites.h"
#include "aip_screen.h"

#define AIP_CHAT_SEEN_MAX   4096    //  ids remembered for de-duplication

typedef struct {
    cli_t *cli;                     //  shared CLI state (borrowed)
    const char *room_id;            //  the room (borrowed)
    cli_room_t room;                //  its key when encrypted
    cli_peer_t me;                  //  who types
    bool tty;                       //  stdin and stderr are a terminal
    char exe_dir [AIP_PATH_MAX];    //  where ai-peer lives
    aip_screen_t *screen;           //  what is shown (from aip_chat_open)
    aip_invites_t *invites;         //  invites running in the background
    aip_feed_t *feed;               //  the room's events
    aip_editor_t *editor;           //  the line being typed (a terminal), or NULL
    pid_t broker_pid;               //  to notice a restart
    char cursor_ts [AIP_MAX_TIME + 1];  //  newest message shown
    char cursor_id [AIP_MAX_ID + 1];    //  and its id
    char *seen [AIP_CHAT_SEEN_MAX]; //  ids shown or sent by this session (ring)
    size_t seen_next;               //  the ring's next slot
    int sent;                       //  lines sent
    int not_sent;                   //  lines refused (too long, NUL, not UTF-8, error)
    long line_no;                   //  piped input: the line being sent; 0 on a terminal
    bool quit;                      //  leave the loop
    unsigned ticks;                 //  seconds in the room
} aip_chat_t;

//  A session in room_id (borrowed) for cli (borrowed); tty: stdin and
//  stderr are a terminal. The caller resolves me and opens room, then
//  calls aip_chat_open. NULL when out of memory.
aip_chat_t *aip_chat_new (cli_t *cli, const char *room_id, bool tty);
//  Safe to call twice; NULLs the caller's pointer. Forgets the room key;
//  running invites go on (aip_invites_cancel_all stops them).
void aip_chat_destroy (aip_chat_t **self_p);
//  The screen (color: peers in colours), the invites and the room's events,
//  subscribed before the room is read so that nothing falls between the two
int aip_chat_open (aip_chat_t *self, bool color);
//  Show the last n messages, or those after the cursor; join: as me, who
//  joins the room if not a member yet
int aip_chat_fetch (aip_chat_t *self, long n, bool after_cursor, bool join);
//  Show one message (JSON object, content already revealed) once, and
//  advance the cursor past it
void aip_chat_show (aip_chat_t *self, json_t *message);
//  Send text as me (encrypted in an encrypted room); a refusal is said on
//  screen and counted as not sent
int aip_chat_send (aip_chat_t *self, const char *text);
//  Forget what was shown, so that it can be shown again
void aip_chat_forget (aip_chat_t *self);
//  Every second: finished invites, a broker restart, the clocks on screen
void aip_chat_tick (aip_chat_t *self);

void aip_chat_test (bool verbose);

#endif
