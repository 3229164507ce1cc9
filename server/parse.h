/*
 * parse.h -- request text to typed values: the bodies of the API's requests,
 * its route table with the ids in paths, the events list's query, the
 * Content-Type, X-Request-Id and Idempotency-Key headers, and the payment
 * provider's webhook payload.
 *
 * Every function here is pure: it reads the caller's bytes and fills the
 * caller's struct. No request object, no I/O, no clock (now is an argument),
 * no globals; the one allocation is jansson's tree for a JSON text, freed
 * before the function returns. The routes (routes.c) call these functions,
 * and the fuzz targets (fuzz/fuzz_http_body.c, fuzz_http_route.c,
 * fuzz_webhook_payload.c) call the very same ones.
 *
 * A body parser returns BR_OK or an error value, with the reason (the
 * message of the 4xx answer, NUL-terminated, shorter than BR_WHY_MAX) in the
 * caller's why buffer:
 *
 *   BR_E_CORRUPT       the text is not a JSON object: a syntax error, a
 *                      duplicated key, or nesting deeper than
 *                      BR_JSON_DEPTH_MAX. The routes answer it at once,
 *                      before authentication, like any malformed body;
 *   BR_E_INVALID       the object lacks a member, or one has the wrong type
 *                      or is out of range. Answered after authentication,
 *                      so a stranger learns nothing about a route's fields;
 *   BR_E_UNAUTHORIZED  (login only) an email that no account can have.
 *
 * Both BR_E_CORRUPT and BR_E_INVALID are answered as 400 INVALID_REQUEST.
 * On failure the output struct holds partial values and must not be used.
 *
 * Cost: a JSON text is first scanned once for its nesting (O(len), strings
 * skipped), which bounds jansson's recursive parser, then parsed once
 * (O(len)); member lookups are hash lookups, and the only loops are over
 * an event's zones (at most BR_EVENT_ZONES_MAX) and over single strings.
 */
#ifndef BR_PARSE_H
#define BR_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/auth.h"
#include "core/cmd.h"
#include "core/limits.h"

#define BR_JSON_DEPTH_MAX 16u      /* nesting of arrays and objects in a request body */
#define BR_WHY_MAX 256u            /* a reason incl. NUL (the longest, event create: 202 B) */
#define BR_PATH_SEGMENTS_MAX 8u    /* segments of a route template; longer paths match nothing */
#define BR_SEGMENT_MAX 64u         /* a "{s}" path segment incl. NUL */
#define BR_ID_DIGITS_MAX 16u       /* an id in a path or webhook metadata: 1..10^16-1 */
#define BR_ALLOW_MAX 64u           /* the Allow header of a 405, incl. NUL */
#define BR_IDEM_KEY_MAX 255u       /* bytes of an Idempotency-Key */
#define BR_REQUEST_ID_MAX 64u      /* bytes of an X-Request-Id taken as the request's id */
#define BR_EMAIL_MIN 3u            /* "a@b" */
#define BR_PASSWORD_MIN 8u         /* bytes of a new password (a login takes any length) */
#define BR_PAYMENT_METHOD_MAX 64u  /* the test provider's payment_method incl. NUL */
#define BR_CLIENT_SECRET_MAX 96u   /* a confirm's client_secret incl. NUL (the provider's is 59) */
#define BR_REFRESH_TEXT_MAX 128u   /* a refresh token incl. NUL (adapters/auth.h) */
#define BR_WEBHOOK_ID_MAX 256u     /* a provider event id incl. NUL */
#define BR_WEBHOOK_TYPE_MAX 64u    /* a provider event type incl. NUL */
#define BR_JSON_ID_MAX (1LL << 53) /* ids in JSON bodies: 1..2^53, exact in a double */
#define BR_POW_CHALLENGE_MAX 160u  /* issue 13: a proof-of-work challenge incl. NUL (server/pow.h) */
#define BR_POW_NONCE_MAX 33u       /* issue 13: a nonce, 1..32 of [0-9a-zA-Z_-], incl. NUL */

_Static_assert(BR_EMAIL_MIN < BR_EMAIL_MAX, "an email fits");
_Static_assert(BR_PASSWORD_MIN <= BR_PASSWORD_MAX, "a new password fits");
_Static_assert(BR_ID_DIGITS_MAX <= 19u, "a path id fits a uint64 without overflow");

