/*
 * journal_file.c -- journal files on disk: a buffered appender with group
 * commit and zero-fill ahead, a scan that tells a torn tail from damage,
 * and a record-by-record reader (design in journal_file.h; format:
 * core/journal.h).
 *
 * Writer. Appends encode into one buffer; flush writes it with pwrite(2) at
 * `end`, the offset after the last whole record, and in BR_JOURNAL_FSYNC
 * mode fdatasyncs; only then do `end` and the buffer move on, so a failure
 * leaves the buffer for the next flush to write again at the same place
 * (the same bytes over whatever half of them landed). `zero_end` is the
 * file's size: [end, zero_end) holds only zeros.
 *
 * Scan. O(file): the header must decode and carry the same config; records
 * are decoded one after another; the first bad one is classified by
 * classify() (the three rules in journal_file.h). After damage the rest of
 * the file is searched for whole records (a checksum matching at some
 * offset), so check and the refusal can say what is at stake.
 *
 * Reader. A sliding buffer of BUF_BYTES; a record is never larger than
 * BR_JOURNAL_RECORD_MAX, so the buffer always holds a whole record after a
 * refill. Offsets reported are byte offsets in the file.
 */
#define _POSIX_C_SOURCE 200809L
#include "adapters/journal_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/catalog.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/journal.h"
#include "core/panic.h"

enum { BUF_BYTES = 256 * 1024, ZERO_CHUNK = 64 * 1024 };
#define RESYNC_MAX_BYTES (256LL << 20) /* damage further than this from the end: not searched */
#define PAYLOAD_MIN 18u                /* flags + the shortest command (core/journal.c) */

_Static_assert(BUF_BYTES >= 4 * BR_JOURNAL_RECORD_MAX, "the buffer holds several records");

struct br_journal_writer {
    int fd;
    enum br_journal_sync sync;
    uint32_t zero_ahead; /* bytes of zeros kept past the records, 0 = none */
    bool failing;        /* the last write failed: the failure was logged */
    long long end;       /* offset after the last whole record written */
    long long zero_end;  /* file size; [end, zero_end) is zeros */
    size_t used;         /* bytes buffered */
    struct br_journal_log log;
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

static const uint8_t ZEROS[ZERO_CHUNK];

static void jlog(const struct br_journal_log *log, enum br_journal_log_level level, const char *msg,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One log line through the callback, or as JSON on stderr without one. */
static void jlog(const struct br_journal_log *log, enum br_journal_log_level level, const char *msg,
                 const char *fmt, ...)
{
    char fields[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof fields, fmt, ap);
    va_end(ap);
    if (log != NULL && log->fn != NULL) {
        log->fn(log->ctx, level, msg, fields);
        return;
    }
    static const char *const names[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(
        stderr,
        "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"%s%s}\n",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        ts.tv_nsec / 1000000, names[level], msg, fields[0] ? "," : "", fields);
}

static void log_errno(const struct br_journal_log *log, const char *what, const char *path, int err)
{
    jlog(log, BR_JLOG_ERROR, "journal i/o failed", "\"op\":\"%s\",\"path\":\"%s\",\"errno\":\"%s\"",
         what, path, strerror(err));
}

static int err_of_errno(int e)
{
    return e == ENOSPC || e == EDQUOT ? BR_E_STORAGE_UNAVAILABLE : BR_E_IO;
}

/* Writes all n bytes at off, retrying short writes and EINTR. Returns 0 or
 * the errno. Bounded: every round writes at least one byte or fails. */
static int pwrite_all(int fd, const uint8_t *p, size_t n, long long off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, p + done, n - done, (off_t)(off + (long long)done));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return w < 0 ? errno : EIO;
        }
        done += (size_t)w;
    }
    return 0;
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

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Offset after the last non-zero byte in [from, file_len), or from when
 * there is none (or on a read error: then nothing after from is trusted
 * to be zero and the caller treats it as data). Reads backwards. */
static long long data_end(int fd, long long from, long long file_len)
{
    uint8_t chunk[4096];
    long long pos = file_len;
    /* Bounded by the file: every round moves pos back by > 0 bytes. */
    while (pos > from) {
        long long at = pos - (long long)sizeof chunk > from ? pos - (long long)sizeof chunk : from;
        ssize_t n = pread(fd, chunk, (size_t)(pos - at), (off_t)at);
        if (n != (ssize_t)(pos - at)) {
            return file_len;
        }
        for (ssize_t i = n - 1; i >= 0; i--) {
            if (chunk[i] != 0) {
                return at + i + 1;
            }
        }
        pos = at;
    }
    return from;
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
static int sync_parent_dir(const char *path, const struct br_journal_log *log)
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
        log_errno(log, "open directory", dir, errno);
        return BR_E_IO;
    }
    int rc = BR_OK;
    if (fsync(dfd) != 0) {
        log_errno(log, "fsync directory", dir, errno);
        rc = BR_E_IO;
    }
    close(dfd);
    return rc;
}

