/*  aip_limits.h — every limit of ai-peer, in one place.
    Each is enforced where input enters (socket, decoder, CLI argument) and
    answered with a clear error, never a crash. */
#ifndef AIP_LIMITS_H_INCLUDED
#define AIP_LIMITS_H_INCLUDED

//  Wire protocol version carried in every request and reply
#define AIP_PROTO_VERSION       1

//  Message content, in bytes of UTF-8 (the original accepted anything)
#define AIP_MAX_CONTENT         (256 * 1024)
//  Content as stored and sent: the ciphertext of a full-size message in an
//  encrypted room is larger than its plaintext (base64, nonce, tag)
#define AIP_MAX_CONTENT_WIRE    (AIP_MAX_CONTENT * 4 / 3 + 1024)
//  Message metadata (a JSON object serialised as text)
#define AIP_MAX_METADATA        (16 * 1024)
//  Names, tools, machines, hosts, urls, tokens
#define AIP_MAX_NAME            256
#define AIP_MAX_URL             2048
//  Ids given by users or peers: ^[A-Za-z0-9_-]{1,64}$
#define AIP_MAX_ID              64
//  Timestamps (ISO-8601)
#define AIP_MAX_TIME            40

//  A request on the client socket (content + envelope)
#define AIP_MAX_REQUEST         (AIP_MAX_CONTENT_WIRE * 3 + 64 * 1024)
//  A reply or a worker frame (history pages are the largest)
#define AIP_MAX_REPLY           (64 * 1024 * 1024)
//  Messages in one page of history
#define AIP_MAX_PAGE            10000
//  Bytes of content in one page of history; the page stops early past it
//  (a page always holds at least one message); this caps one reply
#define AIP_MAX_PAGE_BYTES      (4 * 1024 * 1024)
//  Decoder: nesting depth and element count of any msgpack document
#define AIP_MAX_DEPTH           16
#define AIP_MAX_ELEMENTS        (1024 * 1024)

//  Peers in one room (the relay enforces 200 too)
#define AIP_MAX_ROOM_PEERS      200
//  Requests waiting in the broker for a worker of their service
#define AIP_MAX_QUEUED          100000
//  Requests a storage worker takes in one group commit
#define AIP_MAX_BATCH           512

//  Timing (milliseconds)
#define AIP_HEARTBEAT_MS        1000
#define AIP_HEARTBEAT_LIVENESS  3
#define AIP_QUEUE_WAIT_MS       10000   //  a request waits this long for a worker
#define AIP_CLIENT_TIMEOUT_MS   15000   //  the CLI waits this long for a reply
#define AIP_CLIENT_MAX_PENDING  1024    //  an actor's store requests in flight at once
#define AIP_START_TIMEOUT_MS    10000   //  the CLI waits this long for auto-start
#define AIP_STOP_TIMEOUT_MS     5000    //  daemon stop waits this long
#define AIP_RESTART_MIN_MS      100     //  supervisor backoff
#define AIP_RESTART_MAX_MS      5000

//  AI tools (spawnd)
//  spawnd workers brokerd starts by default, and at most (--workers N)
#define AIP_SPAWN_WORKERS       4
#define AIP_MAX_SPAWN_WORKERS   64
//  The built-in AI tools of spawnd's adapter table (spawnd/aip_adapter.c,
//  whose self-test checks this list), claude being claude-code's alias
#define AIP_BUILTIN_TOOLS       "claude", "claude-code", "codex", "opencode", "gemini"
//  Said by brokerd to an invite, and by the CLI before quick makes a room
#define AIP_NO_SPAWN_WORKER     "no spawn worker runs: the daemons were started with " \
                                "--workers 0, so no AI tool can be invited; restart them " \
                                "with 'ai-peer daemon stop' then 'ai-peer daemon start " \
                                "--workers N' (or connect a spawn worker from another machine)"
