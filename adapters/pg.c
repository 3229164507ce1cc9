/*
 * pg.c -- the PostgreSQL adapter's pool, its transaction runner, error
 * translation and migrations (pg.h; data access in pg_accounts.c,
 * pg_catalog.c and pg_record.c).
 *
 * The runner and a lost connection. A write body runs as
 *
 *     BEGIN; SELECT txid_current()     one round trip: remembers the txid
 *     body's statements
 *     COMMIT
 *
 * If the connection breaks before COMMIT is sent, the transaction died with
 * it: the whole body runs again once on a fresh connection. If COMMIT was
 * sent and no answer came, the runner asks the server on another connection
 * with txid_status(txid): "committed" is success (the body's outputs were
 * read before COMMIT and stand), "aborted" is the case above (run again
 * once), and anything else, or no server to ask, is BR_E_UNKNOWN_OUTCOME.
 * Reads run without a transaction and are retried once. A retried body must
 * produce the same outputs from the same state, which every body here does
 * (ids come from max + 1 under a lock; the projection reads its position).
 *
 * Pool: pool_size slots under one mutex and a condition variable on the
 * monotonic clock; a slot's connection is made outside the mutex by the
 * thread that took the slot. A connection is dropped (PQfinish) when its
 * body saw it broken, so the next user of the slot connects afresh.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "pg.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/clock.h"
#include "adapters/pg_internal.h"
#include "adapters/pg_migrations.h"
#include "core/err.h"
#include "core/panic.h"

struct slot {
    PGconn *conn;                 /* NULL until made, and after it broke */
    bool busy;                    /* lent to a caller */
    bool prepared[BR_PG_S_COUNT]; /* statements prepared on conn */
};

struct br_pg {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot slots[BR_PG_POOL_MAX];
    uint32_t size;
    char *url;
    const struct br_log *log;
    int64_t wait_ms;
    struct br_pg_stats stats;    /* under mu (pool_size and busy filled on reading) */
    uint32_t lose_commits;       /* under mu: fault injection, pg.h */
    uint32_t kill_before_commit; /* under mu: likewise */
};

const struct br_log *br_pg_log(const struct br_pg *pg)
{
    return pg->log;
}

int br_pg_open(struct br_pg **out, const char *url, uint32_t pool_size, const struct br_log *log)
{
    *out = NULL;
    if (url == NULL || url[0] == '\0' || pool_size < 1 || pool_size > BR_PG_POOL_MAX) {
        return BR_E_INVALID;
    }
    struct br_pg *pg = calloc(1, sizeof *pg);
    if (pg == NULL) {
        return BR_E_IO;
    }
    size_t len = strlen(url) + 1;
    pg->url = malloc(len);
    if (pg->url != NULL) {
        memcpy(pg->url, url, len);
    }
    if (pg->url == NULL || pthread_mutex_init(&pg->mu, NULL) != 0) {
        free(pg->url);
        free(pg);
        return BR_E_IO;
    }
    if (br_clock_cond_init(&pg->cv) != 0) {
        pthread_mutex_destroy(&pg->mu);
        free(pg->url);
        free(pg);
        return BR_E_IO;
    }
    pg->size = pool_size;
    pg->log = log != NULL ? log : &br_log_stderr;
    pg->wait_ms = BR_PG_WAIT_MS_DEFAULT;
    *out = pg;
    return BR_OK;
}

void br_pg_close(struct br_pg *pg)
{
    if (pg == NULL) {
        return;
    }
    for (uint32_t i = 0; i < pg->size; i++) {
        BR_ASSERT(!pg->slots[i].busy);
        if (pg->slots[i].conn != NULL) {
            PQfinish(pg->slots[i].conn);
        }
    }
    pthread_cond_destroy(&pg->cv);
    pthread_mutex_destroy(&pg->mu);
    free(pg->url);
    free(pg);
}

void br_pg_set_wait_ms(struct br_pg *pg, int64_t wait_ms)
{
    pthread_mutex_lock(&pg->mu);
    pg->wait_ms = wait_ms < 0 ? 0 : wait_ms;
    pthread_mutex_unlock(&pg->mu);
}

static void count(struct br_pg *pg, uint64_t *counter)
{
    pthread_mutex_lock(&pg->mu);
    (*counter)++;
    pthread_mutex_unlock(&pg->mu);
}

