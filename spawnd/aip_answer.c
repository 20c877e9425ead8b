/*  aip_answer.c — a finished tool run: its answer, or why there is none
    (see aip_answer.h). */
#include "aip_answer.h"

#include "aip_limits.h"
#include "aip_util.h"

#include <assert.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
aip_answer_trim (char *answer, size_t *len)
{
    size_t start = 0;
    for (size_t i = 0; i < *len; i++) {
        if (answer [i] == '\n')
            start = i + 1;
        else
        if (answer [i] != ' ' && answer [i] != '\t' && answer [i] != '\r')
            break;
    }
    size_t end = *len;
    while (end > start && isspace ((unsigned char) answer [end - 1]))
        end--;
    memmove (answer, answer + start, end - start);
    *len = end - start;
    answer [*len] = 0;
}

//  Cut an answer past the content limit visibly, on a character boundary
//  (total: the bytes the tool printed, when more than the answer)
static void
s_cap_answer (char **answer_p, size_t *len_p, size_t total)
{
    char *answer = *answer_p;
    size_t len = *len_p;
    const size_t room = AIP_MAX_CONTENT - 256;
    if (len > room || total > len) {
        size_t cut = aip_utf8_cut (answer, len, room);
        char marker [200];
        snprintf (marker, sizeof marker, "\n\n[... answer cut by ai-peer: %zu bytes in all, "
                  "the limit is %d]", total > len ? total : len, AIP_MAX_CONTENT - 256);
        answer = (char *) realloc (answer, cut + strlen (marker) + 1);
        memcpy (answer + cut, marker, strlen (marker) + 1);
        len = cut + strlen (marker);
    }
    *answer_p = answer;
    *len_p = len;
}

//  A run that timed out, was cancelled or was killed by a signal (unless
//  the tool's final event came first): the error set, true
static bool
s_proc_failed (const aip_tool_t *tool, aip_proc_t *proc, int timeout_s, bool finished,
               aip_answer_error_t *error)
{
    size_t err_len;
    const char *errtext = aip_proc_stderr (proc, &err_len);
    char words [AIP_TOOL_ERROR_BYTES + 8];
    if (!finished && aip_proc_timed_out (proc)) {
        aip_tool_words (errtext, err_len, words, sizeof words);
        snprintf (error->message, sizeof error->message, "%s timed out after %d s (its "
                  "processes were killed)%s%s", tool->name, timeout_s, *words ? ": " : "", words);
        return true;
    }
    if (aip_proc_cancelled (proc)) {
        snprintf (error->code, sizeof error->code, "cancelled");
        snprintf (error->message, sizeof error->message, "%s was cancelled", tool->name);
        return true;
    }
    if (!finished && !aip_proc_exited (proc)) {
        int sig = aip_proc_exit_code (proc);
        aip_tool_words (errtext, err_len, words, sizeof words);
        snprintf (error->message, sizeof error->message, "%s crashed (killed by signal %d, "
                  "%s)%s%s", tool->name, sig, strsignal (sig), *words ? ": " : "", words);
        return true;
    }
    return false;
}

//  The tool has no working login: its words and how to log in
static void
s_not_logged_in (const aip_tool_t *tool, const char *words, aip_answer_error_t *error)
{
    snprintf (error->message, sizeof error->message, "%s is not logged in: %s%s%s",
              tool->name, *words ? words : "authentication failed",
              tool->login_hint ? " — " : "", tool->login_hint ? tool->login_hint : "");
}

