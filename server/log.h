/*
 * log.h -- structured logs: one JSON object per line on stderr.
 *
 *   {"ts":"2026-05-01T12:00:00.123Z","level":"info","msg":"request", ...fields}
 *
 * The fields are a JSON fragment the caller formats ("\"status\":%u,...");
 * strings that come from clients go through br_log_escape first. A line is
 * written with one write(2), so lines from different threads never
 * interleave. The logger is a plain value the server owns and hands to its
 * modules (no global state); a NULL logger logs nothing.
 */
#ifndef BR_LOG_H
#define BR_LOG_H

#include <stddef.h>

enum br_log_level { BR_LOG_DEBUG = 0, BR_LOG_INFO = 1, BR_LOG_WARN = 2, BR_LOG_ERROR = 3 };

#define BR_LOG_LINE_MAX 2048u /* bytes per line; longer lines are cut */

struct br_log {
    enum br_log_level level; /* lines below it are dropped */
    int fd;                  /* 2 = stderr */
};

/* Parses "debug" / "info" / "warn" / "error". Returns 0 or -1. */
int br_log_level_parse(const char *s, enum br_log_level *out);

/* Whether a line at this level would be written (to skip formatting costs). */
int br_log_on(const struct br_log *log, enum br_log_level level);

/* Writes one line: msg plus the optional fields fragment (printf format). */
void br_logf(const struct br_log *log, enum br_log_level level, const char *msg,
             const char *fields_fmt, ...) __attribute__((format(printf, 4, 5)));

/* Copies s into out as the inside of a JSON string (quotes, backslashes and
 * control bytes escaped, non-ASCII kept), cut to fit cap. Returns out. */
char *br_log_escape(const char *s, char *out, size_t cap);

#endif
