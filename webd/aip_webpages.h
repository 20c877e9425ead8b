/*  aip_webpages.h — the pages: the logged-in WebSockets of the web view
    and what is queued for them. The live-update channel to the browsers.

    A frame for many pages is made once and shared (a message to 20 pages
    is one JSON text). A page that lets more than AIP_WEB_MAX_QUEUE bytes
    wait is not reading: it is reset, so it cannot hold webd's memory. A
    page may ask AIP_WEB_RATE times a second (bursts of AIP_WEB_BURST); a
    page that goes on asking over the limit (FLOOD_CLOSE_AFTER refusals in
    a window) is closed once the error saying why is out. A message over
    AIP_WEB_MAX_FRAME closes it; binary messages are refused. */
#ifndef AIP_WEBPAGES_H_INCLUDED
#define AIP_WEBPAGES_H_INCLUDED

#include <jansson.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _aip_webpages_t aip_webpages_t;
typedef struct _aip_webpage_t aip_webpage_t;

aip_webpages_t *aip_webpages_new (void);
//  Closes what pages are left (after lws, whose CLOSED closes the rest)
void aip_webpages_destroy (aip_webpages_t **self_p);

//  A logged-in WebSocket becomes a page (wsi NULL: a page with no
//  connection, for the self-tests); a serial names it from then on
aip_webpage_t *aip_webpages_open (aip_webpages_t *self, struct lws *wsi);
//  The WebSocket closed: what was queued for it goes (NULL-safe)
void aip_webpages_close (aip_webpages_t *self, aip_webpage_t **page_p);
uint64_t aip_webpage_serial (aip_webpage_t *page);
//  The room open in the page ("" when none)
const char *aip_webpage_room (aip_webpage_t *page);
void aip_webpage_set_room (aip_webpage_t *page, const char *room);

//  The page of serial, or NULL once it closed
aip_webpage_t *aip_webpages_find (aip_webpages_t *self, uint64_t serial);
//  Some page has room open
bool aip_webpages_watched (aip_webpages_t *self, const char *room);

//  To the page of serial (nothing when it is gone); takes doc (NULL: a
//  string that was not UTF-8, sent as nothing)
void aip_webpages_send (aip_webpages_t *self, uint64_t serial, json_t *doc);
//  To every page, or (room not NULL) to the pages that have room open;
//  takes doc
void aip_webpages_broadcast (aip_webpages_t *self, json_t *doc, const char *room);
//  {type:"error", message} to the page of serial
void aip_webpages_error (aip_webpages_t *self, uint64_t serial, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

//  A piece of a WebSocket message from the page (binary: lws said so;
//  final: the message's last piece): -1 closes the page; 0 nothing to
//  do (more to come, or the page was told why not); 1 *req is a request
//  (a JSON object with a string "op"), the caller's to decref
int aip_webpages_receive (aip_webpages_t *self, aip_webpage_t *page, const void *in, size_t len,
                          bool binary, bool final, json_t **req);
//  The page may be written to: the next frame; -1 closes it
int aip_webpages_write (aip_webpages_t *self, aip_webpage_t *page);
//  For a page with no connection (the self-tests): the next frame queued
//  for it as text, the caller's to free, or NULL
char *aip_webpage_take (aip_webpage_t *page);

void aip_webpages_test (bool verbose);

#endif
