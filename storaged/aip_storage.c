/*  aip_storage.c — storage actor: rooms, peers, membership and messages in
    SQLite, group commit, events after commit. */
#include "aip_storage.h"
#include "aip_crypto.h"
#include "aip_event.h"
#include "aip_frames.h"
#include "aip_hub.h"
#include "aip_limits.h"
#include "aip_proto.h"
#include "aip_schema.h"
#include "aip_util.h"
#include "aip_worker.h"

#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>

//  Prepared statements, one per query, prepared once
#define STMTS(X) \
    X (ROOM_UPSERT, "INSERT INTO rooms (id, name, mode, relay_url, token, created_at, password)" \
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET" \
                    " name = excluded.name, mode = excluded.mode," \
                    " relay_url = excluded.relay_url, token = excluded.token," \
                    " password = coalesce(excluded.password, rooms.password)") \
    X (ROOM_GET,    "SELECT id, name, mode, relay_url, created_at, token, password" \
                    " FROM rooms WHERE id = ?1") \
    X (ROOM_LIST,   "SELECT id, name, mode, relay_url, created_at, token, password" \
                    " FROM rooms ORDER BY created_at DESC") \
    X (ROOM_DEL_OUTBOX,  "DELETE FROM outbox WHERE room_id = ?1") \
    X (ROOM_DEL_CURSOR,  "DELETE FROM relay_cursors WHERE room_id = ?1") \
    X (ROOM_DEL_MSGS,    "DELETE FROM messages WHERE room_id = ?1") \
    X (ROOM_DEL_MEMBERS, "DELETE FROM room_peers WHERE room_id = ?1") \
    X (ROOM_DEL,         "DELETE FROM rooms WHERE id = ?1") \
    X (PEER_UPSERT, "INSERT INTO peers (id, name, type, tool, machine, host, port, last_seen)" \
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO UPDATE SET" \
                    " name = excluded.name, type = excluded.type, tool = excluded.tool," \
                    " machine = excluded.machine, host = excluded.host," \
                    " port = excluded.port, last_seen = excluded.last_seen") \
    X (PEER_GET,    "SELECT id, name, type, tool, machine, host, port, last_seen, capabilities" \
                    " FROM peers WHERE id = ?1") \
    X (PEER_LIST,   "SELECT id, name, type, tool, machine, host, port, last_seen, capabilities" \
                    " FROM peers ORDER BY last_seen DESC") \
    X (MEMBER_ADD,  "INSERT OR IGNORE INTO room_peers (room_id, peer_id, joined_at)" \
                    " VALUES (?1, ?2, ?3)") \
    X (MEMBER_COUNT, "SELECT count(*) FROM room_peers WHERE room_id = ?1") \
    X (ROOM_PEERS,  "SELECT p.id, p.name, p.type, p.tool, p.machine, p.host, p.port," \
                    " p.last_seen, p.capabilities FROM peers p" \
                    " JOIN room_peers rp ON p.id = rp.peer_id" \
                    " WHERE rp.room_id = ?1 ORDER BY rp.joined_at") \
    X (MSG_INSERT,  "INSERT INTO messages (id, room_id, peer_id, content, type, metadata," \
                    " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)" \
                    " ON CONFLICT(id) DO NOTHING") \
    X (MSG_GET,     MSG_SELECT " WHERE m.id = ?1") \
    X (MSG_NTH_NEWEST, "SELECT created_at, id FROM messages WHERE room_id = ?1" \
                    " ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?2") \
    X (MSG_FROM,    MSG_SELECT " WHERE m.room_id = ?1 AND (m.created_at, m.id) >= (?2, ?3)" \
                    " ORDER BY m.created_at, m.id LIMIT ?4") \
    X (MSG_AFTER,   MSG_SELECT " WHERE m.room_id = ?1 AND (m.created_at, m.id) > (?2, ?3)" \
                    " ORDER BY m.created_at, m.id LIMIT ?4") \
    X (MSG_AFTER_SEQ, MSG_SELECT_SEQ " WHERE m.room_id = ?1 AND m.rowid > ?2" \
                    " ORDER BY m.rowid LIMIT ?4") \
    X (MSG_NTH_BEFORE, "SELECT created_at, id FROM messages WHERE room_id = ?1" \
                    " AND (created_at, id) < (?2, ?3)" \
                    " ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?4") \
    X (TX_BEGIN,    "BEGIN IMMEDIATE") \
    X (TX_SAVEPOINT, "SAVEPOINT req") \
    X (TX_RELEASE,  "RELEASE req") \
    X (TX_ROLLBACK_TO, "ROLLBACK TO req")

