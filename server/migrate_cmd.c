/*
 * migrate_cmd.c -- `bookingrush migrate [--pg URL]`: brings a PostgreSQL
 * database to this binary's schema.
 *
 * The URL comes from --pg or else BR_PG_URL. Every migration not yet
 * recorded in schema_migrations is applied in order, each in its own
 * transaction, under an advisory lock: running it twice, or from two
 * processes at once (every server start of a rollout), applies each
 * migration exactly once. Prints one line per migration applied and a
 * summary; errors go to the JSON log on stderr.
 */
#include "server/migrate_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/cli.h"
#include "adapters/log.h"
#include "adapters/pg.h"
#include "core/err.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: bookingrush migrate [--pg URL]\n\n"
               "Applies the PostgreSQL schema migrations built into this binary that the\n"
               "database has not recorded yet (table schema_migrations), in order, each in\n"
               "its own transaction. Safe to run again and from several processes at once.\n\n"
               "  --pg URL   the database, a libpq URI (postgresql://user@host:port/db) or\n"
               "             conninfo string; default: the environment variable BR_PG_URL\n"
               "  --help     this text\n\n"
               "Exit status: 0 done (nothing left to apply included), 1 failed, 2 usage.\n");
}

int br_migrate_main(int argc, char **argv)
{
    const char *url = getenv("BR_PG_URL");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--pg") == 0) {
            if (i + 1 >= argc) {
                return br_cli_missing_value("migrate", "--pg");
            }
            url = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--pg=", 5) == 0) {
            url = argv[i] + 5;
            continue;
        }
        if (argv[i][0] == '-') {
            return br_cli_unknown_option("migrate", argv[i]);
        }
        return br_cli_usage_error("migrate", "unexpected argument '%s'", argv[i]);
    }
    if (url == NULL || url[0] == '\0') {
        return br_cli_usage_error("migrate", "no database: give --pg URL or set BR_PG_URL");
    }
    struct br_pg *pg = NULL;
    int rc = br_pg_open(&pg, url, 1, &br_log_stderr);
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush migrate: %s\n", br_err_message(rc));
        return 1;
    }
    uint32_t applied = 0;
    rc = br_pg_migrate(pg, stdout, &applied);
    br_pg_close(pg);
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush migrate: failed (%s: %s) after applying %u\n", br_err_name(rc),
                br_err_message(rc), applied);
        return 1;
    }
    printf("migrate: %u applied, schema up to date\n", applied);
    return 0;
}
