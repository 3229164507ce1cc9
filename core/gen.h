/*
 * gen.h -- the command-sequence generator: a stream of numbers in, a
 * plausible stream of commands out.
 *
 * Every driver that needs many realistic command sequences uses this one
 * generator: the fuzzers draw its numbers from the fuzz input's bytes, the
 * differential test against the Lua scripts and the simulator draw them from
 * a seeded br_rng. The generator is a pure value like the rest of the core:
 * no allocation, no clock, no I/O; the caller owns struct br_gen and applies
 * the commands wherever it likes (the engine, Redis, both).
 *
 * Knowing what exists. The generator remembers what the commands it made
 * created -- events, users, passes, holds, payments, refunds owed, sessions -- by
 * watching their outcomes and effects (br_gen_observe, called after every
 * apply). So most commands name real ids and travel deep into the engine's
 * checks, while a controlled share goes wrong the way real clients and
 * workers do:
 *   - ids that are stale (an old pass, a hold already paid), foreign (another
 *     user's pass or hold) or unknown;
 *   - a decline followed by paying for the same hold again (the hold and its
 *     payment become the newest remembered, so the reopened payment is soon
 *     confirmed again: re-confirmation after a decline);
 *   - a repeat of the previous command (a client retry, a webhook redelivery),
 *     idempotency keys from a small pool so keys collide, provider event ids
 *     that repeat;
 *   - with probability invalid_per_256 / 256, one field out of range (a zero
 *     quantity, a lower-case currency, an invalid role, a customer doing an
 *     admin's job).
 * The clock moves forward in small steps, with long jumps now and then (so
 * passes and holds expire and sweeps find work) and small backward steps
 * (clock skew between servers). Every command produced is representable in
 * the journal format (strings terminated, zone_count <= BR_EVENT_ZONES_MAX).
 *
 * Two sources of numbers (struct br_gen_source):
 *   - bytes: each draw below n takes 1 byte (n <= 256), 2 bytes (n <= 65536)
 *     or 4 bytes, little-endian, reduced modulo n; a draw below n <= 1 takes
 *     none. A command takes about 4-12 bytes, the first two choosing the clock
 *     step and the command type, so a small mutation of a fuzz input changes
 *     few commands. When the bytes run out the sequence ends: br_gen_next
 *     returns false (and keeps returning false) and the half-drawn command is
 *     discarded.
 *   - rng: draws come from br_rng_below on a seeded stream; the sequence
 *     never ends, the caller bounds it.
 *
 * Determinism: the same params, the same source and the same observed
 * outcomes give the same commands, on every run and machine.
 *
 * Limits and memory: what the generator remembers lives in fixed arrays
 * inside struct br_gen (about 12 KiB in all, most of it the previous command
 * kept for retries and the id rings). Events and users beyond
 * BR_GEN_EVENTS_MAX / BR_GEN_USERS_MAX are not remembered (their commands
 * still run); the id rings overwrite their oldest entry when full, which is
 * harmless: a forgotten id is only a stale id a real client might still send.
 */
#ifndef BR_GEN_H
#define BR_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "engine.h"
#include "rng.h"

#define BR_GEN_EVENTS_MAX 8      /* events remembered: 24 B each */
#define BR_GEN_USERS_MAX 32      /* users remembered (and distinct emails): 16 B each */
#define BR_GEN_RING_MAX 64       /* passes, holds, payments, refunds, sessions: 24 B each */
#define BR_GEN_PROVIDER_IDS_MAX 8 /* recent provider event ids kept for redelivery */
#define BR_GEN_RETRY 0           /* weights[BR_GEN_RETRY]: repeat the previous command */

_Static_assert(BR_GEN_EVENTS_MAX <= BR_EVENT_ID_MAX, "remembered events have valid ids");

/* What to generate. br_gen_params_default fills a mix that reaches every
 * command type and most error values within a few thousand commands. */