/* ---- routes ---- */

/* The API's routes, in the order they are tried (server/openapi.json). */
enum br_route {
    BR_ROUTE_REGISTER,         /* POST   /api/v1/auth/register */
    BR_ROUTE_LOGIN,            /* POST   /api/v1/auth/login */
    BR_ROUTE_ME,               /* GET    /api/v1/auth/me */
    BR_ROUTE_EVENTS_LIST,      /* GET    /api/v1/events */
    BR_ROUTE_EVENT_CREATE,     /* POST   /api/v1/events */
    BR_ROUTE_EVENT_GET,        /* GET    /api/v1/events/{id} */
    BR_ROUTE_EVENT_STATS,      /* GET    /api/v1/admin/events/{id}/stats */
    BR_ROUTE_ROLE_SET,         /* POST   /api/v1/admin/users/{id}/role */
    BR_ROUTE_QUEUE_JOIN,       /* POST   /api/v1/queue/join */
    BR_ROUTE_QUEUE_POSITION,   /* GET    /api/v1/queue/position/{id} */
    BR_ROUTE_QUEUE_STREAM,     /* GET    /api/v1/queue/position/{id}/stream */
    BR_ROUTE_QUEUE_LEAVE,      /* DELETE /api/v1/queue/leave */
    BR_ROUTE_RESERVE,          /* POST   /api/v1/bookings/reserve */
    BR_ROUTE_BOOKINGS_LIST,    /* GET    /api/v1/bookings */
    BR_ROUTE_BOOKING_GET,      /* GET    /api/v1/bookings/{id} */
    BR_ROUTE_BOOKING_CANCEL,   /* POST   /api/v1/bookings/{id}/cancel */
    BR_ROUTE_PAYMENTS,         /* POST   /api/v1/payments */
    BR_ROUTE_WEBHOOK,          /* POST   /api/v1/webhooks/stripe */
    BR_ROUTE_PROVIDER_CONFIRM, /* POST   /test-provider/v1/payment_intents/{s}/confirm */
    BR_ROUTE_HEALTHZ,          /* GET    /healthz */
    BR_ROUTE_READYZ,           /* GET    /readyz */
    BR_ROUTE_METRICS,          /* GET    /metrics */
    BR_ROUTE_OPENAPI,          /* GET    /api/v1/openapi.json */
    BR_ROUTE_REFRESH,          /* POST   /api/v1/auth/refresh */
    BR_ROUTE_LOGOUT,           /* POST   /api/v1/auth/logout */
    BR_ROUTE_LOGOUT_ALL,       /* POST   /api/v1/auth/logout-all */
    /* Issue 13: the waiting room (handlers in routes.c; a backend without the
     * waiting room's ops answers them 501 NOT_IMPLEMENTED: backend.h). */
    BR_ROUTE_QUEUE_STATUS,       /* GET    /api/v1/events/{id}/queue (public) */
    BR_ROUTE_QUEUE_MODE_SET,     /* POST   /api/v1/admin/events/{id}/queue */
    BR_ROUTE_QUEUE_CHALLENGE,    /* POST   /api/v1/queue/challenge */
    BR_ROUTE_REGISTER_CHALLENGE, /* POST   /api/v1/auth/challenge */
    BR_ROUTE_COUNT
};

struct br_route_match {
    enum br_route route;          /* BR_OK: the route; otherwise BR_ROUTE_COUNT */
    uint64_t id;                  /* the "{id}" segment, 1..10^16-1; 0 = none in the template */
    char segment[BR_SEGMENT_MAX]; /* the "{s}" segment, 1..63 bytes; "" = none in the template */
    char allow[BR_ALLOW_MAX];     /* no match: the methods the path takes ("GET, POST") for a
                                     405's Allow; "" = no route has the path (404), or a match */
};

/* The route for a method and a path (the path without its query). BR_OK,
 * or BR_E_NOT_FOUND with out->allow saying whether the path exists under
 * other methods. Either may be NULL (matches nothing). A trailing slash is
 * an empty last segment, so "/x/" never matches "/x". Worst case: every
 * template against at most BR_PATH_SEGMENTS_MAX segments of the path. */
