/*
 * test_journal_file.c -- journal files on disk (adapters/journal_file.h):
 * round trips, group commit, zero-fill ahead, torn tails cut on reopen,
 * damage refused (in the middle, three records before the end, a bit flip
 * in the last record), offsets of truncation and corruption reported, a
 * failed flush retried in place.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/journal_file.h"
#include "core/err.h"
#include "core/journal.h"

static char path[256];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/br-test-journal-%ld.brj", (long)getpid());
    unlink(path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void config(struct br_config *c)
{
    br_config_default(c);
    c->seed = 42;
}

static void make_cmd(uint32_t i, struct br_cmd *c, struct br_outcome *o)
{
    memset(c, 0, sizeof *c);
    memset(o, 0, sizeof *o);
    c->type = BR_CMD_RESERVE;
    c->now_ms = 1000 + i;
    c->user_id = 1 + i % 7;
    c->u.reserve.event_id = 1;
    c->u.reserve.zone_id = 1 + i % 3;
    c->u.reserve.quantity = 1 + i % 4;
    c->u.reserve.idem_key = 1000003ULL * i;
    o->err = i % 5 == 0 ? BR_E_SOLD_OUT : BR_OK;
    o->id = (uint64_t)1 << 32 | i;
    o->deadline_ms = 5000 + i;
}

static void write_n(uint32_t from, uint32_t n, enum br_journal_sync sync)
{
    struct br_config cfg;
    config(&cfg);
    struct br_journal_writer *w;
    long long torn = 0;
    assert_int_equal(br_journal_writer_open(&w, path, &cfg, sync, &torn), BR_OK);
    assert_int_equal(torn, -1);
    for (uint32_t i = from; i < from + n; i++) {
        struct br_cmd c;
        struct br_outcome o;
        make_cmd(i, &c, &o);
        assert_int_equal(br_journal_writer_append(w, &c, i % 2 ? &o : NULL), BR_OK);
        if (i % 100 == 99) {
            assert_int_equal(br_journal_writer_flush(w), BR_OK);
        }
    }
    assert_int_equal(br_journal_writer_close(w), BR_OK);
}

/* Reads the whole file; returns records read; *last_rc the final code. */
static uint32_t read_all(int *last_rc, long long *offset)
{
    struct br_journal_reader *r;
    struct br_config cfg, want;
    config(&want);
    assert_int_equal(br_journal_reader_open(&r, path, &cfg), BR_OK);
    assert_int_equal(cfg.seed, want.seed);
    assert_int_equal(cfg.holds_max, want.holds_max);
    uint32_t n = 0;
    for (;;) {
        struct br_cmd c, e;
        struct br_outcome o, eo;
        bool has = false;
        int rc = br_journal_reader_next(r, &c, &o, &has, offset);
        if (rc != BR_OK) {
            *last_rc = rc;
            break;
        }
        make_cmd(n, &e, &eo);
        assert_int_equal(c.type, e.type);
        assert_int_equal(c.now_ms, e.now_ms);
        assert_int_equal(c.u.reserve.idem_key, e.u.reserve.idem_key);
        assert_int_equal(has, n % 2 == 1);
        if (has) {
            assert_int_equal(o.id, eo.id);
            assert_int_equal(o.err, eo.err);
        }
        n++;
    }
    br_journal_reader_close(r);
    return n;
}

static long long file_size(void)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long long)st.st_size;
}

static void test_records_round_trip_across_buffers_and_reopens(void **state)
{
    (void)state;
    write_n(0, 3000, BR_JOURNAL_NO_SYNC); /* > one 256 KiB buffer */
    write_n(3000, 500, BR_JOURNAL_FSYNC); /* reopen appends */
    int rc = 0;
    long long off = 0;
    assert_int_equal(read_all(&rc, &off), 3500);
    assert_int_equal(rc, 1);
    assert_int_equal(off, file_size());
}

static void test_a_torn_tail_is_cut_on_reopen(void **state)
{
    (void)state;
    write_n(0, 10, BR_JOURNAL_NO_SYNC);
    long long good = file_size();
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fwrite("\x30\x00\x00\x00\x01\x02", 1, 6, f); /* half a record head */
    fclose(f);
    int rc = 0;
    long long off = 0;
    assert_int_equal(read_all(&rc, &off), 10);
    assert_int_equal(rc, BR_E_TRUNCATED);
    assert_int_equal(off, good);
    struct br_config cfg;
    config(&cfg);
    struct br_journal_writer *w;
    long long torn = -1;
    assert_int_equal(br_journal_writer_open(&w, path, &cfg, BR_JOURNAL_NO_SYNC, &torn), BR_OK);
    assert_int_equal(torn, good);
    assert_int_equal(file_size(), good);
    struct br_cmd c;
    struct br_outcome o;
    make_cmd(10, &c, &o);
    assert_int_equal(br_journal_writer_append(w, &c, NULL), BR_OK);
    assert_int_equal(br_journal_writer_close(w), BR_OK);
    assert_int_equal(read_all(&rc, &off), 11);
    assert_int_equal(rc, 1);
}

