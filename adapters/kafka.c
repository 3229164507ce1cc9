/*
 * kafka.c -- the Kafka adapter of kafka.h on librdkafka 2.0.2.
 *
 * Producer: br_kafka_produce hands each message to rd_kafka_producev with a
 * per-message record as its opaque and polls (on the calling thread; several
 * callers may poll at once) until every delivery report of the call came or
 * the deadline passed. The call's records live in a batch freed by whichever
 * side lets go last (the caller at the deadline, or the last delivery report
 * after it), so a report arriving after the caller gave up is still counted
 * and never touches freed memory.
 *
 * Consumer: one thread polls; per partition it keeps the message that is
 * failing (offset, attempts, backoff). A not-done result seeks the partition
 * back to the message and pauses it until the backoff has passed; the poll
 * itself never waits more than 100 ms, so the thread keeps calling poll well
 * within max.poll.interval.ms. The offset is stored (rd_kafka_offsets_store;
 * auto-commit every second commits stored offsets only) after the handler
 * said done, or after the dead-letter copy was acknowledged.
 *
 * librdkafka's log lines come through log_cb on librdkafka's threads and go
 * to our log, at most LOG_BURST lines per LOG_WINDOW_MS per client; the
 * number dropped is logged with the next line let through.
 */
#define _POSIX_C_SOURCE 200809L
#include "adapters/kafka.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/clock.h"
#include "core/err.h"

#define LOG_WINDOW_MS 10000
#define LOG_BURST 10u
#define POLL_MS 100
#define BACKOFF_MS_MIN 200
#define BACKOFF_MS_MAX 10000
#define DLQ_ACK_MS 5000
#define PART_MAX 256
#define TOPIC_MAX 256u

/* ---- logs ----------------------------------------------------------------- */

struct ratelog {
    const struct br_log *log;
    pthread_mutex_t mu;
    int64_t window_start;
    unsigned lines;
    unsigned suppressed;
};

static void ratelog_init(struct ratelog *r, const struct br_log *log)
{
    r->log = log != NULL ? log : &br_log_stderr;
    pthread_mutex_init(&r->mu, NULL);
    r->window_start = 0;
    r->lines = 0;
    r->suppressed = 0;
}

static void on_rdlog(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct ratelog *r = rk != NULL ? rd_kafka_opaque(rk) : NULL;
    if (r == NULL) {
        return;
    }
    enum br_log_level lv = level <= 3   ? BR_LOG_ERROR
                           : level == 4 ? BR_LOG_WARN
                           : level <= 6 ? BR_LOG_INFO
                                        : BR_LOG_DEBUG;
    if (!br_log_on(r->log, lv)) {
        return;
    }
    int64_t now = br_clock_mono_ms();
    unsigned dropped = 0;
    pthread_mutex_lock(&r->mu);
    if (now - r->window_start >= LOG_WINDOW_MS) {
        dropped = r->suppressed;
        r->window_start = now;
        r->lines = 0;
        r->suppressed = 0;
    }
    bool pass = r->lines < LOG_BURST;
    if (pass) {
        r->lines++;
    } else {
        r->suppressed++;
    }
    pthread_mutex_unlock(&r->mu);
    if (!pass) {
        return;
    }
    char efac[64], ebuf[768], ename[128];
    br_log_escape(fac != NULL ? fac : "", efac, sizeof efac);
    br_log_escape(buf != NULL ? buf : "", ebuf, sizeof ebuf);
    br_log_escape(rd_kafka_name(rk), ename, sizeof ename);
    br_logf(r->log, lv, "librdkafka",
            "\"client\":\"%s\",\"facility\":\"%s\",\"text\":\"%s\",\"suppressed_before\":%u", ename,
            efac, ebuf, dropped);
}

static int conf_set(rd_kafka_conf_t *c, const struct br_log *log, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        char e[300];
        br_logf(log, BR_LOG_ERROR, "kafka config refused", "\"key\":\"%s\",\"error\":\"%s\"", k,
                br_log_escape(err, e, sizeof e));
        return BR_E_INVALID;
    }
    return BR_OK;
}

