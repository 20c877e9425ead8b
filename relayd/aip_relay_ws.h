/*  aip_relay_ws.h — the WebSocket side of relayd: one libwebsockets
    context in its own thread, one client connection per public room.

    libwebsockets runs its own event loop (this Debian build has no external
    poll), so it lives in a zactor. Commands go in over the actor pipe
    (the loop is woken with lws_cancel_service); what happens comes out as
    messages on the same pipe, read by the relay actor:

      ["UP", room_id]                   connected
      ["DOWN", room_id, reason]         connection failed or closed
      ["MSG", room_id, text]            one whole text message (capped at
                                        AIP_RELAY_MAX_WS_MESSAGE; larger
                                        ones are dropped and logged) */
#ifndef AIP_RELAY_WS_H_INCLUDED
#define AIP_RELAY_WS_H_INCLUDED

#include <czmq.h>

typedef struct _aip_relay_ws_t aip_relay_ws_t;

aip_relay_ws_t *aip_relay_ws_new (void);
void aip_relay_ws_destroy (aip_relay_ws_t **self_p);
//  The socket to poll for UP / DOWN / MSG
zsock_t *aip_relay_ws_sock (aip_relay_ws_t *self);
//  Connect to <relay_url>/rooms/<room_id>/ws?token=<token>
void aip_relay_ws_open (aip_relay_ws_t *self, const char *room_id, const char *relay_url,
                        const char *token);
//  Close a room's connection (no DOWN follows)
void aip_relay_ws_close (aip_relay_ws_t *self, const char *room_id);

void aip_relay_ws_test (bool verbose);

#endif
