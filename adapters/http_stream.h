/*
 * http_stream.h -- long-lived response streams (server-sent events) served
 * outside libmicrohttpd, on the adapter's own epoll loops.
 *
 * Why: libmicrohttpd 0.9.75 parks a stream with nothing to send by
 * suspending its connection, and every turn of a loop thread on which any
 * connection resumes walks that thread's whole list of suspended
 * connections (resume_suspended_connections). With 10,000 queue streams
 * held, each deferred answer (every reserve waits for the journal) and each
 * pass cost a walk of 5,000 connections per thread: 11% of the server's CPU
 * in a 10k rush, at the opening when it counts (make bench, 2026-12-06).
 *
 * So http.c hands a stream's socket over here once its request is read
 * (a duplicate of the descriptor; libmicrohttpd then forgets the
 * connection without shutting the socket down, which its TURBO mode
 * guarantees). A stream loop writes the response header, then pulls the
 * application's bytes whenever br_http_stream_poke says there are some,
 * frames them (chunked for HTTP/1.1, close-delimited for HTTP/1.0), and
 * closes the connection when the application ends the stream or the peer
 * goes away. A poke costs a mutex and, when the loop was idle, one eventfd
 * write; nothing walks the streams that have nothing to say.
 *
 * Threads: `loops` threads, each owning the streams it was given (round
 * robin). The pull and done callbacks run on a stream's loop thread, never
 * concurrently for one stream; done runs exactly once, after which the
 * stream is gone and must not be poked.
 */
#ifndef BR_HTTP_STREAM_H
#define BR_HTTP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "adapters/log.h"

struct br_http_streams;
struct br_http_stream;

/* Up to max bytes into buf: the count (> 0), 0 for nothing now (wait for a
 * poke), -1 to end the stream. */
typedef ssize_t (*br_http_stream_pull_fn)(void *cls, char *buf, size_t max);
/* The stream is over (ended, peer gone, write failed, or the loops stop). */
typedef void (*br_http_stream_done_fn)(void *cls);

/* Starts `loops` (>= 1) loop threads. BR_OK, BR_E_IO (logged) or
 * BR_E_INVALID. */
int br_http_streams_start(struct br_http_streams **out, unsigned loops, const struct br_log *log);

/* Takes over fd (a connected socket, now owned here) and writes head (the
 * response header block, copied) before the first pull. chunked: frame the
 * pulled bytes as HTTP/1.1 chunks; no_body: write the head only and end (a
 * HEAD request). The stream starts with its first br_http_stream_poke
 * (until then nothing happens, so the caller can publish it first). Returns
 * NULL when out of memory (fd is closed and done is NOT called: the caller
 * still owns what cls points to). */
struct br_http_stream *br_http_stream_new(struct br_http_streams *ss, int fd, const char *head,
                                          size_t head_len, bool chunked, bool no_body,
                                          br_http_stream_pull_fn pull,
                                          br_http_stream_done_fn done, void *cls);

/* There may be bytes to pull (or, the first time, the stream starts): the
 * stream's loop pulls soon. Any thread; never after the stream's done
 * callback has run. */
void br_http_stream_poke(struct br_http_stream *st);

/* Streams taken over and not yet done. */
unsigned br_http_streams_open(const struct br_http_streams *ss);

/* Stops the loops: every open stream is closed and its done callback runs
 * (on its loop thread) before this returns. No stream may be made or poked
 * any more. ss may be NULL. */
void br_http_streams_stop(struct br_http_streams *ss);

#endif