static const struct br_log *log_of(const struct br_kafka_config *cfg)
{
    return cfg->log != NULL ? cfg->log : &br_log_stderr;
}

/* ---- producer --------------------------------------------------------------- */

struct pbatch;

struct pmsg { /* the opaque of one produced message */
    struct pbatch *b;
    uint32_t i;
};

struct pbatch {
    uint32_t refs; /* under the producer's mu: reports outstanding + 1 while the caller waits */
    uint32_t pending;
    bool *acked;
    struct pmsg *m;
};

struct br_kafka_producer {
    rd_kafka_t *rk;
    struct ratelog rl;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a batch's last report came */
    pthread_t poller;  /* serves delivery reports, also those after a caller gave up */
    atomic_bool stop;
    _Atomic uint64_t produced, failed;
};

static void pbatch_unref(struct pbatch *b) /* under mu */
{
    if (--b->refs == 0) {
        free(b->acked);
        free(b->m);
        free(b);
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)opaque;
    struct br_kafka_producer *p =
        (struct br_kafka_producer *)((char *)rd_kafka_opaque(rk) -
                                     offsetof(struct br_kafka_producer, rl));
    struct pmsg *pm = rkm->_private;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        atomic_fetch_add(&p->produced, 1);
    } else {
        atomic_fetch_add(&p->failed, 1);
        char e[256];
        br_logf(p->rl.log, BR_LOG_WARN, "kafka delivery failed",
                "\"topic\":\"%s\",\"error\":\"%s\"", rd_kafka_topic_name(rkm->rkt),
                br_log_escape(rd_kafka_err2str(rkm->err), e, sizeof e));
    }
    if (pm == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    struct pbatch *b = pm->b;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        b->acked[pm->i] = true;
    }
    b->pending--;
    if (b->pending == 0) {
        pthread_cond_broadcast(&p->cv);
    }
    pbatch_unref(b);
    pthread_mutex_unlock(&p->mu);
}

static void *poller_main(void *arg)
{
    struct br_kafka_producer *p = arg;
    while (!atomic_load(&p->stop)) {
        rd_kafka_poll(p->rk, 100);
    }
    return NULL;
}

int br_kafka_producer_new(struct br_kafka_producer **out, const struct br_kafka_config *cfg)
{
    *out = NULL;
    const struct br_log *log = log_of(cfg);
    if (cfg->bootstrap == NULL || cfg->bootstrap[0] == '\0') {
        return BR_E_INVALID;
    }
    struct br_kafka_producer *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return BR_E_IO;
    }
    ratelog_init(&p->rl, log);
    pthread_mutex_init(&p->mu, NULL);
    br_clock_cond_init(&p->cv);
    atomic_store(&p->stop, false);
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    int rc = conf_set(c, log, "bootstrap.servers", cfg->bootstrap);
    if (rc == BR_OK) {
        rc = conf_set(c, log, "enable.idempotence", "true");
    }
    if (rc == BR_OK) {
        rc = conf_set(c, log, "acks", "all");
    }
    if (rc == BR_OK) {
        rc = conf_set(c, log, "linger.ms", "5");
    }
    if (rc != BR_OK) {
        rd_kafka_conf_destroy(c);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rc;
    }
    rd_kafka_conf_set_opaque(c, &p->rl);
    rd_kafka_conf_set_log_cb(c, on_rdlog);
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    char err[256];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (p->rk == NULL) {
        char e[300];
        br_logf(log, BR_LOG_ERROR, "kafka producer not created", "\"error\":\"%s\"",
                br_log_escape(err, e, sizeof e));
        rd_kafka_conf_destroy(c);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return BR_E_IO;
    }
    if (pthread_create(&p->poller, NULL, poller_main, p) != 0) {
        rd_kafka_destroy(p->rk);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return BR_E_IO;
    }
    *out = p;
    return BR_OK;
}

