/*
 * redis.h -- the Redis backend: the core's commands run as Lua scripts
 * inside Redis, the twins of core/ (lua/README.md).
 *
 * br_redis_apply mirrors br_engine_apply: one command in, the same outcome
 * and the same effects out, as the differential test (tests/redis) proves
 * on a real redis-server. The adapter owns one hiredis connection with a
 * connect timeout and a command timeout; a broken connection is dropped and
 * made again on the next call. The scripts are one Redis Functions library
 * embedded in the binary (lua/scripts.h), loaded with FUNCTION LOAD at open
 * (named after a hash of its text, so two builds never run each other's
 * code) and run with FCALL; an "ERR Function not found" answer (a restarted
 * or flushed server) loads the library again and runs the call again,
 * which is safe because the error means nothing ran.
 *
 * Key layout. Every key carries a hash tag, so each script works in one
 * Redis Cluster slot: the catalog's, an event's, a user's or a provider
 * event id's (the scripts' #!lua shebang makes Redis check it). The adapter
 * talks to one node, or, with a redis-cluster:// URL, to a Redis Cluster of
 * several: then every command goes through the slot router of
 * adapters/redis_cluster.h (MOVED, ASK, TRYAGAIN followed there; scripts
 * loaded on every master; pipelined reads sent one by one). Nothing ever
 * scans the keyspace: every id is a counter, so walks (br_redis_state_hash)
 * go over known id ranges.
 *
 *   br:{cat}:cat          hash  catalog counters (events, users, slots, active,
 *                               seats) and the config (cfg_seed, cfg_*_max, ...)
 *   br:{cat}:email        hash  email -> user id
 *   br:{cat}:u:<user>     hash  email name pw salt role
 *
 *   br:{e<event>}:ev      hash  the spec (opens limit rp maxa apt pttl httl qcap
 *                               zc cap<z> price<z> zname<z> cur<z> ...), its
 *                               token inc (drawn by the adapter each time the
 *                               event is written: the library caches the spec
 *                               while inc is unchanged), the
 *                               counters (shuf qpre qtail qwait pact piss pseq
 *                               hseq yseq held<z> sold<z> bk<state>), and as
 *                               fields of their own, one packed string each:
 *                   m:<user>    "st:pass:tix" (queue status, latest pass seq,
 *                               tickets held + bought for the per-user limit)
 *                   h:<seq>     "user:zone:qty:st:created:dl:amt:pass:pay:conf"
 *                               (a hold; pass, pay, conf are seqs, 0 = none)
 *                   p:<seq>     "user:dl:st:iss" (a pass: its user, deadline,
 *                               state, issue time)
 *   br:{e<event>}:q       zset  waiting users, score = queue slot (join order,
 *                               rewritten once by the opening shuffle)
 *   br:{e<event>}:passes  zset  live passes, score = deadline, member = %010d seq
 *   br:{e<event>}:holds   zset  live holds, score = deadline, member = %010d seq
 *   br:{e<event>}:refunds zset  refund-pending payments, score = next attempt
 *   br:{e<event>}:checks  zset  payments awaiting a status check (point 8),
 *                               score = next check, member = %010d seq
 *   br:{e<event>}:y:<seq> hash  hold(seq) st amt created att next
 *   br:{e<event>}:idem    hash  "<user>:<key>" -> "<fingerprint>:<err>:<hold seq>"
 *   br:{e<event>}:pev     set   provider event ids applied to this event
 *   br:{e<event>}:log     stream the event's log: every command and outcome
 *                               (below, "the event log")
 *
 *   br:{u<user>}:idem:<key>   string  fingerprint: the key's claim, per user
 *   br:{v<provider id>}:pev   string  payment id: the provider event's claim
 *
 * Hold, pass and payment ids are (event << 32 | seq): a command naming one
 * finds its event's slot from the id. Zset members are zero-padded seqs so
 * that ties on the score break by id, as the core's heaps do.
 *
 * Which slot a command runs in:
 *   user_register, user_role_set     {cat}
 *   event_create                     {cat} (event_alloc) then {e} (event_put)
 *   join, leave, admit, sweep        {e}   (+ open.lua once, at the opening)
 *   reserve                          {u} claim of the idempotency key, then {e}
 *   cancel, payment_create, refund_result   {e} of the id
 *   payment_event                    {v} claim of the provider event id, then {e}
 *   saga_step                        every {e} with refunds due (read, then run)
 *   payment_check                    every {e} with status checks due (the same)
 * The core's idempotency keys and provider event ids are unique across
 * events; one event's slot cannot see another's, so a small claim in the
 * key's own slot comes first and the event's script learns what it found.
 * Users are never removed, so "is this user registered" is read from {cat}
 * before a script runs (cached) without a race.
 *
 * Times: Lua numbers are doubles; now_ms lies in [0, BR_NOW_MS_MAX = 2^52]
 * (outside, BR_E_INVALID, as in the core), so every time and id is exact.
 * Capacities: the catalog-time ones of struct br_config (events, users,
 * queue slots, active passes, seats, and each event's queue capacity) are
 * enforced exactly; the in-memory engine's table sizes (members, passes,
 * holds, payments, idempotency keys, provider events) are not limits here:
 * Redis's memory is.
 *
 * One struct br_redis is used by one thread at a time (one connection);
 * threads open one each. br_redis_open sets SIGPIPE to "ignore" when it is
 * at its default, so a write to a connection the server closed fails
 * instead of ending the process.
 *
 * Errors: BR_E_UNAVAILABLE when nothing was sent (no connection, or a
 * busy/loading/read-only server that refused to run the script);
 * BR_E_UNKNOWN_OUTCOME when a request was sent but no reply came (timeout,
 * lost connection): the caller resolves it by retrying with the same
 * idempotency key; BR_E_CORRUPT when a script found the stored state
 * breaking an invariant; BR_E_IO for any other server error. Each is logged
 * with the server's own message at the call site. A malformed reply or a
 * script refusing its arguments is an adapter bug (BR_ASSERT).
 */
