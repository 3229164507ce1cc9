/*
 * backend_distributed_pay.c -- payments in production in the distributed
 * backend (ISSUE11 §4.1, §4.8, §4.9):
 *
 *   saga worker  a thread of its own (role saga): saga_step when a refund
 *                attempt is due and payment_check when a status check is
 *                due (point 8), both noticed by the roles thread's per-event
 *                reads and handed over here, so provider calls (Stripe: up
 *                to attempts x timeout each) never stall admission and
 *                sweeping. A check's provider_query / provider_void effect
 *                asks the provider (br_provider_query) and its answer
 *                becomes a payment fact: with --kafka stored like a webhook
 *                (br_pg_fact_ingest, source "query") for the consumers,
 *                without applied at once as payment_event.
 *   consumer     (--kafka, role saga) the saga's Kafka consumer of
 *                <prefix>payments: each fact through payment_event.lua,
 *                then its effects (a refund through the provider with
 *                refund-<payment>, then refund_result). Done = applied or
 *                already applied; Redis away = retried, not counted;
 *                anything else (no such payment, a malformed fact) counts
 *                an attempt and is dead-lettered after --kafka-dlq-after.
 *   relay        (--kafka, role relay) server/relay.h on its own thread.
 *   metrics      §4.11's families of the saga, the relay and point 8.
 *
 * Kafka is linked only when adapters/kafka.cmake exists (BR_HAVE_KAFKA);
 * without it --kafka refuses to start. Fault hook: BR_FAULT_SAGA_DIE=n
 * _exits after the nth applied fact, before its offset is stored.
 * Limits: the confirm latency's exact percentiles cover 0..60 s in 1 ms
 * steps (slower ones count in the last step).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/clock.h"
#include "adapters/pg.h"
#include "core/panic.h"
#include "server/api_cmd.h"
#include "server/backend_distributed_int.h"
#include "server/metrics.h"

#ifdef BR_HAVE_KAFKA
#include "adapters/kafka.h"
#include "server/relay.h"
#endif

#define LAT_STEPS 60000u /* 1 ms steps of the confirm latency */
#define LAT_BUCKETS 12u

static const double LAT_BOUNDS[LAT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,    2.5,   5,    10,  30};

enum { CONSUMED_APPLIED, CONSUMED_DUPLICATE, CONSUMED_RETRIED, CONSUMED_COUNT };

struct dist_pay {
    struct br_distributed *x;
    bool kafka;
    pthread_t saga_thread;
    bool saga_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool step_due, check_due; /* handed over by the roles thread */
    _Atomic uint64_t checks[2]; /* query, void */
    _Atomic uint64_t consumed[CONSUMED_COUNT];
    _Atomic uint64_t invalid; /* handler results counting an attempt */
    _Atomic uint64_t applied_total;
    uint64_t die_after; /* BR_FAULT_SAGA_DIE */
    _Atomic uint64_t lat_bucket[LAT_BUCKETS + 1];
    _Atomic uint64_t lat_count;
    _Atomic uint64_t lat_sum_us;
    _Atomic uint32_t *lat_steps; /* LAT_STEPS */
    struct br_effect *check_fx;  /* BR_SAGA_STEP_MAX: a payment_check's effects, copied */
#ifdef BR_HAVE_KAFKA
    struct br_kafka_config kcfg;
    char topic[128];
    struct br_kafka_consumer *consumer;
    struct br_relay *relay;
#endif
};

/* ---- the confirm latency (received by us -> confirmed in Redis) ---- */

static void observe_confirm(struct dist_pay *p, int64_t ms)
{
    if (ms < 0) {
        ms = 0;
    }
    double s = (double)ms / 1000.0;
    unsigned b = 0;
    while (b < LAT_BUCKETS && s > LAT_BOUNDS[b]) {
        b++;
    }
    atomic_fetch_add(&p->lat_bucket[b], 1);
    atomic_fetch_add(&p->lat_count, 1);
    atomic_fetch_add(&p->lat_sum_us, (uint64_t)ms * 1000u);
    uint64_t step = (uint64_t)ms < LAT_STEPS ? (uint64_t)ms : LAT_STEPS - 1;
    atomic_fetch_add(&p->lat_steps[step], 1);
}

