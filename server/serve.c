/*
 * serve.c -- `bookingrush serve`: wires the embedded deployment together,
 * runs it until SIGTERM or SIGINT, and shuts it down gracefully.
 *
 * Start: secrets (flags, else the data dir's secrets file, else generated
 * into it), a lock on the data dir (one server per journal), the test
 * provider, the embedded backend (journal replayed), the SSE hub, the first
 * administrator and the demo event, then the HTTP server. The signals are
 * blocked in every thread and taken with sigwait here, so no handler and no
 * global flag is needed.
 *
 * Stop: /readyz turns 503 and new requests are refused; the listening
 * socket closes; queue streams end; requests in flight finish (up to
 * --shutdown-grace-s); the test provider stops delivering; the backend
 * commits everything pending and closes the journal; then the HTTP server
 * stops.
 */
#define _DEFAULT_SOURCE

#include "server/serve.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapters/auth.h"
#include "adapters/clock.h"
#include "adapters/http.h"
#include "adapters/provider_test.h"
#include "core/catalog.h"
#include "core/err.h"
#include "core/panic.h"
#include "adapters/pg.h"
#include "adapters/provider_test_pg.h"
#include "adapters/stripe.h"
#include "server/backend_distributed.h"
#include "server/backend_embedded.h"
#include "server/config.h"
#include "server/hub.h"
#include "server/presence.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/openapi.h"
#include "server/reconciler.h"
#include "server/recorder.h"
#include "server/ratelimit.h"
#include "server/render.h"
#include "server/pow.h"
#include "server/routes.h"

#define SECRETS_FILE "secrets.json"
#define RATE_SLOTS 65536u        /* token buckets per limiter: ~24 B each */
#define JWT_CACHE_SLOTS 8192u    /* verified access tokens remembered: ~0.4 KiB each */
#define HUB_REFRESH_MS 250u
#define INTENTS_MAX 200000u      /* test provider intents in memory: ~80 B each */
#define WEBHOOK_ATTEMPTS 8u
#define CONNECTIONS_MAX 16384u
#define IDLE_TIMEOUT_S 75u       /* longer than common load balancers' 60 s */

struct secrets {
    uint8_t jwt[BR_CONFIG_TEXT_MAX];
    size_t jwt_len;
    uint8_t pass[BR_AUTH_SECRET_LEN];
    char webhook[BR_CONFIG_TEXT_MAX];
};

/* ---- secrets ---- */

/* Logs a failed file or directory operation with what failed and why:
 * "cannot create ./data/LOCK: Permission denied". */
static void log_file_error(const struct br_log *log, const char *what, const char *path, int err)
{
    char esc[BR_CONFIG_TEXT_MAX + 64];
    br_log_escape(path, esc, sizeof esc);
    char msg[sizeof esc + 128];
    snprintf(msg, sizeof msg, "%s %s: %s", what, esc, strerror(err));
    br_logf(log, BR_LOG_ERROR, msg, "\"path\":\"%s\",\"error\":\"%s\"", esc, strerror(err));
}

static int write_file_atomic(const char *path, const char *data, size_t len)
{
    char tmp[BR_CONFIG_TEXT_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    int err = 0;
    errno = 0;
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
        err = errno != 0 ? errno : EIO; /* a short write sets no errno */
    }
    if (close(fd) != 0 && err == 0) {
        err = errno;
    }
    if (err == 0 && rename(tmp, path) != 0) {
        err = errno;
    }
    errno = err; /* the first failure's reason, for the caller's log */
    return err == 0 ? 0 : -1;
}