#ifndef BR_ADAPTERS_REDIS_H
#define BR_ADAPTERS_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cmd.h"
#include "core/engine.h"

/* A script's reply asking for the opening shuffle's permutation (lib.lua).
 * Positive, so it never collides with an error value. */
#define BR_REDIS_NEED_OPEN 1

#define BR_REDIS_HOST_MAX 256
#define BR_REDIS_SEEDS_MAX 1024 /* a cluster's seed list "host:port,host:port,..." */
#define BR_REDIS_CONNECT_TIMEOUT_MS_DEFAULT 1000
#define BR_REDIS_COMMAND_TIMEOUT_MS_DEFAULT 5000
#define BR_REDIS_OPEN_ATTEMPTS_MAX 8 /* opening shuffles redrawn while a pre-queue grows */
#define BR_REDIS_SCRIPTS_MAX 24      /* embedded scripts the adapter knows by name */
#define BR_REDIS_FUNCTION_NAME_MAX 48 /* "<script>_<16 hex>" */

struct br_redis_options {
    char host[BR_REDIS_HOST_MAX];
    int port;
    int db; /* SELECT after connecting; 0 = default */
    int connect_timeout_ms;
    int command_timeout_ms; /* per request; a script still running then is UNKNOWN_OUTCOME */
    bool quiet;             /* do not log foreign errors (tests that provoke them) */
    bool fresh;             /* FLUSHDB at open: for runs that own the db (tests, the simulator) */
    bool cluster;           /* a Redis Cluster: route by slot (redis_cluster.h); db must be 0 */
    char seeds[BR_REDIS_SEEDS_MAX]; /* cluster only: the seed nodes; host/port = the first */
};

struct redisContext;
struct br_redis_scratch;
struct br_cluster;

/* One connection and what it needs. Caller-owned; br_redis_open fills it. */
struct br_redis {
    struct br_redis_options opt;
    struct br_config cfg;               /* seed and catalog capacities, as recorded in Redis */
    struct redisContext *ctx;           /* NULL while disconnected */
    int64_t used_ms;                    /* ctx's last send (monotonic ms; redis_cluster.h) */
    char fn[BR_REDIS_SCRIPTS_MAX][BR_REDIS_FUNCTION_NAME_MAX]; /* per script (enum in redis.c):
                                                                  its function's name */
    uint64_t users_known;               /* users 1..users_known exist (users are never removed) */
    struct br_redis_scratch *s;         /* argument and merge buffers (heap) */
    uint64_t connects;                  /* connections made (the first, then reconnects) */
    uint64_t calls;                     /* script calls sent */
    uint64_t opens;                     /* opening shuffles run with a drawn permutation */
    struct br_cluster *cluster; /* cluster mode (opt.cluster): the slot router (heap), which
                                   owns the connections (ctx stays NULL); else NULL */
};

