/* server.c -- the test redis-server (server.h). */
#define _POSIX_C_SOURCE 200809L

#include "tests/redis/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

/* A port the kernel just handed out for 127.0.0.1 (free a moment ago). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

static int pings(int port)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c != NULL && c->err == 0) {
        redisReply *r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL) {
            freeReplyObject(r);
        }
    }
    if (c != NULL) {
        redisFree(c);
    }
    return ok;
}

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void stop_child(struct test_redis_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int status;
        waitpid(s->pid, &status, 0);
        s->pid = 0;
    }
}

/* Assigns every slot to this one node and waits until the cluster is ok. */
static int make_cluster(int port)
{
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c != NULL && c->err == 0) {
        redisReply *r = redisCommand(c, "CLUSTER ADDSLOTSRANGE 0 16383");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL) {
            freeReplyObject(r);
        }
        for (int i = 0; ok && i < 500; i++) {
            r = redisCommand(c, "CLUSTER INFO");
            int up = r != NULL && r->type == REDIS_REPLY_STRING &&
                     strstr(r->str, "cluster_state:ok") != NULL;
            if (r != NULL) {
                freeReplyObject(r);
            }
            if (up) {
                break;
            }
            nap_ms(20);
            ok = i + 1 < 500;
        }
    }
    if (c != NULL) {
        redisFree(c);
    }
    return ok ? 0 : -1;
}

static int start(struct test_redis_server *s, int cluster)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/br-test-redis-XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        s->dir[0] = 0;
        return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = free_port();
        if (s->port <= 0) {
            continue;
        }
        char port[16];
        snprintf(port, sizeof port, "%d", s->port);
        pid_t pid = fork();
        if (pid < 0) {
            return -1;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) {
                dup2(devnull, 1);
            }
            if (chdir(s->dir) != 0) {
                _exit(127);
            }
            if (cluster) {
                execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel",
                       "warning", "--cluster-enabled", "yes", "--cluster-config-file",
                       "nodes.conf", (char *)NULL);
            } else {
                execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel",
                       "warning", (char *)NULL);
            }
            _exit(127);
        }
        s->pid = pid;
        for (int i = 0; i < 250; i++) {
            if (pings(s->port)) {
                if (cluster && make_cluster(s->port) != 0) {
                    break;
                }
                return 0;
            }
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                break; /* it exited: the port was taken after all; try another */
            }
            nap_ms(20);
        }
        stop_child(s);
    }
    fprintf(stderr, "test: could not start redis-server\n");
    test_redis_server_stop(s);
    return -1;
}

int test_redis_server_start(struct test_redis_server *s)
{
    return start(s, 0);
}

int test_redis_server_start_cluster(struct test_redis_server *s)
{
    return start(s, 1);
}

void test_redis_server_stop(struct test_redis_server *s)
{
    stop_child(s);
    if (s->dir[0] != 0) {
        char path[128];
        snprintf(path, sizeof path, "%s/nodes.conf", s->dir);
        unlink(path);
        rmdir(s->dir);
        s->dir[0] = 0;
    }
}