/* Loads the data dir's secrets, generating the missing ones. */
static int load_secrets(const struct br_serve_config *c, const struct br_log *log,
                        struct secrets *s)
{
    char path[BR_CONFIG_TEXT_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", c->data_dir, SECRETS_FILE);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    bool changed = false;
    if (j == NULL) {
        j = json_object();
        changed = true;
    }
    static const char *const keys[] = {"jwt_secret", "pass_secret", "webhook_secret"};
    for (unsigned i = 0; i < 3; i++) {
        if (json_is_string(json_object_get(j, keys[i]))) {
            continue;
        }
        uint8_t raw[BR_AUTH_SECRET_LEN];
        char hex[2 * BR_AUTH_SECRET_LEN + 1];
        char text[2 * BR_AUTH_SECRET_LEN + 8];
        if (br_auth_random(raw, sizeof raw) != BR_OK) {
            json_decref(j);
            return BR_E_IO;
        }
        br_auth_hex(raw, sizeof raw, hex);
        snprintf(text, sizeof text, "%s%s", i == 2 ? "whsec_" : "", hex);
        json_object_set_new(j, keys[i], json_string(text));
        changed = true;
    }
    const char *jwt = json_string_value(json_object_get(j, "jwt_secret"));
    const char *pass = json_string_value(json_object_get(j, "pass_secret"));
    const char *wh = json_string_value(json_object_get(j, "webhook_secret"));
    int rc = BR_OK;
    if (strlen(pass) != 2 * BR_AUTH_SECRET_LEN ||
        br_auth_unhex(pass, s->pass, BR_AUTH_SECRET_LEN) != BR_OK ||
        strlen(jwt) >= sizeof s->jwt || strlen(wh) >= sizeof s->webhook) {
        br_logf(log, BR_LOG_ERROR, "damaged secrets file", "\"path\":\"%s\"", path);
        rc = BR_E_CORRUPT;
    }
    if (rc == BR_OK && c->pass_secret[0] != '\0' &&
        br_auth_unhex(c->pass_secret, s->pass, BR_AUTH_SECRET_LEN) != BR_OK) {
        br_logf(log, BR_LOG_ERROR, "--pass-secret wants hex digits", NULL);
        rc = BR_E_INVALID;
    }
    if (rc == BR_OK) {
        const char *jwt_text = c->jwt_secret[0] != '\0' ? c->jwt_secret : jwt;
        s->jwt_len = strlen(jwt_text);
        memcpy(s->jwt, jwt_text, s->jwt_len);
        snprintf(s->webhook, sizeof s->webhook, "%s",
                 c->webhook_secret[0] != '\0' ? c->webhook_secret : wh);
    }
    if (rc == BR_OK && changed) {
        char *text = json_dumps(j, JSON_INDENT(2));
        if (text == NULL || write_file_atomic(path, text, strlen(text)) != 0) {
            log_file_error(log, "cannot write the secrets file", path, errno);
            rc = BR_E_IO;
        }
        free(text);
    }
    json_decref(j);
    return rc;
}

/* ---- synchronous backend calls (start-up only) ---- */

struct sync_call {
    struct br_call call;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static void sync_done(struct br_call *c)
{
    struct sync_call *s = c->ctx;
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static struct br_call *sync_begin(struct sync_call *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->call.done = sync_done;
    s->call.ctx = s;
    return &s->call;
}

static int sync_wait(struct sync_call *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->done) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    return s->call.err;
}

/* --admin EMAIL:PASSWORD: registers the administrator, or promotes the
 * existing user with that email (the password of an existing user is kept). */
static int bootstrap_admin_once(struct br_backend *b, const struct br_serve_config *c,
                                const struct br_log *log)
{
    char email[BR_EMAIL_MAX];
    const char *colon = strchr(c->admin, ':');
    size_t n = (size_t)(colon - c->admin);
    if (n == 0 || n >= sizeof email || colon[1] == '\0') {
        br_logf(log, BR_LOG_ERROR, "--admin wants EMAIL:PASSWORD", NULL);
        return BR_E_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = c->admin[i];
        email[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    email[n] = '\0';
    const char *password = colon + 1;
    struct sync_call s;
    b->ops->user_find(b, email, sync_begin(&s));
    int rc = sync_wait(&s);
    if (rc == BR_OK) {
        if (s.call.r.user.role == BR_ROLE_ADMIN) {
            return BR_OK;
        }
        uint64_t id = s.call.r.user.id;
        b->ops->user_role_set(b, 0, id, BR_ROLE_ADMIN, sync_begin(&s));
        rc = sync_wait(&s);
        br_logf(log, rc == BR_OK ? BR_LOG_INFO : BR_LOG_ERROR, "administrator promoted",
                "\"user\":%" PRIu64 ",\"err\":\"%s\"", id, br_err_name(rc));
        return rc;
    }
    uint8_t hash[BR_PASSWORD_HASH_LEN];
    uint8_t salt[BR_SALT_LEN];
    rc = br_auth_password_hash(password, strlen(password), c->scrypt_log2n, hash, salt);
    if (rc != BR_OK) {
        br_logf(log, BR_LOG_ERROR, "cannot hash the administrator's password", NULL);
        return rc;
    }
    b->ops->user_register(b, email, "Administrator", hash, salt, BR_ROLE_ADMIN, sync_begin(&s));
    rc = sync_wait(&s);
    br_logf(log, rc == BR_OK ? BR_LOG_INFO : rc == BR_E_EMAIL_TAKEN ? BR_LOG_WARN : BR_LOG_ERROR,
            "administrator registered", "\"user\":%" PRIu64 ",\"err\":\"%s\"",
            s.call.r.user.id, br_err_name(rc));
    return rc;
}

/* Distributed processes starting together may both register the
 * administrator: the second finds the email taken and looks again. */
static int bootstrap_admin(struct br_backend *b, const struct br_serve_config *c,
                           const struct br_log *log)
{
    int rc = bootstrap_admin_once(b, c, log);
    return rc == BR_E_EMAIL_TAKEN ? bootstrap_admin_once(b, c, log) : rc;
}

/* The first event's id into *id (0 = no event). */
static int first_event(struct br_backend *b, uint64_t *id)
{
    struct br_api_event first;
    struct sync_call s;
    struct br_call *c = sync_begin(&s);
    c->events = &first;
    c->list_cap = 1;
    b->ops->event_list(b, 0, c);
    int rc = sync_wait(&s);
    *id = rc == BR_OK && s.call.list_count > 0 ? first.id : 0;
    return rc;
}

/* --demo: one event on sale now, unless there are events already. */
static int bootstrap_demo(struct br_backend *b, const struct br_log *log, uint64_t *event_id)
{
    int rc = first_event(b, event_id);
    if (rc != BR_OK || *event_id != 0) {
        return rc;
    }
    struct sync_call s;
    int64_t now = br_clock_wall_ms() / 1000 * 1000; /* whole seconds */
    struct br_event_spec spec;
    br_event_spec_default(&spec, now);
    snprintf(spec.name, sizeof spec.name, "Booking Rush Live: Demo Night");
    snprintf(spec.venue, sizeof spec.venue, "Demo Arena");
    spec.max_active = 50; /* a small room, so a demo shows the queue moving */
    spec.zone_count = 3;
    static const struct {
        const char *name;
        uint32_t capacity;
        int64_t price_minor;
    } zones[] = {{"Floor", 500, 7900}, {"Balcony", 1000, 4900}, {"VIP", 50, 19900}};
    for (uint32_t i = 0; i < 3; i++) {
        snprintf(spec.zones[i].name, sizeof spec.zones[i].name, "%s", zones[i].name);
        spec.zones[i].capacity = zones[i].capacity;
        spec.zones[i].price_minor = zones[i].price_minor;
        snprintf(spec.zones[i].currency, sizeof spec.zones[i].currency, "EUR");
    }
    spec.queue_capacity = br_event_spec_queue_default(&spec);
    b->ops->event_create(b, 0, &spec, sync_begin(&s));
    rc = sync_wait(&s);
    if (rc == BR_E_DUPLICATE) {
        /* Another process (distributed) made the first event meanwhile. */
        rc = first_event(b, event_id);
        return rc == BR_OK && *event_id == 0 ? BR_E_NOT_FOUND : rc;
    }
    if (rc == BR_E_FULL) {
        /* Sized below the demo (a small --people): serve without it. */
        br_logf(log, BR_LOG_WARN, "no demo event: the engine's tables are too small for it",
                "\"err\":\"%s\"", br_err_name(rc));
        *event_id = 0;
        return BR_OK;
    }
    *event_id = s.call.r.event.id;
    br_logf(log, rc == BR_OK ? BR_LOG_INFO : BR_LOG_ERROR, "demo event created",
            "\"event\":%" PRIu64 ",\"err\":\"%s\"", *event_id, br_err_name(rc));
    return rc;
}

/* ---- the engine's size ---- */

/* The start-up line: what the engine reserved, for how many people, holds,
 * payments and events, and whether the journal's header decided it. When
 * sizing options were given but an existing journal keeps other sizes, a
 * warning says so (the journal's sizes win: its records were answered
 * with them). */
static void log_engine(const struct br_embedded *emb, const struct br_serve_config *c,
                       const struct br_config *asked, const struct br_log *log)
{
    struct br_config have;
    size_t bytes = 0;
    bool from_journal = false;
    br_embedded_engine_info(emb, &have, &bytes, &from_journal);
    char msg[200];
    snprintf(msg, sizeof msg,
             "engine: %.0f MiB reserved for %u people, %u holds, %u payments, %u events",
             (double)bytes / (1024.0 * 1024.0), have.users_max, have.holds_max, have.payments_max,
             have.events_max);
    br_logf(log, BR_LOG_INFO, msg,
            "\"bytes\":%zu,\"users_max\":%u,\"holds_max\":%u,\"payments_max\":%u,"
            "\"events_max\":%u,\"sizes_from\":\"%s\"",
            bytes, have.users_max, have.holds_max, have.payments_max, have.events_max,
            from_journal ? "journal" : "options");
    struct br_config want = *asked;
    want.seed = have.seed;
    if (from_journal && br_serve_sizing_given(c) && memcmp(&want, &have, sizeof want) != 0) {
        br_logf(log, BR_LOG_WARN,
                "sizing options ignored: the journal keeps the sizes it was created with",
                "\"users_max\":%u,\"asked_users_max\":%u,\"holds_max\":%u,"
                "\"asked_holds_max\":%u,\"payments_max\":%u,\"asked_payments_max\":%u",
                have.users_max, want.users_max, have.holds_max, want.holds_max,
                have.payments_max, want.payments_max);
    }
}

/* ---- the data dir lock ---- */

/* Creates the data dir when absent and locks it (one server per journal).
 * Returns the lock's fd, held until exit, or -1 after logging what failed. */
static int lock_data_dir(const char *dir, const struct br_log *log)
{
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_file_error(log, "cannot create the data dir", dir, errno);
        return -1;
    }
    int err = stat(dir, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (err != 0) {
        log_file_error(log, "cannot use the data dir", dir, err);
        return -1;
    }
    char path[BR_CONFIG_TEXT_MAX + 16];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_file_error(log, "cannot create", path, errno);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err = errno;
        if (err == EWOULDBLOCK) {
            char esc[sizeof path + 64];
            br_logf(log, BR_LOG_ERROR, "the data dir is in use by another server (its LOCK is held)",
                    "\"path\":\"%s\"", br_log_escape(path, esc, sizeof esc));
        } else {
            log_file_error(log, "cannot lock", path, err);
        }
        close(fd);
        return -1;
    }
    return fd; /* held until exit */
}

/* The distributed deployment's data dir: created when absent; returns a
 * descriptor of it (closed at exit) or -1. Secrets are loaded while
 * holding secrets.lock (load_secrets_shared), so two processes starting
 * at once generate them once. */
static int share_data_dir(const char *dir, const struct br_log *log)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_file_error(log, "cannot create the data dir", dir, errno);
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        log_file_error(log, "cannot use the data dir", dir, errno);
    }
    return fd;
}

/* load_secrets under an exclusive lock shared by the processes using this
 * data dir. */
static int load_secrets_shared(const struct br_serve_config *c, const struct br_log *log,
                               struct secrets *s)
{
    char path[BR_CONFIG_TEXT_MAX + 32];
    snprintf(path, sizeof path, "%s/secrets.lock", c->data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        log_file_error(log, "cannot lock", path, errno);
        if (fd >= 0) {
            close(fd);
        }
        return BR_E_IO;
    }
    int rc = load_secrets(c, log, s);
    close(fd); /* releases the lock */
    return rc;
}

static void wait_inflight(struct br_http_server *http, unsigned grace_ms)
{
    for (unsigned waited = 0; waited < grace_ms && br_http_inflight(http) > 0; waited += 10) {
        struct timespec d = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
        nanosleep(&d, NULL);
    }
}

/* Everything one `serve` owns, so start-up and shutdown can be split into
 * steps that each take what they need. */
struct serve {
    struct br_serve_config cfg;
    struct br_log log;
    struct secrets sec;
    struct br_provider_test *provider; /* the built-in one: also the confirm route's */
    struct br_provider payments;       /* the provider the deployment uses (provider.h) */
    struct br_provider_test_pg *provider_pg; /* distributed: intents shared in PostgreSQL */
    struct br_stripe *stripe;          /* distributed, --payments stripe */
    char wh_buf[BR_CONFIG_TEXT_MAX];   /* the webhook secrets, split (wh[] points in) */
    const char *wh[BR_CONFIG_WEBHOOK_SECRETS_MAX];
    size_t wh_count;
    struct br_embedded *emb;
    struct br_pg *pg;                /* distributed only */
    struct br_distributed *dist;     /* distributed only */
    struct br_recorder *recorder;    /* distributed, role recorder */
    struct br_reconciler *reconciler; /* distributed, role reconciler */
    struct br_backend *backend;
    struct br_hub *hub;
    struct br_presence *presence; /* issue 13: who is still there (the hub flushes it) */
    struct br_metrics *metrics;
    struct br_ratelimit *rl_user;
    struct br_ratelimit *rl_ip;
    struct br_ratelimit *rl_join; /* issue 13: --join-limit-ip */
    struct br_pow *pow;           /* issue 13: the embedded used set (pow.h) */
    char pow_secret[65];          /* issue 13: hex of HMAC(jwt secret, "bookingrush pow") */
    struct br_http_server *http;
    struct br_jwt_cache *jwt_cache;
    struct br_hashpool *hashpool;
    struct br_routes *rt;
    uint64_t replayed;   /* commands replayed from the journal at start */
    uint64_t demo_event; /* 0 = none */
    uint16_t port;
};

/* The presence reporter's period: BR_PRESENCE_REPORT_MS, shortened in
 * tests by BR_TEST_PRESENCE_REPORT_MS (then de-dup is half of it). */
static unsigned presence_report_ms(void)
{
    const char *t = getenv("BR_TEST_PRESENCE_REPORT_MS");
    long v = t != NULL ? strtol(t, NULL, 10) : 0;
    return v >= 10 && v <= BR_PRESENCE_REPORT_MS ? (unsigned)v : BR_PRESENCE_REPORT_MS;
}

static int open_hub(struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    unsigned report_ms = presence_report_ms();
    if (br_presence_new(&sv->presence, BR_PRESENCE_PENDING_MAX) != BR_OK) {
        return BR_E_IO;
    }
    if (report_ms < BR_PRESENCE_REPORT_MS) {
        br_presence_set_dedup_ms(sv->presence, report_ms / 2);
    }
    struct br_hub_config hcfg = {.backend = sv->backend,
                                 .pass_secret = sv->sec.pass,
                                 .pass_secret_len = sizeof sv->sec.pass,
                                 .keepalive_ms = cfg->sse_keepalive_s * 1000u,
                                 .refresh_ms = cfg->tick_ms < HUB_REFRESH_MS ? cfg->tick_ms
                                                                             : HUB_REFRESH_MS,
                                 .position_ms = cfg->sse_position_ms,
                                 .log = &sv->log,
                                 .presence = sv->presence,
                                 .presence_report_ms = report_ms};
    return br_hub_new(&sv->hub, &hcfg) == BR_OK ? BR_OK : BR_E_IO;
}

/* --admin and --demo, once the backend runs. */
static int bootstrap(struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    if (cfg->admin[0] != '\0' && bootstrap_admin(sv->backend, cfg, &sv->log) != BR_OK) {
        return BR_E_IO;
    }
    if (cfg->demo && bootstrap_demo(sv->backend, &sv->log, &sv->demo_event) != BR_OK) {
        return BR_E_IO;
    }
    return BR_OK;
}

/* ---- the distributed deployment ---- */

/* A URL for the log with any password replaced: "postgresql://u:***@h/db". */
static const char *redact_url(const char *url, char *out, size_t cap)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme != NULL ? strchr(scheme + 3, '@') : NULL;
    const char *colon = scheme != NULL ? strchr(scheme + 3, ':') : NULL;
    if (at == NULL || colon == NULL || colon > at) {
        snprintf(out, cap, "%s", url);
    } else {
        snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
    }
    return out;
}

