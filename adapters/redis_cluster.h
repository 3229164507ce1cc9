/*
 * redis_cluster.h -- slot routing for the Redis adapter on a Redis Cluster
 * (hiredis 0.14 has none; no cluster client library is packaged here).
 *
 * What it does. Every key hashes to one of 16384 slots (CRC16-CCITT of the
 * key, or of its hash tag: the bytes between the first '{' and the next '}'
 * when that is not empty, modulo 16384, as the Redis Cluster specification
 * says). Each slot is served by one master; the router keeps a slot -> node
 * map, learned with CLUSTER SLOTS at open and again after a MOVED, and one
 * hiredis connection per node, made lazily with the adapter's connect and
 * command timeouts. A command goes to the node of its key's slot:
 *
 *   EVAL/EVALSHA/FCALL(_RO) sha|name numkeys key ...   the first key (argv[3])
 *   XREAD/XREADGROUP ... STREAMS key ...               the first stream
 *   SCRIPT ..., FUNCTION ..., FLUSHDB, FLUSHALL        every master, in turn
 *   PING, INFO, CLUSTER ..., numkeys 0                 any node
 *   anything else                                      argv[1]
 *
 * Our scripts declare one key, the slot's prefix, so it is the routing key.
 *
 * Redirections, handled here so the adapter never sees them:
 *   MOVED slot host:port  the slot has a new owner: the map is refreshed
 *                         (CLUSTER SLOTS from that node), the slot set to it,
 *                         and the command sent there;
 *   ASK slot host:port    the slot is being migrated and the key is not here:
 *                         ASKING + the command to that node, once, map unchanged
 *                         -- except for a script (below), which waits instead;
 *   TRYAGAIN              a multi-key command during a migration: retried after
 *                         BR_CLUSTER_TRYAGAIN_BACKOFF_MS, doubling, at most
 *                         BR_CLUSTER_TRYAGAIN_MAX times;
 *   CLUSTERDOWN           BR_E_UNAVAILABLE (the cluster cannot serve the slot).
 * At most BR_CLUSTER_REDIRECTS_MAX MOVED/ASK hops per command, then
 * BR_E_UNAVAILABLE. Each of these replies means the command did not run, so
 * following them never runs anything twice. Every other reply, error
 * replies included, goes back to the caller to translate.
 *
 * Transport errors keep the adapter's meaning: BR_E_UNAVAILABLE when nothing
 * of the request left (no connection to the slot's node, the first write
 * failed), BR_E_UNKNOWN_OUTCOME when it may have reached the node but no
 * reply came. The broken connection is dropped and the map learned again
 * before the next command, from the first node that answers: after a
 * failover the promoted replica serves the slot (and a master that failed
 * over leaves the list the scripts are loaded on). An idle connection the
 * node closed (a restart, a failover, CLIENT KILL) is found before sending
 * (br_cluster_peer_closed, once idle BR_CLUSTER_IDLE_CHECK_MS) and made
 * afresh, so it costs no unknown outcome.
 * A node that refused a connection is not tried again for
 * BR_CLUSTER_RECONNECT_BACKOFF_MS (its commands are BR_E_UNAVAILABLE at
 * once), and a refresh asks the node that answered last first, so a dead
 * host costs one connect timeout per backoff period, not one per command.
 *
 * Scripts during a slot migration. A script declares one key, the slot's
 * prefix ("br:{e42}:"), which never exists, and reaches the slot's other
 * keys by name. While a slot migrates (MIGRATING on the source, IMPORTING
 * on the target) its keys move one MIGRATE at a time, so they are split
 * between the two nodes, and the source answers ASK for the missing prefix
 * every time. Followed, the script would run on the target and see half an
 * event (an event record without its holds, or none at all: wrong answers,
 * and writes on top of them). So an ASK to a script is waited out like
 * TRYAGAIN (backoff from BR_CLUSTER_TRYAGAIN_BACKOFF_MS, doubling, at most
 * script_ask_waits_max times, then BR_E_UNAVAILABLE: nothing ran) until
 * the migration ends with CLUSTER SETSLOT NODE and the source says MOVED.
 * An event's scripts are therefore unavailable for as long as its slot
 * migrates; everything else (the claims, the state walk's reads, single-key
 * commands) follows ASK, which is safe for one key. Any migration protocol
 * that ends with SETSLOT NODE after the last key moved is safe, `redis-cli
 * --cluster reshard` included.
 *
 * Pipelines. The adapter's pipelined reads (the state walk, saga_step's
 * gathering) go through br_cluster_queue/br_cluster_next: each read is
 * appended to its node's connection; the first br_cluster_next that finds
 * its reply missing sends every node's buffer and reads all the replies in
 * queue order (one round trip per node for the window), then sends each
 * read that got MOVED/ASK/TRYAGAIN again on its own through
 * br_cluster_call. While reads are in flight no other command may be sent
 * (asserted): the adapter reads its whole window before anything else.
 *
 * Limits: BR_CLUSTER_NODES_MAX nodes (a node beyond them is logged and its
 * slots are BR_E_UNAVAILABLE); BR_CLUSTER_QUEUE_MAX queued replies. One
 * struct br_cluster is used by one thread at a time. Memory: about 33 KB
 * plus one hiredis context per connected node.
 */
