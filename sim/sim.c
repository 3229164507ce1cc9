/*
 * sim.c -- `bookingrush sim`: load a scenario, run it for one seed or a
 * range of seeds on the in-memory backend, check every step, report.
 *
 * One seed drives everything (the engine's shuffles, the crowd, the
 * provider, the faults); the report prints the seed and the exact command
 * that reproduces the run. With --seeds A..B every seed also redraws its
 * fault mix (swarm testing, br_scenario_swarm), and the reproduce line
 * carries --swarm so a single failing seed replays exactly.
 */
#define _POSIX_C_SOURCE 200809L
#include "sim/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adapters/cli.h"
#include "adapters/clock.h"
#include "adapters/journal_file.h"
#include "core/err.h"
#include "sim/auditor.h"
#include "sim/backend.h"
#include "sim/driver.h"
#include "sim/report.h"
#include "sim/scenario.h"

static const char usage[] =
    "usage: bookingrush sim SCENARIO.json [--seed N | --seeds A..B] [--swarm]\n"
    "                       [--record FILE] [--json] [--check-determinism]\n"
    "                       [--self-check N] [--backend memory|redis] [--redis URL]\n"
    "                       [--help]\n"
    "\n"
    "Runs an on-sale scenario (scenarios/*.json, see scenarios/README.md) through the\n"
    "core, deterministically from one seed, checking the invariants S1-S9, L1 and\n"
    "the waiting room's I1 (inventory: no pass while no seat is available; a sold-out\n"
    "queue takes no new place and tells everyone) and M1 (modes: no pass while paused,\n"
    "closed or passthrough; closed refuses new places; outflow within admit_per_min)\n"
    "(docs/DESIGN.md) after every command. A scenario with \"compare\": true runs each\n"
    "seed again with every waiting-room switch off and reports both side by side.\n"
    "A run or sweep that lasts more than a second prints its progress on stderr once\n"
    "a second.\n"
    "\n"
    "  --seed N             the seed (default: the scenario's \"seed\", else 1)\n"
    "  --seeds A..B         every seed from A to B inclusive; each seed also draws its\n"
    "                       own fault mix and rates (swarm testing)\n"
    "  --swarm              draw the fault mix from the seed for a single --seed run\n"
    "                       (what a --seeds sweep does; its reproduce lines use it)\n"
    "  --record FILE        write every command and outcome to FILE (journal format);\n"
    "                       `bookingrush replay FILE` re-runs it and prints the same digest\n"
    "  --json               print the report as JSON (top-level \"digest\", and per\n"
    "                       invariant \"checks\" and \"violations\")\n"
    "  --check-determinism  run each seed twice and compare the digests\n"
    "  --self-check N       also run the core's own O(state) checkers every N commands\n"
    "  --backend redis      run the commands as the core's Lua twins in Redis\n"
    "                       (adapters/redis.h); the digest must be the memory one\n"
    "  --redis URL          redis://host:port[/db] (default redis://127.0.0.1:6379), or a\n"
    "                       Redis Cluster: redis-cluster://host:port[,host:port...];\n"
    "                       the run EMPTIES that database (FLUSHDB) when it starts\n"
    "  --help               this text\n"
    "\n"
    "Exit status: 0 ok, 1 an invariant was violated or runs were not deterministic,\n"
    "2 bad usage or scenario.\n";

struct sim_args {
    const char *scenario;
    uint64_t seed_a, seed_b;
    bool has_seed, has_range, swarm, json, determinism;
    const char *record;
    uint32_t self_check;
    bool redis;            /* --backend redis */
    const char *redis_url; /* --redis */
};

struct run_result {
    uint64_t digest;
    uint64_t running_digest;
    uint64_t commands;
    bool ok;
    bool error;
};

static bool parse_u64(const char *s, uint64_t *v)
{
    if (s == NULL || *s == '\0' || *s == '-') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0 || end == s) {
        return false;
    }
    *v = (uint64_t)x;
    return *end == '\0';
}

