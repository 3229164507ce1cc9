/*
 * textbuf.c -- see textbuf.h.
 */
#include "server/textbuf.h"

#include <stdarg.h>
#include <stdio.h>

void br_textbuf_printf(struct br_textbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->len < b->cap ? b->p + b->len : NULL, b->len < b->cap ? b->cap - b->len : 0,
                      fmt, ap);
    va_end(ap);
    if (n > 0) {
        b->len += (size_t)n;
    }
}
