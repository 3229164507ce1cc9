/*
 * kafka_dev_cmd.c -- `bookingrush kafka-dev`: a Kafka for local runs and
 * tests, librdkafka's mock cluster (rdkafka_mock.h, marked experimental by
 * librdkafka) in this process, listening on 127.0.0.1 on ports the kernel
 * picks.
 *
 * Creates <prefix>payments and <prefix>effects (--partitions each) and
 * <prefix>payments.dlq (1), prints "bootstrap=h:p,..." on stdout (and writes
 * the bare list to --port-file), then answers control lines on stdin until
 * SIGINT or SIGTERM (stdin reaching its end changes nothing):
 *   down <broker|-1>            brokers refuse connections
 *   up <broker|-1>              and accept them again
 *   errors <ApiKey> <n> <err>   the next n requests of ApiKey fail with err
 *                               (a number or a name like REQUEST_TIMED_OUT)
 *   rtt <broker|-1> <ms>        a round-trip delay
 *   clear <ApiKey>              forget the errors pushed for ApiKey
 * each answered "ok" or "err <why>" on its own line. Data lives in memory
 * only: it is gone when the process ends. Limits: no retention (the bench
 * bounds its counts), no topic creation by clients beyond librdkafka's own
 * auto-creation.
 */
#define _POSIX_C_SOURCE 200809L
#include "server/kafka_dev_cmd.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/cli.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bookingrush kafka-dev [--brokers N] [--partitions N] [--prefix P]\n"
               "                             [--port-file F]\n\n"
               "Runs a Kafka mock cluster (librdkafka's, in memory) on 127.0.0.1 for local\n"
               "runs and tests. Creates the topics <prefix>payments and <prefix>effects\n"
               "(--partitions each) and <prefix>payments.dlq (1 partition), prints\n"
               "bootstrap=HOST:PORT,... on stdout, and runs until SIGINT or SIGTERM.\n"
               "Nothing is kept on disk: every message is lost when it stops.\n\n"
               "  --brokers N      brokers in the cluster, 1..16 (default 3)\n"
               "  --partitions N   partitions of payments and effects, 1..64 (default 4)\n"
               "  --prefix P       topic name prefix (default br.)\n"
               "  --port-file F    also write the bootstrap list to F\n"
               "  --help           this text\n\n"
               "Control lines on stdin (for tests), each answered ok or err ...:\n"
               "  down <broker|-1>            brokers refuse connections (-1: all)\n"
               "  up <broker|-1>              accept them again\n"
               "  errors <ApiKey> <n> <err>   fail the next n requests of ApiKey (0 = Produce)\n"
               "                              with err, a number or a name (REQUEST_TIMED_OUT)\n"
               "  rtt <broker|-1> <ms>        add a round-trip delay\n"
               "  clear <ApiKey>              forget the errors pushed for ApiKey\n\n"
               "Exit status: 0 stopped by a signal, 1 the cluster could not start, 2 usage.\n");
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

/* An error code by number or by name (with or without RD_KAFKA_RESP_ERR_). */
static int parse_err(const char *s, rd_kafka_resp_err_t *out)
{
    long v;
    if (parse_int(s, -200, 1000, &v) == 0) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    if (strncmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0) {
        s += 18;
    }
    const struct rd_kafka_err_desc *d;
    size_t n;
    rd_kafka_get_err_descs(&d, &n);
    for (size_t i = 0; i < n; i++) {
        if (d[i].name != NULL && strcmp(d[i].name, s) == 0) {
            *out = d[i].code;
            return 0;
        }
    }
    return -1;
}

