/*
 * pg_outbox.c -- the relay's claim / finish / abort of outbox rows
 * (pg_outbox.h) on the pool of pg.h.
 *
 * A claim's transaction must stay open while the rows are produced to Kafka,
 * but the pool lends a connection only for the duration of one body run by
 * br_pg_run. So a claim starts a helper thread that calls br_pg_run with a
 * body which claims the rows (SELECT ... FOR UPDATE SKIP LOCKED), hands them
 * to the caller, and waits for finish (UPDATE sent_at, then the runner's
 * COMMIT) or abort (the body fails: the runner's ROLLBACK). The pool's rules
 * thus stay whole: one connection borrowed for one transaction, a lost
 * COMMIT answer resolved with txid_status. If the runner retries the body
 * after the rows were handed over (a broken connection in the UPDATE), the
 * retry only fails: the caller's batch is gone, nothing is marked.
 *
 * Statements run with PQexecParams on the borrowed connection (not prepared:
 * a batch is one SELECT and one UPDATE, and the statement slots of
 * pg_internal.h are another package's).
 * Limits: a claim holds its connection up to the caller's produce timeout;
 * the server's idle-in-transaction timeout (60 s) bounds it.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg_internal.h"
#include "adapters/pg_outbox.h"
#include "core/err.h"

enum claim_state { C_CLAIMING, C_CLAIMED, C_FINISH, C_ABORT, C_DONE };

struct claim {
    struct br_pg *pg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum claim_state state; /* under mu */
    bool handed;            /* rows handed to the caller (body ran once) */
    uint32_t max;
    int claim_rc;  /* result of the SELECT */
    int finish_rc; /* result of br_pg_run */
    struct br_pg_outbox_row *rows;
    uint32_t n;
    const int64_t *ids; /* finish: borrowed until C_DONE */
    uint32_t nids;
};

static void free_rows(struct br_pg_outbox_row *rows, uint32_t n)
{
    if (rows == NULL) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        free(rows[i].payload);
    }
    free(rows);
}

static int select_rows(struct br_pg_tx *t, struct claim *c)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%" PRIu32, c->max);
    const char *vals[1] = {lim};
#ifdef BR_PLANT_RELAY_NO_LOCK
    const char *sql = "SELECT id, topic, key, payload::text FROM outbox WHERE sent_at IS NULL "
                      "ORDER BY id LIMIT $1::integer"; /* planted: two relays take the same rows */
#else
    const char *sql = "SELECT id, topic, key, payload::text FROM outbox WHERE sent_at IS NULL "
                      "ORDER BY id LIMIT $1::integer FOR UPDATE SKIP LOCKED";
#endif
    PGresult *r = PQexecParams(t->conn, sql, 1, NULL, vals, NULL, NULL, 0);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "outbox claim");
    if (rc != BR_OK) {
        return rc;
    }
    int n = PQntuples(r);
    struct br_pg_outbox_row *rows = n > 0 ? calloc((size_t)n, sizeof *rows) : NULL;
    if (n > 0 && rows == NULL) {
        PQclear(r);
        return BR_E_IO;
    }
    for (int i = 0; i < n; i++) {
        rows[i].id = br_pg_i64(r, i, 0);
        br_pg_str(r, i, 1, rows[i].topic, sizeof rows[i].topic);
        br_pg_str(r, i, 2, rows[i].key, sizeof rows[i].key);
        size_t len = (size_t)PQgetlength(r, i, 3);
        rows[i].payload = malloc(len + 1);
        if (rows[i].payload == NULL) {
            free_rows(rows, (uint32_t)i);
            PQclear(r);
            return BR_E_IO;
        }
        memcpy(rows[i].payload, PQgetvalue(r, i, 3), len);
        rows[i].payload[len] = '\0';
        rows[i].len = len;
    }
    PQclear(r);
    c->rows = rows;
    c->n = (uint32_t)n;
    return BR_OK;
}

static int mark_sent(struct br_pg_tx *t, const int64_t *ids, uint32_t n)
{
    if (n == 0) {
        return BR_OK;
    }
    size_t cap = 2 + (size_t)n * 21;
    char *arr = malloc(cap);
    if (arr == NULL) {
        return BR_E_IO;
    }
    size_t off = 0;
    arr[off++] = '{';
    for (uint32_t i = 0; i < n; i++) {
        off += (size_t)snprintf(arr + off, cap - off, "%s%" PRId64, i > 0 ? "," : "", ids[i]);
    }
    snprintf(arr + off, cap - off, "}");
    const char *vals[1] = {arr};
    PGresult *r = PQexecParams(t->conn,
                               "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[]) "
                               "AND sent_at IS NULL",
                               1, NULL, vals, NULL, NULL, 0);
    free(arr);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, "outbox mark sent");
    if (rc == BR_OK) {
        PQclear(r);
    }
    return rc;
}

