/*  aip_webrooms.c — the rooms webd knows, and the page's views of rooms,
    messages, usage and progress. See aip_webrooms.h. */
#include "aip_webrooms.h"
#include "aip_limits.h"
#include "aip_markdown.h"
#include "aip_roomkey.h"
#include "aip_util.h"

#include <czmq.h>
#include <sodium.h>

struct _aip_webroom_t {
    char id [AIP_MAX_ID + 1];   //  room id
    bool ready;                 //  room.get answered
    bool loading;               //  room.get sent
    bool encrypted;             //  a password room
    aip_roomkey_t key;          //  its key, when encrypted
    json_t *info;               //  {id, name, mode, created_at, synced, encrypted} (no token)
    zlistx_t *waiting;          //  s_wait_t: what needs the room to be ready
};

//  An event or a history page that waits for its room's key
typedef struct {
    aip_doc_t *doc;             //  the decoded event or reply
    uint64_t serial;            //  history: the page; event: 0
} s_wait_t;

struct _aip_webrooms_t {
    aip_webpages_t *pages;      //  where what is shown goes (borrowed)
    zhashx_t *rooms;            //  room id -> aip_webroom_t
    uint64_t delivered;         //  message frames sent, for the log
};

static void
s_wait_free (void **item)
{
    s_wait_t *wait = (s_wait_t *) *item;
    if (wait) {
        aip_doc_destroy (&wait->doc);
        free (wait);
        *item = NULL;
    }
}

static void
s_room_free (void **item)
{
    aip_webroom_t *room = (aip_webroom_t *) *item;
    if (room) {
        json_decref (room->info);
        zlistx_destroy (&room->waiting);
        sodium_memzero (&room->key, sizeof room->key);
        free (room);
        *item = NULL;
    }
}

aip_webrooms_t *
aip_webrooms_new (aip_webpages_t *pages)
{
    aip_webrooms_t *self = (aip_webrooms_t *) zmalloc (sizeof (aip_webrooms_t));
    self->pages = pages;
    self->rooms = zhashx_new ();
    zhashx_set_destructor (self->rooms, s_room_free);
    return self;
}

void
aip_webrooms_destroy (aip_webrooms_t **self_p)
{
    aip_webrooms_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->rooms);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  The views

json_t *
aip_webrooms_info (const aip_obj_t *row)
{
    json_t *info = json_object ();
    static const char *keys [] = { "id", "name", "mode", "created_at" };
    for (size_t i = 0; i < sizeof keys / sizeof keys [0]; i++) {
        size_t len;
        const char *value = aip_obj_str (aip_obj_get (row, keys [i]), &len);
        json_object_set_new (info, keys [i], value ? json_stringn (value, len) : json_null ());
    }
    bool lan = aip_obj_streq (aip_obj_get (row, "mode"), "lan");
    bool synced = aip_obj_streq (aip_obj_get (row, "mode"), "public")
               || (lan && aip_obj_is_str (aip_obj_get (row, "relay_url")));
    json_object_set_new (info, "synced", json_boolean (synced));
    json_object_set_new (info, "encrypted",
                         json_boolean (aip_obj_get_bool (row, "encrypted", false)));
    return info;
}

//  metadata.usage as the page shows it: only the contract's keys, bounded
static json_t *
s_usage (const aip_obj_t *m)
{
    size_t len;
    const char *text = aip_obj_str (aip_obj_get (m, "metadata"), &len);
    if (!text || len == 0)
        return NULL;
    json_t *meta = json_loadb (text, len, 0, NULL);
    json_t *usage = json_object_get (meta, "usage");
    json_t *out = NULL;
    if (json_is_object (usage)) {
        out = json_object ();
        static const char *counts [] = { "input_tokens", "output_tokens", "cache_read_tokens",
                                         "cache_write_tokens", "duration_ms" };
        for (size_t i = 0; i < sizeof counts / sizeof counts [0]; i++) {
            json_t *v = json_object_get (usage, counts [i]);
            if (json_is_integer (v) && json_integer_value (v) >= 0
            &&  json_integer_value (v) <= 1000000000000LL)
                json_object_set (out, counts [i], v);
        }
        json_t *cost = json_object_get (usage, "cost_usd");
        if (json_is_number (cost) && json_number_value (cost) >= 0
        &&  json_number_value (cost) <= 1000000)
            json_object_set_new (out, "cost_usd", json_real (json_number_value (cost)));
        json_t *model = json_object_get (usage, "model");
        if (json_is_string (model) && json_string_length (model) <= 128)
            json_object_set (out, "model", model);
        if (json_object_size (out) == 0) {
            json_decref (out);
            out = NULL;
        }
    }
    json_decref (meta);
    return out;
}

