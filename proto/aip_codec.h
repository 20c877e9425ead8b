/*  aip_codec.h — the msgpack codec under the wire protocol.

    Decoding (aip_doc_*) copies the bytes, pre-scans them so that no header
    can make the unpacker allocate more than the input justifies, and refuses
    ext types, deeper nesting than AIP_MAX_DEPTH and more than
    AIP_MAX_ELEMENTS values with a message instead of asserting. Decoded
    values are read through aip_obj_* (every accessor takes NULL and the
    wrong type); packing goes through aip_pack_*.

    aip_codec.c is the only file that includes <msgpack.h>: the operation
    table and the request/reply envelopes (aip_proto.h) sit on top of it. */
#ifndef AIP_CODEC_H_INCLUDED
#define AIP_CODEC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aip_limits.h"

//  ---------------------------------------------------------------------
//  Decoded documents and read access to their values

typedef struct msgpack_object aip_obj_t;
typedef struct _aip_doc_t aip_doc_t;

//  Decode one msgpack document (the whole buffer, copied). Returns NULL and
//  a message in err if it is malformed or exceeds the limits.
aip_doc_t *aip_doc_decode (const void *data, size_t size, char *err, size_t errlen);
const aip_obj_t *aip_doc_root (aip_doc_t *self);
void aip_doc_destroy (aip_doc_t **self_p);
//  A NUL-terminated copy of len bytes of s that lives as long as the
//  document (freed with it), or NULL when out of memory
const char *aip_doc_strndup (aip_doc_t *self, const char *s, size_t len);

//  Value of key in a map, or NULL (also NULL if o is not a map)
const aip_obj_t *aip_obj_get (const aip_obj_t *o, const char *key);
bool aip_obj_is_nil (const aip_obj_t *o);
bool aip_obj_is_str (const aip_obj_t *o);
bool aip_obj_is_int (const aip_obj_t *o);
bool aip_obj_is_bool (const aip_obj_t *o);
bool aip_obj_is_map (const aip_obj_t *o);
bool aip_obj_is_array (const aip_obj_t *o);
bool aip_obj_is_real (const aip_obj_t *o);
//  An empty map (static: what a request without "a" validates as)
const aip_obj_t *aip_obj_empty_map (void);
//  String bytes (not NUL-terminated) and length, or NULL if not a string
const char *aip_obj_str (const aip_obj_t *o, size_t *len);
//  A NUL-terminated copy the caller frees, or NULL if not a string
char *aip_obj_strdup (const aip_obj_t *o);
//  True if o is a string equal to s
bool aip_obj_streq (const aip_obj_t *o, const char *s);
int64_t aip_obj_int (const aip_obj_t *o);
double aip_obj_real (const aip_obj_t *o);
bool aip_obj_bool (const aip_obj_t *o);
//  Elements of an array or pairs of a map
size_t aip_obj_size (const aip_obj_t *o);
const aip_obj_t *aip_obj_at (const aip_obj_t *o, size_t index);
const aip_obj_t *aip_obj_key_at (const aip_obj_t *o, size_t index);
const aip_obj_t *aip_obj_val_at (const aip_obj_t *o, size_t index);

//  Convenience for maps: string value of key (or dflt if absent / not a
//  string) copied into buf, NUL-terminated, truncated to bufsize; returns
//  buf, or NULL when absent and dflt is NULL
const char *aip_obj_get_str (const aip_obj_t *o, const char *key,
                             char *buf, size_t bufsize, const char *dflt);
int64_t aip_obj_get_int (const aip_obj_t *o, const char *key, int64_t dflt);
bool aip_obj_get_bool (const aip_obj_t *o, const char *key, bool dflt);

//  ---------------------------------------------------------------------
//  Packing

typedef struct _aip_pack_t aip_pack_t;
//  Decode what *pk_p holds, then destroy it (the self-tests' way to make a
//  document to read). NULL, with err filled, if it does not decode.
aip_doc_t *aip_doc_from_pack (aip_pack_t **pk_p, char *err, size_t errlen);

aip_pack_t *aip_pack_new (void);
void aip_pack_destroy (aip_pack_t **self_p);
//  Empty the buffer, keep the allocation
void aip_pack_reset (aip_pack_t *self);
//  Bytes packed so far (borrowed)
const void *aip_pack_data (aip_pack_t *self, size_t *size);
//  Hand the buffer to the caller (free() it) and reset
void *aip_pack_steal (aip_pack_t *self, size_t *size);

void aip_pack_map (aip_pack_t *self, size_t pairs);
void aip_pack_array (aip_pack_t *self, size_t items);
//  A map or array whose count is not known beforehand (conditional keys,
//  rows as they come): begin, pack its pairs or items, end writes the
//  count. They nest (up to AIP_MAX_DEPTH open at once); inside one,
//  aip_pack_raw must append whole msgpack values. The bytes are those of
//  the counted aip_pack_map/aip_pack_array. aip_pack_data and _steal
//  assert that none is left open.
void aip_pack_map_begin (aip_pack_t *self);
void aip_pack_map_end (aip_pack_t *self);
//  Open again the map packed at offset at (the last value packed, e.g. what
//  another handler answered) to add pairs to it; aip_pack_map_end closes it
void aip_pack_map_reopen (aip_pack_t *self, size_t at);
void aip_pack_array_begin (aip_pack_t *self);
void aip_pack_array_end (aip_pack_t *self);
void aip_pack_str (aip_pack_t *self, const char *s);            //  NULL packs nil
void aip_pack_strn (aip_pack_t *self, const char *s, size_t len);
void aip_pack_int (aip_pack_t *self, int64_t value);
void aip_pack_real (aip_pack_t *self, double value);
void aip_pack_bool (aip_pack_t *self, bool value);
void aip_pack_nil (aip_pack_t *self);
//  Append bytes that are already msgpack (one or more whole values)
void aip_pack_raw (aip_pack_t *self, const void *data, size_t size);
//  Copy a decoded value
void aip_pack_obj (aip_pack_t *self, const aip_obj_t *o);
//  Key + value shorthands for maps
void aip_pack_kstr (aip_pack_t *self, const char *key, const char *value);
void aip_pack_kstrn (aip_pack_t *self, const char *key, const char *value, size_t len);
void aip_pack_kint (aip_pack_t *self, const char *key, int64_t value);
void aip_pack_kbool (aip_pack_t *self, const char *key, bool value);
void aip_pack_knil (aip_pack_t *self, const char *key);
void aip_pack_key (aip_pack_t *self, const char *key);

void aip_codec_test (bool verbose);

#endif
