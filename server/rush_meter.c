/*
 * rush_meter.c -- the rush's measurements (rush_meter.h): per-route
 * histograms and counts, the windows, passes, storm logins, the server's
 * samples and the progress line. Also the route names (rush.h), which the
 * meter's table and the report's keys share.
 *
 * Windows are computed when read, from the kept (sent, latency) pairs of every
 * reserve answer, so the command may set a window's end only when it is known
 * (the storm's last login answered) and a reserve sent before that counts.
 */
#define _POSIX_C_SOURCE 200809L

#include "server/rush_meter.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/err.h"
#include "core/panic.h"
#include "server/rush_net.h"

static const char *const ROUTE_NAMES[BR_RR_COUNT] = {
    [BR_RR_REGISTER] = "POST /api/v1/auth/register",
    [BR_RR_LOGIN] = "POST /api/v1/auth/login",
    [BR_RR_REFRESH] = "POST /api/v1/auth/refresh",
    [BR_RR_EVENT_CREATE] = "POST /api/v1/events",
    [BR_RR_EVENT_GET] = "GET /api/v1/events/{id}",
    [BR_RR_STATS] = "GET /api/v1/admin/events/{id}/stats",
    [BR_RR_JOIN] = "POST /api/v1/queue/join",
    [BR_RR_STREAM] = "GET /api/v1/queue/position/{event_id}/stream",
    [BR_RR_POSITION] = "GET /api/v1/queue/position/{event_id}",
    [BR_RR_LEAVE] = "DELETE /api/v1/queue/leave",
    [BR_RR_RESERVE] = "POST /api/v1/bookings/reserve",
    [BR_RR_BOOKINGS] = "GET /api/v1/bookings",
    [BR_RR_BOOKING_GET] = "GET /api/v1/bookings/{id}",
    [BR_RR_CANCEL] = "POST /api/v1/bookings/{id}/cancel",
    [BR_RR_PAYMENT] = "POST /api/v1/payments",
    [BR_RR_CONFIRM] = "POST /test-provider/v1/payment_intents/{id}/confirm",
    [BR_RR_METRICS] = "GET /metrics",
};

const char *br_rush_route_name(unsigned route)
{
    return route < BR_RR_COUNT ? ROUTE_NAMES[route] : "?";
}

static const char *net_err_name(int err)
{
    switch (err) {
    case BR_RUSH_NET_TIMEOUT:
        return "TIMEOUT";
    case BR_RUSH_NET_CLOSED:
        return "CLOSED";
    case BR_RUSH_NET_PROTOCOL:
        return "PROTOCOL";
    case BR_RUSH_NET_CONNECT:
        return "CONNECT";
    default:
        return "NO_ANSWER";
    }
}

struct ring {                       /* five 1-second histograms, slot = second % 5 */
    int64_t second[BR_RUSH_RING_S]; /* the second (since t0) a slot holds; -1 = empty */
    struct br_rush_hist h[BR_RUSH_RING_S];
};

struct route_meter {
    uint64_t n;
    struct br_rush_hist latency, queued;
    struct ring last;
    uint32_t status[BR_RUSH_STATUS_MAX];
    struct br_rush_code_count codes[BR_RUSH_CODES_MAX];
    uint32_t code_count, codes_other;
};

struct window_sample {   /* a reserve as its buyer saw it */
    int64_t sent_us;     /* when the crowd sent it: queued for a connection from then */
    uint64_t latency_us; /* queued + first byte written .. last byte read */
    uint64_t arrived_us; /* queued + first byte written .. last byte received (<= latency_us) */
};

struct server_slot {
    struct br_rush_server_sample last;
    struct br_rush_server_peaks peak;
};

struct br_rush_meter {
    int64_t t0_us, next_print_us;
    struct route_meter routes[BR_RR_COUNT];
    bool window_set[BR_RUSH_WIN_COUNT];
    int64_t window_from_us[BR_RUSH_WIN_COUNT], window_to_us[BR_RUSH_WIN_COUNT];
    struct window_sample *reserves; /* every reserve answer: (click, click .. answer) */
    uint32_t reserve_count, reserve_cap, reserves_dropped;
    struct br_rush_hist pass_direct, pass_reconnected;
    struct ring pass_last;
    uint64_t pass_clamped;
    struct br_rush_storm_view storm;
    struct br_rush_hist storm_latency;
    struct server_slot servers[BR_RUSH_TARGETS_MAX];
    uint32_t streams_summed_peak; /* peak of the sum of the targets' latest sse_streams */
    uint32_t streams_now, streams_peak, admitted_baseline;
    uint64_t retried_closed;
};

