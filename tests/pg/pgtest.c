/*
 * pgtest.c -- see pgtest.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/pg.h"
#include "core/err.h"

#ifndef BR_SOURCE_DIR
#error "BR_SOURCE_DIR must name the source tree (CMake sets it)"
#endif

static void base_url(char *out, size_t cap)
{
    const char *state = getenv("BR_TEST_PG_STATE");
    if (state == NULL) {
        fprintf(stderr, "pgtest: BR_TEST_PG_STATE is not set (run through ctest)\n");
        exit(1);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/url", state);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(out, (int)cap, f) == NULL) {
        fprintf(stderr, "pgtest: no %s: is the pg_server fixture running?\n", path);
        exit(1);
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* "database ... does not exist, skipping" */
}

PGconn *pgt_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: connect %s: %s\n", url, PQerrorMessage(c));
        exit(1);
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

int pgt_exec(const char *url, const char *sql)
{
    PGconn *c = pgt_connect(url);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0) {
        fprintf(stderr, "pgtest: %s: %s\n", sql, PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

long long pgt_scalar(const char *url, const char *sql)
{
    PGconn *c = pgt_connect(url);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgtest: %s: %s\n", sql, PQresultErrorMessage(r));
        exit(1);
    }
    long long v = PQntuples(r) > 0 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    PQfinish(c);
    return v;
}

void pgt_fresh_db(const char *name, char *url, size_t cap)
{
    char base[PGT_URL_MAX];
    base_url(base, sizeof base);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    if (pgt_exec(base, sql) != 0) {
        exit(1);
    }
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (pgt_exec(base, sql) != 0) {
        exit(1);
    }
    /* the fixture's URL ends in "/postgres" */
    char *slash = strrchr(base, '/');
    if (slash == NULL) {
        exit(1);
    }
    *slash = '\0';
    snprintf(url, cap, "%s/%s", base, name);
}

int pgt_kill_adapter_connections(const char *url)
{
    return (int)pgt_scalar(url,
                           "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                           "WHERE application_name = 'bookingrush' "
                           "AND datname = current_database() AND pid <> pg_backend_pid()");
}

struct br_pg *pgt_open_db(const char *name, uint32_t pool, const struct br_log *log, char *url)
{
    pgt_fresh_db(name, url, PGT_URL_MAX);
    struct br_pg *pg = NULL;
    assert_int_equal(br_pg_open(&pg, url, pool, log), BR_OK);
    uint32_t applied = 0;
    assert_int_equal(br_pg_migrate(pg, NULL, &applied), BR_OK);
    assert_true(applied >= 1);
    return pg;
}

/* The server pgt_server_start started: how to stop it (empty: none). */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));
static char g_stop_cmd[1600];
static char g_state[128];

void pgt_server_stop(void)
{
    if (g_stop_cmd[0] != 0 && system(g_stop_cmd) != 0) {
        fprintf(stderr, "pgtest: stopping PostgreSQL failed\n");
    }
    g_stop_cmd[0] = 0;
}

int pgt_server_start(const char *tag, char *url, size_t cap)
{
    if (g_stop_cmd[0] != 0) {
        fprintf(stderr, "pgtest: a PostgreSQL of this process runs already\n");
        return -1;
    }
    snprintf(g_state, sizeof g_state, "/tmp/br-test-%.32s.%ld", tag, (long)getpid());
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "%s/tests/fixtures/pg.sh start %s", BR_SOURCE_DIR, g_state);
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    if (p != NULL) {
        n = fread(url, 1, cap - 1, p);
    }
    url[n] = 0;
    url[strcspn(url, "\r\n")] = 0;
    snprintf(g_stop_cmd, sizeof g_stop_cmd,
             "%s/tests/fixtures/pg.sh stop %s >/dev/null 2>&1; rm -rf %s", BR_SOURCE_DIR, g_state,
             g_state);
    if (p == NULL || pclose(p) != 0 || url[0] == 0) {
        fprintf(stderr, "pgtest: PostgreSQL did not start (%s)\n", cmd);
        pgt_server_stop(); /* what a failed start left behind */
        return -1;
    }
    static int hooked;
    if (!hooked) {
        atexit(pgt_server_stop);
        if (__sanitizer_set_death_callback != NULL) {
            __sanitizer_set_death_callback(pgt_server_stop);
        }
        hooked = 1;
    }
    setenv("BR_TEST_PG_STATE", g_state, 1);
    return 0;
}
