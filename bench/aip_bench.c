/*  aip_bench — benchmark client linked with libaipeer.

    aip_bench ping
        one-shot request/reply (a ping to brokerd) and exit: the floor a CLI
        command is compared with (ZeroMQ context, one socket, one round trip)
    aip_bench send --room R [--clients C] [--messages N] [--window W]
        C connected clients each send N messages (msg.send, acknowledged
        after commit), keeping W requests in flight; prints messages/s
    Uses $AI_PEERS_HOME like the CLI; the daemons must be running. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    fprintf (stderr, "usage: aip_bench ping | send --room R [--clients C] [--messages N] [--window W]\n");
    return 1;
}