/* Parses "redis://host[:port][/db]" or "host[:port]" (port 6379, db 0 and
 * the default timeouts unless given), or "redis-cluster://host:port[,host:
 * port...]" (cluster mode: any reachable seed tells the slot map; db 0).
 * BR_OK or BR_E_INVALID. */
int br_redis_parse_url(const char *url, struct br_redis_options *o);

/* Connects, loads the scripts, empties the db when o->fresh, and records
 * cfg in Redis (or checks that Redis holds the same config: BR_E_INVALID
 * if not). BR_OK,
 * BR_E_UNAVAILABLE (cannot connect), BR_E_INVALID, BR_E_IO. On failure
 * nothing is left to close. */
int br_redis_open(struct br_redis *r, const struct br_redis_options *o,
                  const struct br_config *cfg);

/* Closes the connection and frees the buffers. Safe on a zeroed struct. */
void br_redis_close(struct br_redis *r);

/* Applies one command, as br_engine_apply does: fills *out (cleared first,
 * effect_count and effects_hash included) and fx[0..*fx_count) (fx has room
 * for BR_EFFECTS_MAX) and returns out->err. A transport failure returns
 * BR_E_UNAVAILABLE or BR_E_UNKNOWN_OUTCOME with *out holding only err and
 * no effects. Work: one to three round trips (saga_step: three plus one
 * per event), plus the opening shuffle's once per event. */
int br_redis_apply(struct br_redis *r, const struct br_cmd *cmd, struct br_outcome *out,
                   struct br_effect *fx, uint32_t *fx_count);

/* payment_check over all events (point 8), the twin of the core's
 * payment_check{max}: what br_redis_apply does for a BR_CMD_PAYMENT_CHECK
 * (it calls this), shaped like its saga_step: read every event's due
 * checks (br:{e}:checks), merge them in the core's (next check, payment
 * id) order, keep the first max, run each event's share with
 * payment_check.lua (logged as payment_check{max = k}), and list the
 * provider_query / provider_void effects in the merged order. out->count =
 * effects, out->queue_length = payments awaiting a check after. Same
 * arguments, results and errors as br_redis_apply (cmd->type must be
 * BR_CMD_PAYMENT_CHECK, user 0, max 1..BR_SAGA_STEP_MAX). Work: one
 * pipelined read per 256 events plus one call per event with a share. */
int br_redis_payment_check(struct br_redis *r, const struct br_cmd *cmd, struct br_outcome *out,
                           struct br_effect *fx, uint32_t *fx_count);

/* Issue 13: the twins of the core's queue_mode_set (19) and presence
 * (20), run by queue_mode_set.lua / presence.lua in the event's slot. For
 * queue_mode_set the adapter decides may_steer (br_catalog_may_steer over
 * the actor's role and the event's owner) in {cat} first, as join does for
 * user_known. Same arguments, results and errors as br_redis_apply (which
 * calls them for those types). A refusal by the actor's role is marked
 * external in the event's log (a trace registers every user as an admin).
 * presence with count > BR_PRESENCE_BATCH_MAX (not journalable) is answered
 * without a script and not logged. */
int br_redis_queue_mode_set(struct br_redis *r, const struct br_cmd *cmd, struct br_outcome *out,
                            struct br_effect *fx, uint32_t *fx_count);
int br_redis_presence(struct br_redis *r, const struct br_cmd *cmd, struct br_outcome *out,
                      struct br_effect *fx, uint32_t *fx_count);

/* Issue 13: marks a proof-of-work challenge used (server/pow.h): SET
 * br:{e<event>}:pow:<rand_hex> 1 PX ttl_ms NX, event 0 = register
 * (br:{cat}:pow:<rand_hex>). BR_OK (first use), BR_E_POW_INVALID (already
 * used) or a connection error. ttl_ms >= 1 only collects garbage: validity
 * is the signed expiry. One round trip. */