struct br_gen_params {
    int64_t start_ms;            /* the clock's first value (ms since the epoch), >= 0 */
    uint32_t events_max;         /* event_create turns rare beyond this; <= BR_GEN_EVENTS_MAX */
    uint32_t users_max;          /* distinct emails (register turns rare); <= BR_GEN_USERS_MAX */
    uint32_t zone_capacity_max;  /* seats per zone at most, >= 1: small, so zones sell out */
    uint32_t queue_capacity_max; /* an event's queue capacity at most (and the config default) */
    uint32_t idem_keys;          /* reused idempotency keys, >= 1: few, so keys collide */
    uint32_t invalid_per_256;    /* commands (out of 256) with one field deliberately wrong */
    uint16_t weights[BR_CMD_TYPE_COUNT]; /* relative frequency by enum br_cmd_type; index
                                            BR_GEN_RETRY (0, BR_CMD_NONE) = repeat the previous
                                            command; sum in 1..65535 (<= 256: one byte a choice) */
    uint32_t check_per_256;      /* payment_creates (out of 256) with check_ms > 0 (point 8,
                                    saga.h); 0 = all check_ms 0 and no draw for it, so the
                                    sequences are those made before point 8 existed */
    bool waiting_room;           /* issue 13: events draw the waiting room's switches (pacing,
                                    presence, inventory-aware, initial mode, pow bits); false =
                                    no draw for them, so the sequences are those made before
                                    issue 13 (every switch off) */
};

/* One remembered pass, hold, payment or refund owed. */
struct br_gen_ref {
    uint64_t id;
    uint64_t event_id;
    uint64_t user_id; /* the owner */
};

/* A ring of refs: the newest BR_GEN_RING_MAX, oldest overwritten. */
struct br_gen_ring {
    struct br_gen_ref items[BR_GEN_RING_MAX];
    uint32_t count; /* valid items, <= BR_GEN_RING_MAX */
    uint32_t next;  /* where the next push goes */
};

struct br_gen_event {
    uint64_t id;
    uint32_t zone_count;
    bool requires_pass;
    uint64_t owner; /* who created it (0 = the system): queue_mode_set's actor */
};

struct br_gen_user {
    uint64_t id;
    uint8_t role; /* enum br_role, as last seen */
};

struct br_gen {
    struct br_gen_params p;
    uint32_t weight_sum;  /* sum of p.weights */
    int64_t now_ms;       /* the clock of the next command */
    uint64_t generated;   /* commands returned by br_gen_next */
    struct br_gen_event events[BR_GEN_EVENTS_MAX];
    uint32_t event_count;
    struct br_gen_user users[BR_GEN_USERS_MAX];
    uint32_t user_count;
    struct br_gen_ring passes;   /* from pass_issued effects */
    struct br_gen_ring holds;    /* from successful reserves */
    struct br_gen_ring payments; /* from provider_charge effects */
    struct br_gen_ring refunds;  /* payments named by provider_refund effects */
    struct br_gen_ring sessions; /* from session_open; event_id holds the current generation */
    struct br_gen_ring checks;   /* payments named by provider_query / provider_void effects */
    uint64_t provider_ids[BR_GEN_PROVIDER_IDS_MAX]; /* recent provider event ids (ring) */
    uint32_t provider_count;
    uint32_t provider_next;
    uint64_t provider_seq; /* fresh provider event ids are mixes of this counter */
    uint64_t idem_seq;     /* fresh idempotency keys likewise (odd; pool keys are even) */
    struct br_cmd last;    /* the previous command, for retries */
    bool has_last;
};

/* Where the generator's numbers come from (see the header comment). */
struct br_gen_source {
    bool from_bytes;    /* bytes mode (else rng mode) */
    const uint8_t *buf; /* bytes mode: the input, not owned (may be NULL when len is 0) */
    size_t len;
    size_t pos;         /* bytes consumed */
    struct br_rng rng;  /* rng mode */
    bool exhausted;     /* bytes mode: a draw found too few bytes; sticky */
};

