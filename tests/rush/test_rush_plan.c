/*
 * test_rush_plan.c -- the crowd's plans (rush_plan.c) and its per-user state
 * machine (rush_crowd.c) against a fake net.
 *
 * Plans: the same seed gives the same plans and another seed other ones; over
 * 10,000 users every behaviour's fraction is within 3 sigma of the
 * scenario's; arrivals fall inside their windows; quantities are capped at
 * the limit (greedy ones ask for limit + 1); every card kind is drawn; the
 * timing fits --duration and keeps its floors.
 *
 * The state machine: this file defines the rush_net and rush_meter functions
 * the crowd calls (a scripted fake: requests are queued here and answered by
 * the test, timers fire when the test moves the clock), so the archive's own
 * rush_net.o and rush_meter.o are never linked in. Scripts: one user from the
 * join to a confirmed payment; a double click (the same key twice, both
 * answers in the ledger's dups); two tabs racing for one pass; a cut stream
 * reopened after 3 s (pass_via 2); the stop closing streams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "core/err.h"
#include "server/rush_crowd.h"

/* ---- plans ---- */

static void scenario_busy(struct br_scenario *s)
{
    br_scenario_defaults(s);
    struct br_scn_crowd *c = &s->crowd;
    c->early_fraction = 0.3;
    c->spike_fraction = 0.6;
    c->patience_fraction = 0.2;
    c->silent_leave_fraction = 0.5;
    c->admitted_abandon_fraction = 0.05;
    c->abandon_hold_fraction = 0.1;
    c->cancel_fraction = 0.1;
    c->double_click_fraction = 0.1;
    c->tabs_fraction = 0.08;
    c->tabs_max = 4;
    c->greedy_fraction = 0.05;
    c->rejoin_fraction = 0.3;
    c->rejoins_max = 2;
    s->payments.decline_rate = 0.15;
    s->payments.retry_after_decline = 0.6;
    s->events[0].spec.per_user_limit = 4;
    s->events[0].spec.zone_count = 2;
}

static struct br_rush_event event_of(const struct br_scenario *s)
{
    struct br_rush_event ev = {.id = 7, .owned = true, .requires_pass = true, .per_user_limit = 4,
                               .zone_count = s->events[0].spec.zone_count, .pass_ttl_ms = 20000,
                               .hold_ttl_ms = 8000};
    return ev;
}

#define N_USERS 10000u

static void test_same_seed_gives_same_plans(void **state)
{
    (void)state;
    static struct br_scenario s;
    scenario_busy(&s);
    struct br_rush_event ev = event_of(&s);
    uint32_t differ = 0;
    for (uint32_t u = 0; u < 2000; u++) {
        struct br_rush_plan a, b, other;
        memset(&a, 0, sizeof a);
        memset(&b, 0xa5, sizeof b);
        br_rush_plan_draw(&s, 42, u, 25.0, 3000000, &ev, &a);
        br_rush_plan_draw(&s, 42, u, 25.0, 3000000, &ev, &b);
        br_rush_plan_draw(&s, 43, u, 25.0, 3000000, &ev, &other);
        assert_int_equal(a.arrive_us, b.arrive_us);
        assert_int_equal(a.patience_us, b.patience_us);
        assert_int_equal(a.tabs, b.tabs);
        assert_int_equal(a.card, b.card);
        assert_int_equal(a.quantity, b.quantity);
        assert_int_equal(a.zone_id, b.zone_id);
        assert_true(a.think_us[1] == b.think_us[1] && a.double_click == b.double_click &&
                    a.cancel == b.cancel && a.rejoin == b.rejoin && a.greedy == b.greedy);
        differ += a.arrive_us != other.arrive_us;
    }
    assert_true(differ > 1900); /* another seed: other plans */
}

/* |k - n p| <= 3 sigma (+1 for tiny p). */
static void assert_fraction(uint32_t k, uint32_t n, double p, const char *what)
{
    double sigma = sqrt((double)n * p * (1 - p));
    double dev = fabs((double)k - (double)n * p);
    if (dev > 3 * sigma + 1) {
        fail_msg("%s: %u of %u, expected %.1f +- %.1f", what, k, n, (double)n * p, 3 * sigma);
    }
}

