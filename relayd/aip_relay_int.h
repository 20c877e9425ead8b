/*  aip_relay_int.h — what the parts of relayd share (not for other code).

    relayd is split by transport. aip_relay.c keeps the loop, the rooms,
    the outbox and the relay.* operations, and never asks which transport a
    room uses: it calls the room's aip_sync_transport_t. aip_relay_http.c is
    the relay transport (libcurl multi + the WebSocket thread),
    aip_relay_lan.c the LAN one (CURVE links to hubs), aip_relay_hub.c the
    lan.* operations this machine answers when it hubs a LAN room. */
#ifndef AIP_RELAY_INT_H_INCLUDED
#define AIP_RELAY_INT_H_INCLUDED

#include "aip_relay.h"
#include "aip_relay_ws.h"

#include "aip_client.h"
#include "aip_crypto.h"
#include "aip_home.h"
#include "aip_identity.h"
#include "aip_json.h"
#include "aip_lan.h"
#include "aip_limits.h"
#include "aip_peerurl.h"
#include "aip_proto.h"
#include "aip_roomkey.h"
#include "aip_util.h"
#include "aip_worker.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

//  Requests relayd takes at once (relay.push waits, so many may be open)
#define RELAY_SLOTS         1024
//  Ids of recently inserted remote messages kept per room (skip storaged)
#define RECENT_IDS_MAX      4096
//  Outcomes of delivered or refused messages remembered for relay.push
#define OUTCOMES_MAX        4096
//  Catch-up of a room that has no cursor yet starts here
#define EPOCH_CURSOR        "1970-01-01T00:00:00.000Z"
//  The loop wakes at least this often for timers
#define TICK_MS             100
//  A room's cursor is saved at most this often: after a crash the catch-up
//  starts a little earlier, and ids remove the overlap
#define CURSOR_SAVE_MS      1000
//  relay.join waits at most this long for the room's history
#define JOIN_HISTORY_WAIT_MS 10000
//  LAN hubs one relayd talks to at once
#define LAN_MAX_LINKS       64
//  lan.fetch requests a hub holds at once: each holds one of our slots, and
//  the local work needs some (past this, joiners are told to poll)
#define HUB_MAX_HELD        768

typedef struct _aip_sync_transport_t aip_sync_transport_t;

typedef enum { WS_DOWN, WS_CONNECTING, WS_UP } aip_ws_state_t;

//  A public room kept in sync
typedef struct {
    char id [AIP_MAX_ID + 1];           //  room id (the same here and on the relay)
    char url [AIP_MAX_URL + 1];         //  relay base URL
    char token [AIP_MAX_NAME + 1];      //  room token
    char cursor [AIP_MAX_TIME + 1];     //  newest relay created_at seen, "" if none
    bool cursor_dirty;                  //  cursor not saved in storaged yet
    int64_t cursor_save_at;             //  save it then (at most once a CURSOR_SAVE_MS)
    aip_ws_state_t ws_state;              //  push channel
    int ws_backoff_ms;                  //  next reconnect delay
    int64_t ws_retry_at;                //  when to reconnect
    int64_t poll_at;                    //  next catch-up while the WebSocket is down
    bool fetching;                      //  a catch-up GET is in flight
    bool fetch_again;                   //  another catch-up is wanted after it
    bool fetch_stale;                   //  the one in flight asked from a dropped cursor
    bool ok;                            //  the relay answered our last request
    bool posting;                       //  a POST or peer join is in flight (order!)
    bool listed;                        //  present in the last sync.rooms
    zhashx_t *joined;                   //  peer ids joined on the relay by this run
    zhashx_t *recent;                   //  ids inserted lately
    zlistx_t *join_waiters;             //  relay.join requests waiting for history
    bool no_batch;                      //  the relay has no batch endpoint (the original's)
    int singles;                        //  post this many one by one (a batch was refused)
    const aip_sync_transport_t *transport;  //  how it syncs: with a relay, or a LAN hub
    uint64_t fetch_id;                  //  LAN: the lan.fetch in flight (others are stale)
} aip_sync_room_t;

//  A message of the outbox
typedef struct {
    char id [AIP_MAX_ID + 1];           //  local id = relay id
    char room_id [AIP_MAX_ID + 1];
    char peer_id [AIP_MAX_ID + 1];
    char peer_name [AIP_MAX_NAME + 1];
    char peer_tool [AIP_MAX_NAME + 1];
    char peer_type [16];
    char type [16];
    char created_at [AIP_MAX_TIME + 1]; //  LAN hubs keep the sender's time
    char *content;                      //  the text
    int backoff_ms;                     //  next retry delay
    int64_t next_at;                    //  not before this
    bool inflight;                      //  being posted
    char error [256];                   //  why the last attempt failed
} aip_outmsg_t;

