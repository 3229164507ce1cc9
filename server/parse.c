/*
 * parse.c -- request text to typed values (contract in parse.h).
 *
 * Every JSON body goes through the same two stages. load_object() checks
 * the nesting first (br_json_depth: jansson's parser recurses once per
 * level, so the scan is what bounds its stack), then parses with duplicate
 * keys refused and requires an object; failing either is BR_E_CORRUPT. The
 * members are then read with the json_* helpers below, each of which says
 * yes or no and copies only within the caller's capacity; any "no" is
 * BR_E_INVALID with the route's one message, which lists what it wants.
 * The messages are the API's: tests/http and clients see them verbatim.
 */
#define _POSIX_C_SOURCE 200809L

#include "server/parse.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/provider_sig.h"
#include "core/catalog.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/panic.h"
#include "core/queue.h"
#include "server/render.h"

/* Fills why with a fixed reason and returns err. */
static int fail(char why[BR_WHY_MAX], int err, const char *reason)
{
    BR_ASSERT(err != BR_OK && reason != NULL);
    size_t n = strlen(reason);
    BR_ASSERT(n > 0 && n < BR_WHY_MAX);
    memcpy(why, reason, n + 1);
    return err;
}

/* ---- JSON helpers ---- */

unsigned br_json_depth(const char *buf, size_t len)
{
    unsigned depth = 0;
    unsigned max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\') {
                i++; /* the escaped byte cannot end the string */
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max) {
                max = depth;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    BR_ASSERT(depth <= max);
    return max;
}

/* The JSON object in buf[0..len-1] (a new reference), or NULL with why
 * filled: the caller returns BR_E_CORRUPT. */
static json_t *load_object(const char *buf, size_t len, char why[BR_WHY_MAX])
{
    if (br_json_depth(buf, len) > BR_JSON_DEPTH_MAX) {
        fail(why, BR_E_CORRUPT, "JSON nested too deeply");
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(j)) {
        /* jansson's text is at most 159 bytes: the whole reason fits (32 + 159 < 256). */
        snprintf(why, BR_WHY_MAX, "the body must be a JSON object%s%s", j == NULL ? ": " : "",
                 j == NULL ? err.text : "");
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A positive integer id of at most 2^53 from a JSON member. */
static bool json_id(const json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        return false;
    }
    json_int_t i = json_integer_value(v);
    if (i < 1 || i > BR_JSON_ID_MAX) {
        return false;
    }
    *out = (uint64_t)i;
    return true;
}

/* An integer in [min, max]; the default when absent; false when wrong. */
static bool json_u32(const json_t *obj, const char *key, uint32_t min, uint32_t max, uint32_t dflt,
                     uint32_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = dflt;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
        json_integer_value(v) > (json_int_t)max) {
        return false;
    }
    *out = (uint32_t)json_integer_value(v);
    return true;
}

/* A string of min..cap-1 bytes without NUL, copied with its NUL. Absent:
 * the default (NULL = required). Writes out only when it says yes. */
static bool json_str(const json_t *obj, const char *key, size_t min, char *out, size_t cap,
                     const char *dflt)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL && dflt != NULL) {
        size_t n = strlen(dflt);
        BR_ASSERT(n < cap);
        memcpy(out, dflt, n + 1);
        return true;
    }
    if (!json_is_string(v)) {
        return false;
    }
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n < min || n >= cap || memchr(s, '\0', n) != NULL) {
        return false;
    }
    memcpy(out, s, n + 1);
    return true;
}

/* Seconds (integer or real) as milliseconds within [1 ms, BR_TTL_MS_MAX]. */
static bool json_seconds_ms(const json_t *obj, const char *key, int64_t dflt_ms, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = dflt_ms;
        return true;
    }
    if (!json_is_number(v)) {
        return false;
    }
    double ms = json_number_value(v) * 1000.0;
    if (!(ms >= 1.0) || ms > (double)BR_TTL_MS_MAX) {
        return false;
    }
    *out = (int64_t)(ms + 0.5);
    return true;
}

/* An RFC 3339 time (br_time_parse) as ms; the default when absent. */
static bool json_time_ms(const json_t *obj, const char *key, int64_t dflt_ms, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = dflt_ms;
        return true;
    }
    return json_is_string(v) && br_time_parse(json_string_value(v), out) == 0;
}

/* ---- bodies ---- */

/* One '@' with something on both sides, no space or control byte; lower-cases
 * in place, since emails compare case-insensitively here. */
static bool email_ok(char *email)
{
    size_t n = strlen(email);
    const char *at = strchr(email, '@');
    if (n < BR_EMAIL_MIN || at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= 0x20 || c == 0x7f) {
            return false;
        }
        email[i] = (char)tolower(c);
    }
    return true;
}

