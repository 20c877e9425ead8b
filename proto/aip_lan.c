/*  aip_lan.c — LAN mode's key pair, worker token, mode file and beacons. */
#include "aip_lan.h"
#include "aip_crypto.h"
#include "aip_home.h"
#include "aip_proto.h"
#include "aip_util.h"

#include <sodium.h>
#include <sys/stat.h>

//  $home/lan/<name> into buf; makes the directory (0700)
static int
s_lan_path (const char *home, const char *name, char *buf, size_t size)
{
    char dir [AIP_PATH_MAX];
    aip_home_path (home, "lan", dir, sizeof dir);
    if (aip_mkdir_p (dir, 0700))
        return -1;
    snprintf (buf, size, "%s/%s", dir, name);
    return 0;
}

zcert_t *
aip_lan_cert_load (const char *home, char *err, size_t errlen)
{
    char path [AIP_PATH_MAX], secret [AIP_PATH_MAX + 16];
    if (s_lan_path (home, "hub.cert", path, sizeof path)) {
        snprintf (err, errlen, "cannot create %s/lan: %s", home, strerror (errno));
        return NULL;
    }
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (access (secret, F_OK) == 0) {
        zcert_t *cert = zcert_load (path);
        if (!cert)
            snprintf (err, errlen, "cannot read the LAN key pair %s: remove hub.cert and "
                      "hub.cert_secret to make a new one (LAN rooms must then be joined again)",
                      path);
        return cert;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        snprintf (err, errlen, "cannot make a CURVE key pair (is libzmq built with CURVE?)");
        return NULL;
    }
    char host [64];
    aip_hostname (host, sizeof host);
    zcert_set_meta (cert, "machine", "%s", host);
    //  The secret file must never be readable by others, whatever the umask
    mode_t old = umask (077);
    int rc = zcert_save (cert, path);
    umask (old);
    if (rc || chmod (secret, 0600)) {
        snprintf (err, errlen, "cannot save the LAN key pair in %s: %s", path, strerror (errno));
        zcert_destroy (&cert);
    }
    return cert;
}

