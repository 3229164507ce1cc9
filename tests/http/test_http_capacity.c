/*
 * test_http_capacity.c -- the engine is sized from the configuration, and a
 * full table is a clean, visible answer:
 *
 *   - with --users-max 4 (the admin plus three buyers) the fourth buyer's
 *     registration answers 503 CAPACITY_EXHAUSTED, the metric
 *     br_capacity_exhausted_total{table="users"} counts it, one log line
 *     says so (rate-limited: a second refusal adds none), and the server
 *     keeps serving;
 *   - an idle `serve --demo` with the default sizes stays well below what the
 *     defaults reserve (113 MiB): its tables are resident only as rows are
 *     used (the old server held 431 MB, every table zeroed at start);
 *   - `bookingrush replay` of that server's small journal stays small too;
 *   - a journal keeps the sizes it was created with: a restart with other
 *     sizing options uses the journal's and says so in the log;
 *   - a journal written with the old fixed sizes (250,000 users, 410 MiB)
 *     still opens with its sizes, and serving and replaying it stay small;
 *   - a demo event that does not fit the tables is skipped with a warning,
 *     and the server serves without it.
 *
 * Needs the process (RSS, logs, restarts): skipped against a base URL.
 *
 * Usage: test_http_capacity BINARY [BASE_URL]   (see client.h)
 */
#define _DEFAULT_SOURCE

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "core/engine.h"
#include "core/journal.h"

