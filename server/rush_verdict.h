/*
 * rush_verdict.h -- the rush's verdict: the final snapshot read back through
 * the API (admin stats, every user's bookings and queue position) and the
 * invariants checked on it from outside (docs/DESIGN.md "Rehearsing an
 * on-sale" lists each with its simulator twin). br_rush_verdict_check is pure.
 */
#ifndef BR_SERVER_RUSH_VERDICT_H
#define BR_SERVER_RUSH_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/rush.h"
#define BR_RUSH_CHECK_MAP(X) X(OVERSELL) X(STATS_MISMATCH) X(BOOKING_LOST) X(USER_LIMIT) X(PAYMENT_UNSETTLED) \
    X(UNPAID_CONFIRMED) X(PASS_ORDER) X(SHUFFLE) X(PASS_REUSED) X(PASS_UNDELIVERED) X(IDEMPOTENCY)
#define BR_RUSH_CHECK_ENUM(n) BR_RUSH_CHECK_##n,
enum br_rush_check { BR_RUSH_CHECK_MAP(BR_RUSH_CHECK_ENUM) BR_RUSH_CHECK_COUNT };
const char *br_rush_check_name(unsigned check);
struct br_rush_stats {                  /* GET /api/v1/admin/events/{id}/stats (render.c:289) */
    uint64_t event_id;
    uint32_t queue_length, admitted, active_passes, zone_count;
    uint32_t capacity[BR_EVENT_ZONES_MAX], held[BR_EVENT_ZONES_MAX], sold[BR_EVENT_ZONES_MAX];
    uint32_t bookings[5];               /* held confirmed expired cancelled refunded */
};
int br_rush_stats_parse(const char *json, size_t len, struct br_rush_stats *out); /* BR_OK or BR_E_INVALID */
struct br_rush_final_booking {          /* one row of a user's GET /api/v1/bookings */
    uint64_t id, event_id, payment_id; uint8_t zone_id, status; uint16_t quantity;
};
struct br_rush_snapshot {
    struct br_rush_stats stats[BR_RUSH_EVENTS_MAX];
    struct br_rush_final_booking *rows; /* every user's rows, grouped by user */
    uint32_t *row_start;                /* user -> first row; row_start[user_count] = total */
    bool unstable, pass_seq_from_token; /* stats moved 3 times; false: order by issued_ms */
    /* Additions (E): */
    int64_t *final_pass_issued_ms;      /* user -> issue time of the pass a final `admitted` position
                                           shows (expires_at - pass TTL), 0 = none; NULL = none read */
    int64_t read_wall_ms;               /* wall clock when the (last) snapshot read began; 0 = unknown */
    int64_t crowd_end_wall_ms;          /* set by the CALLER (rush_cmd), before the verdict: the wall
                                           clock when the crowd phase stopped and closed its streams.
                                           A pass issued after it - 2 s is not PASS_UNDELIVERED.
                                           br_rush_snapshot_read leaves it alone; 0 = the crowd's
                                           last join or pass in the ledger (or the read) stands for it */
    int64_t positions_wall_ms;          /* wall clock when br_rush_positions_read began (the crowd's
                                           end, before the settle phase); 0 = not read */
    uint8_t *end_status;                /* user -> queue status then (0xff = not read), NULL = none */
    int64_t *end_pass_issued_ms;        /* user -> issue time of the pass an `admitted` showed then */
    int64_t wall_minus_mono_ms;         /* wall ms - monotonic ms at the read (ledger times to wall) */
};
struct br_rush_violation {
    uint8_t check; uint32_t zone_id; uint64_t event_id, user_id, booking_id; char message[240];
};
#define BR_RUSH_VIOLATIONS_LISTED 32u
struct br_rush_verdict {
    uint32_t counts[BR_RUSH_CHECK_COUNT], listed;
    struct br_rush_violation v[BR_RUSH_VIOLATIONS_LISTED];
    bool shuffle_evaluated; double shuffle_agree;
    uint32_t admissions, admissions_listening, passes_received, silent_admitted;
    /* Addition (E): admissions not to a listening stream and not silent: a lost stream, a pass
     * issued in the crowd's last 2 s, a pass taken from a join answer. admissions_listening =
     * admissions - silent_admitted - excused_admitted (the delivery ratio's denominator). */
    uint32_t excused_admitted;
    /* Admissions to listening users that no user's record accounts for: neither received nor
     * flagged (admissions_listening - passes_received - PASS_UNDELIVERED flags). A user whose
     * patience ran out sends a leave; an admission made while that leave was on its way gives
     * its pass back and leaves the user `left`, indistinguishable from outside from a leave
     * before it. left_while_waiting counts those users (last place left so, final status
     * left): unattributed <= left_while_waiting is that race; more is not explained. */
    uint32_t unattributed, left_while_waiting;
    uint32_t final_unread;              /* users whose last place has no pass and whose final
                                         * position could not be read (unattributed's other cause) */
    uint32_t received_leaving;          /* of passes_received: came down a leaver's stream */
};
/* Pure. O(places log places + rows). */
void br_rush_verdict_check(const struct br_rush_ledger *l, const struct br_rush_snapshot *s,
                           struct br_rush_verdict *out);
bool br_rush_verdict_ok(const struct br_rush_verdict *v);
/* Reads stats (admin token), bookings and positions (each user's token), retaking while stats move (<= 3).
 * Fills l->users[].final_queue_status. BR_OK or BR_E_UNAVAILABLE (exit 3). */
struct br_rush_net;
int br_rush_snapshot_read(struct br_rush_net *net, const char *admin_token, struct br_rush_ledger *l,
                          struct br_rush_snapshot *s, int64_t deadline_us);
/* Reads the queue position of each user whose last place shows no pass (each user's token) into
 * s->end_status / s->end_pass_issued_ms. Called when the crowd phase ends, before the settle
 * phase: PASS_UNDELIVERED then tells a pass issued before the crowd's grace window from one
 * issued in it or after the crowd left, where the final read (after the settle phase, which may
 * be longer than the pass TTL) only sees `expired`. BR_OK or BR_E_UNAVAILABLE. */
int br_rush_positions_read(struct br_rush_net *net, struct br_rush_ledger *l,
                           struct br_rush_snapshot *s, int64_t deadline_us);
void br_rush_snapshot_free(struct br_rush_snapshot *s);

/* Additions (E). The pass token's layout, "p1.<event>.<user>.<pass>.<expires_at_ms>.<hmac hex 64>"
 * (adapters/auth.c br_pass_token_sign; test_rush_verdict pins it against the signer). The hmac is
 * not checked (the rush has no secret). BR_OK or BR_E_INVALID. */
int br_rush_pass_token_parse(const char *token, uint64_t *event_id, uint64_t *user_id,
                             uint64_t *pass_id, int64_t *expires_at_ms);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (server/render.c br_time_format) to ms since the epoch. BR_OK or
 * BR_E_INVALID. */
int br_rush_time_parse(const char *s, int64_t *ms);

#endif /* BR_SERVER_RUSH_VERDICT_H */