#define OUTBOX_STMTS(X) \
    X (OUTBOX_ADD,  "INSERT OR IGNORE INTO outbox (msg_id, room_id, queued_at) VALUES (?1, ?2, ?3)") \
    X (OUTBOX_LIST, "SELECT o.msg_id, o.room_id, r.relay_url, r.token, m.peer_id, p.name, p.tool," \
                    " p.type, m.content, m.type, m.created_at, o.seq FROM outbox o" \
                    " JOIN messages m ON m.id = o.msg_id JOIN rooms r ON r.id = o.room_id" \
                    " LEFT JOIN peers p ON p.id = m.peer_id WHERE o.seq > ?2" \
                    " ORDER BY o.seq LIMIT ?1") \
    X (OUTBOX_DONE, "DELETE FROM outbox WHERE msg_id = ?1") \
    X (SYNC_ROOMS,  "SELECT r.id, r.relay_url, r.token, c.since FROM rooms r" \
                    " LEFT JOIN relay_cursors c ON c.room_id = r.id" \
                    " WHERE r.mode IN ('public', 'lan') AND r.relay_url IS NOT NULL" \
                    " AND r.token IS NOT NULL") \
    X (SYNC_CURSOR, "INSERT INTO relay_cursors (room_id, since) SELECT ?1, ?2" \
                    " WHERE EXISTS (SELECT 1 FROM rooms WHERE id = ?1)" \
                    " ON CONFLICT(room_id) DO UPDATE SET since = CASE WHEN since > excluded.since" \
                    " AND since GLOB '[0-9]*' THEN since ELSE excluded.since END") \
    X (CLAIM_GET,   "SELECT sig_hash FROM lan_members WHERE room_id = ?1 AND peer_id = ?2") \
    X (CLAIM_ADD,   "INSERT INTO lan_members (room_id, peer_id, sig_hash) VALUES (?1, ?2, ?3)") \
    X (CLAIM_MEMBER, "SELECT 1 FROM room_peers WHERE room_id = ?1 AND peer_id = ?2") \
    X (ROOM_DEL_CLAIMS, "DELETE FROM lan_members WHERE room_id = ?1") \
    X (ROOM_SYNCED, "SELECT mode IN ('public', 'lan') AND relay_url IS NOT NULL FROM rooms" \
                    " WHERE id = ?1") \
    X (ROOM_DEL_READ, "DELETE FROM read_cursors WHERE room_id = ?1") \
    X (READ_MARK,   "INSERT INTO read_cursors (peer_id, room_id, read_ts, read_id)" \
                    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(peer_id, room_id) DO UPDATE SET" \
                    " read_ts = excluded.read_ts, read_id = excluded.read_id" \
                    " WHERE (excluded.read_ts, excluded.read_id)" \
                    " > (read_cursors.read_ts, read_cursors.read_id)") \
    X (MSG_UNREAD,  MSG_SELECT " JOIN room_peers rp ON rp.room_id = m.room_id AND rp.peer_id = ?1" \
                    " LEFT JOIN read_cursors c ON c.peer_id = ?1 AND c.room_id = m.room_id" \
                    " WHERE m.peer_id != ?1 AND m.type != 'system'" \
                    " AND (?2 IS NULL OR m.room_id = ?2)" \
                    " AND (m.created_at, m.id)" \
                    " > (coalesce (c.read_ts, rp.joined_at), coalesce (c.read_id, ''))" \
                    " ORDER BY m.created_at, m.id LIMIT ?3")

//  Sums of metadata.usage, kept per (room, tool) by the schema's trigger
#define USAGE_STMTS(X) \
    X (USAGE_ROOM,  "SELECT tool, answers, input_tokens, output_tokens, cache_read_tokens," \
                    " cache_write_tokens, cost_usd, costed, duration_ms, 1 FROM usage_totals" \
                    " WHERE room_id = ?1 ORDER BY tool LIMIT ?2") \
    X (USAGE_ALL,   "SELECT tool, sum (answers), sum (input_tokens), sum (output_tokens)," \
                    " sum (cache_read_tokens), sum (cache_write_tokens), sum (cost_usd)," \
                    " sum (costed), sum (duration_ms), count (*) FROM usage_totals" \
                    " GROUP BY tool ORDER BY tool LIMIT ?2")

#define MSG_SELECT "SELECT m.id, m.room_id, m.peer_id, m.content, m.type, m.metadata," \
                   " m.created_at, p.name, p.tool, p.type" \
                   " FROM messages m LEFT JOIN peers p ON m.peer_id = p.id"
//  The same with the hub's insertion order (rowid) as an 11th column, seq
#define MSG_SELECT_SEQ "SELECT m.id, m.room_id, m.peer_id, m.content, m.type, m.metadata," \
                   " m.created_at, p.name, p.tool, p.type, m.rowid" \
                   " FROM messages m LEFT JOIN peers p ON m.peer_id = p.id"

//  AI tools' sessions per (room, tool), for spawnd
#define SESSION_STMTS(X) \
    X (SESSION_GET, "SELECT session_id, seen_ts, seen_id, answer_id, updated_at" \
                    " FROM tool_sessions WHERE room_id = ?1 AND tool = ?2") \
    X (SESSION_PUT, "INSERT INTO tool_sessions (room_id, tool, session_id, seen_ts, seen_id," \
                    " answer_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)" \
                    " ON CONFLICT (room_id, tool) DO UPDATE SET session_id = excluded.session_id," \
                    " seen_ts = excluded.seen_ts, seen_id = excluded.seen_id," \
                    " answer_id = excluded.answer_id, updated_at = excluded.updated_at") \
    X (SESSION_DEL, "DELETE FROM tool_sessions WHERE room_id = ?1 AND tool = ?2")

typedef enum {
#define STMT_ENUM(e, sql) STMT_##e,
    STMTS (STMT_ENUM)
    OUTBOX_STMTS (STMT_ENUM)
    USAGE_STMTS (STMT_ENUM)
    SESSION_STMTS (STMT_ENUM)
#undef STMT_ENUM
    STMT_COUNT
} s_stmt_id_t;

static const char *s_stmt_sql [STMT_COUNT] = {
#define STMT_SQL(e, sql) sql,
    STMTS (STMT_SQL)
    OUTBOX_STMTS (STMT_SQL)
    USAGE_STMTS (STMT_SQL)
    SESSION_STMTS (STMT_SQL)
#undef STMT_SQL
};

//  A reply or event waiting for the batch to commit
typedef struct {
    uint64_t tag;               //  reply: broker's tag; event: unused
    char *topic;                //  event: topic; reply: NULL
    void *data;                 //  packed body
    size_t size;
} s_out_t;

//  A peer upsert is skipped when nothing changed and it is recent
#define PEER_CACHE_MS 60000

typedef struct {
    char *fields;               //  the peer's fields as last written
    int64_t written_ms;         //  when
} s_peer_cached_t;

typedef struct aip_store_s {
    zsock_t *pipe;              //  actor pipe
    aip_storage_args_t args;    //  configuration (strings borrowed)
    sqlite3 *db;                //  the one connection
    sqlite3_stmt *stmt [STMT_COUNT];    //  prepared statements
    aip_worker_t *worker;       //  link to the broker
    aip_pack_t *reply;          //  reply being built
    aip_pack_t *scratch;        //  messages being packed
    zlistx_t *out;              //  replies and events of this batch
    size_t out_bytes;           //  bytes of the replies in out
    zhashx_t *peer_cache;       //  peer id -> s_peer_cached_t
    zhashx_t *member_cache;     //  "room\x1fpeer" -> "" for known members
    char errcode [32];          //  error of the failing request
    char errmsg [512];
    bool terminated;            //  $TERM received
} s_storage_t;

//  ---------------------------------------------------------------------
//  Small helpers

static int
s_fail (s_storage_t *self, const char *code, const char *fmt, ...)
{
    snprintf (self->errcode, sizeof self->errcode, "%s", code);
    va_list args;
    va_start (args, fmt);
    vsnprintf (self->errmsg, sizeof self->errmsg, fmt, args);
    va_end (args);
    return -1;
}

static int
s_db_fail (s_storage_t *self, const char *what)
{
    zsys_error ("storage: %s: %s", what, sqlite3_errmsg (self->db));
    return s_fail (self, AIP_ERR_INTERNAL, "storage error while %s: %s", what,
                   sqlite3_errmsg (self->db));
}

static sqlite3_stmt *
s_stmt (s_storage_t *self, s_stmt_id_t id)
{
    sqlite3_stmt *stmt = self->stmt [id];
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return stmt;
}

//  Bind a string argument of the request (or NULL)
static void
s_bind_obj (sqlite3_stmt *stmt, int index, const aip_obj_t *o)
{
    size_t len;
    const char *s = aip_obj_str (o, &len);
    if (s)
        sqlite3_bind_text (stmt, index, s, (int) len, SQLITE_TRANSIENT);
    else
    if (aip_obj_is_int (o))
        sqlite3_bind_int64 (stmt, index, aip_obj_int (o));
    else
        sqlite3_bind_null (stmt, index);
}

static void
s_bind_str (sqlite3_stmt *stmt, int index, const char *s)
{
    if (s)
        sqlite3_bind_text (stmt, index, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null (stmt, index);
}

//  Pack a column as its SQL type
static void
s_pack_column (aip_pack_t *pk, sqlite3_stmt *stmt, int col)
{
    switch (sqlite3_column_type (stmt, col)) {
        case SQLITE_INTEGER:
            aip_pack_int (pk, sqlite3_column_int64 (stmt, col));
            break;
        case SQLITE_FLOAT:
            aip_pack_real (pk, sqlite3_column_double (stmt, col));
            break;
        case SQLITE_NULL:
            aip_pack_nil (pk);
            break;
        default:
            aip_pack_strn (pk, (const char *) sqlite3_column_text (stmt, col),
                           (size_t) sqlite3_column_bytes (stmt, col));
    }
}

static void
s_pack_row (aip_pack_t *pk, sqlite3_stmt *stmt, const char *const *keys, int count)
{
    aip_pack_map (pk, (size_t) count);
    for (int col = 0; col < count; col++) {
        aip_pack_key (pk, keys [col]);
        s_pack_column (pk, stmt, col);
    }
}

static const char *s_peer_keys [] = { "id", "name", "type", "tool", "machine", "host", "port",
                                      "last_seen", "capabilities" };
static const char *s_msg_keys [] = { "id", "room_id", "peer_id", "content", "type", "metadata",
                                     "created_at", "peer_name", "peer_tool", "peer_type", "seq" };

//  Room row: id, name, mode, relay_url, created_at, token (+ encrypted).
//  The password column is never sent anywhere.
static void
s_pack_room (aip_pack_t *pk, sqlite3_stmt *stmt)
{
    static const char *keys [] = { "id", "name", "mode", "relay_url", "created_at", "token" };
    aip_pack_map_begin (pk);
    for (int col = 0; col < 6; col++) {
        aip_pack_key (pk, keys [col]);
        s_pack_column (pk, stmt, col);
    }
    if (sqlite3_column_type (stmt, 6) != SQLITE_NULL)
        aip_pack_kbool (pk, "encrypted", true);
    aip_pack_map_end (pk);
}

static void
s_out_free (void **item)
{
    s_out_t *o = (s_out_t *) *item;
    if (o) {
        free (o->topic);
        free (o->data);
        free (o);
        *item = NULL;
    }
}

static void
s_queue_event (s_storage_t *self, const char *room_id, const void *msg, size_t msg_size)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_event_pack_message (pk, room_id, msg, msg_size);
    s_out_t *o = (s_out_t *) zmalloc (sizeof (s_out_t));
    char topic [AIP_MAX_ID + 8];
    o->topic = strdup (aip_event_topic (AIP_EVENT_MESSAGE, room_id, topic, sizeof topic));
    o->data = aip_pack_steal (pk, &o->size);
    zlistx_add_end (self->out, o);
    aip_pack_destroy (&pk);
}

//  True if the room is kept in sync with a hub elsewhere: a public room
//  (the relay) or a LAN room joined on another machine. Its local messages
//  go out through the outbox, and the hub announces new members.
static bool
s_room_synced (s_storage_t *self, const char *room_id)
{
    sqlite3_stmt *stmt = s_stmt (self, STMT_ROOM_SYNCED);
    s_bind_str (stmt, 1, room_id);
    return sqlite3_step (stmt) == SQLITE_ROW && sqlite3_column_int (stmt, 0) == 1;
}

//  Tell relayd that a message waits in the outbox (an outbox event that
//  carries the message: msg, packed)
static void
s_queue_outbox_event (s_storage_t *self, const char *room_id, const char *msg_id,
                      const void *msg, size_t msg_size)
{
    aip_pack_t *pk = aip_pack_new ();
    aip_event_pack_outbox (pk, room_id, msg_id, msg, msg_size);
    s_out_t *o = (s_out_t *) zmalloc (sizeof (s_out_t));
    char topic [AIP_MAX_ID + 8];
    o->topic = strdup (aip_event_topic (AIP_EVENT_OUTBOX, room_id, topic, sizeof topic));
    o->data = aip_pack_steal (pk, &o->size);
    zlistx_add_end (self->out, o);
    aip_pack_destroy (&pk);
}

static bool
s_room_exists (s_storage_t *self, const char *room_id, size_t len)
{
    sqlite3_stmt *stmt = s_stmt (self, STMT_ROOM_GET);
    sqlite3_bind_text (stmt, 1, room_id, (int) len, SQLITE_TRANSIENT);
    return sqlite3_step (stmt) == SQLITE_ROW;
}

//  True if the room (just looked up by s_room_exists) is encrypted
static bool
s_room_encrypted (s_storage_t *self)
{
    return sqlite3_column_type (self->stmt [STMT_ROOM_GET], 6) != SQLITE_NULL;
}

static int
s_room_not_found (s_storage_t *self, const aip_obj_t *room_id)
{
    size_t len;
    const char *id = aip_obj_str (room_id, &len);
    return s_fail (self, AIP_ERR_NOT_FOUND, "Room '%.*s' not found. Run 'ai-peer room list' "
                   "to see available rooms.", (int) len, id);
}

//  The room named by argument `name`: copied into room_id (AIP_MAX_ID + 1
//  bytes) when it exists, else -1 with the not-found error. The room's row
//  stays current in STMT_ROOM_GET (see s_room_encrypted).
static int
s_room_arg (s_storage_t *self, const aip_request_t *req, const char *name, char *room_id)
{
    const aip_obj_t *arg = aip_req_arg (req, name);
    size_t len;
    const char *id = aip_obj_str (arg, &len);
    if (!s_room_exists (self, id, len))
        return s_room_not_found (self, arg);
    snprintf (room_id, AIP_MAX_ID + 1, "%.*s", (int) len, id);
    return 0;
}

//  ---------------------------------------------------------------------
//  Peers and membership

//  Insert or update a peer (skipped when unchanged and recently written)
static int
s_peer_upsert (s_storage_t *self, const aip_obj_t *peer, bool force)
{
    const char *fields [] = { "id", "name", "type", "tool", "machine", "host", "port" };
    char *key = aip_obj_strdup (aip_obj_get (peer, "id"));
    //  The peer's fields joined, to tell whether anything changed
    char joined_buf [8 * (AIP_MAX_NAME + 1) + 32];
    size_t jlen = 0;
    for (size_t i = 1; i < sizeof fields / sizeof fields [0]; i++) {
        const aip_obj_t *v = aip_obj_get (peer, fields [i]);
        size_t len;
        const char *s = aip_obj_str (v, &len);
        if (s && len <= AIP_MAX_NAME) {
            memcpy (joined_buf + jlen, s, len);
            jlen += len;
        }
        else
        if (aip_obj_is_int (v))
            jlen += (size_t) snprintf (joined_buf + jlen, 24, "%lld", (long long) aip_obj_int (v));
        joined_buf [jlen++] = 0x1f;
    }
    joined_buf [jlen] = 0;
    char *joined = NULL;
    int64_t now = aip_clock_ms ();
    s_peer_cached_t *cached = (s_peer_cached_t *) zhashx_lookup (self->peer_cache, key);
    if (!force && cached && strcmp (cached->fields, joined_buf) == 0
    &&  now - cached->written_ms < PEER_CACHE_MS) {
        free (key);
        return 0;
    }
    joined = strdup (joined_buf);
    char ts [AIP_TIME_LEN + 1];
    aip_time_now (ts);
    sqlite3_stmt *stmt = s_stmt (self, STMT_PEER_UPSERT);
    for (int i = 0; i < 7; i++)
        s_bind_obj (stmt, i + 1, aip_obj_get (peer, fields [i]));
    s_bind_str (stmt, 8, ts);
    if (sqlite3_step (stmt) != SQLITE_DONE) {
        free (key);
        free (joined);
        return s_db_fail (self, "saving a peer");
    }
    if (!cached) {
        cached = (s_peer_cached_t *) zmalloc (sizeof (s_peer_cached_t));
        zhashx_insert (self->peer_cache, key, cached);
    }
    free (cached->fields);
    cached->fields = joined;
    cached->written_ms = now;
    free (key);
    return 0;
}

static void
s_peer_cached_free (void **item)
{
    s_peer_cached_t *c = (s_peer_cached_t *) *item;
    if (c) {
        free (c->fields);
        free (c);
        *item = NULL;
    }
}

//  Insert a message row; *inserted false if the id existed already
static int
s_msg_insert (s_storage_t *self, const char *id, const char *room_id, const char *peer_id,
              const char *content, size_t content_len, const char *type,
              const char *metadata, const char *created_at, bool *inserted)
{
    sqlite3_stmt *stmt = s_stmt (self, STMT_MSG_INSERT);
    s_bind_str (stmt, 1, id);
    s_bind_str (stmt, 2, room_id);
    s_bind_str (stmt, 3, peer_id);
    sqlite3_bind_text (stmt, 4, content, (int) content_len, SQLITE_TRANSIENT);
    s_bind_str (stmt, 5, type);
    s_bind_str (stmt, 6, metadata);
    s_bind_str (stmt, 7, created_at);
    if (sqlite3_step (stmt) != SQLITE_DONE)
        return s_db_fail (self, "saving a message");
    *inserted = sqlite3_changes (self->db) > 0;
    return 0;
}

//  Pack the pairs of a message we just inserted (no need to read it back)
//  into an open map
static void
s_pack_new_message (aip_pack_t *pk, const char *id, const char *room_id, const aip_obj_t *peer,
                    const char *content, size_t content_len, const char *type,
                    const char *metadata, const char *created_at)
{
    aip_pack_kstr (pk, "id", id);
    aip_pack_kstr (pk, "room_id", room_id);
    aip_pack_key (pk, "peer_id");
    aip_pack_obj (pk, aip_obj_get (peer, "id"));
    aip_pack_kstrn (pk, "content", content, content_len);
    aip_pack_kstr (pk, "type", type);
    aip_pack_kstr (pk, "metadata", metadata);
    aip_pack_kstr (pk, "created_at", created_at);
    aip_pack_key (pk, "peer_name");
    aip_pack_obj (pk, aip_obj_get (peer, "name"));
    aip_pack_key (pk, "peer_tool");
    aip_pack_obj (pk, aip_obj_get (peer, "tool"));
    aip_pack_key (pk, "peer_type");
    aip_pack_obj (pk, aip_obj_get (peer, "type"));
}

//  Register the peer and make it a member of the room; a first join adds
//  the "joined the room" system message (and its event), as the original.
static int
s_join (s_storage_t *self, const char *room_id, const aip_obj_t *peer, bool *new_member)
{
    if (s_peer_upsert (self, peer, false))
        return -1;
    char peer_id [AIP_MAX_ID + 1];
    aip_obj_get_str (peer, "id", peer_id, sizeof peer_id, "");
    char key [2 * AIP_MAX_ID + 4];
    snprintf (key, sizeof key, "%s\x1f%s", room_id, peer_id);
    bool known = zhashx_lookup (self->member_cache, key) != NULL;
    if (new_member)
        *new_member = false;
    if (known) {
        return 0;
    }
    char ts [AIP_TIME_LEN + 1];
    aip_time_now (ts);
    sqlite3_stmt *stmt = s_stmt (self, STMT_MEMBER_ADD);
    s_bind_str (stmt, 1, room_id);
    s_bind_str (stmt, 2, peer_id);
    s_bind_str (stmt, 3, ts);
    int rc = sqlite3_step (stmt);
    if (rc != SQLITE_DONE) {
        return s_db_fail (self, "joining a room");
    }
    if (sqlite3_changes (self->db) > 0) {
        //  Enforce the member limit on the way in
        stmt = s_stmt (self, STMT_MEMBER_COUNT);
        s_bind_str (stmt, 1, room_id);
        if (sqlite3_step (stmt) == SQLITE_ROW && sqlite3_column_int (stmt, 0) > AIP_MAX_ROOM_PEERS) {
                return s_fail (self, AIP_ERR_INVALID, "room %s is full (%d participants at most)",
                           room_id, AIP_MAX_ROOM_PEERS);
        }
        //  In a public room the relay announces members (to everyone, once),
        //  in a joined LAN room its hub: a local announcement would be a
        //  second copy
        if (s_room_synced (self, room_id)) {
            zhashx_insert (self->member_cache, key, "");
            if (new_member)
                *new_member = true;
            return 0;
        }
        char id [AIP_MSG_ID_LEN + 1];
        aip_msg_id_new (id);
        bool inserted;
        const char *text = "joined the room";
        if (s_msg_insert (self, id, room_id, peer_id, text, strlen (text), "system", "{}", ts,
                          &inserted)) {
                return -1;
        }
        aip_pack_t *pk = self->scratch;
        aip_pack_reset (pk);
        aip_pack_map_begin (pk);
        s_pack_new_message (pk, id, room_id, peer, text, strlen (text), "system", "{}", ts);
        aip_pack_map_end (pk);
        size_t size;
        const void *data = aip_pack_data (pk, &size);
        s_queue_event (self, room_id, data, size);
        if (new_member)
            *new_member = true;
    }
    zhashx_insert (self->member_cache, key, "");
    return 0;
}

//  ---------------------------------------------------------------------
//  Operations. Each packs the data of its reply into self->reply, or
//  returns -1 with errcode/errmsg set.

static int
s_op_room_create (s_storage_t *self, const aip_request_t *req)
{
    char id [AIP_MAX_ID + 1];
    if (!aip_obj_get_str (req->args, "id", id, sizeof id, NULL))
        aip_room_id_new (id);
    char ts [AIP_TIME_LEN + 1];
    aip_time_now (ts);
    sqlite3_stmt *stmt = s_stmt (self, STMT_ROOM_UPSERT);
    s_bind_str (stmt, 1, id);
    s_bind_obj (stmt, 2, aip_req_arg (req, "name"));
    const aip_obj_t *mode = aip_req_arg (req, "mode");
    if (mode)
        s_bind_obj (stmt, 3, mode);
    else
        s_bind_str (stmt, 3, "local");
    s_bind_obj (stmt, 4, aip_req_arg (req, "relay_url"));
    s_bind_obj (stmt, 5, aip_req_arg (req, "token"));
    s_bind_str (stmt, 6, ts);
    //  An encrypted room keeps its key (never a password) in the old
    //  password column
    const aip_obj_t *key = aip_req_arg (req, "key");
    size_t klen;
    const char *kstr = aip_obj_str (key, &klen);
    if (kstr && (klen < 4 || memcmp (kstr, "key:", 4) != 0))
        return s_fail (self, AIP_ERR_INVALID, "a room key must be a stored key (key:...), never a password");
    s_bind_obj (stmt, 7, key);
    if (sqlite3_step (stmt) != SQLITE_DONE)
        return s_db_fail (self, "creating a room");
    const aip_obj_t *peer = aip_req_arg (req, "peer");
    if (peer && s_join (self, id, peer, NULL))
        return -1;
    stmt = s_stmt (self, STMT_ROOM_GET);
    s_bind_str (stmt, 1, id);
    if (sqlite3_step (stmt) != SQLITE_ROW)
        return s_db_fail (self, "reading a new room");
    s_pack_room (self->reply, stmt);
    return 0;
}

static int
s_op_room_get (s_storage_t *self, const aip_request_t *req)
{
    sqlite3_stmt *stmt = s_stmt (self, STMT_ROOM_GET);
    s_bind_obj (stmt, 1, aip_req_arg (req, "id"));
    if (sqlite3_step (stmt) != SQLITE_ROW)
        return s_room_not_found (self, aip_req_arg (req, "id"));
    if (!aip_obj_bool (aip_req_arg (req, "with_key"))
    ||  sqlite3_column_type (stmt, 6) == SQLITE_NULL) {
        s_pack_room (self->reply, stmt);
        return 0;
    }
    //  The owner's CLI encrypts and decrypts: it gets the key, wrapped
    aip_pack_map (self->reply, 2);
    aip_pack_key (self->reply, "room");
    s_pack_room (self->reply, stmt);
    aip_pack_key (self->reply, "key");
    s_pack_column (self->reply, stmt, 6);
    return 0;
}

//  Reply {<key>: [rows]} with every row of a prepared, bound statement;
//  rooms (keys NULL) are packed as rooms (no password column), other rows
//  with the given keys
static int
s_reply_rows (s_storage_t *self, sqlite3_stmt *stmt, const char *key,
              const char *const *keys, int nkeys, const char *what)
{
    bool rooms = keys == NULL;
    aip_pack_t *pk = self->reply;
    aip_pack_map (pk, 1);
    aip_pack_key (pk, key);
    aip_pack_array_begin (pk);
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (rooms)
            s_pack_room (pk, stmt);
        else
            s_pack_row (pk, stmt, keys, nkeys);
    }
    if (rc != SQLITE_DONE)
        return s_db_fail (self, what);
    aip_pack_array_end (pk);
    return 0;
}