void br_pg_stats(struct br_pg *pg, struct br_pg_stats *out)
{
    pthread_mutex_lock(&pg->mu);
    *out = pg->stats;
    out->pool_size = pg->size;
    out->busy = 0;
    for (uint32_t i = 0; i < pg->size; i++) {
        out->busy += pg->slots[i].busy ? 1u : 0u;
    }
    pthread_mutex_unlock(&pg->mu);
}

uint64_t br_pg_connects(const struct br_pg *pg)
{
    struct br_pg *m = (struct br_pg *)pg; /* the mutex only */
    pthread_mutex_lock(&m->mu);
    uint64_t n = m->stats.connects;
    pthread_mutex_unlock(&m->mu);
    return n;
}

void br_pg_fault_lose_commits(struct br_pg *pg, uint32_t n)
{
    pthread_mutex_lock(&pg->mu);
    pg->lose_commits = n;
    pthread_mutex_unlock(&pg->mu);
}

void br_pg_fault_kill_before_commit(struct br_pg *pg, uint32_t n)
{
    pthread_mutex_lock(&pg->mu);
    pg->kill_before_commit = n;
    pthread_mutex_unlock(&pg->mu);
}

static bool take_fault(struct br_pg *pg, uint32_t *counter)
{
    pthread_mutex_lock(&pg->mu);
    bool take = *counter > 0;
    if (take) {
        (*counter)--;
    }
    pthread_mutex_unlock(&pg->mu);
    return take;
}

/* ---- the pool ----------------------------------------------------------- */

/* Server notices (a migration's "already exists, skipping") go to the log. */
static void on_notice(void *arg, const char *message)
{
    const struct br_pg *pg = arg;
    char esc[512];
    br_logf(pg->log, BR_LOG_DEBUG, "pg notice", "\"message\":\"%s\"",
            br_log_escape(message, esc, sizeof esc));
}

static PGconn *connect_one(struct br_pg *pg)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", BR_PG_CONNECT_TIMEOUT_S);
    /* Generic plans: every statement here is a key lookup whose best plan
     * does not depend on the values, and planning each execution again
     * would cost more than running it. Timeouts so nothing waits forever:
     * a statement 30 s, a transaction left idle (a process stuck in a hook
     * while it holds the users' lock) 60 s, and on TCP a peer that vanished
     * without a word (keepalives, 10 s for unacknowledged data). These
     * override the same keys in the URL. */
    const char *keys[] = {"dbname",
                          "connect_timeout",
                          "application_name",
                          "options",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          NULL};
    const char *vals[] = {pg->url,
                          timeout,
                          "bookingrush",
                          "-c plan_cache_mode=force_generic_plan -c statement_timeout=30000 "
                          "-c idle_in_transaction_session_timeout=60000",
                          "1",
                          "10",
                          "3",
                          "3",
                          "10000",
                          NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        char esc[512];
        br_logf(pg->log, BR_LOG_WARN, "pg connect failed", "\"error\":\"%s\"",
                br_log_escape(c != NULL ? PQerrorMessage(c) : "out of memory", esc, sizeof esc));
        PQfinish(c);
        count(pg, &pg->stats.connect_failures);
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, pg);
    count(pg, &pg->stats.connects);
    return c;
}

/* Takes a free slot, waiting up to wait_ms. BR_OK, BR_E_OVERLOADED. */
static int acquire(struct br_pg *pg, struct slot **out)
{
    pthread_mutex_lock(&pg->mu);
    struct timespec deadline = br_clock_deadline(pg->wait_ms);
    for (;;) {
        for (uint32_t i = 0; i < pg->size; i++) {
            /* prefer a slot with a live connection */
            if (!pg->slots[i].busy && pg->slots[i].conn != NULL) {
                pg->slots[i].busy = true;
                pthread_mutex_unlock(&pg->mu);
                *out = &pg->slots[i];
                return BR_OK;
            }
        }
        for (uint32_t i = 0; i < pg->size; i++) {
            if (!pg->slots[i].busy) {
                pg->slots[i].busy = true;
                pthread_mutex_unlock(&pg->mu);
                *out = &pg->slots[i];
                return BR_OK;
            }
        }
        if (pthread_cond_timedwait(&pg->cv, &pg->mu, &deadline) == ETIMEDOUT) {
            pg->stats.overloaded++;
            pthread_mutex_unlock(&pg->mu);
            br_logf(pg->log, BR_LOG_WARN, "pg pool exhausted", "\"pool_size\":%" PRIu32, pg->size);
            return BR_E_OVERLOADED;
        }
    }
}

