/*
 * test_http_disk.c -- a full data disk (issue 9, item 1), against the real
 * binary with its data dir on a small tmpfs:
 *
 *   bookings are made (201); the disk is filled; reserves go on until the
 *   server refuses them: 503 STORAGE_UNAVAILABLE with Retry-After, never a
 *   crash; meanwhile reads of bookings and /healthz answer 200, /readyz 503
 *   with the reason, /metrics shows br_journal_storage_unavailable 1 and
 *   the log says why; the space is freed and writes succeed again by
 *   themselves; then kill -9 and a restart: every 201 is still there and
 *   `bookingrush journal check` finds no partial record.
 *
 * Mounting needs root: without it (or without tmpfs) the test is skipped
 * with a message. BR_TEST_JOURNAL_ZERO_KIB makes the server's zero-filled
 * reserve small, so the disk runs out after a few hundred bookings;
 * BR_TEST_JOURNAL_LOW_KIB=0 lets the zeros run out inside a commit, whose
 * write then fails and waits for space with its callers (second test).
 *
 * Usage: test_http_disk BINARY [BASE_URL]   (see client.h)
 */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "client.h"

#define BUYERS 40
#define ACKS_MAX 4096
#define TRIES_MAX 3000

struct acks {
    uint64_t id[ACKS_MAX];
    int buyer[ACKS_MAX];
    int n;
};

static char g_tokens[BUYERS][1024];
static char g_mounted[64]; /* the tmpfs while mounted: the teardown lets go of it */

static int teardown(void **state)
{
    (void)state;
    if (g_mounted[0] != '\0') {
        umount2(g_mounted, MNT_DETACH);
        g_mounted[0] = '\0';
    }
    return 0;
}

/* One reserve by buyer (turn % BUYERS); returns the status, records a 201. */
static long reserve(struct t_server *s, uint64_t ev, int turn, struct acks *a, struct t_resp *keep)
{
    int b = turn % BUYERS;
    struct t_resp r;
    t_json(s, "POST", "/api/v1/bookings/reserve", g_tokens[b],
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 1),
           NULL, &r);
    long st = r.status;
    if (st == 201 && a->n < ACKS_MAX) {
        a->id[a->n] = (uint64_t)json_integer_value(json_object_get(r.json, "id"));
        a->buyer[a->n] = b;
        a->n++;
    }
    if (keep != NULL) {
        *keep = r;
    } else {
        t_resp_free(&r);
    }
    return st;
}

/* Writes zeros into dir/filler until the file system is full. */
static void fill(const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static char chunk[4096];
    long long total = 0;
    for (int i = 0; i < 1 << 20; i++) {
        ssize_t w = write(fd, chunk, sizeof chunk);
        if (w <= 0) {
            assert_int_equal(errno, ENOSPC);
            break;
        }
        total += w;
    }
    close(fd);
    fprintf(stderr, "disk filled with %lld bytes\n", total);
}

static bool metric_is(struct t_server *s, const char *line)
{
    struct t_resp r;
    t_request(s, "GET", "/metrics", NULL, NULL, NULL, 0, &r);
    bool has = r.status == 200 && strstr(r.body, line) != NULL;
    t_resp_free(&r);
    return has;
}

static void check_every_ack(struct t_server *s, const struct acks *a)
{
    for (int i = 0; i < a->n; i++) {
        char p[96];
        snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, a->id[i]);
        struct t_resp r;
        t_request(s, "GET", p, g_tokens[a->buyer[i]], NULL, NULL, 0, &r);
        if (r.status != 200) {
            fprintf(stderr, "acknowledged booking %" PRIu64 " lost (%ld)\n", a->id[i], r.status);
        }
        EXPECT(r, 200, NULL);
        t_resp_free(&r);
    }
}