static rd_kafka_resp_err_t produce_one(struct br_kafka_producer *p, const struct br_kafka_msg *m,
                                       const char *hdr_name, const char *hdr_val, void *opaque)
{
    if (hdr_name != NULL && hdr_val != NULL) {
        return rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)m->value, m->len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER(hdr_name, hdr_val, -1),
            RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    }
    return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_KEY(m->key, m->key_len),
                             RD_KAFKA_V_VALUE((void *)(uintptr_t)m->value, m->len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque),
                             RD_KAFKA_V_END);
}

int br_kafka_produce_hdr(struct br_kafka_producer *p, const struct br_kafka_msg *msgs, uint32_t n,
                         const char *hdr_name, const char *const *hdr_val, bool *acked,
                         int64_t timeout_ms)
{
    for (uint32_t i = 0; i < n; i++) {
        acked[i] = false;
    }
    if (n == 0) {
        return BR_OK;
    }
    struct pbatch *b = calloc(1, sizeof *b);
    bool *ack = b != NULL ? calloc(n, sizeof *ack) : NULL;
    struct pmsg *pm = ack != NULL ? calloc(n, sizeof *pm) : NULL;
    if (pm == NULL) {
        free(ack);
        free(b);
        return BR_E_UNAVAILABLE;
    }
    b->acked = ack;
    b->m = pm;
    b->refs = 1;
    int64_t deadline = br_clock_mono_ms() + timeout_ms;
    for (uint32_t i = 0; i < n; i++) {
        pm[i].b = b;
        pm[i].i = i;
        pthread_mutex_lock(&p->mu);
        b->refs++;
        b->pending++;
        pthread_mutex_unlock(&p->mu);
        rd_kafka_resp_err_t err;
        for (;;) {
            err = produce_one(p, &msgs[i], hdr_name, hdr_val != NULL ? hdr_val[i] : NULL, &pm[i]);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || br_clock_mono_ms() >= deadline) {
                break;
            }
            struct timespec ts = {0, 10000000L}; /* the poller drains the queue */
            nanosleep(&ts, NULL);
        }
#ifdef BR_PLANT_KAFKA_ACK_ON_ENQUEUE
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            pthread_mutex_lock(&p->mu);
            ack[i] = true; /* planted: queued locally is taken for acknowledged */
            pthread_mutex_unlock(&p->mu);
        }
#endif
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            char e[256];
            br_logf(p->rl.log, BR_LOG_WARN, "kafka produce refused",
                    "\"topic\":\"%s\",\"error\":\"%s\"", msgs[i].topic,
                    br_log_escape(rd_kafka_err2str(err), e, sizeof e));
            atomic_fetch_add(&p->failed, 1);
            pthread_mutex_lock(&p->mu);
            b->refs--;
            b->pending--;
            pthread_mutex_unlock(&p->mu);
        }
    }
    int64_t left = deadline - br_clock_mono_ms();
    struct timespec dl = br_clock_deadline(left > 0 ? left : 0);
    pthread_mutex_lock(&p->mu);
    while (b->pending > 0 && pthread_cond_timedwait(&p->cv, &p->mu, &dl) == 0) {
    }
    bool all = true;
    for (uint32_t i = 0; i < n; i++) {
        acked[i] = ack[i];
        all = all && ack[i];
    }
    pbatch_unref(b);
    pthread_mutex_unlock(&p->mu);
    return all ? BR_OK : BR_E_UNAVAILABLE;
}

int br_kafka_produce(struct br_kafka_producer *p, const struct br_kafka_msg *msgs, uint32_t n,
                     bool *acked, int64_t timeout_ms)
{
    return br_kafka_produce_hdr(p, msgs, n, NULL, NULL, acked, timeout_ms);
}