/* The q-quantile in seconds of the 1 ms steps (0 when nothing observed). */
static double confirm_quantile(struct dist_pay *p, double q)
{
    uint64_t n = atomic_load(&p->lat_count);
    if (n == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)((double)n * q + 0.999999);
    rank = rank == 0 ? 1 : rank;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < LAT_STEPS; i++) {
        seen += atomic_load(&p->lat_steps[i]);
        if (seen >= rank) {
            return (double)(i + 1) / 1000.0; /* the step's upper edge */
        }
    }
    return (double)LAT_STEPS / 1000.0;
}

/* ---- applying a fact ---- */

static bool confirmed(const struct br_effect *fx, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (fx[i].kind == BR_FX_BOOKING_CONFIRMED) {
            return true;
        }
    }
    return false;
}

/* payment_event for one fact, its effects carried out (a refund: the
 * provider, then refund_result). received_ms < 0: not observed. Returns the
 * apply's result (BR_OK, BR_E_DUPLICATE, the core's refusal, a connection
 * error). */
static int apply_fact(struct br_distributed *x, struct dist_conn *c, const char *fact_id,
                      uint64_t payment_id, bool succeeded, int64_t received_ms)
{
    struct br_cmd cmd;
    br_api_cmd_payment_event(&cmd, fact_id, payment_id, succeeded);
    struct br_outcome out;
    uint32_t n = 0;
    int rc = dist_apply(x, c, &cmd, &out, c->fx, &n);
    if (rc != BR_OK) {
        return rc;
    }
    if (received_ms >= 0 && x->pay != NULL && confirmed(c->fx, n)) {
        observe_confirm(x->pay, br_clock_wall_ms() - received_ms);
    }
    dist_effects(x, c, &cmd, &out, c->fx, n, NULL);
    return BR_OK;
}

/* A status query's answer (point 8) as a fact: stored for the consumers
 * (--kafka) or applied now. Open: nothing (the next check is scheduled). */
static void check_answer(struct br_distributed *x, struct dist_conn *c, const struct br_effect *fx,
                         const struct br_provider_answer *a)
{
    if (a->status == BR_PROVIDER_OPEN || a->fact_key[0] == '\0') {
        return;
    }
#ifdef BR_PLANT_CHECK_ANSWER_DROPPED
    return; /* planted: the provider's answer is never fed back (webhook_lost must fail) */
#endif
    bool ok = a->status == BR_PROVIDER_SUCCEEDED;
    int rc;
    if (x->pay != NULL && x->pay->kafka) {
        struct br_pg_fact f = {.provider_event_id = a->fact_key,
                               .payment_id = fx->id,
                               .booking_id = fx->ref,
                               .succeeded = ok,
                               .source = "query",
                               .received_ms = br_clock_wall_ms()};
        rc = br_pg_fact_ingest(x->cfg.pg, &f);
        dist_note_pg(x, rc);
    } else {
        rc = apply_fact(x, c, a->fact_key, fx->id, ok, -1);
    }
    br_logf(x->cfg.log, rc == BR_OK || rc == BR_E_DUPLICATE ? BR_LOG_INFO : BR_LOG_WARN,
            "payment status fact", "\"payment\":%" PRIu64 ",\"fact\":\"%s\",\"err\":\"%s\"",
            fx->id, a->fact_key, br_err_name(rc));
}