static int
s_op_room_list (s_storage_t *self, const aip_request_t *req)
{
    return s_reply_rows (self, s_stmt (self, STMT_ROOM_LIST), "rooms", NULL, 0, "listing rooms");
}

static int
s_op_room_delete (s_storage_t *self, const aip_request_t *req)
{
    char room_id [AIP_MAX_ID + 1];
    if (s_room_arg (self, req, "id", room_id))
        return -1;
    const aip_obj_t *id = aip_req_arg (req, "id");
    s_stmt_id_t steps [] = { STMT_ROOM_DEL_OUTBOX, STMT_ROOM_DEL_CURSOR, STMT_ROOM_DEL_CLAIMS,
                             STMT_ROOM_DEL_READ, STMT_ROOM_DEL_MSGS,
                             STMT_ROOM_DEL_MEMBERS, STMT_ROOM_DEL };
    for (size_t i = 0; i < sizeof steps / sizeof steps [0]; i++) {
        sqlite3_stmt *stmt = s_stmt (self, steps [i]);
        s_bind_obj (stmt, 1, id);
        if (sqlite3_step (stmt) != SQLITE_DONE)
            return s_db_fail (self, "deleting a room");
    }
    //  Membership of that room is gone: forget what we knew
    zhashx_purge (self->member_cache);
    aip_pack_map (self->reply, 1);
    aip_pack_key (self->reply, "deleted");
    aip_pack_obj (self->reply, id);
    return 0;
}

static int
s_op_room_peers (s_storage_t *self, const aip_request_t *req)
{
    char room_id [AIP_MAX_ID + 1];
    if (s_room_arg (self, req, "id", room_id))
        return -1;
    sqlite3_stmt *stmt = s_stmt (self, STMT_ROOM_PEERS);
    s_bind_str (stmt, 1, room_id);
    return s_reply_rows (self, stmt, "peers", s_peer_keys, 9, "listing room members");
}

static int
s_op_room_join (s_storage_t *self, const aip_request_t *req)
{
    char rid [AIP_MAX_ID + 1];
    if (s_room_arg (self, req, "room_id", rid))
        return -1;
    bool new_member;
    if (s_join (self, rid, aip_req_arg (req, "peer"), &new_member))
        return -1;
    aip_pack_map (self->reply, 4);
    aip_pack_kstr (self->reply, "room_id", rid);
    aip_pack_key (self->reply, "peer_id");
    aip_pack_obj (self->reply, aip_obj_get (aip_req_arg (req, "peer"), "id"));
    aip_pack_kbool (self->reply, "joined", true);
    aip_pack_kbool (self->reply, "new_member", new_member);
    return 0;
}

static int
s_op_peer_register (s_storage_t *self, const aip_request_t *req)
{
    if (s_peer_upsert (self, req->args, true))
        return -1;
    sqlite3_stmt *stmt = s_stmt (self, STMT_PEER_GET);
    s_bind_obj (stmt, 1, aip_req_arg (req, "id"));
    if (sqlite3_step (stmt) != SQLITE_ROW)
        return s_db_fail (self, "reading a peer");
    s_pack_row (self->reply, stmt, s_peer_keys, 9);
    return 0;
}

static int
s_op_peer_list (s_storage_t *self, const aip_request_t *req)
{
    return s_reply_rows (self, s_stmt (self, STMT_PEER_LIST), "peers", s_peer_keys, 9, "listing peers");
}

