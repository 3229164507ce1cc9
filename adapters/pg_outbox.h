/*
 * pg_outbox.h -- the relay's side of PostgreSQL's outbox table
 * (adapters/migrations/0001_init.sql): claim unsent rows in a transaction
 * that stays open while they are produced to Kafka, then mark the acked ones
 * sent and COMMIT (or ROLLBACK). Signatures as agreed in ISSUE11 §5.2 E;
 * implemented in pg_outbox.c on the pool of pg.h.
 */
#ifndef BR_PG_OUTBOX_H
#define BR_PG_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/pg.h"

struct br_pg_outbox_row {
    int64_t id;
    char topic[32];
    char key[32];
    char *payload;
    size_t len;
};
struct br_pg_outbox_batch {
    struct br_pg_outbox_row *rows;
    uint32_t n;
    void *tx;
};
/* BEGIN + claim up to max unsent rows in id order, FOR UPDATE SKIP LOCKED; the transaction stays
 * open until finish/abort. BR_OK (n may be 0, then already closed), BR_E_UNAVAILABLE. */
int br_pg_outbox_claim(struct br_pg *pg, uint32_t max, struct br_pg_outbox_batch *b);
/* Marks ids sent (sent_at = now()), COMMIT, frees b. BR_OK, BR_E_UNAVAILABLE (then nothing marked).
 */
int br_pg_outbox_finish(struct br_pg *pg, struct br_pg_outbox_batch *b, const int64_t *ids,
                        uint32_t n);
void br_pg_outbox_abort(struct br_pg *pg, struct br_pg_outbox_batch *b); /* ROLLBACK, frees b */
int br_pg_outbox_unsent(struct br_pg *pg, int64_t *count);

#endif
