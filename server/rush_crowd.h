/*
 * rush_crowd.h -- the crowd: each user's plan drawn from the scenario and
 * the seed (rush_plan.c, deterministic), and the per-user state machine
 * over rush_net that joins, listens for the pass, reserves, pays, cancels
 * and abandons, filling the ledger (rush_crowd.c).
 */
#ifndef BR_SERVER_RUSH_CROWD_H
#define BR_SERVER_RUSH_CROWD_H

#include <stdbool.h>
#include <stdint.h>

#include "server/rush.h"
#include "server/rush_meter.h"
#include "server/rush_net.h"
#include "sim/scenario.h"
#define BR_RUSH_STREAM 0x5255534800000000ULL     /* "RUSH": the plans' rng stream, ^ user */
struct br_rush_plan {
    int64_t arrive_us, patience_us, drop_stream_after_us, dclick_gap_us;  /* 0 = none / infinite */
    int64_t think_us[4];                         /* before reserve, pay, confirm, cancel */
    uint8_t tabs, zone_id, quantity, card;       /* card: 0 visa, 1 chargeDeclined, 2 insufficient funds */
    bool double_click, greedy, admitted_abandon, abandon_hold, cancel, rejoin, silent_leave,
         retry_after_decline, reuse_probe;
};
/* Deterministic in (scn, seed, user); scale in real us per scenario ms. */
void br_rush_plan_draw(const struct br_scenario *scn, uint64_t seed, uint32_t user, double scale_us_per_ms,
                       int64_t open_us, const struct br_rush_event *ev, struct br_rush_plan *out);
struct br_rush_crowd;
int br_rush_crowd_new(struct br_rush_crowd **c, const struct br_rush_config *cfg, const struct br_scenario *scn,
                      struct br_rush_ledger *ledger, struct br_rush_net *net, struct br_rush_meter *meter);
void br_rush_crowd_free(struct br_rush_crowd *c);
/* Schedules arrivals from t0_us; the storm (storm accounts) fires over [open_us, open_us + window). */
void br_rush_crowd_start(struct br_rush_crowd *c, int64_t t0_us, int64_t open_us);
bool br_rush_crowd_done(void *c);                /* every user terminal: br_rush_net_run's done */
void br_rush_crowd_stop(struct br_rush_crowd *c); /* no new actions, streams closed; in-flight completes */
void br_rush_crowd_progress(const struct br_rush_crowd *c, struct br_rush_progress *p);
void br_rush_crowd_on_timer(void *c, uint32_t timer);  /* the net's timer callback (ctx = crowd) */

#endif /* BR_SERVER_RUSH_CROWD_H */