/* Phase 2: reserves until refused; checks the refusal and the reads. */
static void while_full(struct t_server *s, uint64_t ev, struct acks *a)
{
    struct t_resp r;
    long st = 201;
    int tries = 0;
    for (; tries < TRIES_MAX && st == 201; tries++) {
        st = reserve(s, ev, tries, a, &r);
        if (st == 201) {
            t_resp_free(&r);
        }
    }
    fprintf(stderr, "refused after %d more reserves: %ld %s\n", tries, st, r.body);
    EXPECT(r, 503, "STORAGE_UNAVAILABLE");
    assert_true(r.retry_after[0] != '\0' && atoi(r.retry_after) >= 1);
    t_resp_free(&r);
    /* Still refused, at once: nothing is applied meanwhile. */
    assert_int_equal(reserve(s, ev, 1, a, NULL), 503);
    check_every_ack(s, a); /* reads of what is durable */
    t_request(s, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    t_request(s, "GET", "/readyz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 503, "STORAGE_UNAVAILABLE");
    assert_non_null(strstr(r.body, "no space"));
    t_resp_free(&r);
    assert_true(metric_is(s, "\nbr_journal_storage_unavailable 1\n"));
    assert_false(metric_is(s, "\nbr_journal_storage_failures_total 0\n"));
}

static void test_a_full_disk_refuses_writes_and_recovers(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    char root[] = "/tmp/br-disk-XXXXXX";
    assert_non_null(mkdtemp(root));
    char mnt[64];
    snprintf(mnt, sizeof mnt, "%s/mnt", root);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=6m") != 0) {
        fprintf(stderr,
                "SKIPPED: the full-disk test mounts a 6 MiB tmpfs and needs root "
                "(mount: %s)\n",
                strerror(errno));
        rmdir(mnt);
        rmdir(root);
        skip();
    }
    snprintf(g_mounted, sizeof g_mounted, "%s", mnt);
    char data[80];
    snprintf(data, sizeof data, "%s/data", mnt);
    setenv("BR_TEST_JOURNAL_ZERO_KIB", "64", 1);
    struct t_server s;
    t_server_start(&s, (const char *const[]){"--data-dir", data, "--rate-limit-user", "0",
                                             "--rate-limit-ip", "0", NULL});
    uint64_t ev = t_event(&s, json_pack("{s:b, s:i, s:[{s:s, s:i, s:i, s:s}]}", "requires_pass", 0,
                                        "per_user_limit", 64, "zones", "name", "Floor", "capacity",
                                        4000, "price_minor", 1000, "currency", "EUR"));
    for (int i = 0; i < BUYERS; i++) {
        t_buyer(&s, "disk", g_tokens[i], sizeof g_tokens[i]);
    }
    static struct acks a;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(reserve(&s, ev, i, &a, NULL), 201);
    }
    fill(mnt);
    while_full(&s, ev, &a);

    /* Space is back: writes resume by themselves. */
    char filler[120];
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    assert_int_equal(unlink(filler), 0);
    long st = 503;
    for (int i = 0; i < 100 && st != 201; i++) {
        st = reserve(&s, ev, i, &a, NULL);
        if (st != 201) {
            assert_int_equal(st, 503);
            t_sleep_ms(100);
        }
    }
    assert_int_equal(st, 201);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(reserve(&s, ev, i, &a, NULL), 201);
    }
    struct t_resp r;
    t_request(&s, "GET", "/readyz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    assert_true(metric_is(&s, "\nbr_journal_storage_unavailable 0\n"));

    /* Every 201 survives a kill -9; the journal holds no partial record. */
    t_server_kill(&s);
    t_server_restart(&s);
    check_every_ack(&s, &a);
    assert_int_equal(t_server_stop(&s), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -q 'journal storage unavailable' '%s/server.log'", s.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' journal check '%s' >&2", t_binary(), data);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    fprintf(stderr, "%d bookings acknowledged, all kept\n", a.n);
    t_server_cleanup(&s);
    assert_int_equal(umount(mnt), 0);
    g_mounted[0] = '\0';
    rmdir(mnt);
    rmdir(root);
}

/* ---- a batch that does not fit what is left ---- */

#define BURST 48

struct burst_one {
    struct t_server *s;
    uint64_t ev;
    int turn;
    pthread_barrier_t *go;
    long status;
    uint64_t id;
    long took_ms;
};

static void *burst_main(void *arg)
{
    struct burst_one *b = arg;
    pthread_barrier_wait(b->go);
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct t_resp r;
    t_json(b->s, "POST", "/api/v1/bookings/reserve", g_tokens[b->turn % BUYERS],
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)b->ev, "zone_id", 1, "quantity", 1),
           NULL, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    b->status = r.status;
    b->id = r.status == 201 ? (uint64_t)json_integer_value(json_object_get(r.json, "id")) : 0;
    b->took_ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    t_resp_free(&r);
    return NULL;
}