/* The core's assertions (the journal header encoder) land here. */
noreturn void br_panic(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

/* Idle RSS bound for `serve --demo` with the defaults: below the 113 MiB
 * the default sizes reserve, so a layout that touched every reserved page
 * again fails it; measured idle: 13 MiB release, 26 MiB (peak 37) under
 * ASan. The old server held 431 MB. */
#define IDLE_RSS_KIB_MAX (96u * 1024u)
/* The replays below are bounded by their peak RSS above that of the same
 * binary printing `replay --help` (its libraries and, under ASan, its
 * sanitizer runtime: 9 MiB release, 41 MiB ASan on a kernel that backs
 * every page read as well as written). Over a journal of a few commands
 * written with the default sizes (113 MiB reserved): measured 2 MiB
 * release, 17 MiB ASan; the old replay took 418 MiB. */
#define REPLAY_EXTRA_KIB_MAX (48u * 1024u)
/* Over a journal with the old sizes (410 MiB reserved): measured 54 MiB
 * under ASan (its shadow of the block); the old replay took 418 MiB (491
 * under ASan). */
#define OLD_REPLAY_EXTRA_KIB_MAX (96u * 1024u)

static uint64_t metric(struct t_server *s, const char *series)
{
    struct t_resp r;
    t_request(s, "GET", "/metrics", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    const char *at = strstr(r.body, series);
    if (at == NULL) {
        fprintf(stderr, "no %s in /metrics:\n%s\n", series, r.body);
        fail_msg("metric missing");
    }
    uint64_t v = strtoull(at + strlen(series), NULL, 10);
    t_resp_free(&r);
    return v;
}

/* Lines of the server's log holding every one of the two needles. */
static int log_lines(const struct t_server *s, const char *a, const char *b)
{
    char path[300];
    snprintf(path, sizeof path, "%s/server.log", s->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        n += strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
    }
    fclose(f);
    return n;
}

static long register_one(struct t_server *s, const char *tag, struct t_resp *r)
{
    char email[128];
    t_email(tag, email, sizeof email);
    t_json(s, "POST", "/api/v1/auth/register", NULL,
           json_pack("{s:s, s:s, s:s}", "email", email, "password", T_PASSWORD, "name", tag), NULL,
           r);
    return r->status;
}

static void test_a_full_users_table_answers_503_and_is_counted(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    const char *extra[] = {"--users-max", "4", NULL};
    t_server_start(&s, extra); /* the admin is the first user */
    const char *series = "br_capacity_exhausted_total{table=\"users\"} ";
    assert_int_equal(metric(&s, series), 0);
    char token[1024];
    for (int i = 0; i < 3; i++) {
        t_buyer(&s, "fits", token, sizeof token);
    }
    struct t_resp r;
    register_one(&s, "one-too-many", &r);
    EXPECT(r, 503, "CAPACITY_EXHAUSTED");
    t_resp_free(&r);
    assert_int_equal(metric(&s, series), 1);
    assert_int_equal(log_lines(&s, "capacity exhausted", "\"table\":\"users\""), 1);
    /* A second refusal is counted but not logged again within the minute. */
    register_one(&s, "two-too-many", &r);
    EXPECT(r, 503, "CAPACITY_EXHAUSTED");
    t_resp_free(&r);
    assert_int_equal(metric(&s, series), 2);
    assert_int_equal(log_lines(&s, "capacity exhausted", NULL), 1);
    assert_int_equal(metric(&s, "br_engine_table_rows{table=\"users\"} "), 4);
    assert_int_equal(metric(&s, "br_engine_table_rows_max{table=\"users\"} "), 4);
    /* Still serving: reads, the buyers who fit, other tables. */
    t_request(&s, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    t_request(&s, "GET", "/api/v1/bookings", token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    assert_true(t_event(&s, NULL) > 0);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

static unsigned long status_kib(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    unsigned long kib = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, strlen(field)) == 0) {
            kib = strtoul(line + strlen(field), NULL, 10);
        }
    }
    fclose(f);
    assert_true(kib > 0);
    return kib;
}

/* Runs `bookingrush replay ARG`; returns its peak RSS in KiB, *code its
 * exit status (-1 when it did not exit normally). */
static long replay_run_kib(const struct t_server *s, const char *arg, int *code)
{
    char out[300];
    snprintf(out, sizeof out, "%s/replay.txt", s->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(t_binary(), t_binary(), "replay", arg, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return ru.ru_maxrss;
}

/* The replay of the server's journal: its peak RSS in KiB above that of
 * `replay --help`, *code its exit status. */
static long replay_extra_kib(const struct t_server *s, int *code)
{
    char journal[300];
    snprintf(journal, sizeof journal, "%s/data/journal", s->dir);
    int help_code = -1;
    long base = replay_run_kib(s, "--help", &help_code);
    assert_int_equal(help_code, 0);
    long peak = replay_run_kib(s, journal, code);
    fprintf(stderr, "replay: peak RSS %ld KiB, replay --help %ld KiB\n", peak, base);
    assert_true(base > 0 && peak > 0);
    return peak - base;
}

static void test_idle_server_and_replay_with_default_sizes_stay_small(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    const char *extra[] = {"--demo", NULL};
    t_server_start(&s, extra);
    t_sleep_ms(1500); /* idle: the ticker runs, nobody calls */
    unsigned long rss = status_kib(s.pid, "VmRSS:");
    unsigned long hwm = status_kib(s.pid, "VmHWM:");
    fprintf(stderr, "idle serve --demo: VmRSS %lu KiB, VmHWM %lu KiB (bound %u KiB)\n", rss, hwm,
            IDLE_RSS_KIB_MAX);
    assert_true(rss < IDLE_RSS_KIB_MAX);
    assert_int_equal(metric(&s, "br_engine_table_rows_max{table=\"users\"} "), 100000);
    char token[1024];
    for (int i = 0; i < 8; i++) {
        t_buyer(&s, "replayed", token, sizeof token);
    }
    assert_int_equal(t_server_stop(&s), 0);
    int code = -1;
    long above = replay_extra_kib(&s, &code);
    fprintf(stderr, "replay of its journal: %ld KiB above --help (bound %u KiB)\n", above,
            REPLAY_EXTRA_KIB_MAX);
    assert_int_equal(code, 0);
    assert_true(above < (long)REPLAY_EXTRA_KIB_MAX);
    t_server_cleanup(&s);
}

static void test_an_existing_journal_keeps_its_sizes(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    const char *extra[] = {"--people", "1000", NULL};
    t_server_start(&s, extra);
    const char *users_max = "br_engine_table_rows_max{table=\"users\"} ";
    assert_int_equal(metric(&s, users_max), 1000);
    assert_int_equal(metric(&s, "br_engine_table_rows_max{table=\"holds\"} "), 500);
    assert_true(metric(&s, "br_engine_reserved_bytes ") < 8u * 1024 * 1024);
    assert_true(t_event(&s, NULL) > 0); /* the cheap tables' floors: an event fits */
    assert_int_equal(t_server_stop(&s), 0);
    assert_int_equal(log_lines(&s, "sizing options ignored", NULL), 0);
    snprintf(s.extra[1], sizeof s.extra[1], "2000");
    t_server_restart(&s);
    assert_int_equal(metric(&s, users_max), 1000);
    assert_int_equal(log_lines(&s, "sizing options ignored", "\"asked_users_max\":2000"), 1);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* The sizes every journal got before the engine was sized from the
 * configuration (410 MiB reserved, all of it zeroed at start). */
static void old_default_config(struct br_config *c)
{
    memset(c, 0, sizeof *c);
    *c = (struct br_config){.seed = 7,
                            .events_max = 64,
                            .users_max = 250000,
                            .members_max = 500000,
                            .queue_slots_max = 1000000,
                            .queue_capacity_default = 250000,
                            .passes_max = 500000,
                            .active_max = 200000,
                            .holds_max = 500000,
                            .seats_max = 1000000,
                            .payments_max = 500000,
                            .idem_max = 500000,
                            .provider_events_max = 1000000};
}

static void test_a_journal_with_the_old_sizes_opens_and_stays_small(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    t_server_start(&s, NULL);
    assert_int_equal(t_server_stop(&s), 0);
    /* Replace the journal by one as the old server created it: its header. */
    struct br_config old;
    old_default_config(&old);
    uint8_t head[BR_JOURNAL_HEADER_MAX];
    size_t n = br_journal_header_encode(head, sizeof head, &old);
    assert_true(n > 0);
    char path[300];
    snprintf(path, sizeof path, "%s/data/journal", s.dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(head, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    t_server_restart(&s); /* the admin registers again into the old-sized engine */
    assert_int_equal(metric(&s, "br_engine_table_rows_max{table=\"users\"} "), 250000);
    assert_int_equal(metric(&s, "br_engine_table_rows{table=\"users\"} "), 1);
    char token[1024];
    t_buyer(&s, "old-journal", token, sizeof token);
    unsigned long rss = status_kib(s.pid, "VmRSS:");
    fprintf(stderr, "serve on an old-sized journal: VmRSS %lu KiB (bound %u KiB)\n", rss,
            IDLE_RSS_KIB_MAX);
    assert_true(rss < IDLE_RSS_KIB_MAX);
    assert_int_equal(t_server_stop(&s), 0);
    int code = -1;
    long above = replay_extra_kib(&s, &code);
    fprintf(stderr, "replay of the old-sized journal: %ld KiB above --help (bound %u KiB)\n",
            above, OLD_REPLAY_EXTRA_KIB_MAX);
    assert_int_equal(code, 0);
    assert_true(above < (long)OLD_REPLAY_EXTRA_KIB_MAX);
    t_server_cleanup(&s);
}

static void test_a_demo_too_big_for_the_tables_is_skipped_not_fatal(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    const char *extra[] = {"--demo", "--seats-max", "100", NULL}; /* the demo has 1,550 seats */
    t_server_start(&s, extra);
    assert_int_equal(log_lines(&s, "no demo event", NULL), 1);
    assert_int_equal(metric(&s, "br_capacity_exhausted_total{table=\"seats\"} "), 1);
    struct t_resp r;
    t_request(&s, "GET", "/api/v1/events", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

static void test_help_lists_the_sizing_options_with_their_cost(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "'%s' serve --help", t_binary());
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char text[32768];
    size_t n = fread(text, 1, sizeof text - 1, p);
    text[n] = '\0';
    assert_int_equal(pclose(p), 0);
    static const char *const want[] = {
        "--people N",       "--users-max N",
        "--events-max N",   "--holds-max N",
        "--payments-max N", "--idem-keys-max N",
        "--queue-places N", "--passes-max N",
        "B each",           "The defaults reserve 113 MiB for 100000 people"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (strstr(text, want[i]) == NULL) {
            fprintf(stderr, "serve --help lacks \"%s\":\n%s\n", want[i], text);
            fail_msg("help text");
        }
    }
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    if (getenv("BR_TEST_ONLY") != NULL) { /* one test by name (to see it fail alone) */
        cmocka_set_test_filter(getenv("BR_TEST_ONLY"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_full_users_table_answers_503_and_is_counted),
        cmocka_unit_test(test_idle_server_and_replay_with_default_sizes_stay_small),
        cmocka_unit_test(test_an_existing_journal_keeps_its_sizes),
        cmocka_unit_test(test_a_journal_with_the_old_sizes_opens_and_stays_small),
        cmocka_unit_test(test_a_demo_too_big_for_the_tables_is_skipped_not_fatal),
        cmocka_unit_test(test_help_lists_the_sizing_options_with_their_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
