/*  aip_relay_hub.c — lan.fetch for the LAN rooms this machine hubs, held
    until something new is committed. lan.info, lan.join and lan.post are
    store operations (storaged/aip_hub.c).

    Every store call here is asynchronous: a fetch asks storaged's lan.read
    (the token check and the page after the cursor, one round trip; the
    token stays in storaged) and the loop goes on; the reply is taken by id
    when it comes. A held fetch that a commit wakes reads the page again
    with msg.list. */
#include "aip_relay_int.h"

//  A lan.fetch held by this hub until something new comes
typedef struct {
    uint64_t tag;                       //  the broker's tag
    uint64_t request_id;                //  the remote client's request id
    char room_id [AIP_MAX_ID + 1];
    int64_t after;                      //  its cursor
    int64_t limit;                      //  page size
    int64_t wait_ms;                    //  how long it may be held
    int64_t deadline;                   //  answer (empty) by then, once checked
    uint64_t reading;                   //  id of its store read in flight, or 0
    bool checked;                       //  lan.read let it in: it may be held
    bool woken;                         //  a commit came while it was read
} s_hubwait_t;

static void
s_hubwait_free (void **item)
{
    free (*item);
    *item = NULL;
}

//  Answer a fetch with messages (NULL or empty: the wait ran out)
static void
s_hub_fetch_answer (aip_relayd_t *self, uint64_t tag, uint64_t request_id,
                    const aip_obj_t *messages, int64_t after)
{
    size_t count = aip_obj_is_array (messages) ? aip_obj_size (messages) : 0;
    const aip_obj_t *last = count ? aip_obj_get (aip_obj_at (messages, count - 1), "seq") : NULL;
    aip_pack_reset (self->pk);
    aip_reply_ok_begin (self->pk, request_id);
    aip_pack_map (self->pk, 2);
    aip_pack_key (self->pk, "messages");
    if (count)
        aip_pack_obj (self->pk, messages);
    else
        aip_pack_array (self->pk, 0);
    aip_pack_kint (self->pk, "seq", aip_obj_is_int (last) ? aip_obj_int (last) : after);
    size_t size;
    const void *bytes = aip_pack_data (self->pk, &size);
    aip_worker_reply (self->worker, tag, bytes, size);
}

//  Ask storaged for w's page: lan.read with the caller's token the first
//  time, msg.list once it was let in. -1 when storaged cannot be reached.
static int
s_hub_read (aip_relayd_t *self, s_hubwait_t *w, const aip_request_t *req)
{
    aip_client_t *store = aip_relay_store (self);
    if (!store)
        return -1;
    uint64_t id;
    if (req) {
        id = aip_relay_store_begin (self, AIP_OP_LAN_READ, 4);
        aip_pack_kstr (self->pk, "room_id", w->room_id);
        aip_pack_key (self->pk, "token");
        aip_pack_obj (self->pk, aip_req_arg (req, "token"));
        aip_pack_kint (self->pk, "after", w->after);
        aip_pack_kint (self->pk, "limit", w->limit);
    }
    else {
        id = aip_relay_store_begin (self, AIP_OP_MSG_LIST, 3);
        aip_pack_kstr (self->pk, "room_id", w->room_id);
        aip_pack_kint (self->pk, "after_seq", w->after);
        aip_pack_kint (self->pk, "limit", w->limit);
    }
    char err [256];
    if (aip_client_begin (store, self->pk, id, AIP_RELAY_STORE_TIMEOUT_MS, err, sizeof err)) {
        zsys_warning ("relay: storaged: %s", err);
        return -1;
    }
    w->reading = id;
    w->woken = false;
    return 0;
}

void
aip_relay_hub_fetch (aip_relayd_t *self, uint64_t tag, const aip_request_t *req)
{
    if (zlistx_size (self->hub_waiters) >= HUB_MAX_HELD) {
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE, "this hub holds too many "
                       "waiting fetches: poll again later");
        return;
    }
    s_hubwait_t *w = (s_hubwait_t *) zmalloc (sizeof (s_hubwait_t));
    w->tag = tag;
    w->request_id = req->id;
    aip_obj_get_str (req->args, "room_id", w->room_id, sizeof w->room_id, "");
    w->after = aip_obj_get_int (req->args, "after", 0);
    int64_t limit = aip_obj_get_int (req->args, "limit", AIP_LAN_PAGE);
    w->limit = limit < 1 ? 1 : limit;
    w->wait_ms = aip_obj_get_int (req->args, "wait_ms", 0);
    if (s_hub_read (self, w, req)) {
        aip_relay_reply_error (self, tag, req->id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        free (w);
        return;
    }
    zlistx_add_end (self->hub_waiters, w);
}

