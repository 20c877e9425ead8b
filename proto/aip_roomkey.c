/*  aip_roomkey.c — stored room keys, and encrypting/revealing content. */
#include "aip_roomkey.h"

#include <assert.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
aip_roomkey_create (const char *password, const char *room_id, const char *cipher,
                    uint64_t opslimit, uint64_t memlimit,
                    char out [AIP_ROOMKEY_MAX], char *err, size_t errlen)
{
    uint8_t key [AIP_CRYPTO_KEY_BYTES];
    char b64 [AIP_CRYPTO_KEY_B64_SIZE];
    if (!password || !*password) {
        snprintf (err, errlen, "the password is empty");
        return -1;
    }
    if (!cipher || strcmp (cipher, "aip1") == 0) {
        aip_crypto_kdf_params_t params;
        char encoded [AIP_CRYPTO_KDF_PARAMS_SIZE];
        if (aip_crypto_kdf_params_generate (&params, opslimit, memlimit)
        ||  aip_crypto_key_derive (password, &params, key)
        ||  aip_crypto_kdf_params_encode (&params, encoded)
        ||  aip_crypto_key_to_b64 (key, b64)) {
            snprintf (err, errlen, "cannot derive the room key (out of memory?)");
            return -1;
        }
        snprintf (out, AIP_ROOMKEY_MAX, "key:aip1:%s:%s", b64, encoded);
    }
    else
    if (strcmp (cipher, "fernet") == 0) {
        if (aip_crypto_fernet_key (password, room_id, key) || aip_crypto_key_to_b64 (key, b64)) {
            snprintf (err, errlen, "cannot derive the room key");
            return -1;
        }
        snprintf (out, AIP_ROOMKEY_MAX, "key:fernet:%s", b64);
    }
    else {
        snprintf (err, errlen, "unknown cipher '%.32s': use aip1 or fernet", cipher);
        return -1;
    }
    return 0;
}

int
aip_roomkey_join (const char *password, const char *room_id, const char *cipher,
                  const char *kdf, char out [AIP_ROOMKEY_MAX], char *err, size_t errlen)
{
    if (!cipher || !*cipher || strcmp (cipher, "fernet") == 0)
        return aip_roomkey_create (password, room_id, "fernet", 0, 0, out, err, errlen);
    if (strcmp (cipher, "aip1") != 0) {
        snprintf (err, errlen, "unknown cipher '%.32s'", cipher);
        return -1;
    }
    aip_crypto_kdf_params_t params;
    uint8_t key [AIP_CRYPTO_KEY_BYTES];
    char b64 [AIP_CRYPTO_KEY_B64_SIZE], encoded [AIP_CRYPTO_KDF_PARAMS_SIZE];
    if (!kdf || aip_crypto_kdf_params_decode (kdf, &params)
    ||  aip_crypto_kdf_params_encode (&params, encoded)) {
        snprintf (err, errlen, "the room's key parameters (kdf=) are not valid");
        return -1;
    }
    if (params.opslimit < AIP_CRYPTO_KDF_MIN_OPSLIMIT || params.memlimit < AIP_CRYPTO_KDF_MIN_MEMLIMIT) {
        snprintf (err, errlen, "the room's key parameters are too weak (Argon2id t=%llu, m=%llu "
                  "bytes; ai-peer needs at least t=%d and m=%u, the cost it makes rooms with): "
                  "a password key that cheap is easy to guess, so the room was not joined; ask "
                  "its creator for a connection string made by ai-peer",
                  (unsigned long long) params.opslimit, (unsigned long long) params.memlimit,
                  AIP_CRYPTO_KDF_MIN_OPSLIMIT, AIP_CRYPTO_KDF_MIN_MEMLIMIT);
        return -1;
    }
    if (!password || !*password || aip_crypto_key_derive (password, &params, key)
    ||  aip_crypto_key_to_b64 (key, b64)) {
        snprintf (err, errlen, "cannot derive the room key");
        return -1;
    }
    snprintf (out, AIP_ROOMKEY_MAX, "key:aip1:%s:%s", b64, encoded);
    sodium_memzero (key, sizeof key);
    return 0;
}

const char *
aip_roomkey_kdf (const char *stored)
{
    if (!stored || strncmp (stored, "key:aip1:", 9) != 0)
        return NULL;
    const char *colon = strchr (stored + 9, ':');
    return colon ? colon + 1 : NULL;
}

int
aip_roomkey_decode (const char *stored, aip_roomkey_t *self)
{
    char b64 [AIP_CRYPTO_KEY_B64_SIZE];
    const char *rest;
    if (!stored)
        return -1;
    if (strncmp (stored, "key:aip1:", 9) == 0) {
        self->cipher = AIP_CRYPTO_FORMAT_AIP1;
        rest = stored + 9;
    }
    else
    if (strncmp (stored, "key:fernet:", 11) == 0) {
        self->cipher = AIP_CRYPTO_FORMAT_FERNET;
        rest = stored + 11;
    }
    else
        return -1;
    size_t len = strcspn (rest, ":");
    if (len == 0 || len >= sizeof b64)
        return -1;
    memcpy (b64, rest, len);
    b64 [len] = 0;
    return aip_crypto_key_from_b64 (b64, self->key);
}

