/*
 * test_kafka.c -- the Kafka adapter (adapters/kafka.h), the outbox SQL
 * (adapters/pg_outbox.h) and the relay (server/relay.h) against `bookingrush
 * kafka-dev` (tests/fixtures/kafka.sh) and PostgreSQL (tests/fixtures/pg.sh).
 *
 * The kafka-dev of a run is shared by its tests, so every test tags its
 * messages with a fresh run tag and ignores (answers "done" to) any other
 * message; every consumer uses a fresh group. Waits are polls with
 * deadlines (a group join takes ~3 s, a dead member's session 6 s).
 * The cases that kill a process re-run this binary as a child
 * (--relay-child, --consume-child) so the child is single-threaded at fork.
 * Each property is seen to fail with its bug planted (scripts/test.d/
 * 54-kafka-plant.sh): KAFKA_ACK_ON_ENQUEUE, RELAY_MARK_BEFORE_ACK,
 * RELAY_NO_LOCK, SAGA_STORE_FIRST, KAFKA_NO_DLQ.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/clock.h"
#include "adapters/kafka.h"
#include "adapters/log.h"
#include "adapters/pg.h"
#include "adapters/pg_outbox.h"
#include "core/err.h"
#include "server/relay.h"
#include "tests/pg/pgtest.h"

#define WAIT_MS 25000

static char g_bootstrap[512];
static char g_kstate[512];
static bool g_own_kafka;
static const char *g_self;
static const struct br_log quiet = {BR_LOG_WARN, 2};

/* ---- helpers --------------------------------------------------------------- */

static void tag_new(char *out, size_t cap, const char *what)
{
    snprintf(out, cap, "%s-%ld-%lld", what, (long)getpid(), (long long)br_clock_mono_us());
}

static struct br_kafka_config kcfg(const char *group, unsigned dlq_after)
{
    struct br_kafka_config c = {.bootstrap = g_bootstrap,
                                .prefix = "br.",
                                .group = group,
                                .dlq_after = dlq_after,
                                .session_timeout_ms = 6000,
                                .log = &quiet};
    return c;
}

/* A producer on the fixture's broker (the config is copied: it may go). */
static struct br_kafka_producer *producer_new(void)
{
    struct br_kafka_config c = kcfg("unused", 3);
    struct br_kafka_producer *p = NULL;
    assert_int_equal(br_kafka_producer_new(&p, &c), BR_OK);
    return p;
}

static int ctl(const char *line)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/tests/fixtures/kafka.sh ctl %s %s >/dev/null", BR_SOURCE_DIR,
             g_kstate, line);
    return system(cmd);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A collector: a consumer of a topic that counts the values starting with a tag. */
#define SEEN_MAX 1024
struct seen {
    pthread_mutex_t mu;
    char tag[96];
    unsigned n;
    char val[SEEN_MAX][96];
    unsigned count[SEEN_MAX];
    unsigned total;
};

static int seen_handler(void *ctx, const struct br_kafka_msg *m)
{
    struct seen *s = ctx;
    size_t tl = strlen(s->tag);
    if (m->len < tl || memcmp(m->value, s->tag, tl) != 0) {
        return BR_OK;
    }
    char v[96];
    size_t l = m->len < sizeof v - 1 ? m->len : sizeof v - 1;
    memcpy(v, m->value, l);
    v[l] = '\0';
    pthread_mutex_lock(&s->mu);
    s->total++;
    unsigned i = 0;
    while (i < s->n && strcmp(s->val[i], v) != 0) {
        i++;
    }
    if (i == s->n && s->n < SEEN_MAX) {
        snprintf(s->val[s->n++], sizeof s->val[0], "%s", v);
    }
    if (i < SEEN_MAX) {
        s->count[i]++;
    }
    pthread_mutex_unlock(&s->mu);
    return BR_OK;
}

static unsigned seen_distinct(struct seen *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Consumes topic with a fresh group until want distinct tagged values were seen (or the
 * deadline); returns how many. Fills *s. */
static unsigned collect(const char *topic, const char *tag, unsigned want, struct seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->tag, sizeof s->tag, "%s", tag);
    char group[128];
    tag_new(group, sizeof group, "collect");
    struct br_kafka_config c = kcfg(group, 3);
    struct br_kafka_consumer *k = NULL;
    assert_int_equal(br_kafka_consumer_start(&k, &c, topic, seen_handler, s), BR_OK);
    int64_t dl = br_clock_mono_ms() + WAIT_MS;
    while (seen_distinct(s) < want && br_clock_mono_ms() < dl) {
        sleep_ms(50);
    }
    sleep_ms(300); /* late duplicates, if any */
    br_kafka_consumer_stop(k);
    return seen_distinct(s);
}