//  A spawn request waits this long for a free worker (invites are long)
#define AIP_SPAWN_QUEUE_WAIT_MS (10 * 60 * 1000)
//  Default and maximum time a tool may run (seconds)
#define AIP_TOOL_TIMEOUT_S      120
#define AIP_MAX_TOOL_TIMEOUT_S  3600
//  After SIGTERM to a tool's process group, SIGKILL follows this late
#define AIP_TOOL_KILL_GRACE_MS  2000
//  After a tool exits, its stdout must close this soon (a grandchild may
//  hold it open); then the group is killed
#define AIP_TOOL_EOF_GRACE_MS   500
//  The CLI waits for a spawn reply this long beyond the tool's timeout
#define AIP_SPAWN_REPLY_MARGIN_MS 30000
//  Bytes of a tool's stdout kept (structured output wraps the answer)
#define AIP_MAX_TOOL_OUTPUT     (4 * 1024 * 1024)
//  Bytes of a tool's stderr kept (for error messages)
#define AIP_MAX_TOOL_STDERR     (64 * 1024)
//  Lines and bytes of a tool's own words quoted in an error
#define AIP_TOOL_ERROR_LINES    5
#define AIP_TOOL_ERROR_BYTES    600
//  The prompt sent to a tool: total bytes, and bytes of one history message
#define AIP_MAX_PROMPT          (200 * 1024)
#define AIP_MAX_PROMPT_MESSAGE  (16 * 1024)
//  Messages of history in a prompt: default and maximum
#define AIP_PROMPT_HISTORY      30
#define AIP_MAX_PROMPT_HISTORY  1000
//  The user's tool config file ($AI_PEERS_HOME/tools.json) and its tools
#define AIP_MAX_TOOLS_FILE      (256 * 1024)
#define AIP_MAX_TOOLS           64
#define AIP_MAX_TOOL_ARGS       64
#define AIP_MAX_TOOL_ENV        64
//  While a tool runs, a progress event at most this often, with at most
//  this many bytes of the latest output
#define AIP_PROGRESS_MS         500
#define AIP_PROGRESS_TAIL       200
//  A bounded 'TOOL --version' call by discover
#define AIP_VERSION_TIMEOUT_MS  5000
#define AIP_MAX_VERSION         200
//  Asynchronous invites (invite --async) the broker remembers, and clients
//  waiting on them
#define AIP_MAX_JOBS            1000
#define AIP_MAX_JOB_WAITERS     1000
//  Tools one quick or discuss may name
#define AIP_MAX_QUICK_TOOLS     16
#define AIP_MAX_DISCUSS_ROUNDS  20
//  Hops 'discuss --follow-mentions N' may take from one turn (a loop guard)
#define AIP_MAX_FOLLOW_MENTIONS 5
//  Token usage of one answer (metadata.usage): a value beyond its bound is
//  absurd and not counted (plain literals: storaged puts them in SQL)
#define AIP_USAGE_MAX_TOKENS        1000000000
#define AIP_USAGE_MAX_COST_USD      10000
#define AIP_USAGE_MAX_DURATION_MS   604800000
//  Tools one 'ai-peer usage' answer lists
#define AIP_MAX_USAGE_TOOLS         1000
//  'quick/discuss --max-tokens N': at most this (input + output, all tools)
#define AIP_MAX_TOKEN_BUDGET        1000000000000

//  Public rooms (relayd)
//  Room tokens: 32 random bytes as 64 hex chars
#define AIP_RELAY_TOKEN_HEX     64
//  A relay's HTTP answer (a page of up to AIP_RELAY_PAGE messages)
#define AIP_RELAY_MAX_BODY      (16 * 1024 * 1024)
//  One WebSocket message from a relay (one message event)
#define AIP_RELAY_MAX_WS_MESSAGE (1024 * 1024)
//  Messages asked for per catch-up request (the relay caps at 1000)
#define AIP_RELAY_PAGE          200
//  HTTP requests to relays in flight at once
#define AIP_RELAY_MAX_INFLIGHT  16
//  Public rooms one relayd keeps in sync
#define AIP_RELAY_MAX_ROOMS     1000
//  Messages of one peer posted in one POST /rooms/{id}/batch (our relay
//  takes 100), and the content bytes of one batch (its body may be 4 MiB)
#define AIP_RELAY_BATCH         100
#define AIP_RELAY_BATCH_BYTES   (1024 * 1024)
//  Messages relayd holds in memory from the outbox at once
#define AIP_RELAY_OUTBOX_BATCH  1000
//  Timing (milliseconds)
#define AIP_RELAY_HTTP_TIMEOUT_MS   10000   //  one HTTP request to a relay
#define AIP_RELAY_CONNECT_TIMEOUT_MS 5000   //  its TCP/TLS connect
#define AIP_RELAY_WAIT_MS       3000    //  chat waits this long for delivery (default)
#define AIP_RELAY_MAX_WAIT_MS   60000   //  and at most this long
#define AIP_RELAY_POLL_MS       2000    //  polling while the WebSocket is down
#define AIP_RELAY_SAFETY_POLL_MS 10000  //  and while it is up (a silent socket)
#define AIP_RELAY_RESCAN_MS     5000    //  outbox and rooms rescanned this often
#define AIP_RELAY_RETRY_MIN_MS  250     //  delivery retry backoff (x2 each, jittered)
#define AIP_RELAY_RETRY_MAX_MS  30000
#define AIP_RELAY_WS_RETRY_MIN_MS 500   //  WebSocket reconnect backoff
#define AIP_RELAY_WS_RETRY_MAX_MS 30000
#define AIP_RELAY_STORE_TIMEOUT_MS 5000 //  relayd waits this long for storaged
//  The default relay (AI_PEER_RELAY overrides it)
#define AIP_RELAY_DEFAULT_URL   "https://relay.ai-peer.chat"