void dist_pay_check_effect(struct br_distributed *x, struct dist_conn *c,
                           const struct br_effect *fx)
{
    bool void_it = fx->kind == BR_FX_PROVIDER_VOID;
    if (x->pay != NULL) {
        atomic_fetch_add(&x->pay->checks[void_it ? 1 : 0], 1);
    }
    const struct br_provider *pv = &x->cfg.payments;
    if (pv->ops == NULL || pv->ops->query == NULL) {
        return; /* a provider without status queries: the webhook alone decides */
    }
    struct br_provider_answer a;
    memset(&a, 0, sizeof a);
    int rc = br_provider_query(pv, fx->id, NULL, void_it, &a);
    if (rc != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_WARN, "payment status query failed: checked again later",
                "\"payment\":%" PRIu64 ",\"void\":%s,\"err\":\"%s\"", fx->id,
                void_it ? "true" : "false", br_err_name(rc));
        return;
    }
    check_answer(x, c, fx, &a);
}

/* ---- the saga worker ---- */

static void saga_run(struct br_distributed *x, struct dist_conn *c, struct br_cmd *cmd)
{
    struct br_outcome out;
    uint32_t n = 0;
    int rc = dist_apply(x, c, cmd, &out, c->fx, &n);
    if (rc != BR_OK) {
        if (rc != BR_E_DUPLICATE) {
            br_logf(x->cfg.log, BR_LOG_WARN, "saga command failed",
                    "\"command\":\"%s\",\"err\":\"%s\"", br_cmd_name(cmd->type), br_err_name(rc));
        }
        return;
    }
    dist_effects(x, c, cmd, &out, c->fx, n, NULL);
}

/* payment_check, then each provider_query / provider_void it emitted. The
 * effects are copied first: applying an answer reuses the slot's scratch. */
static void saga_check(struct br_distributed *x, struct dist_conn *c)
{
    struct dist_pay *p = x->pay;
    struct br_cmd cmd;
    br_api_cmd_payment_check(&cmd);
    struct br_outcome out;
    uint32_t n = 0;
    int rc = dist_apply(x, c, &cmd, &out, c->fx, &n);
    if (rc != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_WARN, "saga command failed",
                "\"command\":\"payment_check\",\"err\":\"%s\"", br_err_name(rc));
        return;
    }
    if (n > BR_SAGA_STEP_MAX) {
        n = BR_SAGA_STEP_MAX;
    }
    memcpy(p->check_fx, c->fx, n * sizeof *c->fx);
    for (uint32_t i = 0; i < n; i++) {
        if (p->check_fx[i].kind == BR_FX_PROVIDER_QUERY ||
            p->check_fx[i].kind == BR_FX_PROVIDER_VOID) {
            dist_pay_check_effect(x, c, &p->check_fx[i]);
        }
    }
}