//  A stored message as the page gets it: plain strings for the names, the
//  text only as safe HTML
static json_t *
s_message (aip_webroom_t *room, const aip_obj_t *m)
{
    json_t *out = json_object ();
    static const char *keys [] = { "id", "room_id", "peer_id", "peer_name", "peer_tool",
                                   "peer_type", "type", "created_at" };
    for (size_t i = 0; i < sizeof keys / sizeof keys [0]; i++) {
        size_t len;
        const char *value = aip_obj_str (aip_obj_get (m, keys [i]), &len);
        json_t *s = value ? json_stringn (value, len) : NULL;
        json_object_set_new (out, keys [i], s ? s : json_string (""));
    }
    size_t len;
    const char *content = aip_obj_str (aip_obj_get (m, "content"), &len);
    char *revealed = NULL;
    if (content && room->encrypted) {
        char id [AIP_MAX_ID + 1], peer [AIP_MAX_ID + 1], type [16];
        aip_obj_get_str (m, "id", id, sizeof id, "");
        aip_obj_get_str (m, "peer_id", peer, sizeof peer, "");
        aip_obj_get_str (m, "type", type, sizeof type, "message");
        revealed = aip_roomkey_reveal (&room->key, room->id, id, peer, type, content, len, &len);
        content = revealed;
    }
    char *html = aip_markdown_render (content ? content : "", content ? len : 0);
    json_object_set_new (out, "html", json_string (html ? html : ""));
    free (html);
    free (revealed);
    json_t *usage = s_usage (m);
    if (usage)
        json_object_set_new (out, "usage", usage);
    return out;
}

//  ---------------------------------------------------------------------
//  Showing them

//  A message event of a ready room: to every page (unread counts)
static void
s_show_message (aip_webrooms_t *self, aip_webroom_t *room, const aip_obj_t *root)
{
    json_t *doc = json_pack ("{s:s, s:o}", "type", "message", "message",
                             s_message (room, aip_obj_get (root, "data")));
    self->delivered++;
    aip_webpages_broadcast (self->pages, doc, NULL);
}

static void
s_show_history (aip_webrooms_t *self, aip_webroom_t *room, uint64_t serial,
                const aip_obj_t *data)
{
    const aip_obj_t *messages = aip_obj_get (data, "messages");
    json_t *list = json_array ();
    for (size_t i = 0; i < aip_obj_size (messages); i++)
        json_array_append_new (list, s_message (room, aip_obj_at (messages, i)));
    aip_webpages_send (self->pages, serial, json_pack ("{s:s, s:s, s:o}", "type", "history",
                                                       "room", room->id, "messages", list));
}

//  What waited for a room that is now ready (or gone)
static void
s_flush (aip_webrooms_t *self, aip_webroom_t *room)
{
    s_wait_t *wait;
    while ((wait = (s_wait_t *) zlistx_first (room->waiting))) {
        const aip_obj_t *root = aip_doc_root (wait->doc);
        if (room->ready) {
            if (wait->serial)
                s_show_history (self, room, wait->serial, aip_obj_get (root, "data"));
            else
                s_show_message (self, room, root);
        }
        else
        if (wait->serial)
            aip_webpages_error (self->pages, wait->serial, "room %s was not found", room->id);
        zlistx_delete (room->waiting, zlistx_cursor (room->waiting));
    }
}

static void
s_wait (aip_webroom_t *room, aip_doc_t **doc_p, uint64_t serial)
{
    s_wait_t *wait = (s_wait_t *) zmalloc (sizeof (s_wait_t));
    wait->doc = *doc_p;
    *doc_p = NULL;
    wait->serial = serial;
    zlistx_add_end (room->waiting, wait);
}

