/*
 * test_http_crash.c -- kill -9 in the middle of a reserve storm, restart on
 * the same data dir, and check: every booking the server acknowledged
 * (201) is still there, with its owner and its state (confirmed ones still
 * confirmed); no seat is sold twice (per zone held + sold <= capacity, and
 * equal to the seats in the buyers' bookings); the journal replays cleanly
 * through `bookingrush replay`. Two rounds, then half a record written over
 * the zeros ahead (a torn tail) is cut at the next start.
 *
 * Damage (journal_file.h): an altered length byte three records before the
 * end refuses the start with its offset, `journal check` reports it,
 * `journal repair --yes` lists the records it drops and no dropped booking
 * id is handed out again; a bit flipped in the last record refuses the
 * start, the same record cut short is cut; a replay that diverges from its
 * recorded outcomes refuses to serve.
 *
 * Needs the process: skipped against a base URL. Against the distributed
 * deployment (BR_TEST_DIST, client.h) the kill hits one of the processes
 * and the restart brings it back; the journal's parts are skipped.
 *
 * Usage: test_http_crash BINARY [BASE_URL]   (see client.h)
 */
#define _DEFAULT_SOURCE

#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "journal_bytes.h"

#define BUYERS 80
#define CAPACITY 6000
#define PARALLEL 32
#define ACKS_MAX 8192

struct ack {
    int buyer;
    uint64_t booking;
    bool confirmed;
};

/* A storm's state: its requests' buyers and keys, the 201s so far. */
struct crash_storm {
    struct t_server *s;
    char (*tokens)[1024];
    uint64_t ev;
    unsigned seq;
    struct ack *acks;
    int *nacks;
};

static void next_reserve(void *ctx, struct t_storm_call *c)
{
    struct crash_storm *cs = ctx;
    c->who = (int)(cs->seq % BUYERS);
    cs->seq++;
    snprintf(c->url, sizeof c->url, "%s/api/v1/bookings/reserve", cs->s->base);
    snprintf(c->key, sizeof c->key, "crash-%d-%u", (int)getpid(), cs->seq);
    snprintf(c->body, sizeof c->body, "{\"event_id\":%" PRIu64 ",\"zone_id\":1,\"quantity\":1}",
             cs->ev);
    c->h = t_post_headers(cs->tokens[c->who], c->key);
}

static void reserve_ended(void *ctx, const struct t_storm_call *c, long status, bool killed)
{
    struct crash_storm *cs = ctx;
    (void)killed;
    if (status == 201 && *cs->nacks < ACKS_MAX) {
        json_t *j = json_loads(c->answer, 0, NULL);
        cs->acks[*cs->nacks].buyer = c->who;
        cs->acks[*cs->nacks].booking = (uint64_t)json_integer_value(json_object_get(j, "id"));
        cs->acks[*cs->nacks].confirmed = false;
        (*cs->nacks)++;
        json_decref(j);
    } else if (status != 0 && status != 409) {
        fprintf(stderr, "crash storm: unexpected %ld %s\n", status, c->answer ? c->answer : "");
        fail();
    }
}

/* Reserves continuously from PARALLEL connections; kills the server after
 * kill_after_ms. Records every 201 in acks. */
static void storm(struct t_server *s, char tokens[][1024], uint64_t ev, int kill_after_ms,
                  struct ack *acks, int *nacks)
{
    struct crash_storm cs = {.s = s,
                             .tokens = tokens,
                             .ev = ev,
                             .seq = (unsigned)*nacks * 7u + 1u,
                             .acks = acks,
                             .nacks = nacks};
    struct t_storm st = {.s = s,
                         .parallel = PARALLEL,
                         .kill_ms = kill_after_ms,
                         .stop_ms = kill_after_ms,
                         .kill_node = -1,
                         .next = next_reserve,
                         .ended = reserve_ended,
                         .ctx = &cs};
    t_storm_run(&st);
}

