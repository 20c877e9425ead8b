/*  cli.h — the ai-peer command: shared state and helpers of the command
    groups (one file per group). Every command prints one JSON document:
    {"ok": true, "schema_version": "1", "data": ...} with exit status 0, or
    {"ok": false, "schema_version": "1", "error": "..."} with exit status 1. */
#ifndef CLI_H_INCLUDED
#define CLI_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>

#include "aip_client.h"
#include "aip_home.h"
#include "aip_identity.h"
#include "aip_json.h"
#include "aip_limits.h"
#include "aip_proto.h"
#include "aip_roomkey.h"
#include "aip_util.h"

//  A command run on behalf of a long-lived caller (the MCP server): its
//  invites become jobs it can cancel, and long waits report in
typedef struct {
    //  an invite was started as job_id; its answer will be msg_id
    void (*job) (void *arg, const char *job_id, const char *msg_id);
    //  true once the caller gave up: the command stops waiting
    bool (*cancelled) (void *arg);
    //  called about every second while the command waits
    void (*tick) (void *arg);
    void *arg;                      //  passed to each
} cli_hooks_t;

typedef struct {
    char home [AIP_PATH_MAX];       //  $AI_PEERS_HOME
    aip_client_t *client;           //  connected on first use
    aip_identity_t identity;        //  loaded on first use
    bool identity_loaded;
    aip_pack_t *pk;                 //  request being built
    json_t *data;                   //  the result, printed on success
    char err [2048];                //  the error, printed on failure
    const char *default_tool;       //  speak as this AI peer when no --tool (MCP), or NULL
    cli_hooks_t *hooks;             //  a long-lived caller's hooks, or NULL
} cli_t;

//  A command: 0 with cli->data set, or -1 with cli->err set
typedef int (cli_cmd_fn) (cli_t *cli, int argc, char **argv);

//  Command-line options of one command
typedef struct {
    const char *name;               //  "--tool"
    const char *alias;              //  "-i", or NULL
    bool takes_value;               //  needs an argument
    const char *value;              //  given value (borrowed from argv)
    bool present;                   //  given at all
} cli_opt_t;

//  A command names its options with an enum and reads them by it, never by
//  position:
//      enum { OPT_TOOL, OPT_ASYNC, OPT_END };
//      cli_opt_t opts [OPT_END + 1] = { [OPT_TOOL] = CLI_OPT_VALUE ("--tool"),
//                                       [OPT_ASYNC] = CLI_OPT_FLAG ("--async") };
//      ... opts [OPT_TOOL].value ...
//  The entry at OPT_END is left empty: it ends the list for cli_parse.
#define CLI_OPT_VALUE(opt_name) { .name = (opt_name), .takes_value = true }
#define CLI_OPT_FLAG(opt_name)  { .name = (opt_name), .takes_value = false }

//  Parse argv into opts and positional arguments. Unknown options, missing
//  values and too many positionals are errors naming the command's help.
int cli_parse (cli_t *cli, const char *command, int argc, char **argv, cli_opt_t *opts,
               char **positional, int max_positional, int *npositional);
//  Option value as a bounded integer; -1 with an error otherwise. An option
//  not given is 0 and leaves *value as it was (the default).
int cli_opt_int (cli_t *cli, const cli_opt_t *opt, long min, long max, long *value);

