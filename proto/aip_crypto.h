/*  aip_crypto.h — peer signatures, tokens and end-to-end room encryption.

    Composes libsodium and OpenSSL libcrypto calls; no primitive is written here.
    - v1 peer signatures (DESIGN.md §7): hex HMAC-SHA256 keyed with a secret string.
    - The original's encrypted rooms (DESIGN.md §8): PBKDF2 key + Fernet tokens.
    - This project's format: Argon2id key + XChaCha20-Poly1305, "aip1:" prefix,
      with room id, message id and sender id bound as associated data.
    Stateless: every function is safe to call from any thread. */

#ifndef AIP_CRYPTO_H_INCLUDED
#define AIP_CRYPTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Sizes of caller-provided buffers
#define AIP_CRYPTO_HEX_SIZE          65     //  64 hex chars of an HMAC-SHA256 + NUL
#define AIP_CRYPTO_KEY_BYTES         32     //  a room key, either format
#define AIP_CRYPTO_KEY_B64_SIZE      45     //  44 urlsafe base64 chars (padded) + NUL
#define AIP_CRYPTO_FERNET_IV_BYTES   16     //  AES-128-CBC IV in a Fernet token
#define AIP_CRYPTO_SALT_BYTES        16     //  Argon2id salt (crypto_pwhash_SALTBYTES)
#define AIP_CRYPTO_KDF_PARAMS_SIZE   96     //  encoded Argon2id parameters + NUL

//  Limits, enforced where input enters this module
#define AIP_CRYPTO_MAX_PLAINTEXT     (4u * 1024 * 1024)    //  bytes per message
#define AIP_CRYPTO_MAX_ID_LEN        256    //  room / message / sender id, bytes
#define AIP_CRYPTO_FERNET_ITERATIONS 100000 //  PBKDF2 rounds fixed by the original
//  The weakest Argon2id cost a room we join may name (its kdf= comes from a
//  connection string or a relay): the cost this project makes rooms with,
//  libsodium's INTERACTIVE (2 passes, 64 MiB); libsodium's own minimum (1
//  pass, 8 KiB) would make a stolen room's password cheap to guess
#define AIP_CRYPTO_KDF_MIN_OPSLIMIT  2
#define AIP_CRYPTO_KDF_MIN_MEMLIMIT  (64u * 1024 * 1024)

//  Text prefixes that identify a ciphertext's format
#define AIP_CRYPTO_AIP1_PREFIX       "aip1:"
#define AIP_CRYPTO_FERNET_PREFIX     "gAAAAA"

//  Results of the decrypt functions (and of the others, which use 0 / -1)
typedef enum {
    AIP_CRYPTO_OK = 0,
    AIP_CRYPTO_ERROR = -1,          //  bad argument, out of memory, library failure
    AIP_CRYPTO_WRONG_FORMAT = -2,   //  not a ciphertext of this format (no prefix)
    AIP_CRYPTO_MALFORMED = -3,      //  right prefix, but corrupt encoding or length
    AIP_CRYPTO_AUTH_FAILED = -4,    //  wrong key, tampered, or other room/message/sender
    AIP_CRYPTO_TOO_LARGE = -5       //  exceeds AIP_CRYPTO_MAX_PLAINTEXT or _MAX_ID_LEN
} aip_crypto_result_t;

//  Which format a stored content string is in
typedef enum {
    AIP_CRYPTO_FORMAT_NONE = 0,     //  plaintext (or unknown)
    AIP_CRYPTO_FORMAT_FERNET = 1,   //  the original's Fernet token
    AIP_CRYPTO_FORMAT_AIP1 = 2      //  this project's "aip1:" format
} aip_crypto_format_t;

//  Argon2id parameters, stored with the room (none of it is secret)
typedef struct {
    uint64_t opslimit;                          //  Argon2id passes
    uint64_t memlimit;                          //  Argon2id memory, bytes
    uint8_t salt [AIP_CRYPTO_SALT_BYTES];       //  random per room
} aip_crypto_kdf_params_t;

//  ---------------------------------------------------------------------------
//  Helpers

//  Initialise libsodium (idempotent, thread-safe); 0 / -1. Others call it too.
int aip_crypto_init (void);

//  Release this thread's OpenSSL state. A thread that derived Fernet keys
//  and ends before the process exits must call it first: otherwise
//  OpenSSL's exit handler and the thread's own cleanup free it twice.
void aip_crypto_thread_stop (void);

//  Return a static English description of a result code.
const char *aip_crypto_strerror (int result);

//  Constant-time compare of len bytes: 0 if equal, -1 if not.
int aip_crypto_compare (const void *a, const void *b, size_t len);

//  Compare two strings in time independent of content (length may leak):
//  0 if equal, -1 if not or if either is NULL.
int aip_crypto_compare_str (const char *a, const char *b);

//  Write 2*nbytes random lowercase hex chars + NUL to out (size 2*nbytes+1).
int aip_crypto_random_hex (char *out, size_t nbytes);

//  Write a 32-byte key as urlsafe base64 with padding (44 chars + NUL).
int aip_crypto_key_to_b64 (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                           char out [AIP_CRYPTO_KEY_B64_SIZE]);