/* Drops the slot's connection (it broke). */
static void drop(struct slot *s)
{
    if (s->conn != NULL) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    memset(s->prepared, 0, sizeof s->prepared);
}

static void release(struct br_pg *pg, struct slot *s)
{
    pthread_mutex_lock(&pg->mu);
    BR_ASSERT(s->busy);
    s->busy = false;
    pthread_cond_signal(&pg->cv);
    pthread_mutex_unlock(&pg->mu);
}

/* A connected slot: BR_OK or BR_E_UNAVAILABLE (slot released then). */
static int acquire_connected(struct br_pg *pg, struct slot **out)
{
    int rc = acquire(pg, out);
    if (rc != BR_OK) {
        return rc;
    }
    struct slot *s = *out;
    if (s->conn != NULL && PQstatus(s->conn) != CONNECTION_OK) {
        drop(s);
    }
    if (s->conn == NULL) {
        s->conn = connect_one(pg);
        if (s->conn == NULL) {
            release(pg, s);
            return BR_E_UNAVAILABLE;
        }
    }
    return BR_OK;
}

/* ---- statements, parameters, results ------------------------------------ */

void br_pg_params_init(struct br_pg_params *p)
{
    memset(p, 0, sizeof *p);
}

static void add(struct br_pg_params *p, const char *v, int len, int fmt)
{
    BR_ASSERT(p->n < BR_PG_PARAMS_MAX);
    p->val[p->n] = v;
    p->len[p->n] = len;
    p->fmt[p->n] = fmt;
    p->n++;
}

void br_pg_p_i64(struct br_pg_params *p, int64_t v)
{
    BR_ASSERT(p->n < BR_PG_PARAMS_MAX);
    snprintf(p->num[p->n], sizeof p->num[p->n], "%" PRId64, v);
    add(p, p->num[p->n], 0, 0);
}

void br_pg_p_u64(struct br_pg_params *p, uint64_t v)
{
    br_pg_p_i64(p, (int64_t)v); /* two's complement: read back by br_pg_u64 */
}

void br_pg_p_text(struct br_pg_params *p, const char *s)
{
    add(p, s, 0, 0);
}

void br_pg_p_bytes(struct br_pg_params *p, const void *b, int len)
{
    add(p, (const char *)b, len, 1);
}

void br_pg_p_bool(struct br_pg_params *p, bool v)
{
    add(p, v ? "t" : "f", 0, 0);
}

int br_pg_prepare(struct br_pg_tx *t, const struct br_pg_stmt *s)
{
    BR_ASSERT(s->slot < BR_PG_S_COUNT);
    if (t->prepared[s->slot]) {
        return BR_OK;
    }
    PGresult *r = PQprepare(t->conn, s->name, s->sql, s->nparams, NULL);
    int rc = br_pg_check(t, r, PGRES_COMMAND_OK, s->name);
    if (rc == BR_OK) {
        PQclear(r);
        t->prepared[s->slot] = true;
    }
    return rc;
}

int br_pg_send(struct br_pg_tx *t, const struct br_pg_stmt *s, const struct br_pg_params *p)
{
    BR_ASSERT(t->prepared[s->slot] && p->n == s->nparams);
    if (PQsendQueryPrepared(t->conn, s->name, p->n, p->val, p->len, p->fmt, 0) == 1) {
        return BR_OK;
    }
    char esc[512];
    br_logf(t->pg->log, BR_LOG_WARN, "pg send failed", "\"what\":\"%s\",\"error\":\"%s\"", s->name,
            br_log_escape(PQerrorMessage(t->conn), esc, sizeof esc));
    t->broken = true;
    return BR_E_UNAVAILABLE;
}

PGresult *br_pg_exec(struct br_pg_tx *t, const struct br_pg_stmt *s, const struct br_pg_params *p)
{
    BR_ASSERT(s->slot < BR_PG_S_COUNT && p->n == s->nparams);
    if (!t->prepared[s->slot]) {
        PGresult *r = PQprepare(t->conn, s->name, s->sql, s->nparams, NULL);
        if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
            return r; /* the caller's br_pg_check logs and translates */
        }
        PQclear(r);
        t->prepared[s->slot] = true;
    }
    return PQexecPrepared(t->conn, s->name, p->n, p->val, p->len, p->fmt, 0);
}

