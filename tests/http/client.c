/* client.c -- the HTTP suite's harness and client (see client.h). */
#define _DEFAULT_SOURCE

#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <jwt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The distributed deployment's server dir last started, for T_FAIL
 * ("" before the first). */
static char g_dist_dir[256];

/* The harness cannot go on (the server did not start, a setup step
 * failed): say why and abort the test executable. With the distributed
 * deployment, the ends of its processes' logs come first (several
 * processes, a shared Redis and PostgreSQL: the why is often there). */
static _Noreturn void T_FAIL(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void T_FAIL(const char *fmt, ...)
{
    if (g_dist_dir[0] != '\0') {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -n 8 '%s'/server*.log >&2", g_dist_dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "(no server log)\n");
        }
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "http suite: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

struct settings {
    const char *binary;
    const char *base_url;
    /* The distributed deployment (BR_TEST_DIST, see client.h). */
    const char *dist_redis;
    const char *dist_pg;
    int nodes;
    char dist_flags_text[512];
    const char *dist_flags[16];
    int dist_flag_count;
};

/* The suite's settings: written once by t_init in main, read-only after. */
static struct settings g_settings;

void t_init(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s BINARY [BASE_URL]\n", argv[0]);
        exit(2);
    }
    g_settings.binary = argv[1];
    g_settings.base_url = argc > 2 ? argv[2] : NULL;
    g_settings.nodes = 1;
    const char *redis = getenv("BR_TEST_DIST");
    if (g_settings.base_url == NULL && redis != NULL && redis[0] != '\0') {
        const char *pg = getenv("BR_TEST_PG");
        if (pg == NULL || pg[0] == '\0') {
            fprintf(stderr, "BR_TEST_DIST needs BR_TEST_PG=postgresql://... as well\n");
            exit(2);
        }
        g_settings.dist_redis = redis;
        g_settings.dist_pg = pg;
        const char *n = getenv("BR_TEST_NODES");
        g_settings.nodes = n != NULL ? atoi(n) : 2;
        if (g_settings.nodes < 1 || g_settings.nodes > T_NODES_MAX) {
            fprintf(stderr, "BR_TEST_NODES must be 1..%d\n", T_NODES_MAX);
            exit(2);
        }
        const char *flags = getenv("BR_TEST_DIST_FLAGS");
        snprintf(g_settings.dist_flags_text, sizeof g_settings.dist_flags_text, "%s",
                 flags != NULL ? flags : "");
        char *save = NULL;
        for (char *tok = strtok_r(g_settings.dist_flags_text, " ", &save);
             tok != NULL && g_settings.dist_flag_count < 16; tok = strtok_r(NULL, " ", &save)) {
            g_settings.dist_flags[g_settings.dist_flag_count++] = tok;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
}

bool t_distributed(void)
{
    return g_settings.dist_redis != NULL;
}

bool t_redis_cluster(void)
{
    return g_settings.dist_redis != NULL &&
           strncmp(g_settings.dist_redis, "redis-cluster://", 16) == 0;
}

char *t_path_of(char *buf, size_t cap, const char *fmt, uint64_t id)
{
    snprintf(buf, cap, fmt, (unsigned long long)id);
    return buf;
}

int64_t t_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool t_external(void)
{
    return g_settings.base_url != NULL;
}

const char *t_binary(void)
{
    return g_settings.binary;
}

void t_sleep_ms(int ms)
{
    struct timespec d = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

char *t_metrics_all(struct t_server *s)
{
    size_t len = 0;
    char *all = calloc(1, 1);
    if (all == NULL) {
        T_FAIL("metrics: out of memory");
    }
    for (int i = 0; i < s->nodes; i++) {
        if (s->pids[i] == 0) {
            continue;
        }
        struct t_resp r;
        t_request_to(s, i, "GET", "/metrics", NULL, NULL, NULL, 0, &r);
        char *np = realloc(all, len + r.len + 1);
        if (np == NULL) {
            T_FAIL("metrics: out of memory");
        }
        all = np;
        memcpy(all + len, r.body, r.len);
        len += r.len;
        all[len] = '\0';
        t_resp_free(&r);
    }
    return all;
}

bool t_psql_row(const char *pg_url, const char *sql, char *out, size_t cap)
{
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd, "psql -X -At -d '%s' -c \"%s\" 2>&1", pg_url, sql);
    if (n < 0 || (size_t)n >= sizeof cmd) {
        return false;
    }
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return false;
    }
    out[0] = '\0';
    if (fgets(out, (int)cap, p) == NULL) {
        out[0] = '\0';
    }
    out[strcspn(out, "\n")] = '\0';
    return pclose(p) == 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- requests ---- */

struct sink {
    char *p;
    size_t len;
    struct t_resp *r;
};

bool t_append(char **buf, size_t *len, const char *ptr, size_t add)
{
    char *np = realloc(*buf, *len + add + 1);
    if (np == NULL) {
        return false;
    }
    memcpy(np + *len, ptr, add);
    *buf = np;
    *len += add;
    (*buf)[*len] = '\0';
    return true;
}

void t_multi_run(CURLM *m)
{
    int running = 1;
    for (int guard = 0; running > 0 && guard < 1000000; guard++) {
        curl_multi_perform(m, &running);
        if (running > 0) {
            curl_multi_poll(m, NULL, 0, 100, NULL);
        }
    }
}

long t_multi_status(CURLMsg *msg, long failed)
{
    long status = failed;
    if (msg->data.result == CURLE_OK) {
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
    }
    return status;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t add = size * n;
    if (!t_append(&s->p, &s->len, ptr, add)) {
        return 0;
    }
    return add;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':') {
        return;
    }
    const char *v = line + n + 1;
    size_t vl = len - n - 1;
    while (vl > 0 && (*v == ' ')) {
        v++;
        vl--;
    }
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) {
        vl--;
    }
    if (vl >= cap) {
        vl = cap - 1;
    }
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t len = size * n;
    header_value(line, len, "Retry-After", s->r->retry_after, sizeof s->r->retry_after);
    header_value(line, len, "Allow", s->r->allow, sizeof s->r->allow);
    header_value(line, len, "X-Request-Id", s->r->request_id, sizeof s->r->request_id);
    header_value(line, len, "Content-Type", s->r->content_type, sizeof s->r->content_type);
    header_value(line, len, "Cache-Control", s->r->cache_control, sizeof s->r->cache_control);
    header_value(line, len, "ETag", s->r->etag, sizeof s->r->etag);
    header_value(line, len, "Content-Security-Policy", s->r->csp, sizeof s->r->csp);
    return len;
}

/* Points s->base at the next live process (round-robin); with one process
 * it stays where it is. */
static void advance(struct t_server *s)
{
    if (s->nodes <= 1) {
        return;
    }
    if (!s->one_process) {
        s->turn++;
    }
    for (int k = 0; k < s->nodes; k++) {
        int j = (int)((s->turn + (unsigned)k) % (unsigned)s->nodes);
        if (s->pids[j] != 0) {
            s->current = j;
            snprintf(s->base, sizeof s->base, "%s", s->bases[j]);
            return;
        }
    }
}

static void request_at(const char *base, const char *method, const char *path, const char *token,
                       const char *const *headers, const char *body, size_t body_len,
                       struct t_resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct curl_slist *h = NULL;
    char auth[1200];
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    for (int i = 0; headers != NULL && headers[i] != NULL; i++) {
        h = curl_slist_append(h, headers[i]);
    }
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trips */
    struct sink sk = {NULL, 0, r};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sk);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &sk);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        r->status = -1;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    }
    r->body = sk.p != NULL ? sk.p : strdup("");
    r->len = sk.len;
    r->json = json_loadb(r->body, r->len, 0, NULL);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