static int
s_op_msg_send (s_storage_t *self, const aip_request_t *req)
{
    char room_id [AIP_MAX_ID + 1];
    if (s_room_arg (self, req, "room_id", room_id))
        return -1;
    bool encrypted = s_room_encrypted (self);
    const char *mode = (const char *) sqlite3_column_text (self->stmt [STMT_ROOM_GET], 2);
    bool lan = mode && streq (mode, "lan");
    if (encrypted && aip_obj_get_bool (req->args, "plain", false))
        return s_fail (self, AIP_ERR_ENCRYPTED, "Room '%s' is encrypted: encrypt the message "
                       "with the room's key and send it again", room_id);
    size_t clen;
    const char *content = aip_obj_str (aip_req_arg (req, "content"), &clen);
    const aip_obj_t *type_arg = aip_req_arg (req, "type");
    bool system = aip_obj_streq (type_arg, "system");
    //  Ciphertext may be longer than the plaintext limit; plaintext not
    if (!encrypted && clen > AIP_MAX_CONTENT)
        return s_fail (self, AIP_ERR_INVALID, "the message is %zu bytes; the limit is %d bytes",
                       clen, AIP_MAX_CONTENT);
    //  An encrypted room never stores plaintext (system messages aside)
    if (encrypted && !system && !(clen > 5 && (memcmp (content, "aip1:", 5) == 0
                                             || memcmp (content, "gAAAAA", 6) == 0)))
        return s_fail (self, AIP_ERR_INVALID, "Room '%s' is encrypted: its messages must be "
                       "encrypted by the sender", room_id);
    const aip_obj_t *peer = aip_req_arg (req, "peer");
    if (s_join (self, room_id, peer, NULL))
        return -1;

    char id [AIP_MAX_ID + 1], type [16], metadata [AIP_MAX_METADATA + 1];
    char created_at [AIP_MAX_TIME + 1], peer_id [AIP_MAX_ID + 1];
    if (!aip_obj_get_str (req->args, "id", id, sizeof id, NULL))
        aip_msg_id_new (id);
    aip_obj_get_str (req->args, "type", type, sizeof type, "message");
    aip_obj_get_str (req->args, "metadata", metadata, sizeof metadata, "{}");
    if (!aip_obj_get_str (req->args, "created_at", created_at, sizeof created_at, NULL))
        aip_time_now (created_at);
    else
    if (!aip_time_valid (created_at, strlen (created_at), NULL))
        //  Rooms are ordered by created_at: anything else would sort anywhere
        return s_fail (self, AIP_ERR_INVALID, "created_at '%.40s' is not an ISO-8601 UTC time "
                       "(like 2026-11-23T21:29:49.953123+00:00 or 2026-11-23T21:29:49.953Z)",
                       created_at);
    aip_obj_get_str (peer, "id", peer_id, sizeof peer_id, "");

    bool inserted;
    if (s_msg_insert (self, id, room_id, peer_id, content, clen, type, metadata, created_at,
                      &inserted))
        return -1;
    if (!inserted) {
        //  A retry of a message we already have: answer with what is stored
        sqlite3_stmt *stmt = s_stmt (self, STMT_MSG_GET);
        s_bind_str (stmt, 1, id);
        if (sqlite3_step (stmt) != SQLITE_ROW)
            return s_db_fail (self, "reading a message");
        //  Only the same message may meet its id again (a retry, the
        //  relay's echo of our own message, a catch-up that overlaps): an
        //  acknowledged ok must never stand for somebody else's message.
        //  created_at and metadata may differ (the relay restamps one and
        //  drops the other); room, sender and content may not.
        const char *stored_room = (const char *) sqlite3_column_text (stmt, 1);
        const char *stored_peer = (const char *) sqlite3_column_text (stmt, 2);
        const void *stored_content = sqlite3_column_blob (stmt, 3);
        size_t stored_len = (size_t) sqlite3_column_bytes (stmt, 3);
        if (strcmp (stored_room, room_id) != 0)
            return s_fail (self, AIP_ERR_INVALID, "message id %s is already used in another "
                           "room; send it under a new id", id);
        if (!stored_peer || strcmp (stored_peer, peer_id) != 0)
            return s_fail (self, AIP_ERR_INVALID, "message id %s is already used by another "
                           "peer in room %s; send it under a new id", id, room_id);
        if (stored_len != clen || (clen && memcmp (stored_content, content, clen) != 0))
            return s_fail (self, AIP_ERR_INVALID, "message id %s is already used by a different "
                           "message in room %s; send it under a new id", id, room_id);
        s_pack_row (self->reply, stmt, s_msg_keys, 10);
        return 0;
    }
    //  A local message of a public room goes to the relay (of a joined LAN
    //  room to its hub) through the outbox, committed in the same
    //  transaction as the message itself
    bool remote = aip_obj_get_bool (req->args, "remote", false);
    bool queued = !remote && !streq (type, "system") && s_room_synced (self, room_id);
    if (queued) {
        sqlite3_stmt *stmt = s_stmt (self, STMT_OUTBOX_ADD);
        s_bind_str (stmt, 1, id);
        s_bind_str (stmt, 2, room_id);
        s_bind_str (stmt, 3, created_at);
        if (sqlite3_step (stmt) != SQLITE_DONE)
            return s_db_fail (self, "queueing a message for the relay");
    }
    aip_pack_t *pk = self->scratch;
    aip_pack_reset (pk);
    aip_pack_map_begin (pk);
    s_pack_new_message (pk, id, room_id, peer, content, clen, type, metadata, created_at);
    aip_pack_map_end (pk);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    //  The reply is the message; queued, with {queued: true, lan} (the
    //  sender waits for the relay, or the LAN hub, to take it)
    aip_pack_map_begin (self->reply);
    s_pack_new_message (self->reply, id, room_id, peer, content, clen, type, metadata,
                        created_at);
    if (queued) {
        aip_pack_kbool (self->reply, "queued", true);
        aip_pack_kbool (self->reply, "lan", lan);
        s_queue_outbox_event (self, room_id, id, data, size);
    }
    aip_pack_map_end (self->reply);
    s_queue_event (self, room_id, data, size);
    return 0;
}

static int
s_op_outbox_list (s_storage_t *self, const aip_request_t *req)
{
    static const char *keys [] = { "id", "room_id", "relay_url", "token", "peer_id", "peer_name",
                                   "peer_tool", "peer_type", "content", "type", "created_at",
                                   "seq" };
    sqlite3_stmt *stmt = s_stmt (self, STMT_OUTBOX_LIST);
    sqlite3_bind_int64 (stmt, 1, aip_obj_get_int (req->args, "limit", AIP_RELAY_OUTBOX_BATCH));
    sqlite3_bind_int64 (stmt, 2, aip_obj_get_int (req->args, "after", 0));
    return s_reply_rows (self, stmt, "messages", keys, 12, "reading the outbox");
}

static int
s_op_outbox_done (s_storage_t *self, const aip_request_t *req)
{
    sqlite3_stmt *stmt = s_stmt (self, STMT_OUTBOX_DONE);
    s_bind_obj (stmt, 1, aip_req_arg (req, "id"));
    if (sqlite3_step (stmt) != SQLITE_DONE)
        return s_db_fail (self, "updating the outbox");
    aip_pack_map (self->reply, 1);
    aip_pack_kbool (self->reply, "done", sqlite3_changes (self->db) > 0);
    return 0;
}

static int
s_op_sync_rooms (s_storage_t *self, const aip_request_t *req)
{
    static const char *keys [] = { "id", "relay_url", "token", "cursor" };
    return s_reply_rows (self, s_stmt (self, STMT_SYNC_ROOMS), "rooms", keys, 4,
                         "listing public rooms");
}

//  Hold peer_id of a LAN room to the signature of its first claim
static int
s_claim (s_storage_t *self, const char *room_id, const char *peer_id, const char *signature)
{
    //  Only a digest is kept: peers.db never holds a usable signature
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const uint8_t *) signature, strlen (signature));
    char hash [crypto_hash_sha256_BYTES * 2 + 1];
    sodium_bin2hex (hash, sizeof hash, digest, sizeof digest);
    sqlite3_stmt *stmt = s_stmt (self, STMT_CLAIM_GET);
    s_bind_str (stmt, 1, room_id);
    s_bind_str (stmt, 2, peer_id);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        const char *stored = (const char *) sqlite3_column_text (stmt, 0);
        if (!stored || aip_crypto_compare_str (stored, hash) != 0)
            return s_fail (self, AIP_ERR_INVALID, "invalid peer signature — identity mismatch "
                           "(peer %s)", peer_id);
    }
    else
    if (rc == SQLITE_DONE) {
        //  A member who joined here (the hub's own people and tools) has no
        //  claim from another machine: nobody elsewhere may take its id
        stmt = s_stmt (self, STMT_CLAIM_MEMBER);
        s_bind_str (stmt, 1, room_id);
        s_bind_str (stmt, 2, peer_id);
        if (sqlite3_step (stmt) == SQLITE_ROW)
            return s_fail (self, AIP_ERR_INVALID, "peer %s is a member of this room on its "
                           "hub: another machine cannot speak as it", peer_id);
        stmt = s_stmt (self, STMT_CLAIM_ADD);
        s_bind_str (stmt, 1, room_id);
        s_bind_str (stmt, 2, peer_id);
        s_bind_str (stmt, 3, hash);
        if (sqlite3_step (stmt) != SQLITE_DONE)
            return s_db_fail (self, "registering a LAN member");
    }
    else
        return s_db_fail (self, "reading LAN members");
    return 0;
}

static int
s_op_member_claim (s_storage_t *self, const aip_request_t *req)
{
    char room_id [AIP_MAX_ID + 1];
    if (s_room_arg (self, req, "room_id", room_id))
        return -1;
    char peer_id [AIP_MAX_ID + 1], signature [129];
    aip_obj_get_str (req->args, "peer_id", peer_id, sizeof peer_id, "");
    aip_obj_get_str (req->args, "signature", signature, sizeof signature, "");
    if (s_claim (self, room_id, peer_id, signature))
        return -1;
    aip_pack_map (self->reply, 1);
    aip_pack_kbool (self->reply, "ok", true);
    return 0;
}

//  A relay cursor is a relay's created_at (not far ahead of our clock) or a
//  LAN hub's zero-padded seq: anything else ('zzzz', a time in the year
//  9999) would stop every catch-up for good, since cursors only grow
static bool
s_cursor_valid (const char *cursor, size_t len)
{
    int64_t ms;
    if (aip_time_valid (cursor, len, &ms))
        return ms <= aip_time_ms () + AIP_CURSOR_AHEAD_MAX_MS;
    if (len < 1 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++)
        if (cursor [i] < '0' || cursor [i] > '9')
            return false;
    return true;
}

static int
s_op_sync_cursor (s_storage_t *self, const aip_request_t *req)
{
    size_t clen;
    const char *cursor = aip_obj_str (aip_req_arg (req, "cursor"), &clen);
    if (!cursor || !s_cursor_valid (cursor, clen))
        return s_fail (self, AIP_ERR_INVALID, "a relay cursor is an ISO-8601 UTC time (at most "
                       "a day ahead) or a LAN hub's sequence number, not '%.*s'",
                       cursor ? (int) (clen < 40 ? clen : 40) : 0, cursor ? cursor : "");
    sqlite3_stmt *stmt = s_stmt (self, STMT_SYNC_CURSOR);
    s_bind_obj (stmt, 1, aip_req_arg (req, "room_id"));
    s_bind_obj (stmt, 2, aip_req_arg (req, "cursor"));
    if (sqlite3_step (stmt) != SQLITE_DONE)
        return s_db_fail (self, "saving a relay cursor");
    aip_pack_map (self->reply, 1);
    aip_pack_kbool (self->reply, "saved", true);
    return 0;
}

//  A peer has seen a room up to (ts, id): its read cursor moves there,
//  never back
static int
s_read_mark (s_storage_t *self, const char *peer_id, const char *room_id, const char *ts,
             const char *id)
{
    sqlite3_stmt *stmt = s_stmt (self, STMT_READ_MARK);
    s_bind_str (stmt, 1, peer_id);
    s_bind_str (stmt, 2, room_id);
    s_bind_str (stmt, 3, ts);
    s_bind_str (stmt, 4, id);
    if (sqlite3_step (stmt) != SQLITE_DONE)
        return s_db_fail (self, "saving a read cursor");
    return 0;
}

//  One room's newest delivered message, while msg.unread packs a page
typedef struct {
    char room_id [AIP_MAX_ID + 1];
    char ts [AIP_MAX_TIME + 1];
    char id [AIP_MAX_ID + 1];
} s_read_upto_t;

//  Messages from others the peer has not seen, oldest first, in the rooms
//  it joined (or one); with mark, each room's cursor moves past what is
//  returned, in the same transaction: two readers never get one message
static int
s_op_msg_unread (s_storage_t *self, const aip_request_t *req)
{
    char peer_id [AIP_MAX_ID + 1];
    aip_obj_get_str (req->args, "peer_id", peer_id, sizeof peer_id, "");
    const aip_obj_t *room = aip_req_arg (req, "room_id");
    char room_id [AIP_MAX_ID + 1];
    if (room && s_room_arg (self, req, "room_id", room_id))
        return -1;
    int64_t limit = aip_obj_get_int (req->args, "limit", 50);
    if (limit < 1)
        limit = 1;
    bool mark = aip_obj_get_bool (req->args, "mark", false);
    sqlite3_stmt *stmt = s_stmt (self, STMT_MSG_UNREAD);
    s_bind_str (stmt, 1, peer_id);
    if (room)
        s_bind_str (stmt, 2, room_id);
    //  One more than asked: tells whether more wait
    sqlite3_bind_int64 (stmt, 3, limit + 1);
    aip_pack_t *pk = self->reply;
    aip_pack_map (pk, 2);
    aip_pack_key (pk, "messages");
    aip_pack_array_begin (pk);
    size_t count = 0, bytes = 0, nrooms = 0;
    bool more = false;
    s_read_upto_t upto [64];
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *mroom = (const char *) sqlite3_column_text (stmt, 1);
        size_t r = 0;
        while (r < nrooms && strcmp (upto [r].room_id, mroom) != 0)
            r++;
        bytes += (size_t) sqlite3_column_bytes (stmt, 3);
        if ((int64_t) count == limit || (count > 0 && bytes > AIP_MAX_PAGE_BYTES)
        ||  r == sizeof upto / sizeof upto [0]) {
            more = true;
            break;
        }
        if (r == nrooms) {
            snprintf (upto [r].room_id, sizeof upto [r].room_id, "%s", mroom);
            nrooms++;
        }
        snprintf (upto [r].ts, sizeof upto [r].ts, "%s", (const char *) sqlite3_column_text (stmt, 6));
        snprintf (upto [r].id, sizeof upto [r].id, "%s", (const char *) sqlite3_column_text (stmt, 0));
        s_pack_row (pk, stmt, s_msg_keys, 10);
        count++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_db_fail (self, "reading unread messages");
    for (size_t r = 0; mark && r < nrooms; r++)
        if (s_read_mark (self, peer_id, upto [r].room_id, upto [r].ts, upto [r].id))
            return -1;
    aip_pack_array_end (pk);
    aip_pack_kbool (pk, "more", more);
    return 0;
}

