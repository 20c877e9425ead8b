/*  aip_proto.c — the operation table, argument schemas, op/service/frame
    lookup, and request/reply envelopes packed and decoded on top of the
    codec (aip_codec.c, which alone sees msgpack). */
#include "aip_proto.h"
#include "aip_util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Argument schemas

#define F_END { NULL, AIP_T_STR, false, 0, NULL, NULL }

static const aip_field_t s_no_fields [] = { F_END };

//  A participant as carried in requests: registered and joined on the way
static const aip_field_t s_peer_fields [] = {
    { "id",      AIP_T_ID,  true,  AIP_MAX_ID,   NULL, NULL },
    { "name",    AIP_T_STR, true,  AIP_MAX_NAME, NULL, NULL },
    { "type",    AIP_T_STR, true,  8,            "ai|human", NULL },
    { "tool",    AIP_T_STR, false, AIP_MAX_NAME, NULL, NULL },
    { "machine", AIP_T_STR, false, AIP_MAX_NAME, NULL, NULL },
    { "host",    AIP_T_STR, false, AIP_MAX_NAME, NULL, NULL },
    { "port",    AIP_T_INT, false, 65535,        NULL, NULL },
    F_END
};

static const aip_field_t s_room_id_fields [] = {
    { "id", AIP_T_ID, true, AIP_MAX_ID, NULL, NULL },
    F_END
};

static const aip_field_t s_room_create_fields [] = {
    { "id",        AIP_T_ID,  false, AIP_MAX_ID,   NULL, NULL },
    { "name",      AIP_T_STR, true,  AIP_MAX_NAME, NULL, NULL },
    { "mode",      AIP_T_STR, false, 8,            "local|lan|public", NULL },
    { "relay_url", AIP_T_STR, false, AIP_MAX_URL,  NULL, NULL },
    { "token",     AIP_T_STR, false, AIP_MAX_NAME, NULL, NULL },
    { "key",       AIP_T_STR, false, AIP_MAX_NAME, NULL, NULL },   //  aip_roomkey
    { "peer",      AIP_T_MAP, false, 0,            NULL, s_peer_fields },
    F_END
};

static const aip_field_t s_room_get_fields [] = {
    { "id",       AIP_T_ID,   true,  AIP_MAX_ID, NULL, NULL },
    { "with_key", AIP_T_BOOL, false, 0,          NULL, NULL },      //  for the owner's CLI
    F_END
};

static const aip_field_t s_room_join_fields [] = {
    { "room_id", AIP_T_ID,  true, AIP_MAX_ID, NULL, NULL },
    { "peer",    AIP_T_MAP, true, 0,          NULL, s_peer_fields },
    F_END
};

static const aip_field_t s_msg_send_fields [] = {
    { "room_id",    AIP_T_ID,  true,  AIP_MAX_ID,       NULL, NULL },
    { "id",         AIP_T_ID,  false, AIP_MAX_ID,       NULL, NULL },
    { "content",    AIP_T_STR, true,  AIP_MAX_CONTENT_WIRE, NULL, NULL },
    { "type",       AIP_T_STR, false, 8,                "message|system|invite", NULL },
    { "metadata",   AIP_T_STR, false, AIP_MAX_METADATA, NULL, NULL },
    { "created_at", AIP_T_STR, false, AIP_MAX_TIME,     NULL, NULL },
    { "peer",       AIP_T_MAP, true,  0,                NULL, s_peer_fields },
    //  true when relayd inserts a message that came from the relay: it is
    //  not queued for delivery, and a new member is not announced locally
    { "remote",     AIP_T_BOOL, false, 0,               NULL, NULL },
    //  true when the sender did not encrypt the content: an encrypted
    //  room refuses it with "encrypted" (a plain room's send is then one
    //  round trip: no key lookup first)
    { "plain",      AIP_T_BOOL, false, 0,               NULL, NULL },
    F_END
};

//  Messages waiting for delivery to the relay (oldest first)
static const aip_field_t s_outbox_list_fields [] = {
    { "limit",   AIP_T_INT, false, AIP_MAX_PAGE, NULL, NULL },
    //  only entries queued after this seq (0: all)
    { "after",   AIP_T_INT, false, INT64_MAX,    NULL, NULL },
    F_END
};

static const aip_field_t s_outbox_done_fields [] = {
    { "id", AIP_T_ID, true, AIP_MAX_ID, NULL, NULL },
    F_END
};

//  The newest relay created_at seen in a room (only moves forward)
static const aip_field_t s_sync_cursor_fields [] = {
    { "room_id", AIP_T_ID,  true, AIP_MAX_ID,   NULL, NULL },
    { "cursor",  AIP_T_STR, true, AIP_MAX_TIME, NULL, NULL },
    F_END
};

//  Join a public room on its relay; with name, also create the local room
//  (only once the relay accepted the join: nothing half-written)
static const aip_field_t s_relay_join_fields [] = {
    { "room_id",   AIP_T_ID,   true,  AIP_MAX_ID,   NULL, NULL },
    { "relay_url", AIP_T_STR,  true,  AIP_MAX_URL,  NULL, NULL },
    { "token",     AIP_T_STR,  true,  AIP_MAX_NAME, NULL, NULL },
    { "name",      AIP_T_STR,  false, AIP_MAX_NAME, NULL, NULL },
    { "probe",     AIP_T_BOOL, false, 0,            NULL, NULL },
    { "key",       AIP_T_STR,  false, AIP_MAX_NAME, NULL, NULL },   //  encrypted room
    { "peer",      AIP_T_MAP,  true,  0,            NULL, s_peer_fields },
    //  only ask whether the hub has the room (a LAN hub found by discovery)
    { "info_only", AIP_T_BOOL, false, 0,            NULL, NULL },
    F_END
};

//  Deliver a queued message now; answer when the relay took it or wait_ms
//  passed, whichever is first
static const aip_field_t s_relay_push_fields [] = {
    { "room_id", AIP_T_ID,  true,  AIP_MAX_ID,           NULL, NULL },
    { "id",      AIP_T_ID,  true,  AIP_MAX_ID,           NULL, NULL },
    { "wait_ms", AIP_T_INT, false, AIP_RELAY_MAX_WAIT_MS, NULL, NULL },
    F_END
};

static const aip_field_t s_msg_list_fields [] = {
    { "room_id",   AIP_T_ID,  true,  AIP_MAX_ID,   NULL, NULL },
    { "limit",     AIP_T_INT, false, AIP_MAX_PAGE, NULL, NULL },
    { "before_ts", AIP_T_STR, false, AIP_MAX_TIME, NULL, NULL },
    { "before_id", AIP_T_STR, false, AIP_MAX_ID,   NULL, NULL },
    { "after_ts",  AIP_T_STR, false, AIP_MAX_TIME, NULL, NULL },
    { "after_id",  AIP_T_STR, false, AIP_MAX_ID,   NULL, NULL },
    //  messages inserted after this seq (a LAN hub's order), each with its seq
    { "after_seq", AIP_T_INT, false, INT64_MAX,    NULL, NULL },
    { "peer",      AIP_T_MAP, false, 0,            NULL, s_peer_fields },
    //  with peer: the page is what that peer has now seen (its read cursor
    //  in the room moves to the page's last message)
    { "mark_read", AIP_T_BOOL, false, 0,           NULL, NULL },
    F_END
};

//  Messages from others a peer has not seen (its read cursors), in the
//  rooms it joined or one of them; mark: they are seen now
static const aip_field_t s_msg_unread_fields [] = {
    { "peer_id", AIP_T_ID,   true,  AIP_MAX_ID,   NULL, NULL },
    { "room_id", AIP_T_ID,   false, AIP_MAX_ID,   NULL, NULL },
    { "limit",   AIP_T_INT,  false, AIP_MAX_PAGE, NULL, NULL },
    { "mark",    AIP_T_BOOL, false, 0,            NULL, NULL },
    F_END
};

