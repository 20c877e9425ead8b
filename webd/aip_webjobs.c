/*  aip_webjobs.c — the commands webd runs for the pages. See
    aip_webjobs.h. */
#include "aip_webjobs.h"
#include "aip_home.h"
#include "aip_limits.h"
#include "aip_webjob.h"

#include <czmq.h>
#include <poll.h>

//  What a kind of command shows when it ends
typedef struct {
    const char *kind;           //  "invite", "quick", ...
    bool shows_room;            //  the page is given the room it made or used
    bool lists_rooms;           //  it made or joined a room: the lists change
    bool exports;               //  its output is a file for the page
} s_kind_t;

static const s_kind_t s_kinds [] = {
    { "invite",  false, false, false },
    { "quick",   true,  true,  false },
    { "discuss", true,  false, false },
    { "join",    false, true,  false },
    { "create",  true,  true,  false },
    { "export",  false, false, true },
};

struct _aip_webjobs_run_t {
    aip_webjob_t *job;          //  the child, or NULL when the slot is free
    const s_kind_t *kind;       //  its row
    uint64_t serial;            //  the page that asked
    char id [24];               //  "job-N", the page's handle
    char what [200];            //  "codex in room-…", for the page
    char room [AIP_MAX_ID + 1]; //  its room, when it has one
    char format [8];            //  export: md or json
    bool output_done;           //  its stdout ended
};

struct _aip_webjobs_t {
    char home [AIP_PATH_MAX];   //  $AI_PEERS_HOME of the commands
    aip_webpages_t *pages;      //  who hears of them (borrowed)
    aip_webjobs_run_t runs [AIP_WEB_MAX_JOBS];  //  the commands running
    uint64_t next_id;           //  ids of jobs
};

aip_webjobs_t *
aip_webjobs_new (const char *home, aip_webpages_t *pages)
{
    aip_webjobs_t *self = (aip_webjobs_t *) zmalloc (sizeof (aip_webjobs_t));
    snprintf (self->home, sizeof self->home, "%s", home);
    self->pages = pages;
    return self;
}

void
aip_webjobs_destroy (aip_webjobs_t **self_p)
{
    aip_webjobs_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < AIP_WEB_MAX_JOBS; i++)
        aip_webjob_destroy (&self->runs [i].job);
    free (self);
    *self_p = NULL;
}

static const s_kind_t *
s_kind (const char *kind)
{
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds [0]; i++)
        if (streq (s_kinds [i].kind, kind))
            return &s_kinds [i];
    return NULL;
}

aip_webjobs_run_t *
aip_webjobs_start (aip_webjobs_t *self, uint64_t serial, const char *kind, const char *what,
                   const char *room, const char *format, const char *const *argv,
                   const char *password)
{
    const s_kind_t *row = s_kind (kind);
    assert (row);               //  the caller's table and ours agree
    aip_webjobs_run_t *run = NULL;
    for (int i = 0; i < AIP_WEB_MAX_JOBS && !run; i++)
        if (!self->runs [i].job)
            run = &self->runs [i];
    if (!run) {
        aip_webpages_error (self->pages, serial,
                            "%d commands are running already: wait for one to end",
                            AIP_WEB_MAX_JOBS);
        return NULL;
    }
    //  argv may end early (optional arguments given as NULL)
    char err [512];
    aip_webjob_t *job = aip_webjob_new (argv, self->home, password, err, sizeof err);
    if (!job) {
        aip_webpages_error (self->pages, serial, "%s", err);
        return NULL;
    }
    memset (run, 0, sizeof *run);
    run->job = job;
    run->kind = row;
    run->serial = serial;
    snprintf (run->id, sizeof run->id, "job-%" PRIu64, ++self->next_id);
    snprintf (run->what, sizeof run->what, "%s", what);
    snprintf (run->room, sizeof run->room, "%s", room ? room : "");
    snprintf (run->format, sizeof run->format, "%s", format ? format : "");
    zsys_info ("webd: %s (%s) started, pid %d", run->id, run->what, (int) aip_webjob_pid (job));
    json_t *doc = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "type", "job", "id", run->id,
                             "kind", kind, "state", "running", "what", what);
    if (doc && room)
        json_object_set_new (doc, "room", json_string (room));
    aip_webpages_send (self->pages, serial, doc);
    return run;
}

int
aip_webjobs_fd (aip_webjobs_run_t *run)
{
    return aip_webjob_fd (run->job);
}