/* Options that take a value (the next argument). */
static bool wants_value(const char *s)
{
    static const char *const with_value[] = {"--seed",    "--seeds",   "--record",
                                             "--backend", "--redis",   "--self-check"};
    for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++) {
        if (strcmp(s, with_value[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int parse_seeds(const char *v, struct sim_args *a)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", v);
    char *dots = strstr(buf, "..");
    if (dots != NULL) {
        *dots = '\0';
    }
    if (dots == NULL || !parse_u64(buf, &a->seed_a) || !parse_u64(dots + 2, &a->seed_b) ||
        a->seed_b < a->seed_a || a->seed_b - a->seed_a >= 10000000) {
        br_cli_usage_error("sim", "--seeds wants A..B with A <= B (at most 10^7 seeds)");
        return -1;
    }
    a->has_range = true;
    a->swarm = true;
    return 0;
}

/* One option with its value v (NULL for flags). 0, or -1 after a message. */
static int parse_opt(const char *s, const char *v, struct sim_args *a)
{
    uint64_t n = 0;
    if (strcmp(s, "--seed") == 0) {
        if (!parse_u64(v, &a->seed_a)) {
            br_cli_usage_error("sim", "--seed wants a non-negative integer, got '%s'", v);
            return -1;
        }
        a->seed_b = a->seed_a;
        a->has_seed = true;
    } else if (strcmp(s, "--seeds") == 0) {
        return parse_seeds(v, a);
    } else if (strcmp(s, "--swarm") == 0) {
        a->swarm = true;
    } else if (strcmp(s, "--record") == 0) {
        a->record = v;
    } else if (strcmp(s, "--json") == 0) {
        a->json = true;
    } else if (strcmp(s, "--check-determinism") == 0) {
        a->determinism = true;
    } else if (strcmp(s, "--self-check") == 0) {
        if (!parse_u64(v, &n) || n > UINT32_MAX) {
            br_cli_usage_error("sim", "--self-check wants a count of commands, got '%s'", v);
            return -1;
        }
        a->self_check = (uint32_t)n;
    } else if (strcmp(s, "--backend") == 0) {
        a->redis = strcmp(v, "redis") == 0;
        if (!a->redis && strcmp(v, "memory") != 0) {
            br_cli_usage_error("sim", "--backend wants memory or redis, got '%s'", v);
            return -1;
        }
    } else if (strcmp(s, "--redis") == 0) {
        a->redis_url = v;
    } else {
        br_cli_unknown_option("sim", s);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct sim_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (s[0] != '-') {
            if (a->scenario != NULL) {
                br_cli_usage_error("sim", "one scenario at a time ('%s'?)", s);
                return -1;
            }
            a->scenario = s;
            continue;
        }
        const char *v = NULL;
        if (wants_value(s)) {
            if (i + 1 >= argc) {
                br_cli_missing_value("sim", s);
                return -1;
            }
            v = argv[++i];
        }
        if (parse_opt(s, v, a) != 0) {
            return -1;
        }
    }
    const char *err = a->scenario == NULL                 ? "which scenario?"
                      : a->has_seed && a->has_range        ? "--seed or --seeds, not both"
                      : a->record != NULL && a->has_range && a->seed_a != a->seed_b
                          ? "--record records one seed"
                          : NULL;
    if (err != NULL) {
        br_cli_usage_error("sim", "%s", err);
        return -1;
    }
    return 0;
}

/* What a progress line names: the sweep (when there is one) and the run in
 * flight. */
struct progress_ctx {
    struct br_progress *pg; /* shared by the runs of a sweep: one line a second in all */
    const struct sim_args *a;
    uint64_t seed;
    uint64_t failed; /* seeds of the sweep that failed so far */
};

/* "sim: seeds 1..500: 41% 205/500 runs, 0 failed" (a sweep's part). */
static void sweep_part(const struct progress_ctx *c, const char *end)
{
    uint64_t done = c->seed - c->a->seed_a, all = c->a->seed_b - c->a->seed_a + 1;
    fprintf(stderr, "seeds %" PRIu64 "..%" PRIu64 ": %.0f%% %" PRIu64 "/%" PRIu64
            " runs, %" PRIu64 " failed%s", c->a->seed_a, c->a->seed_b,
            100.0 * (double)done / (double)all, done, all, c->failed, end);
}

static void run_progress(void *ctx, const struct br_driver_progress *p)
{
    struct progress_ctx *c = ctx;
    if (!br_progress_due(c->pg)) {
        return;
    }
    char sim_t[32];
    br_report_fmt_ms(sim_t, sizeof sim_t, p->simulated_ms);
    fprintf(stderr, "sim: ");
    if (c->a->seed_b > c->a->seed_a) {
        sweep_part(c, "; ");
    }
    if (p->arrived < p->users) {
        fprintf(stderr, "seed %" PRIu64 ": %.0f%% %u/%u users arrived", c->seed,
                100.0 * (double)p->arrived / (double)p->users, p->arrived, p->users);
    } else {
        fprintf(stderr, "seed %" PRIu64 ": all %u users arrived, settling", c->seed, p->users);
    }
    fprintf(stderr, ", %s simulated, %" PRIu64 " commands, %" PRIu64 " violations, %.1f s\n",
            sim_t, p->commands, p->violations, br_progress_elapsed(c->pg));
}

/* Opens --record's file, saying why when it cannot (the file is emptied:
 * a record is one run, never appended to an older one). */
static int open_record(const char *record, const struct br_config *cfg,
                       struct br_journal_writer **w)
{
    int fd = open(record, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "bookingrush sim: cannot write %s: %s\n", record, strerror(errno));
        return BR_E_IO;
    }
    close(fd);
    unlink(record);
    long long torn = -1;
    int rc = br_journal_writer_open(w, record, cfg, BR_JOURNAL_NO_SYNC, &torn);
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush sim: cannot write %s (%s)\n", record, br_err_name(rc));
    }
    return rc;
}

/* Opens the engine (in memory, or the Lua twins in Redis at url), its
 * auditor and, if record is set, the journal it is written to. False after
 * a message on stderr, with nothing left open. */
static bool run_open(const struct sim_args *a, const struct br_config *cfg, const char *url,
                     const char *record, struct br_sim_backend *backend, struct br_auditor **aud,
                     struct br_journal_writer **w)
{
    int rc = a->redis ? br_sim_backend_redis_open(backend, cfg, url)
                      : br_sim_backend_memory_open(backend, cfg);
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush sim: cannot set up the engine (%s; %zu bytes)\n",
                br_err_name(rc), br_engine_memory_size(cfg));
        return false;
    }
    *aud = br_auditor_new(cfg, backend);
    *w = NULL;
    if (record != NULL) {
        rc = open_record(record, cfg, w);
        if (rc != BR_OK) {
            br_auditor_free(*aud);
            br_sim_backend_close(backend);
            return false;
        }
    }
    return true;
}