/* ---- telling a torn tail from damage (rules 1-3 in journal_file.h) ---- */

/* Whether a length other than `len` makes the payload at p (avail bytes)
 * match its checksum: a whole record whose length field was damaged. */
static bool other_length_matches(const uint8_t *p, size_t avail, uint32_t len, uint32_t crc)
{
    size_t max = BR_JOURNAL_RECORD_MAX - BR_JOURNAL_RECORD_HEAD;
    if (avail < max) {
        max = avail;
    }
    uint32_t c = br_crc32c(0, p, PAYLOAD_MIN - 1);
    /* Bounded by BR_JOURNAL_RECORD_MAX: the checksum is extended a byte at a time. */
    for (size_t n = PAYLOAD_MIN; n <= max; n++) {
        c = br_crc32c(c, p + n - 1, 1);
        if (n != len && c == crc) {
            return true;
        }
    }
    return false;
}

/* Classifies the bad record at `at`: sets scan->torn, ->reason, ->tail_bytes. */
static void classify(int fd, long long at, long long file_len, struct br_journal_scan *scan)
{
    long long tail_end = data_end(fd, at, file_len);
    scan->tail_bytes = tail_end - at;
    scan->torn = false;
    uint8_t rec[BR_JOURNAL_RECORD_MAX];
    size_t want = file_len - at < (long long)sizeof rec ? (size_t)(file_len - at) : sizeof rec;
    ssize_t got = pread(fd, rec, want, (off_t)at);
    if (got != (ssize_t)want) {
        scan->reason = "unreadable";
        return;
    }
    if (tail_end == at || got < (ssize_t)BR_JOURNAL_RECORD_HEAD) {
        scan->torn = true; /* only zeros, or the file ends inside a record head */
        scan->reason = "a torn tail: the file ends inside a record head";
        return;
    }
    uint32_t len = le32(rec);
    uint32_t crc = le32(rec + 4);
    if (len < PAYLOAD_MIN || len > BR_JOURNAL_RECORD_MAX - BR_JOURNAL_RECORD_HEAD) {
        scan->reason = all_zero(rec, BR_JOURNAL_RECORD_HEAD) ? "zeros, then data further on"
                                                             : "a record length out of range";
        return;
    }
    long long decl_end = at + (long long)BR_JOURNAL_RECORD_HEAD + len;
    if (tail_end > decl_end) {
        scan->reason = "a bad record with data after it";
        return;
    }
    bool unfinished = decl_end > file_len || all_zero(rec + (size_t)(decl_end - at) - 8, 8);
    if (!unfinished) {
        scan->reason = "a whole record that fails its checksum or does not parse";
        return;
    }
    if (other_length_matches(rec + BR_JOURNAL_RECORD_HEAD, (size_t)got - BR_JOURNAL_RECORD_HEAD,
                             len, crc)) {
        scan->reason = "a whole record with a damaged length field";
        return;
    }
    scan->torn = true;
    scan->reason = "a torn tail: the last record was never written whole";
}

/* Whole records in [at + 1, at + tail_bytes): tries every offset, moving
 * past each record found. Fills records_after / reserves_after. */
static void resync(int fd, long long at, struct br_journal_scan *scan,
                   void (*on_after)(void *, long long, const struct br_cmd *,
                                    const struct br_outcome *, bool),
                   void *ctx)
{
    /* A whole record may end in zero bytes (its hash's high bytes): look
     * one record past the last non-zero byte. */
    long long n = scan->tail_bytes + BR_JOURNAL_RECORD_MAX;
    if (n > scan->file_bytes - at) {
        n = scan->file_bytes - at;
    }
    if (scan->tail_bytes <= 1 || n > RESYNC_MAX_BYTES) {
        return;
    }
    uint8_t *buf = malloc((size_t)n);
    if (buf == NULL || pread(fd, buf, (size_t)n, (off_t)at) != (ssize_t)n) {
        free(buf);
        return;
    }
    size_t p = 1;
    /* Bounded by n: every round moves p forward by at least one byte. */
    while (p + BR_JOURNAL_RECORD_HEAD < (size_t)n) {
        struct br_cmd cmd;
        struct br_outcome out;
        bool has = false;
        size_t used = 0;
        if (br_journal_record_decode(buf + p, (size_t)n - p, &cmd, &out, &has, &used) != BR_OK) {
            p++;
            continue;
        }
        scan->records_after++;
        if (cmd.type == BR_CMD_RESERVE && has && out.err == BR_OK) {
            scan->reserves_after++;
        }
        if (on_after != NULL) {
            on_after(ctx, at + (long long)p, &cmd, &out, has);
        }
        p += used;
    }
    free(buf);
}

