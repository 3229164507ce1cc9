/*
 * rush_plan.c -- each user's plan for a rush, drawn from the scenario's crowd
 * fields and the seed, and the time scaling that fits a scenario into
 * --duration.
 *
 * A plan mirrors what sim/driver.c does with the same fields: the arrival
 * (draw_arrival: early, spike, tail), the traits a person draws on first
 * arrival (arrive(): patience and silent leave, double click, tabs, greedy),
 * admitted_abandon (on_pass), abandon_hold and cancel (adopt_hold and
 * user_step: abandon first, else cancel), the quantity (pick_qty: weighted,
 * capped at the limit, greedy = limit + 1), the zone (pick_zone: zone
 * weights, 0 = 1.0), the card (payments.decline_rate) and
 * retry_after_decline. The rush draws each choice once per user where the
 * simulator rolls some of them at every occasion (rejoin_fraction); that is
 * the one difference, and it is the same fraction of users.
 *
 * Determinism: one rng stream per user, br_rng_seed(seed, BR_RUSH_STREAM ^
 * user), and every draw is made whatever the earlier ones gave, so the k-th
 * number always decides the same thing and a plan depends on (scenario,
 * seed, user, scale, opening) only.
 *
 * Times: the plan's times are real microseconds; arrive_us counts from the
 * crowd's start (t = 0), the opening is at open_us. A scenario millisecond
 * is scale_us_per_ms real microseconds. Early arrivals spread over the whole
 * [0, open_us) (the --open-in window; by default the scaled early window),
 * spike arrivals are exponential after the opening truncated at the fit
 * window (tail + 3 x spike decay, scaled; the simulator caps at 4 x tail),
 * tail arrivals are uniform over the scaled tail window. Think times,
 * patience and double-click gaps have a floor of BR_RUSH_THINK_FLOOR_MS.
 */
#include <math.h>
#include <stddef.h>

#include "core/limits.h"
#include "core/rng.h"
#include "server/rush_crowd.h"

static int64_t floor_us(int64_t us)
{
    return us < (int64_t)BR_RUSH_THINK_FLOOR_MS * 1000 ? (int64_t)BR_RUSH_THINK_FLOOR_MS * 1000 : us;
}

static int64_t scaled_us(double ms, double scale_us_per_ms)
{
    double us = ms * scale_us_per_ms;
    return us > 1e15 ? (int64_t)1e15 : us < 0 ? 0 : (int64_t)us;
}

/* Uniform in [min, max] scenario ms (the simulator's range_draw), from u in [0, 1). */
static double range_ms(struct br_scn_range rg, double u)
{
    if (rg.max_ms <= rg.min_ms) {
        return (double)rg.min_ms;
    }
    return (double)rg.min_ms + floor(u * (double)(rg.max_ms - rg.min_ms + 1));
}

/* Index drawn by weight from u in [0, 1); all weights 0 = uniform. */
static uint32_t weighted(const double *w, uint32_t n, double u)
{
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sum += w[i] > 0 ? w[i] : 0;
    }
    if (sum <= 0) {
        uint32_t i = (uint32_t)(u * n);
        return i < n ? i : n - 1;
    }
    double x = u * sum;
    for (uint32_t i = 0; i < n; i++) {
        double wi = w[i] > 0 ? w[i] : 0;
        if (x < wi) {
            return i;
        }
        x -= wi;
    }
    return n - 1;
}

int64_t br_rush_plan_fit_us(const struct br_scenario *scn, double scale_us_per_ms)
{
    const struct br_scn_crowd *c = &scn->crowd;
    return scaled_us((double)c->tail_window_ms + 3.0 * (double)c->spike_decay_ms, scale_us_per_ms);
}

void br_rush_plan_timing(const struct br_scenario *scn, const struct br_rush_config *cfg,
                         double *time_scale, uint32_t *open_in_ms)
{
    const struct br_scn_crowd *c = &scn->crowd;
    double after = (double)c->tail_window_ms + 3.0 * (double)c->spike_decay_ms;
    double budget = 0.8 * (double)cfg->duration_s * 1000.0;
    double scale = cfg->time_scale;
    if (scale <= 0) {
        if (cfg->open_in_ms > 0) {
            /* The opening is fixed: what comes after it gets the rest (at least a third). */
            double rest = budget - (double)cfg->open_in_ms;
            rest = rest < budget / 3 ? budget / 3 : rest;
            scale = after > 0 ? rest / after : 1.0;
        } else {
            double total = (double)c->early_window_ms + after;
            scale = total > 0 ? budget / total : 1.0;
        }
    }
    uint32_t open = cfg->open_in_ms;
    if (open == 0) {
        double early = (double)c->early_window_ms * scale;
        open = early < BR_RUSH_OPEN_IN_MIN_MS ? BR_RUSH_OPEN_IN_MIN_MS
               : early > 3600000.0            ? 3600000u
                                              : (uint32_t)early;
    }
    *time_scale = scale;
    *open_in_ms = open;
}

int64_t br_rush_plan_ttl_ms(int64_t scenario_ms, double time_scale, int64_t floor_ms)
{
    double ms = (double)scenario_ms * time_scale;
    int64_t v = ms > 1e12 ? (int64_t)1e12 : (int64_t)ceil(ms);
    if (v < floor_ms) {
        v = floor_ms;
    }
    return (v + 999) / 1000 * 1000; /* whole seconds: the event's TTLs are given in s */
}

