/*  aip_adapter.c — tool table, tools.json, answer extraction and the
    tool's own words in errors (see aip_adapter.h). */
#include "aip_adapter.h"
#include <czmq.h>
#include "aip_home.h"
#include "aip_limits.h"
#include "aip_json.h"
#include "aip_util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

struct _aip_adapter_t {
    aip_tool_t *tools [AIP_MAX_TOOLS + 8];  //  built-ins first, then configured
    size_t count;
};

//  The built-in tools, as DESIGN.md §7b: each in its structured mode, the
//  prompt on stdin (or in the protocol), never in argv. Every flag here is
//  in the --help of claude 2.1.332, codex-cli 0.171.0, gemini 0.61.0 and
//  opencode 1.18.33.
typedef struct {
    const char *name;
    const char *argv [10];
    const char *model_args [3];
    const char *unset [2];
    bool errors_on_stdout;
    const char *install;
    const char *login;
    aip_format_t format;
    const char *resume_args [3];
    const char *ephemeral_args [2];
    const char *max_cost_args [3];
    const char *fallback_argv [8];
    aip_format_t fallback_format;
    const char *fallback_ephemeral_args [2];
} s_builtin_t;

static const s_builtin_t s_builtins [] = {
    { "claude-code", { "claude", "-p", "--output-format", "stream-json", "--verbose",
                       "--include-partial-messages", "{model_args}", NULL },
      { "--model", "{model}", NULL }, { "CLAUDECODE", NULL }, true,
      "npm install -g @anthropic-ai/claude-code",
      "run 'claude' once and log in with /login (or set ANTHROPIC_API_KEY)",
      AIP_FORMAT_CLAUDE, { "--resume", "{session_id}", NULL },
      { "--no-session-persistence", NULL }, { "--max-budget-usd", "{max_cost}", NULL },
      { NULL }, AIP_FORMAT_TEXT, { NULL } },
    //  The model and ephemeral threads go in the protocol (thread/start)
    { "codex", { "codex", "app-server", NULL },
      { NULL }, { NULL }, false,
      "npm install -g @openai/codex",
      "run 'codex login' (or set OPENAI_API_KEY)",
      AIP_FORMAT_CODEX_SERVER, { NULL }, { NULL }, { NULL },
      { "codex", "exec", "--json", "--skip-git-repo-check", "{ephemeral_args}", "{model_args}",
        "-", NULL },
      AIP_FORMAT_CODEX_EXEC, { "--ephemeral", NULL } },
    { "opencode", { "opencode", "acp", NULL },
      { NULL }, { NULL }, false,
      "npm install -g opencode-ai",
      "run 'opencode auth login'",
      AIP_FORMAT_ACP, { NULL }, { NULL }, { NULL },
      { "opencode", "run", "--format", "json", "{model_args}", NULL },
      AIP_FORMAT_OPENCODE_RUN, { NULL } },
    { "gemini", { "gemini", "-p", "", "--output-format", "stream-json", "--skip-trust",
                  "{model_args}", NULL },
      { "-m", "{model}", NULL }, { NULL }, false,
      "npm install -g @google/gemini-cli",
      "run 'gemini' once and choose how to sign in (or set GEMINI_API_KEY)",
      AIP_FORMAT_GEMINI, { "--resume", "{session_id}", NULL }, { NULL }, { NULL },
      { NULL }, AIP_FORMAT_TEXT, { NULL } },
};

//  The fallbacks' model arguments (the protocol servers take it in-band)
static const char *s_fallback_model_args [] = { "-m", "{model}", NULL };

//  ---------------------------------------------------------------------
//  String vectors

static size_t
s_strv_len (char **v)
{
    size_t n = 0;
    while (v && v [n])
        n++;
    return n;
}

static char **
s_strv_from (const char *const *src)
{
    size_t n = 0;
    while (src [n])
        n++;
    char **v = (char **) calloc (n + 1, sizeof (char *));
    for (size_t i = 0; i < n; i++)
        v [i] = strdup (src [i]);
    return v;
}

void
aip_strv_free (char ***strv_p)
{
    if (!strv_p || !*strv_p)
        return;
    for (char **p = *strv_p; *p; p++)
        free (*p);
    free (*strv_p);
    *strv_p = NULL;
}

static void
s_tool_free (aip_tool_t **tool_p)
{
    aip_tool_t *t = *tool_p;
    if (!t)
        return;
    free (t->name);
    aip_strv_free (&t->argv);
    aip_strv_free (&t->model_args);
    aip_strv_free (&t->env_set);
    aip_strv_free (&t->env_unset);
    aip_strv_free (&t->resume_args);
    aip_strv_free (&t->ephemeral_args);
    aip_strv_free (&t->max_cost_args);
    aip_strv_free (&t->fallback_argv);
    aip_strv_free (&t->fallback_ephemeral_args);
    free (t->answer_path);
    free (t->event_key);
    free (t->event_value);
    free (t->error_path);
    free (t->usage_path);
    free (t->install_hint);
    free (t->login_hint);
    free (t);
    *tool_p = NULL;
}

