/*
 * replay.c -- `bookingrush replay FILE`: re-run a recorded journal through
 * the core, check the invariants with the same auditor as the simulator,
 * compare every recorded outcome with the one the core gives now, and name
 * the first command where they differ.
 *
 * The journal's header carries the engine config (and so the seed), so the
 * replayed engine is the recorded one; replaying a `sim --record` file ends
 * with the run's digest. A damaged file is reported with the byte offset of
 * the damage and nothing after it is trusted.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapters/cli.h"
#include "adapters/clock.h"
#include "adapters/journal_file.h"
#include "core/catalog.h"
#include "core/err.h"
#include "core/panic.h"
#include "sim/auditor.h"
#include "sim/backend.h"
#include "sim/report.h"
#include "sim/sim.h"

static const char usage[] =
    "usage: bookingrush replay FILE [--json] [--dump] [--help]\n"
    "\n"
    "Re-runs a recorded command journal (the embedded server's journal, or a\n"
    "`bookingrush sim --record` file) through the core: checks the invariants after\n"
    "every command, compares each recorded outcome with the replayed one and names\n"
    "the first divergence, and prints the final digest. The report names the file,\n"
    "the span of time its commands cover, and what was still in progress at its end\n"
    "(a live server's journal ends mid-sale: that is not a failure). A long replay\n"
    "prints its progress on stderr once a second.\n"
    "\n"
    "  --json   the report as JSON (as `sim --json`)\n"
    "  --dump   also print every command with its outcome and effects (stderr)\n"
    "\n"
    "Exit status: 0 ok, 1 an invariant was violated, 2 unreadable, truncated or\n"
    "corrupted file (the offset is printed), 3 an outcome diverged.\n";

/* Prints the fields where two outcomes differ; returns how many. */
static int diff_outcomes(FILE *f, const struct br_outcome *rec, const struct br_outcome *now)
{
    int n = 0;
#define DIFF(field, fmt)                                                                           \
    if (rec->field != now->field) {                                                                \
        fprintf(f, "    %-13s recorded " fmt ", replayed " fmt "\n", #field, rec->field,           \
                now->field);                                                                       \
        n++;                                                                                       \
    }
    if (rec->err != now->err) {
        fprintf(f, "    %-13s recorded %s, replayed %s\n", "err", br_err_name(rec->err),
                br_err_name(now->err));
        n++;
    }
    DIFF(status, "%u")
    DIFF(id, "%" PRIu64)
    DIFF(ref, "%" PRIu64)
    DIFF(position, "%u")
    DIFF(queue_length, "%u")
    DIFF(deadline_ms, "%" PRId64)
    DIFF(amount_minor, "%" PRId64)
    DIFF(count, "%u")
    DIFF(effect_count, "%u")
    DIFF(effects_hash, "%016" PRIx64)
#undef DIFF
    return n;
}

