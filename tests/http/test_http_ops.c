/*
 * test_http_ops.c -- what the operator meets, through the real binary:
 * a second server on a port in use refuses to start (with the address, the
 * port and the reason) unless both ask to share it with --reuse-port; a
 * restart binds the same port at once after a stop; the default server
 * listens on 127.0.0.1 only and says so; every line the server writes on
 * stderr is a JSON object with a timestamp, whatever bytes a client put in
 * its request path.
 *
 * Usage: test_http_ops BINARY   (needs the process: skipped against a base
 * URL)
 */
#define _DEFAULT_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "raw.h"

#define START_MS 60000

/* A server started by hand in its own temporary directory. */
struct proc {
    char dir[64];
    char out[96];
    char err[96];
    char port_file[96];
    pid_t pid;
    uint16_t port;
};

/* Starts `serve` with the given flags (NULL-terminated) plus a fresh data
 * dir and a port file; waits for the port unless expect_exit. */
static void proc_start(struct proc *p, const char *const *flags, bool expect_exit)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/br-ops-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->out, sizeof p->out, "%s/out", p->dir);
    snprintf(p->err, sizeof p->err, "%s/err", p->dir);
    snprintf(p->port_file, sizeof p->port_file, "%s/port", p->dir);
    char data[96];
    snprintf(data, sizeof data, "%s/data", p->dir);
    const char *argv[32];
    int n = 0;
    argv[n++] = t_binary();
    argv[n++] = "serve";
    argv[n++] = "--data-dir";
    argv[n++] = data;
    argv[n++] = "--port-file";
    argv[n++] = p->port_file;
    for (int i = 0; flags[i] != NULL && n < 31; i++) {
        argv[n++] = flags[i];
    }
    argv[n] = NULL;
    p->pid = t_spawn(argv, p->out, p->err);
    assert_true(p->pid > 0);
    if (!expect_exit) {
        p->port = t_port_file(p->port_file, p->pid, START_MS);
        if (p->port == 0) {
            char *e = t_slurp(p->err, NULL);
            fail_msg("the server did not start: %s", e != NULL ? e : "");
        }
    }
}

/* SIGTERM and wait. Returns the exit status or -1. */
static int proc_halt(struct proc *p)
{
    int status = 0;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        if (!t_wait_exit(p->pid, START_MS, &status)) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            status = -1;
        }
        p->pid = 0;
    }
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Halts the server and removes its directory. Returns the exit status. */
static int proc_stop(struct proc *p)
{
    int rc = proc_halt(p);
    if (getenv("BR_TEST_KEEP") == NULL) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", p->dir);
        }
    }
    return rc;
}

static long get_status(uint16_t port, const char *path)
{
    struct t_server s;
    memset(&s, 0, sizeof s);
    snprintf(s.base, sizeof s.base, "http://127.0.0.1:%u", (unsigned)port);
    struct t_resp r;
    t_request(&s, "GET", path, NULL, NULL, NULL, 0, &r);
    long st = r.status;
    t_resp_free(&r);
    return st;
}

static void test_port_in_use_refused(void **state)
{
    (void)state;
    struct proc a;
    struct proc b;
    proc_start(&a, (const char *const[]){"--bind", "127.0.0.1", "--port", "0", NULL}, false);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)a.port);
    proc_start(&b, (const char *const[]){"--bind", "127.0.0.1", "--port", port, NULL}, true);
    int status = 0;
    bool exited = t_wait_exit(b.pid, START_MS, &status);
    char *err = t_slurp(b.err, NULL);
    if (!exited) {
        kill(b.pid, SIGKILL);
        waitpid(b.pid, &status, 0);
        b.pid = 0;
        fail_msg("a second server started on port %s, which is in use: %s", port, err);
    }
    b.pid = 0;
    char want_port[32];
    snprintf(want_port, sizeof want_port, "\"port\":%s", port);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0 || strstr(err, "cannot listen") == NULL ||
        strstr(err, "\"addr\":\"127.0.0.1\"") == NULL || strstr(err, want_port) == NULL ||
        strstr(err, "Address already in use") == NULL) {
        fail_msg("want a non-zero exit naming the address, port and reason, got %d: %s", status,
                 err);
    }
    free(err);
    /* The first server is untouched. */
    assert_int_equal(get_status(a.port, "/healthz"), 200);
    proc_stop(&b);
    assert_int_equal(proc_stop(&a), 0);
}

