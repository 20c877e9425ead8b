/*  aip_util.h — small shared helpers: ids, time stamps, validation, files.
    No ZeroMQ here: the CLI links these. */
#ifndef AIP_UTIL_H_INCLUDED
#define AIP_UTIL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  "room-" + 12 lowercase hex chars
#define AIP_ROOM_ID_LEN 17
//  "msg-" + 11 hex ms + 16 hex random (64 bits)
#define AIP_MSG_ID_LEN  31
//  "2026-11-23T21:29:49.953123+00:00"
#define AIP_TIME_LEN    32

//  Fill buf (>= AIP_ROOM_ID_LEN + 1) with a new random room id
void aip_room_id_new (char *buf);
//  Fill buf (>= AIP_MSG_ID_LEN + 1) with a new time-ordered message id
void aip_msg_id_new (char *buf);
//  Fill buf (>= AIP_TIME_LEN + 1) with the current UTC time, microseconds
void aip_time_now (char *buf);
//  Milliseconds since the epoch, wall clock
int64_t aip_time_ms (void);
//  Milliseconds, monotonic clock
int64_t aip_clock_ms (void);
//  Fill out with n random bytes (getrandom); aborts only if the kernel cannot
void aip_random_bytes (void *out, size_t n);

//  True if s matches ^[A-Za-z0-9_-]{1,64}$
bool aip_id_valid (const char *s, size_t len);
//  True if s is an ISO-8601 UTC time as ai-peer and the relays write them:
//  YYYY-MM-DDTHH:MM:SS, optionally .1-9 digits, then Z or +00:00. With
//  ms, its milliseconds since the epoch.
bool aip_time_valid (const char *s, size_t len, int64_t *ms);
//  Make s a valid id in place: characters outside [A-Za-z0-9_-] become '-',
//  at most 64 kept (host names like "box.local" become "box-local")
void aip_id_sanitize (char *s);
//  True if s is well-formed UTF-8 (no overlongs, no surrogates)
bool aip_utf8_valid (const char *s, size_t len);
//  The length of s cut to at most max bytes, on a character boundary
size_t aip_utf8_cut (const char *s, size_t len, size_t max);
//  Where the last max bytes of s start, moved on to a character boundary
size_t aip_utf8_tail (const char *s, size_t len, size_t max);
//  True if every byte is whitespace (or len is 0)
bool aip_blank (const char *s, size_t len);

//  Read a whole file (at most max bytes) into a NUL-terminated buffer the
//  caller frees; sets *len. Returns NULL with errno set on failure (EFBIG if
//  larger than max).
char *aip_file_read (const char *path, size_t max, size_t *len);
//  Write a file atomically (temp file + fsync + rename) with the given mode
int aip_file_write_atomic (const char *path, const void *data, size_t len, int mode);
//  mkdir -p with a mode for the last component; 0 if it exists as a directory
int aip_mkdir_p (const char *path, int mode);
//  A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice
//  for a plain socket, closed at once), for self-tests that need one; -1
//  if none could be had. (A ZeroMQ socket bound to find one closes in its
//  I/O thread, later, and czmq's "*" hands every prober the same port.)
int aip_free_tcp_port (void);

//  Self-test
void aip_util_test (bool verbose);

#endif
