/*
 * rush_http.h -- the rush client's pure, resumable parsers: an HTTP/1.1
 * response (Content-Length, chunked, close-delimited) and a server-sent
 * events stream (WHATWG rules). No I/O, no allocation, no clock; fed any
 * split of the bytes, they give the same result.
 */
#ifndef BR_SERVER_RUSH_HTTP_H
#define BR_SERVER_RUSH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#define BR_RUSH_HEADERS_MAX 8192u
#define BR_RUSH_SSE_LINE_MAX 2048u
#define BR_RUSH_SSE_DATA_MAX 2048u
enum { BR_RUSH_PARSE_ERROR = -1, BR_RUSH_PARSE_AGAIN = 0, BR_RUSH_PARSE_DONE = 1 };
typedef void (*br_rush_body_fn)(void *ctx, const char *bytes, size_t n);   /* decoded body bytes */
struct br_rush_http_resp {
    int status; int64_t content_length;         /* -1 = none */
    bool chunked, close, headers_done; uint32_t retry_after_s; char content_type[64];
    uint8_t state; uint64_t left; size_t header_bytes; char line[256]; size_t line_len; /* private */
    uint8_t flags;                              /* private: HTTP/1.0, keep-alive, other coding */
};
void br_rush_http_resp_init(struct br_rush_http_resp *p);
/* Consumes in[0..n); *used = bytes taken (the rest is the next answer's). DONE, AGAIN or ERROR (why). */
int br_rush_http_feed(struct br_rush_http_resp *p, const char *in, size_t n, size_t *used,
                      br_rush_body_fn fn, void *ctx, char why[96]);
int br_rush_http_eof(struct br_rush_http_resp *p);  /* peer closed: DONE for a close-delimited body, else ERROR */
struct br_rush_sse_event { const char *event; const char *data; size_t data_len; }; /* event "message" if unnamed */
typedef void (*br_rush_sse_fn)(void *ctx, const struct br_rush_sse_event *ev);
struct br_rush_sse {
    char last_id[64]; bool has_id; uint32_t retry_ms; uint64_t comments;  /* public: EventSource state */
    char line[BR_RUSH_SSE_LINE_MAX]; size_t line_len; bool cr_pending;    /* private */
    char event[32]; char data[BR_RUSH_SSE_DATA_MAX]; size_t data_len; bool data_set;
    char id_buf[64]; bool id_buf_set;           /* private: the id field, made last_id at dispatch */
};
void br_rush_sse_init(struct br_rush_sse *s);
/* fn once per dispatched event. 0, or -1 when a line or the data exceeds its max (stream broken). */
int br_rush_sse_feed(struct br_rush_sse *s, const char *in, size_t n, br_rush_sse_fn fn, void *ctx);

#endif /* BR_SERVER_RUSH_HTTP_H */
