/*  aip_crypto.c — peer signatures, tokens and end-to-end room encryption.

    Every primitive comes from a maintained library: HMAC, Argon2id, XChaCha20-
    Poly1305, base64, hex, randomness and constant-time compares from libsodium;
    PBKDF2 and AES-128-CBC (which Fernet needs and libsodium lacks) from OpenSSL
    libcrypto. This file only composes them into the two wire formats.
    Secrets on the stack are wiped before return; nothing is kept between calls. */

#define _POSIX_C_SOURCE 200809L     //  strnlen under -std=c11

#include "aip_crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dlfcn.h>
#include <pthread.h>
#include <sodium.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

//  ---------------------------------------------------------------------------
//  OpenSSL, loaded on first use: only the original's Fernet rooms need it,
//  and a linked libcrypto costs every command of the CLI its start-up (the
//  dynamic loader's relocations of a 4.5 MB library, ~2 ms here)

#define S_STR(x) #x
#define S_XSTR(x) S_STR(x)
#define S_LIBCRYPTO "libcrypto.so." S_XSTR (OPENSSL_VERSION_MAJOR)

typedef struct {
    EVP_CIPHER_CTX *(*ctx_new) (void);
    void (*ctx_free) (EVP_CIPHER_CTX *ctx);
    int (*encrypt_init) (EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, ENGINE *engine,
                         const unsigned char *key, const unsigned char *iv);
    int (*encrypt_update) (EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                           const unsigned char *in, int inl);
    int (*encrypt_final) (EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl);
    int (*decrypt_init) (EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, ENGINE *engine,
                         const unsigned char *key, const unsigned char *iv);
    int (*decrypt_update) (EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                           const unsigned char *in, int inl);
    int (*decrypt_final) (EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl);
    const EVP_CIPHER *(*aes_128_cbc) (void);
    const EVP_MD *(*sha256) (void);
    int (*pbkdf2) (const char *pass, int passlen, const unsigned char *salt, int saltlen,
                   int iter, const EVP_MD *digest, int keylen, unsigned char *out);
    void (*thread_stop) (void);
} s_openssl_t;

static s_openssl_t s_ossl;              //  its functions, once loaded
static bool s_ossl_ok;                  //  loaded, every function found
static pthread_once_t s_ossl_once = PTHREAD_ONCE_INIT;

static void
s_openssl_load (void)
{
    void *lib = dlopen (S_LIBCRYPTO, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf (stderr, "ai-peer: cannot load %s (OpenSSL), which Fernet rooms need: %s\n",
                 S_LIBCRYPTO, dlerror ());
        return;
    }
    struct { void **slot; const char *name; } table [] = {
        { (void **) &s_ossl.ctx_new,        "EVP_CIPHER_CTX_new" },
        { (void **) &s_ossl.ctx_free,       "EVP_CIPHER_CTX_free" },
        { (void **) &s_ossl.encrypt_init,   "EVP_EncryptInit_ex" },
        { (void **) &s_ossl.encrypt_update, "EVP_EncryptUpdate" },
        { (void **) &s_ossl.encrypt_final,  "EVP_EncryptFinal_ex" },
        { (void **) &s_ossl.decrypt_init,   "EVP_DecryptInit_ex" },
        { (void **) &s_ossl.decrypt_update, "EVP_DecryptUpdate" },
        { (void **) &s_ossl.decrypt_final,  "EVP_DecryptFinal_ex" },
        { (void **) &s_ossl.aes_128_cbc,    "EVP_aes_128_cbc" },
        { (void **) &s_ossl.sha256,         "EVP_sha256" },
        { (void **) &s_ossl.pbkdf2,         "PKCS5_PBKDF2_HMAC" },
        { (void **) &s_ossl.thread_stop,    "OPENSSL_thread_stop" },
    };
    for (size_t i = 0; i < sizeof table / sizeof table [0]; i++)
        if (!(*table [i].slot = dlsym (lib, table [i].name))) {
            fprintf (stderr, "ai-peer: %s has no %s\n", S_LIBCRYPTO, table [i].name);
            return;
        }
    s_ossl_ok = true;
}

//  OpenSSL's functions, or NULL when it cannot be loaded (said on stderr)
static const s_openssl_t *
s_openssl (void)
{
    pthread_once (&s_ossl_once, s_openssl_load);
    return s_ossl_ok ? &s_ossl : NULL;
}

#ifndef AIP_SOURCE_DIR
#   define AIP_SOURCE_DIR "."
#endif

//  Fernet layout: version(1) timestamp(8) iv(16) ciphertext(16*n) hmac(32)
#define FERNET_VERSION      0x80
#define FERNET_HEADER       (1 + 8 + AIP_CRYPTO_FERNET_IV_BYTES)
#define FERNET_HMAC         32
#define FERNET_BLOCK        16
#define FERNET_HALF_KEY     16

//  aip1 layout: nonce(24) ciphertext(n) tag(16)
#define AIP1_NONCE          crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AIP1_TAG            crypto_aead_xchacha20poly1305_ietf_ABYTES
//  Associated data: "aip1" + three 4-byte big-endian lengths + the ids
#define AIP1_AD_MAX         (4 + 3 * (4 + AIP_CRYPTO_MAX_ID_LEN))

#define KDF_PARAMS_TAG      "argon2id13:t="

_Static_assert (AIP_CRYPTO_SALT_BYTES == crypto_pwhash_argon2id_SALTBYTES,
                "salt size must match libsodium");
_Static_assert (AIP_CRYPTO_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
                "key size must match the AEAD");
_Static_assert (AIP_CRYPTO_HEX_SIZE == crypto_auth_hmacsha256_BYTES * 2 + 1,
                "hex size must hold an HMAC-SHA256");

//  Longest base64 text (with padding) of a binary of n bytes, without NUL
static size_t
s_b64_len (size_t n)
{
    return 4 * ((n + 2) / 3);
}

//  Longest Fernet token text we accept (largest plaintext)
static size_t
s_fernet_max_text (void)
{
    size_t padded = (AIP_CRYPTO_MAX_PLAINTEXT / FERNET_BLOCK + 1) * FERNET_BLOCK;
    return s_b64_len (FERNET_HEADER + padded + FERNET_HMAC);
}

//  Longest aip1 text we accept (largest plaintext), prefix included
static size_t
s_aip1_max_text (void)
{
    return strlen (AIP_CRYPTO_AIP1_PREFIX)
         + s_b64_len (AIP1_NONCE + AIP_CRYPTO_MAX_PLAINTEXT + AIP1_TAG);
}

//  Base64 (urlsafe, padded) of bin as a new string; NULL if out of memory
static char *
s_b64_encode (const uint8_t *bin, size_t size, const char *prefix)
{
    size_t prefix_len = prefix? strlen (prefix): 0;
    size_t b64_size = sodium_base64_ENCODED_LEN (size, sodium_base64_VARIANT_URLSAFE);
    char *text = malloc (prefix_len + b64_size);
    if (!text)
        return NULL;
    if (prefix_len)
        memcpy (text, prefix, prefix_len);
    sodium_bin2base64 (text + prefix_len, b64_size, bin, size,
                       sodium_base64_VARIANT_URLSAFE);
    return text;
}

