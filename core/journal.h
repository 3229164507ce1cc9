/*
 * journal.h -- the command journal codec: commands and outcomes to bytes
 * and back.
 *
 * A journal is a header followed by records:
 *
 *   header: "BRJ1" | u32 version | u32 header_len | br_config fields | u32 crc32c
 *   record: u32 payload_len | u32 crc32c(payload) | payload
 *   payload: u8 flags (bit0: outcome present) | command | [outcome]
 *
 * Every integer is little-endian with a fixed width; strings are
 * length-prefixed (u8) and bounded by the limits in limits.h. A record that
 * ends early is BR_E_TRUNCATED; a bad checksum, an unknown command type or a
 * field out of range is BR_E_CORRUPT; decoding never reads past len and
 * never misreads a damaged record as a valid one (the checksum covers every
 * payload byte). Offsets in errors are the caller's, who knows where the
 * buffer started.
 */
#ifndef BR_JOURNAL_H
#define BR_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "engine.h"

/* Version 2 (point 8) adds payment_check (type 18) and payment_create's
 * check_ms, written after hold_id only when not 0. A v1 journal decodes
 * unchanged (its payment_creates read check_ms 0, and hash as they did).
 * Version 3 (issue 13, the waiting room) adds queue_mode_set (19: event u64,
 * set u8, mode u8, max_active u32, admit_per_min u32), presence (20: event
 * u64, count u8, count user ids u64) and event_create's five waiting-room
 * fields (admit_per_min u32, presence_ttl_s u32, pow_bits u8, queue_flags
 * u8, mode u8) after the zones, written only when one is not 0, so v1 and
 * v2 events read them as 0 and hash as they did. Headers are written as v3;
 * v1, v2 and v3 are read. */
#define BR_JOURNAL_VERSION 3u
#define BR_JOURNAL_VERSION_V2 2u
#define BR_JOURNAL_VERSION_V1 1u
#define BR_JOURNAL_MAGIC "BRJ1"
#define BR_JOURNAL_HEADER_MAX 128u  /* bytes a header takes at most */
#define BR_JOURNAL_RECORD_MAX 1024u /* bytes a record takes at most */
#define BR_JOURNAL_RECORD_HEAD 8u   /* length + checksum */

/* Encodes the header for cfg into buf. Returns bytes written (0 if cap is too small). */
size_t br_journal_header_encode(uint8_t *buf, size_t cap, const struct br_config *cfg);

/* Decodes a header. BR_OK (sets *cfg, *used), BR_E_TRUNCATED, BR_E_CORRUPT, BR_E_VERSION. */
int br_journal_header_decode(const uint8_t *buf, size_t len, struct br_config *cfg, size_t *used);

/* Encodes one record; out may be NULL (command only). Returns bytes written,
 * 0 if cap < the record's size or the command cannot be represented (an
 * unterminated string, more than BR_EVENT_ZONES_MAX zones). */
size_t br_journal_record_encode(uint8_t *buf, size_t cap, const struct br_cmd *cmd,
                                const struct br_outcome *out);

/* Decodes one record from buf[0..len). BR_OK (sets *cmd, *has_outcome, *out
 * when present, *used), BR_E_TRUNCATED (len ends inside the record) or
 * BR_E_CORRUPT. On error nothing is trusted and *used is 0. */
int br_journal_record_decode(const uint8_t *buf, size_t len, struct br_cmd *cmd,
                             struct br_outcome *out, bool *has_outcome, size_t *used);

/* Hash of the command's canonical encoding (padding and unused union bytes
 * never count). O(command size). */
uint64_t br_journal_cmd_hash(const struct br_cmd *cmd);

#endif
