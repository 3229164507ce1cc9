/*
 * pg_payments.c -- payments in production, PostgreSQL side (pg.h,
 * 0003_payments.sql): the received-fact transaction and the Stripe
 * adapter's payment -> PaymentIntent map.
 *
 * br_pg_fact_ingest writes provider_events_received (ON CONFLICT DO
 * NOTHING) and, only if that inserted, one outbox row (topic "payments",
 * key = the booking id in decimal, or the payment id when the fact has no
 * booking) in ONE transaction: a fact acknowledged to the provider is
 * relayed exactly once from here (the relay may publish it more than once;
 * the saga consumer is idempotent). The outbox payload is the JSON of
 * ISSUE11 §4.4, built here; provider event ids are restricted to printable
 * ASCII without quotes or backslashes (Stripe's "evt_..." and our "q:...")
 * so no escaping is needed. Limits: event id 1..255 bytes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "adapters/pg_internal.h"
#include "core/err.h"

#define FACT_ID_MAX 255u

static const struct br_pg_stmt fact_insert = {
    BR_PG_S_FACT_INSERT, "fact_insert",
    "INSERT INTO provider_events_received (provider_event_id, payment_id, booking_id, succeeded, "
    "source, received_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider_event_id) DO "
    "NOTHING",
    6};
static const struct br_pg_stmt fact_outbox = {
    BR_PG_S_FACT_OUTBOX, "fact_outbox",
    "INSERT INTO outbox (topic, key, payload, source) VALUES ('payments', $1, $2::jsonb, $3)", 3};
static const struct br_pg_stmt stripe_intent_insert = {
    BR_PG_S_STRIPE_INTENT_INSERT, "stripe_intent_insert",
    "INSERT INTO stripe_intents (payment_id, intent_id, created_ms) VALUES ($1, $2, $3) "
    "ON CONFLICT (payment_id) DO NOTHING",
    3};
static const struct br_pg_stmt stripe_intent_get = {
    BR_PG_S_STRIPE_INTENT_GET, "stripe_intent_get",
    "SELECT intent_id FROM stripe_intents WHERE payment_id = $1", 1};

static bool id_ok(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= max || c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
            return false;
        }
    }
    return n > 0;
}

struct fact_arg {
    const struct br_pg_fact *f;
    char key[24];
    char source[8 + FACT_ID_MAX];
    char payload[512];
};

static int fact_body(struct br_pg_tx *t, void *argp)
{
    struct fact_arg *a = argp;
    const struct br_pg_fact *f = a->f;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_text(&p, f->provider_event_id);
    br_pg_p_u64(&p, f->payment_id);
    br_pg_p_u64(&p, f->booking_id);
    br_pg_p_bool(&p, f->succeeded);
    br_pg_p_text(&p, f->source);
    br_pg_p_i64(&p, f->received_ms);
    PGresult *r = br_pg_exec(t, &fact_insert, &p);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, "fact insert");
    if (rc != BR_OK) {
        return rc;
    }
    bool inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
#ifdef BR_PLANT_FACT_NO_DEDUPE
    inserted = true;
#endif
    if (!inserted) {
        return BR_E_DUPLICATE; /* received before: its outbox row exists; nothing written */
    }
    br_pg_params_init(&p);
    br_pg_p_text(&p, a->key);
    br_pg_p_text(&p, a->payload);
    br_pg_p_text(&p, a->source);
    r = br_pg_exec(t, &fact_outbox, &p);
    rc = br_pg_check(t, r, PGRES_COMMAND_OK, "fact outbox");
    if (rc != BR_OK) {
        return rc;
    }
    PQclear(r);
    return BR_OK;
}