static int claim_body(struct br_pg_tx *t, void *arg)
{
    struct claim *c = arg;
    pthread_mutex_lock(&c->mu);
    bool handed = c->handed;
    pthread_mutex_unlock(&c->mu);
    if (handed) {
        return BR_E_UNAVAILABLE; /* a retry after the rows were handed over: give up */
    }
    int rc = select_rows(t, c);
    if (rc != BR_OK && (t->broken || t->retryable)) {
        return rc; /* the runner tries once more from BEGIN */
    }
    pthread_mutex_lock(&c->mu);
    c->claim_rc = rc;
    c->handed = true;
    c->state = C_CLAIMED;
    pthread_cond_broadcast(&c->cv);
    if (rc != BR_OK || c->n == 0) {
        pthread_mutex_unlock(&c->mu);
        return rc; /* nothing claimed: COMMIT of an empty read, or the failure */
    }
    while (c->state == C_CLAIMED) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    enum claim_state st = c->state;
    const int64_t *ids = c->ids;
    uint32_t nids = c->nids;
    pthread_mutex_unlock(&c->mu);
    if (st == C_ABORT) {
        return BR_E_UNAVAILABLE; /* the runner rolls back */
    }
    return mark_sent(t, ids, nids);
}

static void *claim_thread(void *arg)
{
    struct claim *c = arg;
    int rc = br_pg_run(c->pg, "outbox claim", BR_PG_WRITE, claim_body, c);
    pthread_mutex_lock(&c->mu);
    if (!c->handed) { /* never reached the rows: the claim failed */
        c->claim_rc = rc != BR_OK ? rc : BR_E_UNAVAILABLE;
        c->handed = true;
    }
    c->finish_rc = rc;
    c->state = C_DONE;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void claim_free(struct claim *c)
{
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

int br_pg_outbox_claim(struct br_pg *pg, uint32_t max, struct br_pg_outbox_batch *b)
{
    memset(b, 0, sizeof *b);
    if (max == 0) {
        return BR_OK;
    }
    struct claim *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return BR_E_UNAVAILABLE;
    }
    c->pg = pg;
    c->max = max;
    c->state = C_CLAIMING;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thread, NULL, claim_thread, c) != 0) {
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return BR_E_UNAVAILABLE;
    }
    pthread_mutex_lock(&c->mu);
    while (c->state == C_CLAIMING) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    int rc = c->claim_rc;
    pthread_mutex_unlock(&c->mu);
    if (rc != BR_OK || c->n == 0) {
        free_rows(c->rows, c->n);
        claim_free(c); /* the thread ends on its own (nothing to wait for) */
        return rc == BR_OK ? BR_OK : BR_E_UNAVAILABLE;
    }
    b->rows = c->rows;
    b->n = c->n;
    b->tx = c;
    return BR_OK;
}

static int end_claim(struct br_pg_outbox_batch *b, enum claim_state how, const int64_t *ids,
                     uint32_t n)
{
    struct claim *c = b->tx;
    if (c == NULL) {
        free_rows(b->rows, b->n);
        memset(b, 0, sizeof *b);
        return BR_OK;
    }
    pthread_mutex_lock(&c->mu);
    c->ids = ids;
    c->nids = n;
    c->state = how;
    pthread_cond_broadcast(&c->cv);
    while (c->state != C_DONE) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    int rc = c->finish_rc;
    pthread_mutex_unlock(&c->mu);
    claim_free(c);
    free_rows(b->rows, b->n);
    memset(b, 0, sizeof *b);
    return rc;
}

int br_pg_outbox_finish(struct br_pg *pg, struct br_pg_outbox_batch *b, const int64_t *ids,
                        uint32_t n)
{
    (void)pg;
    int rc = end_claim(b, C_FINISH, ids, n);
    if (rc == BR_OK) {
        return BR_OK;
    }
    br_logf(br_pg_log(pg), BR_LOG_WARN, "outbox finish failed",
            "\"error\":\"%s\",\"rows\":%" PRIu32, br_err_name(rc), n);
    return BR_E_UNAVAILABLE;
}

void br_pg_outbox_abort(struct br_pg *pg, struct br_pg_outbox_batch *b)
{
    (void)pg;
    (void)end_claim(b, C_ABORT, NULL, 0);
}

static int unsent_body(struct br_pg_tx *t, void *arg)
{
    int64_t *count = arg;
    PGresult *r = PQexecParams(t->conn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL", 0,
                               NULL, NULL, NULL, NULL, 0);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "outbox unsent");
    if (rc != BR_OK) {
        return rc;
    }
    *count = br_pg_i64(r, 0, 0);
    PQclear(r);
    return BR_OK;
}

int br_pg_outbox_unsent(struct br_pg *pg, int64_t *count)
{
    *count = 0;
    int rc = br_pg_run(pg, "outbox unsent", BR_PG_READ, unsent_body, count);
    return rc == BR_OK ? BR_OK : BR_E_UNAVAILABLE;
}
