/*  aip_identity.c — loading and creating identity.json. */
#include "aip_identity.h"
#include "aip_home.h"
#include "aip_json.h"
#include "aip_util.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDENTITY_MAX_BYTES (64 * 1024)

static void
s_random_secret (char *buf)
{
    static const char hex [] = "0123456789abcdef";
    unsigned char raw [32];
    aip_random_bytes (raw, sizeof raw);
    for (int i = 0; i < 32; i++) {
        buf [2 * i] = hex [raw [i] >> 4];
        buf [2 * i + 1] = hex [raw [i] & 15];
    }
    buf [64] = 0;
}

static int
s_copy_field (json_t *root, const char *key, char *dst, size_t size, const char *dflt)
{
    json_t *v = json_object_get (root, key);
    if (v && !json_is_string (v))
        return -1;
    const char *s = v ? json_string_value (v) : dflt;
    if (strlen (s) >= size)
        return -1;
    snprintf (dst, size, "%s", s);
    return 0;
}

static int
s_write (const char *path, json_t *root, char *err, size_t errlen)
{
    char *text = json_dumps (root, JSON_INDENT (2));
    if (!text || aip_file_write_atomic (path, text, strlen (text), 0600)) {
        snprintf (err, errlen, "cannot write %s: %s", path, strerror (errno));
        free (text);
        return -1;
    }
    free (text);
    return 0;
}

//  identity.json holds the signing secret: refuse one another user owns or
//  can write (they would know or choose the secret), as ssh refuses such
//  key files; one that others can only read is made the owner's alone
static int
s_check_file (const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat (path, &st) != 0)
        return 0;                   //  absent: created 0600; unreadable: said below
    if (st.st_uid != geteuid ()) {
        snprintf (err, errlen, "%s is owned by uid %ld, not by you (uid %ld): its owner knows "
                  "your signing secret; move it away to create a new identity (relays will "
                  "then see you as a new peer)", path, (long) st.st_uid, (long) geteuid ());
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf (err, errlen, "%s is writable by %s (mode %04o): another user could have "
                  "replaced your signing secret; if you trust its content, fix it with: "
                  "chmod 600 %s", path, (st.st_mode & S_IWOTH) ? "everyone" : "its group",
                  (unsigned) (st.st_mode & 07777), path);
        return -1;
    }
    if ((st.st_mode & (S_IRGRP | S_IROTH)) && chmod (path, 0600) != 0) {
        snprintf (err, errlen, "%s is readable by others and cannot be made private: %s "
                  "(fix it with: chmod 600 %s)", path, strerror (errno), path);
        return -1;
    }
    return 0;
}

int
aip_identity_load (const char *home, aip_identity_t *self, char *err, size_t errlen)
{
    char path [AIP_PATH_MAX];
    aip_home_path (home, "identity.json", path, sizeof path);
    memset (self, 0, sizeof *self);
    char host [AIP_MAX_NAME + 1], host_id [AIP_MAX_NAME + 1];
    aip_hostname (host, sizeof host);
    snprintf (host_id, sizeof host_id, "%s", host);
    aip_id_sanitize (host_id);
    const char *user = aip_username ();

    if (s_check_file (path, err, errlen))
        return -1;
    size_t len;
    char *text = aip_file_read (path, IDENTITY_MAX_BYTES, &len);
    if (!text && errno != ENOENT) {
        snprintf (err, errlen, "cannot read %s: %s", path, strerror (errno));
        return -1;
    }
    if (!text) {
        //  First run: the same shape and key order as the original
        snprintf (self->id, sizeof self->id, "%s-human-%s", host_id, user);
        aip_id_sanitize (self->id);
        snprintf (self->name, sizeof self->name, "%s", user);
        snprintf (self->type, sizeof self->type, "human");
        snprintf (self->tool, sizeof self->tool, "cli");
        snprintf (self->machine, sizeof self->machine, "%s", host);
        s_random_secret (self->secret);
        json_t *root = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}",
                                  "id", self->id, "name", self->name, "type", self->type,
                                  "tool", self->tool, "machine", self->machine,
                                  "peer_secret", self->secret);
        int rc = s_write (path, root, err, errlen);
        json_decref (root);
        return rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb (text, len, 0, &jerr);
    free (text);
    if (!root || !json_is_object (root)) {
        snprintf (err, errlen, "%s is corrupted (%s): repair it, or move it away to create "
                  "a new identity (relays will then see you as a new peer)",
                  path, root ? "not a JSON object" : jerr.text);
        json_decref (root);
        return -1;
    }
    char dflt_id [AIP_MAX_NAME + 1];
    snprintf (dflt_id, sizeof dflt_id, "%s-human-%s", host_id, user);
    if (s_copy_field (root, "id", self->id, sizeof self->id, dflt_id)
    ||  s_copy_field (root, "name", self->name, sizeof self->name, user)
    ||  s_copy_field (root, "type", self->type, sizeof self->type, "human")
    ||  s_copy_field (root, "tool", self->tool, sizeof self->tool, "cli")
    ||  s_copy_field (root, "machine", self->machine, sizeof self->machine, host)
    ||  s_copy_field (root, "peer_secret", self->secret, sizeof self->secret, "")) {
        snprintf (err, errlen, "%s is corrupted (a field is not a string or too long): "
                  "repair it, or move it away to create a new identity", path);
        json_decref (root);
        return -1;
    }
    //  The original took ids from host names as they are ("box.local"):
    //  use the file as is, with the id made valid for the wire
    aip_id_sanitize (self->id);
    if (!*self->id) {
        snprintf (err, errlen, "%s has an empty id: repair it, or move it away to create a "
                  "new identity", path);
        json_decref (root);
        return -1;
    }
    int rc = 0;
    if (!*self->secret) {
        //  Files from before per-peer auth have no secret: add one, keep the rest
        s_random_secret (self->secret);
        json_object_set_new (root, "peer_secret", json_string (self->secret));
        rc = s_write (path, root, err, errlen);
    }
    json_decref (root);
    return rc;
}

