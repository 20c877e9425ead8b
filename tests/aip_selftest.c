/*  aip_selftest — runs the self-test of one module, or all of them.
    usage: aip_selftest [-v] [module]  (modules: see proto/aip_selftests.h) */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "aip_selftests.h"

#define DECLARE(noun) void aip_##noun##_test (bool verbose);
AIP_SELFTESTS (DECLARE)

typedef struct {
    const char *name;
    void (*fn) (bool);
} test_t;

static const test_t s_tests [] = {
#define ENTRY(noun) { #noun, aip_##noun##_test },
    AIP_SELFTESTS (ENTRY)
    { NULL, NULL }
};

int
main (int argc, char **argv)
{
    bool verbose = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "-v") == 0)
            verbose = true;
        else
            only = argv [i];
    }
    int ran = 0;
    for (const test_t *t = s_tests; t->name; t++)
        if (!only || strcmp (only, t->name) == 0) {
            t->fn (verbose);
            ran++;
        }
    if (!ran) {
        fprintf (stderr, "aip_selftest: no module named '%s'\n", only);
        return 1;
    }
    return 0;
}
