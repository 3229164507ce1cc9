/*
 * test_pg_diff.c -- PostgreSQL's record against the core, on generated
 * command sequences (core/gen.h).
 *
 *   test_pg_diff [--seed FIRST] [--seeds N] [--commands N]   (seeds FIRST.., default 1, 3, 1500)
 *
 * Every command runs through the engine. What the distributed deployment
 * keeps in PostgreSQL is run through the adapter too and must agree:
 *   - user_register (OK or EMAIL_TAKEN in the engine): the same answer and
 *     the same dense id; user_role_set; event_create: the same id, and the
 *     spec reads back equal;
 *   - the session commands: the same outcome field for field (err, id, ref,
 *     status, count, deadline), reuse detection and logout-all included;
 *   - every event-slot command (join ... saga_step, its share per event) is
 *     appended to its event's log and projected in batches with
 *     br_pg_project; after every batch each zone's held and sold equal the
 *     engine's, and at the end every hold's booking (state, quantity,
 *     amount, payment) and every payment (state, refund attempts, next
 *     attempt time) equals the engine's, and the provider event ids match.
 * Each batch is projected twice (exactly once: the second applies nothing).
 * The first difference is printed with the seed and the command number;
 * exit 1. A seed reproduces exactly.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/pg.h"
#include "core/catalog.h"
#include "core/engine.h"
#include "core/err.h"
#include "core/gen.h"
#include "core/inventory.h"
#include "core/saga.h"
#include "tests/pg/pgtest.h"

#define BATCH_MAX 64
#define ENTRY_FX_MAX 64

struct entry {
    char sid[BR_PG_STREAM_ID_MAX];
    struct br_cmd c;
    struct br_outcome o;
    struct br_effect fx[ENTRY_FX_MAX];
    uint32_t nfx;
};

struct run {
    uint64_t seed;
    uint64_t step;
    struct br_engine *e;
    struct br_pg *pg;
    struct entry *pending[BR_GEN_EVENTS_MAX + 1]; /* per event id 1..: BATCH_MAX entries */
    uint32_t npending[BR_GEN_EVENTS_MAX + 1];
    uint64_t sid_seq;
    uint64_t projected;
};

