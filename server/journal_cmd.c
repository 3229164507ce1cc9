/*
 * journal_cmd.c -- `bookingrush journal check|repair DATA_DIR`: what an
 * operator runs when a start refuses a damaged journal.
 *
 * check scans <DATA_DIR>/journal without changing it (journal_file.h's
 * scan): records and bookings before the damage, the damage's offset and
 * reason, and what follows it (bytes, whole records found by checksum,
 * bookings among them). Exit 0 when a start would accept the journal (a
 * torn tail included: the start cuts it), 1 on damage, 2 on usage errors.
 *
 * repair cuts the journal at the damage. It lists every record it drops
 * (type, user, ids) and the bytes it cannot read, and without --yes stops
 * there. With --yes, in this order, each step durable before the next, so a
 * crash at any point leaves a journal that a start refuses or accepts
 * whole: (1) a backup copy of the whole file, journal.damaged-<time>;
 * (2) a line "skip OFFSET N" appended to journal.skip, so the replay moves
 * every event's id counters N records ahead at the cut (br_catalog_skip_ids:
 * no booking, payment or pass id a dropped record may have handed out is
 * handed out again); (3) the file cut at the damage. N counts the whole
 * records found after the damage plus one per 26 unreadable bytes (the
 * shortest record), an upper bound. User and event ids are dense indices
 * and cannot be skipped: a dropped registration's id is given to the next
 * user, so repair says so (rotate the JWT secret if it lists any).
 *
 * Both take the data dir's LOCK as the server does: never on a live journal.
 */
#define _POSIX_C_SOURCE 200809L
#include "server/journal_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapters/cli.h"
#include "adapters/journal_file.h"
#include "core/catalog.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/panic.h"

#define RECORD_MIN_BYTES 26 /* head + the shortest payload (journal_file.c) */
#define LIST_MAX 10000      /* dropped records listed one per line; the rest counted */

static void usage(FILE *f)
{
    fprintf(f, "usage: bookingrush journal check DATA_DIR\n"
               "       bookingrush journal repair DATA_DIR [--yes]\n\n"
               "check   scans DATA_DIR/journal and reports its records, the damage (offset,\n"
               "        reason) and what follows it; exit 1 when a start would refuse it\n"
               "repair  lists every record that cutting at the damage drops; with --yes keeps a\n"
               "        copy (journal.damaged-TIME), records an id skip (journal.skip) so no\n"
               "        dropped booking, payment or pass id is handed out again, and cuts\n"
               "        the journal. Stop the server first (the data dir's LOCK is taken).\n");
}

struct dropped {
    long long listed;
    long long users; /* registrations among them */
    long long events;
    long long bytes; /* bytes of the records found */
    bool print;
};

/* One record found after the damage: a line for repair's listing. */
static void on_dropped(void *ctx, long long offset, const struct br_cmd *c,
                       const struct br_outcome *o, bool has)
{
    struct dropped *d = ctx;
    uint8_t buf[BR_JOURNAL_RECORD_MAX];
    d->bytes += (long long)br_journal_record_encode(buf, sizeof buf, c, has ? o : NULL);
    if (c->type == BR_CMD_USER_REGISTER && has && o->err == BR_OK) {
        d->users++;
    }
    if (c->type == BR_CMD_EVENT_CREATE && has && o->err == BR_OK) {
        d->events++;
    }
    if (!d->print || d->listed++ >= LIST_MAX) {
        return;
    }
    printf("  dropped at offset %lld: %s user %" PRIu64, offset, br_cmd_name(c->type), c->user_id);
    if (c->type == BR_CMD_RESERVE) {
        printf(" event %" PRIu64 " zone %u quantity %u", c->u.reserve.event_id,
               c->u.reserve.zone_id, c->u.reserve.quantity);
    } else if (c->type == BR_CMD_CANCEL || c->type == BR_CMD_PAYMENT_CREATE) {
        printf(" booking %" PRIu64, c->u.cancel.hold_id);
    } else if (c->type == BR_CMD_PAYMENT_EVENT) {
        printf(" payment %" PRIu64, c->u.payment_event.payment_id);
    }
    if (has) {
        printf(" -> %s", br_err_name(o->err));
        if (o->err == BR_OK && o->id != 0) {
            printf(" id %" PRIu64, o->id);
        }
    }
    printf("\n");
}

