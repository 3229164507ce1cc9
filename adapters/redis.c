/*
 * redis.c -- the Redis backend (design, key layout and error mapping in
 * redis.h; the scripts in lua/).
 *
 * Shape of one command: build the script's arguments in a scratch array
 * (numbers formatted in place, strings pointing into the command, and for
 * the scripts that log, the command's journal record last), send FCALL,
 * check the reply's shape and ranges, and turn it into a struct br_outcome
 * plus effects exactly as the core would have filled them. A few
 * commands span slots and take two or three steps (claims, event_create,
 * saga_step, the opening shuffle); each step is one atomic script and the
 * steps are ordered so that a crash between them leaves nothing a retry
 * cannot finish (redis.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "adapters/redis.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "adapters/log.h"
#include "adapters/redis_cluster.h"
#include "core/catalog.h"
#include "core/hash.h"
#include "core/journal.h"
#include "core/panic.h"
#include "core/rng.h"
#include "core/saga.h"
#include "core/str.h"
#include "lua/scripts.h"

#define ARGS_MAX (BR_SAGA_STEP_MAX + 64u) /* saga_step: one argument per refund */
#define NUM_LEN 48                        /* a formatted number or key prefix */
#define PIPE_WINDOW 512                   /* reads in flight while walking the state */
#define OUTCOME_FIELDS 10                 /* nine outcome fields and aux (lib.lua) */
#define FX_FIELDS 6

enum script {
    S_CONFIG,
    S_USER_REGISTER,
    S_USER_ROLE_SET,
    S_EVENT_ALLOC,
    S_EVENT_PUT,
    S_JOIN,
    S_LEAVE,
    S_ADMIT,
    S_OPEN,
    S_RESERVE,
    S_CANCEL,
    S_SWEEP,
    S_PAYMENT_CREATE,
    S_PAYMENT_EVENT,
    S_REFUND_RESULT,
    S_SAGA_STEP,
    S_PAYMENT_CHECK,
    S_RELEASE,
    S_REBUILD_CAT,
    S_REBUILD,
    S_QUEUE_MODE_SET,
    S_PRESENCE,
    S_COUNT
};

static const char *const script_names[S_COUNT] = {
    "config",         "user_register", "user_role_set", "event_alloc", "event_put", "join",
    "leave",          "admit",         "open",          "reserve",     "cancel",    "sweep",
    "payment_create", "payment_event", "refund_result", "saga_step",   "payment_check",
    "release",        "rebuild_cat",   "rebuild",       "queue_mode_set", "presence"};

_Static_assert(S_COUNT <= BR_REDIS_SCRIPTS_MAX, "every script has a name slot");

/* A refund due in some event, for saga_step's merge. */
struct due {
    int64_t next_ms;
    uint64_t payment_id;
};

struct br_redis_scratch {
    char *library; /* the Functions library as loaded: "@V@" replaced, plants applied */
    size_t library_len;
    uint8_t record[BR_JOURNAL_RECORD_MAX]; /* the logged command's journal record */
    uint64_t incarnations; /* event tokens drawn (incarnation) */
    int argc;
    const char *argv[ARGS_MAX];
    size_t len[ARGS_MAX];
    char num[ARGS_MAX][NUM_LEN];
    struct due *due; /* saga_step: candidates, then the chosen */
    size_t due_cap;
    struct br_effect *fx_tmp; /* saga_step: effects before reordering */
    uint8_t *perm;            /* the opening shuffle's permutation, encoded */
    uint32_t *slots;
    size_t perm_cap; /* slots the two arrays above hold */
};

/* ---- logging of foreign errors ---- */

static void log_foreign(const struct br_redis *r, const char *what, const char *detail)
{
    if (!r->opt.quiet) {
        char host[2 * BR_REDIS_HOST_MAX];
        char esc[512];
        br_log_escape(r->opt.host, host, sizeof host);
        br_log_escape(detail, esc, sizeof esc);
        br_logf(&br_log_stderr, BR_LOG_ERROR, "redis", "\"host\":\"%s\",\"port\":%d,\"what\":\"%s\","
                "\"detail\":\"%s\"", host, r->opt.port, what, esc);
    }
}

/* ---- connection ---- */

static void drop(struct br_redis *r)
{
    if (r->cluster != NULL) {
        br_cluster_queue_drop(r->cluster); /* the router dropped its broken connection */
    }
    if (r->ctx != NULL) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static int connect_if_needed(struct br_redis *r)
{
    if (r->ctx != NULL && br_cluster_idle_check_due(&r->used_ms) &&
        br_cluster_peer_closed(r->ctx)) {
        drop(r); /* the server closed it while idle (restarted): connect afresh */
    }
    if (r->ctx != NULL) {
        return BR_OK;
    }
    redisContext *c =
        redisConnectWithTimeout(r->opt.host, r->opt.port, ms_tv(r->opt.connect_timeout_ms));
    if (c == NULL || c->err != 0) {
        log_foreign(r, "connect", c != NULL ? c->errstr : "out of memory");
        if (c != NULL) {
            redisFree(c);
        }
        return BR_E_UNAVAILABLE;
    }
    if (redisSetTimeout(c, ms_tv(r->opt.command_timeout_ms)) != REDIS_OK ||
        redisEnableKeepAlive(c) != REDIS_OK) {
        log_foreign(r, "socket options", c->errstr);
        redisFree(c);
        return BR_E_UNAVAILABLE;
    }
    if (r->opt.db != 0) {
        redisReply *rep = redisCommand(c, "SELECT %d", r->opt.db);
        bool ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
        if (!ok) {
            log_foreign(r, "select", rep != NULL ? rep->str : c->errstr);
        }
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        if (!ok) {
            redisFree(c);
            return BR_E_UNAVAILABLE;
        }
    }
    r->ctx = c;
    (void)br_cluster_idle_check_due(&r->used_ms); /* fresh: idle from now */
    r->connects++;
    return BR_OK;
}

/*
 * Sends one command and reads its reply (*rep, the caller frees it).
 * BR_E_UNAVAILABLE when no byte of the request left (no connection, or the
 * first write failed); BR_E_UNKNOWN_OUTCOME when it may have reached Redis
 * but no reply came (timeout, lost connection). Either way the connection
 * is dropped and made again on the next call. In cluster mode the router
 * sends it to the key's node (redis_cluster.h), with the same meanings.
 */
static int call(struct br_redis *r, int argc, const char **argv, const size_t *len,
                redisReply **rep)
{
    *rep = NULL;
    if (r->cluster != NULL) {
        return br_cluster_call(r->cluster, argc, argv, len, rep);
    }
    if (connect_if_needed(r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    redisContext *c = r->ctx;
    BR_ASSERT(sdslen(c->obuf) == 0); /* nothing left over from an earlier request */
    if (redisAppendCommandArgv(c, argc, argv, len) != REDIS_OK) {
        log_foreign(r, "format", c->errstr);
        drop(r);
        return BR_E_UNAVAILABLE;
    }
    size_t whole = sdslen(c->obuf);
    int done = 0;
    for (uint32_t spins = 0; !done; spins++) {
        BR_ASSERT(spins < (1u << 30)); /* each round writes some bytes or fails */
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            bool some_sent = sdslen(c->obuf) < whole;
            log_foreign(r, "write", c->errstr);
            drop(r);
            return some_sent ? BR_E_UNKNOWN_OUTCOME : BR_E_UNAVAILABLE;
        }
    }
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK || reply == NULL) {
        log_foreign(r, "read", c->errstr);
        drop(r);
        return BR_E_UNKNOWN_OUTCOME;
    }
    *rep = reply;
    return BR_OK;
}

/* A read-only command: an unknown outcome changed nothing, so it is simply unavailable. */
static int call_read(struct br_redis *r, int argc, const char **argv, const size_t *len,
                     redisReply **rep)
{
    int rc = call(r, argc, argv, len, rep);
    return rc == BR_E_UNKNOWN_OUTCOME ? BR_E_UNAVAILABLE : rc;
}

int br_redis_command(struct br_redis *r, int argc, const char **argv, const size_t *len,
                     redisReply **rep)
{
    BR_ASSERT(r != NULL && argc >= 1 && argv != NULL && len != NULL && rep != NULL);
    return call(r, argc, argv, len, rep);
}

/* Splits a command formatted by hiredis (RESP: *N, then $len and the bytes
 * of each argument) into argv/len pointing into it. The argument count, or
 * -1 if cmd is not such an array of at most `max` strings. */
static int split_resp(const char *cmd, size_t n, const char **argv, size_t *len, int max)
{
    char *end;
    if (n < 4 || cmd[0] != '*') {
        return -1;
    }
    long argc = strtol(cmd + 1, &end, 10);
    if (argc < 1 || argc > max || end[0] != '\r') {
        return -1;
    }
    const char *p = end + 2;
    for (long i = 0; i < argc; i++) {
        if (p >= cmd + n || p[0] != '$') {
            return -1;
        }
        long l = strtol(p + 1, &end, 10);
        if (l < 0 || end[0] != '\r' || end + 2 + l + 2 > cmd + n) {
            return -1;
        }
        argv[i] = end + 2;
        len[i] = (size_t)l;
        p = end + 2 + l + 2;
    }
    return p == cmd + n ? (int)argc : -1;
}

int br_redis_commandf(struct br_redis *r, redisReply **rep, const char *fmt, ...)
{
    BR_ASSERT(r != NULL && rep != NULL && fmt != NULL);
    *rep = NULL;
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (n <= 0 || cmd == NULL) {
        return BR_E_INVALID;
    }
    const char *argv[BR_REDIS_COMMANDF_ARGS_MAX];
    size_t len[BR_REDIS_COMMANDF_ARGS_MAX];
    int argc = split_resp(cmd, (size_t)n, argv, len, BR_REDIS_COMMANDF_ARGS_MAX);
    int rc = argc > 0 ? call(r, argc, argv, len, rep) : BR_E_INVALID;
    redisFreeCommand(cmd);
    return rc;
}

/* ---- pipelined reads: one connection's pipeline, or the router's queue ---- */

_Static_assert(PIPE_WINDOW <= BR_CLUSTER_QUEUE_MAX, "the router queues a whole window");
_Static_assert(BR_REDIS_SEEDS_MAX == BR_CLUSTER_SEEDS_MAX, "a seed list fits the router");

static int pipe_begin(struct br_redis *r)
{
    if (r->cluster != NULL) {
        BR_ASSERT(r->cluster->queue_count == 0); /* every earlier pipeline was read or dropped */
        return BR_OK;
    }
    return connect_if_needed(r);
}

/* Queues one read. BR_OK or BR_E_UNAVAILABLE (the connection is dropped). */
static int pipe_append(struct br_redis *r, int argc, const char **argv, const size_t *len)
{
    if (r->cluster != NULL) {
        if (br_cluster_queue(r->cluster, argc, argv, len) != BR_OK) {
            drop(r);
            return BR_E_UNAVAILABLE;
        }
        return BR_OK;
    }
    if (redisAppendCommandArgv(r->ctx, argc, argv, len) != REDIS_OK) {
        log_foreign(r, "format", r->ctx->errstr);
        drop(r);
        return BR_E_UNAVAILABLE;
    }
    return BR_OK;
}

/* The pipeline's next reply (the caller frees it), or NULL when the
 * connection broke (logged as `what`, dropped). */
static redisReply *pipe_read(struct br_redis *r, const char *what)
{
    if (r->cluster != NULL) {
        redisReply *rep = br_cluster_next(r->cluster); /* the router logged a failure */
        if (rep == NULL) {
            drop(r);
        }
        return rep;
    }
    void *rep = NULL;
    if (redisGetReply(r->ctx, &rep) != REDIS_OK || rep == NULL) {
        log_foreign(r, what, r->ctx->errstr);
        drop(r);
        return NULL;
    }
    return rep;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Translates an error reply into our values (BR_OK when *rep is no error). */
static int translate_error(struct br_redis *r, enum script s, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ERROR) {
        return BR_OK;
    }
    const char *msg = rep->str;
    if (starts(msg, "BR_ARG")) {
        char esc[512];
        br_log_escape(msg, esc, sizeof esc);
        br_logf(&br_log_stderr, BR_LOG_ERROR, "a script refused its arguments",
                "\"script\":\"%s\",\"reply\":\"%s\"", script_names[s], esc);
        BR_ASSERT(!"a script refused the arguments the adapter built");
    }
    if (starts(msg, "BR_ASSERT")) {
        log_foreign(r, script_names[s], msg);
        return BR_E_CORRUPT;
    }
    static const char *const refusals[] = {"BUSY", "LOADING",    "MASTERDOWN",  "READONLY",
                                           "OOM",  "TRYAGAIN",   "CLUSTERDOWN", "MOVED",
                                           "ASK",  "NOREPLICAS", "MISCONF"};
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        if (starts(msg, refusals[i])) {
            log_foreign(r, script_names[s], msg);
            return BR_E_UNAVAILABLE; /* refused before running: nothing happened */
        }
    }
    log_foreign(r, script_names[s], msg);
    return BR_E_IO;
}

/* ---- the library ---- */

/* FUNCTION LOAD of the library. A library of this name already there is
 * this very text (the name carries its hash): loaded. */
static int load_library(struct br_redis *r)
{
    const char *argv[3] = {"FUNCTION", "LOAD", r->s->library};
    size_t lens[3] = {8, 4, r->s->library_len};
    redisReply *rep;
    int rc = call_read(r, 3, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (strstr(rep->str, "already exists") == NULL) {
            /* A library that does not compile is our bug, but a server that
             * refuses to load (OOM, ...) is foreign: say which. */
            rc = translate_error(r, S_CONFIG, rep);
        }
    } else {
        BR_ASSERT(rep->type == REDIS_REPLY_STRING);
    }
    freeReplyObject(rep);
    return rc;
}

/* Replaces every "@V@" in text[0..len) with v (3 bytes or more) into a new
 * buffer; *out_len set. NULL when out of memory. */
static char *replace_version(const char *text, size_t len, const char *v, size_t *out_len)
{
    size_t vl = strlen(v), count = 0;
    for (const char *at = strstr(text, "@V@"); at != NULL; at = strstr(at + 3, "@V@")) {
        count++;
    }
    size_t n = len + count * (vl - 3);
    char *out = malloc(n + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        if (i + 3 <= len && memcmp(text + i, "@V@", 3) == 0) {
            memcpy(out + w, v, vl);
            w += vl;
            i += 3;
        } else {
            out[w++] = text[i++];
        }
    }
    out[w] = 0;
    *out_len = w;
    return out;
}

/* Replaces the one occurrence of `from` in *text (*len) with `to`. */
static int patch_text(char **text, size_t *len, const char *from, const char *to)
{
    const char *at = strstr(*text, from);
    BR_ASSERT(at != NULL && strstr(at + 1, from) == NULL); /* a plant finds its one line */
    size_t fl = strlen(from), tl = strlen(to), head = (size_t)(at - *text);
    size_t n = *len - fl + tl;
    char *out = malloc(n + 1);
    if (out == NULL) {
        return BR_E_FULL;
    }
    memcpy(out, *text, head);
    memcpy(out + head, to, tl);
    memcpy(out + head + tl, at + fl, *len - head - fl);
    out[n] = 0;
    free(*text);
    *text = out;
    *len = n;
    return BR_OK;
}

/* The library as this build runs it, with the planted bugs of a test
 * build: BR_PLANT=LUA_LIMIT_OFF_BY_ONE lets a user go one ticket over the
 * limit in reserve (the differential test must see it),
 * BR_PLANT=LUA_REBUILD_TICKETS rebuilds members' tickets from confirmed
 * holds only (its rebuild check must see it), BR_PLANT=LUA_OVERSELL_BY_ONE
 * lets reserve sell one seat past a zone's capacity (PostgreSQL's CHECK must
 * refuse its projection: scripts/test.d/71-dist-plant.sh),
 * BR_PLANT=NO_PAYMENT_CHECK makes payment_check emit nothing, as the
 * core's plant does (scripts/test.d/23-check-plant.sh). Then the hash of the text
 * names the library and its functions, so two builds on one server never
 * run each other's code. */
static int prepare_library(struct br_redis *r)
{
    struct br_redis_scratch *s = r->s;
    size_t len = br_lua_library_len;
    char *text = malloc(len + 1);
    if (text == NULL) {
        return BR_E_FULL;
    }
    memcpy(text, br_lua_library, len + 1);
    static const char limit[] = "if tix + qty > sp.limit then";
    static const char tickets[] = "if st == BR_HOLD_HELD or st == BR_HOLD_CONFIRMED then";
#ifdef BR_PLANT_LUA_LIMIT_OFF_BY_ONE
    int rc = patch_text(&text, &len, limit, "if tix + qty > sp.limit + 1 then");
#else
    int rc = patch_text(&text, &len, limit, limit);
#endif
#ifdef BR_PLANT_LUA_REBUILD_TICKETS
    rc = rc == BR_OK ? patch_text(&text, &len, tickets, "if st == BR_HOLD_CONFIRMED then") : rc;
#else
    rc = rc == BR_OK ? patch_text(&text, &len, tickets, tickets) : rc;
#endif
    static const char emits[] = "local emits = true -- payment_check's effects";
#ifdef BR_PLANT_NO_PAYMENT_CHECK
    rc = rc == BR_OK ? patch_text(&text, &len, emits, "local emits = false -- planted: no") : rc;
#else
    rc = rc == BR_OK ? patch_text(&text, &len, emits, emits) : rc;
#endif
    static const char oversold[] = "if held + sold > cap then";
    static const char seats[] = "if cap - held - sold < qty then";
#ifdef BR_PLANT_LUA_OVERSELL_BY_ONE
    rc = rc == BR_OK ? patch_text(&text, &len, oversold, "if held + sold > cap + 1 then") : rc;
    rc = rc == BR_OK ? patch_text(&text, &len, seats, "if cap + 1 - held - sold < qty then") : rc;
#else
    rc = rc == BR_OK ? patch_text(&text, &len, oversold, oversold) : rc;
    rc = rc == BR_OK ? patch_text(&text, &len, seats, seats) : rc;
#endif
    /* Issue 13: admit's headroom (no more passes than seats available). */
    static const char headroom[] = "want = math.min(want, EV.avail) -- headroom";
#ifdef BR_PLANT_LUA_NO_HEADROOM
    rc = rc == BR_OK ? patch_text(&text, &len, headroom, "want = want -- planted: no headroom") : rc;
#else
    rc = rc == BR_OK ? patch_text(&text, &len, headroom, headroom) : rc;
#endif
    if (rc != BR_OK) {
        free(text);
        return rc;
    }
    char v[24];
    snprintf(v, sizeof v, "%016" PRIx64, br_hash64(text, len, 0x6c7561));
    s->library = replace_version(text, len, v, &s->library_len);
    free(text);
    if (s->library == NULL) {
        return BR_E_FULL;
    }
    for (int sc = 0; sc < S_COUNT; sc++) {
        unsigned i = 0;
        while (i < br_lua_function_count && strcmp(br_lua_functions[i], script_names[sc]) != 0) {
            i++;
        }
        BR_ASSERT(i < br_lua_function_count); /* every script the adapter calls is embedded */
        int n = snprintf(r->fn[sc], sizeof r->fn[sc], "%s_%s", script_names[sc], v);
        BR_ASSERT(n > 0 && (size_t)n < sizeof r->fn[sc]);
    }
    return BR_OK;
}

