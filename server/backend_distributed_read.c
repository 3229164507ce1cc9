/*
 * backend_distributed_read.c -- reads of the live on-sale state in Redis
 * for the distributed backend: HMGET/HGET/ZRANK on the key layout the Lua
 * twins write (lua/lib.lua), sent through backend_distributed_io.c (one
 * node or a cluster). Each read is one round trip (a batch of queue views
 * two), and sees one consistent moment of each key but not of several keys
 * together: an answer may mix states a few microseconds apart, as any read
 * of a live sale does.
 *
 * The layout is lua/lib.lua's: an event's spec and counters, its holds
 * (field h:<seq>, "user:zone:qty:st:created:dl:amt:pass:pay:conf",
 * hold_save) and its members (field m:<user>, "st:pass:tix", member_save)
 * are fields of br:{e<id>}:ev; passes (br:{e}:p:<seq> dl) and payments
 * (br:{e}:y:<seq> hold st amt) are hashes of their own; users are
 * br:{cat}:u:<id> (email name role). Reading it here is a second copy of
 * that knowledge: every reader names its writer, and the HTTP suites read
 * every kind of record back through the distributed deployment.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/panic.h"
#include "server/backend_distributed_int.h"

#define W32 4294967296ull
#define VIEWS_CHUNK 256u /* users per batch of views (<= DIST_PIPE_MAX - 1) */

uint64_t dist_num(const redisReply *e)
{
    if (e->type == REDIS_REPLY_STRING) {
        return strtoull(e->str, NULL, 10);
    }
    if (e->type == REDIS_REPLY_INTEGER && e->integer >= 0) {
        return (uint64_t)e->integer;
    }
    return 0;
}

static void copy_str(char *dst, size_t cap, const redisReply *e)
{
    snprintf(dst, cap, "%s", e->type == REDIS_REPLY_STRING ? e->str : "");
}