static void test_fractions_within_3_sigma(void **state)
{
    (void)state;
    static struct br_scenario s;
    scenario_busy(&s);
    struct br_rush_event ev = event_of(&s);
    const struct br_scn_crowd *c = &s.crowd;
    int64_t open = 4000000;
    uint32_t early = 0, patient = 0, silent = 0, dclick = 0, tabs = 0, greedy = 0, aab = 0,
             ahold = 0, cancel = 0, rejoin = 0, declined = 0, retry = 0, probe = 0;
    uint32_t tabs_seen[BR_RUSH_TABS_MAX + 1] = {0};
    for (uint32_t u = 0; u < N_USERS; u++) {
        struct br_rush_plan p;
        br_rush_plan_draw(&s, 7, u, 10.0, open, &ev, &p);
        early += p.arrive_us < open;
        patient += p.patience_us > 0;
        silent += p.silent_leave;
        dclick += p.double_click;
        tabs += p.tabs > 1;
        tabs_seen[p.tabs]++;
        greedy += p.greedy;
        aab += p.admitted_abandon;
        ahold += p.abandon_hold;
        cancel += p.cancel;
        rejoin += p.rejoin;
        declined += p.card != 0;
        retry += p.retry_after_decline;
        probe += p.reuse_probe;
    }
    assert_fraction(early, N_USERS, c->early_fraction, "early");
    assert_fraction(patient, N_USERS, c->patience_fraction, "patience");
    assert_fraction(silent, patient, c->silent_leave_fraction, "silent of patient");
    assert_fraction(dclick, N_USERS, c->double_click_fraction, "double click");
    assert_fraction(tabs, N_USERS, c->tabs_fraction, "tabs");
    assert_fraction(greedy, N_USERS, c->greedy_fraction, "greedy");
    assert_fraction(aab, N_USERS, c->admitted_abandon_fraction, "admitted abandon");
    assert_fraction(ahold, N_USERS, c->abandon_hold_fraction, "abandon hold");
    assert_fraction(cancel, N_USERS - ahold, c->cancel_fraction, "cancel of the others");
    assert_fraction(rejoin, N_USERS, c->rejoin_fraction, "rejoin");
    assert_fraction(declined, N_USERS, s.payments.decline_rate, "declined card");
    assert_fraction(retry, N_USERS, s.payments.retry_after_decline, "retry after decline");
    assert_fraction(probe, N_USERS, BR_RUSH_REUSE_PROBE_FRACTION, "reuse probe");
    assert_int_equal(tabs_seen[0], 0);
    for (uint32_t k = 2; k <= c->tabs_max; k++) {
        assert_true(tabs_seen[k] > 0); /* 2 .. tabs_max, all of them */
    }
    for (uint32_t k = c->tabs_max + 1; k <= BR_RUSH_TABS_MAX; k++) {
        assert_int_equal(tabs_seen[k], 0);
    }
}

