/*  aip_frames.h — the broker↔worker frames (AIP_FRAMES), packed and decoded.

    Both sides build and read these frames here, and nowhere else: brokerd
    (aip_workers, over ipc and the LAN socket) and the worker side
    (aip_worker). After the routing id, which a ROUTER adds and strips, one
    frame names the command, then come its own frames:

      READY  [body]         worker: I serve {v, svc, slots, name, pid, tools?, token?}
      HB                    either side: alive
      REQ    [tag][body]    broker: a request to handle
      REPLY  [tag][body]    worker: its reply
      EVENT  [topic][body]  worker: publish this
      CANCEL [tag]          broker: stop that request
      BYE                   either side: gone (from the broker: register again)

    A tag is the broker's 8-byte handle of a request (host byte order: it
    only ever goes back to the broker that made it). Decoding checks the
    command's name, which side may send it, the frame count and the tag's
    size, and says what is wrong instead of asserting. */
#ifndef AIP_FRAMES_H_INCLUDED
#define AIP_FRAMES_H_INCLUDED

#include <czmq.h>

#include "aip_proto.h"

//  One decoded command (the frames after the routing id)
typedef struct {
    aip_frame_t type;           //  which command
    uint64_t tag;               //  REQ, REPLY, CANCEL: the request's tag, else 0
    zframe_t *topic;            //  EVENT: its topic (owned), else NULL
    zframe_t *body;             //  READY, REQ, REPLY, EVENT: its body (owned), else NULL
} aip_frames_t;

//  The message for one command: routing_id first (copied) when a ROUTER
//  sends it, NULL from a DEALER; then the command and its frames. tag for
//  REQ, REPLY and CANCEL; topic for EVENT; *body_p (handed over, NULLed)
//  for READY, REQ, REPLY and EVENT. Asks nothing a command does not carry.
zmsg_t *aip_frames_pack (zframe_t *routing_id, aip_frame_t type, uint64_t tag,
                         const char *topic, zframe_t **body_p);
//  The same with the body copied from data
zmsg_t *aip_frames_pack_mem (zframe_t *routing_id, aip_frame_t type, uint64_t tag,
                             const char *topic, const void *data, size_t size);
//  Pack and send on sock: 0, or -1 (nothing sent; *body_p is then freed)
int aip_frames_send (zsock_t *sock, zframe_t *routing_id, aip_frame_t type, uint64_t tag,
                     const char *topic, zframe_t **body_p);

//  Decode the frames of *msg_p after the routing id (the caller popped it)
//  into frames; from is the side that sent it (AIP_FRAME_F_WORKER or
//  AIP_FRAME_F_BROKER). Consumes the message. Returns 0, or -1 with err
//  filled when it is malformed (unknown name, a command that side does not
//  send, wrong frame count, a tag that is not 8 bytes): nothing is kept.
int aip_frames_decode (zmsg_t **msg_p, unsigned from, aip_frames_t *frames, char *err,
                       size_t errlen);
//  Free what a decode kept (safe twice)
void aip_frames_free (aip_frames_t *frames);

void aip_frames_test (bool verbose);

#endif
