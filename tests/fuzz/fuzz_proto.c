/*  fuzz_proto.c — libFuzzer target for the decoders that face the wire:
    every frame a client, worker or peer sends goes through one of these
    (a worker's and the broker's command frames through aip_frames_decode),
    every event a subscriber reads through aip_event_decode,
    every beacon heard on the LAN through aip_lan_beacon_decode, and every
    connection string a user pastes through aip_peerurl_parse. */
#include <stdint.h>
#include <stdlib.h>

#include "aip_event.h"
#include "aip_frames.h"
#include "aip_json.h"
#include "aip_lan.h"
#include "aip_peerurl.h"
#include "aip_proto.h"

#include <string.h>

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
    //  An event (what a subscriber reads off the broker's PUB socket): one
    //  that decodes has the room id and data its type promises
    aip_event_t ev;
    if (aip_event_decode (data, size, &ev, err, sizeof err) == 0) {
        if (!*ev.room_id || (ev.type != AIP_EVENT_OUTBOX && !ev.data)
        ||  (ev.type == AIP_EVENT_OUTBOX && ev.data
             && !aip_obj_streq (aip_obj_get (ev.data, "id"), ev.msg_id)))
            abort ();
        aip_event_free (&ev);
    }
    //  Worker frames (the LAN socket takes them from other machines): the
    //  bytes cut at each '|' into at most 6 frames, read as from either
    //  side; one that decodes has what its command carries
    zmsg_t *frames [2] = { zmsg_new (), zmsg_new () };
    size_t start = 0;
    for (size_t i = 0; i <= size && zmsg_size (frames [0]) < 6; i++)
        if (i == size || data [i] == '|') {
            zmsg_addmem (frames [0], data + start, i - start);
            zmsg_addmem (frames [1], data + start, i - start);
            start = i + 1;
        }
    for (int side = 0; side < 2; side++) {
        aip_frames_t cmd;
        unsigned from = side ? AIP_FRAME_F_BROKER : AIP_FRAME_F_WORKER;
        if (aip_frames_decode (&frames [side], from, &cmd, err, sizeof err) == 0) {
            if ((cmd.type == AIP_FRAME_EVENT) != (cmd.topic != NULL))
                abort ();
            aip_frames_free (&cmd);
        }
        if (frames [side])
            abort ();           //  decoding consumes the message
    }
    //  A beacon (UDP, anyone on the network can send one)
    aip_lan_beacon_t beacon;
    if (aip_lan_beacon_decode (data, size, &beacon) == 0
    &&  (strlen (beacon.key_hex) != AIP_LAN_KEY_HEX || beacon.port < 1 || beacon.port > 65535))
        abort ();
    //  The same bytes with the beacon prefix, so the fuzzer reaches its map
    uint8_t framed [AIP_LAN_BEACON_MAX];
    if (size + 4 <= sizeof framed) {
        memcpy (framed, AIP_LAN_BEACON_PREFIX, 4);
        memcpy (framed + 4, data, size);
        aip_lan_beacon_decode (framed, size + 4, &beacon);
    }
    //  A connection string
    if (size < 4096) {
        char *text = (char *) malloc (size + 1);
        memcpy (text, data, size);
        text [size] = 0;
        aip_peerurl_t pu;
        if (aip_peerurl_parse (text, &pu, err, sizeof err) == 0 && pu.lan) {
            char endpoint [AIP_MAX_URL + 1], key [AIP_LAN_KEY_HEX + 1];
            if (aip_lan_url_parse (pu.relay_url, endpoint, sizeof endpoint, key))
                abort ();
        }
        free (text);
    }
    return 0;
}