static void test_arrivals_inside_their_windows(void **state)
{
    (void)state;
    static struct br_scenario s;
    scenario_busy(&s);
    struct br_rush_event ev = event_of(&s);
    double scale = 5.0; /* us per scenario ms */
    int64_t open = 2500000;
    int64_t fit = br_rush_plan_fit_us(&s, scale);
    assert_int_equal(fit, (int64_t)((double)(s.crowd.tail_window_ms + 3 * s.crowd.spike_decay_ms) * scale));
    double spike_sum = 0;
    uint32_t spike_n = 0;
    for (uint32_t u = 0; u < N_USERS; u++) {
        struct br_rush_plan p;
        br_rush_plan_draw(&s, 9, u, scale, open, &ev, &p);
        assert_true(p.arrive_us >= 0);
        assert_true(p.arrive_us <= open + fit);
    }
    /* Spike only, no tail: exponential with the scaled decay truncated at 3 decays (the fit
     * window), where an untruncated draw would pass it 5% of the time. */
    s.crowd.early_fraction = 0;
    s.crowd.spike_fraction = 1;
    int64_t tail_ms = s.crowd.tail_window_ms;
    s.crowd.tail_window_ms = 0;
    int64_t cap = br_rush_plan_fit_us(&s, scale);
    for (uint32_t u = 0; u < N_USERS; u++) {
        struct br_rush_plan p;
        br_rush_plan_draw(&s, 9, u, scale, open, &ev, &p);
        assert_true(p.arrive_us >= open && p.arrive_us <= open + cap);
        spike_sum += (double)(p.arrive_us - open);
        spike_n++;
    }
    double mean = (double)s.crowd.spike_decay_ms * scale;
    double truncated = mean - (double)cap * exp(-(double)cap / mean) / (1 - exp(-(double)cap / mean));
    assert_true(fabs(spike_sum / spike_n - truncated) < 0.03 * mean);
    s.crowd.tail_window_ms = tail_ms;
    /* Tail only: uniform over the scaled tail window. */
    s.crowd.spike_fraction = 0;
    int64_t tail = (int64_t)((double)s.crowd.tail_window_ms * scale);
    uint32_t first_half = 0;
    for (uint32_t u = 0; u < N_USERS; u++) {
        struct br_rush_plan p;
        br_rush_plan_draw(&s, 9, u, scale, open, &ev, &p);
        assert_true(p.arrive_us >= open && p.arrive_us <= open + tail);
        first_half += p.arrive_us < open + tail / 2;
    }
    assert_fraction(first_half, N_USERS, 0.5, "tail first half");
    /* Early only: all before the opening. */
    s.crowd.early_fraction = 1;
    for (uint32_t u = 0; u < N_USERS; u++) {
        struct br_rush_plan p;
        br_rush_plan_draw(&s, 9, u, scale, open, &ev, &p);
        assert_true(p.arrive_us >= 0 && p.arrive_us < open);
    }
}

static void test_quantity_capped_and_cards_drawn(void **state)
{
    (void)state;
    static struct br_scenario s;
    scenario_busy(&s);
    const double heavy[BR_SCN_QTY_MAX] = {0, 0, 0, 0, 0, 0, 1, 1}; /* 7 or 8 seats wanted */
    memcpy(s.crowd.quantity_weights, heavy, sizeof heavy);
    struct br_rush_event ev = event_of(&s);
    uint32_t cards[3] = {0}, zones[3] = {0}, greedy = 0;
    for (uint32_t u = 0; u < N_USERS; u++) {
        struct br_rush_plan p;
        br_rush_plan_draw(&s, 11, u, 1000.0, 0, &ev, &p);
        if (p.greedy) {
            assert_int_equal(p.quantity, ev.per_user_limit + 1);
            greedy++;
        } else {
            assert_true(p.quantity >= 1 && p.quantity <= ev.per_user_limit);
        }
        assert_true(p.card <= 2);
        cards[p.card]++;
        assert_true(p.zone_id >= 1 && p.zone_id <= ev.zone_count);
        zones[p.zone_id]++;
        assert_true(p.think_us[0] >= 50000 && p.think_us[3] >= 50000 && p.dclick_gap_us >= 50000);
    }
    assert_true(greedy > 0);
    assert_true(cards[0] > 0 && cards[1] > 0 && cards[2] > 0);
    assert_fraction(cards[1], cards[1] + cards[2], 0.5, "declined vs insufficient funds");
    assert_fraction(zones[1], N_USERS, 0.5, "zone 1 of 2 (weights 0 = uniform)");
}

static void test_timing_fits_duration_with_floors(void **state)
{
    (void)state;
    static struct br_scenario s;
    scenario_busy(&s);
    struct br_rush_config cfg = {.duration_s = 20};
    double scale = 0;
    uint32_t open_in = 0;
    br_rush_plan_timing(&s, &cfg, &scale, &open_in);
    const struct br_scn_crowd *c = &s.crowd;
    double total = (double)(c->early_window_ms + c->tail_window_ms + 3 * c->spike_decay_ms) * scale;
    assert_true(fabs(total - 16000.0) < 1.0); /* 0.8 x 20 s */
    assert_true(open_in >= BR_RUSH_OPEN_IN_MIN_MS);
    cfg.time_scale = 0.5;
    cfg.open_in_ms = 3000;
    br_rush_plan_timing(&s, &cfg, &scale, &open_in);
    assert_true(scale == 0.5 && open_in == 3000);
    assert_int_equal(br_rush_plan_ttl_ms(20000, 0.01, BR_RUSH_PASS_TTL_FLOOR_MS), 10000);
    assert_int_equal(br_rush_plan_ttl_ms(20000, 1.01, BR_RUSH_PASS_TTL_FLOOR_MS), 21000);
    assert_int_equal(br_rush_plan_ttl_ms(600000, 0.01, BR_RUSH_HOLD_TTL_FLOOR_MS), 6000);
}

