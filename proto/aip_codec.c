/*  aip_codec.c — the msgpack codec: bounded decoding into documents, read
    access to decoded values, and packing. The only file that includes
    <msgpack.h>; the protocol's tables and envelopes are aip_proto.c. */
#include "aip_codec.h"

#include <assert.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Bounded pre-scan: walks the msgpack bytes before msgpack_unpack sees
//  them, so that no header can make the unpacker allocate more than the
//  input justifies (an array header may claim 4 billion elements in five
//  bytes). Rejects ext types, which no schema uses.

static int
s_be (const uint8_t *p, size_t n, size_t pos, size_t width, uint64_t *value)
{
    if (width > n - pos)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v = (v << 8) | p [pos + i];
    *value = v;
    return 0;
}

//  The header of the value at p [*pos] (pos < n): moves *pos past it and
//  says how many payload bytes follow (a scalar) or how many values it
//  holds (a container: a map's pairs count twice). Returns 0, -1 when the
//  header is cut short, -2 for a type no schema uses (ext, 0xc1).
static int
s_header (const uint8_t *p, size_t n, size_t *pos, uint64_t *skip, uint64_t *items,
          bool *container)
{
    uint8_t c = p [(*pos)++];
    *skip = 0;
    *items = 0;
    *container = false;
    size_t width = 0;           //  bytes of the length that follows c
    bool map = false;           //  the length counts pairs
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 0;
    if (c >= 0x80 && c <= 0x8f) {
        *container = true; *items = 2 * (uint64_t) (c & 0x0f);
        return 0;
    }
    if (c >= 0x90 && c <= 0x9f) {
        *container = true; *items = c & 0x0f;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        *skip = c & 0x1f;
        return 0;
    }
    switch (c) {
        case 0xc4: case 0xd9: width = 1; break;
        case 0xc5: case 0xda: width = 2; break;
        case 0xc6: case 0xdb: width = 4; break;
        case 0xca: *skip = 4; return 0;
        case 0xcb: *skip = 8; return 0;
        case 0xcc: case 0xd0: *skip = 1; return 0;
        case 0xcd: case 0xd1: *skip = 2; return 0;
        case 0xce: case 0xd2: *skip = 4; return 0;
        case 0xcf: case 0xd3: *skip = 8; return 0;
        case 0xdc: width = 2; *container = true; break;
        case 0xdd: width = 4; *container = true; break;
        case 0xde: width = 2; *container = true; map = true; break;
        case 0xdf: width = 4; *container = true; map = true; break;
        default:
            return -2;
    }
    uint64_t len;
    if (s_be (p, n, *pos, width, &len))
        return -1;
    *pos += width;
    if (*container)
        *items = map ? 2 * len : len;
    else
        *skip = len;
    return 0;
}

static int
s_prescan (const uint8_t *p, size_t n, char *err, size_t errlen)
{
    size_t stack [AIP_MAX_DEPTH + 1];
    int depth = 0;
    stack [0] = 1;
    size_t pos = 0;
    size_t elements = 0;

    while (true) {
        while (depth >= 0 && stack [depth] == 0)
            depth--;
        if (depth < 0)
            break;
        stack [depth]--;
        if (pos >= n)
            goto truncated;
        if (++elements > AIP_MAX_ELEMENTS) {
            snprintf (err, errlen, "msgpack document has too many elements");
            return -1;
        }
        uint64_t skip, items;
        bool container;
        uint8_t c = p [pos];
        int rc = s_header (p, n, &pos, &skip, &items, &container);
        if (rc == -2) {
            snprintf (err, errlen, "unsupported msgpack type 0x%02x", c);
            return -1;
        }
        if (rc)
            goto truncated;
        if (container) {
            //  Every item takes at least one byte
            if (items > n - pos)
                goto truncated;
            if (depth + 1 > AIP_MAX_DEPTH) {
                snprintf (err, errlen, "msgpack document nested too deeply");
                return -1;
            }
            stack [++depth] = (size_t) items;
        }
        else {
            if (skip > n - pos)
                goto truncated;
            pos += (size_t) skip;
        }
    }
    if (pos != n) {
        snprintf (err, errlen, "trailing bytes after msgpack document");
        return -1;
    }
    return 0;
truncated:
    snprintf (err, errlen, "truncated msgpack document");
    return -1;
}