//  LAN mode on a running broker (room create --lan, daemon start --lan)
static const aip_field_t s_lan_start_fields [] = {
    { "port", AIP_T_INT, false, 65535, NULL, NULL },
    F_END
};

//  LAN hub operations, called by other machines over CURVE TCP: each one
//  names the room and (but lan.info) carries its token
static const aip_field_t s_lan_info_fields [] = {
    { "room_id", AIP_T_ID, true, AIP_MAX_ID, NULL, NULL },
    F_END
};

//  peer_signature: as on the relay, hex(HMAC-SHA256(peer secret, room id));
//  the hub keeps its digest from the peer's first join and holds every
//  later join and post of that peer id to it
static const aip_field_t s_lan_join_fields [] = {
    { "room_id",        AIP_T_ID,  true, AIP_MAX_ID,   NULL, NULL },
    { "token",          AIP_T_STR, true, AIP_MAX_NAME, NULL, NULL },
    { "peer",           AIP_T_MAP, true, 0,            NULL, s_peer_fields },
    { "peer_signature", AIP_T_STR, true, 128,          NULL, NULL },
    F_END
};

//  A LAN hub lets peer_id in with this signature: the first claim of a peer
//  id that is not already a member here registers it, later ones must match
static const aip_field_t s_member_claim_fields [] = {
    { "room_id",   AIP_T_ID,  true, AIP_MAX_ID, NULL, NULL },
    { "peer_id",   AIP_T_ID,  true, AIP_MAX_ID, NULL, NULL },
    { "signature", AIP_T_STR, true, 128,        NULL, NULL },
    F_END
};

//  An AI tool's resumable session in a room (spawnd): which session, and
//  the last message it has seen (seen_ts, seen_id) and its own last answer.
//  session.put without session_id forgets the session.
static const aip_field_t s_session_get_fields [] = {
    { "room_id",    AIP_T_ID,  true,  AIP_MAX_ID,   NULL, NULL },
    { "tool",       AIP_T_STR, true,  AIP_MAX_NAME, NULL, NULL },
    F_END
};

static const aip_field_t s_session_put_fields [] = {
    { "room_id",    AIP_T_ID,  true,  AIP_MAX_ID,   NULL, NULL },
    { "tool",       AIP_T_STR, true,  AIP_MAX_NAME, NULL, NULL },
    { "session_id", AIP_T_STR, false, 128,          NULL, NULL },
    { "seen_ts",    AIP_T_STR, false, AIP_MAX_TIME, NULL, NULL },
    { "seen_id",    AIP_T_STR, false, AIP_MAX_ID,   NULL, NULL },
    { "answer_id",  AIP_T_STR, false, AIP_MAX_ID,   NULL, NULL },
    F_END
};

//  Token usage of AI answers, per tool: of one room, or (no room_id) of all
static const aip_field_t s_usage_sum_fields [] = {
    { "room_id",   AIP_T_ID,  false, AIP_MAX_ID, NULL, NULL },
    F_END
};

//  web.start: the port webd listens on (127.0.0.1; 0: any free port)
static const aip_field_t s_web_start_fields [] = {
    { "port", AIP_T_INT, true, 65535, NULL, NULL },
    F_END
};

static const aip_field_t s_lan_message_fields [] = {
    { "id",         AIP_T_ID,  true,  AIP_MAX_ID,           NULL, NULL },
    { "content",    AIP_T_STR, true,  AIP_MAX_CONTENT_WIRE, NULL, NULL },
    //  no "system": only a hub announces members
    { "type",       AIP_T_STR, false, 8,                    "message|invite", NULL },
    { "created_at", AIP_T_STR, true,  AIP_MAX_TIME,         NULL, NULL },
    { "peer",       AIP_T_MAP, true,  0,                    NULL, s_peer_fields },
    F_END
};

static const aip_field_t s_lan_post_fields [] = {
    { "room_id",        AIP_T_ID,  true, AIP_MAX_ID,   NULL, NULL },
    { "token",          AIP_T_STR, true, AIP_MAX_NAME, NULL, NULL },
    { "message",        AIP_T_MAP, true, 0,            NULL, s_lan_message_fields },
    { "peer_signature", AIP_T_STR, true, 128,          NULL, NULL },
    F_END
};

//  Messages after seq `after` (the hub's insertion order); with wait_ms the
//  hub holds the request until there is one or wait_ms passed (push)
static const aip_field_t s_lan_fetch_fields [] = {
    { "room_id", AIP_T_ID,  true,  AIP_MAX_ID,       NULL, NULL },
    { "token",   AIP_T_STR, true,  AIP_MAX_NAME,     NULL, NULL },
    { "after",   AIP_T_INT, false, INT64_MAX,        NULL, NULL },
    { "limit",   AIP_T_INT, false, AIP_MAX_PAGE,     NULL, NULL },
    { "wait_ms", AIP_T_INT, false, AIP_LAN_MAX_WAIT_MS, NULL, NULL },
    F_END
};

//  Run an AI tool with a room's history; it answers in the room
static const aip_field_t s_spawn_run_fields [] = {
    { "tool",    AIP_T_STR, true,  AIP_MAX_NAME,           NULL, NULL },
    { "room_id", AIP_T_ID,  true,  AIP_MAX_ID,             NULL, NULL },
    { "context", AIP_T_STR, false, AIP_MAX_CONTENT,        NULL, NULL },
    { "timeout", AIP_T_INT, false, AIP_MAX_TOOL_TIMEOUT_S, NULL, NULL },
    { "cwd",     AIP_T_STR, false, 4096,                   NULL, NULL },
    { "model",   AIP_T_STR, false, AIP_MAX_NAME,           NULL, NULL },
    { "msg_id",  AIP_T_ID,  false, AIP_MAX_ID,             NULL, NULL },
    { "history", AIP_T_INT, false, AIP_MAX_PROMPT_HISTORY, NULL, NULL },
    //  start a new tool session; a password room's tool may keep its own
    { "fresh",   AIP_T_BOOL, false, 0,                     NULL, NULL },
    { "sessions", AIP_T_BOOL, false, 0,                    NULL, NULL },
    //  USD the tool may spend (claude --max-budget-usd)
    { "max_cost", AIP_T_STR, false, 16,                    NULL, NULL },
    F_END
};

//  The envelope's routing facts (aip_route_t): bounded as the arguments
//  they describe
static const aip_field_t s_route_fields [] = {
    { "tool",    AIP_T_STR,  false, AIP_MAX_NAME, NULL, NULL },
    { "room_id", AIP_T_ID,   false, AIP_MAX_ID,   NULL, NULL },
    { "async",   AIP_T_BOOL, false, 0,            NULL, NULL },
    F_END
};

//  An asynchronous job held by the broker
static const aip_field_t s_job_id_fields [] = {
    { "id", AIP_T_ID, true, AIP_MAX_ID, NULL, NULL },
    F_END
};

//  ---------------------------------------------------------------------
//  Reply schemas: the fields of each op's success data. Strings are held
//  to the reply's size only; nil stands for absent (a NULL column).

#define R_STR(name, required)   { name, AIP_T_STR,  required, AIP_MAX_REPLY, NULL, NULL }
#define R_ID(name, required)    { name, AIP_T_ID,   required, AIP_MAX_ID,    NULL, NULL }
#define R_INT(name, required)   { name, AIP_T_INT,  required, INT64_MAX,     NULL, NULL }
#define R_BOOL(name, required)  { name, AIP_T_BOOL, required, 0,             NULL, NULL }
#define R_ROWS(name, row)       { name, AIP_T_ARRAY, true,    AIP_MAX_ELEMENTS, NULL, row }

