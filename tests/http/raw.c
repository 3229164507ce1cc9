/* raw.c -- exact bytes over TCP and hand-started servers (see raw.h). */
#define _DEFAULT_SOURCE

#include "raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void append(struct t_exchange *x, const char *buf, size_t n)
{
    char *p = realloc(x->data, x->len + n + 1);
    if (p == NULL) {
        abort();
    }
    memcpy(p + x->len, buf, n);
    x->data = p;
    x->len += n;
    x->data[x->len] = '\0';
}

void t_exchange(uint16_t port, const void *data, size_t len, int timeout_ms, struct t_exchange *x)
{
    memset(x, 0, sizeof *x);
    x->data = calloc(1, 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, p + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            break; /* the server answered and closed early */
        }
        off += (size_t)w;
    }
    x->sent_all = off == len;
    int64_t until = mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = until - mono_ms();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, (int)left) == 0) {
            x->timed_out = true;
            break;
        }
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            append(x, buf, (size_t)n);
        } else if (n == 0) {
            x->eof = true;
            break;
        } else if (errno != EINTR) {
            x->reset = errno == ECONNRESET;
            break;
        }
    }
    close(fd);
}

void t_exchange_free(struct t_exchange *x)
{
    free(x->data);
    memset(x, 0, sizeof *x);
}

unsigned t_status_lines(const struct t_exchange *x)
{
    unsigned n = 0;
    /* Anywhere: a pipelined answer follows the previous body directly. */
    for (size_t i = 0; i + 13 <= x->len; i++) {
        const char *p = x->data + i;
        if (memcmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ' && p[9] >= '1' && p[9] <= '5' &&
            p[12] == ' ') {
            n++;
        }
    }
    return n;
}

int t_first_status(const struct t_exchange *x)
{
    int status = 0;
    if (x->len < 12 || sscanf(x->data, "HTTP/1.%*d %d", &status) != 1) {
        return 0;
    }
    return status;
}

void t_error_code(const struct t_exchange *x, char *out, size_t cap)
{
    snprintf(out, cap, "%s", "");
    const char *body = strstr(x->data, "\r\n\r\n");
    if (body == NULL) {
        return;
    }
    json_error_t err;
    json_t *j = json_loadb(body + 4, x->len - (size_t)(body + 4 - x->data),
                           JSON_DISABLE_EOF_CHECK, &err);
    const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(out, cap, "%s", code != NULL ? code : "");
    json_decref(j);
}

uint16_t t_base_port(const char *base)
{
    unsigned port = 0;
    const char *colon = strrchr(base, ':');
    if (colon == NULL || sscanf(colon + 1, "%u", &port) != 1 || port > 65535) {
        return 0;
    }
    return (uint16_t)port;
}

pid_t t_spawn(const char *const *argv, const char *out_path, const char *err_path)
{
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int err = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (out < 0 || err < 0) {
        _exit(127);
    }
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
    execv(argv[0], (char *const *)(uintptr_t)argv);
    _exit(127);
}

bool t_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t until = mono_ms() + timeout_ms;
    for (;;) {
        if (waitpid(pid, status, WNOHANG) == pid) {
            return true;
        }
        if (mono_ms() > until) {
            return false;
        }
        struct timespec d = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
        nanosleep(&d, NULL);
    }
}

uint16_t t_port_file(const char *path, pid_t pid, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms;
    while (mono_ms() < until) {
        FILE *f = fopen(path, "r");
        unsigned port = 0;
        if (f != NULL) {
            int got = fscanf(f, "%u", &port);
            fclose(f);
            if (got == 1 && port > 0 && port <= 65535) {
                return (uint16_t)port;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return 0;
        }
        struct timespec d = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
        nanosleep(&d, NULL);
    }
    return 0;
}

char *t_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        char *p = realloc(buf, n + got + 1);
        if (p == NULL) {
            abort();
        }
        memcpy(p + n, chunk, got);
        buf = p;
        n += got;
    }
    fclose(f);
    if (buf == NULL) {
        buf = calloc(1, 1);
    } else {
        buf[n] = '\0';
    }
    if (len != NULL) {
        *len = n;
    }
    return buf;
}