int br_redis_pow_use(struct br_redis *r, uint64_t event_id, const char *rand_hex, int64_t ttl_ms);

/* Reads the whole state back (pipelined, over the known id ranges) and
 * computes what br_engine_state_hash computes for an engine in the same
 * state. BR_OK, BR_E_UNAVAILABLE, BR_E_IO. O(state) round trips / 512. */
int br_redis_state_hash(struct br_redis *r, uint64_t *hash);

/* The records behind br_redis_state_hash, one call each: tag and values as
 * br_engine_state_hash hashes them (1 zone, 2 event, 3 user, 4 member,
 * 5 pass, 6 hold, 7 payment, 8 idempotency record, 9 provider event id,
 * 10 the counts, last). For tests that show which records differ. */
typedef void (*br_redis_visit)(void *ctx, uint64_t tag, const uint64_t *v, size_t n);
int br_redis_state_walk(struct br_redis *r, br_redis_visit visit, void *ctx, uint64_t *hash);

/* Seats held and sold in one zone. BR_OK, BR_E_NOT_FOUND, or a transport error. */
int br_redis_zone_counts(struct br_redis *r, uint64_t event_id, uint32_t zone_id, uint32_t *held,
                         uint32_t *sold);

/* The function name of an embedded script as loaded ("reserve" ->
 * "reserve_<hash>"), NULL if unknown: for benchmarks that FCALL a script
 * raw next to the adapter. */
const char *br_redis_function_name(const struct br_redis *r, const char *name);

/* ---- the event log (contract 1 of the distributed deployment) ----
 *
 * Every event-slot script (event_put, join, leave, admit, reserve, cancel,
 * sweep, payment_create, payment_event, refund_result, saga_step's
 * per-event share) appends, in the same atomic call, one entry to
 * br:{e<id>}:log (XADD *), so Redis itself orders an event's history:
 *   c  the command's journal record bytes (br_journal_record_encode(buf,
 *      cap, cmd, NULL)), encoded by the adapter as the core would see the
 *      command (now_ms included); the script never parses it
 *   o  the script's reply integers joined by ',': err, status, id, ref,
 *      position, queue_length, deadline_ms, amount_minor, count, aux, then
 *      six per effect (kind, user_id, id, ref, deadline_ms, amount_minor)
 *   x  present ("1") only on an entry decided outside the event's slot,
 *      which the core replaying this event alone cannot reproduce and which
 *      changed nothing: a user not registered (UNAUTHORIZED), an
 *      idempotency key claimed by a request of another event
 *      (IDEMPOTENCY_CONFLICT), a provider event id applied to another
 *      event's payment (DUPLICATE). A trace leaves them out (see
 *      lua/README.md "The event log").
 * Failures that reach the script are logged like successes (the core's
 * journal records failures too); a BR_REDIS_NEED_OPEN answer is not (it
 * wrote nothing and the command runs again after the opening shuffle).
 * The event's first entry is its event_create (logged by event_put).
 * saga_step: each event's share is logged as saga_step{max = k}, k = the
 * refunds of this event among the step's chosen, and the script re-emits
 * the first k due in this event itself, so the entry is exactly what the
 * core does with that command on this event alone; its outcome is the
 * share's (count, queue_length = this event's refunds pending after).
 */
struct br_redis_log_entry {
    char stream_id[32]; /* "<ms>-<seq>", Redis's entry id */
    struct br_cmd cmd;
    struct br_outcome out; /* effect_count and effects_hash filled as br_redis_apply fills them */
    struct br_effect fx[BR_EFFECTS_MAX];
    uint32_t fx_count;
    bool external; /* the "x" field: decided outside this slot; not part of a trace */
};

/* Entries of event_id's log after stream id `after` ("0" = from the start;
 * an id need not exist), at most max (1..BR_REDIS_LOG_READ_MAX), in stream
 * order, into out[0..*count). One XRANGE round trip. BR_OK (*count may be
 * 0), BR_E_INVALID (bad arguments), BR_E_UNAVAILABLE, BR_E_CORRUPT (an
 * entry that does not decode: logged with its id), BR_E_IO. */
