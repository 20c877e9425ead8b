/*  aip_roomkey.h — the key of an end-to-end encrypted room, as stored.

    A password room keeps the key derived from its password, never the
    password: in rooms.password (peers.db is mode 0600) as
      "key:aip1:<key b64url>:<argon2id params>"   this project's format
      "key:fernet:<key b64url>"                   the original's (Fernet)
    Content is encrypted in the process that writes it; storaged, relays and
    LAN hubs only ever hold ciphertext. Reading fails closed. */
#ifndef AIP_ROOMKEY_H_INCLUDED
#define AIP_ROOMKEY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aip_crypto.h"

//  Longest stored key string
#define AIP_ROOMKEY_MAX 256
//  What a reader sees instead of content that cannot be trusted
#define AIP_ROOMKEY_UNREADABLE "[encrypted — wrong password or corrupted]"
#define AIP_ROOMKEY_REJECTED   "[rejected — unencrypted message in encrypted room]"

typedef struct {
    aip_crypto_format_t cipher;             //  AIP1 or FERNET
    uint8_t key [AIP_CRYPTO_KEY_BYTES];     //  the room key
} aip_roomkey_t;

//  Derive a new room's key from its password and encode it for storage.
//  cipher is "aip1" (default when NULL) or "fernet". opslimit/memlimit 0
//  mean the production Argon2id cost. 0, or -1 with err filled.
int aip_roomkey_create (const char *password, const char *room_id, const char *cipher,
                        uint64_t opslimit, uint64_t memlimit,
                        char out [AIP_ROOMKEY_MAX], char *err, size_t errlen);
//  The key of a room joined with its password: cipher "aip1" with the
//  room's Argon2id parameters (kdf, from its connection string), or
//  NULL/"fernet" for the original's format. 0, or -1 with err filled.
int aip_roomkey_join (const char *password, const char *room_id, const char *cipher,
                      const char *kdf, char out [AIP_ROOMKEY_MAX], char *err, size_t errlen);
//  The Argon2id parameters in a stored aip1 key (for connection strings),
//  or NULL for a Fernet key. Points into stored.
const char *aip_roomkey_kdf (const char *stored);
//  Decode a stored key string. 0 or -1.
int aip_roomkey_decode (const char *stored, aip_roomkey_t *self);
//  Encrypt content of one message; *out_p is the caller's to free. 0 or -1.
int aip_roomkey_encrypt (const aip_roomkey_t *self, const char *room_id, const char *msg_id,
                         const char *sender_id, const char *content, size_t len, char **out_p);
//  What a reader sees for a stored message: its plaintext, or one of the
//  markers above. System messages stay plaintext. Caller frees.
char *aip_roomkey_reveal (const aip_roomkey_t *self, const char *room_id, const char *msg_id,
                          const char *sender_id, const char *type, const char *content,
                          size_t len, size_t *out_len);

//  Replace the content of each message (jansson objects with room_id, id,
//  peer_id, type, content) with what a reader sees
typedef struct json_t json_t;
void aip_roomkey_reveal_json (const aip_roomkey_t *self, json_t *messages);

void aip_roomkey_test (bool verbose);

#endif