/* Opens the distributed backend, trying again with backoff while Redis or
 * PostgreSQL cannot be reached (both may be starting with us). */
static int open_distributed_backend(struct serve *sv, struct br_distributed_config *dcfg)
{
    const struct br_serve_config *cfg = &sv->cfg;
    int64_t backoff_ms = 250;
    int rc = BR_E_UNAVAILABLE;
    for (unsigned attempt = 1; attempt <= cfg->start_attempts; attempt++) {
        rc = br_distributed_open(&sv->dist, dcfg);
        if (rc != BR_E_UNAVAILABLE || attempt == cfg->start_attempts) {
            break;
        }
        br_logf(&sv->log, BR_LOG_WARN, "Redis or PostgreSQL not reachable yet: trying again",
                "\"attempt\":%u,\"of\":%u,\"wait_ms\":%lld", attempt, cfg->start_attempts,
                (long long)backoff_ms);
        struct timespec d = {.tv_sec = (time_t)(backoff_ms / 1000),
                             .tv_nsec = (long)(backoff_ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
        backoff_ms = backoff_ms * 2 > 4000 ? 4000 : backoff_ms * 2;
    }
    if (rc != BR_OK) {
        char r[BR_CONFIG_TEXT_MAX], p[BR_CONFIG_TEXT_MAX];
        char re[BR_CONFIG_TEXT_MAX + 64], pe[BR_CONFIG_TEXT_MAX + 64];
        br_logf(&sv->log, BR_LOG_ERROR,
                rc == BR_E_VERSION
                    ? "PostgreSQL's schema is missing or old: run `bookingrush migrate --pg URL`"
                : rc == BR_E_UNAVAILABLE ? "cannot reach Redis or PostgreSQL: giving up"
                                         : "cannot start the distributed backend",
                "\"redis\":\"%s\",\"pg\":\"%s\",\"err\":\"%s\",\"attempts\":%u",
                br_log_escape(redact_url(cfg->redis_url, r, sizeof r), re, sizeof re),
                br_log_escape(redact_url(cfg->pg_url, p, sizeof p), pe, sizeof pe),
                br_err_name(rc), cfg->start_attempts);
    }
    return rc;
}

static size_t recorder_metrics(void *ctx, char *buf, size_t cap)
{
    return br_recorder_metrics(ctx, buf, cap);
}

static size_t reconciler_metrics(void *ctx, char *buf, size_t cap)
{
    return br_reconciler_metrics(ctx, buf, cap);
}

#ifdef BR_HAVE_STRIPE
/* br_stripe_requests_total{op,outcome} and br_stripe_replayed_total, with
 * snprintf's rules (the distributed backend's metrics hook). */
static size_t stripe_metrics(void *ctx, char *buf, size_t cap)
{
    struct br_stripe_stats st;
    br_stripe_stats(ctx, &st);
    size_t len = 0;
    int n = snprintf(buf, cap, "# HELP br_stripe_requests_total Stripe API calls, by operation "
                               "and outcome (each retry counted).\n"
                               "# TYPE br_stripe_requests_total counter\n");
    len += n > 0 ? (size_t)n : 0;
    for (unsigned op = 0; op < BR_STRIPE_OP_COUNT; op++) {
        for (unsigned o = 0; o < BR_STRIPE_OUTCOME_COUNT; o++) {
            n = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0,
                         "br_stripe_requests_total{op=\"%s\",outcome=\"%s\"} %" PRIu64 "\n",
                         br_stripe_op_names[op], br_stripe_outcome_names[o],
                         st.requests[op][o]);
            len += n > 0 ? (size_t)n : 0;
        }
    }
    n = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0,
                 "# HELP br_stripe_replayed_total Stripe answers replayed for an idempotency "
                 "key seen before.\n"
                 "# TYPE br_stripe_replayed_total counter\nbr_stripe_replayed_total %" PRIu64
                 "\n",
                 st.replayed);
    len += n > 0 ? (size_t)n : 0;
    return len;
}
#endif

