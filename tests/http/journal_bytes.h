/*
 * journal_bytes.h -- the journal's bytes as the suites that damage or
 * tamper with a journal or trace file read them (tests/http/test_http_crash.c,
 * tests/dist/test_dist.c): its little-endian u32 and its record checksum,
 * CRC-32C, computed here bit by bit so that those tests do not take the
 * core's own code (core/hash.h) for the format (core/journal.h). Slow
 * (8 steps a byte): for test files, not for the server.
 */
#ifndef BR_TEST_HTTP_JOURNAL_BYTES_H
#define BR_TEST_HTTP_JOURNAL_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* The little-endian u32 at p (4 bytes readable). */
uint32_t t_le32(const unsigned char *p);

/* CRC-32C (Castagnoli) of p[0..n): a journal record's checksum. */
uint32_t t_crc32c(const unsigned char *p, size_t n);

#endif