void t_request(struct t_server *s, const char *method, const char *path, const char *token,
               const char *const *headers, const char *body, size_t body_len, struct t_resp *r)
{
    request_at(s->base, method, path, token, headers, body, body_len, r);
    advance(s);
}

void t_request_to(struct t_server *s, int node, const char *method, const char *path,
                  const char *token, const char *const *headers, const char *body, size_t body_len,
                  struct t_resp *r)
{
    request_at(s->nodes > 1 ? s->bases[node] : s->base, method, path, token, headers, body,
               body_len, r);
}

void t_json(struct t_server *s, const char *method, const char *path, const char *token,
            json_t *body, const char *const *headers, struct t_resp *r)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    const char *hs[16];
    int n = 0;
    hs[n++] = "Content-Type: application/json";
    for (int i = 0; headers != NULL && headers[i] != NULL && n < 15; i++) {
        hs[n++] = headers[i];
    }
    hs[n] = NULL;
    t_request(s, method, path, token, hs, text, text ? strlen(text) : 0, r);
    free(text);
}

void t_resp_free(struct t_resp *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* ---- the server process ---- */

/* Node i's files in the server's dir: node 0 keeps the names a single
 * server always had (port, data, server.log); node i > 0 adds its index. */
static void node_path(const struct t_server *s, int i, const char *name, char *out, size_t cap)
{
    if (i == 0) {
        snprintf(out, cap, "%s/%s", s->dir, name);
    } else {
        snprintf(out, cap, "%s/%s%d", s->dir, name, i);
    }
}

static void read_port(struct t_server *s, int i, int timeout_ms)
{
    char path[300];
    node_path(s, i, "port", path, sizeof path);
    int64_t until = now_ms() + timeout_ms;
    while (now_ms() < until) {
        FILE *f = fopen(path, "r");
        unsigned port = 0;
        if (f != NULL) {
            int got = fscanf(f, "%u", &port);
            fclose(f);
            if (got == 1 && port > 0) {
                snprintf(s->bases[i], sizeof s->bases[i], "http://127.0.0.1:%u", port);
                return;
            }
        }
        int status;
        if (waitpid(s->pids[i], &status, WNOHANG) == s->pids[i]) {
            s->pids[i] = 0;
            T_FAIL("the server exited during start-up (log in %s/server%s.log)", s->dir,
                   i == 0 ? "" : "N");
        }
        t_sleep_ms(20);
    }
    T_FAIL("the server did not start within %d ms (log in %s/server.log)", timeout_ms, s->dir);
}

static void spawn(struct t_server *s, int i)
{
    char path[300];
    node_path(s, i, "port", path, sizeof path);
    unlink(path);
    const char *args[64];
    int n = 0;
    char data[300];
    node_path(s, i, "data", data, sizeof data);
    args[n++] = s->binary;
    args[n++] = "serve";
    args[n++] = "--bind";
    args[n++] = "127.0.0.1";
    args[n++] = "--port";
    args[n++] = "0";
    args[n++] = "--port-file";
    args[n++] = path;
    args[n++] = "--data-dir";
    args[n++] = data;
    args[n++] = "--admin";
    args[n++] = T_ADMIN_EMAIL ":" T_ADMIN_PASSWORD;
    args[n++] = "--jwt-secret";
    args[n++] = T_JWT_SECRET;
    args[n++] = "--scrypt-log2n";
    args[n++] = "10";
    args[n++] = "--tick-ms";
    args[n++] = "20";
    args[n++] = "--log-level";
    args[n++] = "warn";
    if (t_distributed()) {
        args[n++] = "--backend";
        args[n++] = "distributed";
        args[n++] = "--redis";
        args[n++] = s->redis_url;
        args[n++] = "--pg";
        args[n++] = s->pg_url;
        for (int k = 0; k < g_settings.dist_flag_count; k++) {
            args[n++] = g_settings.dist_flags[k];
        }
    }
    for (int k = 0; k < s->extra_count; k++) {
        args[n++] = s->extra[k];
    }
    args[n] = NULL;
    char log[300];
    node_path(s, i, "server", log, sizeof log - 4);
    strcat(log, ".log");
    pid_t pid = fork();
    if (pid < 0) {
        T_FAIL("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* A test that aborts must not leave its server running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(s->binary, (char *const *)args);
        _exit(127);
    }
    s->pids[i] = pid;
    s->pid = s->pids[0];
    read_port(s, i, 120000);
    /* Ready means the journal was replayed and the backend runs. */
    int64_t until = now_ms() + 60000;
    for (;;) {
        struct t_resp r;
        request_at(s->bases[i], "GET", "/readyz", NULL, NULL, NULL, 0, &r);
        long st = r.status;
        t_resp_free(&r);
        if (st == 200) {
            break;
        }
        if (now_ms() > until) {
            T_FAIL("the server never became ready (log in %s)", log);
        }
        t_sleep_ms(20);
    }
    if (s->nodes <= 1 || s->base[0] == '\0' || s->current == i) {
        s->current = i;
        snprintf(s->base, sizeof s->base, "%s", s->bases[i]);
    }
}

static void admin_login(struct t_server *s, const char *email, const char *password)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", email, "password", password), NULL, &r);
    const char *tok = json_string_value(json_object_get(r.json, "access_token"));
    if (r.status != 200 || tok == NULL) {
        T_FAIL("admin login failed: %ld %s", r.status, r.body);
    }
    snprintf(s->admin_token, sizeof s->admin_token, "%s", tok);
    t_resp_free(&r);
}

/* Runs a shell command, its output appended to the server dir's setup.log;
 * returns its exit status (-1 when it did not exit). */
static int shell(const struct t_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int shell(const struct t_server *s, const char *fmt, ...)
{
    char cmd[3072];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd - 400) {
        T_FAIL("command too long");
    }
    snprintf(cmd + n, sizeof cmd - (size_t)n, " >> '%s/setup.log' 2>&1", s->dir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The distributed deployment's fresh state for one server: an empty Redis
 * (every master of a cluster), a new database with the migrations applied. */
static void dist_prepare(struct t_server *s)
{
    static unsigned counter;
    counter++;
    snprintf(s->db, sizeof s->db, "brt_%d_%u", (int)getpid(), counter);
    const char *pg = g_settings.dist_pg;
    if (shell(s, "psql -X -q -v ON_ERROR_STOP=1 -d '%s' -c 'CREATE DATABASE %s'", pg, s->db) != 0) {
        T_FAIL("cannot create database %s on %s (see %s/setup.log)", s->db, pg, s->dir);
    }
    /* postgresql://user@host:port/db?opts: the same with our database. */
    const char *scheme = strstr(pg, "://");
    const char *slash = scheme != NULL ? strchr(scheme + 3, '/') : NULL;
    const char *query = strchr(pg, '?');
    if (slash == NULL) {
        snprintf(s->pg_url, sizeof s->pg_url, "%s/%s", pg, s->db);
    } else {
        snprintf(s->pg_url, sizeof s->pg_url, "%.*s/%s%s", (int)(slash - pg), pg, s->db,
                 query != NULL ? query : "");
    }
    const char *redis = g_settings.dist_redis;
    char host[128] = "127.0.0.1";
    unsigned port = 6379;
    /* redis://host:port, or redis-cluster://host:port,host:port,...: the
     * first node (FLUSHALL then goes to every master of the cluster). */
    const char *at = strstr(redis, "://");
    if (at == NULL || sscanf(at + 3, "%127[^:/,]:%u", host, &port) < 1) {
        T_FAIL("BR_TEST_DIST: cannot read host:port from %s", redis);
    }
    int rc;
    if (strncmp(redis, "redis://", 8) == 0) {
        /* A database of its own (1..15, in turn): a suite may start a
         * second server while its first one runs (errors does), and the
         * first one's roles must not see the second one's fresh Redis. */
        static unsigned db;
        db = db % 15 + 1;
        snprintf(s->redis_url, sizeof s->redis_url, "redis://%s:%u/%u", host, port, db);
        rc = shell(s, "redis-cli -h %s -p %u -n %u FLUSHDB", host, port, db);
    } else {
        /* A cluster has one database: servers of one suite take turns. */
        snprintf(s->redis_url, sizeof s->redis_url, "%s", redis);
        rc = shell(
            s,
            "if redis-cli -h %s -p %u info cluster | grep -q '^cluster_enabled:1'; then "
            "redis-cli --cluster call %s:%u FLUSHALL; else redis-cli -h %s -p %u FLUSHALL; fi",
            host, port, host, port, host, port);
    }
    if (rc != 0) {
        T_FAIL("cannot empty Redis at %s (see %s/setup.log)", redis, s->dir);
    }
    if (shell(s, "'%s' migrate --pg '%s'", s->binary, s->pg_url) != 0) {
        T_FAIL("bookingrush migrate failed (see %s/setup.log)", s->dir);
    }
}

void t_server_start(struct t_server *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    s->nodes = 1;
    if (t_external()) {
        snprintf(s->base, sizeof s->base, "%s", g_settings.base_url);
        s->jwt_secret = getenv("BR_TEST_JWT_SECRET");
        const char *admin = getenv("BR_TEST_ADMIN");
        if (admin == NULL || strchr(admin, ':') == NULL) {
            T_FAIL("against a base URL, set BR_TEST_ADMIN=EMAIL:PASSWORD");
        }
        char email[256];
        size_t n = (size_t)(strchr(admin, ':') - admin);
        snprintf(email, sizeof email, "%.*s", (int)n, admin);
        admin_login(s, email, admin + n + 1);
        return;
    }
    snprintf(s->binary, sizeof s->binary, "%s", g_settings.binary);
    snprintf(s->dir, sizeof s->dir, "/tmp/br-http-XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        T_FAIL("mkdtemp: %s", strerror(errno));
    }
    for (int i = 0; extra != NULL && extra[i] != NULL && i < 16; i++) {
        snprintf(s->extra[i], sizeof s->extra[i], "%s", extra[i]);
        s->extra_count = i + 1;
    }
    s->jwt_secret = T_JWT_SECRET;
    if (!t_distributed()) {
        spawn(s, 0);
        admin_login(s, T_ADMIN_EMAIL, T_ADMIN_PASSWORD);
        return;
    }
    s->nodes = g_settings.nodes;
    snprintf(g_dist_dir, sizeof g_dist_dir, "%s", s->dir);
    for (int i = 0; i + 1 < s->extra_count; i++) {
        bool limit = strncmp(s->extra[i], "--rate-limit-", 13) == 0 ||
                     strcmp(s->extra[i], "--join-limit-ip") == 0; /* issue 13: per process too */
        if (limit && strcmp(s->extra[i + 1], "0") != 0) {
            s->one_process = true;
        }
    }
    dist_prepare(s);
    /* The first process alone: it creates the admin and the secrets the
     * others must share (the pass and webhook secrets). */
    spawn(s, 0);
    for (int i = 1; i < s->nodes; i++) {
        char data[300];
        node_path(s, i, "data", data, sizeof data);
        shell(s,
              "mkdir -p '%s' && if [ -f '%s/data/secrets.json' ]; then cp '%s/data/secrets.json' "
              "'%s/'; fi",
              data, s->dir, s->dir, data);
        spawn(s, i);
    }
    admin_login(s, T_ADMIN_EMAIL, T_ADMIN_PASSWORD);
}

void t_server_restart(struct t_server *s)
{
    int started = 0;
    for (int i = 0; i < s->nodes; i++) {
        if (s->pids[i] == 0) {
            spawn(s, i);
            started++;
        }
    }
    if (started == 0) {
        T_FAIL("restart of a running server");
    }
    admin_login(s, T_ADMIN_EMAIL, T_ADMIN_PASSWORD);
}

/* Waits for pid to exit (SIGKILL after timeout_ms); its exit code or -1. */
static int reap(pid_t pid, int timeout_ms)
{
    int status = 0;
    int64_t until = now_ms() + timeout_ms;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            break;
        }
        if (now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        t_sleep_ms(10);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void t_server_log_tail(const struct t_server *s, int lines)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s'/server*.log >&2", lines, s->dir);
    if (s->dir[0] == '\0' || system(cmd) != 0) {
        fprintf(stderr, "(no server log)\n");
    }
}

int t_server_stop(struct t_server *s)
{
    for (int i = 0; i < s->nodes; i++) {
        if (s->pids[i] != 0) {
            kill(s->pids[i], SIGTERM);
        }
    }
    int rc = 0;
    for (int i = 0; i < s->nodes; i++) {
        if (s->pids[i] != 0) {
            int one = reap(s->pids[i], 60000);
            if (one != 0) {
                fprintf(stderr, "http suite: server process %d exited with %d\n", i, one);
                rc = rc == 0 ? one : rc;
            }
            s->pids[i] = 0;
        }
    }
    s->pid = 0;
    return rc;
}

void t_server_kill(struct t_server *s)
{
    int i = s->nodes > 1 ? s->current : 0;
    if (s->pids[i] == 0) {
        return;
    }
    kill(s->pids[i], SIGKILL);
    waitpid(s->pids[i], NULL, 0);
    s->pids[i] = 0;
    s->pid = s->pids[0];
    advance(s); /* the next request goes to a process that is still up */
}

/* ---- load with a kill in the middle ---- */

struct curl_slist *t_post_headers(const char *token, const char *key)
{
    char auth[1100];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, auth);
    if (key != NULL) {
        char k[128];
        snprintf(k, sizeof k, "Idempotency-Key: %s", key);
        h = curl_slist_append(h, k);
    }
    return curl_slist_append(h, "Expect:");
}

static size_t on_storm_answer(char *ptr, size_t size, size_t n, void *ud)
{
    struct t_storm_call *c = ud;
    size_t add = size * n;
    if (!t_append(&c->answer, &c->len, ptr, add)) {
        return 0;
    }
    return add;
}

/* Asks the caller for slot c's next request and puts it in flight. */
static void storm_start(CURLM *m, const struct t_storm *st, struct t_storm_call *c)
{
    memset(c, 0, sizeof *c);
    st->next(st->ctx, c);
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        T_FAIL("storm: curl_easy_init failed");
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->h);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_storm_answer);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(m, c->easy);
}

