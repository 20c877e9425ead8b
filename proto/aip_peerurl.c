/*  aip_peerurl.c — relay URLs and peer:// connection strings. */
#include "aip_peerurl.h"
#include "aip_util.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEME "peer://"
#define LAN_SCHEME "peer+lan://"
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
    bool lan = strncmp (text, LAN_SCHEME, strlen (LAN_SCHEME)) == 0;
    if (!lan && strncmp (text, SCHEME, strlen (SCHEME)) != 0)
        return s_fail (err, errlen, "a connection string starts with peer:// (a relay room) "
                       "or peer+lan:// (a LAN room)", text);
    self->lan = lan;
    const char *host = text + strlen (lan ? LAN_SCHEME : SCHEME);
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
        else
        if (value && strncmp (p, "&key=", 5) == 0 && vlen < sizeof self->key)
            snprintf (self->key, sizeof self->key, "%.*s", (int) vlen, value + 1);
    }
    if (lan) {
        //  The hub's public key is what stops a man in the middle
        if (!aip_lan_key_valid (self->key))
            return s_fail (err, errlen, "a peer+lan:// connection string needs the hub's "
                           "public key as key=<64 hex chars>", text);
        size_t hlen = s_host_len (host, host_len);
        int port = hlen < host_len ? atoi (host + hlen + 1) : AIP_LAN_DEFAULT_PORT;
        if (port < 1 || port > 65535)
            return s_fail (err, errlen, "the port in the connection string is not valid", text);
        snprintf (self->relay_url, sizeof self->relay_url, LAN_SCHEME "%.*s:%d?key=%s",
                  (int) hlen, host, port, self->key);
    }
    if (*self->cipher && strcmp (self->cipher, "aip1") != 0 && strcmp (self->cipher, "fernet") != 0)
        return s_fail (err, errlen, "the connection string names an unknown cipher", text);
    if (strcmp (self->cipher, "aip1") == 0 && !*self->kdf)
        return s_fail (err, errlen, "the connection string of an aip1 room has no kdf=", text);
    if (!aip_token_valid (self->token))
        return s_fail (err, errlen, "the token in the connection string has characters a token "
                       "cannot have", text);
    bool loopback = aip_host_is_loopback (host, s_host_len (host, host_len));
    if (!lan)
        snprintf (self->relay_url, sizeof self->relay_url, "%s://%.*s",
                  loopback ? "http" : "https", (int) host_len, host);
    memcpy (self->room_id, room, room_len);
    self->room_id [room_len] = 0;
    return 0;
}

bool
aip_lan_key_valid (const char *hex)
{
    if (strlen (hex) != AIP_LAN_KEY_HEX)
        return false;
    for (size_t i = 0; i < AIP_LAN_KEY_HEX; i++)
        if (!isxdigit ((unsigned char) hex [i]))
            return false;
    return true;
}

bool
aip_lan_url_is (const char *url)
{
    return url && strncmp (url, LAN_SCHEME, strlen (LAN_SCHEME)) == 0;
}

int
aip_lan_url_format (const char *host, int port, const char *key_hex, char *buf, size_t size)
{
    int n = snprintf (buf, size, LAN_SCHEME "%s:%d?key=%s", host, port, key_hex);
    return n < 0 || (size_t) n >= size ? -1 : 0;
}

int
aip_lan_url_parse (const char *url, char *endpoint, size_t size, char key_hex [AIP_LAN_KEY_HEX + 1])
{
    if (!aip_lan_url_is (url))
        return -1;
    const char *host = url + strlen (LAN_SCHEME);
    const char *query = strstr (host, "?key=");
    if (!query || !s_host_valid (host, (size_t) (query - host))
    ||  !aip_lan_key_valid (query + 5))
        return -1;
    memcpy (key_hex, query + 5, AIP_LAN_KEY_HEX + 1);
    int n = snprintf (endpoint, size, "tcp://%.*s", (int) (query - host), host);
    return n < 0 || (size_t) n >= size ? -1 : 0;
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
    int n;
    if (aip_lan_url_is (relay_url)) {
        //  peer+lan://host:port?key=K -> peer+lan://host:port/ROOM?token=T&key=K
        const char *host = relay_url + strlen (LAN_SCHEME);
        const char *query = strstr (host, "?key=");
        if (!query)
            return -1;
        n = snprintf (buf, size, LAN_SCHEME "%.*s/%s?token=%s&key=%s", (int) (query - host),
                      host, room_id, token, query + 5);
        return n < 0 || (size_t) n >= size ? -1 : 0;
    }
    const char *host = strstr (relay_url, "://");
    host = host ? host + 3 : relay_url;
    size_t host_len = strcspn (host, "/");
    n = snprintf (buf, size, SCHEME "%.*s/%s?token=%s", (int) host_len, host, room_id, token);
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

    //  LAN rooms: the hub's key is required and survives the round trip
    const char *key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char lanurl [256], endpoint [256], khex [AIP_LAN_KEY_HEX + 1];
    assert (aip_lan_url_format ("10.1.2.3", 7899, key, lanurl, sizeof lanurl) == 0);
    assert (aip_peerurl_format (lanurl, "room-1", "tok", buf, sizeof buf) == 0);
    assert (streq (buf, "peer+lan://10.1.2.3:7899/room-1?token=tok&key=" "00112233445566778899"
                        "aabbccddeeff00112233445566778899aabbccddeeff"));
    assert (aip_peerurl_parse (buf, &pu, err, sizeof err) == 0);
    assert (pu.lan && streq (pu.relay_url, lanurl) && streq (pu.key, key));
    assert (aip_lan_url_parse (pu.relay_url, endpoint, sizeof endpoint, khex) == 0);
    assert (streq (endpoint, "tcp://10.1.2.3:7899") && streq (khex, key));
    assert (aip_peerurl_parse ("peer+lan://10.1.2.3/room-1?token=tok&key=abc", &pu, err,
                               sizeof err) == -1);
    assert (aip_peerurl_parse ("peer+lan://10.1.2.3/room-1?token=tok", &pu, err, sizeof err) == -1);
    assert (!aip_lan_url_is ("http://x") && aip_lan_url_parse ("http://x", endpoint,
                                                               sizeof endpoint, khex) == -1);
    assert (!aip_host_is_loopback ("127.0.0.256", 11));
    printf ("OK\n");
}
