/*  aip_webhttp.c — the web view's HTTP side: files, routes, answers,
    login. See aip_webhttp.h. */
#include "aip_webhttp.h"
#include "aip_home.h"
#include "aip_webauth.h"
#include "aip_webmode.h"

#include <czmq.h>
#include <sodium.h>

//  The page's files, built into the binary (aip_web_assets.c, generated)
typedef struct {
    const char *path;           //  URL path ("/app.js")
    const char *type;           //  Content-Type
    const unsigned char *data;  //  bytes
    size_t size;                //  byte count
    bool public;                //  served without a session (the login shell)
} aip_web_asset_t;
extern const aip_web_asset_t aip_web_assets [];

#define SESSION_COOKIE "aip_session"

struct _aip_webhttp_t {
    char home [AIP_PATH_MAX];   //  $AI_PEERS_HOME (the login token is there)
    aip_webauth_t *auth;        //  Host, Origin, sessions, the policy
};

//  What a route does once its request (and a POST's body) is in
typedef void (s_route_fn) (aip_webhttp_t *self, struct lws *wsi, aip_webhttp_conn_t *c);

struct _aip_webroute_t {
    const char *path;           //  the URL path
    bool post;                  //  POST (its body read first), else GET
    bool public;                //  answered without a session
    s_route_fn *fn;             //  what answers it
};

static s_route_fn s_route_login, s_route_session;

//  Every path webd answers besides the page's files
static const aip_webroute_t s_routes [] = {
    { "/login",       true,  true,  s_route_login },
    { "/api/session", false, false, s_route_session },
};

aip_webhttp_t *
aip_webhttp_new (const char *home, int port)
{
    aip_webhttp_t *self = (aip_webhttp_t *) zmalloc (sizeof (aip_webhttp_t));
    snprintf (self->home, sizeof self->home, "%s", home);
    self->auth = aip_webauth_new (port);
    return self;
}

void
aip_webhttp_destroy (aip_webhttp_t **self_p)
{
    aip_webhttp_t *self = *self_p;
    if (!self)
        return;
    aip_webauth_destroy (&self->auth);
    free (self);
    *self_p = NULL;
}

static const aip_web_asset_t *
s_asset (const char *path)
{
    if (streq (path, "/"))
        path = "/index.html";
    for (const aip_web_asset_t *a = aip_web_assets; a->path; a++)
        if (streq (a->path, path))
            return a;
    return NULL;
}

static const aip_webroute_t *
s_route (const char *path, bool post)
{
    for (size_t i = 0; i < sizeof s_routes / sizeof s_routes [0]; i++)
        if (s_routes [i].post == post && streq (s_routes [i].path, path))
            return &s_routes [i];
    return NULL;
}

//  ---------------------------------------------------------------------
//  The checks, on the request's headers

