/*
 * fuzz_http_body.c -- fuzz target: the HTTP API's request body parsers
 * (server/parse.h, br_parse_body): register, login, event create, role,
 * queue join (with its proof of work) and leave, reserve, payments, the test
 * provider's confirm as JSON and as a form, refresh, and issue 13's queue
 * mode change and challenge -- the very functions server/routes.c calls.
 *
 * Input: a mode byte, then the body (any bytes, NULs included), handed over
 * in a buffer of exactly its size so a read past the end is caught.
 * Mode: low nibble % BR_BODY_COUNT picks the parser (enum br_body_kind:
 * 0 register, 1 login, 2 event create, 3 role, 4 queue join, 5 queue leave,
 * 6 reserve, 7 payment, 8 confirm JSON, 9 confirm form, 10 refresh,
 * 11 queue mode set, 12 challenge); high nibble % BR_BODY_COUNT a second
 * parser for the same bytes.
 *
 * Asserted beyond "no crash, no UB":
 *   - the result is one the routes expect (BR_E_UNAUTHORIZED from login
 *     only, never BR_E_CORRUPT from the form), and a refusal leaves a
 *     non-empty reason NUL-terminated inside BR_WHY_MAX;
 *   - the JSON stage is shared: two JSON parsers agree on BR_E_CORRUPT, and
 *     nesting past BR_JSON_DEPTH_MAX is always BR_E_CORRUPT;
 *   - an accepted body's fields are within their documented ranges; an
 *     accepted event passes the core's br_catalog_spec_validate (with
 *     queue_capacity, the one range left to the core, clamped);
 *   - round trip: the parsed values encoded again (the event through
 *     br_render_event, the API's own answer) parse back to the same struct,
 *     at another now_ms.
 */
#define _POSIX_C_SOURCE 200809L

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/catalog.h"
#include "core/err.h"
#include "core/panic.h"
#include "core/queue.h"
#include "server/parse.h"
#include "server/render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 8192u
#define NOW_MS 1700000000000LL        /* the default sale_opens_at */
#define TIME_MS_END 253402300800000LL /* 10000-01-01: br_time_parse's end */

static int parse(enum br_body_kind kind, const char *buf, size_t len, int64_t now_ms,
                 struct br_body *out)
{
    char why[BR_WHY_MAX];
    memset(why, 0x55, sizeof why); /* no NUL: a reason must bring its own */
    int rc = br_parse_body(kind, buf, len, now_ms, out, why);
    BR_ASSERT(out->kind == kind);
    BR_ASSERT(rc == BR_OK || rc == BR_E_INVALID || rc == BR_E_CORRUPT ||
              (rc == BR_E_UNAUTHORIZED && kind == BR_BODY_LOGIN));
    BR_ASSERT(rc != BR_E_CORRUPT || kind != BR_BODY_CONFIRM_FORM);
    if (rc != BR_OK) {
        size_t n = strnlen(why, sizeof why);
        BR_ASSERT(n > 0 && n < sizeof why);
    }
    return rc;
}

/* A NUL-terminated string of min..cap-1 bytes. */
static void check_text(const char *s, size_t cap, size_t min)
{
    size_t n = strnlen(s, cap);
    BR_ASSERT(n < cap && n >= min);
}

static void check_email(const char *e)
{
    check_text(e, BR_EMAIL_MAX, BR_EMAIL_MIN);
    const char *at = strchr(e, '@');
    BR_ASSERT(at != NULL && at != e && at[1] != '\0' && strchr(at + 1, '@') == NULL);
    for (const char *p = e; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        BR_ASSERT(c > 0x20 && c != 0x7f && !(c >= 'A' && c <= 'Z'));
    }
}

static void check_spec(const struct br_event_spec *s)
{
    struct br_event_spec c = *s;
    if (c.queue_capacity > (1u << 30)) {
        c.queue_capacity = 1u << 30;
    }
    BR_ASSERT(br_catalog_spec_validate(&c) == BR_OK);
    BR_ASSERT(s->sale_opens_at_ms >= 0 && s->sale_opens_at_ms < TIME_MS_END);
    BR_ASSERT(s->starts_at_ms >= 0 && s->starts_at_ms < TIME_MS_END);
    for (uint32_t z = 0; z < s->zone_count; z++) {
        check_text(s->zones[z].name, sizeof s->zones[z].name, 1);
    }
}

/* A proof of work: both or neither, each within its buffer. */
static void check_pow(const char *challenge, const char *nonce)
{
    check_text(challenge, BR_POW_CHALLENGE_MAX, 0);
    check_text(nonce, BR_POW_NONCE_MAX, 0);
    BR_ASSERT((challenge[0] == '\0') == (nonce[0] == '\0'));
}

/* Adds the proof of work to a body being encoded, when there is one. */
static void encode_pow(json_t *j, const char *challenge, const char *nonce)
{
    if (j != NULL && challenge[0] != '\0') {
        json_object_set_new(j, "pow_challenge", json_string(challenge));
        json_object_set_new(j, "pow_nonce", json_string(nonce));
    }
}