/* The reconciler's switch: writes refused while it rebuilds Redis. */
static void reconciler_writes(void *ctx, bool refuse, int retry_after_s)
{
    (void)retry_after_s; /* routes answer Retry-After 2: the data-loss check runs each second */
    br_distributed_set_writable(ctx, !refuse,
                                refuse ? "Redis lost its data: the reconciler is rebuilding it "
                                         "from PostgreSQL"
                                       : NULL);
}

/* The recorder and the reconciler (server/recorder.h, reconciler.h), when
 * this process runs them: their own connections, threads and leases. */
static int open_record_roles(struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    const struct br_redis_options *ro = br_distributed_redis_options(sv->dist);
    const struct br_config *ec = br_distributed_engine_config(sv->dist);
    if (cfg->roles & BR_DIST_ROLE_RECORDER) {
        struct br_recorder_options o;
        memset(&o, 0, sizeof o);
        snprintf(o.owner, sizeof o.owner, "%s", br_distributed_process_id(sv->dist));
        if (br_recorder_open(&sv->recorder, ro, ec, sv->pg, &sv->log, &o) != BR_OK) {
            br_logf(&sv->log, BR_LOG_ERROR, "cannot start the recorder", NULL);
            return BR_E_IO;
        }
        br_distributed_add_metrics(sv->dist, recorder_metrics, sv->recorder);
    }
    if (cfg->roles & BR_DIST_ROLE_RECONCILER) {
        struct br_reconciler_options o;
        memset(&o, 0, sizeof o);
        snprintf(o.owner, sizeof o.owner, "%s", br_distributed_process_id(sv->dist));
        o.writes = reconciler_writes;
        o.writes_ctx = sv->dist;
        o.payment_check_ms = cfg->payment_check_ms;
        if (br_reconciler_open(&sv->reconciler, ro, ec, sv->pg, &sv->log, &o) != BR_OK) {
            br_logf(&sv->log, BR_LOG_ERROR, "cannot start the reconciler", NULL);
            return BR_E_IO;
        }
        br_distributed_add_metrics(sv->dist, reconciler_metrics, sv->reconciler);
    }
    return BR_OK;
}