int
aip_answer_text (const aip_tool_t *tool, aip_proc_t *proc, int timeout_s, char **answer_p,
            size_t *answer_len, json_t **usage, aip_answer_error_t *error)
{
    size_t out_len, err_len;
    const char *out = aip_proc_stdout (proc, &out_len);
    const char *errtext = aip_proc_stderr (proc, &err_len);
    char words [AIP_TOOL_ERROR_BYTES + 8];
    snprintf (error->code, sizeof error->code, "%s", SPAWN_ERR_TOOL);
    if (s_proc_failed (tool, proc, timeout_s, false, error))
        return -1;
    int code = aip_proc_exit_code (proc);
    char *answer = NULL;
    bool is_error = false;
    char perr [256];
    if (aip_tool_answer (tool, out, out_len, &answer, usage, &is_error, perr, sizeof perr)) {
        aip_tool_words (errtext, err_len, words, sizeof words);
        if (!*words)
            aip_tool_words (out, out_len, words, sizeof words);
        snprintf (error->message, sizeof error->message, "%s (exit %d)%s%s", perr, code,
                  *words ? ": " : "", words);
        return -1;
    }
    size_t len;
    char *fixed = aip_utf8_repair (answer, strlen (answer), &len);
    free (answer);
    answer = fixed;
    aip_answer_trim (answer, &len);
    bool failed = is_error || (code != 0 && (len == 0 || tool->errors_on_stdout));
    if (failed) {
        //  The tool's own explanation: stdout for tools that use it, else stderr
        const char *first = tool->errors_on_stdout || is_error ? answer : errtext;
        size_t first_len = tool->errors_on_stdout || is_error ? len : err_len;
        aip_tool_words (first, first_len, words, sizeof words);
        if (!*words)
            aip_tool_words (tool->errors_on_stdout ? errtext : out,
                            tool->errors_on_stdout ? err_len : out_len, words, sizeof words);
        //  gemini: exit 41 means no authentication configured
        bool auth = aip_tool_auth_failure (words) || (streq (tool->name, "gemini") && code == 41);
        if (auth)
            s_not_logged_in (tool, words, error);
        else
            snprintf (error->message, sizeof error->message, "%s failed (exit %d): %s",
                      tool->name, code, *words ? words : "no explanation printed");
        free (answer);
        json_decref (*usage);
        *usage = NULL;
        return -1;
    }
    if (len == 0) {
        aip_tool_words (errtext, err_len, words, sizeof words);
        snprintf (error->message, sizeof error->message, "%s returned an empty answer%s%s",
                  tool->name, *words ? ": " : "", words);
        free (answer);
        json_decref (*usage);
        *usage = NULL;
        return -1;
    }
    //  Cap: cut visibly on a character boundary
    size_t total = aip_proc_stdout_total (proc);
    s_cap_answer (&answer, &len, total > out_len && tool->output == AIP_OUT_TEXT ? total : 0);
    *answer_p = answer;
    *answer_len = len;
    return 0;
}

//  Does the text hold a line that starts as a JSON object?
static bool
s_has_json_line (const char *text, size_t len)
{
    bool line_start = true;
    for (size_t i = 0; i < len; i++) {
        if (line_start && text [i] == '{')
            return true;
        line_start = text [i] == '\n';
    }
    return false;
}

int
aip_answer_stream (const aip_tool_t *tool, aip_proc_t *proc, aip_stream_t *stream,
                   int timeout_s, char **answer_p, size_t *answer_len, aip_answer_error_t *error,
                   aip_stream_err_t *kind)
{
    size_t out_len, err_len;
    const char *out = aip_proc_stdout (proc, &out_len);
    const char *errtext = aip_proc_stderr (proc, &err_len);
    char words [AIP_TOOL_ERROR_BYTES + 8];
    snprintf (error->code, sizeof error->code, "%s", SPAWN_ERR_TOOL);
    *kind = AIP_STREAM_OK;
    bool finished = aip_stream_done (stream);
    aip_stream_end (stream);
    const char *why;
    aip_stream_err_t err = aip_stream_error (stream, &why);
    if (s_proc_failed (tool, proc, timeout_s, finished, error))
        return -1;
    *kind = err;
    if (err == AIP_STREAM_OK) {
        size_t len;
        const char *text = aip_stream_answer (stream, &len);
        char *answer = aip_utf8_repair (text, len, &len);
        aip_answer_trim (answer, &len);
        if (len == 0) {
            aip_tool_words (errtext, err_len, words, sizeof words);
            snprintf (error->message, sizeof error->message, "%s returned an empty answer%s%s",
                      tool->name, *words ? ": " : "", words);
            free (answer);
            return -1;
        }
        s_cap_answer (&answer, &len, 0);
        *answer_p = answer;
        *answer_len = len;
        return 0;
    }
    //  The reason: the tool's event, or (no final event) its own words
    if (err == AIP_STREAM_ERR_OUTPUT && !finished) {
        //  Its stdout is events (not words) unless none of it was JSON
        aip_tool_words (errtext, err_len, words, sizeof words);
        if (!*words && aip_stream_lines (stream) && !s_has_json_line (out, out_len))
            aip_tool_words (out, out_len, words, sizeof words);
    }
    else
        aip_tool_words (why, strlen (why), words, sizeof words);
    int code = aip_proc_exit_code (proc);
    bool auth = err == AIP_STREAM_ERR_AUTH
             || (err == AIP_STREAM_ERR_OUTPUT && aip_tool_auth_failure (words))
             || (streq (tool->name, "gemini") && code == 41 && !finished);
    if (auth)
        s_not_logged_in (tool, words, error);
    else
    if (err == AIP_STREAM_ERR_RATE)
        snprintf (error->message, sizeof error->message, "%s is rate-limited or out of quota: "
                  "%s", tool->name, words);
    else
    if (err == AIP_STREAM_ERR_BUDGET)
        snprintf (error->message, sizeof error->message, "%s %s", tool->name, words);
    else
    if (err == AIP_STREAM_ERR_OUTPUT && !finished && code != 0)
        snprintf (error->message, sizeof error->message, "%s failed (exit %d): %s", tool->name,
                  code, *words ? words : why);
    else
    if (err == AIP_STREAM_ERR_OUTPUT) {
        bool more = *words && !strstr (why, words);
        snprintf (error->message, sizeof error->message, "%s%s%s", why, more ? ": " : "",
                  more ? words : "");
    }
    else
        snprintf (error->message, sizeof error->message, "%s failed: %s", tool->name, words);
    return -1;
}


