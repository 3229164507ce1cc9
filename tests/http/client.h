/*
 * client.h -- what the HTTP suite needs to drive a real server: start the
 * bookingrush binary on a free port with a temporary data dir (or use a
 * deployment given by its base URL), JSON requests over libcurl, SSE reads,
 * and the buyer-side steps (register, login, join, wait for a pass).
 *
 * Every test executable takes: BINARY [BASE_URL]. With a base URL the suite
 * runs against that deployment and skips what needs the process itself
 * (crash, restart, secrets): set BR_TEST_ADMIN=EMAIL:PASSWORD for it, and
 * BR_TEST_JWT_SECRET to run the forged-token tests too.
 *
 * The distributed deployment: with BR_TEST_DIST=redis://HOST:PORT (or
 * redis-cluster://HOST:PORT,...) and
 * BR_TEST_PG=postgresql://USER@HOST:PORT/DB (a database the harness may
 * create databases from), each t_server_start takes a Redis database of its
 * own (1..15 in turn, emptied; on a cluster: the whole cluster, emptied),
 * creates a fresh PostgreSQL database, runs `bookingrush migrate`
 * on it and starts BR_TEST_NODES (default 2, at most T_NODES_MAX) processes
 * of `serve --backend distributed` on it, the first one alone (it creates
 * the admin), the others after it with a copy of its data dir's secrets.
 * Requests are spread round-robin over the live processes: every harness
 * request goes to the next one, and s->base names the one the next request
 * goes to, so a suite's own curl handles follow along between harness calls.
 * A server started with a rate limit on (--rate-limit-user/-ip or
 * --join-limit-ip other than 0) is reached through its first live process
 * only: limits are counted per process (README), so a test of the limit
 * needs one.
 * t_server_kill kills the process s->base names (the others keep serving);
 * t_server_restart starts every process that is down; t_server_stop stops
 * them all. BR_TEST_DIST_FLAGS adds serve flags (space-separated) to every
 * process. Without BR_TEST_DIST nothing of this applies: one process with
 * its own data dir, exactly as before.
 */
#ifndef BR_TEST_HTTP_CLIENT_H
#define BR_TEST_HTTP_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define T_ADMIN_EMAIL "admin@test.local"
#define T_ADMIN_PASSWORD "admin-password"
#define T_JWT_SECRET "http-suite-jwt-secret"
#define T_PASSWORD "buyer-password"

#define T_NODES_MAX 4

struct t_server {
    pid_t pid;             /* the first process's; 0 for an external deployment */
    char base[256];        /* "http://127.0.0.1:PORT" the next request goes to */
    char dir[256];         /* temp dir: data/, port, server.log */
    char binary[512];
    char extra[16][64];    /* extra serve flags, kept for restarts */
    int extra_count;
    const char *jwt_secret; /* NULL when unknown (external without BR_TEST_JWT_SECRET) */
    char admin_token[1024];
    /* The processes: one, or BR_TEST_NODES in the distributed mode. */
    int nodes;
    int current;           /* the index s->base names */
    unsigned turn;         /* round-robin counter */
    bool one_process;      /* rate limits on: every request to one process */
    pid_t pids[T_NODES_MAX]; /* 0 while down */
    char bases[T_NODES_MAX][256];
    char pg_url[512];      /* the distributed deployment's own database */
    char redis_url[256];   /* and its Redis (a database of its own on one Redis) */
    char db[64];
};

/* Parses BINARY [BASE_URL] from main's args into the suite's settings. */
void t_init(int argc, char **argv);
bool t_external(void);
const char *t_binary(void);
/* True when the suite runs against the distributed deployment
 * (BR_TEST_DIST): no journal or data dir of its own holds the state. */
bool t_distributed(void);
/* True on a Redis Cluster (redis-cluster://): it has one database, so a
 * second server started while the suite's first one runs would flush the
 * first one's state from under it. */
bool t_redis_cluster(void);

/* fmt (one %llu) with id, into buf: a path such as /api/v1/events/%llu. */
char *t_path_of(char *buf, size_t cap, const char *fmt, uint64_t id);
/* The monotonic clock in ms, for timing what a test waits for. */
int64_t t_mono_ms(void);

/* Starts a server (or attaches to the external one) with extra flags
 * (NULL-terminated), logs the admin in. Asserts on failure. */
void t_server_start(struct t_server *s, const char *const *extra);
/* Starts the server again on the same data dir and port file (in the
 * distributed mode: every process that is down). */
void t_server_restart(struct t_server *s);
/* SIGTERM and wait; returns the exit status (or -1); every process: 0 only
 * when all exited with 0. */
int t_server_stop(struct t_server *s);
/* Prints the last `lines` lines of each of the server's process logs to
 * stderr (for a failure whose cause may be the server's). */
void t_server_log_tail(const struct t_server *s, int lines);
/* SIGKILL and wait (in the distributed mode: the process s->base names). */
void t_server_kill(struct t_server *s);
/* Removes the temp dir. */
void t_server_cleanup(struct t_server *s);

struct t_resp {
    long status;
    json_t *json;          /* parsed body, NULL if not JSON */
    char *body;            /* raw body, NUL-terminated */
    size_t len;
    char retry_after[16];
    char allow[64];
    char request_id[80];
    char content_type[96];
    char cache_control[64];
    char etag[32];
    char csp[128]; /* Content-Security-Policy */
};

