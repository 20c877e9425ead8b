/*  aip_peerurl.c — relay URLs and peer:// connection strings. */
#include "aip_peerurl.h"
#include "aip_util.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define SCHEME "peer://"
#define streq(a, b) (strcmp ((a), (b)) == 0)

static int
s_fail (char *err, size_t errlen, const char *message, const char *text)
{
    snprintf (err, errlen, "%s (got '%.120s'); a connection string looks like "
              "peer://relay.ai-peer.chat/room-0123456789ab?token=<64 hex chars>", message, text);
    return -1;
}

bool
aip_host_is_loopback (const char *host, size_t len)
{
    if (len == 9 && strncasecmp (host, "localhost", 9) == 0)
        return true;
    if (len == 5 && memcmp (host, "[::1]", 5) == 0)
        return true;
    if (len >= 7 && len <= 15 && memcmp (host, "127.", 4) == 0) {
        //  127.a.b.c, each part 0..255
        int parts = 2, value = 0, digits = 0;
        for (size_t i = 4; i < len; i++) {
            if (host [i] == '.') {
                if (!digits)
                    return false;
                parts++, value = 0, digits = 0;
            }
            else
            if (isdigit ((unsigned char) host [i])) {
                value = value * 10 + host [i] - '0';
                if (++digits > 3 || value > 255)
                    return false;
            }
            else
                return false;
        }
        return parts == 4 && digits > 0;
    }
    return false;
}

