/*
 * journal_file.c -- journal files on disk: a buffered appender with group
 * commit, and a record-by-record reader (format: core/journal.h).
 *
 * Writer. Appends encode into one buffer; flush writes it with write(2) and,
 * in BR_JOURNAL_FSYNC mode, fsync(2)s, so the caller pays one fsync for every
 * batch of records (group commit). `durable_len` is the file length that
 * holds only whole records: when a write fails half-way the file is cut back
 * to it and the writer refuses further work (BR_E_IO), so no later record is
 * ever appended after a partial one.
 *
 * Opening an existing file scans it once, O(file): the header must decode
 * and carry the same config; records are decoded one after another. Damage
 * in the last record (it runs to or past the end of the file) is a torn
 * tail, the trace of a crash in the middle of a write that was never
 * acknowledged: the file is cut there and appending resumes. Damage with a
 * good record after it cannot come from a crash, so the file is left alone
 * and BR_E_CORRUPT returned.
 *
 * Reader. A sliding buffer of BUF_BYTES; a record is never larger than
 * BR_JOURNAL_RECORD_MAX, so the buffer always holds a whole record after a
 * refill. Offsets reported are byte offsets in the file.
 */
#define _POSIX_C_SOURCE 200809L
#include "adapters/journal_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/journal.h"
#include "core/panic.h"

enum { BUF_BYTES = 256 * 1024 };

_Static_assert(BUF_BYTES >= 4 * BR_JOURNAL_RECORD_MAX, "the buffer holds several records");

struct br_journal_writer {
    int fd;
    enum br_journal_sync sync;
    bool failed;           /* a write failed: refuse everything after it */
    long long durable_len; /* file bytes that end on a record boundary */
    size_t used;           /* bytes buffered */
    uint8_t buf[BUF_BYTES];
    char path[512];
};

struct br_journal_reader {
    int fd;
    bool eof;       /* read(2) returned 0 */
    long long base; /* file offset of buf[0] */
    size_t start;   /* first unread byte in buf */
    size_t len;     /* bytes valid in buf */
    uint8_t buf[BUF_BYTES];
};

static void log_errno(const char *what, const char *path, int err)
{
    fprintf(stderr, "bookingrush: journal: %s %s: %s\n", what, path, strerror(err));
}

/* Writes all n bytes at the current offset, retrying short writes and EINTR.
 * Bounded: every round either writes at least one byte or fails. */
static int write_all(int fd, const uint8_t *p, size_t n, const char *path)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_errno("write", path, errno);
            return BR_E_IO;
        }
        if (w == 0) {
            log_errno("write", path, EIO);
            return BR_E_IO;
        }
        done += (size_t)w;
    }
    return BR_OK;
}

/* Reads up to n bytes; returns bytes read (0 at EOF) or -1 with errno set. */
static ssize_t read_some(int fd, uint8_t *p, size_t n)
{
    for (;;) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        return r;
    }
}

static bool config_equal(const struct br_config *a, const struct br_config *b)
{
    return a->seed == b->seed && a->events_max == b->events_max && a->users_max == b->users_max &&
           a->members_max == b->members_max && a->queue_slots_max == b->queue_slots_max &&
           a->queue_capacity_default == b->queue_capacity_default &&
           a->passes_max == b->passes_max && a->active_max == b->active_max &&
           a->holds_max == b->holds_max && a->seats_max == b->seats_max &&
           a->payments_max == b->payments_max && a->idem_max == b->idem_max &&
           a->provider_events_max == b->provider_events_max;
}

/* fsyncs the directory holding path, so a newly created file survives a
 * crash. Failure is logged and returned. */
static int sync_parent_dir(const char *path)
{
    char dir[512];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) {
            return BR_E_INVALID;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        log_errno("open directory", dir, errno);
        return BR_E_IO;
    }
    int rc = BR_OK;
    if (fsync(dfd) != 0) {
        log_errno("fsync directory", dir, errno);
        rc = BR_E_IO;
    }
    close(dfd);
    return rc;
}

/* A damaged record at `at` is a torn tail (a crash during a write that was
 * never acknowledged) when everything from it to the end of the file is
 * zero (a file extended but not yet written), or when its length field is
 * plausible and the record runs to or past the end of the file. A garbage
 * length, or a whole record with good data after it, is real damage. */
static bool tail_is_torn(int fd, long long at, long long file_len)
{
    uint8_t head[BR_JOURNAL_RECORD_HEAD];
    if (pread(fd, head, sizeof head, (off_t)at) == (ssize_t)sizeof head) {
        uint32_t len = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 |
                       (uint32_t)head[3] << 24;
        if (len <= BR_JOURNAL_RECORD_MAX &&
            at + (long long)BR_JOURNAL_RECORD_HEAD + (long long)len >= file_len) {
            return true;
        }
    }
    uint8_t chunk[4096];
    long long pos = at;
    /* Bounded by the file length: every round advances pos by > 0 bytes. */
    while (pos < file_len) {
        ssize_t n = pread(fd, chunk, sizeof chunk, (off_t)pos);
        if (n <= 0) {
            return false;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] != 0) {
                return false;
            }
        }
        pos += n;
    }
    return true;
}

