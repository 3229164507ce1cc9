/*
 * backend_distributed_index.c -- each user's list of bookings in the
 * distributed deployment: br:{u<user>}:bk, a zset of hold ids scored by
 * creation time (newest first when read backwards).
 *
 * Why an index of our own: holds live in their event's slot, and a user's
 * bookings span events; no script can write another slot, so the index is
 * written by the API process right after the reserve script answered (ZADD
 * NX: a retry with the same key writes it again and keeps the first score).
 *
 * A process killed between the script and the ZADD leaves a hold that the
 * index does not name. Every read repairs that before answering: the
 * user's member record in each event (field m:<user> of br:{e}:ev) counts
 * the tickets the user holds and bought there (the per-user limit's
 * counter, lua/lib.lua), so when the index's live and sold holds of an
 * event add up to fewer tickets than that, the event's holds are scanned
 * (HSCAN br:{e}:ev MATCH h:*) and the user's are indexed. The same repair
 * rebuilds the index after the reconciler restored an event from
 * PostgreSQL (its members' tickets come back from the holds). Cancelled and
 * expired holds count no tickets: one that a crash left out of the index
 * stays out of the list (it holds no seat).
 *
 * Cost of a read: three round trips (the members, the indexed holds, the
 * list) plus, only when something is missing, a scan of that event's hash.
 * Limits: INDEX_CHECK_MAX holds and INDEX_EVENTS_MAX events are checked.
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/panic.h"
#include "server/backend_distributed_int.h"

#define W32 4294967296ull
#define INDEX_CHECK_MAX 4096u  /* a user's indexed holds looked at by the check */
#define INDEX_EVENTS_MAX 1024u /* events whose member records are checked */
#define SCAN_COUNT 1000        /* HSCAN's hint per round */
#define SCAN_ROUNDS_MAX 100000u

int dist_index_hold(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                    uint64_t hold_id, int64_t created_ms)
{
    redisContext *rd = dist_rd(x, c);
    if (rd == NULL) {
        return BR_E_UNAVAILABLE;
    }
    redisReply *rep = redisCommand(rd, "ZADD br:{u%llu}:bk NX %lld %llu",
                                   (unsigned long long)user_id, (long long)created_ms,
                                   (unsigned long long)hold_id);
    int rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? BR_OK : BR_E_UNAVAILABLE;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    if (rc != BR_OK) {
        dist_rd_fail(x, c, "booking index");
    }
    return rc;
}

/* Reads n pipelined replies; NULL-filled and the connection dropped on a
 * failure (returns false). */
static bool replies(struct br_distributed *x, struct dist_conn *c, redisReply **out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c->rd, &r) != REDIS_OK || r == NULL) {
            for (uint32_t k = 0; k < i; k++) {
                freeReplyObject(out[k]);
            }
            dist_rd_fail(x, c, "booking index");
            return false;
        }
        out[i] = r;
    }
    return true;
}

/* tix[e-1] = the user's tickets in event e (0 when not a member). */
static int member_tickets(struct br_distributed *x, struct dist_conn *c, uint64_t user,
                          uint32_t events, uint32_t *tix)
{
    for (uint32_t e = 1; e <= events; e++) {
        redisAppendCommand(c->rd, "HGET br:{e%u}:ev m:%llu", e, (unsigned long long)user);
    }
    redisReply **reps = calloc(events, sizeof *reps);
    if (reps == NULL || !replies(x, c, reps, events)) {
        free(reps);
        return BR_E_UNAVAILABLE;
    }
    for (uint32_t i = 0; i < events; i++) {
        unsigned st = 0;
        unsigned long long pass = 0, t = 0;
        tix[i] = reps[i]->type == REDIS_REPLY_STRING &&
                         sscanf(reps[i]->str, "%u:%llu:%llu", &st, &pass, &t) == 3
                     ? (uint32_t)t
                     : 0;
        freeReplyObject(reps[i]);
    }
    free(reps);
    return BR_OK;
}

