/*
 * rush_crowd.c -- the crowd's per-user state machine over rush_net (the
 * diagram and the ledger's meaning are in rush_crowd.h).
 *
 * Everything runs on the net's one loop: answers, stream events and timers
 * call back into here and each callback moves one user (or one of its tabs)
 * a step and sends what comes next. No allocation after br_rush_crowd_start;
 * a user's requests live in its own slots (a main one a tab, a second-click
 * one a tab, one side slot for a leave or a reuse probe), so a callback's
 * ctx stays valid until that request's final answer, resends included.
 *
 * Bounds: each request is resent at most BR_RUSH_RETRIES_MAX times (storm
 * logins BR_RUSH_STORM_RETRIES_MAX), each stream reopened at most
 * BR_RUSH_RECONNECTS_MAX times, places at most BR_RUSH_PLACES_MAX (rejoins
 * capped at 3), reserves and payment creates by the scenario's budgets. The
 * crowd's stop ends every user at once; answers still in flight are
 * recorded in the ledger and start nothing.
 *
 * Limits: bodies are scanned for the few keys used, not parsed as JSON
 * (the answers are our server's: flat keys, no escapes in the values read).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/panic.h"
#include "core/limits.h"
#include "core/rng.h"
#include "server/rush_crowd.h"

enum ustate {
    US_IDLE = 0,     /* not arrived yet */
    US_JOINING,      /* joins sent, none answered */
    US_WAITING,      /* in the queue, streams open */
    US_ADMITTED,     /* pass in hand, thinking before the reserve */
    US_RESERVING,    /* a reserve round in flight */
    US_HELD,         /* thinking before paying or cancelling */
    US_PAYING,       /* payment create in flight, then thinking before the confirm */
    US_CONFIRMING,   /* confirm in flight */
    US_CANCELLING,   /* cancel in flight */
    US_REJOINING,    /* waiting to queue again */
    US_LEAVING,      /* leave sent, streams still open until it is answered (+ LEAVE_LISTEN_US) */
    US_DONE          /* terminal */
};

/* A leaver listens this long after the leave's answer (a browser's page stays
 * open while its DELETE is out): a pass the admitter issued before the leave
 * was applied is on its way down the stream. LEAVE_WAIT_US bounds the whole. */
#define LEAVE_LISTEN_US 500000
#define LEAVE_WAIT_US 10000000

enum kind { K_JOIN = 0, K_LEAVE, K_RESERVE, K_PROBE, K_PAY, K_CONFIRM, K_CANCEL, K_LOGIN };

enum slot { SL_ACT = 0, SL_PATIENCE = 1, SL_DCLICK = 2, SL_TAB0 = 3 };

enum tab_timer { TW_NONE = 0, TW_RECONNECT, TW_DROP, TW_RESEND };

struct creq {                    /* one request of one user; resends reuse it */
    struct br_rush_crowd *c;
    uint32_t user;
    uint8_t tab, kind, tries, place; /* place: the ledger place it belongs to */
    bool second, busy, visa;     /* second click; sent and not finally answered; confirm card */
    bool resend_wait;            /* answered 429/503/nothing: its resend is on a timer */
    uint8_t dup;                 /* ledger dup index, 0xff = none */
    uint8_t zone, qty;           /* reserve */
    char key[48], path[128], body[256];
};

struct ctab {                    /* one tab of a user: its join and its stream */
    struct br_rush_crowd *c;
    uint32_t user;
    uint8_t tab, timer_what;     /* enum tab_timer armed on this tab's slot */
    bool joined, streaming, reconnected, dropped, ended;
    uint8_t reconnects, last_status; /* queue status of the last position frame */
    uint32_t stream;
    int16_t rstatus;             /* the tab's reserve answer in the current round */
    char rcode[40];
};

struct cuser {
    struct br_rush_plan plan;
    uint8_t state, tabs, rejoins, place, booking, sold_mask, qty, zone;
    uint8_t round_pending, pays, bought;
    bool round_won, caught, retried_decline, probed, waiting_counted, patience_armed;
    uint16_t reserves;
    uint32_t key_seq;
    uint64_t payment_id;
    char ppid[64], secret[128];
    struct creq *dclick;         /* second click waiting for its timer */
    struct ctab *tab;            /* tabs */
    struct creq *rq;             /* tabs x 2 (main, second) + 1 side */
};

struct br_rush_crowd {
    const struct br_rush_config *cfg;
    const struct br_scenario *scn;
    struct br_rush_ledger *l;
    struct br_rush_net *net;
    struct br_rush_meter *meter;
    br_rush_password_fn password;
    struct cuser *u;
    uint64_t seed;
    double scale_us_per_ms;
    int64_t t0_us, open_us;
    bool started, stopped;
    uint32_t inflight, done;
    struct br_rush_progress prog;
    uint32_t storm_left;
    int64_t storm_first_us, storm_last_us;
    char stream_path[BR_RUSH_EVENTS_MAX][80];
};

static void user_end(struct br_rush_crowd *c, uint32_t u);
static void rejoin_or_end(struct br_rush_crowd *c, uint32_t u);
static void rejoin_if(struct br_rush_crowd *c, uint32_t u, bool wants);
static void send_req(struct br_rush_crowd *c, struct creq *q);
static void on_resp(void *ctx, const struct br_rush_resp *r);

/* ---- small helpers ---- */

static struct cuser *U(struct br_rush_crowd *c, uint32_t u)
{
    return &c->u[u];
}

static struct br_rush_user *LU(struct br_rush_crowd *c, uint32_t u)
{
    return &c->l->users[u];
}

static const struct br_rush_event *EV(struct br_rush_crowd *c, uint32_t u)
{
    uint32_t ei = c->l->users[u].event_ix;
    return &c->l->events[ei < c->l->event_count ? ei : 0];
}

static uint32_t timer_id(uint32_t u, uint32_t slot)
{
    return u * BR_RUSH_CROWD_TIMER_SLOTS + slot;
}

static void timer_at(struct br_rush_crowd *c, uint32_t u, uint32_t slot, int64_t at_us)
{
    br_rush_net_timer_set(c->net, timer_id(u, slot), at_us);
}

static struct creq *main_rq(struct cuser *cu, uint32_t tab)
{
    return &cu->rq[tab * 2];
}

static struct creq *second_rq(struct cuser *cu, uint32_t tab)
{
    return &cu->rq[tab * 2 + 1];
}

static struct creq *side_rq(struct cuser *cu)
{
    return &cu->rq[cu->tabs * 2];
}

/* The string value of "key" in a flat JSON text: true and out set (truncated to cap). */
static bool scan_str(const char *s, const char *key, char *out, size_t cap)
{
    char pat[48];
    int n = snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = n > 0 ? strstr(s, pat) : NULL;
    if (p == NULL) {
        return false;
    }
    p += n;
    while (*p == ' ' || *p == ':') {
        p++;
    }
    if (*p != '"') {
        return false;
    }
    p++;
    size_t i = 0;
    while (p[i] != '\0' && p[i] != '"' && i + 1 < cap) {
        out[i] = p[i];
        i++;
    }
    out[i] = '\0';
    return p[i] == '"';
}

