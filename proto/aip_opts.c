/*  aip_opts.c — the daemons' option tables. See aip_opts.h. */
#include "aip_opts.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Is value one of "a|b|c"?
static bool
s_choice_ok (const char *choices, const char *value)
{
    size_t len = strlen (value);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr (p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen (p);
        if (n == len && memcmp (p, value, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

int
aip_opts_parse (const aip_opt_t *opts, int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const aip_opt_t *opt = opts;
        while (opt->name && strcmp (opt->name, argv [i]) != 0)
            opt++;
        if (!opt->name) {
            snprintf (err, errlen, "unknown option '%.100s'", argv [i]);
            return -1;
        }
        if (opt->kind == AIP_OPT_FLAG) {
            *(bool *) opt->value = true;
            continue;
        }
        if (i + 1 >= argc) {
            snprintf (err, errlen, "%s needs a value%s%s", opt->name,
                      opt->meta ? ": " : "", opt->meta ? opt->meta : "");
            return -1;
        }
        const char *value = argv [++i];
        if (opt->kind == AIP_OPT_STR)
            *(const char **) opt->value = value;
        else
        if (opt->kind == AIP_OPT_CHOICE) {
            if (!s_choice_ok (opt->choices, value)) {
                char shown [128];
                snprintf (shown, sizeof shown, "%s", opt->choices);
                for (char *bar = strchr (shown, '|'); bar; bar = strchr (bar, '|'))
                    *bar = ',';
                snprintf (err, errlen, "%s takes one of: %s", opt->name, shown);
                return -1;
            }
            *(const char **) opt->value = value;
        }
        else {
            char *end;
            errno = 0;
            long long n = strtoll (value, &end, 10);
            if (errno || end == value || *end || n < opt->min || n > opt->max) {
                snprintf (err, errlen, "%s takes %lld to %lld", opt->name,
                          (long long) opt->min, (long long) opt->max);
                return -1;
            }
            *(int *) opt->value = (int) n;
        }
    }
    return 0;
}

void
aip_opts_usage (const char *name, const aip_opt_t *opts, char *buf, size_t size)
{
    size_t len = (size_t) snprintf (buf, size, "usage: %s", name);
    for (const aip_opt_t *opt = opts; opt->name && len < size; opt++) {
        const char *meta = opt->kind == AIP_OPT_FLAG ? NULL
                         : opt->kind == AIP_OPT_CHOICE ? opt->choices
                         : opt->meta ? opt->meta : opt->kind == AIP_OPT_INT ? "N" : "VALUE";
        len += (size_t) snprintf (buf + len, size - len, " [%s%s%s]", opt->name,
                                  meta ? " " : "", meta ? meta : "");
    }
}

//  ---------------------------------------------------------------------
//  Self-test

void
aip_opts_test (bool verbose)
{
    printf (" * aip_opts: ");
    const char *home = NULL, *sync = "full";
    int port = 7899;
    bool lan = false;
    aip_opt_t opts [] = {
        { .name = "--home", .kind = AIP_OPT_STR, .value = &home, .meta = "DIR" },
        { .name = "--port", .kind = AIP_OPT_INT, .value = &port, .min = 1, .max = 65535 },
        { .name = "--lan", .kind = AIP_OPT_FLAG, .value = &lan },
        { .name = "--sync", .kind = AIP_OPT_CHOICE, .value = &sync, .choices = "full|normal" },
        { .name = NULL },
    };
    char err [256], usage [256];
    //  Defaults stay when nothing is given
    char *none [] = { "d", NULL };
    assert (aip_opts_parse (opts, 1, none, err, sizeof err) == 0);
    assert (!home && port == 7899 && !lan && strcmp (sync, "full") == 0);
    char *good [] = { "d", "--home", "/h", "--port", "80", "--lan", "--sync", "normal", NULL };
    assert (aip_opts_parse (opts, 8, good, err, sizeof err) == 0);
    assert (strcmp (home, "/h") == 0 && port == 80 && lan && strcmp (sync, "normal") == 0);
    //  Each refusal says what the option takes
    char *range [] = { "d", "--port", "0", NULL };
    assert (aip_opts_parse (opts, 3, range, err, sizeof err) == -1);
    assert (strcmp (err, "--port takes 1 to 65535") == 0);
    char *junk [] = { "d", "--port", "80x", NULL };
    assert (aip_opts_parse (opts, 3, junk, err, sizeof err) == -1);
    char *big [] = { "d", "--port", "99999999999999999999", NULL };
    assert (aip_opts_parse (opts, 3, big, err, sizeof err) == -1);
    char *choice [] = { "d", "--sync", "off", NULL };
    assert (aip_opts_parse (opts, 3, choice, err, sizeof err) == -1);
    assert (strcmp (err, "--sync takes one of: full,normal") == 0);
    char *missing [] = { "d", "--home", NULL };
    assert (aip_opts_parse (opts, 2, missing, err, sizeof err) == -1);
    assert (strstr (err, "--home needs a value: DIR"));
    char *unknown [] = { "d", "--nope", NULL };
    assert (aip_opts_parse (opts, 2, unknown, err, sizeof err) == -1);
    assert (strstr (err, "unknown option '--nope'"));
    aip_opts_usage ("d", opts, usage, sizeof usage);
    assert (strcmp (usage, "usage: d [--home DIR] [--port N] [--lan] [--sync full|normal]") == 0);
    if (verbose)
        printf ("(defaults, values, bounds, choices, refusals, usage) ");
    printf ("OK\n");
}