/* Reads every record of the open reader r (file fd of file_len bytes) and
 * fills scan; classifies the damage if any. BR_OK or BR_E_IO. */
static int scan_records(struct br_journal_reader *r, int fd, long long file_len,
                        struct br_journal_scan *scan)
{
    struct br_cmd cmd;
    struct br_outcome out;
    bool has = false;
    long long at = 0;
    /* Bounded by the file: every BR_OK consumes at least one byte. */
    for (;;) {
        int rc = br_journal_reader_next(r, &cmd, &out, &has, &at);
        if (rc == BR_OK) {
            scan->records++;
            if (cmd.type == BR_CMD_RESERVE && has && out.err == BR_OK) {
                scan->reserves++;
            }
            continue;
        }
        scan->end = at;
        if (rc == 1) {
            return BR_OK;
        }
        if (rc == BR_E_IO) {
            return rc;
        }
        scan->damage_at = at;
        classify(fd, at, file_len, scan);
        return BR_OK;
    }
}

static void scan_init(struct br_journal_scan *s, long long file_len)
{
    memset(s, 0, sizeof *s);
    s->file_bytes = file_len;
    s->damage_at = -1;
    s->reason = "";
}

int br_journal_scan_file(const char *path, struct br_config *cfg, struct br_journal_scan *scan,
                         void (*on_after)(void *ctx, long long offset, const struct br_cmd *cmd,
                                          const struct br_outcome *out, bool has_out),
                         void *ctx)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return BR_E_IO;
    }
    scan_init(scan, (long long)st.st_size);
    struct br_journal_reader *r = NULL;
    int rc = br_journal_reader_open(&r, path, cfg);
    if (rc != BR_OK) {
        return rc;
    }
    rc = scan_records(r, r->fd, scan->file_bytes, scan);
    if (rc == BR_OK && scan->damage_at >= 0) {
        resync(r->fd, scan->damage_at, scan, on_after, ctx);
    }
    br_journal_reader_close(r);
    return rc;
}

/* ---- the writer ---- */

/* Scans the existing file behind w: header against cfg, then records.
 * *good_len: where appending resumes (the cut for a torn tail). */
static int scan_existing(struct br_journal_writer *w, const struct br_config *cfg,
                         long long file_len, long long *good_len, struct br_journal_scan *scan)
{
    struct br_journal_reader *r = NULL;
    struct br_config have;
    int rc = br_journal_reader_open(&r, w->path, &have);
    if (rc == BR_E_TRUNCATED && file_len < (long long)BR_JOURNAL_HEADER_MAX) {
        /* A crash while the header was being written: no record can have
         * been acknowledged, so the whole file is a torn tail. */
        *good_len = 0;
        scan->damage_at = 0;
        scan->torn = true;
        scan->reason = "a torn header";
        return BR_OK;
    }
    if (rc != BR_OK) {
        return rc;
    }
    if (!config_equal(&have, cfg)) {
        br_journal_reader_close(r);
        jlog(&w->log, BR_JLOG_ERROR, "journal written with another config", "\"path\":\"%s\"",
             w->path);
        return BR_E_INVALID;
    }
    rc = scan_records(r, w->fd, file_len, scan);
    if (rc == BR_OK && scan->damage_at >= 0 && !scan->torn) {
        resync(w->fd, scan->damage_at, scan, NULL, NULL);
        jlog(&w->log, BR_JLOG_ERROR, "journal damaged: refusing to start",
             "\"path\":\"%s\",\"offset\":%lld,\"reason\":\"%s\",\"records_before\":%lld,"
             "\"bytes_after\":%lld,\"records_after\":%lld,\"bookings_after\":%lld,"
             "\"hint\":\"bookingrush journal check|repair DATA_DIR\"",
             w->path, scan->damage_at, scan->reason, scan->records, scan->tail_bytes,
             scan->records_after, scan->reserves_after);
        rc = BR_E_CORRUPT;
    }
    *good_len = scan->damage_at >= 0 ? scan->damage_at : scan->end;
    br_journal_reader_close(r);
    return rc;
}

