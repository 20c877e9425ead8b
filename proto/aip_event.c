/*  aip_event.c — the published events: schemas of their bodies, topics,
    packing for the publishers and checked decoding for the subscribers.
    The table itself is AIP_EVENTS in aip_proto.h. */
#include "aip_event.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F_END { NULL, AIP_T_STR, false, 0, NULL, NULL }

//  A message as the store packs it (its columns, peer_* from the sender)
static const aip_field_t s_message_fields [] = {
    { "id",         AIP_T_ID,  true,  AIP_MAX_ID,           NULL, NULL },
    { "room_id",    AIP_T_ID,  true,  AIP_MAX_ID,           NULL, NULL },
    { "peer_id",    AIP_T_ID,  true,  AIP_MAX_ID,           NULL, NULL },
    { "content",    AIP_T_STR, true,  AIP_MAX_CONTENT_WIRE, NULL, NULL },
    { "type",       AIP_T_STR, true,  8,                    "message|system|invite", NULL },
    { "metadata",   AIP_T_STR, false, AIP_MAX_METADATA,     NULL, NULL },
    { "created_at", AIP_T_STR, true,  AIP_MAX_TIME,         NULL, NULL },
    { "peer_name",  AIP_T_STR, false, AIP_MAX_NAME,         NULL, NULL },
    { "peer_tool",  AIP_T_STR, false, AIP_MAX_NAME,         NULL, NULL },
    { "peer_type",  AIP_T_STR, false, 8,                    "ai|human", NULL },
    F_END
};

static const aip_field_t s_progress_fields [] = {
    { "tool",       AIP_T_STR,  true, AIP_MAX_NAME,           NULL, NULL },
    { "msg_id",     AIP_T_STR,  true, AIP_MAX_ID,             NULL, NULL },
    { "bytes",      AIP_T_INT,  true, INT64_MAX,              NULL, NULL },
    { "elapsed_ms", AIP_T_INT,  true, INT64_MAX,              NULL, NULL },
    { "partial",    AIP_T_STR,  true, AIP_PROGRESS_TAIL_WIRE, NULL, NULL },
    { "text",       AIP_T_STR,  true, AIP_PROGRESS_TEXT_WIRE, NULL, NULL },
    { "done",       AIP_T_BOOL, true, 0,                      NULL, NULL },
    F_END
};

//  The bodies: v and type are checked before the schema is
static const aip_field_t s_message_event [] = {
    { "v",       AIP_T_INT, true, AIP_PROTO_VERSION, NULL, NULL },
    { "type",    AIP_T_STR, true, 16,                NULL, NULL },
    { "room_id", AIP_T_ID,  true, AIP_MAX_ID,        NULL, NULL },
    { "data",    AIP_T_MAP, true, 0,                 NULL, s_message_fields },
    F_END
};

static const aip_field_t s_progress_event [] = {
    { "v",       AIP_T_INT, true, AIP_PROTO_VERSION, NULL, NULL },
    { "type",    AIP_T_STR, true, 16,                NULL, NULL },
    { "room_id", AIP_T_ID,  true, AIP_MAX_ID,        NULL, NULL },
    { "data",    AIP_T_MAP, true, 0,                 NULL, s_progress_fields },
    F_END
};

static const aip_field_t s_outbox_event [] = {
    { "v",       AIP_T_INT, true, AIP_PROTO_VERSION, NULL, NULL },
    { "type",    AIP_T_STR, true, 16,                NULL, NULL },
    { "room_id", AIP_T_ID,  true, AIP_MAX_ID,        NULL, NULL },
    { "id",      AIP_T_ID,  true, AIP_MAX_ID,        NULL, NULL },
    //  the message itself, so that relayd need not read it back
    { "data",    AIP_T_MAP, false, 0,                NULL, s_message_fields },
    F_END
};

static const struct {
    const char *name;           //  the body's type and a topic that is no room's
    bool per_room;              //  published on "room.<room_id>"
    const aip_field_t *fields;  //  schema of the body
} s_events [AIP_EVENT_COUNT] = {
#define AIP_EVENT_ROW(e, name, per_room, fields) [AIP_EVENT_##e] = { name, per_room, fields },
    AIP_EVENTS (AIP_EVENT_ROW)
#undef AIP_EVENT_ROW
};