//  A room as the store answers it (never its password)
#define R_ROOM_FIELDS(required) \
    R_ID ("id", required), R_STR ("name", required), \
    { "mode", AIP_T_STR, required, 8, "local|lan|public", NULL }, \
    R_STR ("relay_url", false), R_STR ("created_at", required), R_STR ("token", false), \
    R_BOOL ("encrypted", false)

static const aip_field_t s_reply_room [] = { R_ROOM_FIELDS (true), F_END };

//  room.get: the room, or with_key (an encrypted room) {room, key}
static const aip_field_t s_reply_room_get [] = {
    R_ROOM_FIELDS (false),
    { "room", AIP_T_MAP, false, 0, NULL, s_reply_room },
    R_STR ("key", false),
    F_END
};

static const aip_field_t s_reply_rooms [] = { R_ROWS ("rooms", s_reply_room), F_END };

static const aip_field_t s_reply_peer [] = {
    R_ID ("id", true), R_STR ("name", true),
    { "type", AIP_T_STR, true, 8, "ai|human", NULL },
    R_STR ("tool", false), R_STR ("machine", false), R_STR ("host", false),
    R_INT ("port", false), R_STR ("last_seen", false), R_STR ("capabilities", false),
    F_END
};

static const aip_field_t s_reply_peers [] = { R_ROWS ("peers", s_reply_peer), F_END };

//  A message; seq only where a LAN hub's order was asked for (after_seq)
#define R_MESSAGE_FIELDS \
    R_ID ("id", true), R_ID ("room_id", true), R_ID ("peer_id", true), \
    R_STR ("content", true), \
    { "type", AIP_T_STR, true, 8, "message|system|invite", NULL }, \
    R_STR ("metadata", false), R_STR ("created_at", true), R_STR ("peer_name", false), \
    R_STR ("peer_tool", false), R_STR ("peer_type", false)

static const aip_field_t s_reply_message [] = { R_MESSAGE_FIELDS, R_INT ("seq", false), F_END };

//  msg.send, lan.post: the stored message; queued for a relay or hub:
//  {queued: true, lan}
static const aip_field_t s_reply_sent [] = {
    R_MESSAGE_FIELDS, R_BOOL ("queued", false), R_BOOL ("lan", false), F_END
};

static const aip_field_t s_reply_msg_list [] = {
    R_ROWS ("messages", s_reply_message), R_BOOL ("truncated", false), F_END
};

static const aip_field_t s_reply_msg_unread [] = {
    R_ROWS ("messages", s_reply_message), R_BOOL ("more", true), F_END
};

//  An outbox entry: the message and where it goes
static const aip_field_t s_reply_outbox_entry [] = {
    R_ID ("id", true), R_ID ("room_id", true), R_STR ("relay_url", false),
    R_STR ("token", false), R_ID ("peer_id", true), R_STR ("peer_name", false),
    R_STR ("peer_tool", false), R_STR ("peer_type", false), R_STR ("content", true),
    R_STR ("type", true), R_STR ("created_at", true), R_INT ("seq", true),
    F_END
};

static const aip_field_t s_reply_outbox_list [] = {
    R_ROWS ("messages", s_reply_outbox_entry), F_END
};

static const aip_field_t s_reply_sync_room [] = {
    R_ID ("id", true), R_STR ("relay_url", false), R_STR ("token", false),
    R_STR ("cursor", false), F_END
};

static const aip_field_t s_reply_sync_rooms [] = { R_ROWS ("rooms", s_reply_sync_room), F_END };

static const aip_field_t s_reply_usage [] = {
    R_STR ("tool", true), R_INT ("answers", true), R_INT ("input_tokens", false),
    R_INT ("output_tokens", false), R_INT ("cache_read_tokens", false),
    R_INT ("cache_write_tokens", false), { "cost_usd", AIP_T_NUM, false, 0, NULL, NULL },
    R_INT ("costed", false), R_INT ("duration_ms", false), R_INT ("rooms", false),
    F_END
};

static const aip_field_t s_reply_usage_sum [] = { R_ROWS ("by_tool", s_reply_usage), F_END };

static const aip_field_t s_reply_session [] = {
    R_STR ("session_id", true), R_STR ("seen_ts", false), R_STR ("seen_id", false),
    R_STR ("answer_id", false), R_STR ("updated_at", false), F_END
};

static const aip_field_t s_reply_session_get [] = { R_ROWS ("sessions", s_reply_session), F_END };
//  session.put: the session kept, or {forgotten: true}
static const aip_field_t s_reply_session_put [] = {
    R_STR ("session_id", false), R_BOOL ("forgotten", false), F_END
};

static const aip_field_t s_reply_room_delete [] = { R_ID ("deleted", true), F_END };
static const aip_field_t s_reply_room_join [] = {
    R_ID ("room_id", true), R_ID ("peer_id", true), R_BOOL ("joined", true),
    R_BOOL ("new_member", true), F_END
};
static const aip_field_t s_reply_outbox_done [] = { R_BOOL ("done", true), F_END };
static const aip_field_t s_reply_sync_cursor [] = { R_BOOL ("saved", true), F_END };
static const aip_field_t s_reply_member_claim [] = { R_BOOL ("ok", true), F_END };

//  lan.info: what a joining member needs (an aip1 room: its key's
//  parameters, never the key)
static const aip_field_t s_reply_lan_info [] = {
    R_ID ("room_id", true), R_STR ("name", true), R_STR ("created_at", true),
    R_BOOL ("encrypted", true), R_BOOL ("has_token", true), R_STR ("cipher", false),
    R_STR ("kdf", false), F_END
};

static const aip_field_t s_reply_hub_room [] = {
    R_ID ("id", true), R_STR ("name", true), R_STR ("created_at", true),
    R_BOOL ("encrypted", true), F_END
};

//  lan.join: room.join's answer and the room
static const aip_field_t s_reply_lan_join [] = {
    R_ID ("room_id", true), R_ID ("peer_id", true), R_BOOL ("joined", true),
    R_BOOL ("new_member", true), { "room", AIP_T_MAP, true, 0, NULL, s_reply_hub_room },
    F_END
};

//  The broker's own ops (brokerd/aip_broker.c, aip_jobs.c, aip_lanmode.c)
static const aip_field_t s_reply_ping [] = { R_STR ("pong", true), F_END };

//  daemon.status's LAN block (aip_lanmode_pack_status)
static const aip_field_t s_reply_lan_status [] = {
    R_STR ("address", true), R_INT ("port", true), R_STR ("public_key", true),
    R_STR ("worker_token", true), R_INT ("peers_heard", true), F_END
};

static const aip_field_t s_reply_daemon_job [] = {
    R_STR ("what", true), R_INT ("running_s", true), F_END
};

//  A row of daemon.status's daemons (aip_workers_pack_daemons): brokerd's
//  own {name, pid, state, queued}; a supervised child with restarts (a
//  spawnd also its job and tools); a worker we did not start with remote
#define R_TOOLS { "tools", AIP_T_ARRAY, false, AIP_MAX_ELEMENTS, NULL, NULL }
static const aip_field_t s_reply_daemon [] = {
    R_STR ("name", true), R_INT ("pid", true),
    { "state", AIP_T_STR, true, 16, "running|ready|starting|restarting", NULL },
    R_INT ("queued", false), { "job", AIP_T_MAP, false, 0, NULL, s_reply_daemon_job },
    R_TOOLS, R_BOOL ("remote", false),
    { "service", AIP_T_STR, false, 8, "broker|store|spawn|relay", NULL },
    R_INT ("restarts", false), R_INT ("inflight", false), R_INT ("processed", false),
    F_END
};

