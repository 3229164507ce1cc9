/*
 * relay.c -- the outbox relay of relay.h: PostgreSQL's outbox rows to Kafka,
 * marked sent only once the broker acknowledged them.
 *
 * One tick = one batch: br_pg_outbox_claim (a transaction holding the rows'
 * locks, SKIP LOCKED so relays in other processes take other rows), produce
 * every row with the idempotent producer, wait for the delivery reports (at
 * most timeout_ms), br_pg_outbox_finish with the ids acknowledged. A row not
 * acknowledged stays unsent and is produced again by a later tick (it may
 * then reach Kafka twice: the consumers are idempotent). A relay killed
 * between the acks and the UPDATE loses its transaction: the rows go out
 * again, none is lost (fault hook BR_FAULT_RELAY_DIE=n: _exit(9) there after
 * the nth batch).
 *
 * Topic map: outbox topic "payments" -> <prefix>payments; anything else ->
 * <prefix>effects with the header type=<outbox topic>.
 * Limits: one batch at most BR_RELAY_BATCH_MAX rows; a tick blocks up to
 * timeout_ms (10 s) while the broker is down, which is why it has its own
 * thread.
 */
#define _POSIX_C_SOURCE 200809L
#include "server/relay.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/clock.h"
#include "adapters/pg_outbox.h"
#include "core/err.h"

#define PREFIX_MAX 64u
#define TOPIC_NAME_MAX (PREFIX_MAX + 32u)

struct br_relay {
    struct br_pg *pg;
    struct br_kafka_producer *prod;
    const struct br_log *log;
    char t_payments[TOPIC_NAME_MAX];
    char t_effects[TOPIC_NAME_MAX];
    uint32_t batch;
    int64_t timeout_ms;
    uint32_t die_after; /* BR_FAULT_RELAY_DIE; 0 = never */
    uint32_t acked_batches;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop; /* under mu */
    _Atomic uint64_t published, failed, batches;
    _Atomic int64_t unsent;
};

int br_relay_new(struct br_relay **out, struct br_pg *pg, const struct br_kafka_config *cfg,
                 uint32_t batch)
{
    *out = NULL;
    const char *prefix = cfg->prefix != NULL ? cfg->prefix : "br.";
    if (pg == NULL || batch < 1 || batch > BR_RELAY_BATCH_MAX || strlen(prefix) >= PREFIX_MAX) {
        return BR_E_INVALID;
    }
    struct br_relay *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return BR_E_IO;
    }
    int rc = br_kafka_producer_new(&r->prod, cfg);
    if (rc != BR_OK) {
        free(r);
        return rc;
    }
    r->pg = pg;
    r->log = cfg->log != NULL ? cfg->log : &br_log_stderr;
    snprintf(r->t_payments, sizeof r->t_payments, "%spayments", prefix);
    snprintf(r->t_effects, sizeof r->t_effects, "%seffects", prefix);
    r->batch = batch;
    r->timeout_ms = BR_RELAY_TIMEOUT_MS_DEFAULT;
    const char *die = getenv("BR_FAULT_RELAY_DIE");
    r->die_after = die != NULL ? (uint32_t)strtoul(die, NULL, 10) : 0;
    pthread_mutex_init(&r->mu, NULL);
    br_clock_cond_init(&r->cv);
    atomic_store(&r->unsent, -1);
    *out = r;
    return BR_OK;
}

void br_relay_set_timeout_ms(struct br_relay *r, int64_t timeout_ms)
{
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : BR_RELAY_TIMEOUT_MS_DEFAULT;
}