static bool lost_state(const char *st)
{
    return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
           strcmp(st, "57P03") == 0;
}

static int translate(struct br_pg_tx *t, const char *st)
{
    if (st[0] == '\0' || lost_state(st) || PQstatus(t->conn) != CONNECTION_OK) {
        t->broken = true;
        return BR_E_UNAVAILABLE;
    }
    if (strcmp(st, "23505") == 0) {
        return BR_E_DUPLICATE;
    }
    if (strcmp(st, "23514") == 0 || strcmp(st, "23503") == 0) {
        return BR_E_CORRUPT;
    }
    if (strncmp(st, "22", 2) == 0) {
        return BR_E_INVALID;
    }
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0) {
        t->retryable = true;
        return BR_E_UNAVAILABLE;
    }
    if (strncmp(st, "53", 2) == 0 || strcmp(st, "57014") == 0 || strcmp(st, "42P01") == 0) {
        return BR_E_UNAVAILABLE; /* out of resources, cancelled, or not migrated yet */
    }
    return BR_E_IO;
}

int br_pg_check(struct br_pg_tx *t, PGresult *r, ExecStatusType want, const char *what)
{
    if (r != NULL && PQresultStatus(r) == want) {
        t->sqlstate[0] = '\0';
        return BR_OK;
    }
    const char *st = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(t->sqlstate, sizeof t->sqlstate, "%s", st != NULL ? st : "");
    const char *msg = r != NULL ? PQresultErrorMessage(r) : "";
    if (msg == NULL || msg[0] == '\0') {
        msg = PQerrorMessage(t->conn);
    }
    int rc = translate(t, t->sqlstate);
    if (rc == BR_E_CORRUPT) {
        count(t->pg, &t->pg->stats.refused);
    }
    char esc[768];
    /* a duplicate is a client's outcome (a taken email), not a fault */
    enum br_log_level level = rc == BR_E_CORRUPT     ? BR_LOG_ERROR
                              : rc == BR_E_DUPLICATE ? BR_LOG_INFO
                                                     : BR_LOG_WARN;
    br_logf(t->pg->log, level, "pg statement failed",
            "\"what\":\"%s\",\"sqlstate\":\"%s\",\"error\":\"%s\",\"as\":\"%s\"", what, t->sqlstate,
            br_log_escape(msg, esc, sizeof esc), br_err_name(rc));
    PQclear(r);
    return rc;
}

int64_t br_pg_i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

uint64_t br_pg_u64(const PGresult *r, int row, int col)
{
    return (uint64_t)br_pg_i64(r, row, col);
}

bool br_pg_bool(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col)[0] == 't';
}

void br_pg_str(const PGresult *r, int row, int col, char *out, size_t cap)
{
    snprintf(out, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

int br_pg_bytea(const PGresult *r, int row, int col, uint8_t *out, size_t len)
{
    size_t n = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    int rc = b != NULL && n == len ? BR_OK : BR_E_CORRUPT;
    if (rc == BR_OK) {
        memcpy(out, b, len);
    }
    PQfreemem(b);
    return rc;
}

static const struct br_pg_stmt lock_xact = {BR_PG_S_LOCK_XACT, "lock_xact",
                                            "SELECT pg_advisory_xact_lock($1)", 1};

int br_pg_lock_xact(struct br_pg_tx *t, int64_t key)
{
    struct br_pg_params p;
    br_pg_params_init(&p);
    br_pg_p_i64(&p, key);
    PGresult *r = br_pg_exec(t, &lock_xact, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "advisory lock");
    if (rc == BR_OK) {
        PQclear(r);
    }
    return rc;
}

struct u64_arg {
    const struct br_pg_stmt *s;
    uint64_t *out;
};

static int u64_body(struct br_pg_tx *t, void *argp)
{
    struct u64_arg *a = argp;
    struct br_pg_params p;
    br_pg_params_init(&p);
    PGresult *r = br_pg_exec(t, a->s, &p);
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, a->s->name);
    if (rc == BR_OK) {
        *a->out = PQntuples(r) == 1 ? br_pg_u64(r, 0, 0) : 0;
        PQclear(r);
    }
    return rc;
}

int br_pg_read_u64(struct br_pg *pg, const struct br_pg_stmt *s, uint64_t *out)
{
    *out = 0;
    struct u64_arg a = {.s = s, .out = out};
    return br_pg_run(pg, s->name, BR_PG_READ, u64_body, &a);
}

/* ---- the runner --------------------------------------------------------- */

/* A simple-protocol command on t (BEGIN, COMMIT, ROLLBACK). */
static int simple(struct br_pg_tx *t, const char *sql, ExecStatusType want, PGresult **keep)
{
    PGresult *r = PQexec(t->conn, sql);
    int rc = br_pg_check(t, r, want, sql);
    if (rc == BR_OK && keep != NULL) {
        *keep = r;
    } else if (rc == BR_OK) {
        PQclear(r);
    }
    return rc;
}

/* After a lost COMMIT answer: "committed", "aborted" or "" (not known). */
static void txid_status(struct br_pg *pg, const char *txid, char *out, size_t cap)
{
    out[0] = '\0';
    for (int attempt = 0; attempt < 3 && out[0] == '\0'; attempt++) {
        if (attempt > 0) { /* 50 ms, then 200 ms: a restarting server may come back */
            struct timespec ts = {0, attempt == 1 ? 50000000L : 200000000L};
            nanosleep(&ts, NULL);
        }
        PGconn *c = connect_one(pg);
        if (c == NULL) {
            continue;
        }
        const char *vals[1] = {txid};
        PGresult *r =
            PQexecParams(c, "SELECT txid_status($1::bigint)", 1, NULL, vals, NULL, NULL, 0);
        if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            const char *v = PQgetvalue(r, 0, 0);
            if (strcmp(v, "committed") == 0 || strcmp(v, "aborted") == 0) {
                snprintf(out, cap, "%s", v);
            }
        }
        PQclear(r);
        PQfinish(c);
    }
}