static int start_record_roles(struct serve *sv)
{
    if (sv->recorder != NULL && br_recorder_start(sv->recorder) != BR_OK) {
        return BR_E_IO;
    }
    if (sv->reconciler != NULL && br_reconciler_start(sv->reconciler) != BR_OK) {
        return BR_E_IO;
    }
    return BR_OK;
}

/* The distributed deployment's provider: the built-in test provider with
 * its intents in PostgreSQL, or Stripe (--payments stripe). */
static int open_payments(struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    if (br_serve_stripe(cfg)) {
#ifdef BR_HAVE_STRIPE
        struct br_stripe_config scfg = {.api_base = cfg->stripe_api_base,
                                        .secret_key = cfg->stripe_key,
                                        .connect_timeout_ms = cfg->stripe_timeout_ms < 2000
                                                                  ? (long)cfg->stripe_timeout_ms
                                                                  : 2000,
                                        .timeout_ms = (long)cfg->stripe_timeout_ms,
                                        .attempts_max = cfg->stripe_attempts,
                                        .pg = sv->pg,
                                        .log = &sv->log};
        if (br_stripe_new(&sv->stripe, &scfg) != BR_OK) {
            br_logf(&sv->log, BR_LOG_ERROR, "cannot set up the Stripe adapter",
                    "\"api_base\":\"%s\"", cfg->stripe_api_base);
            return BR_E_IO;
        }
        sv->payments = br_stripe_provider(sv->stripe);
        br_logf(&sv->log, BR_LOG_INFO, "payments through Stripe", "\"api_base\":\"%s\"",
                cfg->stripe_api_base);
        return BR_OK;
#else
        br_logf(&sv->log, BR_LOG_ERROR, "--payments stripe: built without the Stripe adapter",
                NULL);
        return BR_E_INVALID;
#endif
    }
    struct br_provider_test_pg_config pcfg = {.pg = sv->pg, .webhook_secret = sv->sec.webhook,
                                              .attempts_max = WEBHOOK_ATTEMPTS, .log = &sv->log};
    if (br_provider_test_pg_new(&sv->provider_pg, &pcfg) != BR_OK) {
        return BR_E_IO;
    }
    sv->payments = br_provider_test_pg_provider(sv->provider_pg);
    return BR_OK;
}

