/*
 * raw.h -- what the framing and operations tests need beyond client.h: an
 * exchange of exact bytes over a fresh TCP connection read until the server
 * closes it, and the server binary started by hand (own flags, stdout and
 * stderr kept apart) for tests of start-up and logs.
 */
#ifndef BR_TEST_HTTP_RAW_H
#define BR_TEST_HTTP_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct t_exchange {
    char *data;       /* everything read, NUL-terminated (may hold NULs) */
    size_t len;
    bool sent_all;    /* every byte was written */
    bool eof;         /* the server closed cleanly (FIN) */
    bool reset;       /* the connection was reset */
    bool timed_out;   /* still open after the timeout */
};

/* Connects to 127.0.0.1:port, writes data (stops at the first failure),
 * then reads until the server closes the connection or timeout_ms pass. */
void t_exchange(uint16_t port, const void *data, size_t len, int timeout_ms,
                struct t_exchange *x);
void t_exchange_free(struct t_exchange *x);

/* Status lines ("HTTP/1.x NNN") in what was read, and the first status. */
unsigned t_status_lines(const struct t_exchange *x);
int t_first_status(const struct t_exchange *x);
/* The error code of the JSON body of the first answer, "" when none. */
void t_error_code(const struct t_exchange *x, char *out, size_t cap);

/* The port of a t_server's base URL. */
uint16_t t_base_port(const char *base);

/* Starts argv[0] with argv, stdout and stderr appended to the given files.
 * The child dies with the test. */
pid_t t_spawn(const char *const *argv, const char *out_path, const char *err_path);
/* Waits up to timeout_ms for pid to exit. Returns true with *status (as
 * waitpid gives it) when it did. */
bool t_wait_exit(pid_t pid, int timeout_ms, int *status);
/* Reads the port written to path by --port-file, 0 after timeout_ms (or
 * when pid exits first). */
uint16_t t_port_file(const char *path, pid_t pid, int timeout_ms);
/* The whole file, NUL-terminated (malloc'd), or NULL. */
char *t_slurp(const char *path, size_t *len);

#endif