/* One control line; the answer goes to stdout. */
static void control(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *argv[5];
    int argc = 0;
    for (char *tok = strtok(line, " \t\r\n"); tok != NULL && argc < 5;
         tok = strtok(NULL, " \t\r\n")) {
        argv[argc++] = tok;
    }
    if (argc == 0) {
        return;
    }
    long a = 0, b = 0;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    const char *why = NULL;
    if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) && argc == 2) {
        if (parse_int(argv[1], -1, 1000, &a) != 0) {
            why = "bad broker";
        } else {
            err = argv[0][0] == 'd' ? rd_kafka_mock_broker_set_down(mc, (int32_t)a)
                                    : rd_kafka_mock_broker_set_up(mc, (int32_t)a);
        }
    } else if (strcmp(argv[0], "rtt") == 0 && argc == 3) {
        if (parse_int(argv[1], -1, 1000, &a) != 0 || parse_int(argv[2], 0, 600000, &b) != 0) {
            why = "bad broker or ms";
        } else {
            err = rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b);
        }
    } else if (strcmp(argv[0], "errors") == 0 && argc == 4) {
        rd_kafka_resp_err_t e;
        if (parse_int(argv[1], 0, 100, &a) != 0 || parse_int(argv[2], 1, 100000, &b) != 0) {
            why = "bad ApiKey or count";
        } else if (parse_err(argv[3], &e) != 0) {
            why = "unknown error code";
        } else {
            rd_kafka_resp_err_t *arr = malloc((size_t)b * sizeof *arr);
            if (arr == NULL) {
                why = "out of memory";
            } else {
                for (long i = 0; i < b; i++) {
                    arr[i] = e;
                }
                rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)b, arr);
                free(arr);
            }
        }
    } else if (strcmp(argv[0], "clear") == 0 && argc == 2) {
        if (parse_int(argv[1], 0, 100, &a) != 0) {
            why = "bad ApiKey";
        } else {
            rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
        }
    } else {
        why = "unknown command (down, up, errors, rtt, clear)";
    }
    if (why == NULL && err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        why = rd_kafka_err2str(err);
    }
    if (why != NULL) {
        printf("err %s\n", why);
    } else {
        printf("ok\n");
    }
    fflush(stdout);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 4) { /* warnings and worse only: the mock is chatty */
        fprintf(stderr, "kafka-dev: %s: %s\n", fac, buf);
    }
}

int br_kafka_dev_main(int argc, char **argv)
{
    long brokers = 3, partitions = 4;
    const char *prefix = "br.";
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        bool takes = strcmp(o, "--brokers") == 0 || strcmp(o, "--partitions") == 0 ||
                     strcmp(o, "--prefix") == 0 || strcmp(o, "--port-file") == 0;
        if (!takes) {
            if (o[0] == '-') {
                return br_cli_unknown_option("kafka-dev", o);
            }
            return br_cli_usage_error("kafka-dev", "unexpected argument '%s'", o);
        }
        if (i + 1 >= argc) {
            return br_cli_missing_value("kafka-dev", o);
        }
        const char *v = argv[++i];
        if (strcmp(o, "--brokers") == 0 && parse_int(v, 1, 16, &brokers) != 0) {
            return br_cli_usage_error("kafka-dev", "--brokers must be 1..16, not '%s'", v);
        }
        if (strcmp(o, "--partitions") == 0 && parse_int(v, 1, 64, &partitions) != 0) {
            return br_cli_usage_error("kafka-dev", "--partitions must be 1..64, not '%s'", v);
        }
        if (strcmp(o, "--prefix") == 0) {
            if (strlen(v) > 64) {
                return br_cli_usage_error("kafka-dev", "--prefix is longer than 64 bytes");
            }
            prefix = v;
        }
        if (strcmp(o, "--port-file") == 0) {
            port_file = v;
        }
    }

    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == NULL) {
        fprintf(stderr, "bookingrush kafka-dev: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (mc == NULL) {
        fprintf(stderr, "bookingrush kafka-dev: the mock cluster did not start\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    const char *names[3] = {"payments", "effects", "payments.dlq"};
    int parts[3] = {(int)partitions, (int)partitions, 1};
    for (int i = 0; i < 3; i++) {
        char topic[96];
        snprintf(topic, sizeof topic, "%s%s", prefix, names[i]);
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, parts[i], 1);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "bookingrush kafka-dev: topic %s: %s\n", topic, rd_kafka_err2str(e));
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    if (port_file != NULL) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%s\n", bs) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, "bookingrush kafka-dev: %s: %s\n", port_file, strerror(errno));
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }
    printf("bootstrap=%s\n", bs);
    fflush(stdout);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char line[512];
    size_t used = 0;
    bool in_open = true;
    while (!stop_flag) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int n = poll(&pfd, in_open ? 1 : 0, 200);
        if (n <= 0 || !in_open) {
            continue;
        }
        ssize_t got = read(0, line + used, sizeof line - 1 - used);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) {
                continue;
            }
            in_open = false; /* end of stdin: keep running until a signal */
            continue;
        }
        used += (size_t)got;
        line[used] = '\0';
        char *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            control(mc, line);
            size_t rest = used - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest);
            used = rest;
            line[used] = '\0';
        }
        if (used == sizeof line - 1) { /* a line too long: drop it */
            printf("err line too long\n");
            fflush(stdout);
            used = 0;
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