//  A request that waits for something (relay.push, relay.join)
typedef struct {
    uint64_t tag;                       //  the broker's tag
    uint64_t request_id;                //  the client's request id
    char msg_id [AIP_MAX_ID + 1];       //  relay.push: the message awaited
    int64_t deadline;                   //  answer by then at the latest
    json_t *data;                       //  relay.join: the reply data
} aip_relay_waiter_t;

//  A relay.join in progress (probe, then join)
typedef struct _aip_joinreq_t aip_joinreq_t;
struct _aip_joinreq_t {
    uint64_t tag;                       //  the broker's tag
    uint64_t request_id;                //  the client's request id
    char room_id [AIP_MAX_ID + 1];
    char url [AIP_MAX_URL + 1];
    char token [AIP_MAX_NAME + 1];
    char name [AIP_MAX_NAME + 1];       //  local room name (create) or ""
    bool create;                        //  create the local room on success
    char key [AIP_MAX_NAME + 1];        //  stored key of an encrypted room, or ""
    json_t *peer;                       //  {id, name, type, tool, machine}
    json_t *info;                       //  /info answer (or null)
    const aip_sync_transport_t *transport;  //  to a relay, or a LAN hub (peer+lan://)
    bool info_only;                     //  answer with the room's info, do not join
};

typedef struct {
    zsock_t *pipe;                      //  actor pipe
    char home [AIP_PATH_MAX];
    aip_worker_t *worker;               //  serving "relay"
    aip_client_t *store;                //  client of "store" (lazily connected)
    zsock_t *events;                    //  SUB "outbox" from the broker
    aip_relay_ws_t *ws;                 //  WebSocket thread
    CURLM *multi;                       //  HTTP transfers
    zlistx_t *transfers;                //  s_http_t running (owned)
    int inflight;                       //  HTTP transfers running
    aip_identity_t identity;            //  to sign as the human and its AI peers
    bool identity_ok;
    zhashx_t *rooms;                    //  room id -> aip_sync_room_t
    zlistx_t *outbox;                   //  aip_outmsg_t, oldest first
    zhashx_t *outbox_ids;               //  id -> aip_outmsg_t (borrowed)
    zlistx_t *push_waiters;             //  aip_relay_waiter_t of relay.push
    zhashx_t *outcomes;                 //  id -> error text ("" = delivered) of messages
                                        //  that left the outbox lately: a relay.push
                                        //  that comes late still gets the truth
    bool outbox_dirty;                  //  read new outbox entries soon
    int64_t outbox_seq;                 //  newest outbox seq read
    int64_t rescan_at;                  //  next periodic reload
    aip_pack_t *pk;                     //  scratch
    bool terminated;
    zhashx_t *links;                    //  LAN hub URL -> s_lanlink_t
    zlistx_t *lan_pending;              //  s_lanreq_t sent to hubs
    zcert_t *lan_cert;                  //  our CURVE client key pair (per run)
    uint64_t lan_next_id;               //  ids of requests to hubs
    zlistx_t *hub_waiters;              //  s_hubwait_t: fetches we hold as a hub
} aip_relayd_t;

