/*  aip_json.h — rendering decoded protocol values as JSON (jansson), for
    the CLI's output and the files it writes. */
#ifndef AIP_JSON_H_INCLUDED
#define AIP_JSON_H_INCLUDED

#include <jansson.h>
#include <stdio.h>
#include <stdbool.h>

#include "aip_proto.h"

//  A new JSON value for a decoded msgpack value (maps keep their key order;
//  non-string map keys are rendered as strings)
json_t *aip_json_from_obj (const aip_obj_t *o);
//  Pack a JSON value as msgpack
void aip_json_pack (aip_pack_t *pk, const json_t *json);
//  Dump with the original CLI's formatting (2-space indent, raw UTF-8);
//  caller frees
char *aip_json_dumps (const json_t *json);
//  The same written to out; 0, or -1 on failure
int aip_json_dumpf (const json_t *json, FILE *out);

//  home's tools.json (the tools a user configures; read by spawnd and by
//  the CLI's check of a tool name): its root, whose "tools" is an object.
//  NULL when it is absent (problem "") or cannot be read, is too large, is
//  not JSON or has no "tools" object (problem says which, with the path and
//  where). text_p, if not NULL, gets the file's text for messages that
//  point into it (caller frees; NULL when the root is).
json_t *aip_json_tools_load (const char *home, char **text_p, size_t *len_p,
                             char *problem, size_t size);

void aip_json_test (bool verbose);

#endif
