/*
 * pgtest.h -- helpers of the tests against PostgreSQL (tests/pg, tests/record,
 * tests/dist_backend): the fixture's server (tests/fixtures/pg.sh, started by
 * the ctest fixture pg_server, or by the test itself with pgt_server_start),
 * a fresh database per test, opened and migrated through the adapter, and
 * direct SQL for checks behind the adapter's back. The state dir comes from
 * BR_TEST_PG_STATE (set by CMake, or by pgt_server_start).
 */
#ifndef BR_PGTEST_H
#define BR_PGTEST_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct br_pg;
struct br_log;

#define PGT_URL_MAX 256

/* Drops and creates database `name` on the fixture's server; its URL into
 * url. Aborts the process (exit 1) when the fixture is not running. */
void pgt_fresh_db(const char *name, char *url, size_t cap);

/* pgt_fresh_db(name), then br_pg_open (pool connections, log may be NULL)
 * and br_pg_migrate on it; asserts (cmocka) that both succeed and that the
 * migration applied at least one step. The database's URL into url
 * (PGT_URL_MAX bytes). br_pg_close the result. */
struct br_pg *pgt_open_db(const char *name, uint32_t pool, const struct br_log *log, char *url);

/* For a test that runs outside ctest's fixture (a script runs it): starts
 * a PostgreSQL of its own with tests/fixtures/pg.sh in /tmp/br-test-<tag>.<pid>
 * and points BR_TEST_PG_STATE at it, so that pgt_fresh_db uses it. Its
 * maintenance database's URL into url (cap bytes). It is stopped by
 * pgt_server_stop, at exit, and when the process dies of a sanitizer report
 * (the sanitizers' death callback: their Die runs no atexit handlers).
 * Returns 0, or -1 (said on stderr) when it did not start. One at a time. */
int pgt_server_start(const char *tag, char *url, size_t cap);

/* Stops the server pgt_server_start started and removes its files; nothing
 * when none runs. */
void pgt_server_stop(void);

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