void br_kafka_producer_free(struct br_kafka_producer *p)
{
    if (p == NULL) {
        return;
    }
    /* Reports still owed are served here (bounded), then the rest purged. */
    atomic_store(&p->stop, true);
    pthread_join(p->poller, NULL);
    rd_kafka_flush(p->rk, 2000);
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0);
    rd_kafka_destroy(p->rk);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->rl.mu);
    free(p);
}

void br_kafka_producer_stats(const struct br_kafka_producer *p, struct br_kafka_stats *out)
{
    memset(out, 0, sizeof *out);
    out->produced = atomic_load(&((struct br_kafka_producer *)(uintptr_t)p)->produced);
    out->produce_failed = atomic_load(&((struct br_kafka_producer *)(uintptr_t)p)->failed);
}

/* ---- consumer --------------------------------------------------------------- */

struct part {
    bool failing; /* offset is the message being retried */
    int64_t offset;
    unsigned attempts; /* failed attempts counted for offset */
    int64_t backoff_ms;
    int64_t paused_until; /* 0 = not paused */
};

struct br_kafka_consumer {
    rd_kafka_t *rk;
    struct ratelog rl;
    struct br_kafka_producer *dlq;
    char topic[TOPIC_MAX];
    char dlq_topic[TOPIC_MAX + 8];
    unsigned dlq_after;
    br_kafka_handler fn;
    void *ctx;
    pthread_t thread;
    atomic_bool stop;
    struct part parts[PART_MAX];
    int64_t lag_at;
    _Atomic uint64_t consumed, duplicates, retried, dead_lettered;
    _Atomic int64_t lag;
};

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    struct br_kafka_consumer *c =
        (struct br_kafka_consumer *)((char *)rd_kafka_opaque(rk) -
                                     offsetof(struct br_kafka_consumer, rl));
    memset(c->parts, 0, sizeof c->parts); /* retries restart from the committed offsets */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        br_logf(c->rl.log, BR_LOG_INFO, "kafka partitions assigned",
                "\"topic\":\"%s\",\"count\":%d", c->topic, parts->cnt);
        rd_kafka_assign(rk, parts);
    } else {
        br_logf(c->rl.log, BR_LOG_INFO, "kafka partitions revoked", "\"topic\":\"%s\",\"count\":%d",
                c->topic, parts->cnt);
        rd_kafka_assign(rk, NULL);
    }
}

static void store_offset(struct br_kafka_consumer *c, int32_t partition, int64_t next)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->topic, partition)->offset = next;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char e[256];
        br_logf(c->rl.log, BR_LOG_WARN, "kafka offset not stored",
                "\"topic\":\"%s\",\"partition\":%" PRId32 ",\"offset\":%" PRId64
                ",\"error\":\"%s\"",
                c->topic, partition, next, br_log_escape(rd_kafka_err2str(err), e, sizeof e));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void set_pause(struct br_kafka_consumer *c, int32_t partition, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->topic, partition);
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char e[256];
        br_logf(c->rl.log, BR_LOG_WARN, pause ? "kafka pause failed" : "kafka resume failed",
                "\"partition\":%" PRId32 ",\"error\":\"%s\"", partition,
                br_log_escape(rd_kafka_err2str(err), e, sizeof e));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Not done: seek the partition back to the message and pause it for the backoff. */
static void retry_later(struct br_kafka_consumer *c, struct part *pt, int32_t partition,
                        int64_t offset)
{
    atomic_fetch_add(&c->retried, 1);
    pt->backoff_ms = pt->backoff_ms == 0                   ? BACKOFF_MS_MIN
                     : pt->backoff_ms * 2 > BACKOFF_MS_MAX ? BACKOFF_MS_MAX
                                                           : pt->backoff_ms * 2;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->topic, partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 2000);
    if (e != NULL) {
        char es[256];
        br_logf(c->rl.log, BR_LOG_WARN, "kafka seek failed",
                "\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"error\":\"%s\"", partition,
                offset, br_log_escape(rd_kafka_error_string(e), es, sizeof es));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(l);
    set_pause(c, partition, true);
    pt->paused_until = br_clock_mono_ms() + pt->backoff_ms;
}