//  w's read came back (rc 1, rep) or failed (rc -1). true when w is done
//  (answered), false while it is held.
static bool
s_hub_read_done (aip_relayd_t *self, s_hubwait_t *w, int rc, aip_reply_t *rep)
{
    w->reading = 0;
    if (rc == 1 && !rep->ok && !w->checked) {
        //  Not a LAN room of ours, a wrong token: storaged's word
        aip_relay_reply_error (self, w->tag, w->request_id, rep->code, rep->message);
        return true;
    }
    const aip_obj_t *messages = rc == 1 && rep->ok ? aip_obj_get (rep->data, "messages") : NULL;
    if (!w->checked && !aip_obj_is_array (messages)) {
        aip_relay_reply_error (self, w->tag, w->request_id, AIP_ERR_UNAVAILABLE,
                       "the hub's storage did not answer; retry");
        return true;
    }
    if (!w->checked) {
        w->checked = true;
        w->deadline = aip_clock_ms () + w->wait_ms;
    }
    //  A read that failed once the fetch was let in leaves it held, as a
    //  commit that found nothing does
    if (aip_obj_is_array (messages)
    &&  (aip_obj_size (messages) || aip_clock_ms () >= w->deadline)) {
        s_hub_fetch_answer (self, w->tag, w->request_id, messages, w->after);
        return true;
    }
    //  A commit while it was read may be after the page: read again
    if (w->woken)
        s_hub_read (self, w, NULL);
    return false;
}

//  Take the replies of the reads in flight that have come (or timed out)
void
aip_relay_hub_collect (aip_relayd_t *self)
{
    s_hubwait_t *w = (s_hubwait_t *) zlistx_first (self->hub_waiters);
    while (w) {
        if (w->reading) {
            aip_reply_t rep;
            char err [256];
            int rc = self->store ? aip_client_take (self->store, w->reading, &rep, err,
                                                    sizeof err) : -1;
            if (rc == -1)
                zsys_warning ("relay: a lan.fetch of room %s: storaged: %s", w->room_id,
                              self->store ? err : "not reachable");
            bool done = rc != 0 && s_hub_read_done (self, w, rc, &rep);
            if (rc == 1)
                aip_reply_free (&rep);
            if (done) {
                zlistx_delete (self->hub_waiters, zlistx_cursor (self->hub_waiters));
                w = (s_hubwait_t *) zlistx_first (self->hub_waiters);
                continue;
            }
        }
        w = (s_hubwait_t *) zlistx_next (self->hub_waiters);
    }
}

//  A message was committed in room_id: read again for the fetches held
//  for it (those being read now, once more when that read comes back)
void
aip_relay_hub_wake (aip_relayd_t *self, const char *room_id)
{
    for (s_hubwait_t *w = (s_hubwait_t *) zlistx_first (self->hub_waiters); w;
         w = (s_hubwait_t *) zlistx_next (self->hub_waiters)) {
        if (!streq (w->room_id, room_id))
            continue;
        if (w->reading)
            w->woken = true;
        else
            s_hub_read (self, w, NULL);
    }
}

void
aip_relay_hub_expire (aip_relayd_t *self)
{
    aip_relay_hub_collect (self);
    int64_t now = aip_clock_ms ();
    s_hubwait_t *w = (s_hubwait_t *) zlistx_first (self->hub_waiters);
    while (w) {
        if (w->checked && !w->reading && now >= w->deadline) {
            s_hub_fetch_answer (self, w->tag, w->request_id, NULL, w->after);
            zlistx_delete (self->hub_waiters, zlistx_cursor (self->hub_waiters));
            w = (s_hubwait_t *) zlistx_first (self->hub_waiters);
            continue;
        }
        w = (s_hubwait_t *) zlistx_next (self->hub_waiters);
    }
}

void
aip_relay_hub_start (aip_relayd_t *self)
{
    self->hub_waiters = zlistx_new ();
    zlistx_set_destructor (self->hub_waiters, s_hubwait_free);
}

void
aip_relay_hub_stop (aip_relayd_t *self)
{
    zlistx_destroy (&self->hub_waiters);
}
