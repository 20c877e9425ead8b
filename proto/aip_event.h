/*  aip_event.h — the published events (AIP_EVENTS in aip_proto.h): their
    topics, packing for the workers that publish them (storaged: message,
    outbox; spawnd: progress) and decoding for those that subscribe (relayd,
    webd, the CLI). A decoded event has been checked against its schema:
    version, type, room id and every field of its data, as a request is. */
#ifndef AIP_EVENT_H_INCLUDED
#define AIP_EVENT_H_INCLUDED

#include "aip_proto.h"

//  What a subscriber subscribes to for a room's events (a prefix: "room.abc"
//  also matches "room.abcd", so a subscriber checks the event's room_id)
#define AIP_EVENT_ROOM_PREFIX "room."

//  The event type's name, and back (-1)
const char *aip_event_name (aip_event_type_t type);
int aip_event_lookup (const char *name, size_t len);
//  The topic an event of this type is published on: "room.<room_id>" for a
//  room's events, else the type's name; truncated to bufsize
const char *aip_event_topic (aip_event_type_t type, const char *room_id,
                             char *buf, size_t bufsize);
//  The room a room topic names, or NULL (borrowed from topic)
const char *aip_event_topic_room (const char *topic);

//  A message event: msg is the message map, already packed (what the store
//  answered msg.send with, without queued/lan)
void aip_event_pack_message (aip_pack_t *pk, const char *room_id,
                             const void *msg, size_t msg_size);

//  A progress event of a running tool
typedef struct {
    const char *tool;           //  the tool that runs
    const char *msg_id;         //  the id its answer will have ("" if none)
    int64_t bytes;              //  bytes it has printed so far
    int64_t elapsed_ms;         //  since it started
    const char *partial;        //  the last bytes of its output (repaired UTF-8)
    size_t partial_len;         //  ... their length
    const char *text;           //  the answer so far (repaired UTF-8)
    size_t text_len;            //  ... its length
    bool done;                  //  the tool has finished
} aip_progress_t;

void aip_event_pack_progress (aip_pack_t *pk, const char *room_id,
                              const aip_progress_t *progress);

//  An outbox event: message msg_id of room_id waits for delivery; msg, if
//  not NULL, is that message's map, packed (as for a message event), so
//  relayd can send it without reading the outbox back
void aip_event_pack_outbox (aip_pack_t *pk, const char *room_id, const char *msg_id,
                            const void *msg, size_t msg_size);

typedef struct {
    aip_doc_t *doc;             //  owns everything below
    aip_event_type_t type;      //  which event
    char room_id [AIP_MAX_ID + 1];  //  the room it is about
    const aip_obj_t *data;      //  message, progress: the data map; outbox: the
                                //  message it announces, or NULL
    char msg_id [AIP_MAX_ID + 1];   //  message: its id; progress: the answer's
                                    //  ("" if none); outbox: the waiting message
} aip_event_t;

//  Decode and check an event. Returns 0, or -1 with err filled (ev then
//  owns nothing). aip_event_free is safe twice.
int aip_event_decode (const void *data, size_t size, aip_event_t *ev,
                      char *err, size_t errlen);
void aip_event_free (aip_event_t *ev);

void aip_event_test (bool verbose);

#endif
