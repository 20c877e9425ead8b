/*  aip_schema.c — peers.db migrations by PRAGMA user_version. */
#include "aip_schema.h"
#include "aip_limits.h"
#include "aip_roomkey.h"

#include <sodium.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Version 1: the original's schema, as it wrote it
static const char s_v1 [] =
    "CREATE TABLE IF NOT EXISTS rooms (\n"
    "    id TEXT PRIMARY KEY,\n"
    "    name TEXT NOT NULL,\n"
    "    mode TEXT DEFAULT 'local' CHECK(mode IN ('local', 'lan', 'public')),\n"
    "    relay_url TEXT,\n"
    "    password TEXT,\n"
    "    created_at TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS peers (\n"
    "    id TEXT PRIMARY KEY,\n"
    "    name TEXT NOT NULL,\n"
    "    type TEXT NOT NULL CHECK(type IN ('ai', 'human')),\n"
    "    tool TEXT,\n"
    "    machine TEXT,\n"
    "    host TEXT,\n"
    "    port INTEGER,\n"
    "    last_seen TEXT,\n"
    "    capabilities TEXT DEFAULT '{}'\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS room_peers (\n"
    "    room_id TEXT REFERENCES rooms(id),\n"
    "    peer_id TEXT REFERENCES peers(id),\n"
    "    joined_at TEXT NOT NULL,\n"
    "    PRIMARY KEY (room_id, peer_id)\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS messages (\n"
    "    id TEXT PRIMARY KEY,\n"
    "    room_id TEXT NOT NULL REFERENCES rooms(id),\n"
    "    peer_id TEXT NOT NULL,\n"
    "    content TEXT NOT NULL,\n"
    "    type TEXT DEFAULT 'message' CHECK(type IN ('message', 'system', 'invite')),\n"
    "    metadata TEXT DEFAULT '{}',\n"
    "    created_at TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS idx_msg_room_time ON messages(room_id, created_at);\n";

static int
s_has_column (sqlite3 *db, const char *table, const char *column)
{
    char sql [128];
    snprintf (sql, sizeof sql, "PRAGMA table_info(%s)", table);
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return -1;
    int found = 0;
    while (sqlite3_step (stmt) == SQLITE_ROW)
        if (strcmp ((const char *) sqlite3_column_text (stmt, 1), column) == 0)
            found = 1;
    sqlite3_finalize (stmt);
    return found;
}

static int
s_step_v1 (sqlite3 *db, char **errmsg)
{
    int rc = sqlite3_exec (db, s_v1, NULL, NULL, errmsg);
    if (rc != SQLITE_OK)
        return rc;
    //  The original added rooms.token in its v0.6
    if (s_has_column (db, "rooms", "token") == 0)
        rc = sqlite3_exec (db, "ALTER TABLE rooms ADD COLUMN token TEXT", NULL, NULL, errmsg);
    return rc;
}

//  Version 2: history pages are ordered by (created_at, id); an index on
//  all three columns serves them without a sort. It replaces the
//  original's two-column index (which the original recreates if it runs
//  against this file again: harmless).
static int
s_step_v2 (sqlite3 *db, char **errmsg)
{
    return sqlite3_exec (db,
        "CREATE INDEX IF NOT EXISTS idx_msg_room_time_id ON messages(room_id, created_at, id);"
        "DROP INDEX IF EXISTS idx_msg_room_time;", NULL, NULL, errmsg);
}