int
aip_webjobs_read (aip_webjobs_run_t *run, int fd)
{
    return aip_webjob_read (run->job, fd) != 0 ? -1 : 0;
}

void
aip_webjobs_output_done (aip_webjobs_run_t *run)
{
    run->output_done = true;
}

//  A finished command: tell the page how it went
static void
s_done (aip_webjobs_t *self, aip_webjobs_run_t *run, int status, bool *rooms_changed)
{
    size_t len;
    const char *output = aip_webjob_output (run->job, &len);
    json_t *doc = json_loadb (output, len, 0, NULL);
    bool ok = json_is_true (json_object_get (doc, "ok")) && status == 0;
    json_t *data = json_object_get (doc, "data");
    const char *error = json_string_value (json_object_get (doc, "error"));
    zsys_info ("webd: %s (%s) %s", run->id, run->what, ok ? "done" : "failed");
    json_t *reply = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "type", "job", "id", run->id,
                               "kind", run->kind->kind, "state", ok ? "done" : "failed",
                               "what", run->what);
    if (!ok)
        json_object_set_new (reply, "error", json_string (error ? error
                             : status == 127 ? "cannot run ai-peer next to webd"
                             : "the command failed without saying why"));
    //  The room the command made or joined, for the page to open
    const char *room = json_string_value (json_object_get (data, "room"));
    if (!room)
        room = json_string_value (json_object_get (data, "id"));
    if (ok && run->kind->shows_room && room)
        json_object_set_new (reply, "room", json_string (room));
    if (ok && run->kind->exports) {
        //  md: the Markdown text; json: the document itself
        json_t *markdown = json_object_get (data, "markdown");
        char *content = streq (run->format, "md")
                      ? (json_is_string (markdown) ? strdup (json_string_value (markdown)) : NULL)
                      : json_dumps (data, JSON_INDENT (2));
        char filename [AIP_MAX_ID + 16];
        snprintf (filename, sizeof filename, "%s.%s", run->room, run->format);
        aip_webpages_send (self->pages, run->serial,
                           json_pack ("{s:s, s:s, s:s, s:s, s:s}", "type", "export", "room",
                                      run->room, "format", run->format, "filename", filename,
                                      "content", content ? content : ""));
        free (content);
    }
    aip_webpages_send (self->pages, run->serial, reply);
    json_decref (doc);
    if (ok && run->kind->lists_rooms)
        *rooms_changed = true;
    aip_webjob_destroy (&run->job);
    memset (run, 0, sizeof *run);
}

bool
aip_webjobs_reap (aip_webjobs_t *self, bool *rooms_changed)
{
    *rooms_changed = false;
    bool running = false;
    for (int i = 0; i < AIP_WEB_MAX_JOBS; i++) {
        aip_webjobs_run_t *run = &self->runs [i];
        int status;
        if (!run->job)
            continue;
        if (run->output_done && aip_webjob_reap (run->job, &status))
            s_done (self, run, status, rooms_changed);
        else
            running = true;
    }
    return running;
}

//  ---------------------------------------------------------------------
//  Self-test


//  Read run's output to its end, then reap it (a poll with a deadline)
static bool
s_test_finish (aip_webjobs_t *self, aip_webjobs_run_t *run)
{
    int fd = aip_webjobs_fd (run);
    int64_t deadline = zclock_mono () + 10000;
    while (zclock_mono () < deadline) {
        struct pollfd item = { fd, POLLIN, 0 };
        if (poll (&item, 1, 100) > 0 && aip_webjobs_read (run, fd) != 0)
            break;
    }
    close (fd);
    aip_webjobs_output_done (run);
    bool rooms_changed = false;
    while (aip_webjobs_reap (self, &rooms_changed) && zclock_mono () < deadline)
        poll (NULL, 0, 5);
    return rooms_changed;
}

//  The page's next frame, parsed
static json_t *
s_test_frame (aip_webpage_t *page)
{
    char *text = aip_webpage_take (page);
    json_t *doc = text ? json_loads (text, 0, NULL) : NULL;
    free (text);
    assert (doc);
    return doc;
}

static const char *
s_test_get (json_t *doc, const char *key)
{
    return json_string_value (json_object_get (doc, key));
}

