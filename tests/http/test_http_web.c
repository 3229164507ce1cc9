/*
 * test_http_web.c -- the web front end as the server serves it (ctest
 * http_web; issue 14): GET / is the page with a strict Content-Security-
 * Policy, every file under web/ of the types we serve is served with its
 * type and the bytes on disk (the copy built into the binary is the
 * tree's), ETag and If-None-Match answer 304, a path that could leave web/ or names a hidden file is 404 JSON, and
 * --web-dir serves a directory of our choosing but never a file a link
 * leads out of it to.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "client.h"

#ifndef BR_SOURCE_DIR
#error "BR_SOURCE_DIR: the tree whose web/ the binary embeds"
#endif

static struct t_server g_srv;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b == NULL || fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void test_root_is_the_page(void **state)
{
    (void)state;
    struct t_resp r;
    t_request(&g_srv, "GET", "/", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_non_null(strstr(r.content_type, "text/html"));
    assert_non_null(strstr(r.body, "<html lang="));
    assert_non_null(strstr(r.csp, "default-src 'self'"));
    assert_null(strstr(r.csp, "unsafe-inline"));
    assert_string_equal(r.cache_control, "no-cache");
    assert_true(r.etag[0] == '"');
    t_resp_free(&r);
}

/* Every .js, .css and .html under dir (relative rel) is served as on disk. */
static int walk(const char *dir, const char *rel, int *served)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char path[1024], sub[512];
        int pn = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        int sn = snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        assert_true(pn > 0 && (size_t)pn < sizeof path && sn > 0 && (size_t)sn < sizeof sub);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            walk(path, sub, served);
            continue;
        }
        const char *dot = strrchr(de->d_name, '.');
        const char *want = dot == NULL                 ? NULL
                           : strcmp(dot, ".js") == 0   ? "text/javascript"
                           : strcmp(dot, ".css") == 0  ? "text/css"
                           : strcmp(dot, ".html") == 0 ? "text/html"
                                                       : NULL;
        if (want == NULL) {
            continue;
        }
        size_t len = 0;
        char *disk = slurp(path, &len);
        assert_non_null(disk);
        char url[600];
        snprintf(url, sizeof url, "/web/%s", sub);
        struct t_resp r;
        t_request(&g_srv, "GET", url, NULL, NULL, NULL, 0, &r);
        if (r.status != 200) {
            fprintf(stderr, "%s: %ld\n", url, r.status);
        }
        EXPECT(r, 200, NULL);
        assert_non_null(strstr(r.content_type, want));
        assert_int_equal(r.len, len);
        assert_memory_equal(r.body, disk, len);
        assert_non_null(strstr(r.csp, "default-src 'self'"));
        free(disk);
        t_resp_free(&r);
        (*served)++;
    }
    closedir(d);
    return 0;
}

static void test_every_file_is_served_as_on_disk(void **state)
{
    (void)state;
    int served = 0;
    walk(BR_SOURCE_DIR "/web", "", &served);
    fprintf(stderr, "  %d files of web/ served byte for byte\n", served);
    assert_true(served >= 3); /* index.html, app.js, style.css at least */
}

static void test_etag(void **state)
{
    (void)state;
    struct t_resp r;
    t_request(&g_srv, "GET", "/web/app.js", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    char etag[32], inm[64];
    snprintf(etag, sizeof etag, "%s", r.etag);
    assert_true(strlen(etag) > 2);
    t_resp_free(&r);
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    t_request(&g_srv, "GET", "/web/app.js", NULL, (const char *const[]){inm, NULL}, NULL, 0, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.len, 0);
    t_resp_free(&r);
    t_request(&g_srv, "GET", "/web/app.js", NULL,
              (const char *const[]){"If-None-Match: \"0000000000000000\"", NULL}, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    t_resp_free(&r);
}

static void test_paths_that_leave_web_are_refused(void **state)
{
    (void)state;
    /* (libcurl removes "/../" segments itself: the server's own refusal of
     * them is br_web_path_ok's, checked by the segments below.) */
    const char *bad[] = {"/web/../data/journal", "/web/..%2fdata", "/web/.hidden.js",
                         "/web/js/.%2e/app.js",  "/web//app.js",   "/web/app.js/",
                         "/web/nope.js",         "/web/README.md", "/web/js\\api.js",
                         "/web/",                "/webapp.js"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct t_resp r;
        t_request(&g_srv, "GET", bad[i], NULL, NULL, NULL, 0, &r);
        if (r.status != 404) {
            fprintf(stderr, "%s: %ld %s\n", bad[i], r.status, r.body);
        }
        assert_int_equal(r.status, 404);
        assert_non_null(r.json); /* the API's JSON error, never a file */
        t_resp_free(&r);
    }
    struct t_resp r;
    t_request(&g_srv, "POST", "/web/app.js", NULL, NULL, "x", 1, &r);
    assert_true(r.status == 404 || r.status == 405);
    t_resp_free(&r);
}

static void test_web_dir_serves_its_files_and_no_link_out(void **state)
{
    (void)state;
    if (t_external() || t_distributed()) {
        skip(); /* the flag is ours to set only on our own server */
    }
    char dir[] = "/tmp/br-web-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], outside[256];
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("<!doctype html><html lang=\"en\"><title>dev copy</title></html>", f);
    fclose(f);
    snprintf(outside, sizeof outside, "%s.secret.js", dir);
    f = fopen(outside, "w");
    assert_non_null(f);
    fputs("secret", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/leak.js", dir);
    assert_int_equal(symlink(outside, path), 0);
    struct t_server dev;
    memset(&dev, 0, sizeof dev);
    t_server_start(&dev, (const char *const[]){"--web-dir", dir, NULL});
    struct t_resp r;
    t_request(&dev, "GET", "/", NULL, NULL, NULL, 0, &r);
    EXPECT(r, 200, NULL);
    assert_non_null(strstr(r.body, "dev copy"));
    t_resp_free(&r);
    t_request(&dev, "GET", "/web/leak.js", NULL, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 404);
    assert_null(strstr(r.body, "secret"));
    t_resp_free(&r);
    t_request(&dev, "GET", "/web/app.js", NULL, NULL, NULL, 0, &r); /* not in dir */
    assert_int_equal(r.status, 404);
    t_resp_free(&r);
    assert_int_equal(t_server_stop(&dev), 0);
    t_server_cleanup(&dev);
    unlink(path);
    unlink(outside);
    snprintf(path, sizeof path, "%s/index.html", dir);
    unlink(path);
    rmdir(dir);
}

static int setup(void **state)
{
    (void)state;
    t_server_start(&g_srv, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int rc = t_server_stop(&g_srv);
    t_server_cleanup(&g_srv);
    return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_is_the_page),
        cmocka_unit_test(test_every_file_is_served_as_on_disk),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_paths_that_leave_web_are_refused),
        cmocka_unit_test(test_web_dir_serves_its_files_and_no_link_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