/* ---- a fake net and meter ---- */

#define FAKE_REQS 64
#define FAKE_STREAMS 16
#define FAKE_TIMERS 256

struct fake_req {
    struct br_rush_req q;
    char method[8], path[160], body[300], key[64], pass[BR_RUSH_PASS_MAX];
    br_rush_resp_fn fn;
    void *ctx;
    bool answered;
    int64_t sent_us;
};
struct fake_stream {
    char path[96];
    br_rush_stream_fn fn;
    void *ctx;
    bool open;
};
static struct {
    struct fake_req req[FAKE_REQS];
    uint32_t req_n;
    struct fake_stream st[FAKE_STREAMS];
    uint32_t st_n;
    int64_t timer_at[FAKE_TIMERS]; /* 0 = not armed */
    int64_t now_us, wall_ms;
    void *crowd;
    uint32_t meter_requests, meter_passes, pass_reconnected;
} F;

int br_rush_net_send(struct br_rush_net *n, const struct br_rush_req *q, br_rush_resp_fn fn, void *ctx)
{
    (void)n;
    assert_true(F.req_n < FAKE_REQS);
    struct fake_req *r = &F.req[F.req_n++];
    memset(r, 0, sizeof *r);
    r->q = *q;
    snprintf(r->method, sizeof r->method, "%s", q->method);
    snprintf(r->path, sizeof r->path, "%s", q->path);
    snprintf(r->body, sizeof r->body, "%.*s", (int)q->body_len, q->body != NULL ? q->body : "");
    snprintf(r->key, sizeof r->key, "%s", q->idem_key != NULL ? q->idem_key : "");
    snprintf(r->pass, sizeof r->pass, "%s", q->pass != NULL ? q->pass : "");
    r->fn = fn;
    r->ctx = ctx;
    r->sent_us = F.now_us;
    return BR_OK;
}

int br_rush_net_stream_open(struct br_rush_net *n, uint32_t target, const char *path, const char *token,
                            const char *last_id, uint32_t idle_ms, br_rush_stream_fn fn, void *ctx,
                            uint32_t *stream)
{
    (void)n;
    (void)target;
    (void)last_id;
    (void)idle_ms;
    assert_non_null(token);
    assert_true(F.st_n < FAKE_STREAMS);
    struct fake_stream *s = &F.st[F.st_n];
    snprintf(s->path, sizeof s->path, "%s", path);
    s->fn = fn;
    s->ctx = ctx;
    s->open = true;
    *stream = F.st_n++;
    return BR_OK;
}

void br_rush_net_stream_close(struct br_rush_net *n, uint32_t stream)
{
    (void)n;
    F.st[stream].open = false;
}

void br_rush_net_timer_set(struct br_rush_net *n, uint32_t timer, int64_t at_us)
{
    (void)n;
    assert_true(timer < FAKE_TIMERS);
    F.timer_at[timer] = at_us > 0 ? at_us : 1;
}

void br_rush_net_timer_cancel(struct br_rush_net *n, uint32_t timer)
{
    (void)n;
    assert_true(timer < FAKE_TIMERS);
    F.timer_at[timer] = 0;
}

int64_t br_rush_now_us(void)
{
    return F.now_us;
}

int64_t br_rush_wall_ms(void)
{
    return F.wall_ms;
}

void br_rush_meter_request(struct br_rush_meter *m, const struct br_rush_resp *r, const char *code)
{
    (void)m;
    (void)r;
    (void)code;
    F.meter_requests++;
}

void br_rush_meter_pass(struct br_rush_meter *m, int64_t admit_to_pass_ms, bool reconnected)
{
    (void)m;
    (void)admit_to_pass_ms;
    F.meter_passes++;
    F.pass_reconnected += reconnected;
}

