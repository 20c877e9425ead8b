/*  aip_bench — benchmark client linked with libaipeer.

    aip_bench ping
        one-shot request/reply (a ping to brokerd) and exit: the floor a CLI
        command is compared with (ZeroMQ context, one socket, one round trip)
    aip_bench send --room R [--clients C] [--messages N] [--window W]
        C connected clients each send N messages (msg.send, acknowledged
        after commit), keeping W requests in flight; prints messages/s
    aip_bench push --room R [--count N]
        latency from sending a message to its event on a subscription
    Uses $AI_PEERS_HOME like the CLI; the daemons must be running. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "aip_client.h"
#include "aip_home.h"
#include "aip_proto.h"
#include "aip_util.h"

typedef struct {
    const char *home;           //  $AI_PEERS_HOME
    const char *room;           //  room to send into
    int messages;               //  per client
    int window;                 //  requests in flight
    int index;                  //  client number
    int acked;                  //  result: messages acknowledged ok
    int failed;                 //  result: error replies
    char err [512];             //  result: transport error
} s_sender_t;

static void *
s_sender (void *arg)
{
    s_sender_t *s = (s_sender_t *) arg;
    aip_client_t *client = aip_client_new (s->home, false, s->err, sizeof s->err);
    if (!client)
        return NULL;
    aip_pack_t *pk = aip_pack_new ();
    char peer_id [64], content [128];
    snprintf (peer_id, sizeof peer_id, "bench-client-%d", s->index);
    int sent = 0, inflight = 0;
    //  Replies come back in order per connection: wait for the oldest
    uint64_t *ids = (uint64_t *) calloc ((size_t) s->messages, sizeof (uint64_t));
    int oldest = 0;
    while (s->acked + s->failed < s->messages) {
        while (sent < s->messages && inflight < s->window) {
            char msg_id [AIP_MSG_ID_LEN + 1];
            aip_msg_id_new (msg_id);
            snprintf (content, sizeof content, "benchmark message %d from client %d", sent, s->index);
            aip_pack_reset (pk);
            ids [sent] = aip_client_next_id (client);
            aip_request_begin (pk, ids [sent], AIP_OP_MSG_SEND, 4);
            aip_pack_kstr (pk, "room_id", s->room);
            aip_pack_kstr (pk, "id", msg_id);
            aip_pack_kstr (pk, "content", content);
            aip_pack_key (pk, "peer");
            aip_pack_map (pk, 4);
            aip_pack_kstr (pk, "id", peer_id);
            aip_pack_kstr (pk, "name", peer_id);
            aip_pack_kstr (pk, "type", "ai");
            aip_pack_kstr (pk, "tool", "bench");
            if (aip_client_send (client, pk, s->err, sizeof s->err))
                goto done;
            sent++;
            inflight++;
        }
        aip_reply_t rep;
        bool died;
        if (aip_client_recv (client, ids [oldest], 30000, &rep, &died, s->err, sizeof s->err))
            goto done;
        if (rep.ok)
            s->acked++;
        else {
            s->failed++;
            snprintf (s->err, sizeof s->err, "%s", rep.message);
        }
        aip_reply_free (&rep);
        oldest++;
        inflight--;
    }
done:
    free (ids);
    aip_pack_destroy (&pk);
    aip_client_destroy (&client);
    return NULL;
}

static int
s_send (const char *home, int argc, char **argv)
{
    const char *room = NULL;
    int clients = 1, messages = 10000, window = 64;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp (argv [i], "--room"))
            room = argv [i + 1];
        else
        if (!strcmp (argv [i], "--clients"))
            clients = atoi (argv [i + 1]);
        else
        if (!strcmp (argv [i], "--messages"))
            messages = atoi (argv [i + 1]);
        else
        if (!strcmp (argv [i], "--window"))
            window = atoi (argv [i + 1]);
    }
    if (!room || clients < 1 || clients > 64 || messages < 1 || window < 1) {
        fprintf (stderr, "usage: aip_bench send --room R [--clients C] [--messages N] [--window W]\n");
        return 1;
    }
    s_sender_t *senders = (s_sender_t *) calloc ((size_t) clients, sizeof (s_sender_t));
    pthread_t *threads = (pthread_t *) calloc ((size_t) clients, sizeof (pthread_t));
    int64_t start = aip_clock_ms ();
    for (int i = 0; i < clients; i++) {
        senders [i] = (s_sender_t) { home, room, messages, window, i, 0, 0, "" };
        pthread_create (&threads [i], NULL, s_sender, &senders [i]);
    }
    int acked = 0, failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join (threads [i], NULL);
        acked += senders [i].acked;
        failed += senders [i].failed;
        if (*senders [i].err)
            fprintf (stderr, "client %d: %s\n", i, senders [i].err);
    }
    double seconds = (double) (aip_clock_ms () - start) / 1000.0;
    printf ("clients=%d messages=%d acked=%d failed=%d seconds=%.3f rate=%.0f msg/s\n",
            clients, clients * messages, acked, failed, seconds, acked / seconds);
    free (senders);
    free (threads);
    return failed || acked != clients * messages;
}

static int
s_compare_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

//  Push latency: from sending a message to its event arriving on a
//  subscription (what interactive mode and relayd see)
static int
s_push (const char *home, int argc, char **argv)
{
    const char *room = NULL;
    int count = 200;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp (argv [i], "--room"))
            room = argv [i + 1];
        else
        if (!strcmp (argv [i], "--count"))
            count = atoi (argv [i + 1]);
    }
    if (!room || count < 1 || count > 100000) {
        fprintf (stderr, "usage: aip_bench push --room R [--count N]\n");
        return 1;
    }
    char err [512], endpoint [AIP_PATH_MAX], topic [128];
    aip_client_t *client = aip_client_new (home, false, err, sizeof err);
    if (!client || aip_home_endpoint (home, "events", endpoint, sizeof endpoint, err, sizeof err)) {
        fprintf (stderr, "aip_bench: %s\n", err);
        return 1;
    }
    void *ctx = zmq_ctx_new ();
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    snprintf (topic, sizeof topic, "room.%s", room);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, topic, strlen (topic));
    zmq_connect (sub, endpoint);
    aip_pack_t *pk = aip_pack_new ();
    int64_t *latency_us = (int64_t *) calloc ((size_t) count, sizeof (int64_t));
    int done = 0;
    for (int i = -20; i < count; i++) {       //  20 warm-up rounds, also for the subscription
        char msg_id [AIP_MSG_ID_LEN + 1];
        aip_msg_id_new (msg_id);
        aip_pack_reset (pk);
        uint64_t id = aip_client_next_id (client);
        aip_request_begin (pk, id, AIP_OP_MSG_SEND, 4);
        aip_pack_kstr (pk, "room_id", room);
        aip_pack_kstr (pk, "id", msg_id);
        aip_pack_kstr (pk, "content", "push latency probe");
        aip_pack_key (pk, "peer");
        aip_pack_map (pk, 3);
        aip_pack_kstr (pk, "id", "bench-push");
        aip_pack_kstr (pk, "name", "bench");
        aip_pack_kstr (pk, "type", "ai");
        struct timespec t0, t1;
        clock_gettime (CLOCK_MONOTONIC, &t0);
        if (aip_client_send (client, pk, err, sizeof err))
            break;
        bool got = false;
        while (!got) {
            zmq_pollitem_t item = { sub, 0, ZMQ_POLLIN, 0 };
            if (zmq_poll (&item, 1, 2000) <= 0)
                break;
            zmq_msg_t frame;
            zmq_msg_init (&frame);
            zmq_msg_recv (&frame, sub, 0);
            bool more = zmq_msg_more (&frame);
            zmq_msg_close (&frame);
            if (!more)
                continue;
            zmq_msg_init (&frame);
            zmq_msg_recv (&frame, sub, 0);
            got = memmem (zmq_msg_data (&frame), zmq_msg_size (&frame), msg_id, strlen (msg_id)) != NULL;
            zmq_msg_close (&frame);
        }
        clock_gettime (CLOCK_MONOTONIC, &t1);
        aip_reply_t rep;
        bool died;
        if (aip_client_recv (client, id, 5000, &rep, &died, err, sizeof err) == 0)
            aip_reply_free (&rep);
        if (got && i >= 0)
            latency_us [done++] = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    }
    qsort (latency_us, (size_t) done, sizeof (int64_t), s_compare_i64);
    if (done)
        printf ("push: %d events, median %.2f ms, p95 %.2f ms (send -> event on a subscription)\n",
                done, latency_us [done / 2] / 1000.0, latency_us [done * 95 / 100] / 1000.0);
    free (latency_us);
    aip_pack_destroy (&pk);
    zmq_close (sub);
    zmq_ctx_term (ctx);
    aip_client_destroy (&client);
    return done == count ? 0 : 1;
}

static int
s_ping (const char *home)
{
    char err [512];
    aip_client_t *client = aip_client_new (home, false, err, sizeof err);
    if (!client) {
        fprintf (stderr, "aip_bench: %s\n", err);
        return 1;
    }
    aip_pack_t *pk = aip_pack_new ();
    uint64_t id = aip_client_next_id (client);
    aip_request_begin (pk, id, AIP_OP_PING, 0);
    aip_reply_t rep;
    int rc = aip_client_call (client, pk, id, 5000, &rep, err, sizeof err);
    if (rc == 0)
        aip_reply_free (&rep);
    else
        fprintf (stderr, "aip_bench: %s\n", err);
    aip_pack_destroy (&pk);
    aip_client_destroy (&client);
    return rc ? 1 : 0;
}

int
main (int argc, char **argv)
{
    char home [AIP_PATH_MAX], err [512];
    if (aip_home_resolve (home, sizeof home, err, sizeof err)) {
        fprintf (stderr, "aip_bench: %s\n", err);
        return 1;
    }
    if (argc >= 2 && !strcmp (argv [1], "ping"))
        return s_ping (home);
    if (argc >= 2 && !strcmp (argv [1], "send"))
        return s_send (home, argc - 2, argv + 2);
    if (argc >= 2 && !strcmp (argv [1], "push"))
        return s_push (home, argc - 2, argv + 2);
    fprintf (stderr, "usage: aip_bench ping | send --room R [--clients C] [--messages N] [--window W]\n");
    return 1;
}