//  Read a key written by aip_crypto_key_to_b64 (or a Fernet key); 0 / -1.
int aip_crypto_key_from_b64 (const char *b64, uint8_t key [AIP_CRYPTO_KEY_BYTES]);

//  Tell which format content is in, by its prefix (no decryption).
aip_crypto_format_t aip_crypto_format_of (const char *content);

//  ---------------------------------------------------------------------------
//  v1 peer signatures (DESIGN.md §7)

//  out = hex(HMAC-SHA256(key = the bytes of the string key, msg)); 0 / -1.
int aip_crypto_hmac_sha256_hex (const char *key, const char *msg,
                                char out [AIP_CRYPTO_HEX_SIZE]);

//  A peer's signature in a room: hex(HMAC-SHA256(secret, room_id)).
int aip_crypto_peer_signature (const char *secret, const char *room_id,
                               char out [AIP_CRYPTO_HEX_SIZE]);

//  An AI peer's secret: hex(HMAC-SHA256(human_secret, tool)).
int aip_crypto_ai_secret (const char *human_secret, const char *tool,
                          char out [AIP_CRYPTO_HEX_SIZE]);

//  ---------------------------------------------------------------------------
//  The original's format: PBKDF2 key + Fernet tokens

//  key = PBKDF2-HMAC-SHA256(password, salt = room_id, 100000, 32 bytes); 0 / -1.
int aip_crypto_fernet_key (const char *password, const char *room_id,
                           uint8_t key [AIP_CRYPTO_KEY_BYTES]);

//  Fernet-encrypt with a given timestamp and IV (test vectors); *token_p is
//  the caller's to free. 0, -1, or AIP_CRYPTO_TOO_LARGE.
int aip_crypto_fernet_encrypt_at (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                                  const void *plaintext, size_t size,
                                  uint64_t timestamp,
                                  const uint8_t iv [AIP_CRYPTO_FERNET_IV_BYTES],
                                  char **token_p);

//  Fernet-encrypt with the current time and a random IV; *token_p is the
//  caller's to free. 0, -1, or AIP_CRYPTO_TOO_LARGE.
int aip_crypto_fernet_encrypt (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                               const void *plaintext, size_t size, char **token_p);

//  Verify and decrypt a Fernet token (no TTL, like the original). On OK,
//  *plaintext_p is a NUL-terminated copy (caller frees), *size_p (optional)
//  its length, *timestamp_p (optional) the token's time. AUTH_FAILED means
//  wrong key or tampered; WRONG_FORMAT / MALFORMED / TOO_LARGE mean not a
//  good token; ERROR means a bad argument or out of memory.
aip_crypto_result_t
    aip_crypto_fernet_decrypt (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                               const char *token, char **plaintext_p,
                               size_t *size_p, uint64_t *timestamp_p);

//  ---------------------------------------------------------------------------
//  This project's format: Argon2id + XChaCha20-Poly1305 ("aip1:")

//  Fill params with a fresh random salt and the given cost; 0, 0 means the
//  production defaults (crypto_pwhash_*_INTERACTIVE). 0 / -1 if out of bounds.
int aip_crypto_kdf_params_generate (aip_crypto_kdf_params_t *params,
                                    uint64_t opslimit, uint64_t memlimit);

//  Encode params as "argon2id13:t=<ops>:m=<bytes>:s=<salt b64url>"; 0 / -1.
int aip_crypto_kdf_params_encode (const aip_crypto_kdf_params_t *params,
                                  char out [AIP_CRYPTO_KDF_PARAMS_SIZE]);

//  Decode and bounds-check params written by _encode; 0 / -1.
int aip_crypto_kdf_params_decode (const char *text, aip_crypto_kdf_params_t *params);

//  Derive a room key from the password and stored params (Argon2id13); 0 / -1.
int aip_crypto_key_derive (const char *password, const aip_crypto_kdf_params_t *params,
                           uint8_t key [AIP_CRYPTO_KEY_BYTES]);

//  Encrypt for one message: *out_p = "aip1:" + b64url(nonce || ciphertext+tag),
//  caller frees. room_id, message_id, sender_id are authenticated, not sent.
//  0, -1, or AIP_CRYPTO_TOO_LARGE.
int aip_crypto_encrypt (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                        const char *room_id, const char *message_id,
                        const char *sender_id,
                        const void *plaintext, size_t size, char **out_p);

//  Decrypt what aip_crypto_encrypt made, with the same ids. On OK,
//  *plaintext_p is a NUL-terminated copy (caller frees), *size_p (optional)
//  its length. Fails closed: WRONG_FORMAT (no "aip1:" prefix), MALFORMED,
//  TOO_LARGE, AUTH_FAILED (wrong key, tampered, other room/message/sender).
aip_crypto_result_t
    aip_crypto_decrypt (const uint8_t key [AIP_CRYPTO_KEY_BYTES],
                        const char *room_id, const char *message_id,
                        const char *sender_id, const char *ciphertext,
                        char **plaintext_p, size_t *size_p);

//  Self-test: interop vectors, round trips, tampering; aborts on failure.
void aip_crypto_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