static void storm_end(CURLM *m, struct t_storm_call *c)
{
    curl_multi_remove_handle(m, c->easy);
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->h);
    free(c->answer);
    c->easy = NULL;
    c->h = NULL;
    c->answer = NULL;
}

void t_storm_run(const struct t_storm *st)
{
    if (st->parallel < 1 || st->parallel > T_STORM_PARALLEL_MAX || st->stop_ms < st->kill_ms ||
        st->kill_node >= st->s->nodes) {
        T_FAIL("storm: parallel %d, kill at %d ms, stop at %d ms, kill_node %d", st->parallel,
               st->kill_ms, st->stop_ms, st->kill_node);
    }
    CURLM *m = curl_multi_init();
    struct t_storm_call calls[T_STORM_PARALLEL_MAX];
    for (int i = 0; i < st->parallel; i++) {
        storm_start(m, st, &calls[i]);
    }
    int64_t t0 = now_ms();
    bool killed = false;
    int running = st->parallel;
    for (int guard = 0; guard < 10000000; guard++) {
        bool stopping = now_ms() - t0 >= st->stop_ms;
        if (stopping && killed && running == 0) {
            break;
        }
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left = 0;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            struct t_storm_call *c = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            st->ended(st->ctx, c, t_multi_status(msg, 0), killed);
            storm_end(m, c);
            if (!stopping) {
                storm_start(m, st, c);
            }
        }
        if (!killed && now_ms() - t0 >= st->kill_ms) {
            if (st->kill_node >= 0) {
                st->s->current = st->kill_node;
            }
            t_server_kill(st->s); /* SIGKILL: no shutdown, no flush */
            killed = true;
        }
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    for (int i = 0; i < st->parallel; i++) {
        if (calls[i].easy != NULL) {
            storm_end(m, &calls[i]);
        }
    }
    curl_multi_cleanup(m);
}