//  daemon.status: lan only while LAN mode is on
static const aip_field_t s_reply_daemon_status [] = {
    R_BOOL ("running", true), R_INT ("workers", true),
    { "lan", AIP_T_MAP, false, 0, NULL, s_reply_lan_status },
    R_INT ("pid", true), { "mode", AIP_T_STR, true, 8, "local|lan", NULL },
    R_INT ("uptime_s", true), R_INT ("requests", true), R_ROWS ("daemons", s_reply_daemon),
    F_END
};

static const aip_field_t s_reply_daemon_stop [] = {
    { "status", AIP_T_STR, true, 8, "stopping", NULL }, R_INT ("pid", true), F_END
};

static const aip_field_t s_reply_job [] = {
    R_ID ("id", true), R_STR ("what", true), R_STR ("state", true),
    { "elapsed_s", AIP_T_NUM, true, 0, NULL, NULL }, F_END
};

static const aip_field_t s_reply_job_list [] = { R_ROWS ("jobs", s_reply_job), F_END };

static const aip_field_t s_reply_job_cancel [] = {
    R_ID ("id", true), R_STR ("state", true), R_BOOL ("cancelled", true), F_END
};

static const aip_field_t s_reply_lan_start [] = {
    { "mode", AIP_T_STR, true, 8, "lan", NULL }, R_STR ("address", true),
    R_INT ("port", true), R_STR ("public_key", true), F_END
};

//  A machine heard on the LAN (aip_lanmode_pack_peers)
static const aip_field_t s_reply_lan_peer [] = {
    R_STR ("id", true), R_STR ("machine", true), R_STR ("user", true),
    R_STR ("address", true), R_INT ("port", true), R_STR ("public_key", true),
    R_STR ("tools", true), R_INT ("version", true), R_STR ("last_seen", true),
    { "status", AIP_T_STR, true, 8, "active|gone", NULL }, F_END
};

static const aip_field_t s_reply_lan_peers [] = {
    R_BOOL ("lan", true), R_ROWS ("peers", s_reply_lan_peer), F_END
};

//  web.start, web.stop: pid 0 where no webd runs
static const aip_field_t s_reply_web_start [] = {
    R_INT ("port", true), R_INT ("pid", true), F_END
};

static const aip_field_t s_reply_web_stop [] = {
    { "status", AIP_T_STR, true, 16, "stopped|not running", NULL }, R_INT ("pid", true), F_END
};

//  relayd's ops (relayd/aip_relay.c, aip_relay_hub.c). relay.join: only
//  {remote_info} when it was asked for the hub's info alone; else the room
//  created here (a join with a name), joined, relay and remote_info (nil:
//  the hub gave none), history_error when the history did not come
static const aip_field_t s_reply_relay_join [] = {
    R_ID ("joined", false), R_STR ("relay", false),
    { "remote_info", AIP_T_MAP, false, 0, NULL, NULL },
    { "room", AIP_T_MAP, false, 0, NULL, s_reply_room }, R_STR ("history_error", false),
    F_END
};

//  relay.push: refused (with error) when the hub will never take it
static const aip_field_t s_reply_relay_push [] = {
    R_BOOL ("delivered", true), R_BOOL ("refused", false), R_STR ("error", false), F_END
};

static const aip_field_t s_reply_relay_status [] = {
    R_BOOL ("ok", true), R_BOOL ("websocket", true), R_INT ("queued", true),
    R_STR ("cursor", true), R_BOOL ("lan", true), F_END
};

//  lan.fetch: lan.read's page and the seq to fetch after next
static const aip_field_t s_reply_lan_fetch [] = {
    R_ROWS ("messages", s_reply_message), R_INT ("seq", true), F_END
};

//  spawnd's ops (spawnd/aip_spawner.c). An answer posted as sent: what the
//  tool said, the message it became, usage when the tool reports it
#define R_SPAWN_ANSWER(required) \
    R_STR ("tool", required), R_STR ("response", required), R_ID ("room", required), \
    { "mentions", AIP_T_ARRAY, false, AIP_MAX_ELEMENTS, NULL, NULL }, \
    { "elapsed_s", AIP_T_NUM, required, 0, NULL, NULL }, \
    { "usage", AIP_T_MAP, false, 0, NULL, NULL }, R_STR ("session_id", false), \
    R_BOOL ("resumed", required), R_STR ("warning", false), R_ID ("message_id", false), \
    R_ID ("peer_id", false), R_INT ("history_dropped", false)

//  job.wait: the answer of its job (only spawn.run runs as one)
static const aip_field_t s_reply_spawn_answer [] = { R_SPAWN_ANSWER (true), F_END };

//  spawn.run: the answer, or (async) the broker's {job, status, what}
static const aip_field_t s_reply_spawn_run [] = {
    R_SPAWN_ANSWER (false), R_ID ("job", false),
    { "status", AIP_T_STR, false, 8, "queued", NULL }, R_STR ("what", false), F_END
};

static const aip_field_t s_reply_discovered [] = {
    R_STR ("tool", true), R_STR ("binary", true), R_STR ("machine", true),
    R_STR ("version", true), R_BOOL ("configured", true), F_END
};

//  spawn.discover: warning when the tools' config could not be read
static const aip_field_t s_reply_spawn_discover [] = {
    R_ROWS ("discovered", s_reply_discovered), R_STR ("warning", false), F_END
};

//  The reply column, beside the table (as the flags are)
static const aip_field_t *const s_op_reply [AIP_OP_COUNT] = {
    [AIP_OP_ROOM_CREATE]   = s_reply_room,
    [AIP_OP_ROOM_GET]      = s_reply_room_get,
    [AIP_OP_ROOM_LIST]     = s_reply_rooms,
    [AIP_OP_ROOM_DELETE]   = s_reply_room_delete,
    [AIP_OP_ROOM_PEERS]    = s_reply_peers,
    [AIP_OP_ROOM_JOIN]     = s_reply_room_join,
    [AIP_OP_PEER_REGISTER] = s_reply_peer,
    [AIP_OP_PEER_LIST]     = s_reply_peers,
    [AIP_OP_MSG_SEND]      = s_reply_sent,
    [AIP_OP_MSG_LIST]      = s_reply_msg_list,
    [AIP_OP_OUTBOX_LIST]   = s_reply_outbox_list,
    [AIP_OP_OUTBOX_DONE]   = s_reply_outbox_done,
    [AIP_OP_SYNC_ROOMS]    = s_reply_sync_rooms,
    [AIP_OP_SYNC_CURSOR]   = s_reply_sync_cursor,
    [AIP_OP_MEMBER_CLAIM]  = s_reply_member_claim,
    [AIP_OP_USAGE_SUM]     = s_reply_usage_sum,
    [AIP_OP_MSG_UNREAD]    = s_reply_msg_unread,
    [AIP_OP_SESSION_GET]   = s_reply_session_get,
    [AIP_OP_SESSION_PUT]   = s_reply_session_put,
    [AIP_OP_LAN_INFO]      = s_reply_lan_info,
    [AIP_OP_LAN_JOIN]      = s_reply_lan_join,
    [AIP_OP_LAN_POST]      = s_reply_sent,
    [AIP_OP_LAN_READ]      = s_reply_msg_list,     //  msg.list's page after the cursor
    [AIP_OP_PING]          = s_reply_ping,
    [AIP_OP_DAEMON_STATUS] = s_reply_daemon_status,
    [AIP_OP_DAEMON_STOP]   = s_reply_daemon_stop,
    [AIP_OP_JOB_LIST]      = s_reply_job_list,
    [AIP_OP_JOB_CANCEL]    = s_reply_job_cancel,
    [AIP_OP_LAN_START]     = s_reply_lan_start,
    [AIP_OP_LAN_PEERS]     = s_reply_lan_peers,
    [AIP_OP_WEB_START]     = s_reply_web_start,
    [AIP_OP_WEB_STOP]      = s_reply_web_stop,
    [AIP_OP_RELAY_JOIN]    = s_reply_relay_join,
    [AIP_OP_RELAY_PUSH]    = s_reply_relay_push,
    [AIP_OP_RELAY_STATUS]  = s_reply_relay_status,
    [AIP_OP_LAN_FETCH]     = s_reply_lan_fetch,
    [AIP_OP_SPAWN_RUN]     = s_reply_spawn_run,
    [AIP_OP_SPAWN_DISCOVER] = s_reply_spawn_discover,
    [AIP_OP_JOB_WAIT]      = s_reply_spawn_answer,
};

