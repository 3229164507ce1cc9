/*
 * rush_prep.c -- the rush's preparation (rush_prep.h): probe, admin login,
 * accounts, events, stats, over the rush's event loop. Nothing here is
 * measured. The accounts are prepared by a small state machine per account
 * (register -> login, or refresh -> login when the refresh is refused) with
 * at most min(--connections, 256) requests in flight; a refused request
 * (503 OVERLOADED, 429) waits its Retry-After on a retry list, so a full
 * hash queue on the server slows the preparation down, never fails it.
 *
 * Limits: a users file line is at most 4 KiB; an account whose requests
 * fail 5 times without an OVERLOADED/429 reason fails the preparation.
 */
#define _DEFAULT_SOURCE /* timegm, strtok_r */
#include "server/rush_prep.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <math.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/queue.h"
#include "server/rush_crowd.h"
#include "server/rush_meter.h"
#include "sim/report.h"

#define PREP_WINDOW_MAX 256u
#define PREP_TRIES_MAX 5u        /* failures that are not a refusal, per account */
#define PREP_TIMEOUT_MIN_MS 30000u /* a registration can wait behind a full hash queue */
#define USERS_FILE_HEADER "# bookingrush rush users 1"

/* ---- small helpers ---- */

void br_rush_prep_password(const char *email, char out[BR_RUSH_PASSWORD_MAX])
{
    /* Test accounts only: the password is a function of the email, so a
     * storm login or a later run needs nothing stored. */
    snprintf(out, BR_RUSH_PASSWORD_MAX, "rush-pw:%.100s", email);
}

static int two(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') {
        return -1;
    }
    return (s[0] - '0') * 10 + (s[1] - '0');
}

int64_t br_rush_parse_time_ms(const char *s)
{
    if (s == NULL || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':') {
        return -1;
    }
    int y1 = two(s), y2 = two(s + 2), mo = two(s + 5), d = two(s + 8), h = two(s + 11),
        mi = two(s + 14), se = two(s + 17);
    if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        se < 0) {
        return -1;
    }
    struct tm tm = {.tm_year = y1 * 100 + y2 - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = se};
    time_t t = timegm(&tm);
    int64_t ms = (int64_t)t * 1000;
    const char *p = s + 19;
    if (*p == '.') {
        int64_t f = 0;
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 3) {
                f = f * 10 + (*p - '0');
            }
        }
        for (; n < 3; n++) {
            f *= 10;
        }
        ms += f;
    }
    return *p == 'Z' ? ms : -1;
}

/* ---- one request, waited for ---- */

void br_rush_call_done(void *ctx, const struct br_rush_resp *r)
{
    struct br_rush_call *c = ctx;
    c->status = r->status;
    c->err = r->err;
    c->retry_after_s = r->retry_after_s;
    free(c->body);
    c->body = malloc(r->body_len + 1);
    if (c->body != NULL) {
        if (r->body_len > 0) {
            memcpy(c->body, r->body, r->body_len);
        }
        c->body[r->body_len] = '\0';
        c->body_len = r->body_len;
    } else {
        c->body_len = 0;
    }
    c->done = true;
}

static bool call_is_done(void *ctx)
{
    return ((const struct br_rush_call *)ctx)->done;
}

static bool never(void *ctx)
{
    (void)ctx;
    return false;
}

void br_rush_call_free(struct br_rush_call *c)
{
    free(c->body);
    c->body = NULL;
    c->body_len = 0;
}

int br_rush_call_wait(struct br_rush_net *net, const struct br_rush_req *q, int64_t deadline_us,
                      struct br_rush_call *c)
{
    br_rush_call_free(c);
    memset(c, 0, sizeof *c);
    if (br_rush_net_send(net, q, br_rush_call_done, c) != BR_OK) {
        return BR_E_FULL;
    }
    while (!c->done && br_rush_now_us() < deadline_us) {
        if (br_rush_net_run(net, deadline_us, call_is_done, c) != BR_OK) {
            break;
        }
    }
    /* Past the deadline the request still ends in its callback (the net's
     * timeout); wait for it so the call's memory is never written late. */
    while (!c->done) {
        if (br_rush_net_run(net, br_rush_now_us() + 100000, call_is_done, c) != BR_OK) {
            return BR_E_IO;
        }
    }
    return c->status != 0 ? BR_OK : BR_E_UNAVAILABLE;
}