/* Prints one run's report: appended to json_runs if set, else as text, or
 * (quiet_ok, in a sweep) one line for a run that passed. */
static void run_print(const struct br_report *r, bool ok, bool quiet_ok, json_t *json_runs)
{
    if (json_runs != NULL) {
        json_array_append_new(json_runs, br_report_json(r));
    } else if (!quiet_ok || !ok) {
        br_report_text(stdout, r);
    } else {
        printf("seed %" PRIu64 " ok  digest %016" PRIx64 "  %" PRIu64 " commands  %.0f users/s\n",
               r->seed, r->digest, r->commands, r->wall_s > 0 ? (double)r->users / r->wall_s : 0.0);
    }
    if (!ok && json_runs == NULL && quiet_ok) {
        fflush(stdout);
    }
}

/* Drives the crowd of scn through the backend (sim/driver.h), checked by
 * aud and recorded to w if set, with progress to pc. */
static int run_drive(const struct sim_args *a, const struct br_scenario *scn,
                     const struct br_config *cfg, uint64_t seed, struct br_sim_backend *backend,
                     struct br_auditor *aud, struct br_journal_writer *w, struct progress_ctx *pc,
                     struct br_driver_stats *st)
{
    struct br_driver_opts o = {.scn = scn,
                               .cfg = cfg,
                               .seed = seed,
                               .backend = backend,
                               .auditor = aud,
                               .record = w,
                               .self_check_every = a->self_check,
                               .progress = run_progress,
                               .progress_ctx = pc};
    return br_driver_run(&o, st);
}

/* Issue 13: does the scenario use the waiting room (then the report has
 * its figures)? */
static bool uses_waiting_room(const struct br_scenario *s)
{
    bool any = s->compare || s->operator_count > 0 || s->presence_report_ms > 0 ||
               s->door.bot_pow_bits > 0 || s->door.join_limit > 0 || s->crowd.abandon_share > 0;
    for (uint32_t i = 0; i < s->event_count; i++) {
        const struct br_event_spec *e = &s->events[i].spec;
        any = any || e->admit_per_min || e->presence_ttl_s || e->pow_bits || e->queue_flags ||
              e->mode;
    }
    return any;
}

