/*
 * pgtest.h -- helpers of the PostgreSQL tests (tests/pg): the fixture's
 * server (tests/fixtures/pg.sh, started by the ctest fixture pg_server), a
 * fresh database per test, and direct SQL for checks behind the adapter's
 * back. The state dir comes from BR_TEST_PG_STATE (set by CMake).
 */
#ifndef BR_PGTEST_H
#define BR_PGTEST_H

#include <libpq-fe.h>
#include <stddef.h>

#define PGT_URL_MAX 256

/* Drops and creates database `name` on the fixture's server; its URL into
 * url. Aborts the process (exit 1) when the fixture is not running. */
void pgt_fresh_db(const char *name, char *url, size_t cap);

/* A plain libpq connection (aborts on failure); PQfinish it. */
PGconn *pgt_connect(const char *url);

/* Runs sql (must succeed) and returns the first column of the first row as
 * a number (0 if no rows). */
long long pgt_scalar(const char *url, const char *sql);

/* Runs sql; returns 0 on success, else prints the error and returns -1. */
int pgt_exec(const char *url, const char *sql);

/* Terminates every server connection of application "bookingrush" to the
 * database of url; returns how many. */
int pgt_kill_adapter_connections(const char *url);

#endif