/* Scans an existing journal: checks the header against cfg and finds the end
 * of the last whole record (*good_len) and whether a torn tail follows. */
static int scan_existing(struct br_journal_writer *w, const struct br_config *cfg,
                         long long file_len, long long *good_len)
{
    struct br_journal_reader *r = NULL;
    struct br_config have;
    int rc = br_journal_reader_open(&r, w->path, &have);
    if (rc == BR_E_TRUNCATED && file_len < (long long)BR_JOURNAL_HEADER_MAX) {
        /* A crash while the header was being written: no record can have
         * been acknowledged, so the whole file is a torn tail. */
        *good_len = 0;
        return BR_OK;
    }
    if (rc != BR_OK) {
        return rc;
    }
    if (!config_equal(&have, cfg)) {
        br_journal_reader_close(r);
        fprintf(stderr, "bookingrush: journal: %s was written with another config\n", w->path);
        return BR_E_INVALID;
    }
    struct br_cmd cmd;
    struct br_outcome out;
    bool has_out = false;
    long long at = 0;
    /* Bounded by the file: every BR_OK consumes at least one byte. */
    for (;;) {
        rc = br_journal_reader_next(r, &cmd, &out, &has_out, &at);
        if (rc == 1) {
            *good_len = at;
            rc = BR_OK;
            break;
        }
        if (rc == BR_OK) {
            continue;
        }
        if (rc == BR_E_TRUNCATED) {
            *good_len = at;
            rc = BR_OK;
            break;
        }
        if (rc == BR_E_CORRUPT) {
            if (tail_is_torn(w->fd, at, file_len)) {
                *good_len = at;
                rc = BR_OK;
            } else {
                fprintf(stderr, "bookingrush: journal: %s: corrupt record at offset %lld\n",
                        w->path, at);
            }
            break;
        }
        break; /* BR_E_IO */
    }
    br_journal_reader_close(r);
    return rc;
}

int br_journal_writer_open(struct br_journal_writer **wp, const char *path,
                           const struct br_config *cfg, enum br_journal_sync sync,
                           long long *torn_at)
{
    *wp = NULL;
    if (torn_at != NULL) {
        *torn_at = -1;
    }
    if (path == NULL || cfg == NULL ||
        strlen(path) >= sizeof((struct br_journal_writer *)0)->path) {
        return BR_E_INVALID;
    }
    struct br_journal_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return BR_E_IO;
    }
    strcpy(w->path, path);
    w->sync = sync;
    w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        log_errno("open", path, errno);
        free(w);
        return BR_E_IO;
    }
    struct stat st;
    if (fstat(w->fd, &st) != 0) {
        log_errno("stat", path, errno);
        close(w->fd);
        free(w);
        return BR_E_IO;
    }
    long long file_len = (long long)st.st_size;
    long long good = 0;
    int rc = BR_OK;
    if (file_len > 0) {
        rc = scan_existing(w, cfg, file_len, &good);
    }
    if (rc == BR_OK && good < file_len) {
        if (torn_at != NULL) {
            *torn_at = good;
        }
        fprintf(stderr,
                "bookingrush: journal: %s: cutting a torn tail at offset %lld (%lld bytes)\n", path,
                good, file_len - good);
        if (ftruncate(w->fd, (off_t)good) != 0) {
            log_errno("truncate", path, errno);
            rc = BR_E_IO;
        }
    }
    if (rc == BR_OK && good == 0) {
        /* New (or wholly torn) file: write the header durably before any record. */
        uint8_t head[BR_JOURNAL_HEADER_MAX];
        size_t n = br_journal_header_encode(head, sizeof head, cfg);
        BR_ASSERT(n > 0 && n <= sizeof head);
        if (lseek(w->fd, 0, SEEK_SET) != 0) {
            log_errno("seek", path, errno);
            rc = BR_E_IO;
        } else {
            rc = write_all(w->fd, head, n, path);
        }
        if (rc == BR_OK && fsync(w->fd) != 0) {
            log_errno("fsync", path, errno);
            rc = BR_E_IO;
        }
        if (rc == BR_OK) {
            rc = sync_parent_dir(path);
        }
        good = (long long)n;
    }
    if (rc == BR_OK && lseek(w->fd, (off_t)good, SEEK_SET) != (off_t)good) {
        log_errno("seek", path, errno);
        rc = BR_E_IO;
    }
    if (rc != BR_OK) {
        close(w->fd);
        free(w);
        return rc;
    }
    w->durable_len = good;
    *wp = w;
    return BR_OK;
}