static void test_a_zero_filled_tail_is_the_end(void **state)
{
    (void)state;
    write_n(0, 10, BR_JOURNAL_NO_SYNC);
    long long good = file_size();
    assert_int_equal(truncate(path, (off_t)(good + 4096)), 0); /* zero-filled ahead */
    struct br_config cfg;
    config(&cfg);
    struct br_journal_writer *w;
    long long torn = 0;
    assert_int_equal(br_journal_writer_open(&w, path, &cfg, BR_JOURNAL_NO_SYNC, &torn), BR_OK);
    assert_int_equal(torn, -1); /* nothing cut: zeros are the space ahead */
    struct br_cmd c;
    struct br_outcome o;
    make_cmd(10, &c, &o);
    assert_int_equal(br_journal_writer_append(w, &c, NULL), BR_OK);
    assert_int_equal(br_journal_writer_close(w), BR_OK);
    assert_int_equal(file_size(), good + 4096); /* written over the zeros */
    int rc = 0;
    long long off = 0;
    assert_int_equal(read_all(&rc, &off), 11);
    assert_int_equal(rc, 1);
}

/* Writes n records, every one with its outcome (as the server does), with
 * zero-fill ahead; returns the offset of each record in at[] (n + 1: the end). */
static void write_server_like(uint32_t n, long long *at)
{
    struct br_config cfg;
    config(&cfg);
    struct br_journal_writer_opts o = {.sync = BR_JOURNAL_FSYNC, .zero_ahead_bytes = 8192};
    struct br_journal_writer *w;
    assert_int_equal(br_journal_writer_open_opts(&w, path, &cfg, &o, NULL), BR_OK);
    for (uint32_t i = 0; i < n; i++) {
        struct br_cmd c;
        struct br_outcome out;
        make_cmd(i, &c, &out);
        out.effects_hash = 0x6678u + i; /* as the engine's: never zero */
        at[i] = br_journal_writer_end(w);
        assert_int_equal(br_journal_writer_append(w, &c, &out), BR_OK);
        assert_int_equal(br_journal_writer_flush(w), BR_OK); /* one commit per record */
        assert_true(br_journal_writer_room(w) > 0);
    }
    at[n] = br_journal_writer_end(w);
    assert_int_equal(br_journal_writer_close(w), BR_OK);
    assert_true(file_size() > at[n]); /* zeros ahead */
}

static void poke(long long at, uint8_t xor_mask)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, at, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(ch ^ xor_mask, f);
    fclose(f);
}

static int reopen(long long *torn)
{
    struct br_config cfg;
    config(&cfg);
    struct br_journal_writer *w = NULL;
    int rc = br_journal_writer_open(&w, path, &cfg, BR_JOURNAL_NO_SYNC, torn);
    br_journal_writer_close(w);
    return rc;
}

static void test_a_bad_length_three_records_before_the_end_is_refused(void **state)
{
    (void)state;
    long long at[21];
    write_server_like(20, at);
    long long size = file_size();
    poke(at[17], 0x04); /* the length byte of the third record from the end */
    long long torn = 0;
    assert_int_equal(reopen(&torn), BR_E_CORRUPT);
    assert_int_equal(file_size(), size); /* untouched */
    struct br_config cfg;
    struct br_journal_scan scan;
    assert_int_equal(br_journal_scan_file(path, &cfg, &scan, NULL, NULL), BR_OK);
    assert_int_equal(scan.records, 17);
    assert_int_equal(scan.damage_at, at[17]);
    assert_false(scan.torn);
    assert_true(scan.records_after >= 2); /* the two after it are found again */
}

static void test_a_bit_flip_in_the_last_record_is_refused_not_cut(void **state)
{
    (void)state;
    long long at[11];
    write_server_like(10, at);
    poke(at[9] + 20, 0x10); /* inside the payload of the last record */
    long long torn = 0;
    assert_int_equal(reopen(&torn), BR_E_CORRUPT);
    struct br_config cfg;
    struct br_journal_scan scan;
    assert_int_equal(br_journal_scan_file(path, &cfg, &scan, NULL, NULL), BR_OK);
    assert_int_equal(scan.damage_at, at[9]);
    assert_false(scan.torn);
    /* and a flip in its length field that points into the zeros ahead */
    unlink(path);
    write_server_like(10, at);
    poke(at[9], 0x40);
    assert_int_equal(reopen(&torn), BR_E_CORRUPT);
}

static void test_a_half_written_last_record_over_zeros_is_cut(void **state)
{
    (void)state;
    long long at[11];
    write_server_like(10, at);
    /* The next commit's first record, half of it landed over the zeros. */
    uint8_t rec[BR_JOURNAL_RECORD_MAX];
    struct br_cmd c;
    struct br_outcome o;
    make_cmd(10, &c, &o);
    size_t n = br_journal_record_encode(rec, sizeof rec, &c, &o);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, at[10], SEEK_SET);
    assert_int_equal(fwrite(rec, 1, n / 2, f), n / 2);
    fclose(f);
    long long torn = 0;
    assert_int_equal(reopen(&torn), BR_OK);
    assert_int_equal(torn, at[10]);
    assert_int_equal(file_size(), at[10]);
    int rc = 0;
    long long off = 0;
    struct br_journal_reader *r;
    struct br_config cfg;
    assert_int_equal(br_journal_reader_open(&r, path, &cfg), BR_OK);
    uint32_t count = 0;
    while ((rc = br_journal_reader_next(r, &c, &o, &(bool){false}, &off)) == BR_OK) {
        count++;
    }
    br_journal_reader_close(r);
    assert_int_equal(rc, 1);
    assert_int_equal(count, 10);
}

