/*
 * panic.h -- BR_ASSERT, assertions that stay on in release builds.
 *
 * The core does no I/O, so a failed assertion calls br_panic(), which every
 * driver (server, simulator, tests, fuzzers) defines: it prints file:line and
 * the expression and aborts. BR_ASSERT_DEBUG guards expensive checkers and is
 * compiled in unless BR_NDEBUG_CHECKS is defined (release benchmarks only).
 */
#ifndef BR_PANIC_H
#define BR_PANIC_H

#include <stdnoreturn.h>

noreturn void br_panic(const char *file, int line, const char *expr);

#define BR_ASSERT(e) ((e) ? (void)0 : br_panic(__FILE__, __LINE__, #e))

#ifdef BR_NDEBUG_CHECKS
#define BR_ASSERT_DEBUG(e) ((void)0)
#else
#define BR_ASSERT_DEBUG(e) BR_ASSERT(e)
#endif

#endif
