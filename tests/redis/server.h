/*
 * server.h -- a throwaway redis-server for tests: started on a free
 * 127.0.0.1 port as a child of the test (no persistence), stopped by pid.
 * The child dies with the test (PR_SET_PDEATHSIG) if the test crashes.
 *
 * Cluster mode: a one-node Redis Cluster owning all 16384 slots. The
 * adapter needs no slot routing to talk to it, and Redis checks what a
 * cluster checks: a script (they carry a #!lua shebang) touching keys of
 * two slots fails, so the differential test run there proves every script
 * stays in one slot.
 */
#ifndef BR_TESTS_REDIS_SERVER_H
#define BR_TESTS_REDIS_SERVER_H

#include <sys/types.h>

struct test_redis_server {
    pid_t pid;
    int port;
    char dir[64]; /* its working directory (cluster mode's nodes.conf), removed at stop */
};

/* Starts redis-server and waits until it answers PING (<= 5 s); with
 * cluster, until the cluster's state is ok. 0 or -1. */
int test_redis_server_start(struct test_redis_server *s);
int test_redis_server_start_cluster(struct test_redis_server *s);

/* Stops it (SIGTERM, then waits for it). */
void test_redis_server_stop(struct test_redis_server *s);

#endif
