/*  aip_proto.h — the ai-peer wire protocol, defined once.

    Every operation, the service that serves it, and its argument schema
    (names, types, limits) are listed in AIP_OPS below. Bodies are msgpack
    maps with string keys:

      request  {v:1, id:<uint>, op:"room.create", a:{...}[, auth:<token>]
                [, route:{tool, room_id, async}]}
      reply    {v:1, id:<uint>, ok:true,  data:<any>}
               {v:1, id:<uint>, ok:false, error:{code, message}}
      event    {v:1, type:"message", room_id, data:<message>}  (AIP_EVENTS)

    The msgpack codec underneath is aip_codec.h (included here), the only
    file that includes <msgpack.h>. Decoding checks the version, bounds
    every length, nesting depth and element count before anything is
    allocated, and validates arguments against the schema: malformed input
    gets a clear error, never a crash.

    Frames on the sockets (see aip_client.h, aip_worker.h):
      client -> broker   [body]                   (DEALER -> ROUTER)
      broker -> client   [body]
      worker -> broker   ["READY", {svc, slots, name, pid}]
                         ["HB"] | ["BYE"]
                         ["REPLY", tag(8), body]
                         ["EVENT", topic, body]
      broker -> worker   ["REQ", tag(8), body] | ["CANCEL", tag(8)] | ["HB"] | ["BYE"]
      broker PUB         [topic, body]   topic = "room.<room_id>" */
#ifndef AIP_PROTO_H_INCLUDED
#define AIP_PROTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aip_codec.h"
#include "aip_limits.h"

//  Services a worker can serve; the broker serves AIP_SVC_BROKER itself
typedef enum {
    AIP_SVC_BROKER,
    AIP_SVC_STORE,
    AIP_SVC_SPAWN,
    AIP_SVC_RELAY,
    AIP_SVC_COUNT
} aip_svc_t;

//  Field types of the argument schema
typedef enum {
    AIP_T_STR,          //  UTF-8 string, at most max bytes, optional enum
    AIP_T_ID,           //  ^[A-Za-z0-9_-]{1,64}$
    AIP_T_INT,          //  integer in [0, max]
    AIP_T_BOOL,
    AIP_T_MAP,          //  nested map with its own schema (sub NULL: any map)
    AIP_T_ARRAY,        //  at most max items, each a map of schema sub (or anything)
    AIP_T_NUM           //  any number, integer or real (replies: costs)
} aip_type_t;

typedef struct aip_field_s aip_field_t;
struct aip_field_s {
    const char *name;           //  key in the args map; NULL ends a list
    aip_type_t type;            //  expected type
    bool required;              //  absent or nil is an error
    int64_t max;                //  max bytes (strings) or max value (ints)
    const char *values;         //  allowed values "a|b|c", or NULL
    const aip_field_t *sub;     //  schema of a nested map
};

