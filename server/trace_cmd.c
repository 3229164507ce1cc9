/*
 * trace_cmd.c -- `bookingrush trace export` (trace_cmd.h says what a trace
 * holds and what it cannot reproduce).
 *
 * The recorded config is read with one HMGET before the adapter is opened
 * (on a cluster through its router); users with br_redis_commandf and the
 * logs with br_redis_log_read (both routed by the adapter), which decodes
 * each entry's command and outcome as the adapter does for br_redis_apply.
 * Nothing is written to Redis: an export can run against a live sale (it
 * sees the log up to the moment its second pass reads it; entries appended
 * after the first pass counted are left out, so the header's sizes hold).
 */
#define _POSIX_C_SOURCE 200809L
#include "server/trace_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "adapters/cli.h"
#include "adapters/redis_cluster.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/panic.h"

#define LOG_BATCH 64u   /* log entries per read (each entry has room for every effect) */
#define TABLE_SLACK 64u /* rows added to each counted table size */

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...)
{
    if (why == NULL || cap == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

/* ---- the catalog, read with plain commands ---- */

/* The recorded config is read before the adapter can be opened (it
 * checks the config it is given against Redis's): with one HMGET on a
 * plain connection, or through a cluster's router (the catalog's slot may
 * live on any node). NULL after saying why. */
static redisReply *config_read(const struct br_redis_options *o, char *why, size_t cap)
{
    static const char *const argv[] = {
        "HMGET",          "br:{cat}:cat",     "cfg_seed",       "cfg_events_max", "cfg_users_max",
        "cfg_qslots_max", "cfg_qcap_default", "cfg_active_max", "cfg_seats_max",  "users",
        "events"};
    enum { ARGC = sizeof argv / sizeof argv[0] };
    size_t len[ARGC];
    for (int i = 0; i < ARGC; i++) {
        len[i] = strlen(argv[i]);
    }
    redisReply *rep = NULL;
    if (o->cluster) {
        struct br_cluster *cl = calloc(1, sizeof *cl);
        if (cl != NULL && br_cluster_open(cl, o->seeds, o->connect_timeout_ms,
                                          o->command_timeout_ms, false) == BR_OK) {
            br_cluster_call(cl, ARGC, (const char **)argv, len, &rep);
        }
        br_cluster_close(cl);
        free(cl);
    } else {
        struct timeval ct = {.tv_sec = o->connect_timeout_ms / 1000,
                             .tv_usec = (o->connect_timeout_ms % 1000) * 1000};
        redisContext *c = redisConnectWithTimeout(o->host, o->port, ct);
        if (c != NULL && c->err == 0 && o->db != 0) {
            freeReplyObject(redisCommand(c, "SELECT %d", o->db));
        }
        if (c != NULL && c->err == 0) {
            rep = redisCommandArgv(c, ARGC, (const char **)argv, len);
        }
        if (rep == NULL) {
            say(why, cap, "cannot read Redis at %s:%d: %s", o->host, o->port,
                c != NULL ? c->errstr : "out of memory");
        }
        redisFree(c);
        return rep;
    }
    if (rep == NULL) {
        say(why, cap, "cannot read the Redis Cluster at %s", o->seeds);
    }
    return rep;
}

/* An unsigned decimal from a bulk string reply; false when absent or bad. */
static bool reply_u64(const redisReply *e, uint64_t *v)
{
    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 20) {
        return false;
    }
    char buf[24];
    memcpy(buf, e->str, e->len);
    buf[e->len] = 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno != 0 || *end != 0 || buf[0] == '-') {
        return false;
    }
    *v = x;
    return true;
}

static uint32_t cap32(uint64_t v)
{
    return v > BR_TABLE_ROWS_MAX ? BR_TABLE_ROWS_MAX : (uint32_t)v;
}