static void *saga_main(void *arg)
{
    struct dist_pay *p = arg;
    struct br_distributed *x = p->x;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (!p->step_due && !p->check_due) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        bool step = p->step_due, check = p->check_due;
        p->step_due = p->check_due = false;
        pthread_mutex_unlock(&p->mu);
        struct dist_conn *c = NULL;
        if (dist_take_for_write(x, &c) == BR_OK) {
            struct br_cmd cmd;
            if (step) {
                br_api_cmd_saga_step(&cmd);
                saga_run(x, c, &cmd);
            }
            if (check) {
                saga_check(x, c);
            }
            dist_conn_give(x, c);
        }
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void dist_pay_kick(struct br_distributed *x, bool step_due, bool check_due)
{
    struct dist_pay *p = x->pay;
    if (p == NULL || (!step_due && !check_due)) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->step_due = p->step_due || step_due;
    p->check_due = p->check_due || check_due;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* ---- the saga's Kafka consumer ---- */

#ifdef BR_HAVE_KAFKA
static int consume(void *ctx, const struct br_kafka_msg *m)
{
    struct dist_pay *p = ctx;
    struct br_distributed *x = p->x;
    json_error_t jerr;
    json_t *j = json_loadb(m->value, m->len, 0, &jerr);
    const char *id = json_string_value(json_object_get(j, "provider_event_id"));
    json_t *pay = json_object_get(j, "payment_id");
    json_t *ok = json_object_get(j, "succeeded");
    json_t *rcv = json_object_get(j, "received_ms");
    const char *kind = json_string_value(json_object_get(j, "kind"));
    if (!json_is_object(j) || json_integer_value(json_object_get(j, "v")) != 1 || kind == NULL ||
        strcmp(kind, "payment_event") != 0 || id == NULL || id[0] == '\0' ||
        !json_is_integer(pay) || json_integer_value(pay) <= 0 || !json_is_boolean(ok)) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "malformed payment fact",
                "\"partition\":%d,\"offset\":%" PRId64, (int)m->partition, m->offset);
        json_decref(j);
        atomic_fetch_add(&p->invalid, 1);
        return BR_E_INVALID;
    }
    char fact[256];
    snprintf(fact, sizeof fact, "%s", id);
    uint64_t payment = (uint64_t)json_integer_value(pay);
    bool succeeded = json_is_true(ok);
    int64_t received = json_is_integer(rcv) ? (int64_t)json_integer_value(rcv) : -1;
    json_decref(j);

    struct dist_conn *c = NULL;
    int rc = dist_take_for_write(x, &c);
    if (rc == BR_OK) {
        rc = apply_fact(x, c, fact, payment, succeeded, received);
        dist_conn_give(x, c);
    }
    if (rc == BR_OK) {
        atomic_fetch_add(&p->consumed[CONSUMED_APPLIED], 1);
        uint64_t k = atomic_fetch_add(&p->applied_total, 1) + 1;
        if (p->die_after != 0 && k >= p->die_after) {
            br_logf(x->cfg.log, BR_LOG_WARN, "BR_FAULT_SAGA_DIE: exiting before the offset",
                    "\"applied\":%" PRIu64, k);
            _exit(9);
        }
        return BR_OK;
    }
    if (rc == BR_E_DUPLICATE) {
        atomic_fetch_add(&p->consumed[CONSUMED_DUPLICATE], 1);
        return BR_E_DUPLICATE;
    }
    if (rc == BR_E_UNAVAILABLE || rc == BR_E_UNKNOWN_OUTCOME || rc == BR_E_OVERLOADED ||
        rc == BR_E_IO) {
        atomic_fetch_add(&p->consumed[CONSUMED_RETRIED], 1);
        return BR_E_UNAVAILABLE;
    }
    br_logf(x->cfg.log, BR_LOG_WARN, "payment fact refused",
            "\"payment\":%" PRIu64 ",\"fact\":\"%s\",\"partition\":%d,\"offset\":%" PRId64
            ",\"err\":\"%s\"",
            payment, fact, (int)m->partition, m->offset, br_err_name(rc));
    atomic_fetch_add(&p->invalid, 1);
    return rc;
}
#endif

/* ---- lifecycle ---- */

int dist_pay_open(struct br_distributed *x)
{
    struct dist_pay *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return BR_E_IO;
    }
    p->lat_steps = calloc(LAT_STEPS, sizeof *p->lat_steps);
    p->check_fx = calloc(BR_SAGA_STEP_MAX, sizeof *p->check_fx);
    if (p->lat_steps == NULL || p->check_fx == NULL) {
        free(p->lat_steps);
        free(p->check_fx);
        free(p);
        return BR_E_IO;
    }
    p->x = x;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    const char *die = getenv("BR_FAULT_SAGA_DIE");
    p->die_after = die != NULL ? strtoull(die, NULL, 10) : 0;
    x->pay = p;
    const char *bs = x->cfg.kafka_bootstrap;
    p->kafka = bs != NULL && bs[0] != '\0';
    if (!p->kafka) {
        return BR_OK;
    }