//  The operation table: X(ENUM, "name", service, fields)
//  Field lists are defined in aip_proto.c.
#define AIP_OPS(X) \
    X (PING,          "ping",          AIP_SVC_BROKER, s_no_fields) \
    X (DAEMON_STATUS, "daemon.status", AIP_SVC_BROKER, s_no_fields) \
    X (DAEMON_STOP,   "daemon.stop",   AIP_SVC_BROKER, s_no_fields) \
    X (ROOM_CREATE,   "room.create",   AIP_SVC_STORE,  s_room_create_fields) \
    X (ROOM_GET,      "room.get",      AIP_SVC_STORE,  s_room_get_fields) \
    X (ROOM_LIST,     "room.list",     AIP_SVC_STORE,  s_no_fields) \
    X (ROOM_DELETE,   "room.delete",   AIP_SVC_STORE,  s_room_id_fields) \
    X (ROOM_PEERS,    "room.peers",    AIP_SVC_STORE,  s_room_id_fields) \
    X (ROOM_JOIN,     "room.join",     AIP_SVC_STORE,  s_room_join_fields) \
    X (PEER_REGISTER, "peer.register", AIP_SVC_STORE,  s_peer_fields) \
    X (PEER_LIST,     "peer.list",     AIP_SVC_STORE,  s_no_fields) \
    X (MSG_SEND,      "msg.send",      AIP_SVC_STORE,  s_msg_send_fields) \
    X (MSG_LIST,      "msg.list",      AIP_SVC_STORE,  s_msg_list_fields) \
    X (SPAWN_RUN,     "spawn.run",     AIP_SVC_SPAWN,  s_spawn_run_fields) \
    X (SPAWN_DISCOVER,"spawn.discover",AIP_SVC_SPAWN,  s_no_fields) \
    X (JOB_LIST,      "job.list",      AIP_SVC_BROKER, s_no_fields) \
    X (JOB_WAIT,      "job.wait",      AIP_SVC_BROKER, s_job_id_fields) \
    X (JOB_CANCEL,    "job.cancel",    AIP_SVC_BROKER, s_job_id_fields) \
    X (OUTBOX_LIST,   "outbox.list",   AIP_SVC_STORE,  s_outbox_list_fields) \
    X (OUTBOX_DONE,   "outbox.done",   AIP_SVC_STORE,  s_outbox_done_fields) \
    X (SYNC_ROOMS,    "sync.rooms",    AIP_SVC_STORE,  s_no_fields) \
    X (SYNC_CURSOR,   "sync.cursor",   AIP_SVC_STORE,  s_sync_cursor_fields) \
    X (RELAY_JOIN,    "relay.join",    AIP_SVC_RELAY,  s_relay_join_fields) \
    X (RELAY_PUSH,    "relay.push",    AIP_SVC_RELAY,  s_relay_push_fields) \
    X (RELAY_STATUS,  "relay.status",  AIP_SVC_RELAY,  s_room_id_fields) \
    X (LAN_START,     "lan.start",     AIP_SVC_BROKER, s_lan_start_fields) \
    X (LAN_PEERS,     "lan.peers",     AIP_SVC_BROKER, s_no_fields) \
    X (LAN_INFO,      "lan.info",      AIP_SVC_STORE,  s_lan_info_fields) \
    X (LAN_JOIN,      "lan.join",      AIP_SVC_STORE,  s_lan_join_fields) \
    X (LAN_POST,      "lan.post",      AIP_SVC_STORE,  s_lan_post_fields) \
    X (LAN_FETCH,     "lan.fetch",     AIP_SVC_RELAY,  s_lan_fetch_fields) \
    X (LAN_READ,      "lan.read",      AIP_SVC_STORE,  s_lan_fetch_fields) \
    X (MEMBER_CLAIM,  "member.claim",  AIP_SVC_STORE,  s_member_claim_fields) \
    X (USAGE_SUM,     "usage.sum",     AIP_SVC_STORE,  s_usage_sum_fields) \
    X (MSG_UNREAD,    "msg.unread",    AIP_SVC_STORE,  s_msg_unread_fields) \
    X (SESSION_GET,   "session.get",   AIP_SVC_STORE,  s_session_get_fields) \
    X (SESSION_PUT,   "session.put",   AIP_SVC_STORE,  s_session_put_fields) \
    X (WEB_START,     "web.start",     AIP_SVC_BROKER, s_web_start_fields) \
    X (WEB_STOP,      "web.stop",      AIP_SVC_BROKER, s_no_fields)

typedef enum {
#define AIP_OP_ENUM(e, name, svc, fields) AIP_OP_##e,
    AIP_OPS (AIP_OP_ENUM)
#undef AIP_OP_ENUM
    AIP_OP_COUNT
} aip_op_t;

//  The events the broker publishes (worker EVENT frames), beside the ops:
//  X(ENUM, "type", per_room, fields): the body is {v, type, room_id, ...},
//  the topic "room.<room_id>" when per_room, else the type itself. Their
//  schemas (fields) are in aip_event.c, packing and decoding aip_event.h.
//    message   {v, type, room_id, data: <message>}   storaged, once committed
//    progress  {v, type, room_id, data: {tool, msg_id, bytes, elapsed_ms,
//               partial, text, done}}                 spawnd, while a tool runs
//    outbox    {v, type, room_id, id}                 storaged: a message waits
//                                                     for the relay (relayd)
#define AIP_EVENTS(X) \
    X (MESSAGE,  "message",  true,  s_message_event)  \
    X (PROGRESS, "progress", true,  s_progress_event) \
    X (OUTBOX,   "outbox",   false, s_outbox_event)