enum attempt_result { DONE, AGAIN };

/* One attempt of a write body. */
static enum attempt_result write_once(struct br_pg_tx *t, const char *what, br_pg_body body,
                                      void *arg, int *rc)
{
    PGresult *r = NULL;
    *rc = simple(t, "BEGIN; SELECT txid_current()", PGRES_TUPLES_OK, &r);
    if (*rc != BR_OK) {
        return t->broken || t->retryable ? AGAIN : DONE;
    }
    char txid[32];
    br_pg_str(r, 0, 0, txid, sizeof txid);
    PQclear(r);
    *rc = body(t, arg);
    if (*rc != BR_OK) {
        if (!t->broken) {
            bool retry = t->retryable;
            (void)simple(t, "ROLLBACK", PGRES_COMMAND_OK, NULL);
            t->retryable = retry;
        }
        return t->broken || t->retryable ? AGAIN : DONE;
    }
    if (take_fault(t->pg, &t->pg->kill_before_commit)) {
        /* fault injection: the server ends this session with the work undone */
        PQclear(PQexec(t->conn, "SELECT pg_terminate_backend(pg_backend_pid())"));
    }
    int crc = simple(t, "COMMIT", PGRES_COMMAND_OK, NULL);
    if (crc == BR_OK && take_fault(t->pg, &t->pg->lose_commits)) {
        t->broken = true; /* fault injection: the answer is thrown away */
        crc = BR_E_UNAVAILABLE;
    }
    if (crc == BR_OK || !t->broken) {
        *rc = crc;
        return crc == BR_OK || !t->retryable ? DONE : AGAIN;
    }
    /* COMMIT was sent and no answer came: ask the server what happened. */
    char st[16];
    txid_status(t->pg, txid, st, sizeof st);
    br_logf(t->pg->log, BR_LOG_WARN, "pg commit answer lost",
            "\"what\":\"%s\",\"txid\":\"%s\",\"status\":\"%s\"", what, txid,
            st[0] != '\0' ? st : "unknown");
#ifdef BR_PLANT_PG_BLIND_RETRY
    st[0] = 'a'; /* planted: a lost COMMIT answer is taken for a rollback */
#endif
    if (st[0] != '\0') {
        count(t->pg, &t->pg->stats.commits_resolved);
    }
    if (strcmp(st, "committed") == 0) {
        *rc = BR_OK;
        return DONE;
    }
    if (st[0] == 'a') {
        *rc = BR_E_UNAVAILABLE; /* known: nothing committed */
        return AGAIN;
    }
    count(t->pg, &t->pg->stats.unknown_outcomes);
    *rc = BR_E_UNKNOWN_OUTCOME;
    return DONE;
}

