/*  aip_util.c — ids, time stamps, validation and file helpers shared by the
    daemons and the CLI. */
#include "aip_util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char s_hex [] = "0123456789abcdef";

void
aip_random_bytes (void *out, size_t n)
{
    uint8_t *p = (uint8_t *) out;
    while (n > 0) {
        ssize_t got = getrandom (p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            abort ();               //  no entropy at all: nothing sane to do
        }
        p += got;
        n -= (size_t) got;
    }
}

void
aip_room_id_new (char *buf)
{
    uint8_t rnd [6];
    aip_random_bytes (rnd, sizeof rnd);
    memcpy (buf, "room-", 5);
    for (int i = 0; i < 6; i++) {
        buf [5 + 2 * i] = s_hex [rnd [i] >> 4];
        buf [6 + 2 * i] = s_hex [rnd [i] & 15];
    }
    buf [AIP_ROOM_ID_LEN] = 0;
}

void
aip_msg_id_new (char *buf)
{
    //  11 hex digits of milliseconds keep ids in insertion order, so index
    //  inserts stay sequential (random ids cut SQLite's batched insert rate
    //  several times); 16 random hex digits (64 bits) separate ids of the
    //  same ms: 20 bits met about once in 30,000 pipelined sends.
    uint64_t ms = (uint64_t) aip_time_ms ();
    uint8_t rnd [8];
    aip_random_bytes (rnd, sizeof rnd);
    memcpy (buf, "msg-", 4);
    for (int i = 10; i >= 0; i--) {
        buf [4 + i] = s_hex [ms & 15];
        ms >>= 4;
    }
    for (int i = 0; i < 8; i++) {
        buf [15 + 2 * i] = s_hex [rnd [i] >> 4];
        buf [16 + 2 * i] = s_hex [rnd [i] & 15];
    }
    buf [AIP_MSG_ID_LEN] = 0;
}

int64_t
aip_time_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
aip_clock_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
aip_time_now (char *buf)
{
    //  Stamps from one process strictly increase, also within a
    //  microsecond: rows stamped in one transaction (a member's "joined the
    //  room", then its message) keep the order they were made in, which
    //  ordering by created_at, then id, could otherwise swap.
    static _Atomic int64_t last_us;
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    int64_t us = (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    int64_t prev = atomic_load (&last_us);
    int64_t next;
    do
        next = us > prev ? us : prev + 1;
    while (!atomic_compare_exchange_weak (&last_us, &prev, next));
    time_t sec = (time_t) (next / 1000000);
    struct tm tm;
    gmtime_r (&sec, &tm);
    //  Same shape as Python's datetime.now(timezone.utc).isoformat(), but
    //  always with microseconds so that stamps sort as strings.
    snprintf (buf, AIP_TIME_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00",
              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
              tm.tm_hour, tm.tm_min, tm.tm_sec, (long) (next % 1000000));
}

//  n decimal digits at s into *value; false if any is not a digit
static bool
s_digits (const char *s, int n, int *value)
{
    *value = 0;
    for (int i = 0; i < n; i++) {
        if (s [i] < '0' || s [i] > '9')
            return false;
        *value = *value * 10 + (s [i] - '0');
    }
    return true;
}

bool
aip_time_valid (const char *s, size_t len, int64_t *ms)
{
    //  2026-11-23T21:29:49 is 19 characters; then fraction and zone
    if (!s || len < 20 || len > 40)
        return false;
    int year, month, day, hour, minute, second;
    if (!s_digits (s, 4, &year) || s [4] != '-' || !s_digits (s + 5, 2, &month) || s [7] != '-'
    ||  !s_digits (s + 8, 2, &day) || s [10] != 'T' || !s_digits (s + 11, 2, &hour)
    ||  s [13] != ':' || !s_digits (s + 14, 2, &minute) || s [16] != ':'
    ||  !s_digits (s + 17, 2, &second))
        return false;
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23
    ||  minute > 59 || second > 60)
        return false;
    size_t at = 19;
    int millis = 0;
    if (s [at] == '.') {
        size_t digits = 0;
        for (at++; at < len && s [at] >= '0' && s [at] <= '9'; at++, digits++)
            if (digits < 3)
                millis = millis * 10 + (s [at] - '0');
        if (digits < 1 || digits > 9)
            return false;
        for (; digits < 3; digits++)
            millis *= 10;
    }
    bool zone = (len - at == 1 && s [at] == 'Z')
             || (len - at == 6 && memcmp (s + at, "+00:00", 6) == 0);
    if (!zone)
        return false;
    if (ms) {
        struct tm tm = { 0 };
        tm.tm_year = year - 1900;
        tm.tm_mon = month - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = minute;
        tm.tm_sec = second;
        *ms = (int64_t) timegm (&tm) * 1000 + millis;
    }
    return true;
}