static void verify(struct t_server *s, char tokens[][1024], uint64_t ev, struct ack *acks,
                   int nacks)
{
    char p[128];
    struct t_resp r;
    for (int i = 0; i < nacks; i++) {
        snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, acks[i].booking);
        t_request(s, "GET", p, tokens[acks[i].buyer], NULL, NULL, 0, &r);
        if (r.status != 200) {
            fprintf(stderr, "acknowledged booking %" PRIu64 " lost\n", acks[i].booking);
        }
        EXPECT(r, 200, NULL);
        const char *st = J_STR(r, "status");
        if (acks[i].confirmed) {
            assert_string_equal(st, "confirmed");
        } else {
            assert_true(strcmp(st, "held") == 0 || strcmp(st, "confirmed") == 0);
        }
        t_resp_free(&r);
    }
    /* No seat twice: the zone's counters against every buyer's bookings. */
    uint64_t seats = 0;
    uint64_t ids[BUYERS * 100];
    int nids = 0;
    for (int b = 0; b < BUYERS; b++) {
        t_request(s, "GET", "/api/v1/bookings", tokens[b], NULL, NULL, 0, &r);
        EXPECT(r, 200, NULL);
        json_t *list = json_object_get(r.json, "bookings");
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *bk = json_array_get(list, i);
            const char *st = json_string_value(json_object_get(bk, "status"));
            if (strcmp(st, "held") == 0 || strcmp(st, "confirmed") == 0) {
                seats += (uint64_t)json_integer_value(json_object_get(bk, "quantity"));
            }
            uint64_t id = (uint64_t)json_integer_value(json_object_get(bk, "id"));
            for (int k = 0; k < nids; k++) {
                assert_true(ids[k] != id);
            }
            if (nids < BUYERS * 100) {
                ids[nids++] = id;
            }
        }
        t_resp_free(&r);
    }
    snprintf(p, sizeof p, "/api/v1/admin/events/%" PRIu64 "/stats", ev);
    t_request(s, "GET", p, s->admin_token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    json_t *z = json_array_get(json_object_get(r.json, "zones"), 0);
    uint64_t held = (uint64_t)json_integer_value(json_object_get(z, "held"));
    uint64_t sold = (uint64_t)json_integer_value(json_object_get(z, "sold"));
    assert_true(held + sold <= CAPACITY);
    assert_int_equal(held + sold, seats);
    assert_true(seats >= (uint64_t)nacks);
    t_resp_free(&r);
}

/* ---- the journal file, byte by byte (format: core/journal.h) ---- */

static unsigned char *slurp(const char *path, long long *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return b;
}

/* Offsets of the records (up to max into offs); returns the offset after
 * the last one (where the zeros ahead begin). */
static long long journal_walk(const char *path, long long *offs, int max)
{
    long long len = 0;
    unsigned char *b = slurp(path, &len);
    long long at = t_le32(b + 8); /* the header's length */
    int n = 0;
    while (at + 8 <= len && t_le32(b + at) != 0) {
        if (n < max) {
            offs[n] = at;
        }
        n++;
        at += 8 + (long long)t_le32(b + at);
    }
    free(b);
    for (int i = n; i < max; i++) {
        offs[i] = -1;
    }
    return at;
}

static int journal_count(const char *path)
{
    long long offs[1];
    long long len = 0;
    unsigned char *b = slurp(path, &len);
    long long at = t_le32(b + 8);
    int n = 0;
    while (at + 8 <= len && t_le32(b + at) != 0) {
        n++;
        at += 8 + (long long)t_le32(b + at);
    }
    free(b);
    (void)offs;
    return n;
}