//  Decode strict urlsafe padded base64 of length text_len into a new buffer;
//  0 / -1 (-1 for bad text or out of memory, *bin_p NULL)
static int
s_b64_decode (const char *text, size_t text_len, uint8_t **bin_p, size_t *size_p)
{
    *bin_p = NULL;
    size_t capacity = text_len / 4 * 3 + 3;
    uint8_t *bin = malloc (capacity);
    if (!bin)
        return -1;
    //  b64_end NULL: the whole text must be base64, no trailing junk
    if (sodium_base642bin (bin, capacity, text, text_len, NULL, size_p, NULL,
                           sodium_base64_VARIANT_URLSAFE) != 0) {
        free (bin);
        return -1;
    }
    *bin_p = bin;
    return 0;
}

//  HMAC-SHA256 with a key of any length, into mac (32 bytes)
static void
s_hmac_sha256 (const uint8_t *key, size_t key_len,
               const uint8_t *msg, size_t msg_len, uint8_t *mac)
{
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init (&state, key, key_len);
    crypto_auth_hmacsha256_update (&state, msg, msg_len);
    crypto_auth_hmacsha256_final (&state, mac);
    sodium_memzero (&state, sizeof state);
}

//  Bounded length of an id; -1 if NULL or longer than AIP_CRYPTO_MAX_ID_LEN
static int
s_id_len (const char *id, size_t *len_p)
{
    if (!id)
        return -1;
    *len_p = strnlen (id, AIP_CRYPTO_MAX_ID_LEN + 1);
    return *len_p > AIP_CRYPTO_MAX_ID_LEN? -1: 0;
}

static void
s_put_be32 (uint8_t *out, uint32_t value)
{
    out [0] = (uint8_t) (value >> 24);
    out [1] = (uint8_t) (value >> 16);
    out [2] = (uint8_t) (value >> 8);
    out [3] = (uint8_t) value;
}

//  Build the associated data that binds a message to its room, id and sender.
//  Each id is length-prefixed so ("ab","c") and ("a","bc") never collide.
//  Returns its length, or 0 if an id is missing or too long.
static size_t
s_aip1_ad (const char *room_id, const char *message_id, const char *sender_id,
           uint8_t ad [AIP1_AD_MAX])
{
    const char *ids [3] = { room_id, message_id, sender_id };
    size_t size = 0;
    memcpy (ad, "aip1", 4);
    size += 4;
    for (int index = 0; index < 3; index++) {
        size_t len;
        if (s_id_len (ids [index], &len))
            return 0;
        s_put_be32 (ad + size, (uint32_t) len);
        size += 4;
        memcpy (ad + size, ids [index], len);
        size += len;
    }
    return size;
}


//  ---------------------------------------------------------------------------
//  Helpers

int
aip_crypto_init (void)
{
    //  0 = initialised now, 1 = already initialised, -1 = failure
    return sodium_init () < 0? -1: 0;
}

void
aip_crypto_thread_stop (void)
{
    //  Nothing to stop in a thread of a process that never loaded it
    if (s_ossl_ok)
        s_ossl.thread_stop ();
}

const char *
aip_crypto_strerror (int result)
{
    switch (result) {
        case AIP_CRYPTO_OK:           return "success";
        case AIP_CRYPTO_ERROR:        return "crypto error (bad argument or out of memory)";
        case AIP_CRYPTO_WRONG_FORMAT: return "not an encrypted message of this format";
        case AIP_CRYPTO_MALFORMED:    return "malformed ciphertext";
        case AIP_CRYPTO_AUTH_FAILED:  return "wrong password or corrupted message";
        case AIP_CRYPTO_TOO_LARGE:    return "message or id too large to encrypt";
        default:                      return "unknown crypto error";
    }
}

int
aip_crypto_compare (const void *a, const void *b, size_t len)
{
    if (!a || !b)
        return -1;
    return sodium_memcmp (a, b, len) == 0? 0: -1;
}

int
aip_crypto_compare_str (const char *a, const char *b)
{
    if (!a || !b)
        return -1;
    size_t len = strlen (a);
    if (strlen (b) != len)
        return -1;
    return sodium_memcmp (a, b, len) == 0? 0: -1;
}

int
aip_crypto_random_hex (char *out, size_t nbytes)
{
    if (!out || aip_crypto_init ())
        return -1;
    //  Work in chunks so any size works without a heap buffer
    uint8_t chunk [64];
    size_t done = 0;
    out [0] = 0;
    while (done < nbytes) {
        size_t size = nbytes - done < sizeof chunk? nbytes - done: sizeof chunk;
        randombytes_buf (chunk, size);
        sodium_bin2hex (out + 2 * done, 2 * size + 1, chunk, size);
        done += size;
    }
    sodium_memzero (chunk, sizeof chunk);
    return 0;
}

int
aip_crypto_key_to_b64 (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                       char out [AIP_CRYPTO_KEY_B64_SIZE])
{
    if (!key || !out || aip_crypto_init ())
        return -1;
    sodium_bin2base64 (out, AIP_CRYPTO_KEY_B64_SIZE, key, AIP_CRYPTO_KEY_BYTES,
                       sodium_base64_VARIANT_URLSAFE);
    return 0;
}

int
aip_crypto_key_from_b64 (const char *b64, uint8_t key [AIP_CRYPTO_KEY_BYTES])
{
    if (!b64 || !key || aip_crypto_init ())
        return -1;
    size_t len = strnlen (b64, AIP_CRYPTO_KEY_B64_SIZE);
    if (len != AIP_CRYPTO_KEY_B64_SIZE - 1)
        return -1;
    uint8_t bin [AIP_CRYPTO_KEY_BYTES + 3];
    size_t size = 0;
    int rc = -1;
    if (sodium_base642bin (bin, sizeof bin, b64, len, NULL, &size, NULL,
                           sodium_base64_VARIANT_URLSAFE) == 0
    &&  size == AIP_CRYPTO_KEY_BYTES) {
        memcpy (key, bin, AIP_CRYPTO_KEY_BYTES);
        rc = 0;
    }
    sodium_memzero (bin, sizeof bin);
    return rc;
}

aip_crypto_format_t
aip_crypto_format_of (const char *content)
{
    if (!content)
        return AIP_CRYPTO_FORMAT_NONE;
    if (strncmp (content, AIP_CRYPTO_AIP1_PREFIX, strlen (AIP_CRYPTO_AIP1_PREFIX)) == 0)
        return AIP_CRYPTO_FORMAT_AIP1;
    if (strncmp (content, AIP_CRYPTO_FERNET_PREFIX, strlen (AIP_CRYPTO_FERNET_PREFIX)) == 0)
        return AIP_CRYPTO_FORMAT_FERNET;
    return AIP_CRYPTO_FORMAT_NONE;
}


