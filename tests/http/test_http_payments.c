/*
 * test_http_payments.c -- paying through the built-in test provider, as a
 * buyer and as an attacker, over HTTP against the real binary:
 *
 *   - the confirm route is public (like Stripe's, to a publishable key), so
 *     it wants the intent's client secret: without it, or with a wrong one,
 *     a 4xx and the payment stays unpaid;
 *   - another user who knows a booking id cannot pay it (intent ids are
 *     random, not derived from booking or payment ids);
 *   - two payments' intent ids share no pattern;
 *   - pay, declined, pay again, then both "attempts" confirmed with a good
 *     card: one booking has one payment and one intent, so the booking is
 *     charged once (it was charged twice, the second refunded later).
 *
 * Usage: test_http_payments BINARY [BASE_URL]   (see client.h)
 */
#define _DEFAULT_SOURCE

#include <inttypes.h>
#include <stdlib.h>

#include "check.h"
#include "client.h"

struct fx {
    struct t_server srv;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    t_server_start(&f->srv, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int rc = t_server_stop(&f->srv);
    t_server_cleanup(&f->srv);
    free(f);
    return rc == 0 ? 0 : -1;
}

static struct t_server *srv(void **state)
{
    return &((struct fx *)*state)->srv;
}

/* A payment as POST /api/v1/payments answered it. */
struct pay {
    uint64_t id;
    uint64_t amount_minor;
    char status[32];
    char intent[96];
    char secret[160];
};

/* A buyer with a 1-seat booking in a fresh event (no pass needed). */
static uint64_t booked(struct t_server *s, const char *tag, char *token, size_t cap)
{
    uint64_t ev = t_event(s, json_pack("{s:b}", "requires_pass", 0));
    t_buyer(s, tag, token, cap);
    struct t_resp r;
    t_json(s, "POST", "/api/v1/bookings/reserve", token,
           json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)ev, "zone_id", 1, "quantity", 1),
           NULL, &r);
    EXPECT(r, 201, NULL);
    uint64_t id = J_INT(r, "id");
    t_resp_free(&r);
    return id;
}

static void pay(struct t_server *s, const char *token, uint64_t booking, struct pay *p)
{
    struct t_resp r;
    t_json(s, "POST", "/api/v1/payments", token,
           json_pack("{s:I}", "booking_id", (json_int_t)booking), NULL, &r);
    EXPECT(r, 201, NULL);
    memset(p, 0, sizeof *p);
    p->id = J_INT(r, "payment_id");
    p->amount_minor = J_INT(r, "amount_minor");
    snprintf(p->status, sizeof p->status, "%s", J_STR(r, "status"));
    snprintf(p->intent, sizeof p->intent, "%s", J_STR(r, "provider_payment_id"));
    snprintf(p->secret, sizeof p->secret, "%s", J_STR(r, "client_secret"));
    t_resp_free(&r);
}

/* POST confirm of intent with secret (NULL = no client_secret member) and
 * payment method pm; the answer into r (caller frees). */
static void confirm(struct t_server *s, const char *intent, const char *secret, const char *pm,
                    struct t_resp *r)
{
    char path[192];
    snprintf(path, sizeof path, "/test-provider/v1/payment_intents/%s/confirm", intent);
    json_t *body = json_pack("{s:s}", "payment_method", pm);
    if (secret != NULL) {
        json_object_set_new(body, "client_secret", json_string(secret));
    }
    t_json(s, "POST", path, NULL, body, NULL, r);
}

static void expect_booking(struct t_server *s, const char *token, uint64_t booking,
                           const char *status)
{
    char path[96];
    struct t_resp r;
    snprintf(path, sizeof path, "/api/v1/bookings/%" PRIu64, booking);
    t_request(s, "GET", path, token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), status);
    t_resp_free(&r);
}

/* Any 4xx with a JSON error code. */
static void expect_refused(const struct t_resp *r)
{
    const char *code =
        json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    if (r->status < 400 || r->status > 499 || code == NULL) {
        fprintf(stderr, "want a 4xx with an error code, got %ld %s\n", r->status,
                r->body ? r->body : "");
        fail_msg("confirm was not refused");
    }
}

