/* panic.c -- br_panic for every driver: print the failed assertion and abort. */
#include <stdio.h>
#include <stdlib.h>

#include "core/panic.h"

noreturn void br_panic(const char *file, int line, const char *expr)
{
    fprintf(stderr, "bookingrush: assertion failed at %s:%d: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}
