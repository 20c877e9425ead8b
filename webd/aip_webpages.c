/*  aip_webpages.c — the pages' WebSockets and their queues. See
    aip_webpages.h. */
#include "aip_webpages.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <czmq.h>
#include <sys/socket.h>

//  Refused requests within FLOOD_WINDOW_MS after which a page is closed
#define FLOOD_CLOSE_AFTER 500
#define FLOOD_WINDOW_MS 10000

//  One frame for the pages, shared by every page it is queued on
typedef struct {
    int refs;                   //  pages holding it
    size_t size;                //  payload bytes (after LWS_PRE)
    unsigned char data [];      //  LWS_PRE headroom, then the payload
} s_frame_t;

struct _aip_webpage_t {
    struct lws *wsi;            //  the WebSocket (NULL: the self-test's)
    uint64_t serial;            //  its id in calls and jobs
    char room [AIP_MAX_ID + 1]; //  the room open in the page, or ""
    char *rx;                   //  message being assembled
    size_t rx_size;             //  bytes in rx
    bool rx_overflow;           //  a binary message, dropped whole
    zlistx_t *out;              //  s_frame_t queued for this page
    size_t out_bytes;           //  bytes in out
    bool killed;                //  reset for not reading
    bool closing;               //  closed for flooding once its queue is out
    double tokens;              //  rate limit: requests allowed now
    int64_t tokens_at;          //  when tokens was last topped up
    int refused;                //  requests refused in this window (flood)
    int64_t refused_since;      //  when the window began
    int64_t refused_said;       //  when the page was last told it is refused
};

struct _aip_webpages_t {
    zlistx_t *pages;            //  aip_webpage_t of the open pages
    uint64_t next_serial;       //  serials of pages
};

static s_frame_t *
s_frame_json (json_t *doc)
{
    char *text = json_dumps (doc, JSON_COMPACT);
    assert (text);
    size_t size = strlen (text);
    s_frame_t *frame = (s_frame_t *) malloc (sizeof (s_frame_t) + LWS_PRE + size);
    assert (frame);
    frame->refs = 0;
    frame->size = size;
    memcpy (frame->data + LWS_PRE, text, size);
    free (text);
    return frame;
}

static void
s_frame_unref (s_frame_t *frame)
{
    if (frame && --frame->refs <= 0)
        free (frame);
}

aip_webpages_t *
aip_webpages_new (void)
{
    aip_webpages_t *self = (aip_webpages_t *) zmalloc (sizeof (aip_webpages_t));
    self->pages = zlistx_new ();
    return self;
}

void
aip_webpages_destroy (aip_webpages_t **self_p)
{
    aip_webpages_t *self = *self_p;
    if (!self)
        return;
    aip_webpage_t *page;
    while ((page = (aip_webpage_t *) zlistx_first (self->pages)))
        aip_webpages_close (self, &page);
    zlistx_destroy (&self->pages);
    free (self);
    *self_p = NULL;
}

aip_webpage_t *
aip_webpages_open (aip_webpages_t *self, struct lws *wsi)
{
    aip_webpage_t *page = (aip_webpage_t *) zmalloc (sizeof (aip_webpage_t));
    page->wsi = wsi;
    page->serial = ++self->next_serial;
    page->out = zlistx_new ();
    page->tokens = AIP_WEB_BURST;
    page->tokens_at = aip_clock_ms ();
    zlistx_add_end (self->pages, page);
    return page;
}

void
aip_webpages_close (aip_webpages_t *self, aip_webpage_t **page_p)
{
    aip_webpage_t *page = *page_p;
    if (!page)
        return;
    void *handle = zlistx_find (self->pages, page);
    if (handle)
        zlistx_delete (self->pages, handle);
    s_frame_t *frame;
    while ((frame = (s_frame_t *) zlistx_first (page->out))) {
        zlistx_delete (page->out, zlistx_cursor (page->out));
        s_frame_unref (frame);
    }
    zlistx_destroy (&page->out);
    free (page->rx);
    free (page);
    *page_p = NULL;
}