//  How many whole values p [0..n) holds, one after another (what this
//  process packed: whole values by construction, so no depth is kept)
static size_t
s_count_values (const uint8_t *p, size_t n)
{
    size_t pos = 0;
    size_t values = 0;
    uint64_t pending = 0;           //  values still owed to open containers
    while (pos < n) {
        uint64_t skip, items;
        bool container;
        int rc = s_header (p, n, &pos, &skip, &items, &container);
        assert (rc == 0);
        if (pending == 0)
            values++;
        else
            pending--;
        if (container)
            pending += items;
        else {
            assert (skip <= n - pos);
            pos += (size_t) skip;
        }
    }
    assert (pending == 0);
    return values;
}

//  ---------------------------------------------------------------------
//  Documents

struct _aip_doc_t {
    msgpack_zone *zone;         //  owns decoded objects
    char *data;                 //  copy of the bytes (strings point here)
    msgpack_object root;        //  the document
};

aip_doc_t *
aip_doc_decode (const void *data, size_t size, char *err, size_t errlen)
{
    if (size == 0) {
        snprintf (err, errlen, "empty frame");
        return NULL;
    }
    if (s_prescan ((const uint8_t *) data, size, err, errlen))
        return NULL;
    aip_doc_t *self = (aip_doc_t *) calloc (1, sizeof (aip_doc_t));
    if (!self)
        goto nomem;
    self->data = (char *) malloc (size);
    self->zone = msgpack_zone_new (4096);
    if (!self->data || !self->zone)
        goto nomem;
    memcpy (self->data, data, size);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack (self->data, size, &off, self->zone, &self->root);
    if (rc != MSGPACK_UNPACK_SUCCESS) {
        snprintf (err, errlen, "malformed msgpack document");
        aip_doc_destroy (&self);
        return NULL;
    }
    return self;
nomem:
    snprintf (err, errlen, "out of memory decoding %zu bytes", size);
    aip_doc_destroy (&self);
    return NULL;
}

aip_doc_t *
aip_doc_from_pack (aip_pack_t **pk_p, char *err, size_t errlen)
{
    size_t size;
    const void *data = aip_pack_data (*pk_p, &size);
    aip_doc_t *doc = aip_doc_decode (data, size, err, errlen);
    aip_pack_destroy (pk_p);
    return doc;
}

const aip_obj_t *
aip_doc_root (aip_doc_t *self)
{
    return &self->root;
}

const char *
aip_doc_strndup (aip_doc_t *self, const char *s, size_t len)
{
    char *copy = (char *) msgpack_zone_malloc (self->zone, len + 1);
    if (copy) {
        memcpy (copy, s, len);
        copy [len] = 0;
    }
    return copy;
}

