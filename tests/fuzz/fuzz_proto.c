/*  fuzz_proto.c — libFuzzer target for the decoders that face the wire:
    every frame a client, worker or peer sends goes through one of these. */
#include <stdint.h>
#include <stdlib.h>

#include "aip_json.h"
#include "aip_proto.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char err [256];
    aip_request_t req;
    uint64_t id;
    if (aip_request_decode (data, size, &req, &id, err, sizeof err) == 0) {
        //  A valid request: its arguments must be readable as the schema says
        for (const aip_field_t *f = aip_op_fields (req.op); f->name; f++) {
            const aip_obj_t *v = aip_req_arg (&req, f->name);
            size_t len;
            if (v && f->type == AIP_T_STR && !aip_obj_str (v, &len))
                abort ();
        }
        aip_request_free (&req);
    }
    aip_reply_t rep;
    if (aip_reply_decode (data, size, &rep, err, sizeof err) == 0)
        aip_reply_free (&rep);
    aip_doc_t *doc = aip_doc_decode (data, size, err, sizeof err);
    if (doc) {
        //  Whatever decodes renders as JSON and packs back
        json_t *json = aip_json_from_obj (aip_doc_root (doc));
        aip_pack_t *pk = aip_pack_new ();
        aip_json_pack (pk, json);
        aip_pack_destroy (&pk);
        json_decref (json);
        aip_doc_destroy (&doc);
    }
    return 0;
}
