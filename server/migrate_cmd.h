/*
 * migrate_cmd.h -- `bookingrush migrate --pg URL`: applies the PostgreSQL
 * schema migrations embedded in the binary (adapters/pg.h, br_pg_migrate).
 */
#ifndef BR_MIGRATE_CMD_H
#define BR_MIGRATE_CMD_H

/* argv[0] is "migrate". Returns the exit code: 0 done (also when nothing was
 * left to apply), 1 failed (the log says why), 2 usage. */
int br_migrate_main(int argc, char **argv);

#endif