static bool parse_pow(const json_t *j, char challenge[BR_POW_CHALLENGE_MAX],
                      char nonce[BR_POW_NONCE_MAX]);

int br_parse_register(const char *buf, size_t len, struct br_body_account *out,
                      char why[BR_WHY_MAX])
{
    memset(out, 0, sizeof *out);
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    int rc = BR_OK;
    if (!json_str(j, "email", BR_EMAIL_MIN, out->email, sizeof out->email, NULL) ||
        !email_ok(out->email) ||
        !json_str(j, "password", BR_PASSWORD_MIN, out->password, sizeof out->password, NULL) ||
        !json_str(j, "name", 1, out->name, sizeof out->name, NULL) ||
        !parse_pow(j, out->pow_challenge, out->pow_nonce)) {
        memset(out->password, 0, sizeof out->password);
        rc = fail(why, BR_E_INVALID,
                  "want {email, password (8 to 256 bytes), name (1 to 63 bytes), "
                  "pow_challenge?, pow_nonce?}");
    } else {
        out->password_len = strlen(out->password);
    }
    json_decref(j);
    return rc;
}

int br_parse_login(const char *buf, size_t len, struct br_body_account *out, char why[BR_WHY_MAX])
{
    memset(out, 0, sizeof *out);
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    int rc = BR_OK;
    if (!json_str(j, "email", 1, out->email, sizeof out->email, NULL) ||
        !json_str(j, "password", 1, out->password, sizeof out->password, NULL)) {
        rc = fail(why, BR_E_INVALID, "want {email, password}");
    } else if (!email_ok(out->email)) {
        /* Well-formed, but no account can have this email: the answer of a
         * wrong password, so the two cannot be told apart. */
        rc = fail(why, BR_E_UNAUTHORIZED, "wrong email or password");
    } else {
        out->password_len = strlen(out->password);
    }
    if (rc != BR_OK) {
        memset(out->password, 0, sizeof out->password);
    }
    json_decref(j);
    return rc;
}

static bool parse_zone(const json_t *z, struct br_zone_spec *out)
{
    uint32_t cap;
    json_t *price = json_object_get(z, "price_minor");
    if (!json_is_object(z) || !json_str(z, "name", 1, out->name, sizeof out->name, NULL) ||
        !json_u32(z, "capacity", 1, BR_ZONE_CAPACITY_MAX, 0, &cap) || cap == 0 ||
        !json_is_integer(price) || json_integer_value(price) < 0 ||
        json_integer_value(price) > BR_PRICE_MINOR_MAX ||
        !json_str(z, "currency", 3, out->currency, sizeof out->currency, NULL)) {
        return false;
    }
    for (unsigned i = 0; i < 3; i++) {
        if (out->currency[i] < 'A' || out->currency[i] > 'Z') {
            return false;
        }
    }
    out->capacity = cap;
    out->price_minor = (int64_t)json_integer_value(price);
    return true;
}

/* The longest reason of all: BR_WHY_MAX is sized by it. */
#define EVENT_WANT                                                                                 \
    "want {name, venue?, starts_at?, sale_opens_at?, per_user_limit?, requires_pass?, queue?: "    \
    "{max_active, admit_per_tick, pass_ttl_s}, hold_ttl_s?, zones: [{name, capacity, "             \
    "price_minor, currency}] (1 to 8)}"
/* Issue 13: the waiting room's members of "queue", refused with their own reason. */
#define EVENT_QUEUE_WANT                                                                           \
    "queue's waiting room: {admit_per_min?: 0 to 600000, presence_ttl_s?: 0 to 86400, "           \
    "pow_bits?: 0 to 28, inventory_aware?: true | false, mode?: open | paused | closed | "         \
    "passthrough}"
_Static_assert(sizeof EVENT_QUEUE_WANT <= BR_WHY_MAX, "the waiting room's reason fits why");
_Static_assert(sizeof EVENT_WANT <= BR_WHY_MAX, "the event's reason fits why");

/* Issue 13: the waiting room's settings in the event's "queue" object (NULL
 * = absent: every one takes d's value, br_event_spec_default's). */