static void test_reuse_port_shares(void **state)
{
    (void)state;
    struct proc a;
    struct proc b;
    proc_start(&a, (const char *const[]){"--bind", "127.0.0.1", "--port", "0", "--reuse-port",
                                         NULL},
               false);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)a.port);
    proc_start(&b, (const char *const[]){"--bind", "127.0.0.1", "--port", port, "--reuse-port",
                                         NULL},
               false);
    assert_int_equal(b.port, a.port);
    assert_int_equal(get_status(a.port, "/healthz"), 200);
    assert_int_equal(proc_stop(&b), 0);
    assert_int_equal(proc_stop(&a), 0);
}

/* Whether a TCP socket in TIME_WAIT has this local port (/proc/net/tcp). */
static bool time_wait_on(uint16_t port)
{
    char *tcp = t_slurp("/proc/net/tcp", NULL);
    char want[16];
    snprintf(want, sizeof want, ":%04X ", (unsigned)port);
    bool found = false;
    for (char *line = tcp; line != NULL && *line != '\0' && !found;) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        char local[64] = "";
        char remote[64] = "";
        char st[8] = "";
        if (sscanf(line, "%*s %63s %63s %7s", local, remote, st) == 3) {
            strcat(local, " ");
            found = strstr(local, want) != NULL && strcmp(st, "06") == 0;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(tcp);
    return found;
}

static void test_restart_same_port(void **state)
{
    (void)state;
    struct proc a;
    proc_start(&a, (const char *const[]){"--bind", "127.0.0.1", "--port", "0", NULL}, false);
    uint16_t p = a.port;
    /* Connections the server closes first leave TIME_WAIT on its port. */
    static const char REQ[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        struct t_exchange x;
        t_exchange(p, REQ, sizeof REQ - 1, 10000, &x);
        assert_int_equal(t_first_status(&x), 200);
        t_exchange_free(&x);
    }
    assert_int_equal(proc_stop(&a), 0);
    bool tw = time_wait_on(p);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)p);
    struct proc b;
    proc_start(&b, (const char *const[]){"--bind", "127.0.0.1", "--port", port, NULL}, false);
    assert_int_equal(b.port, p);
    assert_int_equal(get_status(p, "/healthz"), 200);
    assert_int_equal(proc_stop(&b), 0);
    printf("restart on port %u with%s TIME_WAIT sockets: fine\n", (unsigned)p, tw ? "" : "out");
}

/* Listening sockets on this port in /proc/net/tcp: 1 when one listens on
 * 127.0.0.1 only, -1 when one listens on another address, 0 if none. */
static int listening_on(uint16_t port)
{
    char *tcp = t_slurp("/proc/net/tcp", NULL);
    char want[16];
    snprintf(want, sizeof want, ":%04X", (unsigned)port);
    int verdict = 0;
    for (char *line = tcp; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        char local[64] = "";
        char st[8] = "";
        if (sscanf(line, "%*s %63s %*s %7s", local, st) == 2 && strcmp(st, "0A") == 0) {
            char *colon = strchr(local, ':');
            if (colon != NULL && strcmp(colon, want) == 0) {
                *colon = '\0';
                verdict = strcmp(local, "0100007F") == 0 && verdict >= 0 ? 1 : -1;
            }
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(tcp);
    return verdict;
}

/* An IPv4 address of this machine other than loopback, "" if none. */
static void other_address(char *out, size_t cap)
{
    snprintf(out, cap, "%s", "");
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) {
        return;
    }
    for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET) {
            continue;
        }
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)i->ifa_addr;
        if ((ntohl(in->sin_addr.s_addr) >> 24) != 127) {
            inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)cap);
            break;
        }
    }
    freeifaddrs(ifs);
}

