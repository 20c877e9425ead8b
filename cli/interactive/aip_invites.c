/*  aip_invites.c — background `ai-peer invite` processes of chat -i (see
    aip_invites.h). */
#include "aip_invites.h"
#include "aip_home.h"
#include "aip_limits.h"
#include "aip_util.h"

#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

_Static_assert (AIP_SCREEN_MAX_LIVE >= AIP_INVITES_MAX + 8,
                "the screen has a block for each invite of ours and some of others'");

//  An invite running in the background
typedef struct {
    pid_t pid;                      //  the ai-peer invite process, 0: a free slot
    char tool [AIP_MAX_NAME + 1];   //  who is thinking
    int64_t started;                //  since when
    int64_t progress_shown;         //  last progress line about it
} s_pending_t;

struct _aip_invites_t {
    const char *exe_dir;            //  where ai-peer lives (borrowed)
    const char *room_id;            //  the room (borrowed)
    aip_screen_t *screen;           //  where it is said (borrowed)
    bool tty;                       //  the screen draws progress in place
    s_pending_t pending [AIP_INVITES_MAX];  //  invites running
};

aip_invites_t *
aip_invites_new (const char *exe_dir, const char *room_id, aip_screen_t *screen, bool tty)
{
    aip_invites_t *self = (aip_invites_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->exe_dir = exe_dir;
    self->room_id = room_id;
    self->screen = screen;
    self->tty = tty;
    return self;
}

void
aip_invites_destroy (aip_invites_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

void
aip_invites_start (aip_invites_t *self, const char *tool, const char *context)
{
    int slot = -1;
    for (int i = 0; i < AIP_INVITES_MAX; i++)
        if (!self->pending [i].pid)
            slot = i;
    if (slot < 0) {
        aip_screen_print (self->screen, "  ! too many invites running: /cancel some first");
        return;
    }
    char exe [AIP_PATH_MAX + 16];
    snprintf (exe, sizeof exe, "%s/ai-peer", self->exe_dir);
    pid_t pid = fork ();
    if (pid == 0) {
        //  The answer arrives as a room event; the JSON result is not needed
        int devnull = open ("/dev/null", O_RDWR);
        dup2 (devnull, 0);
        dup2 (devnull, 1);
        dup2 (devnull, 2);
        setpgid (0, 0);
        const char *argv [] = { exe, "invite", "--tool", tool, "--room", self->room_id,
                                "--context", context, NULL };
        execv (exe, (char *const *) argv);
        _exit (127);
    }
    if (pid < 0) {
        aip_screen_print (self->screen, "  ! cannot start the invite");
        return;
    }
    self->pending [slot].pid = pid;
    snprintf (self->pending [slot].tool, sizeof self->pending [slot].tool, "%s", tool);
    self->pending [slot].started = aip_clock_ms ();
    if (self->tty) {
        aip_screen_live_start (self->screen, tool, pid);
        return;
    }
    char line [300];
    snprintf (line, sizeof line, "  ⏳ %s is thinking…", tool);
    aip_screen_print (self->screen, line);
}

int
aip_invites_cancel_all (aip_invites_t *self)
{
    int cancelled = 0;
    for (int i = 0; i < AIP_INVITES_MAX; i++)
        if (self->pending [i].pid) {
            kill (-self->pending [i].pid, SIGTERM);
            kill (self->pending [i].pid, SIGTERM);
            cancelled++;
        }
    if (cancelled) {
        char line [64];
        snprintf (line, sizeof line, "  ✗ cancelled %d invite(s)", cancelled);
        aip_screen_print (self->screen, line);
    }
    return cancelled;
}

void
aip_invites_reap (aip_invites_t *self)
{
    for (int i = 0; i < AIP_INVITES_MAX; i++) {
        s_pending_t *p = &self->pending [i];
        int status;
        if (!p->pid || waitpid (p->pid, &status, WNOHANG) != p->pid)
            continue;
        aip_screen_live_exited (self->screen, p->pid,
                                WIFEXITED (status) && WEXITSTATUS (status) == 0);
        if (!(WIFEXITED (status) && WEXITSTATUS (status) == 0)) {
            char line [400];
            snprintf (line, sizeof line, "  ✗ %s did not answer (see the room for "
                      "its [spawn error], or run 'ai-peer invite --tool %s --room %s')",
                      p->tool, p->tool, self->room_id);
            aip_screen_print (self->screen, line);
        }
        p->pid = 0;
    }
}

bool
aip_invites_any (aip_invites_t *self)
{
    for (int i = 0; i < AIP_INVITES_MAX; i++)
        if (self->pending [i].pid)
            return true;
    return false;
}

void
aip_invites_status (aip_invites_t *self)
{
    char status [512] = "  …";
    for (int i = 0; i < AIP_INVITES_MAX; i++)
        if (self->pending [i].pid)
            snprintf (status + strlen (status), sizeof status - strlen (status),
                      " %s (%llds)", self->pending [i].tool,
                      (long long) ((aip_clock_ms () - self->pending [i].started) / 1000));
    snprintf (status + strlen (status), sizeof status - strlen (status), " thinking");
    aip_screen_print (self->screen, status);
}

void
aip_invites_progress (aip_invites_t *self, const aip_obj_t *data)
{
    char tool [AIP_MAX_NAME + 1];
    aip_obj_get_str (data, "tool", tool, sizeof tool, "");
    for (int i = 0; i < AIP_INVITES_MAX; i++) {
        s_pending_t *p = &self->pending [i];
        if (!p->pid || strcmp (p->tool, tool) != 0 || aip_clock_ms () - p->progress_shown < 3000)
            continue;
        p->progress_shown = aip_clock_ms ();
        char line [400];
        snprintf (line, sizeof line, "  … %s is writing (%lld bytes, %lld s)", tool,
                  (long long) aip_obj_get_int (data, "bytes", 0),
                  (long long) aip_obj_get_int (data, "elapsed_ms", 0) / 1000);
        aip_screen_print (self->screen, line);
        break;
    }
}

//  ---------------------------------------------------------------------
//  Self-test

//  Reap until no invite runs (a deadline, polling)
static void
s_test_reap_all (aip_invites_t *self)
{
    int64_t deadline = aip_clock_ms () + 10000;
    while (aip_invites_any (self) && aip_clock_ms () < deadline) {
        aip_invites_reap (self);
        struct timespec tick = { 0, 10 * 1000 * 1000 };
        nanosleep (&tick, NULL);
    }
    assert (!aip_invites_any (self));
}

void
aip_invites_test (bool verbose)
{
    printf (" * aip_invites: ");
    //  A stand-in ai-peer: its --tool says how the invite ends
    char dir [] = "/tmp/aip_invites_test_XXXXXX";
    assert (mkdtemp (dir));
    char path [AIP_PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/ai-peer", dir);
    FILE *script = fopen (path, "w");
    assert (script);
    fprintf (script, "#!/bin/sh\ncase \"$3\" in ok) exit 0;; slow) exec sleep 30;; "
                     "*) exit 1;; esac\n");
    fclose (script);
    assert (chmod (path, 0755) == 0);

    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&buf, &size);
    aip_screen_t *screen = aip_screen_new (out, false, false, NULL, NULL);
    aip_invites_t *invites = aip_invites_new (dir, "room1", screen, false);
    assert (invites && !aip_invites_any (invites));
    //  One answers, one fails: only the failure is reported, in words
    aip_invites_start (invites, "ok", "hello");
    aip_invites_start (invites, "bad", "hello");
    assert (aip_invites_any (invites));
    s_test_reap_all (invites);
    fflush (out);
    assert (strstr (buf, "  \xe2\x8f\xb3 ok is thinking\xe2\x80\xa6\n"));
    assert (strstr (buf, "  \xe2\x9c\x97 bad did not answer (see the room for its [spawn "
                         "error], or run 'ai-peer invite --tool bad --room room1')\n"));
    assert (!strstr (buf, "ok did not answer"));
    //  Running ones are named with their time; at most AIP_INVITES_MAX
    //  run at once, and /cancel stops them all
    for (int i = 0; i < AIP_INVITES_MAX; i++)
        aip_invites_start (invites, "slow", "hello");
    fflush (out);
    size_t mark = size;
    aip_invites_start (invites, "slow", "hello");
    aip_invites_status (invites);
    fflush (out);
    assert (strstr (buf + mark, "  ! too many invites running: /cancel some first\n"));
    assert (strstr (buf + mark, "  \xe2\x80\xa6 slow (0s) slow (0s)"));
    assert (aip_invites_cancel_all (invites) == AIP_INVITES_MAX);
    s_test_reap_all (invites);
    fflush (out);
    assert (strstr (buf + mark, "  \xe2\x9c\x97 cancelled 16 invite(s)\n"));
    assert (aip_invites_cancel_all (invites) == 0);

    aip_invites_destroy (&invites);
    aip_invites_destroy (&invites);
    assert (!invites);
    aip_screen_destroy (&screen);
    fclose (out);
    free (buf);
    snprintf (path, sizeof path, "rm -rf %s", dir);
    assert (system (path) == 0);
    printf ("OK\n");
}