static uint64_t scan_u64(const char *s, const char *key)
{
    char pat[48];
    int n = snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = n > 0 ? strstr(s, pat) : NULL;
    if (p == NULL) {
        return 0;
    }
    p += n;
    while (*p == ' ' || *p == ':') {
        p++;
    }
    return strtoull(p, NULL, 10);
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS[.fff]Z" (render.c br_time_format) in ms; -1 when not that. */
static int64_t time_ms(const char *s)
{
    int64_t f[6] = {0};
    static const int at[6] = {0, 5, 8, 11, 14, 17}, width[6] = {4, 2, 2, 2, 2, 2};
    if (strlen(s) < 20) {
        return -1;
    }
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < width[i]; k++) {
            char ch = s[at[i] + k];
            if (ch < '0' || ch > '9') {
                return -1;
            }
            f[i] = f[i] * 10 + (ch - '0');
        }
    }
    int64_t ms = 0;
    const char *p = s + 19;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 3) {
                ms = ms * 10 + (*p - '0');
            }
        }
        for (; digits < 3; digits++) {
            ms *= 10;
        }
    }
    if (*p != 'Z') {
        return -1;
    }
    int64_t days = days_from_civil(f[0], f[1], f[2]);
    return ((days * 24 + f[3]) * 60 + f[4]) * 60000 + f[5] * 1000 + ms;
}

/* The 4th dot-separated field of "p1.<event>.<user>.<pass_id>.<expires_ms>.<mac>"; 0 if none. */
static uint64_t token_pass_id(const char *t)
{
    for (int dots = 0; *t != '\0'; t++) {
        if (*t == '.' && ++dots == 3) {
            return strtoull(t + 1, NULL, 10);
        }
    }
    return 0;
}

