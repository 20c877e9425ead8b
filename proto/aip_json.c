/*  aip_json.c — msgpack values <-> jansson values, and the JSON file a
    user writes (tools.json). */
#include "aip_json.h"
#include "aip_home.h"
#include "aip_util.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

json_t *
aip_json_from_obj (const aip_obj_t *o)
{
    if (aip_obj_is_nil (o))
        return json_null ();
    if (aip_obj_is_bool (o))
        return json_boolean (aip_obj_bool (o));
    if (aip_obj_is_int (o))
        return json_integer (aip_obj_int (o));
    if (aip_obj_is_real (o)) {
        //  JSON has no NaN or infinity
        json_t *real = json_real (aip_obj_real (o));
        return real ? real : json_null ();
    }
    size_t len;
    const char *s = aip_obj_str (o, &len);
    if (s)
        return json_stringn_nocheck (s, len);
    if (aip_obj_is_array (o)) {
        json_t *array = json_array ();
        for (size_t i = 0; i < aip_obj_size (o); i++)
            json_array_append_new (array, aip_json_from_obj (aip_obj_at (o, i)));
        return array;
    }
    if (aip_obj_is_map (o)) {
        json_t *object = json_object ();
        for (size_t i = 0; i < aip_obj_size (o); i++) {
            const aip_obj_t *key = aip_obj_key_at (o, i);
            char *k = aip_obj_strdup (key);
            if (!k) {
                json_t *kj = aip_json_from_obj (key);
                k = json_dumps (kj, JSON_ENCODE_ANY | JSON_COMPACT);
                json_decref (kj);
            }
            if (k)
                json_object_set_new_nocheck (object, k, aip_json_from_obj (aip_obj_val_at (o, i)));
            free (k);
        }
        return object;
    }
    return json_null ();            //  bin: never in our schemas
}

void
aip_json_pack (aip_pack_t *pk, const json_t *json)
{
    if (!json) {
        aip_pack_nil (pk);
        return;
    }
    switch (json_typeof (json)) {
        case JSON_OBJECT: {
            aip_pack_map (pk, json_object_size (json));
            const char *key;
            json_t *value;
            json_object_foreach ((json_t *) json, key, value) {
                aip_pack_key (pk, key);
                aip_json_pack (pk, value);
            }
            break;
        }
        case JSON_ARRAY: {
            aip_pack_array (pk, json_array_size (json));
            size_t i;
            json_t *value;
            json_array_foreach (json, i, value)
                aip_json_pack (pk, value);
            break;
        }
        case JSON_STRING:
            aip_pack_strn (pk, json_string_value (json), json_string_length (json));
            break;
        case JSON_INTEGER: aip_pack_int (pk, json_integer_value (json)); break;
        case JSON_REAL:    aip_pack_real (pk, json_real_value (json)); break;
        case JSON_TRUE:    aip_pack_bool (pk, true); break;
        case JSON_FALSE:   aip_pack_bool (pk, false); break;
        case JSON_NULL:    aip_pack_nil (pk); break;
    }
}

char *
aip_json_dumps (const json_t *json)
{
    return json_dumps (json, JSON_INDENT (2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION (15));
}

int
aip_json_dumpf (const json_t *json, FILE *out)
{
    return json_dumpf (json, out, JSON_INDENT (2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION (15));
}

json_t *
aip_json_tools_load (const char *home, char **text_p, size_t *len_p, char *problem, size_t size)
{
    char path [AIP_PATH_MAX];
    aip_home_path (home, "tools.json", path, sizeof path);
    *problem = 0;
    if (text_p)
        *text_p = NULL;
    size_t len;
    char *text = aip_file_read (path, AIP_MAX_TOOLS_FILE, &len);
    if (!text) {
        if (errno == EFBIG)
            snprintf (problem, size, "cannot read %s: larger than %d KiB", path,
                      AIP_MAX_TOOLS_FILE / 1024);
        else
        if (errno != ENOENT)
            snprintf (problem, size, "cannot read %s: %s", path, strerror (errno));
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb (text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object (json_object_get (root, "tools"))) {
        if (root)
            snprintf (problem, size, "%s is not valid: it needs an object \"tools\"", path);
        else
            snprintf (problem, size, "%s:%d:%d: not valid JSON: %s", path, jerr.line,
                      jerr.column, jerr.text);
        json_decref (root);
        free (text);
        return NULL;
    }
    if (text_p) {
        *text_p = text;
        *len_p = len;
    }
    else
        free (text);
    return root;
}

void
aip_json_test (bool verbose)
{
    printf (" * aip_json: ");
    aip_pack_t *pk = aip_pack_new ();
    aip_pack_map (pk, 4);
    aip_pack_kstr (pk, "z", "你好\n");
    aip_pack_kint (pk, "a", 3);
    aip_pack_key (pk, "list");
    aip_pack_array (pk, 2);
    aip_pack_bool (pk, true);
    aip_pack_nil (pk);
    aip_pack_kbool (pk, "f", false);
    size_t size;
    const void *data = aip_pack_data (pk, &size);
    char err [128];
    aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
    assert (doc);
    json_t *json = aip_json_from_obj (aip_doc_root (doc));
    char *text = json_dumps (json, JSON_COMPACT);
    if (verbose)
        printf ("%s ", text);
    //  Key order is kept, UTF-8 stays raw
    assert (strcmp (text, "{\"z\":\"你好\\n\",\"a\":3,\"list\":[true,null],\"f\":false}") == 0);
    free (text);

    //  And back
    aip_pack_t *pk2 = aip_pack_new ();
    aip_json_pack (pk2, json);
    size_t size2;
    const void *data2 = aip_pack_data (pk2, &size2);
    assert (size2 == size && memcmp (data, data2, size) == 0);
    text = aip_json_dumps (json);
    assert (strstr (text, "\n  \"a\": 3"));
    free (text);
    json_decref (json);
    aip_doc_destroy (&doc);
    aip_pack_destroy (&pk);
    aip_pack_destroy (&pk2);

    //  tools.json: absent, broken, without "tools", then a good one
    char home [] = "/tmp/aip_json_test_XXXXXX";
    assert (mkdtemp (home));
    char path [AIP_PATH_MAX], problem [AIP_PATH_MAX + 128];
    aip_home_path (home, "tools.json", path, sizeof path);
    size_t len;
    assert (!aip_json_tools_load (home, &text, &len, problem, sizeof problem) && !*problem);
    const char *files [] = { "{\"tools\": {", "{\"tool\": {}}", "{\"tools\": {\"a\": 1}}" };
    for (size_t i = 0; i < 3; i++) {
        FILE *f = fopen (path, "w");
        assert (f && fputs (files [i], f) >= 0 && fclose (f) == 0);
        json_t *root = aip_json_tools_load (home, &text, &len, problem, sizeof problem);
        if (verbose && *problem)
            printf ("\n   %s", problem);
        if (i < 2) {
            assert (!root && !text);
            assert (strstr (problem, i == 0 ? "tools.json:1:" : "needs an object \"tools\""));
        }
        else {
            assert (root && !*problem && len == strlen (files [i]) && memcmp (text, files [i], len) == 0);
            json_decref (root);
            free (text);
        }
    }
    remove (path);
    rmdir (home);
    printf ("OK\n");
}
