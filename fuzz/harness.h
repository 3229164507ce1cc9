/*
 * harness.h -- what several fuzz harnesses share: an engine over heap memory
 * sized by the generator's config (core/gen.h), as the harnesses use it.
 * Header-only (static inline): each target is built from its own .c file.
 */
#ifndef BR_FUZZ_HARNESS_H
#define BR_FUZZ_HARNESS_H

#include <stdlib.h>

#include "core/engine.h"
#include "core/gen.h"
#include "core/panic.h"

/* Initialises *e over fresh 16-byte aligned memory for cfg and returns that
 * memory (free it after the engine), or NULL when out of memory. */
static inline void *br_fuzz_engine_open(struct br_engine *e, const struct br_config *cfg)
{
    size_t size = (br_engine_memory_size(cfg) + 15u) & ~(size_t)15u;
    BR_ASSERT(size > 0);
    void *mem = aligned_alloc(16, size);
    if (mem != NULL) {
        int rc = br_engine_init(e, cfg, mem, size);
        BR_ASSERT(rc == BR_OK);
    }
    return mem;
}

/* The generator's default engine config (br_gen_engine_config) with this seed. */
static inline void br_fuzz_default_config(uint64_t seed, struct br_config *cfg)
{
    struct br_gen_params p;
    br_gen_params_default(&p);
    br_gen_engine_config(&p, seed, cfg);
}

#endif
