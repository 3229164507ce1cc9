/* log.c -- one JSON object per line (see log.h). */
#define _POSIX_C_SOURCE 200809L

#include "adapters/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/panic.h"

#define MSG_MAX 256u /* bytes of the escaped msg */

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

const struct br_log br_log_stderr = {.level = BR_LOG_INFO, .fd = 2};

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

/* Length of the valid UTF-8 sequence of two to four bytes starting at s,
 * 0 if there is none (RFC 3629: no overlong forms, no surrogates, nothing
 * beyond U+10FFFF). s is NUL-terminated: a NUL fails every check. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf; /* the second byte's range */
    size_t n;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : lo;
        hi = c == 0xed ? 0x9f : hi;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

char *br_log_escape(const char *s, char *out, size_t cap)
{
    BR_ASSERT(out != NULL && cap >= 1);
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t o = 0;
    while (*p != '\0') {
        char piece[8];
        size_t n = 1;
        size_t adv = 1;
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            piece[0] = '\\';
            piece[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            n = (size_t)snprintf(piece, sizeof piece, "\\u%04x", (unsigned)c);
        } else if (c < 0x80) {
            piece[0] = (char)c;
        } else if ((adv = utf8_seq(p)) > 0) {
            memcpy(piece, p, adv);
            n = adv;
        } else {
            memcpy(piece, "\\ufffd", 6); /* one replacement per invalid byte */
            n = 6;
            adv = 1;
        }
        if (o + n >= cap) {
            break;
        }
        memcpy(out + o, piece, n);
        o += n;
        p += adv;
    }
    out[o] = '\0';
    return out;
}

/* The safety net: raw control bytes become spaces and bytes of invalid
 * UTF-8 become '?', in place, so a careless field cannot split the line or
 * make it invalid UTF-8. s is NUL-terminated at s[len]. */
static void sanitize(char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20) {
            s[i++] = ' ';
        } else if (c < 0x80) {
            i++;
        } else {
            size_t n = utf8_seq((const unsigned char *)s + i);
            if (n == 0 || n > len - i) {
                s[i++] = '?';
            } else {
                i += n;
            }
        }
    }
}

static size_t line_head(char *line, size_t cap, enum br_log_level level, const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char esc[MSG_MAX];
    br_log_escape(msg, esc, sizeof esc);
    int n = snprintf(line, cap,
                     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, LEVEL_NAMES[level], esc);
    BR_ASSERT(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

void br_logf(const struct br_log *log, enum br_log_level level, const char *msg,
             const char *fields_fmt, ...)
{
    if (!br_log_on(log, level)) {
        return;
    }
    static const char CUT[] = ",\"cut\":true";
    char line[BR_LOG_LINE_MAX];
    size_t len = line_head(line, sizeof line, level, msg);
    if (fields_fmt != NULL && fields_fmt[0] != '\0') {
        /* Room is kept for "}\n" and the NUL after the fields. */
        size_t room = sizeof line - len - 3;
        line[len] = ',';
        va_list ap;
        va_start(ap, fields_fmt);
        int m = vsnprintf(line + len + 1, room, fields_fmt, ap);
        va_end(ap);
        if (m >= 0 && (size_t)m < room) {
            sanitize(line + len + 1, (size_t)m);
            len += 1 + (size_t)m;
        } else {
            memcpy(line + len, CUT, sizeof CUT - 1); /* the fields did not fit: none */
            len += sizeof CUT - 1;
        }
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