static void ignore_signal(int sig)
{
    (void)sig;
}

/* A flush that fails (here: the file size limit, as a full disk would)
 * keeps its records; once writing works again the same flush writes them
 * whole, in place, and nothing partial is left between. */
static void test_a_failed_flush_is_retried_in_place(void **state)
{
    (void)state;
    struct br_config cfg;
    config(&cfg);
    struct br_journal_writer *w;
    long long torn = 0;
    assert_int_equal(br_journal_writer_open(&w, path, &cfg, BR_JOURNAL_FSYNC, &torn), BR_OK);
    struct br_cmd c;
    struct br_outcome o;
    make_cmd(0, &c, &o);
    assert_int_equal(br_journal_writer_append(w, &c, NULL), BR_OK);
    assert_int_equal(br_journal_writer_flush(w), BR_OK);
    long long end = br_journal_writer_end(w);
    struct sigaction sa = {0};
    sa.sa_handler = ignore_signal;
    sigaction(SIGXFSZ, &sa, NULL);
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit lim = old;
    lim.rlim_cur = (rlim_t)end + 40; /* room for part of one record only */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (uint32_t i = 1; i < 5; i++) {
        make_cmd(i, &c, &o);
        assert_int_equal(br_journal_writer_append(w, &c, i % 2 ? &o : NULL), BR_OK);
    }
    assert_int_not_equal(br_journal_writer_flush(w), BR_OK);
    assert_int_not_equal(br_journal_writer_flush(w), BR_OK);
    assert_int_equal(br_journal_writer_end(w), end);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(br_journal_writer_flush(w), BR_OK);
    assert_int_equal(br_journal_writer_close(w), BR_OK);
    int rc = 0;
    long long off = 0;
    assert_int_equal(read_all(&rc, &off), 5);
    assert_int_equal(rc, 1);
    assert_int_equal(off, file_size());
}

static void test_damage_in_the_middle_is_refused_and_located(void **state)
{
    (void)state;
    write_n(0, 50, BR_JOURNAL_NO_SYNC);
    long long size = file_size();
    long long at = size / 2;
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, at, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    struct br_config cfg;
    config(&cfg);
    struct br_journal_writer *w = NULL;
    long long torn = 0;
    assert_int_equal(br_journal_writer_open(&w, path, &cfg, BR_JOURNAL_NO_SYNC, &torn),
                     BR_E_CORRUPT);
    assert_null(w);
    assert_int_equal(file_size(), size); /* untouched */
    int rc = 0;
    long long off = 0;
    uint32_t n = read_all(&rc, &off);
    assert_true(n < 50);
    assert_int_equal(rc, BR_E_CORRUPT);
    assert_true(off <= at && off > 0);
}

static void test_another_config_is_refused(void **state)
{
    (void)state;
    write_n(0, 3, BR_JOURNAL_NO_SYNC);
    struct br_config cfg;
    config(&cfg);
    cfg.users_max++;
    struct br_journal_writer *w = NULL;
    long long torn = 0;
    assert_int_equal(br_journal_writer_open(&w, path, &cfg, BR_JOURNAL_NO_SYNC, &torn),
                     BR_E_INVALID);
}

static void test_a_bad_header_is_reported(void **state)
{
    (void)state;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("BRJ", 1, 3, f);
    fclose(f);
    struct br_journal_reader *r = NULL;
    struct br_config cfg;
    assert_int_equal(br_journal_reader_open(&r, path, &cfg), BR_E_TRUNCATED);
    /* a writer treats a header cut short as a crash during creation */
    config(&cfg);
    struct br_journal_writer *w = NULL;
    long long torn = -1;
    assert_int_equal(br_journal_writer_open(&w, path, &cfg, BR_JOURNAL_NO_SYNC, &torn), BR_OK);
    assert_int_equal(torn, 0);
    assert_int_equal(br_journal_writer_close(w), BR_OK);
    f = fopen(path, "wb");
    fwrite("NOPE-not-a-journal-at-all-------------------------------------", 1, 60, f);
    fclose(f);
    int rc = br_journal_reader_open(&r, path, &cfg);
    assert_true(rc == BR_E_CORRUPT || rc == BR_E_VERSION);
    assert_int_equal(br_journal_reader_open(&r, "/nonexistent/x.brj", &cfg), BR_E_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_round_trip_across_buffers_and_reopens, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_torn_tail_is_cut_on_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_zero_filled_tail_is_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_length_three_records_before_the_end_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_bit_flip_in_the_last_record_is_refused_not_cut,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_half_written_last_record_over_zeros_is_cut, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_flush_is_retried_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_in_the_middle_is_refused_and_located, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_another_config_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_header_is_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
