/*
 * presence.c -- who is still there (issue 13, point 3): see presence.h.
 *
 * The table: open addressing with linear probing over a power of two of
 * slots at least twice pending_max (so probes stay short), each slot
 * {event, user, at} (24 B; event 0 = free). `at` is the time the (event,
 * user) was last taken for a report, times two, plus 1 while the report is
 * still pending (not yet flushed). A seen() of a pending entry does nothing;
 * of an entry taken less than dedup_ms ago does nothing; otherwise the entry
 * becomes pending again. At most pending_max entries live at once (pending
 * or remembered for de-dup); a new one beyond that is dropped and counted.
 *
 * The flush copies the pending entries out (16 B each, into `out`), marks
 * them reported, forgets the entries whose de-dup time has passed
 * (backward-shift deletion: no tombstones), releases the mutex, sorts the
 * copy by (event, user) and hands it to the backend per event in chunks of
 * BR_PRESENCE_BATCH_MAX. The backend is never called under the mutex.
 */
#include "presence.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/hash.h"
#include "server/backend.h"

struct slot {
    uint64_t event_id; /* 0 = free */
    uint64_t user_id;
    int64_t at; /* 2 * taken_ms + (1 while pending) */
};

struct pair {
    uint64_t event_id;
    uint64_t user_id;
};

struct br_presence {
    pthread_mutex_t mu;
    struct slot *slots;
    uint32_t mask; /* slot count - 1 */
    uint32_t used;
    uint32_t pending;
    uint32_t max;
    int64_t dedup_ms;
    uint64_t dropped;
    struct pair *out; /* the flush's copy: max entries */
};

int br_presence_new(struct br_presence **out, uint32_t pending_max)
{
    *out = NULL;
    if (pending_max < 1 || pending_max > BR_PRESENCE_PENDING_MAX) {
        return BR_E_INVALID;
    }
    struct br_presence *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return BR_E_FULL;
    }
    uint32_t n = 16;
    while (n < 2u * pending_max) {
        n *= 2;
    }
    p->slots = calloc(n, sizeof *p->slots);
    p->out = calloc(pending_max, sizeof *p->out);
    if (p->slots == NULL || p->out == NULL) {
        free(p->slots);
        free(p->out);
        free(p);
        return BR_E_FULL;
    }
    p->mask = n - 1;
    p->max = pending_max;
    p->dedup_ms = BR_PRESENCE_DEDUP_MS;
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return BR_OK;
}

void br_presence_set_dedup_ms(struct br_presence *p, int64_t dedup_ms)
{
    pthread_mutex_lock(&p->mu);
    p->dedup_ms = dedup_ms > 0 ? dedup_ms : 0;
    pthread_mutex_unlock(&p->mu);
}

static uint32_t home_of(const struct br_presence *p, uint64_t event_id, uint64_t user_id)
{
    return (uint32_t)(br_hash_step(br_mix64(event_id), user_id) & p->mask);
}

void br_presence_seen(struct br_presence *p, uint64_t event_id, uint64_t user_id, int64_t now_ms)
{
    if (p == NULL || event_id == 0 || user_id == 0) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    uint32_t i = home_of(p, event_id, user_id);
    for (;;) { /* the table is at most half full: a free slot ends the probe */
        struct slot *s = &p->slots[i];
        if (s->event_id == 0) {
            if (p->used >= p->max) {
                p->dropped++;
            } else {
                s->event_id = event_id;
                s->user_id = user_id;
                s->at = 2 * now_ms + 1;
                p->used++;
                p->pending++;
            }
            break;
        }
        if (s->event_id == event_id && s->user_id == user_id) {
            bool pending = (s->at & 1) != 0;
            if (!pending && now_ms - s->at / 2 >= p->dedup_ms) {
                s->at = 2 * now_ms + 1;
                p->pending++;
            }
            break;
        }
        i = (i + 1) & p->mask;
    }
    pthread_mutex_unlock(&p->mu);
}

/* Removes slot i, shifting back the entries of its probe run that would
 * not be found past the hole. Under mu. */
static void slot_delete(struct br_presence *p, uint32_t i)
{
    uint32_t hole = i;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & p->mask;
        struct slot *s = &p->slots[j];
        if (s->event_id == 0) {
            break;
        }
        uint32_t home = home_of(p, s->event_id, s->user_id);
        /* s may move to the hole when its home is not in (hole, j]. */
        bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            p->slots[hole] = *s;
            hole = j;
        }
    }
    p->slots[hole].event_id = 0;
    p->slots[hole].user_id = 0;
    p->slots[hole].at = 0;
    p->used--;
}

static int cmp_pair(const void *a, const void *b)
{
    const struct pair *x = a;
    const struct pair *y = b;
    if (x->event_id != y->event_id) {
        return x->event_id < y->event_id ? -1 : 1;
    }
    return x->user_id < y->user_id ? -1 : x->user_id > y->user_id ? 1 : 0;
}

void br_presence_flush(struct br_presence *p, struct br_backend *backend, int64_t now_ms)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    uint32_t n = 0;
    for (uint32_t i = 0; i <= p->mask; i++) {
        struct slot *s = &p->slots[i];
        if (s->event_id != 0 && (s->at & 1) != 0 && n < p->max) {
            p->out[n].event_id = s->event_id;
            p->out[n].user_id = s->user_id;
            n++;
            s->at -= 1; /* reported */
        }
    }
    p->pending = 0;
    /* Forget what de-dup no longer needs. A deletion may shift a later
     * entry into slot i: look at i again then. */
    for (uint32_t i = 0; i <= p->mask;) {
        struct slot *s = &p->slots[i];
        if (s->event_id != 0 && (s->at & 1) == 0 && now_ms - s->at / 2 >= p->dedup_ms) {
            slot_delete(p, i);
            if (p->slots[i].event_id != 0) {
                continue;
            }
        }
        i++;
    }
    pthread_mutex_unlock(&p->mu);
    /* Only the flusher (one thread: the hub's) uses p->out past the mutex. */
    if (n == 0 || backend == NULL || backend->ops->presence_report == NULL) {
        return;
    }
    qsort(p->out, n, sizeof *p->out, cmp_pair);
    uint64_t users[BR_PRESENCE_BATCH_MAX];
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        users[k++] = p->out[i].user_id;
        bool last_of_event = i + 1 == n || p->out[i + 1].event_id != p->out[i].event_id;
        if (k == BR_PRESENCE_BATCH_MAX || last_of_event) {
            backend->ops->presence_report(backend, p->out[i].event_id, users, k);
            k = 0;
        }
    }
}

uint64_t br_presence_dropped(const struct br_presence *p)
{
    if (p == NULL) {
        return 0;
    }
    struct br_presence *m = (struct br_presence *)(uintptr_t)p; /* the mutex only */
    pthread_mutex_lock(&m->mu);
    uint64_t d = m->dropped;
    pthread_mutex_unlock(&m->mu);
    return d;
}

void br_presence_free(struct br_presence *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p->out);
    free(p);
}
