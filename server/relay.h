/*
 * relay.h -- the outbox relay (ISSUE11 §4.6): moves unsent rows of
 * PostgreSQL's outbox table to Kafka and marks sent only the rows the broker
 * acknowledged.
 *
 * One batch = one PG transaction: claim up to `batch` unsent rows in id order
 * (FOR UPDATE SKIP LOCKED, so several relays take disjoint batches), produce
 * them with the idempotent producer (topic "payments" -> <prefix>payments,
 * anything else -> <prefix>effects with header type=<topic>), wait for the
 * acks (bounded, 10 s), mark the acked rows sent, COMMIT. Rows not acked stay
 * unsent and are retried next tick; a relay killed mid-batch rolls back and
 * its rows are sent again (at-least-once; consumers are idempotent).
 * Fault hook for tests: BR_FAULT_RELAY_DIE=n -> _exit(9) after the nth
 * batch's acks, before the UPDATE.
 */
#ifndef BR_RELAY_H
#define BR_RELAY_H

#include <stdint.h>

#include "adapters/kafka.h"
#include "adapters/pg.h"

#define BR_RELAY_BATCH_MAX 10000u
#define BR_RELAY_TIMEOUT_MS_DEFAULT 10000 /* a batch waits this long for its acks */

struct br_relay; /* owns its producer; pg = the process's pool (pg.h: br_pg is a bounded pool);
                    a claim keeps one pooled connection (b->tx) until finish/abort */
int br_relay_new(struct br_relay **r, struct br_pg *pg, const struct br_kafka_config *cfg,
                 uint32_t batch);
/* One batch (claim, produce, mark acked). *sent = rows marked. BR_OK, BR_E_UNAVAILABLE (PG down, or
 * some row not acked: those stay unsent). unsent_left may be NULL; -1 when it could not be counted.
 */
int br_relay_tick(struct br_relay *r, uint32_t *sent, int64_t *unsent_left);
/* Its own thread calling br_relay_tick (every 50 ms after a full batch, else 200 ms). BR_OK,
 * BR_E_IO. */
int br_relay_start(struct br_relay *r);
void br_relay_stop(struct br_relay *r); /* joins; idempotent */
struct br_relay_stats {
    uint64_t published, failed, batches;
    int64_t unsent;
};
void br_relay_stats(const struct br_relay *r, struct br_relay_stats *out); /* for /metrics */
void br_relay_free(struct br_relay *r);                                    /* stops first */
/* Addition to the contract (tests): how long a batch waits for its acks; <= 0 = the default. */
void br_relay_set_timeout_ms(struct br_relay *r, int64_t timeout_ms);

#endif
