/*  aip_webrooms.h — the rooms as webd knows them, and the page's views of
    rooms, messages, their usage and a tool's progress.

    webd learns a room (room.get with_key) before it shows its messages:
    an encrypted room's text is revealed with its key here, in webd, and
    never leaves it but as the HTML cmark renders in safe mode
    (aip_markdown.h). A message event or a history that comes before its
    room is known waits for it. The page's view of a room never has its
    token or key; names and the rest are plain strings the page puts in
    with textContent.

    It does not talk to the broker: aip_webrooms_want says when a room.get
    must be sent, and the caller hands the replies back. What it shows
    goes to the pages (aip_webpages). */
#ifndef AIP_WEBROOMS_H_INCLUDED
#define AIP_WEBROOMS_H_INCLUDED

#include "aip_proto.h"
#include "aip_webpages.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _aip_webrooms_t aip_webrooms_t;
typedef struct _aip_webroom_t aip_webroom_t;

//  What the rooms show goes to pages (borrowed)
aip_webrooms_t *aip_webrooms_new (aip_webpages_t *pages);
//  Forgets (and wipes) every room's key
void aip_webrooms_destroy (aip_webrooms_t **self_p);

//  The room of id, known or being learnt; NULL for a bad id. *fetch says
//  the caller must now send room.get {id, with_key: true} and hand its
//  reply to aip_webrooms_loaded.
aip_webroom_t *aip_webrooms_want (aip_webrooms_t *self, const char *id, bool *fetch);
//  room.get's reply for room id: the pages hear of a room new to them, and
//  what waited for it is shown (or refused: the room is gone)
void aip_webrooms_loaded (aip_webrooms_t *self, const char *id, aip_reply_t *rep);
//  A message event of room (root: {room_id, type, data}; doc: its decoded
//  body, taken): to every page (unread counts), once the room is known
void aip_webrooms_message (aip_webrooms_t *self, aip_webroom_t *room, aip_doc_t **doc_p);
//  msg.list's reply for the page of serial opening room id: its history,
//  once the room is known (rep->doc is taken while it waits)
void aip_webrooms_history (aip_webrooms_t *self, const char *id, uint64_t serial,
                           aip_reply_t *rep);
//  A tool's progress in room id: to the pages that have it open
void aip_webrooms_progress (aip_webrooms_t *self, const char *id, const aip_obj_t *data);

//  room.get has answered: its messages can be shown and posted
bool aip_webroom_ready (aip_webroom_t *room);
//  What a post of text becomes in room: *cipher NULL for a plain room,
//  else the sealed text (the caller's to free). 0, or -1 if it cannot be
//  encrypted.
int aip_webroom_seal (aip_webroom_t *room, const char *msg_id, const char *peer_id,
                      const char *text, size_t len, char **cipher);

//  The page's view of a stored room (room.get, room.list): never its
//  token or key
json_t *aip_webrooms_info (const aip_obj_t *row);
//  Message frames sent to the pages so far (for the log)
uint64_t aip_webrooms_delivered (aip_webrooms_t *self);

void aip_webrooms_test (bool verbose);

#endif
