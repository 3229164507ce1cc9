/*
 * rush.h -- `bookingrush rush`: rehearse an on-sale against a live deployment
 * over real HTTP. The contract shared by the rush modules: limits, the run's
 * configuration, the routes it meters, and the ledger (what the crowd saw:
 * written by rush_crowd.c, read by rush_verdict.c and rush_report.c). The rush
 * is single-threaded: one epoll loop (rush_net.c) runs everything, no locks.
 */
#ifndef BR_SERVER_RUSH_H
#define BR_SERVER_RUSH_H

#include <stdbool.h>
#include <stdint.h>
#include "core/cmd.h"                 /* BR_EVENT_ZONES_MAX, enum br_queue_status, enum br_hold_state */
#define BR_RUSH_USERS_MAX 200000u     /* crowd + storm accounts; ledger ~2.3 KiB a user */
#define BR_RUSH_EVENTS_MAX 8u         /* = BR_SCN_EVENTS_MAX */
#define BR_RUSH_TARGETS_MAX 8u
#define BR_RUSH_TABS_MAX 8u
#define BR_RUSH_PLACES_MAX 4u         /* 1 + rejoins (capped at 3) */
#define BR_RUSH_BOOKINGS_MAX 16u      /* 201s per user */
#define BR_RUSH_DUPS_MAX 8u           /* double-click pairs kept per user */
#define BR_RUSH_TOKEN_MAX 768u        /* access or refresh token, incl. NUL */
#define BR_RUSH_PASS_MAX 256u         /* pass token, incl. NUL */
#define BR_RUSH_EMAIL_MAX 96u
#define BR_RUSH_RECONNECTS_MAX 5u
enum br_rush_exit { BR_RUSH_EXIT_OK = 0, BR_RUSH_EXIT_VIOLATION = 1, BR_RUSH_EXIT_USAGE = 2, BR_RUSH_EXIT_TARGET = 3 };
enum br_rush_route { BR_RR_REGISTER, BR_RR_LOGIN, BR_RR_REFRESH, BR_RR_EVENT_CREATE, BR_RR_EVENT_GET, BR_RR_STATS,
    BR_RR_JOIN, BR_RR_STREAM, BR_RR_POSITION, BR_RR_LEAVE, BR_RR_RESERVE, BR_RR_BOOKINGS, BR_RR_BOOKING_GET,
    BR_RR_CANCEL, BR_RR_PAYMENT, BR_RR_CONFIRM, BR_RR_METRICS, BR_RR_COUNT };
const char *br_rush_route_name(unsigned route);   /* the server's names: "POST /api/v1/bookings/reserve" */
enum br_rush_pay { BR_RUSH_PAY_NONE = 0, BR_RUSH_PAY_SUCCEEDED, BR_RUSH_PAY_DECLINED, BR_RUSH_PAY_UNKNOWN };
enum br_rush_storm_kind { BR_RUSH_STORM_REGISTERED = 0, BR_RUSH_STORM_UNKNOWN = 1 };

struct br_rush_config {
    const char *scenario_path, *users_file;
    char targets[BR_RUSH_TARGETS_MAX][128];     /* "http://host:port" */
    uint32_t target_count;
    char admin_email[BR_RUSH_EMAIL_MAX], admin_password[128], user_prefix[48];
    uint64_t event_id, seed;                    /* event 0 = create the scenario's */
    bool seed_set, prepare_only, json, quiet;
    uint32_t users, connections, login_storm;   /* users 0 = the scenario's */
    uint8_t storm_kind;                         /* enum br_rush_storm_kind */
    uint32_t duration_s, open_in_ms, storm_window_ms, request_timeout_ms, stream_idle_ms, settle_ms;
    double time_scale, stream_drops;            /* time_scale 0 = automatic */
    int server_pid;                             /* 0 = none */
};
struct br_rush_event {                          /* one event on sale, as created or read */
    uint64_t id;
    bool owned, requires_pass;                  /* owned: created by this rush, the equality checks apply */
    uint32_t per_user_limit, zone_count, admitted_baseline; /* stats.admitted before the crowd */
    int64_t pass_ttl_ms, hold_ttl_ms, opens_at_wall_ms;
    uint32_t capacity[BR_EVENT_ZONES_MAX];
};
struct br_rush_place {                          /* one place in a queue: a join episode */
    int64_t join_sent_us, join_recv_us;         /* monotonic, of the place's first join */
    uint8_t join_status;                        /* enum br_queue_status of that answer */
    uint8_t pass_via;                           /* 0 none, 1 first stream, 2 reconnected stream */
    bool stream_kept, silent_left;              /* listening until pass/end; closed on purpose */
    bool left_sent;                             /* patience ran out: DELETE /queue/leave sent */
    uint8_t end_status;                         /* status of the last frame when the server ended
                                                 * every stream without a pass; 0 = not ended so */
    uint64_t pass_id;                           /* from the token (4th field); 0 = none received */
    int64_t pass_issued_ms, pass_recv_wall_ms;  /* expires_at - pass_ttl; wall clock at receipt */
    char pass[BR_RUSH_PASS_MAX];
};
struct br_rush_answer { int16_t status; uint64_t id; };  /* status 0 = none; id: booking or payment */
struct br_rush_booking {                        /* one 201 to a reserve */
    uint64_t id;
    uint8_t place, zone_id, last_status, pay;   /* place: index of the pass used; hold state; enum br_rush_pay */
    uint16_t quantity;
    bool card_success_sent, cancelled_by_us;
    int64_t expires_at_ms, confirm_sent_wall_ms;
};
struct br_rush_dup { uint8_t route; struct br_rush_answer first, second; }; /* one key, two answers */
struct br_rush_user {
    uint64_t user_id;
    uint32_t event_ix;
    bool storm;
    char email[BR_RUSH_EMAIL_MAX], token[BR_RUSH_TOKEN_MAX], refresh[BR_RUSH_TOKEN_MAX];
    int64_t token_expires_wall_ms;
    uint8_t place_count, booking_count, dup_count;
    uint8_t final_queue_status;                 /* from the snapshot; 0xff = not read */
    uint32_t over_limit_201;                    /* 201s for a quantity above the limit (USER_LIMIT a) */
    struct br_rush_place places[BR_RUSH_PLACES_MAX];
    struct br_rush_booking bookings[BR_RUSH_BOOKINGS_MAX];
    struct br_rush_dup dups[BR_RUSH_DUPS_MAX];
};
struct br_rush_ledger {
    struct br_rush_event events[BR_RUSH_EVENTS_MAX];
    uint32_t event_count, user_count, crowd_count, streams_lost;
    struct br_rush_user *users;                 /* calloc'd: crowd first, then storm accounts */
};
/* The crowd's counts for the progress line (rush_crowd fills, rush_meter prints). */
struct br_rush_progress { uint32_t arrived, waiting, admitted, held, paid, done; };

int br_rush_main(int argc, char **argv);        /* argv[0] = "rush"; returns enum br_rush_exit */

#endif /* BR_SERVER_RUSH_H */
