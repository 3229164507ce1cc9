/*
 * rush_crowd.h -- the crowd: each user's plan drawn from the scenario and
 * the seed (rush_plan.c, deterministic), and the per-user state machine
 * over rush_net that joins, listens for the pass, reserves, pays, cancels
 * and abandons, filling the ledger (rush_crowd.c).
 *
 * One user (all its tabs share one place in the queue; tab 0 carries the
 * flow after the reserve):
 *
 *  ARRIVE -join x tabs-> JOINED -stream open-> WAITING --pass event--> ADMITTED -think-> RESERVING -201-> HELD
 *    |        | 429/503/timeout: retry <= 3       | patience: leave (DELETE) -> LEFT         (every tab,     |
 *    |        | other 4xx: that tab ends          | silent: close the streams -> GONE         same pass)     |- cancel -> CANCELLED
 *    |                                            | cut: reconnect <= 5 after 3 s                            |- abandon -> ABANDONED
 *    |                                            | server ends it (expired/left) -> rejoin or DONE          '- pay: create -> confirm(card)
 *    |  RESERVING: 409 SOLD_OUT -> next zone, else rejoin or DONE; 403 PASS_* -> rejoin or DONE;              |- succeeded / 409 -> PAID
 *    |  409 LIMIT_EXCEEDED: greedy -> ask what the limit allows, else DONE; 429/503/timeout: retry <= 3      |- declined -> visa again? : DONE
 *    |  (same key); a tab's 403 PASS_INVALID after another tab's 201 ends only that tab.                     '- no answer -> UNKNOWN, DONE
 *    '- admitted_abandon: the pass is recorded, no reserve.    greedy after PAID, rejoin after a lapse: a new place (budget)
 *
 * Double click: join, reserve, payment create, confirm and cancel are sent
 * a second time (dclick_gap_us later, the same Idempotency-Key on a
 * reserve). Both answers of a join or a reserve go to the user's ledger dups;
 * the others are sent but not kept (no key on the server: a second cancel,
 * create or confirm after the booking moved on is rightly answered 409).
 *
 * Ledger facts (what rush_verdict reads):
 *  - a place is one join episode: join_sent_us = the earliest sent_us of its
 *    joins (every tab and second click), join_recv_us and join_status from
 *    the earliest answered one (200). pass_via 1 = the first stream of the
 *    tab that got it, 2 = a reconnected one; a pass shown in a join answer is
 *    not recorded (the tab's stream delivers it). pass_id is the token's 4th
 *    field, 0 when the token does not parse (pass_via still set). stream_kept: some tab was
 *    listening when the place ended (pass, server end, or the crowd's stop);
 *    false after a patience leave, a silent leave (silent_left) or when every
 *    tab's reconnect budget ran out (ledger streams_lost counts those users).
 *    A patience leave (left_sent) keeps the streams open until the DELETE is
 *    answered and 0.5 s more (at most 10 s): a pass that comes down them
 *    then is received (pass_via), the user still leaves. end_status: the
 *    status of the last position frame when the server ended every stream
 *    of the place without a pass.
 *  - a booking is recorded for every 201 with a new id (any tab, probe or
 *    second click); last_status is the last status an answer showed (held
 *    after the reserve, cancelled after our cancel), never guessed: after a
 *    successful confirm it stays what the server last said. pay: SUCCEEDED on
 *    a confirm answered "succeeded" or 409 already succeeded, DECLINED on
 *    "requires_payment_method", UNKNOWN while a confirm is unanswered or
 *    when it got no answer. card_success_sent and confirm_sent_wall_ms are
 *    set when a pm_card_visa confirm is sent; cancelled_by_us when a cancel
 *    is sent.
 *  - over_limit_201: a 201 to a reserve whose quantity is above the limit.
 *
 * Timers: the crowd's timer ids are 0 .. br_rush_crowd_timers(user_count)
 * (BR_RUSH_CROWD_TIMER_SLOTS a user); a command's own timers must use ids
 * above them, and its timer callback hands the crowd's ids to
 * br_rush_crowd_on_timer.
 *
 * Metering: every answer goes to br_rush_meter_request with the JSON error
 * code; a pass to br_rush_meter_pass; a storm login to
 * br_rush_meter_storm_login. The crowd sets both windows itself: the spike
 * at start ([open, open + max(5 s, 3 x scaled spike decay)]) and the storm
 * at the last storm answer (first storm login sent .. last answered).
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
    double drop_u;                               /* [0, 1): the stream is cut once when < --stream-drops */
};
/* Deterministic in (scn, seed, user); scale in real us per scenario ms. arrive_us counts from the
 * crowd's start; open_us is the opening on that clock (early arrivals fill [0, open_us)). The event
 * (per_user_limit, zone_count) is ev, or the scenario's when ev is NULL. drop_stream_after_us is the
 * delay a dropped stream would be cut after: the crowd zeroes it unless drop_u < --stream-drops.
 * reuse_probe (BR_RUSH_REUSE_PROBE_FRACTION, no scenario field): one more reserve on a used pass. */