/* Issue 13 ("compare"): the same seed with every switch off, on the memory
 * backend, unrecorded; its figures. False when it could not run. */
static bool run_switches_off(const struct br_scenario *scn, const struct sim_args *a,
                             uint64_t seed, struct progress_ctx *pc, struct br_wr_figures *off)
{
    struct br_scenario *s2 = malloc(sizeof *s2);
    if (s2 == NULL) {
        return false;
    }
    *s2 = *scn;
    br_scenario_switches_off(s2);
    struct br_config cfg;
    br_scenario_config(s2, seed, &cfg);
    struct br_sim_backend backend;
    struct br_auditor *aud;
    struct br_journal_writer *w;
    struct sim_args a2 = *a;
    a2.redis = false;
    bool ok = run_open(&a2, &cfg, NULL, NULL, &backend, &aud, &w);
    if (ok) {
        struct br_driver_stats st;
        int rc = run_drive(&a2, s2, &cfg, seed, &backend, aud, NULL, pc, &st);
        br_report_wr_of(off, aud, &st, backend.ops->final_digest(&backend));
        off->ok = off->ok && rc == BR_OK;
        br_auditor_free(aud);
        br_sim_backend_close(&backend);
    }
    free(s2);
    return ok;
}

/* Runs one seed. Prints the report unless quiet_ok and the run passed
 * (sweeps print one line per good seed). */
static struct run_result run_one(const struct br_scenario *base, const struct sim_args *a,
                                 uint64_t seed, const char *record, bool quiet_ok,
                                 json_t *json_runs, struct progress_ctx *pc)
{
    struct run_result res = {0};
    struct br_scenario scn = *base;
    if (a->swarm) {
        br_scenario_swarm(&scn, seed);
    }
    struct br_config cfg;
    br_scenario_config(&scn, seed, &cfg);
    /* The clock runs from the engine's allocation to the final digest:
     * setting up a big engine is part of simulating a big sale. */
    double t0 = br_clock_mono_s(), c0 = br_clock_cpu_s();
    struct br_sim_backend backend;
    const char *url = a->redis_url != NULL ? a->redis_url : "redis://127.0.0.1:6379";
    struct br_auditor *aud;
    struct br_journal_writer *w;
    if (!run_open(a, &cfg, url, record, &backend, &aud, &w)) {
        res.error = true;
        return res;
    }
    struct br_driver_stats st;
    int rc = run_drive(a, &scn, &cfg, seed, &backend, aud, w, pc, &st);
    uint64_t digest = backend.ops->final_digest(&backend);
    double wall = br_clock_mono_s() - t0, cpu = br_clock_cpu_s() - c0;
    if (w != NULL && br_journal_writer_close(w) != BR_OK && rc == BR_OK) {
        rc = BR_E_IO;
    }
    char reproduce[700];
    snprintf(reproduce, sizeof reproduce, "bookingrush sim %s --seed %" PRIu64 "%s%s%s", base->path,
             seed, a->swarm ? " --swarm" : "", a->redis ? " --backend redis --redis " : "",
             a->redis ? url : "");
    struct br_report r = {.mode = "sim",
                          .scenario = scn.name,
                          .path = base->path,
                          .seed = seed,
                          .swarm = a->swarm,
                          .simulated_ms = st.sim_end_ms,
                          .wall_s = wall,
                          .cpu_s = cpu,
                          .users = st.users,
                          .commands = st.commands,
                          .auditor = aud,
                          .stats = &st,
                          .live = &st.live,
                          .digest = digest,
                          .engine_bytes = backend.memory_bytes,
                          .peak_rss_kib = br_peak_rss_kib(),
                          .reproduce = reproduce};
    struct br_wr_figures wr_on, wr_off = {0};
    if (uses_waiting_room(&scn)) {
        br_report_wr_of(&wr_on, aud, &st, digest);
        r.wr_on = &wr_on;
        r.door_bits = scn.door.bot_pow_bits;
        for (uint32_t i = 0; i < scn.event_count && r.door_bits == 0; i++) {
            r.door_bits = scn.events[i].spec.pow_bits;
        }
        r.door_join_limit = scn.door.join_limit;
        r.door_places = scn.crowd.users;
        if (scn.compare && rc == BR_OK && run_switches_off(&scn, a, seed, pc, &wr_off)) {
            r.wr_off = &wr_off;
        }
    }
    res.digest = r.digest;
    res.running_digest = backend.ops->digest(&backend);
    res.commands = st.commands;
    res.ok = rc == BR_OK && br_report_ok(&r);
    res.error = rc != BR_OK;
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush sim: seed %" PRIu64 ": the run failed: %s\n", seed,
                br_err_name(rc));
    }
    run_print(&r, res.ok, quiet_ok, json_runs);
    br_auditor_free(aud);
    br_sim_backend_close(&backend);
    return res;
}