#ifdef BR_HAVE_KAFKA
    p->kcfg = (struct br_kafka_config){
        .bootstrap = bs,
        .prefix = x->cfg.kafka_prefix != NULL ? x->cfg.kafka_prefix : "br.",
        .group = x->cfg.kafka_group != NULL ? x->cfg.kafka_group : "br-saga",
        .dlq_after = x->cfg.kafka_dlq_after > 0 ? x->cfg.kafka_dlq_after : 5,
        .session_timeout_ms =
            x->cfg.kafka_session_timeout_ms > 0 ? x->cfg.kafka_session_timeout_ms : 45000,
        .log = x->cfg.log};
    snprintf(p->topic, sizeof p->topic, "%spayments", p->kcfg.prefix);
    if ((x->cfg.roles & BR_DIST_ROLE_RELAY) &&
        br_relay_new(&p->relay, x->cfg.pg, &p->kcfg,
                     x->cfg.relay_batch > 0 ? x->cfg.relay_batch : 500) != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "cannot make the outbox relay's producer", NULL);
        return BR_E_IO;
    }
    return BR_OK;
#else
    br_logf(x->cfg.log, BR_LOG_ERROR, "--kafka: this binary was built without Kafka "
                                      "(librdkafka-dev; scripts/install-deps.sh)",
            NULL);
    return BR_E_INVALID;
#endif
}

int dist_pay_start(struct br_distributed *x)
{
    struct dist_pay *p = x->pay;
    if (p == NULL) {
        return BR_OK;
    }
    if ((x->cfg.roles & BR_DIST_ROLE_SAGA) &&
        pthread_create(&p->saga_thread, NULL, saga_main, p) != 0) {
        return BR_E_IO;
    }
    p->saga_started = (x->cfg.roles & BR_DIST_ROLE_SAGA) != 0;
#ifdef BR_HAVE_KAFKA
    if (p->kafka && (x->cfg.roles & BR_DIST_ROLE_SAGA) &&
        br_kafka_consumer_start(&p->consumer, &p->kcfg, p->topic, consume, p) != BR_OK) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "cannot start the saga's consumer",
                "\"topic\":\"%s\"", p->topic);
        return BR_E_IO;
    }
    if (p->relay != NULL && br_relay_start(p->relay) != BR_OK) {
        return BR_E_IO;
    }
#endif
    return BR_OK;
}

void dist_pay_close(struct br_distributed *x)
{
    struct dist_pay *p = x->pay;
    if (p == NULL) {
        return;
    }
#ifdef BR_HAVE_KAFKA
    if (p->consumer != NULL) {
        br_kafka_consumer_stop(p->consumer);
        p->consumer = NULL;
    }
    if (p->relay != NULL) {
        br_relay_free(p->relay);
        p->relay = NULL;
    }
#endif
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->saga_started) {
        pthread_join(p->saga_thread, NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->lat_steps);
    free(p->check_fx);
    free(p);
    x->pay = NULL;
}

/* ---- metrics (§4.11) ---- */

