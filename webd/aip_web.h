/*  aip_web.h — the web view's actor: HTTP and WebSocket (libwebsockets) on
    127.0.0.1 only, for the user of this machine only.

    It talks to the other daemons only through brokerd: requests like any
    client (proto/aip_client), live updates from the broker's PUB socket
    (run/events.ipc). One thread: libwebsockets' loop also watches the
    actor pipe, the broker sockets (their ZMQ_FD) and the pipes of the
    ai-peer commands it runs for a page (see aip_webjob.h).

    Login: ai-peer web prints http://127.0.0.1:PORT/#t=TOKEN; the page posts
    the token (run/web.token, one use) to /login and gets an HttpOnly,
    SameSite=Strict session cookie. Every other request and the WebSocket
    upgrade need that cookie (else 401, nothing more said); the WebSocket
    also needs our own Origin, and every request our own Host (a DNS
    rebinding page has another). No CORS headers, ever.

    The page and webd speak JSON over the WebSocket:
      page -> webd {op:"rooms"} | {op:"open", room} | {op:"send", room, text}
                   | {op:"invite", room, tool, context?} | {op:"discover"}
                   | {op:"quick", question, tools:[...]}
                   | {op:"discuss", room?, tools:[...], rounds}
                   | {op:"join", link, password?} | {op:"create", name}
                   | {op:"export", room, format:"md"|"json"}
      webd -> page {type:"hello", me} | {type:"rooms", rooms} | {type:"room", room}
                   | {type:"history", room, messages} | {type:"message", message}
                   | {type:"progress", room, msg_id, tool, bytes, elapsed_ms, done, html?}
                   | {type:"tools", tools} | {type:"sent", room, id}
                   | {type:"job", id, kind, state, what, error?, room?}
                   | {type:"export", room, format, filename, content}
                   | {type:"error", message}
    A message's text reaches the page only as HTML rendered by cmark in safe
    mode (aip_markdown.h); names and the rest are plain strings the page
    puts in with textContent. */
#ifndef AIP_WEB_H_INCLUDED
#define AIP_WEB_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

typedef struct {
    const char *home;           //  $AI_PEERS_HOME
    int port;                   //  port to listen on; -1: web/mode's (or 7898)
} aip_web_args_t;

//  The actor (zactor_new (aip_web, &args)); signals 0 once it listens
//  (run/web.json written), -1 when it cannot (the reason in run/web.json
//  and the log)
void aip_web (zsock_t *pipe, void *args);

void aip_web_test (bool verbose);

#endif