aip_webroom_t *
aip_webrooms_want (aip_webrooms_t *self, const char *id, bool *fetch)
{
    *fetch = false;
    if (!aip_id_valid (id, strlen (id)))
        return NULL;
    aip_webroom_t *room = (aip_webroom_t *) zhashx_lookup (self->rooms, id);
    if (!room) {
        room = (aip_webroom_t *) zmalloc (sizeof (aip_webroom_t));
        snprintf (room->id, sizeof room->id, "%s", id);
        room->waiting = zlistx_new ();
        zlistx_set_destructor (room->waiting, s_wait_free);
        zhashx_insert (self->rooms, id, room);
    }
    if (!room->ready && !room->loading) {
        room->loading = true;
        *fetch = true;
    }
    return room;
}

void
aip_webrooms_loaded (aip_webrooms_t *self, const char *id, aip_reply_t *rep)
{
    aip_webroom_t *room = (aip_webroom_t *) zhashx_lookup (self->rooms, id);
    if (!room)
        return;
    room->loading = false;
    if (!rep->ok) {
        zsys_warning ("webd: room %s: %s", id, rep->message);
        s_flush (self, room);
        zhashx_delete (self->rooms, id);
        return;
    }
    //  An encrypted room answers {room, key}; a plain one the room itself
    const aip_obj_t *row = aip_obj_get (rep->data, "room");
    if (!row)
        row = rep->data;
    char stored [AIP_ROOMKEY_MAX];
    const char *key = aip_obj_get_str (rep->data, "key", stored, sizeof stored, NULL);
    if (key) {
        room->encrypted = aip_roomkey_decode (key, &room->key) == 0;
        if (!room->encrypted)
            zsys_warning ("webd: the key of room %s is damaged", room->id);
        sodium_memzero (stored, sizeof stored);
    }
    bool was_known = room->info != NULL;
    json_decref (room->info);
    room->info = aip_webrooms_info (row);
    if (key)
        json_object_set_new (room->info, "encrypted", json_true ());
    room->ready = true;
    if (!was_known)
        aip_webpages_broadcast (self->pages,
                                json_pack ("{s:s, s:O}", "type", "room", "room", room->info),
                                NULL);
    s_flush (self, room);
}

void
aip_webrooms_message (aip_webrooms_t *self, aip_webroom_t *room, aip_doc_t **doc_p)
{
    if (room->ready)
        s_show_message (self, room, aip_doc_root (*doc_p));
    else
        s_wait (room, doc_p, 0);
    aip_doc_destroy (doc_p);
}

void
aip_webrooms_history (aip_webrooms_t *self, const char *id, uint64_t serial, aip_reply_t *rep)
{
    aip_webroom_t *room = (aip_webroom_t *) zhashx_lookup (self->rooms, id);
    if (!rep->ok)
        aip_webpages_error (self->pages, serial, "cannot read room %s: %s", id, rep->message);
    else
    if (room && room->ready)
        s_show_history (self, room, serial, rep->data);
    else
    if (room)
        s_wait (room, &rep->doc, serial);   //  the reply's document moves to the room
}

void
aip_webrooms_progress (aip_webrooms_t *self, const char *id, const aip_obj_t *data)
{
    if (!aip_webpages_watched (self->pages, id))
        return;
    char tool [AIP_MAX_NAME + 1], msg_id [AIP_MAX_ID + 1];
    aip_obj_get_str (data, "tool", tool, sizeof tool, "");
    aip_obj_get_str (data, "msg_id", msg_id, sizeof msg_id, "");
    json_t *doc = json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I, s:b}", "type", "progress",
                             "room", id, "msg_id", msg_id, "tool", tool,
                             "bytes", (json_int_t) aip_obj_get_int (data, "bytes", 0),
                             "elapsed_ms", (json_int_t) aip_obj_get_int (data, "elapsed_ms", 0),
                             "done", aip_obj_get_bool (data, "done", false));
    if (!doc)
        return;
    //  The answer so far (text, when the tool streams it), rendered like
    //  a message
    size_t len;
    const char *text = aip_obj_str (aip_obj_get (data, "text"), &len);
    if (text && len > 0) {
        char *html = aip_markdown_render (text, len);
        json_object_set_new (doc, "html", json_string (html ? html : ""));
        free (html);
    }
    aip_webpages_broadcast (self->pages, doc, id);
}