void t_server_cleanup(struct t_server *s)
{
    if (s->dir[0] == '\0' || getenv("BR_TEST_KEEP") != NULL) {
        return;
    }
    if (s->db[0] != '\0') {
        bool down = true;
        for (int i = 0; i < s->nodes; i++) {
            down = down && s->pids[i] == 0;
        }
        if (down && shell(s, "psql -X -q -d '%s' -c 'DROP DATABASE IF EXISTS %s'",
                          g_settings.dist_pg, s->db) != 0) {
            fprintf(stderr, "http suite: could not drop database %s\n", s->db);
        }
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "http suite: could not remove %s\n", s->dir);
    }
}

/* ---- buyer steps ---- */

void t_email(const char *tag, char *out, size_t cap)
{
    /* The counter is this test process's own: emails never repeat within a
     * run, and the pid keeps runs against one external deployment apart. */
    static unsigned counter;
    counter++;
    snprintf(out, cap, "%s-%d-%u-%ld@test.local", tag, (int)getpid(), counter,
             (long)(now_ms() % 100000));
}

uint64_t t_buyer(struct t_server *s, const char *tag, char *token, size_t cap)
{
    char email[128];
    t_email(tag, email, sizeof email);
    struct t_resp r;
    t_json(s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name", tag), NULL,
           &r);
    if (r.status != 201) {
        T_FAIL("register %s: %ld %s", email, r.status, r.body);
    }
    uint64_t id = (uint64_t)json_integer_value(json_object_get(r.json, "user_id"));
    t_resp_free(&r);
    t_json(s, "POST", "/api/v1/auth/login", NULL,
           json_pack("{s:s, s:s}", "email", email, "password", T_PASSWORD), NULL, &r);
    const char *tok = json_string_value(json_object_get(r.json, "access_token"));
    if (r.status != 200 || tok == NULL) {
        T_FAIL("login %s: %ld %s", email, r.status, r.body);
    }
    snprintf(token, cap, "%s", tok);
    t_resp_free(&r);
    return id;
}