/* ---- arguments ---- */

static void arg_bytes(struct br_redis *r, const void *p, size_t len)
{
    struct br_redis_scratch *s = r->s;
    BR_ASSERT(s->argc < (int)ARGS_MAX);
    s->argv[s->argc] = p;
    s->len[s->argc] = len;
    s->argc++;
}

static void arg_fmt_u64(struct br_redis *r, uint64_t v)
{
    struct br_redis_scratch *s = r->s;
    BR_ASSERT(s->argc < (int)ARGS_MAX);
    char *buf = s->num[s->argc];
    int n = snprintf(buf, NUM_LEN, "%" PRIu64, v);
    arg_bytes(r, buf, (size_t)n);
}

static void arg_fmt_i64(struct br_redis *r, int64_t v)
{
    struct br_redis_scratch *s = r->s;
    BR_ASSERT(s->argc < (int)ARGS_MAX);
    char *buf = s->num[s->argc];
    int n = snprintf(buf, NUM_LEN, "%" PRId64, v);
    arg_bytes(r, buf, (size_t)n);
}

/* A fixed-size string field: the bytes before its NUL, or all of it. */
static void arg_field(struct br_redis *r, const char *field, size_t cap)
{
    arg_bytes(r, field, br_strnlen(field, cap));
}

/* FCALL <function> 1 <prefix> <now_ms>: every script's first arguments.
 * tag 'c' is the catalog; 'e', 'u', 'v' take an id. */
static void args_begin(struct br_redis *r, enum script sc, char tag, uint64_t id, int64_t now_ms)
{
    struct br_redis_scratch *s = r->s;
    s->argc = 0;
    arg_bytes(r, "FCALL", 5);
    arg_bytes(r, r->fn[sc], strlen(r->fn[sc]));
    arg_bytes(r, "1", 1);
    char *key = s->num[s->argc];
    int n = tag == 'c' ? snprintf(key, NUM_LEN, "br:{cat}:")
                       : snprintf(key, NUM_LEN, "br:{%c%" PRIu64 "}:", tag, id);
    arg_bytes(r, key, (size_t)n);
    arg_fmt_i64(r, now_ms);
}

/* The last argument of a script that logs: the command's journal record
 * (lua/README.md "The event log"), as the core would journal it. */
static void arg_record(struct br_redis *r, const struct br_cmd *c)
{
    size_t n = br_journal_record_encode(r->s->record, sizeof r->s->record, c, NULL);
    BR_ASSERT(n > 0); /* every command the adapter runs can be journaled */
    arg_bytes(r, r->s->record, n);
}

/* Runs the function whose arguments are in the scratch. On BR_OK *rep is a
 * non-error reply (the caller frees it). */
static int eval(struct br_redis *r, enum script sc, redisReply **rep)
{
    struct br_redis_scratch *s = r->s;
    for (int attempt = 0; attempt < 2; attempt++) {
        r->calls++;
        int rc = call(r, s->argc, s->argv, s->len, rep);
        if (rc != BR_OK) {
            return rc;
        }
        if ((*rep)->type == REDIS_REPLY_ERROR && starts((*rep)->str, "ERR Function not found")) {
            freeReplyObject(*rep);
            *rep = NULL;
            rc = load_library(r); /* a flushed or restarted server: nothing ran */
            if (rc != BR_OK) {
                return rc;
            }
            continue;
        }
        rc = translate_error(r, sc, *rep);
        if (rc != BR_OK) {
            freeReplyObject(*rep);
            *rep = NULL;
        }
        return rc;
    }
    return BR_E_IO; /* not found right after FUNCTION LOAD: the server forgets functions */
}

/* ---- replies ---- */

#define ID_MAX ((1LL << 53) - 1)

static bool in(long long v, long long lo, long long hi)
{
    return v >= lo && v <= hi;
}

/*
 * Checks a script's reply (shape and ranges: our scripts' contract, so a
 * violation is our bug) and turns it into *out, *aux and effects appended at
 * fx[*fx_count]. Returns out->err (or BR_REDIS_NEED_OPEN).
 */
/* The outcome's nine fields of a reply (lib.lua's order; aux, the tenth,
 * is the caller's). */
static void outcome_fill(const long long v[OUTCOME_FIELDS], struct br_outcome *out)
{
    out->err = (int32_t)v[0];
    out->status = (uint8_t)v[1];
    out->id = (uint64_t)v[2];
    out->ref = (uint64_t)v[3];
    out->position = (uint32_t)v[4];
    out->queue_length = (uint32_t)v[5];
    out->deadline_ms = v[6];
    out->amount_minor = v[7];
    out->count = (uint32_t)v[8];
}

/* An effect's six fields: kind user id ref deadline amount. */
static bool effect_ok(const long long f[FX_FIELDS])
{
    return in(f[0], BR_FX_PASS_ISSUED, BR_EFFECT_KIND_COUNT - 1) && in(f[1], 0, ID_MAX) &&
           in(f[2], 0, ID_MAX) && in(f[3], 0, ID_MAX);
}

static void effect_fill(const long long f[FX_FIELDS], uint64_t event_id, struct br_effect *x)
{
    memset(x, 0, sizeof *x);
    x->kind = (uint8_t)f[0];
    x->event_id = event_id;
    x->user_id = (uint64_t)f[1];
    x->id = (uint64_t)f[2];
    x->ref = (uint64_t)f[3];
    x->deadline_ms = f[4];
    x->amount_minor = f[5];
}

static int take_outcome(const redisReply *rep, uint64_t event_id, struct br_outcome *out,
                        int64_t *aux, struct br_effect *fx, uint32_t *fx_count)
{
    BR_ASSERT(rep->type == REDIS_REPLY_ARRAY && rep->elements >= OUTCOME_FIELDS);
    BR_ASSERT((rep->elements - OUTCOME_FIELDS) % FX_FIELDS == 0);
    size_t nfx = (rep->elements - OUTCOME_FIELDS) / FX_FIELDS;
    BR_ASSERT(nfx <= BR_EFFECTS_MAX - *fx_count);
    for (size_t i = 0; i < rep->elements; i++) {
        BR_ASSERT(rep->element[i]->type == REDIS_REPLY_INTEGER);
    }
    long long v[OUTCOME_FIELDS];
    for (size_t i = 0; i < OUTCOME_FIELDS; i++) {
        v[i] = rep->element[i]->integer;
    }
    BR_ASSERT(in(v[0], 1 - BR_ERR_COUNT, 0) || v[0] == BR_REDIS_NEED_OPEN);
    BR_ASSERT(in(v[1], 0, BR_QUEUE_STATUS_COUNT - 1) && in(v[2], 0, ID_MAX) && in(v[3], 0, ID_MAX));
    BR_ASSERT(in(v[4], 0, UINT32_MAX) && in(v[5], 0, UINT32_MAX) && in(v[8], 0, UINT32_MAX));
    BR_ASSERT(in(v[6], -ID_MAX, ID_MAX) && in(v[7], -ID_MAX, ID_MAX));
    outcome_fill(v, out);
    *aux = v[9];
    for (size_t k = 0; k < nfx; k++) {
        long long f[FX_FIELDS];
        for (size_t i = 0; i < FX_FIELDS; i++) {
            f[i] = rep->element[OUTCOME_FIELDS + FX_FIELDS * k + i]->integer;
        }
        BR_ASSERT(effect_ok(f));
        effect_fill(f, event_id, &fx[(*fx_count)++]);
    }
    return out->err;
}

/* eval + take_outcome. A transport failure leaves *out with err only. */
static int run(struct br_redis *r, enum script sc, uint64_t event_id, struct br_outcome *out,
               int64_t *aux, struct br_effect *fx, uint32_t *fx_count)
{
    redisReply *rep;
    int rc = eval(r, sc, &rep);
    if (rc != BR_OK) {
        memset(out, 0, sizeof *out);
        *fx_count = 0;
        return out->err = rc;
    }
    rc = take_outcome(rep, event_id, out, aux, fx, fx_count);
    freeReplyObject(rep);
    return rc;
}

/* ---- claims: a key's own slot, before the event's script ---- */

enum claim { CLAIM_NEW = 0, CLAIM_SAME = 1, CLAIM_OTHER = 2 };

/* SET <key> <value> NX GET: CLAIM_NEW (set now), CLAIM_SAME (held this
 * value already) or CLAIM_OTHER. */
static int claim(struct br_redis *r, const char *key, const char *value, enum claim *found)
{
    const char *argv[5] = {"SET", key, value, "NX", "GET"};
    size_t lens[5] = {3, strlen(key), strlen(value), 2, 3};
    redisReply *rep;
    int rc = call(r, 5, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        *found = CLAIM_NEW;
    } else if (rep->type == REDIS_REPLY_STRING) {
        *found = strcmp(rep->str, value) == 0 ? CLAIM_SAME : CLAIM_OTHER;
    } else {
        rc = translate_error(r, S_RELEASE, rep);
        if (rc == BR_OK) {
            rc = BR_E_IO;
            log_foreign(r, "claim", "unexpected reply type");
        }
    }
    freeReplyObject(rep);
    return rc;
}

/* Gives a fresh claim back (release.lua). Best effort: a claim left behind
 * only makes a later, different request with the same key conflict. */
static void release(struct br_redis *r, char tag, uint64_t id, const char *suffix,
                    const char *value, int64_t now_ms)
{
    args_begin(r, S_RELEASE, tag, id, now_ms);
    arg_bytes(r, suffix, strlen(suffix));
    arg_bytes(r, value, strlen(value));
    struct br_outcome o;
    struct br_effect fx[1];
    uint32_t n = 0;
    int64_t aux = 0;
    int rc = run(r, S_RELEASE, 0, &o, &aux, fx, &n);
    if (rc != BR_OK) {
        log_foreign(r, "release of a claim failed", suffix);
    }
}

/* ---- the catalog ---- */

/* Is user_id registered? Users are never removed, so a cached count only
 * has to be refreshed for ids above it. */