#ifndef BR_ADAPTERS_REDIS_CLUSTER_H
#define BR_ADAPTERS_REDIS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BR_CLUSTER_SLOTS 16384u
#define BR_CLUSTER_NODES_MAX 16u            /* masters and redirect targets; 272 B each */
#define BR_CLUSTER_HOST_MAX 256u            /* as BR_REDIS_HOST_MAX */
#define BR_CLUSTER_SEEDS_MAX 1024u          /* "host:port,host:port,..." */
#define BR_CLUSTER_REDIRECTS_MAX 5u         /* MOVED + ASK hops per command */
#define BR_CLUSTER_TRYAGAIN_MAX 5u          /* TRYAGAIN retries per command */
#define BR_CLUSTER_TRYAGAIN_BACKOFF_MS 5    /* first wait; doubles: 5+10+20+40+80 ms at most */
#define BR_CLUSTER_SCRIPT_ASK_WAITS_MAX 6   /* a script's waits for a migration: 315 ms at most */
#define BR_CLUSTER_RECONNECT_BACKOFF_MS 200 /* a node that refused is not tried again sooner */
#define BR_CLUSTER_QUEUE_MAX 512u           /* pipelined reads in flight; 24 B each + copies */
#define BR_CLUSTER_NO_NODE 0xffu
#define BR_CLUSTER_IDLE_CHECK_MS 10 /* a connection unused this long is polled before a send */

struct redisContext;
struct redisReply;

struct br_cluster_node {
    char host[BR_CLUSTER_HOST_MAX];
    int port;
    bool master;              /* serves slots in the last map, or a redirect's target since */
    uint32_t pending;         /* pipelined reads sent or buffered, reply not read yet */
    int64_t retry_at_ms;      /* after a refused connect: not before (monotonic ms); 0 = now */
    int64_t used_ms;          /* the last send (monotonic ms): idle since then */
    struct redisContext *ctx; /* NULL while disconnected */
};

/* A pipelined read (br_cluster_queue). */
struct br_cluster_queued {
    struct redisReply *reply; /* NULL until read */
    char *copy;               /* argv and lengths (heap), to send it again after a redirection */
    int argc;
    uint8_t node; /* where it went */
};

/* What the router did: tests assert redirections were followed. */
struct br_cluster_stats {
    uint64_t moved;     /* MOVED replies followed */
    uint64_t ask;       /* ASK replies followed (ASKING sent) */
    uint64_t ask_waits; /* ASK replies to a script waited out (the slot is migrating) */
    uint64_t tryagain;  /* TRYAGAIN replies waited out */
    uint64_t refreshes; /* slot maps learned with CLUSTER SLOTS */
    uint64_t connects;  /* connections made to nodes */
    uint64_t refused;   /* connections that failed (then not tried for a backoff) */
};