/* Fills p with the default mix: 6 events, 24 users, zones of up to 12 seats,
 * queues of up to 64, 4 reused idempotency keys, 8/256 invalid commands.
 * Point 8 is off: no payment_check, every check_ms 0 (a backend without the
 * rule, a Lua twin not yet updated, agrees with these sequences). */
void br_gen_params_default(struct br_gen_params *p);

/* Turns point 8 on in p (after br_gen_params_default; the weights keep
 * their sum): payment_check gets weight 8 (taken from queue_join), and half
 * the payment_creates carry check_ms: 1-4 s (so the clock's jumps make them
 * due), a minute, or BR_PAYMENT_CHECK_MS_MAX; a bad one is just outside
 * BR_PAYMENT_CHECK_MS_MIN..MAX. The driver's answers to provider_query /
 * provider_void are imitated by payment_events whose provider ids repeat
 * per (payment, answer), as "q:<payment>:..." ids do. */
void br_gen_params_point8(struct br_gen_params *p);

/* Turns issue 13's waiting room on in p (after br_gen_params_default and
 * br_gen_params_point8 if wanted; the weights keep their sum): events draw
 * the switches -- inventory-aware three times in four, pacing (60 to 6,000
 * a minute) or none, a presence TTL of 1-5 s (so places lapse within a
 * sequence) or none, an initial mode (paused, passthrough, closed now and
 * then), pow bits (ignored by the core) -- over zones of at most 6 seats
 * (they sell out); queue_mode_set (weight 6: the system, the event's owner,
 * another organizer or a customer, changing mode, max_active, pacing) and
 * presence (weight 14: the server's batches of users seen) join the mix. */
void br_gen_params_waiting_room(struct br_gen_params *p);

/* An engine config sized for sequences of about a thousand commands from p
 * (a fuzz input's worth): large enough that most of them fit, small enough
 * that longer runs fill some tables (BR_E_FULL is an outcome too) and that
 * br_engine_check, which is O(table sizes), stays cheap enough to run after
 * every command. seed seeds the engine. */
void br_gen_engine_config(const struct br_gen_params *p, uint64_t seed, struct br_config *cfg);

/* Starts a generator. p is copied; it must be valid (asserted: the ranges in
 * struct br_gen_params). O(sizeof *g). */
void br_gen_init(struct br_gen *g, const struct br_gen_params *p);

/* A byte source over buf[0..len) (not copied: buf must outlive the source). */
void br_gen_source_bytes(struct br_gen_source *s, const uint8_t *buf, size_t len);

/* An rng source: stream `stream` of seed. Never runs out. */
void br_gen_source_rng(struct br_gen_source *s, uint64_t seed, uint64_t stream);

/* A number in [0, n) (0 when n <= 1, drawing nothing). In bytes mode, 0 once
 * the bytes run out (and s->exhausted is set). O(1). */
uint32_t br_gen_draw(struct br_gen_source *s, uint32_t n);

/* Advances the clock and fills *cmd (zeroed first) with the next command at
 * the new g->now_ms. Returns false when the source ran out (bytes mode),
 * leaving *cmd zeroed and g unchanged. O(BR_GEN_USERS_MAX + BR_GEN_EVENTS_MAX):
 * a few draws and at most a scan of the remembered users and events. */
bool br_gen_next(struct br_gen *g, struct br_gen_source *src, struct br_cmd *cmd);

/* Learns from one applied command: its outcome and the effects it emitted
 * (fx[0..n), may be NULL when n == 0). Call after every apply of a command
 * from br_gen_next, in order. O(n * BR_GEN_RING_MAX). */
void br_gen_observe(struct br_gen *g, const struct br_cmd *cmd, const struct br_outcome *out,
                    const struct br_effect *fx, uint32_t n);

#endif