void
aip_identity_ai_peer_id (const char *tool, char *buf, size_t size)
{
    char host [AIP_MAX_NAME + 1];
    aip_hostname (host, sizeof host);
    aip_id_sanitize (host);
    snprintf (buf, size, "%s-%s", host, tool);
}

void
aip_identity_test (bool verbose)
{
    printf (" * aip_identity: ");
    char dir [] = "/tmp/aip_identity_test_XXXXXX";
    assert (mkdtemp (dir));
    char err [512], path [AIP_PATH_MAX];
    aip_identity_t a, b;
    assert (aip_identity_load (dir, &a, err, sizeof err) == 0);
    assert (strcmp (a.type, "human") == 0 && strcmp (a.tool, "cli") == 0);
    assert (strlen (a.secret) == 64);
    assert (strstr (a.id, "-human-"));
    //  Reused as is
    assert (aip_identity_load (dir, &b, err, sizeof err) == 0);
    assert (strcmp (a.secret, b.secret) == 0 && strcmp (a.id, b.id) == 0);
    aip_home_path (dir, "identity.json", path, sizeof path);
    struct stat st;
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600);

    //  A file written by the original, with another id and no secret
    FILE *f = fopen (path, "w");
    fprintf (f, "{\"id\": \"box-human-alice\", \"name\": \"alice\", \"type\": \"human\","
                " \"tool\": \"cli\", \"machine\": \"box\"}");
    fclose (f);
    assert (aip_identity_load (dir, &a, err, sizeof err) == 0);
    assert (strcmp (a.id, "box-human-alice") == 0 && strlen (a.secret) == 64);
    assert (aip_identity_load (dir, &b, err, sizeof err) == 0);
    assert (strcmp (a.secret, b.secret) == 0);

    //  Corrupted: a clear error, the file is left alone
    f = fopen (path, "w");
    fprintf (f, "{\"id\": \"x\", ");
    fclose (f);
    assert (aip_identity_load (dir, &a, err, sizeof err) == -1);
    assert (strstr (err, "corrupted"));
    if (verbose)
        printf ("(%s) ", err);
    size_t len;
    char *text = aip_file_read (path, 1000, &len);
    assert (text && strcmp (text, "{\"id\": \"x\", ") == 0);
    free (text);

    //  Writable by others, or another user's: refused; readable: made 0600
    aip_home_path (dir, "identity.json", path, sizeof path);
    assert (aip_identity_load (dir, &a, err, sizeof err) == -1);    //  still corrupted
    f = fopen (path, "w");
    fprintf (f, "{\"id\": \"box-human-alice\", \"peer_secret\": \"%s\"}", a.secret);
    fclose (f);
    assert (chmod (path, 0666) == 0);
    assert (aip_identity_load (dir, &a, err, sizeof err) == -1);
    assert (strstr (err, "writable by everyone") && strstr (err, "chmod 600"));
    if (verbose)
        printf ("(%s) ", err);
    assert (chmod (path, 0620) == 0);
    assert (aip_identity_load (dir, &a, err, sizeof err) == -1 && strstr (err, "its group"));
    assert (chmod (path, 0644) == 0);
    assert (aip_identity_load (dir, &a, err, sizeof err) == 0);
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600);
    if (geteuid () == 0) {
        assert (chown (path, 4242, 4242) == 0);
        assert (aip_identity_load (dir, &a, err, sizeof err) == -1);
        assert (strstr (err, "owned by uid 4242"));
    }

    aip_identity_ai_peer_id ("codex", path, sizeof path);
    assert (strlen (path) > 6 && strcmp (path + strlen (path) - 6, "-codex") == 0);
    snprintf (path, sizeof path, "rm -rf %s", dir);
    assert (system (path) == 0);
    printf ("OK\n");
}