/* Writes the buffer; on failure cuts the file back to its last record
 * boundary and marks the writer failed. */
static int write_buffer(struct br_journal_writer *w)
{
    if (w->used == 0) {
        return BR_OK;
    }
    int rc = write_all(w->fd, w->buf, w->used, w->path);
    if (rc != BR_OK) {
        w->failed = true;
        if (ftruncate(w->fd, (off_t)w->durable_len) != 0) {
            log_errno("truncate after a failed write", w->path, errno);
        }
        return rc;
    }
    w->durable_len += (long long)w->used;
    w->used = 0;
    return BR_OK;
}

int br_journal_writer_append(struct br_journal_writer *w, const struct br_cmd *cmd,
                             const struct br_outcome *out)
{
    BR_ASSERT(w != NULL && cmd != NULL);
    if (w->failed) {
        return BR_E_IO;
    }
    if (sizeof w->buf - w->used < BR_JOURNAL_RECORD_MAX) {
        int rc = write_buffer(w);
        if (rc != BR_OK) {
            return rc;
        }
    }
    size_t n = br_journal_record_encode(w->buf + w->used, sizeof w->buf - w->used, cmd, out);
    BR_ASSERT(n > 0 && n <= BR_JOURNAL_RECORD_MAX);
    w->used += n;
    return BR_OK;
}

int br_journal_writer_flush(struct br_journal_writer *w)
{
    BR_ASSERT(w != NULL);
    if (w->failed) {
        return BR_E_IO;
    }
    int rc = write_buffer(w);
    if (rc != BR_OK) {
        return rc;
    }
    if (w->sync == BR_JOURNAL_FSYNC && fdatasync(w->fd) != 0) {
        log_errno("fsync", w->path, errno);
        w->failed = true; /* after a failed fsync the page cache state is unknown */
        return BR_E_IO;
    }
    return BR_OK;
}

int br_journal_writer_close(struct br_journal_writer *w)
{
    if (w == NULL) {
        return BR_OK;
    }
    int rc = w->failed ? BR_E_IO : br_journal_writer_flush(w);
    if (close(w->fd) != 0 && rc == BR_OK) {
        log_errno("close", w->path, errno);
        rc = BR_E_IO;
    }
    free(w);
    return rc;
}

/* Moves unread bytes to the front and reads more. BR_OK or BR_E_IO. */
static int refill(struct br_journal_reader *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->base += (long long)r->start;
        r->len -= r->start;
        r->start = 0;
    }
    /* Bounded: each round fills at least one byte or reaches EOF. */
    while (!r->eof && r->len < sizeof r->buf) {
        ssize_t n = read_some(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        if (n < 0) {
            return BR_E_IO;
        }
        if (n == 0) {
            r->eof = true;
            break;
        }
        r->len += (size_t)n;
    }
    return BR_OK;
}

int br_journal_reader_open(struct br_journal_reader **rp, const char *path, struct br_config *cfg)
{
    *rp = NULL;
    struct br_journal_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return BR_E_IO;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        log_errno("open", path, errno);
        free(r);
        return BR_E_IO;
    }
    if (refill(r) != BR_OK) {
        log_errno("read", path, errno);
        close(r->fd);
        free(r);
        return BR_E_IO;
    }
    size_t used = 0;
    int rc = br_journal_header_decode(r->buf, r->len, cfg, &used);
    if (rc != BR_OK) {
        close(r->fd);
        free(r);
        return rc;
    }
    BR_ASSERT(used > 0 && used <= r->len);
    r->start = used;
    *rp = r;
    return BR_OK;
}

int br_journal_reader_next(struct br_journal_reader *r, struct br_cmd *cmd, struct br_outcome *out,
                           bool *has_outcome, long long *offset)
{
    BR_ASSERT(r != NULL);
    if (r->len - r->start < BR_JOURNAL_RECORD_MAX + BR_JOURNAL_RECORD_HEAD && !r->eof) {
        if (refill(r) != BR_OK) {
            *offset = r->base + (long long)r->start;
            return BR_E_IO;
        }
    }
    *offset = r->base + (long long)r->start;
    *has_outcome = false;
    if (r->start == r->len) {
        return 1;
    }
    size_t used = 0;
    int rc = br_journal_record_decode(r->buf + r->start, r->len - r->start, cmd, out, has_outcome,
                                      &used);
    if (rc != BR_OK) {
        return rc;
    }
    BR_ASSERT(used > 0 && used <= r->len - r->start);
    r->start += used;
    return BR_OK;
}

void br_journal_reader_close(struct br_journal_reader *r)
{
    if (r == NULL) {
        return;
    }
    close(r->fd);
    free(r);
}