/* Waits s seconds on the loop (a refusal's Retry-After), bounded by deadline. */
static void wait_s(struct br_rush_net *net, uint32_t s, int64_t deadline_us)
{
    int64_t until = br_rush_now_us() + (int64_t)(s == 0 ? 1 : s) * 1000000;
    (void)br_rush_net_run(net, until < deadline_us ? until : deadline_us, never, NULL);
}

static const char *net_err_text(int err)
{
    switch (err) {
    case BR_RUSH_NET_TIMEOUT: return "timed out";
    case BR_RUSH_NET_CLOSED: return "connection closed";
    case BR_RUSH_NET_PROTOCOL: return "protocol error";
    case BR_RUSH_NET_CONNECT: return "cannot connect";
    default: return "no answer";
    }
}

static void answer_why(char why[BR_RUSH_WHY_MAX], const char *what, const struct br_rush_call *c)
{
    if (c->status == 0) {
        snprintf(why, BR_RUSH_WHY_MAX, "%s: %s", what, net_err_text(c->err));
        return;
    }
    char code[48];
    if (br_rush_error_code(c->body, c->body_len, code, sizeof code) == NULL) {
        code[0] = '\0';
    }
    snprintf(why, BR_RUSH_WHY_MAX, "%s: HTTP %d %s", what, c->status, code[0] ? code : "");
}

static bool refused(int status)
{
    return status == 503 || status == 429;
}

/* ---- probe and admin ---- */

int br_rush_prep_probe(struct br_rush_net *net, const struct br_rush_config *cfg, char backend[16],
                       int64_t deadline_us, char why[BR_RUSH_WHY_MAX])
{
    backend[0] = '\0';
    struct br_rush_call c = {0};
    for (uint32_t t = 0; t < cfg->target_count; t++) {
        struct br_rush_req q = {.route = BR_RR_METRICS, .pool = BR_RUSH_POOL_ADMIN, .target = t,
                                .method = "GET", .path = "/readyz", .timeout_ms = 3000};
        int tries = 0;
        for (;;) {
            int rc = br_rush_call_wait(net, &q, deadline_us, &c);
            if (rc == BR_OK && c.status == 200) {
                break;
            }
            /* A starting server answers 503 for a moment; anything else fails. */
            if (rc != BR_OK || !refused(c.status) || ++tries >= 10 ||
                br_rush_now_us() >= deadline_us) {
                char what[160];
                snprintf(what, sizeof what, "%s/readyz", cfg->targets[t]);
                answer_why(why, what, &c);
                br_rush_call_free(&c);
                return BR_E_UNAVAILABLE;
            }
            wait_s(net, 1, deadline_us);
        }
        json_t *j = json_loadb(c.body, c.body_len, 0, NULL);
        const char *b = json_string_value(json_object_get(j, "backend"));
        b = b != NULL ? b : "unknown";
        if (backend[0] == '\0') {
            snprintf(backend, 16, "%s", b);
        } else if (strcmp(backend, b) != 0) {
            snprintf(backend, 16, "mixed");
        }
        json_decref(j);
    }
    br_rush_call_free(&c);
    return BR_OK;
}

/* Logs email/password in, retrying refusals; the answer's fields into u. */
static int login_one(struct br_rush_net *net, const char *email, const char *password,
                     uint32_t timeout_ms, int64_t deadline_us, struct br_rush_call *c)
{
    json_t *b = json_pack("{s:s, s:s}", "email", email, "password", password);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    if (body == NULL) {
        return BR_E_UNAVAILABLE;
    }
    struct br_rush_req q = {.route = BR_RR_LOGIN, .pool = BR_RUSH_POOL_ADMIN,
                            .target = UINT32_MAX, .method = "POST", .path = "/api/v1/auth/login",
                            .body = body, .body_len = strlen(body), .timeout_ms = timeout_ms};
    int rc;
    for (int tries = 0;; tries++) {
        rc = br_rush_call_wait(net, &q, deadline_us, c);
        if (rc != BR_OK || !refused(c->status) || tries >= 30 || br_rush_now_us() >= deadline_us) {
            break;
        }
        wait_s(net, c->retry_after_s, deadline_us);
    }
    free(body);
    return rc;
}

