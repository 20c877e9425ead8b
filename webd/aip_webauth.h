/*  aip_webauth.h — who may speak to webd: requests that name our own Host
    (a DNS-rebinding page names its own), WebSockets from our own Origin,
    and browsers that hold a live session id (the HttpOnly cookie a login
    with the one-use token gave them). Knows nothing of HTTP itself: the
    caller hands it the header values (aip_webhttp reads them).

    Also the Content-Security-Policy every answer carries: scripts, styles
    and images of our own only, connections to our own WebSocket, no
    inline script, no frame, no form, no base URI. */
#ifndef AIP_WEBAUTH_H_INCLUDED
#define AIP_WEBAUTH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _aip_webauth_t aip_webauth_t;

//  For a webd listening on 127.0.0.1:port
aip_webauth_t *aip_webauth_new (int port);
//  Forgets (and wipes) every session
void aip_webauth_destroy (aip_webauth_t **self_p);

//  "127.0.0.1:PORT" or "localhost:PORT"
bool aip_webauth_host_ok (aip_webauth_t *self, const char *host);
//  "http://127.0.0.1:PORT" or "http://localhost:PORT"
bool aip_webauth_origin_ok (aip_webauth_t *self, const char *origin);
//  value (len bytes, the cookie's) is a live session id (constant time)
bool aip_webauth_session_ok (aip_webauth_t *self, const char *value, size_t len);
//  A new session id (AIP_WEB_TOKEN_HEX hex digits, borrowed until the next
//  call); the oldest is forgotten when AIP_WEB_MAX_SESSIONS are live
const char *aip_webauth_session_new (aip_webauth_t *self);
//  The Content-Security-Policy header's value
const char *aip_webauth_csp (aip_webauth_t *self);

void aip_webauth_test (bool verbose);

#endif