static int lock_dir(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "bookingrush journal: %s is in use by a running server: stop it first\n",
                dir);
        close(fd);
        return -2;
    }
    return fd; /* -1: no LOCK file (never served): nothing to exclude */
}

/* Scans and prints the report. Returns the scan's error, *scan filled. */
static int report(const char *path, struct br_journal_scan *scan, struct dropped *d)
{
    struct br_config cfg;
    int rc = br_journal_scan_file(path, &cfg, scan, on_dropped, d);
    if (rc != BR_OK) {
        fprintf(stderr, "bookingrush journal: %s: %s (%s)\n", path, br_err_name(rc),
                rc == BR_E_IO ? strerror(errno) : "the header does not decode");
        return rc;
    }
    printf("journal %s: %lld bytes\n", path, scan->file_bytes);
    printf("  records: %lld (bookings %lld), end at offset %lld\n", scan->records, scan->reserves,
           scan->end);
    if (scan->damage_at < 0) {
        printf("  zero-filled ahead: %lld bytes\n  damage: none\n", scan->file_bytes - scan->end);
        return BR_OK;
    }
    printf("  %s at offset %lld: %s\n", scan->torn ? "torn tail" : "damage", scan->damage_at,
           scan->reason);
    printf("  after it: %lld bytes, %lld whole records (bookings %lld)\n", scan->tail_bytes,
           scan->records_after, scan->reserves_after);
    return BR_OK;
}

static int cmd_check(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/journal", dir);
    int lock = lock_dir(dir);
    if (lock == -2) {
        return 2;
    }
    struct br_journal_scan scan;
    struct dropped d = {0};
    int rc = report(path, &scan, &d);
    if (lock >= 0) {
        close(lock);
    }
    if (rc != BR_OK) {
        return 1;
    }
    if (scan.damage_at >= 0 && scan.torn) {
        printf("  a start cuts this torn tail (it was never acknowledged): the journal is fine\n");
    } else if (scan.damage_at >= 0) {
        printf("  a start refuses this journal; `bookingrush journal repair %s` shows what "
               "cutting it at offset %lld drops\n",
               dir, scan.damage_at);
        return 1;
    }
    return 0;
}

/* Copies src to dst (created, not overwritten) and fsyncs it. 0 or errno. */
static int copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int e = in < 0 || out < 0 ? errno : 0;
    char buf[65536];
    /* Bounded by the file: every round copies > 0 bytes or ends. */
    while (e == 0) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0) {
            e = n < 0 ? errno : 0;
            break;
        }
        if (write(out, buf, (size_t)n) != n) {
            e = errno != 0 ? errno : EIO;
        }
    }
    if (e == 0 && fsync(out) != 0) {
        e = errno;
    }
    if (in >= 0) {
        close(in);
    }
    if (out >= 0) {
        close(out);
    }
    return e;
}

/* Appends "skip OFFSET N" to path, durably. 0 or errno. */
static int append_skip(const char *path, long long offset, long long n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        return errno;
    }
    char line[96];
    int len = snprintf(line, sizeof line, "skip %lld %lld\n", offset, n);
    int e = write(fd, line, (size_t)len) == len ? 0 : (errno != 0 ? errno : EIO);
    if (e == 0 && fsync(fd) != 0) {
        e = errno;
    }
    close(fd);
    return e;
}