const char *
aip_event_name (aip_event_type_t type)
{
    assert (type < AIP_EVENT_COUNT);
    return s_events [type].name;
}

int
aip_event_lookup (const char *name, size_t len)
{
    for (int i = 0; name && i < AIP_EVENT_COUNT; i++)
        if (strlen (s_events [i].name) == len && memcmp (s_events [i].name, name, len) == 0)
            return i;
    return -1;
}

const char *
aip_event_topic (aip_event_type_t type, const char *room_id, char *buf, size_t bufsize)
{
    assert (type < AIP_EVENT_COUNT);
    if (s_events [type].per_room)
        snprintf (buf, bufsize, "%s%s", AIP_EVENT_ROOM_PREFIX, room_id);
    else
        snprintf (buf, bufsize, "%s", s_events [type].name);
    return buf;
}

const char *
aip_event_topic_room (const char *topic)
{
    size_t n = strlen (AIP_EVENT_ROOM_PREFIX);
    if (!topic || strncmp (topic, AIP_EVENT_ROOM_PREFIX, n) != 0)
        return NULL;
    return topic + n;
}

static void
s_pack_head (aip_pack_t *pk, aip_event_type_t type, const char *room_id)
{
    aip_pack_map_begin (pk);
    aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
    aip_pack_kstr (pk, "type", s_events [type].name);
    aip_pack_kstr (pk, "room_id", room_id);
}

void
aip_event_pack_message (aip_pack_t *pk, const char *room_id, const void *msg, size_t msg_size)
{
    s_pack_head (pk, AIP_EVENT_MESSAGE, room_id);
    aip_pack_key (pk, "data");
    aip_pack_raw (pk, msg, msg_size);
    aip_pack_map_end (pk);
}

void
aip_event_pack_progress (aip_pack_t *pk, const char *room_id, const aip_progress_t *progress)
{
    s_pack_head (pk, AIP_EVENT_PROGRESS, room_id);
    aip_pack_key (pk, "data");
    aip_pack_map (pk, 7);
    aip_pack_kstr (pk, "tool", progress->tool);
    aip_pack_kstr (pk, "msg_id", progress->msg_id ? progress->msg_id : "");
    aip_pack_kint (pk, "bytes", progress->bytes);
    aip_pack_kint (pk, "elapsed_ms", progress->elapsed_ms);
    aip_pack_kstrn (pk, "partial", progress->partial ? progress->partial : "",
                    progress->partial ? progress->partial_len : 0);
    aip_pack_kstrn (pk, "text", progress->text ? progress->text : "",
                    progress->text ? progress->text_len : 0);
    aip_pack_kbool (pk, "done", progress->done);
    aip_pack_map_end (pk);
}

void
aip_event_pack_outbox (aip_pack_t *pk, const char *room_id, const char *msg_id,
                       const void *msg, size_t msg_size)
{
    s_pack_head (pk, AIP_EVENT_OUTBOX, room_id);
    aip_pack_kstr (pk, "id", msg_id);
    if (msg) {
        aip_pack_key (pk, "data");
        aip_pack_raw (pk, msg, msg_size);
    }
    aip_pack_map_end (pk);
}

int
aip_event_decode (const void *data, size_t size, aip_event_t *ev, char *err, size_t errlen)
{
    memset (ev, 0, sizeof *ev);
    ev->doc = aip_doc_decode (data, size, err, errlen);
    if (!ev->doc)
        return -1;
    const aip_obj_t *root = aip_doc_root (ev->doc);
    const aip_obj_t *v = aip_obj_get (root, "v");
    if (!aip_obj_is_int (v) || aip_obj_int (v) != AIP_PROTO_VERSION) {
        snprintf (err, errlen, "event has no protocol version %d", AIP_PROTO_VERSION);
        goto malformed;
    }
    size_t len;
    const char *name = aip_obj_str (aip_obj_get (root, "type"), &len);
    int type = name ? aip_event_lookup (name, len) : -1;
    if (type < 0) {
        snprintf (err, errlen, "event has no known type");
        goto malformed;
    }
    ev->type = (aip_event_type_t) type;
    if (aip_schema_check (s_events [type].fields, root, s_events [type].name, err, errlen))
        goto malformed;
    aip_obj_get_str (root, "room_id", ev->room_id, sizeof ev->room_id, "");
    ev->data = aip_obj_get (root, "data");
    if (ev->type == AIP_EVENT_OUTBOX) {
        aip_obj_get_str (root, "id", ev->msg_id, sizeof ev->msg_id, "");
        if (ev->data && aip_obj_is_nil (ev->data))
            ev->data = NULL;
        //  The message it carries is the one it announces
        if (ev->data && !aip_obj_streq (aip_obj_get (ev->data, "id"), ev->msg_id)) {
            snprintf (err, errlen, "outbox event: its message is not %s", ev->msg_id);
            goto malformed;
        }
    }
    else
        aip_obj_get_str (ev->data, ev->type == AIP_EVENT_MESSAGE ? "id" : "msg_id",
                         ev->msg_id, sizeof ev->msg_id, "");
    return 0;
malformed:
    aip_event_free (ev);
    return -1;
}