static int user_known(struct br_redis *r, uint64_t user_id, bool *known)
{
    *known = false;
    if (user_id == 0) {
        return BR_OK;
    }
    if (user_id <= r->users_known) {
        *known = true;
        return BR_OK;
    }
    const char *argv[3] = {"HGET", "br:{cat}:cat", "users"};
    size_t lens[3] = {4, 12, 5};
    redisReply *rep;
    int rc = call_read(r, 3, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = translate_error(r, S_CONFIG, rep);
    if (rc == BR_OK) {
        if (rep->type != REDIS_REPLY_STRING) {
            log_foreign(r, "catalog", "no user count");
            rc = BR_E_CORRUPT;
        } else {
            r->users_known = strtoull(rep->str, NULL, 10);
            *known = user_id <= r->users_known;
        }
    }
    freeReplyObject(rep);
    return rc;
}

/* A token for an event about to be written (event_put.lua, rebuild.lua),
 * below 2^53 and never 0: the library caches an event's spec while the
 * event's token is the one it read (lib.lua's SPECS), so an event written
 * again under the same key must get another. Drawn from the clock, the
 * process and a counter: two writes of one event id never share one. */
static uint64_t incarnation(struct br_redis *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = br_mix64(((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                          ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)r ^
                          ++r->s->incarnations);
    x &= (1ULL << 53) - 1;
    return x != 0 ? x : 1;
}

/* The spec arguments shared by event_alloc.lua and event_put.lua. */
static void args_spec(struct br_redis *r, const struct br_cmd *c, uint64_t event_id, uint64_t qcap)
{
    const struct br_event_spec *sp = &c->u.event_create;
    arg_fmt_u64(r, c->user_id);
    arg_fmt_u64(r, event_id);
    arg_fmt_u64(r, qcap);
    arg_field(r, sp->name, sizeof sp->name);
    arg_field(r, sp->venue, sizeof sp->venue);
    arg_fmt_i64(r, sp->starts_at_ms);
    arg_fmt_i64(r, sp->sale_opens_at_ms);
    arg_fmt_u64(r, sp->per_user_limit);
    arg_fmt_u64(r, sp->requires_pass ? 1 : 0);
    arg_fmt_u64(r, sp->max_active);
    arg_fmt_u64(r, sp->admit_per_tick);
    arg_fmt_i64(r, sp->pass_ttl_ms);
    arg_fmt_i64(r, sp->hold_ttl_ms);
    arg_fmt_u64(r, sp->queue_capacity);
    arg_fmt_u64(r, sp->zone_count);
    uint32_t zones =
        sp->zone_count >= 1 && sp->zone_count <= BR_EVENT_ZONES_MAX ? sp->zone_count : 0;
    for (uint32_t z = 0; z < zones; z++) {
        const struct br_zone_spec *zs = &sp->zones[z];
        arg_field(r, zs->name, sizeof zs->name);
        arg_fmt_u64(r, zs->capacity);
        arg_fmt_i64(r, zs->price_minor);
        arg_field(r, zs->currency, sizeof zs->currency);
    }
    /* Issue 13: the waiting room's spec fields, after the zones. */
    arg_fmt_u64(r, sp->admit_per_min);
    arg_fmt_u64(r, sp->presence_ttl_s);
    arg_fmt_u64(r, sp->pow_bits);
    arg_fmt_u64(r, sp->queue_flags);
    arg_fmt_u64(r, sp->mode);
}

static int event_create(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                        struct br_effect *fx, uint32_t *n)
{
    args_begin(r, S_EVENT_ALLOC, 'c', 0, c->now_ms);
    args_spec(r, c, 0, 0);
    int64_t qcap = 0;
    int rc = run(r, S_EVENT_ALLOC, 0, out, &qcap, fx, n);
    if (rc != BR_OK) {
        return rc;
    }
    BR_ASSERT(*n == 0 && in(qcap, 1, 1LL << 31) && in((long long)out->id, 1, BR_EVENT_ID_MAX));
    args_begin(r, S_EVENT_PUT, 'e', out->id, c->now_ms);
    args_spec(r, c, out->id, (uint64_t)qcap);
    arg_fmt_u64(r, incarnation(r));
    arg_record(r, c); /* the event's first log entry */
    struct br_outcome put;
    int64_t aux;
    rc = run(r, S_EVENT_PUT, out->id, &put, &aux, fx, n);
    if (rc != BR_OK) {
        /* The id is taken but the event's keys may be missing. */
        memset(out, 0, sizeof *out);
        return out->err = rc == BR_E_UNAVAILABLE ? BR_E_UNKNOWN_OUTCOME : rc;
    }
    BR_ASSERT(put.id == out->id && *n == 0);
    return BR_OK;
}

static int user_register(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                         struct br_effect *fx, uint32_t *n)
{
    args_begin(r, S_USER_REGISTER, 'c', 0, c->now_ms);
    arg_fmt_u64(r, c->user_id);
    arg_field(r, c->u.user_register.email, BR_EMAIL_MAX);
    arg_field(r, c->u.user_register.name, BR_NAME_MAX);
    arg_bytes(r, c->u.user_register.password_hash, BR_PASSWORD_HASH_LEN);
    arg_bytes(r, c->u.user_register.salt, BR_SALT_LEN);
    arg_fmt_u64(r, c->u.user_register.role);
    int64_t aux;
    int rc = run(r, S_USER_REGISTER, 0, out, &aux, fx, n);
    if (rc == BR_OK && out->id > r->users_known) {
        r->users_known = out->id; /* ids are counters: every smaller one exists */
    }
    return rc;
}

static int user_role_set(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                         struct br_effect *fx, uint32_t *n)
{
    args_begin(r, S_USER_ROLE_SET, 'c', 0, c->now_ms);
    arg_fmt_u64(r, c->user_id);
    arg_fmt_u64(r, c->u.user_role_set.target_user_id);
    arg_fmt_u64(r, c->u.user_role_set.role);
    int64_t aux;
    return run(r, S_USER_ROLE_SET, 0, out, &aux, fx, n);
}

/* ---- the queue ---- */

/* Draws the core's permutation of n pre-queue slots (Fisher-Yates over the
 * stream of (seed, event)) and runs open.lua with it. BR_OK or
 * BR_REDIS_NEED_OPEN (the pre-queue changed: the caller asks again). */
static int open_queue(struct br_redis *r, uint64_t event_id, int64_t now_ms, int64_t n64)
{
    BR_ASSERT(in(n64, 2, 1LL << 30));
    struct br_redis_scratch *s = r->s;
    size_t n = (size_t)n64;
    if (s->perm_cap < n) {
        uint8_t *perm = realloc(s->perm, 4 * n);
        if (perm != NULL) {
            s->perm = perm;
        }
        uint32_t *slots = realloc(s->slots, sizeof(uint32_t) * n);
        if (slots != NULL) {
            s->slots = slots;
        }
        if (perm == NULL || slots == NULL) {
            return BR_E_FULL;
        }
        s->perm_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        s->slots[i] = (uint32_t)i;
    }
    struct br_rng rng;
    br_rng_seed(&rng, r->cfg.seed, BR_SHUFFLE_STREAM ^ event_id);
    for (uint32_t i = (uint32_t)n; i > 1; i--) {
        uint32_t j = (uint32_t)br_rng_below(&rng, i);
        uint32_t t = s->slots[i - 1];
        s->slots[i - 1] = s->slots[j];
        s->slots[j] = t;
    }
    for (size_t k = 0; k < n; k++) {
        for (int b = 0; b < 4; b++) {
            s->perm[4 * k + (size_t)b] = (uint8_t)(s->slots[k] >> (8 * b));
        }
    }
    args_begin(r, S_OPEN, 'e', event_id, now_ms);
    arg_fmt_u64(r, n);
    arg_bytes(r, s->perm, 4 * n);
    struct br_outcome o;
    struct br_effect fx[1];
    uint32_t nfx = 0;
    int64_t aux;
    int rc = run(r, S_OPEN, event_id, &o, &aux, fx, &nfx);
    BR_ASSERT(nfx == 0);
    r->opens += rc == BR_OK && o.count > 0;
    return rc;
}

/* join, leave and admit: may first need the opening shuffle. */
static int queue_cmd(struct br_redis *r, enum script sc, const struct br_cmd *c,
                     struct br_outcome *out, struct br_effect *fx, uint32_t *n)
{
    uint64_t event_id = c->u.queue_join.event_id; /* the same field for all three */
    bool known = false;
    if (sc == S_JOIN) {
        int rc = user_known(r, c->user_id, &known);
        if (rc != BR_OK) {
            return out->err = rc;
        }
    }
    for (int attempt = 0; attempt < BR_REDIS_OPEN_ATTEMPTS_MAX; attempt++) {
        args_begin(r, sc, 'e', event_id, c->now_ms);
        arg_fmt_u64(r, c->user_id);
        if (sc == S_JOIN) {
            arg_fmt_u64(r, known ? 1 : 0);
        }
        arg_record(r, c);
        int64_t aux = 0;
        *n = 0;
        int rc = run(r, sc, event_id, out, &aux, fx, n);
        if (rc != BR_REDIS_NEED_OPEN) {
            return rc;
        }
        BR_ASSERT(*n == 0); /* asked before writing anything */
        rc = open_queue(r, event_id, c->now_ms, aux);
        if (rc < 0) {
            memset(out, 0, sizeof *out);
            return out->err = rc;
        }
    }
    log_foreign(r, "opening shuffle", "the pre-queue kept growing");
    memset(out, 0, sizeof *out);
    return out->err = BR_E_UNAVAILABLE;
}

/* ---- inventory ---- */

static int reserve(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                   struct br_effect *fx, uint32_t *n)
{
    const uint64_t event_id = c->u.reserve.event_id;
    const uint64_t key = c->u.reserve.idem_key;
    bool known;
    int rc = user_known(r, c->user_id, &known);
    if (rc != BR_OK) {
        return out->err = rc;
    }
    /* The core's fingerprint (br_inventory_reserve) of the request. */
    uint64_t fp =
        br_hash_step(br_hash_step(br_hash_step(br_hash_step(0, event_id), c->u.reserve.zone_id),
                                  c->u.reserve.quantity),
                     c->u.reserve.pass_id);
    char fp_text[24], claim_key[2 * NUM_LEN], suffix[NUM_LEN];
    snprintf(fp_text, sizeof fp_text, "%" PRIu64, fp);
    snprintf(suffix, sizeof suffix, "idem:%" PRIu64, key);
    snprintf(claim_key, sizeof claim_key, "br:{u%" PRIu64 "}:%s", c->user_id, suffix);
    enum claim found = CLAIM_NEW;
    if (key != 0) {
        rc = claim(r, claim_key, fp_text, &found);
        if (rc != BR_OK) {
            return out->err = rc;
        }
    }
    args_begin(r, S_RESERVE, 'e', event_id, c->now_ms);
    arg_fmt_u64(r, c->user_id);
    arg_fmt_u64(r, known ? 1 : 0);
    arg_fmt_u64(r, c->u.reserve.zone_id);
    arg_fmt_u64(r, c->u.reserve.quantity);
    arg_fmt_u64(r, c->u.reserve.pass_id);
    arg_fmt_u64(r, key);
    arg_bytes(r, fp_text, strlen(fp_text));
    arg_fmt_u64(r, (uint64_t)found);
    arg_record(r, c);
    int64_t recorded = 0;
    rc = run(r, S_RESERVE, event_id, out, &recorded, fx, n);
    BR_ASSERT(*n == 0 && in(recorded, 0, 1));
    if (key != 0 && found == CLAIM_NEW && recorded == 0 && rc != BR_E_UNKNOWN_OUTCOME) {
        release(r, 'u', c->user_id, suffix, fp_text, c->now_ms);
    }
    return rc;
}

/* cancel, payment_create, refund_result: the event is the id's high half. */
static int by_id(struct br_redis *r, enum script sc, const struct br_cmd *c, uint64_t id,
                 uint64_t extra, bool with_extra, struct br_outcome *out, struct br_effect *fx,
                 uint32_t *n)
{
    uint64_t event_id = id >> 32;
    args_begin(r, sc, 'e', event_id, c->now_ms);
    arg_fmt_u64(r, c->user_id);
    arg_fmt_u64(r, id);
    if (with_extra) {
        arg_fmt_u64(r, extra);
    }
    arg_record(r, c);
    int64_t aux;
    return run(r, sc, event_id, out, &aux, fx, n);
}

static int sweep(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                 struct br_effect *fx, uint32_t *n)
{
    args_begin(r, S_SWEEP, 'e', c->u.sweep.event_id, c->now_ms);
    arg_fmt_u64(r, c->user_id);
    arg_fmt_u64(r, c->u.sweep.max);
    arg_record(r, c);
    int64_t aux;
    return run(r, S_SWEEP, c->u.sweep.event_id, out, &aux, fx, n);
}

/* ---- saga ---- */

static int payment_event(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                         struct br_effect *fx, uint32_t *n)
{
    const uint64_t pid = c->u.payment_event.payment_id;
    const uint64_t pev = c->u.payment_event.provider_event_id;
    char pid_text[24], claim_key[NUM_LEN];
    snprintf(pid_text, sizeof pid_text, "%" PRIu64, pid);
    snprintf(claim_key, sizeof claim_key, "br:{v%" PRIu64 "}:pev", pev);
    enum claim found;
    int rc = claim(r, claim_key, pid_text, &found);
    if (rc != BR_OK) {
        return out->err = rc;
    }
    args_begin(r, S_PAYMENT_EVENT, 'e', pid >> 32, c->now_ms);
    arg_fmt_u64(r, c->user_id);
    arg_fmt_u64(r, pid);
    arg_fmt_u64(r, pev);
    arg_fmt_u64(r, c->u.payment_event.succeeded ? 1 : 0);
    arg_fmt_u64(r, (uint64_t)found);
    /* point 8: the void's answer "q:<payment>:failed:canceled" closes checks */
    arg_fmt_u64(r, !c->u.payment_event.succeeded && pev == br_saga_answer_id(pid, false, "canceled")
                       ? 1
                       : 0);
    arg_record(r, c);
    int64_t recorded = 0;
    rc = run(r, S_PAYMENT_EVENT, pid >> 32, out, &recorded, fx, n);
    BR_ASSERT(in(recorded, 0, 1));
    if (found == CLAIM_NEW && recorded == 0 && rc != BR_E_UNKNOWN_OUTCOME) {
        release(r, 'v', pev, "pev", pid_text, c->now_ms);
    }
    return rc;
}

static int due_less(const struct due *a, const struct due *b)
{
    if (a->next_ms != b->next_ms) {
        return a->next_ms < b->next_ms;
    }
    return a->payment_id < b->payment_id;
}

static int due_cmp(const void *a, const void *b)
{
    const struct due *x = a, *y = b;
    return due_less(x, y) ? -1 : due_less(y, x) ? 1 : 0;
}

static int due_reserve(struct br_redis_scratch *s, size_t need)
{
    if (need <= s->due_cap) {
        return BR_OK;
    }
    size_t cap = s->due_cap ? s->due_cap : 1024;
    while (cap < need) {
        cap *= 2;
    }
    struct due *d = realloc(s->due, sizeof *d * cap);
    if (d == NULL) {
        return BR_E_FULL;
    }
    s->due = d;
    s->due_cap = cap;
    return BR_OK;
}

static int64_t str_i64(const redisReply *e)
{
    if (e->type == REDIS_REPLY_INTEGER) {
        return e->integer;
    }
    if (e->type == REDIS_REPLY_STRING) {
        return strtoll(e->str, NULL, 10);
    }
    return 0;
}

static uint64_t events_count(struct br_redis *r, int *rc)
{
    const char *argv[3] = {"HGET", "br:{cat}:cat", "events"};
    size_t lens[3] = {4, 12, 6};
    redisReply *rep;
    *rc = call_read(r, 3, argv, lens, &rep);
    if (*rc != BR_OK) {
        return 0;
    }
    uint64_t v = 0;
    if (rep->type == REDIS_REPLY_STRING) {
        v = strtoull(rep->str, NULL, 10);
    } else {
        *rc = rep->type == REDIS_REPLY_ERROR ? translate_error(r, S_SAGA_STEP, rep) : BR_E_CORRUPT;
    }
    freeReplyObject(rep);
    return v;
}

/*
 * saga_step over all events: read every event's due refunds (and how many
 * are pending), merge them in the core's (next attempt, payment id) order,
 * keep the first max, run each event's share with saga_step.lua, and list
 * the effects in the merged order.
 */
/* Phase 1 of saga_step for events base..last, pipelined: each event's
 * refunds due at now (at most max each) into s->due[*cand..], and its
 * pending count into *pending. BR_OK, BR_E_UNAVAILABLE, BR_E_FULL or
 * BR_E_CORRUPT (a reply of the wrong shape). */
static int saga_gather(struct br_redis *r, const char *zset, uint64_t base, uint64_t last,
                       const char *now_text, const char *max_text, size_t *cand,
                       uint64_t *pending)
{
    struct br_redis_scratch *s = r->s;
    if (pipe_begin(r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    for (uint64_t e = base; e <= last; e++) {
        char key[NUM_LEN];
        snprintf(key, sizeof key, "br:{e%" PRIu64 "}:%s", e, zset);
        const char *a1[8] = {"ZRANGEBYSCORE", key, "-inf", now_text, "WITHSCORES", "LIMIT", "0",
                             max_text};
        size_t l1[8] = {13, strlen(key), 4, strlen(now_text), 10, 5, 1, strlen(max_text)};
        const char *a2[2] = {"ZCARD", key};
        size_t l2[2] = {5, strlen(key)};
        if (pipe_append(r, 8, a1, l1) != BR_OK || pipe_append(r, 2, a2, l2) != BR_OK) {
            return BR_E_UNAVAILABLE;
        }
    }
    int rc = BR_OK;
    for (uint64_t e = base; e <= last; e++) {
        redisReply *list = pipe_read(r, "saga_step read");
        redisReply *card = list != NULL ? pipe_read(r, "saga_step read") : NULL;
        if (card == NULL) {
            if (list != NULL) {
                freeReplyObject(list);
            }
            drop(r);
            return BR_E_UNAVAILABLE;
        }
        bool ok = list->type == REDIS_REPLY_ARRAY && list->elements % 2 == 0 &&
                  card->type == REDIS_REPLY_INTEGER;
        if (ok && due_reserve(s, *cand + list->elements / 2) == BR_OK) {
            for (size_t i = 0; i < list->elements; i += 2) {
                s->due[*cand].payment_id = (e << 32) | (uint64_t)str_i64(list->element[i]);
                s->due[*cand].next_ms = str_i64(list->element[i + 1]);
                (*cand)++;
            }
            *pending += (uint64_t)card->integer;
        } else {
            rc = ok ? BR_E_FULL : BR_E_CORRUPT;
        }
        freeReplyObject(list);
        freeReplyObject(card);
    }
    return rc;
}

/* Phase 2 of saga_step: runs the script once per event with that event's
 * number k among the first `chosen` due refunds, in event order; the
 * script re-emits the first k due in its event (saga_step.lua), logged as
 * the command saga_step{max = k}. Effects go to s->fx_tmp[*ntmp], refunds
 * attempted are added to *done. */
static int saga_run_shares(struct br_redis *r, enum script sc, const struct br_cmd *c,
                           size_t chosen, uint32_t *ntmp, uint32_t *done)
{
    struct br_redis_scratch *s = r->s;
    for (size_t i = 0; i < chosen;) {
        uint64_t e = s->due[i].payment_id >> 32;
        uint32_t k = 0;
        for (size_t j = i; j < chosen; j++) {
            if (s->due[j].payment_id >> 32 == e) {
                k++;
                s->due[j].next_ms = INT64_MIN; /* this event's share: handled here */
            }
        }
        struct br_cmd share = *c;
        if (sc == S_SAGA_STEP) {
            share.u.saga_step.max = k;
#ifdef BR_PLANT_LUA_LOG_SAGA_MAX
            share.u.saga_step.max = c->u.saga_step.max; /* planted: the step's max is logged */
#endif
        } else {
            share.u.payment_check.max = k;
        }
        args_begin(r, sc, 'e', e, c->now_ms);
        arg_fmt_u64(r, k);
        arg_record(r, &share);
        struct br_outcome o;
        int64_t aux;
        int rc = run(r, sc, e, &o, &aux, s->fx_tmp, ntmp);
        if (rc != BR_OK) {
            return rc == BR_E_UNAVAILABLE && *done > 0 ? BR_E_UNKNOWN_OUTCOME : rc;
        }
        *done += o.count;
        while (i < chosen && s->due[i].next_ms == INT64_MIN) {
            i++; /* the next event with a share */
        }
    }
    return BR_OK;
}

/* saga_step (sc = S_SAGA_STEP, zset refunds) and payment_check
 * (S_PAYMENT_CHECK, zset checks): the same merge over events. */
static int saga_over_events(struct br_redis *r, enum script sc, const struct br_cmd *c,
                            struct br_outcome *out, struct br_effect *fx, uint32_t *n)
{
    const uint32_t max = sc == S_SAGA_STEP ? c->u.saga_step.max : c->u.payment_check.max;
    const char *zset = sc == S_SAGA_STEP ? "refunds" : "checks";
    if (c->user_id != 0) {
        return out->err = BR_E_FORBIDDEN;
    }
    if (max < 1 || max > BR_SAGA_STEP_MAX) {
        return out->err = BR_E_INVALID;
    }
    int rc;
    uint64_t events = events_count(r, &rc);
    if (rc != BR_OK) {
        return out->err = rc;
    }
    struct br_redis_scratch *s = r->s;
    size_t cand = 0;
    uint64_t pending = 0;
    char now_text[NUM_LEN], max_text[NUM_LEN];
    snprintf(now_text, sizeof now_text, "%" PRId64, c->now_ms);
    snprintf(max_text, sizeof max_text, "%" PRIu32, max);
    /* Phase 1: every event's due refunds and pending count, pipelined. */
    for (uint64_t base = 1; base <= events; base += PIPE_WINDOW / 2) {
        uint64_t last = base + PIPE_WINDOW / 2 - 1 < events ? base + PIPE_WINDOW / 2 - 1 : events;
        rc = saga_gather(r, zset, base, last, now_text, max_text, &cand, &pending);
        if (rc != BR_OK) {
            return out->err = rc;
        }
    }
    if (cand > 1) {
        qsort(s->due, cand, sizeof *s->due, due_cmp);
    }
    size_t chosen = cand < max ? cand : max;
    /* Phase 2: each event's share, in event order; effects into fx_tmp. */
    uint32_t ntmp = 0, done = 0;
    rc = saga_run_shares(r, sc, c, chosen, &ntmp, &done);
    if (rc != BR_OK) {
        memset(out, 0, sizeof *out);
        *n = 0;
        return out->err = rc;
    }
    /* Effects in the merged order: the k-th chosen refund's effect, if it
     * ran; then any other (a share whose first k due changed in between,
     * as another process's step or refund_result ran: each share is still
     * the core's step on its event). */
    *n = 0;
    for (size_t k = 0; k < chosen; k++) {
        for (uint32_t t = 0; t < ntmp; t++) {
            if (s->fx_tmp[t].id == s->due[k].payment_id && s->fx_tmp[t].kind != BR_FX_NONE) {
                fx[(*n)++] = s->fx_tmp[t];
                s->fx_tmp[t].kind = BR_FX_NONE;
                break;
            }
        }
    }
    for (uint32_t t = 0; t < ntmp; t++) {
        if (s->fx_tmp[t].kind != BR_FX_NONE) {
            fx[(*n)++] = s->fx_tmp[t];
        }
    }
#ifdef BR_PLANT_NO_PAYMENT_CHECK
    /* planted: payment_check counts checks it does not emit */
    BR_ASSERT(*n == ntmp && (*n == done || sc == S_PAYMENT_CHECK));
#else
    BR_ASSERT(*n == ntmp && *n == done);
#endif
    out->count = done;
    out->queue_length = (uint32_t)pending; /* re-attempts re-schedule; the count is unchanged */
    return out->err = BR_OK;
}

static int saga_step(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                     struct br_effect *fx, uint32_t *n)
{
    return saga_over_events(r, S_SAGA_STEP, c, out, fx, n);
}

int br_redis_payment_check(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                           struct br_effect *fx, uint32_t *fx_count)
{
    BR_ASSERT(c->type == BR_CMD_PAYMENT_CHECK);
    return br_redis_apply(r, c, out, fx, fx_count);
}

/* ---- the entry points ---- */

/* ---- issue 13: the operator's modes and presence ---- */

/* The actor's role from {cat} (users are never removed and roles change
 * only there): *known false for an unregistered user. */
static int user_role(struct br_redis *r, uint64_t user_id, bool *known, uint8_t *role)
{
    *role = 0;
    int rc = user_known(r, user_id, known);
    if (rc != BR_OK || !*known) {
        return rc;
    }
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{cat}:u:%" PRIu64, user_id);
    const char *argv[3] = {"HGET", key, "role"};
    size_t lens[3] = {4, strlen(key), 4};
    redisReply *rep;
    rc = call_read(r, 3, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = translate_error(r, S_CONFIG, rep);
    if (rc == BR_OK) {
        if (rep->type != REDIS_REPLY_STRING) {
            log_foreign(r, "catalog", "a user without a role");
            rc = BR_E_CORRUPT;
        } else {
            unsigned long v = strtoul(rep->str, NULL, 10);
            *role = v < BR_ROLE_COUNT ? (uint8_t)v : 0;
        }
    }
    freeReplyObject(rep);
    return rc;
}

/* queue_mode_set.lua: the actor's role is read in {cat} first (the script
 * decides may_steer with the event's owner, in the order of the core). */
static int queue_mode_set(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                          struct br_effect *fx, uint32_t *n)
{
    const uint64_t event_id = c->u.queue_mode_set.event_id;
    bool known = true;
    uint8_t role = 0;
    if (c->user_id != 0) {
        int rc = user_role(r, c->user_id, &known, &role);
        if (rc != BR_OK) {
            return out->err = rc;
        }
    }
    if (event_id == 0 || event_id > BR_EVENT_ID_MAX) {
        /* No slot to run in: the core's answer without one (the actor first). */
        if (c->user_id != 0 && !known) {
            return out->err = BR_E_UNAUTHORIZED;
        }
        if (c->user_id != 0 && !br_catalog_may_steer(role, c->user_id, 0)) {
            return out->err = BR_E_FORBIDDEN;
        }
        return out->err = BR_E_NOT_FOUND;
    }
    args_begin(r, S_QUEUE_MODE_SET, 'e', event_id, c->now_ms);
    arg_fmt_u64(r, c->user_id);
    arg_fmt_u64(r, known ? 1 : 0);
    arg_fmt_u64(r, role);
    arg_fmt_u64(r, c->u.queue_mode_set.set);
    arg_fmt_u64(r, c->u.queue_mode_set.mode);
    arg_fmt_u64(r, c->u.queue_mode_set.max_active);
    arg_fmt_u64(r, c->u.queue_mode_set.admit_per_min);
    arg_record(r, c);
    int64_t aux;
    return run(r, S_QUEUE_MODE_SET, event_id, out, &aux, fx, n);
}

/* presence.lua: the first min(count, BR_PRESENCE_BATCH_MAX) ids travel. */
static int presence(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                    struct br_effect *fx, uint32_t *n)
{
    const uint64_t event_id = c->u.presence.event_id;
    if (event_id == 0 || event_id > BR_EVENT_ID_MAX) {
        return out->err = c->user_id != 0 ? BR_E_FORBIDDEN : BR_E_NOT_FOUND;
    }
    uint32_t count = c->u.presence.count;
    if (count > BR_PRESENCE_BATCH_MAX) {
        /* Not representable in the journal (nor the log): the core's answer
         * without the script, in its order. */
        if (c->user_id != 0) {
            return out->err = BR_E_FORBIDDEN;
        }
        uint64_t owner;
        struct br_event_spec sp;
        int rc = br_redis_event_read(r, event_id, &owner, &sp);
        return out->err = rc == BR_OK ? BR_E_INVALID : rc;
    }
    uint32_t given = count;
    args_begin(r, S_PRESENCE, 'e', event_id, c->now_ms);
    arg_fmt_u64(r, c->user_id);
    arg_fmt_u64(r, count);
    for (uint32_t i = 0; i < given; i++) {
        arg_fmt_u64(r, c->u.presence.user_ids[i]);
    }
    arg_record(r, c);
    int64_t aux;
    return run(r, S_PRESENCE, event_id, out, &aux, fx, n);
}

int br_redis_queue_mode_set(struct br_redis *r, const struct br_cmd *cmd, struct br_outcome *out,
                            struct br_effect *fx, uint32_t *fx_count)
{
    BR_ASSERT(cmd->type == BR_CMD_QUEUE_MODE_SET);
    return br_redis_apply(r, cmd, out, fx, fx_count);
}

int br_redis_presence(struct br_redis *r, const struct br_cmd *cmd, struct br_outcome *out,
                      struct br_effect *fx, uint32_t *fx_count)
{
    BR_ASSERT(cmd->type == BR_CMD_PRESENCE);
    return br_redis_apply(r, cmd, out, fx, fx_count);
}

int br_redis_apply(struct br_redis *r, const struct br_cmd *c, struct br_outcome *out,
                   struct br_effect *fx, uint32_t *fx_count)
{
    BR_ASSERT(r != NULL && r->s != NULL && c != NULL && out != NULL && fx != NULL);
    memset(out, 0, sizeof *out);
    *fx_count = 0;
    if (c->now_ms < 0 || c->now_ms > BR_NOW_MS_MAX) {
        return out->err = BR_E_INVALID; /* as the engine: before any deadline is computed */
    }
    int rc;
    switch (c->type) {
    case BR_CMD_EVENT_CREATE:
        rc = event_create(r, c, out, fx, fx_count);
        break;
    case BR_CMD_USER_REGISTER:
        rc = user_register(r, c, out, fx, fx_count);
        break;
    case BR_CMD_USER_ROLE_SET:
        rc = user_role_set(r, c, out, fx, fx_count);
        break;
    case BR_CMD_QUEUE_JOIN:
        rc = queue_cmd(r, S_JOIN, c, out, fx, fx_count);
        break;
    case BR_CMD_QUEUE_LEAVE:
        rc = queue_cmd(r, S_LEAVE, c, out, fx, fx_count);
        break;
    case BR_CMD_ADMIT:
        rc = queue_cmd(r, S_ADMIT, c, out, fx, fx_count);
        break;
    case BR_CMD_RESERVE:
        rc = reserve(r, c, out, fx, fx_count);
        break;
    case BR_CMD_CANCEL:
        rc = by_id(r, S_CANCEL, c, c->u.cancel.hold_id, 0, false, out, fx, fx_count);
        break;
    case BR_CMD_SWEEP:
        rc = sweep(r, c, out, fx, fx_count);
        break;
    case BR_CMD_PAYMENT_CREATE:
        if (c->u.payment_create.check_ms != 0 &&
            (c->u.payment_create.check_ms < BR_PAYMENT_CHECK_MS_MIN ||
             c->u.payment_create.check_ms > BR_PAYMENT_CHECK_MS_MAX)) {
            rc = out->err = BR_E_INVALID; /* as the core: before anything is looked up */
            break;
        }
        rc = by_id(r, S_PAYMENT_CREATE, c, c->u.payment_create.hold_id,
                   c->u.payment_create.check_ms, true, out, fx, fx_count);
        break;
    case BR_CMD_PAYMENT_EVENT:
        rc = payment_event(r, c, out, fx, fx_count);
        break;
    case BR_CMD_REFUND_RESULT:
        rc = by_id(r, S_REFUND_RESULT, c, c->u.refund_result.payment_id,
                   c->u.refund_result.ok ? 1 : 0, true, out, fx, fx_count);
        break;
    case BR_CMD_SAGA_STEP:
        rc = saga_step(r, c, out, fx, fx_count);
        break;
    case BR_CMD_PAYMENT_CHECK:
        rc = saga_over_events(r, S_PAYMENT_CHECK, c, out, fx, fx_count);
        break;
    case BR_CMD_QUEUE_MODE_SET:
        rc = queue_mode_set(r, c, out, fx, fx_count);
        break;
    case BR_CMD_PRESENCE:
        rc = presence(r, c, out, fx, fx_count);
        break;
    default:
        rc = out->err = BR_E_INVALID;
        break;
    }
    BR_ASSERT(rc == out->err && rc <= 0);
    if (rc == BR_E_UNAVAILABLE || rc == BR_E_UNKNOWN_OUTCOME) {
        memset(out, 0, sizeof *out); /* a transport failure answers nothing else */
        out->err = rc;
        *fx_count = 0;
    }
    out->effect_count = *fx_count;
    out->effects_hash = br_effects_hash(fx, *fx_count);
    return rc;
}

/* The seeds of "redis-cluster://host[:port][,host[:port]...]" (port 6379
 * when left out); host and port take the first (for logs). */
static int parse_cluster_url(const char *seeds, struct br_redis_options *o)
{
    size_t len = strlen(seeds);
    if (len == 0 || len >= sizeof o->seeds) {
        return BR_E_INVALID;
    }
    for (const char *p = seeds; *p != 0;) {
        size_t item = strcspn(p, ",");
        size_t host_len = strcspn(p, ":,");
        if (host_len == 0 || host_len >= sizeof o->host) {
            return BR_E_INVALID;
        }
        long port = 6379;
        if (host_len < item) {
            char *end;
            port = strtol(p + host_len + 1, &end, 10);
            if (end == p + host_len + 1 || end != p + item || port < 1 || port > 65535) {
                return BR_E_INVALID;
            }
        }
        if (p == seeds) {
            memcpy(o->host, p, host_len);
            o->port = (int)port;
        }
        p += item;
        if (*p == ',' && *++p == 0) {
            return BR_E_INVALID; /* a trailing comma */
        }
    }
    memcpy(o->seeds, seeds, len + 1);
    o->cluster = true;
    return BR_OK;
}

int br_redis_parse_url(const char *url, struct br_redis_options *o)
{
    memset(o, 0, sizeof *o);
    o->port = 6379;
    o->connect_timeout_ms = BR_REDIS_CONNECT_TIMEOUT_MS_DEFAULT;
    o->command_timeout_ms = BR_REDIS_COMMAND_TIMEOUT_MS_DEFAULT;
    if (url == NULL) {
        return BR_E_INVALID;
    }
    if (starts(url, "redis-cluster://")) {
        return parse_cluster_url(url + 16, o);
    }
    if (starts(url, "redis://")) {
        url += 8;
    }
    size_t host_len = strcspn(url, ":/");
    if (host_len == 0 || host_len >= sizeof o->host) {
        return BR_E_INVALID;
    }
    memcpy(o->host, url, host_len);
    const char *p = url + host_len;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535) {
            return BR_E_INVALID;
        }
        o->port = (int)port;
        p = end;
    }
    if (*p == '/') {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || db < 0 || db > 1000000) {
            return BR_E_INVALID;
        }
        o->db = (int)db;
        p = end;
    }
    return *p == 0 ? BR_OK : BR_E_INVALID;
}

/* Records the config in Redis, or checks it matches. */
static int record_config(struct br_redis *r)
{
    args_begin(r, S_CONFIG, 'c', 0, 0);
    arg_fmt_u64(r, r->cfg.seed);
    arg_fmt_u64(r, r->cfg.events_max);
    arg_fmt_u64(r, r->cfg.users_max);
    arg_fmt_u64(r, r->cfg.queue_slots_max);
    arg_fmt_u64(r, r->cfg.queue_capacity_default);
    arg_fmt_u64(r, r->cfg.active_max);
    arg_fmt_u64(r, r->cfg.seats_max);
    struct br_outcome o;
    struct br_effect fx[1];
    uint32_t n = 0;
    int64_t same = 0;
    int rc = run(r, S_CONFIG, 0, &o, &same, fx, &n);
    if (rc != BR_OK) {
        return rc;
    }
    if (same != 1) {
        log_foreign(r, "config", "Redis holds state made with another seed or capacities");
        return BR_E_INVALID;
    }
    return BR_OK;
}

/* hiredis writes with write(2): on a connection the server closed, that
 * raises SIGPIPE, which by default ends the process. A client library must
 * not die of a lost server, so a default disposition becomes "ignore" (the
 * write then fails with EPIPE and is translated like any other failure); a
 * handler the program installed is left alone. */
static void ignore_sigpipe(void)
{
    struct sigaction now;
    if (sigaction(SIGPIPE, NULL, &now) == 0 && now.sa_handler == SIG_DFL) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGPIPE, &ign, NULL);
    }
}