bool
aip_webroom_ready (aip_webroom_t *room)
{
    return room->ready;
}

int
aip_webroom_seal (aip_webroom_t *room, const char *msg_id, const char *peer_id,
                  const char *text, size_t len, char **cipher)
{
    *cipher = NULL;
    if (!room->encrypted)
        return 0;
    return aip_roomkey_encrypt (&room->key, room->id, msg_id, peer_id, text, len, cipher);
}

uint64_t
aip_webrooms_delivered (aip_webrooms_t *self)
{
    return self->delivered;
}

//  ---------------------------------------------------------------------
//  Self-test

//  A decoded reply whose data pk packed (or an error, when code)
static void
s_test_reply (aip_pack_t *pk, const char *code, aip_reply_t *rep)
{
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_pack_t *whole = aip_pack_new ();
    if (code)
        aip_reply_error (whole, 7, code, "no such room");
    else {
        aip_reply_ok_begin (whole, 7);
        aip_pack_raw (whole, data, size);
    }
    data = aip_pack_data (whole, &size);
    char err [128];
    assert (aip_reply_decode (data, size, rep, err, sizeof err) == 0);
    aip_pack_destroy (&whole);
}

//  A decoded message event {room_id, type:"message", data:{...}}
static aip_doc_t *
s_test_event (const char *room, const char *id, const char *content)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map (pk, 3);
    aip_pack_kstr (pk, "room_id", room);
    aip_pack_kstr (pk, "type", "message");
    aip_pack_key (pk, "data");
    aip_pack_map (pk, 5);
    aip_pack_kstr (pk, "id", id);
    aip_pack_kstr (pk, "room_id", room);
    aip_pack_kstr (pk, "peer_id", "peer-1");
    aip_pack_kstr (pk, "type", "message");
    aip_pack_kstr (pk, "content", content);
    char err [128];
    aip_doc_t *doc = aip_doc_from_pack (&pk, err, sizeof err);
    assert (doc);
    return doc;
}

//  The next frame of page parsed, or NULL
static json_t *
s_test_frame (aip_webpage_t *page)
{
    char *text = aip_webpage_take (page);
    json_t *doc = text ? json_loads (text, 0, NULL) : NULL;
    free (text);
    return doc;
}

static const char *
s_test_type (json_t *doc)
{
    return json_string_value (json_object_get (doc, "type"));
}