static void check_fields(const struct br_body *b, const char *buf, size_t len)
{
    switch (b->kind) {
    case BR_BODY_REGISTER:
    case BR_BODY_LOGIN: {
        const struct br_body_account *a = &b->u.account;
        check_email(a->email);
        bool reg = b->kind == BR_BODY_REGISTER;
        check_text(a->name, sizeof a->name, reg ? 1 : 0);
        BR_ASSERT(reg || a->name[0] == '\0');
        BR_ASSERT(a->password_len >= (reg ? BR_PASSWORD_MIN : 1) &&
                  a->password_len <= BR_PASSWORD_MAX);
        BR_ASSERT(strnlen(a->password, sizeof a->password) == a->password_len);
        check_pow(a->pow_challenge, a->pow_nonce);
        BR_ASSERT(reg || a->pow_challenge[0] == '\0');
        break;
    }
    case BR_BODY_EVENT_CREATE:
        check_spec(&b->u.event);
        break;
    case BR_BODY_ROLE:
        BR_ASSERT(b->u.role < BR_ROLE_COUNT);
        break;
    case BR_BODY_QUEUE_JOIN:
        check_pow(b->u.join.pow_challenge, b->u.join.pow_nonce);
        BR_ASSERT(b->u.join.event_id == b->u.event_id);
        BR_ASSERT(b->u.event_id >= 1 && b->u.event_id <= (uint64_t)BR_JSON_ID_MAX);
        break;
    case BR_BODY_QUEUE_LEAVE:
    case BR_BODY_CHALLENGE:
        BR_ASSERT(b->u.event_id >= 1 && b->u.event_id <= (uint64_t)BR_JSON_ID_MAX);
        break;
    case BR_BODY_RESERVE:
        BR_ASSERT(b->u.reserve.event_id >= 1 && b->u.reserve.event_id <= (uint64_t)BR_JSON_ID_MAX);
        BR_ASSERT(b->u.reserve.zone_id >= 1 && b->u.reserve.zone_id <= BR_EVENT_ZONES_MAX);
        BR_ASSERT(b->u.reserve.quantity >= 1 && b->u.reserve.quantity <= BR_HOLD_QUANTITY_MAX);
        break;
    case BR_BODY_PAYMENT:
        BR_ASSERT(b->u.booking_id >= 1 && b->u.booking_id <= (uint64_t)BR_JSON_ID_MAX);
        break;
    case BR_BODY_CONFIRM_JSON:
        check_text(b->u.payment_method, sizeof b->u.payment_method, 1);
        check_text(b->u.client_secret, sizeof b->u.client_secret, 0);
        break;
    case BR_BODY_CONFIRM_FORM: {
        const char *pm = b->u.payment_method;
        check_text(pm, sizeof b->u.payment_method, 1);
        check_text(b->u.client_secret, sizeof b->u.client_secret, 0);
        BR_ASSERT(strchr(pm, '&') == NULL && strchr(b->u.client_secret, '&') == NULL);
        /* The value stands in the form, behind its key, at a pair's start. */
        size_t n = strnlen(buf, len);
        size_t want = strlen("payment_method=") + strlen(pm);
        bool found = false;
        for (size_t i = 0; !found && i + want <= n; i++) {
            found = (i == 0 || buf[i - 1] == '&') && memcmp(buf + i, "payment_method=", 15) == 0 &&
                    memcmp(buf + i + 15, pm, strlen(pm)) == 0;
        }
        BR_ASSERT(found);
        break;
    }
    case BR_BODY_REFRESH:
        check_text(b->u.refresh_token, sizeof b->u.refresh_token, 1);
        break;
    case BR_BODY_QUEUE_MODE_SET: {
        const struct br_body_queue_mode_set *m = &b->u.queue_mode;
        BR_ASSERT(m->set != 0 && (m->set & ~7u) == 0);
        BR_ASSERT(m->mode < BR_QUEUE_MODE_COUNT && ((m->set & BR_QSET_MODE) || m->mode == 0));
        BR_ASSERT((m->set & BR_QSET_MAX_ACTIVE) ? (m->max_active >= 1 &&
                                                   m->max_active <= BR_MAX_ACTIVE_MAX)
                                                : m->max_active == 0);
        BR_ASSERT(m->admit_per_min <= BR_ADMIT_PER_MIN_MAX);
        BR_ASSERT((m->set & BR_QSET_ADMIT_PER_MIN) || m->admit_per_min == 0);
        break;
    }
    case BR_BODY_COUNT:
        br_panic(__FILE__, __LINE__, "no such body kind");
    }
}