//  host[:port]: letters, digits, '.', '-', or a bracketed IPv6 address
static bool
s_host_valid (const char *s, size_t len)
{
    if (len == 0 || len > AIP_MAX_NAME)
        return false;
    size_t i = 0;
    if (s [0] == '[') {
        while (i < len && s [i] != ']') {
            if (!isxdigit ((unsigned char) s [i]) && s [i] != ':' && s [i] != '[' && s [i] != '.')
                return false;
            i++;
        }
        if (i == len)
            return false;
        i++;
    }
    else {
        while (i < len && s [i] != ':') {
            if (!isalnum ((unsigned char) s [i]) && s [i] != '.' && s [i] != '-' && s [i] != '_')
                return false;
            i++;
        }
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    if (s [i] != ':' || i + 1 == len || len - i - 1 > 5)
        return false;
    for (i++; i < len; i++)
        if (!isdigit ((unsigned char) s [i]))
            return false;
    return true;
}

//  Length of the host part of host[:port]
static size_t
s_host_len (const char *s, size_t len)
{
    if (len && s [0] == '[') {
        const char *end = memchr (s, ']', len);
        return end ? (size_t) (end - s) + 1 : len;
    }
    const char *colon = memchr (s, ':', len);
    return colon ? (size_t) (colon - s) : len;
}

bool
aip_token_valid (const char *s)
{
    size_t len = strlen (s);
    if (len == 0 || len > AIP_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s [i];
        if (c <= ' ' || c >= 0x7f || c == '&' || c == '#' || c == '?' || c == '%' || c == '+')
            return false;
    }
    return true;
}

int
aip_peerurl_parse (const char *text, aip_peerurl_t *self, char *err, size_t errlen)
{
    memset (self, 0, sizeof *self);
    size_t total = strlen (text);
    if (total > AIP_MAX_URL)
        return s_fail (err, errlen, "the connection string is too long", "…");
    if (strncmp (text, SCHEME, strlen (SCHEME)) != 0)
        return s_fail (err, errlen, "a connection string starts with peer://", text);
    const char *host = text + strlen (SCHEME);
    const char *slash = strchr (host, '/');
    if (!slash)
        return s_fail (err, errlen, "the connection string has no room id", text);
    size_t host_len = (size_t) (slash - host);
    if (!s_host_valid (host, host_len))
        return s_fail (err, errlen, "the relay host in the connection string is not valid", text);
    const char *room = slash + 1;
    const char *query = strchr (room, '?');
    size_t room_len = query ? (size_t) (query - room) : strlen (room);
    if (room_len && room [room_len - 1] == '/')
        room_len--;
    if (!aip_id_valid (room, room_len))
        return s_fail (err, errlen, "the room id in the connection string must match "
                       "^[A-Za-z0-9_-]{1,64}$", text);
    if (!query || strncmp (query, "?token=", 7) != 0)
        return s_fail (err, errlen, "the connection string has no ?token=", text);
    const char *token = query + 7;
    const char *amp = strchr (token, '&');
    size_t token_len = amp ? (size_t) (amp - token) : strlen (token);
    if (token_len == 0 || token_len > AIP_MAX_NAME)
        return s_fail (err, errlen, "the token in the connection string is empty or too long", text);
    memcpy (self->token, token, token_len);
    self->token [token_len] = 0;
    //  An encrypted room names its cipher (none: the original's Fernet)
    for (const char *p = amp; p && *p == '&'; p = strchr (p + 1, '&')) {
        const char *value = strchr (p, '=');
        const char *end = strchr (p + 1, '&');
        size_t vlen = value ? (size_t) ((end ? end : p + strlen (p)) - value - 1) : 0;
        if (value && strncmp (p, "&cipher=", 8) == 0 && vlen < sizeof self->cipher)
            snprintf (self->cipher, sizeof self->cipher, "%.*s", (int) vlen, value + 1);
        else
        if (value && strncmp (p, "&kdf=", 5) == 0 && vlen < sizeof self->kdf)
            snprintf (self->kdf, sizeof self->kdf, "%.*s", (int) vlen, value + 1);
    }
    if (*self->cipher && strcmp (self->cipher, "aip1") != 0 && strcmp (self->cipher, "fernet") != 0)
        return s_fail (err, errlen, "the connection string names an unknown cipher", text);
    if (strcmp (self->cipher, "aip1") == 0 && !*self->kdf)
        return s_fail (err, errlen, "the connection string of an aip1 room has no kdf=", text);
    if (!aip_token_valid (self->token))
        return s_fail (err, errlen, "the token in the connection string has characters a token "
                       "cannot have", text);
    bool loopback = aip_host_is_loopback (host, s_host_len (host, host_len));
    snprintf (self->relay_url, sizeof self->relay_url, "%s://%.*s", loopback ? "http" : "https",
              (int) host_len, host);
    memcpy (self->room_id, room, room_len);
    self->room_id [room_len] = 0;
    return 0;
}

int
aip_relay_url_check (const char *url, char *out, size_t size, char *err, size_t errlen)
{
    const char *host;
    if (strncmp (url, "https://", 8) == 0)
        host = url + 8;
    else
    if (strncmp (url, "http://", 7) == 0)
        host = url + 7;
    else {
        snprintf (err, errlen, "the relay URL must start with https:// (or http://), not "
                  "'%.120s'", url);
        return -1;
    }
    size_t len = strlen (url);
    while (len > (size_t) (host - url) && url [len - 1] == '/')
        len--;
    size_t host_len = len - (size_t) (host - url);
    if (len > AIP_MAX_URL || !s_host_valid (host, host_len)) {
        snprintf (err, errlen, "the relay URL '%.120s' is not valid: it must be "
                  "https://host[:port] with nothing after the host", url);
        return -1;
    }
    snprintf (out, size, "%.*s", (int) len, url);
    return 0;
}

int
aip_peerurl_add_cipher (char *buf, size_t size, const char *cipher, const char *kdf)
{
    size_t len = strlen (buf);
    int n = kdf && *kdf ? snprintf (buf + len, size - len, "&cipher=%s&kdf=%s", cipher, kdf)
                        : snprintf (buf + len, size - len, "&cipher=%s", cipher);
    return n < 0 || (size_t) n >= size - len ? -1 : 0;
}

int
aip_peerurl_format (const char *relay_url, const char *room_id, const char *token,
                    char *buf, size_t size)
{
    const char *host = strstr (relay_url, "://");
    host = host ? host + 3 : relay_url;
    size_t host_len = strcspn (host, "/");
    int n = snprintf (buf, size, SCHEME "%.*s/%s?token=%s", (int) host_len, host, room_id, token);
    return n < 0 || (size_t) n >= size ? -1 : 0;
}

void
aip_peerurl_test (bool verbose)
{
    printf (" * aip_peerurl: ");
    aip_peerurl_t pu;
    char err [512], buf [AIP_MAX_URL + 1];
    assert (aip_peerurl_parse ("peer://relay.ai-peer.chat/room-0123456789ab?token=abc",
                               &pu, err, sizeof err) == 0);
    assert (streq (pu.relay_url, "https://relay.ai-peer.chat"));
    assert (streq (pu.room_id, "room-0123456789ab"));
    assert (streq (pu.token, "abc"));
    assert (aip_peerurl_parse ("peer://127.0.0.1:8787/r1?token=t", &pu, err, sizeof err) == 0);
    assert (streq (pu.relay_url, "http://127.0.0.1:8787"));
    assert (aip_peerurl_parse ("peer://localhost/r1/?token=t&x=1", &pu, err, sizeof err) == 0);
    assert (streq (pu.relay_url, "http://localhost") && streq (pu.token, "t"));
    assert (aip_peerurl_parse ("peer://[::1]:9/r1?token=t", &pu, err, sizeof err) == 0);
    assert (streq (pu.relay_url, "http://[::1]:9"));
    //  127.x only when it is an address, not a name starting with 127.
    assert (aip_peerurl_parse ("peer://127.0.0.1.evil.com/r1?token=t", &pu, err, sizeof err) == 0);
    assert (streq (pu.relay_url, "https://127.0.0.1.evil.com"));
    const char *bad [] = { "http://relay/r?token=t", "peer://relay", "peer://relay/?token=t",
                           "peer://relay/r", "peer://relay/r?token=", "peer:///r?token=t",
                           "peer://re lay/r?token=t", "peer://relay/r!x?token=t",
                           "peer://relay/r?tok=t", "peer://relay:80x/r?token=t",
                           "peer://relay/r?token=a b", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        assert (aip_peerurl_parse (bad [i], &pu, err, sizeof err) == -1);
        if (verbose)
            printf ("\n   %s", err);
    }
    assert (aip_relay_url_check ("https://relay.ai-peer.chat/", buf, sizeof buf, err, sizeof err) == 0);
    assert (streq (buf, "https://relay.ai-peer.chat"));
    assert (aip_relay_url_check ("ftp://x", buf, sizeof buf, err, sizeof err) == -1);
    assert (aip_relay_url_check ("https://x/y", buf, sizeof buf, err, sizeof err) == -1);
    assert (aip_peerurl_format ("http://127.0.0.1:8787", "room-1", "tok", buf, sizeof buf) == 0);
    assert (streq (buf, "peer://127.0.0.1:8787/room-1?token=tok"));
    assert (aip_peerurl_parse (buf, &pu, err, sizeof err) == 0);
    assert (streq (pu.relay_url, "http://127.0.0.1:8787"));
    assert (aip_host_is_loopback ("127.1.2.3", 9) && !aip_host_is_loopback ("127.1.2", 7));
    assert (!aip_host_is_loopback ("127.0.0.256", 11));
    printf ("OK\n");
}