/* Writes a new header at offset 0, durably (file and directory). */
static int write_header(struct br_journal_writer *w, const struct br_config *cfg, long long *len)
{
    uint8_t head[BR_JOURNAL_HEADER_MAX];
    size_t n = br_journal_header_encode(head, sizeof head, cfg);
    BR_ASSERT(n > 0 && n <= sizeof head);
    int e = pwrite_all(w->fd, head, n, 0);
    if (e == 0 && fsync(w->fd) != 0) {
        e = errno;
    }
    if (e != 0) {
        log_errno(&w->log, "write header", w->path, e);
        return err_of_errno(e);
    }
    *len = (long long)n;
    return sync_parent_dir(w->path, &w->log);
}

/* Opens (creating) the file and reads its size. BR_OK or BR_E_IO. */
static int open_file(struct br_journal_writer *w, long long *file_len)
{
    w->fd = open(w->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        log_errno(&w->log, "open", w->path, errno);
        return BR_E_IO;
    }
    struct stat st;
    if (fstat(w->fd, &st) != 0) {
        log_errno(&w->log, "stat", w->path, errno);
        close(w->fd);
        return BR_E_IO;
    }
    *file_len = (long long)st.st_size;
    return BR_OK;
}

int br_journal_writer_open_opts(struct br_journal_writer **wp, const char *path,
                                const struct br_config *cfg,
                                const struct br_journal_writer_opts *opts,
                                struct br_journal_scan *scan)
{
    *wp = NULL;
    struct br_journal_scan local;
    scan = scan != NULL ? scan : &local;
    scan_init(scan, 0);
    if (path == NULL || cfg == NULL || opts == NULL || opts->zero_ahead_bytes % 4096 != 0 ||
        strlen(path) >= sizeof((struct br_journal_writer *)0)->path) {
        return BR_E_INVALID;
    }
    struct br_journal_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return BR_E_IO;
    }
    strcpy(w->path, path);
    w->sync = opts->sync;
    w->zero_ahead = opts->zero_ahead_bytes;
    w->log = opts->log;
    long long file_len = 0;
    if (open_file(w, &file_len) != BR_OK) {
        free(w);
        return BR_E_IO;
    }
    scan->file_bytes = file_len;
    long long good = 0;
    int rc = file_len > 0 ? scan_existing(w, cfg, file_len, &good, scan) : BR_OK;
    if (rc == BR_OK && scan->torn) {
        jlog(&w->log, BR_JLOG_WARN, "journal: cutting a torn tail",
             "\"path\":\"%s\",\"offset\":%lld,\"bytes\":%lld,\"reason\":\"%s\"", path, good,
             file_len - good, scan->reason);
        if (ftruncate(w->fd, (off_t)good) != 0) {
            log_errno(&w->log, "truncate", path, errno);
            rc = BR_E_IO;
        }
        file_len = good;
    }
    if (rc == BR_OK && good == 0) {
        rc = write_header(w, cfg, &good); /* new (or wholly torn) file */
        file_len = good;
    }
    if (rc != BR_OK) {
        close(w->fd);
        free(w);
        return rc;
    }
    w->end = good;
    w->zero_end = file_len; /* past `good` only zeros remain (the scan said so) */
    *wp = w;
    return BR_OK;
}

int br_journal_writer_open(struct br_journal_writer **w, const char *path,
                           const struct br_config *cfg, enum br_journal_sync sync,
                           long long *torn_at)
{
    struct br_journal_writer_opts o = {.sync = sync, .zero_ahead_bytes = 0, .log = {NULL, NULL}};
    struct br_journal_scan scan;
    int rc = br_journal_writer_open_opts(w, path, cfg, &o, &scan);
    if (torn_at != NULL) {
        *torn_at = rc == BR_OK && scan.torn ? scan.damage_at : -1;
    }
    return rc;
}

int br_journal_writer_extend(struct br_journal_writer *w, long long min_room)
{
    BR_ASSERT(w != NULL && min_room >= 0);
    long long target = w->end + (long long)w->used + min_room;
    if (w->zero_ahead == 0 || w->zero_end >= target) {
        return BR_OK;
    }
    long long from = w->zero_end;
    long long to = from;
    /* Bounded: every round adds one chunk until target is passed. */
    while (to < target) {
        to += w->zero_ahead;
    }
    int e = 0;
    for (long long at = from; at < to && e == 0; at += ZERO_CHUNK) {
        size_t n = to - at < ZERO_CHUNK ? (size_t)(to - at) : ZERO_CHUNK;
        e = pwrite_all(w->fd, ZEROS, n, at);
    }
    if (e == 0 && fdatasync(w->fd) != 0) {
        e = errno;
    }
    if (e != 0) {
        /* Give the space back: the zeros written so far are not needed. */
        if (ftruncate(w->fd, (off_t)from) != 0) {
            log_errno(&w->log, "truncate after a failed zero-fill", w->path, errno);
        }
        return err_of_errno(e);
    }
    w->zero_end = to;
    return BR_OK;
}