static void journal_write(const char *path, long long at, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void journal_xor(const char *path, long long at, unsigned char mask)
{
    long long len = 0;
    unsigned char *b = slurp(path, &len);
    assert_true(at < len);
    unsigned char c = (unsigned char)(b[at] ^ mask);
    free(b);
    journal_write(path, at, &c, 1);
}

/* Runs a shell command with stdout+stderr into DIR/out.txt; returns the
 * exit code and the output (malloc'd) in *out. */
static int run(struct t_server *s, char **out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int run(struct t_server *s, char **out, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof cmd - 64);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " > '%s/out.txt' 2>&1", s->dir);
    int rc = system(cmd);
    char path[400];
    snprintf(path, sizeof path, "%s/out.txt", s->dir);
    long long len = 0;
    unsigned char *b = slurp(path, &len);
    b[len] = '\0';
    *out = (char *)b;
    fprintf(stderr, "$ %.200s\n%s", cmd, *out);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Starts the server on s's data dir expecting it to refuse; returns its output. */
static char *start_refused(struct t_server *s)
{
    char *out = NULL;
    int code = run(s, &out,
                   "timeout 15 '%s' serve --bind 127.0.0.1 --port 0 --data-dir '%s/data' "
                   "--jwt-secret refused-start-secret --log-level warn",
                   t_binary(), s->dir);
    assert_true(code != 0 && code != 124); /* refused, not serving until the timeout */
    return out;
}

static bool log_has(struct t_server *s, const char *what)
{
    char path[400];
    snprintf(path, sizeof path, "%s/server.log", s->dir);
    long long len = 0;
    unsigned char *b = slurp(path, &len);
    b[len] = '\0';
    bool has = strstr((char *)b, what) != NULL;
    free(b);
    return has;
}

static void test_kill_during_load(void **state)
{
    (void)state;
    if (t_external()) {
        skip();
    }
    struct t_server s;
    t_server_start(&s, (const char *const[]){"--rate-limit-user", "0", "--rate-limit-ip", "0",
                                             NULL});
    uint64_t ev = t_event(&s, json_pack("{s:b, s:i, s:[{s:s, s:i, s:i, s:s}]}", "requires_pass",
                                        0, "per_user_limit", 64, "zones", "name", "Floor",
                                        "capacity", CAPACITY, "price_minor", 1000, "currency",
                                        "EUR"));
    static char tokens[BUYERS][1024];
    for (int i = 0; i < BUYERS; i++) {
        t_buyer(&s, "crash", tokens[i], sizeof tokens[i]);
    }
    struct ack *acks = calloc(ACKS_MAX, sizeof *acks);
    int nacks = 0;
    for (int round = 0; round < 2; round++) {
        int before = nacks;
        storm(&s, tokens, ev, 250 + 250 * round, acks, &nacks);
        fprintf(stderr, "round %d: %d acknowledged before the kill\n", round, nacks - before);
        t_server_restart(&s);
        verify(&s, tokens, ev, acks, nacks);
        /* Pay for a few, so confirmed bookings cross the next crash too. */
        for (int i = before; i < nacks && i < before + 3; i++) {
            t_pay(&s, tokens[acks[i].buyer], acks[i].booking);
            acks[i].confirmed = true;
        }
    }
    assert_true(nacks > 0);
    verify(&s, tokens, ev, acks, nacks);
    assert_int_equal(t_server_stop(&s), 0);
    if (t_distributed()) {
        /* No journal of its own: the state is in Redis and PostgreSQL
         * (tests/dist replays a trace exported from the event's log). */
        free(acks);
        t_server_cleanup(&s);
        return;
    }

    /* A torn tail, as a crash in the middle of a write leaves one: half of
     * a record over the zeros ahead of the last one. The start-up cuts it
     * and loses nothing that was acknowledged. */
    char journal[400];
    snprintf(journal, sizeof journal, "%s/data/journal", s.dir);
    long long offs[2];
    long long end = journal_walk(journal, offs, 0);
    static const unsigned char torn[] = {0x40, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x01,
                                         0x07, 0x00, 0x00, 0x00, 0x11, 0x22};
    journal_write(journal, end, torn, sizeof torn);
    t_server_restart(&s);
    verify(&s, tokens, ev, acks, nacks);
    assert_int_equal(t_server_stop(&s), 0);
    assert_true(log_has(&s, "cutting a torn tail"));

    /* The journal replays through the core with identical outcomes. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "'%s' replay '%s/data/journal' > '%s/replay.txt' 2>&1", t_binary(),
             s.dir, s.dir);
    int rc = system(cmd);
    int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (code != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/replay.txt' >&2", s.dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "(no replay output)\n");
        }
    }
    assert_int_equal(code, 0);
    free(acks);
    t_server_cleanup(&s);
}


/* ---- damage in the journal: refused, shown, repaired, ids kept ---- */

/* A server with an open event (no pass) and one buyer; the event id. */
static uint64_t small_sale(struct t_server *s, char *token, size_t cap)
{
    t_server_start(s, NULL);
    uint64_t ev = t_event(s, json_pack("{s:b, s:i, s:[{s:s, s:i, s:i, s:s}]}", "requires_pass", 0,
                                       "per_user_limit", 64, "zones", "name", "Floor", "capacity",
                                       1000, "price_minor", 1000, "currency", "EUR"));
    t_buyer(s, "damage", token, cap);
    return ev;
}

static uint64_t reserve_one(struct t_server *s, const char *token, uint64_t ev)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/bookings/reserve", token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 1),
           NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t id = (uint64_t)json_integer_value(json_object_get(r.json, "id"));
    t_resp_free(&r);
    return id;
}

static long get_booking(struct t_server *s, const char *token, uint64_t id)
{
    char p[96];
    snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64, id);
    struct t_resp r;
    t_request(s, "GET", p, token, NULL, NULL, 0, &r);
    long st = r.status;
    t_resp_free(&r);
    return st;
}