int
aip_lan_worker_token (const char *home, char buf [AIP_RELAY_TOKEN_HEX + 1], char *err,
                      size_t errlen)
{
    char path [AIP_PATH_MAX];
    if (s_lan_path (home, "worker.token", path, sizeof path)) {
        snprintf (err, errlen, "cannot create %s/lan: %s", home, strerror (errno));
        return -1;
    }
    size_t len;
    char *text = aip_file_read (path, 1024, &len);
    if (text) {
        while (len && (text [len - 1] == '\n' || text [len - 1] == ' '))
            text [--len] = 0;
        bool ok = len == AIP_RELAY_TOKEN_HEX;
        if (ok)
            memcpy (buf, text, AIP_RELAY_TOKEN_HEX + 1);
        free (text);
        if (ok)
            return 0;
        snprintf (err, errlen, "%s is not 64 hex chars: remove it to make a new token", path);
        return -1;
    }
    if (aip_crypto_random_hex (buf, AIP_RELAY_TOKEN_HEX / 2)
    ||  aip_file_write_atomic (path, buf, AIP_RELAY_TOKEN_HEX, 0600)) {
        snprintf (err, errlen, "cannot write %s: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

int
aip_lan_mode_get (const char *home)
{
    char path [AIP_PATH_MAX];
    aip_home_path (home, "lan/mode", path, sizeof path);
    size_t len;
    char *text = aip_file_read (path, 64, &len);
    int port = text ? atoi (text) : 0;
    free (text);
    return port > 0 && port <= 65535 ? port : 0;
}

int
aip_lan_mode_set (const char *home, int port)
{
    char path [AIP_PATH_MAX];
    if (port <= 0) {
        aip_home_path (home, "lan/mode", path, sizeof path);
        return unlink (path) == 0 || errno == ENOENT ? 0 : -1;
    }
    if (s_lan_path (home, "mode", path, sizeof path))
        return -1;
    char text [16];
    int n = snprintf (text, sizeof text, "%d\n", port);
    return aip_file_write_atomic (path, text, (size_t) n, 0600);
}

void
aip_lan_key_to_hex (const uint8_t key [32], char out [AIP_LAN_KEY_HEX + 1])
{
    sodium_bin2hex (out, AIP_LAN_KEY_HEX + 1, key, 32);
}

int
aip_lan_key_from_hex (const char *hex, uint8_t key [32])
{
    size_t len;
    if (strlen (hex) != AIP_LAN_KEY_HEX
    ||  sodium_hex2bin (key, 32, hex, AIP_LAN_KEY_HEX, NULL, &len, NULL) || len != 32)
        return -1;
    return 0;
}

//  Copy at most max bytes of s, never cutting a UTF-8 sequence
static void
s_copy_cut (char *dst, size_t dstsize, const char *s, size_t max)
{
    size_t len = strlen (s);
    if (len > max) {
        len = max;
        while (len && ((unsigned char) s [len] & 0xC0) == 0x80)
            len--;
    }
    if (len >= dstsize)
        len = dstsize - 1;
    memcpy (dst, s, len);
    dst [len] = 0;
}

size_t
aip_lan_beacon_pack (const aip_lan_beacon_t *beacon, uint8_t buf [AIP_LAN_BEACON_MAX])
{
    char machine [sizeof beacon->machine], user [sizeof beacon->user];
    char tools [sizeof beacon->tools];
    s_copy_cut (machine, sizeof machine, beacon->machine, sizeof machine - 1);
    s_copy_cut (user, sizeof user, beacon->user, sizeof user - 1);
    snprintf (tools, sizeof tools, "%s", beacon->tools);
    aip_pack_t *pk = aip_pack_new ();
    size_t size = 0;
    //  Drop whole tools from the end until it fits in one frame
    while (true) {
        aip_pack_reset (pk);
        aip_pack_raw (pk, AIP_LAN_BEACON_PREFIX, strlen (AIP_LAN_BEACON_PREFIX));
        aip_pack_map (pk, 6);
        aip_pack_kint (pk, "v", AIP_PROTO_VERSION);
        aip_pack_kstr (pk, "m", machine);
        aip_pack_kstr (pk, "u", user);
        aip_pack_kint (pk, "p", beacon->port);
        aip_pack_key (pk, "k");
        aip_pack_strn (pk, (const char *) beacon->key, 32);
        aip_pack_kstr (pk, "t", tools);
        aip_pack_data (pk, &size);
        if (size <= AIP_LAN_BEACON_MAX || !*tools)
            break;
        char *comma = strrchr (tools, ',');
        if (comma)
            *comma = 0;
        else
            *tools = 0;
    }
    const void *data = aip_pack_data (pk, &size);
    assert (size <= AIP_LAN_BEACON_MAX);
    memcpy (buf, data, size);
    aip_pack_destroy (&pk);
    return size;
}

int
aip_lan_beacon_decode (const void *data, size_t size, aip_lan_beacon_t *beacon)
{
    memset (beacon, 0, sizeof *beacon);
    size_t plen = strlen (AIP_LAN_BEACON_PREFIX);
    if (size <= plen || size > AIP_LAN_BEACON_MAX || memcmp (data, AIP_LAN_BEACON_PREFIX, plen))
        return -1;
    char err [128];
    aip_doc_t *doc = aip_doc_decode ((const char *) data + plen, size - plen, err, sizeof err);
    if (!doc)
        return -1;
    const aip_obj_t *root = aip_doc_root (doc);
    int rc = -1;
    size_t klen;
    const char *key = aip_obj_str (aip_obj_get (root, "k"), &klen);
    beacon->version = (int) aip_obj_get_int (root, "v", 0);
    beacon->port = (int) aip_obj_get_int (root, "p", 0);
    if (!aip_obj_get_str (root, "m", beacon->machine, sizeof beacon->machine, NULL)
    ||  !aip_obj_get_str (root, "u", beacon->user, sizeof beacon->user, NULL)
    ||  !key || klen != 32 || beacon->port < 1 || beacon->port > 65535 || beacon->version < 1
    ||  !aip_utf8_valid (beacon->machine, strlen (beacon->machine))
    ||  !aip_utf8_valid (beacon->user, strlen (beacon->user)))
        goto cleanup;
    aip_obj_get_str (root, "t", beacon->tools, sizeof beacon->tools, "");
    if (!aip_utf8_valid (beacon->tools, strlen (beacon->tools)))
        *beacon->tools = 0;
    memcpy (beacon->key, key, 32);
    aip_lan_key_to_hex (beacon->key, beacon->key_hex);
    rc = 0;
cleanup:
    aip_doc_destroy (&doc);
    return rc;
}

void
aip_lan_test (bool verbose)
{
    printf (" * aip_lan: ");
    char home [] = "/tmp/aip-lan-test-XXXXXX";
    assert (mkdtemp (home));
    char err [512];

    //  The key pair is made once and the same one comes back
    zcert_t *cert = aip_lan_cert_load (home, err, sizeof err);
    assert (cert);
    zcert_t *again = aip_lan_cert_load (home, err, sizeof err);
    assert (again);
    assert (memcmp (zcert_public_key (cert), zcert_public_key (again), 32) == 0);
    assert (memcmp (zcert_secret_key (cert), zcert_secret_key (again), 32) == 0);
    char path [AIP_PATH_MAX];
    snprintf (path, sizeof path, "%s/lan/hub.cert_secret", home);
    struct stat st;
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600);
    zcert_destroy (&again);

    char token [AIP_RELAY_TOKEN_HEX + 1], token2 [AIP_RELAY_TOKEN_HEX + 1];
    assert (aip_lan_worker_token (home, token, err, sizeof err) == 0);
    assert (aip_lan_worker_token (home, token2, err, sizeof err) == 0);
    assert (streq (token, token2) && strlen (token) == AIP_RELAY_TOKEN_HEX);

    assert (aip_lan_mode_get (home) == 0);
    assert (aip_lan_mode_set (home, 7900) == 0 && aip_lan_mode_get (home) == 7900);
    assert (aip_lan_mode_set (home, 0) == 0 && aip_lan_mode_get (home) == 0);

    char hex [AIP_LAN_KEY_HEX + 1];
    uint8_t key [32];
    aip_lan_key_to_hex (zcert_public_key (cert), hex);
    assert (aip_lan_key_from_hex (hex, key) == 0);
    assert (memcmp (key, zcert_public_key (cert), 32) == 0);
    assert (aip_lan_key_from_hex ("abc", key) == -1);

    //  Beacons round-trip; long tool lists are cut to fit one frame
    aip_lan_beacon_t beacon = { 0 }, got;
    snprintf (beacon.machine, sizeof beacon.machine, "%s", "host-a");
    snprintf (beacon.user, sizeof beacon.user, "%s", "alice");
    beacon.port = 7899;
    memcpy (beacon.key, zcert_public_key (cert), 32);
    snprintf (beacon.tools, sizeof beacon.tools, "claude,codex");
    uint8_t buf [AIP_LAN_BEACON_MAX];
    size_t size = aip_lan_beacon_pack (&beacon, buf);
    assert (aip_lan_beacon_decode (buf, size, &got) == 0);
    assert (streq (got.machine, "host-a") && streq (got.user, "alice") && got.port == 7899);
    assert (streq (got.tools, "claude,codex") && streq (got.key_hex, hex));
    assert (got.version == AIP_PROTO_VERSION);
    memset (beacon.machine, 'm', sizeof beacon.machine - 1);
    memset (beacon.tools, 0, sizeof beacon.tools);
    for (int i = 0; i < 15; i++)
        strcat (beacon.tools, i ? ",toolname" : "toolname");
    size = aip_lan_beacon_pack (&beacon, buf);
    assert (size <= AIP_LAN_BEACON_MAX);
    assert (aip_lan_beacon_decode (buf, size, &got) == 0 && strlen (got.tools) < 15 * 9);
    //  Anything else is refused
    assert (aip_lan_beacon_decode ("AIPL", 4, &got) == -1);
    assert (aip_lan_beacon_decode ("XXXX\x80", 5, &got) == -1);
    buf [size - 40] ^= 0xff;
    aip_lan_beacon_decode (buf, size, &got);        //  garbage: no crash
    zcert_destroy (&cert);

    char command [AIP_PATH_MAX + 16];
    snprintf (command, sizeof command, "rm -rf %s", home);
    assert (system (command) == 0);
    if (verbose)
        printf ("(keys, token, mode, beacons) ");
    printf ("OK\n");
}