int
aip_roomkey_encrypt (const aip_roomkey_t *self, const char *room_id, const char *msg_id,
                     const char *sender_id, const char *content, size_t len, char **out_p)
{
    if (self->cipher == AIP_CRYPTO_FORMAT_FERNET)
        return aip_crypto_fernet_encrypt (self->key, content, len, out_p) == 0 ? 0 : -1;
    return aip_crypto_encrypt (self->key, room_id, msg_id, sender_id, content, len, out_p) == 0
           ? 0 : -1;
}

static char *
s_copy (const char *s, size_t len, size_t *out_len)
{
    char *copy = (char *) malloc (len + 1);
    if (copy) {
        memcpy (copy, s, len);
        copy [len] = 0;
        if (out_len)
            *out_len = len;
    }
    return copy;
}

char *
aip_roomkey_reveal (const aip_roomkey_t *self, const char *room_id, const char *msg_id,
                    const char *sender_id, const char *type, const char *content,
                    size_t len, size_t *out_len)
{
    //  System messages ("joined the room") are plaintext, as in the original
    if (type && strcmp (type, "system") == 0)
        return s_copy (content, len, out_len);
    //  The decoders want a NUL-terminated token
    char *token = s_copy (content, len, NULL);
    if (!token)
        return NULL;
    char *plain = NULL;
    size_t plain_len = 0;
    aip_crypto_format_t format = memchr (content, 0, len) ? AIP_CRYPTO_FORMAT_NONE
                                                          : aip_crypto_format_of (token);
    int rc = AIP_CRYPTO_WRONG_FORMAT;
    if (format == AIP_CRYPTO_FORMAT_AIP1 && self->cipher == AIP_CRYPTO_FORMAT_AIP1)
        rc = aip_crypto_decrypt (self->key, room_id, msg_id, sender_id, token, &plain, &plain_len);
    else
    if (format == AIP_CRYPTO_FORMAT_FERNET && self->cipher == AIP_CRYPTO_FORMAT_FERNET)
        rc = aip_crypto_fernet_decrypt (self->key, token, &plain, &plain_len, NULL);
    free (token);
    if (rc == AIP_CRYPTO_OK) {
        if (out_len)
            *out_len = plain_len;
        return plain;
    }
    free (plain);
    const char *marker = format == AIP_CRYPTO_FORMAT_NONE ? AIP_ROOMKEY_REJECTED
                                                         : AIP_ROOMKEY_UNREADABLE;
    return s_copy (marker, strlen (marker), out_len);
}

void
aip_roomkey_reveal_json (const aip_roomkey_t *self, json_t *messages)
{
    size_t i;
    json_t *m;
    json_array_foreach (messages, i, m) {
        json_t *content = json_object_get (m, "content");
        if (!json_is_string (content))
            continue;
        size_t len;
        char *plain = aip_roomkey_reveal (self,
            json_string_value (json_object_get (m, "room_id")),
            json_string_value (json_object_get (m, "id")),
            json_string_value (json_object_get (m, "peer_id")),
            json_string_value (json_object_get (m, "type")),
            json_string_value (content), json_string_length (content), &len);
        if (plain) {
            json_object_set_new (m, "content", json_stringn_nocheck (plain, len));
            sodium_memzero (plain, len);
            free (plain);
        }
    }
}