static int64_t draw_arrival(const struct br_scenario *scn, double scale, int64_t open_us,
                            const double u[4])
{
    const struct br_scn_crowd *c = &scn->crowd;
    if (u[0] < c->early_fraction && open_us > 0) {
        int64_t v = open_us - 1 - (int64_t)(u[1] * (double)open_us);
        return v < 0 ? 0 : v;
    }
    if (open_us < 0) {
        open_us = 0;
    }
    if (u[2] < c->spike_fraction) {
        /* Exponential with the scaled decay, truncated at the fit window. */
        double mean = (double)c->spike_decay_ms * scale;
        double cap = (double)br_rush_plan_fit_us(scn, scale);
        double top = mean > 0 ? 1.0 - exp(-cap / mean) : 0;
        double v = mean > 0 ? -log(1.0 - u[3] * top) * mean : 0;
        return open_us + (v > cap ? (int64_t)cap : (int64_t)v);
    }
    return open_us + (int64_t)(u[3] * (double)scaled_us((double)c->tail_window_ms, scale));
}

void br_rush_plan_draw(const struct br_scenario *scn, uint64_t seed, uint32_t user,
                       double scale_us_per_ms, int64_t open_us, const struct br_rush_event *ev,
                       struct br_rush_plan *out)
{
    const struct br_scn_crowd *c = &scn->crowd;
    uint32_t ei = br_scenario_event_of_user(scn, user);
    const struct br_event_spec *sp = &scn->events[ei < scn->event_count ? ei : 0].spec;
    uint32_t limit = ev != NULL ? ev->per_user_limit : sp->per_user_limit;
    uint32_t zones = ev != NULL ? ev->zone_count : sp->zone_count;
    if (zones == 0 || zones > BR_EVENT_ZONES_MAX) {
        zones = 1;
    }
    struct br_rng r;
    br_rng_seed(&r, seed, BR_RUSH_STREAM ^ user);
    double u[32];
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        u[i] = br_rng_unit(&r); /* every draw made: the k-th number always decides the same thing */
    }
    *out = (struct br_rush_plan){0};
    out->arrive_us = draw_arrival(scn, scale_us_per_ms, open_us, u);
    if (u[4] < c->patience_fraction) {
        out->patience_us = floor_us(scaled_us(-log(1.0 - u[5]) * (double)c->patience_mean_ms,
                                              scale_us_per_ms));
        out->silent_leave = u[6] < c->silent_leave_fraction;
    }
    out->double_click = u[7] < c->double_click_fraction;
    out->dclick_gap_us = floor_us(scaled_us(20.0 + floor(u[8] * 400.0), scale_us_per_ms));
    out->tabs = 1;
    if (u[9] < c->tabs_fraction) {
        uint32_t tmax = c->tabs_max < BR_RUSH_TABS_MAX ? c->tabs_max : BR_RUSH_TABS_MAX;
        tmax = tmax < 2 ? 2 : tmax;
        out->tabs = (uint8_t)(2 + (uint32_t)(u[10] * (double)(tmax - 1)));
    }
    out->greedy = u[11] < c->greedy_fraction;
    out->admitted_abandon = u[12] < c->admitted_abandon_fraction;
    out->abandon_hold = u[13] < c->abandon_hold_fraction;
    out->cancel = !out->abandon_hold && u[14] < c->cancel_fraction;
    out->rejoin = u[15] < c->rejoin_fraction && c->rejoins_max > 0;
    uint32_t q = weighted(c->quantity_weights, BR_SCN_QTY_MAX, u[16]) + 1;
    if (out->greedy) {
        q = limit + 1; /* past the limit on purpose: expects 409 LIMIT_EXCEEDED */
    } else if (q > limit) {
        q = limit;
    }
    out->quantity = (uint8_t)(q > BR_HOLD_QUANTITY_MAX ? BR_HOLD_QUANTITY_MAX : q < 1 ? 1 : q);
    double zw[BR_EVENT_ZONES_MAX];
    for (uint32_t z = 0; z < zones; z++) {
        zw[z] = c->zone_weights[z] > 0 ? c->zone_weights[z] : 1.0;
    }
    out->zone_id = (uint8_t)(weighted(zw, zones, u[17]) + 1);
    out->card = u[18] < scn->payments.decline_rate ? (uint8_t)(u[19] < 0.5 ? 1 : 2) : 0;
    out->retry_after_decline = u[20] < scn->payments.retry_after_decline;
    out->reuse_probe = u[21] < BR_RUSH_REUSE_PROBE_FRACTION;
    /* Before reserve (the pass seen, sim: think / 4), pay (think), confirm (think / 4), cancel. */
    out->think_us[0] = floor_us(scaled_us(range_ms(c->think_ms, u[22]) / 4, scale_us_per_ms));
    out->think_us[1] = floor_us(scaled_us(range_ms(c->think_ms, u[23]), scale_us_per_ms));
    out->think_us[2] = floor_us(scaled_us(range_ms(c->think_ms, u[24]) / 4, scale_us_per_ms));
    out->think_us[3] = floor_us(scaled_us(range_ms(c->think_ms, u[25]), scale_us_per_ms));
    /* --stream-drops is applied by the crowd (it is not a scenario field): the delay after
     * which a dropped stream is cut, 100 ms .. 1.5 s of real time, not scaled. */
    out->drop_stream_after_us = 100000 + (int64_t)(u[26] * 1400000.0);
    out->drop_u = u[27];
}
