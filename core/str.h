/* str.h -- bounded string helpers for fixed-size fields (C11 has no strnlen). */
#ifndef BR_STR_H
#define BR_STR_H

#include <stddef.h>
#include <string.h>

/* Length of s up to cap bytes (cap when no NUL is found). */
static inline size_t br_strnlen(const char *s, size_t cap)
{
    const char *nul = memchr(s, 0, cap);
    return nul ? (size_t)(nul - s) : cap;
}

#endif