//  A transport: how rooms of one kind of URL are joined, sent to and read
//  from (nng style: the core holds the ops, never asks which it is)
struct _aip_sync_transport_t {
    const char *name;           //  "relay" or "lan", for logs
    const char *mode;           //  the room's mode in storaged: "public" or "lan"
    const char *peer;           //  what the other end is called in errors: "relay", "hub"
    //  Is url one of ours? (the first transport that says yes gets the room)
    bool (*claims) (const char *url);
    //  Check and normalise a URL given to relay.join: 0, or -1 with err
    int (*check_url) (const char *url, char *out, size_t size, char *err, size_t errlen);
    //  relay.join: probe the room (its info only) or join it; ends with
    //  aip_relay_join_accepted or aip_relay_join_fail (which free join)
    void (*join) (aip_relayd_t *self, aip_joinreq_t *join, bool probe);
    //  Post one outbox message (it may take the room's next ones with it);
    //  ends with aip_relay_outmsg_finish or aip_relay_outmsg_retry_later
    void (*deliver) (aip_relayd_t *self, aip_sync_room_t *room, aip_outmsg_t *om);
    //  Catch up from the room's cursor (room->fetching is set while it runs);
    //  what comes goes to aip_relay_ingest
    void (*fetch) (aip_relayd_t *self, aip_sync_room_t *room);
    //  Timers of one room (reconnects, polls)
    void (*tick) (aip_relayd_t *self, aip_sync_room_t *room, int64_t now);
    //  A message's place in the room's order, as a string that compares
    //  like the cursor ("" if it has none)
    void (*cursor_of) (const json_t *m, char *out, size_t size);
    //  The cursor was reset: the catch-up in flight no longer counts
    void (*fetch_forget) (aip_sync_room_t *room);
    //  Can a cursor stored in storaged be trusted? (else catch up from the start)
    bool (*cursor_ok) (const char *cursor);
    //  The room moved (URL or token) or is gone: drop its push channel
    void (*forget) (aip_relayd_t *self, aip_sync_room_t *room);
    //  Something happened that is worth a reconnect now, not after backoff
    void (*wake) (aip_relayd_t *self, aip_sync_room_t *room);
    //  Its sockets for the loop's poll: adds at most max items (and may
    //  shorten *timeout); then handles what they had
    int (*poll_add) (aip_relayd_t *self, zmq_pollitem_t *items, int max, long *timeout);
    void (*poll_done) (aip_relayd_t *self, zmq_pollitem_t *items, int count);
    //  Once per loop: requests past their time
    void (*expire) (aip_relayd_t *self);
    //  Its state in the actor: set up (0, or -1 if it cannot run) and freed
    int (*start) (aip_relayd_t *self);
    void (*stop) (aip_relayd_t *self);
};

extern const aip_sync_transport_t aip_sync_http;
extern const aip_sync_transport_t aip_sync_lan;
//  The transport for a room's URL (the relay one unless another claims it)
const aip_sync_transport_t *aip_sync_transport_for (const char *url);

//  The core, for the transports and the hub (aip_relay.c)
int aip_relay_jitter (int ms);
const char *aip_relay_jstr (const json_t *o, const char *key);
//  True if a relay's time may be a cursor: ISO-8601 UTC, at most
//  AIP_CURSOR_AHEAD_MAX_MS ahead of our clock
bool aip_relay_time_cursor_ok (const char *mark);
void aip_relay_reply_json (aip_relayd_t *self, uint64_t tag, uint64_t request_id,
                           const json_t *data);
void aip_relay_reply_error (aip_relayd_t *self, uint64_t tag, uint64_t request_id,
                            const char *code, const char *message);
aip_client_t *aip_relay_store (aip_relayd_t *self);
int aip_relay_store_call (aip_relayd_t *self, uint64_t id, aip_reply_t *rep);
uint64_t aip_relay_store_begin (aip_relayd_t *self, aip_op_t op, size_t nargs);
int aip_relay_signature (aip_relayd_t *self, const char *room_id, const char *peer_id,
                         const char *tool, char sig [AIP_CRYPTO_HEX_SIZE]);
void aip_relay_join_waiters_done (aip_relayd_t *self, aip_sync_room_t *room,
                                  const char *history_error);
int aip_relay_ingest (aip_relayd_t *self, aip_sync_room_t *room, const json_t *messages);
void aip_relay_fetch (aip_relayd_t *self, aip_sync_room_t *room);
void aip_relay_outmsg_finish (aip_relayd_t *self, aip_outmsg_t *om, bool delivered,
                              const char *error);
void aip_relay_outmsg_retry_later (aip_relayd_t *self, aip_outmsg_t *om, const char *why);
void aip_relay_outbox_retry_now (aip_relayd_t *self, const char *room_id);
void aip_relay_join_fail (aip_relayd_t *self, aip_joinreq_t *join, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
void aip_relay_join_accepted (aip_relayd_t *self, aip_joinreq_t *join);
void aip_relay_joinreq_free (aip_joinreq_t **join_p);
void aip_relay_waiter_free (void **item);

//  The hub side of LAN rooms (aip_relay_hub.c)
void aip_relay_hub_fetch (aip_relayd_t *self, uint64_t tag, const aip_request_t *req);
//  Something was committed in room_id: answer the fetches held for it
void aip_relay_hub_wake (aip_relayd_t *self, const char *room_id);
//  Take the store's replies to the hub's reads; answer what they complete
void aip_relay_hub_collect (aip_relayd_t *self);
//  Answer the held fetches whose wait ran out (after collecting)
void aip_relay_hub_expire (aip_relayd_t *self);
void aip_relay_hub_start (aip_relayd_t *self);
void aip_relay_hub_stop (aip_relayd_t *self);

void aip_relay_http_test (bool verbose);
void aip_relay_lan_test (bool verbose);

#endif