void br_rush_meter_storm_login(struct br_rush_meter *m, int status, int64_t latency_us, bool retried)
{
    (void)m;
    (void)status;
    (void)latency_us;
    (void)retried;
}

void br_rush_meter_window(struct br_rush_meter *m, enum br_rush_window w, int64_t from_us, int64_t to_us)
{
    (void)m;
    (void)w;
    (void)from_us;
    (void)to_us;
}

/* Moves the clock to t, firing every timer due on the way, earliest first. */
static void run_until(int64_t t)
{
    for (int guard = 0; guard < 1000; guard++) {
        int64_t best = 0;
        uint32_t id = 0;
        for (uint32_t i = 0; i < FAKE_TIMERS; i++) {
            if (F.timer_at[i] != 0 && F.timer_at[i] <= t && (best == 0 || F.timer_at[i] < best)) {
                best = F.timer_at[i];
                id = i;
            }
        }
        if (best == 0) {
            break;
        }
        F.timer_at[id] = 0;
        if (best > F.now_us) {
            F.now_us = best;
        }
        br_rush_crowd_on_timer(F.crowd, id);
    }
    if (t > F.now_us) {
        F.now_us = t;
    }
}

/* The oldest unanswered request for path (a prefix), or fails. */
static struct fake_req *pending(const char *path)
{
    for (uint32_t i = 0; i < F.req_n; i++) {
        if (!F.req[i].answered && strncmp(F.req[i].path, path, strlen(path)) == 0) {
            return &F.req[i];
        }
    }
    fail_msg("no request pending for %s", path);
    return NULL;
}

static uint32_t pending_count(const char *path)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < F.req_n; i++) {
        n += !F.req[i].answered && strncmp(F.req[i].path, path, strlen(path)) == 0;
    }
    return n;
}

static void answer(struct fake_req *r, int status, const char *body)
{
    F.now_us += 1000;
    struct br_rush_resp resp = {.status = status, .body = body, .body_len = strlen(body),
                                .route = r->q.route, .sent_us = r->sent_us, .done_us = F.now_us};
    r->answered = true;
    r->fn(r->ctx, &resp);
}

static void stream_say(uint32_t s, int kind, int status, const char *event, const char *data)
{
    assert_true(F.st[s].open);
    struct br_rush_sse_event ev = {.event = event, .data = data, .data_len = data ? strlen(data) : 0};
    F.st[s].fn(F.st[s].ctx, s, kind, status, event != NULL ? &ev : NULL);
}

#define PASS_TOKEN "p1.7.11.30064771073.1767225630000.bWFj"
#define PASS_DATA "{\"event_id\":7,\"token\":\"" PASS_TOKEN "\",\"expires_at\":\"2026-01-01T00:00:30.000Z\"}"
#define BOOKING(id) "{\"id\":" #id ",\"event_id\":7,\"zone_id\":1,\"quantity\":1,\"status\":\"held\"," \
                    "\"total_minor\":100,\"currency\":\"EUR\",\"created_at\":\"2026-01-01T00:00:20.000Z\"," \
                    "\"expires_at\":\"2026-01-01T00:00:28.000Z\"}"
#define PAYMENT "{\"payment_id\":77,\"provider_payment_id\":\"pi_abc\",\"booking_id\":5,\"amount_minor\":100," \
                "\"currency\":\"EUR\",\"status\":\"pending\",\"client_secret\":\"pi_abc_secret_xyz\"}"

struct world {
    struct br_scenario s;
    struct br_rush_config cfg;
    struct br_rush_ledger l;
    struct br_rush_crowd *c;
};