int br_rush_prep_admin(struct br_rush_net *net, const struct br_rush_config *cfg,
                       char token[BR_RUSH_TOKEN_MAX], int64_t deadline_us, char why[BR_RUSH_WHY_MAX])
{
    struct br_rush_call c = {0};
    token[0] = '\0';
    uint32_t tmo = cfg->request_timeout_ms > PREP_TIMEOUT_MIN_MS ? cfg->request_timeout_ms
                                                                 : PREP_TIMEOUT_MIN_MS;
    int rc = login_one(net, cfg->admin_email, cfg->admin_password, tmo, deadline_us, &c);
    if (rc != BR_OK || c.status != 200) {
        char what[160];
        snprintf(what, sizeof what, "administrator %s: login", cfg->admin_email);
        answer_why(why, what, &c);
        br_rush_call_free(&c);
        return BR_E_UNAVAILABLE;
    }
    json_t *j = json_loadb(c.body, c.body_len, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "access_token"));
    if (t != NULL && strlen(t) < BR_RUSH_TOKEN_MAX) {
        snprintf(token, BR_RUSH_TOKEN_MAX, "%s", t);
    }
    json_decref(j);
    br_rush_call_free(&c);
    if (token[0] == '\0') {
        snprintf(why, BR_RUSH_WHY_MAX, "administrator login: no access_token in the answer");
        return BR_E_UNAVAILABLE;
    }
    return BR_OK;
}

/* ---- accounts ---- */

enum acct_step { ST_REGISTER = 0, ST_LOGIN, ST_REFRESH, ST_DONE };

struct acct {
    uint8_t step;
    uint8_t tries;
    bool inflight, in_list;
};

struct retry {
    uint32_t user;
    int64_t at_us;
};

struct prep {
    struct br_rush_net *net;
    const struct br_rush_config *cfg;
    struct br_rush_ledger *l;
    struct br_rush_prep_stats *st;
    struct acct *a;
    uint32_t *ready; /* accounts with a next step to send (a stack) */
    uint32_t ready_n;
    struct retry *retry; /* refused, waiting for their Retry-After */
    uint32_t retry_n;
    uint32_t inflight, window, done, need;
    uint32_t timeout_ms;
    bool failed;
    char why[BR_RUSH_WHY_MAX];
};

struct prep_req {
    struct prep *p;
    uint32_t user;
};

static void push_ready(struct prep *p, uint32_t u)
{
    if (!p->a[u].in_list) {
        p->a[u].in_list = true;
        p->ready[p->ready_n++] = u;
    }
}

/* A token answer (login, refresh): the user's id and tokens. */
static bool take_tokens(struct br_rush_user *u, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "access_token"));
    const char *rt = json_string_value(json_object_get(j, "refresh_token"));
    const char *exp = json_string_value(json_object_get(j, "expires_at"));
    json_int_t id = json_integer_value(json_object_get(j, "user_id"));
    bool ok = t != NULL && strlen(t) < BR_RUSH_TOKEN_MAX && id > 0;
    if (ok) {
        snprintf(u->token, sizeof u->token, "%s", t);
        snprintf(u->refresh, sizeof u->refresh, "%s", rt != NULL && strlen(rt) < BR_RUSH_TOKEN_MAX
                                                          ? rt
                                                          : "");
        u->user_id = (uint64_t)id;
        int64_t e = br_rush_parse_time_ms(exp);
        u->token_expires_wall_ms = e > 0 ? e : br_rush_wall_ms() + 3600 * 1000;
    }
    json_decref(j);
    return ok;
}

static void fail_prep(struct prep *p, uint32_t user, const char *what, const struct br_rush_resp *r)
{
    if (p->failed) {
        return;
    }
    p->failed = true;
    char code[48] = "";
    if (r->status != 0) {
        if (br_rush_error_code(r->body, r->body_len, code, sizeof code) == NULL) {
            code[0] = '\0';
        }
    }
    snprintf(p->why, sizeof p->why, "account %s: %s: %s %d %s", p->l->users[user].email, what,
             r->status != 0 ? "HTTP" : net_err_text(r->err), r->status, code);
}