/* The config recorded by config.lua and the catalog's counters. */
static int cat_read(const struct br_redis_options *o, struct br_config *cfg, uint64_t *users,
                    uint64_t *events, char *why, size_t cap)
{
    redisReply *rep = config_read(o, why, cap);
    if (rep == NULL) {
        return BR_E_UNAVAILABLE;
    }
    uint64_t v[9];
    bool ok = rep->type == REDIS_REPLY_ARRAY && rep->elements == 9;
    for (size_t i = 0; ok && i < 9; i++) {
        ok = reply_u64(rep->element[i], &v[i]);
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        say(why, cap, "Redis: %s", rep->str);
        freeReplyObject(rep);
        return BR_E_IO;
    }
    freeReplyObject(rep);
    if (!ok) {
        say(why, cap, "Redis holds no deployment config (br:{cat}:cat): nothing was ever served");
        return BR_E_NOT_FOUND;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = v[0];
    cfg->events_max = cap32(v[1]);
    cfg->users_max = cap32(v[2]);
    cfg->queue_slots_max = cap32(v[3]);
    cfg->queue_capacity_default = cap32(v[4]);
    cfg->active_max = cap32(v[5]);
    cfg->seats_max = cap32(v[6]);
    *users = v[7];
    *events = v[8];
    return BR_OK;
}

/* A string field into a NUL-terminated buffer of cap bytes; false if too long. */
static bool reply_str(const redisReply *e, char *dst, size_t cap)
{
    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len >= cap) {
        return false;
    }
    memset(dst, 0, cap);
    memcpy(dst, e->str, e->len);
    return true;
}

/* A user record (br:{cat}:u:<id>: email name pw salt role) as the command
 * that registered it. */
static bool user_cmd(const redisReply *rep, struct br_cmd *cmd)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 5) {
        return false;
    }
    memset(cmd, 0, sizeof *cmd);
    cmd->type = BR_CMD_USER_REGISTER;
    uint64_t role = 0;
    const redisReply *pw = rep->element[2], *salt = rep->element[3];
    if (!reply_str(rep->element[0], cmd->u.user_register.email, BR_EMAIL_MAX) ||
        !reply_str(rep->element[1], cmd->u.user_register.name, BR_NAME_MAX) ||
        pw->type != REDIS_REPLY_STRING || pw->len != BR_PASSWORD_HASH_LEN ||
        salt->type != REDIS_REPLY_STRING || salt->len != BR_SALT_LEN ||
        !reply_u64(rep->element[4], &role) || role >= BR_ROLE_COUNT) {
        return false;
    }
    memcpy(cmd->u.user_register.password_hash, pw->str, BR_PASSWORD_HASH_LEN);
    memcpy(cmd->u.user_register.salt, salt->str, BR_SALT_LEN);
    cmd->u.user_register.role = (uint8_t)role;
    return true;
}

/* ---- writing ---- */

struct sink {
    FILE *f;
    uint64_t bytes;
    bool failed;
};

static void put_record(struct sink *s, const struct br_cmd *cmd, const struct br_outcome *out)
{
    uint8_t buf[BR_JOURNAL_RECORD_MAX];
    size_t n = br_journal_record_encode(buf, sizeof buf, cmd, out);
    BR_ASSERT(n > 0); /* every command decoded from the log or the catalog fits */
    if (!s->failed && fwrite(buf, 1, n, s->f) != n) {
        s->failed = true;
    }
    s->bytes += n;
}

/* The prologue's users, one HMGET each, stamped with the event's
 * creation: create->user_id created the event, so it could organize then;
 * if its role was lowered since, it is registered as an organizer (no
 * other command of an event's log looks at roles). */
static int put_users(struct br_redis *r, uint64_t users, const struct br_cmd *create,
                     struct sink *s, char *why, size_t cap)
{
    struct br_cmd cmd;
    for (uint64_t id = 1; id <= users; id++) {
        redisReply *rep = NULL;
        int rc =
            br_redis_commandf(r, &rep, "HMGET br:{cat}:u:%" PRIu64 " email name pw salt role", id);
        if (rc != BR_OK) {
            say(why, cap, "reading user %" PRIu64 ": %s", id, br_err_name(rc));
            return rc;
        }
        bool ok = user_cmd(rep, &cmd);
        freeReplyObject(rep);
        if (!ok) {
            say(why, cap, "user %" PRIu64 "'s catalog record does not decode", id);
            return BR_E_CORRUPT;
        }
        cmd.now_ms = create->now_ms;
        if (id == create->user_id && cmd.u.user_register.role == BR_ROLE_CUSTOMER) {
            cmd.u.user_register.role = BR_ROLE_ORGANIZER;
        }
        put_record(s, &cmd, NULL);
    }
    return BR_OK;
}

/* ---- the logs ---- */

struct counts {
    uint64_t entries;
    uint64_t joins, reserves, admitted, payments, provider_events;
};

/* Reads the whole log of event_id in batches, calling each entry's visitor.
 * Stops after `limit` entries (0 = none). */