/* One user, one event needing a pass; every behaviour off unless the test turns it on. */
static void world_init(struct world *w, double dclick, double tabs, double drops)
{
    memset(&F, 0, sizeof F);
    F.now_us = 1000000;
    F.wall_ms = 1767225610005; /* 5 ms after the pass was issued */
    br_scenario_defaults(&w->s);
    struct br_scn_crowd *c = &w->s.crowd;
    c->early_fraction = 1;
    c->patience_fraction = c->admitted_abandon_fraction = c->abandon_hold_fraction = 0;
    c->cancel_fraction = c->greedy_fraction = c->rejoin_fraction = 0;
    c->double_click_fraction = dclick;
    c->tabs_fraction = tabs;
    c->tabs_max = 2;
    const double one[BR_SCN_QTY_MAX] = {1, 0, 0, 0, 0, 0, 0, 0};
    memcpy(c->quantity_weights, one, sizeof one);
    c->zone_weights[0] = 1;
    c->zone_weights[1] = 0.000001;
    c->think_ms = (struct br_scn_range){1000, 1000};
    w->s.payments.decline_rate = 0;
    w->s.events[0].spec.zone_count = 2;
    w->cfg = (struct br_rush_config){.seed = 5, .seed_set = true, .duration_s = 20, .time_scale = 1.0,
                                     .open_in_ms = 1000, .request_timeout_ms = 10000,
                                     .stream_idle_ms = 45000, .stream_drops = drops};
    memset(&w->l, 0, sizeof w->l);
    w->l.event_count = 1;
    w->l.events[0] = event_of(&w->s);
    w->l.user_count = w->l.crowd_count = 1;
    w->l.users = calloc(1, sizeof *w->l.users);
    assert_non_null(w->l.users);
    snprintf(w->l.users[0].token, sizeof w->l.users[0].token, "tok0");
    w->l.users[0].user_id = 11;
    assert_int_equal(br_rush_crowd_new(&w->c, &w->cfg, &w->s, &w->l, (struct br_rush_net *)&F,
                                       (struct br_rush_meter *)&F),
                     BR_OK);
    F.crowd = w->c;
    br_rush_crowd_start(w->c, F.now_us, F.now_us + 1000000);
}

static void world_free(struct world *w)
{
    br_rush_crowd_free(w->c);
    free(w->l.users);
}

/* Arrival to the pass on stream 0; returns the user's ledger row. */
static struct br_rush_user *join_and_pass(struct world *w)
{
    run_until(F.now_us + 1000000); /* every early arrival is before the opening */
    struct fake_req *j = pending("/api/v1/queue/join");
    assert_string_equal(j->method, "POST");
    assert_string_equal(j->body, "{\"event_id\":7}");
    assert_int_equal(j->q.route, BR_RR_JOIN);
    answer(j, 200, "{\"event_id\":7,\"status\":\"prequeue\",\"position\":0,\"queue_length\":1}");
    assert_int_equal(F.st_n, 1);
    assert_string_equal(F.st[0].path, "/api/v1/queue/position/7/stream");
    stream_say(0, BR_RUSH_STREAM_OPEN, 200, NULL, NULL);
    stream_say(0, BR_RUSH_STREAM_EVENT, 0, "position", "{\"status\":\"prequeue\"}");
    stream_say(0, BR_RUSH_STREAM_EVENT, 0, "pass", PASS_DATA);
    return &w->l.users[0];
}