int br_pg_run(struct br_pg *pg, const char *what, enum br_pg_run_kind kind, br_pg_body body,
              void *arg)
{
    int rc = BR_E_UNAVAILABLE;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct slot *s;
        rc = acquire_connected(pg, &s);
        if (rc != BR_OK) {
            return rc;
        }
        struct br_pg_tx t = {.pg = pg, .conn = s->conn, .prepared = s->prepared};
        enum attempt_result ar;
        if (kind == BR_PG_WRITE) {
            ar = write_once(&t, what, body, arg, &rc);
        } else {
            rc = body(&t, arg);
            ar = rc != BR_OK && (t.broken || t.retryable) ? AGAIN : DONE;
        }
        if (t.broken) {
            drop(s);
        }
        release(pg, s);
#ifdef BR_PLANT_PG_NO_RETRY
        ar = DONE; /* planted: a lost connection is never tried again */
#endif
        if (ar == DONE) {
            return rc;
        }
        count(pg, &pg->stats.retries);
        br_logf(pg->log, BR_LOG_INFO, "pg retry", "\"what\":\"%s\",\"attempt\":%d", what,
                attempt + 1);
    }
    return rc == BR_E_UNKNOWN_OUTCOME ? rc : BR_E_UNAVAILABLE;
}

static int ping_body(struct br_pg_tx *t, void *arg)
{
    (void)arg;
    return simple(t, "SELECT 1", PGRES_TUPLES_OK, NULL);
}

int br_pg_ping(struct br_pg *pg)
{
    return br_pg_run(pg, "ping", BR_PG_READ, ping_body, NULL);
}

/* ---- migrations --------------------------------------------------------- */

struct migrate_arg {
    FILE *report;
    uint32_t applied;
};

static unsigned version_of(const char *name)
{
    return (unsigned)strtoul(name, NULL, 10);
}

/* The versions recorded, as a bit per known migration; BR_E_VERSION if the
 * database has one this binary does not know. */
static int recorded(struct br_pg_tx *t, bool *done)
{
    PGresult *r = PQexec(t->conn, "SELECT version FROM schema_migrations ORDER BY version");
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "migrations read");
    if (rc != BR_OK) {
        return rc;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        unsigned v = (unsigned)br_pg_i64(r, i, 0);
        bool known = false;
        for (unsigned m = 0; m < br_pg_migration_count; m++) {
            if (version_of(br_pg_migrations[m].name) == v) {
                done[m] = known = true;
            }
        }
        if (!known) {
            br_logf(t->pg->log, BR_LOG_ERROR, "pg migration unknown to this binary",
                    "\"version\":%u", v);
            rc = BR_E_VERSION;
        }
    }
    PQclear(r);
    return rc;
}

static int apply_one(struct br_pg_tx *t, const struct br_pg_migration *m)
{
    int rc = simple(t, "BEGIN", PGRES_COMMAND_OK, NULL);
    if (rc != BR_OK) {
        return rc;
    }
    PGresult *r = PQexec(t->conn, m->sql);
    rc = br_pg_check(t, r, PGRES_COMMAND_OK, m->name);
    if (rc == BR_OK) {
        PQclear(r);
        char v[16];
        snprintf(v, sizeof v, "%u", version_of(m->name));
        const char *vals[2] = {v, m->name};
        r = PQexecParams(t->conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                         2, NULL, vals, NULL, NULL, 0);
        rc = br_pg_check(t, r, PGRES_COMMAND_OK, "migration record");
        if (rc == BR_OK) {
            PQclear(r);
        }
    }
    if (rc != BR_OK) {
        if (!t->broken) {
            (void)simple(t, "ROLLBACK", PGRES_COMMAND_OK, NULL);
        }
        return t->broken ? rc : BR_E_CORRUPT;
    }
    return simple(t, "COMMIT", PGRES_COMMAND_OK, NULL);
}