static void ring_init(struct ring *r)
{
    for (uint32_t i = 0; i < BR_RUSH_RING_S; i++) {
        r->second[i] = -1;
    }
}

static void ring_add(struct ring *r, int64_t second, uint64_t us)
{
    if (second < 0) {
        second = 0;
    }
    uint32_t slot = (uint32_t)(second % BR_RUSH_RING_S);
    if (r->second[slot] != second) {
        br_rush_hist_reset(&r->h[slot]);
        r->second[slot] = second;
    }
    br_rush_hist_add(&r->h[slot], us);
}

/* The last five seconds up to and including `second`, merged into out. */
static void ring_merge(const struct ring *r, int64_t second, struct br_rush_hist *out)
{
    for (uint32_t i = 0; i < BR_RUSH_RING_S; i++) {
        if (r->second[i] >= 0 && r->second[i] <= second &&
            r->second[i] > second - (int64_t)BR_RUSH_RING_S) {
            br_rush_hist_merge(out, &r->h[i]);
        }
    }
}

static uint64_t ring_count(const struct ring *r, int64_t second)
{
    uint32_t slot = (uint32_t)((second < 0 ? 0 : second) % BR_RUSH_RING_S);
    return r->second[slot] == second ? r->h[slot].count : 0;
}

int br_rush_meter_new(struct br_rush_meter **out, int64_t t0_us)
{
    struct br_rush_meter *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return BR_E_FULL;
    }
    m->t0_us = t0_us;
    m->next_print_us = t0_us + 1000000;
    for (uint32_t r = 0; r < BR_RR_COUNT; r++) {
        ring_init(&m->routes[r].last);
    }
    ring_init(&m->pass_last);
    m->storm.latency = &m->storm_latency;
    *out = m;
    return BR_OK;
}

void br_rush_meter_free(struct br_rush_meter *m)
{
    if (m != NULL) {
        free(m->reserves);
        free(m);
    }
}

static void count_code(struct route_meter *rm, int status, const char *code)
{
    for (uint32_t i = 0; i < rm->code_count; i++) {
        if (rm->codes[i].status == status &&
            strncmp(rm->codes[i].code, code, BR_RUSH_CODE_MAX - 1) == 0) {
            rm->codes[i].n++;
            return;
        }
    }
    if (rm->code_count == BR_RUSH_CODES_MAX) {
        rm->codes_other++;
        return;
    }
    struct br_rush_code_count *c = &rm->codes[rm->code_count++];
    c->status = status;
    c->n = 1;
    snprintf(c->code, sizeof c->code, "%s", code);
}

static void keep_reserve(struct br_rush_meter *m, int64_t sent_us, uint64_t latency_us,
                         uint64_t arrived_us)
{
    if (m->reserve_count == m->reserve_cap) {
        uint32_t cap = m->reserve_cap ? m->reserve_cap * 2 : 4096;
        struct window_sample *p = NULL;
        if (cap <= BR_RUSH_WINDOW_SAMPLES_MAX) {
            p = realloc(m->reserves, cap * sizeof *p);
        }
        if (p == NULL) {
            m->reserves_dropped++;
            return;
        }
        m->reserves = p;
        m->reserve_cap = cap;
    }
    m->reserves[m->reserve_count++] = (struct window_sample){sent_us, latency_us, arrived_us};
}

void br_rush_meter_request(struct br_rush_meter *m, const struct br_rush_resp *r, const char *code)
{
    BR_ASSERT(r->route < BR_RR_COUNT);
    struct route_meter *rm = &m->routes[r->route];
    rm->n++;
    int status = r->status < 0 ? 0
                               : (r->status >= (int)BR_RUSH_STATUS_MAX ? (int)BR_RUSH_STATUS_MAX - 1
                                                                       : r->status);
    rm->status[status]++;
    if (r->sent_us > 0) {
        br_rush_hist_add(&rm->queued, r->queued_us > 0 ? (uint64_t)r->queued_us : 0);
    }
    if (status == 0) {
        count_code(rm, 0, net_err_name(r->err));
    } else if (status >= 400) {
        count_code(rm, status, code != NULL ? code : "");
    }
    if (status == 0 || r->sent_us <= 0 || r->done_us < r->sent_us) {
        return; /* no answer: no latency */
    }
    uint64_t lat = (uint64_t)(r->done_us - r->sent_us);
    br_rush_hist_add(&rm->latency, lat);
    ring_add(&rm->last, (r->done_us - m->t0_us) / 1000000, lat);
    if (r->route == BR_RR_RESERVE) {
        /* The windows judge what the buyer waited: a reserve queued behind the
         * rush's own connections waited too, so the queue is counted there. */
        uint64_t queued = r->queued_us > 0 ? (uint64_t)r->queued_us : 0;
        uint64_t arrived = r->arrived_us >= r->sent_us && r->arrived_us <= r->done_us
                               ? (uint64_t)(r->arrived_us - r->sent_us)
                               : lat;
        keep_reserve(m, r->sent_us - (int64_t)queued, lat + queued, arrived + queued);
    }
}

