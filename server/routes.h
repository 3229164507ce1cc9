/*
 * routes.h -- the HTTP API (server/openapi.json) over the backend interface.
 *
 * Every request runs the same pipeline on its loop thread:
 *
 *   body size ─▶ route (404/405) ─▶ client address + rate limit per address
 *     ─▶ content type + body parsed (a malformed one refused) ─▶ bearer token
 *     ─▶ rate limit per user ─▶ the route: its body's members (400), one backend call
 *     ─▶ (deferred until durable) ─▶ render ─▶ answer
 *
 * The parsing itself (route table, ids, bodies, the webhook payload) is
 * server/parse.h: pure functions the fuzz targets call as well.
 *
 * Routes only parse, authorise and render: business rules (seats, queues,
 * payments) are the core's, reached through struct br_backend. Errors are
 * {"error":{"code","message"}} with the code from br_err_name() and a
 * status that fits (400 input, 401/403 auth, 404, 409 conflict, 410 expired,
 * 413, 415, 422, 429); a client's mistake is never a 5xx.
 *
 * Each answer is logged as one structured line with its request id (taken
 * from a sane X-Request-Id, else generated) and counted in the metrics.
 */
#ifndef BR_ROUTES_H
#define BR_ROUTES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/auth.h"
#include "adapters/http.h"
#include "adapters/provider.h"
#include "adapters/provider_sig.h"
#include "server/backend.h"
#include "server/config.h"

struct br_pow;
struct br_presence;
#include "server/hashpool.h"
#include "server/hub.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/ratelimit.h"

#define BR_JWT_ISSUER "bookingrush"

struct br_pg;

struct br_routes {
    struct br_backend *backend;
    struct br_hub *hub;
    struct br_metrics *metrics;
    struct br_ratelimit *rl_user;
    struct br_ratelimit *rl_ip;
    /* The deployment's provider; its confirm (test providers only) serves
     * the test provider's route. NULL or no confirm: no such route. */
    const struct br_provider *provider;
    /* For the in-flight gauge; set once listening (requests may already run). */
    _Atomic(struct br_http_server *) http;
    const struct br_serve_config *cfg;
    const struct br_log *log;
    struct br_cidr trusted[BR_CIDR_MAX];
    unsigned trusted_count;
    struct br_jwt_cache *jwt_cache;    /* tokens that verified before; may be NULL */
    struct br_hashpool *hashpool;      /* scrypt runs there, never on a loop thread */
    const uint8_t *jwt_secret;
    size_t jwt_secret_len;
    const uint8_t *pass_secret;        /* signs and checks X-Queue-Pass tokens */
    size_t pass_secret_len;
    const char *webhook_secret;
    /* The secrets webhooks may be signed with (several while one is
     * rotated) and the tolerance; count 0 = webhook_secret alone, 300 s. */
    const char *webhook_secrets[BR_PROVIDER_SIG_SECRETS_MAX];
    size_t webhook_secret_count;
    int64_t webhook_tolerance_s;
    /* --kafka: a verified webhook is stored as a fact (pg.h br_pg_fact_ingest)
     * for the relay and the saga's consumers, not applied here. NULL: applied. */
    struct br_pg *facts_pg;
    const char *openapi; /* the OpenAPI document, static */
    /* Issue 13: the door and presence (serve.c sets them; may be NULL). */
    struct br_pow *pow;           /* the in-process used set (embedded); NULL with backend pow_use */
    struct br_presence *presence; /* who was seen (position and join routes, the hub) */
    const char *pow_secret;       /* signs challenges (pow.h) */
    struct br_ratelimit *rl_join; /* --join-limit-ip: joins per client address; may be NULL */
    size_t openapi_len;
    uint64_t replayed;   /* for /metrics */
    uint32_t req_prefix; /* random per process: request ids differ across restarts */
    atomic_uint_fast64_t req_seq;
    atomic_bool draining; /* SIGTERM seen: /readyz says no */
};

/* The route names for the metrics table ("METHOD /template"). */
const char *const *br_routes_names(unsigned *count);

/* The adapter's callbacks (ctx = struct br_routes). */
void br_routes_handle(void *ctx, struct br_http_req *req);
void br_routes_resumed(void *ctx, struct br_http_req *req);
void br_routes_closed(void *ctx, struct br_http_req *req);

#endif