int br_pg_fact_ingest(struct br_pg *pg, const struct br_pg_fact *f)
{
    if (f == NULL || f->provider_event_id == NULL || f->source == NULL ||
        !id_ok(f->provider_event_id, FACT_ID_MAX) ||
        (strcmp(f->source, "webhook") != 0 && strcmp(f->source, "query") != 0) ||
        f->payment_id == 0 || f->payment_id > INT64_MAX || f->booking_id > INT64_MAX) {
        return BR_E_INVALID;
    }
    struct fact_arg a = {.f = f};
    snprintf(a.key, sizeof a.key, "%" PRIu64, f->booking_id != 0 ? f->booking_id : f->payment_id);
    snprintf(a.source, sizeof a.source, "fact:%s", f->provider_event_id);
#ifdef BR_PLANT_FACT_NO_DEDUPE
    static unsigned plant_seq; /* planted bug: every delivery a new outbox row */
    snprintf(a.source, sizeof a.source, "fact:%s:%u", f->provider_event_id, ++plant_seq);
#endif
    int n = snprintf(a.payload, sizeof a.payload,
                     "{\"v\":1,\"kind\":\"payment_event\",\"provider_event_id\":\"%s\","
                     "\"payment_id\":%" PRIu64 ",\"booking_id\":%" PRIu64 ",\"succeeded\":%s,"
                     "\"source\":\"%s\",\"received_ms\":%" PRId64 "}",
                     f->provider_event_id, f->payment_id, f->booking_id,
                     f->succeeded ? "true" : "false", f->source, f->received_ms);
    if (n < 0 || (size_t)n >= sizeof a.payload) {
        return BR_E_INVALID;
    }
    return br_pg_run(pg, "fact_ingest", BR_PG_WRITE, fact_body, &a);
}

struct intent_arg {
    uint64_t payment_id;
    const char *intent_id;
    int64_t now_ms;
    char *out;
    bool found;
};

static int intent_read(struct br_pg_tx *t, struct intent_arg *a)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->payment_id);
    PGresult *r = br_pg_exec(t, &stripe_intent_get, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "stripe intent read");
    if (rc != BR_OK) {
        return rc;
    }
    a->found = PQntuples(r) == 1;
    if (a->found) {
        br_pg_str(r, 0, 0, a->out, BR_PROVIDER_ID_MAX);
    }
    PQclear(r);
    return BR_OK;
}

static int intent_get_body(struct br_pg_tx *t, void *argp)
{
    return intent_read(t, argp);
}

static int intent_put_body(struct br_pg_tx *t, void *argp)
{
    struct intent_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_u64(&p, a->payment_id);
    br_pg_p_text(&p, a->intent_id);
    br_pg_p_i64(&p, a->now_ms);
    PGresult *r = br_pg_exec(t, &stripe_intent_insert, &p);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, "stripe intent insert");
    if (rc != BR_OK) {
        return rc; /* 23505 on intent_id: that intent is another payment's (BR_E_DUPLICATE) */
    }
    PQclear(r);
    rc = intent_read(t, a);
    return rc == BR_OK && !a->found ? BR_E_CORRUPT : rc;
}

int br_pg_stripe_intent_get(struct br_pg *pg, uint64_t payment_id, char id_out[BR_PROVIDER_ID_MAX])
{
    id_out[0] = '\0';
    struct intent_arg a = {.payment_id = payment_id, .out = id_out};
    int rc = br_pg_run(pg, "stripe_intent_get", BR_PG_READ, intent_get_body, &a);
    return rc == BR_OK && !a.found ? BR_E_NOT_FOUND : rc;
}

int br_pg_stripe_intent_put(struct br_pg *pg, uint64_t payment_id, const char *intent_id,
                            int64_t now_ms, char winner_out[BR_PROVIDER_ID_MAX])
{
    winner_out[0] = '\0';
    if (intent_id == NULL || !id_ok(intent_id, BR_PROVIDER_ID_MAX - 1)) {
        return BR_E_INVALID;
    }
    struct intent_arg a = {
        .payment_id = payment_id, .intent_id = intent_id, .now_ms = now_ms, .out = winner_out};
    return br_pg_run(pg, "stripe_intent_put", BR_PG_WRITE, intent_put_body, &a);
}