/* sum[e-1] = tickets of the indexed live or sold holds of the user in e. */
static int indexed_tickets(struct br_distributed *x, struct dist_conn *c, uint64_t user,
                           uint32_t events, uint32_t *sum)
{
    redisReply *list = redisCommand(c->rd, "ZRANGE br:{u%llu}:bk 0 %u",
                                    (unsigned long long)user, INDEX_CHECK_MAX - 1);
    if (list == NULL || list->type != REDIS_REPLY_ARRAY) {
        if (list != NULL) {
            freeReplyObject(list);
        }
        dist_rd_fail(x, c, "booking index");
        return BR_E_UNAVAILABLE;
    }
    uint32_t n = (uint32_t)list->elements;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = dist_num(list->element[i]);
        redisAppendCommand(c->rd, "HGET br:{e%llu}:ev h:%llu", (unsigned long long)(id >> 32),
                           (unsigned long long)(id & (W32 - 1)));
    }
    redisReply **reps = calloc(n + 1, sizeof *reps);
    bool ok = reps != NULL && replies(x, c, reps, n);
    for (uint32_t i = 0; ok && i < n; i++) {
        uint64_t e = dist_num(list->element[i]) >> 32;
        struct dist_hold h;
        if (e >= 1 && e <= events && reps[i]->type == REDIS_REPLY_STRING &&
            dist_parse_hold(reps[i]->str, &h) == BR_OK && h.user_id == user &&
            (h.state == BR_HOLD_HELD || h.state == BR_HOLD_CONFIRMED)) {
            sum[e - 1] += h.quantity;
        }
        freeReplyObject(reps[i]);
    }
    free(reps);
    freeReplyObject(list);
    return ok ? BR_OK : BR_E_UNAVAILABLE;
}

/* Scans event e's holds and indexes the user's. Returns how many it found. */
static uint32_t repair_event(struct br_distributed *x, struct dist_conn *c, uint64_t user,
                             uint32_t e)
{
    char cursor[32] = "0";
    uint32_t found = 0;
    for (uint32_t round = 0; round < SCAN_ROUNDS_MAX; round++) {
        redisReply *rep = redisCommand(c->rd, "HSCAN br:{e%u}:ev %s MATCH h:* COUNT %d", e,
                                       cursor, SCAN_COUNT);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            if (rep != NULL) {
                freeReplyObject(rep);
            }
            dist_rd_fail(x, c, "booking index scan");
            return found;
        }
        const redisReply *kv = rep->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            struct dist_hold h;
            unsigned long long seq = 0;
            if (kv->element[i]->type == REDIS_REPLY_STRING &&
                sscanf(kv->element[i]->str, "h:%llu", &seq) == 1 &&
                kv->element[i + 1]->type == REDIS_REPLY_STRING &&
                dist_parse_hold(kv->element[i + 1]->str, &h) == BR_OK && h.user_id == user &&
                dist_index_hold(x, c, user, (uint64_t)e * W32 + seq, h.created_ms) == BR_OK) {
                found++;
            }
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        freeReplyObject(rep);
        if (strcmp(cursor, "0") == 0 || c->rd == NULL) {
            break;
        }
    }
    return found;
}

/* Indexes what a crash (or a rebuild) left out. */
static int repair(struct br_distributed *x, struct dist_conn *c, uint64_t user)
{
    uint64_t events = 0;
    int rc = dist_read_cat(x, c, "events", &events);
    if (rc != BR_OK || events == 0) {
        return rc;
    }
    uint32_t n = events < INDEX_EVENTS_MAX ? (uint32_t)events : INDEX_EVENTS_MAX;
    uint32_t *tix = calloc(n, sizeof *tix);
    uint32_t *sum = calloc(n, sizeof *sum);
    rc = tix != NULL && sum != NULL ? member_tickets(x, c, user, n, tix) : BR_E_IO;
    if (rc == BR_OK) {
        rc = indexed_tickets(x, c, user, n, sum);
    }
    for (uint32_t e = 1; rc == BR_OK && e <= n && c->rd != NULL; e++) {
        if (tix[e - 1] > sum[e - 1]) {
            uint32_t found = repair_event(x, c, user, e);
            br_logf(x->cfg.log, BR_LOG_WARN, "booking index repaired",
                    "\"user\":%" PRIu64 ",\"event\":%u,\"tickets\":%u,\"indexed\":%u,"
                    "\"holds_seen\":%u",
                    user, e, tix[e - 1], sum[e - 1], found);
        }
    }
    free(tix);
    free(sum);
    return c->rd != NULL ? rc : BR_E_UNAVAILABLE;
}

int dist_read_user_holds(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                         uint64_t *ids, uint32_t max, uint32_t *count)
{
    *count = 0;
    if (max == 0) {
        return BR_OK;
    }
    if (dist_rd(x, c) == NULL) {
        return BR_E_UNAVAILABLE;
    }
    int rc = repair(x, c, user_id);
    if (rc != BR_OK) {
        return rc;
    }
    redisReply *rep = redisCommand(c->rd, "ZREVRANGE br:{u%llu}:bk 0 %u",
                                   (unsigned long long)user_id, max - 1);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        dist_rd_fail(x, c, "bookings");
        return BR_E_UNAVAILABLE;
    }
    for (size_t i = 0; i < rep->elements && *count < max; i++) {
        ids[(*count)++] = dist_num(rep->element[i]);
    }
    freeReplyObject(rep);
    return BR_OK;
}