/* The distributed backend over Redis and PostgreSQL, its roles, the hub,
 * the first administrator and the demo event. */
static int open_distributed(struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    if (br_pg_open(&sv->pg, cfg->pg_url, cfg->pg_pool, &sv->log) != BR_OK) {
        br_logf(&sv->log, BR_LOG_ERROR, "--pg: not a PostgreSQL URL", NULL);
        return BR_E_INVALID;
    }
    if (open_payments(sv) != BR_OK) {
        return BR_E_IO;
    }
    struct br_distributed_config dcfg = {
        .redis_url = cfg->redis_url, .pg = sv->pg, .roles = cfg->roles, .tick_ms = cfg->tick_ms,
        .conns = cfg->redis_conns, .log = &sv->log,
        .payments = sv->payments,
        .payment_check_ms = cfg->payment_check_ms,
        .kafka_bootstrap = cfg->kafka,
        .kafka_prefix = cfg->kafka_prefix,
        .kafka_group = cfg->kafka_group,
        .kafka_dlq_after = cfg->kafka_dlq_after,
        .kafka_session_timeout_ms = cfg->kafka_session_timeout_ms,
        .relay_batch = cfg->relay_batch};
    br_config_size(&cfg->sizing, 0, &dcfg.engine);
    if (open_distributed_backend(sv, &dcfg) != BR_OK) {
        return BR_E_UNAVAILABLE;
    }
    sv->backend = br_distributed_backend(sv->dist);
#ifdef BR_HAVE_STRIPE
    if (sv->stripe != NULL) {
        br_distributed_add_metrics(sv->dist, stripe_metrics, sv->stripe);
    }
#endif
    if (open_hub(sv) != BR_OK) {
        return BR_E_IO;
    }
    br_distributed_set_listener(sv->dist, br_hub_listener(sv->hub));
    if (open_record_roles(sv) != BR_OK || br_distributed_start(sv->dist) != BR_OK ||
        start_record_roles(sv) != BR_OK) {
        return BR_E_IO;
    }
    br_logf(&sv->log, BR_LOG_INFO, "distributed backend running",
            "\"roles\":\"%s\",\"process\":\"%s\",\"redis_conns\":%u,\"pg_pool\":%u",
            cfg->roles_text, br_distributed_process_id(sv->dist), cfg->redis_conns,
            cfg->pg_pool);
    return bootstrap(sv);
}

/* The test provider, the embedded backend (its journal replayed), the SSE
 * hub, the first administrator and the demo event. BR_OK or an error
 * (already logged). */
static int open_backend(struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    if (br_serve_distributed(cfg)) {
        return open_distributed(sv);
    }
    struct br_provider_test_config pcfg = {
        .webhook_secret = sv->sec.webhook, .intents_max = INTENTS_MAX,
        .attempts_max = WEBHOOK_ATTEMPTS};
    if (br_provider_test_new(&sv->provider, &pcfg) != BR_OK) {
        return BR_E_IO;
    }
    sv->payments = br_provider_test_provider(sv->provider);
    struct br_embedded_config ecfg = {
        .data_dir = cfg->data_dir, .tick_ms = cfg->tick_ms, .fsync = true,
        .syncers = cfg->journal_syncs, .provider = sv->payments,
        .payment_check_ms = cfg->payment_check_ms,
        .log = &sv->log,
        .email_hash_bits = cfg->test_email_hash_bits};
    br_config_size(&cfg->sizing, 0, &ecfg.engine);
    int64_t t0 = br_clock_mono_ms();
    if (br_embedded_open(&sv->emb, &ecfg) != BR_OK) {
        return BR_E_IO;
    }
    sv->replayed = br_embedded_replayed(sv->emb);
    br_logf(&sv->log, BR_LOG_INFO, "journal replayed", "\"commands\":%" PRIu64 ",\"ms\":%lld",
            sv->replayed, (long long)(br_clock_mono_ms() - t0));
    log_engine(sv->emb, cfg, &ecfg.engine, &sv->log);
    sv->backend = br_embedded_backend(sv->emb);
    if (open_hub(sv) != BR_OK) {
        return BR_E_IO;
    }
    br_embedded_set_listener(sv->emb, br_hub_listener(sv->hub));
    if (br_embedded_start(sv->emb) != BR_OK) {
        return BR_E_IO;
    }
    return bootstrap(sv);
}

/* The hash threads' view of the sale's load (br_hashpool_yield): answers
 * the HTTP layer still owes; 0 before it listens. */
static unsigned hash_busy(void *ctx)
{
    struct br_routes *rt = ctx;
    struct br_http_server *http = atomic_load(&rt->http);
    return http != NULL ? br_http_awaiting(http) : 0;
}

/* The routes' context: metrics, rate limits, the token cache, the hashing
 * pool, trusted proxies and the secrets. BR_OK or an error (logged). */