//  Find the cursor N rows back (newest first) from an optional bound
static bool
s_nth_back (s_storage_t *self, const char *room_id, const char *before_ts, const char *before_id,
            int64_t n, char *ts, char *id)
{
    sqlite3_stmt *stmt;
    if (before_ts) {
        stmt = s_stmt (self, STMT_MSG_NTH_BEFORE);
        s_bind_str (stmt, 2, before_ts);
        s_bind_str (stmt, 3, before_id);
        sqlite3_bind_int64 (stmt, 4, n - 1);
    }
    else {
        stmt = s_stmt (self, STMT_MSG_NTH_NEWEST);
        sqlite3_bind_int64 (stmt, 2, n - 1);
    }
    s_bind_str (stmt, 1, room_id);
    if (sqlite3_step (stmt) != SQLITE_ROW)
        return false;
    snprintf (ts, AIP_MAX_TIME + 1, "%s", (const char *) sqlite3_column_text (stmt, 0));
    snprintf (id, AIP_MAX_ID + 1, "%s", (const char *) sqlite3_column_text (stmt, 1));
    return true;
}

static int
s_op_msg_list (s_storage_t *self, const aip_request_t *req)
{
    char room_id [AIP_MAX_ID + 1];
    if (s_room_arg (self, req, "room_id", room_id))
        return -1;
    const aip_obj_t *peer = aip_req_arg (req, "peer");
    if (peer && s_join (self, room_id, peer, NULL))
        return -1;
    int64_t limit = aip_obj_get_int (req->args, "limit", 50);
    if (limit < 1)
        limit = 1;

    char after_ts [AIP_MAX_TIME + 1], after_id [AIP_MAX_ID + 2];
    char before_ts [AIP_MAX_TIME + 1], before_id [AIP_MAX_ID + 2];
    const char *a_ts = aip_obj_get_str (req->args, "after_ts", after_ts, sizeof after_ts, NULL);
    const char *b_ts = aip_obj_get_str (req->args, "before_ts", before_ts, sizeof before_ts, NULL);
    //  A time without an id means strictly after / before that time
    aip_obj_get_str (req->args, "after_id", after_id, sizeof after_id, "~");
    aip_obj_get_str (req->args, "before_id", before_id, sizeof before_id, "");

    sqlite3_stmt *stmt;
    const aip_obj_t *after_seq = aip_req_arg (req, "after_seq");
    if (after_seq) {
        //  A LAN hub's order: each message with its seq
        stmt = s_stmt (self, STMT_MSG_AFTER_SEQ);
        sqlite3_bind_int64 (stmt, 2, aip_obj_int (after_seq));
        a_ts = b_ts = NULL;
    }
    else
    if (a_ts) {
        stmt = s_stmt (self, STMT_MSG_AFTER);
        s_bind_str (stmt, 2, a_ts);
        s_bind_str (stmt, 3, after_id);
    }
    else {
        //  The newest `limit` (before a bound): find where they start, then
        //  read forward, so rows come out in order without a sort
        char ts [AIP_MAX_TIME + 1], id [AIP_MAX_ID + 1];
        stmt = s_stmt (self, STMT_MSG_FROM);
        if (s_nth_back (self, room_id, b_ts, before_id, limit, ts, id)) {
            s_bind_str (stmt, 2, ts);
            s_bind_str (stmt, 3, id);
        }
        else {
            s_bind_str (stmt, 2, "");
            s_bind_str (stmt, 3, "");
        }
    }
    s_bind_str (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 4, limit);

    aip_pack_t *pk = self->reply;
    aip_pack_map_begin (pk);
    aip_pack_key (pk, "messages");
    aip_pack_array_begin (pk);
    size_t count = 0, bytes = 0;
    bool truncated = false;
    char last_ts [AIP_MAX_TIME + 1] = "", last_id [AIP_MAX_ID + 1] = "";
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (b_ts && !a_ts) {
            //  Rows at or past the bound belong to the next page
            const char *ts = (const char *) sqlite3_column_text (stmt, 6);
            const char *id = (const char *) sqlite3_column_text (stmt, 0);
            int cmp = strcmp (ts, b_ts);
            if (cmp > 0 || (cmp == 0 && strcmp (id, before_id) >= 0))
                break;
        }
        bytes += (size_t) sqlite3_column_bytes (stmt, 3);
        if (count > 0 && bytes > AIP_MAX_PAGE_BYTES) {
            truncated = true;
            break;
        }
        s_pack_row (pk, stmt, s_msg_keys, after_seq ? 11 : 10);
        snprintf (last_ts, sizeof last_ts, "%s", (const char *) sqlite3_column_text (stmt, 6));
        snprintf (last_id, sizeof last_id, "%s", (const char *) sqlite3_column_text (stmt, 0));
        count++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_db_fail (self, "reading messages");
    //  The reader has now seen up to the page's last message
    if (peer && count > 0 && aip_obj_get_bool (req->args, "mark_read", false)) {
        char peer_id [AIP_MAX_ID + 1];
        aip_obj_get_str (peer, "id", peer_id, sizeof peer_id, "");
        if (s_read_mark (self, peer_id, room_id, last_ts, last_id))
            return -1;
    }
    aip_pack_array_end (pk);
    if (truncated)
        aip_pack_kbool (pk, "truncated", true);
    aip_pack_map_end (pk);
    return 0;
}

//  usage.sum: {by_tool: [{tool, answers, input_tokens, output_tokens,
//  cache_read_tokens, cache_write_tokens, cost_usd, costed, duration_ms,
//  rooms}]}, of one room or of all; costed counts the answers that
//  reported a cost
static const char *s_usage_keys [] = { "tool", "answers", "input_tokens", "output_tokens",
                                       "cache_read_tokens", "cache_write_tokens", "cost_usd",
                                       "costed", "duration_ms", "rooms" };

static int
s_op_usage_sum (s_storage_t *self, const aip_request_t *req)
{
    sqlite3_stmt *stmt;
    if (aip_req_arg (req, "room_id")) {
        char room_id [AIP_MAX_ID + 1];
        if (s_room_arg (self, req, "room_id", room_id))
            return -1;
        stmt = s_stmt (self, STMT_USAGE_ROOM);
        s_bind_str (stmt, 1, room_id);
    }
    else
        stmt = s_stmt (self, STMT_USAGE_ALL);
    sqlite3_bind_int (stmt, 2, AIP_MAX_USAGE_TOOLS);
    return s_reply_rows (self, stmt, "by_tool", s_usage_keys, 10, "summing token usage");
}

static const char *s_session_keys [] = { "session_id", "seen_ts", "seen_id", "answer_id",
                                         "updated_at" };

//  Is this a session id spawnd may put in argv? ^[A-Za-z0-9_.:-]{1,128}$
static bool
s_session_id_ok (const char *id)
{
    size_t n = strlen (id);
    if (n < 1 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum ((unsigned char) id [i]) || strchr ("_.:-", id [i])))
            return false;
    return true;
}

static int
s_op_session_get (s_storage_t *self, const aip_request_t *req)
{
    char room_id [AIP_MAX_ID + 1], tool [AIP_MAX_NAME + 1];
    if (s_room_arg (self, req, "room_id", room_id))
        return -1;
    aip_obj_get_str (req->args, "tool", tool, sizeof tool, "");
    sqlite3_stmt *stmt = s_stmt (self, STMT_SESSION_GET);
    s_bind_str (stmt, 1, room_id);
    s_bind_str (stmt, 2, tool);
    return s_reply_rows (self, stmt, "sessions", s_session_keys, 5, "reading a tool session");
}

static int
s_op_session_put (s_storage_t *self, const aip_request_t *req)
{
    char room_id [AIP_MAX_ID + 1], tool [AIP_MAX_NAME + 1], session_id [129];
    char seen_ts [AIP_MAX_TIME + 1], seen_id [AIP_MAX_ID + 1], answer_id [AIP_MAX_ID + 1];
    if (s_room_arg (self, req, "room_id", room_id))
        return -1;
    aip_obj_get_str (req->args, "tool", tool, sizeof tool, "");
    if (!aip_obj_get_str (req->args, "session_id", session_id, sizeof session_id, NULL)) {
        sqlite3_stmt *stmt = s_stmt (self, STMT_SESSION_DEL);
        s_bind_str (stmt, 1, room_id);
        s_bind_str (stmt, 2, tool);
        if (sqlite3_step (stmt) != SQLITE_DONE)
            return s_db_fail (self, "forgetting a tool session");
        aip_pack_map (self->reply, 1);
        aip_pack_kbool (self->reply, "forgotten", true);
        return 0;
    }
    //  A bad id is never stored: it would reach a command line
    if (!s_session_id_ok (session_id))
        return s_fail (self, AIP_ERR_INVALID, "a session id is 1 to 128 letters, digits or "
                       "'_.:-'");
    aip_obj_get_str (req->args, "seen_ts", seen_ts, sizeof seen_ts, "");
    aip_obj_get_str (req->args, "seen_id", seen_id, sizeof seen_id, "");
    aip_obj_get_str (req->args, "answer_id", answer_id, sizeof answer_id, "");
    char now [AIP_MAX_TIME + 1];
    aip_time_now (now);
    sqlite3_stmt *stmt = s_stmt (self, STMT_SESSION_PUT);
    const char *values [] = { room_id, tool, session_id, seen_ts, seen_id, answer_id, now };
    for (int i = 0; i < 7; i++)
        s_bind_str (stmt, i + 1, values [i]);
    if (sqlite3_step (stmt) != SQLITE_DONE)
        return s_db_fail (self, "storing a tool session");
    aip_pack_map (self->reply, 1);
    aip_pack_kstr (self->reply, "session_id", session_id);
    return 0;
}

typedef int (s_op_fn) (s_storage_t *self, const aip_request_t *req);

//  Dispatch table: operation -> handler (NULL: not a storage op)
static s_op_fn *s_handlers [AIP_OP_COUNT] = {
    [AIP_OP_ROOM_CREATE]   = s_op_room_create,
    [AIP_OP_ROOM_GET]      = s_op_room_get,
    [AIP_OP_ROOM_LIST]     = s_op_room_list,
    [AIP_OP_ROOM_DELETE]   = s_op_room_delete,
    [AIP_OP_ROOM_PEERS]    = s_op_room_peers,
    [AIP_OP_ROOM_JOIN]     = s_op_room_join,
    [AIP_OP_PEER_REGISTER] = s_op_peer_register,
    [AIP_OP_PEER_LIST]     = s_op_peer_list,
    [AIP_OP_MSG_SEND]      = s_op_msg_send,
    [AIP_OP_MSG_LIST]      = s_op_msg_list,
    [AIP_OP_OUTBOX_LIST]   = s_op_outbox_list,
    [AIP_OP_OUTBOX_DONE]   = s_op_outbox_done,
    [AIP_OP_SYNC_ROOMS]    = s_op_sync_rooms,
    [AIP_OP_SYNC_CURSOR]   = s_op_sync_cursor,
    [AIP_OP_MEMBER_CLAIM]  = s_op_member_claim,
    [AIP_OP_USAGE_SUM]     = s_op_usage_sum,
    [AIP_OP_MSG_UNREAD]    = s_op_msg_unread,
    [AIP_OP_SESSION_GET]   = s_op_session_get,
    [AIP_OP_SESSION_PUT]   = s_op_session_put,
    [AIP_OP_LAN_INFO]      = aip_hub_info,
    [AIP_OP_LAN_JOIN]      = aip_hub_join,
    [AIP_OP_LAN_POST]      = aip_hub_post,
    [AIP_OP_LAN_READ]      = aip_hub_read,
};