static void acct_answer(void *ctx, const struct br_rush_resp *r)
{
    struct prep_req *pr = ctx;
    struct prep *p = pr->p;
    uint32_t user = pr->user;
    free(pr);
    struct acct *a = &p->a[user];
    struct br_rush_user *u = &p->l->users[user];
    a->inflight = false;
    p->inflight--;
    if (refused(r->status) || r->status == 0) {
        if (r->status == 503 || r->status == 429) {
            p->st->overloaded_retries++;
        } else {
            p->st->other_retries++;
            if (++a->tries >= PREP_TRIES_MAX) {
                fail_prep(p, user, a->step == ST_REGISTER ? "register" : "login", r);
                return;
            }
        }
        uint32_t s = r->retry_after_s == 0 ? 1 : r->retry_after_s;
        p->retry[p->retry_n++] = (struct retry){user, br_rush_now_us() + (int64_t)s * 1000000};
        return;
    }
    bool storm = user >= p->l->crowd_count;
    switch (a->step) {
    case ST_REGISTER:
        if (r->status == 201) {
            p->st->registered += !storm;
            p->st->storm_registered += storm;
            json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
            json_int_t id = json_integer_value(json_object_get(j, "user_id"));
            u->user_id = id > 0 ? (uint64_t)id : 0;
            json_decref(j);
        } else if (r->status == 409) {
            p->st->existed++; /* a rerun with the same prefix */
        } else {
            fail_prep(p, user, "register", r);
            return;
        }
        a->step = storm ? ST_DONE : ST_LOGIN;
        break;
    case ST_REFRESH:
        if (r->status == 200 && take_tokens(u, r->body, r->body_len)) {
            p->st->refreshed++;
            a->step = ST_DONE;
        } else {
            a->step = ST_LOGIN; /* the refresh token was used or revoked: log in again */
        }
        break;
    case ST_LOGIN:
        if (r->status != 200 || !take_tokens(u, r->body, r->body_len)) {
            fail_prep(p, user, "login", r);
            return;
        }
        p->st->logged_in++;
        a->step = ST_DONE;
        break;
    default:
        break;
    }
    if (a->step == ST_DONE) {
        p->done++;
    } else {
        push_ready(p, user);
    }
}

static void acct_send(struct prep *p, uint32_t user)
{
    struct acct *a = &p->a[user];
    struct br_rush_user *u = &p->l->users[user];
    char pw[BR_RUSH_PASSWORD_MAX];
    br_rush_prep_password(u->email, pw);
    json_t *b;
    const char *path;
    uint8_t route;
    if (a->step == ST_REGISTER) {
        b = json_pack("{s:s, s:s, s:s}", "email", u->email, "password", pw, "name", "Rush Buyer");
        path = "/api/v1/auth/register";
        route = BR_RR_REGISTER;
    } else if (a->step == ST_REFRESH) {
        b = json_pack("{s:s}", "refresh_token", u->refresh);
        path = "/api/v1/auth/refresh";
        route = BR_RR_REFRESH;
    } else {
        b = json_pack("{s:s, s:s}", "email", u->email, "password", pw);
        path = "/api/v1/auth/login";
        route = BR_RR_LOGIN;
    }
    memset(pw, 0, sizeof pw);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct prep_req *pr = malloc(sizeof *pr);
    if (body == NULL || pr == NULL) {
        free(body);
        free(pr);
        p->failed = true;
        snprintf(p->why, sizeof p->why, "out of memory");
        return;
    }
    *pr = (struct prep_req){p, user};
    struct br_rush_req q = {.route = route, .pool = BR_RUSH_POOL_CROWD, .target = UINT32_MAX,
                            .method = "POST", .path = path, .body = body,
                            .body_len = strlen(body), .timeout_ms = p->timeout_ms};
    if (br_rush_net_send(p->net, &q, acct_answer, pr) != BR_OK) {
        free(pr);
        push_ready(p, user); /* the pool's queue is full: later */
    } else {
        a->inflight = true;
        p->inflight++;
    }
    free(body);
}

/* The loop returns to refill when there is room and work. */
static bool prep_wants_turn(void *ctx)
{
    struct prep *p = ctx;
    return p->failed || p->done == p->need || (p->inflight < p->window && p->ready_n > 0);
}