/* Prints the JSON report: the one run's object, or {"runs", "failed",
 * "nondeterministic"} for a sweep or a determinism check. Takes runs. */
static void print_json(json_t *runs, bool sweep, bool determinism, uint64_t failed,
                       uint64_t nondet)
{
    json_t *out;
    if (sweep || determinism) {
        out = json_object();
        json_object_set_new(out, "runs", runs);
        json_object_set_new(out, "failed", json_integer((json_int_t)failed));
        json_object_set_new(out, "nondeterministic", json_integer((json_int_t)nondet));
        if (!sweep) {
            /* One seed: its digest at the top level too. */
            json_t *first = json_array_get(runs, 0);
            if (first != NULL) {
                json_object_set(out, "digest", json_object_get(first, "digest"));
            }
        }
    } else {
        out = json_incref(json_array_get(runs, 0));
        json_decref(runs);
    }
    if (out != NULL) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(out);
    }
}

int br_sim_main(int argc, char **argv)
{
    struct sim_args a;
    int prc = parse_args(argc, argv, &a);
    if (prc != 0) {
        return prc > 0 ? 0 : 2;
    }
    struct br_scenario *base = malloc(sizeof *base);
    if (base == NULL) {
        return 2;
    }
    char err[600];
    if (br_scenario_load(base, a.scenario, err, sizeof err) != BR_OK) {
        fprintf(stderr, "bookingrush sim: %s\n", err);
        free(base);
        return 2;
    }
    if (!a.has_seed && !a.has_range) {
        a.seed_a = a.seed_b = base->seed;
    }
    bool sweep = a.seed_b > a.seed_a;
    json_t *runs = a.json ? json_array() : NULL;
    uint64_t failed = 0, nondet = 0, errors = 0;
    struct br_progress pg;
    br_progress_init(&pg);
    struct progress_ctx pc = {.pg = &pg, .a = &a};
    /* Bounded: at most 10^7 seeds (parse_args). */
    for (uint64_t seed = a.seed_a;; seed++) {
        pc.seed = seed;
        pc.failed = failed;
        struct run_result r1 = run_one(base, &a, seed, a.record, sweep, runs, &pc);
        failed += !r1.ok;
        errors += r1.error;
        if (a.determinism && !r1.error) {
            struct run_result r2 = run_one(base, &a, seed, NULL, true, NULL, &pc);
            bool same = r1.digest == r2.digest && r1.running_digest == r2.running_digest &&
                        r1.commands == r2.commands;
            nondet += !same;
            fprintf(a.json ? stderr : stdout,
                    "determinism: seed %" PRIu64 " run 1 digest %016" PRIx64
                    ", run 2 digest %016" PRIx64 ": %s\n",
                    seed, r1.digest, r2.digest, same ? "identical" : "DIFFERENT");
        }
        if (seed == a.seed_b) {
            break;
        }
        if (sweep && br_progress_due(&pg)) {
            pc.seed = seed + 1; /* seeds done: up to this one */
            pc.failed = failed;
            fprintf(stderr, "sim: ");
            sweep_part(&pc, "");
            fprintf(stderr, ", %.1f s\n", br_progress_elapsed(&pg));
        }
    }
    if (runs != NULL) {
        print_json(runs, sweep, a.determinism, failed, nondet);
    } else if (sweep) {
        printf("seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64 " runs, %" PRIu64 " failed%s\n", a.seed_a,
               a.seed_b, a.seed_b - a.seed_a + 1, failed,
               a.determinism ? (nondet ? ", NOT deterministic" : ", deterministic") : "");
    }
    free(base);
    if (errors > 0 && failed == errors) {
        return 2;
    }
    return failed > 0 || nondet > 0 ? 1 : 0;
}
