/*
 * config.h -- `bookingrush serve` configuration: flags, then environment
 * variables, then defaults (a flag beats its variable). `--help` lists them.
 */
#ifndef BR_CONFIG_H
#define BR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sizing.h"
#include "server/log.h"
#include "server/ratelimit.h"

#define BR_CONFIG_TEXT_MAX 512u /* bytes of a string option incl. NUL */

struct br_serve_config {
    uint16_t port;                      /* 0 = any free port */
    char bind[BR_CONFIG_TEXT_MAX];      /* numeric address */
    char data_dir[BR_CONFIG_TEXT_MAX];
    char admin[BR_CONFIG_TEXT_MAX];     /* "EMAIL:PASSWORD" or empty */
    char jwt_secret[BR_CONFIG_TEXT_MAX]; /* empty = from the data dir */
    char webhook_secret[BR_CONFIG_TEXT_MAX]; /* empty = from the data dir */
    char port_file[BR_CONFIG_TEXT_MAX]; /* write the bound port here; empty = no */
    char trusted_proxies[BR_CONFIG_TEXT_MAX];
    char web_dir[BR_CONFIG_TEXT_MAX]; /* "" = the files embedded at build time */
    unsigned jwt_ttl_s;
    struct br_rate rate_user;
    struct br_rate rate_ip;
    struct br_rate join_limit_ip;       /* issue 13: joins per client address; rps 0 = off */
    unsigned pow_register_bits;         /* issue 13: proof of work on register; 0 = off */
    unsigned pow_used_max;              /* issue 13: the embedded used set's entries */
    unsigned threads;
    unsigned tick_ms;
    unsigned journal_syncs;             /* commits in flight */
    unsigned sse_keepalive_s;
    unsigned sse_position_ms;           /* least gap between a stream's position frames; 0 = none */
    size_t body_max;
    size_t header_max;
    unsigned scrypt_log2n;
    unsigned hash_threads;              /* the password-hashing pool (hashpool.h) */
    unsigned hash_queue;                /* hashes waiting at most; beyond, 503 OVERLOADED */
    unsigned hash_nice;                 /* added to the hash threads' nice value (hashpool.h) */
    char hash_sched[BR_CONFIG_TEXT_MAX]; /* "idle" (SCHED_IDLE) or "nice" (the nice value only) */
    unsigned hash_yield_ms;             /* br_hashpool_yield: longest wait before a hash */
    unsigned hash_yield_above;          /* br_hashpool_yield: the backlog that makes it wait */
    unsigned refresh_ttl_s;             /* refresh token lifetime, renewed by each refresh */
    unsigned test_email_hash_bits;      /* 0 = 64; tests force email hash collisions */
    unsigned shutdown_grace_s;
    enum br_log_level log_level;
    bool demo;
    bool reuse_port;                    /* SO_REUSEPORT: share the port on purpose */
    /* The deployment (--backend): embedded (default) or distributed. */
    char backend[BR_CONFIG_TEXT_MAX];
    char redis_url[BR_CONFIG_TEXT_MAX]; /* distributed: Redis, the live on-sale */
    char pg_url[BR_CONFIG_TEXT_MAX];    /* distributed: PostgreSQL, the record */
    char roles_text[BR_CONFIG_TEXT_MAX]; /* distributed: "api,admitter,..." */
    char pass_secret[BR_CONFIG_TEXT_MAX]; /* 64 hex digits; empty = from the data dir */
    unsigned roles;                     /* parsed roles_text (BR_DIST_ROLE_*) */
    unsigned pg_pool;                   /* PostgreSQL connections */
    unsigned redis_conns;               /* Redis slots (0 = threads + hash threads + 4) */
    unsigned start_attempts;            /* tries to reach Redis and PostgreSQL at start */
    struct br_sizing sizing;            /* engine tables for a new journal; 0 = derived */
    /* Payments in production (ISSUE11 §4.2; distributed only unless said). */
    char payments[BR_CONFIG_TEXT_MAX];        /* "test" | "stripe" */
    char stripe_api_base[BR_CONFIG_TEXT_MAX]; /* https://api.stripe.com */
    char stripe_key[BR_CONFIG_TEXT_MAX];      /* sk_...; never logged */
    char stripe_webhook_secret[BR_CONFIG_TEXT_MAX]; /* "S[,S2..]"; empty = webhook_secret */
    unsigned stripe_timeout_ms;               /* one attempt */
    unsigned stripe_attempts;
    unsigned webhook_tolerance_s;             /* both providers and both backends */
    unsigned payment_check_ms;                /* point 8's quiet time */
    char kafka[BR_CONFIG_TEXT_MAX];           /* bootstrap "h:p,.."; empty = no Kafka */
    char kafka_prefix[BR_CONFIG_TEXT_MAX];
    char kafka_group[BR_CONFIG_TEXT_MAX];
    unsigned kafka_dlq_after;
    unsigned kafka_session_timeout_ms;        /* the consumer group's dead-member timeout */
    unsigned relay_batch;
};

/* The webhook secrets to verify with: --stripe-webhook-secret split at
 * commas, else the one secret given (or generated). */
#define BR_CONFIG_WEBHOOK_SECRETS_MAX 4u

/* Parses argv (after "serve") and the environment into c. Returns 0 to run,
 * 1 when --help was printed, -1 on a bad option (a message was printed). */
int br_serve_config_parse(int argc, char **argv, struct br_serve_config *c);

/* Prints the options and their variables. */
void br_serve_usage(void);

/* Whether the distributed deployment was asked for. */
bool br_serve_distributed(const struct br_serve_config *c);

/* Whether Kafka (--kafka) is on: the saga consumes facts from it. */
bool br_serve_kafka(const struct br_serve_config *c);

/* Whether the distributed deployment's provider is Stripe (--payments stripe). */
bool br_serve_stripe(const struct br_serve_config *c);

/* Splits "S1,S2" (the list given, or fallback when the list is empty) into
 * out[0..*n) (pointers into buf, cap bytes). Returns 0, or -1 when there are
 * more than BR_CONFIG_WEBHOOK_SECRETS_MAX or one is empty. */
int br_serve_webhook_secrets(const char *list, const char *fallback, char *buf, size_t cap,
                             const char *out[BR_CONFIG_WEBHOOK_SECRETS_MAX], size_t *n);

/* Whether any engine sizing option (--people, --users-max, ...) was given. */
bool br_serve_sizing_given(const struct br_serve_config *c);

#endif
