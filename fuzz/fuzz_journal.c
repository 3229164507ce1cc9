/*
 * fuzz_journal.c -- fuzz target: the journal decoder (core/journal.h), the
 * boundary where bytes from disk (or a file handed to `replay`) enter.
 *
 * Input: one mode byte, then the journal bytes. Mode bits:
 *   bit 0  fix up checksums before decoding: the header's and every record's
 *          CRC-32C is recomputed over the bytes as given, so the fuzzer gets
 *          past the checksum into the field parsers (without it, almost every
 *          mutation stops at BR_E_CORRUPT);
 *   bit 1  no header: the bytes are records only;
 *   bit 2  apply every decoded command to a small engine with all checkers
 *          on (a damaged but well-formed log must not break the core).
 * The journal bytes are copied into a buffer of exactly their size, so any
 * read past the end is a heap-buffer-overflow under ASan, for libFuzzer,
 * AFL++ and the replay driver alike. Each record whose length fits is also
 * decoded alone, from a buffer of exactly its claimed size -- what a reader
 * that fetches one record at a time hands over -- so a read even one byte
 * past a record's end faults, wherever the record sits in the input.
 *
 * Asserted: decoding never reads out of bounds (ASan); a successful decode
 * consumed at least a record head and at most what was there; a record
 * decodes the same alone as in the stream; a decoded header or record
 * re-encodes to exactly the bytes it came from; a failed decode reports
 * nothing used; the loop advances on every record.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/hash.h"
#include "core/journal.h"
#include "core/panic.h"
#include "fuzz/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MODE_FIX_CRC = 1, MODE_NO_HEADER = 2, MODE_APPLY = 4 };

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* Rewrites every checksum the bytes claim to have (see MODE_FIX_CRC). */
static void fix_checksums(uint8_t *buf, size_t len, bool header)
{
    size_t pos = 0;
    if (header) {
        if (len < 12) {
            return;
        }
        uint32_t hlen = le32(buf + 8);
        if (hlen < 16 || hlen > len) {
            return;
        }
        put_le32(buf + hlen - 4, br_crc32c(0, buf, hlen - 4));
        pos = hlen;
    }
    while (len - pos >= BR_JOURNAL_RECORD_HEAD) {
        uint32_t n = le32(buf + pos);
        if (n > len - pos - BR_JOURNAL_RECORD_HEAD) {
            return;
        }
        put_le32(buf + pos + 4, br_crc32c(0, buf + pos + BR_JOURNAL_RECORD_HEAD, n));
        pos += BR_JOURNAL_RECORD_HEAD + n;
    }
}

/* Decodes the record at rec[0..avail) again from an exact-size copy of its
 * claimed length (when that fits) and asserts the same answer. */
static void check_alone(const uint8_t *rec, size_t avail, int rc, const struct br_cmd *c,
                        size_t used)
{
    if (avail < BR_JOURNAL_RECORD_HEAD) {
        return;
    }
    uint32_t n = le32(rec);
    if (n > avail - BR_JOURNAL_RECORD_HEAD) {
        BR_ASSERT(rc != BR_OK);
        return;
    }
    size_t len = BR_JOURNAL_RECORD_HEAD + (size_t)n;
    uint8_t *alone = malloc(len);
    if (alone == NULL) {
        return;
    }
    memcpy(alone, rec, len);
    struct br_cmd c2;
    struct br_outcome out2;
    bool has_out2 = false;
    size_t used2 = 1234;
    int rc2 = br_journal_record_decode(alone, len, &c2, &out2, &has_out2, &used2);
    BR_ASSERT(rc2 == rc && used2 == used);
    BR_ASSERT(rc != BR_OK || br_journal_cmd_hash(&c2) == br_journal_cmd_hash(c));
    free(alone);
}

struct replay {
    struct br_engine e;
    void *mem; /* NULL until the first decoded record */
};

static void apply_decoded(struct replay *r, const struct br_cmd *c)
{
    if (r->mem == NULL) {
        struct br_config cfg;
        br_fuzz_default_config(1, &cfg);
        r->mem = br_fuzz_engine_open(&r->e, &cfg);
        if (r->mem == NULL) {
            return;
        }
    }
    struct br_outcome out;
    int rc = br_engine_apply(&r->e, c, &out);
    BR_ASSERT(rc == out.err && rc <= 0);
    br_engine_check(&r->e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t mode = data[0];
    size_t len = size - 1;
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data + 1, len);
    if (mode & MODE_FIX_CRC) {
        fix_checksums(buf, len, !(mode & MODE_NO_HEADER));
    }

    size_t pos = 0;
    if (!(mode & MODE_NO_HEADER)) {
        struct br_config cfg;
        size_t used = 1234;
        int rc = br_journal_header_decode(buf, len, &cfg, &used);
        if (rc != BR_OK) {
            BR_ASSERT(used == 0);
            BR_ASSERT(rc == BR_E_TRUNCATED || rc == BR_E_CORRUPT || rc == BR_E_VERSION);
            free(buf);
            return 0;
        }
        BR_ASSERT(used > 0 && used <= len && used <= BR_JOURNAL_HEADER_MAX);
        uint8_t again[BR_JOURNAL_HEADER_MAX];
        size_t n = br_journal_header_encode(again, sizeof again, &cfg);
        if (buf[4] != BR_JOURNAL_VERSION) {
            /* a v1 or v2 header is read and written as v3: the same but for
             * the version and the checksum */
            BR_ASSERT(n == used && memcmp(again, buf, 4) == 0 &&
                      memcmp(again + 8, buf + 8, n - 12) == 0);
        } else {
            BR_ASSERT(n == used && memcmp(again, buf, n) == 0);
        }
        pos = used;
    }

    struct replay r = {.mem = NULL};
    /* Every record takes at least its head, which bounds the loop. */
    for (size_t i = 0; i <= len / BR_JOURNAL_RECORD_HEAD && pos < len; i++) {
        struct br_cmd c;
        struct br_outcome out;
        bool has_out = false;
        size_t used = 1234;
        int rc = br_journal_record_decode(buf + pos, len - pos, &c, &out, &has_out, &used);
        check_alone(buf + pos, len - pos, rc, &c, used);
        if (rc != BR_OK) {
            BR_ASSERT(used == 0);
            BR_ASSERT(rc == BR_E_TRUNCATED || rc == BR_E_CORRUPT);
            break;
        }
        BR_ASSERT(used > BR_JOURNAL_RECORD_HEAD && used <= len - pos);
        BR_ASSERT(used <= BR_JOURNAL_RECORD_MAX);
        BR_ASSERT(c.type > BR_CMD_NONE && c.type < BR_CMD_TYPE_COUNT);
        uint8_t again[BR_JOURNAL_RECORD_MAX];
        size_t n = br_journal_record_encode(again, sizeof again, &c, has_out ? &out : NULL);
        BR_ASSERT(n == used && memcmp(again, buf + pos, n) == 0);
        if (mode & MODE_APPLY) {
            apply_decoded(&r, &c);
        }
        pos += used;
    }
    free(r.mem);
    free(buf);
    return 0;
}