//  Set cli->err (printf style); returns -1
int cli_fail (cli_t *cli, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

//  Connect to the daemons (starting them if need be) unless connected;
//  -1 with cli->err set when they cannot be reached
int cli_connect (cli_t *cli);
//  Start a request (cli->pk reset, header packed); returns its id
uint64_t cli_request (cli_t *cli, aip_op_t op, size_t nargs);
//  Send cli->pk and wait; on success *data is the reply data as JSON (the
//  caller owns it). On an error reply or no reply, -1 with cli->err set.
int cli_call (cli_t *cli, uint64_t id, json_t **data);
//  A reply received: its data becomes the command's (0), or its error the
//  command's failure (-1); rep is freed either way
int cli_reply_result (cli_t *cli, aip_reply_t *rep);
//  Same, waiting at most timeout_ms for the reply
int cli_call_timeout (cli_t *cli, uint64_t id, int timeout_ms, json_t **data);

//  The local identity (identity.json), loaded once
int cli_identity (cli_t *cli, const aip_identity_t **identity);

//  Who speaks: resolved from --as/--tool/--type as the original does
typedef struct {
    char id [AIP_MAX_NAME + 1];
    char name [AIP_MAX_NAME + 1];
    char type [16];
    char tool [AIP_MAX_NAME + 1];
    char machine [AIP_MAX_NAME + 1];
} cli_peer_t;

int cli_resolve_peer (cli_t *cli, const char *as, const char *tool, const char *type,
                      cli_peer_t *peer);
//  Pack a peer as the "peer" argument of a request
void cli_pack_peer (cli_t *cli, const cli_peer_t *peer);
//  Check a room id given by the user
int cli_check_room_id (cli_t *cli, const char *room_id);
//  Can these AI tools be invited (cli_tools.c)? -1 with the known tools
//  named, or with why no spawn worker runs, before anything is made
int cli_check_tools (cli_t *cli, const char *const *names, size_t count);

//  A room as a command needs it: whether it is encrypted, and its key
typedef struct {
    bool encrypted;             //  a password room
    aip_roomkey_t key;          //  its key, when encrypted
    bool public;                //  synced by relayd with a relay (or a LAN hub)
    bool lan;                   //  a LAN room (here or on its hub)
} cli_room_t;

//  Look a room up (not found: the error says how to list rooms)
int cli_room_open (cli_t *cli, const char *room_id, cli_room_t *room);
//  Replace each message's content (JSON array) with what a reader sees
void cli_room_reveal_json (cli_room_t *room, json_t *messages);
//  The password given by --password, --password-file or AI_PEER_PASSWORD,
//  or NULL when none (caller frees; -1 on a bad file)
int cli_password (cli_t *cli, const cli_opt_t *password, const cli_opt_t *file, char **out);

//  Create a local room, end-to-end encrypted when password is given
//  (cipher "aip1" by default, or "fernet"); me joins it. room_id receives
//  the new id; *room (optional, caller owns) the room as stored.
int cli_room_create (cli_t *cli, const char *name, const char *password, const char *cipher,
                     const cli_peer_t *me, char room_id [AIP_ROOM_ID_LEN + 1], json_t **room);
//  The same; with lan_token a LAN room this machine hubs (mode "lan");
//  kdf (optional) receives an aip1 room's key parameters ("" otherwise)
int cli_room_create_hub (cli_t *cli, const char *name, const char *password, const char *cipher,
                         const char *lan_token, const cli_peer_t *me,
                         char room_id [AIP_ROOM_ID_LEN + 1], json_t **room, char *kdf,
                         size_t kdfsize);
//  Send text as me, encrypted first in an encrypted room; *sent (optional,
//  caller owns) is the stored message with the plaintext as its content
int cli_send (cli_t *cli, const char *room_id, const cli_room_t *room, const cli_peer_t *me,
              const char *text, size_t len, json_t **sent);
//  Send text as me without looking at the room first (one round trip): 0
//  with *sent as cli_send's, *queued when relayd delivers it (a public or
//  joined LAN room; *lan for the latter); 1 when the room is encrypted
//  (nothing sent: use cli_room_open and cli_send); -1 on error
int cli_send_plain (cli_t *cli, const char *room_id, const cli_peer_t *me, const char *text,
                    size_t len, json_t **sent, bool *queued, bool *lan);
//  Every message of a room, in order, as a reader sees them (decrypted)
int cli_conversation (cli_t *cli, const char *room_id, json_t **messages);

//  Wait for the reply to id like aip_client_recv, in slices: stops early
//  with "cancelled" when the caller's hooks say so, ticking meanwhile
int cli_recv (cli_t *cli, uint64_t id, int timeout_ms, aip_reply_t *rep, bool *died,
              char *err, size_t errlen);
//  True when the caller's hooks say it gave up
bool cli_cancelled (cli_t *cli);

//  Unread messages from others for the AI peer of tool (or of
//  cli->default_tool), in room or in every room it joined; oldest first, at
//  most limit; mark: they count as seen. *data = {peer, messages, more}.
int cli_unread (cli_t *cli, const char *tool, const char *room_id, long limit, bool mark,
                json_t **data);

//  Command groups
//  Turn LAN mode on in the daemon set (starting it if needed); *info gets
//  {mode, address, port, public_key}. port 0: the running one, or 7899.
int cli_lan_start (cli_t *cli, int port, json_t **info);

//  The LAN peers the broker heard (beacons): [{id, machine, user, address,
//  port, public_key, tools: [...], last_seen, status}] (caller owns; empty
//  when LAN mode is off)
json_t *cli_lan_peers (cli_t *cli);

int cmd_daemon (cli_t *cli, int argc, char **argv);
int cmd_room (cli_t *cli, int argc, char **argv);
int cmd_chat (cli_t *cli, int argc, char **argv);
int cmd_history (cli_t *cli, int argc, char **argv);
int cmd_export (cli_t *cli, int argc, char **argv);
int cmd_identity (cli_t *cli, int argc, char **argv);
int cmd_list (cli_t *cli, int argc, char **argv);
int cmd_register (cli_t *cli, int argc, char **argv);
int cmd_invite (cli_t *cli, int argc, char **argv);
int cmd_quick (cli_t *cli, int argc, char **argv);
int cmd_discuss (cli_t *cli, int argc, char **argv);
int cmd_discover (cli_t *cli, int argc, char **argv);
int cmd_jobs (cli_t *cli, int argc, char **argv);
int cmd_wait (cli_t *cli, int argc, char **argv);
int cmd_cancel (cli_t *cli, int argc, char **argv);
int cmd_usage (cli_t *cli, int argc, char **argv);

//  Token usage (cmd_usage.c). A sum is a usage object with every integer
//  key at 0 (caller owns); cli_usage_add adds the valid values of one
//  usage object (absent or absurd ones count as nothing); _add_tool also
//  adds them under sum.by_tool.<tool> (with its model); _tokens is input +
//  output of one usage object
json_t *cli_usage_new (void);
void cli_usage_add (json_t *sum, const json_t *usage);
void cli_usage_add_tool (json_t *sum, const char *tool, const json_t *usage);
long long cli_usage_tokens (const json_t *usage);
int cmd_inbox (cli_t *cli, int argc, char **argv);
int cmd_hooks (cli_t *cli, int argc, char **argv);
int cmd_mcp (cli_t *cli, int argc, char **argv);
int cmd_web (cli_t *cli, int argc, char **argv);

//  Public rooms (cmd_room.c): how long chat waits for the relay
//  (AI_PEER_RELAY_WAIT_MS, default AIP_RELAY_WAIT_MS)
int cli_relay_wait_ms (void);
//  Is a public room in sync? Asks relayd briefly; false when it cannot say
bool cli_relay_ok (cli_t *cli, const char *room_id);

//  Send cli->pk and wait; on success *rep holds the ok reply (free it with
//  aip_reply_free). On an error reply or no reply, -1 with cli->err set.
int cli_call_reply (cli_t *cli, uint64_t id, aip_reply_t *rep);
//  Same, waiting at most timeout_ms
int cli_call_reply_timeout (cli_t *cli, uint64_t id, int timeout_ms, aip_reply_t *rep);

//  Every message of a room in order, a page of msg.list at a time: fn gets
//  each page's messages (msgpack, valid during the call: a large export
//  never holds the whole room, nor builds a JSON tree it does not print).
//  fn returns 0, or -1 to stop (then this returns -1). *total (optional)
//  counts the messages.
typedef int (cli_page_fn) (cli_t *cli, const aip_obj_t *messages, void *arg);
int cli_each_page (cli_t *cli, const char *room_id, cli_page_fn *fn, void *arg, size_t *total);
//  Every message of a room as one JSON array (as stored: not decrypted)
int cli_messages_json (cli_t *cli, const char *room_id, json_t **messages, size_t *total);

//  Display names two peers share (anyone can take any name on a relay):
//  human-facing renderings show such a name with its peer id. names maps a
//  name to the first peer id seen with it, or to "" once two share it.
//  Records name for peer_id; true if name is shared by now.
bool cli_name_shared (json_t *names, const char *name, const char *peer_id);
//  names seeded from a room's members (json array of {id, name}), or from
//  the daemons when members is NULL. Never NULL.
json_t *cli_room_names (cli_t *cli, const char *room_id, const json_t *members);
//  How many backticks a Markdown fence around text needs so that nothing in
//  it can close the fence: more than its longest run, at least 3
size_t cli_fence_len (const char *text, size_t len);
//  The words of a message joined as the original does (one space); NULL
//  when out of memory
char *cli_join_words (char **words, int count);

#endif