typedef int (*entry_fn)(void *ctx, const struct br_redis_log_entry *e);
static int walk_log(struct br_redis *r, uint64_t event_id, uint64_t limit,
                    struct br_redis_log_entry *batch, entry_fn fn, void *ctx)
{
    char after[sizeof batch[0].stream_id] = "0";
    uint64_t seen = 0;
    /* Bounded by the stream's length: each round moves `after` forward. */
    for (;;) {
        uint32_t n = 0;
        uint32_t want = LOG_BATCH;
        if (limit != 0 && limit - seen < want) {
            want = (uint32_t)(limit - seen);
        }
        int rc = br_redis_log_read(r, event_id, after, want, batch, &n);
        if (rc != BR_OK) {
            return rc;
        }
        for (uint32_t i = 0; i < n && (limit == 0 || seen < limit); i++, seen++) {
            rc = fn(ctx, &batch[i]);
            if (rc != BR_OK) {
                return rc;
            }
        }
        if (n < want || (limit != 0 && seen >= limit)) {
            return BR_OK;
        }
        memcpy(after, batch[n - 1].stream_id, sizeof after);
    }
}

static int count_entry(void *ctx, const struct br_redis_log_entry *e)
{
    struct counts *k = ctx;
    k->entries++;
    switch (e->cmd.type) {
    case BR_CMD_QUEUE_JOIN:
        k->joins++;
        break;
    case BR_CMD_RESERVE:
        k->reserves++;
        break;
    case BR_CMD_ADMIT:
        k->admitted += e->out.count + e->fx_count;
        break;
    case BR_CMD_PAYMENT_CREATE:
        k->payments++;
        break;
    case BR_CMD_PAYMENT_EVENT:
        k->provider_events++;
        break;
    default:
        break;
    }
    return BR_OK;
}

/* The engine's table sizes a replay of these entries needs: each counted
 * command adds at most one row (admit: one pass per admitted user), plus
 * slack. Members come from joins and from reserves without a queue. */
static void size_tables(struct br_config *cfg, const struct counts *k)
{
    cfg->members_max = cap32(k->joins + k->reserves + TABLE_SLACK);
    cfg->passes_max = cap32(k->admitted + TABLE_SLACK);
    cfg->holds_max = cap32(k->reserves + TABLE_SLACK);
    cfg->payments_max = cap32(k->payments + TABLE_SLACK);
    cfg->idem_max = cap32(k->reserves + TABLE_SLACK);
    cfg->provider_events_max = cap32(k->provider_events + TABLE_SLACK);
}

struct first {
    struct br_cmd cmd;
    struct br_outcome out;
    bool seen;
};

static int take_first(void *ctx, const struct br_redis_log_entry *e)
{
    struct first *f = ctx;
    f->cmd = e->cmd;
    f->out = e->out;
    f->seen = true;
    return BR_OK;
}

/* The event_create that opened event id's log, or BR_E_NOT_FOUND. */
static int event_create_of(struct br_redis *r, uint64_t id, struct br_redis_log_entry *batch,
                           struct br_cmd *cmd, char *why, size_t cap)
{
    struct first f = {.seen = false};
    int rc = walk_log(r, id, 1, batch, take_first, &f);
    if (rc != BR_OK) {
        say(why, cap, "reading event %" PRIu64 "'s log: %s", id, br_err_name(rc));
        return rc;
    }
    if (!f.seen || f.cmd.type != BR_CMD_EVENT_CREATE || f.out.err != BR_OK || f.out.id != id) {
        say(why, cap,
            "event %" PRIu64 "'s log does not start with its creation (no log, or Redis was "
            "rebuilt from PostgreSQL since): no trace can be made from it",
            id);
        return BR_E_NOT_FOUND;
    }
    *cmd = f.cmd;
    return BR_OK;
}

struct writer {
    struct sink *s;
    uint64_t left;    /* entries the header was sized for */
    uint64_t written; /* entries written (external ones are not) */
};

static int write_entry(void *ctx, const struct br_redis_log_entry *e)
{
    struct writer *w = ctx;
    BR_ASSERT(w->left > 0); /* walk_log stops at the count the header was sized for */
    if (!e->external) {
        put_record(w->s, &e->cmd, &e->out);
        w->written++;
    }
    w->left--;
    return BR_OK;
}

