/*
 * saga.c -- payments and what follows them (state machine in saga.h).
 */
#include "saga.h"

#include <string.h>

#include "engine.h"
#include "hash.h"
#include "panic.h"

struct br_payment *br_saga_payment(const struct br_engine *e, uint64_t payment_id)
{
    uint32_t pi;
    return br_map_get(&e->payments_by_id, payment_id, 0, &pi) ? &e->payments[pi] : NULL;
}

static int64_t backoff_ms(uint32_t attempts)
{
    int64_t d = BR_REFUND_BACKOFF_MS_MIN;
    for (uint32_t i = 1; i < attempts && d < BR_REFUND_BACKOFF_MS_MAX; i++) {
        d *= 2;
    }
    return d < BR_REFUND_BACKOFF_MS_MAX ? d : BR_REFUND_BACKOFF_MS_MAX;
}

static void fill_payment(const struct br_payment *p, struct br_outcome *out)
{
    out->id = p->id;
    out->ref = p->hold_id;
    out->status = p->state;
    out->amount_minor = p->amount_minor;
}

static void emit_payment(struct br_engine *e, uint8_t kind, const struct br_payment *p)
{
    const struct br_hold *h = &e->holds[p->hold];
    struct br_effect *fx = br_engine_emit(e, kind);
    fx->event_id = h->event_id;
    fx->user_id = h->user_id;
    fx->id = p->id;
    fx->ref = h->id;
    fx->amount_minor = p->amount_minor;
}

/* Emits provider_refund and schedules the next attempt in the retry heap. */
static void refund_attempt(struct br_engine *e, struct br_payment *p, int64_t now_ms)
{
    uint32_t pi = (uint32_t)(p - e->payments);
    if (e->payment_pos[pi] != BR_HEAP_NOWHERE) {
        br_heap_remove(&e->refund_heap, pi);
    }
    p->refund_attempts++;
    p->next_attempt_ms = now_ms + backoff_ms(p->refund_attempts);
    int rc = br_heap_push(&e->refund_heap, pi, p->next_attempt_ms, p->id);
    BR_ASSERT(rc == BR_OK); /* the heap holds payments_max */
    emit_payment(e, BR_FX_PROVIDER_REFUND, p);
}

/* The next status query's delay after `attempts` queries (0 = the first). */
static int64_t check_delay_ms(uint32_t check_ms, uint32_t attempts)
{
    uint32_t shift = attempts < 20 ? attempts : 20;
    int64_t d = (int64_t)check_ms << shift;
    return d < BR_PAYMENT_CHECK_BACKOFF_MS_MAX ? d : BR_PAYMENT_CHECK_BACKOFF_MS_MAX;
}

static void check_unschedule(struct br_engine *e, struct br_payment *p)
{
    uint32_t pi = (uint32_t)(p - e->payments);
    if (e->check_pos[pi] != BR_HEAP_NOWHERE) {
        br_heap_remove(&e->check_heap, pi);
    }
}

static void check_schedule(struct br_engine *e, struct br_payment *p, int64_t next_ms)
{
    check_unschedule(e, p);
    p->next_check_ms = next_ms;
    int rc = br_heap_push(&e->check_heap, (uint32_t)(p - e->payments), next_ms, p->id);
    BR_ASSERT(rc == BR_OK); /* the heap holds payments_max */
}

/* payment_create with check_ms > 0 on the payment it returns: (re)start its
 * status queries. */
static void check_open(struct br_engine *e, struct br_payment *p, uint32_t check_ms,
                       int64_t now_ms)
{
    p->check_ms = check_ms;
    p->check_attempts = 0;
    p->check_closed = 0;
    check_schedule(e, p, now_ms + check_ms);
}

