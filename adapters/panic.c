/* panic.c -- br_panic for every driver: log the failed assertion (one JSON
 * line on stderr, like every other line) and abort. */
#include <stdio.h>
#include <stdlib.h>

#include "adapters/log.h"
#include "core/panic.h"

noreturn void br_panic(const char *file, int line, const char *expr)
{
    char esc_file[256];
    char esc_expr[512];
    br_log_escape(file, esc_file, sizeof esc_file);
    br_log_escape(expr, esc_expr, sizeof esc_expr);
    br_logf(&br_log_stderr, BR_LOG_ERROR, "assertion failed",
            "\"file\":\"%s\",\"line\":%d,\"expr\":\"%s\"", esc_file, line, esc_expr);
    fflush(stderr);
    abort();
}