static int build_routes(struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    struct br_routes *rt = sv->rt;
    unsigned route_count = 0;
    const char *const *names = br_routes_names(&route_count);
    if (br_metrics_new(&sv->metrics, names, route_count) != BR_OK ||
        br_ratelimit_new(&sv->rl_user, cfg->rate_user, RATE_SLOTS) != BR_OK ||
        br_ratelimit_new(&sv->rl_ip, cfg->rate_ip, RATE_SLOTS) != BR_OK ||
        br_ratelimit_new(&sv->rl_join, cfg->join_limit_ip, RATE_SLOTS) != BR_OK ||
        (sv->backend->ops->pow_use == NULL &&
         br_pow_new(&sv->pow, cfg->pow_used_max) != BR_OK) ||
        br_jwt_cache_new(&sv->jwt_cache, JWT_CACHE_SLOTS) != BR_OK ||
        br_hashpool_new(&sv->hashpool, cfg->hash_threads, cfg->hash_queue, cfg->hash_nice,
                        strcmp(cfg->hash_sched, "idle") == 0) != BR_OK) {
        return BR_E_IO;
    }
    int tc = cfg->trusted_proxies[0]
                 ? br_cidr_parse_list(cfg->trusted_proxies, rt->trusted, BR_CIDR_MAX)
                 : 0;
    if (tc < 0) {
        br_logf(&sv->log, BR_LOG_ERROR, "--trusted-proxies wants CIDR,CIDR,...", NULL);
        return BR_E_INVALID;
    }
    uint8_t prefix[4];
    br_auth_random(prefix, sizeof prefix);
    rt->backend = sv->backend;
    br_metrics_set_backend(sv->metrics, sv->backend);
    rt->hub = sv->hub;
    rt->presence = sv->presence;
    rt->metrics = sv->metrics;
    rt->rl_user = sv->rl_user;
    rt->rl_ip = sv->rl_ip;
    /* Issue 13: the door. Challenges are signed with a key derived from the
     * JWT secret, which every process of a deployment shares. */
    rt->rl_join = sv->rl_join;
    rt->pow = sv->pow;
    uint8_t pk[32];
    br_auth_hmac_sha256(sv->sec.jwt, sv->sec.jwt_len, "bookingrush pow", 15, pk);
    br_auth_hex(pk, sizeof pk, sv->pow_secret);
    rt->pow_secret = sv->pow_secret;
    rt->provider = &sv->payments;
    rt->cfg = cfg;
    rt->log = &sv->log;
    rt->trusted_count = (unsigned)tc;
    rt->jwt_cache = sv->jwt_cache;
    rt->hashpool = sv->hashpool;
    br_hashpool_yield(sv->hashpool, hash_busy, rt, cfg->hash_yield_above, cfg->hash_yield_ms);
    rt->jwt_secret = sv->sec.jwt;
    rt->jwt_secret_len = sv->sec.jwt_len;
    rt->pass_secret = sv->sec.pass;
    rt->pass_secret_len = sizeof sv->sec.pass;
    rt->webhook_secret = sv->sec.webhook;
    if (br_serve_webhook_secrets(cfg->stripe_webhook_secret, sv->sec.webhook, sv->wh_buf,
                                 sizeof sv->wh_buf, sv->wh, &sv->wh_count) != 0) {
        br_logf(&sv->log, BR_LOG_ERROR, "--stripe-webhook-secret wants 1 to 4 secrets", NULL);
        return BR_E_INVALID;
    }
    for (size_t i = 0; i < sv->wh_count; i++) {
        rt->webhook_secrets[i] = sv->wh[i];
    }
    rt->webhook_secret_count = sv->wh_count;
    rt->webhook_tolerance_s = cfg->webhook_tolerance_s;
    rt->facts_pg = br_serve_kafka(cfg) ? sv->pg : NULL;
    rt->openapi = br_openapi_json;
    rt->openapi_len = br_openapi_json_len;
    rt->replayed = sv->replayed;
    rt->req_prefix = (uint32_t)prefix[0] << 24 | (uint32_t)prefix[1] << 16 |
                     (uint32_t)prefix[2] << 8 | prefix[3];
    atomic_init(&rt->req_seq, 1);
    atomic_init(&rt->draining, false);
    atomic_init(&rt->http, NULL);
    return BR_OK;
}

/* The listening socket, the provider's webhook target and the port file. */
static int start_http(struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    struct br_http_config hc = {.bind_addr = cfg->bind,
                                .port = cfg->port,
                                .threads = cfg->threads,
                                .body_max = cfg->body_max,
                                .conn_memory_max = cfg->header_max,
                                .idle_timeout_s = IDLE_TIMEOUT_S,
                                .connections_max = CONNECTIONS_MAX,
                                .turbo = true,
                                .handler = br_routes_handle,
                                .resumed = br_routes_resumed,
                                .closed = br_routes_closed,
                                .ctx = sv->rt,
                                .reuse_port = cfg->reuse_port,
                                .log = &sv->log};
    if (br_http_start(&sv->http, &hc) != BR_OK) {
        return BR_E_IO;
    }
    atomic_store(&sv->rt->http, sv->http);
    sv->port = br_http_port(sv->http);
    char url[BR_CONFIG_TEXT_MAX + 64];
    bool any = strcmp(cfg->bind, "0.0.0.0") == 0 || strcmp(cfg->bind, "::") == 0;
    bool v6 = strchr(cfg->bind, ':') != NULL;
    snprintf(url, sizeof url, "http://%s%s%s:%u/api/v1/webhooks/stripe", v6 && !any ? "[" : "",
             any ? "127.0.0.1" : cfg->bind, v6 && !any ? "]" : "", (unsigned)sv->port);
    if (br_provider_start(&sv->payments, url) != BR_OK) {
        return BR_E_IO;
    }
    if (cfg->port_file[0] != '\0') {
        char text[16];
        int n = snprintf(text, sizeof text, "%u\n", (unsigned)sv->port);
        if (write_file_atomic(cfg->port_file, text, (size_t)n) != 0) {
            log_file_error(&sv->log, "cannot write --port-file", cfg->port_file, errno);
            return BR_E_IO;
        }
    }
    return BR_OK;
}