int br_relay_tick(struct br_relay *r, uint32_t *sent, int64_t *unsent_left)
{
    *sent = 0;
    struct br_pg_outbox_batch b;
    int rc = br_pg_outbox_claim(r->pg, r->batch, &b);
    if (rc != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    uint32_t b_n = b.n;
    if (b.n > 0) {
        uint32_t n = b.n;
        struct br_kafka_msg *msgs = calloc(n, sizeof *msgs);
        const char **types = calloc(n, sizeof *types);
        bool *acked = calloc(n, sizeof *acked);
        int64_t *ids = calloc(n, sizeof *ids);
        if (msgs == NULL || types == NULL || acked == NULL || ids == NULL) {
            free(msgs);
            free(types);
            free(acked);
            free(ids);
            br_pg_outbox_abort(r->pg, &b);
            return BR_E_UNAVAILABLE;
        }
        for (uint32_t i = 0; i < n; i++) {
            const struct br_pg_outbox_row *row = &b.rows[i];
            bool pay = strcmp(row->topic, "payments") == 0;
            msgs[i].topic = pay ? r->t_payments : r->t_effects;
            msgs[i].key = row->key;
            msgs[i].key_len = strlen(row->key);
            msgs[i].value = row->payload;
            msgs[i].len = row->len;
            msgs[i].partition = -1;
            msgs[i].offset = -1;
            msgs[i].opaque = (void *)(uintptr_t)row;
            types[i] = pay ? NULL : row->topic;
        }
        (void)br_kafka_produce_hdr(r->prod, msgs, n, "type", types, acked, r->timeout_ms);
        uint32_t nacked = 0;
        for (uint32_t i = 0; i < n; i++) {
#ifdef BR_PLANT_RELAY_MARK_BEFORE_ACK
            acked[i] = true; /* planted: every claimed row is marked, acknowledged or not */
#endif
            if (acked[i]) {
                ids[nacked++] = b.rows[i].id;
            }
        }
        r->acked_batches++;
        bool die = r->die_after != 0 && r->acked_batches == r->die_after;
#ifndef BR_PLANT_RELAY_MARK_BEFORE_ACK
        if (die) {
            br_logf(r->log, BR_LOG_WARN, "relay fault: dying before the update",
                    "\"batch\":%" PRIu32 ",\"rows\":%" PRIu32 ",\"acked\":%" PRIu32,
                    r->acked_batches, n, nacked);
            _exit(9);
        }
#endif
        if (nacked > 0) {
            rc = br_pg_outbox_finish(r->pg, &b, ids, nacked);
        } else {
            br_pg_outbox_abort(r->pg, &b);
        }
#ifdef BR_PLANT_RELAY_MARK_BEFORE_ACK
        if (die) {
            _exit(9); /* planted: the rows were marked whatever their acks said */
        }
#endif
        atomic_fetch_add(&r->batches, 1);
        if (rc == BR_OK) {
            *sent = nacked;
            atomic_fetch_add(&r->published, nacked);
            atomic_fetch_add(&r->failed, n - nacked);
        } else {
            atomic_fetch_add(&r->failed, n);
        }
        if (nacked < n) {
            br_logf(r->log, BR_LOG_WARN, "relay rows not acknowledged",
                    "\"rows\":%" PRIu32 ",\"acked\":%" PRIu32 ",\"marked\":%s", n, nacked,
                    rc == BR_OK ? "true" : "false");
        }
        free(msgs);
        free(types);
        free(acked);
        free(ids);
    }
    int64_t left = -1;
    int urc = br_pg_outbox_unsent(r->pg, &left);
    if (urc == BR_OK) {
        atomic_store(&r->unsent, left);
    }
    if (unsent_left != NULL) {
        *unsent_left = left;
    }
    return rc == BR_OK && *sent == b_n ? BR_OK : BR_E_UNAVAILABLE;
}

static void *relay_main(void *arg)
{
    struct br_relay *r = arg;
    for (;;) {
        uint32_t sent = 0;
        int rc = br_relay_tick(r, &sent, NULL);
        int64_t wait = rc == BR_OK && sent == r->batch ? 50 : 200;
        struct timespec dl = br_clock_deadline(wait);
        pthread_mutex_lock(&r->mu);
        while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &dl) == 0) {
        }
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop) {
            return NULL;
        }
    }
}

int br_relay_start(struct br_relay *r)
{
    if (r->running) {
        return BR_OK;
    }
    r->stop = false;
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        return BR_E_IO;
    }
    r->running = true;
    return BR_OK;
}

void br_relay_stop(struct br_relay *r)
{
    if (r == NULL || !r->running) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    r->running = false;
}

void br_relay_stats(const struct br_relay *r, struct br_relay_stats *out)
{
    struct br_relay *m = (struct br_relay *)(uintptr_t)r;
    out->published = atomic_load(&m->published);
    out->failed = atomic_load(&m->failed);
    out->batches = atomic_load(&m->batches);
    out->unsent = atomic_load(&m->unsent);
}

void br_relay_free(struct br_relay *r)
{
    if (r == NULL) {
        return;
    }
    br_relay_stop(r);
    br_kafka_producer_free(r->prod);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
