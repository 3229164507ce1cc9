/*
 * bench_pg_project.c -- how fast br_pg_project records reserves: N reserve
 * entries of one event (as the Redis log would carry them), projected in
 * batches, against a database of the fixture (BR_TEST_PG_STATE).
 *
 *   bench_pg_project [--entries N] [--batch B]
 *
 * Prints entries/s and the mean time per batch. Not a test: numbers only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/clock.h"
#include "adapters/pg.h"
#include "core/err.h"
#include "tests/pg/pgtest.h"

int main(int argc, char **argv)
{
    uint32_t total = 20000, batch = 256;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--entries") == 0) {
            total = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--batch") == 0) {
            batch = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        }
    }
    if (batch < 1 || batch > BR_PG_PROJECT_BATCH_MAX) {
        return 2;
    }
    char url[PGT_URL_MAX];
    pgt_fresh_db("b_pg_project", url, sizeof url);
    struct br_pg *pg = NULL;
    if (br_pg_open(&pg, url, 1, NULL) != BR_OK || br_pg_migrate(pg, NULL, NULL) != BR_OK) {
        return 1;
    }
    struct br_cmd ec;
    memset(&ec, 0, sizeof ec);
    ec.type = BR_CMD_EVENT_CREATE;
    struct br_event_spec *s = &ec.u.event_create;
    strcpy(s->name, "Bench");
    strcpy(s->venue, "Hall");
    s->per_user_limit = 4;
    s->max_active = 1000;
    s->admit_per_tick = 100;
    s->pass_ttl_ms = s->hold_ttl_ms = 600000;
    s->zone_count = 1;
    strcpy(s->zones[0].name, "Floor");
    s->zones[0].capacity = BR_ZONE_CAPACITY_MAX;
    s->zones[0].price_minor = 1000;
    strcpy(s->zones[0].currency, "EUR");
    uint64_t ev = 0;
    if (br_pg_event_create(pg, &ec, NULL, NULL, &ev) != BR_OK) {
        return 1;
    }
    struct br_cmd *c = calloc(batch, sizeof *c);
    struct br_outcome *o = calloc(batch, sizeof *o);
    struct br_pg_log_item *it = calloc(batch, sizeof *it);
    char(*sid)[BR_PG_STREAM_ID_MAX] = calloc(batch, sizeof *sid);
    int64_t t0 = br_clock_mono_us();
    uint32_t done = 0, batches = 0;
    while (done < total) {
        uint32_t n = total - done < batch ? total - done : batch;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t k = done + i + 1;
            c[i].type = BR_CMD_RESERVE;
            c[i].now_ms = 1000 + k;
            c[i].user_id = k;
            c[i].u.reserve.event_id = ev;
            c[i].u.reserve.zone_id = 1;
            c[i].u.reserve.quantity = 1;
            memset(&o[i], 0, sizeof o[i]);
            o[i].id = (ev << 32) | k;
            o[i].status = BR_HOLD_HELD;
            o[i].count = 1;
            o[i].amount_minor = 1000;
            o[i].deadline_ms = 601000 + k;
            snprintf(sid[i], sizeof sid[i], "1700000000000-%u", k);
            it[i] = (struct br_pg_log_item){sid[i], &c[i], &o[i], NULL, 0};
        }
        uint32_t applied = 0;
        int rc = br_pg_project(pg, ev, it, n, &applied);
        if (rc != BR_OK || applied != n) {
            fprintf(stderr, "project: %s\n", br_err_name(rc));
            return 1;
        }
        done += n;
        batches++;
    }
    double s_total = (double)(br_clock_mono_us() - t0) / 1e6;
    printf("pg projection: %u reserve entries in batches of %u: %.0f entries/s, %.2f ms a batch\n",
           total, batch, total / s_total, s_total * 1000 / batches);
    br_pg_close(pg);
    free(c);
    free(o);
    free(it);
    free(sid);
    return 0;
}