/* One line per command, one more per effect: for reading an incident. */
static void dump_step(FILE *f, uint64_t index, const struct br_cmd *c, const struct br_outcome *o,
                      const struct br_effect *fx, uint32_t n)
{
    fprintf(f, "#%" PRIu64 " %" PRId64 " %s user %" PRIu64, index, c->now_ms, br_cmd_name(c->type),
            c->user_id);
    switch (c->type) {
    case BR_CMD_QUEUE_JOIN:
    case BR_CMD_QUEUE_LEAVE:
    case BR_CMD_ADMIT:
        fprintf(f, " event %" PRIu64, c->u.queue_join.event_id);
        break;
    case BR_CMD_RESERVE:
        fprintf(f, " event %" PRIu64 " zone %u qty %u pass %" PRIu64 " key %" PRIx64,
                c->u.reserve.event_id, c->u.reserve.zone_id, c->u.reserve.quantity,
                c->u.reserve.pass_id, c->u.reserve.idem_key);
        break;
    case BR_CMD_CANCEL:
    case BR_CMD_PAYMENT_CREATE:
        fprintf(f, " hold %" PRIu64, c->u.cancel.hold_id);
        break;
    case BR_CMD_SWEEP:
        fprintf(f, " event %" PRIu64 " max %u", c->u.sweep.event_id, c->u.sweep.max);
        break;
    case BR_CMD_PAYMENT_EVENT:
        fprintf(f, " payment %" PRIu64 " provider_event %" PRIx64 " %s",
                c->u.payment_event.payment_id, c->u.payment_event.provider_event_id,
                c->u.payment_event.succeeded ? "succeeded" : "failed");
        break;
    case BR_CMD_REFUND_RESULT:
        fprintf(f, " payment %" PRIu64 " %s", c->u.refund_result.payment_id,
                c->u.refund_result.ok ? "ok" : "refused");
        break;
    case BR_CMD_SAGA_STEP:
        fprintf(f, " max %u", c->u.saga_step.max);
        break;
    default:
        break;
    }
    fprintf(f, " -> %s status %u id %" PRIu64 " ref %" PRIu64 " count %u\n", br_err_name(o->err),
            o->status, o->id, o->ref, o->count);
    for (uint32_t i = 0; i < n; i++) {
        fprintf(f, "    %s event %" PRIu64 " user %" PRIu64 " id %" PRIu64 " ref %" PRIu64 "\n",
                br_effect_name(fx[i].kind), fx[i].event_id, fx[i].user_id, fx[i].id, fx[i].ref);
    }
}

/* Parses argv into *path and the flags. 0 to run, 1 after --help, 2 after a
 * usage error (printed). */
static int parse_args(int argc, char **argv, const char **path, bool *json, bool *dump)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            *json = true;
        } else if (strcmp(argv[i], "--dump") == 0) {
            *dump = true;
        } else if (argv[i][0] == '-') {
            return br_cli_unknown_option("replay", argv[i]);
        } else if (*path == NULL) {
            *path = argv[i];
        } else {
            return br_cli_usage_error("replay", "one file at a time ('%s'?)", argv[i]);
        }
    }
    if (*path == NULL) {
        return br_cli_usage_error("replay", "which file?");
    }
    return 0;
}

/* The journal's size, or -1 after saying why it cannot be read (the
 * reader's own error would not name the reason). */
static long long source_size(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "bookingrush replay: cannot open %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "bookingrush replay: %s is not a file\n", path);
        return -1;
    }
    return (long long)st.st_size;
}

struct replay_run {
    const char *path;
    long long bytes; /* file size */
    bool dump;
    uint64_t records;
    uint64_t compared;
    int64_t first_now;
    int64_t last_now;
    int exit_code;
    /* Id skips `bookingrush journal repair` left beside the journal: applied
     * at their offsets, as the server does at its start. */
    struct br_journal_skip skips[BR_JOURNAL_SKIPS_MAX];
    unsigned skip_count;
    unsigned skip_next;
};

static void replay_progress(struct br_progress *pg, const struct replay_run *x, long long offset,
                            const struct br_auditor *aud)
{
    if (!br_progress_due(pg)) {
        return;
    }
    char at[40];
    br_report_rfc3339(at, sizeof at, x->last_now);
    fprintf(stderr,
            "replay: %.0f%% offset %lld/%lld bytes, %" PRIu64 " records, now %s, %" PRIu64
            " violations, %.1f s\n",
            x->bytes > 0 ? 100.0 * (double)offset / (double)x->bytes : 100.0, offset, x->bytes,
            x->records, at, br_auditor_violations(aud), br_progress_elapsed(pg));
}

/* Feeds every record to the backend and the auditor, comparing outcomes;
 * stops at the end, at damage (exit 2), at a divergence (3) or at the first
 * violation (1). */