typedef enum {
#define AIP_EVENT_ENUM(e, name, per_room, fields) AIP_EVENT_##e,
    AIP_EVENTS (AIP_EVENT_ENUM)
#undef AIP_EVENT_ENUM
    AIP_EVENT_COUNT
} aip_event_type_t;

//  Error codes carried in error replies
#define AIP_ERR_MALFORMED   "malformed"     //  request does not match schema
#define AIP_ERR_NOT_FOUND   "not_found"
#define AIP_ERR_INVALID     "invalid"       //  well-formed but refused
#define AIP_ERR_UNAVAILABLE "unavailable"   //  no worker for the service
#define AIP_ERR_WORKER_LOST "worker_lost"   //  worker died mid-request
#define AIP_ERR_INTERNAL    "internal"      //  storage failure etc.
#define AIP_ERR_TIMEOUT     "timeout"
//  msg.send with plain: true into an encrypted room: nothing was stored;
//  encrypt with the room's key and send again
#define AIP_ERR_ENCRYPTED   "encrypted"

//  Op name, service and schema
const char *aip_op_name (aip_op_t op);
aip_svc_t aip_op_service (aip_op_t op);
const aip_field_t *aip_op_fields (aip_op_t op);
//  What an operation is allowed and how it answers (aip_op_flags):
//  REMOTE         another machine may call it on a LAN hub without the
//                 worker token (each checks the room token itself)
//  REMOTE_WORKER  a remote spawn worker with the worker token may call it
//  PAGED          it answers with a page of messages (a reply of up to
//                 AIP_MAX_PAGE_BYTES: the broker counts that much for it)
#define AIP_OP_F_REMOTE         0x01
#define AIP_OP_F_REMOTE_WORKER  0x02
#define AIP_OP_F_PAGED          0x04
unsigned aip_op_flags (aip_op_t op);
//  aip_op_flags (op) & AIP_OP_F_REMOTE
bool aip_op_remote (aip_op_t op);
//  Op by name, or -1
int aip_op_lookup (const char *name, size_t len);
//  The fields an op's success reply carries in its data (a map), beside its
//  argument schema; NULL where none is declared (proto's self-test holds
//  every op to one)
const aip_field_t *aip_op_reply_fields (aip_op_t op);
//  Does data, an op's success reply, carry exactly its declared fields?
//  0, or -1 with a message naming the field (also when none is declared)
int aip_reply_check (aip_op_t op, const aip_obj_t *data, char *err, size_t errlen);

//  The frames between the broker and its workers (Majordomo style): after
//  the routing id, one frame names the command, then its own frames:
//    READY [body]      worker: I serve {svc, slots, name, pid, tools?, token?}
//    HB                either side: alive
//    REQ [tag][body]   broker: a request to handle
//    REPLY [tag][body] worker: its reply
//    EVENT [topic][body]  worker: publish this
//    CANCEL [tag]      broker: stop that request
//    BYE               either side: gone (from the broker: register again)
//  X(ENUM, "name", from): from = AIP_FRAME_F_WORKER and/or AIP_FRAME_F_BROKER
#define AIP_FRAME_F_WORKER 0x01
#define AIP_FRAME_F_BROKER 0x02
#define AIP_FRAMES(X) \
    X (READY,  "READY",  AIP_FRAME_F_WORKER) \
    X (HB,     "HB",     AIP_FRAME_F_WORKER | AIP_FRAME_F_BROKER) \
    X (REQ,    "REQ",    AIP_FRAME_F_BROKER) \
    X (REPLY,  "REPLY",  AIP_FRAME_F_WORKER) \
    X (EVENT,  "EVENT",  AIP_FRAME_F_WORKER) \
    X (CANCEL, "CANCEL", AIP_FRAME_F_BROKER) \
    X (BYE,    "BYE",    AIP_FRAME_F_WORKER | AIP_FRAME_F_BROKER)

typedef enum {
#define AIP_FRAME_ENUM(e, name, from) AIP_FRAME_##e,
    AIP_FRAMES (AIP_FRAME_ENUM)
#undef AIP_FRAME_ENUM
    AIP_FRAME_COUNT
} aip_frame_t;