long long br_journal_writer_room(const struct br_journal_writer *w)
{
    long long room = w->zero_end - w->end - (long long)w->used;
    return room > 0 ? room : 0;
}

long long br_journal_writer_end(const struct br_journal_writer *w)
{
    return w->end;
}

void br_journal_writer_discard(struct br_journal_writer *w)
{
    w->used = 0;
}

/* Writes the buffer at `end` (zero-filling ahead first when on) and syncs
 * in FSYNC mode; only then moves `end`. On failure the buffer stays. */
static int write_buffer(struct br_journal_writer *w, bool sync)
{
    if (w->used == 0 && !sync) {
        return BR_OK;
    }
    int rc = BR_OK;
    if (w->zero_ahead > 0 && w->end + (long long)w->used > w->zero_end) {
        rc = br_journal_writer_extend(w, 0);
    }
    int e = 0;
    if (rc == BR_OK) {
        e = pwrite_all(w->fd, w->buf, w->used, w->end);
        if (e == 0 && sync && fdatasync(w->fd) != 0) {
            e = errno;
        }
        rc = e == 0 ? BR_OK : err_of_errno(e);
    }
    if (rc != BR_OK) {
        if (!w->failing) {
            log_errno(&w->log, "write", w->path, e != 0 ? e : ENOSPC);
        }
        w->failing = true;
        return rc;
    }
    if (w->failing) {
        jlog(&w->log, BR_JLOG_INFO, "journal writes again", "\"path\":\"%s\"", w->path);
    }
    w->failing = false;
    w->end += (long long)w->used;
    if (w->end > w->zero_end) {
        w->zero_end = w->end;
    }
    w->used = 0;
    return BR_OK;
}

int br_journal_writer_append(struct br_journal_writer *w, const struct br_cmd *cmd,
                             const struct br_outcome *out)
{
    BR_ASSERT(w != NULL && cmd != NULL);
    if (sizeof w->buf - w->used < BR_JOURNAL_RECORD_MAX) {
        int rc = write_buffer(w, false);
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
    return write_buffer(w, w->sync == BR_JOURNAL_FSYNC);
}

int br_journal_writer_close(struct br_journal_writer *w)
{
    if (w == NULL) {
        return BR_OK;
    }
    int rc = br_journal_writer_flush(w);
    if (close(w->fd) != 0 && rc == BR_OK) {
        log_errno(&w->log, "close", w->path, errno);
        rc = BR_E_IO;
    }
    free(w);
    return rc;
}

/* ---- id skips ---- */

int br_journal_skips_read(const char *journal_path, struct br_journal_skip *out, unsigned cap)
{
    char path[600];
    snprintf(path, sizeof path, "%s.skip", journal_path);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    unsigned n = 0;
    long long off = 0;
    unsigned long recs = 0;
    int got = 0;
    /* Bounded by cap: a longer file is refused, never read in part. */
    while ((got = fscanf(f, " skip %lld %lu", &off, &recs)) == 2) {
        if (n == cap || off < 0 || recs > BR_SKIP_IDS_MAX) {
            got = 0;
            break;
        }
        out[n].offset = off;
        out[n].records = (uint32_t)recs;
        n++;
    }
    bool clean = got == EOF && !ferror(f);
    fclose(f);
    return clean ? (int)n : -1;
}

/* ---- the reader ---- */

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
        log_errno(NULL, "open", path, errno);
        free(r);
        return BR_E_IO;
    }
    if (refill(r) != BR_OK) {
        log_errno(NULL, "read", path, errno);
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
    size_t avail = r->len - r->start;
    if (all_zero(r->buf + r->start,
                 avail < BR_JOURNAL_RECORD_HEAD ? avail : BR_JOURNAL_RECORD_HEAD)) {
        /* No record starts with a zero length: zeros to the end of the file
         * are the zero-filled space ahead of the writer, i.e. the end. */
        struct stat st;
        if (fstat(r->fd, &st) == 0 && data_end(r->fd, *offset, (long long)st.st_size) == *offset) {
            return 1;
        }
        return BR_E_CORRUPT;
    }
    size_t used = 0;
    int rc = br_journal_record_decode(r->buf + r->start, avail, cmd, out, has_outcome, &used);
    if (rc != BR_OK) {
        return rc;
    }
    BR_ASSERT(used > 0 && used <= avail);
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
