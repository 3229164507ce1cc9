/*
 * server.h -- a throwaway redis-server for tests: started on a free
 * 127.0.0.1 port as a child of the test (no persistence), stopped by pid.
 * The child dies with the test (PR_SET_PDEATHSIG) if the test crashes.
 */
#ifndef BR_TESTS_REDIS_SERVER_H
#define BR_TESTS_REDIS_SERVER_H

#include <sys/types.h>

struct test_redis_server {
    pid_t pid;
    int port;
};

/* Starts redis-server and waits until it answers PING (<= 5 s). 0 or -1. */
int test_redis_server_start(struct test_redis_server *s);

/* Stops it (SIGTERM, then waits for it). */
void test_redis_server_stop(struct test_redis_server *s);

#endif