#define BR_REDIS_LOG_READ_MAX 4096
int br_redis_log_read(struct br_redis *r, uint64_t event_id, const char *after, uint32_t max,
                      struct br_redis_log_entry *out, uint32_t *count);

/* The log's length (XLEN) and its last entry's id ("0-0" when empty).
 * last_id has room for 32 bytes. BR_OK, BR_E_UNAVAILABLE, BR_E_IO. */
int br_redis_log_len(struct br_redis *r, uint64_t event_id, uint64_t *len, char *last_id);

/* Drops the entries with ids <= upto (XTRIM MINID upto+1), for an
 * operator reclaiming a log's memory once upto is projected into
 * PostgreSQL. Nothing in the server calls it (the recorder never trims:
 * server/recorder.h), because `trace export` reads only the log and needs
 * it from the event's first entry; a trimmed event cannot be traced.
 * *removed set when not NULL. BR_OK, BR_E_INVALID (upto not an id),
 * BR_E_UNAVAILABLE, BR_E_IO. */
int br_redis_log_trim(struct br_redis *r, uint64_t event_id, const char *upto,
                      uint64_t *removed);

/* ---- rebuilding an event from PostgreSQL's record (the reconciler) ----
 *
 * After Redis lost its data, br_redis_rebuild_event writes one event's
 * on-sale state back from the record, in the event's slot, in one script
 * call (rebuild.lua), so the Lua twins continue from it: the spec, the
 * zones' held/sold counters, every hold (live ones back in the sweep
 * order by their deadlines), the payments (refund-pending ones back in the
 * saga's order by their next attempt; those whose status checks are open
 * back in the check order, below), the provider event ids applied, the
 * id counters (so no hold, pass or payment id is ever issued twice), and
 * the members' ticket counts (the per-user limit) from the holds.
 * Not rebuilt: the waiting queue and its passes (positions live only in
 * Redis): see lua/README.md "Rebuilding an event". The event must not exist
 * in Redis (BR_E_DUPLICATE otherwise: nothing written). Two steps: first
 * the event's share of the catalog ({cat}: the event count and the
 * capacities it takes: queue slots, active passes, seats), then the
 * event's slot. Events are rebuilt in id order 1, 2, ... (ids are dense).
 * Users are the caller's to restore first, in id order, with the
 * user_register twin (br_redis_apply of commands rebuilt from PostgreSQL's
 * rows: the adapter's users_known cache follows).
 *
 * Point 8's status checks: the record keeps no schedule, so each payment
 * comes with its check_ms (0 = no checks; the reconciler gives every
 * payment the servers' --payment-check-ms, which PostgreSQL does not keep)
 * and the schedule restarts as payment_create starts it: a payment whose
 * checks are open (pending or failed, check_ms > 0, not closed) is due at
 * now_ms + check_ms with no checks made. Closed = failed, its hold not live
 * at now_ms (not held, or past its deadline) and the void's answer
 * (br_saga_answer_id(payment, false, "canceled")) among the provider event
 * ids: the adapter decides it, the caller gives nothing more. (The core
 * keeps asking about such a payment when that answer came while its hold
 * was live, every answer then a duplicate; the rebuild closes it.)
 */
struct br_redis_rebuild_hold {
    uint64_t id; /* event_id << 32 | seq */
    uint64_t user_id;
    uint32_t zone_id; /* 1-based */
    uint32_t quantity;
    uint8_t state; /* enum br_hold_state */
    int64_t created_ms;
    int64_t deadline_ms;
    int64_t amount_minor;
    uint64_t pass_id;      /* 0 = none */
    uint64_t payment_id;   /* latest payment, 0 = none */
    uint64_t confirmed_by; /* 0 = none */
};

struct br_redis_rebuild_payment {
    uint64_t id; /* event_id << 32 | seq */
    uint64_t hold_id;
    uint8_t state; /* enum br_payment_state */
    int64_t amount_minor;
    int64_t created_ms;
    uint32_t refund_attempts;
    int64_t next_attempt_ms; /* when refund-pending */
    uint32_t check_ms;       /* point 8: 0 = none, else BR_PAYMENT_CHECK_MS_MIN..MAX */
};

