/*
 * web.c -- the web front end's files: path checks, content types, the
 * embedded table's lookup, ETags and reads from --web-dir (web.h).
 */
#define _GNU_SOURCE /* realpath, fileno */
#include "server/web.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define WEB_PATH_MAX 200
#define WEB_FILE_MAX (8u << 20)

bool br_web_path_ok(const char *rel)
{
    size_t n = strlen(rel);
    if (n == 0 || n > WEB_PATH_MAX || rel[0] == '/' || rel[n - 1] == '/') {
        return false;
    }
    bool seg_start = true;
    for (size_t i = 0; i < n; i++) {
        char c = rel[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '/';
        if (!ok || (seg_start && (c == '.' || c == '/'))) {
            return false;
        }
        seg_start = c == '/';
    }
    return true;
}

const char *br_web_content_type(const char *rel)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(rel, '.');
    if (dot == NULL || strchr(dot, '/') != NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return NULL;
}

const struct br_web_file *br_web_find(const char *rel)
{
    for (size_t i = 0; i < br_web_file_count; i++) {
        if (strcmp(br_web_files[i].path, rel) == 0) {
            return &br_web_files[i];
        }
    }
    return NULL;
}

void br_web_etag(const void *bytes, size_t len, char out[19])
{
    const unsigned char *p = bytes;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    snprintf(out, 19, "\"%016llx\"", (unsigned long long)h);
}

int br_web_read_dir(const char *dir, const char *rel, char **buf, size_t *len)
{
    char root[PATH_MAX], path[PATH_MAX], real[PATH_MAX];
    if (realpath(dir, root) == NULL) {
        return -1;
    }
    int n = snprintf(path, sizeof path, "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof path || realpath(path, real) == NULL) {
        return -1;
    }
    size_t rn = strlen(root);
    if (strncmp(real, root, rn) != 0 || real[rn] != '/') {
        return -1; /* a link that leads out of the directory */
    }
    FILE *f = fopen(real, "rb");
    if (f == NULL) {
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)WEB_FILE_MAX) {
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    char *b = malloc(size + 1);
    if (b == NULL || fread(b, 1, size, f) != size) {
        free(b);
        fclose(f);
        return -1;
    }
    fclose(f);
    b[size] = '\0';
    *buf = b;
    *len = size;
    return 0;
}