int br_route_match(const char *method, const char *path, struct br_route_match *out);

/* Whether path matches one template, segment by segment, in place (no
 * copies: this runs for every route on every request). "{id}" takes a
 * positive decimal integer (br_parse_id), "{s}" any non-empty segment of
 * 1..BR_SEGMENT_MAX-1 bytes. Fills out->id and out->segment only on a match. */
bool br_path_match(const char *tmpl, const char *path, struct br_route_match *out);

/* The method and template of a route ("GET", "/api/v1/events/{id}"). */
const char *br_route_method(enum br_route route);
const char *br_route_template(enum br_route route);

/* An id in a path: 1..BR_ID_DIGITS_MAX decimal digits, no sign, no leading
 * zero. Reads s[0..n-1] only. BR_OK or BR_E_INVALID (*out untouched). */
int br_parse_id(const char *s, size_t n, uint64_t *out);

/* GET /api/v1/events?after_id=: a non-negative integer (strtoull's reading:
 * leading spaces and a '+' pass, a value past 2^64-1 reads as 2^64-1, and
 * only a '-' in the first byte is refused). text NULL (absent) = 0. */
int br_parse_after_id(const char *text, uint64_t *out, char why[BR_WHY_MAX]);

/* The Idempotency-Key header: 1..BR_IDEM_KEY_MAX printable ASCII bytes,
 * hashed to the core's key (never 0; 0 = no key, also for key NULL). */
int br_parse_idem_key(const char *key, uint64_t *out, char why[BR_WHY_MAX]);

/* Whether a Content-Type header names the media type want, in any case,
 * followed by nothing, ';' or ' ' ("application/json; charset=utf-8").
 * ct NULL (absent) = no. */
bool br_content_type_is(const char *ct, const char *want);

/* Whether an X-Request-Id header can be the request's id as it is:
 * 1..BR_REQUEST_ID_MAX ASCII letters, digits, '-', '_' or '.', which a log
 * line and a response header carry without escaping. given NULL = no. */
bool br_request_id_ok(const char *given);

/* ---- request bodies ---- */

/* Which body a route takes. The test provider's confirm comes as JSON or,
 * like Stripe's own API, as a form ("payment_method=pm_card_visa"). */
enum br_body_kind {
    BR_BODY_REGISTER,     /* {email, password, name} */
    BR_BODY_LOGIN,        /* {email, password} */
    BR_BODY_EVENT_CREATE, /* {name, venue?, ..., zones: [...]} */
    BR_BODY_ROLE,         /* {role} */
    BR_BODY_QUEUE_JOIN,   /* {event_id} */
    BR_BODY_QUEUE_LEAVE,  /* {event_id} */
    BR_BODY_RESERVE,      /* {event_id, zone_id, quantity} */
    BR_BODY_PAYMENT,      /* {booking_id} */
    BR_BODY_CONFIRM_JSON, /* {payment_method} */
    BR_BODY_CONFIRM_FORM, /* payment_method=... */
    BR_BODY_REFRESH,      /* {refresh_token} (refresh, logout) */
    /* Issue 13: the waiting room. */
    BR_BODY_QUEUE_MODE_SET, /* {mode?, max_active?, admit_per_min?}: at least one */
    BR_BODY_CHALLENGE,      /* {event_id} (queue challenge); the register challenge has none */
    BR_BODY_COUNT
};

/* register and login. */
struct br_body_account {
    char email[BR_EMAIL_MAX];           /* lower-cased; BR_EMAIL_MIN.. bytes, one '@' inside,
                                           no space or control byte */
    char name[BR_NAME_MAX];             /* register: 1..63 bytes; login: "" */
    char password[BR_PASSWORD_MAX + 1]; /* a secret: the caller wipes it after use */
    size_t password_len;                /* register: 8..256; login: 1..256 */
    /* Issue 13, register only: the proof of work, "" = absent (server/pow.h). */
    char pow_challenge[BR_POW_CHALLENGE_MAX];
    char pow_nonce[BR_POW_NONCE_MAX];
};