void
aip_doc_destroy (aip_doc_t **self_p)
{
    if (self_p && *self_p) {
        aip_doc_t *self = *self_p;
        if (self->zone)
            msgpack_zone_free (self->zone);
        free (self->data);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Object access

const aip_obj_t *
aip_obj_get (const aip_obj_t *o, const char *key)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen (key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr [i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen
        &&  memcmp (k->via.str.ptr, key, klen) == 0)
            return &o->via.map.ptr [i].val;
    }
    return NULL;
}

bool aip_obj_is_nil (const aip_obj_t *o)   { return !o || o->type == MSGPACK_OBJECT_NIL; }
bool aip_obj_is_str (const aip_obj_t *o)   { return o && o->type == MSGPACK_OBJECT_STR; }
bool aip_obj_is_bool (const aip_obj_t *o)  { return o && o->type == MSGPACK_OBJECT_BOOLEAN; }
bool aip_obj_is_map (const aip_obj_t *o)   { return o && o->type == MSGPACK_OBJECT_MAP; }
bool aip_obj_is_array (const aip_obj_t *o) { return o && o->type == MSGPACK_OBJECT_ARRAY; }
bool aip_obj_is_real (const aip_obj_t *o)
{
    return o && (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64);
}

const aip_obj_t *
aip_obj_empty_map (void)
{
    static const msgpack_object s_empty_map = { .type = MSGPACK_OBJECT_MAP };
    return &s_empty_map;
}

bool
aip_obj_is_int (const aip_obj_t *o)
{
    return o && (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
              || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
}

const char *
aip_obj_str (const aip_obj_t *o, size_t *len)
{
    if (!aip_obj_is_str (o))
        return NULL;
    if (len)
        *len = o->via.str.size;
    return o->via.str.ptr ? o->via.str.ptr : "";
}

char *
aip_obj_strdup (const aip_obj_t *o)
{
    size_t len;
    const char *s = aip_obj_str (o, &len);
    if (!s)
        return NULL;
    char *copy = (char *) malloc (len + 1);
    if (copy) {
        memcpy (copy, s, len);
        copy [len] = 0;
    }
    return copy;
}

bool
aip_obj_streq (const aip_obj_t *o, const char *s)
{
    size_t len;
    const char *v = aip_obj_str (o, &len);
    return v && strlen (s) == len && memcmp (v, s, len) == 0;
}

int64_t
aip_obj_int (const aip_obj_t *o)
{
    if (!o)
        return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return o->via.u64 > INT64_MAX ? INT64_MAX : (int64_t) o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return o->via.i64;
    return 0;
}

double
aip_obj_real (const aip_obj_t *o)
{
    if (aip_obj_is_real (o))
        return o->via.f64;
    return (double) aip_obj_int (o);
}

bool
aip_obj_bool (const aip_obj_t *o)
{
    return aip_obj_is_bool (o) && o->via.boolean;
}

size_t
aip_obj_size (const aip_obj_t *o)
{
    if (aip_obj_is_array (o))
        return o->via.array.size;
    if (aip_obj_is_map (o))
        return o->via.map.size;
    return 0;
}

const aip_obj_t *
aip_obj_at (const aip_obj_t *o, size_t index)
{
    if (!aip_obj_is_array (o) || index >= o->via.array.size)
        return NULL;
    return &o->via.array.ptr [index];
}

const aip_obj_t *
aip_obj_key_at (const aip_obj_t *o, size_t index)
{
    if (!aip_obj_is_map (o) || index >= o->via.map.size)
        return NULL;
    return &o->via.map.ptr [index].key;
}

const aip_obj_t *
aip_obj_val_at (const aip_obj_t *o, size_t index)
{
    if (!aip_obj_is_map (o) || index >= o->via.map.size)
        return NULL;
    return &o->via.map.ptr [index].val;
}

const char *
aip_obj_get_str (const aip_obj_t *o, const char *key, char *buf, size_t bufsize,
                 const char *dflt)
{
    size_t len;
    const char *s = aip_obj_str (aip_obj_get (o, key), &len);
    if (!s) {
        if (!dflt)
            return NULL;
        s = dflt;
        len = strlen (dflt);
    }
    if (len >= bufsize)
        len = bufsize - 1;
    memcpy (buf, s, len);
    buf [len] = 0;
    return buf;
}

int64_t
aip_obj_get_int (const aip_obj_t *o, const char *key, int64_t dflt)
{
    const aip_obj_t *v = aip_obj_get (o, key);
    return aip_obj_is_int (v) ? aip_obj_int (v) : dflt;
}

bool
aip_obj_get_bool (const aip_obj_t *o, const char *key, bool dflt)
{
    const aip_obj_t *v = aip_obj_get (o, key);
    return aip_obj_is_bool (v) ? aip_obj_bool (v) : dflt;
}

//  ---------------------------------------------------------------------
//  Packing

//  An open map or array (aip_pack_map_begin): its header is a placeholder
//  of the widest size until the end counts what was packed into it
#define S_OPEN_HEADER 5

struct _aip_pack_t {
    msgpack_sbuffer buffer;     //  bytes packed so far
    msgpack_packer packer;      //  writes into buffer
    size_t open [AIP_MAX_DEPTH];    //  offsets of the open maps' and arrays' headers
    bool open_map [AIP_MAX_DEPTH];  //  ... true for a map, false for an array
    size_t opened;              //  how many are open
};

aip_pack_t *
aip_pack_new (void)
{
    aip_pack_t *self = (aip_pack_t *) calloc (1, sizeof (aip_pack_t));
    assert (self);
    msgpack_sbuffer_init (&self->buffer);
    msgpack_packer_init (&self->packer, &self->buffer, msgpack_sbuffer_write);
    return self;
}

void
aip_pack_destroy (aip_pack_t **self_p)
{
    if (self_p && *self_p) {
        msgpack_sbuffer_destroy (&(*self_p)->buffer);
        free (*self_p);
        *self_p = NULL;
    }
}

void
aip_pack_reset (aip_pack_t *self)
{
    msgpack_sbuffer_clear (&self->buffer);
    self->opened = 0;
}

const void *
aip_pack_data (aip_pack_t *self, size_t *size)
{
    assert (self->opened == 0);     //  an open map is not msgpack yet
    *size = self->buffer.size;
    return self->buffer.data;
}

void *
aip_pack_steal (aip_pack_t *self, size_t *size)
{
    assert (self->opened == 0);
    *size = self->buffer.size;
    return msgpack_sbuffer_release (&self->buffer);
}

static void
s_open (aip_pack_t *self, bool map)
{
    assert (self->opened < AIP_MAX_DEPTH);
    self->open [self->opened] = self->buffer.size;
    self->open_map [self->opened] = map;
    self->opened++;
    static const char placeholder [S_OPEN_HEADER] = { 0 };
    msgpack_sbuffer_write (&self->buffer, placeholder, S_OPEN_HEADER);
}

//  Count what was packed since the header, and write the header in the
//  size that count needs (the bytes are those of aip_pack_map (n))
static void
s_close (aip_pack_t *self, bool map)
{
    assert (self->opened > 0 && self->open_map [self->opened - 1] == map);
    size_t at = self->open [--self->opened];
    uint8_t *base = (uint8_t *) self->buffer.data + at;
    size_t body = self->buffer.size - at - S_OPEN_HEADER;
    size_t values = s_count_values (base + S_OPEN_HEADER, body);
    assert (!map || values % 2 == 0);       //  every key has its value
    size_t count = map ? values / 2 : values;
    assert (count <= UINT32_MAX);
    uint8_t header [S_OPEN_HEADER];
    size_t width;
    if (count < 16) {
        header [0] = (uint8_t) ((map ? 0x80 : 0x90) | count);
        width = 1;
    }
    else
    if (count <= UINT16_MAX) {
        header [0] = map ? 0xde : 0xdc;
        header [1] = (uint8_t) (count >> 8);
        header [2] = (uint8_t) count;
        width = 3;
    }
    else {
        header [0] = map ? 0xdf : 0xdd;
        for (int i = 0; i < 4; i++)
            header [1 + i] = (uint8_t) (count >> (24 - 8 * i));
        width = 5;
    }
    if (width < S_OPEN_HEADER)
        memmove (base + width, base + S_OPEN_HEADER, body);
    memcpy (base, header, width);
    self->buffer.size -= S_OPEN_HEADER - width;
}

void
aip_pack_map_reopen (aip_pack_t *self, size_t at)
{
    assert (at < self->buffer.size);
    uint8_t *p = (uint8_t *) self->buffer.data;
    size_t end = self->buffer.size;
    size_t pos = at;
    uint64_t skip, items;
    bool container;
    int rc = s_header (p, end, &pos, &skip, &items, &container);
    assert (rc == 0 && container && items % 2 == 0);
    uint8_t c = p [at];
    assert ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf);
    //  ... the last value packed
    assert (s_count_values (p + at, end - at) == 1);
    size_t width = pos - at;
    size_t body = end - pos;
    //  Widen the header to the placeholder an open map has
    static const char room [S_OPEN_HEADER] = { 0 };
    msgpack_sbuffer_write (&self->buffer, room, S_OPEN_HEADER - width);
    p = (uint8_t *) self->buffer.data;
    memmove (p + at + S_OPEN_HEADER, p + at + width, body);
    assert (self->opened < AIP_MAX_DEPTH);
    self->open [self->opened] = at;
    self->open_map [self->opened] = true;
    self->opened++;
}

void aip_pack_map_begin (aip_pack_t *self)   { s_open (self, true); }
void aip_pack_map_end (aip_pack_t *self)     { s_close (self, true); }
void aip_pack_array_begin (aip_pack_t *self) { s_open (self, false); }
void aip_pack_array_end (aip_pack_t *self)   { s_close (self, false); }

void aip_pack_map (aip_pack_t *self, size_t pairs)   { msgpack_pack_map (&self->packer, pairs); }
void aip_pack_array (aip_pack_t *self, size_t items) { msgpack_pack_array (&self->packer, items); }
void aip_pack_int (aip_pack_t *self, int64_t value)  { msgpack_pack_int64 (&self->packer, value); }
void aip_pack_real (aip_pack_t *self, double value)  { msgpack_pack_double (&self->packer, value); }
void aip_pack_nil (aip_pack_t *self)                 { msgpack_pack_nil (&self->packer); }

void
aip_pack_bool (aip_pack_t *self, bool value)
{
    if (value)
        msgpack_pack_true (&self->packer);
    else
        msgpack_pack_false (&self->packer);
}

void
aip_pack_strn (aip_pack_t *self, const char *s, size_t len)
{
    if (!s) {
        msgpack_pack_nil (&self->packer);
        return;
    }
    msgpack_pack_str (&self->packer, len);
    msgpack_pack_str_body (&self->packer, s, len);
}

void
aip_pack_str (aip_pack_t *self, const char *s)
{
    aip_pack_strn (self, s, s ? strlen (s) : 0);
}

void
aip_pack_obj (aip_pack_t *self, const aip_obj_t *o)
{
    if (!o)
        msgpack_pack_nil (&self->packer);
    else
        msgpack_pack_object (&self->packer, *o);
}

void aip_pack_key (aip_pack_t *self, const char *key) { aip_pack_str (self, key); }

void
aip_pack_raw (aip_pack_t *self, const void *data, size_t size)
{
    msgpack_sbuffer_write (&self->buffer, (const char *) data, size);
}

void
aip_pack_kstr (aip_pack_t *self, const char *key, const char *value)
{
    aip_pack_str (self, key);
    aip_pack_str (self, value);
}

void
aip_pack_kstrn (aip_pack_t *self, const char *key, const char *value, size_t len)
{
    aip_pack_str (self, key);
    aip_pack_strn (self, value, len);
}

void
aip_pack_kint (aip_pack_t *self, const char *key, int64_t value)
{
    aip_pack_str (self, key);
    aip_pack_int (self, value);
}

void
aip_pack_kbool (aip_pack_t *self, const char *key, bool value)
{
    aip_pack_str (self, key);
    aip_pack_bool (self, value);
}

void
aip_pack_knil (aip_pack_t *self, const char *key)
{
    aip_pack_str (self, key);
    aip_pack_nil (self);
}


//  ---------------------------------------------------------------------
//  Self-test

static int
s_decode_bytes (const char *bytes, size_t n)
{
    char err [256];
    aip_doc_t *doc = aip_doc_decode (bytes, n, err, sizeof err);
    int rc = doc ? 0 : -1;
    aip_doc_destroy (&doc);
    return rc;
}

void
aip_codec_test (bool verbose)
{
    printf (" * aip_codec: ");
    char err [256];
    aip_pack_t *pk = aip_pack_new ();

    //  A document round trip through every packer and accessor
    aip_pack_map (pk, 8);
    aip_pack_kstr (pk, "s", "hello ✓");
    aip_pack_kstrn (pk, "n", "abc", 2);
    aip_pack_kint (pk, "i", -5);
    aip_pack_kbool (pk, "b", true);
    aip_pack_knil (pk, "z");
    aip_pack_key (pk, "r");
    aip_pack_real (pk, 1.5);
    aip_pack_key (pk, "a");
    aip_pack_array (pk, 2);
    aip_pack_int (pk, 1);
    aip_pack_str (pk, NULL);
    aip_pack_key (pk, "m");
    aip_pack_map (pk, 0);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc);
    const aip_obj_t *root = aip_doc_root (doc);
    assert (aip_obj_is_map (root) && aip_obj_size (root) == 8);
    assert (aip_obj_streq (aip_obj_get (root, "s"), "hello ✓"));
    assert (aip_obj_streq (aip_obj_get (root, "n"), "ab"));
    assert (aip_obj_get_int (root, "i", 0) == -5 && aip_obj_get_bool (root, "b", false));
    assert (aip_obj_is_nil (aip_obj_get (root, "z")) && aip_obj_get (root, "z"));
    assert (aip_obj_real (aip_obj_get (root, "r")) == 1.5);
    const aip_obj_t *array = aip_obj_get (root, "a");
    assert (aip_obj_size (array) == 2 && aip_obj_int (aip_obj_at (array, 0)) == 1);
    assert (aip_obj_is_nil (aip_obj_at (array, 1)) && !aip_obj_at (array, 2));
    assert (aip_obj_is_map (aip_obj_get (root, "m")) && aip_obj_size (aip_obj_get (root, "m")) == 0);
    assert (aip_obj_streq (aip_obj_key_at (root, 0), "s") && !aip_obj_key_at (root, 8));
    assert (aip_obj_get (root, "missing") == NULL && aip_obj_get (array, "s") == NULL);
    char buf [4];
    assert (strcmp (aip_obj_get_str (root, "s", buf, sizeof buf, NULL), "hel") == 0);
    assert (aip_obj_get_str (root, "i", buf, sizeof buf, NULL) == NULL);
    assert (strcmp (aip_obj_get_str (root, "i", buf, sizeof buf, "d"), "d") == 0);
    char *copy = aip_obj_strdup (aip_obj_get (root, "s"));
    assert (copy && strcmp (copy, "hello ✓") == 0);
    free (copy);
    const char *kept = aip_doc_strndup (doc, "kept here", 4);
    assert (kept && strcmp (kept, "kept") == 0);
    assert (aip_obj_is_map (aip_obj_empty_map ()) && aip_obj_size (aip_obj_empty_map ()) == 0);
    //  A copied value packs back to the same bytes
    aip_pack_t *again = aip_pack_new ();
    aip_pack_obj (again, root);
    size_t again_size;
    const void *again_data = aip_pack_data (again, &again_size);
    assert (again_size == size && memcmp (again_data, data, size) == 0);
    aip_pack_destroy (&again);
    aip_doc_destroy (&doc);
    aip_doc_destroy (&doc);         //  safe twice

    //  Open maps and arrays count what went into them: the same bytes as
    //  the counted header, whatever the size of the count and the nesting
    aip_pack_t *counted = aip_pack_new ();
    size_t sizes [] = { 0, 1, 15, 16, 300, 65535, 65536 };
    for (size_t t = 0; t < sizeof sizes / sizeof sizes [0]; t++) {
        size_t n = sizes [t];
        aip_pack_reset (pk);
        aip_pack_reset (counted);
        aip_pack_map_begin (pk);
        aip_pack_map (counted, n + 1);
        aip_pack_key (pk, "list");
        aip_pack_key (counted, "list");
        aip_pack_array_begin (pk);
        aip_pack_array (counted, n);
        for (size_t i = 0; i < n; i++) {
            aip_pack_t *sides [2] = { pk, counted };
            for (int side = 0; side < 2; side++) {
                if (i % 3 == 0) {
                    aip_pack_map (sides [side], 1);
                    aip_pack_kstr (sides [side], "k", "value");
                }
                else
                    aip_pack_int (sides [side], (int64_t) i * 1000);
            }
        }
        aip_pack_array_end (pk);
        char key [16];
        for (size_t i = 0; i < n; i++) {
            snprintf (key, sizeof key, "k%zu", i);
            aip_pack_kbool (pk, key, i % 2);
            aip_pack_kbool (counted, key, i % 2);
        }
        aip_pack_map_end (pk);
        size_t counted_size;
        const void *counted_data = aip_pack_data (counted, &counted_size);
        data = aip_pack_data (pk, &size);
        assert (size == counted_size && memcmp (data, counted_data, size) == 0);
        doc = aip_doc_decode (data, size, err, sizeof err);
        assert (doc && aip_obj_size (aip_doc_root (doc)) == n + 1);
        assert (aip_obj_size (aip_obj_get (aip_doc_root (doc), "list")) == n);
        aip_doc_destroy (&doc);
    }
    //  An open map may hold copied values and raw msgpack, and conditional
    //  keys need no count worked out beforehand
    aip_pack_reset (pk);
    aip_pack_map_begin (pk);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            aip_pack_kint (pk, i == 0 ? "a" : i == 1 ? "b" : "d", i);
    aip_pack_key (pk, "raw");
    aip_pack_raw (pk, "\x92\x01\xc3", 3);
    aip_pack_map_end (pk);
    data = aip_pack_data (pk, &size);
    doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc && aip_obj_size (aip_doc_root (doc)) == 4);
    assert (aip_obj_get_int (aip_doc_root (doc), "d", 0) == 3);
    assert (aip_obj_size (aip_obj_get (aip_doc_root (doc), "raw")) == 2);
    aip_doc_destroy (&doc);
    //  A map packed with its count opens again for more pairs (what another
    //  handler answered, with one key more)
    aip_pack_reset (pk);
    aip_pack_int (pk, 7);
    data = aip_pack_data (pk, &size);
    size_t mark = size;
    aip_pack_map (pk, 15);
    for (int i = 0; i < 15; i++) {
        char name [8];
        snprintf (name, sizeof name, "k%d", i);
        aip_pack_kint (pk, name, i);
    }
    aip_pack_map_reopen (pk, mark);
    aip_pack_kstr (pk, "room", "r");
    aip_pack_map_end (pk);
    data = aip_pack_data (pk, &size);
    assert (((const uint8_t *) data) [mark] == 0xde);          //  16 pairs: map16
    assert (aip_doc_decode (data, size, err, sizeof err) == NULL);   //  two values
    doc = aip_doc_decode ((const char *) data + mark, size - mark, err, sizeof err);
    assert (doc && aip_obj_size (aip_doc_root (doc)) == 16);
    assert (aip_obj_get_int (aip_doc_root (doc), "k14", 0) == 14);
    assert (aip_obj_streq (aip_obj_get (aip_doc_root (doc), "room"), "r"));
    aip_doc_destroy (&doc);

    //  Reset forgets an open map
    aip_pack_map_begin (pk);
    aip_pack_reset (pk);
    aip_pack_nil (pk);
    data = aip_pack_data (pk, &size);
    assert (size == 1);
    aip_pack_destroy (&counted);

    //  Hostile documents: huge claimed sizes, deep nesting, truncation,
    //  trailing bytes, ext types. All refused without allocating.
    assert (s_decode_bytes ("\xdd\xff\xff\xff\xff", 5) == -1);     //  array32 4G
    assert (s_decode_bytes ("\xdf\xff\xff\xff\xff", 5) == -1);     //  map32 4G
    assert (s_decode_bytes ("\xdb\xff\xff\xff\xff" "a", 6) == -1); //  str32 4G
    assert (s_decode_bytes ("\xc6\x00\x00\x00\x05" "ab", 7) == -1);
    assert (s_decode_bytes ("\x81\xa1" "a", 3) == -1);             //  map missing value
    assert (s_decode_bytes ("\xc0\xc0", 2) == -1);                 //  trailing
    assert (s_decode_bytes ("\xd4\x01\x02", 3) == -1);             //  fixext
    assert (s_decode_bytes ("\xc1", 1) == -1);                     //  never used
    assert (s_decode_bytes ("", 0) == -1);
    char deep [64];
    memset (deep, 0x91, sizeof deep);                               //  [[[[...
    deep [sizeof deep - 1] = (char) 0xc0;
    assert (s_decode_bytes (deep, sizeof deep) == -1);
    memset (deep, 0x91, AIP_MAX_DEPTH);
    deep [AIP_MAX_DEPTH] = (char) 0xc0;
    assert (s_decode_bytes (deep, AIP_MAX_DEPTH + 1) == 0);
    assert (s_decode_bytes ("\x93\x01\xa1x\xc3", 5) == 0);
    if (verbose)
        printf ("(hostile documents refused) ");

    aip_pack_destroy (&pk);
    aip_pack_destroy (&pk);
    //  A pack decoded into a document, the pack gone; garbage refused
    aip_pack_t *made = aip_pack_new ();
    aip_pack_map (made, 1);
    aip_pack_kint (made, "n", 7);
    char ferr [128];
    aip_doc_t *from = aip_doc_from_pack (&made, ferr, sizeof ferr);
    assert (from && !made && aip_obj_get_int (aip_doc_root (from), "n", 0) == 7);
    aip_doc_destroy (&from);
    made = aip_pack_new ();
    aip_pack_raw (made, "\xc1", 1);
    assert (!aip_doc_from_pack (&made, ferr, sizeof ferr) && !made && *ferr);
    printf ("OK\n");
}
