/*
 * test_http_wr_sse.c -- issue 13's waiting room as an open position stream
 * sees it (ctest http_wr_sse; 70-dist-http runs it against two distributed
 * processes too):
 *   - the last seat sold: every waiting stream gets "event: sold_out" within
 *     a tick or so of the sale (the admitter's next tick announces it) and
 *     ends;
 *   - an operator's pause and close are announced ("event: queue" with the
 *     gate and mode) on the streams of those waiting;
 *   - an open stream is a sign of life: with presence_ttl_s 2 and streams
 *     reported every 200 ms (BR_TEST_PRESENCE_REPORT_MS), a user who only
 *     keeps a stream open gets the pass while the user ahead of them, who
 *     joined and then showed no sign of life, lapses.
 * Plants (scripts/test.d/26-wr-sse-plant.sh): BR_PLANT_HUB_NO_SOLD_OUT (the
 * hub never writes sold_out) and BR_PLANT_HUB_NO_PRESENCE (streams are not
 * reported) must each fail their test.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "client.h"

static struct t_server g_srv;

/* An event of one zone of `capacity` seats, requires_pass, with the
 * waiting room's settings in queue (consumed; may be NULL). */
static uint64_t event_of(struct t_server *s, unsigned capacity, unsigned max_active, json_t *queue)
{
    json_t *q = json_pack("{s:i, s:i, s:i}", "max_active", (int)max_active, "admit_per_tick", 10,
                          "pass_ttl_s", 120);
    if (queue != NULL) {
        json_object_update(q, queue);
        json_decref(queue);
    }
    json_t *spec = json_pack("{s:s, s:b, s:i, s:o, s:[{s:s, s:i, s:i, s:s}]}", "name", "Stream",
                             "requires_pass", 1, "per_user_limit", 4, "queue", q, "zones", "name",
                             "GA", "capacity", (int)capacity, "price_minor", 100, "currency",
                             "EUR");
    return t_event(s, spec);
}

static void set_mode(struct t_server *s, uint64_t ev, const char *mode)
{
    char p[96];
    struct t_resp r;
    t_json(s, "POST", t_path_of(p, sizeof p, "/api/v1/admin/events/%llu/queue", ev), s->admin_token,
           json_pack("{s:s}", "mode", mode), NULL, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
}

static void join(struct t_server *s, const char *token, uint64_t ev)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/queue/join", token, json_pack("{s:I}", "event_id", (json_int_t)ev),
           NULL, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
}

/* ---- a stream read on its own thread ---- */

struct reader {
    struct t_server srv; /* a copy: t_sse advances its own round-robin */
    char path[128];
    char token[1024];
    const char *until;
    int timeout_ms;
    char *text;
    int64_t done_ms;
    pthread_t th;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    rd->text = t_sse(&rd->srv, rd->path, rd->token, rd->until, rd->timeout_ms);
    rd->done_ms = t_mono_ms();
    return NULL;
}

static void reader_start(struct reader *rd, struct t_server *s, uint64_t ev, const char *token,
                         const char *until, int timeout_ms)
{
    memset(rd, 0, sizeof *rd);
    rd->srv = *s;
    t_path_of(rd->path, sizeof rd->path, "/api/v1/queue/position/%llu/stream", ev);
    snprintf(rd->token, sizeof rd->token, "%s", token);
    rd->until = until;
    rd->timeout_ms = timeout_ms;
    assert_int_equal(pthread_create(&rd->th, NULL, reader_main, rd), 0);
}

static void reader_join(struct reader *rd)
{
    pthread_join(rd->th, NULL);
}

/* The data line of the first `event: name` frame in text, or NULL. */
static const char *frame_data(const char *text, const char *name)
{
    char marker[64];
    snprintf(marker, sizeof marker, "event: %s\ndata: ", name);
    const char *at = strstr(text, marker);
    return at != NULL ? at + strlen(marker) : NULL;
}

/* ---- tests ---- */

