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
 * Off the reserve's path. The ZADD is sent right after the script's
 * answer and not waited for (dist_send_nowait: its reply is read by the
 * slot's next use of its plain connection), so a reserve costs one round
 * trip, not two, and under appendfsync always one fsync wait, not two.
 * Correct because nothing trusts the index to be complete: the read
 * below checks it against the member records, which the reserve script
 * itself wrote (atomically with the hold, fsynced before its answer), and
 * repairs what is missing. A ZADD that is late, lost with a crash of this
 * process or of Redis, or refused, is therefore the case above. It is on
 * the socket before the client has its answer, so a list read after the
 * answer finds it already applied but for a race of two Redis clients
 * in one event-loop pass; then the check sees the missing tickets and
 * repairs it: a reserve answered 2xx is always listed. Error replies are
 * logged when read; a cluster sends it as an ordinary command.
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
#define SCAN_ROUNDS_MAX 100000u

#define INDEX_CHUNK 256u /* commands per batch (<= DIST_PIPE_MAX) */

int dist_index_hold(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                    uint64_t hold_id, int64_t created_ms)
{
    char key[48], score[24], member[24];
    snprintf(key, sizeof key, "br:{u%" PRIu64 "}:bk", user_id);
    snprintf(score, sizeof score, "%" PRId64, created_ms);
    snprintf(member, sizeof member, "%" PRIu64, hold_id);
    const char *argv[5] = {"ZADD", key, "NX", score, member};
    size_t len[5] = {4, strlen(key), 2, strlen(score), strlen(member)};
    /* Not waited for: see "Off the reserve's path" above. */
    return dist_send_nowait(x, c, 5, argv, len);
}

/* tix[e-1] = the user's tickets in event e (0 when not a member), for
 * events 1..events, in batches. */
static int member_tickets(struct br_distributed *x, struct dist_conn *c, uint64_t user,
                          uint32_t events, uint32_t *tix)
{
    for (uint32_t at = 1; at <= events; at += INDEX_CHUNK) {
        uint32_t k = events - at + 1 < INDEX_CHUNK ? events - at + 1 : INDEX_CHUNK;
        int rc = br_redis_member_tickets(&c->r, user, at, k, tix + at - 1);
        dist_note_redis(x, rc);
        if (rc != BR_OK) {
            return rc;
        }
    }
    return BR_OK;
}

/* sum[e-1] += tickets of the live or sold holds among ids[0..n) (indexed
 * holds of the user), one batch. */
static int add_tickets(struct br_distributed *x, struct dist_conn *c, uint64_t user,
                       const uint64_t *ids, uint32_t n, uint32_t events, uint32_t *sum)
{
    struct br_redis_hold h[INDEX_CHUNK];
    int found[INDEX_CHUNK];
    int rc = br_redis_holds_read(&c->r, ids, n, h, found);
    dist_note_redis(x, rc);
    for (uint32_t i = 0; rc == BR_OK && i < n; i++) {
        uint64_t e = ids[i] >> 32;
        if (e >= 1 && e <= events && found[i] == BR_OK && h[i].user_id == user &&
            (h[i].state == BR_HOLD_HELD || h[i].state == BR_HOLD_CONFIRMED)) {
            sum[e - 1] += h[i].quantity;
        }
    }
    return rc;
}

/* sum[e-1] = tickets of the indexed live or sold holds of the user in e. */
static int indexed_tickets(struct br_distributed *x, struct dist_conn *c, uint64_t user,
                           uint32_t events, uint32_t *sum)
{
    redisReply *list = NULL;
    if (dist_cmdf(x, c, &list, "ZRANGE br:{u%llu}:bk 0 %u", (unsigned long long)user,
                  INDEX_CHECK_MAX - 1) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    uint32_t n = list->type == REDIS_REPLY_ARRAY ? (uint32_t)list->elements : 0;
    uint64_t ids[INDEX_CHUNK];
    int rc = BR_OK;
    for (uint32_t at = 0; rc == BR_OK && at < n; at += INDEX_CHUNK) {
        uint32_t k = n - at < INDEX_CHUNK ? n - at : INDEX_CHUNK;
        for (uint32_t i = 0; i < k; i++) {
            ids[i] = dist_num(list->element[at + i]);
        }
        rc = add_tickets(x, c, user, ids, k, events, sum);
    }
    freeReplyObject(list);
    return rc;
}

struct scan_ctx {
    struct br_distributed *x;
    struct dist_conn *c;
    uint64_t user;
    uint32_t found;
};

static void index_if_users(void *ctx, uint64_t hold_id, const struct br_redis_hold *h)
{
    struct scan_ctx *s = ctx;
    if (h->user_id == s->user &&
        dist_index_hold(s->x, s->c, s->user, hold_id, h->created_ms) == BR_OK) {
        s->found++;
    }
}

/* Scans event e's holds and indexes the user's. Returns how many it found. */
static uint32_t repair_event(struct br_distributed *x, struct dist_conn *c, uint64_t user,
                             uint32_t e)
{
    char cursor[32] = "0";
    struct scan_ctx s = {.x = x, .c = c, .user = user, .found = 0};
    for (uint32_t round = 0; round < SCAN_ROUNDS_MAX; round++) {
        int rc = br_redis_holds_scan(&c->r, e, cursor, index_if_users, &s);
        dist_note_redis(x, rc);
        if (rc != BR_OK || strcmp(cursor, "0") == 0) {
            break;
        }
    }
    return s.found;
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
    for (uint32_t e = 1; rc == BR_OK && e <= n; e++) {
        if (tix[e - 1] > sum[e - 1]) {
            uint32_t found = repair_event(x, c, user, e);
            br_logf(x->cfg.log, BR_LOG_WARN, "booking index repaired",
                    "\"user\":%" PRIu64 ",\"event\":%u,\"tickets\":%u,\"indexed\":%u,"
                    "\"holds_of_user\":%u",
                    user, e, tix[e - 1], sum[e - 1], found);
        }
    }
    free(tix);
    free(sum);
    return rc;
}

int dist_read_user_holds(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                         uint64_t *ids, uint32_t max, uint32_t *count)
{
    *count = 0;
    if (max == 0) {
        return BR_OK;
    }
    int rc = repair(x, c, user_id);
    if (rc != BR_OK) {
        return rc;
    }
    redisReply *rep = NULL;
    if (dist_cmdf(x, c, &rep, "ZREVRANGE br:{u%llu}:bk 0 %u", (unsigned long long)user_id,
                  max - 1) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements && *count < max; i++) {
        ids[(*count)++] = dist_num(rep->element[i]);
    }
    freeReplyObject(rep);
    return BR_OK;
}