uint64_t t_event(struct t_server *s, json_t *spec)
{
    json_t *base = json_pack(
        "{s:s, s:s, s:i, s:b, s:{s:i, s:i, s:i}, s:i, s:[{s:s, s:i, s:i, s:s}, {s:s, s:i, s:i, s:s}]}",
        "name", "Test Night", "venue", "Test Hall", "per_user_limit", 4, "requires_pass", 1,
        "queue", "max_active", 100, "admit_per_tick", 50, "pass_ttl_s", 120, "hold_ttl_s", 600,
        "zones", "name", "Floor", "capacity", 100, "price_minor", 5000, "currency", "EUR", "name",
        "Balcony", "capacity", 50, "price_minor", 3000, "currency", "EUR");
    if (spec != NULL) {
        json_object_update(base, spec);
        json_decref(spec);
    }
    struct t_resp r;
    t_json(s, "POST", "/api/v1/events", s->admin_token, base, NULL, &r);
    if (r.status != 201) {
        T_FAIL("create event: %ld %s", r.status, r.body);
    }
    uint64_t id = (uint64_t)json_integer_value(json_object_get(r.json, "id"));
    t_resp_free(&r);
    return id;
}

bool t_wait_pass(struct t_server *s, const char *token, uint64_t event_id, char *pass, size_t cap,
                 int timeout_ms)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/queue/join", token, json_pack("{s:I}", "event_id", (json_int_t)event_id),
           NULL, &r);
    if (r.status != 200) {
        T_FAIL("join: %ld %s", r.status, r.body);
    }
    t_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/queue/position/%llu", (unsigned long long)event_id);
    int64_t until = now_ms() + timeout_ms;
    for (;;) {
        t_request(s, "GET", path, token, NULL, NULL, 0, &r);
        const char *tok =
            json_string_value(json_object_get(json_object_get(r.json, "pass"), "token"));
        if (r.status == 200 && tok != NULL) {
            snprintf(pass, cap, "%s", tok);
            t_resp_free(&r);
            return true;
        }
        t_resp_free(&r);
        if (now_ms() > until) {
            return false;
        }
        t_sleep_ms(20);
    }
}