//  Version 3: the original kept room passwords in plaintext; keep only the
//  key derived from each (its Fernet key: PBKDF2 of the password with the
//  room id as salt), and wipe the freed bytes (secure_delete)
static int
s_step_v3 (sqlite3 *db, char **errmsg)
{
    int rc = sqlite3_exec (db, "PRAGMA secure_delete = ON", NULL, NULL, errmsg);
    sqlite3_stmt *select = NULL, *update = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (db, "SELECT id, password FROM rooms WHERE password IS NOT NULL"
                                 " AND password NOT LIKE 'key:%'", -1, &select, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (db, "UPDATE rooms SET password = ?1 WHERE id = ?2", -1,
                                 &update, NULL);
    while (rc == SQLITE_OK && sqlite3_step (select) == SQLITE_ROW) {
        const char *room_id = (const char *) sqlite3_column_text (select, 0);
        const char *password = (const char *) sqlite3_column_text (select, 1);
        char stored [AIP_ROOMKEY_MAX], err [128];
        if (aip_roomkey_create (password, room_id, "fernet", 0, 0, stored, err, sizeof err)) {
            *errmsg = sqlite3_mprintf ("room %s: %s", room_id, err);
            rc = SQLITE_ERROR;
            break;
        }
        sqlite3_reset (update);
        sqlite3_bind_text (update, 1, stored, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text (update, 2, room_id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step (update) != SQLITE_DONE)
            rc = sqlite3_errcode (db);
        sodium_memzero (stored, sizeof stored);
    }
    sqlite3_finalize (select);
    sqlite3_finalize (update);
    return rc;
}

//  Version 4 (relay): the outbox of public rooms, local messages the relay
//  has not acknowledged yet (delivered in insertion order, kept across
//  restarts; seq never goes back, so relayd can read only what is new), and
//  per-room relay cursors: the newest relay created_at seen,
//  where catch-up resumes.
static int
s_step_relay (sqlite3 *db, char **errmsg)
{
    return sqlite3_exec (db,
        "CREATE TABLE IF NOT EXISTS outbox (\n"
        "    seq INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "    msg_id TEXT NOT NULL UNIQUE,\n"
        "    room_id TEXT NOT NULL,\n"
        "    queued_at TEXT NOT NULL\n"
        ");\n"
        "CREATE TABLE IF NOT EXISTS relay_cursors (\n"
        "    room_id TEXT PRIMARY KEY,\n"
        "    since TEXT NOT NULL\n"
        ");\n", NULL, NULL, errmsg);
}

//  Version 5 (LAN): the members a LAN hub let in from other machines, each
//  with the digest of its peer signature (as the relay keeps them), so that
//  nobody with the room token can speak as somebody else
static int
s_step_lan (sqlite3 *db, char **errmsg)
{
    return sqlite3_exec (db,
        "CREATE TABLE IF NOT EXISTS lan_members (\n"
        "    room_id TEXT NOT NULL,\n"
        "    peer_id TEXT NOT NULL,\n"
        "    sig_hash TEXT NOT NULL,\n"
        "    PRIMARY KEY (room_id, peer_id)\n"
        ");\n", NULL, NULL, errmsg);
}

//  Version 6 (usage): the token usage of AI answers (metadata.usage), summed
//  per room and tool as each answer is stored, so that 'ai-peer usage' reads
//  a few rows instead of parsing every message of a large database. A value
//  counts only when it is an integer (a number for cost) within its bound;
//  metadata that is not JSON is skipped, never an error (CASE evaluates
//  lazily: json_type is only called on valid JSON). Deleting a room drops
//  its sums. Messages already stored are summed once here.
#define S_STR(x) S_STR2 (x)
#define S_STR2(x) #x
#define USAGE_INT(key, max) \
    "CASE WHEN json_type (meta, '$.usage." key "') = 'integer'" \
    " AND json_extract (meta, '$.usage." key "') BETWEEN 0 AND " S_STR (max) \
    " THEN json_extract (meta, '$.usage." key "') ELSE 0 END"
#define USAGE_COST_OK \
    "json_type (meta, '$.usage.cost_usd') IN ('integer', 'real')" \
    " AND json_extract (meta, '$.usage.cost_usd') BETWEEN 0 AND " S_STR (AIP_USAGE_MAX_COST_USD)
#define USAGE_COST \
    "CASE WHEN " USAGE_COST_OK " THEN json_extract (meta, '$.usage.cost_usd') ELSE 0 END"
#define USAGE_HAS_COST "CASE WHEN " USAGE_COST_OK " THEN 1 ELSE 0 END"
#define USAGE_VALUES \
    "1 AS a, " USAGE_INT ("input_tokens", AIP_USAGE_MAX_TOKENS) " AS i, " \
    USAGE_INT ("output_tokens", AIP_USAGE_MAX_TOKENS) " AS o, " \
    USAGE_INT ("cache_read_tokens", AIP_USAGE_MAX_TOKENS) " AS cr, " \
    USAGE_INT ("cache_write_tokens", AIP_USAGE_MAX_TOKENS) " AS cw, " \
    USAGE_COST " AS c, " USAGE_HAS_COST " AS hc, " USAGE_INT ("duration_ms", AIP_USAGE_MAX_DURATION_MS) " AS d"
#define USAGE_IS_ANSWER(m) \
    "CASE WHEN json_valid (" m ") THEN json_type (" m ", '$.usage') = 'object' ELSE 0 END"
#define USAGE_COLUMNS \
    "room_id, tool, answers, input_tokens, output_tokens, cache_read_tokens," \
    " cache_write_tokens, cost_usd, costed, duration_ms"
#define USAGE_ADD \
    " ON CONFLICT (room_id, tool) DO UPDATE SET answers = answers + excluded.answers," \
    " input_tokens = input_tokens + excluded.input_tokens," \
    " output_tokens = output_tokens + excluded.output_tokens," \
    " cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens," \
    " cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens," \
    " cost_usd = cost_usd + excluded.cost_usd, costed = costed + excluded.costed," \
    " duration_ms = duration_ms + excluded.duration_ms"
//  The tool an answer is counted under: its peer's tool, else the peer id
#define USAGE_TOOL(peer_id) \
    "substr (coalesce ((SELECT tool FROM peers WHERE id = " peer_id "), " peer_id "), 1, 64)"

static int
s_step_usage (sqlite3 *db, char **errmsg)
{
    return sqlite3_exec (db,
        "CREATE TABLE IF NOT EXISTS usage_totals (\n"
        "    room_id TEXT NOT NULL,\n"
        "    tool TEXT NOT NULL,\n"
        "    answers INTEGER NOT NULL,\n"
        "    input_tokens INTEGER NOT NULL,\n"
        "    output_tokens INTEGER NOT NULL,\n"
        "    cache_read_tokens INTEGER NOT NULL,\n"
        "    cache_write_tokens INTEGER NOT NULL,\n"
        "    cost_usd REAL NOT NULL,\n"
        "    costed INTEGER NOT NULL,\n"
        "    duration_ms INTEGER NOT NULL,\n"
        "    PRIMARY KEY (room_id, tool)\n"
        ") WITHOUT ROWID;\n"
        "CREATE TRIGGER IF NOT EXISTS usage_on_insert AFTER INSERT ON messages"
        " WHEN new.metadata LIKE '%\"usage\"%' AND (" USAGE_IS_ANSWER ("new.metadata") ")"
        " BEGIN INSERT INTO usage_totals (" USAGE_COLUMNS ")"
        " SELECT new.room_id, " USAGE_TOOL ("new.peer_id") ", " USAGE_VALUES
        " FROM (SELECT new.metadata AS meta) WHERE 1" USAGE_ADD "; END;\n"
        "CREATE TRIGGER IF NOT EXISTS usage_on_room_delete AFTER DELETE ON rooms"
        " BEGIN DELETE FROM usage_totals WHERE room_id = old.id; END;\n"
        "INSERT INTO usage_totals (" USAGE_COLUMNS ")"
        " SELECT room_id, tool, sum (a), sum (i), sum (o), sum (cr), sum (cw), sum (c),"
        " sum (hc), sum (d) FROM (SELECT room_id, " USAGE_TOOL ("peer_id") " AS tool,"
        " " USAGE_VALUES " FROM (SELECT room_id, peer_id, metadata AS meta FROM messages"
        " WHERE metadata LIKE '%\"usage\"%') WHERE " USAGE_IS_ANSWER ("meta") ")"
        " WHERE 1 GROUP BY room_id, tool" USAGE_ADD ";\n", NULL, NULL, errmsg);
}

//  Version 7 (read cursors): per peer and room, the last message that peer
//  has seen (created_at, id), so an agent's inbox and wait_messages deliver
//  each message from others once. No row: everything since it joined.
static int
s_step_read_cursors (sqlite3 *db, char **errmsg)
{
    return sqlite3_exec (db,
        "CREATE TABLE IF NOT EXISTS read_cursors (\n"
        "    peer_id TEXT NOT NULL,\n"
        "    room_id TEXT NOT NULL,\n"
        "    read_ts TEXT NOT NULL,\n"
        "    read_id TEXT NOT NULL,\n"
        "    PRIMARY KEY (peer_id, room_id)\n"
        ");\n"
        "CREATE INDEX IF NOT EXISTS idx_room_peers_peer ON room_peers(peer_id);\n",
        NULL, NULL, errmsg);
}

//  Version 8 (AI sessions): per room and tool, the tool's resumable session
//  (spawnd resumes it and sends only what it has not seen: the messages
//  after seen_ts/seen_id, less its own answer_id). Deleting a room forgets
//  its sessions.
static int
s_step_sessions (sqlite3 *db, char **errmsg)
{
    return sqlite3_exec (db,
        "CREATE TABLE IF NOT EXISTS tool_sessions (\n"
        "    room_id TEXT NOT NULL,\n"
        "    tool TEXT NOT NULL,\n"
        "    session_id TEXT NOT NULL,\n"
        "    seen_ts TEXT NOT NULL,\n"
        "    seen_id TEXT NOT NULL,\n"
        "    answer_id TEXT NOT NULL,\n"
        "    updated_at TEXT NOT NULL,\n"
        "    PRIMARY KEY (room_id, tool)\n"
        ") WITHOUT ROWID;\n"
        "CREATE TRIGGER IF NOT EXISTS sessions_on_room_delete AFTER DELETE ON rooms"
        " BEGIN DELETE FROM tool_sessions WHERE room_id = old.id; END;\n",
        NULL, NULL, errmsg);
}

typedef int (s_step_fn) (sqlite3 *db, char **errmsg);
static s_step_fn *s_steps [] = {
    s_step_v1,
    s_step_v2,
    s_step_v3,
    s_step_relay,
    s_step_lan,
    s_step_usage,
    s_step_read_cursors,
    s_step_sessions,
};
#define STEP_COUNT ((int) (sizeof s_steps / sizeof s_steps [0]))

int
aip_schema_version (void)
{
    return STEP_COUNT;
}

static int
s_user_version (sqlite3 *db)
{
    sqlite3_stmt *stmt;
    int version = -1;
    if (sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &stmt, NULL) == SQLITE_OK) {
        if (sqlite3_step (stmt) == SQLITE_ROW)
            version = sqlite3_column_int (stmt, 0);
        sqlite3_finalize (stmt);
    }
    return version;
}

int
aip_schema_version_check (sqlite3 *db, char *err, size_t errlen)
{
    int version = s_user_version (db);
    if (version < 0) {
        snprintf (err, errlen, "cannot read the schema version: %s", sqlite3_errmsg (db));
        return -1;
    }
    if (version > STEP_COUNT) {
        snprintf (err, errlen, "peers.db has schema version %d, newer than this ai-peer "
                  "understands (%d): upgrade ai-peer", version, STEP_COUNT);
        return -1;
    }
    return version;
}

int
aip_schema_migrate (sqlite3 *db, char *err, size_t errlen)
{
    int version = aip_schema_version_check (db, err, errlen);
    if (version < 0)
        return -1;
    for (int step = version; step < STEP_COUNT; step++) {
        char *errmsg = NULL;
        int rc = sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, &errmsg);
        if (rc == SQLITE_OK)
            rc = s_steps [step] (db, &errmsg);
        if (rc == SQLITE_OK) {
            char sql [64];
            snprintf (sql, sizeof sql, "PRAGMA user_version = %d", step + 1);
            rc = sqlite3_exec (db, sql, NULL, NULL, &errmsg);
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_exec (db, "COMMIT", NULL, NULL, &errmsg);
        if (rc != SQLITE_OK) {
            snprintf (err, errlen, "migrating peers.db to version %d failed: %s", step + 1,
                      errmsg ? errmsg : sqlite3_errmsg (db));
            sqlite3_free (errmsg);
            sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

void
aip_schema_test (bool verbose)
{
    printf (" * aip_schema: ");
    char path [] = "/tmp/aip_schema_test_XXXXXX";
    int fd = mkstemp (path);
    assert (fd >= 0);
    close (fd);
    sqlite3 *db;
    assert (sqlite3_open (path, &db) == SQLITE_OK);
    //  A database as the original wrote it before v0.6 (no token column)
    const char *old =
        "CREATE TABLE rooms (id TEXT PRIMARY KEY, name TEXT NOT NULL, mode TEXT DEFAULT 'local',"
        " relay_url TEXT, password TEXT, created_at TEXT NOT NULL);"
        "INSERT INTO rooms VALUES ('room-aaaaaaaaaaaa', 'old', 'local', NULL, NULL,"
        " '2025-01-01T00:00:00+00:00');"
        "INSERT INTO rooms VALUES ('room-0a1b2c3d4e5f', 'secret', 'public', NULL, 'secret123',"
        " '2025-01-01T00:00:00+00:00');"
        //  An answer with usage from before the usage sums: counted once
        "CREATE TABLE messages (id TEXT PRIMARY KEY, room_id TEXT NOT NULL, peer_id TEXT NOT NULL,"
        " content TEXT NOT NULL, type TEXT DEFAULT 'message', metadata TEXT DEFAULT '{}',"
        " created_at TEXT NOT NULL);"
        "INSERT INTO messages VALUES ('msg-1', 'room-aaaaaaaaaaaa', 'h-codex', 'hi', 'message',"
        " '{\"usage\": {\"input_tokens\": 10, \"output_tokens\": 2}}', '2025-01-01T00:00:01Z');"
        "INSERT INTO messages VALUES ('msg-2', 'room-aaaaaaaaaaaa', 'h-codex', 'hi', 'message',"
        " '{\"usage\": broken', '2025-01-01T00:00:02Z');";
    assert (sqlite3_exec (db, old, NULL, NULL, NULL) == SQLITE_OK);
    char err [256];
    assert (aip_schema_migrate (db, err, sizeof err) == 0);
    assert (s_user_version (db) == aip_schema_version ());
    assert (s_has_column (db, "rooms", "token") == 1);
    sqlite3_stmt *stmt;
    assert (sqlite3_prepare_v2 (db, "SELECT name FROM rooms", -1, &stmt, NULL) == SQLITE_OK);
    assert (sqlite3_step (stmt) == SQLITE_ROW);
    assert (strcmp ((const char *) sqlite3_column_text (stmt, 0), "old") == 0);
    sqlite3_finalize (stmt);
    //  The plaintext password became the original's derived key
    assert (sqlite3_prepare_v2 (db, "SELECT password FROM rooms WHERE id = 'room-0a1b2c3d4e5f'",
                                -1, &stmt, NULL) == SQLITE_OK);
    assert (sqlite3_step (stmt) == SQLITE_ROW);
    assert (strcmp ((const char *) sqlite3_column_text (stmt, 0),
                    "key:fernet:fbp6mRBFAWWDrnGhgEK6dOz1d5tto1ajA8HDnq46pzE=") == 0);
    sqlite3_finalize (stmt);
    //  Usage sums: the old answer was counted under its peer id (no peer
    //  row); new answers add up as they are stored; metadata that is not
    //  JSON, a usage that is not an object and absurd values never stop a
    //  message from being stored, and count as nothing
    const char *answers =
        "INSERT INTO peers (id, name, type, tool) VALUES ('h-claude', 'claude', 'ai', 'claude');"
        "INSERT INTO messages VALUES ('msg-3', 'room-aaaaaaaaaaaa', 'h-claude', 'a', 'message',"
        " '{\"usage\": {\"input_tokens\": 100, \"output_tokens\": 7, \"cost_usd\": 0.25,"
        " \"duration_ms\": 900}}', '2025-01-01T00:00:03Z');"
        "INSERT INTO messages VALUES ('msg-4', 'room-aaaaaaaaaaaa', 'h-claude', 'a', 'message',"
        " '{\"usage\": {\"input_tokens\": -1, \"output_tokens\": 1e30, \"cost_usd\": \"x\","
        " \"cache_read_tokens\": 5000000000000}}', '2025-01-01T00:00:04Z');"
        "INSERT INTO messages VALUES ('msg-5', 'room-aaaaaaaaaaaa', 'h-claude', 'a', 'message',"
        " 'not json \"usage\"', '2025-01-01T00:00:05Z');"
        "INSERT INTO messages VALUES ('msg-6', 'room-aaaaaaaaaaaa', 'h-claude', 'a', 'message',"
        " '{\"usage\": [1, 2]}', '2025-01-01T00:00:06Z');"
        "INSERT INTO messages (id, room_id, peer_id, content, created_at) VALUES ('msg-7',"
        " 'room-aaaaaaaaaaaa', 'h-claude', 'a', '2025-01-01T00:00:07Z');";
    assert (sqlite3_exec (db, answers, NULL, NULL, NULL) == SQLITE_OK);
    assert (sqlite3_prepare_v2 (db, "SELECT tool, answers, input_tokens, output_tokens,"
                                " cache_read_tokens, cost_usd, costed, duration_ms"
                                " FROM usage_totals ORDER BY tool", -1, &stmt, NULL) == SQLITE_OK);
    assert (sqlite3_step (stmt) == SQLITE_ROW);
    assert (strcmp ((const char *) sqlite3_column_text (stmt, 0), "claude") == 0);
    assert (sqlite3_column_int (stmt, 1) == 2);
    assert (sqlite3_column_int (stmt, 2) == 100);
    assert (sqlite3_column_int (stmt, 3) == 7);
    assert (sqlite3_column_int (stmt, 4) == 0);
    assert (sqlite3_column_double (stmt, 5) == 0.25);
    assert (sqlite3_column_int (stmt, 6) == 1);
    assert (sqlite3_column_int (stmt, 7) == 900);
    assert (sqlite3_step (stmt) == SQLITE_ROW);
    assert (strcmp ((const char *) sqlite3_column_text (stmt, 0), "h-codex") == 0);
    assert (sqlite3_column_int (stmt, 1) == 1);
    assert (sqlite3_column_int (stmt, 2) == 10);
    assert (sqlite3_step (stmt) == SQLITE_DONE);
    sqlite3_finalize (stmt);
    //  A deleted room takes its sums along
    assert (sqlite3_exec (db, "DELETE FROM rooms WHERE id = 'room-aaaaaaaaaaaa'", NULL, NULL,
                          NULL) == SQLITE_OK);
    assert (sqlite3_prepare_v2 (db, "SELECT count (*) FROM usage_totals", -1, &stmt, NULL)
            == SQLITE_OK);
    assert (sqlite3_step (stmt) == SQLITE_ROW && sqlite3_column_int (stmt, 0) == 0);
    sqlite3_finalize (stmt);
    //  Idempotent
    assert (aip_schema_migrate (db, err, sizeof err) == 0);
    //  From the future: refused
    assert (sqlite3_exec (db, "PRAGMA user_version = 999", NULL, NULL, NULL) == SQLITE_OK);
    assert (aip_schema_migrate (db, err, sizeof err) == -1);
    assert (aip_schema_version_check (db, err, sizeof err) == -1 && strstr (err, "999"));
    if (verbose)
        printf ("(%s) ", err);
    sqlite3_close (db);
    unlink (path);
    printf ("OK\n");
}
