/*
 * cli.h -- the one way every `bookingrush` subcommand reports a usage error,
 * and the build's version.
 *
 * Every subcommand (serve, sim, replay, and any added later) says an unknown
 * option, a missing value or a bad value the same way, on stderr, and exits
 * with BR_CLI_EXIT_USAGE:
 *
 *   bookingrush serve: unknown option '--foo' (see 'bookingrush serve --help')
 *   bookingrush sim: --seed needs a value (see 'bookingrush sim --help')
 *
 * The version is the CMake project version and the commit `git describe`
 * named at build time ("unknown" when the tree was not a git checkout);
 * `bookingrush --version` and the br_build_info metric print the same two
 * strings.
 */
#ifndef BR_CLI_H
#define BR_CLI_H

#define BR_CLI_EXIT_USAGE 2 /* exit status of every usage error */

/* The project version ("0.9.0") and the commit it was built from
 * ("5756a0f1c2d3", "5756a0f1c2d3-dirty" or "unknown"); static strings. */
const char *br_cli_version(void);
const char *br_cli_commit(void);

/* Prints "bookingrush CMD: unknown option 'OPT' (see 'bookingrush CMD
 * --help')" on stderr; cmd NULL means the top level. Returns
 * BR_CLI_EXIT_USAGE, so callers can `return br_cli_unknown_option(...)`. */
int br_cli_unknown_option(const char *cmd, const char *opt);

/* "bookingrush CMD: OPT needs a value (see ...)". Returns BR_CLI_EXIT_USAGE. */
int br_cli_missing_value(const char *cmd, const char *opt);

/* Any other usage error: "bookingrush CMD: MESSAGE (see ...)", the message
 * formatted printf-style. Returns BR_CLI_EXIT_USAGE. */
int br_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
