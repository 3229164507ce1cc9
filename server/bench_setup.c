/*
 * bench_setup.c -- prepares a running server for the reserve benchmark and
 * writes the wrk script that drives it.
 *
 *   br-bench-setup BASE_URL ADMIN_EMAIL ADMIN_PASSWORD USERS OUT.lua
 *
 * Creates one event open for sale now, without a queue pass (the benchmark
 * measures the reserve path: token check, JSON, the core's decision, the
 * journal's group commit, the answer), one zone of 1,000,000 seats and a
 * per-user limit of 64; registers USERS buyers over HTTP (several threads,
 * keep-alive) and logs each in; then writes a wrk Lua script that sends
 * POST /api/v1/bookings/reserve for one seat, cycling through the buyers'
 * tokens, each request with a fresh Idempotency-Key.
 */
#define _POSIX_C_SOURCE 200809L

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define TOKEN_MAX 1024

struct buf {
    char *p;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t add = size * n;
    char *np = realloc(b->p, b->len + add + 1);
    if (np == NULL) {
        return 0;
    }
    memcpy(np + b->len, ptr, add);
    b->p = np;
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

/* POSTs JSON; returns the parsed answer (NULL on failure) and the status. */
static json_t *post(CURL *c, const char *url, const char *token, json_t *body, long *status)
{
    char *text = json_dumps(body, JSON_COMPACT);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[TOKEN_MAX + 32];
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    struct buf b = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    free(text);
    json_t *j = NULL;
    if (rc == CURLE_OK && b.p != NULL) {
        j = json_loads(b.p, 0, NULL);
    }
    free(b.p);
    return j;
}

struct job {
    const char *base;
    unsigned from;
    unsigned to;
    unsigned run_id;
    char (*tokens)[TOKEN_MAX];
    int failed;
};

static void *register_users(void *arg)
{
    struct job *j = arg;
    CURL *c = curl_easy_init();
    char url[512];
    for (unsigned i = j->from; i < j->to && !j->failed; i++) {
        char email[96];
        snprintf(email, sizeof email, "bench-%u-%u@bench.local", j->run_id, i);
        long st = 0;
        snprintf(url, sizeof url, "%s/api/v1/auth/register", j->base);
        json_t *body = json_pack("{s:s, s:s, s:s}", "email", email, "password", "bench-password",
                                 "name", "Bench Buyer");
        json_decref(post(c, url, NULL, body, &st));
        if (st != 201) {
            fprintf(stderr, "br-bench-setup: register %s: HTTP %ld\n", email, st);
            j->failed = 1;
        }
        json_decref(body);
        snprintf(url, sizeof url, "%s/api/v1/auth/login", j->base);
        body = json_pack("{s:s, s:s}", "email", email, "password", "bench-password");
        json_t *ans = post(c, url, NULL, body, &st);
        const char *tok = json_string_value(json_object_get(ans, "access_token"));
        if (st != 200 || tok == NULL) {
            fprintf(stderr, "br-bench-setup: login %s: HTTP %ld\n", email, st);
            j->failed = 1;
        } else {
            snprintf(j->tokens[i], TOKEN_MAX, "%s", tok);
        }
        json_decref(ans);
        json_decref(body);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* Logs the admin in; copies the access token to admin_token. 0, or 1
 * after a message. */
static int admin_login(CURL *c, const char *base, const char *email, const char *password,
                       char admin_token[TOKEN_MAX])
{
    char url[512];
    long st = 0;
    snprintf(url, sizeof url, "%s/api/v1/auth/login", base);
    json_t *body = json_pack("{s:s, s:s}", "email", email, "password", password);
    json_t *ans = post(c, url, NULL, body, &st);
    json_decref(body);
    const char *admin = json_string_value(json_object_get(ans, "access_token"));
    if (st != 200 || admin == NULL) {
        fprintf(stderr, "br-bench-setup: admin login: HTTP %ld\n", st);
        return 1;
    }
    snprintf(admin_token, TOKEN_MAX, "%s", admin);
    json_decref(ans);
    return 0;
}

/* Creates the benchmark's event (open now, no pass, one zone of 1,000,000
 * seats); its id goes to *event_id. 0, or 1 after a message. */
static int create_event(CURL *c, const char *base, const char *admin_token, json_int_t *event_id)
{
    char url[512];
    long st = 0;
    snprintf(url, sizeof url, "%s/api/v1/events", base);
    json_t *body = json_pack("{s:s, s:s, s:i, s:b, s:i, s:[{s:s, s:i, s:i, s:s}]}", "name",
                             "Benchmark Night", "venue", "Loopback Hall", "per_user_limit", 64,
                             "requires_pass", 0, "hold_ttl_s", 3600, "zones", "name", "Floor",
                             "capacity", 1000000, "price_minor", 5000, "currency", "EUR");
    json_t *ans = post(c, url, admin_token, body, &st);
    json_decref(body);
    *event_id = json_integer_value(json_object_get(ans, "id"));
    if (st != 201 || *event_id <= 0) {
        fprintf(stderr, "br-bench-setup: create event: HTTP %ld\n", st);
        return 1;
    }
    json_decref(ans);
    return 0;
}

/* Registers and logs in `users` buyers on THREADS threads; their tokens go
 * to tokens[0 .. users). Nonzero if any of them failed. */
static int register_all(const char *base, unsigned users, unsigned run_id,
                        char (*tokens)[TOKEN_MAX])
{
    pthread_t th[THREADS];
    struct job jobs[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        jobs[t] = (struct job){.base = base,
                               .from = users * t / THREADS,
                               .to = users * (t + 1) / THREADS,
                               .run_id = run_id,
                               .tokens = tokens,
                               .failed = 0};
        pthread_create(&th[t], NULL, register_users, &jobs[t]);
    }
    int failed = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        failed |= jobs[t].failed;
    }
    return failed;
}

/* Writes the wrk script to path. The requests are pre-built per buyer (only
 * the Idempotency-Key's counter is appended per request), so wrk's Lua
 * costs little next to the server: the measurement is the server's, not the
 * generator's. 0, or 1 after a message. */
static int write_script(const char *path, char (*tokens)[TOKEN_MAX], unsigned users,
                        json_int_t event_id)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    fprintf(f, "-- Generated by br-bench-setup: POST reserve, one seat, rotating buyers.\n"
               "local tokens = {\n");
    for (unsigned i = 0; i < users; i++) {
        fprintf(f, "  \"%s\",\n", tokens[i]);
    }
    fprintf(f,
            "}\n"
            "local body = '{\"event_id\":%lld,\"zone_id\":1,\"quantity\":1}'\n"
            "local heads = {}\n"
            "local tail = \"\\r\\n\\r\\n\" .. body\n"
            "local n = 0\n"
            "local tid = 0\n"
            "local count = 0\n"
            "function setup(thread)\n"
            "  count = count + 1\n"
            "  thread:set(\"tid\", count)\n"
            "end\n"
            "function init(args)\n"
            "  n = tid * 7919\n"
            "  local host = wrk.host .. \":\" .. wrk.port\n"
            "  for i, tok in ipairs(tokens) do\n"
            "    heads[i] = \"POST /api/v1/bookings/reserve HTTP/1.1\\r\\nHost: \" .. host ..\n"
            "      \"\\r\\nContent-Type: application/json\\r\\nContent-Length: \" .. #body ..\n"
            "      \"\\r\\nAuthorization: Bearer \" .. tok .. \"\\r\\nIdempotency-Key: b\" .. tid .. \"-\"\n"
            "  end\n"
            "end\n"
            "function request()\n"
            "  n = n + 1\n"
            "  return heads[(n %% #heads) + 1] .. n .. tail\n"
            "end\n",
            (long long)event_id);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: br-bench-setup BASE_URL ADMIN_EMAIL ADMIN_PASSWORD USERS OUT.lua\n");
        return 2;
    }
    const char *base = argv[1];
    unsigned users = (unsigned)strtoul(argv[4], NULL, 10);
    if (users == 0 || users > 200000) {
        fprintf(stderr, "br-bench-setup: USERS wants 1..200000\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    char admin_token[TOKEN_MAX];
    if (admin_login(c, base, argv[2], argv[3], admin_token) != 0) {
        return 1;
    }
    json_int_t event_id;
    if (create_event(c, base, admin_token, &event_id) != 0) {
        return 1;
    }
    curl_easy_cleanup(c);

    char(*tokens)[TOKEN_MAX] = calloc(users, TOKEN_MAX);
    if (register_all(base, users, (unsigned)event_id, tokens) != 0) {
        return 1;
    }
    if (write_script(argv[5], tokens, users, event_id) != 0) {
        return 1;
    }
    printf("br-bench-setup: event %lld, %u buyers, script %s\n", (long long)event_id, users,
           argv[5]);
    free(tokens);
    curl_global_cleanup();
    return 0;
}