/* The parsed values as a body of the same kind again (malloc'd, *len set). */
static char *encode(const struct br_body *b, size_t *len)
{
    json_t *j = NULL;
    switch (b->kind) {
    case BR_BODY_REGISTER:
        j = json_pack("{s:s, s:s, s:s}", "email", b->u.account.email, "password",
                      b->u.account.password, "name", b->u.account.name);
        encode_pow(j, b->u.account.pow_challenge, b->u.account.pow_nonce);
        break;
    case BR_BODY_LOGIN:
        j = json_pack("{s:s, s:s}", "email", b->u.account.email, "password", b->u.account.password);
        break;
    case BR_BODY_EVENT_CREATE: {
        /* The API's answer for the event: a superset of the create body. */
        struct br_api_event e;
        memset(&e, 0, sizeof e);
        e.id = 1;
        e.spec = b->u.event;
        j = br_render_event(&e);
        break;
    }
    case BR_BODY_ROLE:
        j = json_pack("{s:s}", "role", br_role_text(b->u.role));
        break;
    case BR_BODY_QUEUE_JOIN:
        j = json_pack("{s:I}", "event_id", (json_int_t)b->u.join.event_id);
        encode_pow(j, b->u.join.pow_challenge, b->u.join.pow_nonce);
        break;
    case BR_BODY_QUEUE_LEAVE:
    case BR_BODY_CHALLENGE:
        j = json_pack("{s:I}", "event_id", (json_int_t)b->u.event_id);
        break;
    case BR_BODY_RESERVE:
        j = json_pack("{s:I, s:i, s:i}", "event_id", (json_int_t)b->u.reserve.event_id, "zone_id",
                      (int)b->u.reserve.zone_id, "quantity", (int)b->u.reserve.quantity);
        break;
    case BR_BODY_PAYMENT:
        j = json_pack("{s:I}", "booking_id", (json_int_t)b->u.booking_id);
        break;
    case BR_BODY_CONFIRM_JSON:
        j = json_pack("{s:s}", "payment_method", b->u.payment_method);
        if (b->u.client_secret[0] != '\0') {
            json_object_set_new(j, "client_secret", json_string(b->u.client_secret));
        }
        break;
    case BR_BODY_CONFIRM_FORM: {
        size_t cap = 32 + BR_PAYMENT_METHOD_MAX + BR_CLIENT_SECRET_MAX;
        char *text = malloc(cap);
        BR_ASSERT(text != NULL);
        int n = b->u.client_secret[0] != '\0'
                    ? snprintf(text, cap, "payment_method=%s&client_secret=%s",
                               b->u.payment_method, b->u.client_secret)
                    : snprintf(text, cap, "payment_method=%s", b->u.payment_method);
        BR_ASSERT(n > 0 && (size_t)n < cap);
        *len = (size_t)n;
        return text;
    }
    case BR_BODY_REFRESH:
        j = json_pack("{s:s}", "refresh_token", b->u.refresh_token);
        break;
    case BR_BODY_QUEUE_MODE_SET: {
        const struct br_body_queue_mode_set *m = &b->u.queue_mode;
        j = json_object();
        if (m->set & BR_QSET_MODE) {
            json_object_set_new(j, "mode", json_string(br_queue_mode_name(m->mode)));
        }
        if (m->set & BR_QSET_MAX_ACTIVE) {
            json_object_set_new(j, "max_active", json_integer((json_int_t)m->max_active));
        }
        if (m->set & BR_QSET_ADMIT_PER_MIN) {
            json_object_set_new(j, "admit_per_min", json_integer((json_int_t)m->admit_per_min));
        }
        break;
    }
    case BR_BODY_COUNT:
        break;
    }
    /* Every string came out of jansson (valid UTF-8, no NUL): it packs. */
    BR_ASSERT(j != NULL);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    BR_ASSERT(text != NULL);
    *len = strlen(text);
    return text;
}

static void check_round_trip(const struct br_body *b)
{
    size_t len = 0;
    char *text = encode(b, &len);
    struct br_body *again = malloc(sizeof *again);
    BR_ASSERT(again != NULL);
    /* Another now: every value, defaults included, is in the text now. */
    BR_ASSERT(parse(b->kind, text, len, NOW_MS + 86400000, again) == BR_OK);
    BR_ASSERT(memcmp(again, b, sizeof *b) == 0);
    free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_MAX) {
        return 0;
    }
    enum br_body_kind kind = (enum br_body_kind)((data[0] & 15u) % BR_BODY_COUNT);
    enum br_body_kind other = (enum br_body_kind)((data[0] >> 4) % BR_BODY_COUNT);
    size_t len = size - 1;
    char *buf = malloc(len > 0 ? len : 1);
    struct br_body *b = malloc(sizeof *b);
    struct br_body *b2 = malloc(sizeof *b2);
    if (buf == NULL || b == NULL || b2 == NULL) {
        free(buf);
        free(b);
        free(b2);
        return 0;
    }
    memcpy(buf, data + 1, len);
    int rc = parse(kind, buf, len, NOW_MS, b);
    int rc2 = parse(other, buf, len, NOW_MS, b2);
    if (kind != BR_BODY_CONFIRM_FORM && other != BR_BODY_CONFIRM_FORM) {
        BR_ASSERT((rc == BR_E_CORRUPT) == (rc2 == BR_E_CORRUPT));
    }
    if (br_json_depth(buf, len) > BR_JSON_DEPTH_MAX && kind != BR_BODY_CONFIRM_FORM) {
        BR_ASSERT(rc == BR_E_CORRUPT);
    }
    if (rc == BR_OK) {
        check_fields(b, buf, len);
        check_round_trip(b);
    }
    free(buf);
    free(b);
    free(b2);
    return 0;
}