static bool parse_waiting_room(const json_t *queue, const struct br_event_spec *d,
                               struct br_event_spec *s)
{
    uint32_t pow_bits = 0;
    if (!json_u32(queue, "admit_per_min", 0, BR_ADMIT_PER_MIN_MAX, d->admit_per_min,
                  &s->admit_per_min) ||
        !json_u32(queue, "presence_ttl_s", 0, BR_PRESENCE_TTL_S_MAX, d->presence_ttl_s,
                  &s->presence_ttl_s) ||
        !json_u32(queue, "pow_bits", 0, BR_POW_BITS_MAX, d->pow_bits, &pow_bits)) {
        return false;
    }
    s->pow_bits = (uint8_t)pow_bits;
    json_t *aware = json_object_get(queue, "inventory_aware");
    if (aware != NULL && !json_is_boolean(aware)) {
        return false;
    }
    s->queue_flags = d->queue_flags;
    if (aware != NULL) {
        s->queue_flags = (uint8_t)(json_is_true(aware) ? (s->queue_flags | BR_QF_INVENTORY_AWARE)
                                                       : (s->queue_flags & ~BR_QF_INVENTORY_AWARE));
    }
    json_t *mode = json_object_get(queue, "mode");
    s->mode = d->mode;
    if (mode != NULL) {
        uint8_t m = json_is_string(mode) ? br_queue_mode_parse(json_string_value(mode))
                                         : (uint8_t)BR_QUEUE_MODE_COUNT;
        if (m >= BR_QUEUE_MODE_COUNT) {
            return false;
        }
        s->mode = m;
    }
    BR_ASSERT((s->queue_flags & ~BR_QF_ALL) == 0 && s->mode < BR_QUEUE_MODE_COUNT);
    return true;
}

int br_parse_event_create(const char *buf, size_t len, int64_t now_ms, struct br_event_spec *out,
                          char why[BR_WHY_MAX])
{
    struct br_event_spec *s = out;
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        memset(s, 0, sizeof *s);
        return BR_E_CORRUPT;
    }
    /* Every absent setting takes the core's default (br_event_spec_default);
     * the opening time first, since the others' defaults follow from it. */
    struct br_event_spec d;
    int64_t opens_ms = 0;
    bool ok = json_time_ms(j, "sale_opens_at", now_ms, &opens_ms);
    br_event_spec_default(&d, ok ? opens_ms : 0);
    memcpy(s, &d, sizeof *s);
    /* queue may be absent: jansson's getters answer NULL for a NULL object,
     * so every queue member then takes its default. */
    json_t *queue = json_object_get(j, "queue");
    json_t *zones = json_object_get(j, "zones");
    json_t *rp = json_object_get(j, "requires_pass");
    ok = ok && json_str(j, "name", 1, s->name, sizeof s->name, NULL) &&
         json_str(j, "venue", 0, s->venue, sizeof s->venue, "") &&
         json_time_ms(j, "starts_at", d.starts_at_ms, &s->starts_at_ms) &&
         json_u32(j, "per_user_limit", 1, BR_PER_USER_LIMIT_MAX, d.per_user_limit,
                  &s->per_user_limit) &&
         json_seconds_ms(j, "hold_ttl_s", d.hold_ttl_ms, &s->hold_ttl_ms) &&
         json_u32(j, "queue_capacity", 0, UINT32_MAX, 0, &s->queue_capacity) &&
         (rp == NULL || json_is_boolean(rp)) && (queue == NULL || json_is_object(queue)) &&
         json_is_array(zones) && json_array_size(zones) >= 1 &&
         json_array_size(zones) <= BR_EVENT_ZONES_MAX;
    s->requires_pass = rp == NULL ? d.requires_pass : json_is_true(rp);
    ok = ok && json_u32(queue, "max_active", 1, BR_MAX_ACTIVE_MAX, d.max_active, &s->max_active) &&
         json_u32(queue, "admit_per_tick", 1, BR_ADMIT_PER_TICK_MAX, d.admit_per_tick,
                  &s->admit_per_tick) &&
         json_seconds_ms(queue, "pass_ttl_s", d.pass_ttl_ms, &s->pass_ttl_ms);
    for (size_t i = 0; ok && i < json_array_size(zones); i++) {
        ok = parse_zone(json_array_get(zones, i), &s->zones[i]);
    }
    if (!ok) {
        json_decref(j);
        return fail(why, BR_E_INVALID, EVENT_WANT);
    }
    if (!parse_waiting_room(queue, &d, s)) {
        json_decref(j);
        return fail(why, BR_E_INVALID, EVENT_QUEUE_WANT);
    }
    s->zone_count = (uint32_t)json_array_size(zones);
    BR_ASSERT(s->zone_count >= 1 && s->zone_count <= BR_EVENT_ZONES_MAX);
    if (json_object_get(j, "queue_capacity") == NULL) {
        /* Every join takes a slot for the whole sale, out of one pool the
         * deployment sizes (the engine's queue_slots_max): the default gives
         * a small event what it needs instead of the deployment's maximum. */
        s->queue_capacity = br_event_spec_queue_default(s);
    }
    json_decref(j);
    return BR_OK;
}

