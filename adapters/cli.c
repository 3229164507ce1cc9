/* cli.c -- usage errors and the version of the bookingrush binary (cli.h). */
#include "adapters/cli.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/panic.h"

/* Written at build time by adapters/version.cmake (version.c). */
extern const char br_build_version[];
extern const char br_build_commit[];

const char *br_cli_version(void)
{
    return br_build_version;
}

const char *br_cli_commit(void)
{
    return br_build_commit;
}

/* "bookingrush serve" or "bookingrush" for the top level. */
static void prefix(const char *cmd)
{
    fprintf(stderr, "bookingrush%s%s: ", cmd != NULL ? " " : "", cmd != NULL ? cmd : "");
}

static void see_help(const char *cmd)
{
    fprintf(stderr, " (see 'bookingrush%s%s --help')\n", cmd != NULL ? " " : "",
            cmd != NULL ? cmd : "");
}

int br_cli_unknown_option(const char *cmd, const char *opt)
{
    BR_ASSERT(opt != NULL);
    prefix(cmd);
    fprintf(stderr, "unknown option '%s'", opt);
    see_help(cmd);
    return BR_CLI_EXIT_USAGE;
}

int br_cli_missing_value(const char *cmd, const char *opt)
{
    BR_ASSERT(opt != NULL);
    prefix(cmd);
    fprintf(stderr, "%s needs a value", opt);
    see_help(cmd);
    return BR_CLI_EXIT_USAGE;
}

int br_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    BR_ASSERT(fmt != NULL);
    prefix(cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    see_help(cmd);
    return BR_CLI_EXIT_USAGE;
}