//  ---------------------------------------------------------------------
//  Self-test: trimming and the visible cut (the runs themselves are
//  covered by tests/test_invite.py and tests/test_agents.py)

size_t
aip_answer_mentions (aip_adapter_t *adapter, const char *self_tool, const char *answer,
            const char **mentions, size_t max)
{
    size_t count = 0;
    for (size_t i = 0; i < aip_adapter_count (adapter); i++) {
        const char *tool = aip_adapter_at (adapter, i)->name;
        if (streq (tool, self_tool))
            continue;
        //  claude-code is also @claude: the mention keeps the name written
        const char *names [2] = { tool, streq (tool, "claude-code") ? "claude" : NULL };
        bool found = false;
        for (size_t k = 0; k < 2 && names [k] && !found; k++) {
            size_t n = strlen (names [k]);
            for (const char *p = strchr (answer, '@'); p && !found; p = strchr (p + 1, '@')) {
                if (strncasecmp (p + 1, names [k], n) == 0
                &&  !(isalnum ((unsigned char) p [1 + n]) || p [1 + n] == '_' || p [1 + n] == '-')) {
                    if (count < max)
                        mentions [count++] = names [k];
                    found = true;
                }
            }
        }
    }
    return count;
}

void
aip_answer_test (bool verbose)
{
    (void) verbose;
    printf (" * aip_answer: ");
    char text [] = "\n \n  # Title\n\nbody\n\n";
    size_t len = strlen (text);
    aip_answer_trim (text, &len);
    assert (len == strlen ("  # Title\n\nbody") && streq (text, "  # Title\n\nbody"));
    char blank [] = " \n\t\n";
    len = strlen (blank);
    aip_answer_trim (blank, &len);
    assert (len == 0 && *blank == 0);
    //  @mentions of the other known tools, as written
    aip_adapter_t *adapter = aip_adapter_new (NULL, NULL, 0);
    const char *mentions [4];
    assert (aip_answer_mentions (adapter, "claude", "body @codex and @gemini-x",
                                 mentions, 4) == 1);
    assert (streq (mentions [0], "codex"));
    assert (aip_answer_mentions (adapter, "codex", "ask @claude", mentions, 4) == 1);
    assert (streq (mentions [0], "claude"));
    aip_adapter_destroy (&adapter);

    //  Under the limit: as it is; over: cut on a character, marker added
    char *answer = strdup ("short");
    len = 5;
    s_cap_answer (&answer, &len, 0);
    assert (len == 5 && streq (answer, "short"));
    s_cap_answer (&answer, &len, 9000000);
    assert (strstr (answer, "[... answer cut by ai-peer: 9000000 bytes in all"));
    free (answer);
    size_t big = AIP_MAX_CONTENT + 100;
    answer = (char *) malloc (big + 1);
    for (size_t i = 0; i + 1 < big; i += 2)
        memcpy (answer + i, "\xc3\xa9", 2);           //  é, two bytes each
    answer [big] = 0;
    len = big;
    s_cap_answer (&answer, &len, 0);
    const char *marker = strstr (answer, "\n\n[... answer cut by ai-peer");
    assert (marker && (size_t) (marker - answer) <= (size_t) AIP_MAX_CONTENT - 256);
    assert (aip_utf8_valid (answer, len));
    free (answer);
    printf ("OK\n");
}