static void replay_records(struct replay_run *x, struct br_journal_reader *rd,
                           struct br_sim_backend *backend, struct br_auditor *aud)
{
    struct br_progress pg;
    br_progress_init(&pg);
    struct br_cmd cmd;
    struct br_outcome rec_out, out;
    /* Bounded by the file: every record read advances the offset. */
    for (;;) {
        bool has_out = false;
        long long offset = 0;
        memset(&rec_out, 0, sizeof rec_out);
        int rc = br_journal_reader_next(rd, &cmd, &rec_out, &has_out, &offset);
        for (; x->skip_next < x->skip_count && x->skips[x->skip_next].offset <= offset;
             x->skip_next++) {
            struct br_engine *e = br_sim_backend_memory_engine(backend);
            BR_ASSERT(e != NULL); /* replay runs on the memory backend */
            br_catalog_skip_ids(e, x->skips[x->skip_next].records);
            br_auditor_skip_ids(aud);
        }
        if (rc == 1) {
            break;
        }
        if (rc != BR_OK) {
            fprintf(stderr,
                    "bookingrush replay: %s: %s record at byte offset %lld (record #%" PRIu64
                    "): %s; the %" PRIu64 " records before it were replayed\n",
                    x->path,
                    rc == BR_E_TRUNCATED ? "truncated"
                    : rc == BR_E_CORRUPT ? "corrupted"
                                         : "unreadable",
                    offset, x->records + 1, br_err_message(rc), x->records);
            x->exit_code = 2;
            break;
        }
        x->records++;
        const struct br_effect *fx;
        uint32_t n;
        br_sim_backend_apply(backend, &cmd, &out, &fx, &n);
        x->first_now = x->records == 1 ? cmd.now_ms : x->first_now;
        x->last_now = cmd.now_ms;
        if (has_out) {
            x->compared++;
            /* Outcomes are memset-cleared by the engine and by the decoder,
             * so a byte compare is exact; the field diff says where. */
            if (memcmp(&rec_out, &out, sizeof out) != 0) {
                fprintf(stderr,
                        "bookingrush replay: %s: first divergence at record #%" PRIu64
                        " (byte offset %lld): %s by user %" PRIu64 " at now_ms %" PRId64 "\n",
                        x->path, x->records, offset, br_cmd_name(cmd.type), cmd.user_id,
                        cmd.now_ms);
                if (diff_outcomes(stderr, &rec_out, &out) == 0) {
                    fprintf(stderr, "    (the outcomes differ only in padding bytes)\n");
                }
                x->exit_code = 3;
                break;
            }
        }
        if (x->dump) {
            dump_step(stderr, x->records, &cmd, &out, fx, n);
        }
        br_auditor_observe(aud, &cmd, &out, fx, n);
        if (br_auditor_violations(aud) > 0) {
            x->exit_code = 1;
            break;
        }
        if ((x->records & 1023u) == 0) {
            replay_progress(&pg, x, offset, aud);
        }
    }
}

/* The last lines of the text report: what was compared and the verdict,
 * which is what the exit status says. */
static void print_verdict(const struct replay_run *x, const struct br_audit_liveness *live)
{
    printf("  records       %" PRIu64 " replayed, %" PRIu64 " outcomes compared%s\n", x->records,
           x->compared,
           x->exit_code == 3   ? ", DIVERGED"
           : x->exit_code == 2 ? ", file damaged"
                               : ", all identical");
    static const char *const verdicts[] = {
        "ok: no invariant violated, every recorded outcome reproduced",
        "VIOLATION: an invariant was violated (above)",
        "DAMAGED: the journal is damaged (the offset is above); records after it not replayed",
        "DIVERGED: a replayed outcome differs from the recorded one (above)"};
    BR_ASSERT(x->exit_code >= 0 && x->exit_code <= 3);
    printf("  verdict       %s%s (exit %d)\n", verdicts[x->exit_code],
           x->exit_code == 0 && !live->converged ? "; the sale was still in progress" : "",
           x->exit_code);
}

/* Opens the journal at path and an in-memory engine sized by its header.
 * False after a message on stderr, with nothing left open. */