void br_rush_meter_window(struct br_rush_meter *m, enum br_rush_window w, int64_t from_us,
                          int64_t to_us)
{
    BR_ASSERT((unsigned)w < BR_RUSH_WIN_COUNT);
    m->window_set[w] = true;
    m->window_from_us[w] = from_us;
    m->window_to_us[w] = to_us;
}

void br_rush_meter_pass(struct br_rush_meter *m, int64_t admit_to_pass_ms, bool reconnected)
{
    if (admit_to_pass_ms < 0) {
        m->pass_clamped++;
        admit_to_pass_ms = 0;
    }
    uint64_t us = (uint64_t)admit_to_pass_ms * 1000u;
    br_rush_hist_add(reconnected ? &m->pass_reconnected : &m->pass_direct, us);
    ring_add(&m->pass_last, (br_rush_now_us() - m->t0_us) / 1000000, us);
}

void br_rush_meter_storm_login(struct br_rush_meter *m, int status, int64_t latency_us,
                               bool retried)
{
    if (status == 503) {
        m->storm.overloaded++;
    }
    if (retried) {
        m->storm.retried++;
        return;
    }
    m->storm.sent++;
    if (status == 200 || status == 401) {
        if (status == 200) {
            m->storm.ok++;
        } else {
            m->storm.unauthorized++;
        }
        br_rush_hist_add(&m->storm_latency, latency_us > 0 ? (uint64_t)latency_us : 0);
    } else {
        m->storm.failed++;
    }
}

static void peak_max(double *peak, double v)
{
    if (v > *peak) {
        *peak = v;
    }
}

void br_rush_meter_server(struct br_rush_meter *m, uint32_t target,
                          const struct br_rush_server_sample *s)
{
    if (target >= BR_RUSH_TARGETS_MAX) {
        return;
    }
    struct server_slot *t = &m->servers[target];
    t->last = *s;
    t->peak.samples++;
    peak_max(&t->peak.rss_bytes, s->rss_bytes);
    peak_max(&t->peak.vmhwm_bytes, s->vmhwm_bytes);
    if (s->open_fds > t->peak.open_fds) {
        t->peak.open_fds = s->open_fds;
    }
    if (s->sse_streams > t->peak.sse_streams) {
        t->peak.sse_streams = s->sse_streams;
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < BR_RUSH_TARGETS_MAX; i++) {
        sum += m->servers[i].last.sse_streams;
    }
    if (sum > m->streams_summed_peak) {
        m->streams_summed_peak = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
    }
}

void br_rush_meter_streams(struct br_rush_meter *m, uint32_t open)
{
    m->streams_now = open;
    if (open > m->streams_peak) {
        m->streams_peak = open;
    }
}

void br_rush_meter_admitted_baseline(struct br_rush_meter *m, uint32_t admitted)
{
    m->admitted_baseline = admitted;
}

void br_rush_meter_retried_closed(struct br_rush_meter *m, uint64_t total)
{
    m->retried_closed = total;
}

static const char *find(const char *hay, const char *end, const char *needle)
{
    size_t k = strlen(needle);
    for (const char *p = hay; p + k <= end; p++) {
        if (memcmp(p, needle, k) == 0) {
            return p;
        }
    }
    return NULL;
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* A quote inside a JSON string is escaped, so an unescaped "code" is a key or a whole string value;
 * the key is the one followed by a colon. */
const char *br_rush_error_code(const char *body, size_t len, char *buf, size_t n)
{
    if (body == NULL || n == 0) {
        return NULL;
    }
    const char *end = body + len, *p = find(body, end, "\"error\"");
    for (p = p ? find(p + 7, end, "\"code\"") : NULL; p != NULL; p = find(p + 6, end, "\"code\"")) {
        const char *v = skip_space(p + 6, end);
        if (v < end && *v == ':') {
            p = skip_space(v + 1, end);
            break;
        }
    }
    if (p == NULL || p >= end || *p != '"') {
        return NULL;
    }
    p++;
    size_t k = 0;
    while (p < end && k + 1 < n &&
           ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '_')) {
        buf[k++] = *p++;
    }
    buf[k] = '\0';
    return k > 0 ? buf : NULL;
}

