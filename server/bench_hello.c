/*
 * bench_hello.c -- the baseline for `make bench`: the smallest libmicrohttpd
 * server with the same setup as bookingrush serve (epoll, a thread pool,
 * keep-alive by answering on the second call), answering every request with
 * a fixed JSON body. The reserve benchmark is reported next to it, measured
 * in the same run.
 *
 *   br-http-hello PORT [THREADS]     runs until SIGTERM / SIGINT; PORT 0 picks
 *                                    a free one; prints "port N" once listening
 */
#define _POSIX_C_SOURCE 200809L

#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char BODY[] = "{\"hello\":\"world\"}";

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    static int marker; /* read-only address used as "seen the first call" */
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0; /* a POST body is read and ignored */
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY,
                                                             MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: br-http-hello PORT [THREADS]\n");
        return 2;
    }
    unsigned port = (unsigned)strtoul(argv[1], NULL, 10);
    unsigned threads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO,
        (uint16_t)port, NULL, NULL, on_access, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16384,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)75, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned int)1, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "br-http-hello: cannot listen on port %u\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("port %u\n", di != NULL ? (unsigned)di->port : port);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    MHD_stop_daemon(d);
    return 0;
}
