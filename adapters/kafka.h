/*
 * kafka.h -- Kafka through librdkafka (2.0.2): the idempotent producer the
 * outbox relay uses (server/relay.h) and the saga's consumer loop with its
 * dead-letter topic (docs: ISSUE11 §4.6, §4.9).
 *
 * Producer: enable.idempotence=true, acks=all, linger.ms=5. br_kafka_produce
 * hands a batch to librdkafka and waits (bounded) for the delivery report of
 * each message: a message counts as sent only when the broker acknowledged it.
 * Messages not acked by the deadline stay in librdkafka's queue (they may
 * still be delivered later: duplicates across calls are possible, consumers
 * are idempotent).
 *
 * Consumer: its own thread, one consumer group member, offsets stored only
 * after the handler said "done" (at-least-once). A failing message is retried
 * by seeking back to it with a backoff (200 ms x2 .. 10 s per partition); the
 * thread never sleeps: it waits at most one poll (100 ms), a seek (2 s) or a
 * dead-letter ack (5 s), so librdkafka's max.poll.interval.ms (300 s) is at
 * risk only from a handler that blocks that long. After dlq_after failed attempts of
 * one message it is produced to "<topic>.dlq" (same key and value, headers
 * error=<br_err name>, attempts=<n>, src=<topic>/<partition>/<offset>), its ack
 * awaited, and only then its offset stored.
 *
 * Errors of librdkafka are translated here to enum br_err and logged with
 * librdkafka's own message; librdkafka's log lines go through our log,
 * rate-limited (at most 10 lines per 10 s per client; the number dropped is
 * logged with the next line let through).
 */
#ifndef BR_KAFKA_H
#define BR_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/log.h"

struct br_kafka_producer;
struct br_kafka_consumer;

struct br_kafka_config {
    const char *bootstrap;       /* "h:p,h:p" */
    const char *prefix;          /* "br." */
    const char *group;           /* consumer group */
    unsigned dlq_after;          /* >= 1 */
    uint32_t session_timeout_ms; /* 6000 in tests, 45000 default */
    const struct br_log *log;
};

struct br_kafka_msg { /* borrowed for the call */
    const char *topic;
    const char *key;
    size_t key_len;
    const char *value;
    size_t len;
    int32_t partition;
    int64_t offset;
    void *opaque; /* producer: the caller's row */
};

/* producer: enable.idempotence=true, acks=all, linger.ms=5.
 * BR_OK, BR_E_INVALID (bad config), BR_E_IO. */
int br_kafka_producer_new(struct br_kafka_producer **p, const struct br_kafka_config *cfg);
/* Produces msgs[0..n) (topic = full name) and waits at most timeout_ms for their delivery reports;
 * acked[i] set for each the broker acknowledged. BR_OK when all were, BR_E_UNAVAILABLE otherwise.
 */
int br_kafka_produce(struct br_kafka_producer *p, const struct br_kafka_msg *msgs, uint32_t n,
                     bool *acked, int64_t timeout_ms);
void br_kafka_producer_free(struct br_kafka_producer *p);
/* Addition to the contract: br_kafka_produce with one header per message, named hdr_name, value
 * hdr_val[i] (a string; none when NULL or hdr_val is NULL). The relay's "type" header. */
int br_kafka_produce_hdr(struct br_kafka_producer *p, const struct br_kafka_msg *msgs, uint32_t n,
                         const char *hdr_name, const char *const *hdr_val, bool *acked,
                         int64_t timeout_ms);

/* consumer: its own thread; handler results: BR_OK, BR_E_DUPLICATE = done (offset stored);
 * BR_E_UNAVAILABLE = retry with backoff, not counted; anything else = one failed attempt,
 * dead-lettered to <topic>.dlq after dlq_after. */
typedef int (*br_kafka_handler)(void *ctx, const struct br_kafka_msg *m);
int br_kafka_consumer_start(struct br_kafka_consumer **c, const struct br_kafka_config *cfg,
                            const char *topic, br_kafka_handler fn, void *ctx);
void br_kafka_consumer_stop(struct br_kafka_consumer *c); /* joins, closes, frees */
/* consumed: handler said BR_OK; duplicates: said BR_E_DUPLICATE; retried: each not-done result
 * (seek back + backoff); dead_lettered: copies acknowledged on <topic>.dlq; lag: sum over the
 * assigned partitions of high watermark - position (refreshed every second); produced /
 * produce_failed: a producer's delivery reports (for a consumer: its DLQ producer's). */
struct br_kafka_stats {
    uint64_t produced, produce_failed, consumed, duplicates, retried, dead_lettered;
    int64_t lag;
};
void br_kafka_consumer_stats(const struct br_kafka_consumer *c, struct br_kafka_stats *out);
void br_kafka_producer_stats(const struct br_kafka_producer *p, struct br_kafka_stats *out);

#endif