int br_redis_open(struct br_redis *r, const struct br_redis_options *o, const struct br_config *cfg)
{
    memset(r, 0, sizeof *r);
    ignore_sigpipe();
    r->opt = *o;
    r->cfg = *cfg;
    if (br_engine_memory_size(cfg) == 0 || o->connect_timeout_ms < 1 || o->command_timeout_ms < 1) {
        return BR_E_INVALID;
    }
    if (o->cluster && o->db != 0) {
        return BR_E_INVALID; /* a cluster has db 0 only */
    }
    r->s = calloc(1, sizeof *r->s);
    if (r->s == NULL) {
        return BR_E_FULL;
    }
    if (o->cluster) {
        r->cluster = malloc(sizeof *r->cluster);
        if (r->cluster == NULL) {
            br_redis_close(r);
            return BR_E_FULL;
        }
        int crc = br_cluster_open(r->cluster, o->seeds, o->connect_timeout_ms,
                                  o->command_timeout_ms, o->quiet);
        if (crc != BR_OK) {
            free(r->cluster);
            r->cluster = NULL;
            br_redis_close(r);
            return crc;
        }
    }
    r->s->fx_tmp = malloc(sizeof(struct br_effect) * BR_EFFECTS_MAX);
    int rc = r->s->fx_tmp != NULL ? BR_OK : BR_E_FULL;
    if (rc == BR_OK) {
        rc = prepare_library(r);
    }
    if (rc == BR_OK) {
        rc = load_library(r);
    }
    if (rc == BR_OK) {
        rc = o->fresh ? br_redis_flush(r) : record_config(r);
    }
    if (rc != BR_OK) {
        br_redis_close(r);
    }
    return rc;
}

void br_redis_close(struct br_redis *r)
{
    drop(r);
    if (r->cluster != NULL) {
        br_cluster_close(r->cluster);
        free(r->cluster);
        r->cluster = NULL;
    }
    if (r->s != NULL) {
        free(r->s->library);
        free(r->s->due);
        free(r->s->fx_tmp);
        free(r->s->perm);
        free(r->s->slots);
        free(r->s);
        r->s = NULL;
    }
}

const char *br_redis_function_name(const struct br_redis *r, const char *name)
{
    for (int sc = 0; sc < S_COUNT; sc++) {
        if (strcmp(script_names[sc], name) == 0) {
            return r->fn[sc];
        }
    }
    return NULL;
}