/* With almost no zeros left ahead, a burst of concurrent reserves makes a
 * commit bigger than what is left: its write fails and is retried while
 * its callers wait (their commands are applied: only a durable answer may
 * go out). New writes get 503 at once, reads that would show the stuck
 * commands get 503, /healthz 200; once space is back the waiting callers
 * get their 201, and every 201 survives kill -9. */
static void test_a_commit_that_does_not_fit_waits_for_space(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    char root[] = "/tmp/br-disk-XXXXXX";
    assert_non_null(mkdtemp(root));
    char mnt[64];
    snprintf(mnt, sizeof mnt, "%s/mnt", root);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=6m") != 0) {
        fprintf(stderr, "SKIPPED: needs root to mount a tmpfs (mount: %s)\n", strerror(errno));
        rmdir(mnt);
        rmdir(root);
        skip();
    }
    snprintf(g_mounted, sizeof g_mounted, "%s", mnt);
    char data[80];
    snprintf(data, sizeof data, "%s/data", mnt);
    setenv("BR_TEST_JOURNAL_ZERO_KIB", "4", 1);
    setenv("BR_TEST_JOURNAL_LOW_KIB", "0", 1); /* the zeros run out inside a commit */
    struct t_server s;
    t_server_start(&s, (const char *const[]){"--data-dir", data, "--rate-limit-user", "0",
                                             "--rate-limit-ip", "0", NULL});
    uint64_t ev = t_event(&s, json_pack("{s:b, s:i, s:[{s:s, s:i, s:i, s:s}]}", "requires_pass", 0,
                                        "per_user_limit", 64, "zones", "name", "Floor", "capacity",
                                        4000, "price_minor", 1000, "currency", "EUR"));
    for (int i = 0; i < BUYERS; i++) {
        t_buyer(&s, "burst", g_tokens[i], sizeof g_tokens[i]);
    }
    static struct acks a;
    a.n = 0;
    assert_int_equal(reserve(&s, ev, 0, &a, NULL), 201);
    fill(mnt);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, BURST);
    static struct burst_one b[BURST];
    pthread_t th[BURST];
    for (int i = 0; i < BURST; i++) {
        b[i] = (struct burst_one){.s = &s, .ev = ev, .turn = i, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, burst_main, &b[i]), 0);
    }
    t_sleep_ms(1500);
    /* Stuck or not, the server answers: refusals and health at once. */
    assert_int_equal(reserve(&s, ev, 1, &a, NULL), 503);
    struct t_resp r;
    t_request(&s, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    t_request(&s, "GET", "/readyz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 503, "STORAGE_UNAVAILABLE");
    t_resp_free(&r);
    char filler[120];
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    assert_int_equal(unlink(filler), 0);
    int waited = 0;
    for (int i = 0; i < BURST; i++) {
        pthread_join(th[i], NULL);
        assert_true(b[i].status == 201 || b[i].status == 503);
        if (b[i].status == 201) {
            a.id[a.n] = b[i].id;
            a.buyer[a.n] = b[i].turn % BUYERS;
            a.n++;
            waited += b[i].took_ms >= 1000;
        }
    }
    pthread_barrier_destroy(&go);
    fprintf(stderr, "burst: %d bookings, %d answered only once the space was back\n", a.n - 1,
            waited);
    assert_true(waited > 0); /* the commit that did not fit waited, then was answered 201 */
    t_server_kill(&s);
    t_server_restart(&s);
    check_every_ack(&s, &a);
    assert_int_equal(t_server_stop(&s), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "'%s' journal check '%s' >&2", t_binary(), data);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    t_server_cleanup(&s);
    assert_int_equal(umount(mnt), 0);
    g_mounted[0] = '\0';
    rmdir(mnt);
    rmdir(root);
    unsetenv("BR_TEST_JOURNAL_LOW_KIB");
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_a_full_disk_refuses_writes_and_recovers, teardown),
        cmocka_unit_test_teardown(test_a_commit_that_does_not_fit_waits_for_space, teardown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