static void produce_tagged(struct br_kafka_producer *p, const char *topic, const char *tag,
                           unsigned n, const char *key, int want_rc, int64_t timeout_ms)
{
    struct br_kafka_msg *m = calloc(n, sizeof *m);
    char(*vals)[96] = calloc(n, sizeof *vals);
    bool *acked = calloc(n, sizeof *acked);
    assert_non_null(m);
    assert_non_null(vals);
    assert_non_null(acked);
    for (unsigned i = 0; i < n; i++) {
        snprintf(vals[i], sizeof vals[i], "%s-%04u", tag, i);
        m[i] = (struct br_kafka_msg){.topic = topic,
                                     .key = key,
                                     .key_len = strlen(key),
                                     .value = vals[i],
                                     .len = strlen(vals[i])};
    }
    int rc = br_kafka_produce(p, m, n, acked, timeout_ms);
    assert_int_equal(rc, want_rc);
    for (unsigned i = 0; i < n; i++) {
        assert_true(acked[i] == (want_rc == BR_OK));
    }
    free(m);
    free(vals);
    free(acked);
}

/* ---- producer --------------------------------------------------------------- */

static void test_produce_acked(void **state)
{
    (void)state;
    char tag[64];
    tag_new(tag, sizeof tag, "ack");
    struct br_kafka_producer *p = producer_new();
    produce_tagged(p, "br.payments", tag, 200, "k1", BR_OK, 10000);
    struct br_kafka_stats st;
    br_kafka_producer_stats(p, &st);
    assert_int_equal(st.produced, 200);
    assert_int_equal(st.produce_failed, 0);
    br_kafka_producer_free(p);
    struct seen *s = calloc(1, sizeof *s);
    assert_int_equal(collect("br.payments", tag, 200, s), 200);
    free(s);
}

/* Brokers down: nothing is reported acked; back up: everything queued arrives. */
static void test_broker_down_then_up_delivers(void **state)
{
    (void)state;
    char tag[64];
    tag_new(tag, sizeof tag, "down");
    struct br_kafka_producer *p = producer_new();
    produce_tagged(p, "br.payments", "warm", 1, "w", BR_OK, 10000); /* connected first */
    assert_int_equal(ctl("down -1"), 0);
    produce_tagged(p, "br.payments", tag, 30, "k2", BR_E_UNAVAILABLE, 1500);
    assert_int_equal(ctl("up -1"), 0);
    int64_t dl = br_clock_mono_ms() + WAIT_MS;
    struct br_kafka_stats st;
    do {
        sleep_ms(100);
        br_kafka_producer_stats(p, &st);
    } while (st.produced < 31 && br_clock_mono_ms() < dl);
    assert_int_equal(st.produced, 31);
    br_kafka_producer_free(p);
    struct seen *s = calloc(1, sizeof *s);
    assert_int_equal(collect("br.payments", tag, 30, s), 30);
    free(s);
}

static int restore_brokers(void **state)
{
    (void)state;
    (void)ctl("up -1");
    return 0;
}

/* ---- relay ------------------------------------------------------------------ */

static void outbox_fill(const char *url, const char *tag, unsigned n)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO outbox (topic, key, payload, source) SELECT "
             "CASE WHEN g %% 3 = 0 THEN 'booking_confirmed' ELSE 'payments' END, g::text, "
             "json_build_object('t', '%s-' || lpad(g::text, 4, '0')), '%s-' || g "
             "FROM generate_series(1, %u) g",
             tag, tag, n);
    assert_int_equal(pgt_exec(url, sql), 0);
}

/* Rows relayed to Kafka: payments rows on br.payments, the others on br.effects. The payload
 * is JSON {"t": "<tag>-NNNN"}: collected by the prefix {"t": "<tag>. */
static unsigned relayed(const char *tag, unsigned n, unsigned *dups)
{
    char pre[96];
    snprintf(pre, sizeof pre, "{\"t\": \"%s", tag);
    unsigned n_eff = n / 3, n_pay = n - n_eff;
    struct seen *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    unsigned got = collect("br.payments", pre, n_pay, a) + collect("br.effects", pre, n_eff, b);
    *dups = (a->total - a->n) + (b->total - b->n);
    free(a);
    free(b);
    return got;
}