int br_saga_payment_create(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    uint32_t check_ms = c->u.payment_create.check_ms;
    if (check_ms != 0 &&
        (check_ms < BR_PAYMENT_CHECK_MS_MIN || check_ms > BR_PAYMENT_CHECK_MS_MAX)) {
        return out->err = BR_E_INVALID;
    }
    struct br_hold *h = br_inventory_hold(e, c->u.payment_create.hold_id);
    if (h == NULL || h->user_id != c->user_id) {
        return out->err = BR_E_NOT_FOUND;
    }
    if (h->state != BR_HOLD_HELD) {
        return out->err = BR_E_BOOKING_NOT_HELD;
    }
    if (br_lapsed(h->deadline_ms, c->now_ms)) {
        return out->err = BR_E_HOLD_EXPIRED;
    }
    struct br_payment *p = h->payment_id ? br_saga_payment(e, h->payment_id) : NULL;
#ifdef BR_PLANT_SECOND_INTENT
    if (p != NULL && p->state == BR_PAY_FAILED) {
        p = NULL; /* planted: a decline opens a second payment (and intent) for the booking */
    }
#endif
    if (p != NULL) {
        /* One booking, one payment: a held hold's payment is pending or
         * failed (a success confirms or releases the hold). The same payment
         * again, and after a decline it is open again (Stripe's intent goes
         * back to requires_payment_method and is confirmed again with another
         * card). The charge is re-emitted: a driver that crashed after the
         * first create may never have sent it, and a reopened payment needs
         * its intent again. */
        BR_ASSERT(p->hold_id == h->id);
        BR_ASSERT(p->state == BR_PAY_PENDING || p->state == BR_PAY_FAILED);
        p->state = BR_PAY_PENDING;
        if (check_ms > 0) {
            check_open(e, p, check_ms, c->now_ms);
        }
        emit_payment(e, BR_FX_PROVIDER_CHARGE, p);
        fill_payment(p, out);
        return out->err = BR_OK;
    }
    if (e->payment_count >= e->cfg.payments_max) {
        return out->err = BR_E_FULL;
    }
    struct br_event *ev = br_catalog_event(e, h->event_id);
    uint32_t pi = e->payment_count++;
    p = &e->payments[pi];
    memset(p, 0, sizeof *p);
    p->id = ((uint64_t)ev->id << 32) | ++ev->payment_seq;
    p->hold_id = h->id;
    p->hold = (uint32_t)(h - e->holds);
    p->state = BR_PAY_PENDING;
    p->amount_minor = h->amount_minor;
    p->created_ms = c->now_ms;
    int rc = br_map_put(&e->payments_by_id, p->id, 0, pi);
    BR_ASSERT(rc == BR_OK);
    h->payment_id = p->id;
    if (check_ms > 0) {
        check_open(e, p, check_ms, c->now_ms);
    }
    emit_payment(e, BR_FX_PROVIDER_CHARGE, p);
    fill_payment(p, out);
    return out->err = BR_OK;
}