//  The command frame's text, and back (-1 if it is none); a frame that a
//  worker sends (tells a worker from a client on a shared socket)
const char *aip_frame_name (aip_frame_t frame);
int aip_frame_lookup (const char *name);
bool aip_frame_from_worker (const char *name);
//  Service names ("broker", "store", "spawn", "relay") and lookup (-1)
const char *aip_svc_name (aip_svc_t svc);
int aip_svc_lookup (const char *name, size_t len);

//  ---------------------------------------------------------------------
//  Requests and replies

//  The routing facts of a request, in its envelope's "route" map beside
//  v/id/op/a: what the broker needs to route and describe it without
//  reading the service's arguments. A spawn.run carries them: the worker
//  must have the tool, daemon status and the job say "TOOL in ROOM", and
//  async makes it a job answered with its id at once. Every key is
//  optional; a route that breaks its schema makes the request malformed.
typedef struct {
    char tool [AIP_MAX_NAME + 1];   //  the AI tool its worker must have, or ""
    char room_id [AIP_MAX_ID + 1];  //  the room it works in, or ""
    bool async;                     //  run as a job: answered with a job id at once
} aip_route_t;

typedef struct {
    aip_doc_t *doc;             //  owns everything below
    uint64_t id;                //  request id chosen by the client
    aip_op_t op;                //  operation
    const aip_obj_t *args;      //  validated argument map (never NULL)
    const aip_obj_t *auth;      //  "auth" of the envelope (a string), or NULL
    aip_route_t route;          //  routing facts of the envelope (all empty if none)
} aip_request_t;

//  Start a request: packs {v, id, op, a: map of nargs}; the caller then
//  packs nargs key/value pairs.
void aip_request_begin (aip_pack_t *pk, uint64_t id, aip_op_t op, size_t nargs);
//  The same with {auth: token} in the envelope (a remote spawn worker's
//  requests to a LAN hub carry the hub's worker token); auth NULL or ""
//  is aip_request_begin
void aip_request_begin_auth (aip_pack_t *pk, uint64_t id, aip_op_t op, size_t nargs,
                             const char *auth);

//  The same with routing facts in the envelope: {route: {tool, room_id,
//  async}} (tool or room_id NULL or "" and async false are left out). Every
//  client that sends spawn.run starts it with this.
void aip_request_begin_route (aip_pack_t *pk, uint64_t id, aip_op_t op, size_t nargs,
                              const char *tool, const char *room_id, bool async);

//  Decode and validate a request. Returns 0, or -1 with err filled; then
//  *id_out holds the request id when it could be read (else 0) so that the
//  error reply still reaches the right caller.
int aip_request_decode (const void *data, size_t size, aip_request_t *req,
                        uint64_t *id_out, char *err, size_t errlen);
void aip_request_free (aip_request_t *req);

//  Argument access on a validated request
const aip_obj_t *aip_req_arg (const aip_request_t *req, const char *name);

//  Start a success reply: packs {v, id, ok:true, data: ...}; the caller then
//  packs exactly one value (the data).
void aip_reply_ok_begin (aip_pack_t *pk, uint64_t id);
//  A whole error reply
void aip_reply_error (aip_pack_t *pk, uint64_t id, const char *code, const char *message);

typedef struct {
    aip_doc_t *doc;             //  owns everything below
    uint64_t id;                //  request id this answers
    bool ok;
    const aip_obj_t *data;      //  when ok (may be nil)
    char code [32];             //  when !ok
    const char *message;        //  when !ok: points into doc, NUL-terminated copy
} aip_reply_t;

//  Decode a reply. Returns 0, or -1 with err filled.
int aip_reply_decode (const void *data, size_t size, aip_reply_t *rep,
                      char *err, size_t errlen);
void aip_reply_free (aip_reply_t *rep);

//  Validate a value against a field list (used for nested maps and tests).
//  Returns 0 or -1 with a message naming the field.
int aip_schema_check (const aip_field_t *fields, const aip_obj_t *map,
                      const char *path, char *err, size_t errlen);

void aip_proto_test (bool verbose);

#endif
