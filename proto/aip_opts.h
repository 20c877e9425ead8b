/*  aip_opts.h — one option table for the daemons' command lines.

    Each daemon's main lists its options in one table (Redis's config
    table): the flag, its kind, where its value goes, its bounds or
    choices. The value's variable holds the default before parsing (named
    fields, not positions); aip_opts_parse fills it in and refuses with a
    clear message what does not fit. The usage line comes from the table. */
#ifndef AIP_OPTS_H_INCLUDED
#define AIP_OPTS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    AIP_OPT_STR,                //  takes a value: const char * (borrowed from argv)
    AIP_OPT_INT,                //  takes an integer in [min, max]: int
    AIP_OPT_FLAG,               //  takes no value: bool, set to true
    AIP_OPT_CHOICE              //  takes one of "a|b|c": const char *
} aip_opt_kind_t;

typedef struct {
    const char *name;           //  "--port"; NULL ends the table
    aip_opt_kind_t kind;        //  what it takes
    void *value;                //  const char **, int * or bool *, holding the default
    int64_t min;                //  AIP_OPT_INT: smallest value
    int64_t max;                //  AIP_OPT_INT: largest value
    const char *choices;        //  AIP_OPT_CHOICE: "full|normal"
    const char *meta;           //  what the value is, for the usage line ("DIR", "N")
} aip_opt_t;

//  Parse argv [1..argc) against opts: 0, or -1 with err saying which
//  option and what it takes (unknown ones too)
int aip_opts_parse (const aip_opt_t *opts, int argc, char **argv, char *err, size_t errlen);
//  "usage: NAME [--home DIR] [--port N] [--lan]" into buf
void aip_opts_usage (const char *name, const aip_opt_t *opts, char *buf, size_t size);

void aip_opts_test (bool verbose);

#endif