static void test_crowd_join_pass_reserve_pay_confirmed(void **state)
{
    (void)state;
    static struct world w;
    world_init(&w, 0, 0, 0);
    struct br_rush_user *lu = join_and_pass(&w);
    const struct br_rush_place *pl = &lu->places[0];
    assert_int_equal(lu->place_count, 1);
    assert_int_equal(pl->join_status, BR_QS_PREQUEUE);
    assert_true(pl->join_sent_us > 0 && pl->join_recv_us > pl->join_sent_us);
    assert_int_equal(pl->pass_id, 30064771073ULL); /* the token's 4th field */
    assert_int_equal(pl->pass_issued_ms, 1767225630000LL - 20000);
    assert_int_equal(pl->pass_recv_wall_ms, F.wall_ms);
    assert_int_equal(pl->pass_via, 1);
    assert_true(pl->stream_kept && !pl->silent_left);
    assert_string_equal(pl->pass, PASS_TOKEN);
    assert_int_equal(F.meter_passes, 1);
    assert_int_equal(pending_count("/api/v1/bookings/reserve"), 0); /* thinking first */
    run_until(F.now_us + 250000);
    struct fake_req *r = pending("/api/v1/bookings/reserve");
    assert_string_equal(r->pass, PASS_TOKEN);
    assert_string_equal(r->key, "rush-5-0-1");
    assert_string_equal(r->body, "{\"event_id\":7,\"zone_id\":1,\"quantity\":1}");
    answer(r, 201, BOOKING(5));
    assert_int_equal(lu->booking_count, 1);
    assert_int_equal(lu->bookings[0].id, 5);
    assert_int_equal(lu->bookings[0].last_status, BR_HOLD_HELD);
    run_until(F.now_us + 1000000);
    struct fake_req *p = pending("/api/v1/payments");
    assert_string_equal(p->body, "{\"booking_id\":5}");
    answer(p, 201, PAYMENT);
    run_until(F.now_us + 250000);
    struct fake_req *cf = pending("/test-provider/v1/payment_intents/pi_abc/confirm");
    assert_string_equal(cf->body, "{\"payment_method\":\"pm_card_visa\",\"client_secret\":\"pi_abc_secret_xyz\"}");
    assert_null(cf->q.token);
    assert_true(lu->bookings[0].card_success_sent);
    assert_int_equal(lu->bookings[0].pay, BR_RUSH_PAY_UNKNOWN);
    assert_false(br_rush_crowd_done(w.c));
    answer(cf, 200, "{\"id\":\"pi_abc\",\"status\":\"succeeded\",\"last_payment_error\":null}");
    assert_int_equal(lu->bookings[0].pay, BR_RUSH_PAY_SUCCEEDED);
    struct br_rush_progress pr;
    br_rush_crowd_progress(w.c, &pr);
    assert_true(pr.arrived == 1 && pr.admitted == 1 && pr.held == 1 && pr.paid == 1 && pr.done == 1);
    assert_true(br_rush_crowd_done(w.c));
    assert_int_equal(F.meter_requests, 4);
    world_free(&w);
}

static void test_crowd_double_click_same_key_both_answers_kept(void **state)
{
    (void)state;
    static struct world w;
    world_init(&w, 1.0, 0, 0);
    run_until(F.now_us + 1500000); /* the arrival and its second click, <= 420 ms later */
    assert_int_equal(pending_count("/api/v1/queue/join"), 2); /* the join, clicked twice */
    struct br_rush_user *lu = &w.l.users[0];
    answer(pending("/api/v1/queue/join"), 200, "{\"status\":\"waiting\"}");
    answer(pending("/api/v1/queue/join"), 200, "{\"status\":\"waiting\"}");
    assert_int_equal(F.st_n, 1); /* one tab, one stream */
    stream_say(0, BR_RUSH_STREAM_OPEN, 200, NULL, NULL);
    stream_say(0, BR_RUSH_STREAM_EVENT, 0, "pass", PASS_DATA);
    run_until(F.now_us + 2000000);
    assert_int_equal(pending_count("/api/v1/bookings/reserve"), 2);
    struct fake_req *a = pending("/api/v1/bookings/reserve");
    answer(a, 201, BOOKING(5));
    struct fake_req *b = pending("/api/v1/bookings/reserve");
    assert_string_equal(a->key, b->key); /* the same Idempotency-Key */
    assert_string_equal(b->pass, PASS_TOKEN);
    answer(b, 201, BOOKING(5));
    assert_int_equal(lu->booking_count, 1);
    assert_true(lu->dup_count >= 2);
    const struct br_rush_dup *d = &lu->dups[1];
    assert_int_equal(d->route, BR_RR_RESERVE);
    assert_int_equal(d->first.status, 201);
    assert_int_equal(d->first.id, 5);
    assert_int_equal(d->second.status, 201);
    assert_int_equal(d->second.id, 5);
    assert_int_equal(lu->dups[0].route, BR_RR_JOIN);
    assert_int_equal(lu->dups[0].second.status, 200);
    world_free(&w);
}

