/*  aip_feed.c — one room's events from the broker's PUB socket, decoded and
    dispatched by type (see aip_feed.h). */
#include "aip_feed.h"
#include "aip_event.h"
#include "aip_home.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct _aip_feed_t {
    const char *home;               //  $AI_PEERS_HOME (borrowed)
    const char *room_id;            //  the room (borrowed)
    aip_feed_handlers_t handlers;   //  what to do with its events
    void *ctx;                      //  zmq context of the subscription
    void *sub;                      //  SUB to run/events.ipc
};

aip_feed_t *
aip_feed_new (const char *home, const char *room_id, const aip_feed_handlers_t *handlers)
{
    aip_feed_t *self = (aip_feed_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->home = home;
    self->room_id = room_id;
    self->handlers = *handlers;
    self->ctx = zmq_ctx_new ();
    if (!self->ctx) {
        free (self);
        return NULL;
    }
    aip_feed_resubscribe (self);
    return self;
}

void
aip_feed_destroy (aip_feed_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    aip_feed_t *self = *self_p;
    if (self->sub)
        zmq_close (self->sub);
    zmq_ctx_term (self->ctx);
    free (self);
    *self_p = NULL;
}

void
aip_feed_resubscribe (aip_feed_t *self)
{
    char endpoint [AIP_PATH_MAX], err [256], topic [AIP_MAX_ID + 8];
    if (self->sub)
        zmq_close (self->sub);
    self->sub = zmq_socket (self->ctx, ZMQ_SUB);
    int linger = 0;
    int64_t maxmsg = AIP_MAX_REPLY;
    zmq_setsockopt (self->sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    aip_event_topic (AIP_EVENT_MESSAGE, self->room_id, topic, sizeof topic);
    //  The topic is a prefix: "room.abc" would also match "room.abcd"; the
    //  room id in the body is checked too
    zmq_setsockopt (self->sub, ZMQ_SUBSCRIBE, topic, strlen (topic));
    if (aip_home_endpoint (self->home, "events", endpoint, sizeof endpoint, err, sizeof err) == 0)
        zmq_connect (self->sub, endpoint);
}

void *
aip_feed_socket (aip_feed_t *self)
{
    return self->sub;
}

//  One event's body: to the handler of its type, if it is of the room
static void
s_dispatch (aip_feed_t *self, const void *body, size_t size)
{
    char err [128];
    aip_event_t ev;
    if (aip_event_decode (body, size, &ev, err, sizeof err) == 0
    &&  strcmp (ev.room_id, self->room_id) == 0) {
        if (ev.type == AIP_EVENT_PROGRESS && self->handlers.progress)
            self->handlers.progress (self->handlers.arg, ev.data);
        else
        if (ev.type == AIP_EVENT_MESSAGE && self->handlers.message)
            self->handlers.message (self->handlers.arg, ev.data);
    }
    aip_event_free (&ev);
}

void
aip_feed_recv (aip_feed_t *self)
{
    while (true) {
        zmq_msg_t topic, body;
        zmq_msg_init (&topic);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&topic, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&topic);
            zmq_msg_close (&body);
            return;
        }
        if (zmq_msg_more (&topic) && zmq_msg_recv (&body, self->sub, 0) >= 0)
            s_dispatch (self, zmq_msg_data (&body), zmq_msg_size (&body));
        zmq_msg_close (&topic);
        zmq_msg_close (&body);
    }
}

//  ---------------------------------------------------------------------
//  Self-test

//  What the test's handlers saw
typedef struct {
    int messages;                   //  message events
    int progress;                   //  progress events
    char last_id [64];              //  data.id of the last message
    int foreign;                    //  messages of another room
} s_test_seen_t;

static void
s_test_message (void *arg, const aip_obj_t *data)
{
    s_test_seen_t *seen = (s_test_seen_t *) arg;
    seen->messages++;
    aip_obj_get_str (data, "id", seen->last_id, sizeof seen->last_id, "");
    if (seen->last_id [0] != 'm')
        seen->foreign++;
}

static void
s_test_progress (void *arg, const aip_obj_t *data)
{
    ((s_test_seen_t *) arg)->progress++;
}

