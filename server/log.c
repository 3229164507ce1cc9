/* log.c -- one JSON object per line (see log.h). */
#define _POSIX_C_SOURCE 200809L

#include "server/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

int br_log_level_parse(const char *s, enum br_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, LEVEL_NAMES[i]) == 0) {
            *out = (enum br_log_level)i;
            return 0;
        }
    }
    return -1;
}

int br_log_on(const struct br_log *log, enum br_log_level level)
{
    return log != NULL && level >= log->level;
}

char *br_log_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; s != NULL && s[i] != '\0' && o + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (cap > 0) {
        out[o < cap ? o : cap - 1] = '\0';
    }
    return out;
}

void br_logf(const struct br_log *log, enum br_log_level level, const char *msg,
             const char *fields_fmt, ...)
{
    if (!br_log_on(log, level)) {
        return;
    }
    char line[BR_LOG_LINE_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, LEVEL_NAMES[level], msg);
    size_t len = n > 0 ? (size_t)n : 0;
    if (fields_fmt != NULL && fields_fmt[0] != '\0' && len + 2 < sizeof line) {
        line[len++] = ',';
        va_list ap;
        va_start(ap, fields_fmt);
        int m = vsnprintf(line + len, sizeof line - len, fields_fmt, ap);
        va_end(ap);
        len += m > 0 ? (size_t)m : 0;
    }
    if (len > sizeof line - 3) {
        len = sizeof line - 3; /* cut: still one line, still closed */
    }
    line[len++] = '}';
    line[len++] = '\n';
    for (int tries = 0; tries < 4; tries++) {
        ssize_t w = write(log->fd, line, len);
        if (w >= 0 || errno != EINTR) {
            break;
        }
    }
}