/* The dead-letter copy: same key and value, headers error, attempts, src. */
static bool dead_letter(struct br_kafka_consumer *c, const struct br_kafka_msg *m, int err,
                        unsigned attempts)
{
#ifdef BR_PLANT_KAFKA_NO_DLQ
    (void)c;
    (void)m;
    (void)err;
    (void)attempts;
    return true; /* planted: the message is dropped, nothing reaches the DLQ */
#else
    char att[16], src[TOPIC_MAX + 48];
    snprintf(att, sizeof att, "%u", attempts);
    snprintf(src, sizeof src, "%s/%" PRId32 "/%" PRId64, c->topic, m->partition, m->offset);
    uint64_t failed_before = atomic_load(&c->dlq->failed);
    rd_kafka_resp_err_t rerr = rd_kafka_producev(
        c->dlq->rk, RD_KAFKA_V_TOPIC(c->dlq_topic), RD_KAFKA_V_KEY(m->key, m->key_len),
        RD_KAFKA_V_VALUE((void *)(uintptr_t)m->value, m->len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("error", br_err_name(err), -1),
        RD_KAFKA_V_HEADER("attempts", att, -1), RD_KAFKA_V_HEADER("src", src, -1), RD_KAFKA_V_END);
    if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char e[256];
        br_logf(c->rl.log, BR_LOG_WARN, "kafka dead-letter refused",
                "\"src\":\"%s\",\"error\":\"%s\"", src,
                br_log_escape(rd_kafka_err2str(rerr), e, sizeof e));
        return false;
    }
    /* Wait for the ack: the DLQ producer carries only this message, so an empty queue
     * with no failed report since is the ack. */
    if (rd_kafka_flush(c->dlq->rk, DLQ_ACK_MS) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        atomic_load(&c->dlq->failed) != failed_before) {
        br_logf(c->rl.log, BR_LOG_WARN, "kafka dead-letter not acknowledged", "\"src\":\"%s\"",
                src);
        return false;
    }
    char kb[64], ek[128];
    size_t kl = m->key_len < sizeof kb - 1 ? m->key_len : sizeof kb - 1;
    memcpy(kb, m->key, kl);
    kb[kl] = '\0';
    br_logf(c->rl.log, BR_LOG_ERROR, "dead-lettered",
            "\"src\":\"%s\",\"dlq\":\"%s\",\"error\":\"%s\",\"attempts\":%u,\"key\":\"%s\"", src,
            c->dlq_topic, br_err_name(err), attempts, br_log_escape(kb, ek, sizeof ek));
    return true;
#endif
}