int br_redis_flush(struct br_redis *r)
{
    const char *argv[1] = {"FLUSHDB"};
    size_t lens[1] = {7};
    redisReply *rep;
    int rc = call_read(r, 1, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = translate_error(r, S_CONFIG, rep);
    freeReplyObject(rep);
    r->users_known = 0;
    return rc == BR_OK ? record_config(r) : rc;
}

int br_redis_zone_counts(struct br_redis *r, uint64_t event_id, uint32_t zone_id, uint32_t *held,
                         uint32_t *sold)
{
    char key[NUM_LEN], hf[16], sf[16];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    snprintf(hf, sizeof hf, "held%" PRIu32, zone_id);
    snprintf(sf, sizeof sf, "sold%" PRIu32, zone_id);
    const char *argv[5] = {"HMGET", key, "zc", hf, sf};
    size_t lens[5] = {5, strlen(key), 2, strlen(hf), strlen(sf)};
    redisReply *rep;
    int rc = call_read(r, 5, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = translate_error(r, S_CONFIG, rep);
    if (rc == BR_OK) {
        BR_ASSERT(rep->type == REDIS_REPLY_ARRAY && rep->elements == 3);
        int64_t zc = str_i64(rep->element[0]);
        if (rep->element[0]->type != REDIS_REPLY_STRING || zone_id < 1 || zone_id > zc) {
            rc = BR_E_NOT_FOUND;
        } else {
            *held = (uint32_t)str_i64(rep->element[1]);
            *sold = (uint32_t)str_i64(rep->element[2]);
        }
    }
    freeReplyObject(rep);
    return rc;
}

/* ---- the event log (redis.h; lua/README.md "The event log") ---- */

/* A stream id "<ms>" or "<ms>-<seq>" (digits only): *ms, *seq set. */
static bool parse_stream_id(const char *id, uint64_t *ms, uint64_t *seq)
{
    char *end;
    if (id == NULL || id[0] < '0' || id[0] > '9' || strlen(id) >= 32) {
        return false;
    }
    *ms = strtoull(id, &end, 10);
    *seq = 0;
    if (*end == '-') {
        const char *s = end + 1;
        if (*s < '0' || *s > '9') {
            return false;
        }
        *seq = strtoull(s, &end, 10);
    }
    return *end == 0;
}

/* The next integer of a ','-joined list at *p (before end) into *v, *p
 * moved past it and its comma. False when it is not a decimal integer. */
static bool log_number(const char **p, const char *end, long long *v)
{
    char num[24];
    size_t k = 0;
    const char *q = *p;
    while (q + k < end && q[k] != ',' && k < sizeof num - 1) {
        num[k] = q[k];
        k++;
    }
    num[k] = 0;
    char *stop;
    *v = strtoll(num, &stop, 10);
    if (k == 0 || *stop != 0 || (q + k < end && q[k] != ',')) {
        return false;
    }
    *p = q + k + (q + k < end);
    return true;
}

/* The "o" field: the reply's integers joined by ','. Checks what
 * take_outcome asserts (a log entry is data: its damage is BR_E_CORRUPT)
 * and fills e->out and e->fx. Parsed as it goes: the outcome's fields,
 * then six per effect straight into e->fx (no copy of the whole list). */
static int log_outcome(const char *o, size_t len, uint64_t event_id, struct br_redis_log_entry *e)
{
    long long v[OUTCOME_FIELDS];
    const char *p = o, *end = o + len;
    for (size_t n = 0; n < OUTCOME_FIELDS; n++) {
        if (p >= end || !log_number(&p, end, &v[n])) {
            return BR_E_CORRUPT;
        }
    }
    if (!in(v[0], 1 - BR_ERR_COUNT, 0) || !in(v[1], 0, BR_QUEUE_STATUS_COUNT - 1) || !in(v[2], 0, ID_MAX) ||
        !in(v[3], 0, ID_MAX) || !in(v[4], 0, UINT32_MAX) || !in(v[5], 0, UINT32_MAX) ||
        !in(v[8], 0, UINT32_MAX) || !in(v[6], -ID_MAX, ID_MAX) || !in(v[7], -ID_MAX, ID_MAX)) {
        return BR_E_CORRUPT;
    }
    memset(&e->out, 0, sizeof e->out);
    outcome_fill(v, &e->out);
    e->fx_count = 0;
    while (p < end) {
        long long f[FX_FIELDS];
        if (e->fx_count == BR_EFFECTS_MAX) {
            return BR_E_CORRUPT;
        }
        for (size_t k = 0; k < FX_FIELDS; k++) {
            if (p >= end || !log_number(&p, end, &f[k])) {
                return BR_E_CORRUPT;
            }
        }
        if (!effect_ok(f)) {
            return BR_E_CORRUPT;
        }
        effect_fill(f, event_id, &e->fx[e->fx_count++]);
    }
    e->out.effect_count = e->fx_count;
    e->out.effects_hash = br_effects_hash(e->fx, e->fx_count);
    return BR_OK;
}

/* One XRANGE entry: [id, [field, value, ...]]. */
static int log_entry(struct br_redis *r, const redisReply *x, uint64_t event_id,
                     struct br_redis_log_entry *e)
{
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
        x->element[0]->type != REDIS_REPLY_STRING || x->element[0]->len >= sizeof e->stream_id ||
        x->element[1]->type != REDIS_REPLY_ARRAY || x->element[1]->elements % 2 != 0) {
        log_foreign(r, "log read", "an entry of the wrong shape");
        return BR_E_CORRUPT;
    }
    memcpy(e->stream_id, x->element[0]->str, x->element[0]->len + 1);
    const redisReply *f = x->element[1];
    const redisReply *c = NULL, *o = NULL;
    e->external = false;
    for (size_t k = 0; k + 1 < f->elements; k += 2) {
        const redisReply *name = f->element[k], *value = f->element[k + 1];
        if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING) {
            continue;
        }
        if (strcmp(name->str, "c") == 0) {
            c = value;
        } else if (strcmp(name->str, "o") == 0) {
            o = value;
        } else if (strcmp(name->str, "x") == 0) {
            e->external = true;
        }
    }
    int rc = c != NULL && o != NULL ? BR_OK : BR_E_CORRUPT;
    if (rc == BR_OK) {
        struct br_outcome none;
        bool has_outcome = false;
        size_t used = 0;
        rc = br_journal_record_decode((const uint8_t *)c->str, c->len, &e->cmd, &none,
                                      &has_outcome, &used);
        if (rc != BR_OK || has_outcome || used != c->len) {
            rc = BR_E_CORRUPT;
        }
    }
    if (rc == BR_OK) {
        rc = log_outcome(o->str, o->len, event_id, e);
    }
    if (rc != BR_OK) {
        char what[96];
        snprintf(what, sizeof what, "entry %s of event %" PRIu64 " does not decode", e->stream_id,
                 event_id);
        log_foreign(r, "log read", what);
    }
    return rc;
}