void
aip_event_free (aip_event_t *ev)
{
    aip_doc_destroy (&ev->doc);
    ev->data = NULL;
}

//  ---------------------------------------------------------------------
//  Self-test

static void
s_pack_message (aip_pack_t *pk, const char *content, const char *type)
{
    aip_pack_map (pk, 10);
    aip_pack_kstr (pk, "id", "msg-1");
    aip_pack_kstr (pk, "room_id", "room-1");
    aip_pack_kstr (pk, "peer_id", "host-human-me");
    aip_pack_kstr (pk, "content", content);
    aip_pack_kstr (pk, "type", type);
    aip_pack_kstr (pk, "metadata", "{}");
    aip_pack_kstr (pk, "created_at", "2026-12-04T18:00:00.000000Z");
    aip_pack_kstr (pk, "peer_name", "me");
    aip_pack_knil (pk, "peer_tool");
    aip_pack_kstr (pk, "peer_type", "human");
}

//  Decode what pk holds: 0, or -1 (and the reason when verbose)
static int
s_decode (aip_pack_t *pk, aip_event_t *ev, bool verbose)
{
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    char err [256];
    int rc = aip_event_decode (data, size, ev, err, sizeof err);
    if (rc && verbose)
        printf ("\n   refused: %s", err);
    return rc;
}