//  ---------------------------------------------------------------------------
//  v1 peer signatures

int
aip_crypto_hmac_sha256_hex (const char *key, const char *msg,
                            char out [AIP_CRYPTO_HEX_SIZE])
{
    if (!key || !msg || !out || aip_crypto_init ())
        return -1;
    uint8_t mac [crypto_auth_hmacsha256_BYTES];
    s_hmac_sha256 ((const uint8_t *) key, strlen (key),
                   (const uint8_t *) msg, strlen (msg), mac);
    sodium_bin2hex (out, AIP_CRYPTO_HEX_SIZE, mac, sizeof mac);
    sodium_memzero (mac, sizeof mac);
    return 0;
}

int
aip_crypto_peer_signature (const char *secret, const char *room_id,
                           char out [AIP_CRYPTO_HEX_SIZE])
{
    return aip_crypto_hmac_sha256_hex (secret, room_id, out);
}

int
aip_crypto_ai_secret (const char *human_secret, const char *tool,
                      char out [AIP_CRYPTO_HEX_SIZE])
{
    return aip_crypto_hmac_sha256_hex (human_secret, tool, out);
}


//  ---------------------------------------------------------------------------
//  The original's format: PBKDF2 + Fernet

int
aip_crypto_fernet_key (const char *password, const char *room_id,
                       uint8_t key [AIP_CRYPTO_KEY_BYTES])
{
    if (!password || !room_id || !key)
        return -1;
    size_t password_len = strlen (password);
    size_t room_len = strlen (room_id);
    if (password_len > INT32_MAX || room_len > INT32_MAX)
        return -1;
    const s_openssl_t *ossl = s_openssl ();
    if (!ossl
    ||  ossl->pbkdf2 (password, (int) password_len,
                      (const unsigned char *) room_id, (int) room_len,
                      AIP_CRYPTO_FERNET_ITERATIONS, ossl->sha256 (),
                      AIP_CRYPTO_KEY_BYTES, key) != 1)
        return -1;
    return 0;
}

int
aip_crypto_fernet_encrypt_at (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                              const void *plaintext, size_t size,
                              uint64_t timestamp,
                              const uint8_t iv [AIP_CRYPTO_FERNET_IV_BYTES],
                              char **token_p)
{
    if (!key || !iv || !token_p || (!plaintext && size) || aip_crypto_init ())
        return AIP_CRYPTO_ERROR;
    *token_p = NULL;
    if (size > AIP_CRYPTO_MAX_PLAINTEXT)
        return AIP_CRYPTO_TOO_LARGE;

    const s_openssl_t *ossl = s_openssl ();
    if (!ossl)
        return AIP_CRYPTO_ERROR;
    int rc = AIP_CRYPTO_ERROR;
    EVP_CIPHER_CTX *ctx = NULL;
    size_t padded = (size / FERNET_BLOCK + 1) * FERNET_BLOCK;
    size_t total = FERNET_HEADER + padded + FERNET_HMAC;
    uint8_t *bin = malloc (total);
    if (!bin)
        goto cleanup;

    bin [0] = FERNET_VERSION;
    for (int index = 0; index < 8; index++)
        bin [1 + index] = (uint8_t) (timestamp >> (56 - 8 * index));
    memcpy (bin + 9, iv, AIP_CRYPTO_FERNET_IV_BYTES);

    //  AES-128-CBC, PKCS7 padding (EVP's default), encryption key = key[16..31]
    ctx = ossl->ctx_new ();
    if (!ctx
    ||  ossl->encrypt_init (ctx, ossl->aes_128_cbc (), NULL, key + FERNET_HALF_KEY, iv) != 1)
        goto cleanup;
    int written = 0, final = 0;
    if (size
    &&  ossl->encrypt_update (ctx, bin + FERNET_HEADER, &written, plaintext, (int) size) != 1)
        goto cleanup;
    if (ossl->encrypt_final (ctx, bin + FERNET_HEADER + written, &final) != 1
    ||  (size_t) written + (size_t) final != padded)
        goto cleanup;

    //  HMAC-SHA256 over everything before it, signing key = key[0..15]
    s_hmac_sha256 (key, FERNET_HALF_KEY, bin, FERNET_HEADER + padded,
                   bin + FERNET_HEADER + padded);
    *token_p = s_b64_encode (bin, total, NULL);
    if (*token_p)
        rc = AIP_CRYPTO_OK;

cleanup:
    if (ctx)
        ossl->ctx_free (ctx);
    free (bin);
    return rc;
}

int
aip_crypto_fernet_encrypt (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                           const void *plaintext, size_t size, char **token_p)
{
    if (aip_crypto_init ())
        return AIP_CRYPTO_ERROR;
    uint8_t iv [AIP_CRYPTO_FERNET_IV_BYTES];
    randombytes_buf (iv, sizeof iv);
    time_t now = time (NULL);
    return aip_crypto_fernet_encrypt_at (key, plaintext, size,
                                         now > 0? (uint64_t) now: 0, iv, token_p);
}

aip_crypto_result_t
aip_crypto_fernet_decrypt (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                           const char *token, char **plaintext_p,
                           size_t *size_p, uint64_t *timestamp_p)
{
    if (!key || !token || !plaintext_p || aip_crypto_init ())
        return AIP_CRYPTO_ERROR;
    *plaintext_p = NULL;
    if (aip_crypto_format_of (token) != AIP_CRYPTO_FORMAT_FERNET)
        return AIP_CRYPTO_WRONG_FORMAT;
    size_t text_len = strnlen (token, s_fernet_max_text () + 1);
    if (text_len > s_fernet_max_text ())
        return AIP_CRYPTO_TOO_LARGE;

    const s_openssl_t *ossl = s_openssl ();
    if (!ossl)
        return AIP_CRYPTO_ERROR;
    aip_crypto_result_t rc = AIP_CRYPTO_MALFORMED;
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *plain = NULL;
    size_t plain_cap = 0;
    uint8_t *bin = NULL;
    size_t size = 0;
    if (s_b64_decode (token, text_len, &bin, &size))
        goto cleanup;
    if (size < FERNET_HEADER + FERNET_BLOCK + FERNET_HMAC
    ||  (size - FERNET_HEADER - FERNET_HMAC) % FERNET_BLOCK
    ||  bin [0] != FERNET_VERSION)
        goto cleanup;

    //  Authenticate before touching the ciphertext
    size_t signed_len = size - FERNET_HMAC;
    uint8_t mac [FERNET_HMAC];
    s_hmac_sha256 (key, FERNET_HALF_KEY, bin, signed_len, mac);
    if (crypto_verify_32 (mac, bin + signed_len) != 0) {
        rc = AIP_CRYPTO_AUTH_FAILED;
        goto cleanup;
    }

    size_t cipher_len = signed_len - FERNET_HEADER;
    rc = AIP_CRYPTO_ERROR;
    plain_cap = cipher_len + FERNET_BLOCK + 1;
    plain = malloc (plain_cap);
    ctx = ossl->ctx_new ();
    if (!plain || !ctx
    ||  ossl->decrypt_init (ctx, ossl->aes_128_cbc (), NULL,
                            key + FERNET_HALF_KEY, bin + 9) != 1)
        goto cleanup;
    int written = 0, final = 0;
    if (ossl->decrypt_update (ctx, plain, &written, bin + FERNET_HEADER,
                              (int) cipher_len) != 1
    ||  ossl->decrypt_final (ctx, plain + written, &final) != 1) {
        //  Authentic but badly padded: made by a key holder, still not a good token
        rc = AIP_CRYPTO_MALFORMED;
        goto cleanup;
    }
    size_t plain_len = (size_t) written + (size_t) final;
    plain [plain_len] = 0;
    if (timestamp_p) {
        *timestamp_p = 0;
        for (int index = 0; index < 8; index++)
            *timestamp_p = (*timestamp_p << 8) | bin [1 + index];
    }
    if (size_p)
        *size_p = plain_len;
    *plaintext_p = (char *) plain;
    plain = NULL;
    rc = AIP_CRYPTO_OK;

cleanup:
    if (plain) {
        sodium_memzero (plain, plain_cap);
        free (plain);
    }
    if (ctx)
        ossl->ctx_free (ctx);
    free (bin);
    return rc;
}