struct br_redis_rebuild {
    uint64_t event_id;
    uint64_t owner_user_id;
    int64_t now_ms;            /* the scripts' clock: checks restart from it (above) */
    struct br_event_spec spec; /* as created, queue_capacity resolved */
    /* The zones' counters as PostgreSQL holds them (held, sold per zone
     * 1..zone_count); checked against the holds given: BR_E_CORRUPT when
     * they disagree (nothing written). */
    uint32_t zone_held[BR_EVENT_ZONES_MAX];
    uint32_t zone_sold[BR_EVENT_ZONES_MAX];
    /* The id counters: the largest seq ever issued (ids are event << 32 | seq). */
    uint32_t pass_seq;
    uint32_t hold_seq;
    uint32_t payment_seq;
    uint32_t passes_issued; /* admitted over the sale (stats); 0 if unknown */
    uint32_t queue_slots_used; /* queue places taken over the sale (capacity); 0 if unknown */
    const struct br_redis_rebuild_hold *holds; /* every hold recorded, any state */
    uint32_t hold_count;
    const struct br_redis_rebuild_payment *payments; /* every payment recorded */
    uint32_t payment_count;
    const uint64_t *provider_event_ids; /* applied to this event's payments */
    uint32_t provider_event_count;
};

/* Writes one event's state from the record (above). BR_OK, BR_E_DUPLICATE
 * (the event exists in Redis), BR_E_INVALID (the input breaks a rule: ids
 * of another event, counters below the ids given, ...), BR_E_CORRUPT (the
 * zone counters disagree with the holds), BR_E_UNAVAILABLE,
 * BR_E_UNKNOWN_OUTCOME (the call was sent, no reply: call again, it is
 * all or nothing), BR_E_IO. The event's log is left alone. */
int br_redis_rebuild_event(struct br_redis *r, const struct br_redis_rebuild *in);

/* One command outside the scripts (a read, a lease's SET NX PX, a
 * PUBLISH), sent as the adapter sends its own: on one node, or in cluster
 * mode to the node of its key (argv[1]; redis_cluster.h has the routing
 * table) with MOVED/ASK followed. *rep is hiredis's reply (the caller
 * frees it with freeReplyObject), possibly an error reply for the caller to
 * translate. BR_OK, BR_E_UNAVAILABLE (nothing sent), BR_E_UNKNOWN_OUTCOME
 * (sent, no reply). A raw hiredis connection to opt.host would reach only
 * the first seed's slots in cluster mode: use this instead. */
struct redisReply;
int br_redis_command(struct br_redis *r, int argc, const char **argv, const size_t *len,
                     struct redisReply **rep);

/* br_redis_command with hiredis's printf-like format, as redisCommand
 * takes it ("HGET br:{e%llu}:ev h:%llu", "%s" and "%b" for binary-safe
 * strings): a drop-in for redisCommand(rd, ...) on a raw connection.
 * BR_E_INVALID when the format is malformed or gives more than
 * BR_REDIS_COMMANDF_ARGS_MAX arguments. */
#define BR_REDIS_COMMANDF_ARGS_MAX 64
int br_redis_commandf(struct br_redis *r, struct redisReply **rep, const char *fmt, ...);

/* ---- reads of the live state, one record at a time ----
 *
 * The layout is lib.lua's (lua/README.md); this adapter is its only reader:
 * br_redis_state_walk and these share their parsers. Each read is one
 * round trip (a batch of queue views two or three) on the adapter's
 * connection, routed by slot on a cluster; it sees one consistent moment
 * of each key, not of several keys together. Each returns BR_OK,
 * BR_E_NOT_FOUND, BR_E_UNAVAILABLE (the connection failed: dropped, made
 * again on the next call) or BR_E_CORRUPT (a stored value that does not
 * parse: logged). */

/* A hold, br:{e}:ev field h:<seq> (hold_save). */
struct br_redis_hold {
    uint64_t user_id;
    uint32_t zone_id;
    uint32_t quantity;
    uint8_t state; /* enum br_hold_state */
    int64_t created_ms;
    int64_t deadline_ms;
    int64_t amount_minor;
    uint64_t pass_seq;      /* 0 = none */
    uint64_t payment_seq;   /* 0 = none */
    uint64_t confirmed_seq; /* lib.lua's conf; 0 = none */
};
/* A stored hold's value: BR_OK or BR_E_CORRUPT. */
int br_redis_hold_parse(const char *v, struct br_redis_hold *out);
int br_redis_hold_read(struct br_redis *r, uint64_t hold_id, struct br_redis_hold *out);

