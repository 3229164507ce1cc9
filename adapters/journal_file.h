/*
 * journal_file.h -- journal files on disk (format: core/journal.h).
 *
 * The writer appends encoded records to a buffer; br_journal_writer_flush
 * writes the buffer and, when the writer was opened with sync, fsyncs it:
 * callers batch many appends per flush (group commit). A failed flush keeps
 * the buffer: calling flush again rewrites the same bytes at the same offset,
 * so a full disk costs a retry, never a partial record followed by others.
 *
 * Zero-filled ahead. A writer opened with zero_ahead_bytes > 0 keeps that
 * many bytes of written (not fallocated) zeros, synced, past its last
 * record, and writes records over them: the file's size and block map do
 * not change when a commit is synced (fdatasync then writes data only), and
 * a write that never reached the disk leaves zeros behind, which is what
 * tells a torn tail from damage at the next open. When the zeros cannot be
 * extended (the disk is full) br_journal_writer_extend says so while the
 * zeros already there still take the commits in flight.
 *
 * Torn tail or damage. The scan at open reads records until the first one
 * that does not decode, at offset D. That record R is a torn tail -- the
 * trace of a write the crash cut, never acknowledged, cut automatically --
 * only when all of this holds:
 *   1. nothing but zeros follows R's declared end (or D itself when R's
 *      head is all zeros) up to the end of the file: no later write landed,
 *      so R belongs to the last write, which was never synced if R is bad;
 *   2. R is visibly unfinished: the file ends inside it, or its last 8
 *      declared bytes are zero. The server journals every command with its
 *      outcome, whose last field is the 64-bit effects hash (never zero:
 *      0x6678 for no effects), so a record that was written whole never
 *      ends in 8 zero bytes;
 *   3. no other length makes R's checksum match: R is not a whole record
 *      whose length field was damaged.
 * Anything else -- a bad length three records before the end, a bit
 * flipped inside the last record (its hash is still there), garbage after
 * zeros -- is damage: the open refuses (BR_E_CORRUPT) and leaves the file
 * untouched; `bookingrush journal check|repair` show and cut it. A crash
 * whose pages landed out of order can also look like damage: the start is
 * then refused, never silently cut, and repair decides.
 *
 * The reader walks a file record by record and reports the byte offset of a
 * truncated or corrupted record, so no damaged record is ever misread; a
 * run of zeros to the end of the file is the end of the journal.
 *
 * Logging goes through a callback (this module does not know the server's
 * logger); without one, lines are written to stderr as JSON.
 */
#ifndef BR_JOURNAL_FILE_H
#define BR_JOURNAL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cmd.h"
#include "core/engine.h"

struct br_journal_writer;
struct br_journal_reader;

enum br_journal_sync { BR_JOURNAL_NO_SYNC = 0, BR_JOURNAL_FSYNC = 1 };

enum br_journal_log_level { BR_JLOG_INFO = 1, BR_JLOG_WARN = 2, BR_JLOG_ERROR = 3 };

/* msg is a constant; fields is a JSON fragment ("\"path\":\"...\",...") or "". */
struct br_journal_log {
    void (*fn)(void *ctx, enum br_journal_log_level level, const char *msg, const char *fields);
    void *ctx;
};

struct br_journal_writer_opts {
    enum br_journal_sync sync;
    uint32_t zero_ahead_bytes; /* 0 = none; else a multiple of 4096 */
    struct br_journal_log log; /* fn NULL: JSON lines on stderr */
};

/* What a scan of a journal found (open, check, repair). */
struct br_journal_scan {
    long long file_bytes;
    long long records;        /* whole records before the end or the damage */
    long long reserves;       /* of which reserves that succeeded (bookings) */
    long long end;            /* offset after the last whole record */
    long long damage_at;      /* offset of the first bad record, -1 if none */
    bool torn;                /* the damage is a torn tail (see above) */
    const char *reason;       /* what is wrong there (a constant), "" if nothing */
    long long tail_bytes;     /* bytes from damage_at to the last non-zero byte */
    long long records_after;  /* whole records found after the damage (resync) */
    long long reserves_after; /* of which reserves that succeeded */
};

/* Opens path for appending, creating it with a header for cfg when absent.
 * If the file exists its config must equal cfg (else BR_E_INVALID); a torn
 * tail is truncated and logged (scan->torn set). scan may be NULL.
 * Returns BR_OK, BR_E_IO (errno logged), BR_E_CORRUPT (damage: the file is
 * left untouched, scan says where and what is at stake), BR_E_VERSION. */