static void handle(struct br_kafka_consumer *c, const rd_kafka_message_t *rkm)
{
    int32_t partition = rkm->partition;
    struct part dummy = {0};
    struct part *pt = partition >= 0 && partition < PART_MAX ? &c->parts[partition] : &dummy;
    if (pt->failing && rkm->offset > pt->offset) {
        return; /* fetched before the seek back: the retried message comes first */
    }
    if (pt->failing && rkm->offset < pt->offset) {
        pt->failing = false; /* a rebalance moved us back: start over */
        pt->attempts = 0;
    }
    char keybuf[128];
    size_t klen = rkm->key_len < sizeof keybuf - 1 ? rkm->key_len : sizeof keybuf - 1;
    if (rkm->key != NULL) {
        memcpy(keybuf, rkm->key, klen);
    }
    keybuf[rkm->key != NULL ? klen : 0] = '\0';
    struct br_kafka_msg m = {
        .topic = c->topic,
        .key = rkm->key != NULL ? rkm->key : "",
        .key_len = rkm->key != NULL ? rkm->key_len : 0,
        .value = rkm->payload != NULL ? rkm->payload : "",
        .len = rkm->payload != NULL ? rkm->len : 0,
        .partition = partition,
        .offset = rkm->offset,
        .opaque = NULL,
    };
#ifdef BR_PLANT_SAGA_STORE_FIRST
    store_offset(c, partition, rkm->offset + 1); /* planted: stored before the work is done */
#endif
    int rc = c->fn(c->ctx, &m);
    if (rc == BR_OK || rc == BR_E_DUPLICATE) {
        atomic_fetch_add(rc == BR_OK ? &c->consumed : &c->duplicates, 1);
        store_offset(c, partition, rkm->offset + 1);
        memset(pt, 0, sizeof *pt);
        return;
    }
    if (!pt->failing || pt->offset != rkm->offset) {
        pt->failing = true;
        pt->offset = rkm->offset;
        pt->attempts = 0;
    }
    if (rc != BR_E_UNAVAILABLE) {
        pt->attempts++;
        char ek[160];
        br_logf(c->rl.log, BR_LOG_WARN, "kafka message failed",
                "\"topic\":\"%s\",\"partition\":%" PRId32 ",\"offset\":%" PRId64
                ",\"key\":\"%s\",\"error\":\"%s\",\"attempts\":%u,\"dlq_after\":%u",
                c->topic, partition, rkm->offset, br_log_escape(keybuf, ek, sizeof ek),
                br_err_name(rc), pt->attempts, c->dlq_after);
        if (pt->attempts >= c->dlq_after && dead_letter(c, &m, rc, pt->attempts)) {
            atomic_fetch_add(&c->dead_lettered, 1);
            store_offset(c, partition, rkm->offset + 1);
            memset(pt, 0, sizeof *pt);
            return;
        }
    }
    retry_later(c, pt, partition, rkm->offset);
}

static void update_lag(struct br_kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || l == NULL) {
        return;
    }
    int64_t lag = 0;
    if (l->cnt > 0 && rd_kafka_position(c->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_get_watermark_offsets(c->rk, l->elems[i].topic, l->elems[i].partition, &lo,
                                               &hi) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                continue;
            }
            int64_t pos = l->elems[i].offset >= 0 ? l->elems[i].offset : lo;
            if (hi > pos) {
                lag += hi - pos;
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    atomic_store(&c->lag, lag);
}

static void *consumer_main(void *arg)
{
    struct br_kafka_consumer *c = arg;
    while (!atomic_load(&c->stop)) {
        int64_t now = br_clock_mono_ms();
        for (int32_t i = 0; i < PART_MAX; i++) {
            if (c->parts[i].paused_until != 0 && c->parts[i].paused_until <= now) {
                c->parts[i].paused_until = 0;
                set_pause(c, i, false);
            }
        }
        if (now - c->lag_at >= 1000) {
            c->lag_at = now;
            update_lag(c);
        }
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, POLL_MS);
        if (rkm == NULL) {
            continue;
        }
        if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                char e[256];
                br_logf(c->rl.log, BR_LOG_WARN, "kafka consumer error", "\"error\":\"%s\"",
                        br_log_escape(rd_kafka_message_errstr(rkm), e, sizeof e));
            }
        } else {
            handle(c, rkm);
        }
        rd_kafka_message_destroy(rkm);
    }
    return NULL;
}