static void prep_fill(struct prep *p)
{
    int64_t now = br_rush_now_us();
    for (uint32_t i = 0; i < p->retry_n;) {
        if (p->retry[i].at_us <= now) {
            uint32_t u = p->retry[i].user;
            p->retry[i] = p->retry[--p->retry_n];
            push_ready(p, u);
        } else {
            i++;
        }
    }
    while (!p->failed && p->inflight < p->window && p->ready_n > 0) {
        uint32_t u = p->ready[--p->ready_n];
        p->a[u].in_list = false;
        acct_send(p, u);
        if (p->a[u].in_list) {
            break; /* the net's queue is full: wait for answers */
        }
    }
}

/* Reads the users file into l->users (as many lines as fit); returns the
 * number read, 0 when the file does not exist, -1 on a damaged file. */
static long users_file_read(const char *path, struct br_rush_ledger *l, char why[BR_RUSH_WHY_MAX])
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(why, BR_RUSH_WHY_MAX, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = malloc(4096);
    long n = 0, lineno = 0;
    while (line != NULL && fgets(line, 4096, f) != NULL && (uint32_t)n < l->user_count) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL;
        char *email = strtok_r(line, "\t", &save);
        char *id = strtok_r(NULL, "\t", &save);
        char *tok = strtok_r(NULL, "\t", &save);
        char *exp = strtok_r(NULL, "\t", &save);
        char *ref = strtok_r(NULL, "\t", &save);
        struct br_rush_user *u = &l->users[n];
        if (email == NULL || id == NULL || tok == NULL || exp == NULL ||
            strlen(email) >= sizeof u->email || strlen(tok) >= sizeof u->token ||
            (ref != NULL && strlen(ref) >= sizeof u->refresh)) {
            snprintf(why, BR_RUSH_WHY_MAX, "%s:%ld: not `email id token expires_ms refresh`",
                     path, lineno);
            n = -1;
            break;
        }
        snprintf(u->email, sizeof u->email, "%s", email);
        u->user_id = strtoull(id, NULL, 10);
        snprintf(u->token, sizeof u->token, "%s", strcmp(tok, "-") == 0 ? "" : tok);
        u->token_expires_wall_ms = strtoll(exp, NULL, 10);
        snprintf(u->refresh, sizeof u->refresh, "%s",
                 ref == NULL || strcmp(ref, "-") == 0 ? "" : ref);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

static int users_file_write(const char *path, const struct br_rush_ledger *l,
                            char why[BR_RUSH_WHY_MAX])
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(why, BR_RUSH_WHY_MAX, "%.200s: %s", tmp, strerror(errno));
        return BR_E_IO;
    }
    fprintf(f, "%s\n", USERS_FILE_HEADER);
    for (uint32_t i = 0; i < l->user_count; i++) {
        const struct br_rush_user *u = &l->users[i];
        fprintf(f, "%s\t%" PRIu64 "\t%s\t%" PRId64 "\t%s\n", u->email, u->user_id,
                u->token[0] ? u->token : "-", u->token_expires_wall_ms,
                u->refresh[0] ? u->refresh : "-");
    }
    bool ok = fflush(f) == 0 && ferror(f) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(why, BR_RUSH_WHY_MAX, "%.200s: %s", path, strerror(errno));
        return BR_E_IO;
    }
    return BR_OK;
}