void br_rush_plan_draw(const struct br_scenario *scn, uint64_t seed, uint32_t user, double scale_us_per_ms,
                       int64_t open_us, const struct br_rush_event *ev, struct br_rush_plan *out);

#define BR_RUSH_THINK_FLOOR_MS 50u           /* think, patience, double-click gap: real ms at least */
#define BR_RUSH_PASS_TTL_FLOOR_MS 10000      /* a scaled pass TTL: a reserve never races its own pass */
#define BR_RUSH_HOLD_TTL_FLOOR_MS 5000       /* a scaled hold TTL: abandoned holds lapse inside the run */
#define BR_RUSH_OPEN_IN_MIN_MS 2000u         /* the default --open-in at least */
#define BR_RUSH_REUSE_PROBE_FRACTION 0.02    /* users who try their used pass once more */
#define BR_RUSH_RECONNECT_MS 3000            /* a cut stream reopens after min(retry, this); hub.c sends 3000 */
#define BR_RUSH_RETRIES_MAX 3u               /* 429/503/no answer: resends of one request */
#define BR_RUSH_STORM_RETRIES_MAX 10u        /* a storm login refused 503 OVERLOADED: resends */

/* The run's timing: time_scale (real ms per scenario ms) is cfg->time_scale when set, else the one
 * that fits early window + tail window + 3 x spike decay into 0.8 x --duration (with --open-in set:
 * tail + 3 x spike into what is left after it, at least a third); open_in_ms is cfg->open_in_ms when
 * set, else the scaled early window, at least BR_RUSH_OPEN_IN_MIN_MS. The command calls it once and
 * stores both back into its config before creating events and the crowd. */
void br_rush_plan_timing(const struct br_scenario *scn, const struct br_rush_config *cfg,
                         double *time_scale, uint32_t *open_in_ms);
/* A scenario TTL in real ms: scaled, at least floor_ms, rounded up to whole seconds. */
int64_t br_rush_plan_ttl_ms(int64_t scenario_ms, double time_scale, int64_t floor_ms);
/* The arrival window after the opening (tail + 3 x spike decay), real us: spike arrivals end there. */
int64_t br_rush_plan_fit_us(const struct br_scenario *scn, double scale_us_per_ms);
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

#define BR_RUSH_CROWD_TIMER_SLOTS (3u + BR_RUSH_TABS_MAX) /* timers a user: action, patience, 2nd click, tabs */
/* Timer ids the crowd uses for user_count users: 0 .. this - 1 (size the net's timers_max with it). */
uint32_t br_rush_crowd_timers(uint32_t user_count);
/* The password of an account by email (the storm's logins; rush_prep's br_rush_prep_password). Without
 * it a storm login sends a fixed password: right for --storm-accounts unknown only. */
typedef void (*br_rush_password_fn)(const char *email, char out[128]);
void br_rush_crowd_set_password(struct br_rush_crowd *c, br_rush_password_fn fn);
/* Requests sent and not yet answered, plus second clicks waiting to be sent. */
uint32_t br_rush_crowd_inflight(const struct br_rush_crowd *c);
/* After br_rush_crowd_stop: true once nothing is in flight (br_rush_net_run's done while draining). */
bool br_rush_crowd_idle(void *c);

#endif /* BR_SERVER_RUSH_CROWD_H */