const char *br_rush_format_us(uint64_t us, char *buf, size_t n)
{
    double ms = (double)us / 1000.0;
    if (ms < 10.0) {
        snprintf(buf, n, "%.1fms", ms);
    } else if (ms < 1000.0) {
        snprintf(buf, n, "%.0fms", ms);
    } else if (ms < 10000.0) {
        snprintf(buf, n, "%.2fs", ms / 1000.0);
    } else {
        snprintf(buf, n, "%.1fs", ms / 1000.0);
    }
    return buf;
}

uint32_t br_rush_meter_top_errors(const struct br_rush_meter *m, int route,
                                  struct br_rush_code_count *top, uint32_t top_max)
{
    struct br_rush_code_count all[BR_RR_COUNT * BR_RUSH_CODES_MAX];
    uint32_t n = 0;
    for (uint32_t r = 0; r < BR_RR_COUNT; r++) {
        if (route >= 0 && (uint32_t)route != r) {
            continue;
        }
        const struct route_meter *rm = &m->routes[r];
        for (uint32_t i = 0; i < rm->code_count; i++) {
            uint32_t j = 0;
            while (j < n && !(all[j].status == rm->codes[i].status &&
                              strcmp(all[j].code, rm->codes[i].code) == 0)) {
                j++;
            }
            if (j == n) {
                all[n++] = rm->codes[i];
            } else {
                all[j].n += rm->codes[i].n;
            }
        }
    }
    uint32_t k = 0;
    for (; k < top_max && k < n; k++) { /* selection of the largest, ties in first-seen order */
        uint32_t best = k;
        for (uint32_t j = k + 1; j < n; j++) {
            if (all[j].n > all[best].n) {
                best = j;
            }
        }
        struct br_rush_code_count t = all[k];
        all[k] = all[best];
        all[best] = t;
        top[k] = all[k];
    }
    return k;
}

static void print_progress(const struct br_rush_meter *m, int64_t now_us,
                           const struct br_rush_progress *p, FILE *f)
{
    int64_t sec = (now_us - m->t0_us) / 1000000;
    uint32_t queue = 0, admitted = 0;
    for (uint32_t t = 0; t < BR_RUSH_TARGETS_MAX; t++) {
        const struct br_rush_server_sample *s = &m->servers[t].last;
        queue = s->queue_length > queue ? s->queue_length : queue;
        admitted = s->admitted > admitted ? s->admitted : admitted;
    }
    uint64_t passes = m->pass_direct.count + m->pass_reconnected.count, rps = 0;
    uint32_t due = admitted > m->admitted_baseline ? admitted - m->admitted_baseline : 0;
    for (uint32_t r = 0; r < BR_RR_COUNT; r++) {
        rps += ring_count(&m->routes[r].last, sec - 1);
    }
    struct br_rush_hist *h = calloc(1, sizeof *h);
    char reserve[16] = "-", pass[16] = "-";
    if (h != NULL) {
        ring_merge(&m->routes[BR_RR_RESERVE].last, sec, h);
        if (h->count > 0) {
            br_rush_format_us(br_rush_hist_quantile(h, 0.99), reserve, sizeof reserve);
        }
        br_rush_hist_reset(h);
        ring_merge(&m->pass_last, sec, h);
        if (h->count > 0) {
            br_rush_format_us(br_rush_hist_quantile(h, 0.99), pass, sizeof pass);
        }
        free(h);
    }
    fprintf(f,
            "rush: %llds queue %u admitted %u passes %llu/%u held %u sold %u streams %u | %llu "
            "req/s reserve "
            "p99(5s) %s pass p99(5s) %s |",
            (long long)sec, queue, admitted, (unsigned long long)passes, due, p ? p->held : 0,
            p ? p->paid : 0, m->streams_now, (unsigned long long)rps, reserve, pass);
    struct br_rush_code_count top[3];
    uint32_t k = br_rush_meter_top_errors(m, -1, top, 3);
    fprintf(f, k ? " err" : " err -");
    for (uint32_t i = 0; i < k; i++) {
        fprintf(f, " %d:%s=%u", top[i].status, top[i].code[0] ? top[i].code : "-", top[i].n);
    }
    fputc('\n', f);
    fflush(f);
}