/* Issue 13: queue join with its proof of work ("" = absent). event_id is the
 * struct's first member, so u.join.event_id and u.event_id are the same bytes. */
struct br_body_join {
    uint64_t event_id; /* 1..2^53 */
    char pow_challenge[BR_POW_CHALLENGE_MAX];
    char pow_nonce[BR_POW_NONCE_MAX];
};

/* Issue 13: queue_mode_set's body (POST /api/v1/admin/events/{id}/queue). */
struct br_body_queue_mode_set {
    uint8_t set;            /* BR_QSET_* of the members present, at least one */
    uint8_t mode;           /* enum br_queue_mode, when BR_QSET_MODE */
    uint32_t max_active;    /* when BR_QSET_MAX_ACTIVE */
    uint32_t admit_per_min; /* when BR_QSET_ADMIT_PER_MIN */
};

struct br_body_reserve {
    uint64_t event_id; /* 1..2^53 */
    uint32_t zone_id;  /* 1..BR_EVENT_ZONES_MAX */
    uint32_t quantity; /* 1..BR_HOLD_QUANTITY_MAX */
};

struct br_body {
    enum br_body_kind kind;
    union {
        struct br_body_account account;             /* REGISTER, LOGIN */
        struct br_event_spec event;                 /* EVENT_CREATE, queue_capacity resolved */
        uint8_t role;                               /* ROLE: enum br_role */
        uint64_t event_id;                          /* QUEUE_JOIN, QUEUE_LEAVE, CHALLENGE:
                                                       1..2^53 */
        struct br_body_join join;                   /* QUEUE_JOIN (issue 13) */
        struct br_body_queue_mode_set queue_mode;   /* QUEUE_MODE_SET (issue 13) */
        struct br_body_reserve reserve;             /* RESERVE */
        uint64_t booking_id;                        /* PAYMENT: 1..2^53 */
        struct {
            char payment_method[BR_PAYMENT_METHOD_MAX]; /* CONFIRM_*: 1..63 bytes */
            char client_secret[BR_CLIENT_SECRET_MAX];   /* CONFIRM_*: 0..95; "" = absent */
        };
        char refresh_token[BR_REFRESH_TEXT_MAX];        /* REFRESH: 1..127 bytes, a secret */
    } u;
};

/* Parses a body of the given kind (buf[0..len-1]; NULs inside are bytes of
 * the text, so a JSON text with one is refused). now_ms is the default of an
 * event's sale_opens_at. BR_OK, BR_E_CORRUPT, BR_E_INVALID or (login)
 * BR_E_UNAUTHORIZED, with the reason in why; out->kind is set either way. */
int br_parse_body(enum br_body_kind kind, const char *buf, size_t len, int64_t now_ms,
                  struct br_body *out, char why[BR_WHY_MAX]);

/* The parsers behind br_parse_body, one per body (same results). */
int br_parse_register(const char *buf, size_t len, struct br_body_account *out,
                      char why[BR_WHY_MAX]);
int br_parse_login(const char *buf, size_t len, struct br_body_account *out, char why[BR_WHY_MAX]);
/* Accepted specs hold every field in the range struct br_event_spec states,
 * except queue_capacity (any uint32 given; the core refuses above 2^30).
 * Absent: venue "", sale_opens_at now_ms, starts_at = sale_opens_at,
 * per_user_limit 4, requires_pass true, hold_ttl 600 s, max_active 100,
 * admit_per_tick 10, pass_ttl 300 s, queue_capacity 20 joins per seat
 * within 10,000..250,000. Issue 13, in "queue": admit_per_min (0..600000),
 * presence_ttl_s (0..86400), pow_bits (0..28), inventory_aware (bool: the
 * BR_QF_INVENTORY_AWARE flag), mode (a name); absent ones take
 * br_event_spec_default's (presence 300 s, inventory-aware, the rest 0). */
int br_parse_event_create(const char *buf, size_t len, int64_t now_ms, struct br_event_spec *out,
                          char why[BR_WHY_MAX]);
int br_parse_role(const char *buf, size_t len, uint8_t *role, char why[BR_WHY_MAX]);
/* {event_id} of queue join and queue leave. */
int br_parse_event_ref(const char *buf, size_t len, uint64_t *event_id, char why[BR_WHY_MAX]);
int br_parse_reserve(const char *buf, size_t len, struct br_body_reserve *out,
                     char why[BR_WHY_MAX]);