int br_parse_role(const char *buf, size_t len, uint8_t *role, char why[BR_WHY_MAX])
{
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    char text[16];
    int rc = BR_OK;
    if (!json_str(j, "role", 1, text, sizeof text, NULL) || br_role_parse(text, role) != 0) {
        rc = fail(why, BR_E_INVALID, "want {role: customer | organizer | admin}");
    }
    json_decref(j);
    return rc;
}

/* A body that is one id member, {key: 1..2^53}. */
static int parse_one_id(const char *buf, size_t len, const char *key, const char *want,
                        uint64_t *out, char why[BR_WHY_MAX])
{
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    int rc = json_id(j, key, out) ? BR_OK : fail(why, BR_E_INVALID, want);
    json_decref(j);
    return rc;
}

int br_parse_event_ref(const char *buf, size_t len, uint64_t *event_id, char why[BR_WHY_MAX])
{
    return parse_one_id(buf, len, "event_id", "want {event_id}", event_id, why);
}

/* The optional proof of work of a join or register body ({pow_challenge,
 * pow_nonce}: both or neither; "" when absent). Its content is pow.c's to
 * judge (403 POW_INVALID); here only types and lengths (400). */
static bool parse_pow(const json_t *j, char challenge[BR_POW_CHALLENGE_MAX],
                      char nonce[BR_POW_NONCE_MAX])
{
    bool has_c = json_object_get(j, "pow_challenge") != NULL;
    bool has_n = json_object_get(j, "pow_nonce") != NULL;
    if (has_c != has_n) {
        return false;
    }
    return !has_c || (json_str(j, "pow_challenge", 1, challenge, BR_POW_CHALLENGE_MAX, NULL) &&
                      json_str(j, "pow_nonce", 1, nonce, BR_POW_NONCE_MAX, NULL));
}

#define JOIN_WANT "want {event_id, pow_challenge?, pow_nonce?} (the proof of work: both or neither)"

int br_parse_queue_join(const char *buf, size_t len, struct br_body_join *out,
                        char why[BR_WHY_MAX])
{
    memset(out, 0, sizeof *out);
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    bool ok = json_id(j, "event_id", &out->event_id) &&
              parse_pow(j, out->pow_challenge, out->pow_nonce);
    json_decref(j);
    return ok ? BR_OK : fail(why, BR_E_INVALID, JOIN_WANT);
}

#define MODE_SET_WANT                                                                              \
    "want at least one of {mode: open | paused | closed | passthrough, max_active: 1 to "          \
    "1000000, admit_per_min: 0 to 600000 (0 = no pacing)}"

int br_parse_queue_mode_set(const char *buf, size_t len, struct br_body_queue_mode_set *out,
                            char why[BR_WHY_MAX])
{
    memset(out, 0, sizeof *out);
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    bool ok = true;
    json_t *mode = json_object_get(j, "mode");
    if (mode != NULL) {
        out->mode = json_is_string(mode) ? br_queue_mode_parse(json_string_value(mode))
                                         : (uint8_t)BR_QUEUE_MODE_COUNT;
        ok = out->mode < BR_QUEUE_MODE_COUNT;
        out->set |= BR_QSET_MODE;
    }
    if (ok && json_object_get(j, "max_active") != NULL) {
        ok = json_u32(j, "max_active", 1, BR_MAX_ACTIVE_MAX, 0, &out->max_active);
        out->set |= BR_QSET_MAX_ACTIVE;
    }
    if (ok && json_object_get(j, "admit_per_min") != NULL) {
        ok = json_u32(j, "admit_per_min", 0, BR_ADMIT_PER_MIN_MAX, 0, &out->admit_per_min);
        out->set |= BR_QSET_ADMIT_PER_MIN;
    }
    json_decref(j);
    if (!ok || out->set == 0) {
        return fail(why, BR_E_INVALID, MODE_SET_WANT);
    }
    BR_ASSERT((out->set & ~7u) == 0);
    return BR_OK;
}

int br_parse_payment(const char *buf, size_t len, uint64_t *booking_id, char why[BR_WHY_MAX])
{
    return parse_one_id(buf, len, "booking_id", "want {booking_id}", booking_id, why);
}

