/*  aip_frames.c — the broker↔worker frames, packed and decoded (see
    aip_frames.h). The names and who sends what are AIP_FRAMES in
    aip_proto.h; which frames follow each command is the table below. */
#include "aip_frames.h"

//  The frames that follow a command, in this order: [tag][topic][body]
typedef struct {
    bool tag;                   //  an 8-byte tag
    bool topic;                 //  a topic
    bool body;                  //  a body
} s_layout_t;

static const s_layout_t s_layouts [AIP_FRAME_COUNT] = {
    [AIP_FRAME_READY]  = { false, false, true },
    [AIP_FRAME_HB]     = { false, false, false },
    [AIP_FRAME_REQ]    = { true,  false, true },
    [AIP_FRAME_REPLY]  = { true,  false, true },
    [AIP_FRAME_EVENT]  = { false, true,  true },
    [AIP_FRAME_CANCEL] = { true,  false, false },
    [AIP_FRAME_BYE]    = { false, false, false },
};

//  Who sends each command (the table's third column)
static const unsigned s_senders [AIP_FRAME_COUNT] = {
#define AIP_FRAME_FROM(e, name, from) [AIP_FRAME_##e] = (from),
    AIP_FRAMES (AIP_FRAME_FROM)
#undef AIP_FRAME_FROM
};

static size_t
s_frame_count (const s_layout_t *layout)
{
    return (layout->tag ? 1 : 0) + (layout->topic ? 1 : 0) + (layout->body ? 1 : 0);
}

zmsg_t *
aip_frames_pack (zframe_t *routing_id, aip_frame_t type, uint64_t tag, const char *topic,
                 zframe_t **body_p)
{
    assert ((int) type >= 0 && type < AIP_FRAME_COUNT);
    const s_layout_t *layout = &s_layouts [type];
    //  A caller that packs what a command does not carry is a bug here
    assert (layout->topic == (topic != NULL));
    assert (layout->body == (body_p && *body_p));
    zmsg_t *msg = zmsg_new ();
    if (routing_id)
        zmsg_add (msg, zframe_dup (routing_id));
    zmsg_addstr (msg, aip_frame_name (type));
    if (layout->tag)
        zmsg_addmem (msg, &tag, sizeof tag);
    if (layout->topic)
        zmsg_addstr (msg, topic);
    if (layout->body) {
        zmsg_add (msg, *body_p);
        *body_p = NULL;
    }
    return msg;
}

zmsg_t *
aip_frames_pack_mem (zframe_t *routing_id, aip_frame_t type, uint64_t tag, const char *topic,
                     const void *data, size_t size)
{
    zframe_t *body = s_layouts [type].body ? zframe_new (data, size) : NULL;
    return aip_frames_pack (routing_id, type, tag, topic, body ? &body : NULL);
}

int
aip_frames_send (zsock_t *sock, zframe_t *routing_id, aip_frame_t type, uint64_t tag,
                 const char *topic, zframe_t **body_p)
{
    zmsg_t *msg = aip_frames_pack (routing_id, type, tag, topic, body_p);
    if (zmsg_send (&msg, sock) == 0)
        return 0;
    zmsg_destroy (&msg);
    return -1;
}

int
aip_frames_decode (zmsg_t **msg_p, unsigned from, aip_frames_t *frames, char *err,
                   size_t errlen)
{
    memset (frames, 0, sizeof *frames);
    zmsg_t *msg = *msg_p;
    int rc = -1;
    zframe_t *command = zmsg_pop (msg);
    if (!command) {
        snprintf (err, errlen, "no command frame");
        goto cleanup;
    }
    //  A name is short: anything longer is no command of ours
    char name [16];
    size_t len = zframe_size (command);
    if (len >= sizeof name) {
        snprintf (err, errlen, "unknown command (a %zu-byte frame)", len);
        goto cleanup;
    }
    memcpy (name, zframe_data (command), len);
    name [len] = 0;
    int type = aip_frame_lookup (name);
    if (type < 0 || strlen (name) != len) {
        snprintf (err, errlen, "unknown command '%s'", strlen (name) == len ? name : "?");
        goto cleanup;
    }
    if (!(s_senders [type] & from)) {
        snprintf (err, errlen, "%s is not sent by a %s", name,
                  from & AIP_FRAME_F_WORKER ? "worker" : "broker");
        goto cleanup;
    }
    const s_layout_t *layout = &s_layouts [type];
    if (zmsg_size (msg) != s_frame_count (layout)) {
        snprintf (err, errlen, "%s has %zu frame(s) after its name, not %zu", name,
                  zmsg_size (msg), s_frame_count (layout));
        goto cleanup;
    }
    if (layout->tag) {
        zframe_t *tagf = zmsg_pop (msg);
        bool sized = zframe_size (tagf) == sizeof frames->tag;
        if (sized)
            memcpy (&frames->tag, zframe_data (tagf), sizeof frames->tag);
        else
            snprintf (err, errlen, "%s has a %zu-byte tag, not %zu", name, zframe_size (tagf),
                      sizeof frames->tag);
        zframe_destroy (&tagf);
        if (!sized)
            goto cleanup;
    }
    if (layout->topic)
        frames->topic = zmsg_pop (msg);
    if (layout->body)
        frames->body = zmsg_pop (msg);
    frames->type = (aip_frame_t) type;
    rc = 0;
cleanup:
    if (rc)
        aip_frames_free (frames);
    zframe_destroy (&command);
    zmsg_destroy (msg_p);
    return rc;
}