//  ---------------------------------------------------------------------
//  tools.json

static char *
s_json_strdup (json_t *o, const char *key)
{
    const char *s = json_string_value (json_object_get (o, key));
    return s ? strdup (s) : NULL;
}

//  An array of strings, at most max; NULL (err set) if it is not one
static char **
s_json_strv (json_t *array, size_t max, const char *what, char *err, size_t errlen)
{
    if (!json_is_array (array) || json_array_size (array) > max) {
        snprintf (err, errlen, "%s must be an array of at most %zu strings", what, max);
        return NULL;
    }
    size_t n = json_array_size (array);
    char **v = (char **) calloc (n + 1, sizeof (char *));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value (json_array_get (array, i));
        if (!s) {
            snprintf (err, errlen, "%s must hold strings only", what);
            aip_strv_free (&v);
            return NULL;
        }
        v [i] = strdup (s);
    }
    return v;
}

static aip_tool_t *
s_tool_from_json (const char *name, json_t *o, char *err, size_t errlen)
{
    aip_tool_t *t = (aip_tool_t *) calloc (1, sizeof (aip_tool_t));
    t->name = strdup (name);
    t->configured = true;
    char what [AIP_MAX_NAME + 32];
    if (!json_is_object (o)) {
        snprintf (err, errlen, "tool '%s' must be an object", name);
        goto failed;
    }
    snprintf (what, sizeof what, "tools.%s.argv", name);
    t->argv = s_json_strv (json_object_get (o, "argv"), AIP_MAX_TOOL_ARGS, what, err, errlen);
    if (!t->argv)
        goto failed;
    if (!t->argv [0] || !*t->argv [0]) {
        snprintf (err, errlen, "%s needs at least the program", what);
        goto failed;
    }
    json_t *model_args = json_object_get (o, "model_args");
    snprintf (what, sizeof what, "tools.%s.model_args", name);
    if (model_args && !(t->model_args = s_json_strv (model_args, 8, what, err, errlen)))
        goto failed;
    const char *prompt = json_string_value (json_object_get (o, "prompt"));
    if (!prompt || streq (prompt, "stdin"))
        t->prompt_via = AIP_PROMPT_STDIN;
    else
    if (streq (prompt, "file"))
        t->prompt_via = AIP_PROMPT_FILE;
    else {
        snprintf (err, errlen, "tools.%s.prompt must be \"stdin\" or \"file\"", name);
        goto failed;
    }
    const char *output = json_string_value (json_object_get (o, "output"));
    if (!output || streq (output, "text"))
        t->output = AIP_OUT_TEXT;
    else
    if (streq (output, "json"))
        t->output = AIP_OUT_JSON;
    else
    if (streq (output, "ndjson"))
        t->output = AIP_OUT_NDJSON;
    else {
        snprintf (err, errlen, "tools.%s.output must be \"text\", \"json\" or \"ndjson\"", name);
        goto failed;
    }
    t->answer_path = s_json_strdup (o, "answer");
    if (t->output != AIP_OUT_TEXT && !t->answer_path) {
        snprintf (err, errlen, "tools.%s.answer (a JSON path like \"result\") is needed with "
                  "output \"%s\"", name, output);
        goto failed;
    }
    json_t *event = json_object_get (o, "event");
    if (event) {
        const char *key;
        json_t *value;
        if (!json_is_object (event) || json_object_size (event) != 1) {
            snprintf (err, errlen, "tools.%s.event must be an object with one key", name);
            goto failed;
        }
        json_object_foreach (event, key, value) {
            if (!json_is_string (value)) {
                snprintf (err, errlen, "tools.%s.event must map a key to a string", name);
                goto failed;
            }
            t->event_key = strdup (key);
            t->event_value = strdup (json_string_value (value));
        }
    }
    t->error_path = s_json_strdup (o, "error_flag");
    t->usage_path = s_json_strdup (o, "usage");
    json_t *env = json_object_get (o, "env");
    if (env) {
        if (!json_is_object (env) || json_object_size (env) > AIP_MAX_TOOL_ENV) {
            snprintf (err, errlen, "tools.%s.env must be an object of at most %d strings", name,
                      AIP_MAX_TOOL_ENV);
            goto failed;
        }
        t->env_set = (char **) calloc (json_object_size (env) + 1, sizeof (char *));
        size_t i = 0;
        const char *key;
        json_t *value;
        json_object_foreach (env, key, value) {
            if (!json_is_string (value) || !*key || strchr (key, '=')) {
                snprintf (err, errlen, "tools.%s.env: '%s' needs a string value and a name "
                          "without '='", name, key);
                goto failed;
            }
            t->env_set [i++] = zsys_sprintf ("%s=%s", key, json_string_value (value));
        }
    }
    json_t *unset = json_object_get (o, "unset_env");
    snprintf (what, sizeof what, "tools.%s.unset_env", name);
    if (unset && !(t->env_unset = s_json_strv (unset, AIP_MAX_TOOL_ENV, what, err, errlen)))
        goto failed;
    const char *format = json_string_value (json_object_get (o, "format"));
    if (json_object_get (o, "format")) {
        int f = format ? aip_format_from_name (format) : -1;
        if (f < 0) {
            snprintf (err, errlen, "tools.%s.format must be one of \"claude-stream-json\", "
                      "\"gemini-stream-json\", \"codex-app-server\", \"codex-json\", "
                      "\"opencode-acp\", \"opencode-json\", \"text\"", name);
            goto failed;
        }
        t->format = (aip_format_t) f;
        if (t->format != AIP_FORMAT_TEXT && t->output != AIP_OUT_TEXT) {
            snprintf (err, errlen, "tools.%s: \"format\" and \"output\" cannot both be given",
                      name);
            goto failed;
        }
    }
    const char *lists [] = { "resume_args", "ephemeral_args", "max_cost_args" };
    char ***targets [] = { &t->resume_args, &t->ephemeral_args, &t->max_cost_args };
    for (size_t i = 0; i < 3; i++) {
        json_t *list = json_object_get (o, lists [i]);
        snprintf (what, sizeof what, "tools.%s.%s", name, lists [i]);
        if (list && !(*targets [i] = s_json_strv (list, 8, what, err, errlen)))
            goto failed;
    }
    const char *errors_on = json_string_value (json_object_get (o, "errors_on"));
    t->errors_on_stdout = errors_on && streq (errors_on, "stdout");
    t->install_hint = s_json_strdup (o, "install");
    t->login_hint = s_json_strdup (o, "login");
    return t;
failed:
    s_tool_free (&t);
    return NULL;
}