int br_parse_reserve(const char *buf, size_t len, struct br_body_reserve *out, char why[BR_WHY_MAX])
{
    memset(out, 0, sizeof *out);
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    int rc = BR_OK;
    if (!json_id(j, "event_id", &out->event_id) ||
        !json_u32(j, "zone_id", 1, BR_EVENT_ZONES_MAX, 0, &out->zone_id) || out->zone_id == 0 ||
        !json_u32(j, "quantity", 1, BR_HOLD_QUANTITY_MAX, 0, &out->quantity) ||
        out->quantity == 0) {
        rc = fail(why, BR_E_INVALID, "want {event_id, zone_id, quantity (1 to 16)}");
    }
    json_decref(j);
    return rc;
}

int br_parse_confirm_json(const char *buf, size_t len, char pm[BR_PAYMENT_METHOD_MAX],
                          char secret[BR_CLIENT_SECRET_MAX], char why[BR_WHY_MAX])
{
    pm[0] = '\0';
    secret[0] = '\0';
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    /* Absent or wrong alike leave pm empty, which is the refusal. */
    (void)json_str(j, "payment_method", 1, pm, BR_PAYMENT_METHOD_MAX, "");
    bool secret_ok = json_str(j, "client_secret", 0, secret, BR_CLIENT_SECRET_MAX, "");
    json_decref(j);
    if (!secret_ok) {
        secret[0] = '\0';
        return fail(why, BR_E_INVALID, "client_secret must be a string under 96 bytes");
    }
    return pm[0] != '\0' ? BR_OK : fail(why, BR_E_INVALID, "want {payment_method}");
}

/* The value of the first `key=` at the start of a pair of form[0..n), when
 * it fits out (cap incl. NUL); "" when absent. false when it does not fit. */
static bool form_value(const char *form, size_t n, const char *key, char *out, size_t cap)
{
    const size_t key_len = strlen(key);
    out[0] = '\0';
    /* The first pair that starts with key counts; the same bytes inside
     * another pair's value (payment_method=x{client_secret=...) do not. */
    const char *p = NULL;
    for (size_t i = 0; p == NULL && i + key_len <= n; i++) {
        if ((i == 0 || form[i - 1] == '&') && memcmp(form + i, key, key_len) == 0) {
            p = form + i;
        }
    }
    if (p == NULL) {
        return true;
    }
    const char *v = p + key_len;
    const char *end = form + n;
    const char *amp = memchr(v, '&', (size_t)(end - v));
    size_t vn = amp != NULL ? (size_t)(amp - v) : (size_t)(end - v);
    if (vn >= cap) {
        return false;
    }
    memcpy(out, v, vn);
    out[vn] = '\0';
    return true;
}

int br_parse_confirm_form(const char *buf, size_t len, char pm[BR_PAYMENT_METHOD_MAX],
                          char secret[BR_CLIENT_SECRET_MAX], char why[BR_WHY_MAX])
{
    size_t n = buf != NULL ? strnlen(buf, len) : 0;
    if (!form_value(buf, n, "payment_method=", pm, BR_PAYMENT_METHOD_MAX)) {
        pm[0] = '\0';
    }
    if (!form_value(buf, n, "client_secret=", secret, BR_CLIENT_SECRET_MAX)) {
        pm[0] = secret[0] = '\0';
        return fail(why, BR_E_INVALID, "client_secret must be under 96 bytes");
    }
    return pm[0] != '\0' ? BR_OK : fail(why, BR_E_INVALID, "want {payment_method}");
}

/* {refresh_token}: its form and MAC are the route's to check. */
static int parse_refresh(const char *buf, size_t len, char token[BR_REFRESH_TEXT_MAX],
                         char why[BR_WHY_MAX])
{
    token[0] = '\0';
    json_t *j = load_object(buf, len, why);
    if (j == NULL) {
        return BR_E_CORRUPT;
    }
    bool ok = json_str(j, "refresh_token", 1, token, BR_REFRESH_TEXT_MAX, NULL);
    json_decref(j);
    return ok ? BR_OK : fail(why, BR_E_INVALID, "want {refresh_token}");
}