/* A payment, br:{e}:y:<seq>. */
struct br_redis_payment {
    uint64_t hold_seq;
    uint8_t state; /* enum br_payment_state */
    int64_t amount_minor;
    uint64_t attempts;
    int64_t next_ms;
    uint32_t check_ms;       /* point 8: 0 = no status checks */
    uint32_t check_attempts; /* checks made */
    int64_t next_check_ms;   /* the next (or, once decided, the last scheduled) check */
    uint8_t check_closed;    /* 1: a failure applied once the hold was gone */
};
int br_redis_payment_read(struct br_redis *r, uint64_t payment_id, struct br_redis_payment *out);

/* An event's spec as event_put.lua stored it (queue_capacity as stored). */
int br_redis_event_read(struct br_redis *r, uint64_t event_id, uint64_t *owner_id,
                        struct br_event_spec *spec);

/* Issue 13: an event's live waiting-room controls and admission-rate
 * ring (the twin of struct br_event's q_* fields), for the estimate
 * (br_queue_estimate) and the status route. */
struct br_redis_queue_live {
    uint8_t mode;           /* enum br_queue_mode (mode) */
    uint32_t max_active;    /* live (maxl) */
    uint32_t admit_per_min; /* live (apm) */
    int64_t pace_credit;    /* pcr */
    int64_t pace_last_ms;   /* plast */
    uint8_t gate_told;      /* told */
    uint32_t lapsed;        /* lap */
    uint32_t avail;         /* seats available: sum capacity - held - sold */
    bool sold_out;
    uint32_t queue_length;  /* waiting, pre-queue included */
    struct br_queue_rate rate; /* bucket_last -1 = none (rate absent) */
};
/* br_redis_event_read and, when live is not NULL, the live controls, in the
 * same round trip (one HMGET). Also fills spec's issue 13 fields, as
 * br_redis_event_read does. An event written before issue 13 reads with
 * every switch off. */
int br_redis_event_read_live(struct br_redis *r, uint64_t event_id, uint64_t *owner_id,
                             struct br_event_spec *spec, struct br_redis_queue_live *live);

/* An event's counters (zones 1..zone_count). */
struct br_redis_counters {
    uint32_t zone_count;
    uint32_t held[BR_EVENT_ZONES_MAX];
    uint32_t sold[BR_EVENT_ZONES_MAX];
    uint32_t queue_length;
    uint32_t admitted;
    uint32_t active_passes;
    uint32_t bookings[BR_HOLD_STATE_COUNT];
};
int br_redis_counters_read(struct br_redis *r, uint64_t event_id, uint32_t zone_count,
                           struct br_redis_counters *out);

/* A user's email, name and role (no password hash). */
int br_redis_user_read(struct br_redis *r, uint64_t user_id, char email[BR_EMAIL_MAX],
                       char name[BR_NAME_MAX], uint8_t *role);

/* The id registered with this email (byte for byte) into *user_id: BR_OK,
 * BR_E_NOT_FOUND or a connection error. */
int br_redis_user_by_email(struct br_redis *r, const char *email, uint64_t *user_id);

/* A counter of the catalog hash ("events", "users"; 0 when absent). */
int br_redis_catalog_count(struct br_redis *r, const char *field, uint64_t *out);

/* The queue views of n users of one event: rc[i] = BR_OK or
 * BR_E_NOT_IN_QUEUE; returns BR_OK, BR_E_NOT_FOUND (no event) or a
 * connection error. Pipelined: two round trips, three with admitted users
 * (their passes' deadlines). */
struct br_redis_view {
    uint8_t status;        /* enum br_queue_status; a pre-queue member after the shuffle: waiting */
    uint32_t position;     /* waiting: 1-based */
    uint32_t queue_length; /* the event's waiting count */
    uint64_t pass_id;      /* admitted: event_id << 32 | seq */
    int64_t pass_expires_at_ms;
};
#define BR_REDIS_VIEWS_CHUNK 256u /* users per pipeline */
int br_redis_queue_positions(struct br_redis *r, uint64_t event_id, const uint64_t *users,
                             uint32_t n, struct br_redis_view *out, int *rc);