static void test_default_bind_is_loopback(void **state)
{
    (void)state;
    struct proc a;
    proc_start(&a, (const char *const[]){"--port", "0", NULL}, false);
    assert_int_equal(listening_on(a.port), 1);
    char other[64];
    other_address(other, sizeof other);
    if (other[0] != '\0') {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(a.port);
        inet_pton(AF_INET, other, &sa.sin_addr);
        int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        close(fd);
        if (rc == 0) {
            fail_msg("the default server answers on %s", other);
        }
        printf("not reachable on %s:%u: fine\n", other, (unsigned)a.port);
    } else {
        printf("no address other than loopback here: checked /proc/net/tcp only\n");
    }
    char *err = t_slurp(a.err, NULL);
    char *out = t_slurp(a.out, NULL);
    bool says = strstr(err, "\"msg\":\"listening\"") != NULL &&
                strstr(err, "\"bind\":\"127.0.0.1\"") != NULL &&
                strstr(out, "http://127.0.0.1:") != NULL;
    if (!says) {
        fail_msg("the start-up lines do not name 127.0.0.1:\n%s\n%s", err, out);
    }
    free(err);
    free(out);
    assert_int_equal(proc_stop(&a), 0);
}

/* Every line of text is a JSON object with a "ts" string (jansson checks
 * UTF-8 too). Returns the number of lines. */
static unsigned check_json_lines(char *text)
{
    unsigned lines = 0;
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        json_error_t e;
        json_t *j = json_loads(line, JSON_DECODE_ANY, &e);
        if (!json_is_object(j) || !json_is_string(json_object_get(j, "ts"))) {
            fail_msg("not a JSON line with a timestamp (%s): %s", e.text, line);
        }
        json_decref(j);
        lines++;
        line = nl != NULL ? nl + 1 : NULL;
    }
    return lines;
}

static void test_log_lines_are_json(void **state)
{
    (void)state;
    struct proc a;
    proc_start(&a, (const char *const[]){"--bind", "127.0.0.1", "--port", "0", "--log-level",
                                         "info", NULL},
               false);
    static const char *const PATHS[] = {
        "/a%00b",  "/a%ffb",  "/a\xff\xfe" "b", "/a\"b\\c", "/a%0ab%0d%0a{\"x\":1}",
        "/a%22b%5c", "/a%c3%28", "/%e2%82", "/a%01%1f%7f", "/%f4%90%80%80", "/%ed%a0%80",
        "/ok-%c3%a9-%e2%82%ac"};
    for (size_t i = 0; i < sizeof PATHS / sizeof PATHS[0]; i++) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                         PATHS[i]);
        struct t_exchange x;
        t_exchange(a.port, req, (size_t)n, 10000, &x);
        t_exchange_free(&x);
    }
    /* Lines from the adapter and from libmicrohttpd too. */
    static const char BAD[] = "POST /x%ff HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                              "Content-Length: 2\r\n\r\n{}";
    static const char NEG[] = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n";
    struct t_exchange x;
    t_exchange(a.port, BAD, sizeof BAD - 1, 10000, &x);
    t_exchange_free(&x);
    t_exchange(a.port, NEG, sizeof NEG - 1, 10000, &x);
    t_exchange_free(&x);
    assert_int_equal(proc_halt(&a), 0); /* the "stopped" line is written */
    char *err = t_slurp(a.err, NULL);
    assert_non_null(err);
    unsigned requests = 0;
    for (const char *at = err; (at = strstr(at, "\"msg\":\"request\"")) != NULL; at++) {
        requests++;
    }
    unsigned lines = check_json_lines(err);
    free(err);
    /* Every odd path was logged (not dropped), and so were the rest. */
    assert_true(requests >= sizeof PATHS / sizeof PATHS[0]);
    assert_true(lines >= requests + 4);
    proc_stop(&a);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    if (t_external()) {
        printf("skipped: the operations tests start their own servers\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_in_use_refused),    cmocka_unit_test(test_reuse_port_shares),
        cmocka_unit_test(test_restart_same_port),      cmocka_unit_test(test_default_bind_is_loopback),
        cmocka_unit_test(test_log_lines_are_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