static void test_confirm_without_or_with_a_wrong_secret_is_refused(void **state)
{
    struct t_server *s = srv(state);
    char token[1024];
    uint64_t b = booked(s, "secret", token, sizeof token);
    struct pay p;
    pay(s, token, b, &p);
    assert_true(strncmp(p.secret, p.intent, strlen(p.intent)) == 0);
    assert_non_null(strstr(p.secret, "_secret_"));

    struct t_resp r;
    confirm(s, p.intent, NULL, "pm_card_visa", &r);
    EXPECT(r, 400, "PARAMETER_MISSING");
    t_resp_free(&r);
    confirm(s, p.intent, "", "pm_card_visa", &r);
    EXPECT(r, 400, "PARAMETER_MISSING");
    t_resp_free(&r);
    char wrong[160];
    snprintf(wrong, sizeof wrong, "%s", p.secret);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == 'a' ? 'b' : 'a';
    confirm(s, p.intent, wrong, "pm_card_visa", &r);
    EXPECT(r, 400, "PAYMENT_INTENT_INVALID_PARAMETER");
    t_resp_free(&r);
    confirm(s, p.intent, p.intent, "pm_card_visa", &r); /* the id is not the secret */
    EXPECT(r, 400, "PAYMENT_INTENT_INVALID_PARAMETER");
    t_resp_free(&r);
    /* The form Stripe's own API takes is held to the same rule. */
    char path[192];
    snprintf(path, sizeof path, "/test-provider/v1/payment_intents/%s/confirm", p.intent);
    const char *form = "payment_method=pm_card_visa";
    const char *hs[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    t_request(s, "POST", path, NULL, hs, form, strlen(form), &r);
    EXPECT(r, 400, "PARAMETER_MISSING");
    t_resp_free(&r);
    expect_booking(s, token, b, "held");

    /* Nothing was paid: the real secret still works, once. */
    confirm(s, p.intent, p.secret, "pm_card_visa", &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "succeeded");
    t_resp_free(&r);
    expect_booking(s, token, b, "confirmed");
}

static void test_another_user_knowing_the_booking_cannot_pay_it(void **state)
{
    struct t_server *s = srv(state);
    char victim[1024], thief[1024];
    uint64_t b = booked(s, "victim", victim, sizeof victim);
    struct pay p;
    pay(s, victim, b, &p);
    t_buyer(s, "thief", thief, sizeof thief);
    struct t_resp r;
    /* The API will not open or show someone else's payment. */
    t_json(s, "POST", "/api/v1/payments", thief, json_pack("{s:I}", "booking_id", (json_int_t)b),
           NULL, &r);
    EXPECT(r, 404, "NOT_FOUND");
    t_resp_free(&r);
    /* Intent ids a thief could derive from the booking id (the payment of
     * a booking is (event << 32 | n), n small), with and without secrets
     * built the same way: all refused. */
    uint64_t event_part = b & ~(uint64_t)0xffffffffu;
    for (uint64_t n = 1; n <= 4; n++) {
        char guess[64], guess_secret[128];
        snprintf(guess, sizeof guess, "pi_br%016" PRIx64, event_part | n);
        snprintf(guess_secret, sizeof guess_secret, "%s_secret_000000000000000000000000", guess);
        confirm(s, guess, NULL, "pm_card_visa", &r);
        expect_refused(&r);
        t_resp_free(&r);
        confirm(s, guess, guess_secret, "pm_card_visa", &r);
        expect_refused(&r);
        t_resp_free(&r);
    }
    /* Knowing the intent id itself (say, leaked in a log) is not enough. */
    confirm(s, p.intent, NULL, "pm_card_visa", &r);
    expect_refused(&r);
    t_resp_free(&r);
    expect_booking(s, victim, b, "held");
}

/* Length of the common prefix of a and b. */
static size_t common_prefix(const char *a, const char *b)
{
    size_t n = 0;
    while (a[n] != '\0' && a[n] == b[n]) {
        n++;
    }
    return n;
}

static void test_intent_ids_and_secrets_share_no_pattern(void **state)
{
    struct t_server *s = srv(state);
    char token[1024];
    struct pay p[3];
    for (int i = 0; i < 3; i++) {
        uint64_t b = booked(s, "ids", token, sizeof token);
        pay(s, token, b, &p[i]);
    }
    for (int i = 0; i < 3; i++) {
        /* "pi_" and at least 24 characters drawn at random */
        assert_true(strncmp(p[i].intent, "pi_", 3) == 0 && strlen(p[i].intent) >= 27);
        char hex[32], dec[32];
        snprintf(hex, sizeof hex, "%" PRIx64, p[i].id);
        snprintf(dec, sizeof dec, "%" PRIu64, p[i].id);
        assert_null(strstr(p[i].intent, hex));
        assert_null(strstr(p[i].intent, dec));
        /* the secret's own part is not derived from the id either */
        const char *own = strstr(p[i].secret, "_secret_") + strlen("_secret_");
        assert_true(strlen(own) >= 24);
        assert_null(strstr(own, p[i].intent + 3));
        for (int j = 0; j < i; j++) {
            /* consecutive payments: not consecutive ids, no shared stem */
            if (common_prefix(p[i].intent, p[j].intent) >= 3 + 8) {
                fprintf(stderr, "%s and %s share a prefix\n", p[i].intent, p[j].intent);
                fail_msg("predictable intent ids");
            }
            assert_true(common_prefix(own, strstr(p[j].secret, "_secret_") + 8) < 8);
        }
    }
}

static void test_pay_decline_pay_again_confirm_both_charges_once(void **state)
{
    struct t_server *s = srv(state);
    char token[1024];
    uint64_t b = booked(s, "twice", token, sizeof token);
    struct pay first, again;
    pay(s, token, b, &first);
    struct t_resp r;
    confirm(s, first.intent, first.secret, "pm_card_chargeDeclined", &r);
    EXPECT(r, 200, NULL);
    assert_string_equal(J_STR(r, "status"), "requires_payment_method");
    t_resp_free(&r);
    expect_booking(s, token, b, "held");

    pay(s, token, b, &again); /* pay again after the decline */

    /* Both "attempts" confirmed with a good card: one charge. */
    int charges = 0;
    uint64_t charged_minor = 0;
    const struct pay *attempts[2] = {&first, &again};
    for (int i = 0; i < 2; i++) {
        confirm(s, attempts[i]->intent, attempts[i]->secret, "pm_card_visa", &r);
        if (r.status == 200 && strcmp(J_STR(r, "status"), "succeeded") == 0) {
            charges++;
            charged_minor += J_INT(r, "amount");
        } else {
            EXPECT(r, 409, "PAYMENT_INTENT_UNEXPECTED_STATE");
        }
        t_resp_free(&r);
    }
    if (charges != 1) {
        fprintf(stderr, "the booking was charged %d times (payments %" PRIu64 " and %" PRIu64 ")\n",
                charges, first.id, again.id);
    }
    assert_int_equal(charges, 1);
    /* Because paying again gave back the same payment and intent, open
     * again (one PaymentIntent per booking, as Stripe has it). */
    assert_int_equal(again.id, first.id);
    assert_string_equal(again.intent, first.intent);
    assert_string_equal(again.secret, first.secret);
    assert_string_equal(again.status, "pending");
    expect_booking(s, token, b, "confirmed");
    /* charges - refunds = the booking's value (no refund is owed) */
    char path[96];
    snprintf(path, sizeof path, "/api/v1/bookings/%" PRIu64, b);
    t_request(s, "GET", path, token, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_int_equal(charged_minor, J_INT(r, "total_minor"));
    assert_int_equal(first.amount_minor, J_INT(r, "total_minor"));
    t_resp_free(&r);
    /* and paying for the confirmed booking is refused */
    t_json(s, "POST", "/api/v1/payments", token, json_pack("{s:I}", "booking_id", (json_int_t)b),
           NULL, &r);
    EXPECT(r, 409, "BOOKING_NOT_HELD");
    t_resp_free(&r);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_confirm_without_or_with_a_wrong_secret_is_refused),
        cmocka_unit_test(test_another_user_knowing_the_booking_cannot_pay_it),
        cmocka_unit_test(test_intent_ids_and_secrets_share_no_pattern),
        cmocka_unit_test(test_pay_decline_pay_again_confirm_both_charges_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