int br_kafka_consumer_start(struct br_kafka_consumer **out, const struct br_kafka_config *cfg,
                            const char *topic, br_kafka_handler fn, void *ctx)
{
    *out = NULL;
    const struct br_log *log = log_of(cfg);
    if (cfg->bootstrap == NULL || cfg->group == NULL || cfg->group[0] == '\0' || topic == NULL ||
        strlen(topic) >= TOPIC_MAX || fn == NULL || cfg->dlq_after < 1) {
        return BR_E_INVALID;
    }
    struct br_kafka_consumer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return BR_E_IO;
    }
    ratelog_init(&c->rl, log);
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    snprintf(c->dlq_topic, sizeof c->dlq_topic, "%s.dlq", topic);
    c->dlq_after = cfg->dlq_after;
    c->fn = fn;
    c->ctx = ctx;
    atomic_store(&c->stop, false);
    int rc = br_kafka_producer_new(&c->dlq, cfg);
    if (rc != BR_OK) {
        pthread_mutex_destroy(&c->rl.mu);
        free(c);
        return rc;
    }
    char sto[16];
    snprintf(sto, sizeof sto, "%" PRIu32,
             cfg->session_timeout_ms != 0 ? cfg->session_timeout_ms : 45000u);
    rd_kafka_conf_t *k = rd_kafka_conf_new();
    const char *kv[][2] = {
        {"bootstrap.servers", cfg->bootstrap}, {"group.id", cfg->group},
        {"enable.auto.commit", "true"},        {"enable.auto.offset.store", "false"},
        {"auto.commit.interval.ms", "1000"},   {"auto.offset.reset", "earliest"},
        {"session.timeout.ms", sto},           {"heartbeat.interval.ms", "500"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0] && rc == BR_OK; i++) {
        rc = conf_set(k, log, kv[i][0], kv[i][1]);
    }
    char err[256];
    if (rc == BR_OK) {
        rd_kafka_conf_set_opaque(k, &c->rl);
        rd_kafka_conf_set_log_cb(k, on_rdlog);
        rd_kafka_conf_set_rebalance_cb(k, on_rebalance);
        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, k, err, sizeof err);
        if (c->rk == NULL) {
            char e[300];
            br_logf(log, BR_LOG_ERROR, "kafka consumer not created", "\"error\":\"%s\"",
                    br_log_escape(err, e, sizeof e));
            rc = BR_E_IO;
        }
    }
    if (rc != BR_OK) {
        rd_kafka_conf_destroy(k);
        br_kafka_producer_free(c->dlq);
        pthread_mutex_destroy(&c->rl.mu);
        free(c);
        return rc;
    }
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (serr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char e[256];
        br_logf(log, BR_LOG_ERROR, "kafka subscribe failed", "\"topic\":\"%s\",\"error\":\"%s\"",
                c->topic, br_log_escape(rd_kafka_err2str(serr), e, sizeof e));
        rd_kafka_destroy(c->rk);
        br_kafka_producer_free(c->dlq);
        pthread_mutex_destroy(&c->rl.mu);
        free(c);
        return BR_E_UNAVAILABLE;
    }
    if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
        br_kafka_producer_free(c->dlq);
        pthread_mutex_destroy(&c->rl.mu);
        free(c);
        return BR_E_IO;
    }
    br_logf(log, BR_LOG_INFO, "kafka consumer started",
            "\"topic\":\"%s\",\"group\":\"%s\",\"dlq_after\":%u", c->topic, cfg->group,
            c->dlq_after);
    *out = c;
    return BR_OK;
}

void br_kafka_consumer_stop(struct br_kafka_consumer *c)
{
    if (c == NULL) {
        return;
    }
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    rd_kafka_consumer_close(c->rk); /* commits the stored offsets, leaves the group */
    rd_kafka_destroy(c->rk);
    br_kafka_producer_free(c->dlq);
    pthread_mutex_destroy(&c->rl.mu);
    free(c);
}

void br_kafka_consumer_stats(const struct br_kafka_consumer *c, struct br_kafka_stats *out)
{
    struct br_kafka_consumer *m = (struct br_kafka_consumer *)(uintptr_t)c;
    memset(out, 0, sizeof *out);
    out->produced = atomic_load(&m->dlq->produced);
    out->produce_failed = atomic_load(&m->dlq->failed);
    out->consumed = atomic_load(&m->consumed);
    out->duplicates = atomic_load(&m->duplicates);
    out->retried = atomic_load(&m->retried);
    out->dead_lettered = atomic_load(&m->dead_lettered);
    out->lag = atomic_load(&m->lag);
}