int br_saga_payment_event(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    struct br_payment *p = br_saga_payment(e, c->u.payment_event.payment_id);
    if (p == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    fill_payment(p, out);
    int rc = br_map_put(&e->provider_events, c->u.payment_event.provider_event_id, 0, 0);
#ifdef BR_PLANT_DOUBLE_EVENT
    if (rc == BR_E_DUPLICATE) {
        rc = BR_OK; /* planted: a redelivered provider event takes effect again */
        if (p->state == BR_PAY_CONFIRMED) {
            emit_payment(e, BR_FX_BOOKING_CONFIRMED, p);
        }
    }
#endif
    if (rc != BR_OK) {
        return out->err = rc; /* BR_E_DUPLICATE: already applied; BR_E_FULL */
    }
    struct br_hold *h = &e->holds[p->hold];
    bool live = h->state == BR_HOLD_HELD && !br_lapsed(h->deadline_ms, c->now_ms);
    if (!c->u.payment_event.succeeded) {
        if (p->state == BR_PAY_PENDING) {
            p->state = BR_PAY_FAILED; /* the hold stays held: the buyer may pay again */
        }
        if (p->state == BR_PAY_FAILED && p->check_ms > 0 && !live &&
            c->u.payment_event.provider_event_id == br_saga_answer_id(p->id, false, "canceled")) {
            /* The provider cancelled the intent (the void's answer): nothing
             * can be paid any more, nothing left to ask about. A webhook's
             * decline is not final: the next check voids the intent. */
            p->check_closed = 1;
            check_unschedule(e, p);
        }
        fill_payment(p, out);
        return out->err = BR_OK;
    }
    if (p->state != BR_PAY_PENDING && p->state != BR_PAY_FAILED) {
        return out->err = BR_OK; /* this payment's success was applied already */
    }
    check_unschedule(e, p); /* decided: no more status queries */
#ifdef BR_PLANT_CONFIRM_EXPIRED
    live = h->state == BR_HOLD_HELD; /* planted: the deadline is not looked at */
#endif
    if (live) {
        br_inventory_confirm(e, h, p->id);
        p->state = BR_PAY_CONFIRMED;
    } else {
        if (h->state == BR_HOLD_HELD) {
            br_inventory_expire(e, h); /* past its deadline, not yet swept */
        }
        p->state = BR_PAY_REFUND_PENDING;
        refund_attempt(e, p, c->now_ms);
    }
    fill_payment(p, out);
    return out->err = BR_OK;
}

int br_saga_refund_result(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    struct br_payment *p = br_saga_payment(e, c->u.refund_result.payment_id);
    if (p == NULL) {
        return out->err = BR_E_NOT_FOUND;
    }
    if (p->state != BR_PAY_REFUND_PENDING) {
        fill_payment(p, out);
        return out->err = BR_E_DUPLICATE;
    }
    uint32_t pi = (uint32_t)(p - e->payments);
    if (c->u.refund_result.ok) {
        br_heap_remove(&e->refund_heap, pi);
        p->state = BR_PAY_REFUNDED;
        struct br_hold *h = &e->holds[p->hold];
        if (h->state == BR_HOLD_EXPIRED || h->state == BR_HOLD_CANCELLED) {
            struct br_event *ev = br_catalog_event(e, h->event_id);
            BR_ASSERT(ev->bookings[h->state] > 0);
            ev->bookings[h->state]--;
            ev->bookings[BR_HOLD_REFUNDED]++;
            h->state = BR_HOLD_REFUNDED;
        }
        emit_payment(e, BR_FX_NOTIFY, p);
    } else {
        /* The provider refused for now; retry after the backoff. */
        br_heap_remove(&e->refund_heap, pi);
        p->next_attempt_ms = c->now_ms + backoff_ms(p->refund_attempts);
        int rc = br_heap_push(&e->refund_heap, pi, p->next_attempt_ms, p->id);
        BR_ASSERT(rc == BR_OK);
    }
    fill_payment(p, out);
    return out->err = BR_OK;
}

int br_saga_step(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    if (c->u.saga_step.max < 1 || c->u.saga_step.max > BR_SAGA_STEP_MAX) {
        return out->err = BR_E_INVALID;
    }
    uint32_t n = 0;
    while (n < c->u.saga_step.max) {
        const struct br_heap_node *top = br_heap_top(&e->refund_heap);
        if (top == NULL || !br_lapsed(top->deadline_ms, c->now_ms)) {
            break;
        }
        /* refund_attempt re-pushes at now + backoff (>= 1 s), after now. */
        refund_attempt(e, &e->payments[top->item], c->now_ms);
        n++;
    }
    out->count = n;
    out->queue_length = e->refund_heap.count;
    return out->err = BR_OK;
}

int br_saga_payment_check(struct br_engine *e, const struct br_cmd *c, struct br_outcome *out)
{
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    if (c->u.payment_check.max < 1 || c->u.payment_check.max > BR_SAGA_STEP_MAX) {
        return out->err = BR_E_INVALID;
    }
    uint32_t n = 0;
    while (n < c->u.payment_check.max) {
        const struct br_heap_node *top = br_heap_top(&e->check_heap);
        if (top == NULL || !br_lapsed(top->deadline_ms, c->now_ms)) {
            break;
        }
        struct br_payment *p = &e->payments[top->item];
        p->check_attempts++;
        /* the delay is >= 2 s, so the payment goes back after now: the loop ends */
        check_schedule(e, p, c->now_ms + check_delay_ms(p->check_ms, p->check_attempts));
        const struct br_hold *h = &e->holds[p->hold];
        bool live = h->state == BR_HOLD_HELD && !br_lapsed(h->deadline_ms, c->now_ms);
#ifndef BR_PLANT_NO_PAYMENT_CHECK
        emit_payment(e, live ? BR_FX_PROVIDER_QUERY : BR_FX_PROVIDER_VOID, p);
#else
        (void)live; /* planted: nobody asks the provider, a lost webhook is waited on forever */
#endif
        n++;
    }
    out->count = n;
    out->queue_length = e->check_heap.count;
    return out->err = BR_OK;
}

void br_saga_check(const struct br_engine *e)
{
    int64_t charged = 0, refunded = 0, pending = 0, confirmed_value = 0;
    br_heap_check(&e->refund_heap);
    br_heap_check(&e->check_heap);
    for (uint32_t pi = 0; pi < e->payment_count; pi++) {
        const struct br_payment *p = &e->payments[pi];
        const struct br_hold *h = &e->holds[p->hold];
        BR_ASSERT(h->id == p->hold_id && p->amount_minor == h->amount_minor);
        BR_ASSERT((p->state == BR_PAY_REFUND_PENDING) == (e->payment_pos[pi] != BR_HEAP_NOWHERE));
        /* point 8: in the check heap, at its time, exactly while undecided and asked about */
        BR_ASSERT(p->check_ms == 0 || (p->check_ms >= BR_PAYMENT_CHECK_MS_MIN &&
                                       p->check_ms <= BR_PAYMENT_CHECK_MS_MAX));
        bool asked = (p->state == BR_PAY_PENDING || p->state == BR_PAY_FAILED) && p->check_ms > 0 &&
                     !p->check_closed;
        BR_ASSERT(asked == (e->check_pos[pi] != BR_HEAP_NOWHERE));
        if (asked) {
            BR_ASSERT(e->check_heap.nodes[e->check_pos[pi]].deadline_ms == p->next_check_ms);
        }
        if (p->state == BR_PAY_CONFIRMED) {
            BR_ASSERT(h->state == BR_HOLD_CONFIRMED && h->confirmed_by == p->id); /* S5 */
        }
        if (p->state >= BR_PAY_CONFIRMED) {
            charged += p->amount_minor;
        }
        if (p->state == BR_PAY_REFUNDED) {
            refunded += p->amount_minor;
        }
        if (p->state == BR_PAY_REFUND_PENDING) {
            pending += p->amount_minor;
        }
    }
    for (uint32_t hi = 0; hi < e->hold_count; hi++) {
        const struct br_hold *h = &e->holds[hi];
        if (h->state == BR_HOLD_CONFIRMED) {
            confirmed_value += h->amount_minor;
        }
        if (h->state == BR_HOLD_HELD && h->payment_id != 0) {
            /* S5: a held booking's one payment is still open or declined */
            const struct br_payment *p = br_saga_payment(e, h->payment_id);
            BR_ASSERT(p != NULL && p->hold == hi);
            BR_ASSERT(p->state == BR_PAY_PENDING || p->state == BR_PAY_FAILED);
        }
    }
    BR_ASSERT(charged - refunded - pending == confirmed_value); /* S8 */
}

uint64_t br_saga_answer_id(uint64_t payment_id, bool succeeded, const char *token)
{
    char buf[96];
    char digits[24];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + payment_id % 10);
        payment_id /= 10;
    } while (payment_id != 0);
    size_t n = 0;
    buf[n++] = 'q';
    buf[n++] = ':';
    while (nd > 0) {
        buf[n++] = digits[--nd];
    }
    const char *tail = succeeded ? ":succeeded" : ":failed:";
    for (size_t i = 0; tail[i] != 0; i++) {
        buf[n++] = tail[i];
    }
    for (size_t i = 0; !succeeded && token[i] != 0 && n < sizeof buf; i++) {
        buf[n++] = token[i];
    }
    uint64_t h = br_hash64(buf, n, 0);
    return h != 0 ? h : 1;
}