int br_parse_body(enum br_body_kind kind, const char *buf, size_t len, int64_t now_ms,
                  struct br_body *out, char why[BR_WHY_MAX])
{
    BR_ASSERT(kind < BR_BODY_COUNT);
    memset(out, 0, sizeof *out);
    out->kind = kind;
    switch (kind) {
    case BR_BODY_REGISTER:
        return br_parse_register(buf, len, &out->u.account, why);
    case BR_BODY_LOGIN:
        return br_parse_login(buf, len, &out->u.account, why);
    case BR_BODY_EVENT_CREATE:
        return br_parse_event_create(buf, len, now_ms, &out->u.event, why);
    case BR_BODY_ROLE:
        return br_parse_role(buf, len, &out->u.role, why);
    case BR_BODY_QUEUE_JOIN:
        return br_parse_queue_join(buf, len, &out->u.join, why);
    case BR_BODY_QUEUE_LEAVE:
    case BR_BODY_CHALLENGE:
        return br_parse_event_ref(buf, len, &out->u.event_id, why);
    case BR_BODY_RESERVE:
        return br_parse_reserve(buf, len, &out->u.reserve, why);
    case BR_BODY_PAYMENT:
        return br_parse_payment(buf, len, &out->u.booking_id, why);
    case BR_BODY_CONFIRM_JSON:
        return br_parse_confirm_json(buf, len, out->u.payment_method, out->u.client_secret, why);
    case BR_BODY_CONFIRM_FORM:
        return br_parse_confirm_form(buf, len, out->u.payment_method, out->u.client_secret, why);
    case BR_BODY_REFRESH:
        return parse_refresh(buf, len, out->u.refresh_token, why);
    case BR_BODY_QUEUE_MODE_SET:
        return br_parse_queue_mode_set(buf, len, &out->u.queue_mode, why);
    case BR_BODY_COUNT:
        break;
    }
    br_panic(__FILE__, __LINE__, "kind < BR_BODY_COUNT");
}

/* ---- routes, paths, query and headers ---- */

static const struct {
    const char *method;
    const char *tmpl; /* "/"-separated; "{id}" = a positive integer, "{s}" = any segment */
} ROUTE_PATHS[BR_ROUTE_COUNT] = {
    [BR_ROUTE_REGISTER] = {"POST", "/api/v1/auth/register"},
    [BR_ROUTE_LOGIN] = {"POST", "/api/v1/auth/login"},
    [BR_ROUTE_ME] = {"GET", "/api/v1/auth/me"},
    [BR_ROUTE_EVENTS_LIST] = {"GET", "/api/v1/events"},
    [BR_ROUTE_EVENT_CREATE] = {"POST", "/api/v1/events"},
    [BR_ROUTE_EVENT_GET] = {"GET", "/api/v1/events/{id}"},
    [BR_ROUTE_EVENT_STATS] = {"GET", "/api/v1/admin/events/{id}/stats"},
    [BR_ROUTE_ROLE_SET] = {"POST", "/api/v1/admin/users/{id}/role"},
    [BR_ROUTE_QUEUE_JOIN] = {"POST", "/api/v1/queue/join"},
    [BR_ROUTE_QUEUE_POSITION] = {"GET", "/api/v1/queue/position/{id}"},
    [BR_ROUTE_QUEUE_STREAM] = {"GET", "/api/v1/queue/position/{id}/stream"},
    [BR_ROUTE_QUEUE_LEAVE] = {"DELETE", "/api/v1/queue/leave"},
    [BR_ROUTE_RESERVE] = {"POST", "/api/v1/bookings/reserve"},
    [BR_ROUTE_BOOKINGS_LIST] = {"GET", "/api/v1/bookings"},
    [BR_ROUTE_BOOKING_GET] = {"GET", "/api/v1/bookings/{id}"},
    [BR_ROUTE_BOOKING_CANCEL] = {"POST", "/api/v1/bookings/{id}/cancel"},
    [BR_ROUTE_PAYMENTS] = {"POST", "/api/v1/payments"},
    [BR_ROUTE_WEBHOOK] = {"POST", "/api/v1/webhooks/stripe"},
    [BR_ROUTE_PROVIDER_CONFIRM] = {"POST", "/test-provider/v1/payment_intents/{s}/confirm"},
    [BR_ROUTE_HEALTHZ] = {"GET", "/healthz"},
    [BR_ROUTE_READYZ] = {"GET", "/readyz"},
    [BR_ROUTE_METRICS] = {"GET", "/metrics"},
    [BR_ROUTE_OPENAPI] = {"GET", "/api/v1/openapi.json"},
    [BR_ROUTE_REFRESH] = {"POST", "/api/v1/auth/refresh"},
    [BR_ROUTE_LOGOUT] = {"POST", "/api/v1/auth/logout"},
    [BR_ROUTE_LOGOUT_ALL] = {"POST", "/api/v1/auth/logout-all"},
    /* Issue 13: the waiting room (handlers: routes.c). */
    [BR_ROUTE_QUEUE_STATUS] = {"GET", "/api/v1/events/{id}/queue"},
    [BR_ROUTE_QUEUE_MODE_SET] = {"POST", "/api/v1/admin/events/{id}/queue"},
    [BR_ROUTE_QUEUE_CHALLENGE] = {"POST", "/api/v1/queue/challenge"},
    [BR_ROUTE_REGISTER_CHALLENGE] = {"POST", "/api/v1/auth/challenge"},
};

