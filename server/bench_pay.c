/*
 * bench_pay.c -- br-bench-pay, numbers for scripts/bench.d/65-payments.sh.
 *
 * Today one mode: --raw-producer, the idempotent producer of adapters/kafka.h
 * (acks=all, linger.ms=5) into a running Kafka (kafka-dev): N messages of S
 * bytes in batches of K, each batch waiting for all its delivery reports
 * (br_kafka_produce, as the relay uses it). Prints one line:
 *   raw producer: N msgs x S B, K per batch: R msg/s, A acked, F failed
 * The webhook -> confirmed latency part of ISSUE11 §4.13 needs the
 * distributed wiring (the saga consumer in the api) and is not here yet.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/clock.h"
#include "adapters/kafka.h"
#include "adapters/log.h"
#include "core/err.h"

static int usage(void)
{
    fprintf(stderr, "usage: br-bench-pay --raw-producer --bootstrap HOST:PORT,... [--messages N]\n"
                    "                    [--size BYTES] [--batch K] [--topic T]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *bootstrap = NULL, *topic = "br.effects";
    unsigned long n = 200000, size = 100, batch = 10000;
    bool raw = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--raw-producer") == 0) {
            raw = true;
        } else if (strcmp(o, "--bootstrap") == 0 && v != NULL) {
            bootstrap = v;
            i++;
        } else if (strcmp(o, "--topic") == 0 && v != NULL) {
            topic = v;
            i++;
        } else if (strcmp(o, "--messages") == 0 && v != NULL) {
            n = strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(o, "--size") == 0 && v != NULL) {
            size = strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(o, "--batch") == 0 && v != NULL) {
            batch = strtoul(v, NULL, 10);
            i++;
        } else {
            return usage();
        }
    }
    if (!raw || bootstrap == NULL || n == 0 || size == 0 || size > 65536 || batch == 0 ||
        batch > 1000000) {
        return usage();
    }
    const struct br_log log = {BR_LOG_WARN, 2};
    struct br_kafka_config cfg = {.bootstrap = bootstrap,
                                  .prefix = "br.",
                                  .group = "bench",
                                  .dlq_after = 1,
                                  .session_timeout_ms = 6000,
                                  .log = &log};
    struct br_kafka_producer *p = NULL;
    if (br_kafka_producer_new(&p, &cfg) != BR_OK) {
        fprintf(stderr, "br-bench-pay: producer not created\n");
        return 1;
    }
    char *value = malloc(size);
    struct br_kafka_msg *m = calloc(batch, sizeof *m);
    char(*keys)[24] = calloc(batch, sizeof *keys);
    bool *acked = calloc(batch, sizeof *acked);
    if (value == NULL || m == NULL || keys == NULL || acked == NULL) {
        return 1;
    }
    memset(value, 'x', size);
    uint64_t ok = 0, failed = 0;
    int64_t t0 = br_clock_mono_us();
    for (unsigned long done = 0; done < n;) {
        uint32_t k = (uint32_t)(n - done < batch ? n - done : batch);
        for (uint32_t i = 0; i < k; i++) {
            snprintf(keys[i], sizeof keys[i], "%lu", (done + i) % 4096);
            m[i] = (struct br_kafka_msg){.topic = topic,
                                         .key = keys[i],
                                         .key_len = strlen(keys[i]),
                                         .value = value,
                                         .len = size};
        }
        (void)br_kafka_produce(p, m, k, acked, 30000);
        for (uint32_t i = 0; i < k; i++) {
            ok += acked[i] ? 1 : 0;
            failed += acked[i] ? 0 : 1;
        }
        done += k;
    }
    double s = (double)(br_clock_mono_us() - t0) / 1e6;
    printf("raw producer: %lu msgs x %lu B, %lu per batch: %.0f msg/s, %" PRIu64 " acked, %" PRIu64
           " failed\n",
           n, size, batch, (double)ok / s, ok, failed);
    br_kafka_producer_free(p);
    free(value);
    free(m);
    free(keys);
    free(acked);
    return failed == 0 ? 0 : 1;
}