//  ---------------------------------------------------------------------------
//  This project's format: Argon2id + XChaCha20-Poly1305

//  0 if the cost is one we accept: libsodium's minimum up to its SENSITIVE
//  preset. The upper bound stops a hostile connection string from asking
//  for gigabytes or hours.
static int
s_kdf_cost_valid (uint64_t opslimit, uint64_t memlimit)
{
    if (opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN
    ||  opslimit > crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE
    ||  memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN
    ||  memlimit > crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE
    ||  memlimit > SIZE_MAX)
        return -1;
    return 0;
}

int
aip_crypto_kdf_params_generate (aip_crypto_kdf_params_t *params,
                                uint64_t opslimit, uint64_t memlimit)
{
    if (!params || aip_crypto_init ())
        return -1;
    if (opslimit == 0 && memlimit == 0) {
        opslimit = crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
        memlimit = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
    }
    if (s_kdf_cost_valid (opslimit, memlimit))
        return -1;
    params->opslimit = opslimit;
    params->memlimit = memlimit;
    randombytes_buf (params->salt, sizeof params->salt);
    return 0;
}

int
aip_crypto_kdf_params_encode (const aip_crypto_kdf_params_t *params,
                              char out [AIP_CRYPTO_KDF_PARAMS_SIZE])
{
    if (!params || !out || aip_crypto_init ())
        return -1;
    char salt [sodium_base64_ENCODED_LEN (AIP_CRYPTO_SALT_BYTES,
                                          sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64 (salt, sizeof salt, params->salt, sizeof params->salt,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    int len = snprintf (out, AIP_CRYPTO_KDF_PARAMS_SIZE, KDF_PARAMS_TAG "%llu:m=%llu:s=%s",
                        (unsigned long long) params->opslimit,
                        (unsigned long long) params->memlimit, salt);
    return len > 0 && len < AIP_CRYPTO_KDF_PARAMS_SIZE? 0: -1;
}

//  Parse a decimal number (digits only, no sign or space) at *text_p,
//  advancing it; 0 / -1 on no digits or overflow
static int
s_parse_u64 (const char **text_p, uint64_t *value_p)
{
    const char *text = *text_p;
    uint64_t value = 0;
    if (*text < '0' || *text > '9')
        return -1;
    while (*text >= '0' && *text <= '9') {
        unsigned digit = (unsigned) (*text - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
        text++;
    }
    *text_p = text;
    *value_p = value;
    return 0;
}

int
aip_crypto_kdf_params_decode (const char *text, aip_crypto_kdf_params_t *params)
{
    if (!text || !params || aip_crypto_init ())
        return -1;
    if (strnlen (text, AIP_CRYPTO_KDF_PARAMS_SIZE) >= AIP_CRYPTO_KDF_PARAMS_SIZE
    ||  strncmp (text, KDF_PARAMS_TAG, strlen (KDF_PARAMS_TAG)) != 0)
        return -1;
    const char *cursor = text + strlen (KDF_PARAMS_TAG);
    uint64_t opslimit, memlimit;
    if (s_parse_u64 (&cursor, &opslimit)
    ||  strncmp (cursor, ":m=", 3) != 0)
        return -1;
    cursor += 3;
    if (s_parse_u64 (&cursor, &memlimit)
    ||  strncmp (cursor, ":s=", 3) != 0)
        return -1;
    cursor += 3;
    if (s_kdf_cost_valid (opslimit, memlimit))
        return -1;
    uint8_t salt [AIP_CRYPTO_SALT_BYTES + 3];
    size_t size = 0;
    if (sodium_base642bin (salt, sizeof salt, cursor, strlen (cursor), NULL, &size,
                           NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0
    ||  size != AIP_CRYPTO_SALT_BYTES)
        return -1;
    params->opslimit = opslimit;
    params->memlimit = memlimit;
    memcpy (params->salt, salt, AIP_CRYPTO_SALT_BYTES);
    return 0;
}

int
aip_crypto_key_derive (const char *password, const aip_crypto_kdf_params_t *params,
                       uint8_t key [AIP_CRYPTO_KEY_BYTES])
{
    if (!password || !params || !key || aip_crypto_init ()
    ||  s_kdf_cost_valid (params->opslimit, params->memlimit))
        return -1;
    if (crypto_pwhash (key, AIP_CRYPTO_KEY_BYTES, password, strlen (password),
                       params->salt, params->opslimit, (size_t) params->memlimit,
                       crypto_pwhash_ALG_ARGON2ID13) != 0)
        return -1;              //  out of memory
    return 0;
}

int
aip_crypto_encrypt (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                    const char *room_id, const char *message_id,
                    const char *sender_id,
                    const void *plaintext, size_t size, char **out_p)
{
    if (!key || !room_id || !message_id || !sender_id || !out_p
    ||  (!plaintext && size) || aip_crypto_init ())
        return AIP_CRYPTO_ERROR;
    *out_p = NULL;
    if (size > AIP_CRYPTO_MAX_PLAINTEXT)
        return AIP_CRYPTO_TOO_LARGE;
    uint8_t ad [AIP1_AD_MAX];
    size_t ad_len = s_aip1_ad (room_id, message_id, sender_id, ad);
    if (ad_len == 0)
        return AIP_CRYPTO_TOO_LARGE;

    int rc = AIP_CRYPTO_ERROR;
    static const uint8_t empty = 0;
    size_t total = AIP1_NONCE + size + AIP1_TAG;
    uint8_t *bin = malloc (total);
    if (!bin)
        goto cleanup;
    //  A random 192-bit nonce per message: no counter state to keep
    randombytes_buf (bin, AIP1_NONCE);
    unsigned long long cipher_len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt (
            bin + AIP1_NONCE, &cipher_len, size? plaintext: &empty, size,
            ad, ad_len, NULL, bin, key) != 0
    ||  cipher_len != size + AIP1_TAG)
        goto cleanup;
    *out_p = s_b64_encode (bin, total, AIP_CRYPTO_AIP1_PREFIX);
    if (*out_p)
        rc = AIP_CRYPTO_OK;

cleanup:
    free (bin);
    return rc;
}

aip_crypto_result_t
aip_crypto_decrypt (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                    const char *room_id, const char *message_id,
                    const char *sender_id, const char *ciphertext,
                    char **plaintext_p, size_t *size_p)
{
    if (!key || !room_id || !message_id || !sender_id || !ciphertext
    ||  !plaintext_p || aip_crypto_init ())
        return AIP_CRYPTO_ERROR;
    *plaintext_p = NULL;
    if (aip_crypto_format_of (ciphertext) != AIP_CRYPTO_FORMAT_AIP1)
        return AIP_CRYPTO_WRONG_FORMAT;
    size_t text_len = strnlen (ciphertext, s_aip1_max_text () + 1);
    if (text_len > s_aip1_max_text ())
        return AIP_CRYPTO_TOO_LARGE;
    uint8_t ad [AIP1_AD_MAX];
    size_t ad_len = s_aip1_ad (room_id, message_id, sender_id, ad);
    if (ad_len == 0)
        return AIP_CRYPTO_TOO_LARGE;

    aip_crypto_result_t rc = AIP_CRYPTO_MALFORMED;
    size_t prefix_len = strlen (AIP_CRYPTO_AIP1_PREFIX);
    uint8_t *plain = NULL;
    uint8_t *bin = NULL;
    size_t size = 0;
    if (s_b64_decode (ciphertext + prefix_len, text_len - prefix_len, &bin, &size)
    ||  size < AIP1_NONCE + AIP1_TAG)
        goto cleanup;

    rc = AIP_CRYPTO_ERROR;
    size_t plain_cap = size - AIP1_NONCE - AIP1_TAG;
    plain = malloc (plain_cap + 1);
    if (!plain)
        goto cleanup;
    unsigned long long plain_len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt (
            plain, &plain_len, NULL, bin + AIP1_NONCE, size - AIP1_NONCE,
            ad, ad_len, bin, key) != 0) {
        rc = AIP_CRYPTO_AUTH_FAILED;
        goto cleanup;
    }
    plain [plain_len] = 0;
    if (size_p)
        *size_p = (size_t) plain_len;
    *plaintext_p = (char *) plain;
    plain = NULL;
    rc = AIP_CRYPTO_OK;

cleanup:
    free (plain);               //  libsodium leaves no plaintext in it on failure
    free (bin);
    return rc;
}


//  ---------------------------------------------------------------------------
//  Self-test

#include <jansson.h>

//  Checks stay on whatever NDEBUG says: a failed self-test must fail
#define s_check(cond) do { \
    if (!(cond)) { \
        fprintf (stderr, "%s:%d: self-test check failed: %s\n", \
                 __FILE__, __LINE__, #cond); \
        abort (); \
    } \
} while (0)

//  String member of a vector; aborts the test if missing
static const char *
s_vector_str (json_t *vector, const char *name)
{
    const char *value = json_string_value (json_object_get (vector, name));
    if (!value)
        fprintf (stderr, "aip_crypto: vector lacks string '%s'\n", name);
    s_check (value);
    return value;
}

static void
s_test_peer_signatures (json_t *vectors, bool verbose)
{
    json_t *list = json_object_get (vectors, "peer_signatures");
    s_check (json_is_array (list) && json_array_size (list) > 0);
    size_t index;
    json_t *vector;
    json_array_foreach (list, index, vector) {
        const char *human_secret = s_vector_str (vector, "human_secret");
        const char *room_id = s_vector_str (vector, "room_id");
        const char *tool = s_vector_str (vector, "tool");
        char signature [AIP_CRYPTO_HEX_SIZE];
        char ai_secret [AIP_CRYPTO_HEX_SIZE];
        s_check (aip_crypto_peer_signature (human_secret, room_id, signature) == 0);
        s_check (aip_crypto_compare_str (signature, s_vector_str (vector, "human_signature")) == 0);
        s_check (aip_crypto_ai_secret (human_secret, tool, ai_secret) == 0);
        s_check (strcmp (ai_secret, s_vector_str (vector, "ai_secret")) == 0);
        s_check (aip_crypto_peer_signature (ai_secret, room_id, signature) == 0);
        s_check (strcmp (signature, s_vector_str (vector, "ai_signature")) == 0);
    }
    if (verbose)
        printf (" * peer signatures: %zu vectors\n", json_array_size (list));
}

static void
s_test_fernet_vectors (json_t *vectors, bool verbose)
{
    json_t *list = json_object_get (vectors, "fernet");
    s_check (json_is_array (list) && json_array_size (list) > 0);
    size_t index;
    json_t *vector;
    json_array_foreach (list, index, vector) {
        const char *room_id = s_vector_str (vector, "room_id");
        const char *token = s_vector_str (vector, "token");
        const char *expected = s_vector_str (vector, "plaintext");
        size_t expected_len = json_string_length (json_object_get (vector, "plaintext"));
        json_t *timestamp_json = json_object_get (vector, "timestamp");
        s_check (json_is_integer (timestamp_json) && json_integer_value (timestamp_json) >= 0);
        uint64_t timestamp = (uint64_t) json_integer_value (timestamp_json);

        uint8_t key [AIP_CRYPTO_KEY_BYTES];
        char key_b64 [AIP_CRYPTO_KEY_B64_SIZE];
        s_check (aip_crypto_fernet_key (s_vector_str (vector, "password"), room_id, key) == 0);
        s_check (aip_crypto_key_to_b64 (key, key_b64) == 0);
        s_check (strcmp (key_b64, s_vector_str (vector, "derived_key_b64url")) == 0);
        uint8_t key_back [AIP_CRYPTO_KEY_BYTES];
        s_check (aip_crypto_key_from_b64 (key_b64, key_back) == 0);
        s_check (aip_crypto_compare (key, key_back, sizeof key) == 0);
        s_check (aip_crypto_format_of (token) == AIP_CRYPTO_FORMAT_FERNET);

        //  Their token decrypts
        char *plain = NULL;
        size_t size = 0;
        uint64_t when = 0;
        s_check (aip_crypto_fernet_decrypt (key, token, &plain, &size, &when) == AIP_CRYPTO_OK);
        s_check (size == expected_len && memcmp (plain, expected, size) == 0);
        s_check (plain [size] == 0 && when == timestamp);
        free (plain);

        //  Our token, with their time and IV, is byte for byte theirs
        uint8_t iv [AIP_CRYPTO_FERNET_IV_BYTES];
        size_t iv_len = 0;
        const char *iv_hex = s_vector_str (vector, "iv_hex");
        s_check (sodium_hex2bin (iv, sizeof iv, iv_hex, strlen (iv_hex), NULL, &iv_len, NULL) == 0);
        s_check (iv_len == sizeof iv);
        char *ours = NULL;
        s_check (aip_crypto_fernet_encrypt_at (key, expected, expected_len, timestamp, iv, &ours) == 0);
        s_check (strcmp (ours, token) == 0);
        free (ours);

        //  A fresh token (now, random IV) decrypts with the same key
        s_check (aip_crypto_fernet_encrypt (key, expected, expected_len, &ours) == 0);
        s_check (strcmp (ours, token) != 0);
        s_check (aip_crypto_fernet_decrypt (key, ours, &plain, &size, &when) == AIP_CRYPTO_OK);
        s_check (size == expected_len && memcmp (plain, expected, size) == 0);
        s_check (when >= 1700000000);
        free (plain);
        free (ours);

        //  Another key is refused as an authentication failure
        key [0] ^= 1;
        s_check (aip_crypto_fernet_decrypt (key, token, &plain, NULL, NULL) == AIP_CRYPTO_AUTH_FAILED);
        s_check (plain == NULL);
    }
    if (verbose)
        printf (" * fernet: %zu vectors\n", json_array_size (list));

    list = json_object_get (vectors, "fernet_must_fail");
    s_check (json_is_array (list) && json_array_size (list) > 0);
    json_array_foreach (list, index, vector) {
        uint8_t key [AIP_CRYPTO_KEY_BYTES];
        s_check (aip_crypto_fernet_key (s_vector_str (vector, "password"),
                                        s_vector_str (vector, "room_id"), key) == 0);
        char *plain = NULL;
        aip_crypto_result_t rc = aip_crypto_fernet_decrypt (
            key, s_vector_str (vector, "token"), &plain, NULL, NULL);
        if (verbose)
            printf ("   - must fail (%s): %s\n", s_vector_str (vector, "why"),
                    aip_crypto_strerror (rc));
        s_check (rc == AIP_CRYPTO_AUTH_FAILED || rc == AIP_CRYPTO_MALFORMED);
        s_check (plain == NULL);
    }
    if (verbose)
        printf (" * fernet must-fail: %zu vectors\n", json_array_size (list));
}

static void
s_test_fernet_bad_input (void)
{
    uint8_t key [AIP_CRYPTO_KEY_BYTES] = { 0 };
    uint8_t iv [AIP_CRYPTO_FERNET_IV_BYTES] = { 0 };
    char *token = NULL;
    char *plain = NULL;
    s_check (aip_crypto_fernet_encrypt_at (key, "x", 1, 1, iv, &token) == 0);
    s_check (aip_crypto_fernet_decrypt (key, token, &plain, NULL, NULL) == AIP_CRYPTO_OK);
    free (plain);

    //  Plain text and our own format are not Fernet
    s_check (aip_crypto_fernet_decrypt (key, "hello", &plain, NULL, NULL) == AIP_CRYPTO_WRONG_FORMAT);
    s_check (aip_crypto_fernet_decrypt (key, "aip1:AAAA", &plain, NULL, NULL) == AIP_CRYPTO_WRONG_FORMAT);
    //  Truncated, junk appended, bad base64: malformed
    s_check (aip_crypto_fernet_decrypt (key, "gAAAAABl", &plain, NULL, NULL) == AIP_CRYPTO_MALFORMED);
    size_t len = strlen (token);
    char *edited = malloc (len + 5);
    s_check (edited);
    memcpy (edited, token, len - 4);
    edited [len - 4] = 0;
    s_check (aip_crypto_fernet_decrypt (key, edited, &plain, NULL, NULL) == AIP_CRYPTO_MALFORMED);
    memcpy (edited, token, len + 1);
    strcat (edited, "AAAA");
    s_check (aip_crypto_fernet_decrypt (key, edited, &plain, NULL, NULL) == AIP_CRYPTO_MALFORMED);
    memcpy (edited, token, len + 1);
    edited [20] = '!';
    s_check (aip_crypto_fernet_decrypt (key, edited, &plain, NULL, NULL) == AIP_CRYPTO_MALFORMED);
    //  One ciphertext character changed: authentication fails
    memcpy (edited, token, len + 1);
    edited [40] = edited [40] == 'A'? 'B': 'A';
    s_check (aip_crypto_fernet_decrypt (key, edited, &plain, NULL, NULL) == AIP_CRYPTO_AUTH_FAILED);
    s_check (plain == NULL);
    free (edited);
    free (token);

    //  Too large to encrypt, refused before reading
    s_check (aip_crypto_fernet_encrypt_at (key, "x", AIP_CRYPTO_MAX_PLAINTEXT + 1, 1, iv, &token)
             == AIP_CRYPTO_TOO_LARGE);
    s_check (token == NULL);
    s_check (aip_crypto_fernet_encrypt (NULL, "x", 1, &token) == AIP_CRYPTO_ERROR);
}

//  Flip one byte of the binary inside an aip1 text; returns a new string
static char *
s_aip1_flip (const char *text, size_t offset)
{
    size_t prefix_len = strlen (AIP_CRYPTO_AIP1_PREFIX);
    uint8_t *bin = NULL;
    size_t size = 0;
    s_check (s_b64_decode (text + prefix_len, strlen (text) - prefix_len, &bin, &size) == 0);
    s_check (offset < size);
    bin [offset] ^= 0x01;
    char *flipped = s_b64_encode (bin, size, AIP_CRYPTO_AIP1_PREFIX);
    s_check (flipped);
    free (bin);
    return flipped;
}

static void
s_test_aip1 (bool verbose)
{
    //  Parameters: production defaults, and cheap ones for this test
    aip_crypto_kdf_params_t params, decoded;
    s_check (aip_crypto_kdf_params_generate (&params, 0, 0) == 0);
    s_check (params.opslimit == crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE);
    s_check (params.memlimit == crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE);
    s_check (aip_crypto_kdf_params_generate (&params, 0, 1) == -1);
    s_check (aip_crypto_kdf_params_generate (&params, crypto_pwhash_argon2id_OPSLIMIT_MIN,
                                             crypto_pwhash_argon2id_MEMLIMIT_MIN) == 0);
    char encoded [AIP_CRYPTO_KDF_PARAMS_SIZE];
    s_check (aip_crypto_kdf_params_encode (&params, encoded) == 0);
    if (verbose)
        printf (" * kdf params: %s\n", encoded);
    s_check (aip_crypto_kdf_params_decode (encoded, &decoded) == 0);
    s_check (decoded.opslimit == params.opslimit && decoded.memlimit == params.memlimit);
    s_check (memcmp (decoded.salt, params.salt, sizeof params.salt) == 0);
    const char *bad_params [] = {
        "", "argon2id13:t=1:m=8192:s=", "argon2id13:t=0:m=8192:s=AAAAAAAAAAAAAAAAAAAAAA",
        "argon2id13:t=1:m=1:s=AAAAAAAAAAAAAAAAAAAAAA",
        "argon2id13:t=1:m=99999999999999:s=AAAAAAAAAAAAAAAAAAAAAA",
        "argon2id13:t=99999999999999999999999:m=8192:s=AAAAAAAAAAAAAAAAAAAAAA",
        "argon2id13:t=-1:m=8192:s=AAAAAAAAAAAAAAAAAAAAAA",
        "argon2id13:t= 1:m=8192:s=AAAAAAAAAAAAAAAAAAAAAA",
        "argon2id13:t=1:m=8192:s=AAAAAAAAAAAAAAAAAAAAAAAA",
        "argon2id13:t=1:m=8192:s=AAAAAAAAAAAAAAAAAAAAAA=",
        "argon2i13:t=1:m=8192:s=AAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t index = 0; index < sizeof bad_params / sizeof bad_params [0]; index++)
        s_check (aip_crypto_kdf_params_decode (bad_params [index], &decoded) == -1);
    s_check (aip_crypto_kdf_params_decode ("argon2id13:t=1:m=8192:s=AAAAAAAAAAAAAAAAAAAAAA",
                                           &decoded) == 0);

    //  Keys: deterministic from password + params, different otherwise
    uint8_t key [AIP_CRYPTO_KEY_BYTES], again [AIP_CRYPTO_KEY_BYTES];
    uint8_t wrong [AIP_CRYPTO_KEY_BYTES], other_salt [AIP_CRYPTO_KEY_BYTES];
    s_check (aip_crypto_key_derive ("correct horse", &params, key) == 0);
    s_check (aip_crypto_key_derive ("correct horse", &params, again) == 0);
    s_check (aip_crypto_compare (key, again, sizeof key) == 0);
    s_check (aip_crypto_key_derive ("correct horsf", &params, wrong) == 0);
    s_check (aip_crypto_compare (key, wrong, sizeof key) == -1);
    s_check (aip_crypto_key_derive ("correct horse", &decoded, other_salt) == 0);
    s_check (aip_crypto_compare (key, other_salt, sizeof key) == -1);

    //  Round trip
    const char *room = "room-0a1b2c3d4e5f", *msg = "msg-0123456789a01234", *sender = "peer-alice";
    const char *text = "the build is green \xe2\x9c\x93";
    char *sealed = NULL, *sealed2 = NULL, *plain = NULL;
    size_t size = 0;
    s_check (aip_crypto_encrypt (key, room, msg, sender, text, strlen (text), &sealed) == 0);
    s_check (aip_crypto_format_of (sealed) == AIP_CRYPTO_FORMAT_AIP1);
    s_check (strstr (sealed, "green") == NULL);
    s_check (aip_crypto_decrypt (key, room, msg, sender, sealed, &plain, &size) == AIP_CRYPTO_OK);
    s_check (size == strlen (text) && strcmp (plain, text) == 0);
    free (plain);
    s_check (aip_crypto_encrypt (key, room, msg, sender, text, strlen (text), &sealed2) == 0);
    s_check (strcmp (sealed, sealed2) != 0);        //  fresh nonce each time
    free (sealed2);
    if (verbose)
        printf (" * aip1 sample: %s\n", sealed);

    //  Fails closed: wrong key, room, message, sender; swapped ids
    s_check (aip_crypto_decrypt (wrong, room, msg, sender, sealed, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    s_check (aip_crypto_decrypt (other_salt, room, msg, sender, sealed, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    s_check (aip_crypto_decrypt (key, "room-OTHER", msg, sender, sealed, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    s_check (aip_crypto_decrypt (key, room, "msg-other", sender, sealed, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    s_check (aip_crypto_decrypt (key, room, msg, "peer-mallory", sealed, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    s_check (aip_crypto_decrypt (key, room, sender, msg, sealed, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    s_check (plain == NULL);

    //  Length prefixes keep ("ab","c") apart from ("a","bc")
    s_check (aip_crypto_encrypt (key, "ab", "c", "d", "x", 1, &sealed2) == 0);
    s_check (aip_crypto_decrypt (key, "ab", "c", "d", sealed2, &plain, NULL) == AIP_CRYPTO_OK);
    free (plain);
    s_check (aip_crypto_decrypt (key, "a", "bc", "d", sealed2, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    s_check (aip_crypto_decrypt (key, "ab", "", "cd", sealed2, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    free (sealed2);

    //  Tampering: flip a byte in the nonce, the ciphertext and the tag
    size_t bin_len = AIP1_NONCE + strlen (text) + AIP1_TAG;
    size_t offsets [] = { 0, AIP1_NONCE - 1, AIP1_NONCE, AIP1_NONCE + 5, bin_len - 1 };
    for (size_t index = 0; index < sizeof offsets / sizeof offsets [0]; index++) {
        char *flipped = s_aip1_flip (sealed, offsets [index]);
        s_check (aip_crypto_decrypt (key, room, msg, sender, flipped, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
        free (flipped);
    }
    //  ... and at the text level
    size_t len = strlen (sealed);
    char *edited = malloc (len + 5);
    s_check (edited);
    memcpy (edited, sealed, len + 1);
    edited [10] = edited [10] == 'A'? 'B': 'A';
    s_check (aip_crypto_decrypt (key, room, msg, sender, edited, &plain, NULL) == AIP_CRYPTO_AUTH_FAILED);
    memcpy (edited, sealed, len + 1);
    edited [len - 1] = '!';
    s_check (aip_crypto_decrypt (key, room, msg, sender, edited, &plain, NULL) == AIP_CRYPTO_MALFORMED);
    memcpy (edited, sealed, len + 1);
    strcat (edited, "AAAA");            //  after padding: bad base64; else 3 more bytes
    s_check (aip_crypto_decrypt (key, room, msg, sender, edited, &plain, NULL)
             == (sealed [len - 1] == '='? AIP_CRYPTO_MALFORMED: AIP_CRYPTO_AUTH_FAILED));
    free (edited);

    //  Not ours, or malformed
    s_check (aip_crypto_decrypt (key, room, msg, sender, "hello", &plain, NULL) == AIP_CRYPTO_WRONG_FORMAT);
    s_check (aip_crypto_decrypt (key, room, msg, sender, "AIP1:AAAA", &plain, NULL) == AIP_CRYPTO_WRONG_FORMAT);
    s_check (aip_crypto_decrypt (key, room, msg, sender, "gAAAAABlU_EAAAEC", &plain, NULL) == AIP_CRYPTO_WRONG_FORMAT);
    s_check (aip_crypto_decrypt (key, room, msg, sender, "aip1:", &plain, NULL) == AIP_CRYPTO_MALFORMED);
    s_check (aip_crypto_decrypt (key, room, msg, sender, "aip1:AAAA", &plain, NULL) == AIP_CRYPTO_MALFORMED);
    s_check (aip_crypto_decrypt (key, room, msg, sender, "aip1:?!", &plain, NULL) == AIP_CRYPTO_MALFORMED);
    s_check (plain == NULL);
    free (sealed);

    //  Limits and bad arguments
    char long_id [AIP_CRYPTO_MAX_ID_LEN + 2];
    memset (long_id, 'a', sizeof long_id - 1);
    long_id [sizeof long_id - 1] = 0;
    s_check (aip_crypto_encrypt (key, long_id, msg, sender, "x", 1, &sealed) == AIP_CRYPTO_TOO_LARGE);
    long_id [AIP_CRYPTO_MAX_ID_LEN] = 0;
    s_check (aip_crypto_encrypt (key, long_id, msg, sender, "x", 1, &sealed) == AIP_CRYPTO_OK);
    s_check (aip_crypto_decrypt (key, long_id, msg, sender, sealed, &plain, NULL) == AIP_CRYPTO_OK);
    free (plain);
    free (sealed);
    s_check (aip_crypto_encrypt (key, room, msg, sender, "x", AIP_CRYPTO_MAX_PLAINTEXT + 1, &sealed)
             == AIP_CRYPTO_TOO_LARGE);
    s_check (aip_crypto_encrypt (key, room, NULL, sender, "x", 1, &sealed) == AIP_CRYPTO_ERROR);
    s_check (aip_crypto_decrypt (key, room, msg, NULL, "aip1:", &plain, NULL) == AIP_CRYPTO_ERROR);

    //  Empty and 256 KiB plaintexts (binary, NULs included), both formats
    size_t sizes [] = { 0, 256 * 1024 };
    uint8_t fernet_key [AIP_CRYPTO_KEY_BYTES];
    randombytes_buf (fernet_key, sizeof fernet_key);
    for (size_t index = 0; index < 2; index++) {
        size_t bytes = sizes [index];
        uint8_t *data = malloc (bytes + 1);
        s_check (data);
        randombytes_buf (data, bytes);
        s_check (aip_crypto_encrypt (key, room, msg, sender, bytes? data: NULL, bytes, &sealed) == 0);
        s_check (aip_crypto_decrypt (key, room, msg, sender, sealed, &plain, &size) == AIP_CRYPTO_OK);
        s_check (size == bytes && memcmp (plain, data, bytes) == 0 && plain [bytes] == 0);
        free (plain);
        free (sealed);
        s_check (aip_crypto_fernet_encrypt (fernet_key, bytes? data: NULL, bytes, &sealed) == 0);
        s_check (aip_crypto_fernet_decrypt (fernet_key, sealed, &plain, &size, NULL) == AIP_CRYPTO_OK);
        s_check (size == bytes && memcmp (plain, data, bytes) == 0 && plain [bytes] == 0);
        free (plain);
        free (sealed);
        free (data);
    }
    if (verbose)
        printf (" * aip1: round trips, tampering, wrong key/room/message/sender, limits\n");
}

static void
s_test_helpers (void)
{
    char hex [2 * 100 + 1], hex2 [65];
    s_check (aip_crypto_random_hex (hex, 32) == 0);
    s_check (strlen (hex) == 64 && strspn (hex, "0123456789abcdef") == 64);
    s_check (aip_crypto_random_hex (hex2, 32) == 0);
    s_check (aip_crypto_compare_str (hex, hex2) == -1);
    s_check (aip_crypto_random_hex (hex, 100) == 0);
    s_check (strlen (hex) == 200 && strspn (hex, "0123456789abcdef") == 200);
    s_check (aip_crypto_random_hex (hex, 0) == 0 && hex [0] == 0);

    s_check (aip_crypto_compare_str ("abc", "abc") == 0);
    s_check (aip_crypto_compare_str ("abc", "abd") == -1);
    s_check (aip_crypto_compare_str ("abc", "abcd") == -1);
    s_check (aip_crypto_compare_str ("", "") == 0);
    s_check (aip_crypto_compare_str (NULL, "") == -1);
    s_check (aip_crypto_compare ("ab", "ab", 2) == 0);
    s_check (aip_crypto_compare ("ab", "ac", 2) == -1);

    uint8_t key [AIP_CRYPTO_KEY_BYTES];
    s_check (aip_crypto_key_from_b64 ("short", key) == -1);
    s_check (aip_crypto_key_from_b64 ("fbp6mRBFAWWDrnGhgEK6dOz1d5tto1ajA8HDnq46pzE", key) == -1);
    s_check (aip_crypto_key_from_b64 ("fbp6mRBFAWWDrnGhgEK6dOz1d5tto1ajA8HDnq46pzE=x", key) == -1);
    s_check (aip_crypto_key_from_b64 ("fbp6mRBFAWWDrnGhgEK6dOz1d5tto1ajA8HDnq46pz+=", key) == -1);

    s_check (aip_crypto_format_of (NULL) == AIP_CRYPTO_FORMAT_NONE);
    s_check (aip_crypto_format_of ("hello") == AIP_CRYPTO_FORMAT_NONE);
    s_check (aip_crypto_format_of ("aip1:") == AIP_CRYPTO_FORMAT_AIP1);
    s_check (aip_crypto_format_of ("gAAAAA") == AIP_CRYPTO_FORMAT_FERNET);

    char mac [AIP_CRYPTO_HEX_SIZE];
    s_check (aip_crypto_hmac_sha256_hex (NULL, "x", mac) == -1);
    //  RFC 4231 test case 2: key "Jefe"
    s_check (aip_crypto_hmac_sha256_hex ("Jefe", "what do ya want for nothing?", mac) == 0);
    s_check (strcmp (mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0);
    //  Keys longer than a block are hashed first (HMAC rule), not truncated
    char long_key [200];
    memset (long_key, 'k', sizeof long_key - 1);
    long_key [sizeof long_key - 1] = 0;
    char mac2 [AIP_CRYPTO_HEX_SIZE];
    s_check (aip_crypto_hmac_sha256_hex (long_key, "m", mac) == 0);
    long_key [150] = 0;
    s_check (aip_crypto_hmac_sha256_hex (long_key, "m", mac2) == 0);
    s_check (strcmp (mac, mac2) != 0);

    for (int code = 0; code >= -6; code--)
        s_check (aip_crypto_strerror (code) && *aip_crypto_strerror (code));
}

void
aip_crypto_test (bool verbose)
{
    printf (" * aip_crypto: ");
    if (verbose)
        printf ("\n");
    s_check (aip_crypto_init () == 0);
    s_check (aip_crypto_init () == 0);          //  idempotent
    s_test_helpers ();

    const char *path = AIP_SOURCE_DIR "/tests/fixtures/v1-interop.json";
    json_error_t error;
    json_t *vectors = json_load_file (path, 0, &error);
    if (!vectors)
        fprintf (stderr, "aip_crypto: cannot load %s: %s (line %d)\n",
                 path, error.text, error.line);
    s_check (vectors);
    s_test_peer_signatures (vectors, verbose);
    s_test_fernet_vectors (vectors, verbose);
    json_decref (vectors);

    s_test_fernet_bad_input ();
    s_test_aip1 (verbose);
    printf ("OK\n");
}
