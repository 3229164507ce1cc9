/*
 * render.h -- the API's JSON shapes (server/openapi.json) and its time
 * format, written once for the routes and the SSE fan-out alike.
 *
 * Times are RFC 3339 in UTC with milliseconds ("2026-05-01T18:00:00.000Z");
 * parsing accepts any offset ("+02:00") and optional fractions. Money is an
 * integer of minor units with a currency code; ids are JSON integers.
 * Durations in seconds (pass_ttl_s, hold_ttl_s) are integers when whole and
 * reals otherwise, because the core keeps milliseconds. An estimated wait
 * (estimated_wait_s) is null when no wait will end in a pass (sold out,
 * closed: the core's UINT32_MAX).
 */
#ifndef BR_RENDER_H
#define BR_RENDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "server/backend.h"

#define BR_TIME_TEXT_MAX 32u /* "YYYY-MM-DDTHH:MM:SS.mmmZ" incl. NUL */

/* Formats ms since the epoch into out (BR_TIME_TEXT_MAX bytes). */
void br_time_format(int64_t ms, char out[BR_TIME_TEXT_MAX]);

/* Parses an RFC 3339 date-time. 0 on success, -1 otherwise; the instant
 * (offset applied) must lie in 1970..9999 UTC, what br_time_format writes. */
int br_time_parse(const char *s, int64_t *ms);

/* Names the API uses (lower case, stable). */
const char *br_role_text(uint8_t role);
int br_role_parse(const char *s, uint8_t *role); /* 0 or -1 */
/* Hold, queue and payment states use the core's names (br_hold_state_name, ...). */

/* The objects. Each returns a new reference (NULL only when out of memory). */
json_t *br_render_user(const struct br_api_user *u);
json_t *br_render_event(const struct br_api_event *e);
/* pass_token may be NULL (then no "pass" member even when admitted). */
json_t *br_render_queue(const struct br_api_queue *q, const char *pass_token);
/* Issue 13: GET /api/v1/events/{id}/queue and the answer of a mode change. */
json_t *br_render_queue_status(const struct br_api_queue_status *st);
/* "none", "measured", "configured" (enum br_estimate_basis). */
const char *br_estimate_basis_text(uint8_t basis);
json_t *br_render_pass(uint64_t event_id, const char *token, int64_t expires_at_ms);
/* The same bytes as the compact dump of br_render_queue(q, NULL) and of
 * br_render_pass, written with snprintf into out (cap bytes, NUL included)
 * without building a JSON tree: the SSE fan-out writes one per stream on
 * every position change. token must be a pass token (base64url and dots:
 * nothing to escape). Return the length, 0 when out is too small. */
size_t br_render_queue_text(const struct br_api_queue *q, char *out, size_t cap);
size_t br_render_pass_text(uint64_t event_id, const char *token, int64_t expires_at_ms, char *out,
                           size_t cap);
json_t *br_render_booking(const struct br_api_booking *b);
/* The same object as br_render_booking, written straight into a malloc'd
 * string (the reserve path's answer, without building a JSON tree). */
char *br_render_booking_text(const struct br_api_booking *b, size_t *len);
json_t *br_render_payment(const struct br_api_payment *p);
json_t *br_render_stats(const struct br_api_stats *s);

/* {"error":{"code":...,"message":...}} as a malloc'd string; *len set. */
char *br_render_error(const char *code, const char *message, size_t *len);

/* Compact serialisation of j (consumed: decref'd). NULL when out of memory. */
char *br_render_dump(json_t *j, size_t *len);

#endif