struct br_cluster {
    struct br_cluster_node node[BR_CLUSTER_NODES_MAX];
    uint32_t node_count;
    uint8_t slot_node[BR_CLUSTER_SLOTS]; /* index into node[], or BR_CLUSTER_NO_NODE */
    int connect_timeout_ms;
    int command_timeout_ms;
    uint32_t script_ask_waits_max; /* BR_CLUSTER_SCRIPT_ASK_WAITS_MAX; tests lower it */
    bool quiet;                    /* do not log foreign errors */
    bool stale;                    /* refresh the map before the next command */
    uint32_t last_ok;              /* the node that answered last: refreshes ask it first */
    struct br_cluster_stats stats;
    struct br_cluster_queued queue[BR_CLUSTER_QUEUE_MAX]; /* pipelined reads, FIFO */
    uint32_t queue_head;
    uint32_t queue_count;
};

/* Whether the server closed an idle connection (end of stream, an error,
 * or bytes nobody asked for waiting): one poll(2), no wait. The router and
 * the single-node adapter check before sending on a connection idle for
 * BR_CLUSTER_IDLE_CHECK_MS or more and connect afresh, so a restarted or
 * failed-over node costs no UNKNOWN_OUTCOME. A connection in steady use is
 * not polled (one syscall per command saved): one the server closes less
 * than that after its last use fails its next command as a mid-command loss
 * would (UNKNOWN_OUTCOME, or UNAVAILABLE when no byte left). */
bool br_cluster_peer_closed(struct redisContext *ctx);

/* Whether a connection last used at *used_ms (monotonic ms) has been idle
 * long enough to be polled before the next send; sets *used_ms to now. */
bool br_cluster_idle_check_due(int64_t *used_ms);

/* The slot of a key (hash tag rules above). Pure; O(len). */
uint16_t br_cluster_slot(const char *key, size_t len);

/* Parses the seed list ("host:port[,host:port...]", port 6379 when left
 * out), asks the seeds in turn for CLUSTER SLOTS until one answers, and
 * fills the map. BR_OK, BR_E_INVALID (a malformed list, timeouts < 1, or
 * seeds that answer but are no cluster), BR_E_UNAVAILABLE (no seed
 * answered). A slot no master serves is left unknown (its commands are
 * BR_E_UNAVAILABLE until a refresh finds it). On failure nothing is left
 * to close. */
int br_cluster_open(struct br_cluster *c, const char *seeds, int connect_timeout_ms,
                    int command_timeout_ms, bool quiet);

/* Closes every connection and frees queued replies. Safe on a zeroed struct. */
void br_cluster_close(struct br_cluster *c);

/* Sends one command where its key lives (table above), follows MOVED, ASK
 * and TRYAGAIN, and hands back the reply in *rep (the caller frees it; it
 * may be an error reply other than those). BR_OK, BR_E_UNAVAILABLE (nothing
 * ran: no connection, CLUSTERDOWN, a slot nobody serves, too many
 * redirections) or BR_E_UNKNOWN_OUTCOME (sent, no reply). For a command
 * sent to every master: the first error reply if any node gave one, else
 * the first node's reply; a transport failure stops the round (the command
 * may have run on the nodes before). Work: one round trip, plus one per
 * redirection and one per map refresh. */
int br_cluster_call(struct br_cluster *c, int argc, const char **argv, const size_t *len,
                    struct redisReply **rep);

/* Learns the map again (CLUSTER SLOTS from the first node that answers).
 * BR_OK or BR_E_UNAVAILABLE (the old map is kept). */
int br_cluster_refresh(struct br_cluster *c);

/* Pipelined reads (commands with a key; never scripts): br_cluster_queue
 * appends one to its node's connection (BR_OK, or BR_E_UNAVAILABLE: no
 * connection, out of memory; nothing queued); br_cluster_next hands back
 * the oldest one's reply (the caller frees it), sending and reading the
 * window first when needed, or NULL when a node failed (the caller then
 * calls br_cluster_queue_drop, which frees whatever is left and drops the
 * connections with replies still on the way). */
int br_cluster_queue(struct br_cluster *c, int argc, const char **argv, const size_t *len);
struct redisReply *br_cluster_next(struct br_cluster *c);
void br_cluster_queue_drop(struct br_cluster *c);

#endif