//  ---------------------------------------------------------------------
//  What the hub's handlers (aip_hub.c) borrow

aip_pack_t *
aip_store_reply (aip_store_t *self)
{
    return self->reply;
}

int
aip_store_fail (aip_store_t *self, const char *code, const char *fmt, ...)
{
    snprintf (self->errcode, sizeof self->errcode, "%s", code);
    va_list args;
    va_start (args, fmt);
    vsnprintf (self->errmsg, sizeof self->errmsg, fmt, args);
    va_end (args);
    return -1;
}

//  Copy column col of stmt into out (size bytes); "" when NULL or too long
static void
s_column_copy (sqlite3_stmt *stmt, int col, char *out, size_t size)
{
    const char *s = (const char *) sqlite3_column_text (stmt, col);
    size_t len = (size_t) sqlite3_column_bytes (stmt, col);
    if (!s || len >= size)
        len = 0;
    memcpy (out, s ? s : "", len);
    out [len] = 0;
}

int
aip_store_room (aip_store_t *self, const char *id, size_t len, aip_store_room_t *room)
{
    memset (room, 0, sizeof *room);
    if (!s_room_exists (self, id, len))
        return 1;
    sqlite3_stmt *stmt = self->stmt [STMT_ROOM_GET];
    s_column_copy (stmt, 0, room->id, sizeof room->id);
    s_column_copy (stmt, 1, room->name, sizeof room->name);
    s_column_copy (stmt, 2, room->mode, sizeof room->mode);
    room->relay_url = sqlite3_column_type (stmt, 3) != SQLITE_NULL;
    s_column_copy (stmt, 4, room->created_at, sizeof room->created_at);
    s_column_copy (stmt, 5, room->token, sizeof room->token);
    s_column_copy (stmt, 6, room->key, sizeof room->key);
    room->encrypted = s_room_encrypted (self);
    return 0;
}

int
aip_store_claim (aip_store_t *self, const char *room_id, const char *peer_id,
                 const char *signature)
{
    return s_claim (self, room_id, peer_id, signature);
}

int
aip_store_run (aip_store_t *self, const aip_request_t *req)
{
    s_op_fn *handler = s_handlers [req->op];
    if (!handler)
        return s_fail (self, AIP_ERR_INVALID, "not a storage operation");
    return handler (self, req);
}

//  ---------------------------------------------------------------------
//  Batches

//  Run a transaction-control statement (prepared once: parsing SAVEPOINT
//  for every request showed up in profiles)
static void
s_exec (s_storage_t *self, s_stmt_id_t id)
{
    sqlite3_stmt *stmt = s_stmt (self, id);
    if (sqlite3_step (stmt) != SQLITE_DONE)
        zsys_error ("storage: %s: %s", s_stmt_sql [id], sqlite3_errmsg (self->db));
    sqlite3_reset (stmt);
}

//  Run one request inside the open transaction; queue its reply
static void
s_run_request (s_storage_t *self, uint64_t tag, zframe_t *body)
{
    aip_request_t req;
    uint64_t id;
    char err [320];
    aip_pack_reset (self->reply);
    if (aip_request_decode (zframe_data (body), zframe_size (body), &req, &id, err, sizeof err)) {
        char message [400];
        snprintf (message, sizeof message, "malformed request: %s", err);
        aip_reply_error (self->reply, id, AIP_ERR_MALFORMED, message);
    }
    else
    if (!s_handlers [req.op]) {
        aip_reply_error (self->reply, req.id, AIP_ERR_INVALID, "not a storage operation");
        aip_request_free (&req);
    }
    else {
        void *events_mark = zlistx_last (self->out);
        s_exec (self, STMT_TX_SAVEPOINT);
        aip_reply_ok_begin (self->reply, req.id);
        if (s_handlers [req.op] (self, &req) == 0)
            s_exec (self, STMT_TX_RELEASE);
        else {
            s_exec (self, STMT_TX_ROLLBACK_TO);
            s_exec (self, STMT_TX_RELEASE);
            //  Its events never happened, and caches may have run ahead
            while (zlistx_last (self->out) != events_mark && zlistx_size (self->out))
                zlistx_delete (self->out, zlistx_cursor (self->out));
            zhashx_purge (self->peer_cache);
            zhashx_purge (self->member_cache);
            aip_pack_reset (self->reply);
            aip_reply_error (self->reply, req.id, self->errcode, self->errmsg);
        }
        aip_request_free (&req);
    }
    s_out_t *o = (s_out_t *) zmalloc (sizeof (s_out_t));
    o->tag = tag;
    o->data = aip_pack_steal (self->reply, &o->size);
    self->out_bytes += o->size;
    zlistx_add_end (self->out, o);
}

//  Take what the broker sent, run it all in one transaction, commit, and
//  only then answer and publish.
static void
s_handle_batch (s_storage_t *self)
{
    size_t requests = 0;
    bool in_tx = false;
    int slots = self->args.slots;
    //  Replies wait for the commit: a batch of large pages stops early
    self->out_bytes = 0;
    while ((int) requests < slots && self->out_bytes < AIP_MAX_BATCH_BYTES) {
        uint64_t tag;
        zframe_t *body = NULL;
        int rc = aip_worker_recv (self->worker, &tag, &body);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        if (!in_tx) {
            s_exec (self, STMT_TX_BEGIN);
            in_tx = true;
        }
        s_run_request (self, tag, body);
        zframe_destroy (&body);
        requests++;
    }
    if (!in_tx)
        return;
    char *errmsg = NULL;
    if (sqlite3_exec (self->db, "COMMIT", NULL, NULL, &errmsg) != SQLITE_OK) {
        //  Nothing of this batch is durable: every reply becomes an error
        zsys_error ("storage: commit of %zu request(s) failed: %s", requests, errmsg);
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        zhashx_purge (self->peer_cache);
        zhashx_purge (self->member_cache);
        for (s_out_t *o = (s_out_t *) zlistx_first (self->out); o;
             o = (s_out_t *) zlistx_next (self->out)) {
            if (o->topic)
                continue;
            aip_doc_t *doc = aip_doc_decode (o->data, o->size, NULL, 0);
            uint64_t id = doc ? (uint64_t) aip_obj_get_int (aip_doc_root (doc), "id", 0) : 0;
            aip_doc_destroy (&doc);
            char message [600];
            snprintf (message, sizeof message, "could not save to peers.db: %s", errmsg);
            aip_pack_reset (self->reply);
            aip_reply_error (self->reply, id, AIP_ERR_INTERNAL, message);
            free (o->data);
            o->data = aip_pack_steal (self->reply, &o->size);
        }
        sqlite3_free (errmsg);
        s_out_t *o = (s_out_t *) zlistx_first (self->out);
        while (o) {
            if (o->topic) {
                zlistx_delete (self->out, zlistx_cursor (self->out));
                o = (s_out_t *) zlistx_first (self->out);
                continue;
            }
            o = (s_out_t *) zlistx_next (self->out);
        }
    }
    for (s_out_t *o = (s_out_t *) zlistx_first (self->out); o;
         o = (s_out_t *) zlistx_next (self->out)) {
        if (o->topic)
            aip_worker_event (self->worker, o->topic, o->data, o->size);
        else
            aip_worker_reply (self->worker, o->tag, o->data, o->size);
    }
    zlistx_purge (self->out);
}

//  ---------------------------------------------------------------------
//  Setup

