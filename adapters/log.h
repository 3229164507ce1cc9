/*
 * log.h -- structured logs: one JSON object per line on stderr.
 *
 *   {"ts":"2026-05-01T12:00:00.123Z","level":"info","msg":"request", ...fields}
 *
 * Every line is valid JSON and valid UTF-8 with a timestamp, whatever a
 * client sent. The fields are a JSON fragment the caller formats
 * ("\"status\":%u,..."); strings that come from outside (clients, paths,
 * libraries, the operator) go through br_log_escape first. As a safety net
 * the writer also replaces raw control bytes and invalid UTF-8 left in a
 * line, and a line too long for BR_LOG_LINE_MAX loses its fields (and says
 * so) rather than being cut mid-string. A line is written with one
 * write(2), so lines from different threads never interleave. The logger
 * is a plain value the server owns and hands to its modules (no mutable
 * global state); a NULL logger logs nothing. br_log_stderr is the constant
 * logger of modules that are given none (info and up, on stderr).
 */
#ifndef BR_LOG_H
#define BR_LOG_H

#include <stddef.h>

enum br_log_level { BR_LOG_DEBUG = 0, BR_LOG_INFO = 1, BR_LOG_WARN = 2, BR_LOG_ERROR = 3 };

#define BR_LOG_LINE_MAX 2048u /* bytes per line */

struct br_log {
    enum br_log_level level; /* lines below it are dropped */
    int fd;                  /* 2 = stderr */
};

/* Info and up on stderr: for adapters and drivers that have no logger. */
extern const struct br_log br_log_stderr;

/* Parses "debug" / "info" / "warn" / "error". Returns 0 or -1. */
int br_log_level_parse(const char *s, enum br_log_level *out);

/* Whether a line at this level would be written (to skip formatting costs). */
int br_log_on(const struct br_log *log, enum br_log_level level);

/* Writes one line: msg plus the optional fields fragment (printf format). */
void br_logf(const struct br_log *log, enum br_log_level level, const char *msg,
             const char *fields_fmt, ...) __attribute__((format(printf, 4, 5)));

/* Copies s into out as the inside of a JSON string: quotes, backslashes and
 * control bytes escaped, valid UTF-8 kept, each byte of an invalid sequence
 * written as \ufffd. Cut (never inside an escape or a character) to fit
 * cap, which must be >= 1. Returns out. */
char *br_log_escape(const char *s, char *out, size_t cap);

#endif