/* ---- SSE ---- */

struct sse {
    char *p;
    size_t len;
    const char *until;
};

static size_t on_sse(char *ptr, size_t size, size_t n, void *ud)
{
    struct sse *s = ud;
    size_t add = size * n;
    if (!t_append(&s->p, &s->len, ptr, add)) {
        return 0;
    }
    /* `until` is an event name ("pass") or, starting with ':', a comment. */
    char marker[64];
    snprintf(marker, sizeof marker, s->until[0] == ':' ? "%s\n" : "event: %s\n", s->until);
    const char *at = strstr(s->p, marker);
    if (at != NULL && strstr(at, "\n\n") != NULL) {
        return 0; /* got it: stop reading (curl reports a write error) */
    }
    return add;
}

char *t_sse(struct t_server *s, const char *path, const char *token, const char *until,
            int timeout_ms)
{
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *h = NULL;
    char auth[1200];
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Accept: text/event-stream");
    struct sse sk = {NULL, 0, until};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sk);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    advance(s);
    return sk.p != NULL ? sk.p : strdup("");
}

/* ---- forged tokens ---- */

char *t_forge_jwt(const char *secret, const char *alg, const char *sub, const char *role,
                  long exp_in_s, const char *iss)
{
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0) {
        return NULL;
    }
    jwt_alg_t a = strcmp(alg, "HS512") == 0   ? JWT_ALG_HS512
                  : strcmp(alg, "none") == 0 ? JWT_ALG_NONE
                                             : JWT_ALG_HS256;
    if (a == JWT_ALG_NONE) {
        jwt_set_alg(jwt, a, NULL, 0);
    } else {
        jwt_set_alg(jwt, a, (const unsigned char *)secret, (int)strlen(secret));
    }
    time_t now = time(NULL);
    if (iss != NULL) {
        jwt_add_grant(jwt, "iss", iss);
    }
    jwt_add_grant(jwt, "sub", sub);
    jwt_add_grant(jwt, "role", role);
    jwt_add_grant_int(jwt, "iat", (long)now);
    jwt_add_grant_int(jwt, "exp", (long)now + exp_in_s);
    char *out = jwt_encode_str(jwt);
    jwt_free(jwt);
    return out;
}

/* ---- raw requests ---- */

int t_raw(struct t_server *s, const char *data, size_t len)
{
    unsigned port = 0;
    char host[64] = "";
    if (sscanf(s->base, "http://%63[^:]:%u", host, &port) != 2) {
        return 0;
    }
    advance(s);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &a.sin_addr);
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            break; /* the server may answer and close before reading it all */
        }
        off += (size_t)w;
    }
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        return 0;
    }
    return status;
}

char *t_secret(struct t_server *s, const char *key)
{
    if (t_external()) {
        return NULL;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/data/secrets.json", s->dir);
    json_t *j = json_load_file(path, 0, NULL);
    const char *v = json_string_value(json_object_get(j, key));
    char *out = v ? strdup(v) : NULL;
    json_decref(j);
    return out;
}