void
aip_frames_free (aip_frames_t *frames)
{
    zframe_destroy (&frames->topic);
    zframe_destroy (&frames->body);
}

//  ---------------------------------------------------------------------
//  Self-test

//  Decode what pack made, as the other side reads it (routing id off)
static int
s_test_roundtrip (zmsg_t *msg, bool routed, unsigned from, aip_frames_t *frames, char *err,
                  size_t errlen)
{
    if (routed) {
        zframe_t *id = zmsg_pop (msg);
        assert (zframe_streq (id, "w1"));
        zframe_destroy (&id);
    }
    return aip_frames_decode (&msg, from, frames, err, errlen);
}

void
aip_frames_test (bool verbose)
{
    printf (" * aip_frames: ");
    char err [128];
    aip_frames_t frames;
    zframe_t *routing_id = zframe_new ("w1", 2);

    //  Every command round trips, from the side that sends it (a broker's
    //  through its ROUTER: routing id first)
    for (int type = 0; type < AIP_FRAME_COUNT; type++) {
        const s_layout_t *layout = &s_layouts [type];
        for (unsigned from = AIP_FRAME_F_WORKER; from <= AIP_FRAME_F_BROKER; from <<= 1) {
            if (!(s_senders [type] & from))
                continue;
            bool routed = from == AIP_FRAME_F_BROKER;
            uint64_t tag = layout->tag ? 0x0102030405060708ULL + (uint64_t) type : 0;
            zmsg_t *msg = aip_frames_pack_mem (routed ? routing_id : NULL, (aip_frame_t) type,
                                               tag, layout->topic ? "room.r1" : NULL,
                                               "body", 4);
            assert (zmsg_size (msg) == (routed ? 2 : 1) + s_frame_count (layout));
            assert (s_test_roundtrip (msg, routed, from, &frames, err, sizeof err) == 0);
            assert (frames.type == (aip_frame_t) type && frames.tag == tag);
            assert (layout->topic ? zframe_streq (frames.topic, "room.r1") : !frames.topic);
            assert (layout->body ? zframe_streq (frames.body, "body") : !frames.body);
            aip_frames_free (&frames);
            aip_frames_free (&frames);      //  safe twice
        }
    }
    //  A body frame is handed over, not copied
    zframe_t *body = zframe_new ("req", 3);
    zframe_t *sent = body;
    zmsg_t *msg = aip_frames_pack (routing_id, AIP_FRAME_REQ, 9, NULL, &body);
    assert (!body && zmsg_last (msg) == sent);
    zmsg_destroy (&msg);

    //  Malformed ones are refused with what is wrong, and nothing kept
    struct {
        const char *what;       //  the case
        const char *frames [4]; //  after the routing id, NULL-ended; "#n" an n-byte tag
        unsigned from;          //  who sent it
        const char *says;       //  part of the error
    } cases [] = {
        { "no frames",      { NULL },                          AIP_FRAME_F_WORKER, "no command" },
        { "unknown name",   { "HELLO", NULL },                 AIP_FRAME_F_WORKER, "unknown" },
        { "long name",      { "READYREADYREADYREADY", NULL },  AIP_FRAME_F_WORKER, "unknown" },
        { "lower case",     { "ready", "{}", NULL },           AIP_FRAME_F_WORKER, "unknown" },
        { "wrong side",     { "REQ", "#8", "b", NULL },        AIP_FRAME_F_WORKER, "not sent" },
        { "wrong side 2",   { "READY", "b", NULL },            AIP_FRAME_F_BROKER, "not sent" },
        { "READY no body",  { "READY", NULL },                 AIP_FRAME_F_WORKER, "frame(s)" },
        { "HB extra",       { "HB", "x", NULL },               AIP_FRAME_F_BROKER, "frame(s)" },
        { "REPLY no body",  { "REPLY", "#8", NULL },           AIP_FRAME_F_WORKER, "frame(s)" },
        { "REPLY extra",    { "REPLY", "#8", "b", "c" },       AIP_FRAME_F_WORKER, "frame(s)" },
        { "REPLY tag 4",    { "REPLY", "#4", "b", NULL },      AIP_FRAME_F_WORKER, "tag" },
        { "CANCEL tag 9",   { "CANCEL", "#9", NULL },          AIP_FRAME_F_BROKER, "tag" },
        { "CANCEL no tag",  { "CANCEL", NULL },                AIP_FRAME_F_BROKER, "frame(s)" },
        { "EVENT no body",  { "EVENT", "room.x", NULL },       AIP_FRAME_F_WORKER, "frame(s)" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases [0]; c++) {
        msg = zmsg_new ();
        for (int f = 0; f < 4 && cases [c].frames [f]; f++) {
            const char *text = cases [c].frames [f];
            if (text [0] == '#') {
                byte tag [16] = { 0 };
                zmsg_addmem (msg, tag, (size_t) atoi (text + 1));
            }
            else
                zmsg_addstr (msg, text);
        }
        assert (aip_frames_decode (&msg, cases [c].from, &frames, err, sizeof err) == -1);
        assert (!msg && !frames.body && !frames.topic);
        assert (strstr (err, cases [c].says));
        if (verbose)
            printf ("\n   %s: %s", cases [c].what, err);
    }
    //  A name with a NUL inside is no name
    msg = zmsg_new ();
    zmsg_addmem (msg, "HB\0X", 4);
    assert (aip_frames_decode (&msg, AIP_FRAME_F_WORKER, &frames, err, sizeof err) == -1);
    if (verbose)
        printf ("\n   nul: %s\n   ", err);
    zframe_destroy (&routing_id);
    printf ("OK\n");
}