//  Add a problem to the warning ("; " between several)
static void
s_warn (char *warning, size_t warnlen, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
s_warn (char *warning, size_t warnlen, const char *fmt, ...)
{
    if (!warning || !warnlen)
        return;
    size_t used = strlen (warning);
    if (used && used + 3 < warnlen) {
        memcpy (warning + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start (ap, fmt);
    if (used < warnlen)
        vsnprintf (warning + used, warnlen - used, fmt, ap);
    va_end (ap);
}

//  The line where a tool's entry starts ("name": ...), or 0
static int
s_line_of (const char *text, size_t len, const char *name)
{
    char key [AIP_MAX_NAME + 4];
    snprintf (key, sizeof key, "\"%s\"", name);
    size_t klen = strlen (key);
    for (size_t i = 0; i + klen <= len; i++) {
        if (memcmp (text + i, key, klen) != 0)
            continue;
        size_t j = i + klen;
        while (j < len && isspace ((unsigned char) text [j]))
            j++;
        if (j < len && text [j] == ':') {
            int line = 1;
            for (size_t c = 0; c < i; c++)
                line += text [c] == '\n';
            return line;
        }
    }
    return 0;
}

static void
s_load_config (aip_adapter_t *self, const char *home, char *warning, size_t warnlen)
{
    char *text, problem [AIP_PATH_MAX + 256];
    size_t len;
    json_t *root = aip_json_tools_load (home, &text, &len, problem, sizeof problem);
    if (!root) {
        if (*problem)
            s_warn (warning, warnlen, "%s", problem);
        return;
    }
    json_t *tools = json_object_get (root, "tools");
    char path [AIP_PATH_MAX];
    aip_home_path (home, "tools.json", path, sizeof path);
    const char *name;
    json_t *value;
    json_object_foreach (tools, name, value) {
        char err [512];
        int line = s_line_of (text, len, name);
        if (!aip_id_valid (name, strlen (name))) {
            s_warn (warning, warnlen, "%s:%d: tool name '%.64s' must be letters, digits, '_' "
                    "or '-'", path, line, name);
            continue;
        }
        if (self->count >= AIP_MAX_TOOLS + 4) {
            s_warn (warning, warnlen, "%s: more than %d tools; the rest are ignored", path,
                    AIP_MAX_TOOLS);
            break;
        }
        aip_tool_t *tool = s_tool_from_json (name, value, err, sizeof err);
        if (!tool) {
            s_warn (warning, warnlen, "%s:%d: %s", path, line, err);
            continue;
        }
        //  A configured tool overrides the built-in of that name
        bool replaced = false;
        for (size_t i = 0; i < self->count; i++)
            if (streq (self->tools [i]->name, name)) {
                s_tool_free (&self->tools [i]);
                self->tools [i] = tool;
                replaced = true;
            }
        if (!replaced)
            self->tools [self->count++] = tool;
    }
    json_decref (root);
    free (text);
}

aip_adapter_t *
aip_adapter_new (const char *home, char *warning, size_t warnlen)
{
    aip_adapter_t *self = (aip_adapter_t *) calloc (1, sizeof (aip_adapter_t));
    assert (self);
    if (warning && warnlen)
        *warning = 0;
    for (size_t i = 0; i < sizeof s_builtins / sizeof s_builtins [0]; i++) {
        const s_builtin_t *b = &s_builtins [i];
        aip_tool_t *t = (aip_tool_t *) calloc (1, sizeof (aip_tool_t));
        t->name = strdup (b->name);
        t->argv = s_strv_from (b->argv);
        t->model_args = s_strv_from (b->model_args);
        t->env_unset = s_strv_from (b->unset);
        t->env_set = s_strv_from ((const char *const []) { NULL });
        t->errors_on_stdout = b->errors_on_stdout;
        t->install_hint = strdup (b->install);
        t->login_hint = strdup (b->login);
        t->format = b->format;
        t->resume_args = b->resume_args [0] ? s_strv_from (b->resume_args) : NULL;
        t->ephemeral_args = b->ephemeral_args [0] ? s_strv_from (b->ephemeral_args) : NULL;
        t->max_cost_args = b->max_cost_args [0] ? s_strv_from (b->max_cost_args) : NULL;
        t->fallback_argv = b->fallback_argv [0] ? s_strv_from (b->fallback_argv) : NULL;
        t->fallback_format = b->fallback_format;
        t->fallback_ephemeral_args = b->fallback_ephemeral_args [0]
                                   ? s_strv_from (b->fallback_ephemeral_args) : NULL;
        self->tools [self->count++] = t;
    }
    if (home)
        s_load_config (self, home, warning, warnlen);
    return self;
}

void
aip_adapter_destroy (aip_adapter_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    aip_adapter_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        s_tool_free (&self->tools [i]);
    free (self);
    *self_p = NULL;
}

static const aip_tool_t *
aip_adapter_find_exact (aip_adapter_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (streq (self->tools [i]->name, name))
            return self->tools [i];
    return NULL;
}

const aip_tool_t *
aip_adapter_find (aip_adapter_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (streq (self->tools [i]->name, name))
            return self->tools [i];
    //  claude is the alias of claude-code (and the other way, for a
    //  tools.json that defines "claude")
    const char *alias = streq (name, "claude") ? "claude-code"
                      : streq (name, "claude-code") ? "claude" : NULL;
    for (size_t i = 0; alias && i < self->count; i++)
        if (streq (self->tools [i]->name, alias))
            return self->tools [i];
    return NULL;
}

size_t
aip_adapter_count (aip_adapter_t *self)
{
    return self->count;
}

const aip_tool_t *
aip_adapter_at (aip_adapter_t *self, size_t index)
{
    return index < self->count ? self->tools [index] : NULL;
}

void
aip_adapter_installed (aip_adapter_t *self, char *buf, size_t size)
{
    *buf = 0;
    size_t len = 0;
    for (size_t i = 0; i < aip_adapter_count (self); i++) {
        const aip_tool_t *tool = aip_adapter_at (self, i);
        char path [AIP_PATH_MAX];
        if (aip_which (tool->argv [0], path, sizeof path) == 0
        &&  len + strlen (tool->name) + 2 < size) {
            len += (size_t) snprintf (buf + len, size - len, "%s%s", len ? "," : "", tool->name);
            //  Invites may name claude-code by its alias
            if (streq (tool->name, "claude-code") && !aip_adapter_find_exact (self, "claude")
            &&  len + 8 < size)
                len += (size_t) snprintf (buf + len, size - len, ",claude");
        }
    }
}

//  ---------------------------------------------------------------------
//  Building the command

int
aip_which (const char *binary, char *path, size_t size)
{
    if (!*binary)
        return -1;
    if (strchr (binary, '/')) {
        snprintf (path, size, "%s", binary);
        return access (path, X_OK) == 0 ? 0 : -1;
    }
    const char *dirs = getenv ("PATH");
    if (!dirs)
        dirs = "/usr/local/bin:/usr/bin:/bin";
    while (*dirs) {
        size_t n = strcspn (dirs, ":");
        snprintf (path, size, "%.*s%s%s", (int) n, dirs, n ? "/" : "./", binary);
        if (access (path, X_OK) == 0)
            return 0;
        dirs += n;
        if (*dirs == ':')
            dirs++;
    }
    return -1;
}

//  Replace {model}, {prompt_file}, {session_id} and {max_cost} in an
//  argument (values are not scanned again: a model named "{model}" cannot
//  loop)
static char *
s_expand (const char *arg, const aip_tool_run_t *run)
{
    const char *keys [] = { "{model}", "{prompt_file}", "{session_id}", "{max_cost}" };
    const char *values [] = { run->model ? run->model : "",
                              run->prompt_file ? run->prompt_file : "",
                              run->session_id ? run->session_id : "",
                              run->max_cost ? run->max_cost : "" };
    char *result = strdup (arg);
    for (size_t k = 0; k < 4; k++) {
        size_t from = 0;
        char *at;
        while ((at = strstr (result + from, keys [k]))) {
            size_t prefix = (size_t) (at - result);
            char *next = zsys_sprintf ("%.*s%s%s", (int) prefix, result, values [k],
                                       at + strlen (keys [k]));
            free (result);
            result = next;
            from = prefix + strlen (values [k]);
        }
    }
    return result;
}

int
aip_tool_command (const aip_tool_t *tool, const aip_tool_run_t *run, char ***argv_p,
                  char ***envp_p, char *err, size_t errlen)
{
    char *const *template = run->fallback && tool->fallback_argv ? tool->fallback_argv
                                                                 : tool->argv;
    char *const *model_args = run->fallback && tool->fallback_argv
                            ? (char *const *) s_fallback_model_args : tool->model_args;
    char path [AIP_PATH_MAX];
    if (aip_which (template [0], path, sizeof path)) {
        snprintf (err, errlen, "%s is not installed (no '%s' on PATH)%s%s", tool->name,
                  template [0], tool->install_hint ? "; install it with: " : "",
                  tool->install_hint ? tool->install_hint : "");
        return -1;
    }
    //  Groups of arguments a run adds, at their {placeholder} or at the end
    const char *names [] = { "{model_args}", "{resume_args}", "{ephemeral_args}",
                             "{max_cost_args}" };
    char *const *groups [4] = {
        run->model && *run->model ? model_args : NULL,
        run->session_id && !run->fallback ? tool->resume_args : NULL,
        !run->ephemeral ? NULL : run->fallback ? tool->fallback_ephemeral_args
                                               : tool->ephemeral_args,
        run->max_cost && *run->max_cost ? tool->max_cost_args : NULL };
    bool spliced [4] = { false, false, false, false };
    size_t n = s_strv_len ((char **) template), extra = 0;
    for (size_t g = 0; g < 4; g++)
        extra += s_strv_len ((char **) groups [g]);
    char **argv = (char **) calloc (n + extra + 1, sizeof (char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool group = false;
        for (size_t g = 0; g < 4; g++) {
            if (streq (template [i], names [g])) {
                group = spliced [g] = true;
                for (size_t j = 0; groups [g] && groups [g][j]; j++)
                    argv [k++] = s_expand (groups [g][j], run);
            }
        }
        if (!group)
            argv [k++] = i == 0 ? strdup (path) : s_expand (template [i], run);
    }
    for (size_t g = 0; g < 4; g++)
        for (size_t j = 0; !spliced [g] && groups [g] && groups [g][j]; j++)
            argv [k++] = s_expand (groups [g][j], run);

    size_t envc = s_strv_len (environ), setc = s_strv_len (tool->env_set);
    char **envp = (char **) calloc (envc + setc + 1, sizeof (char *));
    k = 0;
    for (size_t i = 0; i < envc; i++) {
        bool drop = false;
        size_t name_len = strcspn (environ [i], "=");
        for (char **u = tool->env_unset; u && *u && !drop; u++)
            drop = strlen (*u) == name_len && strncmp (*u, environ [i], name_len) == 0;
        for (char **s = tool->env_set; s && *s && !drop; s++)
            drop = strncmp (*s, environ [i], name_len + 1) == 0;
        if (!drop)
            envp [k++] = strdup (environ [i]);
    }
    for (size_t i = 0; i < setc; i++)
        envp [k++] = strdup (tool->env_set [i]);
    *argv_p = argv;
    *envp_p = envp;
    return 0;
}

//  ---------------------------------------------------------------------
//  Reading answers

//  Value at a dotted path ("item.text"); NULL if absent
static json_t *
s_json_path (json_t *root, const char *path)
{
    json_t *o = root;
    char *copy = strdup (path), *save = NULL;
    for (char *part = strtok_r (copy, ".", &save); part && o; part = strtok_r (NULL, ".", &save))
        o = json_object_get (o, part);
    free (copy);
    return o;
}

static bool
s_json_truthy (json_t *o)
{
    return o && (json_is_true (o) || (json_is_string (o) && *json_string_value (o))
             || (json_is_integer (o) && json_integer_value (o)));
}

int
aip_tool_answer (const aip_tool_t *tool, const char *out, size_t len, char **answer,
                 json_t **usage, bool *is_error, char *err, size_t errlen)
{
    *answer = NULL;
    *usage = NULL;
    *is_error = false;
    if (tool->output == AIP_OUT_TEXT) {
        *answer = (char *) malloc (len + 1);
        memcpy (*answer, out, len);
        (*answer) [len] = 0;
        return 0;
    }
    if (tool->output == AIP_OUT_JSON) {
        json_error_t jerr;
        json_t *root = json_loadb (out, len, JSON_DISABLE_EOF_CHECK, &jerr);
        if (!root) {
            snprintf (err, errlen, "%s printed no valid JSON: %s", tool->name, jerr.text);
            return -1;
        }
        const char *text = json_string_value (s_json_path (root, tool->answer_path));
        *answer = strdup (text ? text : "");
        if (tool->error_path)
            *is_error = s_json_truthy (s_json_path (root, tool->error_path));
        json_t *u = tool->usage_path ? s_json_path (root, tool->usage_path) : NULL;
        if (u && json_is_object (u))
            *usage = json_incref (u);
        json_decref (root);
        return 0;
    }
    //  NDJSON: one event per line; the answer events are concatenated
    zchunk_t *acc = zchunk_new (NULL, 0);
    const char *p = out, *end = out + len;
    size_t events = 0;
    while (p < end) {
        const char *nl = memchr (p, '\n', (size_t) (end - p));
        size_t line_len = nl ? (size_t) (nl - p) : (size_t) (end - p);
        json_t *event = line_len ? json_loadb (p, line_len, 0, NULL) : NULL;
        if (event && json_is_object (event)) {
            events++;
            bool match = !tool->event_key
                      || (json_string_value (s_json_path (event, tool->event_key))
                          && streq (json_string_value (s_json_path (event, tool->event_key)),
                                    tool->event_value));
            const char *text = match ? json_string_value (s_json_path (event, tool->answer_path))
                                     : NULL;
            if (text)
                zchunk_extend (acc, text, strlen (text));
            if (tool->error_path && s_json_truthy (s_json_path (event, tool->error_path)))
                *is_error = true;
            json_t *u = tool->usage_path ? s_json_path (event, tool->usage_path) : NULL;
            if (u && json_is_object (u)) {
                json_decref (*usage);
                *usage = json_incref (u);
            }
        }
        json_decref (event);
        p += line_len + 1;
    }
    *answer = (char *) malloc (zchunk_size (acc) + 1);
    memcpy (*answer, zchunk_data (acc), zchunk_size (acc));
    (*answer) [zchunk_size (acc)] = 0;
    zchunk_destroy (&acc);
    if (events == 0 && len > 0) {
        snprintf (err, errlen, "%s printed no JSON events", tool->name);
        free (*answer);
        *answer = NULL;
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Text repair

char *
aip_utf8_repair (const char *str, size_t len, size_t *out_len)
{
    const uint8_t *s = (const uint8_t *) str;
    //  Worst case: every byte becomes U+FFFD (3 bytes)
    char *out = (char *) malloc (len * 3 + 1);
    assert (out);
    size_t o = 0, i = 0;
    while (i < len) {
        uint8_t c = s [i];
        if (c == 0) {
            i++;
            continue;
        }
        if (c < 0x80) {
            out [o++] = (char) c;
            i++;
            continue;
        }
        size_t need = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                    : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
        if (need && i + need < len + 0 && aip_utf8_valid (str + i, need + 1)) {
            memcpy (out + o, s + i, need + 1);
            o += need + 1;
            i += need + 1;
        }
        else {
            memcpy (out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out [o] = 0;
    *out_len = o;
    return out;
}

void
aip_tool_words (const char *text, size_t len, char *buf, size_t size)
{
    //  Strip ANSI escapes and control characters, keep the first lines
    size_t o = 0;
    int lines = 0;
    bool line_has_text = false;
    size_t i = 0;
    while (i < len && o + 1 < size && o < AIP_TOOL_ERROR_BYTES) {
        unsigned char c = (unsigned char) text [i];
        if (c == 0x1b) {
            i++;
            if (i < len && text [i] == '[') {
                i++;
                while (i < len && !((text [i] >= '@' && text [i] <= '~')))
                    i++;
            }
            else
            if (i < len && text [i] == ']') {
                while (i < len && text [i] != 0x07)
                    i++;
            }
            i++;
            continue;
        }
        if (c == '\n') {
            if (line_has_text) {
                if (++lines >= AIP_TOOL_ERROR_LINES)
                    break;
                if (buf [o - 1] != ' ')
                    buf [o++] = ' ';
            }
            line_has_text = false;
            i++;
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            i++;
            continue;
        }
        if (c == ' ' && (!line_has_text || (o && buf [o - 1] == ' '))) {
            i++;
            continue;
        }
        buf [o++] = (char) c;
        line_has_text = true;
        i++;
    }
    while (o && buf [o - 1] == ' ')
        o--;
    buf [o] = 0;
    //  Cut on a character boundary
    while (o && !aip_utf8_valid (buf, o))
        buf [--o] = 0;
}

bool
aip_tool_auth_failure (const char *text)
{
    const char *signs [] = { "not logged in", "log in", "login", "unauthorized", "authenticat",
                             "api key", "api_key", "credentials", "401", NULL };
    char *lower = strdup (text);
    for (char *p = lower; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    bool found = false;
    for (const char **s = signs; *s && !found; s++)
        found = strstr (lower, *s) != NULL;
    free (lower);
    return found;
}

//  ---------------------------------------------------------------------
//  Self-test

void
aip_adapter_test (bool verbose)
{
    printf (" * aip_adapter: ");
    char home [] = "/tmp/aip_adapter_test_XXXXXX";
    assert (mkdtemp (home));
    char warning [512], path [AIP_PATH_MAX], err [512];

    //  Built-ins
    aip_adapter_t *adapter = aip_adapter_new (home, warning, sizeof warning);
    assert (!*warning);
    assert (aip_adapter_count (adapter) == 4);
    const aip_tool_t *claude = aip_adapter_find (adapter, "claude-code");
    assert (claude && streq (claude->name, "claude-code") && claude->errors_on_stdout);
    assert (aip_adapter_find (adapter, "claude") == claude);
    assert (claude->format == AIP_FORMAT_CLAUDE);
    //  The CLI knows the built-ins by AIP_BUILTIN_TOOLS: the same names
    {
        const char *names [] = { AIP_BUILTIN_TOOLS };
        size_t count = sizeof names / sizeof names [0];
        assert (count == aip_adapter_count (adapter) + 1);
        for (size_t i = 0; i < count; i++)
            assert (aip_adapter_find (adapter, names [i]));
        for (size_t i = 0; i < aip_adapter_count (adapter); i++) {
            bool listed = false;
            for (size_t k = 0; k < count; k++)
                listed = listed || streq (names [k], aip_adapter_at (adapter, i)->name);
            assert (listed);
        }
    }
    //  A resumed, ephemeral, budgeted claude run: flags in their place
    {
        char *saved_path = getenv ("PATH") ? strdup (getenv ("PATH")) : NULL;
        setenv ("PATH", "/bin:/usr/bin", 1);
        aip_tool_t fake = *claude;
        char *fake_argv [] = { "sh", "-p", "{model_args}", NULL };
        fake.argv = fake_argv;
        aip_tool_run_t r = { "opus", NULL, "abc-1", true, "0.50", false };
        char **av, **ev;
        assert (aip_tool_command (&fake, &r, &av, &ev, err, sizeof err) == 0);
        assert (streq (av [1], "-p") && streq (av [2], "--model") && streq (av [3], "opus")
             && streq (av [4], "--resume") && streq (av [5], "abc-1")
             && streq (av [6], "--no-session-persistence") && streq (av [7], "--max-budget-usd")
             && streq (av [8], "0.50") && !av [9]);
        aip_strv_free (&av);
        aip_strv_free (&ev);
        if (saved_path) {
            setenv ("PATH", saved_path, 1);
            free (saved_path);
        }
    }
    assert (!aip_adapter_find (adapter, "nope"));
    aip_adapter_destroy (&adapter);
    aip_adapter_destroy (&adapter);

    //  A configured tool, with env and a structured answer
    const char *config =
        "{\"tools\": {"
        "  \"echoer\": {\"argv\": [\"sh\", \"-c\", \"cat\", \"{model_args}\"],"
        "               \"model_args\": [\"--model={model}\"],"
        "               \"env\": {\"AIP_X\": \"1\"}, \"unset_env\": [\"HOME\"]},"
        "  \"jsony\": {\"argv\": [\"jsony\"], \"output\": \"json\", \"answer\": \"r.text\","
        "              \"error_flag\": \"bad\", \"usage\": \"usage\"},"
        "  \"streamy\": {\"argv\": [\"streamy\"], \"output\": \"ndjson\", \"answer\": \"part.text\","
        "                \"event\": {\"type\": \"text\"}},"
        "  \"broken\": {\"argv\": []},"
        "  \"wrapped\": {\"argv\": [\"myclaude\"], \"format\": \"claude-stream-json\","
        "                \"resume_args\": [\"--resume\", \"{session_id}\"]},"
        "  \"badformat\": {\"argv\": [\"x\"], \"format\": \"xml\"},"
        "  \"codex\": {\"argv\": [\"/bin/true\"]}"
        "}}";
    aip_home_path (home, "tools.json", path, sizeof path);
    assert (aip_file_write_atomic (path, config, strlen (config), 0600) == 0);
    adapter = aip_adapter_new (home, warning, sizeof warning);
    assert (strstr (warning, "broken") && strstr (warning, "badformat"));
    assert (strstr (warning, "tools.json:1: "));
    //  Malformed: path, line and column
    aip_adapter_t *bad;
    const char *malformed = "{\"tools\": {\n  \"x\": {\"argv\": [\"a\",]}\n}}";
    assert (aip_file_write_atomic (path, malformed, strlen (malformed), 0600) == 0);
    bad = aip_adapter_new (home, warning, sizeof warning);
    assert (strstr (warning, "tools.json:2:") && strstr (warning, "not valid JSON"));
    if (verbose)
        printf ("\n   malformed: %s\n   ", warning);
    aip_adapter_destroy (&bad);
    assert (aip_file_write_atomic (path, config, strlen (config), 0600) == 0);
    if (verbose)
        printf ("\n   warning: %s\n   ", warning);
    assert (aip_adapter_count (adapter) == 8);
    const aip_tool_t *wrapped = aip_adapter_find (adapter, "wrapped");
    assert (wrapped && wrapped->format == AIP_FORMAT_CLAUDE && wrapped->resume_args);
    assert (!aip_adapter_find (adapter, "badformat"));
    const aip_tool_t *codex = aip_adapter_find (adapter, "codex");
    assert (codex->configured && streq (codex->argv [0], "/bin/true"));
    const aip_tool_t *echoer = aip_adapter_find (adapter, "echoer");
    char **argv, **envp;
    aip_tool_run_t run = { "m1", NULL, NULL, false, NULL, false };
    assert (aip_tool_command (echoer, &run, &argv, &envp, err, sizeof err) == 0);
    assert (argv [0][0] == '/' && streq (argv [3], "--model=m1") && !argv [4]);
    bool saw_x = false, saw_home = false;
    for (char **e = envp; *e; e++) {
        saw_x |= streq (*e, "AIP_X=1");
        saw_home |= strncmp (*e, "HOME=", 5) == 0;
    }
    assert (saw_x && !saw_home);
    aip_strv_free (&argv);
    aip_strv_free (&envp);
    assert (!argv && !envp);
    //  A model named like a placeholder is taken literally
    run.model = "{model}";
    assert (aip_tool_command (echoer, &run, &argv, &envp, err, sizeof err) == 0);
    assert (streq (argv [3], "--model={model}"));
    aip_strv_free (&argv);
    aip_strv_free (&envp);
    //  Without a model, the model args vanish
    run.model = NULL;
    assert (aip_tool_command (echoer, &run, &argv, &envp, err, sizeof err) == 0);
    assert (streq (argv [2], "cat") && !argv [3]);
    aip_strv_free (&argv);
    aip_strv_free (&envp);

    char *answer;
    json_t *usage;
    bool is_error;
    const aip_tool_t *jsony = aip_adapter_find (adapter, "jsony");
    const char *out = "{\"r\": {\"text\": \"hi\\nthere\"}, \"usage\": {\"in\": 3}}";
    assert (aip_tool_answer (jsony, out, strlen (out), &answer, &usage, &is_error, err,
                             sizeof err) == 0);
    assert (streq (answer, "hi\nthere") && usage && !is_error);
    free (answer);
    json_decref (usage);
    out = "{\"bad\": true}";
    assert (aip_tool_answer (jsony, out, strlen (out), &answer, &usage, &is_error, err,
                             sizeof err) == 0);
    assert (is_error && streq (answer, ""));
    free (answer);
    assert (aip_tool_answer (jsony, "oops", 4, &answer, &usage, &is_error, err, sizeof err) == -1);

    const aip_tool_t *streamy = aip_adapter_find (adapter, "streamy");
    out = "{\"type\":\"step\"}\n{\"type\":\"text\",\"part\":{\"text\":\"a\"}}\n"
          "garbage\n{\"type\":\"text\",\"part\":{\"text\":\"b\"}}\n";
    assert (aip_tool_answer (streamy, out, strlen (out), &answer, &usage, &is_error, err,
                             sizeof err) == 0);
    assert (streq (answer, "ab"));
    free (answer);
    aip_adapter_destroy (&adapter);

    //  Not installed: says how to install
    adapter = aip_adapter_new (NULL, warning, sizeof warning);
    const aip_tool_t *gemini = aip_adapter_find (adapter, "gemini");
    char *saved = getenv ("PATH") ? strdup (getenv ("PATH")) : NULL;
    setenv ("PATH", "/nonexistent", 1);
    assert (aip_tool_command (gemini, &run, &argv, &envp, err, sizeof err) == -1);
    assert (strstr (err, "not installed") && strstr (err, "npm install -g @google/gemini-cli"));
    if (saved) {
        setenv ("PATH", saved, 1);
        free (saved);
    }
    aip_adapter_destroy (&adapter);

    //  Repair and words
    size_t len;
    char *fixed = aip_utf8_repair ("ok \xff\xfe end\xe4\xbd", 11, &len);
    assert (aip_utf8_valid (fixed, len) && strstr (fixed, "ok \xef\xbf\xbd"));
    free (fixed);
    char words [256];
    const char *stderr_text = "\x1b[1;31mError:\x1b[0m   Not logged in\n\n  Please run /login  \n"
                              "line3\nline4\nline5\nline6\n";
    aip_tool_words (stderr_text, strlen (stderr_text), words, sizeof words);
    if (verbose)
        printf ("words: [%s] ", words);
    assert (streq (words, "Error: Not logged in Please run /login line3 line4 line5"));
    assert (aip_tool_auth_failure (words));
    assert (!aip_tool_auth_failure ("segmentation fault"));

    snprintf (path, sizeof path, "rm -rf %s", home);
    assert (system (path) == 0);
    printf ("OK\n");
}