/* One altered length byte three records before the end: the start refuses
 * (naming the offset), check reports it, repair lists what it drops, and
 * after the repair no dropped booking id is handed out again. */
static void test_damage_before_the_end_refuses_and_repair_never_reuses_ids(void **state)
{
    (void)state;
    if (t_external() || t_distributed()) {
        skip(); /* a journal file: the embedded backend's own */
    }
    struct t_server s;
    static char token[1024];
    uint64_t ev = small_sale(&s, token, sizeof token);
    uint64_t ids[12];
    for (int i = 0; i < 12; i++) {
        ids[i] = reserve_one(&s, token, ev);
    }
    assert_int_equal(t_server_stop(&s), 0);
    char journal[400];
    snprintf(journal, sizeof journal, "%s/data/journal", s.dir);
    int n = journal_count(journal);
    long long offs[4096];
    assert_true(n >= 12 && n <= 4096);
    journal_walk(journal, offs, n);
    long long bad = offs[n - 3];
    journal_xor(journal, bad, 0x04); /* its length byte */

    char want[64];
    snprintf(want, sizeof want, "\"offset\":%lld", bad);
    char *out = start_refused(&s);
    assert_non_null(strstr(out, want));
    free(out);
    assert_int_equal(run(&s, &out, "'%s' journal check '%s/data'", t_binary(), s.dir), 1);
    snprintf(want, sizeof want, "damage at offset %lld", bad);
    assert_non_null(strstr(out, want));
    free(out);
    assert_int_equal(run(&s, &out, "'%s' journal repair '%s/data'", t_binary(), s.dir), 1);
    assert_non_null(strstr(out, "--yes"));
    free(out);
    assert_int_equal(run(&s, &out, "'%s' journal repair '%s/data' --yes", t_binary(), s.dir), 0);
    /* The whole records after the damage are listed with their ids. The
     * ticker's admit at the opening may stand among the last three records,
     * so the bookings kept are read from the report (9 or 10 of the 12). */
    int records = 0;
    int first_lost = -1; /* bookings before the damage: ids[first_lost..] are lost */
    const char *head = strstr(out, "records: ");
    assert_non_null(head);
    assert_int_equal(sscanf(head, "records: %d (bookings %d)", &records, &first_lost), 2);
    assert_true(first_lost >= 9 && first_lost <= 10);
    for (int i = 0; i < 12; i++) {
        char idtxt[48];
        snprintf(idtxt, sizeof idtxt, "-> OK id %" PRIu64 "\n", ids[i]);
        if (i < first_lost) {
            assert_null(strstr(out, idtxt)); /* kept bookings are not listed as dropped */
        }
    }
    assert_non_null(strstr(out, "reserve user"));
    {
        char idtxt[48];
        snprintf(idtxt, sizeof idtxt, "-> OK id %" PRIu64 "\n", ids[11]);
        assert_non_null(strstr(out, idtxt)); /* the last reserve is always after the damage */
    }
    assert_non_null(strstr(out, "backup: "));
    free(out);
    assert_int_equal(run(&s, &out, "'%s' journal check '%s/data'", t_binary(), s.dir), 0);
    free(out);

    t_server_restart(&s);
    for (int i = 0; i < first_lost; i++) {
        assert_int_equal(get_booking(&s, token, ids[i]), 200);
    }
    for (int i = first_lost; i < 12; i++) {
        assert_int_equal(get_booking(&s, token, ids[i]), 404); /* dropped, and said so */
    }
    uint64_t next = reserve_one(&s, token, ev);
    fprintf(stderr, "after the repair: booking %" PRIu64 " (dropped %" PRIu64 "..%" PRIu64 ")\n",
            next, ids[9], ids[11]);
    for (int i = 9; i < 12; i++) {
        assert_true(next != ids[i]);
    }
    assert_true(next > ids[11]);
    /* and again after one more restart (the skip is replayed too) */
    assert_int_equal(t_server_stop(&s), 0);
    t_server_restart(&s);
    assert_int_equal(get_booking(&s, token, next), 200);
    assert_true(reserve_one(&s, token, ev) > next);
    assert_int_equal(t_server_stop(&s), 0);
    /* `bookingrush replay` applies the skip as the start does: the bookings
     * made after the repair reproduce their recorded ids (exit 0, no
     * divergence). A malformed skip file is refused, not read in part. */
    int replay_rc = run(&s, &out, "'%s' replay '%s/data/journal'", t_binary(), s.dir);
    if (replay_rc != 0) {
        fprintf(stderr, "%s", out);
    }
    assert_int_equal(replay_rc, 0);
    free(out);
    char skip_path[400];
    snprintf(skip_path, sizeof skip_path, "%s/data/journal.skip", s.dir);
    FILE *sf = fopen(skip_path, "a");
    assert_non_null(sf);
    fputs("skip x 1\n", sf);
    fclose(sf);
    assert_int_equal(run(&s, &out, "'%s' replay '%s/data/journal'", t_binary(), s.dir), 2);
    free(out);
    t_server_cleanup(&s);
}