bool
aip_id_valid (const char *s, size_t len)
{
    if (!s || len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        ||    (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void
aip_id_sanitize (char *s)
{
    size_t i;
    for (i = 0; s [i] && i < 64; i++)
        if (!aip_id_valid (s + i, 1))
            s [i] = '-';
    s [i] = 0;
}

bool
aip_utf8_valid (const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *) str;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s [i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1; cp = c & 0x1f;
        }
        else
        if (c >= 0xe0 && c <= 0xef) {
            need = 2; cp = c & 0x0f;
        }
        else
        if (c >= 0xf0 && c <= 0xf4) {
            need = 3; cp = c & 0x07;
        }
        else
            return false;
        if (i + need >= len)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s [i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s [i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000)
        ||  cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

size_t
aip_utf8_cut (const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    while (cut > 0 && ((unsigned char) s [cut] & 0xc0) == 0x80)
        cut--;
    return cut;
}

size_t
aip_utf8_tail (const char *s, size_t len, size_t max)
{
    size_t start = len > max ? len - max : 0;
    while (start < len && ((unsigned char) s [start] & 0xc0) == 0x80)
        start++;
    return start;
}

bool
aip_blank (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!(s [i] == ' ' || s [i] == '\t' || s [i] == '\n' || s [i] == '\r'
        ||    s [i] == '\v' || s [i] == '\f'))
            return false;
    return true;
}

char *
aip_file_read (const char *path, size_t max, size_t *len)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    size_t size = 0, cap = 0;
    while (true) {
        if (size + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *nbuf = (char *) realloc (buf, ncap);
            if (!nbuf) {
                free (buf);
                close (fd);
                errno = ENOMEM;
                return NULL;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t got = read (fd, buf + size, cap - size - 1);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            free (buf);
            close (fd);
            errno = err;
            return NULL;
        }
        if (got == 0)
            break;
        size += (size_t) got;
        if (size > max) {
            free (buf);
            close (fd);
            errno = EFBIG;
            return NULL;
        }
    }
    close (fd);
    buf [size] = 0;
    if (len)
        *len = size;
    return buf;
}

int
aip_file_write_atomic (const char *path, const void *data, size_t len, int mode)
{
    size_t plen = strlen (path);
    char *tmp = (char *) malloc (plen + 32);
    if (!tmp)
        return -1;
    snprintf (tmp, plen + 32, "%s.tmp.%d", path, (int) getpid ());
    int rc = -1;
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        goto cleanup;
    const char *p = (const char *) data;
    size_t left = len;
    while (left > 0) {
        ssize_t put = write (fd, p, left);
        if (put < 0) {
            if (errno == EINTR)
                continue;
            close (fd);
            unlink (tmp);
            goto cleanup;
        }
        p += put;
        left -= (size_t) put;
    }
    if (fsync (fd) != 0 || close (fd) != 0) {
        unlink (tmp);
        goto cleanup;
    }
    if (rename (tmp, path) != 0) {
        unlink (tmp);
        goto cleanup;
    }
    rc = 0;
cleanup:
    free (tmp);
    return rc;
}

int
aip_mkdir_p (const char *path, int mode)
{
    char buf [4096];
    size_t len = strlen (path);
    if (len == 0 || len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy (buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir (buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir (buf, mode) != 0) {
        if (errno != EEXIST)
            return -1;
        struct stat st;
        if (stat (buf, &st) != 0)
            return -1;
        if (!S_ISDIR (st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
    }
    return 0;
}

static int
s_strcmp_qsort (const void *a, const void *b)
{
    return strcmp ((const char *) a, (const char *) b);
}

int
aip_free_tcp_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0,
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    int port = -1;
    if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0
    &&  getsockname (fd, (struct sockaddr *) &addr, &len) == 0)
        port = ntohs (addr.sin_port);
    close (fd);
    return port;
}

void
aip_util_test (bool verbose)
{
    printf (" * aip_util: ");
    //  A free port can be bound at once, and is not the next prober's too
    int port = aip_free_tcp_port ();
    assert (port > 0 && port < 65536);
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    assert (fd >= 0 && bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0);
    assert (aip_free_tcp_port () != port);
    close (fd);
    char id [64];
    aip_room_id_new (id);
    assert (strlen (id) == AIP_ROOM_ID_LEN);
    assert (strncmp (id, "room-", 5) == 0);
    assert (aip_id_valid (id, strlen (id)));

    char a [64], b [64];
    aip_msg_id_new (a);
    aip_msg_id_new (b);
    assert (strlen (a) == AIP_MSG_ID_LEN);
    assert (strcmp (a, b) != 0);
    //  Time-ordered: the ms prefix of a later id is never smaller
    assert (strncmp (a, b, 15) <= 0);
    assert (aip_id_valid (a, strlen (a)));
    //  Ids made in a burst (many per ms) never meet: 200,000 in a row
    {
        enum { N = 200000 };
        char (*ids) [AIP_MSG_ID_LEN + 1] = malloc ((size_t) N * sizeof *ids);
        assert (ids);
        for (int i = 0; i < N; i++)
            aip_msg_id_new (ids [i]);
        qsort (ids, N, sizeof *ids, s_strcmp_qsort);
        for (int i = 1; i < N; i++)
            assert (strcmp (ids [i - 1], ids [i]) != 0);
        free (ids);
    }

    //  Stamps of one process strictly increase, even within a microsecond
    {
        char prev [64], next [64];
        aip_time_now (prev);
        for (int i = 0; i < 10000; i++) {
            aip_time_now (next);
            assert (strcmp (prev, next) < 0);
            memcpy (prev, next, sizeof prev);
        }
    }
    char t [64];
    aip_time_now (t);
    assert (strlen (t) == AIP_TIME_LEN);
    assert (t [10] == 'T' && strcmp (t + 26, "+00:00") == 0);

    //  ISO-8601 UTC times, as written here, by the relays and by the original
    int64_t ms;
    assert (aip_time_valid (t, strlen (t), &ms) && ms / 1000 <= aip_time_ms () / 1000);
    assert (aip_time_valid ("2026-11-23T21:29:49.953Z", 24, &ms) && ms == 1795469389953);
    assert (aip_time_valid ("2026-11-23T21:29:49+00:00", 25, NULL));
    const char *bad_times [] = { "zzzz", "", "2026-11-23 21:29:49Z", "2026-13-23T21:29:49Z",
                                 "2026-11-23T21:29:49", "2026-11-23T21:29:49.Z",
                                 "2026-11-23T21:29:49.9531234567Z", "2026-11-23T21:29:49+02:00",
                                 "2026-11-23T21:29:49Zz", "1969-12-31T23:59:59Z",
                                 "２026-11-23T21:29:49Z" };
    for (size_t i = 0; i < sizeof bad_times / sizeof bad_times [0]; i++)
        assert (!aip_time_valid (bad_times [i], strlen (bad_times [i]), NULL));

    assert (!aip_id_valid ("", 0));
    assert (!aip_id_valid ("room id", 7));
    assert (!aip_id_valid ("../x", 4));
    assert (aip_id_valid ("room_x-Y", 8));
    char longid [80];
    memset (longid, 'a', 65);
    assert (!aip_id_valid (longid, 65));
    assert (aip_id_valid (longid, 64));

    assert (aip_utf8_valid ("hello", 5));
    assert (aip_utf8_valid ("\xe4\xbd\xa0\xe5\xa5\xbd", 6));        //  你好
    assert (aip_utf8_valid ("\xf0\x9f\x98\x80", 4));                //  emoji
    assert (!aip_utf8_valid ("\xff", 1));
    assert (!aip_utf8_valid ("\xc0\xaf", 2));                       //  overlong
    assert (!aip_utf8_valid ("\xed\xa0\x80", 3));                   //  surrogate
    assert (!aip_utf8_valid ("\xe4\xbd", 2));                       //  truncated
    //  Cuts and tails land on a character: "a你好" is 1 + 3 + 3 bytes
    const char *mixed = "a\xe4\xbd\xa0\xe5\xa5\xbd";
    assert (aip_utf8_cut (mixed, 7, 9) == 7);
    assert (aip_utf8_cut (mixed, 7, 7) == 7);
    assert (aip_utf8_cut (mixed, 7, 6) == 4);
    assert (aip_utf8_cut (mixed, 7, 3) == 1);
    assert (aip_utf8_cut (mixed, 7, 0) == 0);
    assert (aip_utf8_tail (mixed, 7, 9) == 0);
    assert (aip_utf8_tail (mixed, 7, 5) == 4);
    assert (aip_utf8_tail (mixed, 7, 3) == 4);
    assert (aip_utf8_tail (mixed, 7, 2) == 7);
    assert (!aip_utf8_valid ("\xf4\x90\x80\x80", 4));               //  > U+10FFFF

    char host [] = "Johns-MacBook.local";
    aip_id_sanitize (host);
    assert (strcmp (host, "Johns-MacBook-local") == 0);
    assert (aip_blank (" \n\t", 3));
    assert (!aip_blank (" x ", 3));

    char path [] = "/tmp/aip_util_test_XXXXXX";
    assert (mkdtemp (path));
    char file [128];
    snprintf (file, sizeof file, "%s/sub/dir", path);
    assert (aip_mkdir_p (file, 0700) == 0);
    assert (aip_mkdir_p (file, 0700) == 0);
    snprintf (file, sizeof file, "%s/f.txt", path);
    assert (aip_file_write_atomic (file, "abc", 3, 0600) == 0);
    size_t len;
    char *data = aip_file_read (file, 100, &len);
    assert (data && len == 3 && strcmp (data, "abc") == 0);
    free (data);
    assert (aip_file_read (file, 2, &len) == NULL && errno == EFBIG);
    unlink (file);
    snprintf (file, sizeof file, "rm -rf %s", path);
    assert (system (file) == 0);
    if (verbose)
        printf ("(ids %s %s) ", id, a);
    printf ("OK\n");
}