uint64_t
aip_webpage_serial (aip_webpage_t *page)
{
    return page->serial;
}

const char *
aip_webpage_room (aip_webpage_t *page)
{
    return page->room;
}

void
aip_webpage_set_room (aip_webpage_t *page, const char *room)
{
    snprintf (page->room, sizeof page->room, "%s", room);
}

aip_webpage_t *
aip_webpages_find (aip_webpages_t *self, uint64_t serial)
{
    for (aip_webpage_t *page = (aip_webpage_t *) zlistx_first (self->pages); page;
         page = (aip_webpage_t *) zlistx_next (self->pages))
        if (page->serial == serial)
            return page;
    return NULL;
}

bool
aip_webpages_watched (aip_webpages_t *self, const char *room)
{
    for (aip_webpage_t *page = (aip_webpage_t *) zlistx_first (self->pages); page;
         page = (aip_webpage_t *) zlistx_next (self->pages))
        if (streq (page->room, room))
            return true;
    return false;
}

//  ---------------------------------------------------------------------
//  Queues

//  Queue a frame for one page; one that has too much waiting is reset
static void
s_queue (aip_webpage_t *page, s_frame_t *frame)
{
    if (page->killed)
        return;
    if (page->out_bytes + frame->size > AIP_WEB_MAX_QUEUE) {
        zsys_warning ("webd: a page stopped reading (%zu bytes waiting): closing it",
                      page->out_bytes);
        page->killed = true;
        if (page->wsi) {
            //  Reset, not a graceful close: what the kernel holds for it is
            //  dropped too, instead of trickling out to a reader that stalls
            struct linger abort = { 1, 0 };
            setsockopt (lws_get_socket_fd (page->wsi), SOL_SOCKET, SO_LINGER, &abort,
                        sizeof abort);
            lws_set_timeout (page->wsi, PENDING_TIMEOUT_USER_REASON_BASE, LWS_TO_KILL_ASYNC);
        }
        return;
    }
    frame->refs++;
    zlistx_add_end (page->out, frame);
    page->out_bytes += frame->size;
    if (page->wsi)
        lws_callback_on_writable (page->wsi);
}

void
aip_webpages_send (aip_webpages_t *self, uint64_t serial, json_t *doc)
{
    aip_webpage_t *page = doc ? aip_webpages_find (self, serial) : NULL;
    if (page) {
        s_frame_t *frame = s_frame_json (doc);
        frame->refs++;          //  held while queuing
        s_queue (page, frame);
        s_frame_unref (frame);
    }
    json_decref (doc);
}

void
aip_webpages_broadcast (aip_webpages_t *self, json_t *doc, const char *room)
{
    if (!doc)
        return;             //  a string that was not UTF-8 (cut short, say)
    s_frame_t *frame = s_frame_json (doc);
    frame->refs++;              //  held while queuing
    for (aip_webpage_t *page = (aip_webpage_t *) zlistx_first (self->pages); page;
         page = (aip_webpage_t *) zlistx_next (self->pages))
        if (!room || streq (page->room, room))
            s_queue (page, frame);
    s_frame_unref (frame);
    json_decref (doc);
}