void br_rush_meter_tick(struct br_rush_meter *m, int64_t now_us, const struct br_rush_progress *p,
                        FILE *f)
{
    if (now_us < m->next_print_us) {
        return;
    }
    int64_t sec = (now_us - m->t0_us) / 1000000;
    m->next_print_us = m->t0_us + (sec + 1) * 1000000;
    if (f != NULL) {
        print_progress(m, now_us, p, f);
    }
}

const struct br_rush_hist *br_rush_meter_route(const struct br_rush_meter *m, unsigned route)
{
    BR_ASSERT(route < BR_RR_COUNT);
    return &m->routes[route].latency;
}

void br_rush_meter_route_view(const struct br_rush_meter *m, unsigned route,
                              struct br_rush_route_view *out)
{
    BR_ASSERT(route < BR_RR_COUNT);
    const struct route_meter *rm = &m->routes[route];
    out->n = rm->n;
    out->latency = &rm->latency;
    out->queued = &rm->queued;
    out->status = rm->status;
    out->codes = rm->codes;
    out->code_count = rm->code_count;
    out->codes_other = rm->codes_other;
}

bool br_rush_meter_window_bounds(const struct br_rush_meter *m, enum br_rush_window w,
                                 int64_t *from_us, int64_t *to_us)
{
    BR_ASSERT((unsigned)w < BR_RUSH_WIN_COUNT);
    *from_us = m->window_from_us[w];
    *to_us = m->window_to_us[w];
    return m->window_set[w];
}

void br_rush_meter_window_reserve(const struct br_rush_meter *m, enum br_rush_window w, bool arrived,
                                  struct br_rush_hist *out)
{
    BR_ASSERT((unsigned)w < BR_RUSH_WIN_COUNT);
    br_rush_hist_reset(out);
    if (!m->window_set[w]) {
        return;
    }
    for (uint32_t i = 0; i < m->reserve_count; i++) {
        const struct window_sample *s = &m->reserves[i];
        if (s->sent_us >= m->window_from_us[w] && s->sent_us < m->window_to_us[w]) {
            br_rush_hist_add(out, arrived ? s->arrived_us : s->latency_us);
        }
    }
}

void br_rush_meter_storm_view(const struct br_rush_meter *m, struct br_rush_storm_view *out)
{
    *out = m->storm;
    out->latency = &m->storm_latency;
}

void br_rush_meter_pass_view(const struct br_rush_meter *m, struct br_rush_pass_view *out)
{
    out->direct = &m->pass_direct;
    out->reconnected = &m->pass_reconnected;
    out->clamped = m->pass_clamped;
}

void br_rush_meter_server_peaks(const struct br_rush_meter *m, uint32_t target,
                                struct br_rush_server_peaks *out)
{
    memset(out, 0, sizeof *out);
    if (target != UINT32_MAX) {
        if (target < BR_RUSH_TARGETS_MAX) {
            *out = m->servers[target].peak;
        }
        return;
    }
    for (uint32_t t = 0; t < BR_RUSH_TARGETS_MAX; t++) {
        const struct br_rush_server_peaks *p = &m->servers[t].peak;
        peak_max(&out->rss_bytes, p->rss_bytes);
        peak_max(&out->vmhwm_bytes, p->vmhwm_bytes);
        out->open_fds = p->open_fds > out->open_fds ? p->open_fds : out->open_fds;
        out->samples += p->samples;
    }
    out->sse_streams = m->streams_summed_peak;
}

void br_rush_meter_client(const struct br_rush_meter *m, struct br_rush_client_view *out)
{
    struct rusage ru;
    memset(out, 0, sizeof *out);
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        out->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        out->rss_peak_bytes = (uint64_t)ru.ru_maxrss * 1024u; /* Linux: KiB */
    }
    out->streams_peak = m->streams_peak;
}

uint64_t br_rush_meter_retried_closed_total(const struct br_rush_meter *m)
{
    return m->retried_closed;
}

uint32_t br_rush_meter_reserves_dropped(const struct br_rush_meter *m)
{
    return m->reserves_dropped;
}
