/*
 * web.h -- the web front end's files (web/), served by the server itself:
 * GET / is web/index.html, GET /web/<path> the file at <path>. The files are
 * embedded into the binary at build time (server/web_embed.cmake writes
 * br_web_files[]), so `make run` serves them with no other step; `serve
 * --web-dir DIR` reads them from DIR instead (development), confined to DIR.
 * Pure helpers here; the route (headers, ETag, 304) is in routes.c.
 */
#ifndef BR_WEB_H
#define BR_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct br_web_file {
    const char *path; /* relative to web/, e.g. "js/api.js"; NULL ends the table */
    const unsigned char *bytes;
    size_t len;
};

extern const struct br_web_file br_web_files[];
extern const size_t br_web_file_count;

/* A path under web/ we may serve: 1..200 bytes of [A-Za-z0-9._/-], no empty
 * segment, no segment starting with '.' (so no "..", no hidden files), not
 * starting or ending with '/'. */
bool br_web_path_ok(const char *rel);

/* The Content-Type for a file name by its extension; NULL when the
 * extension is not one we serve. */
const char *br_web_content_type(const char *rel);

/* The embedded file at rel, NULL if none. */
const struct br_web_file *br_web_find(const char *rel);

/* A strong validator of the bytes: 16 hex digits of FNV-1a 64 in quotes
 * ("\"0123456789abcdef\""); out has room for 19 bytes. */
void br_web_etag(const void *bytes, size_t len, char out[19]);

/* Reads dir/rel (rel already br_web_path_ok) into a malloc'd buffer, after
 * checking that its real path lies inside dir's real path (a symbolic link
 * may not lead out). 0 on success; -1 when missing, outside or unreadable;
 * files over 8 MiB are refused. */
int br_web_read_dir(const char *dir, const char *rel, char **buf, size_t *len);

#endif
