/*
 * test_http_race.c -- 500 buyers, each holding a genuine queue pass, reserve
 * the last seat at the same moment over 500 connections: exactly one wins,
 * everyone else is told SOLD_OUT, and the same Idempotency-Key keeps giving
 * each of them the same answer afterwards -- even once the seat is free
 * again.
 *
 * Usage: test_http_race BINARY [BASE_URL]   (see client.h)
 */
#define _DEFAULT_SOURCE

#include <curl/curl.h>
#include <inttypes.h>
#include <stdlib.h>

#include "check.h"
#include "client.h"

#define BUYERS 500

struct buyer {
    char token[1024];
    char pass[256];
    char auth[1100];
    char pass_header[300];
    char key_header[64];
    struct curl_slist *headers;
    char *body;
    char *answer;
    size_t answer_len;
    long status;
};

static size_t collect(char *ptr, size_t size, size_t n, void *ud)
{
    struct buyer *b = ud;
    size_t add = size * n;
    if (!t_append(&b->answer, &b->answer_len, ptr, add)) {
        return 0;
    }
    return add;
}

/* Every buyer's reserve at once; statuses and bodies into the buyers. */
static void reserve_all(struct t_server *s, struct buyer *bs, int n)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    CURL **easy = calloc((size_t)n, sizeof *easy);
    char url[300];
    snprintf(url, sizeof url, "%s/api/v1/bookings/reserve", s->base);
    for (int i = 0; i < n; i++) {
        struct buyer *b = &bs[i];
        free(b->answer);
        b->answer = NULL;
        b->answer_len = 0;
        b->status = 0;
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, b->headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
        curl_easy_setopt(c, CURLOPT_PRIVATE, b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(m, c);
        easy[i] = c;
    }
    t_multi_run(m);
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        struct buyer *b = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&b);
        b->status = t_multi_status(msg, -1);
    }
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    free(easy);
    curl_multi_cleanup(m);
}

static void test_last_seat(void **state)
{
    (void)state;
    struct t_server s;
    t_server_start(&s, (const char *const[]){"--rate-limit-user", "0", "--rate-limit-ip", "0",
                                             NULL});
    uint64_t ev = t_event(&s, json_pack("{s:i, s:{s:i, s:i, s:i}, s:[{s:s, s:i, s:i, s:s}]}",
                                        "per_user_limit", 1, "queue", "max_active", BUYERS,
                                        "admit_per_tick", BUYERS, "pass_ttl_s", 600, "zones",
                                        "name", "Last seat", "capacity", 1, "price_minor", 9900,
                                        "currency", "EUR"));
    struct buyer *bs = calloc(BUYERS, sizeof *bs);
    for (int i = 0; i < BUYERS; i++) {
        t_buyer(&s, "race", bs[i].token, sizeof bs[i].token);
    }
    for (int i = 0; i < BUYERS; i++) {
        struct t_resp r;
        t_json(&s, "POST", "/api/v1/queue/join", bs[i].token,
               json_pack("{s:I}", "event_id", (json_int_t)ev), NULL, &r);
        EXPECT(r, 200, NULL);
        t_resp_free(&r);
    }
    for (int i = 0; i < BUYERS; i++) {
        assert_true(t_wait_pass(&s, bs[i].token, ev, bs[i].pass, sizeof bs[i].pass, 20000));
        struct buyer *b = &bs[i];
        snprintf(b->auth, sizeof b->auth, "Authorization: Bearer %s", b->token);
        snprintf(b->pass_header, sizeof b->pass_header, "X-Queue-Pass: %s", b->pass);
        snprintf(b->key_header, sizeof b->key_header, "Idempotency-Key: race-%d", i);
        b->headers = curl_slist_append(NULL, "Content-Type: application/json");
        b->headers = curl_slist_append(b->headers, b->auth);
        b->headers = curl_slist_append(b->headers, b->pass_header);
        b->headers = curl_slist_append(b->headers, b->key_header);
        b->headers = curl_slist_append(b->headers, "Expect:");
        char body[96];
        snprintf(body, sizeof body, "{\"event_id\":%" PRIu64 ",\"zone_id\":1,\"quantity\":1}", ev);
        b->body = strdup(body);
    }

    reserve_all(&s, bs, BUYERS);
    int won = 0;
    int sold_out = 0;
    int winner = -1;
    for (int i = 0; i < BUYERS; i++) {
        if (bs[i].status == 201) {
            won++;
            winner = i;
        } else if (bs[i].status == 409 && strstr(bs[i].answer, "\"SOLD_OUT\"") != NULL) {
            sold_out++;
        } else {
            fprintf(stderr, "unexpected answer to buyer %d: %ld %s\n", i, bs[i].status, bs[i].answer);
        }
    }
    if (won != 1 || sold_out != BUYERS - 1) {
        fprintf(stderr, "want 1 seat won and %d sold out: %d won, %d sold out\n", BUYERS - 1, won,
                sold_out);
        t_server_log_tail(&s, 20);
    }
    assert_int_equal(won, 1);
    assert_int_equal(sold_out, BUYERS - 1);
    json_t *win = json_loads(bs[winner].answer, 0, NULL);
    uint64_t booking = (uint64_t)json_integer_value(json_object_get(win, "id"));
    json_decref(win);

    char p[128];
    struct t_resp r;
    snprintf(p, sizeof p, "/api/v1/admin/events/%" PRIu64 "/stats", ev);
    t_request(&s, "GET", p, s.admin_token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    json_t *z = json_array_get(json_object_get(r.json, "zones"), 0);
    assert_int_equal(json_integer_value(json_object_get(z, "held")), 1);
    assert_int_equal(json_integer_value(json_object_get(z, "available")), 0);
    t_resp_free(&r);

    /* The winner lets the seat go; the losers retry with their keys and
     * get their first answer again (same key, same answer), not the seat. */
    snprintf(p, sizeof p, "/api/v1/bookings/%" PRIu64 "/cancel", booking);
    t_request(&s, "POST", p, bs[winner].token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
    reserve_all(&s, bs, BUYERS);
    for (int i = 0; i < BUYERS; i++) {
        if (i == winner) {
            assert_int_equal(bs[i].status, 201);
            json_t *again = json_loads(bs[i].answer, 0, NULL);
            assert_int_equal(json_integer_value(json_object_get(again, "id")), booking);
            json_decref(again);
        } else {
            assert_int_equal(bs[i].status, 409);
            assert_non_null(strstr(bs[i].answer, "\"SOLD_OUT\""));
        }
    }
    for (int i = 0; i < BUYERS; i++) {
        curl_slist_free_all(bs[i].headers);
        free(bs[i].body);
        free(bs[i].answer);
    }
    free(bs);
    assert_int_equal(t_server_stop(&s), 0);
    t_server_cleanup(&s);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_last_seat)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