int br_journal_writer_open_opts(struct br_journal_writer **w, const char *path,
                                const struct br_config *cfg,
                                const struct br_journal_writer_opts *opts,
                                struct br_journal_scan *scan);

/* The same without zero-fill or a logger; *torn_at is the offset cut, -1 if
 * none (may be NULL). */
int br_journal_writer_open(struct br_journal_writer **w, const char *path,
                           const struct br_config *cfg, enum br_journal_sync sync,
                           long long *torn_at);

/* Buffers one record. BR_OK, or the flush error when the buffer had to be
 * written first and that failed (nothing was buffered: call again). */
int br_journal_writer_append(struct br_journal_writer *w, const struct br_cmd *cmd,
                             const struct br_outcome *out);

/* Writes buffered records (and fsyncs when opened with BR_JOURNAL_FSYNC).
 * BR_OK; BR_E_STORAGE_UNAVAILABLE (no space: ENOSPC, EDQUOT) or BR_E_IO,
 * logged once per run of failures. On failure the buffer is kept and the
 * next flush writes it again at the same offset. */
int br_journal_writer_flush(struct br_journal_writer *w);

/* Zero-fills ahead until at least min_room bytes of zeros follow the last
 * record (plus what is buffered), in steps of zero_ahead_bytes, and syncs
 * them. BR_OK (also when zero-fill is off), BR_E_STORAGE_UNAVAILABLE or
 * BR_E_IO: the partial extension is cut off again, nothing else changes. */
int br_journal_writer_extend(struct br_journal_writer *w, long long min_room);

/* Zeros ready past the last record and the buffer (0 when zero-fill is off). */
long long br_journal_writer_room(const struct br_journal_writer *w);

/* Offset after the last record written (not counting the buffer). */
long long br_journal_writer_end(const struct br_journal_writer *w);

/* Drops what is buffered (the process is giving up on it). */
void br_journal_writer_discard(struct br_journal_writer *w);

/* Flushes and closes; w may be NULL. */
int br_journal_writer_close(struct br_journal_writer *w);

/* Scans path without changing it (`journal check`): header into *cfg, then
 * every record; classifies damage as above and, after damage, finds the
 * whole records that still follow (resynchronising on checksums). on_after,
 * when not NULL, sees each of those records. BR_OK (scan filled, damage or
 * not), BR_E_IO, or the header's error. */
int br_journal_scan_file(const char *path, struct br_config *cfg, struct br_journal_scan *scan,
                         void (*on_after)(void *ctx, long long offset, const struct br_cmd *cmd,
                                          const struct br_outcome *out, bool has_out),
                         void *ctx);

/* An id skip written by `bookingrush journal repair` into <journal>.skip
 * ("skip OFFSET RECORDS" lines): whoever replays the journal calls
 * br_catalog_skip_ids(engine, records) before applying the record at
 * OFFSET (or at the end, if the journal ends there), as the server did. */
struct br_journal_skip {
    long long offset;
    uint32_t records; /* <= BR_SKIP_IDS_MAX (core/catalog.h) */
};

#define BR_JOURNAL_SKIPS_MAX 64u /* repairs one journal may carry (lines of <journal>.skip) */

/* Reads the skips for the journal at journal_path, in file order, into
 * out[cap]. Returns how many (0 when there is no skip file), or -1 when the
 * file cannot be read, has a malformed line or more than cap lines: the
 * caller refuses to replay rather than skip part of them. */
int br_journal_skips_read(const char *journal_path, struct br_journal_skip *out, unsigned cap);

/* Opens path for reading and decodes its header into *cfg. BR_OK, BR_E_IO,
 * BR_E_TRUNCATED / BR_E_CORRUPT / BR_E_VERSION for a bad header. */
int br_journal_reader_open(struct br_journal_reader **r, const char *path, struct br_config *cfg);

/* Next record. Returns BR_OK, 1 at a clean end of file (or where only zeros
 * follow), or BR_E_TRUNCATED / BR_E_CORRUPT / BR_E_IO; *offset is always
 * the byte offset of the record (or of the damage). has_outcome tells
 * whether *out was filled. */
int br_journal_reader_next(struct br_journal_reader *r, struct br_cmd *cmd, struct br_outcome *out,
                           bool *has_outcome, long long *offset);

void br_journal_reader_close(struct br_journal_reader *r);

#endif
