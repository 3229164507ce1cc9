/*
 * err.h -- the one table of Booking Rush error values.
 *
 * Every module, core and adapters alike, returns these. BR_OK is 0 and every
 * error is negative (as in libuv), so `if (rc < 0)` is the failure test. The
 * table below generates the enum, br_err_name() (a stable upper-case code that
 * the HTTP layer puts in {"error":{"code":...}}) and br_err_message().
 *
 * Expected failures (sold out, over the limit, pass expired, duplicate) are
 * values here; programmer errors are BR_ASSERT failures, never values.
 */
#ifndef BR_ERR_H
#define BR_ERR_H

/* X(symbol, value, code, http_status, message): http_status is what the HTTP layer answers
 * for the value (a plain number, so the core stays free of HTTP). */
#define BR_ERR_MAP(X)                                                                          \
    X(BR_OK, 0, "OK", 200, "success")                                                          \
    X(BR_E_INVALID, -1, "INVALID_REQUEST", 400, "the request is malformed or out of range")    \
    X(BR_E_UNAUTHORIZED, -2, "UNAUTHORIZED", 401, "authentication is required")                \
    X(BR_E_FORBIDDEN, -3, "FORBIDDEN", 403, "the acting user may not do this")                 \
    X(BR_E_NOT_FOUND, -4, "NOT_FOUND", 404, "no such entity")                                  \
    X(BR_E_FULL, -5, "CAPACITY_EXHAUSTED", 503, "a fixed-size table is full")                  \
    X(BR_E_SOLD_OUT, -6, "SOLD_OUT", 409, "not enough seats left in the zone")                 \
    X(BR_E_LIMIT_EXCEEDED, -7, "LIMIT_EXCEEDED", 409, "over the per-user ticket limit")        \
    X(BR_E_BOOKING_NOT_HELD, -8, "BOOKING_NOT_HELD", 409, "the booking is not in state held")  \
    X(BR_E_PASS_REQUIRED, -9, "PASS_REQUIRED", 403, "this event requires a queue pass")        \
    X(BR_E_PASS_INVALID, -10, "PASS_INVALID", 403, "the queue pass is unknown or used")        \
    X(BR_E_PASS_EXPIRED, -11, "PASS_EXPIRED", 403, "the queue pass has expired")               \
    X(BR_E_HOLD_EXPIRED, -12, "HOLD_EXPIRED", 410, "the hold has expired")                     \
    X(BR_E_IDEMPOTENCY_CONFLICT, -13, "IDEMPOTENCY_CONFLICT", 422,                             \
      "the idempotency key was used for a different request")                                  \
    X(BR_E_EMAIL_TAKEN, -14, "EMAIL_TAKEN", 409, "the email address is already registered")    \
    X(BR_E_DUPLICATE, -15, "DUPLICATE", 409, "already processed; nothing changed")             \
    X(BR_E_NOT_IN_QUEUE, -16, "NOT_IN_QUEUE", 404, "the user is not in this queue")            \
    X(BR_E_SALE_NOT_OPEN, -17, "SALE_NOT_OPEN", 409, "the sale has not opened yet")            \
    X(BR_E_RATE_LIMITED, -18, "RATE_LIMITED", 429, "too many requests")                        \
    X(BR_E_PAYLOAD_TOO_LARGE, -19, "PAYLOAD_TOO_LARGE", 413, "the request body is too large")  \
    X(BR_E_TRUNCATED, -20, "TRUNCATED", 400, "the input ends inside a record")                 \
    X(BR_E_CORRUPT, -21, "CORRUPT", 400, "a record fails its checksum or is malformed")        \
    X(BR_E_VERSION, -22, "UNSUPPORTED_VERSION", 400, "unsupported format version")             \
    X(BR_E_IO, -23, "IO_ERROR", 500, "an input/output operation failed")                       \
    X(BR_E_UNAVAILABLE, -24, "UNAVAILABLE", 503, "a backing service is unavailable")           \
    X(BR_E_UNKNOWN_OUTCOME, -25, "UNKNOWN_OUTCOME", 503,                                       \
      "the request was sent but its outcome is unknown; retry with the idempotency key")       \
    X(BR_E_DIVERGED, -26, "DIVERGED", 500, "a replayed outcome differs from the recorded one") \
    X(BR_E_STORAGE_UNAVAILABLE, -27, "STORAGE_UNAVAILABLE", 503,                               \
      "the server cannot write durably right now; retry later")                                \
    X(BR_E_OVERLOADED, -28, "OVERLOADED", 503,                                                 \
      "the server is busy with this kind of request; retry shortly")                          \
    /* Issue 13: the waiting room. */                                                          \
    X(BR_E_QUEUE_CLOSED, -29, "QUEUE_CLOSED", 409, "the event's queue is closed to new joins") \
    X(BR_E_POW_REQUIRED, -30, "POW_REQUIRED", 403,                                             \
      "this event requires a proof of work: get a challenge first")                            \
    X(BR_E_POW_INVALID, -31, "POW_INVALID", 403,                                               \
      "the proof of work is wrong, expired, for another request or already used")             \
    X(BR_E_JOIN_LIMITED, -32, "JOIN_LIMITED", 429, "too many joins from this address")

enum br_err {
#define BR_ERR_ENUM(sym, val, code, status, msg) sym = (val),
    BR_ERR_MAP(BR_ERR_ENUM)
#undef BR_ERR_ENUM
};

#define BR_ERR_COUNT 33

/* The HTTP status for an error value (200 for BR_OK, 500 if not in the table). */
unsigned br_err_http_status(int err);

/* Stable upper-case code for an error value ("SOLD_OUT"); "UNKNOWN" if not in the table. */
const char *br_err_name(int err);

/* One-sentence English description of an error value. */
const char *br_err_message(int err);

#endif
