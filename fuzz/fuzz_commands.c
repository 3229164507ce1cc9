/*
 * fuzz_commands.c -- fuzz target: bytes -> command sequence -> the engine.
 *
 * The input drives the shared generator (core/gen.h) through a byte source,
 * so the fuzzer explores sequences of realistic commands (real ids, stale
 * ids, retries, duplicate webhooks, clock skew) rather than bytes the engine
 * would reject at the first check. The first two bytes pick generator
 * parameters (how often a field is broken, zone and queue sizes, the
 * engine's seed), the rest is the sequence; it ends when the bytes do.
 *
 * After every command:
 *   - br_engine_check: every module's checker asserts (no oversell, per-user
 *     limit, exactly-once, conservation of money, queue and heap structure);
 *   - the outcome agrees with the effect list (count and hash);
 *   - the (command, outcome) record survives the journal: it encodes,
 *     decodes to the same values and re-encodes to the same bytes.
 * At the end, the sequence is replayed on a second engine, which must reach
 * the same final digest (the core is deterministic).
 *
 * Built three ways from this one file: libFuzzer, AFL++ (libAFLDriver,
 * persistent mode) and a plain replay main (fuzz/replay_main.c) in the normal
 * sanitized build. A failed assertion aborts through br_panic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/gen.h"
#include "core/journal.h"
#include "core/panic.h"
#include "fuzz/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define COMMANDS_MAX 4096u /* a bound on one input's sequence (a 16 KiB input is ~2,000) */

struct arena_engine {
    struct br_engine e;
    void *mem;
};

/* The record must encode, decode to the same command and outcome, and
 * re-encode to the same bytes. */
static void check_journal_round_trip(const struct br_cmd *c, const struct br_outcome *out)
{
    uint8_t a[BR_JOURNAL_RECORD_MAX], b[BR_JOURNAL_RECORD_MAX];
    size_t n = br_journal_record_encode(a, sizeof a, c, out);
    BR_ASSERT(n > 0); /* the generator only makes representable commands */
    struct br_cmd back;
    struct br_outcome back_out;
    bool has_out = false;
    size_t used = 0;
    int rc = br_journal_record_decode(a, n, &back, &back_out, &has_out, &used);
    BR_ASSERT(rc == BR_OK && used == n && has_out);
    BR_ASSERT(br_journal_cmd_hash(&back) == br_journal_cmd_hash(c));
    BR_ASSERT(br_outcome_hash(&back_out) == br_outcome_hash(out));
    size_t m = br_journal_record_encode(b, sizeof b, &back, &back_out);
    BR_ASSERT(m == n && memcmp(a, b, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    struct br_gen_params p;
    br_gen_params_default(&p);
    br_gen_params_point8(&p); /* point 8: payment_check and check_ms too */
    p.invalid_per_256 = data[0] & 63u;
    p.zone_capacity_max = 1u + (data[1] & 15u);
    p.queue_capacity_max = 4u + 8u * (data[1] >> 4);
    struct br_config cfg;
    br_gen_engine_config(&p, data[0] >> 6, &cfg);

    struct arena_engine a, b;
    a.mem = br_fuzz_engine_open(&a.e, &cfg);
    if (a.mem == NULL) {
        return 0;
    }
    b.mem = br_fuzz_engine_open(&b.e, &cfg);
    if (b.mem == NULL) {
        free(a.mem);
        return 0;
    }
    struct br_gen g;
    br_gen_init(&g, &p);
    struct br_gen_source src;
    br_gen_source_bytes(&src, data + 2, size - 2);
    struct br_cmd c;
    uint64_t replay_digest = br_engine_digest(&b.e);
    for (uint32_t i = 0; i < COMMANDS_MAX && br_gen_next(&g, &src, &c); i++) {
        struct br_outcome out, again;
        int rc = br_engine_apply(&a.e, &c, &out);
        br_engine_check(&a.e);
        BR_ASSERT(rc == out.err && rc <= 0 && rc > -BR_ERR_COUNT);
        uint32_t n;
        const struct br_effect *fx = br_engine_effects(&a.e, &n);
        BR_ASSERT(n == out.effect_count && br_effects_hash(fx, n) == out.effects_hash);
        br_gen_observe(&g, &c, &out, fx, n);
        check_journal_round_trip(&c, &out);
        /* The twin engine sees the same command and must answer the same. */
        br_engine_apply(&b.e, &c, &again);
        BR_ASSERT(br_outcome_hash(&again) == br_outcome_hash(&out));
        replay_digest = br_digest_step(replay_digest, &c, &again);
    }
    BR_ASSERT(br_engine_digest(&a.e) == replay_digest);
    BR_ASSERT(br_engine_final_digest(&a.e) == br_engine_final_digest(&b.e));
    free(a.mem);
    free(b.mem);
    return 0;
}