const char *br_route_method(enum br_route route)
{
    BR_ASSERT(route < BR_ROUTE_COUNT);
    return ROUTE_PATHS[route].method;
}

const char *br_route_template(enum br_route route)
{
    BR_ASSERT(route < BR_ROUTE_COUNT);
    return ROUTE_PATHS[route].tmpl;
}

int br_parse_id(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > BR_ID_DIGITS_MAX || s[0] == '0') {
        return BR_E_INVALID;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return BR_E_INVALID;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    BR_ASSERT(v > 0);
    *out = v;
    return BR_OK;
}

bool br_path_match(const char *tmpl, const char *path, struct br_route_match *out)
{
    BR_ASSERT(tmpl != NULL && tmpl[0] == '/');
    if (path == NULL || path[0] != '/') {
        return false;
    }
    uint64_t id = 0;
    const char *seg = NULL; /* the "{s}" segment, in place until the whole path matched */
    size_t seg_len = 0;
    const char *t = tmpl + 1;
    const char *p = path + 1;
    for (unsigned i = 0; i < BR_PATH_SEGMENTS_MAX; i++) {
        const char *te = strchr(t, '/');
        const char *pe = strchr(p, '/');
        size_t tn = te ? (size_t)(te - t) : strlen(t);
        size_t pn = pe ? (size_t)(pe - p) : strlen(p);
        if (tn == 4 && memcmp(t, "{id}", 4) == 0) {
            if (br_parse_id(p, pn, &id) != BR_OK) {
                return false;
            }
        } else if (tn == 3 && memcmp(t, "{s}", 3) == 0) {
            if (pn == 0 || pn >= BR_SEGMENT_MAX) {
                return false;
            }
            seg = p;
            seg_len = pn;
        } else if (tn != pn || memcmp(t, p, tn) != 0) {
            return false;
        }
        if ((te == NULL) != (pe == NULL)) {
            return false;
        }
        if (te == NULL) {
            out->id = id;
            memcpy(out->segment, seg != NULL ? seg : "", seg_len);
            out->segment[seg_len] = '\0';
            return true;
        }
        t = te + 1;
        p = pe + 1;
    }
    return false;
}

int br_route_match(const char *method, const char *path, struct br_route_match *out)
{
    out->route = BR_ROUTE_COUNT;
    out->id = 0;
    out->segment[0] = '\0';
    out->allow[0] = '\0';
    size_t allow_len = 0;
    for (unsigned i = 0; i < BR_ROUTE_COUNT; i++) {
        if (!br_path_match(ROUTE_PATHS[i].tmpl, path, out)) {
            continue;
        }
        const char *m = ROUTE_PATHS[i].method;
        if (method != NULL && strcmp(m, method) == 0) {
            out->route = (enum br_route)i;
            out->allow[0] = '\0'; /* methods of earlier routes: no 405 to send */
            return BR_OK;
        }
        /* "GET, POST": the methods this path does take, for the 405. */
        size_t mn = strlen(m);
        if (allow_len + mn + 3 < sizeof out->allow) {
            if (allow_len > 0) {
                memcpy(out->allow + allow_len, ", ", 2);
                allow_len += 2;
            }
            memcpy(out->allow + allow_len, m, mn + 1);
            allow_len += mn;
        }
    }
    BR_ASSERT(allow_len < sizeof out->allow && out->route == BR_ROUTE_COUNT);
    return BR_E_NOT_FOUND;
}

int br_parse_after_id(const char *text, uint64_t *out, char why[BR_WHY_MAX])
{
    *out = 0;
    if (text == NULL) {
        return BR_OK;
    }
    /* strtoull's reading, kept as the API has always answered: leading
     * spaces and '+' pass, and an overflow reads as 2^64-1 (an empty page). */
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *end != '\0' || text[0] == '-') {
        return fail(why, BR_E_INVALID, "after_id wants a non-negative integer");
    }
    *out = (uint64_t)v;
    return BR_OK;
}

int br_parse_idem_key(const char *key, uint64_t *out, char why[BR_WHY_MAX])
{
    *out = 0;
    if (key == NULL) {
        return BR_OK;
    }
    size_t n = strnlen(key, BR_IDEM_KEY_MAX + 1);
    bool ok = n >= 1 && n <= BR_IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        ok = key[i] > 0x20 && key[i] < 0x7f;
    }
    if (!ok) {
        return fail(why, BR_E_INVALID, "Idempotency-Key wants 1 to 255 printable ASCII characters");
    }
    uint64_t h = br_hash64(key, n, 0x6964656dULL);
    *out = h == 0 ? 1 : h; /* 0 means "no key" to the core */
    return BR_OK;
}