void
aip_event_test (bool verbose)
{
    printf (" * aip_event: ");
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_t *msg = aip_pack_new ();
    aip_event_t ev;
    char topic [AIP_MAX_ID + 8];

    //  Names and topics
    for (int e = 0; e < AIP_EVENT_COUNT; e++) {
        const char *name = aip_event_name ((aip_event_type_t) e);
        assert (aip_event_lookup (name, strlen (name)) == e);
        aip_event_topic ((aip_event_type_t) e, "room-1", topic, sizeof topic);
        assert (s_events [e].per_room ? aip_event_topic_room (topic)
                                        && strcmp (aip_event_topic_room (topic), "room-1") == 0
                                      : strcmp (topic, name) == 0 && !aip_event_topic_room (topic));
    }
    assert (aip_event_lookup ("nope", 4) == -1);

    //  Each event round trips through its pack and decode
    s_pack_message (msg, "hello ✓", "message");
    size_t msg_size;
    const void *msg_data = aip_pack_data (msg, &msg_size);
    aip_event_pack_message (pk, "room-1", msg_data, msg_size);
    assert (s_decode (pk, &ev, verbose) == 0);
    assert (ev.type == AIP_EVENT_MESSAGE && strcmp (ev.room_id, "room-1") == 0);
    assert (strcmp (ev.msg_id, "msg-1") == 0);
    assert (aip_obj_streq (aip_obj_get (ev.data, "content"), "hello ✓"));
    aip_event_free (&ev);
    aip_event_free (&ev);           //  safe twice

    char *text = (char *) malloc (AIP_PROGRESS_TEXT_WIRE + 1);
    memset (text, 'x', AIP_PROGRESS_TEXT_WIRE + 1);
    aip_progress_t progress = { .tool = "claude", .msg_id = "msg-2", .bytes = 12,
                                .elapsed_ms = 500, .partial = "so far", .partial_len = 6,
                                .text = text, .text_len = AIP_PROGRESS_TEXT_WIRE,
                                .done = true };
    aip_pack_reset (pk);
    aip_event_pack_progress (pk, "room-1", &progress);
    assert (s_decode (pk, &ev, verbose) == 0);
    assert (ev.type == AIP_EVENT_PROGRESS && strcmp (ev.msg_id, "msg-2") == 0);
    assert (aip_obj_get_int (ev.data, "bytes", 0) == 12 && aip_obj_get_bool (ev.data, "done", 0));
    assert (aip_obj_streq (aip_obj_get (ev.data, "partial"), "so far"));
    aip_event_free (&ev);
    //  No answer id yet, no text
    progress.msg_id = NULL;
    progress.text = NULL;
    aip_pack_reset (pk);
    aip_event_pack_progress (pk, "room-1", &progress);
    assert (s_decode (pk, &ev, verbose) == 0);
    assert (*ev.msg_id == 0 && aip_obj_streq (aip_obj_get (ev.data, "text"), ""));
    aip_event_free (&ev);

    aip_pack_reset (pk);
    aip_event_pack_outbox (pk, "room-1", "msg-3", NULL, 0);
    assert (s_decode (pk, &ev, verbose) == 0);
    assert (ev.type == AIP_EVENT_OUTBOX && !ev.data && strcmp (ev.msg_id, "msg-3") == 0);
    aip_event_free (&ev);
    //  ... carrying the message it announces (relayd sends it as it is)
    aip_pack_reset (pk);
    aip_event_pack_outbox (pk, "room-1", "msg-1", msg_data, msg_size);
    assert (s_decode (pk, &ev, verbose) == 0);
    assert (ev.type == AIP_EVENT_OUTBOX && strcmp (ev.msg_id, "msg-1") == 0);
    assert (aip_obj_streq (aip_obj_get (ev.data, "content"), "hello ✓"));
    aip_event_free (&ev);
    //  ... but not another one
    aip_pack_reset (pk);
    aip_event_pack_outbox (pk, "room-1", "msg-3", msg_data, msg_size);
    assert (s_decode (pk, &ev, verbose) == -1 && ev.doc == NULL);

    //  Malformed events are refused, with nothing left to free
    //  ... a progress text over its limit
    progress.text = text;
    progress.text_len = AIP_PROGRESS_TEXT_WIRE + 1;
    aip_pack_reset (pk);
    aip_event_pack_progress (pk, "room-1", &progress);
    assert (s_decode (pk, &ev, verbose) == -1 && ev.doc == NULL);
    free (text);
    //  ... a message of an unknown message type, and one without content
    aip_pack_reset (msg);
    s_pack_message (msg, "x", "shout");
    msg_data = aip_pack_data (msg, &msg_size);
    aip_pack_reset (pk);
    aip_event_pack_message (pk, "room-1", msg_data, msg_size);
    assert (s_decode (pk, &ev, verbose) == -1);
    aip_pack_reset (pk);
    aip_event_pack_message (pk, "room-1", "\x80", 1);
    assert (s_decode (pk, &ev, verbose) == -1);
    //  ... a bad room id, an unknown type, another version, a stray key,
    //  data that is not a map, not msgpack at all
    aip_pack_reset (pk);
    aip_event_pack_outbox (pk, "room 1", "msg-3", NULL, 0);
    assert (s_decode (pk, &ev, verbose) == -1);
    for (int c = 0; c < 4; c++) {
        aip_pack_reset (pk);
        aip_pack_map (pk, c == 2 ? 5 : 4);
        aip_pack_kint (pk, "v", c == 1 ? 2 : AIP_PROTO_VERSION);
        aip_pack_kstr (pk, "type", c == 0 ? "typing" : "progress");
        aip_pack_kstr (pk, "room_id", "room-1");
        if (c == 2)
            aip_pack_kstr (pk, "extra", "?");
        aip_pack_kstr (pk, "data", "not a map");
        assert (s_decode (pk, &ev, verbose) == -1);
    }
    aip_pack_reset (pk);
    aip_pack_raw (pk, "\xc1", 1);
    assert (s_decode (pk, &ev, verbose) == -1);
    if (verbose)
        printf ("\n   ");

    aip_pack_destroy (&msg);
    aip_pack_destroy (&pk);
    printf ("OK\n");
}
