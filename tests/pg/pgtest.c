/*
 * pgtest.c -- see pgtest.h.
 */
#include "pgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
