/*
 * rush_prep.h -- what a rush does before its crowd moves, all over the
 * rush's own event loop (rush_net.h) and all excluded from the measurements:
 * probe the targets (/readyz names the backend), log the administrator in,
 * prepare the accounts (register + log in with a bounded number in flight,
 * or read them from --users-file and refresh what would expire), create the
 * scenario's events through the admin API with the scaled TTLs (or read the
 * --event one), and read each event's stats once (the baseline `admitted`).
 *
 * Every call is bounded by deadline_us (monotonic, br_rush_now_us) and by
 * its own retry budget: 503 OVERLOADED and 429 are retried after their
 * Retry-After (the server's hash pool refuses at once when full, routes.c
 * hash_then). A failure returns BR_E_UNAVAILABLE with the reason in why;
 * the command then exits 3 (the target failed us).
 *
 * Passwords are derived from the email (br_rush_prep_password), so the
 * storm's logins and a later run from --users-file need no stored secret.
 * The users file is tab-separated, one account a line:
 *   email  user_id  access_token  access_expires_ms  refresh_token
 * after a "# bookingrush rush users 1" header line.
 */
#ifndef BR_SERVER_RUSH_PREP_H
#define BR_SERVER_RUSH_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "server/rush.h"
#include "server/rush_net.h"
#include "sim/scenario.h"

#define BR_RUSH_WHY_MAX 256u
#define BR_RUSH_PASSWORD_MAX 128u

struct br_rush_prep_stats {
    uint32_t from_file, registered, existed, logged_in, refreshed, storm_registered;
    uint32_t overloaded_retries, other_retries;
    double seconds;
};

/* The password of the account with this email (8..127 bytes). */
void br_rush_prep_password(const char *email, char out[BR_RUSH_PASSWORD_MAX]);

/* GET /readyz on every target; backend ("embedded", "distributed", "mixed")
 * from the answers. BR_OK or BR_E_UNAVAILABLE. */
int br_rush_prep_probe(struct br_rush_net *net, const struct br_rush_config *cfg, char backend[16],
                       int64_t deadline_us, char why[BR_RUSH_WHY_MAX]);

/* Logs cfg's administrator in: token (Bearer). BR_OK or BR_E_UNAVAILABLE. */
int br_rush_prep_admin(struct br_rush_net *net, const struct br_rush_config *cfg,
                       char token[BR_RUSH_TOKEN_MAX], int64_t deadline_us, char why[BR_RUSH_WHY_MAX]);

/* Fills l->users[0 .. l->user_count) (emails, ids, tokens): the first
 * l->crowd_count are the crowd (logged in), the rest storm accounts
 * (registered only, or with --storm-accounts unknown nothing at all).
 * Reads and rewrites cfg->users_file when set. Prints its rate on stderr
 * unless quiet. BR_OK or BR_E_UNAVAILABLE. */
int br_rush_prep_accounts(struct br_rush_net *net, const struct br_rush_config *cfg,
                          struct br_rush_ledger *l, int64_t deadline_us,
                          struct br_rush_prep_stats *st, char why[BR_RUSH_WHY_MAX]);

/* Creates scn's events (cfg->event_id 0) opening at open_wall_ms, TTLs
 * scaled by cfg->time_scale with floors (pass >= 10 s, hold >= 5 s), or
 * reads cfg->event_id; fills l->events and l->event_count. */
int br_rush_prep_events(struct br_rush_net *net, const struct br_rush_config *cfg,
                        const struct br_scenario *scn, const char *admin_token,
                        struct br_rush_ledger *l, int64_t open_wall_ms, int64_t deadline_us,
                        char why[BR_RUSH_WHY_MAX]);

/* GET /api/v1/admin/events/{id}/stats of event ix: queue_length and admitted
 * (the baseline before the crowd, and the progress line's sample). */
int br_rush_prep_stats_read(struct br_rush_net *net, const char *admin_token, uint64_t event_id,
                            uint32_t *queue_length, uint32_t *admitted, int64_t deadline_us,
                            char why[BR_RUSH_WHY_MAX]);

/* One request, waited for on the loop (no retry). The answer's body is
 * copied into *body (malloc'd, NUL-terminated; the caller frees), status 0 =
 * no answer (err says why). For the phases around the crowd. */
struct br_rush_call {
    int status, err;
    uint32_t retry_after_s;
    char *body;
    size_t body_len;
    bool done;
};
void br_rush_call_done(void *ctx, const struct br_rush_resp *r); /* a br_rush_resp_fn, ctx = call */
int br_rush_call_wait(struct br_rush_net *net, const struct br_rush_req *q, int64_t deadline_us,
                      struct br_rush_call *c);
void br_rush_call_free(struct br_rush_call *c);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" into ms since the epoch; -1 when not. */
int64_t br_rush_parse_time_ms(const char *s);

#endif /* BR_SERVER_RUSH_PREP_H */