void
aip_webjobs_test (bool verbose)
{
    printf (" * aip_webjobs: ");
    aip_webpages_t *pages = aip_webpages_new ();
    aip_webpage_t *page = aip_webpages_open (pages, NULL);
    uint64_t serial = aip_webpage_serial (page);
    aip_webjobs_t *jobs = aip_webjobs_new ("/tmp/home", pages);

    //  A new room: running, then done with the room to open; lists change
    const char *create [] = { "/bin/sh", "-c",
                              "printf '{\"ok\":true,\"data\":{\"id\":\"room-new\"}}'", NULL };
    aip_webjobs_run_t *run = aip_webjobs_start (jobs, serial, "create", "creating a room",
                                                NULL, NULL, create, NULL);
    assert (run);
    json_t *frame = s_test_frame (page);
    assert (streq (s_test_get (frame, "type"), "job") && streq (s_test_get (frame, "state"),
                                                                "running"));
    char id [24];
    snprintf (id, sizeof id, "%s", s_test_get (frame, "id"));
    json_decref (frame);
    assert (s_test_finish (jobs, run));
    frame = s_test_frame (page);
    assert (streq (s_test_get (frame, "state"), "done") && streq (s_test_get (frame, "id"), id));
    assert (streq (s_test_get (frame, "room"), "room-new"));
    json_decref (frame);

    //  An export: the file, then done; an invite that fails says why
    const char *export [] = { "/bin/sh", "-c",
                              "printf '{\"ok\":true,\"data\":{\"markdown\":\"# hi\"}}'", NULL };
    run = aip_webjobs_start (jobs, serial, "export", "export", "room-a", "md", export, NULL);
    json_decref (s_test_frame (page));
    assert (!s_test_finish (jobs, run));
    frame = s_test_frame (page);
    assert (streq (s_test_get (frame, "type"), "export"));
    assert (streq (s_test_get (frame, "filename"), "room-a.md"));
    assert (streq (s_test_get (frame, "content"), "# hi"));
    json_decref (frame);
    frame = s_test_frame (page);
    assert (streq (s_test_get (frame, "state"), "done") && !json_object_get (frame, "room"));
    json_decref (frame);
    const char *fails [] = { "/bin/sh", "-c",
                             "printf '{\"ok\":false,\"error\":\"no such tool\"}'; exit 1", NULL };
    run = aip_webjobs_start (jobs, serial, "invite", "x in room-a", "room-a", NULL, fails, NULL);
    frame = s_test_frame (page);
    assert (streq (s_test_get (frame, "room"), "room-a"));
    json_decref (frame);
    assert (!s_test_finish (jobs, run));
    frame = s_test_frame (page);
    assert (streq (s_test_get (frame, "state"), "failed"));
    assert (streq (s_test_get (frame, "error"), "no such tool"));
    json_decref (frame);
    const char *missing [] = { "/nonexistent/ai-peer", NULL };
    run = aip_webjobs_start (jobs, serial, "join", "joining a room", NULL, NULL, missing, NULL);
    json_decref (s_test_frame (page));
    assert (!s_test_finish (jobs, run));
    frame = s_test_frame (page);
    assert (streq (s_test_get (frame, "error"), "cannot run ai-peer next to webd"));
    json_decref (frame);

    //  At most AIP_WEB_MAX_JOBS at once; destroy kills what still runs
    const char *slow [] = { "/bin/sh", "-c", "exec sleep 30", NULL };
    for (int i = 0; i < AIP_WEB_MAX_JOBS; i++) {
        assert (aip_webjobs_start (jobs, serial, "quick", "quick", NULL, NULL, slow, NULL));
        json_decref (s_test_frame (page));
    }
    assert (!aip_webjobs_start (jobs, serial, "quick", "quick", NULL, NULL, slow, NULL));
    frame = s_test_frame (page);
    assert (strstr (s_test_get (frame, "message"), "commands are running already"));
    json_decref (frame);
    bool rooms_changed;
    assert (aip_webjobs_reap (jobs, &rooms_changed) && !rooms_changed);
    for (int i = 0; i < AIP_WEB_MAX_JOBS; i++)
        close (aip_webjobs_fd (&jobs->runs [i]));
    aip_webjobs_destroy (&jobs);
    aip_webjobs_destroy (&jobs);
    assert (!jobs);
    aip_webpages_destroy (&pages);
    if (verbose)
        printf ("(running, done, export, failed, cannot run, the limit) ");
    printf ("OK\n");
}