//  LAN mode (brokerd's CURVE TCP endpoint, beacons; relayd's LAN links)
#define AIP_LAN_DEFAULT_PORT    7899
//  Beacons use this UDP port whatever the TCP port, so hubs on other TCP
//  ports still hear each other
#define AIP_LAN_BEACON_PORT     7899
//  Beacon: sent this often; a peer not heard for AIP_LAN_GONE_MS is "gone",
//  and forgotten after AIP_LAN_FORGET_MS
#define AIP_LAN_BEACON_MS       1000
#define AIP_LAN_GONE_MS         30000
#define AIP_LAN_FORGET_MS       (10 * 60 * 1000)
//  LAN peers remembered at once (a noisy network cannot grow the table)
#define AIP_LAN_MAX_PEERS       256
//  A zbeacon payload is one UDP frame of at most 255 bytes
#define AIP_LAN_BEACON_MAX      255
//  CURVE keys: 32 bytes, 64 hex chars in connection strings
#define AIP_LAN_KEY_HEX         64
//  lan.fetch: the hub holds an empty fetch at most this long (push); the
//  joiner asks for AIP_LAN_FETCH_WAIT_MS and gives up on an answer after
//  that plus AIP_LAN_TIMEOUT_MS
#define AIP_LAN_MAX_WAIT_MS     60000
#define AIP_LAN_FETCH_WAIT_MS   20000
#define AIP_LAN_TIMEOUT_MS      5000
//  Messages per lan.fetch answer
#define AIP_LAN_PAGE            500
//  A hub's answer (a page of messages)
#define AIP_LAN_MAX_REPLY       (AIP_MAX_PAGE_BYTES + 1024 * 1024)

//  A line of a tool's structured output (a longer one breaks the stream)
#define AIP_MAX_STREAM_LINE     (8 * 1024 * 1024)
//  Progress events carry the answer so far: at most this often (<= 20/s)
//  and at most its last this many bytes
#define AIP_PROGRESS_TEXT_MS    50
#define AIP_PROGRESS_TEXT_MAX   (64 * 1024)
//  ... and as they travel: the tail and the text are repaired UTF-8, where
//  each bad byte may have become U+FFFD (3 bytes)
#define AIP_PROGRESS_TAIL_WIRE  (3 * AIP_PROGRESS_TAIL)
#define AIP_PROGRESS_TEXT_WIRE  (3 * AIP_PROGRESS_TEXT_MAX)
//  A protocol server (codex app-server, opencode acp) that has answered is
//  given this long to exit once its stdin is closed
#define AIP_TOOL_FINISH_GRACE_MS 1000

//  What the broker buffers for one client, in bytes: the requests it has
//  in flight (their bodies, plus a page for a request that lists) and the
//  replies its socket would not take yet. A client over it is refused.
#define AIP_CLIENT_BUDGET       (128 * 1024 * 1024)
//  A request counts at least this much against its client's budget
#define AIP_CLIENT_MIN_COST     4096
//  Replies queued in ZeroMQ's pipe to one client before the broker keeps
//  them itself (where they are counted)
#define AIP_CLIENT_SNDHWM       16
//  Bytes of replies a storage worker holds in one group commit: a batch
//  stops taking requests past it
#define AIP_MAX_BATCH_BYTES     (64 * 1024 * 1024)

//  The web view (webd, ai-peer web)
#define AIP_WEB_PORT            7898
//  A login token printed by ai-peer web works once, within this time
#define AIP_WEB_TOKEN_TTL_S     600
//  Logged-in browser sessions kept (the oldest goes first)
#define AIP_WEB_MAX_SESSIONS    16
//  Open connections (HTTP and WebSocket) webd serves at once
#define AIP_WEB_MAX_CONNS       64
//  A WebSocket message from a page (a post is at most AIP_MAX_CONTENT,
//  JSON-escaped)
#define AIP_WEB_MAX_FRAME       (1024 * 1024)
//  An HTTP request body (only the login posts one)
#define AIP_WEB_MAX_BODY        4096
//  Bytes queued for one page that does not read: beyond, it is closed
#define AIP_WEB_MAX_QUEUE       (8 * 1024 * 1024)
//  Requests a page may make: this many a second, in bursts of AIP_WEB_BURST
#define AIP_WEB_RATE            20
#define AIP_WEB_BURST           60
//  Messages of a room sent when a page opens it
#define AIP_WEB_HISTORY         200
//  ai-peer commands (invite, quick, discuss, join, export) running at once
#define AIP_WEB_MAX_JOBS        8
//  Output of one such command read back (an export)
#define AIP_WEB_MAX_JOB_OUTPUT  (32 * 1024 * 1024)

//  How far ahead of this machine's clock a relay cursor (a relay's time) may
//  be: clocks differ, but a cursor far in the future stops every catch-up
#define AIP_CURSOR_AHEAD_MAX_MS (24LL * 3600 * 1000)

#endif