//  Publish one event as the broker does: a message with this id, or the
//  progress of an answer with it, on topic "room.<topic_room>"
static void
s_test_publish (void *pub, const char *topic_room, const char *room_id,
                aip_event_type_t type, const char *id)
{
    char topic [64];
    aip_event_topic (type, topic_room, topic, sizeof topic);
    aip_pack_t *pk = aip_pack_new ();
    if (type == AIP_EVENT_MESSAGE) {
        aip_pack_t *msg = aip_pack_new ();
        aip_pack_map (msg, 7);
        aip_pack_kstr (msg, "id", id);
        aip_pack_kstr (msg, "room_id", room_id);
        aip_pack_kstr (msg, "peer_id", "host-human-me");
        aip_pack_kstr (msg, "content", "hello");
        aip_pack_kstr (msg, "type", "message");
        aip_pack_kstr (msg, "created_at", "2026-12-04T18:00:00.000000Z");
        aip_pack_kstr (msg, "peer_type", "human");
        size_t msg_size;
        const void *msg_data = aip_pack_data (msg, &msg_size);
        aip_event_pack_message (pk, room_id, msg_data, msg_size);
        aip_pack_destroy (&msg);
    }
    else {
        aip_progress_t progress = { .tool = "claude", .msg_id = id };
        aip_event_pack_progress (pk, room_id, &progress);
    }
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    zmq_send (pub, topic, strlen (topic), ZMQ_SNDMORE);
    zmq_send (pub, data, size, 0);
    aip_pack_destroy (&pk);
}

void
aip_feed_test (bool verbose)
{
    printf (" * aip_feed: ");
    char dir [] = "/tmp/aip_feed_test_XXXXXX";
    assert (mkdtemp (dir));
    char run [AIP_PATH_MAX], endpoint [AIP_PATH_MAX], err [256];
    snprintf (run, sizeof run, "%s/run", dir);
    assert (aip_mkdir_p (run, 0700) == 0);
    assert (aip_home_endpoint (dir, "events", endpoint, sizeof endpoint, err, sizeof err) == 0);
    void *ctx = zmq_ctx_new ();
    void *pub = zmq_socket (ctx, ZMQ_PUB);
    assert (zmq_bind (pub, endpoint) == 0);

    s_test_seen_t seen;
    memset (&seen, 0, sizeof seen);
    aip_feed_handlers_t handlers = { .message = s_test_message, .progress = s_test_progress,
                                     .arg = &seen };
    aip_feed_t *feed = aip_feed_new (dir, "abc", &handlers);
    assert (feed);
    //  A subscription takes a moment to reach the publisher: publish until
    //  the message arrives (a deadline, not a sleep). Before it, each round
    //  sends an event of a room whose id starts with the same letters, one
    //  whose topic lies about its room, and a progress event.
    int64_t deadline = aip_clock_ms () + 10000;
    while ((seen.messages == 0 || seen.progress == 0) && aip_clock_ms () < deadline) {
        s_test_publish (pub, "abcd", "abcd", AIP_EVENT_MESSAGE, "other-room");
        s_test_publish (pub, "abc", "abcd", AIP_EVENT_MESSAGE, "lying-topic");
        s_test_publish (pub, "abc", "abc", AIP_EVENT_PROGRESS, "p");
        s_test_publish (pub, "abc", "abc", AIP_EVENT_MESSAGE, "m1");
        zmq_pollitem_t items [] = { { aip_feed_socket (feed), 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll (items, 1, 50) > 0)
            aip_feed_recv (feed);
    }
    assert (seen.messages >= 1 && strcmp (seen.last_id, "m1") == 0);
    assert (seen.progress >= 1 && seen.foreign == 0);
    //  Garbage on the topic is dropped; the feed goes on
    zmq_send (pub, "room.abc", 8, ZMQ_SNDMORE);
    zmq_send (pub, "\xc1\xc1", 2, 0);
    deadline = aip_clock_ms () + 10000;
    s_test_publish (pub, "abc", "abc", AIP_EVENT_MESSAGE, "m2");
    while (strcmp (seen.last_id, "m2") != 0 && aip_clock_ms () < deadline) {
        zmq_pollitem_t items [] = { { aip_feed_socket (feed), 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll (items, 1, 100) > 0)
            aip_feed_recv (feed);
    }
    assert (strcmp (seen.last_id, "m2") == 0);
    assert (seen.foreign == 0);
    //  Nothing waiting: returns at once
    aip_feed_recv (feed);
    aip_feed_resubscribe (feed);
    assert (aip_feed_socket (feed));
    aip_feed_destroy (&feed);
    aip_feed_destroy (&feed);
    assert (!feed);
    zmq_close (pub);
    zmq_ctx_term (ctx);
    snprintf (run, sizeof run, "rm -rf %s", dir);
    assert (system (run) == 0);
    printf ("OK\n");
}
