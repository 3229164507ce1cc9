/*
 * bench_dist_load.h -- a small closed-loop HTTP/1.1 load generator for the
 * distributed benchmark (server/bench_dist.c): a fixed list of requests is
 * sent over a fixed number of keep-alive connections spread over several
 * 127.0.0.1 ports, each connection sending its next request as soon as the
 * previous answer is complete (as wrk does), until the list is done.
 *
 * Unlike wrk, the work is finite and the elapsed time is the time the list
 * took, so a run whose requests are single-use (a queue pass is consumed by
 * its hold) is measured exactly. Each request's status, latency (send of
 * the first byte to the last byte of the answer, in microseconds) and,
 * when asked, body are kept.
 *
 * Limits: one thread (epoll), answers with Content-Length only (no chunked
 * encoding: the server never sends it for these routes), an answer's
 * headers + body at most BD_ANSWER_MAX bytes, at most BD_CONNS_MAX
 * connections; a connection the server closes is opened again and its
 * request sent again only if nothing of it was answered, at most
 * BD_REDIALS_MAX times in a row (a server gone fails the run).
 */
#ifndef BR_BENCH_DIST_LOAD_H
#define BR_BENCH_DIST_LOAD_H

#include <stddef.h>
#include <stdint.h>

#define BD_ANSWER_MAX 16384
#define BD_CONNS_MAX 256
#define BD_PORTS_MAX 8
#define BD_REDIALS_MAX 3 /* a connection closed this often without an answer fails the run */

struct bd_req {
    char *text; /* the whole request, owned by the caller */
    size_t len;
    int status;          /* out: HTTP status, 0 = no answer */
    uint32_t latency_us; /* out */
    char *body;          /* out when keep_bodies: malloc'd, NUL-terminated; caller frees */
};

/* Sends reqs[0..n) over conns connections (connection i to ports[i %
 * nports]). Returns 0 when every request got an answer, else -1 after a
 * message on stderr (connect failure, a malformed or oversized answer,
 * timeout_s exceeded). *elapsed_s: from the first send to the last answer. */
int bd_run(const unsigned *ports, unsigned nports, unsigned conns, struct bd_req *reqs, size_t n,
           int keep_bodies, double timeout_s, double *elapsed_s);

/* The text of one HTTP/1.1 request to 127.0.0.1: method, path, an optional
 * bearer token, nheaders more headers as name/value pairs in headers[0..2n)
 * (a NULL value leaves its header out), an optional JSON body. malloc'd
 * (the caller frees it); *len set. NULL when out of memory. */
char *bd_request_text(const char *method, const char *path, const char *token,
                      const char *const *headers, size_t nheaders, const char *body, size_t *len);

#endif