/* Header, users, events 1..event_id-1, then event_id's log. */
static int export_to(struct br_redis *r, const struct br_config *base, uint64_t users,
                     uint64_t event_id, struct br_redis_log_entry *batch, struct sink *s,
                     struct br_trace_stats *st, char *why, size_t cap)
{
    struct br_cmd create;
    int rc = event_create_of(r, event_id, batch, &create, why, cap);
    if (rc != BR_OK) {
        return rc;
    }
    struct counts k = {0};
    rc = walk_log(r, event_id, 0, batch, count_entry, &k);
    if (rc != BR_OK) {
        say(why, cap, "reading event %" PRIu64 "'s log: %s", event_id, br_err_name(rc));
        return rc;
    }
    /* Users counted after the log: every user the counted entries name was
     * registered before them (on a live sale, users counted earlier could
     * miss one). */
    redisReply *rep = NULL;
    rc = br_redis_commandf(r, &rep, "HGET br:{cat}:cat users");
    if (rc == BR_OK && (rep == NULL || !reply_u64(rep, &users))) {
        rc = BR_E_IO;
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    if (rc != BR_OK) {
        say(why, cap, "reading the catalog's user count: %s", br_err_name(rc));
        return rc;
    }
    struct br_config cfg = *base;
    size_tables(&cfg, &k);
    uint8_t head[BR_JOURNAL_HEADER_MAX];
    size_t hn = br_journal_header_encode(head, sizeof head, &cfg);
    BR_ASSERT(hn > 0);
    if (fwrite(head, 1, hn, s->f) != hn) {
        s->failed = true;
    }
    s->bytes += hn;
    rc = put_users(r, users, &create, s, why, cap);
    if (rc != BR_OK) {
        return rc;
    }
    st->users = users;
    for (uint64_t id = 1; id < event_id; id++) {
        struct br_cmd ev;
        rc = event_create_of(r, id, batch, &ev, why, cap);
        if (rc != BR_OK) {
            return rc;
        }
        ev.user_id = 0; /* the system: the organizer's role today does not matter */
        put_record(s, &ev, NULL);
        st->events++;
    }
    struct writer w = {.s = s, .left = k.entries};
    rc = walk_log(r, event_id, k.entries, batch, write_entry, &w);
    if (rc != BR_OK) {
        say(why, cap, "reading event %" PRIu64 "'s log: %s", event_id, br_err_name(rc));
        return rc;
    }
    st->entries = w.written;
    st->external = k.entries - w.left - w.written;
    return BR_OK;
}

int br_trace_export(const struct br_redis_options *o, uint64_t event_id, FILE *out,
                    struct br_trace_stats *st, char *why, size_t why_cap)
{
    memset(st, 0, sizeof *st);
    say(why, why_cap, "ok");
    struct br_config cfg;
    uint64_t users = 0, events = 0;
    int rc = cat_read(o, &cfg, &users, &events, why, why_cap);
    if (rc == BR_OK && (event_id == 0 || event_id > events)) {
        say(why, why_cap, "no event %" PRIu64 " (the catalog has %" PRIu64 ")", event_id, events);
        rc = BR_E_NOT_FOUND;
    }
    if (rc != BR_OK) {
        return rc;
    }
    /* The adapter checks the catalog part of cfg against Redis; the table
     * sizes are provisional until the log has been counted. */
    struct br_config open_cfg = cfg;
    size_tables(&open_cfg, &(struct counts){0});
    struct br_redis_options ro = *o;
    ro.fresh = false;
    struct br_redis r;
    rc = br_redis_open(&r, &ro, &open_cfg);
    if (rc != BR_OK) {
        say(why, why_cap, "opening Redis: %s", br_err_name(rc));
        return rc;
    }
    struct br_redis_log_entry *batch = calloc(LOG_BATCH, sizeof *batch);
    if (batch == NULL) {
        rc = BR_E_FULL;
        say(why, why_cap, "out of memory");
    } else {
        struct sink s = {.f = out};
        rc = export_to(&r, &cfg, users, event_id, batch, &s, st, why, why_cap);
        if (fflush(out) != 0 || ferror(out)) {
            s.failed = true;
        }
        if (rc == BR_OK && s.failed) {
            say(why, why_cap, "writing the trace: %s", strerror(errno));
            rc = BR_E_IO;
        }
        st->bytes = s.bytes;
    }
    free(batch);
    br_redis_close(&r);
    return rc;
}

/* ---- the command line ---- */

static const char usage[] =
    "usage: bookingrush trace export --redis URL --event N [--out FILE]\n"
    "\n"
    "Writes event N's log (every command the Lua twins ran for it, with the outcome\n"
    "Redis gave, in Redis's order) in the journal format, so that\n"
    "`bookingrush replay FILE` re-runs it through the core and names the first\n"
    "outcome that differs: how an incident of the distributed deployment is\n"
    "reproduced. The trace opens with the deployment's config and a prologue (every\n"
    "user of the catalog, then events 1..N-1 as created) read from Redis; nothing is\n"
    "written there, and a live sale may go on meanwhile.\n"
    "\n"
    "  --redis URL  redis://host:port[/db], or a Redis Cluster:\n"
    "               redis-cluster://host:port[,host:port...] (default: $BR_REDIS_URL)\n"
    "  --event N    the event (1, 2, ...)\n"
    "  --out FILE   write to FILE instead of standard output (which must then not\n"
    "               be a terminal: the trace is binary)\n"
    "\n"
    "Exit status: 0 written, 1 failed (the reason on stderr), 2 usage error.\n";

struct trace_args {
    const char *redis;
    const char *out;
    uint64_t event_id;
};

static int parse_u64_arg(const char *opt, const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0 || *end != 0 || s[0] == 0 || s[0] == '-' || x == 0) {
        return br_cli_usage_error("trace", "%s needs a positive integer, not '%s'", opt, s);
    }
    *v = x;
    return 0;
}

