/*  aip_webauth.c — Host, Origin and session checks of the web view. See
    aip_webauth.h. */
#include "aip_webauth.h"
#include "aip_limits.h"
#include "aip_webmode.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _aip_webauth_t {
    char hosts [2][32];         //  Host headers we answer to
    char origins [2][48];       //  Origin headers we accept
    char csp [400];             //  Content-Security-Policy
    char sessions [AIP_WEB_MAX_SESSIONS][AIP_WEB_TOKEN_HEX + 1];   //  "" or a session id
    size_t next_session;        //  slot the next login takes (oldest first)
};

aip_webauth_t *
aip_webauth_new (int port)
{
    aip_webauth_t *self = (aip_webauth_t *) calloc (1, sizeof (aip_webauth_t));
    assert (self);
    snprintf (self->hosts [0], sizeof self->hosts [0], "127.0.0.1:%d", port);
    snprintf (self->hosts [1], sizeof self->hosts [1], "localhost:%d", port);
    snprintf (self->origins [0], sizeof self->origins [0], "http://127.0.0.1:%d", port);
    snprintf (self->origins [1], sizeof self->origins [1], "http://localhost:%d", port);
    //  Scripts and styles of our own only; no inline script, no other
    //  origin, no plugin, no frame; images of our own (a Markdown image of
    //  another site is not fetched: nothing tells a peer it was read)
    snprintf (self->csp, sizeof self->csp,
              "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
              "connect-src 'self' ws://127.0.0.1:%d ws://localhost:%d; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'", port, port);
    return self;
}

void
aip_webauth_destroy (aip_webauth_t **self_p)
{
    aip_webauth_t *self = *self_p;
    if (!self)
        return;
    sodium_memzero (self->sessions, sizeof self->sessions);
    free (self);
    *self_p = NULL;
}

bool
aip_webauth_host_ok (aip_webauth_t *self, const char *host)
{
    return host && (strcmp (host, self->hosts [0]) == 0 || strcmp (host, self->hosts [1]) == 0);
}

bool
aip_webauth_origin_ok (aip_webauth_t *self, const char *origin)
{
    return origin
        && (strcmp (origin, self->origins [0]) == 0 || strcmp (origin, self->origins [1]) == 0);
}

bool
aip_webauth_session_ok (aip_webauth_t *self, const char *value, size_t len)
{
    if (!value || len != AIP_WEB_TOKEN_HEX)
        return false;
    //  Every slot is compared: the time says nothing of which one matched
    bool found = false;
    for (size_t i = 0; i < AIP_WEB_MAX_SESSIONS; i++)
        if (*self->sessions [i]
        &&  sodium_memcmp (self->sessions [i], value, AIP_WEB_TOKEN_HEX) == 0)
            found = true;
    return found;
}

const char *
aip_webauth_session_new (aip_webauth_t *self)
{
    unsigned char raw [AIP_WEB_TOKEN_HEX / 2];
    randombytes_buf (raw, sizeof raw);
    char *slot = self->sessions [self->next_session];
    self->next_session = (self->next_session + 1) % AIP_WEB_MAX_SESSIONS;
    sodium_bin2hex (slot, AIP_WEB_TOKEN_HEX + 1, raw, sizeof raw);
    sodium_memzero (raw, sizeof raw);
    return slot;
}

const char *
aip_webauth_csp (aip_webauth_t *self)
{
    return self->csp;
}

//  ---------------------------------------------------------------------
//  Self-test

void
aip_webauth_test (bool verbose)
{
    printf (" * aip_webauth: ");
    assert (sodium_init () >= 0);
    aip_webauth_t *auth = aip_webauth_new (8123);
    //  Our Host and Origin only: not another port, not another name
    assert (aip_webauth_host_ok (auth, "127.0.0.1:8123"));
    assert (aip_webauth_host_ok (auth, "localhost:8123"));
    assert (!aip_webauth_host_ok (auth, "127.0.0.1:8124"));
    assert (!aip_webauth_host_ok (auth, "evil.example:8123"));
    assert (!aip_webauth_host_ok (auth, "127.0.0.1:81234"));
    assert (!aip_webauth_host_ok (auth, NULL));
    assert (aip_webauth_origin_ok (auth, "http://127.0.0.1:8123"));
    assert (aip_webauth_origin_ok (auth, "http://localhost:8123"));
    assert (!aip_webauth_origin_ok (auth, "https://127.0.0.1:8123"));
    assert (!aip_webauth_origin_ok (auth, "http://evil.example"));
    assert (!aip_webauth_origin_ok (auth, "null"));
    assert (!aip_webauth_origin_ok (auth, NULL));

    //  A session id is live once made, never a prefix or a guess of it
    char first [AIP_WEB_TOKEN_HEX + 1];
    snprintf (first, sizeof first, "%s", aip_webauth_session_new (auth));
    assert (strlen (first) == AIP_WEB_TOKEN_HEX);
    assert (strspn (first, "0123456789abcdef") == AIP_WEB_TOKEN_HEX);
    assert (aip_webauth_session_ok (auth, first, AIP_WEB_TOKEN_HEX));
    assert (!aip_webauth_session_ok (auth, first, AIP_WEB_TOKEN_HEX - 1));
    char wrong [AIP_WEB_TOKEN_HEX + 1];
    memcpy (wrong, first, sizeof wrong);
    wrong [0] = wrong [0] == '0' ? '1' : '0';
    assert (!aip_webauth_session_ok (auth, wrong, AIP_WEB_TOKEN_HEX));
    char empty [AIP_WEB_TOKEN_HEX + 1];
    memset (empty, 0, sizeof empty);
    assert (!aip_webauth_session_ok (auth, empty, AIP_WEB_TOKEN_HEX));
    assert (!aip_webauth_session_ok (auth, NULL, 0));
    //  The oldest is forgotten once every slot is taken; the others live
    char second [AIP_WEB_TOKEN_HEX + 1];
    snprintf (second, sizeof second, "%s", aip_webauth_session_new (auth));
    assert (strcmp (first, second) != 0);
    for (int i = 2; i < AIP_WEB_MAX_SESSIONS; i++)
        aip_webauth_session_new (auth);
    assert (aip_webauth_session_ok (auth, first, AIP_WEB_TOKEN_HEX));
    aip_webauth_session_new (auth);
    assert (!aip_webauth_session_ok (auth, first, AIP_WEB_TOKEN_HEX));
    assert (aip_webauth_session_ok (auth, second, AIP_WEB_TOKEN_HEX));

    //  The policy: our own scripts only, nothing inline, no frames
    const char *csp = aip_webauth_csp (auth);
    assert (strstr (csp, "default-src 'none'"));
    assert (strstr (csp, "script-src 'self';"));
    assert (strstr (csp, "ws://127.0.0.1:8123 ws://localhost:8123;"));
    assert (strstr (csp, "frame-ancestors 'none'"));
    assert (!strstr (csp, "unsafe"));
    aip_webauth_destroy (&auth);
    aip_webauth_destroy (&auth);
    assert (!auth);
    if (verbose)
        printf ("(host, origin, sessions and their rotation, policy) ");
    printf ("OK\n");
}