static int
s_open (s_storage_t *self, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2 (self->args.db_path, &self->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf (err, errlen, "cannot open %s: %s", self->args.db_path,
                  self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        return -1;
    }
    sqlite3_busy_timeout (self->db, 5000);
    //  Refuse a file that is not a database, or one newer than we are,
    //  before touching it (WAL mode rewrites the header)
    char why [300];
    if (aip_schema_version_check (self->db, why, sizeof why) < 0) {
        snprintf (err, errlen, "cannot use %s: %s", self->args.db_path, why);
        return -1;
    }
    char *errmsg = NULL;
    if (sqlite3_exec (self->db, "PRAGMA journal_mode=WAL", NULL, NULL, &errmsg) != SQLITE_OK
    ||  sqlite3_exec (self->db, self->args.sync_normal ? "PRAGMA synchronous=NORMAL"
                                                       : "PRAGMA synchronous=FULL",
                      NULL, NULL, &errmsg) != SQLITE_OK
    ||  sqlite3_exec (self->db, "PRAGMA foreign_keys=ON", NULL, NULL, &errmsg) != SQLITE_OK) {
        snprintf (err, errlen, "cannot use %s: %s", self->args.db_path, errmsg);
        sqlite3_free (errmsg);
        return -1;
    }
    if (aip_schema_migrate (self->db, err, errlen))
        return -1;
    //  Room keys live here: owner only, and no old page of the log keeps
    //  what a migration replaced
    sqlite3_exec (self->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < 3; i++) {
        char path [4200];
        snprintf (path, sizeof path, "%s%s", self->args.db_path, suffixes [i]);
        chmod (path, 0600);
    }
    for (int i = 0; i < STMT_COUNT; i++)
        if (sqlite3_prepare_v3 (self->db, s_stmt_sql [i], -1, SQLITE_PREPARE_PERSISTENT,
                                &self->stmt [i], NULL) != SQLITE_OK) {
            snprintf (err, errlen, "cannot prepare a query: %s", sqlite3_errmsg (self->db));
            return -1;
        }
    return 0;
}

static void
s_storage_destroy (s_storage_t **self_p)
{
    s_storage_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize (self->stmt [i]);
    if (self->db)
        sqlite3_close (self->db);
    aip_worker_destroy (&self->worker);
    aip_pack_destroy (&self->reply);
    aip_pack_destroy (&self->scratch);
    zlistx_destroy (&self->out);
    zhashx_destroy (&self->peer_cache);
    zhashx_destroy (&self->member_cache);
    free (self);
    *self_p = NULL;
}

void
aip_storage (zsock_t *pipe, void *args)
{
    s_storage_t *self = (s_storage_t *) zmalloc (sizeof (s_storage_t));
    self->pipe = pipe;
    self->args = *(aip_storage_args_t *) args;
    if (self->args.slots <= 0)
        self->args.slots = AIP_MAX_BATCH;
    self->reply = aip_pack_new ();
    self->scratch = aip_pack_new ();
    self->out = zlistx_new ();
    zlistx_set_destructor (self->out, s_out_free);
    self->peer_cache = zhashx_new ();
    zhashx_set_destructor (self->peer_cache, s_peer_cached_free);
    self->member_cache = zhashx_new ();
    zhashx_set_duplicator (self->member_cache, NULL);
    zhashx_set_destructor (self->member_cache, NULL);

    char err [512];
    if (s_open (self, err, sizeof err)) {
        zsys_error ("storage: %s", err);
        fprintf (stderr, "storaged: %s\n", err);
        zsock_signal (pipe, 1);
        s_storage_destroy (&self);
        //  zactor_new does not pass the failure on: say it, then wait for
        //  $TERM as an actor must (zactor_destroy waits for our exit)
        zstr_send (pipe, "FAILED");
        char *command;
        while (!(command = zstr_recv (pipe)) && zmq_errno () == EINTR)
            ;
        free (command);
        return;
    }
    self->worker = aip_worker_new (self->args.endpoint, AIP_SVC_STORE, self->args.slots,
                                   "storaged");
    zsock_signal (pipe, 0);
    zsys_info ("storage: serving %s (schema v%d)", self->args.db_path, aip_schema_version ());

    while (!self->terminated) {
        zmq_pollitem_t items [] = {
            { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (aip_worker_sock (self->worker)), 0, ZMQ_POLLIN, 0 },
        };
        int rc = zmq_poll (items, 2, aip_worker_timeout (self->worker));
        if (rc < 0) {
            if (zmq_errno () == EINTR && !zsys_interrupted)
                continue;
            break;
        }
        if (items [0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                self->terminated = true;
            free (command);
        }
        if (items [1].revents & ZMQ_POLLIN)
            s_handle_batch (self);
        aip_worker_tick (self->worker);
    }
    if (self->worker)
        aip_worker_bye (self->worker);
    s_storage_destroy (&self);
    //  Migrations derive Fernet keys in this thread
    aip_crypto_thread_stop ();
}

//  ---------------------------------------------------------------------
//  Self-test: the storage actor with this test as its broker (a ROUTER)

#include "aip_home.h"

typedef struct {
    zsock_t *router;            //  we are the broker
    zframe_t *worker;           //  the storage worker's routing id
    bool answered [AIP_OP_COUNT];   //  ops whose success reply was checked
} s_test_broker_t;

//  Send the request in pk; its reply, a success checked against the op's
//  declared reply fields
static aip_reply_t
s_call (s_test_broker_t *tb, aip_pack_t *pk)
{
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_request_t req;
    uint64_t req_id;
    char req_err [256];
    int op = aip_request_decode (data, size, &req, &req_id, req_err, sizeof req_err) == 0
           ? (int) req.op : -1;
    aip_request_free (&req);
    zmsg_t *msg = aip_frames_pack_mem (tb->worker, AIP_FRAME_REQ, 1, NULL, data, size);
    zmsg_send (&msg, tb->router);
    aip_reply_t rep;
    while (true) {
        msg = zmsg_recv (tb->router);
        assert (msg);
        zframe_t *id = zmsg_pop (msg);
        zframe_destroy (&id);
        aip_frames_t frames;
        char err [256];
        assert (aip_frames_decode (&msg, AIP_FRAME_F_WORKER, &frames, err, sizeof err) == 0);
        bool reply = frames.type == AIP_FRAME_REPLY;
        if (reply)
            assert (aip_reply_decode (zframe_data (frames.body), zframe_size (frames.body), &rep,
                                      err, sizeof err) == 0);
        aip_frames_free (&frames);  //  heartbeats, events
        if (reply)
            break;
    }
    if (op >= 0 && rep.ok) {
        char err [320];
        if (aip_reply_check ((aip_op_t) op, rep.data, err, sizeof err)) {
            fprintf (stderr, "\n   %s\n", err);
            assert (false);
        }
        tb->answered [op] = true;
    }
    aip_pack_reset (pk);
    return rep;
}

static void
s_pack_test_peer (aip_pack_t *pk, const char *id, const char *name)
{
    aip_pack_key (pk, "peer");
    aip_pack_map (pk, 3);
    aip_pack_kstr (pk, "id", id);
    aip_pack_kstr (pk, "name", name);
    aip_pack_kstr (pk, "type", "human");
}

void
aip_storage_test (bool verbose)
{
    printf (" * aip_storage: ");
    char home [] = "/tmp/aip_storage_test_XXXXXX";
    assert (mkdtemp (home));
    char db [AIP_PATH_MAX];
    aip_home_path (home, "peers.db", db, sizeof db);
    s_test_broker_t tb;
    memset (&tb, 0, sizeof tb);
    s_test_broker_t *client = &tb;

    //  Every store op has its handler here, and no other op has one
    for (int op = 0; op < AIP_OP_COUNT; op++)
        assert ((s_handlers [op] != NULL) == (aip_op_service ((aip_op_t) op) == AIP_SVC_STORE));
    tb.router = zsock_new_router ("inproc://aip_storage_test");
    zsock_set_rcvtimeo (tb.router, 5000);
    aip_storage_args_t sargs = { db, "inproc://aip_storage_test", 0, false };
    zactor_t *storage = zactor_new (aip_storage, &sargs);
    assert (storage);
    zmsg_t *ready = zmsg_recv (tb.router);
    assert (ready);
    tb.worker = zmsg_pop (ready);
    aip_frames_t frames;
    char frame_err [128];
    assert (aip_frames_decode (&ready, AIP_FRAME_F_WORKER, &frames, frame_err,
                               sizeof frame_err) == 0);
    assert (frames.type == AIP_FRAME_READY);
    aip_frames_free (&frames);
    aip_pack_t *pk = aip_pack_new ();

    //  Create a room, with its creator joining it
    aip_request_begin (pk, 1, AIP_OP_ROOM_CREATE, 3);
    aip_pack_kstr (pk, "id", "room-000000000abc");
    aip_pack_kstr (pk, "name", "design");
    s_pack_test_peer (pk, "h-human-me", "me");
    aip_reply_t rep = s_call (client, pk);
    assert (rep.ok);
    assert (aip_obj_streq (aip_obj_get (rep.data, "mode"), "local"));
    aip_reply_free (&rep);

    //  Send, twice with the same id: stored once
    for (int i = 0; i < 2; i++) {
        aip_request_begin (pk, 2, AIP_OP_MSG_SEND, 4);
        aip_pack_kstr (pk, "room_id", "room-000000000abc");
        aip_pack_kstr (pk, "id", "msg-0000000000100000");
        aip_pack_kstr (pk, "content", "hello\nworld ✓");
        s_pack_test_peer (pk, "h-human-me", "me");
        rep = s_call (client, pk);
        assert (rep.ok);
        assert (aip_obj_streq (aip_obj_get (rep.data, "content"), "hello\nworld ✓"));
        assert (aip_obj_streq (aip_obj_get (rep.data, "peer_name"), "me"));
        aip_reply_free (&rep);
    }
    //  Unknown room: the message says how to list rooms
    aip_request_begin (pk, 3, AIP_OP_MSG_SEND, 3);
    aip_pack_kstr (pk, "room_id", "room-nope");
    aip_pack_kstr (pk, "content", "x");
    s_pack_test_peer (pk, "h-human-me", "me");
    rep = s_call (client, pk);
    assert (!rep.ok && streq (rep.code, AIP_ERR_NOT_FOUND) && strstr (rep.message, "room list"));
    if (verbose)
        printf ("\n   %s", rep.message);
    aip_reply_free (&rep);

    //  Read: the join system message, then the message, once
    aip_request_begin (pk, 4, AIP_OP_MSG_LIST, 1);
    aip_pack_kstr (pk, "room_id", "room-000000000abc");
    rep = s_call (client, pk);
    assert (rep.ok);
    const aip_obj_t *msgs = aip_obj_get (rep.data, "messages");
    assert (aip_obj_size (msgs) == 2);
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 0), "type"), "system"));
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 0), "content"), "joined the room"));
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 1), "id"), "msg-0000000000100000"));
    aip_reply_free (&rep);

    //  Pages: newest 3 of 10 more, then the 3 before them
    for (int i = 0; i < 10; i++) {
        char id [32], text [16];
        snprintf (id, sizeof id, "msg-00000000002%05d", i);
        snprintf (text, sizeof text, "m%d", i);
        aip_request_begin (pk, 10 + i, AIP_OP_MSG_SEND, 5);
        aip_pack_kstr (pk, "room_id", "room-000000000abc");
        aip_pack_kstr (pk, "id", id);
        aip_pack_kstr (pk, "content", text);
        aip_pack_kstr (pk, "created_at", "2030-01-01T00:00:00.000000+00:00");   //  all tied
        s_pack_test_peer (pk, "h-human-me", "me");
        rep = s_call (client, pk);
        assert (rep.ok);
        aip_reply_free (&rep);
    }
    aip_request_begin (pk, 30, AIP_OP_MSG_LIST, 2);
    aip_pack_kstr (pk, "room_id", "room-000000000abc");
    aip_pack_kint (pk, "limit", 3);
    rep = s_call (client, pk);
    msgs = aip_obj_get (rep.data, "messages");
    assert (aip_obj_size (msgs) == 3);
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 0), "content"), "m7"));
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 2), "content"), "m9"));
    aip_reply_free (&rep);
    aip_request_begin (pk, 31, AIP_OP_MSG_LIST, 4);
    aip_pack_kstr (pk, "room_id", "room-000000000abc");
    aip_pack_kint (pk, "limit", 3);
    aip_pack_kstr (pk, "before_ts", "2030-01-01T00:00:00.000000+00:00");
    aip_pack_kstr (pk, "before_id", "msg-0000000000200007");
    rep = s_call (client, pk);
    msgs = aip_obj_get (rep.data, "messages");
    assert (aip_obj_size (msgs) == 3);
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 0), "content"), "m4"));
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 2), "content"), "m6"));
    aip_reply_free (&rep);
    aip_request_begin (pk, 32, AIP_OP_MSG_LIST, 4);
    aip_pack_kstr (pk, "room_id", "room-000000000abc");
    aip_pack_kint (pk, "limit", 100);
    aip_pack_kstr (pk, "after_ts", "2030-01-01T00:00:00.000000+00:00");
    aip_pack_kstr (pk, "after_id", "msg-0000000000200007");
    rep = s_call (client, pk);
    msgs = aip_obj_get (rep.data, "messages");
    assert (aip_obj_size (msgs) == 2);
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 0), "content"), "m8"));
    aip_reply_free (&rep);

    //  Public rooms: a local message is queued for the relay in the same
    //  transaction; a remote one is not; members are not announced locally
    aip_request_begin (pk, 50, AIP_OP_ROOM_CREATE, 6);
    aip_pack_kstr (pk, "id", "room-00000000public");
    aip_pack_kstr (pk, "name", "pub");
    aip_pack_kstr (pk, "mode", "public");
    aip_pack_kstr (pk, "relay_url", "http://127.0.0.1:1");
    aip_pack_kstr (pk, "token", "t0k");
    s_pack_test_peer (pk, "h-human-me", "me");
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);
    aip_request_begin (pk, 51, AIP_OP_MSG_SEND, 3);
    aip_pack_kstr (pk, "room_id", "room-00000000public");
    aip_pack_kstr (pk, "content", "out");
    s_pack_test_peer (pk, "h-human-me", "me");
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_get_bool (rep.data, "queued", false));
    char queued_id [AIP_MAX_ID + 1];
    aip_obj_get_str (rep.data, "id", queued_id, sizeof queued_id, "");
    aip_reply_free (&rep);
    aip_request_begin (pk, 52, AIP_OP_MSG_SEND, 5);
    aip_pack_kstr (pk, "room_id", "room-00000000public");
    aip_pack_kstr (pk, "id", "remote01");
    aip_pack_kstr (pk, "content", "in");
    aip_pack_kbool (pk, "remote", true);
    s_pack_test_peer (pk, "far-peer", "far");
    rep = s_call (client, pk);
    assert (rep.ok && !aip_obj_get_bool (rep.data, "queued", false));
    aip_reply_free (&rep);
    aip_request_begin (pk, 53, AIP_OP_OUTBOX_LIST, 1);
    aip_pack_kint (pk, "after", 0);
    rep = s_call (client, pk);
    msgs = aip_obj_get (rep.data, "messages");
    assert (aip_obj_size (msgs) == 1);
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 0), "id"), queued_id));
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (msgs, 0), "token"), "t0k"));
    int64_t seq = aip_obj_get_int (aip_obj_at (msgs, 0), "seq", 0);
    assert (seq > 0);
    aip_reply_free (&rep);
    aip_request_begin (pk, 54, AIP_OP_OUTBOX_LIST, 1);
    aip_pack_kint (pk, "after", seq);
    rep = s_call (client, pk);
    assert (aip_obj_size (aip_obj_get (rep.data, "messages")) == 0);
    aip_reply_free (&rep);
    aip_request_begin (pk, 55, AIP_OP_OUTBOX_DONE, 1);
    aip_pack_kstr (pk, "id", queued_id);
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_get_bool (rep.data, "done", false));
    aip_reply_free (&rep);
    //  Cursors only move forward
    const char *cursors [] = { "2026-01-02T00:00:00.000Z", "2026-01-01T00:00:00.000Z" };
    for (int i = 0; i < 2; i++) {
        aip_request_begin (pk, 56 + i, AIP_OP_SYNC_CURSOR, 2);
        aip_pack_kstr (pk, "room_id", "room-00000000public");
        aip_pack_kstr (pk, "cursor", cursors [i]);
        rep = s_call (client, pk);
        assert (rep.ok);
        aip_reply_free (&rep);
    }
    //  What is not a cursor is refused: it would stop catch-up for good
    const char *not_cursors [] = { "zzzz", "9999-01-01T00:00:00.000Z", "12a", "" };
    for (int i = 0; i < 4; i++) {
        aip_request_begin (pk, 70 + i, AIP_OP_SYNC_CURSOR, 2);
        aip_pack_kstr (pk, "room_id", "room-00000000public");
        aip_pack_kstr (pk, "cursor", not_cursors [i]);
        rep = s_call (client, pk);
        assert (!rep.ok && streq (rep.code, AIP_ERR_INVALID));
        aip_reply_free (&rep);
    }
    aip_request_begin (pk, 58, AIP_OP_SYNC_ROOMS, 0);
    rep = s_call (client, pk);
    const aip_obj_t *rooms = aip_obj_get (rep.data, "rooms");
    assert (aip_obj_size (rooms) == 1);
    assert (aip_obj_streq (aip_obj_get (aip_obj_at (rooms, 0), "cursor"), cursors [0]));
    aip_reply_free (&rep);
    //  No local "joined the room" in a public room (the relay announces)
    aip_request_begin (pk, 59, AIP_OP_MSG_LIST, 1);
    aip_pack_kstr (pk, "room_id", "room-00000000public");
    rep = s_call (client, pk);
    msgs = aip_obj_get (rep.data, "messages");
    assert (aip_obj_size (msgs) == 2);
    for (size_t i = 0; i < 2; i++)
        assert (!aip_obj_streq (aip_obj_get (aip_obj_at (msgs, i), "type"), "system"));
    aip_reply_free (&rep);
    aip_request_begin (pk, 60, AIP_OP_ROOM_DELETE, 1);
    aip_pack_kstr (pk, "id", "room-00000000public");
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);

    //  Read cursors: the messages from others a peer has not seen, once
    aip_request_begin (pk, 69, AIP_OP_ROOM_CREATE, 2);
    aip_pack_kstr (pk, "id", "room-0000000unread");
    aip_pack_kstr (pk, "name", "unread");
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);
    aip_request_begin (pk, 70, AIP_OP_ROOM_JOIN, 2);
    aip_pack_kstr (pk, "room_id", "room-0000000unread");
    s_pack_test_peer (pk, "h-reader", "reader");
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);
    for (int i = 0; i < 3; i++) {
        aip_request_begin (pk, 71 + (uint64_t) i, AIP_OP_MSG_SEND, 3);
        aip_pack_kstr (pk, "room_id", "room-0000000unread");
        aip_pack_kstr (pk, "content", i == 1 ? "own" : "news");
        s_pack_test_peer (pk, i == 1 ? "h-reader" : "h-human-me", "x");
        rep = s_call (client, pk);
        assert (rep.ok);
        aip_reply_free (&rep);
    }
    //  Peek: two (its own and the join are not news), nothing moves
    for (int i = 0; i < 2; i++) {
        aip_request_begin (pk, 74, AIP_OP_MSG_UNREAD, 3);
        aip_pack_kstr (pk, "peer_id", "h-reader");
        aip_pack_kint (pk, "limit", 1);
        aip_pack_kbool (pk, "mark", i == 1);
        rep = s_call (client, pk);
        assert (rep.ok && aip_obj_size (aip_obj_get (rep.data, "messages")) == 1);
        assert (aip_obj_get_bool (rep.data, "more", false));
        aip_reply_free (&rep);
    }
    //  Marked one: one left, then none
    for (int i = 0; i < 2; i++) {
        aip_request_begin (pk, 75, AIP_OP_MSG_UNREAD, 3);
        aip_pack_kstr (pk, "peer_id", "h-reader");
        aip_pack_kstr (pk, "room_id", "room-0000000unread");
        aip_pack_kbool (pk, "mark", true);
        rep = s_call (client, pk);
        assert (rep.ok && aip_obj_size (aip_obj_get (rep.data, "messages")) == (i ? 0u : 1u));
        assert (!aip_obj_get_bool (rep.data, "more", true));
        aip_reply_free (&rep);
    }
    //  A read with mark_read moves it too
    aip_request_begin (pk, 76, AIP_OP_MSG_SEND, 3);
    aip_pack_kstr (pk, "room_id", "room-0000000unread");
    aip_pack_kstr (pk, "content", "later");
    s_pack_test_peer (pk, "h-human-me", "me");
    rep = s_call (client, pk);
    aip_reply_free (&rep);
    aip_request_begin (pk, 77, AIP_OP_MSG_LIST, 4);
    aip_pack_kstr (pk, "room_id", "room-0000000unread");
    aip_pack_kint (pk, "limit", 1);
    aip_pack_kbool (pk, "mark_read", true);
    s_pack_test_peer (pk, "h-reader", "reader");
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);
    aip_request_begin (pk, 78, AIP_OP_MSG_UNREAD, 1);
    aip_pack_kstr (pk, "peer_id", "h-reader");
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_size (aip_obj_get (rep.data, "messages")) == 0);
    aip_reply_free (&rep);
    //  A deleted room takes its cursors along
    aip_request_begin (pk, 79, AIP_OP_ROOM_DELETE, 1);
    aip_pack_kstr (pk, "id", "room-0000000unread");
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);

    //  Room list, members, delete
    aip_request_begin (pk, 40, AIP_OP_ROOM_PEERS, 1);
    aip_pack_kstr (pk, "id", "room-000000000abc");
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_size (aip_obj_get (rep.data, "peers")) == 1);
    aip_reply_free (&rep);
    aip_request_begin (pk, 41, AIP_OP_ROOM_DELETE, 1);
    aip_pack_kstr (pk, "id", "room-000000000abc");
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);
    aip_request_begin (pk, 42, AIP_OP_ROOM_LIST, 0);
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_size (aip_obj_get (rep.data, "rooms")) == 0);
    aip_reply_free (&rep);

    //  The ops not met above, each once, so that every store op's reply is
    //  held to its declared fields: an encrypted room, a LAN room with a
    //  token
    aip_request_begin (pk, 89, AIP_OP_ROOM_CREATE, 4);
    aip_pack_kstr (pk, "id", "room-00000000enc1");
    aip_pack_kstr (pk, "name", "secret");
    aip_pack_kstr (pk, "key", "key:test");
    s_pack_test_peer (pk, "h-human-me", "me");
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_get_bool (rep.data, "encrypted", false));
    aip_reply_free (&rep);
    aip_request_begin (pk, 90, AIP_OP_ROOM_CREATE, 5);
    aip_pack_kstr (pk, "id", "room-00000000hub1");
    aip_pack_kstr (pk, "name", "hub");
    aip_pack_kstr (pk, "mode", "lan");
    aip_pack_kstr (pk, "token", "tok-1");
    s_pack_test_peer (pk, "h-human-me", "me");
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);
    for (int with_key = 0; with_key < 2; with_key++) {
        aip_request_begin (pk, 91, AIP_OP_ROOM_GET, 2);
        aip_pack_kstr (pk, "id", "room-00000000enc1");
        aip_pack_kbool (pk, "with_key", with_key);
        rep = s_call (client, pk);
        assert (rep.ok && (aip_obj_get (rep.data, "key") != NULL) == with_key);
        aip_reply_free (&rep);
    }
    aip_request_begin (pk, 92, AIP_OP_PEER_REGISTER, 5);
    aip_pack_kstr (pk, "id", "h-ai-codex");
    aip_pack_kstr (pk, "name", "codex");
    aip_pack_kstr (pk, "type", "ai");
    aip_pack_kstr (pk, "tool", "codex");
    aip_pack_kint (pk, "port", 7000);
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_get_int (rep.data, "port", 0) == 7000);
    aip_reply_free (&rep);
    aip_request_begin (pk, 93, AIP_OP_PEER_LIST, 0);
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_size (aip_obj_get (rep.data, "peers")) >= 2);
    aip_reply_free (&rep);
    const char *signature = "5f2b9e0c5f2b9e0c5f2b9e0c5f2b9e0c5f2b9e0c5f2b9e0c5f2b9e0c5f2b9e0c";
    aip_request_begin (pk, 94, AIP_OP_MEMBER_CLAIM, 3);
    aip_pack_kstr (pk, "room_id", "room-00000000hub1");
    aip_pack_kstr (pk, "peer_id", "h-ai-codex");
    aip_pack_kstr (pk, "signature", signature);
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);
    aip_request_begin (pk, 95, AIP_OP_LAN_INFO, 1);
    aip_pack_kstr (pk, "room_id", "room-00000000hub1");
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_get_bool (rep.data, "has_token", false));
    aip_reply_free (&rep);
    aip_request_begin (pk, 96, AIP_OP_LAN_JOIN, 4);
    aip_pack_kstr (pk, "room_id", "room-00000000hub1");
    aip_pack_kstr (pk, "token", "tok-1");
    s_pack_test_peer (pk, "other-human-you", "you");
    aip_pack_kstr (pk, "peer_signature", signature);
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_get_bool (rep.data, "new_member", false));
    assert (aip_obj_streq (aip_obj_get (aip_obj_get (rep.data, "room"), "name"), "hub"));
    aip_reply_free (&rep);
    aip_request_begin (pk, 97, AIP_OP_LAN_POST, 4);
    aip_pack_kstr (pk, "room_id", "room-00000000hub1");
    aip_pack_kstr (pk, "token", "tok-1");
    aip_pack_key (pk, "message");
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "id", "msg-00000000hub0001");
    aip_pack_kstr (pk, "content", "from the LAN");
    aip_pack_kstr (pk, "created_at", "2026-12-04T19:00:00.000000Z");
    s_pack_test_peer (pk, "other-human-you", "you");
    aip_pack_kstr (pk, "peer_signature", signature);
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_streq (aip_obj_get (rep.data, "content"), "from the LAN"));
    aip_reply_free (&rep);
    //  lan.read: the page after the cursor for the token's holder only
    for (int right = 0; right < 2; right++) {
        aip_request_begin (pk, 102, AIP_OP_LAN_READ, 3);
        aip_pack_kstr (pk, "room_id", "room-00000000hub1");
        aip_pack_kstr (pk, "token", right ? "tok-1" : "tok-2");
        aip_pack_kint (pk, "after", 0);
        rep = s_call (client, pk);
        const aip_obj_t *messages = aip_obj_get (rep.data, "messages");
        const aip_obj_t *last = aip_obj_at (messages, aip_obj_size (messages) - 1);
        assert (right ? rep.ok && aip_obj_streq (aip_obj_get (last, "content"), "from the LAN")
                        && aip_obj_get_int (last, "seq", 0) > 0
                      : !rep.ok && streq (rep.code, AIP_ERR_INVALID));
        aip_reply_free (&rep);
    }
    aip_request_begin (pk, 98, AIP_OP_SESSION_PUT, 4);
    aip_pack_kstr (pk, "room_id", "room-00000000hub1");
    aip_pack_kstr (pk, "tool", "codex");
    aip_pack_kstr (pk, "session_id", "sess-1");
    aip_pack_kstr (pk, "seen_id", "msg-00000000hub0001");
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_streq (aip_obj_get (rep.data, "session_id"), "sess-1"));
    aip_reply_free (&rep);
    aip_request_begin (pk, 99, AIP_OP_SESSION_GET, 2);
    aip_pack_kstr (pk, "room_id", "room-00000000hub1");
    aip_pack_kstr (pk, "tool", "codex");
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_size (aip_obj_get (rep.data, "sessions")) == 1);
    aip_reply_free (&rep);
    aip_request_begin (pk, 100, AIP_OP_SESSION_PUT, 2);
    aip_pack_kstr (pk, "room_id", "room-00000000hub1");
    aip_pack_kstr (pk, "tool", "codex");
    rep = s_call (client, pk);
    assert (rep.ok && aip_obj_get_bool (rep.data, "forgotten", false));
    aip_reply_free (&rep);
    aip_request_begin (pk, 101, AIP_OP_USAGE_SUM, 0);
    rep = s_call (client, pk);
    assert (rep.ok);
    aip_reply_free (&rep);
    for (int op = 0; op < AIP_OP_COUNT; op++)
        if (aip_op_service ((aip_op_t) op) == AIP_SVC_STORE && !tb.answered [op]) {
            fprintf (stderr, "\n   %s: no success reply checked\n", aip_op_name ((aip_op_t) op));
            assert (false);
        }

    aip_pack_destroy (&pk);
    zactor_destroy (&storage);
    zframe_destroy (&tb.worker);
    zsock_destroy (&tb.router);
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", home);
    assert (system (cmd) == 0);
    printf ("OK\n");
}