/* The three durable steps of repair --yes (see the file comment). */
static int cut(const char *dir, const char *path, const struct br_journal_scan *scan,
               long long skip)
{
    char backup[700];
    char skip_path[700];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(backup, sizeof backup, "%s/journal.damaged-%04d%02d%02dT%02d%02d%02dZ", dir,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(skip_path, sizeof skip_path, "%s.skip", path);
    int e = copy_file(path, backup);
    if (e != 0) {
        fprintf(stderr, "bookingrush journal: backup %s: %s\n", backup, strerror(e));
        return 1;
    }
    printf("backup: %s\n", backup);
    e = append_skip(skip_path, scan->damage_at, skip);
    if (e != 0) {
        fprintf(stderr, "bookingrush journal: %s: %s\n", skip_path, strerror(e));
        return 1;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)scan->damage_at) != 0 || fsync(fd) != 0) {
        fprintf(stderr, "bookingrush journal: cut %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return 1;
    }
    close(fd);
    printf("cut %s at offset %lld; ids of %lld records skipped (%s)\n", path, scan->damage_at, skip,
           skip_path);
    return 0;
}

static int cmd_repair(const char *dir, bool yes)
{
    char path[600];
    snprintf(path, sizeof path, "%s/journal", dir);
    int lock = lock_dir(dir);
    if (lock == -2) {
        return 2;
    }
    struct br_journal_scan scan;
    struct dropped d = {0};
    int rc = report(path, &scan, &d);
    int code = 0;
    if (rc != BR_OK) {
        code = 1;
    } else if (scan.damage_at < 0) {
        printf("nothing to repair\n");
    } else {
        /* Again, listing: the records after the damage, in file order. */
        printf("records dropped by cutting at offset %lld:\n", scan.damage_at);
        struct br_config cfg;
        d = (struct dropped){.print = true};
        rc = br_journal_scan_file(path, &cfg, &scan, on_dropped, &d);
        BR_ASSERT(rc == BR_OK || rc == BR_E_IO); /* the header decoded a moment ago */
        if (d.listed > LIST_MAX) {
            printf("  ... and %lld more\n", d.listed - LIST_MAX);
        }
        if (rc != BR_OK) {
            if (lock >= 0) {
                close(lock);
            }
            return 1;
        }
        long long unreadable = scan.tail_bytes > d.bytes ? scan.tail_bytes - d.bytes : 0;
        long long skip =
            scan.records_after + (unreadable + RECORD_MIN_BYTES - 1) / RECORD_MIN_BYTES;
        if (skip > (long long)BR_SKIP_IDS_MAX) {
            skip = BR_SKIP_IDS_MAX;
        }
        printf("  unreadable: %lld bytes from offset %lld\n", unreadable, scan.damage_at);
        printf("cutting at offset %lld drops %lld whole records (bookings %lld) and %lld "
               "unreadable bytes\n",
               scan.damage_at, scan.records_after, scan.reserves_after, unreadable);
        if (d.users > 0 || d.events > 0) {
            printf("warning: %lld registrations and %lld events are dropped; their ids will be "
                   "given again: rotate the JWT secret so old tokens stop naming new users\n",
                   d.users, d.events);
        }
        code = yes ? cut(dir, path, &scan, skip) : (printf("run again with --yes to do it\n"), 1);
    }
    if (lock >= 0) {
        close(lock);
    }
    return code;
}

int br_journal_main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    bool yes = false;
    const char *sub = argc >= 2 ? argv[1] : NULL;
    const char *dir = NULL;
    if (sub != NULL && sub[0] == '-') {
        return br_cli_unknown_option("journal", sub);
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--yes") == 0 && sub != NULL && strcmp(sub, "repair") == 0) {
            yes = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            return br_cli_unknown_option("journal", argv[i]);
        } else if (dir != NULL) {
            return br_cli_usage_error("journal", "one DATA_DIR only, not also '%s'", argv[i]);
        } else {
            dir = argv[i];
        }
    }
    if (sub == NULL || (strcmp(sub, "check") != 0 && strcmp(sub, "repair") != 0)) {
        return br_cli_usage_error("journal", "expected check or repair, not '%s'",
                                  sub == NULL ? "nothing" : sub);
    }
    if (dir == NULL || strlen(dir) > 500) {
        return br_cli_usage_error("journal", "%s needs DATA_DIR (at most 500 bytes)", sub);
    }
    return strcmp(sub, "check") == 0 ? cmd_check(dir) : cmd_repair(dir, yes);
}
