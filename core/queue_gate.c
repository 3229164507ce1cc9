/*
 * queue_gate.c -- the waiting room's issue 13 rules: admission gate, seats
 * available and sold out, operator modes (queue_mode_set), presence, the
 * admission-rate ring, the wait estimate and the admitter's due rule
 * (queue.h; design in ISSUE13 §2-§5).
 *
 * issue 13: T1 -- STUBS from the contract commit (T0). Every function is a
 * placeholder that changes no state: the command handlers refuse with
 * BR_E_INVALID, the reads answer "nothing" (0, false, gate open, estimate
 * unknown, not due). Pure, no I/O, no clock: now_ms comes from the caller.
 */
#include "queue.h"

#include <string.h>

#include "engine.h"

int br_queue_mode_set(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    (void)e; /* issue 13: T1 */
    (void)c;
    out->err = BR_E_INVALID;
    return out->err;
}

int br_queue_presence(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    (void)e; /* issue 13: T1 */
    (void)c;
    out->err = BR_E_INVALID;
    return out->err;
}

uint32_t br_queue_seats_available(const struct br_event *ev)
{
    (void)ev; /* issue 13: T1 */
    return 0;
}

bool br_queue_sold_out(const struct br_event *ev)
{
    (void)ev; /* issue 13: T1 */
    return false;
}

uint8_t br_queue_gate(const struct br_event *ev, int64_t now_ms)
{
    (void)ev; /* issue 13: T1 */
    (void)now_ms;
    return BR_GATE_OPEN;
}

void br_queue_rate_add(struct br_queue_rate *r, int64_t now_ms, uint32_t admitted)
{
    (void)r; /* issue 13: T1 */
    (void)now_ms;
    (void)admitted;
}

void br_queue_rate_read(const struct br_queue_rate *r, int64_t now_ms, uint32_t *count,
                        int64_t *span_ms)
{
    (void)r; /* issue 13: T1 */
    (void)now_ms;
    *count = 0;
    *span_ms = BR_RATE_BUCKET_MS;
}

void br_queue_estimate(const struct br_event_spec *spec, uint32_t admit_per_min_live,
                       const struct br_queue_rate *rate, uint8_t gate, uint32_t position,
                       uint32_t tick_ms, int64_t now_ms, struct br_queue_estimate *out)
{
    (void)spec; /* issue 13: T1 */
    (void)admit_per_min_live;
    (void)rate;
    (void)gate;
    (void)position;
    (void)tick_ms;
    (void)now_ms;
    out->basis = BR_EST_NONE;
    out->admitted_per_min = 0;
    out->wait_s = UINT32_MAX;
}

void br_queue_due_in_of(const struct br_event *ev, struct br_queue_due_in *in)
{
    (void)ev; /* issue 13: T1 */
    memset(in, 0, sizeof *in);
}

bool br_queue_admit_due(const struct br_queue_due_in *in, int64_t now_ms)
{
    (void)in; /* issue 13: T1 */
    (void)now_ms;
    return false;
}

int br_queue_event_view(const struct br_engine *e, uint64_t event_id, int64_t now_ms,
                        uint32_t tick_ms, struct br_queue_event_view *v)
{
    (void)e; /* issue 13: T1 */
    (void)event_id;
    (void)now_ms;
    (void)tick_ms;
    memset(v, 0, sizeof *v);
    v->join_now.wait_s = UINT32_MAX;
    return BR_E_INVALID;
}

const char *br_queue_mode_name(uint8_t mode)
{
#define BR_QM_NAME(sym, val, name) [val] = name,
    static const char *const names[BR_QUEUE_MODE_COUNT] = {BR_QUEUE_MODE_MAP(BR_QM_NAME)};
#undef BR_QM_NAME
    return mode < BR_QUEUE_MODE_COUNT ? names[mode] : "unknown";
}

const char *br_queue_gate_name(uint8_t gate)
{
#define BR_GATE_NAME(sym, val, name) [val] = name,
    static const char *const names[BR_QUEUE_GATE_COUNT] = {BR_QUEUE_GATE_MAP(BR_GATE_NAME)};
#undef BR_GATE_NAME
    return gate < BR_QUEUE_GATE_COUNT ? names[gate] : "unknown";
}

uint8_t br_queue_mode_parse(const char *name)
{
    for (uint8_t m = 0; m < BR_QUEUE_MODE_COUNT; m++) {
        const char *a = name, *b = br_queue_mode_name(m);
        while (*a != '\0' && *a == *b) { /* no libc here: core_purity */
            a++;
            b++;
        }
        if (*a == *b) {
            return m;
        }
    }
    return BR_QUEUE_MODE_COUNT;
}
