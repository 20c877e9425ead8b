/*  aip_feed.h — the room's live events for chat -i: a SUB socket on the
    broker's event PUB (run/events.ipc), filtered to one room.

    Messages from any local command, AI answers and relayed messages arrive
    as "message" events the moment they are stored; "progress" events carry
    an answer as it grows. The feed decodes each event, checks it is of its
    room (the topic is only a prefix: "room.abc" also matches "room.abcd")
    and hands its data to the handler of its type. */
#ifndef AIP_FEED_H_INCLUDED
#define AIP_FEED_H_INCLUDED

#include <stdbool.h>

#include "aip_proto.h"

//  What to do with each event of the room (data valid during the call)
typedef struct {
    void (*message) (void *arg, const aip_obj_t *data);     //  a message was stored
    void (*progress) (void *arg, const aip_obj_t *data);    //  an answer grows
    void *arg;                                              //  passed to each
} aip_feed_handlers_t;

typedef struct _aip_feed_t aip_feed_t;

//  Subscribe to the events of room_id from the daemons of home (both
//  borrowed: they outlive the feed); NULL when out of memory
aip_feed_t *aip_feed_new (const char *home, const char *room_id,
                          const aip_feed_handlers_t *handlers);
//  Safe to call twice; NULLs the caller's pointer
void aip_feed_destroy (aip_feed_t **self_p);
//  A new broker: subscribe again (events sent meanwhile are lost; the
//  caller catches up from its cursor)
void aip_feed_resubscribe (aip_feed_t *self);
//  The socket to poll for ZMQ_POLLIN
void *aip_feed_socket (aip_feed_t *self);
//  Hand every event waiting to its handler; returns at once when none
void aip_feed_recv (aip_feed_t *self);

void aip_feed_test (bool verbose);

#endif