static void test_crowd_tabs_race_for_one_pass(void **state)
{
    (void)state;
    static struct world w;
    world_init(&w, 0, 1.0, 0);
    run_until(F.now_us + 1000000);
    assert_int_equal(pending_count("/api/v1/queue/join"), 2); /* one join a tab */
    struct fake_req *j0 = pending("/api/v1/queue/join");
    answer(j0, 200, "{\"status\":\"prequeue\"}");
    struct fake_req *j1 = pending("/api/v1/queue/join");
    answer(j1, 200, "{\"status\":\"prequeue\"}");
    struct br_rush_user *lu = &w.l.users[0];
    assert_int_equal(lu->place_count, 1); /* the tabs share one place */
    assert_int_equal(lu->places[0].join_sent_us, j0->sent_us);
    assert_int_equal(F.st_n, 2);
    stream_say(0, BR_RUSH_STREAM_OPEN, 200, NULL, NULL);
    stream_say(1, BR_RUSH_STREAM_OPEN, 200, NULL, NULL);
    stream_say(1, BR_RUSH_STREAM_EVENT, 0, "pass", PASS_DATA);
    assert_false(F.st[0].open); /* the other tab's stream closed: the pass is shared */
    run_until(F.now_us + 2000000);
    assert_int_equal(pending_count("/api/v1/bookings/reserve"), 2);
    struct fake_req *r0 = pending("/api/v1/bookings/reserve");
    answer(r0, 403, "{\"error\":{\"code\":\"PASS_INVALID\",\"message\":\"used\"}}");
    struct fake_req *r1 = pending("/api/v1/bookings/reserve");
    assert_string_equal(r0->pass, r1->pass);
    assert_string_not_equal(r0->key, r1->key); /* each tab its own key */
    assert_string_not_equal(r0->body, r1->body); /* tab 1 asks for the next zone */
    answer(r1, 201, BOOKING(9));
    assert_int_equal(lu->booking_count, 1);
    run_until(F.now_us + 2000000);
    struct fake_req *p = pending("/api/v1/payments");
    assert_string_equal(p->body, "{\"booking_id\":9}"); /* the winning tab's booking is paid */
    world_free(&w);
}

static void test_crowd_cut_stream_reconnects_and_stop_closes(void **state)
{
    (void)state;
    static struct world w;
    world_init(&w, 0, 0, 0);
    run_until(F.now_us + 1000000);
    answer(pending("/api/v1/queue/join"), 200, "{\"status\":\"waiting\"}");
    stream_say(0, BR_RUSH_STREAM_OPEN, 200, NULL, NULL);
    stream_say(0, BR_RUSH_STREAM_CUT, 0, NULL, NULL);
    F.st[0].open = false;
    run_until(F.now_us + 2900000);
    assert_int_equal(F.st_n, 1); /* not before the retry delay */
    run_until(F.now_us + 200000);
    assert_int_equal(F.st_n, 2);
    stream_say(1, BR_RUSH_STREAM_OPEN, 200, NULL, NULL);
    stream_say(1, BR_RUSH_STREAM_EVENT, 0, "pass", PASS_DATA);
    struct br_rush_user *lu = &w.l.users[0];
    assert_int_equal(lu->places[0].pass_via, 2);
    assert_int_equal(F.pass_reconnected, 1);
    run_until(F.now_us + 250000);
    assert_int_equal(pending_count("/api/v1/bookings/reserve"), 1);
    br_rush_crowd_stop(w.c);
    assert_false(br_rush_crowd_idle(w.c)); /* the reserve is still in flight */
    answer(pending("/api/v1/bookings/reserve"), 201, BOOKING(5));
    assert_int_equal(lu->booking_count, 1); /* recorded after the stop */
    assert_true(br_rush_crowd_idle(w.c) && br_rush_crowd_done(w.c));
    run_until(F.now_us + 5000000);
    assert_int_equal(pending_count("/api/v1/payments"), 0); /* nothing new after the stop */
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_gives_same_plans),
        cmocka_unit_test(test_fractions_within_3_sigma),
        cmocka_unit_test(test_arrivals_inside_their_windows),
        cmocka_unit_test(test_quantity_capped_and_cards_drawn),
        cmocka_unit_test(test_timing_fits_duration_with_floors),
        cmocka_unit_test(test_crowd_join_pass_reserve_pay_confirmed),
        cmocka_unit_test(test_crowd_double_click_same_key_both_answers_kept),
        cmocka_unit_test(test_crowd_tabs_race_for_one_pass),
        cmocka_unit_test(test_crowd_cut_stream_reconnects_and_stop_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