static int fail(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(const struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "DIVERGED seed %" PRIu64 " command %" PRIu64 ": ", r->seed, r->step);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

static void normalise(struct br_event_spec *s)
{
    size_t n = strlen(s->name);
    memset(s->name + n, 0, sizeof s->name - n);
    n = strlen(s->venue);
    memset(s->venue + n, 0, sizeof s->venue - n);
    for (uint32_t z = 0; z < BR_EVENT_ZONES_MAX; z++) {
        if (z >= s->zone_count) {
            memset(&s->zones[z], 0, sizeof s->zones[z]);
            continue;
        }
        n = strlen(s->zones[z].name);
        memset(s->zones[z].name + n, 0, sizeof s->zones[z].name - n);
        n = strlen(s->zones[z].currency);
        memset(s->zones[z].currency + n, 0, sizeof s->zones[z].currency - n);
    }
}

/* ---- the catalog and accounts ------------------------------------------- */

static int catalog(struct run *r, const struct br_cmd *c, const struct br_outcome *o)
{
    uint64_t id = 0;
    int rc;
    if (c->type == BR_CMD_USER_REGISTER && (o->err == BR_OK || o->err == BR_E_EMAIL_TAKEN)) {
        rc = br_pg_user_register(r->pg, c, NULL, NULL, &id);
        if (rc != o->err || (rc == BR_OK && id != o->id)) {
            return fail(r, "user_register: core %s id %" PRIu64 ", pg %s id %" PRIu64,
                        br_err_name(o->err), o->id, br_err_name(rc), id);
        }
    } else if (c->type == BR_CMD_USER_ROLE_SET && o->err == BR_OK) {
        rc = br_pg_user_role_set(r->pg, c->u.user_role_set.target_user_id, c->u.user_role_set.role);
        if (rc != BR_OK) {
            return fail(r, "user_role_set: pg %s", br_err_name(rc));
        }
    } else if (c->type == BR_CMD_EVENT_CREATE && o->err == BR_OK) {
        rc = br_pg_event_create(r->pg, c, NULL, NULL, &id);
        if (rc != BR_OK || id != o->id) {
            return fail(r, "event_create: core id %" PRIu64 ", pg %s id %" PRIu64, o->id,
                        br_err_name(rc), id);
        }
        struct br_pg_event ev;
        struct br_event_spec want = c->u.event_create;
        normalise(&want);
        if (br_pg_event_get(r->pg, id, &ev) != BR_OK || memcmp(&ev.spec, &want, sizeof want) != 0) {
            return fail(r, "event %" PRIu64 ": the spec does not read back equal", id);
        }
    }
    return 0;
}

static int session(struct run *r, const struct br_cmd *c, const struct br_outcome *o)
{
    if (o->err == BR_E_FULL) {
        return 0; /* the engine's table, not a rule: PostgreSQL has no such limit */
    }
    struct br_outcome p;
    switch (c->type) {
    case BR_CMD_SESSION_OPEN:
        br_pg_session_open(r->pg, c, &p);
        break;
    case BR_CMD_SESSION_ROTATE:
        br_pg_session_rotate(r->pg, c, &p);
        break;
    case BR_CMD_SESSION_REVOKE:
        br_pg_session_revoke(r->pg, c, &p);
        break;
    default:
        br_pg_session_revoke_all(r->pg, c, &p);
        break;
    }
    if (p.err != o->err || p.id != o->id || p.ref != o->ref || p.status != o->status ||
        p.count != o->count || p.deadline_ms != o->deadline_ms) {
        return fail(r,
                    "%s: core %s id %" PRIu64 " ref %" PRIu64 " status %u count %u dl %" PRId64
                    "; pg %s id %" PRIu64 " ref %" PRIu64 " status %u count %u dl %" PRId64,
                    br_cmd_name(c->type), br_err_name(o->err), o->id, o->ref, o->status, o->count,
                    o->deadline_ms, br_err_name(p.err), p.id, p.ref, p.status, p.count,
                    p.deadline_ms);
    }
    return 0;
}

/* ---- the log and the projection ----------------------------------------- */

static int check_zones(struct run *r, uint64_t event_id)
{
    const struct br_event *ev = br_catalog_event(r->e, event_id);
    struct br_pg_zone z[BR_EVENT_ZONES_MAX];
    uint32_t n = 0;
    int rc = br_pg_zones(r->pg, event_id, z, &n);
    if (rc != BR_OK || n != ev->spec.zone_count) {
        return fail(r, "event %" PRIu64 ": zones read %s, %u zones", event_id, br_err_name(rc), n);
    }
    for (uint32_t i = 0; i < n; i++) {
        if (z[i].held != ev->zone_held[i] || z[i].sold != ev->zone_sold[i]) {
            return fail(r, "event %" PRIu64 " zone %u: core held %u sold %u, pg held %u sold %u",
                        event_id, i + 1, ev->zone_held[i], ev->zone_sold[i], z[i].held, z[i].sold);
        }
    }
    return 0;
}

static int flush(struct run *r, uint64_t event_id)
{
    uint32_t n = r->npending[event_id];
    if (n == 0) {
        return 0;
    }
    struct br_pg_log_item items[BATCH_MAX];
    for (uint32_t i = 0; i < n; i++) {
        struct entry *en = &r->pending[event_id][i];
        items[i] = (struct br_pg_log_item){en->sid, &en->c, &en->o, en->fx, en->nfx};
    }
    if (getenv("PG_DIFF_TRACE") != NULL) {
        for (uint32_t i = 0; i < n; i++) {
            const struct entry *en = &r->pending[event_id][i];
            fprintf(stderr,
                    "ev %" PRIu64 " %s %s user %" PRIu64 " -> %s id %" PRIu64 " count %u fx %u\n",
                    event_id, en->sid, br_cmd_name(en->c.type), en->c.user_id,
                    br_err_name(en->o.err), en->o.id, en->o.count, en->nfx);
        }
    }
    uint32_t applied = 0;
    int rc = br_pg_project(r->pg, event_id, items, n, &applied);
    if (rc != BR_OK || applied != n) {
        return fail(r, "event %" PRIu64 ": project %s, %u of %u applied", event_id, br_err_name(rc),
                    applied, n);
    }
    rc = br_pg_project(r->pg, event_id, items, n, &applied);
    if (rc != BR_OK || applied != 0) {
        return fail(r, "event %" PRIu64 ": the same batch again: %s, %u applied", event_id,
                    br_err_name(rc), applied);
    }
    r->projected += n;
    r->npending[event_id] = 0;
    return check_zones(r, event_id);
}

static uint64_t event_of(const struct br_cmd *c)
{
    switch (c->type) {
    case BR_CMD_QUEUE_JOIN:
    case BR_CMD_QUEUE_LEAVE:
    case BR_CMD_ADMIT:
        return c->u.admit.event_id;
    case BR_CMD_RESERVE:
        return c->u.reserve.event_id;
    case BR_CMD_SWEEP:
        return c->u.sweep.event_id;
    case BR_CMD_CANCEL:
    case BR_CMD_PAYMENT_CREATE:
        return c->u.cancel.hold_id >> 32;
    case BR_CMD_PAYMENT_EVENT:
        return c->u.payment_event.payment_id >> 32;
    case BR_CMD_REFUND_RESULT:
        return c->u.refund_result.payment_id >> 32;
    default:
        return 0;
    }
}

/* Appends one entry to event_id's log: the effects of that event only. */
static int append(struct run *r, uint64_t event_id, const struct br_cmd *c,
                  const struct br_outcome *o, const struct br_effect *fx, uint32_t nfx)
{
    if (event_id == 0 || event_id > r->e->event_count) {
        return 0; /* no such event: no log to append to (the command failed) */
    }
    struct entry *en = &r->pending[event_id][r->npending[event_id]++];
    en->c = *c;
    en->o = *o;
    en->nfx = 0;
    for (uint32_t i = 0; i < nfx; i++) {
        if (fx[i].event_id == event_id) {
            if (en->nfx == ENTRY_FX_MAX) {
                return fail(r, "more than %u effects in one entry", ENTRY_FX_MAX);
            }
            en->fx[en->nfx++] = fx[i];
        }
    }
    snprintf(
        en->sid, sizeof en->sid, "%" PRIu64 "-%" PRIu64, 1700000000000 + r->sid_seq / 3,
        r->sid_seq %
            3); /* increasing, as Redis makes them (not the command clock, which may step back) */
    r->sid_seq++;
    /* full: project now (the engine has applied this entry's command already) */
    return r->npending[event_id] == BATCH_MAX ? flush(r, event_id) : 0;
}

static int log_entry(struct run *r, const struct br_cmd *c, const struct br_outcome *o,
                     const struct br_effect *fx, uint32_t nfx)
{
    if (c->type != BR_CMD_SAGA_STEP) {
        return append(r, event_of(c), c, o, fx, nfx);
    }
    for (uint64_t ev = 1; ev <= r->e->event_count; ev++) { /* its share per event */
        for (uint32_t i = 0; i < nfx; i++) {
            if (fx[i].event_id == ev) {
                if (append(r, ev, c, o, fx, nfx) != 0) {
                    return 1;
                }
                break;
            }
        }
    }
    return 0;
}

/* ---- the final comparison ----------------------------------------------- */

static int check_holds(struct run *r)
{
    for (uint32_t i = 0; i < r->e->hold_count; i++) {
        const struct br_hold *h = &r->e->holds[i];
        struct br_pg_booking b;
        int rc = br_pg_booking_get(r->pg, h->id, &b);
        if (rc != BR_OK || b.state != h->state || b.quantity != h->quantity ||
            b.total_minor != h->amount_minor || b.user_id != h->user_id ||
            b.zone_id != h->zone_id || b.expires_at_ms != h->deadline_ms ||
            b.payment_id != h->payment_id || b.pass_id != h->pass_id) {
            return fail(r, "hold %" PRIu64 ": core %s qty %u, pg %s %s qty %u", h->id,
                        br_hold_state_name(h->state), h->quantity, br_err_name(rc),
                        br_hold_state_name(b.state), b.quantity);
        }
    }
    for (uint32_t i = 0; i < r->e->payment_count; i++) {
        const struct br_payment *p = &r->e->payments[i];
        struct br_pg_payment q;
        int rc = br_pg_payment_get(r->pg, p->id, &q);
        if (rc != BR_OK || q.state != p->state || q.amount_minor != p->amount_minor ||
            q.booking_id != p->hold_id || q.refund_attempts != p->refund_attempts ||
            (p->state == BR_PAY_REFUND_PENDING && q.next_attempt_ms != p->next_attempt_ms)) {
            return fail(r,
                        "payment %" PRIu64 ": core %s attempts %u next %" PRId64
                        ", pg %s %s attempts %u next %" PRId64,
                        p->id, br_payment_state_name(p->state), p->refund_attempts,
                        p->next_attempt_ms, br_err_name(rc), br_payment_state_name(q.state),
                        q.refund_attempts, q.next_attempt_ms);
        }
    }
    return 0;
}

static int check_end(struct run *r, const char *url)
{
    for (uint64_t ev = 1; ev <= r->e->event_count; ev++) {
        if (flush(r, ev) != 0 || check_zones(r, ev) != 0) {
            return 1;
        }
    }
    if (check_holds(r) != 0) {
        return 1;
    }
    for (uint64_t ev = 1; ev <= r->e->event_count; ev++) {
        const struct br_event *e = br_catalog_event(r->e, ev);
        struct br_pg_progress pr;
        int rc = br_pg_projection_progress(r->pg, ev, &pr);
        if (rc != BR_OK || pr.pass_seq != e->pass_seq || pr.passes_issued != e->passes_issued) {
            return fail(r, "event %" PRIu64 ": core pass_seq %u issued %u, pg %s %u %" PRIu64, ev,
                        e->pass_seq, e->passes_issued, br_err_name(rc), pr.pass_seq,
                        pr.passes_issued);
        }
    }
    long long pev = pgt_scalar(url, "SELECT count(*) FROM processed_provider_events");
    if ((uint32_t)pev != r->e->provider_events.count) {
        return fail(r, "provider events: core %u, pg %lld", r->e->provider_events.count, pev);
    }
    return 0;
}

static int one_seed(uint64_t seed, uint64_t commands)
{
    char url[PGT_URL_MAX], db[64];
    snprintf(db, sizeof db, "t_pg_diff_%ld", (long)getpid()); /* ctest runs two at once */
    pgt_fresh_db(db, url, sizeof url);
    struct run r;
    memset(&r, 0, sizeof r);
    r.seed = seed;
    if (br_pg_open(&r.pg, url, 2, NULL) != BR_OK || br_pg_migrate(r.pg, NULL, NULL) != BR_OK) {
        return fail(&r, "cannot open and migrate %s", url);
    }
    struct br_gen_params gp;
    br_gen_params_default(&gp);
    struct br_config cfg;
    br_gen_engine_config(&gp, seed, &cfg);
    size_t size = br_engine_memory_size(&cfg);
    void *mem = aligned_alloc(64, (size + 63) / 64 * 64);
    r.e = malloc(sizeof *r.e);
    for (uint32_t i = 0; i <= BR_GEN_EVENTS_MAX; i++) {
        r.pending[i] = calloc(BATCH_MAX, sizeof(struct entry));
    }
    int bad = mem == NULL || r.e == NULL || br_engine_init(r.e, &cfg, mem, size) != BR_OK;
    struct br_gen g;
    br_gen_init(&g, &gp);
    struct br_gen_source src;
    br_gen_source_rng(&src, seed, 1);
    for (r.step = 1; !bad && r.step <= commands; r.step++) {
        struct br_cmd c;
        br_gen_next(&g, &src, &c);
        struct br_outcome o;
        br_engine_apply(r.e, &c, &o);
        uint32_t nfx = 0;
        const struct br_effect *fx = br_engine_effects(r.e, &nfx);
        br_gen_observe(&g, &c, &o, fx, nfx);
        if (c.type >= BR_CMD_SESSION_OPEN) {
            bad = session(&r, &c, &o);
        } else if (c.type <= BR_CMD_USER_ROLE_SET) {
            bad = catalog(&r, &c, &o);
        } else {
            bad = log_entry(&r, &c, &o, fx, nfx);
        }
    }
    r.step--;
    if (!bad) {
        bad = check_end(&r, url);
    }
    printf("seed %" PRIu64 ": %" PRIu64 " commands, %u users, %u events, %u holds, %u payments, "
           "%" PRIu64 " log entries projected: %s\n",
           seed, r.step, r.e->user_count, r.e->event_count, r.e->hold_count, r.e->payment_count,
           r.projected, bad ? "DIVERGED" : "agree");
    for (uint32_t i = 0; i <= BR_GEN_EVENTS_MAX; i++) {
        free(r.pending[i]);
    }
    free(r.e);
    free(mem);
    br_pg_close(r.pg);
    return bad;
}

int main(int argc, char **argv)
{
    uint64_t seeds = 0, first = 1, commands = 1500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seeds") == 0) {
            seeds = strtoull(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0) {
            first = strtoull(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--commands") == 0) {
            commands = strtoull(argv[i + 1], NULL, 10);
        } else {
            fprintf(stderr, "usage: test_pg_diff [--seeds N] [--seed S] [--commands N]\n");
            return 2;
        }
    }
    if (seeds == 0) {
        seeds = 3;
    }
    for (uint64_t s = first; s < first + seeds; s++) {
        if (one_seed(s, commands) != 0) {
            return 1;
        }
    }
    return 0;
}
