/*  aip_peerurl.h — relay URLs and connection strings of public rooms.

    A connection string is peer://<relay-host>[:port]/<room-id>?token=<token>
    and means https://<relay-host>, or http:// for a loopback host
    (localhost, 127.0.0.0/8, [::1]) so that a local relay works without TLS.
    Parsing is strict: anything else is refused with a message saying what
    is wrong. No network here: the CLI links it. */
#ifndef AIP_PEERURL_H_INCLUDED
#define AIP_PEERURL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "aip_limits.h"

typedef struct {
    char relay_url [AIP_MAX_URL + 1];   //  http(s)://host[:port], no trailing '/'
    char room_id [AIP_MAX_ID + 1];      //  the room on that relay
    char token [AIP_MAX_NAME + 1];      //  the room token
    char cipher [16];                   //  "aip1" or "" (the original's Fernet)
    char kdf [AIP_MAX_NAME + 1];        //  Argon2id parameters of an aip1 room
    bool lan;                           //  peer+lan://: a LAN hub, not a relay
    char key [AIP_LAN_KEY_HEX + 1];     //  LAN: the hub's public key (hex)
} aip_peerurl_t;

//  A LAN room's connection string is
//    peer+lan://<address>[:port]/<room-id>?token=<token>&key=<hub public key, 64 hex>
//  and its relay_url (the hub, as stored in rooms.relay_url) is
//    peer+lan://<address>:<port>?key=<hub public key>

//  Parse a connection string. 0, or -1 with err filled.
int aip_peerurl_parse (const char *text, aip_peerurl_t *self, char *err, size_t errlen);
//  Add "&cipher=aip1&kdf=..." of an encrypted room to a connection string
int aip_peerurl_add_cipher (char *buf, size_t size, const char *cipher, const char *kdf);
//  Format the connection string of a room on relay_url into buf.
int aip_peerurl_format (const char *relay_url, const char *room_id, const char *token,
                        char *buf, size_t size);
//  Check and normalise a relay base URL (http:// or https://, a host, no
//  query; trailing '/' removed) into out. 0, or -1 with err filled.
int aip_relay_url_check (const char *url, char *out, size_t size, char *err, size_t errlen);
//  True for localhost, 127.0.0.0/8 and [::1] (host without the port)
bool aip_host_is_loopback (const char *host, size_t len);
//  64 hex chars
bool aip_lan_key_valid (const char *hex);
//  True if url is a LAN hub's (peer+lan://)
bool aip_lan_url_is (const char *url);
//  Format a hub URL peer+lan://host:port?key=hex. 0 or -1 (too long).
int aip_lan_url_format (const char *host, int port, const char *key_hex, char *buf, size_t size);
//  Split a hub URL into tcp://host:port and the key. 0 or -1 (not one).
int aip_lan_url_parse (const char *url, char *endpoint, size_t size,
                       char key_hex [AIP_LAN_KEY_HEX + 1]);
//  True if s is a room token we accept (1..AIP_MAX_NAME printable chars
//  without spaces, '&', '#' or '?')
bool aip_token_valid (const char *s);

void aip_peerurl_test (bool verbose);

#endif
