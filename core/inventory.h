/*
 * inventory.h -- holds: seats claimed while the buyer pays.
 *
 * A reserve checks, in this order (the Lua twin checks in the same order):
 *   1. the event and zone exist, 1 <= quantity <= BR_HOLD_QUANTITY_MAX
 *   2. the idempotency key (same key + same request = the stored answer;
 *      same key + another request = BR_E_IDEMPOTENCY_CONFLICT)
 *   3. the sale is open (now >= sale_opens_at)
 *   4. the pass, when the event requires one
 *   5. the per-user limit: tickets held + bought over the whole sale
 *   6. availability: capacity - sold - held >= quantity
 * and then claims the seats, consumes the pass and records the hold with
 * deadline now + hold_ttl_ms. Expiry is decided by comparing the deadline
 * with now (a hold is live while now < deadline, so at now == deadline it is
 * expired); a sweep returns expired holds' seats in (deadline, id) order, at
 * most n per call, each exactly once. Cancel returns a live hold's seats.
 * Confirming is the saga's (saga.h), through br_inventory_confirm.
 *
 * Invariants (br_inventory_check): per zone, held = sum of live holds'
 * quantities, sold = sum of confirmed quantities, held + sold <= capacity;
 * per member, tickets = held + confirmed quantities of that member's holds.
 */
#ifndef BR_INVENTORY_H
#define BR_INVENTORY_H

#include <stdint.h>

#include "cmd.h"

struct br_engine;

struct br_hold {
    uint64_t id;
    uint64_t event_id;
    uint64_t user_id;
    uint32_t member;       /* member index (per-user limit) */
    uint32_t zone_id;      /* 1-based */
    uint32_t quantity;
    uint8_t state;         /* enum br_hold_state */
    int64_t created_ms;
    int64_t deadline_ms;   /* live while now < deadline */
    int64_t amount_minor;  /* price * quantity */
    uint64_t pass_id;      /* consumed pass, 0 = none */
    uint64_t payment_id;   /* latest payment, 0 = none */
    uint64_t confirmed_by; /* the payment that confirmed it, 0 = none */
    uint32_t next_of_user; /* older hold of the same user: index + 1, 0 = end */
};

struct br_idem {
    uint64_t fingerprint; /* hash of the request's arguments */
    int32_t err;          /* the stored answer */
    uint64_t hold_id;
};

int br_inventory_reserve(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_inventory_cancel(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);
int br_inventory_sweep(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out);

/* The hold with this id, NULL if none. O(1) expected. */
struct br_hold *br_inventory_hold(const struct br_engine *e, uint64_t hold_id);

/* held -> confirmed (seats move from held to sold). The hold must be live. */
void br_inventory_confirm(struct br_engine *e, struct br_hold *h, uint64_t payment_id);

/* held -> expired (seats return). The hold must be held. Emits booking_expired. */
void br_inventory_expire(struct br_engine *e, struct br_hold *h);

/* Asserts the invariants above. O(holds + members). */
void br_inventory_check(const struct br_engine *e);

#endif