void
aip_roomkey_test (bool verbose)
{
    printf (" * aip_roomkey: ");
    char stored [AIP_ROOMKEY_MAX], err [256];
    aip_roomkey_t rk, other;
    //  Our format, with the cheapest Argon2id cost to stay fast
    assert (aip_roomkey_create ("secret", "room-1", NULL, crypto_pwhash_OPSLIMIT_MIN,
                                crypto_pwhash_MEMLIMIT_MIN, stored, err, sizeof err) == 0);
    assert (strncmp (stored, "key:aip1:", 9) == 0 && !strstr (stored, "secret"));
    assert (aip_roomkey_decode (stored, &rk) == 0 && rk.cipher == AIP_CRYPTO_FORMAT_AIP1);
    char *cipher;
    assert (aip_roomkey_encrypt (&rk, "room-1", "msg-1", "alice", "hello ✓", 9, &cipher) == 0);
    size_t len;
    char *plain = aip_roomkey_reveal (&rk, "room-1", "msg-1", "alice", "message", cipher,
                                      strlen (cipher), &len);
    assert (plain && len == 9 && memcmp (plain, "hello ✓", 9) == 0);
    free (plain);
    //  Re-attributed to another sender: unreadable
    plain = aip_roomkey_reveal (&rk, "room-1", "msg-1", "mallory", "message", cipher,
                                strlen (cipher), &len);
    assert (strcmp (plain, AIP_ROOMKEY_UNREADABLE) == 0);
    free (plain);
    //  Another password: unreadable
    assert (aip_roomkey_create ("other", "room-1", "aip1", crypto_pwhash_OPSLIMIT_MIN,
                                crypto_pwhash_MEMLIMIT_MIN, stored, err, sizeof err) == 0);
    assert (aip_roomkey_decode (stored, &other) == 0);
    plain = aip_roomkey_reveal (&other, "room-1", "msg-1", "alice", "message", cipher,
                                strlen (cipher), &len);
    assert (strcmp (plain, AIP_ROOMKEY_UNREADABLE) == 0);
    free (plain);
    free (cipher);
    //  Plaintext in an encrypted room: rejected, never shown as trusted text
    plain = aip_roomkey_reveal (&rk, "room-1", "msg-2", "alice", "message", "hi", 2, &len);
    assert (strcmp (plain, AIP_ROOMKEY_REJECTED) == 0);
    free (plain);
    plain = aip_roomkey_reveal (&rk, "room-1", "msg-3", "alice", "system", "joined the room", 15, &len);
    assert (strcmp (plain, "joined the room") == 0);
    free (plain);

    //  The original's format: the interop vector's key and token
    assert (aip_roomkey_create ("secret123", "room-0a1b2c3d4e5f", "fernet", 0, 0, stored, err,
                                sizeof err) == 0);
    assert (strcmp (stored, "key:fernet:fbp6mRBFAWWDrnGhgEK6dOz1d5tto1ajA8HDnq46pzE=") == 0);
    assert (aip_roomkey_decode (stored, &rk) == 0 && rk.cipher == AIP_CRYPTO_FORMAT_FERNET);
    const char *token = "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD8nEaVwAPjlxW8V7pqN27zgWsljkYOSvEy6gkghhl"
                        "qsKch5xuBdz-d17mb0IT5Izm4oXaaTURUFoTBUPAfW2Hww=";
    plain = aip_roomkey_reveal (&rk, "room-0a1b2c3d4e5f", "any", "any", "message", token,
                                strlen (token), &len);
    assert (strcmp (plain, "hello from the python client") == 0);
    free (plain);
    //  A room's kdf= weaker than the rooms we make is refused: libsodium's
    //  minimum cost, one pass fewer, or less memory
    char created [AIP_ROOMKEY_MAX], joined [AIP_ROOMKEY_MAX];
    assert (AIP_CRYPTO_KDF_MIN_OPSLIMIT == crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE);
    assert (AIP_CRYPTO_KDF_MIN_MEMLIMIT == crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE);
    assert (aip_roomkey_create ("pw", "room-9", "aip1", crypto_pwhash_OPSLIMIT_MIN,
                                crypto_pwhash_MEMLIMIT_MIN, created, err, sizeof err) == 0);
    assert (aip_roomkey_join ("pw", "room-9", "aip1", aip_roomkey_kdf (created), joined, err,
                              sizeof err) == -1);
    const char *weak [] = { "argon2id13:t=1:m=8192:s=AAECAwQFBgcICQoLDA0ODw",
                            "argon2id13:t=1:m=67108864:s=AAECAwQFBgcICQoLDA0ODw",
                            "argon2id13:t=2:m=67107840:s=AAECAwQFBgcICQoLDA0ODw" };
    for (size_t i = 0; i < sizeof weak / sizeof weak [0]; i++) {
        err [0] = 0;
        assert (aip_roomkey_join ("pw", "room-9", "aip1", weak [i], joined, err,
                                  sizeof err) == -1);
        assert (strstr (err, "too weak") && strstr (err, "t=2 and m=67108864"));
    }
    //  Joining derives the same key from the password and the parameters
    //  (the cost rooms are made with)
    assert (aip_roomkey_create ("pw", "room-9", "aip1", 0, 0, created, err, sizeof err) == 0);
    assert (aip_roomkey_join ("pw", "room-9", "aip1", aip_roomkey_kdf (created), joined, err,
                              sizeof err) == 0);
    assert (strcmp (created, joined) == 0);
    assert (aip_roomkey_join ("other", "room-9", "aip1", aip_roomkey_kdf (created), joined, err,
                              sizeof err) == 0);
    assert (strcmp (created, joined) != 0);
    assert (aip_roomkey_join ("secret123", "room-0a1b2c3d4e5f", NULL, NULL, joined, err,
                              sizeof err) == 0);
    assert (strcmp (joined, "key:fernet:fbp6mRBFAWWDrnGhgEK6dOz1d5tto1ajA8HDnq46pzE=") == 0);
    assert (aip_roomkey_kdf (joined) == NULL);
    assert (aip_roomkey_create ("", "r", NULL, 0, 0, stored, err, sizeof err) == -1);
    assert (aip_roomkey_create ("p", "r", "rot13", 0, 0, stored, err, sizeof err) == -1);
    assert (aip_roomkey_decode ("plaintext-password", &rk) == -1);
    if (verbose)
        printf ("(%s) ", err);
    printf ("OK\n");
}