static void test_relay_marks_only_acked_rows(void **state)
{
    (void)state;
    char url[PGT_URL_MAX], tag[64];
    tag_new(tag, sizeof tag, "relay");
    struct br_pg *pg = pgt_open_db("kafka_relay_acked", 2, NULL, url);
    outbox_fill(url, tag, 60);
    struct br_kafka_config c = kcfg("unused", 3);
    struct br_relay *r = NULL;
    assert_int_equal(br_relay_new(&r, pg, &c, 100), BR_OK);
    br_relay_set_timeout_ms(r, 1500);
    assert_int_equal(ctl("down -1"), 0);
    uint32_t sent = 99;
    int64_t left = -1;
    assert_int_equal(br_relay_tick(r, &sent, &left), BR_E_UNAVAILABLE);
    assert_int_equal(sent, 0);
    assert_int_equal(left, 60); /* nothing acked: nothing marked */
    assert_int_equal(ctl("up -1"), 0);
    int64_t dl = br_clock_mono_ms() + WAIT_MS;
    while (left != 0 && br_clock_mono_ms() < dl) {
        (void)br_relay_tick(r, &sent, &left);
    }
    assert_int_equal(left, 0);
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL"), 60);
    struct br_relay_stats st;
    br_relay_stats(r, &st);
    assert_int_equal(st.published, 60);
    br_relay_free(r);
    br_pg_close(pg);
    unsigned dups;
    assert_int_equal(relayed(tag, 60, &dups), 60);
}

/* Child: one relay tick with BR_FAULT_RELAY_DIE=1 (dies after the acks, before the UPDATE). */
static int relay_child(const char *url, const char *bootstrap)
{
    snprintf(g_bootstrap, sizeof g_bootstrap, "%s", bootstrap);
    struct br_pg *pg = NULL;
    if (br_pg_open(&pg, url, 2, &quiet) != BR_OK) {
        return 3;
    }
    struct br_kafka_config c = kcfg("unused", 3);
    struct br_relay *r = NULL;
    if (br_relay_new(&r, pg, &c, 1000) != BR_OK) {
        return 4;
    }
    uint32_t sent;
    int64_t left;
    (void)br_relay_tick(r, &sent, &left);
    return 0; /* not reached with the fault set */
}

