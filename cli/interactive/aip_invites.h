/*  aip_invites.h — invites chat -i runs in the background.

    `@tool question` starts `ai-peer invite` as a child process (its own
    process group, so /cancel stops it and what it runs): the prompt stays
    usable while the tool thinks, the answer arrives as a room event, and
    the invite's JSON result is not needed. Each second the finished ones
    are reaped and a failure is said in words. */
#ifndef AIP_INVITES_H_INCLUDED
#define AIP_INVITES_H_INCLUDED

#include <stdbool.h>

#include "aip_proto.h"
#include "aip_screen.h"

#define AIP_INVITES_MAX 16          //  invites running at once

typedef struct _aip_invites_t aip_invites_t;

//  Invites into room_id by exe_dir/ai-peer, reported on screen (all three
//  borrowed); tty: progress is drawn in place by the screen, else it is
//  said in lines. NULL when out of memory.
aip_invites_t *aip_invites_new (const char *exe_dir, const char *room_id, aip_screen_t *screen,
                                bool tty);
//  Safe to call twice; NULLs the caller's pointer. Running invites go on.
void aip_invites_destroy (aip_invites_t **self_p);
//  Invite tool with context (a failure to start is said on screen)
void aip_invites_start (aip_invites_t *self, const char *tool, const char *context);
//  Stop every running invite; how many there were (said on screen)
int aip_invites_cancel_all (aip_invites_t *self);
//  Reap the finished ones; say how each ended
void aip_invites_reap (aip_invites_t *self);
//  Is any running?
bool aip_invites_any (aip_invites_t *self);
//  A line saying who is thinking, and for how long
void aip_invites_status (aip_invites_t *self);
//  Not a terminal: a progress event's data says a tool of ours is
//  producing output; said every few seconds at most
void aip_invites_progress (aip_invites_t *self, const aip_obj_t *data);

void aip_invites_test (bool verbose);

#endif