/* Holds ids[0..n) (n <= BR_REDIS_VIEWS_CHUNK; any events), pipelined: one
 * round trip. rc[i] = BR_OK, BR_E_NOT_FOUND or BR_E_CORRUPT; returns BR_OK
 * or a connection error. */
int br_redis_holds_read(struct br_redis *r, const uint64_t *ids, uint32_t n,
                        struct br_redis_hold *out, int *rc);

/* One round of a scan of event_id's holds (HSCAN h:*, COUNT 1000): cursor
 * "0" starts, and is "0" again after the last round. fn(ctx, hold id, hold)
 * for each hold of the round, after the reply was read (fn may use r); a
 * value that does not parse is skipped (logged). BR_OK or a connection
 * error. */
typedef void (*br_redis_hold_fn)(void *ctx, uint64_t hold_id, const struct br_redis_hold *h);
int br_redis_holds_scan(struct br_redis *r, uint64_t event_id, char cursor[32], br_redis_hold_fn fn,
                        void *ctx);

/* The user's tickets (the member record's tix: held and bought, the
 * per-user limit's counter) in events first..first+n-1 (n <=
 * BR_REDIS_VIEWS_CHUNK), 0 where not a member, pipelined: one round trip. */
int br_redis_member_tickets(struct br_redis *r, uint64_t user_id, uint64_t first, uint32_t n,
                            uint32_t *tix);

/* What an event's due check reads (the roles thread's twin of
 * br_engine_due's inputs): the queue's state and the first deadline of each
 * of passes, holds, refunds and payment checks (INT64_MAX = none). */
struct br_redis_due {
    bool exists; /* false: allocated, being written */
    bool shuffled;
    int64_t opens_ms;
    uint64_t waiting;
    uint64_t active_passes;
    uint64_t max_active;
    int64_t next_pass_ms;
    int64_t next_hold_ms;
    int64_t next_refund_ms;
    int64_t next_check_ms; /* the first payment status check (point 8), INT64_MAX = none */
    /* Issue 13 (absent on an event written before it: every switch off): the
     * inputs of br_queue_admit_due (core/queue.h, struct br_queue_due_in). */
    uint8_t mode;          /* enum br_queue_mode (mode) */
    uint8_t flags;         /* spec queue_flags (qf) */
    uint32_t avail;        /* seats available */
    bool sold_out;
    uint8_t told;          /* q_gate_told */
    uint32_t apm;          /* live admit_per_min */
    int64_t pcr;           /* pace credit */
    int64_t plast;         /* pace last ms */
    uint32_t maxl;         /* live max_active */
};
/* One event's due inputs in one round trip. lead_argc > 0: that command
 * (of the event's slot, e.g. a lease script; never on a cluster, whose
 * router batches no scripts) goes first in the same pipeline and its reply
 * into *lead_rep (the caller frees it). BR_OK or a connection error. */
int br_redis_event_due(struct br_redis *r, uint64_t event_id, int lead_argc, const char **lead_argv,
                       const size_t *lead_len, struct redisReply **lead_rep,
                       struct br_redis_due *out);

/* Empties the deployment's Redis and records r's config again (a fresh
 * state): FLUSHDB, on a cluster on every master in turn; the adapter's
 * users_known cache is reset (the loaded Functions survive FLUSHDB). Used
 * by tests and, in production, by the reconciler's rebuild
 * (server/reconciler.c) once Redis was found to have lost data. Safe there
 * because: the db (a cluster: the whole cluster) must belong to this
 * deployment alone -- everything in it goes (README, "Deployment"); every
 * process refuses writes while the epoch key is missing, which the flush
 * keeps so until the rebuild writes it again; r->cfg is the deployment's
 * config as recorded (the reconciler opens with the one adopted from
 * Redis), so the record made again is the same. A failure part way (a
 * master unreachable) returns BR_E_UNAVAILABLE and leaves a partly emptied
 * Redis, which the next pass finds lost again and flushes again: the call
 * is idempotent. BR_OK, BR_E_UNAVAILABLE, BR_E_INVALID (another config is
 * recorded: a process that raced the flush recorded its own). */
int br_redis_flush(struct br_redis *r);

#endif