void
aip_webpages_error (aip_webpages_t *self, uint64_t serial, const char *fmt, ...)
{
    char message [1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    json_t *doc = json_pack ("{s:s, s:s}", "type", "error", "message", message);
    if (!doc)       //  a message that is not UTF-8 (it quotes the page)
        doc = json_pack ("{s:s, s:s}", "type", "error", "message", "request refused");
    aip_webpages_send (self, serial, doc);
}

//  ---------------------------------------------------------------------
//  What the pages send

//  A page may ask AIP_WEB_RATE times a second (bursts of AIP_WEB_BURST)
static bool
s_rate_ok (aip_webpage_t *page)
{
    int64_t now = aip_clock_ms ();
    page->tokens += (double) (now - page->tokens_at) * AIP_WEB_RATE / 1000.0;
    if (page->tokens > AIP_WEB_BURST)
        page->tokens = AIP_WEB_BURST;
    page->tokens_at = now;
    if (page->tokens < 1)
        return false;
    page->tokens -= 1;
    return true;
}

//  A request over the rate: refused, and a page that floods is closed
static void
s_refuse (aip_webpages_t *self, aip_webpage_t *page)
{
    //  Refusals are counted over a window: a flood that lets a request
    //  through now and then (the bucket refills) is still a flood
    if (aip_clock_ms () - page->refused_since > FLOOD_WINDOW_MS) {
        page->refused_since = aip_clock_ms ();
        page->refused = 0;
    }
    if (++page->refused >= FLOOD_CLOSE_AFTER && !page->closing) {
        //  Closed once what is queued (the error saying why) is out;
        //  a flood that does not read either is cut off in 5 s
        zsys_warning ("webd: a page sent %d requests over the limit: closing it", page->refused);
        page->closing = true;
        if (page->wsi) {
            lws_set_timeout (page->wsi, PENDING_TIMEOUT_USER_REASON_BASE, 5);
            lws_callback_on_writable (page->wsi);
        }
        return;
    }
    if (aip_clock_ms () - page->refused_said >= 1000) {
        page->refused_said = aip_clock_ms ();
        aip_webpages_error (self, page->serial, "too many requests: at most %d a second",
                            AIP_WEB_RATE);
    }
}

//  One whole text message: a request, or NULL (the page was told why)
static json_t *
s_request (aip_webpages_t *self, aip_webpage_t *page, const char *text, size_t size)
{
    if (page->closing)
        return NULL;            //  being closed for flooding: not heard any more
    if (!s_rate_ok (page)) {
        s_refuse (self, page);
        return NULL;
    }
    if (!aip_utf8_valid (text, size)) {
        aip_webpages_error (self, page->serial, "a request must be UTF-8 JSON text");
        return NULL;
    }
    json_t *req = json_loadb (text, size, 0, NULL);
    if (!json_is_object (req) || !json_is_string (json_object_get (req, "op"))) {
        aip_webpages_error (self, page->serial, "a request is a JSON object with an \"op\"");
        json_decref (req);
        return NULL;
    }
    return req;
}

int
aip_webpages_receive (aip_webpages_t *self, aip_webpage_t *page, const void *in, size_t len,
                      bool binary, bool final, json_t **req)
{
    *req = NULL;
    if (binary)
        page->rx_overflow = true;   //  dropped whole: only text is spoken
    if (!page->rx_overflow) {
        if (page->rx_size + len > AIP_WEB_MAX_FRAME) {
            zsys_warning ("webd: a page sent a message over %d bytes: closing it",
                          AIP_WEB_MAX_FRAME);
            if (page->wsi)
                lws_close_reason (page->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                                  (unsigned char *) "message too large (at most 1 MiB)", 33);
            return -1;
        }
        if (!page->rx)
            page->rx = (char *) malloc (AIP_WEB_MAX_FRAME + 1);
        assert (page->rx);
        memcpy (page->rx + page->rx_size, in, len);
        page->rx_size += len;
    }
    if (!final)
        return 0;
    if (page->rx_overflow)
        aip_webpages_error (self, page->serial,
                            "binary messages are not understood: send JSON text");
    else
        *req = s_request (self, page, page->rx, page->rx_size);
    page->rx_size = 0;
    page->rx_overflow = false;
    //  The buffer is kept only while a message is being assembled
    free (page->rx);
    page->rx = NULL;
    return *req ? 1 : 0;
}

int
aip_webpages_write (aip_webpages_t *self, aip_webpage_t *page)
{
    s_frame_t *frame = (s_frame_t *) zlistx_first (page->out);
    if (!frame && page->closing) {
        lws_close_reason (page->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                          (unsigned char *) "too many requests", 17);
        return -1;
    }
    if (!frame)
        return 0;
    zlistx_delete (page->out, zlistx_cursor (page->out));
    page->out_bytes -= frame->size;
    int n = lws_write (page->wsi, frame->data + LWS_PRE, frame->size, LWS_WRITE_TEXT);
    s_frame_unref (frame);
    if (n < 0)
        return -1;
    if (zlistx_size (page->out) || page->closing)
        lws_callback_on_writable (page->wsi);
    return 0;
}

char *
aip_webpage_take (aip_webpage_t *page)
{
    s_frame_t *frame = (s_frame_t *) zlistx_first (page->out);
    if (!frame)
        return NULL;
    char *text = (char *) malloc (frame->size + 1);
    assert (text);
    memcpy (text, frame->data + LWS_PRE, frame->size);
    text [frame->size] = 0;
    zlistx_delete (page->out, zlistx_cursor (page->out));
    page->out_bytes -= frame->size;
    s_frame_unref (frame);
    return text;
}

//  ---------------------------------------------------------------------
//  Self-test

//  The page's next frame in buf, or NULL
static const char *
s_test_next (aip_webpage_t *page, char *buf, size_t size)
{
    char *text = aip_webpage_take (page);
    if (!text)
        return NULL;
    snprintf (buf, size, "%s", text);
    free (text);
    return buf;
}

void
aip_webpages_test (bool verbose)
{
    printf (" * aip_webpages: ");
    char buf [2048];
    aip_webpages_t *pages = aip_webpages_new ();
    aip_webpage_t *one = aip_webpages_open (pages, NULL);
    aip_webpage_t *two = aip_webpages_open (pages, NULL);
    assert (aip_webpage_serial (one) != aip_webpage_serial (two));
    assert (aip_webpages_find (pages, aip_webpage_serial (two)) == two);
    assert (!aip_webpages_find (pages, 999));
    aip_webpage_set_room (one, "room-a");
    assert (aip_webpages_watched (pages, "room-a") && !aip_webpages_watched (pages, "room-b"));

    //  To one page, to a room's pages, to every page: one frame, shared
    aip_webpages_send (pages, aip_webpage_serial (two), json_pack ("{s:s}", "type", "hello"));
    assert (streq (s_test_next (two, buf, sizeof buf), "{\"type\":\"hello\"}"));
    assert (!s_test_next (one, buf, sizeof buf));
    aip_webpages_broadcast (pages, json_pack ("{s:i}", "n", 1), "room-a");
    assert (!s_test_next (two, buf, sizeof buf));
    aip_webpages_broadcast (pages, json_pack ("{s:i}", "n", 2), NULL);
    s_frame_t *shared = (s_frame_t *) zlistx_first (two->out);
    assert (shared && shared->refs == 2 && zlistx_last (one->out) == shared);
    assert (streq (s_test_next (one, buf, sizeof buf), "{\"n\":1}"));
    assert (streq (s_test_next (one, buf, sizeof buf), "{\"n\":2}"));
    assert (streq (s_test_next (two, buf, sizeof buf), "{\"n\":2}"));
    aip_webpages_send (pages, 999, json_pack ("{s:s}", "type", "lost"));   //  no such page
    aip_webpages_broadcast (pages, NULL, NULL);
    aip_webpages_error (pages, aip_webpage_serial (one), "room %s was not found", "r<1>");
    assert (streq (s_test_next (one, buf, sizeof buf),
                   "{\"type\":\"error\",\"message\":\"room r<1> was not found\"}"));

    //  Requests: pieces assembled, JSON objects with an op only
    json_t *req;
    assert (aip_webpages_receive (pages, one, "{\"op\":", 6, false, false, &req) == 0 && !req);
    assert (aip_webpages_receive (pages, one, "\"rooms\"}", 8, false, true, &req) == 1);
    assert (streq (json_string_value (json_object_get (req, "op")), "rooms"));
    json_decref (req);
    assert (!one->rx);          //  no buffer held between messages
    assert (aip_webpages_receive (pages, one, "[1]", 3, false, true, &req) == 0 && !req);
    assert (strstr (s_test_next (one, buf, sizeof buf), "a JSON object with an"));
    assert (aip_webpages_receive (pages, one, "{\"op\":1}", 8, false, true, &req) == 0);
    assert (strstr (s_test_next (one, buf, sizeof buf), "a JSON object with an"));
    assert (aip_webpages_receive (pages, one, "\"\xff\"", 3, false, true, &req) == 0);
    assert (strstr (s_test_next (one, buf, sizeof buf), "must be UTF-8"));
    assert (aip_webpages_receive (pages, one, "\x01\x02", 2, true, false, &req) == 0);
    assert (aip_webpages_receive (pages, one, "{}", 2, false, true, &req) == 0 && !req);
    assert (strstr (s_test_next (one, buf, sizeof buf), "binary messages are not understood"));
    //  Over AIP_WEB_MAX_FRAME: the page is closed
    char *big = (char *) calloc (1, AIP_WEB_MAX_FRAME + 1);
    assert (big);
    assert (aip_webpages_receive (pages, two, big, AIP_WEB_MAX_FRAME, false, false, &req) == 0);
    assert (aip_webpages_receive (pages, two, "x", 1, false, true, &req) == -1);
    free (big);

    //  The rate: a burst, then refused, told once a second, closed at
    //  FLOOD_CLOSE_AFTER refusals
    one->tokens = AIP_WEB_BURST;
    one->tokens_at = aip_clock_ms ();
    int allowed = 0;
    for (int i = 0; i < AIP_WEB_BURST * 2; i++)
        if (aip_webpages_receive (pages, one, "{\"op\":\"x\"}", 10, false, true, &req) == 1) {
            allowed++;
            json_decref (req);
        }
    assert (allowed >= AIP_WEB_BURST && allowed <= AIP_WEB_BURST + 2);
    assert (strstr (s_test_next (one, buf, sizeof buf), "too many requests"));
    assert (!s_test_next (one, buf, sizeof buf));
    for (int i = 0; i < FLOOD_CLOSE_AFTER && !one->closing; i++)
        if (aip_webpages_receive (pages, one, "{\"op\":\"x\"}", 10, false, true, &req) == 1)
            json_decref (req);      //  the bucket refilled meanwhile
    assert (one->closing);
    one->tokens = AIP_WEB_BURST;    //  closing: not heard, even within the rate
    assert (aip_webpages_receive (pages, one, "{\"op\":\"x\"}", 10, false, true, &req) == 0);
    one->tokens_at -= 1000;
    assert (s_rate_ok (one));

    //  A page that does not read is cut off at AIP_WEB_MAX_QUEUE bytes
    char *text = (char *) malloc (1024 * 1024);
    assert (text);
    memset (text, 'a', 1024 * 1024 - 1);
    text [1024 * 1024 - 1] = 0;
    for (int i = 0; i < 9 && !two->killed; i++)
        aip_webpages_send (pages, aip_webpage_serial (two), json_pack ("{s:s}", "t", text));
    free (text);
    assert (two->killed && two->out_bytes <= AIP_WEB_MAX_QUEUE);
    size_t waiting = two->out_bytes;
    aip_webpages_broadcast (pages, json_pack ("{s:i}", "n", 3), NULL);
    assert (two->out_bytes == waiting);

    aip_webpages_close (pages, &two);
    assert (!two && !aip_webpages_watched (pages, "room-b"));
    aip_webpages_close (pages, &two);
    aip_webpages_destroy (&pages);          //  closes the page left
    aip_webpages_destroy (&pages);
    assert (!pages);
    if (verbose)
        printf ("(queues, shared frames, requests, rate, flood, slow reader) ");
    printf ("OK\n");
}
