/*
 * pg_migrations.h -- the SQL migrations embedded in the binary.
 *
 * Generated at build time (adapters/CMakeLists.txt, with server/embed.cmake)
 * from adapters/migrations/NNNN_name.sql, in file-name order: the version is
 * the number the name starts with. br_pg_migrate applies them (pg.h).
 */
#ifndef BR_PG_MIGRATIONS_H
#define BR_PG_MIGRATIONS_H

struct br_pg_migration {
    const char *name; /* "0001_init" */
    const char *sql;  /* the file's text, NUL-terminated */
};

extern const struct br_pg_migration br_pg_migrations[];
extern const unsigned br_pg_migration_count;

#endif