typedef struct {
    const char *name;
    aip_svc_t service;
    const aip_field_t *fields;
} s_op_info_t;

static const s_op_info_t s_ops [AIP_OP_COUNT] = {
#define AIP_OP_INFO(e, name, svc, fields) { name, svc, fields },
    AIP_OPS (AIP_OP_INFO)
#undef AIP_OP_INFO
};

static const char *s_svc_names [AIP_SVC_COUNT] = { "broker", "store", "spawn", "relay" };

const char *
aip_op_name (aip_op_t op)
{
    return op < AIP_OP_COUNT ? s_ops [op].name : "?";
}

aip_svc_t
aip_op_service (aip_op_t op)
{
    assert (op < AIP_OP_COUNT);
    return s_ops [op].service;
}

const aip_field_t *
aip_op_fields (aip_op_t op)
{
    assert (op < AIP_OP_COUNT);
    return s_ops [op].fields;
}

bool
aip_op_remote (aip_op_t op)
{
    return (aip_op_flags (op) & AIP_OP_F_REMOTE) != 0;
}

//  The flags column of the operation table (kept beside it, so that a new
//  row of AIP_OPS needs no flags: it has none)
static const unsigned s_op_flags [AIP_OP_COUNT] = {
    [AIP_OP_PING]       = AIP_OP_F_REMOTE_WORKER,
    [AIP_OP_ROOM_GET]   = AIP_OP_F_REMOTE_WORKER,
    [AIP_OP_MSG_SEND]   = AIP_OP_F_REMOTE_WORKER,
    [AIP_OP_MSG_LIST]   = AIP_OP_F_REMOTE_WORKER | AIP_OP_F_PAGED,
    [AIP_OP_OUTBOX_LIST] = AIP_OP_F_PAGED,
    [AIP_OP_MSG_UNREAD] = AIP_OP_F_PAGED,
    [AIP_OP_LAN_INFO]   = AIP_OP_F_REMOTE,
    [AIP_OP_LAN_JOIN]   = AIP_OP_F_REMOTE,
    [AIP_OP_LAN_POST]   = AIP_OP_F_REMOTE,
    [AIP_OP_LAN_FETCH]  = AIP_OP_F_REMOTE | AIP_OP_F_PAGED,
    //  lan.fetch's token check and page, asked by relayd (which holds the
    //  fetch): never from another machine
    [AIP_OP_LAN_READ]   = AIP_OP_F_PAGED,
};

static const struct {
    const char *name;
    unsigned from;
} s_frames [AIP_FRAME_COUNT] = {
#define AIP_FRAME_ROW(e, name, from) { name, from },
    AIP_FRAMES (AIP_FRAME_ROW)
#undef AIP_FRAME_ROW
};

const char *
aip_frame_name (aip_frame_t frame)
{
    assert (frame < AIP_FRAME_COUNT);
    return s_frames [frame].name;
}

int
aip_frame_lookup (const char *name)
{
    for (int i = 0; name && i < AIP_FRAME_COUNT; i++)
        if (strcmp (s_frames [i].name, name) == 0)
            return i;
    return -1;
}

bool
aip_frame_from_worker (const char *name)
{
    int frame = aip_frame_lookup (name);
    return frame >= 0 && (s_frames [frame].from & AIP_FRAME_F_WORKER);
}

unsigned
aip_op_flags (aip_op_t op)
{
    assert (op < AIP_OP_COUNT);
    return s_op_flags [op];
}

const aip_field_t *
aip_op_reply_fields (aip_op_t op)
{
    assert (op < AIP_OP_COUNT);
    return s_op_reply [op];
}

int
aip_reply_check (aip_op_t op, const aip_obj_t *data, char *err, size_t errlen)
{
    const aip_field_t *fields = aip_op_reply_fields (op);
    if (!fields) {
        snprintf (err, errlen, "%s declares no reply fields", aip_op_name (op));
        return -1;
    }
    char path [64];
    snprintf (path, sizeof path, "%s reply", aip_op_name (op));
    return aip_schema_check (fields, data, path, err, errlen);
}

int
aip_op_lookup (const char *name, size_t len)
{
    for (int i = 0; i < AIP_OP_COUNT; i++)
        if (strlen (s_ops [i].name) == len && memcmp (s_ops [i].name, name, len) == 0)
            return i;
    return -1;
}

const char *
aip_svc_name (aip_svc_t svc)
{
    return svc < AIP_SVC_COUNT ? s_svc_names [svc] : "?";
}

int
aip_svc_lookup (const char *name, size_t len)
{
    for (int i = 0; i < AIP_SVC_COUNT; i++)
        if (strlen (s_svc_names [i]) == len && memcmp (s_svc_names [i], name, len) == 0)
            return i;
    return -1;
}

//  ---------------------------------------------------------------------
//  Schema validation

