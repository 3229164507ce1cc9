/*
 * journal.c -- the byte format of commands and outcomes (see journal.h).
 * A writer and a bounds-checked reader over caller buffers; the reader
 * turns every short or out-of-range field into BR_E_CORRUPT, because the
 * record's checksum already passed and the bytes still do not parse.
 */
#include "journal.h"

#include <string.h>

#include "catalog.h"
#include "err.h"
#include "hash.h"
#include "panic.h"
#include "str.h"

struct wr {
    uint8_t *p;
    size_t cap;
    size_t n;
    bool overflow; /* out of room, or a value the format cannot carry */
};

static void put(struct wr *w, const void *src, size_t len)
{
    if (w->n + len > w->cap) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->n, src, len);
    w->n += len;
}

static void put_u64(struct wr *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    put(w, b, 8);
}

static void put_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    put(w, b, 4);
}

static void put_u8(struct wr *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put_str(struct wr *w, const char *s, size_t cap)
{
    size_t len = br_strnlen(s, cap);
    if (len >= cap || len > 255) {
        w->overflow = true; /* unterminated: not representable, so not encodable */
        return;
    }
    put_u8(w, (uint8_t)len);
    put(w, s, len);
}

struct rd {
    const uint8_t *p;
    size_t len;
    size_t n;
    size_t cmd_end; /* where the command's bytes end (the outcome, if any, follows) */
    bool bad;
};

static void get(struct rd *r, void *dst, size_t len)
{
#ifdef BR_PLANT_JOURNAL_OOB
    /* planted (fuzzer self-test, scripts/test.d/41-fuzz-plant.sh): the bound
     * lets a field end one byte past the record */
    if (r->bad || r->n + len > r->len + 1) {
#else
    if (r->bad || r->n + len > r->len) {
#endif
        r->bad = true;
        memset(dst, 0, len);
        return;
    }
    memcpy(dst, r->p + r->n, len);
    r->n += len;
}

static uint64_t get_u64(struct rd *r)
{
    uint8_t b[8];
    get(r, b, 8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | b[i];
    }
    return v;
}

static uint32_t get_u32(struct rd *r)
{
    uint8_t b[4];
    get(r, b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint8_t get_u8(struct rd *r)
{
    uint8_t v;
    get(r, &v, 1);
    return v;
}

static bool get_bool(struct rd *r)
{
    uint8_t v = get_u8(r);
    if (v > 1) {
        r->bad = true;
    }
    return v == 1;
}

/* A string of at most cap - 1 bytes without NUL, into a zeroed field. */
static void get_str(struct rd *r, char *dst, size_t cap)
{
    size_t len = get_u8(r);
    if (len >= cap) {
        r->bad = true;
        return;
    }
    get(r, dst, len);
    if (!r->bad && memchr(dst, 0, len) != NULL) {
        r->bad = true;
    }
}

/* ---- commands ---- */

static void put_cmd(struct wr *w, const struct br_cmd *c)
{
    put_u8(w, c->type);
    put_u64(w, (uint64_t)c->now_ms);
    put_u64(w, c->user_id);
    switch (c->type) {
    case BR_CMD_EVENT_CREATE: {
        const struct br_event_spec *s = &c->u.event_create;
        put_str(w, s->name, sizeof s->name);
        put_str(w, s->venue, sizeof s->venue);
        put_u64(w, (uint64_t)s->starts_at_ms);
        put_u64(w, (uint64_t)s->sale_opens_at_ms);
        put_u32(w, s->per_user_limit);
        put_u8(w, s->requires_pass ? 1 : 0);
        put_u32(w, s->max_active);
        put_u32(w, s->admit_per_tick);
        put_u64(w, (uint64_t)s->pass_ttl_ms);
        put_u64(w, (uint64_t)s->hold_ttl_ms);
        put_u32(w, s->queue_capacity);
        uint32_t zc = s->zone_count;
        if (zc > BR_EVENT_ZONES_MAX) {
            w->overflow = true; /* would not survive a round trip */
            return;
        }
        put_u8(w, (uint8_t)zc);
        for (uint32_t z = 0; z < zc; z++) {
            put_str(w, s->zones[z].name, sizeof s->zones[z].name);
            put_u32(w, s->zones[z].capacity);
            put_u64(w, (uint64_t)s->zones[z].price_minor);
            put(w, s->zones[z].currency, 3);
        }
        /* v3: the waiting room's five fields follow only when one is set,
         * so an event of v1/v2 (every switch off) encodes and hashes as it did */
        if (s->admit_per_min != 0 || s->presence_ttl_s != 0 || s->pow_bits != 0 ||
            s->queue_flags != 0 || s->mode != 0) {
            put_u32(w, s->admit_per_min);
            put_u32(w, s->presence_ttl_s);
            put_u8(w, s->pow_bits);
            put_u8(w, s->queue_flags);
            put_u8(w, s->mode);
        }
        break;
    }
    case BR_CMD_USER_REGISTER:
        put_str(w, c->u.user_register.email, BR_EMAIL_MAX);
        put_str(w, c->u.user_register.name, BR_NAME_MAX);
        put(w, c->u.user_register.password_hash, BR_PASSWORD_HASH_LEN);
        put(w, c->u.user_register.salt, BR_SALT_LEN);
        put_u8(w, c->u.user_register.role);
        break;
    case BR_CMD_USER_ROLE_SET:
        put_u64(w, c->u.user_role_set.target_user_id);
        put_u8(w, c->u.user_role_set.role);
        break;
    case BR_CMD_QUEUE_JOIN:
    case BR_CMD_QUEUE_LEAVE:
    case BR_CMD_ADMIT:
        put_u64(w, c->u.queue_join.event_id); /* the three share one layout */
        break;
    case BR_CMD_RESERVE:
        put_u64(w, c->u.reserve.event_id);
        put_u32(w, c->u.reserve.zone_id);
        put_u32(w, c->u.reserve.quantity);
        put_u64(w, c->u.reserve.pass_id);
        put_u64(w, c->u.reserve.idem_key);
        break;
    case BR_CMD_CANCEL:
        put_u64(w, c->u.cancel.hold_id);
        break;
    case BR_CMD_PAYMENT_CREATE:
        put_u64(w, c->u.payment_create.hold_id);
        /* v2: check_ms follows only when set, so a v1 record (no check_ms)
         * is a v2 record with check_ms 0, and hashes as it did */
        if (c->u.payment_create.check_ms != 0) {
            put_u32(w, c->u.payment_create.check_ms);
        }
        break;
    case BR_CMD_SWEEP:
        put_u64(w, c->u.sweep.event_id);
        put_u32(w, c->u.sweep.max);
        break;
    case BR_CMD_PAYMENT_EVENT:
        put_u64(w, c->u.payment_event.provider_event_id);
        put_u64(w, c->u.payment_event.payment_id);
        put_u8(w, c->u.payment_event.succeeded ? 1 : 0);
        break;
    case BR_CMD_REFUND_RESULT:
        put_u64(w, c->u.refund_result.payment_id);
        put_u8(w, c->u.refund_result.ok ? 1 : 0);
        break;
    case BR_CMD_SAGA_STEP:
        put_u32(w, c->u.saga_step.max);
        break;
    case BR_CMD_PAYMENT_CHECK:
        put_u32(w, c->u.payment_check.max);
        break;
    case BR_CMD_SESSION_OPEN:
        put_u64(w, (uint64_t)c->u.session_open.ttl_ms);
        put_u32(w, c->u.session_open.generation);
        break;
    case BR_CMD_SESSION_ROTATE:
    case BR_CMD_SESSION_REVOKE:
        put_u64(w, c->u.session_rotate.session_id); /* the two share one layout */
        put_u32(w, c->u.session_rotate.generation);
        put_u64(w, (uint64_t)c->u.session_rotate.ttl_ms);
        break;
    case BR_CMD_SESSION_REVOKE_ALL:
        break; /* the actor is the argument */
    case BR_CMD_QUEUE_MODE_SET:
        put_u64(w, c->u.queue_mode_set.event_id);
        put_u8(w, c->u.queue_mode_set.set);
        put_u8(w, c->u.queue_mode_set.mode);
        put_u32(w, c->u.queue_mode_set.max_active);
        put_u32(w, c->u.queue_mode_set.admit_per_min);
        break;
    case BR_CMD_PRESENCE: {
        uint32_t n = c->u.presence.count;
        if (n > BR_PRESENCE_BATCH_MAX) {
            w->overflow = true; /* more ids than a command holds: not representable */
            return;
        }
        put_u64(w, c->u.presence.event_id);
        put_u8(w, (uint8_t)n);
        for (uint32_t i = 0; i < n; i++) {
            put_u64(w, c->u.presence.user_ids[i]); /* only the first count ids */
        }
        break;
    }
    default:
        break; /* unknown types carry no arguments; the engine answers BR_E_INVALID */
    }
}

static void get_cmd(struct rd *r, struct br_cmd *c)
{
    memset(c, 0, sizeof *c);
    c->type = get_u8(r);
    c->now_ms = (int64_t)get_u64(r);
    c->user_id = get_u64(r);
    switch (c->type) {
    case BR_CMD_EVENT_CREATE: {
        struct br_event_spec *s = &c->u.event_create;
        get_str(r, s->name, sizeof s->name);
        get_str(r, s->venue, sizeof s->venue);
        s->starts_at_ms = (int64_t)get_u64(r);
        s->sale_opens_at_ms = (int64_t)get_u64(r);
        s->per_user_limit = get_u32(r);
        s->requires_pass = get_bool(r);
        s->max_active = get_u32(r);
        s->admit_per_tick = get_u32(r);
        s->pass_ttl_ms = (int64_t)get_u64(r);
        s->hold_ttl_ms = (int64_t)get_u64(r);
        s->queue_capacity = get_u32(r);
        s->zone_count = get_u8(r);
        if (s->zone_count > BR_EVENT_ZONES_MAX) {
            r->bad = true;
            break;
        }
        for (uint32_t z = 0; z < s->zone_count; z++) {
            get_str(r, s->zones[z].name, sizeof s->zones[z].name);
            s->zones[z].capacity = get_u32(r);
            s->zones[z].price_minor = (int64_t)get_u64(r);
            get(r, s->zones[z].currency, 3);
        }
        if (!r->bad && r->n != r->cmd_end) {
            s->admit_per_min = get_u32(r);
            s->presence_ttl_s = get_u32(r);
            s->pow_bits = get_u8(r);
            s->queue_flags = get_u8(r);
            s->mode = get_u8(r);
            if (s->admit_per_min == 0 && s->presence_ttl_s == 0 && s->pow_bits == 0 &&
                s->queue_flags == 0 && s->mode == 0) {
                r->bad = true; /* never written: all zero is written as nothing */
            }
        }
        break;
    }
    case BR_CMD_USER_REGISTER:
        get_str(r, c->u.user_register.email, BR_EMAIL_MAX);
        get_str(r, c->u.user_register.name, BR_NAME_MAX);
        get(r, c->u.user_register.password_hash, BR_PASSWORD_HASH_LEN);
        get(r, c->u.user_register.salt, BR_SALT_LEN);
        c->u.user_register.role = get_u8(r);
        break;
    case BR_CMD_USER_ROLE_SET:
        c->u.user_role_set.target_user_id = get_u64(r);
        c->u.user_role_set.role = get_u8(r);
        break;
    case BR_CMD_QUEUE_JOIN:
    case BR_CMD_QUEUE_LEAVE:
    case BR_CMD_ADMIT:
        c->u.queue_join.event_id = get_u64(r);
        break;
    case BR_CMD_RESERVE:
        c->u.reserve.event_id = get_u64(r);
        c->u.reserve.zone_id = get_u32(r);
        c->u.reserve.quantity = get_u32(r);
        c->u.reserve.pass_id = get_u64(r);
        c->u.reserve.idem_key = get_u64(r);
        break;
    case BR_CMD_CANCEL:
        c->u.cancel.hold_id = get_u64(r);
        break;
    case BR_CMD_PAYMENT_CREATE:
        c->u.payment_create.hold_id = get_u64(r);
        if (r->n + 4 == r->cmd_end) {
            c->u.payment_create.check_ms = get_u32(r);
            if (c->u.payment_create.check_ms == 0) {
                r->bad = true; /* never written: 0 is written as nothing */
            }
        }
        break;
    case BR_CMD_SWEEP:
        c->u.sweep.event_id = get_u64(r);
        c->u.sweep.max = get_u32(r);
        break;
    case BR_CMD_PAYMENT_EVENT:
        c->u.payment_event.provider_event_id = get_u64(r);
        c->u.payment_event.payment_id = get_u64(r);
        c->u.payment_event.succeeded = get_bool(r);
        break;
    case BR_CMD_REFUND_RESULT:
        c->u.refund_result.payment_id = get_u64(r);
        c->u.refund_result.ok = get_bool(r);
        break;
    case BR_CMD_SAGA_STEP:
        c->u.saga_step.max = get_u32(r);
        break;
    case BR_CMD_PAYMENT_CHECK:
        c->u.payment_check.max = get_u32(r);
        break;
    case BR_CMD_SESSION_OPEN:
        c->u.session_open.ttl_ms = (int64_t)get_u64(r);
        c->u.session_open.generation = get_u32(r);
        break;
    case BR_CMD_SESSION_ROTATE:
    case BR_CMD_SESSION_REVOKE:
        c->u.session_rotate.session_id = get_u64(r);
        c->u.session_rotate.generation = get_u32(r);
        c->u.session_rotate.ttl_ms = (int64_t)get_u64(r);
        break;
    case BR_CMD_SESSION_REVOKE_ALL:
        break;
    case BR_CMD_QUEUE_MODE_SET:
        c->u.queue_mode_set.event_id = get_u64(r);
        c->u.queue_mode_set.set = get_u8(r);
        c->u.queue_mode_set.mode = get_u8(r);
        c->u.queue_mode_set.max_active = get_u32(r);
        c->u.queue_mode_set.admit_per_min = get_u32(r);
        break;
    case BR_CMD_PRESENCE:
        c->u.presence.event_id = get_u64(r);
        c->u.presence.count = get_u8(r);
        if (c->u.presence.count > BR_PRESENCE_BATCH_MAX) {
            r->bad = true;
            break;
        }
        for (uint32_t i = 0; i < c->u.presence.count; i++) {
            c->u.presence.user_ids[i] = get_u64(r); /* the rest stay zero (memset above) */
        }
        break;
    default:
        r->bad = true; /* an unknown type is damage, not a command */
        break;
    }
}

static void put_outcome(struct wr *w, const struct br_outcome *o)
{
    put_u32(w, (uint32_t)o->err);
    put_u8(w, o->status);
    put_u64(w, o->id);
    put_u64(w, o->ref);
    put_u32(w, o->position);
    put_u32(w, o->queue_length);
    put_u64(w, (uint64_t)o->deadline_ms);
    put_u64(w, (uint64_t)o->amount_minor);
    put_u32(w, o->count);
    put_u32(w, o->effect_count);
    put_u64(w, o->effects_hash);
}

static void get_outcome(struct rd *r, struct br_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->err = (int32_t)get_u32(r);
    o->status = get_u8(r);
    o->id = get_u64(r);
    o->ref = get_u64(r);
    o->position = get_u32(r);
    o->queue_length = get_u32(r);
    o->deadline_ms = (int64_t)get_u64(r);
    o->amount_minor = (int64_t)get_u64(r);
    o->count = get_u32(r);
    o->effect_count = get_u32(r);
    o->effects_hash = get_u64(r);
    if (o->err > 0 || o->err <= -BR_ERR_COUNT || o->effect_count > BR_EFFECTS_MAX) {
        r->bad = true;
    }
}

/* ---- records ---- */

#define OUTCOME_LEN (4 + 1 + 8 + 8 + 4 + 4 + 8 + 8 + 4 + 4 + 8) /* put_outcome's bytes */

size_t br_journal_record_encode(uint8_t *buf, size_t cap, const struct br_cmd *cmd,
                                const struct br_outcome *out)
{
    if (cap < BR_JOURNAL_RECORD_HEAD) {
        return 0;
    }
    struct wr w = {.p = buf + BR_JOURNAL_RECORD_HEAD, .cap = cap - BR_JOURNAL_RECORD_HEAD};
    put_u8(&w, out ? 1 : 0);
    put_cmd(&w, cmd);
    if (out) {
        put_outcome(&w, out);
    }
    if (w.overflow) {
        return 0;
    }
    BR_ASSERT(w.n + BR_JOURNAL_RECORD_HEAD <= BR_JOURNAL_RECORD_MAX);
    struct wr h = {.p = buf, .cap = BR_JOURNAL_RECORD_HEAD};
    put_u32(&h, (uint32_t)w.n);
    put_u32(&h, br_crc32c(0, w.p, w.n));
    return BR_JOURNAL_RECORD_HEAD + w.n;
}

int br_journal_record_decode(const uint8_t *buf, size_t len, struct br_cmd *cmd,
                             struct br_outcome *out, bool *has_outcome, size_t *used)
{
    *used = 0;
    if (len < BR_JOURNAL_RECORD_HEAD) {
        return BR_E_TRUNCATED;
    }
    struct rd h = {.p = buf, .len = BR_JOURNAL_RECORD_HEAD};
    uint32_t n = get_u32(&h);
    uint32_t crc = get_u32(&h);
    if (n < 1 + 17 || n > BR_JOURNAL_RECORD_MAX - BR_JOURNAL_RECORD_HEAD) {
        return BR_E_CORRUPT;
    }
    if (len - BR_JOURNAL_RECORD_HEAD < n) {
        return BR_E_TRUNCATED;
    }
    const uint8_t *payload = buf + BR_JOURNAL_RECORD_HEAD;
    if (br_crc32c(0, payload, n) != crc) {
        return BR_E_CORRUPT;
    }
    struct rd r = {.p = payload, .len = n};
    uint8_t flags = get_u8(&r);
    if (flags > 1) {
        return BR_E_CORRUPT;
    }
    r.cmd_end = flags == 1 ? (n >= OUTCOME_LEN ? n - OUTCOME_LEN : 0) : n;
    get_cmd(&r, cmd);
    *has_outcome = flags == 1;
    if (*has_outcome) {
        get_outcome(&r, out);
    } else {
        memset(out, 0, sizeof *out);
    }
    if (r.bad || r.n != n) {
        return BR_E_CORRUPT;
    }
    *used = BR_JOURNAL_RECORD_HEAD + n;
    return BR_OK;
}

/* ---- header ---- */

#define HEADER_LEN (4 + 4 + 4 + 8 + 12 * 4 + 4)

static void config_fields(struct br_config *c, uint32_t **f)
{
    uint32_t *fields[12] = {&c->events_max,       &c->users_max,       &c->members_max,
                            &c->queue_slots_max,  &c->queue_capacity_default, &c->passes_max,
                            &c->active_max,       &c->holds_max,       &c->seats_max,
                            &c->payments_max,     &c->idem_max,        &c->provider_events_max};
    memcpy(f, fields, sizeof fields);
}

size_t br_journal_header_encode(uint8_t *buf, size_t cap, const struct br_config *cfg)
{
    if (cap < HEADER_LEN) {
        return 0;
    }
    struct br_config c = *cfg;
    uint32_t *f[12];
    config_fields(&c, f);
    struct wr w = {.p = buf, .cap = cap};
    put(&w, BR_JOURNAL_MAGIC, 4);
    put_u32(&w, BR_JOURNAL_VERSION);
    put_u32(&w, HEADER_LEN);
    put_u64(&w, c.seed);
    for (int i = 0; i < 12; i++) {
        put_u32(&w, *f[i]);
    }
    put_u32(&w, br_crc32c(0, buf, w.n));
    BR_ASSERT(!w.overflow && w.n == HEADER_LEN);
    return w.n;
}

int br_journal_header_decode(const uint8_t *buf, size_t len, struct br_config *cfg, size_t *used)
{
    *used = 0;
    if (len < 12) {
        return BR_E_TRUNCATED;
    }
    if (memcmp(buf, BR_JOURNAL_MAGIC, 4) != 0) {
        return BR_E_CORRUPT;
    }
    struct rd r = {.p = buf, .len = len, .n = 4};
    uint32_t version = get_u32(&r);
    uint32_t hlen = get_u32(&r);
    if (version != BR_JOURNAL_VERSION && version != BR_JOURNAL_VERSION_V2 &&
        version != BR_JOURNAL_VERSION_V1) {
        return BR_E_VERSION;
    }
    if (hlen != HEADER_LEN) {
        return BR_E_CORRUPT;
    }
    if (len < HEADER_LEN) {
        return BR_E_TRUNCATED;
    }
    struct br_config c;
    memset(&c, 0, sizeof c);
    uint32_t *f[12];
    config_fields(&c, f);
    c.seed = get_u64(&r);
    for (int i = 0; i < 12; i++) {
        *f[i] = get_u32(&r);
    }
    uint32_t crc = get_u32(&r);
    if (r.bad || crc != br_crc32c(0, buf, HEADER_LEN - 4)) {
        return BR_E_CORRUPT;
    }
    *cfg = c;
    *used = HEADER_LEN;
    return BR_OK;
}

/* ---- hashing commands canonically (used by the engine's digest) ---- */

uint64_t br_journal_cmd_hash(const struct br_cmd *cmd)
{
    uint8_t buf[BR_JOURNAL_RECORD_MAX];
    struct wr w = {.p = buf, .cap = sizeof buf};
    put_cmd(&w, cmd);
    if (w.overflow) {
        /* Unencodable (an unterminated string): hash the raw value. Drivers
         * zero commands before filling them, so this is still deterministic. */
        return br_hash64(cmd, sizeof *cmd, 0x726177ULL);
    }
    return br_hash64(buf, w.n, 0x636d64ULL);
}