void
aip_webrooms_test (bool verbose)
{
    printf (" * aip_webrooms: ");
    assert (sodium_init () >= 0);
    //  Usage: only the contract's keys, absurd values dropped
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map (pk, 1);
    aip_pack_kstr (pk, "metadata", "{\"usage\":{\"input_tokens\":12,\"output_tokens\":-3,"
                   "\"cost_usd\":0.25,\"model\":\"m1\",\"evil\":\"<b>\","
                   "\"duration_ms\":99999999999999999}}");
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    char err [128];
    aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc);
    json_t *usage = s_usage (aip_doc_root (doc));
    assert (usage);
    assert (json_integer_value (json_object_get (usage, "input_tokens")) == 12);
    assert (!json_object_get (usage, "output_tokens"));
    assert (!json_object_get (usage, "evil"));
    assert (!json_object_get (usage, "duration_ms"));
    assert (json_real_value (json_object_get (usage, "cost_usd")) == 0.25);
    assert (streq (json_string_value (json_object_get (usage, "model")), "m1"));
    json_decref (usage);
    aip_doc_destroy (&doc);

    //  A message: the text only as safe HTML, the names as plain strings
    aip_pack_reset (pk);
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "id", "msg-1");
    aip_pack_kstr (pk, "peer_name", "<b>eve</b>");
    aip_pack_kstr (pk, "content", "<img src=x onerror=alert(1)> **hi**");
    aip_pack_kstr (pk, "type", "message");
    data = aip_pack_data (pk, &size);
    doc = aip_doc_decode (data, size, err, sizeof err);
    aip_webroom_t plain;
    memset (&plain, 0, sizeof plain);
    snprintf (plain.id, sizeof plain.id, "room-abc");
    json_t *m = s_message (&plain, aip_doc_root (doc));
    const char *html = json_string_value (json_object_get (m, "html"));
    assert (html && !strstr (html, "<img") && strstr (html, "<strong>hi</strong>"));
    assert (streq (json_string_value (json_object_get (m, "peer_name")), "<b>eve</b>"));
    assert (!json_object_get (m, "content"));
    json_decref (m);
    aip_doc_destroy (&doc);

    //  A room's view: no token, no key
    aip_pack_reset (pk);
    aip_pack_map (pk, 5);
    aip_pack_kstr (pk, "id", "room-a");
    aip_pack_kstr (pk, "name", "<i>ours</i>");
    aip_pack_kstr (pk, "mode", "lan");
    aip_pack_kstr (pk, "relay_url", "https://relay.example");
    aip_pack_kstr (pk, "token", "secret-token");
    data = aip_pack_data (pk, &size);
    doc = aip_doc_decode (data, size, err, sizeof err);
    json_t *info = aip_webrooms_info (aip_doc_root (doc));
    assert (streq (json_string_value (json_object_get (info, "name")), "<i>ours</i>"));
    assert (json_is_true (json_object_get (info, "synced")));
    assert (json_is_false (json_object_get (info, "encrypted")));
    assert (json_is_null (json_object_get (info, "created_at")));
    char *text = json_dumps (info, 0);
    assert (!strstr (text, "secret-token") && !strstr (text, "relay.example"));
    free (text);
    json_decref (info);
    aip_doc_destroy (&doc);

    //  What comes before its room is known waits for it, in order
    aip_webpages_t *pages = aip_webpages_new ();
    aip_webpage_t *page = aip_webpages_open (pages, NULL);
    uint64_t serial = aip_webpage_serial (page);
    aip_webrooms_t *rooms = aip_webrooms_new (pages);
    bool fetch;
    assert (!aip_webrooms_want (rooms, "bad id!", &fetch) && !fetch);
    aip_webroom_t *room = aip_webrooms_want (rooms, "room-a", &fetch);
    assert (room && fetch && !aip_webroom_ready (room));
    assert (aip_webrooms_want (rooms, "room-a", &fetch) == room && !fetch);
    doc = s_test_event ("room-a", "msg-1", "first");
    aip_webrooms_message (rooms, room, &doc);
    assert (!doc && !aip_webpage_take (page));
    aip_pack_reset (pk);
    aip_pack_map (pk, 1);
    aip_pack_key (pk, "messages");
    aip_pack_array (pk, 0);
    aip_reply_t rep;
    s_test_reply (pk, NULL, &rep);
    aip_webrooms_history (rooms, "room-a", serial, &rep);
    assert (!rep.doc);          //  taken: it waits
    aip_reply_free (&rep);
    aip_pack_reset (pk);
    aip_pack_map (pk, 3);
    aip_pack_kstr (pk, "id", "room-a");
    aip_pack_kstr (pk, "name", "a");
    aip_pack_kstr (pk, "mode", "local");
    s_test_reply (pk, NULL, &rep);
    aip_webrooms_loaded (rooms, "room-a", &rep);
    aip_reply_free (&rep);
    assert (aip_webroom_ready (room));
    json_t *frame = s_test_frame (page);
    assert (streq (s_test_type (frame), "room"));
    json_decref (frame);
    frame = s_test_frame (page);
    assert (streq (s_test_type (frame), "message"));
    assert (streq (json_string_value (json_object_get (json_object_get (frame, "message"),
                                                       "html")), "<p>first</p>\n"));
    json_decref (frame);
    frame = s_test_frame (page);
    assert (streq (s_test_type (frame), "history"));
    assert (streq (json_string_value (json_object_get (frame, "room")), "room-a"));
    json_decref (frame);
    assert (aip_webrooms_delivered (rooms) == 1);
    //  Known now: an event is shown at once, and a plain room seals nothing
    doc = s_test_event ("room-a", "msg-2", "second");
    aip_webrooms_message (rooms, room, &doc);
    frame = s_test_frame (page);
    assert (streq (s_test_type (frame), "message"));
    json_decref (frame);
    char *cipher;
    assert (aip_webroom_seal (room, "msg-3", "peer-1", "x", 1, &cipher) == 0 && !cipher);

    //  A room that is gone: what waited for it is refused
    room = aip_webrooms_want (rooms, "room-gone", &fetch);
    assert (fetch);
    aip_pack_reset (pk);
    aip_pack_map (pk, 1);
    aip_pack_key (pk, "messages");
    aip_pack_array (pk, 0);
    s_test_reply (pk, NULL, &rep);
    aip_webrooms_history (rooms, "room-gone", serial, &rep);
    aip_reply_free (&rep);
    s_test_reply (pk, "not_found", &rep);
    aip_webrooms_loaded (rooms, "room-gone", &rep);
    aip_reply_free (&rep);
    frame = s_test_frame (page);
    assert (streq (s_test_type (frame), "error"));
    assert (streq (json_string_value (json_object_get (frame, "message")),
                   "room room-gone was not found"));
    json_decref (frame);
    assert (aip_webrooms_want (rooms, "room-gone", &fetch) && fetch);   //  asked again

    //  An encrypted room: its key reveals the text; a post is sealed with it
    char stored [AIP_ROOMKEY_MAX];
    assert (aip_roomkey_create ("pw", "room-e", "aip1", crypto_pwhash_OPSLIMIT_MIN,
                                crypto_pwhash_MEMLIMIT_MIN, stored, err, sizeof err) == 0);
    room = aip_webrooms_want (rooms, "room-e", &fetch);
    aip_pack_reset (pk);
    aip_pack_map (pk, 2);
    aip_pack_key (pk, "room");
    aip_pack_map (pk, 2);
    aip_pack_kstr (pk, "id", "room-e");
    aip_pack_kstr (pk, "mode", "local");
    aip_pack_kstr (pk, "key", stored);
    s_test_reply (pk, NULL, &rep);
    aip_webrooms_loaded (rooms, "room-e", &rep);
    aip_reply_free (&rep);
    frame = s_test_frame (page);
    assert (json_is_true (json_object_get (json_object_get (frame, "room"), "encrypted")));
    text = json_dumps (frame, 0);
    assert (!strstr (text, stored));
    free (text);
    json_decref (frame);
    assert (aip_webroom_seal (room, "msg-9", "peer-1", "*sealed*", 8, &cipher) == 0 && cipher);
    assert (!strstr (cipher, "sealed"));
    doc = s_test_event ("room-e", "msg-9", cipher);
    free (cipher);
    aip_webrooms_message (rooms, room, &doc);
    frame = s_test_frame (page);
    html = json_string_value (json_object_get (json_object_get (frame, "message"), "html"));
    assert (streq (html, "<p><em>sealed</em></p>\n"));
    json_decref (frame);
    //  Plain text in an encrypted room is not shown as if it were sealed
    doc = s_test_event ("room-e", "msg-10", "unsealed");
    aip_webrooms_message (rooms, room, &doc);
    frame = s_test_frame (page);
    html = json_string_value (json_object_get (json_object_get (frame, "message"), "html"));
    assert (!strstr (html, "unsealed"));
    json_decref (frame);

    //  Progress: to the pages on the room only, its text rendered safely
    aip_pack_reset (pk);
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "tool", "codex");
    aip_pack_kint (pk, "bytes", 12);
    aip_pack_kbool (pk, "done", false);
    aip_pack_kstr (pk, "text", "so *far* <script>x</script>");
    data = aip_pack_data (pk, &size);
    doc = aip_doc_decode (data, size, err, sizeof err);
    aip_webrooms_progress (rooms, "room-a", aip_doc_root (doc));
    assert (!aip_webpage_take (page));
    aip_webpage_set_room (page, "room-a");
    aip_webrooms_progress (rooms, "room-a", aip_doc_root (doc));
    frame = s_test_frame (page);
    assert (streq (s_test_type (frame), "progress"));
    assert (json_integer_value (json_object_get (frame, "bytes")) == 12);
    html = json_string_value (json_object_get (frame, "html"));
    assert (html && !strstr (html, "<script") && strstr (html, "<em>far</em>"));
    json_decref (frame);
    aip_doc_destroy (&doc);

    aip_webrooms_destroy (&rooms);
    aip_webrooms_destroy (&rooms);
    assert (!rooms);
    aip_webpages_destroy (&pages);
    aip_pack_destroy (&pk);
    if (verbose)
        printf ("(views, waiting for a room, a room gone, keys, progress) ");
    printf ("OK\n");
}
