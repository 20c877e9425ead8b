/*  aip_webhttp.h — the web view's HTTP side: the page's files (built into
    webd), the routes (POST /login, GET /api/session), the answers with
    their security headers, and the checks every request and the
    WebSocket's upgrade pass (aip_webauth: our Host, our Origin, a live
    session). Nothing but the login shell is served without a session;
    401 says nothing more. No CORS headers, ever.

    The actor hands it the HTTP callbacks of libwebsockets; the WebSocket
    itself, once upgraded, is aip_webpages'. */
#ifndef AIP_WEBHTTP_H_INCLUDED
#define AIP_WEBHTTP_H_INCLUDED

#include "aip_limits.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _aip_webhttp_t aip_webhttp_t;
//  A row of the route table (aip_webhttp.c)
typedef struct _aip_webroute_t aip_webroute_t;

//  An HTTP answer being written
typedef struct {
    unsigned status;            //  200, 204, 401, ...
    const char *type;           //  Content-Type, or NULL
    const unsigned char *body;  //  borrowed (an asset) or NULL
    size_t size;                //  body bytes
    size_t sent;                //  body bytes written so far
    bool headers_sent;          //  headers are out
    bool pending;               //  an answer waits for WRITEABLE
    char cookie [160];          //  a Set-Cookie value, or ""
} aip_webhttp_answer_t;

//  One connection's HTTP state. libwebsockets allocates it, zeroed, in
//  each connection's user data, so its size is public; only aip_webhttp
//  reads or writes its fields.
typedef struct {
    aip_webhttp_answer_t answer;    //  the answer
    const aip_webroute_t *route;    //  a POST's route, its body being read (NULL: none)
    bool post;                  //  a POST whose body is being read
    char body [AIP_WEB_MAX_BODY + 1];   //  the posted body
    size_t body_size;           //  bytes in body
    bool body_overflow;         //  the body went over AIP_WEB_MAX_BODY
} aip_webhttp_conn_t;

//  For the webd of home listening on 127.0.0.1:port
aip_webhttp_t *aip_webhttp_new (const char *home, int port);
void aip_webhttp_destroy (aip_webhttp_t **self_p);

//  One libwebsockets callback of an HTTP connection (or a WebSocket's
//  upgrade): its return value for lws (-1 closes the connection)
int aip_webhttp_callback (aip_webhttp_t *self, struct lws *wsi,
                          enum lws_callback_reasons reason, aip_webhttp_conn_t *conn,
                          void *in, size_t len);

void aip_webhttp_test (bool verbose);

#endif