/* One request. headers: NULL-terminated "Name: value" strings (may be
 * NULL); token: bearer token or NULL; body: raw bytes or NULL. */
void t_request(struct t_server *s, const char *method, const char *path, const char *token,
               const char *const *headers, const char *body, size_t body_len, struct t_resp *r);
/* The same to one process (node < s->nodes), leaving the round-robin as
 * it is. */
void t_request_to(struct t_server *s, int node, const char *method, const char *path,
                  const char *token, const char *const *headers, const char *body, size_t body_len,
                  struct t_resp *r);
/* JSON body (consumed) with Content-Type: application/json. */
void t_json(struct t_server *s, const char *method, const char *path, const char *token,
            json_t *body, const char *const *headers, struct t_resp *r);
void t_resp_free(struct t_resp *r);

/* A unique email for this process ("tag-N@test.local"). */
void t_email(const char *tag, char *out, size_t cap);
/* Registers and logs in a buyer; token into out. Returns the user id. */
uint64_t t_buyer(struct t_server *s, const char *tag, char *token, size_t cap);
/* Creates an event as admin; returns its id. spec may override defaults. */
uint64_t t_event(struct t_server *s, json_t *spec);
/* Joins the queue and polls the position until admitted (timeout_ms);
 * copies the pass token. Returns true when admitted. */
bool t_wait_pass(struct t_server *s, const char *token, uint64_t event_id, char *pass, size_t cap,
                 int timeout_ms);

/* Reads an SSE stream until an event named `until` arrives (or, when
 * `until` starts with ':', that comment line) or timeout_ms.
 * Returns the whole text read (malloc'd). */
char *t_sse(struct t_server *s, const char *path, const char *token, const char *until,
            int timeout_ms);

/* A JWT signed with secret and alg ("HS256", "HS512", "none"), with the
 * given sub, role, exp offset from now (seconds) and iss. */
char *t_forge_jwt(const char *secret, const char *alg, const char *sub, const char *role,
                  long exp_in_s, const char *iss);

/* Sends raw bytes on a fresh TCP connection and returns the status code
 * of the answer (0 when there was none). For requests curl will not build:
 * chunked bodies, oversized headers. */
int t_raw(struct t_server *s, const char *data, size_t len);

/* The data dir's secrets.json member (local servers only); NULL otherwise. */
char *t_secret(struct t_server *s, const char *key);

/* Milliseconds of sleep. */
void t_sleep_ms(int ms);

/* The first row of sql on the database at pg_url, as psql -At prints it
 * ("a|b"), into out (empty when there is none); false when psql failed.
 * sql must not hold a double quote. */
bool t_psql_row(const char *pg_url, const char *sql, char *out, size_t cap);

/* Every live process's /metrics (s->pids[i] != 0), concatenated; malloc'd. */
char *t_metrics_all(struct t_server *s);

/* Appends add bytes at ptr to the malloc'd *buf of *len bytes, keeping it
 * NUL-terminated (curl write callbacks). false when out of memory. */
bool t_append(char **buf, size_t *len, const char *ptr, size_t add);

/* Runs m's transfers until none is running (bounded: 10^6 rounds of at
 * most 100 ms waits); their messages are left for curl_multi_info_read. */
void t_multi_run(CURLM *m);

/* The HTTP status of the transfer msg (CURLMSG_DONE) ended, or `failed`
 * when it ended without an answer. */
long t_multi_status(CURLMsg *msg, long failed);

/* ---- load with a kill in the middle ---- */

/* The headers of a JSON POST by a buyer: Content-Type, the bearer token,
 * the Idempotency-Key when key is not NULL, and an empty Expect (no
 * 100-continue round trip). Free with curl_slist_free_all. */
struct curl_slist *t_post_headers(const char *token, const char *key);

#define T_STORM_PARALLEL_MAX 64

/* One request of a storm. The caller's next() fills url, h, body, and may
 * use who and key; the storm POSTs it (30 s timeout) into answer. */
struct t_storm_call {
    char url[300];
    struct curl_slist *h; /* freed by the storm when the request ends */
    char body[160];
    char *answer; /* the answer's body, NUL-terminated, or NULL; freed by the storm */
    size_t len;
    int who;      /* the caller's (a buyer's index) */
    char key[64]; /* the caller's (the request's idempotency key) */
    CURL *easy;   /* the storm's; NULL when the slot is idle */
};

/* A load on s with a kill -9 in the middle: `parallel` requests in flight,
 * each one that ends replaced by next() until stop_ms after the start;
 * t_server_kill at kill_ms (of the process kill_node, or, when it is -1,
 * of the one s->base names then). ended() gets every ended request with
 * its HTTP status (0: no answer, as the kill's cut ones) and whether the
 * kill had happened. Returns when the kill happened and every request
 * ended (bounded: 10^7 rounds of at most 20 ms waits). */
struct t_storm {
    struct t_server *s;
    int parallel;  /* 1..T_STORM_PARALLEL_MAX */
    int kill_ms;   /* after the start */
    int stop_ms;   /* after the start; >= kill_ms */
    int kill_node; /* -1: the process s->base names at the kill */
    /* Fills a zeroed c with the next request. */
    void (*next)(void *ctx, struct t_storm_call *c);
    /* c ended with status; c's answer and headers are freed after it. */
    void (*ended)(void *ctx, const struct t_storm_call *c, long status, bool killed);
    void *ctx;
};

void t_storm_run(const struct t_storm *st);

#endif