int br_rush_prep_accounts(struct br_rush_net *net, const struct br_rush_config *cfg,
                          struct br_rush_ledger *l, int64_t deadline_us,
                          struct br_rush_prep_stats *st, char why[BR_RUSH_WHY_MAX])
{
    memset(st, 0, sizeof *st);
    int64_t t0 = br_rush_now_us();
    struct prep p = {.net = net, .cfg = cfg, .l = l, .st = st};
    p.window = cfg->connections < PREP_WINDOW_MAX ? cfg->connections : PREP_WINDOW_MAX;
    p.window = p.window == 0 ? 1 : p.window;
    p.timeout_ms = cfg->request_timeout_ms > PREP_TIMEOUT_MIN_MS ? cfg->request_timeout_ms
                                                                 : PREP_TIMEOUT_MIN_MS;
    p.a = calloc(l->user_count + 1, sizeof *p.a);
    p.ready = calloc(l->user_count + 1, sizeof *p.ready);
    p.retry = calloc(l->user_count + 1, sizeof *p.retry);
    if (p.a == NULL || p.ready == NULL || p.retry == NULL) {
        free(p.a);
        free(p.ready);
        free(p.retry);
        snprintf(why, BR_RUSH_WHY_MAX, "out of memory for %u accounts", l->user_count);
        return BR_E_UNAVAILABLE;
    }
    long from_file = 0;
    if (cfg->users_file != NULL) {
        from_file = users_file_read(cfg->users_file, l, why);
        if (from_file < 0) {
            free(p.a);
            free(p.ready);
            free(p.retry);
            return BR_E_UNAVAILABLE;
        }
    }
    st->from_file = (uint32_t)from_file;
    /* A token must outlive the run: the crowd, the settle phase and the
     * snapshot use it. */
    int64_t need_until = br_rush_wall_ms() +
                         ((int64_t)cfg->duration_s + 60) * 1000 + (int64_t)cfg->settle_ms;
    for (uint32_t i = 0; i < l->user_count; i++) {
        struct br_rush_user *u = &l->users[i];
        bool storm = i >= l->crowd_count;
        u->storm = storm;
        u->final_queue_status = 0xff;
        if ((long)i < from_file) {
            if (storm || (u->token[0] != '\0' && u->token_expires_wall_ms > need_until)) {
                p.a[i].step = ST_DONE;
            } else {
                p.a[i].step = u->refresh[0] != '\0' ? ST_REFRESH : ST_LOGIN;
            }
        } else {
            snprintf(u->email, sizeof u->email, "%s-%s%u@rush.test", cfg->user_prefix,
                     storm ? "storm-" : "", storm ? i - l->crowd_count : i);
            p.a[i].step = storm && cfg->storm_kind == BR_RUSH_STORM_UNKNOWN ? ST_DONE : ST_REGISTER;
            if (storm && cfg->storm_kind == BR_RUSH_STORM_UNKNOWN) {
                /* No account has this email: the login costs the same hash. */
                snprintf(u->email, sizeof u->email, "%s-unknown%u@rush.test", cfg->user_prefix,
                         i - l->crowd_count);
            }
        }
        if (p.a[i].step == ST_DONE) {
            p.done++;
        }
    }
    p.need = l->user_count;
    /* In reverse, so the stack sends account 0 first. */
    for (uint32_t i = l->user_count; i-- > 0;) {
        if (p.a[i].step != ST_DONE) {
            push_ready(&p, i);
        }
    }
    while (!p.failed && p.done < p.need) {
        if (br_rush_now_us() >= deadline_us) {
            snprintf(p.why, sizeof p.why, "preparation incomplete at its deadline: %u of %u accounts",
                     p.done, p.need);
            p.failed = true;
            break;
        }
        prep_fill(&p);
        int64_t until = br_rush_now_us() + 50000;
        if (br_rush_net_run(net, until < deadline_us ? until : deadline_us, prep_wants_turn, &p) !=
            BR_OK) {
            snprintf(p.why, sizeof p.why, "the event loop failed");
            p.failed = true;
        }
    }
    /* Answers still in flight write into p: wait for them (the net's own
     * timeouts bound this). */
    while (p.inflight > 0) {
        (void)br_rush_net_run(net, br_rush_now_us() + 100000, never, NULL);
    }
    st->seconds = (double)(br_rush_now_us() - t0) / 1e6;
    int rc = BR_OK;
    if (p.failed) {
        snprintf(why, BR_RUSH_WHY_MAX, "%s", p.why);
        rc = BR_E_UNAVAILABLE;
    } else if (cfg->users_file != NULL &&
               (st->registered + st->existed + st->logged_in + st->refreshed + st->storm_registered >
                    0 ||
                st->from_file < l->user_count)) {
        rc = users_file_write(cfg->users_file, l, why) == BR_OK ? BR_OK : BR_E_UNAVAILABLE;
    }
    if (!cfg->quiet || cfg->prepare_only) {
        uint32_t work = st->registered + st->storm_registered + st->logged_in + st->refreshed;
        fprintf(stderr,
                "rush: prepared %u accounts in %.1f s (%u from file, %u registered, %u existed, %u "
                "logged in, %u refreshed; storm %u registered), %.0f requests/s; %u refused "
                "503/429 and retried\n",
                l->user_count, st->seconds, st->from_file, st->registered, st->existed,
                st->logged_in, st->refreshed, st->storm_registered,
                st->seconds > 0 ? (double)work / st->seconds : 0.0, st->overloaded_retries);
    }
    free(p.a);
    free(p.ready);
    free(p.retry);
    return rc;
}

