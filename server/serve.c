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
#include "adapters/http.h"
#include "adapters/provider_test.h"
#include "core/err.h"
#include "core/panic.h"
#include "server/backend_embedded.h"
#include "server/config.h"
#include "server/hub.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/openapi.h"
#include "server/ratelimit.h"
#include "server/render.h"
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

static int write_file_atomic(const char *path, const char *data, size_t len)
{
    char tmp[BR_CONFIG_TEXT_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    bool ok = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
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
            br_logf(log, BR_LOG_ERROR, "cannot write the secrets file", "\"path\":\"%s\"", path);
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
static int bootstrap_admin(struct br_backend *b, const struct br_serve_config *c,
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
    br_logf(log, rc == BR_OK ? BR_LOG_INFO : BR_LOG_ERROR, "administrator registered",
            "\"user\":%" PRIu64 ",\"err\":\"%s\"", s.call.r.user.id, br_err_name(rc));
    return rc;
}

/* --demo: one event on sale now, unless there are events already. */
static int bootstrap_demo(struct br_backend *b, const struct br_log *log, uint64_t *event_id)
{
    struct br_api_event first;
    struct sync_call s;
    struct br_call *c = sync_begin(&s);
    c->events = &first;
    c->list_cap = 1;
    b->ops->event_list(b, 0, c);
    int rc = sync_wait(&s);
    if (rc != BR_OK) {
        return rc;
    }
    if (s.call.list_count > 0) {
        *event_id = first.id;
        return BR_OK;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000;
    struct br_event_spec spec;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.name, sizeof spec.name, "Booking Rush Live: Demo Night");
    snprintf(spec.venue, sizeof spec.venue, "Demo Arena");
    spec.starts_at_ms = now + 30LL * 86400 * 1000;
    spec.sale_opens_at_ms = now;
    spec.per_user_limit = 4;
    spec.requires_pass = true;
    spec.max_active = 50;
    spec.admit_per_tick = 10;
    spec.pass_ttl_ms = 300000;
    spec.hold_ttl_ms = 600000;
    spec.queue_capacity = 50000;
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
    b->ops->event_create(b, 0, &spec, sync_begin(&s));
    rc = sync_wait(&s);
    *event_id = s.call.r.event.id;
    br_logf(log, rc == BR_OK ? BR_LOG_INFO : BR_LOG_ERROR, "demo event created",
            "\"event\":%" PRIu64 ",\"err\":\"%s\"", *event_id, br_err_name(rc));
    return rc;
}

/* ---- the data dir lock ---- */

static int lock_data_dir(const char *dir, const struct br_log *log)
{
    char path[BR_CONFIG_TEXT_MAX + 16];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        br_logf(log, BR_LOG_ERROR, "the data dir is in use by another server",
                "\"path\":\"%s\"", path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd; /* held until exit */
}

static void wait_inflight(struct br_http_server *http, unsigned grace_ms)
{
    for (unsigned waited = 0; waited < grace_ms && br_http_inflight(http) > 0; waited += 10) {
        struct timespec d = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
        nanosleep(&d, NULL);
    }
}

int br_serve_main(int argc, char **argv)
{
    struct br_serve_config cfg;
    int prc = br_serve_config_parse(argc, argv, &cfg);
    if (prc != 0) {
        return prc > 0 ? 0 : 2;
    }
    struct br_log log = {.level = cfg.log_level, .fd = 2};

    /* Every thread started from here on inherits the blocked signals; this
     * thread takes them with sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mkdir(cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        br_logf(&log, BR_LOG_ERROR, "cannot create the data dir", "\"path\":\"%s\"",
                cfg.data_dir);
        return 1;
    }
    int lock_fd = lock_data_dir(cfg.data_dir, &log);
    if (lock_fd < 0) {
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct secrets sec;
    memset(&sec, 0, sizeof sec);
    int exit_code = 1;
    struct br_provider_test *provider = NULL;
    struct br_embedded *emb = NULL;
    struct br_hub *hub = NULL;
    struct br_metrics *metrics = NULL;
    struct br_ratelimit *rl_user = NULL;
    struct br_ratelimit *rl_ip = NULL;
    struct br_http_server *http = NULL;
    struct br_jwt_cache *jwt_cache = NULL;
    struct br_routes *rt = calloc(1, sizeof *rt);
    if (rt == NULL || load_secrets(&cfg, &log, &sec) != BR_OK) {
        goto out;
    }

    struct br_provider_test_config pcfg = {
        .webhook_secret = sec.webhook, .intents_max = INTENTS_MAX,
        .attempts_max = WEBHOOK_ATTEMPTS};
    if (br_provider_test_new(&provider, &pcfg) != BR_OK) {
        goto out;
    }
    struct br_embedded_config ecfg = {
        .data_dir = cfg.data_dir, .tick_ms = cfg.tick_ms, .fsync = true,
        .syncers = cfg.journal_syncs, .provider = provider, .log = &log};
    int64_t t0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t0 = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    if (br_embedded_open(&emb, &ecfg) != BR_OK) {
        goto out;
    }
    uint64_t replayed = 0;
    uint64_t diverged = 0;
    br_embedded_replay_stats(emb, &replayed, &diverged);
    {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t t1 = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        br_logf(&log, diverged ? BR_LOG_WARN : BR_LOG_INFO, "journal replayed",
                "\"commands\":%" PRIu64 ",\"diverged\":%" PRIu64 ",\"ms\":%lld", replayed,
                diverged, (long long)(t1 - t0));
    }
    struct br_backend *backend = br_embedded_backend(emb);
    struct br_hub_config hcfg = {.backend = backend,
                                 .pass_secret = sec.pass,
                                 .pass_secret_len = sizeof sec.pass,
                                 .keepalive_ms = cfg.sse_keepalive_s * 1000u,
                                 .refresh_ms = cfg.tick_ms < HUB_REFRESH_MS ? cfg.tick_ms
                                                                            : HUB_REFRESH_MS,
                                 .log = &log};
    if (br_hub_new(&hub, &hcfg) != BR_OK) {
        goto out;
    }
    br_embedded_set_listener(emb, br_hub_listener(hub));
    if (br_embedded_start(emb) != BR_OK) {
        goto out;
    }
    if (cfg.admin[0] != '\0' && bootstrap_admin(backend, &cfg, &log) != BR_OK) {
        goto out;
    }
    uint64_t demo_event = 0;
    if (cfg.demo && bootstrap_demo(backend, &log, &demo_event) != BR_OK) {
        goto out;
    }

    unsigned route_count = 0;
    const char *const *names = br_routes_names(&route_count);
    if (br_metrics_new(&metrics, names, route_count) != BR_OK ||
        br_ratelimit_new(&rl_user, cfg.rate_user, RATE_SLOTS) != BR_OK ||
        br_ratelimit_new(&rl_ip, cfg.rate_ip, RATE_SLOTS) != BR_OK ||
        br_jwt_cache_new(&jwt_cache, JWT_CACHE_SLOTS) != BR_OK) {
        goto out;
    }
    int tc = cfg.trusted_proxies[0] ? br_cidr_parse_list(cfg.trusted_proxies, rt->trusted,
                                                         BR_CIDR_MAX)
                                    : 0;
    if (tc < 0) {
        br_logf(&log, BR_LOG_ERROR, "--trusted-proxies wants CIDR,CIDR,...", NULL);
        goto out;
    }
    uint8_t prefix[4];
    br_auth_random(prefix, sizeof prefix);
    rt->backend = backend;
    rt->hub = hub;
    rt->metrics = metrics;
    rt->rl_user = rl_user;
    rt->rl_ip = rl_ip;
    rt->provider = provider;
    rt->cfg = &cfg;
    rt->log = &log;
    rt->trusted_count = (unsigned)tc;
    rt->jwt_cache = jwt_cache;
    rt->jwt_secret = sec.jwt;
    rt->jwt_secret_len = sec.jwt_len;
    rt->pass_secret = sec.pass;
    rt->pass_secret_len = sizeof sec.pass;
    rt->webhook_secret = sec.webhook;
    rt->openapi = br_openapi_json;
    rt->openapi_len = br_openapi_json_len;
    rt->replayed = replayed;
    rt->req_prefix = (uint32_t)prefix[0] << 24 | (uint32_t)prefix[1] << 16 |
                     (uint32_t)prefix[2] << 8 | prefix[3];
    atomic_init(&rt->req_seq, 1);
    atomic_init(&rt->draining, false);
    atomic_init(&rt->http, NULL);

    struct br_http_config hc = {.bind_addr = cfg.bind,
                                .port = cfg.port,
                                .threads = cfg.threads,
                                .body_max = cfg.body_max,
                                .conn_memory_max = cfg.header_max,
                                .idle_timeout_s = IDLE_TIMEOUT_S,
                                .connections_max = CONNECTIONS_MAX,
                                .turbo = true,
                                .handler = br_routes_handle,
                                .resumed = br_routes_resumed,
                                .closed = br_routes_closed,
                                .ctx = rt};
    if (br_http_start(&http, &hc) != BR_OK) {
        goto out;
    }
    atomic_store(&rt->http, http);
    uint16_t port = br_http_port(http);
    char url[BR_CONFIG_TEXT_MAX + 64];
    bool any = strcmp(cfg.bind, "0.0.0.0") == 0 || strcmp(cfg.bind, "::") == 0;
    bool v6 = strchr(cfg.bind, ':') != NULL;
    snprintf(url, sizeof url, "http://%s%s%s:%u/api/v1/webhooks/stripe", v6 && !any ? "[" : "",
             any ? "127.0.0.1" : cfg.bind, v6 && !any ? "]" : "", (unsigned)port);
    if (br_provider_test_start(provider, url) != BR_OK) {
        goto out;
    }
    if (cfg.port_file[0] != '\0') {
        char text[16];
        int n = snprintf(text, sizeof text, "%u\n", (unsigned)port);
        if (write_file_atomic(cfg.port_file, text, (size_t)n) != 0) {
            br_logf(&log, BR_LOG_ERROR, "cannot write --port-file", NULL);
            goto out;
        }
    }
    br_logf(&log, BR_LOG_INFO, "listening",
            "\"port\":%u,\"bind\":\"%s\",\"threads\":%u,\"backend\":\"embedded\"", (unsigned)port,
            cfg.bind, cfg.threads);
    printf("Booking Rush is serving on http://%s:%u (embedded backend, data in %s)\n",
           any ? "localhost" : cfg.bind, (unsigned)port, cfg.data_dir);
    printf("  API document:  http://localhost:%u/api/v1/openapi.json\n", (unsigned)port);
    if (cfg.demo) {
        printf("  demo event:    http://localhost:%u/api/v1/events/%" PRIu64 "\n", (unsigned)port,
               demo_event);
        printf("  a purchase with curl, step by step: README.md\n");
    }
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    br_logf(&log, BR_LOG_INFO, "shutting down", "\"signal\":%d", sig);
    atomic_store(&rt->draining, true);
    br_http_quiesce(http);
    br_hub_end_all(hub);
    wait_inflight(http, cfg.shutdown_grace_s * 1000u);
    br_provider_test_stop(provider);
    wait_inflight(http, 1000);
    br_embedded_close(emb); /* commits everything pending: every waiting request answers */
    emb = NULL;
    wait_inflight(http, 2000);
    exit_code = 0;

out:
    br_http_stop(http);
    br_embedded_close(emb);
    br_hub_free(hub);
    br_provider_test_free(provider);
    br_ratelimit_free(rl_user);
    br_ratelimit_free(rl_ip);
    br_metrics_free(metrics);
    br_jwt_cache_free(jwt_cache);
    free(rt);
    curl_global_cleanup();
    close(lock_fd);
    if (exit_code == 0) {
        br_logf(&log, BR_LOG_INFO, "stopped", NULL);
    }
    return exit_code;
}