static int run_child(char *const argv[], const char *env_name, const char *env_val)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (env_name != NULL) {
            setenv(env_name, env_val, 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_relay_killed_mid_batch_sends_again(void **state)
{
    (void)state;
    char url[PGT_URL_MAX], tag[64];
    tag_new(tag, sizeof tag, "kill");
    struct br_pg *pg = pgt_open_db("kafka_relay_kill", 2, NULL, url);
    outbox_fill(url, tag, 90);
    char *argv[] = {(char *)g_self, "--relay-child", url, g_bootstrap, NULL};
    assert_int_equal(run_child(argv, "BR_FAULT_RELAY_DIE", "1"), 9);
    /* The child's rows were acked by Kafka but its transaction died: all still unsent. */
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"), 90);
    struct br_kafka_config c = kcfg("unused", 3);
    struct br_relay *r = NULL;
    assert_int_equal(br_relay_new(&r, pg, &c, 40), BR_OK);
    uint32_t sent;
    int64_t left = -1;
    int64_t dl = br_clock_mono_ms() + WAIT_MS;
    while (left != 0 && br_clock_mono_ms() < dl) {
        (void)br_relay_tick(r, &sent, &left);
    }
    assert_int_equal(left, 0);
    br_relay_free(r);
    br_pg_close(pg);
    unsigned dups;
    assert_int_equal(relayed(tag, 90, &dups), 90);
    assert_true(dups >= 90); /* sent twice: once by the dead relay, once after */
}

struct relay_arg {
    struct br_relay *r;
    uint32_t rounds;
};

static void *relay_loop(void *arg)
{
    struct relay_arg *a = arg;
    int64_t left = -1;
    int64_t dl = br_clock_mono_ms() + WAIT_MS;
    while (left != 0 && br_clock_mono_ms() < dl) {
        uint32_t sent;
        (void)br_relay_tick(a->r, &sent, &left);
        a->rounds++;
    }
    return NULL;
}

static void test_two_relays_take_disjoint_batches(void **state)
{
    (void)state;
    char url[PGT_URL_MAX], tag[64];
    tag_new(tag, sizeof tag, "two");
    struct br_pg *pg = pgt_open_db("kafka_relay_two", 4, NULL, url);
    outbox_fill(url, tag, 600);
    struct br_kafka_config c = kcfg("unused", 3);
    struct relay_arg a[2] = {{0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(br_relay_new(&a[i].r, pg, &c, 25), BR_OK);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, relay_loop, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    struct br_relay_stats s0, s1;
    br_relay_stats(a[0].r, &s0);
    br_relay_stats(a[1].r, &s1);
    print_message("relay A published %" PRIu64 " in %" PRIu64 " batches, B %" PRIu64 " in %" PRIu64
                  "\n",
                  s0.published, s0.batches, s1.published, s1.batches);
    assert_true(s0.published > 0 && s1.published > 0);  /* both took part */
    assert_int_equal(s0.published + s1.published, 600); /* no row twice */
    assert_int_equal(pgt_scalar(url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"), 0);
    br_relay_free(a[0].r);
    br_relay_free(a[1].r);
    br_pg_close(pg);
    unsigned dups;
    assert_int_equal(relayed(tag, 600, &dups), 600);
    assert_int_equal(dups, 0);
}

/* ---- consumer ----------------------------------------------------------------- */

/* Child: consumes br.payments in group; appends each tagged value to file; on the value
 * die_at sleeps 2.5 s (past an auto-commit) and _exits before returning (before the store). */
struct child_ctx {
    const char *tag, *die_at, *file;
};

static int child_handler(void *ctx, const struct br_kafka_msg *m)
{
    struct child_ctx *c = ctx;
    size_t tl = strlen(c->tag);
    if (m->len < tl || memcmp(m->value, c->tag, tl) != 0) {
        return BR_OK;
    }
    FILE *f = fopen(c->file, "a");
    if (f != NULL) {
        fprintf(f, "%.*s\n", (int)m->len, m->value);
        fclose(f);
    }
    if (m->len == strlen(c->die_at) && memcmp(m->value, c->die_at, m->len) == 0) {
        sleep_ms(2500);
        _exit(9);
    }
    return BR_OK;
}

static int consume_child(const char *bootstrap, const char *group, const char *tag,
                         const char *die_at, const char *file)
{
    snprintf(g_bootstrap, sizeof g_bootstrap, "%s", bootstrap);
    struct child_ctx ctx = {tag, die_at, file};
    struct br_kafka_config c = kcfg(group, 3);
    struct br_kafka_consumer *k = NULL;
    if (br_kafka_consumer_start(&k, &c, "br.payments", child_handler, &ctx) != BR_OK) {
        return 3;
    }
    sleep_ms(WAIT_MS);
    br_kafka_consumer_stop(k);
    return 0; /* never reached die_at */
}

static void test_offsets_stored_only_after_done(void **state)
{
    (void)state;
    char tag[64], group[96], die_at[96], file[128];
    tag_new(tag, sizeof tag, "store");
    tag_new(group, sizeof group, "g-store");
    snprintf(die_at, sizeof die_at, "%s-0004", tag);
    snprintf(file, sizeof file, "/tmp/br-kafka-applied.%ld", (long)getpid());
    unlink(file);
    struct br_kafka_producer *p = producer_new();
    produce_tagged(p, "br.payments", tag, 10, "one-key", BR_OK,
                   10000); /* one partition, in order */
    br_kafka_producer_free(p);
    char *argv[] = {(char *)g_self, "--consume-child", g_bootstrap, group, tag, die_at, file, NULL};
    assert_int_equal(run_child(argv, NULL, NULL), 9);
    /* The child applied 0..4 and died inside 4's handler. A new member of the group must
     * get 4 again (its offset was never stored), then 5..9. */
    struct seen *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->tag, sizeof s->tag, "%s", tag);
    struct br_kafka_config cg = kcfg(group, 3);
    struct br_kafka_consumer *k = NULL;
    assert_int_equal(br_kafka_consumer_start(&k, &cg, "br.payments", seen_handler, s), BR_OK);
    int64_t dl = br_clock_mono_ms() + 30000;
    char last[96];
    snprintf(last, sizeof last, "%s-0009", tag);
    bool done = false;
    while (!done && br_clock_mono_ms() < dl) {
        sleep_ms(100);
        pthread_mutex_lock(&s->mu);
        for (unsigned i = 0; i < s->n; i++) {
            done = done || strcmp(s->val[i], last) == 0;
        }
        pthread_mutex_unlock(&s->mu);
    }
    br_kafka_consumer_stop(k);
    unlink(file);
    assert_true(done);
    print_message("after the kill the group got %u values, first %s\n", s->n,
                  s->n > 0 ? s->val[0] : "-");
    assert_true(s->n >= 6);
    assert_string_equal(s->val[0], die_at); /* the message being applied is delivered again */
    free(s);
}

/* DLQ: "bad" fails (INVALID) every time: dead-lettered after exactly dlq_after attempts with
 * its headers; "flaky" answers UNAVAILABLE twice (not counted) then done; order kept. */
struct dlq_ctx {
    pthread_mutex_t mu;
    char tag[64];
    unsigned bad_calls, flaky_calls;
    char order[8][16];
    unsigned n_order;
};

static int dlq_handler(void *ctx, const struct br_kafka_msg *m)
{
    struct dlq_ctx *d = ctx;
    size_t tl = strlen(d->tag);
    if (m->len < tl + 1 || memcmp(m->value, d->tag, tl) != 0) {
        return BR_OK;
    }
    char what[16];
    size_t l = m->len - tl - 1 < sizeof what - 1 ? m->len - tl - 1 : sizeof what - 1;
    memcpy(what, m->value + tl + 1, l);
    what[l] = '\0';
    int rc = BR_OK;
    pthread_mutex_lock(&d->mu);
    if (strcmp(what, "bad") == 0) {
        d->bad_calls++;
        rc = BR_E_INVALID;
    } else if (strcmp(what, "flaky") == 0) {
        rc = d->flaky_calls++ < 2 ? BR_E_UNAVAILABLE : BR_OK;
    }
    if (rc == BR_OK && d->n_order < 8) {
        snprintf(d->order[d->n_order++], sizeof d->order[0], "%s", what);
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

struct dlq_seen {
    char tag[64];
    int found;
    char error[32], attempts[8], src[128];
};

static void hdr(rd_kafka_headers_t *h, const char *name, char *out, size_t cap)
{
    const void *v;
    size_t n;
    out[0] = '\0';
    if (h != NULL && rd_kafka_header_get_last(h, name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(out, cap, "%.*s", (int)n, (const char *)v);
    }
}

/* Reads br.payments.dlq directly with librdkafka (our consumer hides headers). */
static void read_dlq(struct dlq_seen *ds)
{
    char err[256], group[96];
    tag_new(group, sizeof group, "dlqread");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof err), 0);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err, sizeof err), 0);
    assert_int_equal(rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err), 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "br.payments.dlq", RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    char want[96];
    snprintf(want, sizeof want, "%s-bad", ds->tag);
    int64_t dl = br_clock_mono_ms() + 15000;
    while (ds->found == 0 && br_clock_mono_ms() < dl) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL) {
            continue;
        }
        if (m->err == 0 && m->len == strlen(want) && memcmp(m->payload, want, m->len) == 0) {
            rd_kafka_headers_t *h = NULL;
            (void)rd_kafka_message_headers(m, &h);
            hdr(h, "error", ds->error, sizeof ds->error);
            hdr(h, "attempts", ds->attempts, sizeof ds->attempts);
            hdr(h, "src", ds->src, sizeof ds->src);
            ds->found++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void test_dead_letter_after_n_attempts(void **state)
{
    (void)state;
    struct dlq_ctx *d = calloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    tag_new(d->tag, sizeof d->tag, "dlq");
    struct br_kafka_producer *p = producer_new();
    const char *whats[4] = {"ok1", "bad", "flaky", "ok2"};
    char vals[4][96];
    struct br_kafka_msg m[4];
    bool acked[4];
    for (int i = 0; i < 4; i++) {
        snprintf(vals[i], sizeof vals[i], "%s-%s", d->tag, whats[i]);
        m[i] = (struct br_kafka_msg){.topic = "br.payments",
                                     .key = "dlq-key",
                                     .key_len = 7,
                                     .value = vals[i],
                                     .len = strlen(vals[i])};
    }
    assert_int_equal(br_kafka_produce(p, m, 4, acked, 10000), BR_OK);
    br_kafka_producer_free(p);
    char group[96];
    tag_new(group, sizeof group, "g-dlq");
    struct br_kafka_config cg = kcfg(group, 3);
    struct br_kafka_consumer *k = NULL;
    assert_int_equal(br_kafka_consumer_start(&k, &cg, "br.payments", dlq_handler, d), BR_OK);
    int64_t dl = br_clock_mono_ms() + WAIT_MS;
    struct br_kafka_stats st;
    for (;;) {
        sleep_ms(100);
        br_kafka_consumer_stats(k, &st);
        pthread_mutex_lock(&d->mu);
        unsigned n = d->n_order;
        pthread_mutex_unlock(&d->mu);
        if ((n >= 3 && st.dead_lettered >= 1) || br_clock_mono_ms() > dl) {
            break;
        }
    }
    br_kafka_consumer_stop(k);
    print_message("bad calls %u, flaky calls %u, dead-lettered %" PRIu64 ", retried %" PRIu64 "\n",
                  d->bad_calls, d->flaky_calls, st.dead_lettered, st.retried);
    assert_int_equal(d->bad_calls, 3);
    assert_int_equal(d->flaky_calls, 3);
    assert_int_equal(st.dead_lettered, 1);
    assert_true(st.retried >= 4); /* bad twice, flaky twice */
    assert_int_equal(d->n_order, 3);
    assert_string_equal(d->order[0], "ok1");
    assert_string_equal(d->order[1], "flaky");
    assert_string_equal(d->order[2], "ok2");
    struct dlq_seen ds = {0};
    snprintf(ds.tag, sizeof ds.tag, "%s", d->tag);
    read_dlq(&ds);
    assert_int_equal(ds.found, 1);
    assert_string_equal(ds.error, "INVALID_REQUEST");
    assert_string_equal(ds.attempts, "3");
    assert_true(strncmp(ds.src, "br.payments/", 12) == 0);
    free(d);
}

/* ---- main --------------------------------------------------------------------- */

static void stop_kafka(void)
{
    if (g_own_kafka) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s/tests/fixtures/kafka.sh stop %s", BR_SOURCE_DIR, g_kstate);
        (void)system(cmd);
        g_own_kafka = false;
    }
}

static int start_kafka(void)
{
    const char *st = getenv("BR_TEST_KAFKA_STATE");
    if (st != NULL && st[0] != '\0') {
        snprintf(g_kstate, sizeof g_kstate, "%s", st);
    } else {
        snprintf(g_kstate, sizeof g_kstate, "/tmp/br-test-kafka.%ld", (long)getpid());
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s/tests/fixtures/kafka.sh start %s %s >/dev/null",
                 BR_SOURCE_DIR, BR_BINARY_DIR, g_kstate);
        if (system(cmd) != 0) {
            fprintf(stderr, "test_kafka: kafka-dev did not start\n");
            return -1;
        }
        g_own_kafka = true;
        atexit(stop_kafka);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/bootstrap", g_kstate);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(g_bootstrap, sizeof g_bootstrap, f) == NULL) {
        fprintf(stderr, "test_kafka: no %s\n", path);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    g_bootstrap[strcspn(g_bootstrap, "\r\n")] = '\0';
    return 0;
}

int main(int argc, char **argv)
{
    g_self = argv[0];
    if (argc == 4 && strcmp(argv[1], "--relay-child") == 0) {
        return relay_child(argv[2], argv[3]);
    }
    if (argc == 7 && strcmp(argv[1], "--consume-child") == 0) {
        return consume_child(argv[2], argv[3], argv[4], argv[5], argv[6]);
    }
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]); /* one test by name (scripts/test.d/54-kafka-plant.sh) */
    }
    if (start_kafka() != 0) {
        return 1;
    }
    if (getenv("BR_TEST_PG_STATE") == NULL) {
        char url[PGT_URL_MAX];
        if (pgt_server_start("kafka", url, sizeof url) != 0) {
            return 1;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_acked),
        cmocka_unit_test_teardown(test_broker_down_then_up_delivers, restore_brokers),
        cmocka_unit_test_teardown(test_relay_marks_only_acked_rows, restore_brokers),
        cmocka_unit_test(test_relay_killed_mid_batch_sends_again),
        cmocka_unit_test(test_two_relays_take_disjoint_batches),
        cmocka_unit_test(test_offsets_stored_only_after_done),
        cmocka_unit_test(test_dead_letter_after_n_attempts),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    stop_kafka();
    return rc;
}
