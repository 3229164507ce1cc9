/*
 * make_seeds.c -- writes the committed seed corpora of the core's fuzz
 * targets (fuzz/corpus/fuzz_commands, fuzz/corpus/fuzz_journal), so they
 * can be regenerated when the formats change:
 *     build-asan/tests/fuzz/fuzz_make_seeds fuzz/corpus
 *
 * fuzz_commands seeds are byte strings of several lengths (any bytes are a
 * valid sequence). fuzz_journal seeds are real journals: a header and the
 * records of a generated sequence with its outcomes, the same without a
 * header, and one single record of each command type, each in the input
 * modes fuzz_journal.c documents. Deterministic: the same files every run.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/gen.h"
#include "core/journal.h"
#include "core/rng.h"
#include "fuzz/harness.h"

#define SEED_MAX 65536u

static int write_file(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        fprintf(stderr, "make_seeds: path too long: %s/%s\n", dir, name);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* A journal of n generated commands with outcomes, after one mode byte.
 * Returns its length. With header false, records only. With one_type set,
 * only the first command of that type is written (a one-record journal). */
static size_t journal(uint8_t *out, uint8_t mode, bool header, uint32_t n, uint64_t seed,
                      uint8_t one_type)
{
    struct br_gen_params p;
    br_gen_params_default(&p);
    br_gen_params_point8(&p); /* payment_check, check_ms (journal v2) */
    struct br_config cfg;
    br_gen_engine_config(&p, seed, &cfg);
    struct br_engine e;
    void *mem = br_fuzz_engine_open(&e, &cfg);
    if (mem == NULL) {
        fprintf(stderr, "make_seeds: no engine\n");
        exit(1);
    }
    struct br_gen g;
    br_gen_init(&g, &p);
    struct br_gen_source src;
    br_gen_source_rng(&src, seed, 7);
    size_t len = 0;
    out[len++] = mode;
    if (header) {
        len += br_journal_header_encode(out + len, SEED_MAX - len, &cfg);
    }
    for (uint32_t i = 0; i < 100000u && n > 0; i++) {
        struct br_cmd c;
        struct br_outcome o;
        br_gen_next(&g, &src, &c);
        br_engine_apply(&e, &c, &o);
        uint32_t nfx;
        const struct br_effect *fx = br_engine_effects(&e, &nfx);
        br_gen_observe(&g, &c, &o, fx, nfx);
        if (one_type != BR_CMD_NONE && c.type != one_type) {
            continue;
        }
        size_t w = br_journal_record_encode(out + len, SEED_MAX - len, &c, &o);
        if (w == 0) {
            break;
        }
        len += w;
        n--;
    }
    free(mem);
    return len;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR (writes its fuzz_commands/, fuzz_journal/)\n",
                argv[0]);
        return 2;
    }
    static uint8_t buf[SEED_MAX];
    char dir[1024];
    char name[64];
    int rc = 0;

    snprintf(dir, sizeof dir, "%s/fuzz_commands", argv[1]);
    const size_t lengths[] = {16, 64, 200, 512, 1024, 2048, 4000};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        struct br_rng r;
        br_rng_seed(&r, 1000 + i, 0);
        for (size_t k = 0; k < lengths[i]; k++) {
            buf[k] = (uint8_t)br_rng_next(&r);
        }
        snprintf(name, sizeof name, "random-%zu", lengths[i]);
        rc |= write_file(dir, name, buf, lengths[i]);
    }

    snprintf(dir, sizeof dir, "%s/fuzz_journal", argv[1]);
    static const struct {
        const char *name;
        uint8_t mode;
        bool header;
        uint32_t n;
    } journals[] = {
        {"journal-40", 0, true, 40},        {"journal-40-fixcrc", 1, true, 40},
        {"records-40", 2, false, 40},       {"journal-150-apply", 4, true, 150},
        {"records-60-apply", 6, false, 60}, {"header-only", 0, true, 0},
    };
    for (size_t i = 0; i < sizeof journals / sizeof journals[0]; i++) {
        size_t len = journal(buf, journals[i].mode, journals[i].header, journals[i].n, 11 + i,
                             BR_CMD_NONE);
        rc |= write_file(dir, journals[i].name, buf, len);
    }
    for (uint8_t t = BR_CMD_EVENT_CREATE; t < BR_CMD_TYPE_COUNT; t++) {
        size_t len = journal(buf, 3, false, 1, 5, t); /* one record, ends the input */
        snprintf(name, sizeof name, "one-%s", br_cmd_name(t));
        rc |= write_file(dir, name, buf, len);
    }
    return rc ? 1 : 0;
}
