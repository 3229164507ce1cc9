/*
 * textbuf.h -- printf into a caller's fixed buffer, counting what did not
 * fit (snprintf's contract, carried over many calls).
 *
 * Why: the recorder's and the reconciler's metrics write their exposition
 * text into a buffer the distributed backend owns; one helper instead of a
 * copy in each. Limits: never grows the buffer; len can exceed cap (the
 * text needed), in which case the buffer holds a truncated, terminated
 * prefix, as snprintf does.
 */
#ifndef BR_SERVER_TEXTBUF_H
#define BR_SERVER_TEXTBUF_H

#include <stddef.h>

struct br_textbuf {
    char *p;
    size_t cap;
    size_t len;
};

void br_textbuf_printf(struct br_textbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