/* 0 to run, 1 after --help, else a usage error's status (printed). */
static int parse_args(int argc, char **argv, struct trace_args *a)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? BR_CLI_EXIT_USAGE : 1;
    }
    if (argv[1][0] == '-') {
        return br_cli_unknown_option("trace", argv[1]);
    }
    if (strcmp(argv[1], "export") != 0) {
        return br_cli_usage_error("trace", "unknown subcommand '%s' (only export)", argv[1]);
    }
    a->redis = getenv("BR_REDIS_URL");
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        bool takes =
            strcmp(opt, "--redis") == 0 || strcmp(opt, "--event") == 0 || strcmp(opt, "--out") == 0;
        if (!takes) {
            return opt[0] == '-' ? br_cli_unknown_option("trace", opt)
                                 : br_cli_usage_error("trace", "unexpected argument '%s'", opt);
        }
        if (i + 1 >= argc) {
            return br_cli_missing_value("trace", opt);
        }
        const char *val = argv[++i];
        if (strcmp(opt, "--redis") == 0) {
            a->redis = val;
        } else if (strcmp(opt, "--out") == 0) {
            a->out = val;
        } else {
            int rc = parse_u64_arg(opt, val, &a->event_id);
            if (rc != 0) {
                return rc;
            }
        }
    }
    if (a->redis == NULL) {
        return br_cli_usage_error("trace", "--redis URL (or BR_REDIS_URL) is needed");
    }
    if (a->event_id == 0) {
        return br_cli_usage_error("trace", "--event N is needed");
    }
    if (a->out == NULL && isatty(STDOUT_FILENO)) {
        return br_cli_usage_error("trace", "the trace is binary: give --out FILE or redirect "
                                           "standard output");
    }
    return 0;
}

int br_trace_main(int argc, char **argv)
{
    struct trace_args a = {0};
    int prc = parse_args(argc, argv, &a);
    if (prc != 0) {
        return prc == 1 ? 0 : prc;
    }
    struct br_redis_options o;
    if (br_redis_parse_url(a.redis, &o) != BR_OK) {
        return br_cli_usage_error("trace",
                                  "--redis: cannot read '%s' (redis://host:port[/db] or "
                                  "redis-cluster://host:port[,host:port...])",
                                  a.redis);
    }
    FILE *f = a.out != NULL ? fopen(a.out, "wb") : stdout;
    if (f == NULL) {
        fprintf(stderr, "bookingrush trace: cannot write %s: %s\n", a.out, strerror(errno));
        return 1;
    }
    struct br_trace_stats st;
    char why[512];
    int rc = br_trace_export(&o, a.event_id, f, &st, why, sizeof why);
    if (a.out != NULL && fclose(f) != 0 && rc == BR_OK) {
        snprintf(why, sizeof why, "closing %s: %s", a.out, strerror(errno));
        rc = BR_E_IO;
    }
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush trace: export of event %" PRIu64 " failed (%s): %s\n",
                a.event_id, br_err_name(rc), why);
        return 1;
    }
    fprintf(stderr,
            "bookingrush trace: event %" PRIu64 ": %" PRIu64
            " log entries after a prologue of %" PRIu64 " users and %" PRIu64 " events, %" PRIu64
            " bytes%s%s\n",
            a.event_id, st.entries, st.users, st.events, st.bytes, a.out != NULL ? " to " : "",
            a.out != NULL ? a.out : "");
    return 0;
}