/* An HMGET's reply: NULL (logged, dropped) unless an array of want. */
static redisReply *hmget(struct br_distributed *x, struct dist_conn *c, int argc, const char **argv,
                         size_t want, const char *what)
{
    size_t len[2 + 4 + 6 * BR_EVENT_ZONES_MAX + 64];
    BR_ASSERT((size_t)argc <= sizeof len / sizeof len[0]);
    for (int i = 0; i < argc; i++) {
        len[i] = strlen(argv[i]);
    }
    redisReply *rep = NULL;
    if (dist_cmd(x, c, &rep, argc, argv, len) != BR_OK) {
        return NULL;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != want) {
        dist_io_fail(x, c, what, NULL);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

int dist_parse_hold(const char *v, struct dist_hold *out)
{
    unsigned long long u, z, q, st, cr, dl, amt, pass, pay, conf;
    if (sscanf(v, "%llu:%llu:%llu:%llu:%llu:%llu:%llu:%llu:%llu:%llu", &u, &z, &q, &st, &cr, &dl,
               &amt, &pass, &pay, &conf) != 10) {
        return BR_E_CORRUPT;
    }
    out->user_id = u;
    out->zone_id = (uint32_t)z;
    out->quantity = (uint32_t)q;
    out->state = (uint8_t)st;
    out->created_ms = (int64_t)cr;
    out->deadline_ms = (int64_t)dl;
    out->amount_minor = (int64_t)amt;
    out->payment_seq = pay;
    return BR_OK;
}

int dist_read_hold(struct br_distributed *x, struct dist_conn *c, uint64_t hold_id,
                   struct dist_hold *out)
{
    memset(out, 0, sizeof *out);
    uint64_t event_id = hold_id >> 32;
    uint64_t seq = hold_id & (W32 - 1);
    if (event_id == 0 || seq == 0) {
        return BR_E_NOT_FOUND;
    }
    redisReply *rep = NULL;
    if (dist_cmdf(x, c, &rep, "HGET br:{e%llu}:ev h:%llu", (unsigned long long)event_id,
                  (unsigned long long)seq) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    int rc = rep->type == REDIS_REPLY_STRING ? dist_parse_hold(rep->str, out) : BR_E_NOT_FOUND;
    if (rc == BR_E_CORRUPT) {
        br_logf(x->cfg.log, BR_LOG_ERROR, "redis: a stored hold does not parse", "\"hold\":%llu",
                (unsigned long long)hold_id);
    }
    freeReplyObject(rep);
    return rc;
}

/* A payment: br:{e}:y:<seq> (payment_create.lua). */
int dist_read_payment(struct br_distributed *x, struct dist_conn *c, uint64_t payment_id,
                      struct dist_payment *out)
{
    memset(out, 0, sizeof *out);
    uint64_t event_id = payment_id >> 32;
    uint64_t seq = payment_id & (W32 - 1);
    if (event_id == 0 || seq == 0) {
        return BR_E_NOT_FOUND;
    }
    char key[64];
    snprintf(key, sizeof key, "br:{e%llu}:y:%llu", (unsigned long long)event_id,
             (unsigned long long)seq);
    const char *argv[] = {"HMGET", key, "hold", "st", "amt"};
    redisReply *rep = hmget(x, c, 5, argv, 3, "payment");
    if (rep == NULL) {
        return BR_E_UNAVAILABLE;
    }
    int rc = BR_E_NOT_FOUND;
    if (rep->element[0]->type == REDIS_REPLY_STRING) {
        out->hold_seq = dist_num(rep->element[0]);
        out->state = (uint8_t)dist_num(rep->element[1]);
        out->amount_minor = (int64_t)dist_num(rep->element[2]);
        rc = BR_OK;
    }
    freeReplyObject(rep);
    return rc;
}

/* The counters of br:{e}:ev (event_put.lua names them). */
int dist_read_counters(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                       uint32_t zone_count, struct dist_counters *out)
{
    memset(out, 0, sizeof *out);
    BR_ASSERT(zone_count >= 1 && zone_count <= BR_EVENT_ZONES_MAX);
    /* id qwait piss pact bk1..bk5 held1..heldN sold1..soldN */
    enum { FIXED = 4 + (BR_HOLD_STATE_COUNT - 1) };
    const char *argv[2 + FIXED + 2 * BR_EVENT_ZONES_MAX];
    char names[FIXED + 2 * BR_EVENT_ZONES_MAX][16];
    char key[48];
    snprintf(key, sizeof key, "br:{e%llu}:ev", (unsigned long long)event_id);
    int argc = 0;
    argv[argc++] = "HMGET";
    argv[argc++] = key;
    static const char *const fixed[4] = {"id", "qwait", "piss", "pact"};
    size_t n = 0;
    for (; n < 4; n++) {
        snprintf(names[n], sizeof names[n], "%s", fixed[n]);
    }
    for (unsigned s = BR_HOLD_HELD; s < BR_HOLD_STATE_COUNT; s++) {
        snprintf(names[n++], sizeof names[0], "bk%u", s);
    }
    for (uint32_t z = 1; z <= zone_count; z++) {
        snprintf(names[n++], sizeof names[0], "held%u", z);
        snprintf(names[n++], sizeof names[0], "sold%u", z);
    }
    for (size_t i = 0; i < n; i++) {
        argv[argc++] = names[i];
    }
    redisReply *rep = hmget(x, c, argc, argv, n, "counters");
    if (rep == NULL) {
        return BR_E_UNAVAILABLE;
    }
    int rc = BR_E_NOT_FOUND;
    if (rep->element[0]->type == REDIS_REPLY_STRING) {
        out->zone_count = zone_count;
        out->queue_length = (uint32_t)dist_num(rep->element[1]);
        out->admitted = (uint32_t)dist_num(rep->element[2]);
        out->active_passes = (uint32_t)dist_num(rep->element[3]);
        size_t k = 4;
        for (unsigned s = BR_HOLD_HELD; s < BR_HOLD_STATE_COUNT; s++) {
            out->bookings[s] = (uint32_t)dist_num(rep->element[k++]);
        }
        for (uint32_t z = 0; z < zone_count; z++) {
            out->held[z] = (uint32_t)dist_num(rep->element[k++]);
            out->sold[z] = (uint32_t)dist_num(rep->element[k++]);
        }
        rc = BR_OK;
    }
    freeReplyObject(rep);
    return rc;
}

int dist_read_cat(struct br_distributed *x, struct dist_conn *c, const char *field, uint64_t *out)
{
    *out = 0;
    redisReply *rep = NULL;
    if (dist_cmdf(x, c, &rep, "HGET br:{cat}:cat %s", field) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    *out = dist_num(rep);
    freeReplyObject(rep);
    return BR_OK;
}

/* ---- queue views ---- */

/* The passes' deadlines of the admitted users in out[0..n) (br:{e}:p:<seq>
 * dl, admit.lua), one more round trip. */
static int read_pass_deadlines(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                               uint32_t n, struct br_api_queue *out, const int *rc)
{
    struct dist_pipe p;
    dist_pipe_begin(x, c, &p);
    for (uint32_t i = 0; i < n; i++) {
        if (rc[i] == BR_OK && out[i].status == BR_QS_ADMITTED) {
            dist_pipe_addf(&p, "HGET br:{e%llu}:p:%llu dl", (unsigned long long)event_id,
                           (unsigned long long)(out[i].pass_id & (W32 - 1)));
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (rc[i] == BR_OK && out[i].status == BR_QS_ADMITTED) {
            redisReply *r = dist_pipe_next(&p);
            if (r == NULL) {
                break;
            }
            out[i].pass_expires_at_ms = (int64_t)dist_num(r);
            freeReplyObject(r);
        }
    }
    return dist_pipe_end(&p);
}

/* The event's counters and every member in one HMGET, a ZRANK each. */
static void views_send(struct dist_pipe *p, uint64_t event_id, const uint64_t *users, uint32_t n)
{
    char key[48];
    snprintf(key, sizeof key, "br:{e%llu}:ev", (unsigned long long)event_id);
    const char *argv[5 + VIEWS_CHUNK];
    size_t len[5 + VIEWS_CHUNK];
    char fields[VIEWS_CHUNK][32];
    int argc = 0;
    argv[argc++] = "HMGET";
    argv[argc++] = key;
    argv[argc++] = "id";
    argv[argc++] = "shuf";
    argv[argc++] = "qwait";
    for (uint32_t i = 0; i < n; i++) {
        snprintf(fields[i], sizeof fields[i], "m:%llu", (unsigned long long)users[i]);
        argv[argc++] = fields[i];
    }
    for (int i = 0; i < argc; i++) {
        len[i] = strlen(argv[i]);
    }
    dist_pipe_add(p, argc, argv, len);
    for (uint32_t i = 0; i < n; i++) {
        dist_pipe_addf(p, "ZRANK br:{e%llu}:q %llu", (unsigned long long)event_id,
                       (unsigned long long)users[i]);
    }
}

/* One user's view from its member value and ZRANK reply. */
static int view_of(uint64_t event_id, bool shuffled, uint32_t qlen, const redisReply *m,
                   const redisReply *rank, struct br_api_queue *out)
{
    memset(out, 0, sizeof *out);
    unsigned st = 0;
    unsigned long long pass = 0, tix = 0;
    if (m->type != REDIS_REPLY_STRING || sscanf(m->str, "%u:%llu:%llu", &st, &pass, &tix) != 3) {
        return BR_E_NOT_IN_QUEUE;
    }
    if (st == BR_QS_PREQUEUE && shuffled) {
        st = BR_QS_WAITING; /* lua/README.md: the shuffle rewrites nobody */
    }
    out->event_id = event_id;
    out->status = (uint8_t)st;
    out->queue_length = qlen;
    if (st == BR_QS_WAITING && rank != NULL && rank->type == REDIS_REPLY_INTEGER) {
        out->position = (uint32_t)rank->integer + 1;
    }
    if (st == BR_QS_ADMITTED) {
        out->pass_id = event_id * W32 + pass;
    }
    return BR_OK;
}

/* One chunk (n <= VIEWS_CHUNK) of dist_read_views. */
static int views_chunk(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                       const uint64_t *users, uint32_t n, struct br_api_queue *out, int *rc)
{
    struct dist_pipe p;
    dist_pipe_begin(x, c, &p);
    views_send(&p, event_id, users, n);
    redisReply *ev = dist_pipe_next(&p);
    if (ev == NULL) {
        dist_pipe_end(&p);
        return BR_E_UNAVAILABLE;
    }
    bool found = ev->type == REDIS_REPLY_ARRAY && ev->elements == 3 + (size_t)n &&
                 ev->element[0]->type == REDIS_REPLY_STRING;
    bool shuffled = found && dist_num(ev->element[1]) == 1;
    uint32_t qlen = found ? (uint32_t)dist_num(ev->element[2]) : 0;
    for (uint32_t i = 0; i < n; i++) {
        redisReply *rank = dist_pipe_next(&p);
        if (found) {
            rc[i] = view_of(event_id, shuffled, qlen, ev->element[3 + i], rank, &out[i]);
        }
        if (rank != NULL) {
            freeReplyObject(rank);
        }
    }
    freeReplyObject(ev);
    if (dist_pipe_end(&p) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    if (!found) {
        return BR_E_NOT_FOUND;
    }
    return read_pass_deadlines(x, c, event_id, n, out, rc);
}

int dist_read_views(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                    const uint64_t *users, uint32_t n, struct br_api_queue *out, int *rc)
{
    if (event_id == 0 || event_id > BR_EVENT_ID_MAX) {
        return BR_E_NOT_FOUND;
    }
    for (uint32_t at = 0; at < n; at += VIEWS_CHUNK) {
        uint32_t k = n - at < VIEWS_CHUNK ? n - at : VIEWS_CHUNK;
        int err = views_chunk(x, c, event_id, users + at, k, out + at, rc + at);
        if (err != BR_OK) {
            return err;
        }
    }
    return BR_OK;
}

/* ---- an event's spec, as event_put.lua stored it ---- */

int dist_read_spec(struct br_distributed *x, struct dist_conn *c, uint64_t event_id,
                   struct dist_spec *out)
{
    memset(out, 0, sizeof *out);
    enum { FIXED = 14, PER_ZONE = 4 };
    static const char *const fixed[FIXED] = {"id",    "owner", "name", "venue", "starts",
                                             "opens", "limit", "rp",   "maxa",  "apt",
                                             "pttl",  "httl",  "qcap", "zc"};
    static const char *const zf[PER_ZONE] = {"zname", "cap", "price", "cur"};
    char key[48];
    snprintf(key, sizeof key, "br:{e%llu}:ev", (unsigned long long)event_id);
    const char *argv[2 + FIXED + PER_ZONE * BR_EVENT_ZONES_MAX];
    char names[PER_ZONE * BR_EVENT_ZONES_MAX][16];
    int argc = 0;
    argv[argc++] = "HMGET";
    argv[argc++] = key;
    for (int i = 0; i < FIXED; i++) {
        argv[argc++] = fixed[i];
    }
    for (int z = 0; z < BR_EVENT_ZONES_MAX; z++) {
        for (int f = 0; f < PER_ZONE; f++) {
            char *n = names[z * PER_ZONE + f];
            snprintf(n, sizeof names[0], "%s%d", zf[f], z + 1);
            argv[argc++] = n;
        }
    }
    redisReply *rep = hmget(x, c, argc, argv, (size_t)argc - 2, "spec");
    if (rep == NULL) {
        return BR_E_UNAVAILABLE;
    }
    redisReply **e = rep->element;
    uint64_t zc = dist_num(e[13]);
    if (e[0]->type != REDIS_REPLY_STRING || zc < 1 || zc > BR_EVENT_ZONES_MAX) {
        freeReplyObject(rep);
        return BR_E_NOT_FOUND;
    }
    struct br_event_spec *sp = &out->spec;
    out->have = true;
    out->owner_id = dist_num(e[1]);
    copy_str(sp->name, sizeof sp->name, e[2]);
    copy_str(sp->venue, sizeof sp->venue, e[3]);
    sp->starts_at_ms = (int64_t)dist_num(e[4]);
    sp->sale_opens_at_ms = (int64_t)dist_num(e[5]);
    sp->per_user_limit = (uint32_t)dist_num(e[6]);
    sp->requires_pass = dist_num(e[7]) != 0;
    sp->max_active = (uint32_t)dist_num(e[8]);
    sp->admit_per_tick = (uint32_t)dist_num(e[9]);
    sp->pass_ttl_ms = (int64_t)dist_num(e[10]);
    sp->hold_ttl_ms = (int64_t)dist_num(e[11]);
    sp->queue_capacity = (uint32_t)dist_num(e[12]);
    sp->zone_count = (uint32_t)zc;
    for (uint32_t z = 0; z < sp->zone_count; z++) {
        redisReply **f = &e[FIXED + PER_ZONE * z];
        copy_str(sp->zones[z].name, sizeof sp->zones[z].name, f[0]);
        sp->zones[z].capacity = (uint32_t)dist_num(f[1]);
        sp->zones[z].price_minor = (int64_t)dist_num(f[2]);
        copy_str(sp->zones[z].currency, sizeof sp->zones[z].currency, f[3]);
    }
    freeReplyObject(rep);
    return BR_OK;
}

/* ---- a user, as user_register.lua / user_role_set.lua keep it ---- */

int dist_read_user(struct br_distributed *x, struct dist_conn *c, uint64_t user_id,
                   struct br_api_user *out)
{
    memset(out, 0, sizeof *out);
    char key[48];
    snprintf(key, sizeof key, "br:{cat}:u:%llu", (unsigned long long)user_id);
    const char *argv[] = {"HMGET", key, "email", "name", "role"};
    redisReply *rep = hmget(x, c, 5, argv, 3, "user");
    if (rep == NULL) {
        return BR_E_UNAVAILABLE;
    }
    int rc = BR_E_NOT_FOUND;
    if (rep->element[0]->type == REDIS_REPLY_STRING) {
        out->id = user_id;
        copy_str(out->email, sizeof out->email, rep->element[0]);
        copy_str(out->name, sizeof out->name, rep->element[1]);
        out->role = (uint8_t)dist_num(rep->element[2]);
        rc = BR_OK;
    }
    freeReplyObject(rep);
    return rc;
}
