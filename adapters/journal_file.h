/*
 * journal_file.h -- journal files on disk (format: core/journal.h).
 *
 * The writer appends encoded records to a buffer; br_journal_writer_flush
 * writes the buffer and, when the writer was opened with sync, fsyncs it:
 * callers batch many appends per flush (group commit). Opening an existing
 * file validates its header, cuts a torn tail (a last record cut short by a
 * crash) and appends after the last good record.
 *
 * The reader walks a file record by record and reports the byte offset of a
 * truncated or corrupted record, so no damaged record is ever misread.
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

/* Opens path for appending, creating it with a header for cfg when absent.
 * If the file exists its config must equal cfg (else BR_E_INVALID); a torn
 * tail is truncated (its offset is reported through *torn_at, -1 if none).
 * Returns BR_OK, BR_E_IO (errno logged), BR_E_CORRUPT (damage before the
 * tail: the file is left untouched), BR_E_VERSION. */
int br_journal_writer_open(struct br_journal_writer **w, const char *path,
                           const struct br_config *cfg, enum br_journal_sync sync,
                           long long *torn_at);

/* Buffers one record. BR_OK or BR_E_IO when the buffer had to be written and failed. */
int br_journal_writer_append(struct br_journal_writer *w, const struct br_cmd *cmd,
                             const struct br_outcome *out);

/* Writes buffered records (and fsyncs when opened with BR_JOURNAL_FSYNC). */
int br_journal_writer_flush(struct br_journal_writer *w);

/* Flushes and closes; w may be NULL. */
int br_journal_writer_close(struct br_journal_writer *w);

/* Opens path for reading and decodes its header into *cfg. BR_OK, BR_E_IO,
 * BR_E_TRUNCATED / BR_E_CORRUPT / BR_E_VERSION for a bad header. */
int br_journal_reader_open(struct br_journal_reader **r, const char *path, struct br_config *cfg);

/* Next record. Returns BR_OK, 1 at a clean end of file, or BR_E_TRUNCATED /
 * BR_E_CORRUPT / BR_E_IO; *offset is always the byte offset of the record
 * (or of the damage). has_outcome tells whether *out was filled. */
int br_journal_reader_next(struct br_journal_reader *r, struct br_cmd *cmd,
                           struct br_outcome *out, bool *has_outcome, long long *offset);

void br_journal_reader_close(struct br_journal_reader *r);

#endif