/* A bit flipped inside the last record (acknowledged, synced) is damage,
 * not a torn tail: the start refuses. The same record cut short, as a crash
 * in the middle of its write leaves it, is cut at the start and logged. */
static void test_a_bit_flip_in_the_last_record_refuses_the_start(void **state)
{
    (void)state;
    if (t_external() || t_distributed()) {
        skip(); /* a journal file: the embedded backend's own */
    }
    struct t_server s;
    static char token[1024];
    uint64_t ev = small_sale(&s, token, sizeof token);
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        ids[i] = reserve_one(&s, token, ev);
    }
    assert_int_equal(t_server_stop(&s), 0);
    char journal[400];
    snprintf(journal, sizeof journal, "%s/data/journal", s.dir);
    int n = journal_count(journal);
    long long offs[4096];
    assert_true(n >= 5 && n <= 4096);
    journal_walk(journal, offs, n);
    long long last = offs[n - 1];
    journal_xor(journal, last + 20, 0x10);
    char want[64];
    snprintf(want, sizeof want, "\"offset\":%lld", last);
    char *out = start_refused(&s);
    assert_non_null(strstr(out, want));
    free(out);
    assert_int_equal(run(&s, &out, "'%s' journal check '%s/data'", t_binary(), s.dir), 1);
    free(out);

    /* A genuine torn tail instead: the file ends inside the last record. */
    journal_xor(journal, last + 20, 0x10);
    assert_int_equal(truncate(journal, (off_t)(last + 30)), 0);
    t_server_restart(&s);
    assert_true(log_has(&s, "cutting a torn tail"));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(get_booking(&s, token, ids[i]), 200);
    }
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

/* A record whose replayed outcome differs from the one recorded (its
 * effects hash altered, its checksum fixed): the start refuses to serve. */
static void test_a_diverging_replay_refuses_the_start(void **state)
{
    (void)state;
    if (t_external() || t_distributed()) {
        skip(); /* a journal file: the embedded backend's own */
    }
    struct t_server s;
    static char token[1024];
    uint64_t ev = small_sale(&s, token, sizeof token);
    for (int i = 0; i < 3; i++) {
        reserve_one(&s, token, ev);
    }
    assert_int_equal(t_server_stop(&s), 0);
    char journal[400];
    snprintf(journal, sizeof journal, "%s/data/journal", s.dir);
    int n = journal_count(journal);
    long long offs[4096];
    assert_true(n >= 3 && n <= 4096);
    journal_walk(journal, offs, n);
    long long len = 0;
    unsigned char *b = slurp(journal, &len);
    long long at = offs[n - 1];
    uint32_t plen = t_le32(b + at);
    unsigned char *payload = b + at + 8;
    payload[plen - 8] ^= 0x01; /* the outcome's effects hash */
    uint32_t crc = t_crc32c(payload, plen);
    unsigned char head[4] = {(unsigned char)crc, (unsigned char)(crc >> 8),
                             (unsigned char)(crc >> 16), (unsigned char)(crc >> 24)};
    journal_write(journal, at + 4, head, 4);
    journal_write(journal, at + 8 + plen - 8, &payload[plen - 8], 1);
    free(b);
    char *out = start_refused(&s);
    assert_non_null(strstr(out, "diverged"));
    free(out);
    t_server_cleanup(&s);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_during_load),
        cmocka_unit_test(test_damage_before_the_end_refuses_and_repair_never_reuses_ids),
        cmocka_unit_test(test_a_bit_flip_in_the_last_record_refuses_the_start),
        cmocka_unit_test(test_a_diverging_replay_refuses_the_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