static int migrate_body(struct br_pg_tx *t, void *argp)
{
    struct migrate_arg *a = argp;
    /* A session lock: each migration commits on its own, under it. */
    char lock[64], unlock[64];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%lld)", (long long)BR_PG_LOCK_MIGRATE);
    snprintf(unlock, sizeof unlock, "SELECT pg_advisory_unlock(%lld)",
             (long long)BR_PG_LOCK_MIGRATE);
    /* a migration may take long (an index on a big table): no statement timeout */
    int rc = simple(t, "SET statement_timeout = 0", PGRES_COMMAND_OK, NULL);
    if (rc == BR_OK) {
        rc = simple(t, lock, PGRES_TUPLES_OK, NULL);
    }
    if (rc != BR_OK) {
        return rc;
    }
    rc = simple(t,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                PGRES_COMMAND_OK, NULL);
    bool done[64] = {false};
    BR_ASSERT(br_pg_migration_count <= 64);
    if (rc == BR_OK) {
        rc = recorded(t, done);
    }
    for (unsigned m = 0; rc == BR_OK && m < br_pg_migration_count; m++) {
        if (done[m]) {
            continue;
        }
        rc = apply_one(t, &br_pg_migrations[m]);
        if (rc == BR_OK) {
            a->applied++;
            br_logf(t->pg->log, BR_LOG_INFO, "pg migration applied", "\"name\":\"%s\"",
                    br_pg_migrations[m].name);
            if (a->report != NULL) {
                fprintf(a->report, "applied %s\n", br_pg_migrations[m].name);
            }
        }
    }
#ifdef BR_PLANT_PG_NO_CHECK
    if (rc == BR_OK) { /* planted: the zones lose their oversell CHECK */
        rc = simple(t, "ALTER TABLE zones DROP CONSTRAINT IF EXISTS zones_no_oversell",
                    PGRES_COMMAND_OK, NULL);
    }
#endif
#ifdef BR_PLANT_PG_EMAIL_CASE
    if (rc == BR_OK) { /* planted: emails unique regardless of case */
        rc =
            simple(t, "CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower ON users (lower(email))",
                   PGRES_COMMAND_OK, NULL);
    }
#endif
    if (!t->broken) {
        (void)simple(t, unlock, PGRES_TUPLES_OK, NULL);
        (void)simple(t, "RESET statement_timeout", PGRES_COMMAND_OK, NULL);
    }
    return rc;
}

struct status_arg {
    uint32_t recorded;
    bool unknown; /* a version this binary does not carry */
    bool missing; /* an embedded migration not recorded */
};

static int status_body(struct br_pg_tx *t, void *argp)
{
    struct status_arg *a = argp;
    a->recorded = 0;
    a->unknown = false;
    a->missing = true;
    PGresult *r = PQexec(t->conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    int rc = br_pg_check(t, r, PGRES_TUPLES_OK, "schema check");
    if (rc != BR_OK) {
        return rc;
    }
    bool table = br_pg_bool(r, 0, 0);
    PQclear(r);
    if (!table) {
        return BR_OK;
    }
    bool done[64] = {false};
    BR_ASSERT(br_pg_migration_count <= 64);
    rc = recorded(t, done);
    if (rc == BR_E_VERSION) {
        a->unknown = true;
        rc = BR_OK;
    }
    a->missing = false;
    for (unsigned m = 0; m < br_pg_migration_count; m++) {
        a->recorded += done[m] ? 1u : 0u;
        a->missing = a->missing || !done[m];
    }
    return rc;
}

int br_pg_schema_status(struct br_pg *pg, uint32_t *recorded_out, uint32_t *embedded)
{
    struct status_arg a = {0};
    int rc = br_pg_run(pg, "schema_status", BR_PG_READ, status_body, &a);
    if (recorded_out != NULL) {
        *recorded_out = a.recorded;
    }
    if (embedded != NULL) {
        *embedded = br_pg_migration_count;
    }
    if (rc != BR_OK) {
        return rc;
    }
    if (a.missing || a.unknown) {
        br_logf(pg->log, BR_LOG_WARN, "pg schema is not this binary's",
                "\"recorded\":%u,\"embedded\":%u,\"unknown\":%s", a.recorded, br_pg_migration_count,
                a.unknown ? "true" : "false");
        return BR_E_VERSION;
    }
    return BR_OK;
}

int br_pg_migrate(struct br_pg *pg, FILE *report, uint32_t *applied)
{
    for (unsigned m = 1; m < br_pg_migration_count; m++) {
        BR_ASSERT(version_of(br_pg_migrations[m - 1].name) < version_of(br_pg_migrations[m].name));
    }
    struct migrate_arg a = {.report = report, .applied = 0};
    /* READ: the body commits each migration itself; a lost connection leaves
     * whole migrations applied or not, and the retry applies the rest. */
    int rc = br_pg_run(pg, "migrate", BR_PG_READ, migrate_body, &a);
    if (applied != NULL) {
        *applied = a.applied;
    }
    return rc;
}