static bool
s_enum_has (const char *values, const char *s, size_t len)
{
    const char *p = values;
    while (*p) {
        const char *bar = strchr (p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen (p);
        if (n == len && memcmp (p, s, len) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

int
aip_schema_check (const aip_field_t *fields, const aip_obj_t *map, const char *path,
                  char *err, size_t errlen)
{
    if (!aip_obj_is_map (map)) {
        snprintf (err, errlen, "%s must be a map", path);
        return -1;
    }
    //  Every key must be a known field, given once
    for (size_t i = 0; i < aip_obj_size (map); i++) {
        size_t klen;
        const char *key = aip_obj_str (aip_obj_key_at (map, i), &klen);
        if (!key) {
            snprintf (err, errlen, "%s has a key that is not a string", path);
            return -1;
        }
        const aip_field_t *f = fields;
        while (f->name && !(strlen (f->name) == klen && memcmp (f->name, key, klen) == 0))
            f++;
        if (!f->name) {
            snprintf (err, errlen, "%s has unknown field '%.*s'", path,
                      (int) (klen > 64 ? 64 : klen), key);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            size_t jlen = 0;
            const char *other = aip_obj_str (aip_obj_key_at (map, j), &jlen);
            if (jlen == klen && memcmp (other, key, klen) == 0) {
                snprintf (err, errlen, "%s repeats field '%s'", path, f->name);
                return -1;
            }
        }
    }
    for (const aip_field_t *f = fields; f->name; f++) {
        const aip_obj_t *v = aip_obj_get (map, f->name);
        if (aip_obj_is_nil (v)) {
            if (f->required) {
                snprintf (err, errlen, "%s: missing field '%s'", path, f->name);
                return -1;
            }
            continue;
        }
        size_t len;
        const char *s;
        switch (f->type) {
            case AIP_T_STR:
                s = aip_obj_str (v, &len);
                if (!s) {
                    snprintf (err, errlen, "%s: field '%s' must be a string", path, f->name);
                    return -1;
                }
                if ((int64_t) len > f->max) {
                    snprintf (err, errlen, "%s: field '%s' is %zu bytes, the limit is %lld",
                              path, f->name, len, (long long) f->max);
                    return -1;
                }
                if (!aip_utf8_valid (s, len)) {
                    snprintf (err, errlen, "%s: field '%s' is not valid UTF-8", path, f->name);
                    return -1;
                }
                if (f->values && !s_enum_has (f->values, s, len)) {
                    snprintf (err, errlen, "%s: field '%s' must be one of %s", path,
                              f->name, f->values);
                    return -1;
                }
                break;
            case AIP_T_ID:
                s = aip_obj_str (v, &len);
                if (!s || !aip_id_valid (s, len)) {
                    snprintf (err, errlen, "%s: field '%s' must be an id of 1-64 letters, "
                              "digits, '_' or '-'", path, f->name);
                    return -1;
                }
                break;
            case AIP_T_INT:
                if (!aip_obj_is_int (v) || aip_obj_int (v) < 0 || aip_obj_int (v) > f->max) {
                    snprintf (err, errlen, "%s: field '%s' must be an integer from 0 to %lld",
                              path, f->name, (long long) f->max);
                    return -1;
                }
                break;
            case AIP_T_BOOL:
                if (!aip_obj_is_bool (v)) {
                    snprintf (err, errlen, "%s: field '%s' must be true or false", path, f->name);
                    return -1;
                }
                break;
            case AIP_T_MAP: {
                char sub [96];
                snprintf (sub, sizeof sub, "%s.%s", path, f->name);
                if (!f->sub && !aip_obj_is_map (v)) {
                    snprintf (err, errlen, "%s must be a map", sub);
                    return -1;
                }
                if (f->sub && aip_schema_check (f->sub, v, sub, err, errlen))
                    return -1;
                break;
            }
            case AIP_T_ARRAY:
                if (!aip_obj_is_array (v) || (int64_t) aip_obj_size (v) > f->max) {
                    snprintf (err, errlen, "%s: field '%s' must be an array of at most %lld",
                              path, f->name, (long long) f->max);
                    return -1;
                }
                for (size_t i = 0; f->sub && i < aip_obj_size (v); i++) {
                    char sub [96];
                    snprintf (sub, sizeof sub, "%s.%s[%zu]", path, f->name, i);
                    if (aip_schema_check (f->sub, aip_obj_at (v, i), sub, err, errlen))
                        return -1;
                }
                break;
            case AIP_T_NUM:
                if (!aip_obj_is_int (v) && !aip_obj_is_real (v)) {
                    snprintf (err, errlen, "%s: field '%s' must be a number", path, f->name);
                    return -1;
                }
                break;
        }
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Requests and replies

void
aip_request_begin (aip_pack_t *pk, uint64_t id, aip_op_t op, size_t nargs)
{
    aip_pack_map (pk, 4);
    aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
    aip_pack_kint (pk, "id", (int64_t) id);
    aip_pack_kstr (pk, "op", aip_op_name (op));
    aip_pack_key (pk, "a");
    aip_pack_map (pk, nargs);
}

void
aip_request_begin_auth (aip_pack_t *pk, uint64_t id, aip_op_t op, size_t nargs, const char *auth)
{
    if (!auth || !*auth) {
        aip_request_begin (pk, id, op, nargs);
        return;
    }
    aip_pack_map (pk, 5);
    aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
    aip_pack_kint (pk, "id", (int64_t) id);
    aip_pack_kstr (pk, "op", aip_op_name (op));
    aip_pack_kstr (pk, "auth", auth);
    aip_pack_key (pk, "a");
    aip_pack_map (pk, nargs);
}

void
aip_request_begin_route (aip_pack_t *pk, uint64_t id, aip_op_t op, size_t nargs,
                         const char *tool, const char *room_id, bool async)
{
    bool has_tool = tool && *tool, has_room = room_id && *room_id;
    size_t facts = (has_tool ? 1 : 0) + (has_room ? 1 : 0) + (async ? 1 : 0);
    if (!facts) {
        aip_request_begin (pk, id, op, nargs);
        return;
    }
    aip_pack_map (pk, 5);
    aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
    aip_pack_kint (pk, "id", (int64_t) id);
    aip_pack_kstr (pk, "op", aip_op_name (op));
    aip_pack_key (pk, "route");
    aip_pack_map (pk, facts);
    if (has_tool)
        aip_pack_kstr (pk, "tool", tool);
    if (has_room)
        aip_pack_kstr (pk, "room_id", room_id);
    if (async)
        aip_pack_kbool (pk, "async", true);
    aip_pack_key (pk, "a");
    aip_pack_map (pk, nargs);
}

//  The envelope's route map, checked against its schema, into req->route
static int
s_route_decode (const aip_obj_t *root, aip_route_t *route, char *err, size_t errlen)
{
    const aip_obj_t *map = aip_obj_get (root, "route");
    if (aip_obj_is_nil (map))
        return 0;
    if (aip_schema_check (s_route_fields, map, "route", err, errlen))
        return -1;
    //  Bounded by the schema: the copies are whole
    aip_obj_get_str (map, "tool", route->tool, sizeof route->tool, "");
    aip_obj_get_str (map, "room_id", route->room_id, sizeof route->room_id, "");
    route->async = aip_obj_get_bool (map, "async", false);
    return 0;
}

static int
s_check_envelope (const aip_obj_t *root, char *err, size_t errlen)
{
    if (!aip_obj_is_map (root)) {
        snprintf (err, errlen, "message is not a map");
        return -1;
    }
    const aip_obj_t *v = aip_obj_get (root, "v");
    if (!aip_obj_is_int (v)) {
        snprintf (err, errlen, "message has no protocol version");
        return -1;
    }
    if (aip_obj_int (v) != AIP_PROTO_VERSION) {
        snprintf (err, errlen, "protocol version %lld is not supported (this is version %d)",
                  (long long) aip_obj_int (v), AIP_PROTO_VERSION);
        return -1;
    }
    return 0;
}

int
aip_request_decode (const void *data, size_t size, aip_request_t *req, uint64_t *id_out,
                    char *err, size_t errlen)
{
    memset (req, 0, sizeof *req);
    if (id_out)
        *id_out = 0;
    req->doc = aip_doc_decode (data, size, err, errlen);
    if (!req->doc)
        return -1;
    const aip_obj_t *root = aip_doc_root (req->doc);
    const aip_obj_t *id = aip_obj_get (root, "id");
    if (aip_obj_is_int (id) && aip_obj_int (id) >= 0) {
        req->id = (uint64_t) aip_obj_int (id);
        if (id_out)
            *id_out = req->id;
    }
    if (s_check_envelope (root, err, errlen))
        goto malformed;
    if (!aip_obj_is_int (id) || aip_obj_int (id) < 0) {
        snprintf (err, errlen, "request has no id");
        goto malformed;
    }
    size_t oplen;
    const char *opname = aip_obj_str (aip_obj_get (root, "op"), &oplen);
    if (!opname) {
        snprintf (err, errlen, "request has no op");
        goto malformed;
    }
    int op = aip_op_lookup (opname, oplen);
    if (op < 0) {
        snprintf (err, errlen, "unknown operation '%.*s'", (int) (oplen > 64 ? 64 : oplen), opname);
        goto malformed;
    }
    req->op = (aip_op_t) op;
    const aip_obj_t *args = aip_obj_get (root, "a");
    if (!args) {
        args = aip_obj_empty_map ();
    }
    if (aip_schema_check (aip_op_fields (req->op), args, s_ops [op].name, err, errlen))
        goto malformed;
    req->args = args;
    if (s_route_decode (root, &req->route, err, errlen))
        goto malformed;
    const aip_obj_t *auth = aip_obj_get (root, "auth");
    size_t authlen;
    if (aip_obj_str (auth, &authlen) && authlen <= AIP_MAX_NAME)
        req->auth = auth;
    return 0;
malformed:
    aip_request_free (req);
    return -1;
}

void
aip_request_free (aip_request_t *req)
{
    aip_doc_destroy (&req->doc);
    req->args = NULL;
}

const aip_obj_t *
aip_req_arg (const aip_request_t *req, const char *name)
{
    const aip_obj_t *v = aip_obj_get (req->args, name);
    return aip_obj_is_nil (v) ? NULL : v;
}

void
aip_reply_ok_begin (aip_pack_t *pk, uint64_t id)
{
    aip_pack_map (pk, 4);
    aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
    aip_pack_kint (pk, "id", (int64_t) id);
    aip_pack_kbool (pk, "ok", true);
    aip_pack_key (pk, "data");
}

void
aip_reply_error (aip_pack_t *pk, uint64_t id, const char *code, const char *message)
{
    aip_pack_map (pk, 4);
    aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
    aip_pack_kint (pk, "id", (int64_t) id);
    aip_pack_kbool (pk, "ok", false);
    aip_pack_key (pk, "error");
    aip_pack_map (pk, 2);
    aip_pack_kstr (pk, "code", code);
    aip_pack_kstr (pk, "message", message);
}

int
aip_reply_decode (const void *data, size_t size, aip_reply_t *rep, char *err, size_t errlen)
{
    memset (rep, 0, sizeof *rep);
    rep->doc = aip_doc_decode (data, size, err, errlen);
    if (!rep->doc)
        return -1;
    const aip_obj_t *root = aip_doc_root (rep->doc);
    if (s_check_envelope (root, err, errlen))
        goto malformed;
    const aip_obj_t *id = aip_obj_get (root, "id");
    const aip_obj_t *ok = aip_obj_get (root, "ok");
    if (!aip_obj_is_int (id) || !aip_obj_is_bool (ok)) {
        snprintf (err, errlen, "reply has no id or ok");
        goto malformed;
    }
    rep->id = (uint64_t) aip_obj_int (id);
    rep->ok = aip_obj_bool (ok);
    if (rep->ok)
        rep->data = aip_obj_get (root, "data");
    else {
        const aip_obj_t *error = aip_obj_get (root, "error");
        aip_obj_get_str (error, "code", rep->code, sizeof rep->code, "");
        size_t len;
        const char *msg = aip_obj_str (aip_obj_get (error, "message"), &len);
        if (!msg) {
            snprintf (err, errlen, "error reply has no message");
            goto malformed;
        }
        //  A NUL-terminated copy that lives as long as the document
        rep->message = aip_doc_strndup (rep->doc, msg, len);
        if (!rep->message) {
            snprintf (err, errlen, "out of memory");
            goto malformed;
        }
    }
    return 0;
malformed:
    aip_reply_free (rep);
    return -1;
}

void
aip_reply_free (aip_reply_t *rep)
{
    aip_doc_destroy (&rep->doc);
    rep->data = NULL;
    rep->message = NULL;
}

//  ---------------------------------------------------------------------
//  Self-test

void
aip_proto_test (bool verbose)
{
    printf (" * aip_proto: ");
    char err [256];
    aip_pack_t *pk = aip_pack_new ();

    //  The flags column: another machine reaches only the lan.* ops, a
    //  remote worker only what it reads and posts with; no broker op is
    //  remote (the hub's own work is the store's, lan.fetch is relayd's),
    //  and what is paged is served by the store or relay
    for (int op = 0; op < AIP_OP_COUNT; op++) {
        unsigned flags = aip_op_flags ((aip_op_t) op);
        const char *name = aip_op_name ((aip_op_t) op);
        assert (!(flags & AIP_OP_F_REMOTE) || strncmp (name, "lan.", 4) == 0);
        assert (!(flags & AIP_OP_F_REMOTE) || aip_op_service ((aip_op_t) op) == AIP_SVC_STORE
                                            || aip_op_service ((aip_op_t) op) == AIP_SVC_RELAY);
        assert (!(flags & AIP_OP_F_PAGED) || aip_op_service ((aip_op_t) op) != AIP_SVC_BROKER);
        assert (aip_op_remote ((aip_op_t) op) == ((flags & AIP_OP_F_REMOTE) != 0));
    }
    assert (aip_op_remote (AIP_OP_LAN_POST) && !aip_op_remote (AIP_OP_MSG_SEND));
    assert (aip_op_flags (AIP_OP_MSG_SEND) & AIP_OP_F_REMOTE_WORKER);
    assert (!(aip_op_flags (AIP_OP_ROOM_DELETE) & AIP_OP_F_REMOTE_WORKER));
    //  The worker frames, by name and back
    for (int f = 0; f < AIP_FRAME_COUNT; f++)
        assert (aip_frame_lookup (aip_frame_name ((aip_frame_t) f)) == f);
    assert (aip_frame_lookup ("NOPE") == -1 && aip_frame_lookup (NULL) == -1);
    assert (aip_frame_from_worker ("READY") && aip_frame_from_worker ("HB"));
    assert (!aip_frame_from_worker ("REQ") && !aip_frame_from_worker ("CANCEL"));

    //  A request round trip
    aip_request_begin (pk, 42, AIP_OP_MSG_SEND, 3);
    aip_pack_kstr (pk, "room_id", "room-0a1b2c3d4e5f");
    aip_pack_kstr (pk, "content", "hello ✓");
    aip_pack_key (pk, "peer");
    aip_pack_map (pk, 3);
    aip_pack_kstr (pk, "id", "host-human-me");
    aip_pack_kstr (pk, "name", "me");
    aip_pack_kstr (pk, "type", "human");
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_request_t req;
    uint64_t id;
    int rc = aip_request_decode (data, size, &req, &id, err, sizeof err);
    if (rc && verbose)
        printf ("%s\n", err);
    assert (rc == 0);
    assert (req.id == 42 && req.op == AIP_OP_MSG_SEND);
    assert (aip_obj_streq (aip_req_arg (&req, "content"), "hello ✓"));
    assert (aip_obj_streq (aip_obj_get (aip_req_arg (&req, "peer"), "type"), "human"));
    assert (aip_req_arg (&req, "metadata") == NULL);
    aip_request_free (&req);
    aip_request_free (&req);        //  safe twice

    //  Schema violations are refused with a message naming the field
    struct { const char *what; } cases [] = { {"bad id"}, {"missing"}, {"unknown"},
                                              {"enum"}, {"utf8"}, {"toolong"} };
    for (size_t c = 0; c < sizeof cases / sizeof cases [0]; c++) {
        aip_pack_reset (pk);
        aip_request_begin (pk, 7, AIP_OP_MSG_SEND, 3);
        aip_pack_kstr (pk, "room_id", c == 0 ? "room 1" : "room-1");
        if (c == 1)
            aip_pack_kstr (pk, "type", "message");
        else
        if (c == 4)
            aip_pack_kstrn (pk, "content", "\xff\xfe", 2);
        else
        if (c == 5) {
            char *big = (char *) malloc (AIP_MAX_CONTENT_WIRE + 1);
            memset (big, 'x', AIP_MAX_CONTENT_WIRE + 1);
            aip_pack_kstrn (pk, "content", big, AIP_MAX_CONTENT_WIRE + 1);
            free (big);
        }
        else
            aip_pack_kstr (pk, "content", "x");
        aip_pack_key (pk, c == 2 ? "bogus" : "peer");
        aip_pack_map (pk, 3);
        aip_pack_kstr (pk, "id", "p1");
        aip_pack_kstr (pk, "name", "n");
        aip_pack_kstr (pk, "type", c == 3 ? "robot" : "ai");
        data = aip_pack_data (pk, &size);
        rc = aip_request_decode (data, size, &req, &id, err, sizeof err);
        assert (rc == -1);
        assert (id == 7);           //  the error reply can still be routed
        if (verbose)
            printf ("\n   %s: %s", cases [c].what, err);
    }
    if (verbose)
        printf ("\n   ");

    //  Routing facts travel in the envelope, apart from the arguments
    aip_pack_reset (pk);
    aip_request_begin_route (pk, 8, AIP_OP_SPAWN_RUN, 2, "codex", "room-1", true);
    aip_pack_kstr (pk, "tool", "codex");
    aip_pack_kstr (pk, "room_id", "room-1");
    data = aip_pack_data (pk, &size);
    assert (aip_request_decode (data, size, &req, &id, err, sizeof err) == 0);
    assert (strcmp (req.route.tool, "codex") == 0 && strcmp (req.route.room_id, "room-1") == 0);
    assert (req.route.async);
    aip_request_free (&req);
    aip_pack_reset (pk);
    aip_request_begin_route (pk, 8, AIP_OP_PING, 0, NULL, "", false);
    data = aip_pack_data (pk, &size);
    assert (aip_request_decode (data, size, &req, &id, err, sizeof err) == 0);
    assert (!*req.route.tool && !*req.route.room_id && !req.route.async);
    aip_request_free (&req);
    //  ... and a malformed one is refused: too long, wrong type, unknown,
    //  not a map; async is no longer an argument
    char long_tool [AIP_MAX_NAME + 2];
    memset (long_tool, 't', sizeof long_tool - 1);
    long_tool [sizeof long_tool - 1] = 0;
    for (int c = 0; c < 6; c++) {
        aip_pack_reset (pk);
        aip_pack_map (pk, 5);
        aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
        aip_pack_kint (pk, "id", 8);
        aip_pack_kstr (pk, "op", "spawn.run");
        aip_pack_key (pk, "route");
        if (c == 4)
            aip_pack_str (pk, "codex");
        else {
            aip_pack_map (pk, 1);
            if (c == 0)
                aip_pack_kstr (pk, "tool", long_tool);
            else
            if (c == 1)
                aip_pack_kint (pk, "tool", 5);
            else
            if (c == 2)
                aip_pack_kstr (pk, "async", "yes");
            else
            if (c == 3)
                aip_pack_kstr (pk, "worker", "w1");
            else
                aip_pack_kbool (pk, "async", true);
        }
        aip_pack_key (pk, "a");
        aip_pack_map (pk, c == 5 ? 3 : 2);
        aip_pack_kstr (pk, "tool", "codex");
        aip_pack_kstr (pk, "room_id", "room-1");
        if (c == 5)
            aip_pack_kbool (pk, "async", true);
        data = aip_pack_data (pk, &size);
        assert (aip_request_decode (data, size, &req, &id, err, sizeof err) == -1);
        assert (id == 8 && strstr (err, c == 5 ? "async" : "route"));
        if (verbose)
            printf ("\n   route %d: %s", c, err);
    }
    if (verbose)
        printf ("\n   ");

    //  Reply round trips
    aip_pack_reset (pk);
    aip_reply_ok_begin (pk, 9);
    aip_pack_map (pk, 1);
    aip_pack_kint (pk, "n", -5);
    data = aip_pack_data (pk, &size);
    aip_reply_t rep;
    assert (aip_reply_decode (data, size, &rep, err, sizeof err) == 0);
    assert (rep.ok && rep.id == 9 && aip_obj_get_int (rep.data, "n", 0) == -5);
    aip_reply_free (&rep);

    aip_pack_reset (pk);
    aip_reply_error (pk, 10, AIP_ERR_NOT_FOUND, "Room 'x' not found");
    data = aip_pack_data (pk, &size);
    assert (aip_reply_decode (data, size, &rep, err, sizeof err) == 0);
    assert (!rep.ok && rep.id == 10 && strcmp (rep.code, "not_found") == 0);
    assert (strcmp (rep.message, "Room 'x' not found") == 0);
    aip_reply_free (&rep);

    //  Wrong version and unknown op
    aip_pack_reset (pk);
    aip_pack_map (pk, 3);
    aip_pack_kint (pk, "v", 99);
    aip_pack_kint (pk, "id", 1);
    aip_pack_kstr (pk, "op", "ping");
    data = aip_pack_data (pk, &size);
    assert (aip_request_decode (data, size, &req, &id, err, sizeof err) == -1);
    assert (strstr (err, "version"));
    aip_pack_reset (pk);
    aip_request_begin (pk, 1, AIP_OP_PING, 0);
    data = aip_pack_data (pk, &size);
    char *copy = (char *) malloc (size);
    memcpy (copy, data, size);
    char *op = (char *) memmem (copy, size, "ping", 4);
    memcpy (op, "pong", 4);
    assert (aip_request_decode (copy, size, &req, &id, err, sizeof err) == -1);
    assert (strstr (err, "unknown operation"));
    free (copy);

    //  Reply fields: every op declares its own (storaged's self-test holds
    //  each real store reply to them, brokerd's those of its own ops); a
    //  reply with a field too many, one missing, or a row of the wrong
    //  shape is refused, naming the field
    for (int i = 0; i < AIP_OP_COUNT; i++)
        assert (aip_op_reply_fields ((aip_op_t) i));
    //  0: a row without created_at, 1: no "more", 2: a misspelt key,
    //  3: a row that is not a map, 4: a message type out of its enum
    for (int c = 0; c < 5; c++) {
        aip_pack_reset (pk);
        aip_pack_map (pk, c == 1 ? 1 : 2);
        if (c != 1)
            aip_pack_kbool (pk, "more", true);
        aip_pack_key (pk, c == 2 ? "mesages" : "messages");
        aip_pack_array (pk, 1);
        if (c == 3)
            aip_pack_str (pk, "msg-1");
        else {
            aip_pack_map (pk, c == 0 ? 5 : 6);
            aip_pack_kstr (pk, "id", "msg-1");
            aip_pack_kstr (pk, "room_id", "room-1");
            aip_pack_kstr (pk, "peer_id", "p1");
            aip_pack_kstr (pk, "content", "hi");
            aip_pack_kstr (pk, "type", c == 4 ? "shout" : "message");
            if (c != 0)
                aip_pack_kstr (pk, "created_at", "2026-12-04T19:00:00Z");
        }
        data = aip_pack_data (pk, &size);
        aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
        assert (doc);
        assert (aip_reply_check (AIP_OP_MSG_UNREAD, aip_doc_root (doc), err, sizeof err) == -1);
        if (verbose)
            printf ("\n   reply %d: %s", c, err);
        aip_doc_destroy (&doc);
    }
    aip_pack_reset (pk);
    aip_pack_map (pk, 2);
    aip_pack_kbool (pk, "more", false);
    aip_pack_key (pk, "messages");
    aip_pack_array (pk, 0);
    data = aip_pack_data (pk, &size);
    aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
    assert (aip_reply_check (AIP_OP_MSG_UNREAD, aip_doc_root (doc), err, sizeof err) == 0);
    assert (aip_reply_check (AIP_OP_MSG_LIST, aip_doc_root (doc), err, sizeof err) == -1);
    aip_doc_destroy (&doc);
    if (verbose)
        printf ("\n   ");

    //  Every op has a name that looks itself up
    for (int i = 0; i < AIP_OP_COUNT; i++)
        assert (aip_op_lookup (aip_op_name ((aip_op_t) i), strlen (aip_op_name ((aip_op_t) i))) == i);
    assert (aip_svc_lookup ("store", 5) == AIP_SVC_STORE);

    aip_pack_destroy (&pk);
    aip_pack_destroy (&pk);
    printf ("OK\n");
}