void dist_pay_metrics(struct br_distributed *x, struct br_metrics_sink *out)
{
    struct dist_pay *p = x->pay;
    if (p == NULL) {
        return;
    }
    br_metrics_printf(out,
                      "# HELP br_payment_checks_total Payment status checks asked of the "
                      "provider (point 8), by kind.\n"
                      "# TYPE br_payment_checks_total counter\n"
                      "br_payment_checks_total{kind=\"query\"} %" PRIu64 "\n"
                      "br_payment_checks_total{kind=\"void\"} %" PRIu64 "\n",
                      (uint64_t)atomic_load(&p->checks[0]), (uint64_t)atomic_load(&p->checks[1]));
    uint64_t dlq = 0;
    int64_t lag = 0;
    uint64_t published = 0, failed = 0;
    int64_t unsent = 0;
#ifdef BR_HAVE_KAFKA
    if (p->consumer != NULL) {
        struct br_kafka_stats ks;
        br_kafka_consumer_stats(p->consumer, &ks);
        dlq = ks.dead_lettered;
        lag = ks.lag;
    }
    if (p->relay != NULL) {
        struct br_relay_stats rs;
        br_relay_stats(p->relay, &rs);
        published = rs.published;
        failed = rs.failed;
        unsent = rs.unsent;
    }
#endif
    br_metrics_printf(out,
                      "# HELP br_saga_consumed_total Payment facts the saga's consumer took "
                      "from Kafka, by result.\n"
                      "# TYPE br_saga_consumed_total counter\n"
                      "br_saga_consumed_total{result=\"applied\"} %" PRIu64 "\n"
                      "br_saga_consumed_total{result=\"duplicate\"} %" PRIu64 "\n"
                      "br_saga_consumed_total{result=\"retried\"} %" PRIu64 "\n"
                      "# HELP br_saga_dlq_total Payment facts dead-lettered after repeated "
                      "failures.\n"
                      "# TYPE br_saga_dlq_total counter\nbr_saga_dlq_total %" PRIu64 "\n"
                      "# HELP br_saga_lag Messages of the payments topic not yet consumed "
                      "(assigned partitions).\n"
                      "# TYPE br_saga_lag gauge\nbr_saga_lag %" PRId64 "\n",
                      (uint64_t)atomic_load(&p->consumed[CONSUMED_APPLIED]),
                      (uint64_t)atomic_load(&p->consumed[CONSUMED_DUPLICATE]),
                      (uint64_t)atomic_load(&p->consumed[CONSUMED_RETRIED]), dlq, lag);
    br_metrics_printf(out,
                      "# HELP br_outbox_unsent Outbox rows not yet relayed, as the relay last "
                      "counted.\n"
                      "# TYPE br_outbox_unsent gauge\nbr_outbox_unsent %" PRId64 "\n"
                      "# HELP br_relay_published_total Outbox rows the broker acknowledged.\n"
                      "# TYPE br_relay_published_total counter\nbr_relay_published_total "
                      "%" PRIu64 "\n"
                      "# HELP br_relay_failed_total Outbox rows produced and not acknowledged "
                      "(sent again later).\n"
                      "# TYPE br_relay_failed_total counter\nbr_relay_failed_total %" PRIu64 "\n",
                      unsent, published, failed);
    br_metrics_printf(out,
                      "# HELP br_payment_confirm_seconds From a payment fact received to its "
                      "booking confirmed.\n"
                      "# TYPE br_payment_confirm_seconds histogram\n");
    uint64_t cum = 0;
    for (unsigned b = 0; b < LAT_BUCKETS; b++) {
        cum += atomic_load(&p->lat_bucket[b]);
        br_metrics_printf(out, "br_payment_confirm_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                          LAT_BOUNDS[b], cum);
    }
    uint64_t count = atomic_load(&p->lat_count);
    br_metrics_printf(out,
                      "br_payment_confirm_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                      "br_payment_confirm_seconds_sum %.6f\n"
                      "br_payment_confirm_seconds_count %" PRIu64 "\n",
                      count, (double)atomic_load(&p->lat_sum_us) / 1e6, count);
    br_metrics_printf(out,
                      "# HELP br_payment_confirm_p50_seconds Median of br_payment_confirm_seconds "
                      "(1 ms steps).\n"
                      "# TYPE br_payment_confirm_p50_seconds gauge\n"
                      "br_payment_confirm_p50_seconds %.3f\n"
                      "# HELP br_payment_confirm_p99_seconds 99th percentile of "
                      "br_payment_confirm_seconds (1 ms steps).\n"
                      "# TYPE br_payment_confirm_p99_seconds gauge\n"
                      "br_payment_confirm_p99_seconds %.3f\n",
                      confirm_quantile(p, 0.50), confirm_quantile(p, 0.99));
}