/* ---- events ---- */

/* Fills ev from an event's JSON (render.c br_render_event). */
static bool take_event(struct br_rush_event *ev, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    json_t *zones = json_object_get(j, "zones");
    json_t *queue = json_object_get(j, "queue");
    bool ok = id > 0 && json_is_array(zones) && json_array_size(zones) >= 1 &&
              json_array_size(zones) <= BR_EVENT_ZONES_MAX;
    if (ok) {
        ev->id = (uint64_t)id;
        ev->requires_pass = json_is_true(json_object_get(j, "requires_pass"));
        ev->per_user_limit = (uint32_t)json_integer_value(json_object_get(j, "per_user_limit"));
        ev->pass_ttl_ms =
            (int64_t)(json_number_value(json_object_get(queue, "pass_ttl_s")) * 1000.0 + 0.5);
        ev->hold_ttl_ms = (int64_t)(json_number_value(json_object_get(j, "hold_ttl_s")) * 1000.0 + 0.5);
        ev->opens_at_wall_ms =
            br_rush_parse_time_ms(json_string_value(json_object_get(j, "sale_opens_at")));
        ev->zone_count = (uint32_t)json_array_size(zones);
        for (uint32_t z = 0; z < ev->zone_count; z++) {
            json_t *zj = json_array_get(zones, z);
            ev->capacity[z] = (uint32_t)json_integer_value(json_object_get(zj, "capacity"));
        }
    }
    json_decref(j);
    return ok;
}