bool br_content_type_is(const char *ct, const char *want)
{
    BR_ASSERT(want != NULL && want[0] != '\0');
    if (ct == NULL) {
        return false;
    }
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

bool br_request_id_ok(const char *given)
{
    if (given == NULL) {
        return false;
    }
    size_t n = strnlen(given, BR_REQUEST_ID_MAX + 1);
    bool ok = n >= 1 && n <= BR_REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = given[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_' || c == '.';
    }
    return ok;
}

/* ---- the webhook ---- */

/* Stripe puts our ids in metadata as strings; accept integers too. A string
 * is 1..BR_ID_DIGITS_MAX digits (leading zeros pass) and not 0. */
static bool metadata_id(const json_t *md, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(md, key);
    if (json_is_integer(v)) {
        return json_id(md, key, out);
    }
    if (!json_is_string(v)) {
        return false;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > BR_ID_DIGITS_MAX) {
        return false;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *out = x;
    return x != 0;
}

int br_parse_webhook(const char *buf, size_t len, struct br_webhook_event *out,
                     char why[BR_WHY_MAX])
{
    memset(out, 0, sizeof *out);
    if (br_json_depth(buf, len) > BR_JSON_DEPTH_MAX) {
        return fail(why, BR_E_INVALID, "JSON nested too deeply");
    }
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, 0, &jerr);
    json_t *obj = json_object_get(json_object_get(j, "data"), "object");
    int rc = BR_OK;
    if (!json_is_object(j) || !json_str(j, "id", 1, out->id, sizeof out->id, NULL) ||
        !json_str(j, "type", 1, out->type, sizeof out->type, NULL) || !json_is_object(obj)) {
        rc = fail(why, BR_E_INVALID, "not a provider event");
    } else {
        out->kind = strcmp(out->type, "payment_intent.succeeded") == 0        ? BR_WEBHOOK_SUCCEEDED
                    : strcmp(out->type, "payment_intent.payment_failed") == 0 ? BR_WEBHOOK_FAILED
                                                                              : BR_WEBHOOK_IGNORED;
        if (out->kind != BR_WEBHOOK_IGNORED &&
            !metadata_id(json_object_get(obj, "metadata"), "payment_id", &out->payment_id)) {
            rc = fail(why, BR_E_INVALID, "the payment intent has no metadata.payment_id");
        } else if (out->kind != BR_WEBHOOK_IGNORED &&
                   json_object_get(json_object_get(obj, "metadata"), "booking_id") != NULL &&
                   !metadata_id(json_object_get(obj, "metadata"), "booking_id",
                                &out->booking_id)) {
            rc = fail(why, BR_E_INVALID, "metadata.booking_id is not an id");
        }
    }
    json_decref(j);
    BR_ASSERT(rc != BR_OK || out->kind == BR_WEBHOOK_IGNORED || out->payment_id != 0);
    return rc;
}

int br_webhook_accept(const char *secret, const char *header, const char *buf, size_t len,
                      int64_t now_s, struct br_webhook_event *out, char why[BR_WHY_MAX])
{
    BR_ASSERT(secret != NULL);
    memset(out, 0, sizeof *out);
    /* The signature covers the raw bytes: verify before parsing anything. */
    int rc = br_provider_sig_verify(secret, header, buf, len, now_s, BR_PROVIDER_SIG_TOLERANCE_S);
    if (rc != BR_OK) {
        return fail(why, rc == BR_E_INVALID ? BR_E_INVALID : BR_E_UNAUTHORIZED,
                    "missing, malformed, stale or wrong Stripe-Signature");
    }
    return br_parse_webhook(buf, len, out, why);
}

int br_webhook_accept_any(const char *const *secrets, size_t n, int64_t tolerance_s,
                          const char *header, const char *buf, size_t len, int64_t now_s,
                          struct br_webhook_event *out, char why[BR_WHY_MAX])
{
    BR_ASSERT(secrets != NULL && n >= 1 && n <= BR_PROVIDER_SIG_SECRETS_MAX);
    memset(out, 0, sizeof *out);
    int rc = br_provider_sig_verify_any(secrets, n, header, buf, len, now_s, tolerance_s);
    if (rc != BR_OK) {
        return fail(why, rc == BR_E_INVALID ? BR_E_INVALID : BR_E_UNAUTHORIZED,
                    "missing, malformed, stale or wrong Stripe-Signature");
    }
    return br_parse_webhook(buf, len, out, why);
}