/* The start-up line in the log and the banner on stdout. */
static void announce(const struct serve *sv)
{
    const struct br_serve_config *cfg = &sv->cfg;
    unsigned port = sv->port;
    bool any = strcmp(cfg->bind, "0.0.0.0") == 0 || strcmp(cfg->bind, "::") == 0;
    br_logf(&sv->log, BR_LOG_INFO, "listening",
            "\"port\":%u,\"bind\":\"%s\",\"threads\":%u,\"backend\":\"%s\"", port,
            cfg->bind, cfg->threads, cfg->backend);
    if (br_serve_distributed(cfg)) {
        printf("Booking Rush is serving on http://%s:%u (distributed backend, roles %s)\n",
               any ? "localhost" : cfg->bind, port, cfg->roles_text);
    } else {
        printf("Booking Rush is serving on http://%s:%u (embedded backend, data in %s)\n",
               any ? "localhost" : cfg->bind, port, cfg->data_dir);
    }
    printf("  API document:  http://localhost:%u/api/v1/openapi.json\n", port);
    if (cfg->demo && sv->demo_event == 0) {
        printf("  demo event:    none, the engine is sized too small for it (see the log)\n");
    } else if (cfg->demo) {
        printf("  demo event:    http://localhost:%u/api/v1/events/%" PRIu64 "\n", port,
               sv->demo_event);
        printf("  a purchase with curl, step by step: README.md\n");
    }
    fflush(stdout);
}

/* SIGTERM's order: stop accepting, end the streams, let requests in flight
 * finish, stop the hashing pool and the provider, commit everything
 * pending (every waiting request answers). */
static void drain(struct serve *sv, int sig)
{
    br_logf(&sv->log, BR_LOG_INFO, "shutting down", "\"signal\":%d", sig);
    atomic_store(&sv->rt->draining, true);
    br_http_quiesce(sv->http);
    br_hub_end_all(sv->hub);
    wait_inflight(sv->http, sv->cfg.shutdown_grace_s * 1000u);
    br_hashpool_stop(sv->hashpool); /* the hashes still queued run: their requests go on */
    br_provider_stop(&sv->payments);
    wait_inflight(sv->http, 1000);
    br_embedded_close(sv->emb); /* commits everything pending: every waiting request answers */
    sv->emb = NULL;
    br_recorder_close(sv->recorder); /* stops its thread, gives its leases back */
    sv->recorder = NULL;
    br_reconciler_close(sv->reconciler);
    sv->reconciler = NULL;
    br_distributed_close(sv->dist); /* calls answer synchronously: none is waiting */
    sv->dist = NULL;
    wait_inflight(sv->http, 2000);
}

/* Frees what was made, in reverse order (any of it may be NULL). */
static void serve_close(struct serve *sv)
{
    br_hashpool_free(sv->hashpool);
    br_http_stop(sv->http);
    br_embedded_close(sv->emb);
    br_recorder_close(sv->recorder);
    br_reconciler_close(sv->reconciler);
    br_distributed_close(sv->dist);
#ifdef BR_HAVE_STRIPE
    br_stripe_free(sv->stripe);
#endif
    br_pg_close(sv->pg);
    br_hub_free(sv->hub);
    br_presence_free(sv->presence); /* after the hub: its thread flushed it */
    br_provider_test_free(sv->provider);
    br_provider_test_pg_free(sv->provider_pg);
    br_ratelimit_free(sv->rl_user);
    br_ratelimit_free(sv->rl_ip);
    br_ratelimit_free(sv->rl_join);
    br_pow_free(sv->pow);
    br_metrics_free(sv->metrics);
    br_jwt_cache_free(sv->jwt_cache);
    free(sv->rt);
}

int br_serve_main(int argc, char **argv)
{
    static struct serve sv; /* one per process; large (secrets, config) */
    memset(&sv, 0, sizeof sv);
    int prc = br_serve_config_parse(argc, argv, &sv.cfg);
    if (prc != 0) {
        return prc > 0 ? 0 : 2;
    }
    sv.log = (struct br_log){.level = sv.cfg.log_level, .fd = 2};

    /* Every thread started from here on inherits the blocked signals; this
     * thread takes them with sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The distributed deployment keeps no journal: processes on one host
     * may share the data dir (its secrets, read under secrets.lock). */
    int lock_fd = br_serve_distributed(&sv.cfg) ? share_data_dir(sv.cfg.data_dir, &sv.log)
                                                : lock_data_dir(sv.cfg.data_dir, &sv.log);
    if (lock_fd < 0) {
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int exit_code = 1;
    sv.rt = calloc(1, sizeof *sv.rt);
    int src = sv.rt == NULL ? BR_E_IO
              : br_serve_distributed(&sv.cfg) ? load_secrets_shared(&sv.cfg, &sv.log, &sv.sec)
                                              : load_secrets(&sv.cfg, &sv.log, &sv.sec);
    if (src == BR_OK &&
        open_backend(&sv) == BR_OK && build_routes(&sv) == BR_OK && start_http(&sv) == BR_OK) {
        announce(&sv);
        int sig = 0;
        sigwait(&sigs, &sig);
        drain(&sv, sig);
        exit_code = 0;
    }
    serve_close(&sv);
    curl_global_cleanup();
    close(lock_fd);
    if (exit_code == 0) {
        br_logf(&sv.log, BR_LOG_INFO, "stopped", NULL);
    }
    return exit_code;
}
