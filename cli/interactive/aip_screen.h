/*  aip_screen.h — what chat -i shows on stderr: lines printed above the
    prompt, and the AI answers growing in place right above it.

    Everything from peers and tools is laid out by aip_layout (cleaned,
    wrapped, indented). On a terminal, printing keeps what is half-typed:
    the line is cleared, the text printed above it, and the line editor
    draws the prompt again with the text and cursor as they were.

    Progress events carry an answer's text so far and the id it will be
    posted under. Each growing answer is a block of rows right above the
    prompt: "⏳ TOOL is thinking… N s" until text comes, then "✎ TOOL is
    writing… N s" and the last rows of the text. Whatever is printed goes
    above the blocks (they are hidden and drawn again), and when the posted
    message arrives its block goes and the message is printed as any other.
    The rows are laid out by aip_layout (which wraps before the terminal
    does), so the number of rows drawn is exact and the blocks can be taken
    away by moving the cursor up that many rows. */
#ifndef AIP_SCREEN_H_INCLUDED
#define AIP_SCREEN_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "aip_layout.h"
#include "aip_proto.h"

#define AIP_SCREEN_MAX_LIVE     24          //  answers growing at once: ours (16) and 8 more
#define AIP_SCREEN_TEXT_MAX     (64 * 1024) //  text of one progress event shown
#define AIP_SCREEN_LINGER_MS    5000        //  a block whose invite ended, at most
#define AIP_SCREEN_STALE_MS     120000      //  somebody else's block without events

//  The line editor below the output: the screen asks it to draw the prompt
//  again after printing above it, and where its cursor is
typedef struct {
    const char *prompt;             //  as shown, e.g. "[You]: "
    void (*redraw) (void);          //  draw the prompt and the half-typed line
    size_t (*cursor) (void);        //  the cursor's byte in the half-typed line
} aip_screen_editor_t;

typedef struct _aip_screen_t aip_screen_t;

//  A screen on out (stderr). tty: a terminal, drawn in place with editor
//  (borrowed, may be NULL) below; color: peers in colours; names (taken):
//  display names two peers share, seen with cli_room_names
aip_screen_t *aip_screen_new (FILE *out, bool tty, bool color, const aip_screen_editor_t *editor,
                              json_t *names);
//  Safe to call twice; NULLs the caller's pointer. The blocks stay drawn:
//  aip_screen_clear takes them away first.
void aip_screen_destroy (aip_screen_t **self_p);

//  A layout of the terminal's width (no wrapping when not a terminal)
aip_layout_t *aip_screen_layout (aip_screen_t *self);
//  Print a layout's line above the prompt; the layout is destroyed
void aip_screen_print_layout (aip_screen_t *self, aip_layout_t **layout_p);
//  Print text of ours as it is (it may hold our colour codes)
void aip_screen_print_raw (aip_screen_t *self, const char *text);
//  A status line: ours, but it may quote a tool name or an error from a
//  daemon or relay, so it is cleaned as one line
void aip_screen_print (aip_screen_t *self, const char *text);
//  The one place that prints a message: "[name (tool)]: text", or
//  "  * name text" for a system message; every field is cleaned, and a
//  name another peer has too is shown with its peer id
void aip_screen_message (aip_screen_t *self, const char *peer_id, const char *name,
                         const char *tool, const char *type, const char *content);

//  Our invite process pid started for tool: its block says it is thinking
void aip_screen_live_start (aip_screen_t *self, const char *tool, pid_t pid);
//  A progress event's data ({tool, msg_id, text or partial}) for an answer
//  not shown yet: its block grows (somebody else's invite gets one too)
void aip_screen_live_progress (aip_screen_t *self, const aip_obj_t *data);
//  The posted message msg_id arrived: its block goes (the message is
//  printed next)
void aip_screen_live_end (aip_screen_t *self, const char *msg_id);
//  Our invite process ended: a failure takes its block away; a success
//  leaves it until the message arrives
void aip_screen_live_exited (aip_screen_t *self, pid_t pid, bool ok);
//  Every second: the clocks; blocks whose message never came are dropped
void aip_screen_tick (aip_screen_t *self);
//  Draw the blocks again (new text, the clock) and the prompt below them
void aip_screen_refresh (aip_screen_t *self);
//  Enter was pressed: the editor left the typed line on screen below the
//  blocks; print it above them instead, as if it had been printed
void aip_screen_enter (aip_screen_t *self, const char *line);
//  Take the blocks off the screen for good (leaving the room)
void aip_screen_clear (aip_screen_t *self);

void aip_screen_test (bool verbose);

#endif