/* Issue 13: {event_id, pow_challenge?, pow_nonce?} (both or neither). */
int br_parse_queue_join(const char *buf, size_t len, struct br_body_join *out,
                        char why[BR_WHY_MAX]);
/* Issue 13: {mode?, max_active?, admit_per_min?}, at least one; set says
 * which. max_active 1..BR_MAX_ACTIVE_MAX (the core bounds it by the event's
 * own), admit_per_min 0..BR_ADMIT_PER_MIN_MAX, mode by br_queue_mode_parse. */
int br_parse_queue_mode_set(const char *buf, size_t len, struct br_body_queue_mode_set *out,
                            char why[BR_WHY_MAX]);
int br_parse_payment(const char *buf, size_t len, uint64_t *booking_id, char why[BR_WHY_MAX]);
/* {payment_method, client_secret?}; an absent secret is "" (the route
 * answers it as Stripe does), one that is not a string under
 * BR_CLIENT_SECRET_MAX bytes is BR_E_INVALID. */
int br_parse_confirm_json(const char *buf, size_t len, char pm[BR_PAYMENT_METHOD_MAX],
                          char secret[BR_CLIENT_SECRET_MAX], char why[BR_WHY_MAX]);
/* The form is read up to its first NUL, as the C string it was before. */
int br_parse_confirm_form(const char *buf, size_t len, char pm[BR_PAYMENT_METHOD_MAX],
                          char secret[BR_CLIENT_SECRET_MAX], char why[BR_WHY_MAX]);

/* Deepest nesting of arrays and objects in a JSON text, strings skipped.
 * O(len); reads buf[0..len-1] only. */
unsigned br_json_depth(const char *buf, size_t len);

/* ---- the payment provider's webhook ---- */

enum br_webhook_kind {
    BR_WEBHOOK_IGNORED = 0, /* a type we do not act on: acknowledged, nothing else */
    BR_WEBHOOK_SUCCEEDED,   /* payment_intent.succeeded */
    BR_WEBHOOK_FAILED,      /* payment_intent.payment_failed */
};

struct br_webhook_event {
    char id[BR_WEBHOOK_ID_MAX];     /* the provider's event id, 1..255 bytes (deduplication) */
    char type[BR_WEBHOOK_TYPE_MAX]; /* 1..63 bytes */
    uint8_t kind;                   /* enum br_webhook_kind, from type */
    uint64_t payment_id;            /* data.object.metadata.payment_id; 0 when ignored */
    uint64_t booking_id;            /* data.object.metadata.booking_id; 0 when absent (an
                                       intent made before it was sent) or ignored */
};

/* Parses a provider event: {id, type, data: {object: {metadata: {payment_id}}}}.
 * payment_id (a decimal string of 1..16 digits, or an integer 1..2^53) is
 * required only of the kinds we act on. Duplicated keys are tolerated (the
 * text is the provider's, and signed). BR_OK or BR_E_INVALID with why. */
int br_parse_webhook(const char *buf, size_t len, struct br_webhook_event *out,
                     char why[BR_WHY_MAX]);

/* What the webhook route does with a delivery: checks the Stripe-Signature
 * header (adapters/provider_sig.h; header may be NULL) over the raw bytes at
 * now_s, and only then parses them. BR_OK; BR_E_INVALID for a malformed
 * header or payload (400); BR_E_UNAUTHORIZED for a wrong or stale signature
 * (401); why says which. */
int br_webhook_accept(const char *secret, const char *header, const char *buf, size_t len,
                      int64_t now_s, struct br_webhook_event *out, char why[BR_WHY_MAX]);

/* The same with any of secrets[0..n) (n 1..BR_PROVIDER_SIG_SECRETS_MAX:
 * endpoint secrets while one is rotated) and a tolerance of tolerance_s. */
int br_webhook_accept_any(const char *const *secrets, size_t n, int64_t tolerance_s,
                          const char *header, const char *buf, size_t len, int64_t now_s,
                          struct br_webhook_event *out, char why[BR_WHY_MAX]);

#endif