int br_redis_log_read(struct br_redis *r, uint64_t event_id, const char *after, uint32_t max,
                      struct br_redis_log_entry *out, uint32_t *count)
{
    BR_ASSERT(r != NULL && r->s != NULL && out != NULL && count != NULL);
    *count = 0;
    uint64_t ms, seq;
    if (event_id < 1 || event_id > BR_EVENT_ID_MAX || max < 1 || max > BR_REDIS_LOG_READ_MAX ||
        !parse_stream_id(after, &ms, &seq)) {
        return BR_E_INVALID;
    }
    char key[NUM_LEN], start[NUM_LEN], max_text[16];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:log", event_id);
    snprintf(start, sizeof start, "(%" PRIu64 "-%" PRIu64, ms, seq); /* exclusive: after it */
    snprintf(max_text, sizeof max_text, "%" PRIu32, max);
    const char *argv[6] = {"XRANGE", key, ms == 0 && seq == 0 ? "-" : start, "+", "COUNT",
                           max_text};
    size_t lens[6] = {6, strlen(key), strlen(argv[2]), 1, 5, strlen(max_text)};
    redisReply *rep;
    int rc = call_read(r, 6, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = translate_error(r, S_CONFIG, rep);
    if (rc == BR_OK && (rep->type != REDIS_REPLY_ARRAY || rep->elements > max)) {
        log_foreign(r, "log read", "XRANGE answered something else than entries");
        rc = BR_E_IO;
    }
    for (size_t i = 0; rc == BR_OK && i < rep->elements; i++) {
        rc = log_entry(r, rep->element[i], event_id, &out[i]);
        *count += rc == BR_OK;
    }
    freeReplyObject(rep);
    if (rc != BR_OK) {
        *count = 0;
    }
    return rc;
}

int br_redis_log_len(struct br_redis *r, uint64_t event_id, uint64_t *len, char *last_id)
{
    BR_ASSERT(r != NULL && len != NULL && last_id != NULL);
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:log", event_id);
    const char *a2[6] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
    size_t l2[6] = {9, strlen(key), 1, 1, 5, 1};
    const char *a1[2] = {"XLEN", key};
    size_t l1[2] = {4, strlen(key)};
    redisReply *rep;
    int rc = call_read(r, 2, a1, l1, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = translate_error(r, S_CONFIG, rep);
    if (rc == BR_OK && rep->type != REDIS_REPLY_INTEGER) {
        rc = BR_E_IO;
    }
    *len = rc == BR_OK ? (uint64_t)rep->integer : 0;
    freeReplyObject(rep);
    strcpy(last_id, "0-0");
    if (rc != BR_OK || *len == 0) {
        return rc;
    }
    rc = call_read(r, 6, a2, l2, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = translate_error(r, S_CONFIG, rep);
    if (rc == BR_OK && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
        rep->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[0]->element[0]->len < 32) {
        memcpy(last_id, rep->element[0]->element[0]->str, rep->element[0]->element[0]->len + 1);
    }
    freeReplyObject(rep);
    return rc;
}

int br_redis_log_trim(struct br_redis *r, uint64_t event_id, const char *upto, uint64_t *removed)
{
    BR_ASSERT(r != NULL);
    uint64_t ms, seq;
    if (event_id < 1 || event_id > BR_EVENT_ID_MAX || !parse_stream_id(upto, &ms, &seq) ||
        seq == UINT64_MAX) {
        return BR_E_INVALID;
    }
    char key[NUM_LEN], minid[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:log", event_id);
    snprintf(minid, sizeof minid, "%" PRIu64 "-%" PRIu64, ms, seq + 1); /* keeps ids > upto */
    const char *argv[4] = {"XTRIM", key, "MINID", minid};
    size_t lens[4] = {5, strlen(key), 5, strlen(minid)};
    redisReply *rep;
    int rc = call_read(r, 4, argv, lens, &rep); /* trimming twice trims nothing more */
    if (rc != BR_OK) {
        return rc;
    }
    rc = translate_error(r, S_CONFIG, rep);
    if (rc == BR_OK && rep->type != REDIS_REPLY_INTEGER) {
        rc = BR_E_IO;
    }
    if (removed != NULL) {
        *removed = rc == BR_OK ? (uint64_t)rep->integer : 0;
    }
    freeReplyObject(rep);
    return rc;
}

/* ---- rebuilding an event from the record (redis.h; rebuild*.lua) ---- */

#define SAFE_MAX ((1LL << 53) - 1) /* times and amounts the scripts hold exactly */

static bool seq_in(uint64_t id, uint64_t event_id, uint32_t max, bool zero_ok)
{
    if (id == 0) {
        return zero_ok;
    }
    uint64_t seq = id & 0xffffffffu;
    return id >> 32 == event_id && seq >= 1 && seq <= max;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The record's rules (redis.h): BR_OK, BR_E_INVALID or BR_E_CORRUPT (the
 * zone counters are not the holds' seats). */
static int rebuild_check(const struct br_redis_rebuild *rb)
{
    const struct br_event_spec *sp = &rb->spec;
    if (rb->event_id < 1 || rb->event_id > BR_EVENT_ID_MAX || sp->zone_count < 1 ||
        !in(rb->now_ms, 0, BR_NOW_MS_MAX) ||
        sp->zone_count > BR_EVENT_ZONES_MAX || sp->queue_capacity < 1 ||
        (rb->hold_count > 0 && rb->holds == NULL) ||
        (rb->payment_count > 0 && rb->payments == NULL) ||
        (rb->provider_event_count > 0 && rb->provider_event_ids == NULL) ||
        rb->hold_count > rb->hold_seq || rb->payment_count > rb->payment_seq) {
        return BR_E_INVALID;
    }
    uint64_t held[BR_EVENT_ZONES_MAX] = {0}, sold[BR_EVENT_ZONES_MAX] = {0};
    for (uint32_t i = 0; i < rb->hold_count; i++) {
        const struct br_redis_rebuild_hold *h = &rb->holds[i];
        if (!seq_in(h->id, rb->event_id, rb->hold_seq, false) || h->user_id < 1 ||
            h->user_id > SAFE_MAX || h->zone_id < 1 || h->zone_id > sp->zone_count ||
            h->quantity < 1 || h->state < BR_HOLD_HELD || h->state > BR_HOLD_REFUNDED ||
            !in(h->created_ms, 0, SAFE_MAX) || !in(h->deadline_ms, 0, SAFE_MAX) ||
            !in(h->amount_minor, 0, SAFE_MAX) ||
            !seq_in(h->pass_id, rb->event_id, rb->pass_seq, true) ||
            !seq_in(h->payment_id, rb->event_id, rb->payment_seq, true) ||
            !seq_in(h->confirmed_by, rb->event_id, rb->payment_seq, true)) {
            return BR_E_INVALID;
        }
        if (h->state == BR_HOLD_HELD) {
            held[h->zone_id - 1] += h->quantity;
        } else if (h->state == BR_HOLD_CONFIRMED) {
            sold[h->zone_id - 1] += h->quantity;
        }
    }
    for (uint32_t i = 0; i < rb->payment_count; i++) {
        const struct br_redis_rebuild_payment *p = &rb->payments[i];
        if (!seq_in(p->id, rb->event_id, rb->payment_seq, false) ||
            !seq_in(p->hold_id, rb->event_id, rb->hold_seq, false) ||
            p->state < BR_PAY_PENDING || p->state > BR_PAY_REFUNDED ||
            !in(p->amount_minor, 0, SAFE_MAX) || !in(p->created_ms, 0, SAFE_MAX) ||
            !in(p->next_attempt_ms, 0, SAFE_MAX) ||
            (p->check_ms != 0 &&
             (p->check_ms < BR_PAYMENT_CHECK_MS_MIN || p->check_ms > BR_PAYMENT_CHECK_MS_MAX))) {
            return BR_E_INVALID;
        }
    }
    for (uint32_t z = 0; z < sp->zone_count; z++) {
        if (held[z] != rb->zone_held[z] || sold[z] != rb->zone_sold[z] ||
            held[z] + sold[z] > sp->zones[z].capacity) {
            return BR_E_CORRUPT;
        }
    }
    /* No id twice. */
    size_t n = rb->hold_count > rb->payment_count ? rb->hold_count : rb->payment_count;
    uint64_t *ids = malloc(sizeof *ids * (n ? n : 1));
    if (ids == NULL) {
        return BR_E_FULL;
    }
    int rc = BR_OK;
    for (int pass = 0; pass < 2 && rc == BR_OK; pass++) {
        uint32_t count = pass == 0 ? rb->hold_count : rb->payment_count;
        for (uint32_t i = 0; i < count; i++) {
            ids[i] = pass == 0 ? rb->holds[i].id : rb->payments[i].id;
        }
        qsort(ids, count, sizeof *ids, u64_cmp);
        for (uint32_t i = 1; i < count && rc == BR_OK; i++) {
            rc = ids[i] == ids[i - 1] ? BR_E_INVALID : BR_OK;
        }
    }
    free(ids);
    return rc;
}

/* Appends to a growing text; false when out of memory. */
struct text {
    char *p;
    size_t n, cap;
};

static bool text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool text_add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            return false;
        }
        if (t->p != NULL && (size_t)n < t->cap - t->n) {
            t->n += (size_t)n;
            return true;
        }
        size_t cap = t->cap ? 2 * t->cap : 4096;
        while (cap < t->n + (size_t)n + 1) {
            cap *= 2;
        }
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            return false;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* A hold's index in rb->holds by id, for the payments' holds. */
struct hold_ix {
    uint64_t id;
    uint32_t i;
};

static int hold_ix_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct hold_ix *)a)->id, y = ((const struct hold_ix *)b)->id;
    return x < y ? -1 : x > y;
}

/* Point 8 (redis.h): closed[i] = 1 when payment i's status checks are
 * closed, as the core closes them: failed, with check_ms, its hold not live
 * at now_ms and the void's answer applied. The record keeps no closed flag,
 * so the answer's id among the provider event ids stands for it: the core
 * sets the flag when it applies that id to a failed payment whose hold is
 * gone (a hold never becomes live again). One difference: the same id as
 * a query's answer while the hold was live leaves the core's checks open,
 * voiding at every check with each answer a duplicate; the record cannot
 * tell when it came, and the rebuild closes those too (the provider said
 * the intent is canceled). false when out of memory. */
static bool rebuild_closed(const struct br_redis_rebuild *rb, uint8_t *closed)
{
    uint64_t *pev = malloc(sizeof *pev * (rb->provider_event_count + 1));
    struct hold_ix *hx = malloc(sizeof *hx * (rb->hold_count + 1));
    bool ok = pev != NULL && hx != NULL;
    if (ok && rb->provider_event_count > 0) {
        memcpy(pev, rb->provider_event_ids, sizeof *pev * rb->provider_event_count);
    }
    if (ok) {
        qsort(pev, rb->provider_event_count, sizeof *pev, u64_cmp);
        for (uint32_t i = 0; i < rb->hold_count; i++) {
            hx[i] = (struct hold_ix){rb->holds[i].id, i};
        }
        qsort(hx, rb->hold_count, sizeof *hx, hold_ix_cmp);
    }
    for (uint32_t i = 0; ok && i < rb->payment_count; i++) {
        const struct br_redis_rebuild_payment *p = &rb->payments[i];
        closed[i] = 0;
        if (p->state != BR_PAY_FAILED || p->check_ms == 0) {
            continue;
        }
        struct hold_ix key = {p->hold_id, 0};
        const struct hold_ix *h = bsearch(&key, hx, rb->hold_count, sizeof *hx, hold_ix_cmp);
        bool live = h != NULL && rb->holds[h->i].state == BR_HOLD_HELD &&
                    !br_lapsed(rb->holds[h->i].deadline_ms, rb->now_ms);
        uint64_t answer = br_saga_answer_id(p->id, false, "canceled");
        closed[i] = !live && bsearch(&answer, pev, rb->provider_event_count, sizeof *pev,
                                     u64_cmp) != NULL;
    }
    free(pev);
    free(hx);
    return ok;
}

/* The three blobs of rebuild.lua. */
static bool rebuild_blobs(const struct br_redis_rebuild *rb, struct text *t)
{
    uint8_t *closed = malloc(rb->payment_count + 1);
    if (closed == NULL || !rebuild_closed(rb, closed)) {
        free(closed);
        return false;
    }
    bool ok = text_add(&t[0], "%s", "") && text_add(&t[1], "%s", "") && text_add(&t[2], "%s", "");
    for (uint32_t i = 0; ok && i < rb->hold_count; i++) {
        const struct br_redis_rebuild_hold *h = &rb->holds[i];
        ok = text_add(&t[0],
                      "%" PRIu64 ":%" PRIu64 ":%" PRIu32 ":%" PRIu32 ":%u:%" PRId64 ":%" PRId64
                      ":%" PRId64 ":%" PRIu64 ":%" PRIu64 ":%" PRIu64 ";",
                      h->id & 0xffffffffu, h->user_id, h->zone_id, h->quantity, h->state,
                      h->created_ms, h->deadline_ms, h->amount_minor, h->pass_id & 0xffffffffu,
                      h->payment_id & 0xffffffffu, h->confirmed_by & 0xffffffffu);
    }
    for (uint32_t i = 0; ok && i < rb->payment_count; i++) {
        const struct br_redis_rebuild_payment *p = &rb->payments[i];
        ok = text_add(&t[1],
                      "%" PRIu64 ":%" PRIu64 ":%u:%" PRId64 ":%" PRId64 ":%" PRIu32 ":%" PRId64
                      ":%" PRIu32 ":%u;",
                      p->id & 0xffffffffu, p->hold_id & 0xffffffffu, p->state, p->amount_minor,
                      p->created_ms, p->refund_attempts, p->next_attempt_ms, p->check_ms,
                      closed[i]);
    }
    free(closed);
    for (uint32_t i = 0; ok && i < rb->provider_event_count; i++) {
        ok = text_add(&t[2], "%" PRIu64 ";", rb->provider_event_ids[i]);
    }
    return ok;
}

int br_redis_rebuild_event(struct br_redis *r, const struct br_redis_rebuild *in)
{
    BR_ASSERT(r != NULL && r->s != NULL && in != NULL);
    int rc = rebuild_check(in);
    if (rc != BR_OK) {
        return rc;
    }
    const struct br_event_spec *sp = &in->spec;
    uint64_t seats = 0;
    for (uint32_t z = 0; z < sp->zone_count; z++) {
        seats += sp->zones[z].capacity;
    }
    /* 1: the catalog's count and capacities. */
    struct br_outcome out;
    struct br_effect fx[1];
    uint32_t n = 0;
    int64_t aux;
    args_begin(r, S_REBUILD_CAT, 'c', 0, 0);
    arg_fmt_u64(r, in->event_id);
    arg_fmt_u64(r, sp->queue_capacity);
    arg_fmt_u64(r, sp->max_active);
    arg_fmt_u64(r, seats);
    rc = run(r, S_REBUILD_CAT, 0, &out, &aux, fx, &n);
    if (rc != BR_OK) {
        return rc;
    }
    /* 2: the event's slot. */
    struct text t[3];
    memset(t, 0, sizeof t);
    if (!rebuild_blobs(in, t)) {
        rc = BR_E_FULL;
    } else {
        struct br_cmd c;
        memset(&c, 0, sizeof c);
        c.type = BR_CMD_EVENT_CREATE;
        c.user_id = in->owner_user_id;
        c.u.event_create = *sp;
        args_begin(r, S_REBUILD, 'e', in->event_id, in->now_ms);
        args_spec(r, &c, in->event_id, sp->queue_capacity);
        arg_fmt_u64(r, in->pass_seq);
        arg_fmt_u64(r, in->hold_seq);
        arg_fmt_u64(r, in->payment_seq);
        arg_fmt_u64(r, in->passes_issued);
        arg_fmt_u64(r, in->queue_slots_used);
        for (uint32_t z = 0; z < sp->zone_count; z++) {
            arg_fmt_u64(r, in->zone_held[z]);
        }
        for (uint32_t z = 0; z < sp->zone_count; z++) {
            arg_fmt_u64(r, in->zone_sold[z]);
        }
        for (int i = 0; i < 3; i++) {
            arg_bytes(r, t[i].p, t[i].n);
        }
        arg_fmt_u64(r, incarnation(r));
        rc = run(r, S_REBUILD, in->event_id, &out, &aux, fx, &n);
        BR_ASSERT(n == 0);
    }
    for (int i = 0; i < 3; i++) {
        free(t[i].p);
    }
    return rc;
}

/* ---- reading the state back (br_redis_state_hash) ---- */

struct walk {
    struct br_redis *r;
    br_redis_visit visit; /* may be NULL */
    void *visit_ctx;
    uint64_t sum;
    uint64_t counts[8]; /* events users members passes holds payments idem provider_events */
    uint64_t event_id;
    uint64_t base; /* event_id << 32 */
    bool shuffled;
    struct rank *ranks; /* the waiting queue: user -> position */
    size_t rank_count;
    int rc;
};

struct rank {
    uint64_t user_id;
    uint32_t position;
};

static void add(struct walk *w, uint64_t tag, const uint64_t *v, size_t n)
{
    w->sum += br_state_record(tag, v, n);
    if (w->visit != NULL) {
        w->visit(w->visit_ctx, tag, v, n);
    }
}

static int rank_cmp(const void *a, const void *b)
{
    const struct rank *x = a, *y = b;
    return x->user_id < y->user_id ? -1 : x->user_id > y->user_id;
}

/* Formats the i-th read of a walk into the scratch arguments. */
typedef void (*walk_fmt)(struct walk *w, size_t i);
/* Takes the i-th reply. */
typedef void (*walk_take)(struct walk *w, size_t i, const redisReply *rep);

/* Runs count reads pipelined, PIPE_WINDOW in flight. */
static int pipeline(struct walk *w, size_t count, walk_fmt fmt, walk_take take)
{
    struct br_redis *r = w->r;
    if (pipe_begin(r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    size_t sent = 0;
    for (size_t got = 0; got < count; got++) {
        while (sent < count && sent - got < PIPE_WINDOW) {
            fmt(w, sent);
            if (pipe_append(r, r->s->argc, r->s->argv, r->s->len) != BR_OK) {
                return BR_E_UNAVAILABLE;
            }
            sent++;
        }
        redisReply *rep = pipe_read(r, "state read");
        if (rep == NULL) {
            return BR_E_UNAVAILABLE;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            log_foreign(r, "state read", rep->str);
            w->rc = BR_E_IO;
        } else {
            take(w, got, rep);
        }
        freeReplyObject(rep);
    }
    return w->rc;
}

static void fmt_key(struct br_redis *r, const char *cmd, const char *key)
{
    r->s->argc = 0;
    arg_bytes(r, cmd, strlen(cmd));
    char *k = r->s->num[r->s->argc];
    size_t len = strlen(key);
    BR_ASSERT(len < NUM_LEN);
    memcpy(k, key, len + 1);
    arg_bytes(r, k, len);
}

static void arg_text(struct br_redis *r, const char *t)
{
    arg_bytes(r, t, strlen(t));
}

static bool nil(const redisReply *e)
{
    return e->type == REDIS_REPLY_NIL;
}

static uint64_t u64(const redisReply *e)
{
    return (uint64_t)str_i64(e);
}

/* ---- the layout's parsers: the walk's and the record reads' (below) ---- */

int br_redis_hold_parse(const char *v, struct br_redis_hold *out)
{
    /* "user:zone:qty:st:created:dl:amt:pass:pay:conf" (lib.lua, hold_save) */
    uint64_t f[10];
    memset(out, 0, sizeof *out);
    if (v == NULL ||
        sscanf(v,
               "%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64
               ":%" SCNu64 ":%" SCNu64 ":%" SCNu64,
               &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9]) != 10) {
        return BR_E_CORRUPT;
    }
    out->user_id = f[0];
    out->zone_id = (uint32_t)f[1];
    out->quantity = (uint32_t)f[2];
    out->state = (uint8_t)f[3];
    out->created_ms = (int64_t)f[4];
    out->deadline_ms = (int64_t)f[5];
    out->amount_minor = (int64_t)f[6];
    out->pass_seq = f[7];
    out->payment_seq = f[8];
    out->confirmed_seq = f[9];
    return BR_OK;
}

/* A member's value "st:pass:tix" (member_save): false when it does not
 * parse. A pre-queue member of a shuffled queue is waiting (lua/README.md:
 * the shuffle rewrites nobody). */
static bool member_parse(const redisReply *e, bool shuffled, uint64_t *st, uint64_t *pass,
                         uint64_t *tix)
{
    if (e->type != REDIS_REPLY_STRING ||
        sscanf(e->str, "%" SCNu64 ":%" SCNu64 ":%" SCNu64, st, pass, tix) != 3) {
        return false;
    }
    if (*st == BR_QS_PREQUEUE && shuffled) {
        *st = BR_QS_WAITING;
    }
    return true;
}

/* A pass's value "user:dl:st:iss" (lib.lua, field p:<seq> of the event's
 * hash): false when it is not a string of that form. */
static bool pass_parse(const redisReply *e, uint64_t *user, uint64_t *dl, uint64_t *st)
{
    uint64_t iss;
    return e->type == REDIS_REPLY_STRING &&
           sscanf(e->str, "%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64, user, dl, st, &iss) == 4;
}

/* The fields of a payment's hash, and the HMGET reply of them. */
static const char *const pay_fields[] = {"hold", "st",   "amt",   "att", "next",
                                         "cms",  "catt", "cnext", "ccl"};
#define PAY_FIELDS (sizeof pay_fields / sizeof pay_fields[0])

static bool payment_take(const redisReply *rep, struct br_redis_payment *out)
{
    memset(out, 0, sizeof *out);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != PAY_FIELDS || nil(rep->element[0])) {
        return false;
    }
    out->hold_seq = u64(rep->element[0]);
    out->state = (uint8_t)u64(rep->element[1]);
    out->amount_minor = (int64_t)u64(rep->element[2]);
    out->attempts = u64(rep->element[3]);
    out->next_ms = (int64_t)u64(rep->element[4]);
    /* point 8's fields: absent (0) on a payment written without checks */
    out->check_ms = (uint32_t)u64(rep->element[5]);
    out->check_attempts = (uint32_t)u64(rep->element[6]);
    out->next_check_ms = (int64_t)u64(rep->element[7]);
    out->check_closed = (uint8_t)u64(rep->element[8]);
    return true;
}

/* A user's hash br:{cat}:u:<id>: the fields read, and the HMGET of them. */
static const char *const user_fields[] = {"email", "name", "role"};
#define USER_FIELDS (sizeof user_fields / sizeof user_fields[0])

static void fmt_user_read(struct br_redis *r, uint64_t user_id)
{
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{cat}:u:%" PRIu64, user_id);
    fmt_key(r, "HMGET", key);
    for (size_t k = 0; k < USER_FIELDS; k++) {
        arg_text(r, user_fields[k]);
    }
}

static bool user_found(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_ARRAY && rep->elements == USER_FIELDS && !nil(rep->element[0]);
}

/* users */
static void fmt_user(struct walk *w, size_t i)
{
    fmt_user_read(w->r, i + 1);
}

static void take_user(struct walk *w, size_t i, const redisReply *rep)
{
    if (!user_found(rep)) {
        w->rc = BR_E_CORRUPT;
        return;
    }
    const redisReply *email = rep->element[0];
    uint64_t v[] = {i + 1, u64(rep->element[2]), br_hash64(email->str, email->len, 0)};
    add(w, 3, v, 3);
}

/* members: the fields "m:<user>" = "st:pass:tix" of HGETALL br:{e}:ev */
static int walk_members(struct walk *w, const redisReply *m)
{
    for (size_t k = 0; k + 1 < m->elements; k += 2) {
        if (m->element[k]->type != REDIS_REPLY_STRING || strncmp(m->element[k]->str, "m:", 2) != 0) {
            continue;
        }
        w->counts[2]++;
        uint64_t user = strtoull(m->element[k]->str + 2, NULL, 10), st, pass, tix;
        if (!member_parse(m->element[k + 1], w->shuffled, &st, &pass, &tix)) {
            return BR_E_CORRUPT;
        }
        uint64_t position = 0;
        if (st == BR_QS_WAITING) {
            struct rank key = {.user_id = user};
            const struct rank *at = bsearch(&key, w->ranks, w->rank_count, sizeof key, rank_cmp);
            if (at == NULL) {
                return BR_E_CORRUPT;
            }
            position = at->position;
        }
        uint64_t v[] = {w->event_id, user, st, position, pass ? w->base | pass : 0, tix};
        add(w, 4, v, 6);
        /* Issue 13: the member's seen, a fourth field only when not 0 (lib.lua). */
        uint64_t seen = 0, f1, f2, f3;
        const redisReply *mv = m->element[k + 1];
        if (sscanf(mv->str, "%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64, &f1, &f2, &f3,
                   &seen) == 4 &&
            seen != 0) {
            uint64_t sv[] = {w->event_id, user, seen};
            add(w, 15, sv, 3);
        }
    }
    return BR_OK;
}

/* passes: HGET br:{e}:ev p:<seq> = "user:dl:st:iss" */
static void fmt_pass(struct walk *w, size_t i)
{
    char key[NUM_LEN], seq[24];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", w->event_id);
    snprintf(seq, sizeof seq, "p:%zu", i + 1);
    fmt_key(w->r, "HGET", key);
    char *f = w->r->s->num[w->r->s->argc];
    memcpy(f, seq, strlen(seq) + 1);
    arg_bytes(w->r, f, strlen(f));
}

static void take_pass(struct walk *w, size_t i, const redisReply *rep)
{
    uint64_t user, dl, st;
    if (nil(rep)) {
        return; /* a pass a rebuild could not bring back (redis.h): not in the record */
    }
    if (!pass_parse(rep, &user, &dl, &st)) {
        w->rc = BR_E_CORRUPT;
        return;
    }
    uint64_t v[] = {w->base | (i + 1), user, st, dl};
    add(w, 5, v, 4);
}

/* holds: HGET br:{e}:ev h:<seq> = "user:zone:qty:st:created:dl:amt:pass:pay:conf" */
static void fmt_hold(struct walk *w, size_t i)
{
    char key[NUM_LEN], seq[24];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", w->event_id);
    snprintf(seq, sizeof seq, "h:%zu", i + 1);
    fmt_key(w->r, "HGET", key);
    char *f = w->r->s->num[w->r->s->argc];
    memcpy(f, seq, strlen(seq) + 1);
    arg_bytes(w->r, f, strlen(f));
}

static void take_hold(struct walk *w, size_t i, const redisReply *rep)
{
    struct br_redis_hold h;
    if (rep->type != REDIS_REPLY_STRING || br_redis_hold_parse(rep->str, &h) != BR_OK) {
        w->rc = BR_E_CORRUPT;
        return;
    }
    /* user zone qty st dl amt pass pay conf (created is not in the state hash) */
    uint64_t v[] = {w->base | (i + 1),
                    h.user_id,
                    h.zone_id,
                    h.quantity,
                    h.state,
                    (uint64_t)h.deadline_ms,
                    (uint64_t)h.amount_minor,
                    h.pass_seq ? w->base | h.pass_seq : 0,
                    h.payment_seq ? w->base | h.payment_seq : 0,
                    h.confirmed_seq ? w->base | h.confirmed_seq : 0};
    add(w, 6, v, 10);
}

/* payments */
static void fmt_payment_read(struct br_redis *r, uint64_t event_id, uint64_t seq)
{
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:y:%" PRIu64, event_id, seq);
    fmt_key(r, "HMGET", key);
    for (size_t k = 0; k < PAY_FIELDS; k++) {
        arg_text(r, pay_fields[k]);
    }
}

static void fmt_payment(struct walk *w, size_t i)
{
    fmt_payment_read(w->r, w->event_id, i + 1);
}

static void take_payment(struct walk *w, size_t i, const redisReply *rep)
{
    struct br_redis_payment p;
    if (!payment_take(rep, &p)) {
        w->rc = BR_E_CORRUPT;
        return;
    }
    uint64_t v[] = {w->base | (i + 1),        w->base | p.hold_seq, p.state,
                    (uint64_t)p.amount_minor, p.attempts,           (uint64_t)p.next_ms};
    add(w, 7, v, 6);
    if (p.check_ms > 0) {
        /* point 8's schedule, as the core hashes it (none for check_ms 0) */
        uint64_t cv[] = {w->base | (i + 1), p.check_ms, p.check_attempts,
                         (uint64_t)p.next_check_ms, p.check_closed};
        add(w, 12, cv, 5);
    }
}

/* One event: its record, then the collections (each one command). */
static const char *const ev_fields[] = {
    "id",    "zc",    "shuf",  "qwait", "pact",  "piss",  "pseq",  "hseq",  "yseq",
    "cap1",  "cap2",  "cap3",  "cap4",  "cap5",  "cap6",  "cap7",  "cap8",  "held1",
    "held2", "held3", "held4", "held5", "held6", "held7", "held8", "sold1", "sold2",
    "sold3", "sold4", "sold5", "sold6", "sold7", "sold8", "owner",
    /* 34.. issue 13 (lib.lua's WR) */
    "wapm",  "prs",   "pow",   "qf",    "smode", "mode",  "maxl",  "apm",   "pcr",
    "plast", "told",  "lap",   "maxa",  "rate"};
#define EV_FIELDS (sizeof ev_fields / sizeof ev_fields[0])
#define EV_WR 34 /* the first of issue 13's fields in ev_fields */

static bool rate_parse(const redisReply *e, struct br_queue_rate *rate);

/* Records 13 and 14 (WR-SPEC 11): an event's waiting room when anything
 * is off its switch-off default, and then its rate ring when it has one. */
static int walk_waiting_room(struct walk *w, redisReply **e)
{
    uint64_t maxa = u64(e[EV_WR + 12]);
    uint64_t v[13] = {w->event_id,
                      u64(e[EV_WR + 0]),
                      u64(e[EV_WR + 1]),
                      u64(e[EV_WR + 2]),
                      u64(e[EV_WR + 3]),
                      u64(e[EV_WR + 4]),
                      u64(e[EV_WR + 5]),
                      nil(e[EV_WR + 6]) ? maxa : u64(e[EV_WR + 6]),
                      u64(e[EV_WR + 7]),
                      u64(e[EV_WR + 8]),
                      u64(e[EV_WR + 9]),
                      u64(e[EV_WR + 10]),
                      u64(e[EV_WR + 11])};
    bool any = v[7] != maxa;
    for (size_t k = 1; k < 13; k++) {
        any = any || (k != 7 && v[k] != 0);
    }
    if (!any) {
        return BR_OK;
    }
    add(w, 13, v, 13);
    struct br_queue_rate rate;
    if (!rate_parse(e[EV_WR + 13], &rate)) {
        return BR_E_CORRUPT;
    }
    if (rate.bucket_last != -1) {
        uint64_t rv[3 + BR_RATE_BUCKETS] = {w->event_id, (uint64_t)rate.bucket_last,
                                            (uint64_t)rate.since_ms};
        for (size_t k = 0; k < BR_RATE_BUCKETS; k++) {
            rv[3 + k] = rate.n[k];
        }
        add(w, 14, rv, 3 + BR_RATE_BUCKETS);
    }
    return BR_OK;
}

static void fmt_event_part(struct walk *w, size_t i)
{
    char key[NUM_LEN];
    static const char *const sfx[] = {"ev", "q", "ev", "idem", "pev"};
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:%s", w->event_id, sfx[i]);
    switch (i) {
    case 0:
        fmt_key(w->r, "HMGET", key);
        for (size_t k = 0; k < EV_FIELDS; k++) {
            arg_text(w->r, ev_fields[k]);
        }
        break;
    case 1:
        fmt_key(w->r, "ZRANGE", key);
        arg_text(w->r, "0");
        arg_text(w->r, "-1");
        break;
    case 2:
        fmt_key(w->r, "HGETALL", key);
        break;
    case 3:
        fmt_key(w->r, "HGETALL", key);
        break;
    default:
        fmt_key(w->r, "SMEMBERS", key);
        break;
    }
}

struct event_parts {
    redisReply *part[5];
};

static int read_event(struct walk *w, struct event_parts *ep)
{
    struct br_redis *r = w->r;
    if (pipe_begin(r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    for (size_t i = 0; i < 5; i++) {
        fmt_event_part(w, i);
        if (pipe_append(r, r->s->argc, r->s->argv, r->s->len) != BR_OK) {
            return BR_E_UNAVAILABLE;
        }
    }
    for (size_t i = 0; i < 5; i++) {
        ep->part[i] = pipe_read(r, "state read");
        if (ep->part[i] == NULL) {
            return BR_E_UNAVAILABLE;
        }
    }
    for (size_t i = 0; i < 5; i++) {
        if (ep->part[i]->type != REDIS_REPLY_ARRAY) {
            return BR_E_CORRUPT; /* all five were read: the connection stays in step */
        }
    }
    return BR_OK;
}

/* An event's idempotency records ("<user>:<key>" -> "<fingerprint>:<err>:
 * <hold seq>") and processed provider event ids into the walk's hash. */
static int walk_idem_and_provider_events(struct walk *w, const redisReply *idem,
                                         const redisReply *pev)
{
    for (size_t k = 0; k + 1 < idem->elements; k += 2) {
        uint64_t user, key, fp, hold;
        long long err;
        if (sscanf(idem->element[k]->str, "%" SCNu64 ":%" SCNu64, &user, &key) != 2 ||
            sscanf(idem->element[k + 1]->str, "%" SCNu64 ":%lld:%" SCNu64, &fp, &err, &hold) !=
                3) {
            return BR_E_CORRUPT;
        }
        uint64_t iv[] = {user, key, fp, (uint64_t)(int64_t)err, hold ? w->base | hold : 0};
        add(w, 8, iv, 5);
        w->counts[6]++;
    }
    for (size_t k = 0; k < pev->elements; k++) {
        uint64_t id = strtoull(pev->element[k]->str, NULL, 10);
        add(w, 9, &id, 1);
        w->counts[7]++;
    }
    return BR_OK;
}

static int walk_event(struct walk *w)
{
    struct event_parts ep = {{NULL}};
    int rc = read_event(w, &ep);
    if (rc == BR_OK && (ep.part[0]->elements != EV_FIELDS || nil(ep.part[0]->element[0]))) {
        rc = BR_E_CORRUPT; /* an allocated event without its record */
    }
    if (rc == BR_OK) {
        const redisReply *ev = ep.part[0];
        uint64_t f[EV_FIELDS];
        for (size_t k = 0; k < EV_FIELDS; k++) {
            f[k] = u64(ev->element[k]);
        }
        uint64_t zc = f[1];
        for (uint64_t z = 0; z < zc && z < BR_EVENT_ZONES_MAX; z++) {
            uint64_t v[] = {w->event_id, z + 1, f[9 + z], f[17 + z], f[25 + z]};
            add(w, 1, v, 5);
        }
        uint64_t v[] = {w->event_id, f[3], f[4], f[5], f[2], f[33]};
        add(w, 2, v, 6);
        rc = walk_waiting_room(w, ev->element);
        w->shuffled = f[2] == 1;
        /* The waiting queue in order: position = rank + 1. */
        const redisReply *q = ep.part[1];
        w->rank_count = q->elements;
        w->ranks = malloc(sizeof *w->ranks * (q->elements ? q->elements : 1));
        if (w->ranks == NULL) {
            rc = BR_E_FULL;
        }
        for (size_t k = 0; rc == BR_OK && k < q->elements; k++) {
            w->ranks[k].user_id = strtoull(q->element[k]->str, NULL, 10);
            w->ranks[k].position = (uint32_t)(k + 1);
        }
        if (rc == BR_OK) {
            qsort(w->ranks, w->rank_count, sizeof *w->ranks, rank_cmp);
            w->counts[3] += f[6];
            w->counts[4] += f[7];
            w->counts[5] += f[8];
            rc = walk_members(w, ep.part[2]);
        }
        if (rc == BR_OK) {
            rc = pipeline(w, f[6], fmt_pass, take_pass);
        }
        if (rc == BR_OK) {
            rc = pipeline(w, f[7], fmt_hold, take_hold);
        }
        if (rc == BR_OK) {
            rc = pipeline(w, f[8], fmt_payment, take_payment);
        }
        if (rc == BR_OK) {
            rc = walk_idem_and_provider_events(w, ep.part[3], ep.part[4]);
        }
    }
    free(w->ranks);
    w->ranks = NULL;
    for (size_t i = 0; i < 5; i++) {
        if (ep.part[i] != NULL) {
            freeReplyObject(ep.part[i]);
        }
    }
    return rc;
}

int br_redis_state_walk(struct br_redis *r, br_redis_visit visit, void *ctx, uint64_t *hash)
{
    BR_ASSERT(r != NULL && r->s != NULL && hash != NULL);
    struct walk w;
    memset(&w, 0, sizeof w);
    w.r = r;
    w.visit = visit;
    w.visit_ctx = ctx;
    const char *argv[4] = {"HMGET", "br:{cat}:cat", "events", "users"};
    size_t lens[4] = {5, 12, 6, 5};
    redisReply *rep;
    int rc = call_read(r, 4, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || nil(rep->element[0])) {
        freeReplyObject(rep);
        return BR_E_CORRUPT;
    }
    w.counts[0] = u64(rep->element[0]);
    w.counts[1] = u64(rep->element[1]);
    freeReplyObject(rep);
    rc = pipeline(&w, w.counts[1], fmt_user, take_user);
    for (uint64_t e = 1; rc == BR_OK && e <= w.counts[0]; e++) {
        w.event_id = e;
        w.base = e << 32;
        rc = walk_event(&w);
    }
    if (rc != BR_OK) {
        return rc;
    }
    if (visit != NULL) {
        visit(ctx, 10, w.counts, 8);
    }
    *hash = br_hash_step(br_state_record(10, w.counts, 8), w.sum);
    return BR_OK;
}

int br_redis_state_hash(struct br_redis *r, uint64_t *hash)
{
    return br_redis_state_walk(r, NULL, NULL, hash);
}

/* ---- reads of the live state, one record at a time (redis.h) ---- */

/* A field name formatted into the argument's own scratch. */
static void arg_printf(struct br_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void arg_printf(struct br_redis *r, const char *fmt, ...)
{
    BR_ASSERT(r->s->argc < (int)ARGS_MAX);
    char *buf = r->s->num[r->s->argc];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, NUM_LEN, fmt, ap);
    va_end(ap);
    BR_ASSERT(n > 0 && n < NUM_LEN);
    arg_bytes(r, buf, (size_t)n);
}

/* The command in the scratch arguments, sent: BR_OK with *rep (not an error
 * reply; the caller frees it) or BR_E_UNAVAILABLE (an error reply is
 * logged: LOADING, a cluster that cannot serve the slot, ...). */
static int read_one(struct br_redis *r, const char *what, redisReply **rep)
{
    int rc = call_read(r, r->s->argc, r->s->argv, r->s->len, rep);
    if (rc != BR_OK) {
        return rc;
    }
    if ((*rep)->type == REDIS_REPLY_ERROR) {
        log_foreign(r, what, (*rep)->str);
        freeReplyObject(*rep);
        *rep = NULL;
        return BR_E_UNAVAILABLE;
    }
    return BR_OK;
}

/* read_one of the HMGET in the scratch arguments: BR_OK with *rep an
 * array of one element per field asked, or BR_E_UNAVAILABLE (logged). */
static int read_fields(struct br_redis *r, const char *what, redisReply **rep)
{
    size_t want = (size_t)r->s->argc - 2;
    int rc = read_one(r, what, rep);
    if (rc == BR_OK && ((*rep)->type != REDIS_REPLY_ARRAY || (*rep)->elements != want)) {
        freeReplyObject(*rep);
        *rep = NULL;
        log_foreign(r, what, "unexpected reply");
        rc = BR_E_UNAVAILABLE;
    }
    return rc;
}

static void copy_text(char *dst, size_t cap, const redisReply *e)
{
    snprintf(dst, cap, "%s", e->type == REDIS_REPLY_STRING ? e->str : "");
}

int br_redis_hold_read(struct br_redis *r, uint64_t hold_id, struct br_redis_hold *out)
{
    memset(out, 0, sizeof *out);
    uint64_t event_id = hold_id >> 32, seq = hold_id & 0xffffffffu;
    if (event_id == 0 || seq == 0) {
        return BR_E_NOT_FOUND;
    }
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    fmt_key(r, "HGET", key);
    arg_printf(r, "h:%" PRIu64, seq);
    redisReply *rep;
    int rc = read_one(r, "hold read", &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = rep->type == REDIS_REPLY_STRING ? br_redis_hold_parse(rep->str, out) : BR_E_NOT_FOUND;
    if (rc == BR_E_CORRUPT) {
        log_foreign(r, "hold read", "a stored hold does not parse");
    }
    freeReplyObject(rep);
    return rc;
}

int br_redis_payment_read(struct br_redis *r, uint64_t payment_id, struct br_redis_payment *out)
{
    memset(out, 0, sizeof *out);
    uint64_t event_id = payment_id >> 32, seq = payment_id & 0xffffffffu;
    if (event_id == 0 || seq == 0) {
        return BR_E_NOT_FOUND;
    }
    fmt_payment_read(r, event_id, seq);
    redisReply *rep;
    int rc = read_one(r, "payment read", &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = payment_take(rep, out) ? BR_OK : BR_E_NOT_FOUND;
    freeReplyObject(rep);
    return rc;
}

/* event_put.lua's spec fields, then four per zone (zname cap price cur<z>). */
static const char *const spec_fields[] = {"id",    "owner", "name", "venue", "starts",
                                          "opens", "limit", "rp",   "maxa",  "apt",
                                          "pttl",  "httl",  "qcap", "zc",    "wapm",
                                          "prs",   "pow",   "qf",   "smode"};
#define SPEC_FIELDS (sizeof spec_fields / sizeof spec_fields[0])
static const char *const zone_fields[] = {"zname", "cap", "price", "cur"};
#define ZONE_FIELDS (sizeof zone_fields / sizeof zone_fields[0])

/* The live fields read after the spec and zones by br_redis_event_read_live
 * (lib.lua's WR; absent on an event written before issue 13). */
static const char *const live_fields[] = {"mode", "maxl", "apm",   "pcr",   "plast", "told",
                                          "lap",  "qwait", "rate", "held1", "held2", "held3",
                                          "held4", "held5", "held6", "held7", "held8", "sold1",
                                          "sold2", "sold3", "sold4", "sold5", "sold6", "sold7",
                                          "sold8"};
#define LIVE_FIELDS (sizeof live_fields / sizeof live_fields[0])
_Static_assert(BR_EVENT_ZONES_MAX == 8, "live_fields names every zone's counters");

/* The ring "bucket_last:since_ms:n0:...:n29" (lib.lua, WR.rate_add); absent
 * = none (bucket_last -1). False when it does not parse. */
static bool rate_parse(const redisReply *e, struct br_queue_rate *rate)
{
    memset(rate, 0, sizeof *rate);
    rate->bucket_last = -1;
    if (nil(e)) {
        return true;
    }
    if (e->type != REDIS_REPLY_STRING) {
        return false;
    }
    const char *p = e->str;
    int64_t f[2 + BR_RATE_BUCKETS];
    for (size_t k = 0; k < 2 + BR_RATE_BUCKETS; k++) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || (k + 1 < 2 + BR_RATE_BUCKETS ? *end != ':' : *end != 0) || v < 0) {
            return false;
        }
        f[k] = v;
        p = end + 1;
    }
    rate->bucket_last = f[0];
    rate->since_ms = f[1];
    for (size_t k = 0; k < BR_RATE_BUCKETS; k++) {
        rate->n[k] = (uint32_t)f[2 + k];
    }
    return true;
}

static void live_take(redisReply **f, const struct br_event_spec *sp, struct br_redis_queue_live *l)
{
    memset(l, 0, sizeof *l);
    l->mode = (uint8_t)u64(f[0]);
    l->max_active = nil(f[1]) ? sp->max_active : (uint32_t)u64(f[1]);
    l->admit_per_min = (uint32_t)u64(f[2]);
    l->pace_credit = str_i64(f[3]);
    l->pace_last_ms = str_i64(f[4]);
    l->gate_told = (uint8_t)u64(f[5]);
    l->lapsed = (uint32_t)u64(f[6]);
    l->queue_length = (uint32_t)u64(f[7]);
    if (!rate_parse(f[8], &l->rate)) {
        memset(&l->rate, 0, sizeof l->rate);
        l->rate.bucket_last = -1; /* unreadable: as none (the estimate falls back) */
    }
    bool sold_out = true;
    uint64_t avail = 0;
    for (uint32_t z = 0; z < sp->zone_count; z++) {
        uint64_t cap = sp->zones[z].capacity, held = u64(f[9 + z]), sold = u64(f[17 + z]);
        avail += cap >= held + sold ? cap - held - sold : 0;
        sold_out = sold_out && sold == cap;
    }
    l->avail = avail > UINT32_MAX ? UINT32_MAX : (uint32_t)avail;
    l->sold_out = sold_out;
}

int br_redis_event_read_live(struct br_redis *r, uint64_t event_id, uint64_t *owner_id,
                             struct br_event_spec *sp, struct br_redis_queue_live *live)
{
    memset(sp, 0, sizeof *sp);
    *owner_id = 0;
    if (live != NULL) {
        memset(live, 0, sizeof *live);
        live->rate.bucket_last = -1;
    }
    if (event_id == 0 || event_id > BR_EVENT_ID_MAX) {
        return BR_E_NOT_FOUND;
    }
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    fmt_key(r, "HMGET", key);
    for (size_t k = 0; k < SPEC_FIELDS; k++) {
        arg_text(r, spec_fields[k]);
    }
    for (unsigned z = 1; z <= BR_EVENT_ZONES_MAX; z++) {
        for (size_t f = 0; f < ZONE_FIELDS; f++) {
            arg_printf(r, "%s%u", zone_fields[f], z);
        }
    }
    for (size_t k = 0; live != NULL && k < LIVE_FIELDS; k++) {
        arg_text(r, live_fields[k]);
    }
    redisReply *rep;
    int rc = read_fields(r, "event read", &rep);
    if (rc != BR_OK) {
        return rc;
    }
    redisReply **e = rep->element;
    uint64_t zc = u64(e[13]);
    if (nil(e[0]) || zc < 1 || zc > BR_EVENT_ZONES_MAX) {
        freeReplyObject(rep);
        return BR_E_NOT_FOUND;
    }
    *owner_id = u64(e[1]);
    copy_text(sp->name, sizeof sp->name, e[2]);
    copy_text(sp->venue, sizeof sp->venue, e[3]);
    sp->starts_at_ms = str_i64(e[4]);
    sp->sale_opens_at_ms = str_i64(e[5]);
    sp->per_user_limit = (uint32_t)u64(e[6]);
    sp->requires_pass = u64(e[7]) != 0;
    sp->max_active = (uint32_t)u64(e[8]);
    sp->admit_per_tick = (uint32_t)u64(e[9]);
    sp->pass_ttl_ms = str_i64(e[10]);
    sp->hold_ttl_ms = str_i64(e[11]);
    sp->queue_capacity = (uint32_t)u64(e[12]);
    sp->zone_count = (uint32_t)zc;
    /* Issue 13's spec fields: absent (0) on an event written before it. */
    sp->admit_per_min = (uint32_t)u64(e[14]);
    sp->presence_ttl_s = (uint32_t)u64(e[15]);
    sp->pow_bits = (uint8_t)u64(e[16]);
    sp->queue_flags = (uint8_t)u64(e[17]);
    sp->mode = (uint8_t)u64(e[18]);
    for (uint32_t z = 0; z < sp->zone_count; z++) {
        redisReply **f = &e[SPEC_FIELDS + ZONE_FIELDS * z];
        copy_text(sp->zones[z].name, sizeof sp->zones[z].name, f[0]);
        sp->zones[z].capacity = (uint32_t)u64(f[1]);
        sp->zones[z].price_minor = str_i64(f[2]);
        copy_text(sp->zones[z].currency, sizeof sp->zones[z].currency, f[3]);
    }
    if (live != NULL) {
        live_take(&e[SPEC_FIELDS + ZONE_FIELDS * BR_EVENT_ZONES_MAX], sp, live);
    }
    freeReplyObject(rep);
    return BR_OK;
}

int br_redis_event_read(struct br_redis *r, uint64_t event_id, uint64_t *owner_id,
                        struct br_event_spec *sp)
{
    return br_redis_event_read_live(r, event_id, owner_id, sp, NULL);
}

int br_redis_counters_read(struct br_redis *r, uint64_t event_id, uint32_t zone_count,
                           struct br_redis_counters *out)
{
    memset(out, 0, sizeof *out);
    BR_ASSERT(zone_count >= 1 && zone_count <= BR_EVENT_ZONES_MAX);
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    /* id qwait piss pact bk<state>.. held<z>.. sold<z>.. (event_put.lua names them) */
    fmt_key(r, "HMGET", key);
    static const char *const fixed[] = {"id", "qwait", "piss", "pact"};
    for (size_t k = 0; k < 4; k++) {
        arg_text(r, fixed[k]);
    }
    for (unsigned st = BR_HOLD_HELD; st < BR_HOLD_STATE_COUNT; st++) {
        arg_printf(r, "bk%u", st);
    }
    for (uint32_t z = 1; z <= zone_count; z++) {
        arg_printf(r, "held%u", z);
        arg_printf(r, "sold%u", z);
    }
    redisReply *rep;
    int rc = read_fields(r, "counters read", &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = BR_E_NOT_FOUND;
    if (!nil(rep->element[0])) {
        out->zone_count = zone_count;
        out->queue_length = (uint32_t)u64(rep->element[1]);
        out->admitted = (uint32_t)u64(rep->element[2]);
        out->active_passes = (uint32_t)u64(rep->element[3]);
        size_t k = 4;
        for (unsigned st = BR_HOLD_HELD; st < BR_HOLD_STATE_COUNT; st++) {
            out->bookings[st] = (uint32_t)u64(rep->element[k++]);
        }
        for (uint32_t z = 0; z < zone_count; z++) {
            out->held[z] = (uint32_t)u64(rep->element[k++]);
            out->sold[z] = (uint32_t)u64(rep->element[k++]);
        }
        rc = BR_OK;
    }
    freeReplyObject(rep);
    return rc;
}

int br_redis_user_read(struct br_redis *r, uint64_t user_id, char email[BR_EMAIL_MAX],
                       char name[BR_NAME_MAX], uint8_t *role)
{
    email[0] = name[0] = '\0';
    *role = 0;
    if (user_id == 0) {
        return BR_E_NOT_FOUND;
    }
    fmt_user_read(r, user_id);
    redisReply *rep;
    int rc = read_one(r, "user read", &rep);
    if (rc != BR_OK) {
        return rc;
    }
    rc = BR_E_NOT_FOUND;
    if (user_found(rep)) {
        copy_text(email, BR_EMAIL_MAX, rep->element[0]);
        copy_text(name, BR_NAME_MAX, rep->element[1]);
        *role = (uint8_t)u64(rep->element[2]);
        rc = BR_OK;
    }
    freeReplyObject(rep);
    return rc;
}

/* HGET key field as a number: BR_OK (*out; 0 when absent), BR_E_NOT_FOUND
 * when absent and that matters (absent_ok false), or a connection error. */
static int hget_u64(struct br_redis *r, const char *key, const char *field, bool absent_ok,
                    uint64_t *out)
{
    *out = 0;
    fmt_key(r, "HGET", key);
    arg_text(r, field);
    redisReply *rep;
    int rc = read_one(r, "catalog read", &rep);
    if (rc != BR_OK) {
        return rc;
    }
    *out = u64(rep);
    rc = nil(rep) && !absent_ok ? BR_E_NOT_FOUND : BR_OK;
    freeReplyObject(rep);
    return rc;
}

int br_redis_user_by_email(struct br_redis *r, const char *email, uint64_t *user_id)
{
    return hget_u64(r, "br:{cat}:email", email, false, user_id);
}

int br_redis_catalog_count(struct br_redis *r, const char *field, uint64_t *out)
{
    return hget_u64(r, "br:{cat}:cat", field, true, out);
}

/* One chunk (n <= BR_REDIS_VIEWS_CHUNK) of br_redis_queue_positions: the
 * event's counters and every member in one HMGET, a ZRANK each, then the
 * admitted users' pass deadlines. */
static int views_chunk(struct br_redis *r, uint64_t event_id, const uint64_t *users, uint32_t n,
                       struct br_redis_view *out, int *rc)
{
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    if (pipe_begin(r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    fmt_key(r, "HMGET", key);
    arg_text(r, "id");
    arg_text(r, "shuf");
    arg_text(r, "qwait");
    for (uint32_t i = 0; i < n; i++) {
        arg_printf(r, "m:%" PRIu64, users[i]);
    }
    int err = pipe_append(r, r->s->argc, r->s->argv, r->s->len);
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:q", event_id);
    for (uint32_t i = 0; err == BR_OK && i < n; i++) {
        fmt_key(r, "ZRANK", key);
        arg_fmt_u64(r, users[i]);
        err = pipe_append(r, r->s->argc, r->s->argv, r->s->len);
    }
    redisReply *ev = err == BR_OK ? pipe_read(r, "queue views") : NULL;
    if (ev == NULL) {
        return BR_E_UNAVAILABLE;
    }
    bool found =
        ev->type == REDIS_REPLY_ARRAY && ev->elements == 3 + (size_t)n && !nil(ev->element[0]);
    bool shuffled = found && u64(ev->element[1]) == 1;
    uint32_t qlen = found ? (uint32_t)u64(ev->element[2]) : 0;
    uint32_t admitted = 0;
    for (uint32_t i = 0; i < n; i++) {
        redisReply *rank = pipe_read(r, "queue views");
        if (rank == NULL) {
            freeReplyObject(ev);
            return BR_E_UNAVAILABLE;
        }
        uint64_t st, pass, tix;
        memset(&out[i], 0, sizeof out[i]);
        rc[i] = BR_E_NOT_IN_QUEUE;
        if (found && member_parse(ev->element[3 + i], shuffled, &st, &pass, &tix)) {
            rc[i] = BR_OK;
            out[i].status = (uint8_t)st;
            out[i].queue_length = qlen;
            if (st == BR_QS_WAITING && rank->type == REDIS_REPLY_INTEGER) {
                out[i].position = (uint32_t)rank->integer + 1;
            }
            if (st == BR_QS_ADMITTED) {
                out[i].pass_id = event_id << 32 | pass;
                admitted++;
            }
        }
        freeReplyObject(rank);
    }
    freeReplyObject(ev);
    if (!found) {
        return BR_E_NOT_FOUND;
    }
    if (admitted == 0) {
        return BR_OK;
    }
    /* The admitted users' pass deadlines (field p:<seq> of br:{e}:ev,
     * "user:dl:st:iss", admit.lua). */
    if (pipe_begin(r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    for (uint32_t i = 0; i < n; i++) {
        if (rc[i] == BR_OK && out[i].status == BR_QS_ADMITTED) {
            char field[24];
            snprintf(field, sizeof field, "p:%" PRIu64, out[i].pass_id & 0xffffffffu);
            fmt_key(r, "HGET", key);
            char *f = r->s->num[r->s->argc];
            memcpy(f, field, strlen(field) + 1);
            arg_bytes(r, f, strlen(f));
            if (pipe_append(r, r->s->argc, r->s->argv, r->s->len) != BR_OK) {
                return BR_E_UNAVAILABLE;
            }
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (rc[i] == BR_OK && out[i].status == BR_QS_ADMITTED) {
            redisReply *d = pipe_read(r, "queue views");
            if (d == NULL) {
                return BR_E_UNAVAILABLE;
            }
            uint64_t user, dl, st;
            out[i].pass_expires_at_ms = pass_parse(d, &user, &dl, &st) ? (int64_t)dl : 0;
            freeReplyObject(d);
        }
    }
    return BR_OK;
}

int br_redis_queue_positions(struct br_redis *r, uint64_t event_id, const uint64_t *users,
                             uint32_t n, struct br_redis_view *out, int *rc)
{
    if (event_id == 0 || event_id > BR_EVENT_ID_MAX) {
        return BR_E_NOT_FOUND;
    }
    for (uint32_t at = 0; at < n; at += BR_REDIS_VIEWS_CHUNK) {
        uint32_t k = n - at < BR_REDIS_VIEWS_CHUNK ? n - at : BR_REDIS_VIEWS_CHUNK;
        int err = views_chunk(r, event_id, users + at, k, out + at, rc + at);
        if (err != BR_OK) {
            return err;
        }
    }
    return BR_OK;
}

/* Queues HGET br:{e<event_id>}:ev <kind>:<num> (a hold "h", a member "m"). */
static int ev_field_append(struct br_redis *r, uint64_t event_id, const char *kind, uint64_t num)
{
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    fmt_key(r, "HGET", key);
    arg_printf(r, "%s:%" PRIu64, kind, num);
    return pipe_append(r, r->s->argc, r->s->argv, r->s->len);
}

int br_redis_holds_read(struct br_redis *r, const uint64_t *ids, uint32_t n,
                        struct br_redis_hold *out, int *rc)
{
    BR_ASSERT(n <= BR_REDIS_VIEWS_CHUNK);
    if (n == 0) {
        return BR_OK;
    }
    if (pipe_begin(r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ev_field_append(r, ids[i] >> 32, "h", ids[i] & 0xffffffffu) != BR_OK) {
            return BR_E_UNAVAILABLE;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        redisReply *rep = pipe_read(r, "holds read");
        if (rep == NULL) {
            return BR_E_UNAVAILABLE;
        }
        memset(&out[i], 0, sizeof out[i]);
        rc[i] = rep->type == REDIS_REPLY_STRING ? br_redis_hold_parse(rep->str, &out[i])
                                                : BR_E_NOT_FOUND;
        if (rc[i] == BR_E_CORRUPT) {
            log_foreign(r, "holds read", "a stored hold does not parse");
        }
        freeReplyObject(rep);
    }
    return BR_OK;
}

int br_redis_holds_scan(struct br_redis *r, uint64_t event_id, char cursor[32], br_redis_hold_fn fn,
                        void *ctx)
{
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    fmt_key(r, "HSCAN", key);
    arg_printf(r, "%s", cursor);
    arg_text(r, "MATCH");
    arg_text(r, "h:*");
    arg_text(r, "COUNT");
    arg_text(r, "1000");
    redisReply *rep;
    int rc = read_one(r, "holds scan", &rep);
    if (rc != BR_OK) {
        return rc;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= 32 ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        log_foreign(r, "holds scan", "unexpected reply");
        freeReplyObject(rep);
        return BR_E_UNAVAILABLE;
    }
    memcpy(cursor, rep->element[0]->str, rep->element[0]->len + 1);
    const redisReply *kv = rep->element[1];
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        uint64_t seq = 0;
        struct br_redis_hold h;
        if (kv->element[i]->type != REDIS_REPLY_STRING ||
            sscanf(kv->element[i]->str, "h:%" SCNu64, &seq) != 1 ||
            kv->element[i + 1]->type != REDIS_REPLY_STRING) {
            continue;
        }
        if (br_redis_hold_parse(kv->element[i + 1]->str, &h) != BR_OK) {
            log_foreign(r, "holds scan", "a stored hold does not parse");
            continue;
        }
        fn(ctx, event_id << 32 | seq, &h);
    }
    freeReplyObject(rep);
    return BR_OK;
}

int br_redis_member_tickets(struct br_redis *r, uint64_t user_id, uint64_t first, uint32_t n,
                            uint32_t *tix)
{
    BR_ASSERT(n <= BR_REDIS_VIEWS_CHUNK);
    if (n == 0) {
        return BR_OK;
    }
    if (pipe_begin(r) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ev_field_append(r, first + i, "m", user_id) != BR_OK) {
            return BR_E_UNAVAILABLE;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        redisReply *rep = pipe_read(r, "member read");
        if (rep == NULL) {
            return BR_E_UNAVAILABLE;
        }
        uint64_t st, pass, t;
        tix[i] = member_parse(rep, false, &st, &pass, &t) ? (uint32_t)t : 0;
        freeReplyObject(rep);
    }
    return BR_OK;
}

/* A zset's first score (ZRANGE 0 0 WITHSCORES), INT64_MAX when empty. */
static int64_t first_score(const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        return (int64_t)strtod(rep->element[1]->str, NULL);
    }
    return INT64_MAX;
}

/* The event's fields the due check reads: the queue's, then issue 13's
 * (lib.lua's WR: absent on an event written before it = every switch off),
 * then each zone's capacity and counters (seats available, sold out). */
static const char *const due_fields[] = {
    "id",    "shuf",  "opens", "qwait", "pact",  "maxa",  "mode",  "qf",    "told",  "apm",
    "pcr",   "plast", "maxl",  "zc",    "cap1",  "cap2",  "cap3",  "cap4",  "cap5",  "cap6",
    "cap7",  "cap8",  "held1", "held2", "held3", "held4", "held5", "held6", "held7", "held8",
    "sold1", "sold2", "sold3", "sold4", "sold5", "sold6", "sold7", "sold8"};
#define DUE_FIELDS (sizeof due_fields / sizeof due_fields[0])
_Static_assert(BR_EVENT_ZONES_MAX == 8, "due_fields names every zone's counters");

static void due_take(redisReply **f, struct br_redis_due *out)
{
    out->exists = true;
    out->shuffled = u64(f[1]) == 1;
    out->opens_ms = str_i64(f[2]);
    out->waiting = u64(f[3]);
    out->active_passes = u64(f[4]);
    out->max_active = u64(f[5]);
    out->mode = (uint8_t)u64(f[6]);
    out->flags = (uint8_t)u64(f[7]);
    out->told = (uint8_t)u64(f[8]);
    out->apm = (uint32_t)u64(f[9]);
    out->pcr = str_i64(f[10]);
    out->plast = str_i64(f[11]);
    out->maxl = nil(f[12]) ? (uint32_t)out->max_active : (uint32_t)u64(f[12]);
    uint64_t zc = u64(f[13]), avail = 0;
    bool sold_out = true;
    for (uint64_t z = 0; z < zc && z < BR_EVENT_ZONES_MAX; z++) {
        uint64_t cap = u64(f[14 + z]), held = u64(f[22 + z]), sold = u64(f[30 + z]);
        avail += cap >= held + sold ? cap - held - sold : 0;
        sold_out = sold_out && sold == cap;
    }
    out->avail = avail > UINT32_MAX ? UINT32_MAX : (uint32_t)avail;
    out->sold_out = sold_out;
}

int br_redis_event_due(struct br_redis *r, uint64_t event_id, int lead_argc, const char **lead_argv,
                       const size_t *lead_len, redisReply **lead_rep, struct br_redis_due *out)
{
    BR_ASSERT(lead_argc == 0 || (lead_rep != NULL && r->cluster == NULL));
    memset(out, 0, sizeof *out);
    if (lead_rep != NULL) {
        *lead_rep = NULL;
    }
    if (pipe_begin(r) != BR_OK ||
        (lead_argc > 0 && pipe_append(r, lead_argc, lead_argv, lead_len) != BR_OK)) {
        return BR_E_UNAVAILABLE;
    }
    char key[NUM_LEN];
    snprintf(key, sizeof key, "br:{e%" PRIu64 "}:ev", event_id);
    fmt_key(r, "HMGET", key);
    for (size_t k = 0; k < DUE_FIELDS; k++) {
        arg_text(r, due_fields[k]);
    }
    int rc = pipe_append(r, r->s->argc, r->s->argv, r->s->len);
    static const char *const sets[] = {"passes", "holds", "refunds", "checks"};
    for (size_t k = 0; rc == BR_OK && k < 4; k++) {
        snprintf(key, sizeof key, "br:{e%" PRIu64 "}:%s", event_id, sets[k]);
        fmt_key(r, "ZRANGE", key);
        arg_text(r, "0");
        arg_text(r, "0");
        arg_text(r, "WITHSCORES");
        rc = pipe_append(r, r->s->argc, r->s->argv, r->s->len);
    }
    if (rc != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    redisReply *rep[6] = {NULL};
    size_t want = lead_argc > 0 ? 6 : 5, got = 0;
    for (; got < want; got++) {
        rep[got] = pipe_read(r, "due check");
        if (rep[got] == NULL) {
            break;
        }
    }
    rc = got == want ? BR_OK : BR_E_UNAVAILABLE;
    redisReply **d = rep + (lead_argc > 0 ? 1 : 0);
    for (size_t k = lead_argc > 0 ? 1 : 0; rc == BR_OK && k < want; k++) {
        if (rep[k]->type == REDIS_REPLY_ERROR) {
            log_foreign(r, "due check", rep[k]->str);
            rc = BR_E_UNAVAILABLE;
        }
    }
    if (rc == BR_OK && d[0]->type == REDIS_REPLY_ARRAY && d[0]->elements == DUE_FIELDS &&
        !nil(d[0]->element[0])) {
        due_take(d[0]->element, out);
    }
    if (rc == BR_OK) {
        out->next_pass_ms = first_score(d[1]);
        out->next_hold_ms = first_score(d[2]);
        out->next_refund_ms = first_score(d[3]);
        out->next_check_ms = first_score(d[4]);
    }
    for (size_t k = lead_argc > 0 ? 1 : 0; k < got; k++) {
        freeReplyObject(rep[k]);
    }
    if (lead_argc > 0 && got > 0) {
        if (rc == BR_OK) {
            *lead_rep = rep[0];
        } else {
            freeReplyObject(rep[0]);
        }
    }
    return rc;
}

int br_redis_pow_use(struct br_redis *r, uint64_t event_id, const char *rand_hex, int64_t ttl_ms)
{
    BR_ASSERT(r != NULL && r->s != NULL && rand_hex != NULL && ttl_ms >= 1);
    size_t hex = strlen(rand_hex);
    /* The challenge's rand (server/pow.h: base64url; hex fits too). */
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (hex == 0 || hex > 64 || strspn(rand_hex, b64url) != hex) {
        return BR_E_POW_INVALID; /* no challenge of ours has such a rand */
    }
    char key[NUM_LEN + 72], px[24];
    if (event_id == 0) {
        snprintf(key, sizeof key, "br:{cat}:pow:%s", rand_hex);
    } else {
        snprintf(key, sizeof key, "br:{e%" PRIu64 "}:pow:%s", event_id, rand_hex);
    }
    snprintf(px, sizeof px, "%" PRId64, ttl_ms);
    const char *argv[6] = {"SET", key, "1", "PX", px, "NX"};
    size_t lens[6] = {3, strlen(key), 1, 2, strlen(px), 2};
    redisReply *rep;
    int rc = call(r, 6, argv, lens, &rep);
    if (rc != BR_OK) {
        return rc;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        rc = BR_E_POW_INVALID; /* used already */
    } else if (rep->type != REDIS_REPLY_STATUS) {
        rc = translate_error(r, S_CONFIG, rep);
        if (rc == BR_OK) {
            log_foreign(r, "pow use", "unexpected reply type");
            rc = BR_E_IO;
        }
    }
    freeReplyObject(rep);
    return rc;
}