static bool replay_open(const char *path, struct br_journal_reader **rd, struct br_config *cfg,
                        struct br_sim_backend *backend)
{
    int rc = br_journal_reader_open(rd, path, cfg);
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush replay: %s: bad journal header at offset 0: %s (%s)\n", path,
                br_err_name(rc), br_err_message(rc));
        return false;
    }
    /* Exactly the header's config: a full table's answer (BR_E_FULL) is part
     * of the record, so other sizes could diverge. It costs resident memory
     * only as the records fill it (the engine is laid over zeroed pages). */
    rc = br_sim_backend_memory_open(backend, cfg);
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush replay: %s: the header's config cannot be set up (%s)\n", path,
                br_err_name(rc));
        br_journal_reader_close(*rd);
        return false;
    }
    return true;
}

/* Prints the report as JSON (with the replay's counts and exit status) or
 * as text followed by the verdict. */
static void replay_print(bool json, const struct br_report *r, const struct replay_run *x,
                         const struct br_audit_liveness *live)
{
    if (json) {
        json_t *o = br_report_json(r);
        json_object_set_new(o, "records", json_integer((json_int_t)x->records));
        json_object_set_new(o, "outcomes_compared", json_integer((json_int_t)x->compared));
        json_object_set_new(o, "exit", json_integer(x->exit_code));
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(o);
    } else {
        br_report_text(stdout, r);
        print_verdict(x, live);
    }
}

int br_replay_main(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false, dump = false;
    int prc = parse_args(argc, argv, &path, &json, &dump);
    if (prc != 0) {
        return prc == 1 ? 0 : prc;
    }
    long long bytes = source_size(path);
    if (bytes < 0) {
        return 2;
    }
    struct br_journal_reader *rd = NULL;
    struct br_config cfg;
    double t0 = br_clock_mono_s(), c0 = br_clock_cpu_s(); /* from the engine's allocation on, as sim counts */
    struct br_sim_backend backend;
    if (!replay_open(path, &rd, &cfg, &backend)) {
        return 2;
    }
    struct br_auditor *aud = br_auditor_new(&cfg, &backend);
    struct replay_run x = {.path = path, .bytes = bytes, .dump = dump};
    int skips = br_journal_skips_read(path, x.skips, BR_JOURNAL_SKIPS_MAX);
    if (skips < 0) {
        fprintf(stderr, "bookingrush replay: %s.skip: unreadable, malformed or over %u lines\n",
                path, BR_JOURNAL_SKIPS_MAX);
        br_auditor_free(aud);
        br_sim_backend_close(&backend);
        br_journal_reader_close(rd);
        return 2;
    }
    x.skip_count = (unsigned)skips;
    replay_records(&x, rd, &backend, aud);
    double wall = br_clock_mono_s() - t0, cpu = br_clock_cpu_s() - c0;
    br_journal_reader_close(rd);
    struct br_audit_liveness live;
    br_auditor_liveness(aud, x.last_now, &live);
    char reproduce[600];
    snprintf(reproduce, sizeof reproduce, "bookingrush replay %s", path);
    struct br_report r = {.mode = "replay",
                          .path = path,
                          .simulated_ms = x.last_now - x.first_now,
                          .wall_s = wall,
                          .cpu_s = cpu,
                          .commands = x.records,
                          .auditor = aud,
                          .live = &live,
                          .digest = backend.ops->final_digest(&backend),
                          .engine_bytes = backend.memory_bytes,
                          .peak_rss_kib = br_peak_rss_kib(),
                          .reproduce = reproduce,
                          .records = x.records,
                          .source_bytes = bytes,
                          .first_now_ms = x.first_now,
                          .last_now_ms = x.last_now,
                          .exit_code = x.exit_code};
    replay_print(json, &r, &x, &live);
    br_auditor_free(aud);
    br_sim_backend_close(&backend);
    return x.exit_code;
}