static void test_waiting_streams_see_sold_out_within_a_tick(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    /* Two seats, one pass at a time: the buyer holds both, the others wait
     * behind an inventory gate (seats_held) until the sale is sold out. */
    uint64_t ev = event_of(s, 2, 1, json_pack("{s:b}", "inventory_aware", 1));
    char buyer[1024];
    t_buyer(s, "so-buyer", buyer, sizeof buyer);
    char pass[512];
    assert_true(t_wait_pass(s, buyer, ev, pass, sizeof pass, 5000));
    char w1[1024], w2[1024];
    t_buyer(s, "so-w1", w1, sizeof w1);
    t_buyer(s, "so-w2", w2, sizeof w2);
    join(s, w1, ev);
    join(s, w2, ev);
    struct t_resp r;
    char ps[600];
    const char *hs[] = {ps, "Idempotency-Key: sold-out-1", NULL};
    snprintf(ps, sizeof ps, "X-Queue-Pass: %s", pass);
    t_json(s, "POST", "/api/v1/bookings/reserve", buyer,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 2),
           hs, &r);
    EXPECT(r, 201, NULL);
    uint64_t booking = J_INT(r, "id");
    t_resp_free(&r);
    struct reader rd[2];
    reader_start(&rd[0], s, ev, w1, "sold_out", 15000);
    reader_start(&rd[1], s, ev, w2, "sold_out", 15000);
    t_sleep_ms(500); /* both streams open, showing their place */
    t_pay(s, buyer, booking);
    int64_t sold_ms = t_mono_ms(); /* the last seat is sold (confirm answered after the saga) */
    for (int i = 0; i < 2; i++) {
        reader_join(&rd[i]);
        const char *so = frame_data(rd[i].text, "sold_out");
        if (so == NULL) {
            fprintf(stderr, "stream %d without sold_out:\n%s\n", i, rd[i].text);
        }
        assert_non_null(so);
        assert_non_null(frame_data(rd[i].text, "position")); /* its place came first */
        char want[64];
        snprintf(want, sizeof want, "{\"event_id\":%llu}", (unsigned long long)ev);
        assert_memory_equal(so, want, strlen(want));
        /* The admitter runs every 20 ms (--tick-ms 20): the announcement
         * follows the sale by a tick; 1.5 s leaves room for a loaded host. */
        int64_t late = rd[i].done_ms - sold_ms;
        fprintf(stderr, "stream %d: sold_out %lld ms after the sale\n", i, (long long)late);
        assert_true(late <= 1500);
        free(rd[i].text);
    }
    /* A stream opened now is told at once, and ends. */
    char *text = t_sse(s, t_path_of(ps, sizeof ps, "/api/v1/queue/position/%llu/stream", ev), w1,
                       "sold_out", 5000);
    assert_non_null(frame_data(text, "sold_out"));
    free(text);
}

static void test_pause_and_close_are_announced_to_waiting_streams(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, 10, 10, NULL);
    set_mode(s, ev, "paused"); /* so the user stays waiting */
    char tok[1024];
    t_buyer(s, "announce", tok, sizeof tok);
    join(s, tok, ev);
    struct reader rd;
    reader_start(&rd, s, ev, tok, "queue", 10000);
    t_sleep_ms(500);
    set_mode(s, ev, "closed");
    reader_join(&rd);
    const char *q = frame_data(rd.text, "queue");
    if (q == NULL) {
        fprintf(stderr, "no queue event:\n%s\n", rd.text);
    }
    assert_non_null(q);
    char want[96];
    snprintf(want, sizeof want, "{\"event_id\":%llu,\"gate\":\"closed\",\"mode\":\"closed\"}",
             (unsigned long long)ev);
    assert_memory_equal(q, want, strlen(want));
    free(rd.text);
    /* Closed keeps the place (and the stream); paused again is announced. */
    reader_start(&rd, s, ev, tok, "queue", 10000);
    t_sleep_ms(500);
    set_mode(s, ev, "paused");
    reader_join(&rd);
    q = frame_data(rd.text, "queue");
    assert_non_null(q);
    snprintf(want, sizeof want, "{\"event_id\":%llu,\"gate\":\"paused\",\"mode\":\"paused\"}",
             (unsigned long long)ev);
    assert_memory_equal(q, want, strlen(want));
    assert_null(frame_data(rd.text, "sold_out"));
    free(rd.text);
}

static void test_an_open_stream_counts_as_presence(void **state)
{
    (void)state;
    struct t_server *s = &g_srv;
    uint64_t ev = event_of(s, 10, 1, json_pack("{s:i}", "presence_ttl_s", 2));
    set_mode(s, ev, "paused");
    char gone[1024], here[1024];
    t_buyer(s, "gone", gone, sizeof gone);
    t_buyer(s, "here", here, sizeof here);
    join(s, gone, ev); /* first in line, then never seen again */
    join(s, here, ev);
    struct reader rd;
    reader_start(&rd, s, ev, here, "pass", 15000);
    t_sleep_ms(4000); /* > presence_ttl_s: only the stream says "here" is still there */
    set_mode(s, ev, "open");
    reader_join(&rd);
    const char *p = frame_data(rd.text, "pass");
    if (p == NULL) {
        fprintf(stderr, "no pass on the open stream:\n%s\n", rd.text);
    }
    assert_non_null(p);
    free(rd.text);
    struct t_resp r;
    char path[96];
    t_request(s, "GET", t_path_of(path, sizeof path, "/api/v1/queue/position/%llu", ev), gone, NULL,
              NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "lapsed");
    t_resp_free(&r);
}

static int setup(void **state)
{
    (void)state;
    setenv("BR_TEST_PRESENCE_REPORT_MS", "200", 1); /* the server inherits it */
    t_server_start(&g_srv, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    t_server_stop(&g_srv);
    t_server_cleanup(&g_srv);
    return 0;
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waiting_streams_see_sold_out_within_a_tick),
        cmocka_unit_test(test_pause_and_close_are_announced_to_waiting_streams),
        cmocka_unit_test(test_an_open_stream_counts_as_presence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