int br_rush_prep_events(struct br_rush_net *net, const struct br_rush_config *cfg,
                        const struct br_scenario *scn, const char *admin_token,
                        struct br_rush_ledger *l, int64_t open_wall_ms, int64_t deadline_us,
                        char why[BR_RUSH_WHY_MAX])
{
    struct br_rush_call c = {0};
    if (cfg->event_id != 0) {
        char path[64];
        snprintf(path, sizeof path, "/api/v1/events/%" PRIu64, cfg->event_id);
        struct br_rush_req q = {.route = BR_RR_EVENT_GET, .pool = BR_RUSH_POOL_ADMIN,
                                .target = 0, .method = "GET", .path = path,
                                .timeout_ms = cfg->request_timeout_ms};
        int rc = br_rush_call_wait(net, &q, deadline_us, &c);
        if (rc != BR_OK || c.status != 200 || !take_event(&l->events[0], c.body, c.body_len)) {
            char what[96];
            snprintf(what, sizeof what, "event %" PRIu64, cfg->event_id);
            answer_why(why, what, &c);
            br_rush_call_free(&c);
            return BR_E_UNAVAILABLE;
        }
        l->events[0].owned = false;
        l->event_count = 1;
        br_rush_call_free(&c);
        return BR_OK;
    }
    char opens[40];
    br_report_rfc3339(opens, sizeof opens, open_wall_ms);
    l->event_count = scn->event_count;
    for (uint32_t e = 0; e < scn->event_count; e++) {
        const struct br_event_spec *s = &scn->events[e].spec;
        int64_t pass_ms = br_rush_plan_ttl_ms(s->pass_ttl_ms, cfg->time_scale, 10000);
        int64_t hold_ms = br_rush_plan_ttl_ms(s->hold_ttl_ms, cfg->time_scale, 5000);
        uint32_t people = br_scenario_event_users(scn, e);
        json_t *zones = json_array();
        for (uint32_t z = 0; z < s->zone_count; z++) {
            json_array_append_new(zones, json_pack("{s:s, s:I, s:I, s:s}", "name", s->zones[z].name,
                                                   "capacity", (json_int_t)s->zones[z].capacity,
                                                   "price_minor",
                                                   (json_int_t)s->zones[z].price_minor, "currency",
                                                   s->zones[z].currency));
        }
        /* Every join takes a queue slot for the whole sale: 1 + 3 rejoins a
         * person at most (BR_RUSH_PLACES_MAX). */
        json_t *b = json_pack(
            "{s:s, s:s, s:s, s:I, s:b, s:{s:I, s:I, s:f}, s:f, s:I, s:o}", "name", s->name,
            "venue", s->venue[0] ? s->venue : "Rush arena", "sale_opens_at", opens,
            "per_user_limit", (json_int_t)s->per_user_limit, "requires_pass", s->requires_pass,
            "queue", "max_active", (json_int_t)s->max_active, "admit_per_tick",
            (json_int_t)s->admit_per_tick, "pass_ttl_s", (double)pass_ms / 1000.0, "hold_ttl_s",
            (double)hold_ms / 1000.0, "queue_capacity",
            (json_int_t)people * BR_RUSH_PLACES_MAX + 64, "zones", zones);
        /* Issue 13: the scenario's waiting-room switches, its times fitted
         * like the TTLs (a rate per scenario minute is a rate per scaled
         * minute). pow_bits is not passed: the rush's people solve no proof
         * of work. */
        json_t *queue = json_object_get(b, "queue");
        uint32_t apm = s->admit_per_min;
        if (apm > 0 && cfg->time_scale > 0) {
            double scaled = ceil((double)apm / cfg->time_scale);
            apm = scaled > BR_ADMIT_PER_MIN_MAX ? BR_ADMIT_PER_MIN_MAX
                  : scaled < 1                 ? 1
                                               : (uint32_t)scaled;
        }
        uint32_t ttl_s = s->presence_ttl_s == 0 ? 0
                         : (uint32_t)(br_rush_plan_ttl_ms((int64_t)s->presence_ttl_s * 1000,
                                                          cfg->time_scale, 1000) /
                                      1000);
        json_object_set_new(queue, "admit_per_min", json_integer(apm));
        json_object_set_new(queue, "presence_ttl_s",
                            json_integer(ttl_s > BR_PRESENCE_TTL_S_MAX ? BR_PRESENCE_TTL_S_MAX
                                                                      : ttl_s));
        json_object_set_new(queue, "inventory_aware",
                            json_boolean((s->queue_flags & BR_QF_INVENTORY_AWARE) != 0));
        json_object_set_new(queue, "mode", json_string(br_queue_mode_name(s->mode)));
        char *body = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        if (body == NULL) {
            snprintf(why, BR_RUSH_WHY_MAX, "out of memory");
            return BR_E_UNAVAILABLE;
        }
        struct br_rush_req q = {.route = BR_RR_EVENT_CREATE, .pool = BR_RUSH_POOL_ADMIN,
                                .target = 0, .method = "POST", .path = "/api/v1/events",
                                .token = admin_token, .body = body, .body_len = strlen(body),
                                .timeout_ms = cfg->request_timeout_ms};
        int rc = br_rush_call_wait(net, &q, deadline_us, &c);
        free(body);
        if (rc != BR_OK || c.status != 201 || !take_event(&l->events[e], c.body, c.body_len)) {
            char what[160];
            snprintf(what, sizeof what, "creating event %u (%s)", e, s->name);
            answer_why(why, what, &c);
            br_rush_call_free(&c);
            return BR_E_UNAVAILABLE;
        }
        l->events[e].owned = true;
    }
    br_rush_call_free(&c);
    return BR_OK;
}

int br_rush_prep_stats_read(struct br_rush_net *net, const char *admin_token, uint64_t event_id,
                            uint32_t *queue_length, uint32_t *admitted, int64_t deadline_us,
                            char why[BR_RUSH_WHY_MAX])
{
    char path[80];
    snprintf(path, sizeof path, "/api/v1/admin/events/%" PRIu64 "/stats", event_id);
    struct br_rush_req q = {.route = BR_RR_STATS, .pool = BR_RUSH_POOL_ADMIN, .target = 0,
                            .method = "GET", .path = path, .token = admin_token,
                            .timeout_ms = 10000};
    struct br_rush_call c = {0};
    int rc = br_rush_call_wait(net, &q, deadline_us, &c);
    if (rc != BR_OK || c.status != 200) {
        char what[96];
        snprintf(what, sizeof what, "stats of event %" PRIu64, event_id);
        answer_why(why, what, &c);
        br_rush_call_free(&c);
        return BR_E_UNAVAILABLE;
    }
    json_t *j = json_loadb(c.body, c.body_len, 0, NULL);
    *queue_length = (uint32_t)json_integer_value(json_object_get(j, "queue_length"));
    *admitted = (uint32_t)json_integer_value(json_object_get(j, "admitted"));
    json_decref(j);
    br_rush_call_free(&c);
    return BR_OK;
}