static uint8_t queue_status_of(const char *s)
{
    static const char *const names[] = {"none", "prequeue", "waiting", "admitted",
                                        "used", "expired",  "left"};
    for (uint8_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return BR_QS_NONE;
}

static uint8_t hold_state_of(const char *s)
{
    static const char *const names[] = {"none", "held", "confirmed", "expired", "cancelled",
                                        "refunded"};
    for (uint8_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return BR_HOLD_NONE;
}

/* ---- requests ---- */

static void req_prepare(struct br_rush_crowd *c, struct creq *q, uint32_t u, uint8_t tab,
                        uint8_t kind)
{
    BR_ASSERT(!q->busy);
    q->c = c;
    q->user = u;
    q->tab = tab;
    q->kind = kind;
    q->tries = 0;
    q->second = false;
    q->visa = false;
    q->dup = 0xff;
    q->key[0] = q->path[0] = q->body[0] = '\0';
    q->place = U(c, u)->place;
}

static void new_key(struct br_rush_crowd *c, uint32_t u, struct creq *q)
{
    snprintf(q->key, sizeof q->key, "rush-%" PRIu64 "-%" PRIu32 "-%" PRIu32, c->seed, u,
             ++U(c, u)->key_seq);
}

static uint8_t route_of(uint8_t kind)
{
    static const uint8_t routes[] = {
        [K_JOIN] = BR_RR_JOIN,       [K_LEAVE] = BR_RR_LEAVE,     [K_RESERVE] = BR_RR_RESERVE,
        [K_PROBE] = BR_RR_RESERVE,   [K_PAY] = BR_RR_PAYMENT,     [K_CONFIRM] = BR_RR_CONFIRM,
        [K_CANCEL] = BR_RR_CANCEL,   [K_LOGIN] = BR_RR_LOGIN};
    return routes[kind];
}

static const char *method_of(uint8_t kind)
{
    return kind == K_LEAVE ? "DELETE" : "POST";
}

/* Sends q (first time or a resend). A refused send is answered as a failure right away. */
static void send_req(struct br_rush_crowd *c, struct creq *q)
{
    if (!q->busy) {
        q->busy = true;
        c->inflight++;
    }
    q->resend_wait = false;
    struct br_rush_user *lu = LU(c, q->user);
    struct br_rush_req r = {
        .route = route_of(q->kind),
        .pool = q->kind == K_LOGIN ? BR_RUSH_POOL_STORM : BR_RUSH_POOL_CROWD,
        .target = UINT32_MAX,
        .method = method_of(q->kind),
        .path = q->path,
        .token = q->kind == K_LOGIN || q->kind == K_CONFIRM ? NULL : lu->token,
        .idem_key = q->key[0] != '\0' ? q->key : NULL,
        .pass = NULL,
        .content_type = NULL,
        .body = q->body[0] != '\0' ? q->body : NULL,
        .body_len = strlen(q->body),
        .timeout_ms = c->cfg->request_timeout_ms > 0 ? c->cfg->request_timeout_ms : 10000,
    };
    if (q->kind == K_RESERVE || q->kind == K_PROBE) {
        const struct br_rush_place *pl = &lu->places[q->place];
        r.pass = pl->pass[0] != '\0' ? pl->pass : NULL;
    }
    if (br_rush_net_send(c->net, &r, on_resp, q) != BR_OK) {
        struct br_rush_resp fail = {.status = 0, .err = BR_RUSH_NET_CLOSED, .body = "",
                                    .route = r.route};
        on_resp(q, &fail);
    }
}

static void req_finish(struct br_rush_crowd *c, struct creq *q)
{
    if (q->busy) {
        q->busy = false;
        BR_ASSERT(c->inflight > 0);
        c->inflight--;
    }
}

/* A second click of q, dclick_gap_us later, from the tab's second slot. */
static void dclick_arm(struct br_rush_crowd *c, uint32_t u, struct creq *q)
{
    struct cuser *cu = U(c, u);
    struct br_rush_user *lu = LU(c, u);
    if (!cu->plan.double_click || c->stopped) {
        return;
    }
    if (cu->dclick != NULL) {
        struct creq *pending = cu->dclick; /* one waits at a time: the older one goes now */
        cu->dclick = NULL;
        send_req(c, pending);
    }
    struct creq *s = second_rq(cu, q->tab);
    if (s->busy) {
        return;
    }
    *s = *q;
    s->busy = false;
    s->second = true;
    s->tries = 0;
    s->dup = 0xff;
    /* Kept for the IDEMPOTENCY check: the join (keeps the place) and the reserve (one key). A second
     * payment create or cancel is sent but not kept: the server gives them no key, and once the
     * booking moved on (confirmed, cancelled) the second one is rightly answered 409. */
    if ((q->kind == K_JOIN || q->kind == K_RESERVE) && lu->dup_count < BR_RUSH_DUPS_MAX) {
        uint8_t d = lu->dup_count++;
        lu->dups[d] = (struct br_rush_dup){.route = route_of(q->kind)};
        s->dup = d;
        q->dup = d; /* the first click's answer goes to the same pair */
    }
    s->busy = true;
    c->inflight++;
    cu->dclick = s;
    timer_at(c, u, SL_DCLICK, br_rush_now_us() + cu->plan.dclick_gap_us);
}

/* The second click waiting for its timer, if any, is never sent: its dup keeps status 0
 * (the IDEMPOTENCY check skips the pair). */
static void dclick_drop(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    if (cu->dclick != NULL) {
        req_finish(c, cu->dclick);
        cu->dclick = NULL;
    }
    br_rush_net_timer_cancel(c->net, timer_id(u, SL_DCLICK));
}

static void dup_record(struct br_rush_crowd *c, const struct creq *q, int status, uint64_t id)
{
    struct br_rush_user *lu = LU(c, q->user);
    if (q->dup == 0xff || q->dup >= lu->dup_count) {
        return;
    }
    struct br_rush_answer a = {.status = (int16_t)status, .id = id};
    if (q->second) {
        lu->dups[q->dup].second = a;
    } else {
        lu->dups[q->dup].first = a;
    }
}

/* ---- the queue ---- */

static void stream_close_tab(struct br_rush_crowd *c, struct ctab *t)
{
    if (t->streaming) {
        br_rush_net_stream_close(c->net, t->stream);
        t->streaming = false;
    }
    if (t->timer_what == TW_RECONNECT || t->timer_what == TW_DROP) {
        br_rush_net_timer_cancel(c->net, timer_id(t->user, SL_TAB0 + t->tab));
        t->timer_what = TW_NONE;
    }
}

static void streams_close(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    for (uint32_t t = 0; t < cu->tabs; t++) {
        stream_close_tab(c, &cu->tab[t]);
    }
}

static void waiting_off(struct br_rush_crowd *c, struct cuser *cu)
{
    if (cu->waiting_counted) {
        cu->waiting_counted = false;
        c->prog.waiting--;
    }
}

static void send_join(struct br_rush_crowd *c, uint32_t u, uint32_t tab)
{
    struct cuser *cu = U(c, u);
    struct creq *q = main_rq(cu, tab);
    if (q->busy) {
        return;
    }
    req_prepare(c, q, u, (uint8_t)tab, K_JOIN);
    snprintf(q->path, sizeof q->path, "/api/v1/queue/join");
    snprintf(q->body, sizeof q->body, "{\"event_id\":%" PRIu64 "}", EV(c, u)->id);
    send_req(c, q);
    if (tab == 0) {
        dclick_arm(c, u, q);
    }
}

/* A new place: every tab joins (they share it). */
static void place_new(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    struct br_rush_user *lu = LU(c, u);
    if (lu->place_count >= BR_RUSH_PLACES_MAX) {
        user_end(c, u);
        return;
    }
    cu->place = lu->place_count++;
    memset(&lu->places[cu->place], 0, sizeof lu->places[cu->place]);
    cu->state = US_JOINING;
    cu->patience_armed = false;
    cu->sold_mask = 0;
    cu->zone = cu->plan.zone_id;
    for (uint32_t t = 0; t < cu->tabs; t++) {
        struct ctab *tb = &cu->tab[t];
        tb->joined = tb->reconnected = tb->dropped = tb->ended = false;
        tb->reconnects = 0;
        tb->last_status = BR_QS_NONE;
        send_join(c, u, t);
    }
}

static void stream_open(struct br_rush_crowd *c, uint32_t u, uint32_t tab);

static bool has_pass(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    return LU(c, u)->places[cu->place].pass_id != 0;
}

/* A join was written at r->sent_us: the place exists from then at the latest (resends and lost
 * answers included, so a place's join_sent_us is never later than the server's join). */
static void join_sent(struct br_rush_crowd *c, const struct creq *q, const struct br_rush_resp *r)
{
    struct br_rush_place *pl = &LU(c, q->user)->places[q->place];
    if (r->sent_us > 0 && (pl->join_sent_us == 0 || r->sent_us < pl->join_sent_us)) {
        pl->join_sent_us = r->sent_us;
    }
}

static void on_join(struct br_rush_crowd *c, struct creq *q, const struct br_rush_resp *r)
{
    uint32_t u = q->user;
    struct cuser *cu = U(c, u);
    struct br_rush_place *pl = &LU(c, u)->places[q->place];
    join_sent(c, q, r);
    char st[16] = "";
    if (r->status == 200 && scan_str(r->body, "status", st, sizeof st) &&
        (pl->join_recv_us == 0 || r->done_us < pl->join_recv_us)) {
        pl->join_recv_us = r->done_us;
        pl->join_status = queue_status_of(st);
    }
    dup_record(c, q, r->status, 0);
    if (q->second || q->place != cu->place || c->stopped ||
        (cu->state != US_JOINING && cu->state != US_WAITING)) {
        return;
    }
    struct ctab *tb = &cu->tab[q->tab];
    if (r->status != 200) {
        tb->ended = true;
        for (uint32_t t = 0; t < cu->tabs; t++) {
            if (!cu->tab[t].ended) {
                return;
            }
        }
        user_end(c, u); /* no tab got into the queue */
        return;
    }
    tb->joined = true;
    if (cu->state == US_JOINING) {
        cu->state = US_WAITING;
        cu->waiting_counted = true;
        c->prog.waiting++;
    }
    if (cu->plan.patience_us > 0 && !cu->patience_armed) {
        cu->patience_armed = true;
        timer_at(c, u, SL_PATIENCE, br_rush_now_us() + cu->plan.patience_us);
    }
    if (!has_pass(c, u)) {
        stream_open(c, u, q->tab);
    }
}

static void stream_cut(struct br_rush_crowd *c, uint32_t u, struct ctab *tb);
static void on_stream(void *ctx, uint32_t stream, int kind, int status,
                      const struct br_rush_sse_event *ev);

static void stream_open(struct br_rush_crowd *c, uint32_t u, uint32_t tab)
{
    struct cuser *cu = U(c, u);
    struct ctab *tb = &cu->tab[tab];
    if (tb->streaming || c->stopped) {
        return;
    }
    uint32_t idle = c->cfg->stream_idle_ms > 0 ? c->cfg->stream_idle_ms : 45000;
    uint32_t ei = LU(c, u)->event_ix < c->l->event_count ? LU(c, u)->event_ix : 0;
    if (br_rush_net_stream_open(c->net, UINT32_MAX, c->stream_path[ei], LU(c, u)->token, NULL, idle,
                                on_stream, tb, &tb->stream) != BR_OK) {
        stream_cut(c, u, tb);
        return;
    }
    tb->streaming = true;
}

/* The tab's stream is gone without a pass: reopen it (budget), else the tab is lost. */
static void stream_cut(struct br_rush_crowd *c, uint32_t u, struct ctab *tb)
{
    struct cuser *cu = U(c, u);
    tb->streaming = false;
    if (cu->state != US_WAITING || c->stopped) {
        return;
    }
    if (tb->reconnects < BR_RUSH_RECONNECTS_MAX) {
        tb->reconnects++;
        tb->timer_what = TW_RECONNECT;
        timer_at(c, u, SL_TAB0 + tb->tab, br_rush_now_us() + (int64_t)BR_RUSH_RECONNECT_MS * 1000);
        return;
    }
    tb->ended = true;
    for (uint32_t t = 0; t < cu->tabs; t++) {
        if (!cu->tab[t].ended) {
            return;
        }
    }
    LU(c, u)->places[cu->place].stream_kept = false;
    c->l->streams_lost++;
    user_end(c, u);
}

static void admitted(struct br_rush_crowd *c, uint32_t u);

static void on_pass(struct br_rush_crowd *c, uint32_t u, struct ctab *tb, const char *data)
{
    struct cuser *cu = U(c, u);
    struct br_rush_place *pl = &LU(c, u)->places[cu->place];
    if (tb->streaming) {
        br_rush_net_stream_close(c->net, tb->stream); /* done with it (the server ends it too) */
        tb->streaming = false;
    }
    if (pl->pass_id != 0 || (cu->state != US_WAITING && cu->state != US_LEAVING)) {
        return;
    }
    char token[BR_RUSH_PASS_MAX];
    char exp[40];
    if (!scan_str(data, "token", token, sizeof token) || !scan_str(data, "expires_at", exp, sizeof exp)) {
        stream_cut(c, u, tb);
        return;
    }
    int64_t expires_ms = time_ms(exp);
    memcpy(pl->pass, token, sizeof pl->pass);
    pl->pass_id = token_pass_id(token); /* 0 when the layout is not ours: pass_via still says received,
                                           * and the verdict orders by issued_ms (design §10 R5) */
    pl->pass_issued_ms = expires_ms > 0 ? expires_ms - EV(c, u)->pass_ttl_ms : 0;
    pl->pass_recv_wall_ms = br_rush_wall_ms();
    pl->pass_via = tb->reconnected ? 2 : 1;
    pl->stream_kept = true;
    br_rush_meter_pass(c->meter, pl->pass_recv_wall_ms - pl->pass_issued_ms, tb->reconnected);
    c->prog.admitted++;
    if (cu->state == US_LEAVING) {
        streams_close(c, u); /* delivered as the user left: received, not used */
        return;
    }
    admitted(c, u);
}

static void on_stream(void *ctx, uint32_t stream, int kind, int status,
                      const struct br_rush_sse_event *ev)
{
    struct ctab *tb = ctx;
    struct br_rush_crowd *c = tb->c;
    uint32_t u = tb->user;
    if (!tb->streaming || stream != tb->stream) {
        return;
    }
    struct cuser *cu = U(c, u);
    if (kind == BR_RUSH_STREAM_OPEN) {
        if (status != 200) {
            br_rush_net_stream_close(c->net, stream);
            stream_cut(c, u, tb);
            return;
        }
        LU(c, u)->places[cu->place].stream_kept = true;
        if (cu->plan.drop_stream_after_us > 0 && !tb->dropped && tb->timer_what == TW_NONE) {
            tb->timer_what = TW_DROP;
            timer_at(c, u, SL_TAB0 + tb->tab, br_rush_now_us() + cu->plan.drop_stream_after_us);
        }
        return;
    }
    if (kind == BR_RUSH_STREAM_EVENT && ev != NULL && ev->event != NULL) {
        char data[BR_RUSH_SSE_DATA_MAX + 1];
        size_t n = ev->data_len < BR_RUSH_SSE_DATA_MAX ? ev->data_len : BR_RUSH_SSE_DATA_MAX;
        memcpy(data, ev->data, n);
        data[n] = '\0';
        if (strcmp(ev->event, "pass") == 0) {
            on_pass(c, u, tb, data);
            return;
        }
        char st[16];
        if (strcmp(ev->event, "position") == 0 && scan_str(data, "status", st, sizeof st)) {
            tb->last_status = queue_status_of(st);
        }
        return;
    }
    if (kind == BR_RUSH_STREAM_END) {
        /* The server ended it without a pass: the user is not waiting any more
         * (expired, left, used). Only this tab: the others see the same. */
        tb->streaming = false;
        tb->ended = true;
        if (cu->state != US_WAITING && cu->state != US_LEAVING) {
            return;
        }
        if (tb->last_status != BR_QS_NONE) {
            LU(c, u)->places[cu->place].end_status = tb->last_status; /* the verdict's evidence */
        }
        for (uint32_t t = 0; t < cu->tabs; t++) {
            if (!cu->tab[t].ended) {
                return;
            }
        }
        if (cu->state == US_LEAVING) {
            return; /* the leave's answer (or its timer) ends the user */
        }
        waiting_off(c, cu);
        br_rush_net_timer_cancel(c->net, timer_id(u, SL_PATIENCE));
        rejoin_or_end(c, u);
        return;
    }
    stream_cut(c, u, tb); /* BR_RUSH_STREAM_CUT */
}

/* ---- admitted: reserve ---- */

static void admitted(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    waiting_off(c, cu);
    br_rush_net_timer_cancel(c->net, timer_id(u, SL_PATIENCE));
    streams_close(c, u); /* the other tabs: the pass is shared */
    if (cu->plan.admitted_abandon) {
        user_end(c, u); /* never comes back: the pass lapses */
        return;
    }
    cu->state = US_ADMITTED;
    cu->round_won = false;
    cu->zone = cu->plan.zone_id;
    cu->sold_mask = 0;
    timer_at(c, u, SL_ACT, br_rush_now_us() + cu->plan.think_us[0]);
}

static void send_reserve(struct br_rush_crowd *c, uint32_t u, uint32_t tab, uint8_t zone,
                         uint8_t kind)
{
    struct cuser *cu = U(c, u);
    struct creq *q = kind == K_PROBE ? side_rq(cu) : main_rq(cu, tab);
    if (q->busy) {
        return;
    }
    req_prepare(c, q, u, (uint8_t)tab, kind);
    new_key(c, u, q);
    q->zone = zone;
    q->qty = kind == K_PROBE ? 1 : cu->qty;
    snprintf(q->path, sizeof q->path, "/api/v1/bookings/reserve");
    snprintf(q->body, sizeof q->body, "{\"event_id\":%" PRIu64 ",\"zone_id\":%u,\"quantity\":%u}",
             EV(c, u)->id, (unsigned)q->zone, (unsigned)q->qty);
    cu->reserves++;
    if (kind == K_RESERVE) {
        cu->round_pending++;
        cu->tab[tab].rstatus = 0;
        cu->tab[tab].rcode[0] = '\0';
    }
    send_req(c, q);
    if (tab == 0 && kind == K_RESERVE) {
        dclick_arm(c, u, q);
    }
}

/* A reserve round: every tab at once on the first round after a pass (each its own key, the same
 * pass), tab 0 alone on the later ones (another zone, a smaller quantity). */
static void reserve_round(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    const struct br_rush_event *ev = EV(c, u);
    uint32_t budget = c->scn->crowd.reserve_attempts_max;
    if (cu->reserves >= budget) {
        user_end(c, u);
        return;
    }
    bool first = cu->state == US_ADMITTED && cu->sold_mask == 0 && !cu->caught;
    cu->state = US_RESERVING;
    cu->round_pending = 0;
    uint32_t zones = ev->zone_count > 0 ? ev->zone_count : 1;
    uint32_t tabs = first ? cu->tabs : 1;
    for (uint32_t t = 0; t < tabs && cu->reserves < budget; t++) {
        uint8_t z = (uint8_t)((cu->zone - 1u + t) % zones + 1u);
        send_reserve(c, u, t, z, K_RESERVE);
    }
    if (cu->round_pending == 0) {
        user_end(c, u);
    }
}

static void booking_add(struct br_rush_crowd *c, const struct creq *q, const struct br_rush_resp *r,
                        uint64_t id)
{
    struct br_rush_user *lu = LU(c, q->user);
    for (uint32_t i = 0; i < lu->booking_count; i++) {
        if (lu->bookings[i].id == id) {
            return;
        }
    }
    if (q->qty > EV(c, q->user)->per_user_limit) {
        lu->over_limit_201++;
    }
    if (lu->booking_count >= BR_RUSH_BOOKINGS_MAX) {
        return;
    }
    struct br_rush_booking *b = &lu->bookings[lu->booking_count++];
    *b = (struct br_rush_booking){.id = id, .place = q->place, .zone_id = q->zone,
                                  .quantity = q->qty, .last_status = BR_HOLD_HELD};
    char st[16];
    char exp[40];
    if (scan_str(r->body, "status", st, sizeof st)) {
        b->last_status = hold_state_of(st);
    }
    if (scan_str(r->body, "expires_at", exp, sizeof exp)) {
        b->expires_at_ms = time_ms(exp);
    }
}

static int booking_ix(struct br_rush_crowd *c, uint32_t u, uint64_t id)
{
    struct br_rush_user *lu = LU(c, u);
    for (uint32_t i = 0; i < lu->booking_count; i++) {
        if (lu->bookings[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

static void held(struct br_rush_crowd *c, uint32_t u);
static void reserve_refused(struct br_rush_crowd *c, uint32_t u);

static void on_reserve(struct br_rush_crowd *c, struct creq *q, const struct br_rush_resp *r)
{
    uint32_t u = q->user;
    struct cuser *cu = U(c, u);
    uint64_t id = r->status == 201 ? scan_u64(r->body, "id") : 0;
    if (id != 0) {
        booking_add(c, q, r, id);
    }
    dup_record(c, q, r->status, id);
    if (q->second || q->kind == K_PROBE) {
        return;
    }
    struct ctab *tb = &cu->tab[q->tab];
    tb->rstatus = (int16_t)r->status;
    if (r->status >= 400) {
        (void)scan_str(r->body, "code", tb->rcode, sizeof tb->rcode);
    }
    if (cu->state != US_RESERVING) {
        return; /* stopped meanwhile */
    }
    BR_ASSERT(cu->round_pending > 0);
    cu->round_pending--;
    int ix = id != 0 ? booking_ix(c, u, id) : -1;
    if (ix >= 0 && !cu->round_won) {
        cu->round_won = true;
        cu->booking = (uint8_t)ix;
    }
    if (cu->round_pending > 0) {
        return;
    }
    if (cu->round_won) {
        held(c, u);
    } else {
        reserve_refused(c, u);
    }
}

/* Another zone not seen sold out, after zone; 0 = none. */
static uint8_t zone_next(const struct cuser *cu, uint32_t zones)
{
    for (uint32_t k = 1; k <= zones; k++) {
        uint32_t z = (cu->zone - 1u + k) % zones + 1u;
        if ((cu->sold_mask & (1u << (z - 1))) == 0) {
            return (uint8_t)z;
        }
    }
    return 0;
}

/* No tab got a 201: act on the most telling answer (tab 0's, unless it is PASS_INVALID while
 * another tab says why). */
static void reserve_refused(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    const struct ctab *why = &cu->tab[0];
    for (uint32_t t = 1; t < cu->tabs && strcmp(why->rcode, "PASS_INVALID") == 0; t++) {
        if (cu->tab[t].rstatus != 0 && strcmp(cu->tab[t].rcode, "PASS_INVALID") != 0) {
            why = &cu->tab[t];
        }
    }
    const struct br_rush_event *ev = EV(c, u);
    int64_t now = br_rush_now_us();
    if (strcmp(why->rcode, "SOLD_OUT") == 0) {
        cu->sold_mask |= (uint8_t)(1u << (cu->zone - 1));
        uint8_t z = zone_next(cu, ev->zone_count > 0 ? ev->zone_count : 1);
        if (z != 0) {
            cu->zone = z;
            cu->state = US_ADMITTED;
            timer_at(c, u, SL_ACT, now + cu->plan.think_us[0]);
            return;
        }
        /* rA (integration fix): the pass is still live and unused, so a join now keeps this
         * place and the same pass (queue.h: a join while admitted keeps the place); a "new"
         * place would record the old pass again (passes received > admissions, and its latency
         * measured from the old issue time). Every zone sold out: done. */
        user_end(c, u);
    } else if (strcmp(why->rcode, "LIMIT_EXCEEDED") == 0 && cu->plan.greedy && !cu->caught) {
        cu->caught = true; /* asks for what the limit allows */
        uint32_t limit = ev->per_user_limit;
        cu->qty = (uint8_t)(limit > cu->bought ? limit - cu->bought : 1);
        cu->state = US_ADMITTED;
        timer_at(c, u, SL_ACT, now + cu->plan.think_us[0]);
    } else if (strcmp(why->rcode, "SALE_NOT_OPEN") == 0) {
        cu->state = US_ADMITTED;
        timer_at(c, u, SL_ACT, now + 1000000);
    } else if (why->rstatus == 403) {
        rejoin_or_end(c, u); /* PASS_EXPIRED, PASS_INVALID, PASS_REQUIRED */
    } else {
        user_end(c, u);
    }
}

/* Queue again (a new place) if this user does that and the budgets allow, else done. */
static void rejoin_or_end(struct br_rush_crowd *c, uint32_t u)
{
    rejoin_if(c, u, U(c, u)->plan.rejoin);
}

static void rejoin_if(struct br_rush_crowd *c, uint32_t u, bool wants)
{
    struct cuser *cu = U(c, u);
    const struct br_scn_crowd *sc = &c->scn->crowd;
    uint32_t rejoins_max = sc->rejoins_max < 3 ? sc->rejoins_max : 3;
    if (!c->stopped && wants && cu->rejoins < rejoins_max &&
        LU(c, u)->place_count < BR_RUSH_PLACES_MAX && cu->reserves < sc->reserve_attempts_max &&
        EV(c, u)->requires_pass) {
        cu->rejoins++;
        streams_close(c, u);
        waiting_off(c, cu);
        cu->state = US_REJOINING;
        timer_at(c, u, SL_ACT, br_rush_now_us() + cu->plan.think_us[0]);
        return;
    }
    user_end(c, u);
}

/* ---- held: pay, cancel, abandon ---- */

static void held(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    c->prog.held++;
    cu->retried_decline = false;
    if (cu->plan.reuse_probe && !cu->probed && EV(c, u)->requires_pass) {
        cu->probed = true; /* the used pass once more: expects 403 PASS_INVALID */
        send_reserve(c, u, 0, cu->zone, K_PROBE);
    }
    if (cu->plan.abandon_hold) {
        user_end(c, u); /* walks away: the hold lapses */
        return;
    }
    cu->state = US_HELD;
    timer_at(c, u, SL_ACT, br_rush_now_us() + cu->plan.think_us[cu->plan.cancel ? 3 : 1]);
}

static struct br_rush_booking *cur_booking(struct br_rush_crowd *c, uint32_t u)
{
    return &LU(c, u)->bookings[U(c, u)->booking];
}

static void send_cancel(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    struct creq *q = main_rq(cu, 0);
    struct br_rush_booking *b = cur_booking(c, u);
    req_prepare(c, q, u, 0, K_CANCEL);
    snprintf(q->path, sizeof q->path, "/api/v1/bookings/%" PRIu64 "/cancel", b->id);
    b->cancelled_by_us = true;
    cu->state = US_CANCELLING;
    send_req(c, q);
    dclick_arm(c, u, q);
}

static void send_pay(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    if (cu->pays >= c->scn->crowd.payment_creates_max) {
        user_end(c, u);
        return;
    }
    struct creq *q = main_rq(cu, 0);
    req_prepare(c, q, u, 0, K_PAY);
    snprintf(q->path, sizeof q->path, "/api/v1/payments");
    snprintf(q->body, sizeof q->body, "{\"booking_id\":%" PRIu64 "}", cur_booking(c, u)->id);
    cu->pays++;
    cu->state = US_PAYING;
    send_req(c, q);
    dclick_arm(c, u, q);
}

static const char *card_name(uint8_t card)
{
    return card == 1 ? "pm_card_chargeDeclined"
           : card == 2 ? "pm_card_chargeDeclinedInsufficientFunds"
                       : "pm_card_visa";
}

static void send_confirm(struct br_rush_crowd *c, uint32_t u, uint8_t card)
{
    struct cuser *cu = U(c, u);
    struct creq *q = main_rq(cu, 0);
    struct br_rush_booking *b = cur_booking(c, u);
    req_prepare(c, q, u, 0, K_CONFIRM);
    q->visa = card == 0;
    snprintf(q->path, sizeof q->path, "/test-provider/v1/payment_intents/%s/confirm", cu->ppid);
    snprintf(q->body, sizeof q->body, "{\"payment_method\":\"%s\",\"client_secret\":\"%s\"}",
             card_name(card), cu->secret);
    if (q->visa) {
        b->card_success_sent = true;
        b->confirm_sent_wall_ms = br_rush_wall_ms();
    }
    if (b->pay != BR_RUSH_PAY_SUCCEEDED) {
        b->pay = BR_RUSH_PAY_UNKNOWN; /* until an answer says */
    }
    cu->state = US_CONFIRMING;
    send_req(c, q);
    dclick_arm(c, u, q);
}

static void on_cancel(struct br_rush_crowd *c, struct creq *q, const struct br_rush_resp *r)
{
    uint32_t u = q->user;
    char st[16];
    uint64_t id = r->status == 200 ? scan_u64(r->body, "id") : 0;
    int ix = id != 0 ? booking_ix(c, u, id) : -1;
    if (ix >= 0 && scan_str(r->body, "status", st, sizeof st)) {
        LU(c, u)->bookings[ix].last_status = hold_state_of(st);
    }
    dup_record(c, q, r->status, id);
    if (!q->second && U(c, u)->state == US_CANCELLING) {
        user_end(c, u);
    }
}

static void on_pay(struct br_rush_crowd *c, struct creq *q, const struct br_rush_resp *r)
{
    uint32_t u = q->user;
    struct cuser *cu = U(c, u);
    uint64_t pid = r->status == 201 ? scan_u64(r->body, "payment_id") : 0;
    dup_record(c, q, r->status, pid);
    if (q->second || cu->state != US_PAYING) {
        return;
    }
    if (pid != 0 && scan_str(r->body, "provider_payment_id", cu->ppid, sizeof cu->ppid) &&
        scan_str(r->body, "client_secret", cu->secret, sizeof cu->secret)) {
        cu->payment_id = pid;
        timer_at(c, u, SL_ACT, br_rush_now_us() + cu->plan.think_us[2]);
        return;
    }
    if (r->status == 409 || r->status == 410) {
        rejoin_or_end(c, u); /* BOOKING_NOT_HELD, HOLD_EXPIRED: too late */
        return;
    }
    user_end(c, u);
}

static void paid(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    c->prog.paid++;
    cu->bought = (uint8_t)(cu->bought + cur_booking(c, u)->quantity);
    if (cu->plan.greedy) {
        cu->qty = 1; /* comes back for more than the limit allows */
        cu->caught = true;
        rejoin_if(c, u, true); /* the simulator's greedy come back whatever rejoin_fraction says */
        return;
    }
    user_end(c, u);
}

static void on_confirm(struct br_rush_crowd *c, struct creq *q, const struct br_rush_resp *r)
{
    uint32_t u = q->user;
    struct cuser *cu = U(c, u);
    if (q->second) {
        return; /* a second confirm's 409 after success is by design: not a duplicate's answer */
    }
    struct br_rush_booking *b = cur_booking(c, u);
    char st[32] = "";
    char code[48] = "";
    if (r->status == 200) {
        (void)scan_str(r->body, "status", st, sizeof st);
    } else if (r->status >= 400) {
        (void)scan_str(r->body, "code", code, sizeof code);
    }
    bool ok = strcmp(st, "succeeded") == 0 ||
              (r->status == 409 && strcmp(code, "PAYMENT_INTENT_UNEXPECTED_STATE") == 0);
    bool declined = r->status == 200 && !ok;
    if (ok) {
        b->pay = BR_RUSH_PAY_SUCCEEDED;
    } else if (b->pay != BR_RUSH_PAY_SUCCEEDED) {
        b->pay = declined ? BR_RUSH_PAY_DECLINED
                 : r->status >= 400 && r->status < 500 && !q->visa ? BR_RUSH_PAY_NONE
                                                                    : BR_RUSH_PAY_UNKNOWN;
    }
    if (cu->state != US_CONFIRMING) {
        return;
    }
    if (ok) {
        paid(c, u);
    } else if (declined && cu->plan.retry_after_decline && !cu->retried_decline) {
        cu->retried_decline = true; /* the same intent takes another card */
        cu->state = US_PAYING;
        timer_at(c, u, SL_ACT, br_rush_now_us() + cu->plan.think_us[2]);
    } else {
        user_end(c, u);
    }
}

/* ---- the storm ---- */

static void json_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in != '\0' && o + 3 < cap; in++) {
        if (*in == '"' || *in == '\\') {
            out[o++] = '\\';
        }
        out[o++] = (unsigned char)*in < 0x20 ? ' ' : *in;
    }
    out[o] = '\0';
}

static void send_login(struct br_rush_crowd *c, uint32_t u)
{
    struct creq *q = main_rq(U(c, u), 0);
    req_prepare(c, q, u, 0, K_LOGIN);
    char pw[128] = "rush-storm-unknown-account";
    if (c->password != NULL) {
        c->password(LU(c, u)->email, pw);
        pw[sizeof pw - 1] = '\0';
    }
    char email[2 * BR_RUSH_EMAIL_MAX];
    char pwe[2 * sizeof pw];
    json_escape(LU(c, u)->email, email, sizeof email);
    json_escape(pw, pwe, sizeof pwe);
    snprintf(q->path, sizeof q->path, "/api/v1/auth/login");
    int n = snprintf(q->body, sizeof q->body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, pwe);
    if (n < 0 || (size_t)n >= sizeof q->body) {
        q->body[0] = '\0'; /* cannot happen with our emails and passwords: sent empty, answered 400 */
    }
    U(c, u)->state = US_WAITING;
    send_req(c, q);
}

static void on_login(struct br_rush_crowd *c, struct creq *q, const struct br_rush_resp *r)
{
    if (r->sent_us > 0 && (c->storm_first_us == 0 || r->sent_us < c->storm_first_us)) {
        c->storm_first_us = r->sent_us;
    }
    if (r->done_us > c->storm_last_us) {
        c->storm_last_us = r->done_us;
    }
    user_end(c, q->user);
    if (c->storm_left > 0 && --c->storm_left == 0 && c->storm_first_us > 0) {
        br_rush_meter_window(c->meter, BR_RUSH_WIN_STORM, c->storm_first_us, c->storm_last_us);
    }
}

/* ---- answers ---- */

static bool retryable(const struct creq *q, const struct br_rush_resp *r)
{
    if (q->second || q->kind == K_LEAVE || q->kind == K_PROBE) {
        return false; /* their answers are only recorded */
    }
    uint32_t max = q->kind == K_LOGIN ? BR_RUSH_STORM_RETRIES_MAX : BR_RUSH_RETRIES_MAX;
    if (q->tries >= max) {
        return false;
    }
    if (q->kind == K_LOGIN) {
        return r->status == 503 || r->status == 429;
    }
    /* No answer: every write here is safe to repeat, except a confirm (its outcome is the settle
     * phase's to find out, with no card sent twice). */
    return r->status == 429 || r->status == 503 || (r->status == 0 && q->kind != K_CONFIRM);
}

static void on_resp(void *ctx, const struct br_rush_resp *r)
{
    struct creq *q = ctx;
    struct br_rush_crowd *c = q->c;
    char code[48] = "";
    if (r->status >= 400 && r->body != NULL) {
        (void)scan_str(r->body, "code", code, sizeof code);
    }
    br_rush_meter_request(c->meter, r, code[0] != '\0' ? code : NULL);
    if (q->kind == K_LOGIN) {
        br_rush_meter_storm_login(c->meter, r->status, r->done_us - r->sent_us, q->tries > 0);
    }
    if (!c->stopped && retryable(q, r)) {
        q->tries++;
        int64_t wait_us = (int64_t)(r->retry_after_s > 0 ? r->retry_after_s : 1) * 1000000;
        q->resend_wait = true;
        if (q->kind != K_LOGIN) {
            U(c, q->user)->tab[q->tab].timer_what = TW_RESEND;
        }
        timer_at(c, q->user, q->kind == K_LOGIN ? SL_ACT : SL_TAB0 + q->tab, br_rush_now_us() + wait_us);
        if (q->kind == K_JOIN) {
            join_sent(c, q, r); /* the place may exist already */
        }
        return;
    }
    req_finish(c, q);
    const struct br_rush_resp safe = {.status = r->status, .err = r->err,
                                      .body = r->body != NULL ? r->body : "",
                                      .body_len = r->body_len, .retry_after_s = r->retry_after_s,
                                      .route = r->route, .queued_us = r->queued_us,
                                      .sent_us = r->sent_us, .done_us = r->done_us,
                                      .arrived_us = r->arrived_us};
    switch (q->kind) {
    case K_JOIN:
        on_join(c, q, &safe);
        break;
    case K_RESERVE:
    case K_PROBE:
        on_reserve(c, q, &safe);
        break;
    case K_PAY:
        on_pay(c, q, &safe);
        break;
    case K_CONFIRM:
        on_confirm(c, q, &safe);
        break;
    case K_CANCEL:
        on_cancel(c, q, &safe);
        break;
    case K_LOGIN:
        on_login(c, q, &safe);
        break;
    case K_LEAVE:
        if (U(c, q->user)->state == US_LEAVING) {
            timer_at(c, q->user, SL_ACT, br_rush_now_us() + LEAVE_LISTEN_US);
        }
        break;
    default:
        break;
    }
}

/* ---- terminal ---- */

static void user_end(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    if (cu->state == US_DONE) {
        return;
    }
    if (cu->state == US_LEAVING && LU(c, u)->places[cu->place].pass_id == 0) {
        LU(c, u)->places[cu->place].stream_kept = false; /* closed on purpose, as the user left */
    }
    waiting_off(c, cu);
    streams_close(c, u);
    br_rush_net_timer_cancel(c->net, timer_id(u, SL_ACT));
    br_rush_net_timer_cancel(c->net, timer_id(u, SL_PATIENCE));
    cu->state = US_DONE;
    c->done++;
    c->prog.done++;
}

/* Patience ran out while waiting: leave (DELETE) or just close the tabs. */
static void patience_out(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    if (cu->state != US_WAITING && cu->state != US_JOINING) {
        return;
    }
    struct br_rush_place *pl = &LU(c, u)->places[cu->place];
    struct creq *q = side_rq(cu);
    if (cu->plan.silent_leave || q->busy || c->stopped) {
        streams_close(c, u);
        pl->stream_kept = false;
        pl->silent_left = cu->plan.silent_leave;
        user_end(c, u);
        return;
    }
    /* The leave goes out with the streams still open, as from a browser's page: an admission
     * the server made before applying it still comes down a stream (received, not used). */
    pl->left_sent = true;
    waiting_off(c, cu);
    cu->state = US_LEAVING;
    dclick_drop(c, u); /* a join's second click not sent behind the leave */
    /* Armed first: a leave refused at once is answered inside send_req and re-arms it. */
    timer_at(c, u, SL_ACT, br_rush_now_us() + LEAVE_WAIT_US);
    req_prepare(c, q, u, 0, K_LEAVE);
    snprintf(q->path, sizeof q->path, "/api/v1/queue/leave");
    snprintf(q->body, sizeof q->body, "{\"event_id\":%" PRIu64 "}", EV(c, u)->id);
    send_req(c, q);
}

static void arrive(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    c->prog.arrived++;
    if (LU(c, u)->storm) {
        send_login(c, u);
        return;
    }
    if (!EV(c, u)->requires_pass) {
        /* No waiting room: straight to the seats (a refused early one retries on SALE_NOT_OPEN). */
        cu->state = US_ADMITTED;
        timer_at(c, u, SL_ACT, br_rush_now_us() + cu->plan.think_us[0]);
        return;
    }
    place_new(c, u);
}

/* The user's action timer: what comes next in its state. */
static void act(struct br_rush_crowd *c, uint32_t u)
{
    struct cuser *cu = U(c, u);
    switch (cu->state) {
    case US_IDLE:
        arrive(c, u);
        break;
    case US_REJOINING:
        place_new(c, u);
        break;
    case US_ADMITTED:
        reserve_round(c, u);
        break;
    case US_HELD:
        if (cu->plan.cancel) {
            send_cancel(c, u);
        } else {
            send_pay(c, u);
        }
        break;
    case US_PAYING:
        send_confirm(c, u, cu->retried_decline ? 0 : cu->plan.card);
        break;
    case US_LEAVING:
        user_end(c, u); /* listened long enough */
        break;
    default:
        break;
    }
}

static void tab_timer(struct br_rush_crowd *c, uint32_t u, uint32_t tab)
{
    struct cuser *cu = U(c, u);
    if (tab >= cu->tabs) {
        return;
    }
    struct ctab *tb = &cu->tab[tab];
    uint8_t what = tb->timer_what;
    tb->timer_what = TW_NONE;
    if (what == TW_RESEND) {
        struct creq *q = main_rq(cu, tab);
        if (q->busy && q->kind == K_JOIN && cu->state != US_JOINING && cu->state != US_WAITING) {
            q->resend_wait = false;
            req_finish(c, q); /* the user gave up or left meanwhile: no join behind its leave */
        } else if (q->busy) {
            send_req(c, q);
        }
    } else if (what == TW_RECONNECT) {
        if (cu->state == US_WAITING && !has_pass(c, u)) {
            tb->reconnected = true;
            stream_open(c, u, tab);
        }
    } else if (what == TW_DROP) {
        if (cu->state == US_WAITING && tb->streaming) {
            /* --stream-drops: the client cuts it once, as a flaky network would. */
            br_rush_net_stream_close(c->net, tb->stream);
            tb->streaming = false;
            tb->dropped = true;
            tb->timer_what = TW_RECONNECT;
            timer_at(c, u, SL_TAB0 + tab, br_rush_now_us() + (int64_t)BR_RUSH_RECONNECT_MS * 1000);
        }
    }
}

void br_rush_crowd_on_timer(void *ctx, uint32_t timer)
{
    struct br_rush_crowd *c = ctx;
    uint32_t u = timer / BR_RUSH_CROWD_TIMER_SLOTS;
    uint32_t slot = timer % BR_RUSH_CROWD_TIMER_SLOTS;
    if (c == NULL || c->u == NULL || u >= c->l->user_count || c->stopped) {
        return;
    }
    struct cuser *cu = U(c, u);
    if (slot == SL_ACT) {
        struct creq *q = main_rq(cu, 0);
        if (q->kind == K_LOGIN && q->resend_wait) {
            send_req(c, q); /* a storm login's resend */
            return;
        }
        act(c, u);
    } else if (slot == SL_PATIENCE) {
        patience_out(c, u);
    } else if (slot == SL_DCLICK) {
        struct creq *q = cu->dclick;
        cu->dclick = NULL;
        if (q != NULL) {
            send_req(c, q);
        }
    } else {
        tab_timer(c, u, slot - SL_TAB0);
    }
}

/* ---- the public face ---- */

uint32_t br_rush_crowd_timers(uint32_t user_count)
{
    return user_count * BR_RUSH_CROWD_TIMER_SLOTS;
}

int br_rush_crowd_new(struct br_rush_crowd **out, const struct br_rush_config *cfg,
                      const struct br_scenario *scn, struct br_rush_ledger *ledger,
                      struct br_rush_net *net, struct br_rush_meter *meter)
{
    BR_ASSERT(out != NULL && cfg != NULL && scn != NULL && ledger != NULL);
    *out = NULL;
    if (ledger->user_count > BR_RUSH_USERS_MAX || ledger->crowd_count > ledger->user_count ||
        ledger->event_count == 0 || ledger->event_count > BR_RUSH_EVENTS_MAX) {
        return BR_E_INVALID;
    }
    struct br_rush_crowd *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return BR_E_FULL;
    }
    c->cfg = cfg;
    c->scn = scn;
    c->l = ledger;
    c->net = net;
    c->meter = meter;
    c->seed = cfg->seed_set ? cfg->seed : scn->seed;
    c->u = calloc(ledger->user_count > 0 ? ledger->user_count : 1, sizeof *c->u);
    if (c->u == NULL) {
        free(c);
        return BR_E_FULL;
    }
    for (uint32_t e = 0; e < ledger->event_count; e++) {
        snprintf(c->stream_path[e], sizeof c->stream_path[e], "/api/v1/queue/position/%" PRIu64 "/stream",
                 ledger->events[e].id);
    }
    for (uint32_t u = 0; u < ledger->user_count; u++) {
        struct br_rush_user *lu = &ledger->users[u];
        lu->storm = u >= ledger->crowd_count;
        lu->event_ix = ledger->event_count == scn->event_count && !lu->storm
                           ? br_scenario_event_of_user(scn, u)
                           : 0;
        lu->final_queue_status = 0xff;
    }
    *out = c;
    return BR_OK;
}

void br_rush_crowd_free(struct br_rush_crowd *c)
{
    if (c == NULL) {
        return;
    }
    for (uint32_t u = 0; c->u != NULL && u < c->l->user_count; u++) {
        free(c->u[u].tab);
        free(c->u[u].rq);
    }
    free(c->u);
    free(c);
}

void br_rush_crowd_set_password(struct br_rush_crowd *c, br_rush_password_fn fn)
{
    c->password = fn;
}

static void storm_schedule(struct br_rush_crowd *c, uint32_t u)
{
    struct br_rng r;
    br_rng_seed(&r, c->seed, BR_RUSH_STREAM ^ 0x53544f524d000000ULL ^ u);
    uint64_t window = c->cfg->storm_window_ms > 0 ? c->cfg->storm_window_ms : 2000;
    timer_at(c, u, SL_ACT, c->open_us + (int64_t)br_rng_below(&r, window * 1000));
}

void br_rush_crowd_start(struct br_rush_crowd *c, int64_t t0_us, int64_t open_us)
{
    BR_ASSERT(!c->started);
    c->started = true;
    c->t0_us = t0_us;
    c->open_us = open_us;
    double scale_ms = c->cfg->time_scale;
    if (scale_ms <= 0) {
        uint32_t open_in = 0;
        br_rush_plan_timing(c->scn, c->cfg, &scale_ms, &open_in);
    }
    c->scale_us_per_ms = scale_ms * 1000.0;
    int64_t spike = (int64_t)((double)c->scn->crowd.spike_decay_ms * 3.0 * c->scale_us_per_ms);
    br_rush_meter_window(c->meter, BR_RUSH_WIN_SPIKE, open_us, open_us + (spike > 5000000 ? spike : 5000000));
    for (uint32_t u = 0; u < c->l->user_count; u++) {
        struct cuser *cu = U(c, u);
        struct br_rush_user *lu = LU(c, u);
        if (lu->storm) {
            cu->tabs = 1;
        } else {
            br_rush_plan_draw(c->scn, c->seed, u, c->scale_us_per_ms, open_us - t0_us, EV(c, u),
                              &cu->plan);
            if (!(cu->plan.drop_u < c->cfg->stream_drops)) {
                cu->plan.drop_stream_after_us = 0;
            }
            cu->tabs = cu->plan.tabs > 0 ? cu->plan.tabs : 1;
            cu->qty = cu->plan.quantity;
            cu->zone = cu->plan.zone_id;
        }
        cu->tab = calloc(cu->tabs, sizeof *cu->tab);
        cu->rq = calloc((size_t)cu->tabs * 2u + 1u, sizeof *cu->rq);
        if (cu->tab == NULL || cu->rq == NULL) {
            cu->state = US_DONE; /* out of memory: this user sits out, counted as done */
            c->done++;
            c->prog.done++;
            continue;
        }
        for (uint32_t t = 0; t < cu->tabs; t++) {
            cu->tab[t] = (struct ctab){.c = c, .user = u, .tab = (uint8_t)t};
        }
        if (lu->storm) {
            c->storm_left++;
            storm_schedule(c, u);
        } else {
            timer_at(c, u, SL_ACT, t0_us + cu->plan.arrive_us);
        }
    }
}

bool br_rush_crowd_done(void *ctx)
{
    const struct br_rush_crowd *c = ctx;
    return c->done >= c->l->user_count && c->inflight == 0;
}

void br_rush_crowd_stop(struct br_rush_crowd *c)
{
    if (c->stopped) {
        return;
    }
    c->stopped = true;
    for (uint32_t u = 0; u < c->l->user_count; u++) {
        struct cuser *cu = U(c, u);
        if (cu->tab == NULL) {
            continue;
        }
        dclick_drop(c, u);
        for (uint32_t t = 0; t < cu->tabs; t++) {
            br_rush_net_timer_cancel(c->net, timer_id(u, SL_TAB0 + t));
            cu->tab[t].timer_what = TW_NONE;
        }
        for (uint32_t i = 0; i < (uint32_t)cu->tabs * 2u + 1u; i++) {
            if (cu->rq[i].resend_wait) {
                cu->rq[i].resend_wait = false;
                req_finish(c, &cu->rq[i]); /* a resend not made: its last answer stands */
            }
        }
        user_end(c, u);
    }
}

void br_rush_crowd_progress(const struct br_rush_crowd *c, struct br_rush_progress *p)
{
    *p = c->prog;
}

uint32_t br_rush_crowd_inflight(const struct br_rush_crowd *c)
{
    return c->inflight;
}

bool br_rush_crowd_idle(void *ctx)
{
    const struct br_rush_crowd *c = ctx;
    return c->stopped && c->inflight == 0;
}