//  The request's Host is ours (a DNS-rebinding page would send its own)
static bool
s_host_ok (aip_webhttp_t *self, struct lws *wsi)
{
    char host [64];
    if (lws_hdr_copy (wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0)
        return false;
    return aip_webauth_host_ok (self->auth, host);
}

static bool
s_origin_ok (aip_webhttp_t *self, struct lws *wsi, bool required)
{
    char origin [96];
    if (lws_hdr_copy (wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0)
        return !required && lws_hdr_total_length (wsi, WSI_TOKEN_ORIGIN) == 0;
    return aip_webauth_origin_ok (self->auth, origin);
}

//  The request carries a live session cookie
static bool
s_session_ok (aip_webhttp_t *self, struct lws *wsi)
{
    char value [AIP_WEB_TOKEN_HEX + 8];
    size_t max = sizeof value;
    if (lws_http_cookie_get (wsi, SESSION_COOKIE, value, &max) || max != AIP_WEB_TOKEN_HEX)
        return false;
    bool found = aip_webauth_session_ok (self->auth, value, max);
    sodium_memzero (value, sizeof value);
    return found;
}

//  ---------------------------------------------------------------------
//  Answers

static void
s_answer (struct lws *wsi, aip_webhttp_conn_t *c, unsigned status, const char *type,
          const unsigned char *body, size_t size)
{
    c->answer.status = status;
    c->answer.type = type;
    c->answer.body = body;
    c->answer.size = size;
    c->answer.sent = 0;
    c->answer.headers_sent = false;
    c->answer.pending = true;
    lws_callback_on_writable (wsi);
}

#define S_TEXT(s) (const unsigned char *) (s), sizeof (s) - 1

static void
s_answer_text (struct lws *wsi, aip_webhttp_conn_t *c, unsigned status)
{
    switch (status) {
        case 401: s_answer (wsi, c, status, "text/plain", S_TEXT ("401 Unauthorized\n")); break;
        case 403: s_answer (wsi, c, status, "text/plain", S_TEXT ("403 Forbidden\n")); break;
        case 404: s_answer (wsi, c, status, "text/plain", S_TEXT ("404 Not Found\n")); break;
        case 405: s_answer (wsi, c, status, "text/plain", S_TEXT ("405 Method Not Allowed\n"));
                  break;
        case 413: s_answer (wsi, c, status, "text/plain",
                            S_TEXT ("413 Payload Too Large: at most 4096 bytes\n")); break;
        default:  s_answer (wsi, c, status, "text/plain", S_TEXT ("")); break;
    }
}

//  Write the answer: headers first, then the body in pieces
static int
s_answer_write (aip_webhttp_t *self, struct lws *wsi, aip_webhttp_conn_t *c)
{
    aip_webhttp_answer_t *a = &c->answer;
    if (!a->pending)
        return 0;
    if (!a->headers_sent) {
        unsigned char buf [LWS_PRE + 2048];
        unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
        if (lws_add_http_common_headers (wsi, a->status, a->type, a->size, &p, end))
            return -1;
        struct { const char *name, *value; } headers [] = {
            { "content-security-policy:", aip_webauth_csp (self->auth) },
            { "x-content-type-options:", "nosniff" },
            { "x-frame-options:", "DENY" },
            { "referrer-policy:", "no-referrer" },
            { "cache-control:", "no-store" },
            { "cross-origin-opener-policy:", "same-origin" },
            { "cross-origin-resource-policy:", "same-origin" },
            { "set-cookie:", *a->cookie ? a->cookie : NULL },
        };
        for (size_t i = 0; i < sizeof headers / sizeof headers [0]; i++)
            if (headers [i].value
            &&  lws_add_http_header_by_name (wsi, (const unsigned char *) headers [i].name,
                                             (const unsigned char *) headers [i].value,
                                             (int) strlen (headers [i].value), &p, end))
                return -1;
        sodium_memzero (a->cookie, sizeof a->cookie);
        if (lws_finalize_write_http_header (wsi, start, &p, end))
            return -1;
        a->headers_sent = true;
        if (a->size > 0) {
            lws_callback_on_writable (wsi);
            return 0;
        }
    }
    else {
        unsigned char chunk [LWS_PRE + 16384];
        size_t n = a->size - a->sent < 16384 ? a->size - a->sent : 16384;
        memcpy (chunk + LWS_PRE, a->body + a->sent, n);
        a->sent += n;
        bool last = a->sent >= a->size;
        if (lws_write (wsi, chunk + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP)
            != (int) n)
            return -1;
        if (!last) {
            lws_callback_on_writable (wsi);
            return 0;
        }
    }
    a->pending = false;
    return lws_http_transaction_completed (wsi) ? -1 : 0;
}

//  ---------------------------------------------------------------------
//  Routes

//  The posted token for a session cookie, once; nothing else is said
static void
s_route_login (aip_webhttp_t *self, struct lws *wsi, aip_webhttp_conn_t *c)
{
    if (c->body_overflow) {
        s_answer_text (wsi, c, 413);
        return;
    }
    //  A page of another origin cannot log this browser in either
    size_t len = c->body_size;
    while (len > 0 && (c->body [len - 1] == '\n' || c->body [len - 1] == '\r'))
        len--;
    if (!s_origin_ok (self, wsi, false) || !aip_webmode_token_take (self->home, c->body, len)) {
        zsys_warning ("webd: a login with a wrong, used or expired token was refused");
        s_answer_text (wsi, c, 401);
        return;
    }
    sodium_memzero (c->body, sizeof c->body);
    snprintf (c->answer.cookie, sizeof c->answer.cookie,
              SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict",
              aip_webauth_session_new (self->auth));
    char cookie [sizeof c->answer.cookie];
    memcpy (cookie, c->answer.cookie, sizeof cookie);
    s_answer (wsi, c, 204, NULL, NULL, 0);
    memcpy (c->answer.cookie, cookie, sizeof cookie);
    sodium_memzero (cookie, sizeof cookie);
    zsys_info ("webd: a browser logged in");
}

//  The page asks whether its cookie is live (the route's check said so)
static void
s_route_session (aip_webhttp_t *self, struct lws *wsi, aip_webhttp_conn_t *c)
{
    s_answer (wsi, c, 204, NULL, NULL, 0);
}

//  A POST's body is in (or there was none): its route, if it may
static void
s_post_complete (aip_webhttp_t *self, struct lws *wsi, aip_webhttp_conn_t *c)
{
    c->post = false;
    const aip_webroute_t *route = c->route;
    c->route = NULL;
    bool session = s_session_ok (self, wsi);
    if (route && (route->public || session))
        route->fn (self, wsi, c);
    else
        s_answer_text (wsi, c, session ? 405 : 401);
}

static int
s_request (aip_webhttp_t *self, struct lws *wsi, aip_webhttp_conn_t *c, const char *uri)
{
    memset (&c->answer, 0, sizeof c->answer);
    c->route = NULL;
    c->post = false;
    c->body_size = 0;
    c->body_overflow = false;
    if (!s_host_ok (self, wsi)) {
        s_answer_text (wsi, c, 403);
        return 0;
    }
    if (lws_hdr_total_length (wsi, WSI_TOKEN_POST_URI) > 0) {
        //  Answered once the body is in (HTTP_BODY_COMPLETION)
        c->route = s_route (uri, true);
        c->post = true;
        //  No length and not chunked: there is no body to wait for
        char length [24] = "";
        lws_hdr_copy (wsi, length, sizeof length, WSI_TOKEN_HTTP_CONTENT_LENGTH);
        if ((!*length || atol (length) == 0)
        &&  lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) == 0)
            s_post_complete (self, wsi, c);
        return 0;
    }
    bool session = s_session_ok (self, wsi);
    if (!lws_hdr_total_length (wsi, WSI_TOKEN_GET_URI)) {
        s_answer_text (wsi, c, session ? 405 : 401);
        return 0;
    }
    const aip_web_asset_t *asset = s_asset (uri);
    const aip_webroute_t *route = s_route (uri, false);
    if (asset && (asset->public || session))
        s_answer (wsi, c, 200, asset->type, asset->data, asset->size);
    else
    if (route && (route->public || session))
        route->fn (self, wsi, c);
    else
        s_answer_text (wsi, c, session ? 404 : 401);
    return 0;
}

int
aip_webhttp_callback (aip_webhttp_t *self, struct lws *wsi, enum lws_callback_reasons reason,
                      aip_webhttp_conn_t *c, void *in, size_t len)
{
    switch (reason) {
        case LWS_CALLBACK_HTTP:
            return s_request (self, wsi, c, (const char *) in);
        case LWS_CALLBACK_HTTP_BODY:
            if (c->route && c->post && !c->body_overflow && in && len > 0) {
                if (c->body_size + len > AIP_WEB_MAX_BODY)
                    c->body_overflow = true;
                else {
                    memcpy (c->body + c->body_size, in, len);
                    c->body_size += len;
                    c->body [c->body_size] = 0;
                }
            }
            return 0;
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            if (c->post)
                s_post_complete (self, wsi, c);
            return 0;
        case LWS_CALLBACK_HTTP_WRITEABLE:
            return s_answer_write (self, wsi, c);
        case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
            //  Our page only: our Host, our Origin, a live session
            if (!s_host_ok (self, wsi) || !s_origin_ok (self, wsi, true)) {
                zsys_warning ("webd: a WebSocket from another origin was refused");
                lws_return_http_status (wsi, HTTP_STATUS_FORBIDDEN, NULL);
                return 1;
            }
            if (!s_session_ok (self, wsi)) {
                lws_return_http_status (wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
                return 1;
            }
            return 0;
        default:
            return lws_callback_http_dummy (wsi, reason, c, in, len);
    }
}

//  ---------------------------------------------------------------------
//  Self-test

void
aip_webhttp_test (bool verbose)
{
    printf (" * aip_webhttp: ");
    //  The files of the page are built in, the login shell public only
    const aip_web_asset_t *index = s_asset ("/");
    assert (index && index->public && index->size > 0);
    assert (s_asset ("/index.html") == index);
    assert (s_asset ("/app.js") && !s_asset ("/app.js")->public);
    assert (strstr (s_asset ("/app.js")->type, "text/javascript"));
    assert (s_asset ("/login.js") && s_asset ("/login.js")->public);
    assert (!s_asset ("/../etc/passwd"));
    assert (!s_asset ("/app.js?x") && !s_asset ("app.js") && !s_asset (""));
    //  The routes: the login is the one public POST; the rest want a
    //  session, and a path of one method is not the other's
    const aip_webroute_t *login = s_route ("/login", true);
    assert (login && login->public && login->fn == s_route_login);
    assert (!s_route ("/login", false));
    const aip_webroute_t *session = s_route ("/api/session", false);
    assert (session && !session->public);
    assert (!s_route ("/api/session", true));
    assert (!s_route ("/api/session/", false) && !s_route ("/LOGIN", true));
    for (size_t i = 0; i < sizeof s_routes / sizeof s_routes [0]; i++)
        assert (!s_asset (s_routes [i].path));      //  a route never shadows a file
    aip_webhttp_t *http = aip_webhttp_new ("/nonexistent", 8123);
    assert (http && http->auth);
    assert (strstr (aip_webauth_csp (http->auth), "ws://127.0.0.1:8123"));
    aip_webhttp_destroy (&http);
    aip_webhttp_destroy (&http);
    assert (!http);
    if (verbose)
        printf ("(assets, routes) ");
    printf ("OK\n");
}
