/*
 * fuzz_scenario.c -- fuzz target: the simulator's scenario parser
 * (sim/scenario.h, br_scenario_parse), which reads the JSON files in scenarios/ and any
 * file handed to `bookingrush sim`.
 *
 * Input: JSON text (copied and NUL-terminated: the parser takes a C string,
 * so an embedded NUL ends it as it would end a file read as text).
 * Asserted:
 *   - the result is BR_OK or BR_E_INVALID, and a failure leaves a
 *     NUL-terminated message within the error buffer (a canary after it);
 *   - an accepted scenario is one the simulator can run: 1..8 events whose
 *     specs the core accepts (br_catalog_spec_validate), event weights and
 *     quantity weights that sum above zero, sale openings at or after the
 *     early-arrival window, and (for crowds small enough to size quickly)
 *     engine capacities br_engine_memory_size accepts;
 *   - swarm testing's redraw of the fault mix (br_scenario_swarm) keeps
 *     every rate a probability and the specs valid;
 *   - parsing the same text again gives the same scenario (determinism).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/catalog.h"
#include "core/engine.h"
#include "core/err.h"
#include "core/panic.h"
#include "sim/scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 65536u
#define SIZE_USERS_MAX 20000u /* br_scenario_config is O(users x events): skip bigger crowds */
#define ERR_CAP 200u

static bool rate_ok(double r)
{
    return isfinite(r) && r >= 0.0 && r <= 1.0;
}

static void check_runnable(struct br_scenario *s)
{
    BR_ASSERT(s->event_count >= 1 && s->event_count <= BR_SCN_EVENTS_MAX);
    BR_ASSERT(memchr(s->name, '\0', sizeof s->name) != NULL);
    double wsum = 0;
    for (uint32_t i = 0; i < s->event_count; i++) {
        BR_ASSERT(br_catalog_spec_validate(&s->events[i].spec) == BR_OK);
        BR_ASSERT(isfinite(s->events[i].weight) && s->events[i].weight >= 0);
        BR_ASSERT(s->events[i].spec.sale_opens_at_ms >= s->crowd.early_window_ms);
        wsum += s->events[i].weight;
    }
    BR_ASSERT(wsum > 0);
    double qsum = 0;
    for (int q = 0; q < BR_SCN_QTY_MAX; q++) {
        BR_ASSERT(isfinite(s->crowd.quantity_weights[q]) && s->crowd.quantity_weights[q] >= 0);
        qsum += s->crowd.quantity_weights[q];
    }
    BR_ASSERT(qsum > 0);
    const struct br_scn_payments *p = &s->payments;
    BR_ASSERT(rate_ok(p->decline_rate) && rate_ok(p->timeout_rate) && rate_ok(p->duplicate_rate));
    BR_ASSERT(rate_ok(p->reorder_rate) && rate_ok(p->late_rate) && rate_ok(p->refund_failure_rate));
    const struct br_scn_crowd *c = &s->crowd;
    BR_ASSERT(rate_ok(c->double_click_fraction) && rate_ok(c->tabs_fraction));
    BR_ASSERT(rate_ok(c->greedy_fraction) && rate_ok(c->abandon_hold_fraction));
    BR_ASSERT(rate_ok(c->cancel_fraction) && rate_ok(c->patience_fraction));
    BR_ASSERT(c->think_ms.min_ms <= c->think_ms.max_ms);
    BR_ASSERT(c->notify_ms.min_ms <= c->notify_ms.max_ms);
    BR_ASSERT(p->latency_ms.min_ms <= p->latency_ms.max_ms);
    for (int w = 0; w < BR_WORKER_COUNT; w++) {
        BR_ASSERT(isfinite(s->workers[w].crashes_per_hour) && s->workers[w].crashes_per_hour >= 0);
        BR_ASSERT(s->workers[w].down_ms.min_ms <= s->workers[w].down_ms.max_ms);
    }
    if (c->users >= 1 && c->users <= SIZE_USERS_MAX) {
        struct br_config cfg;
        br_scenario_config(s, 1, &cfg);
        BR_ASSERT(br_engine_memory_size(&cfg) > 0);
        for (uint32_t i = 0; i < s->event_count; i++) {
            BR_ASSERT(br_catalog_spec_validate(&s->events[i].spec) == BR_OK);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > TEXT_MAX) {
        return 0;
    }
    char *text = malloc(size + 1);
    struct br_scenario *a = malloc(sizeof *a);
    struct br_scenario *b = malloc(sizeof *b);
    if (text == NULL || a == NULL || b == NULL) {
        free(text);
        free(a);
        free(b);
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    char err[ERR_CAP + 1];
    err[ERR_CAP] = 'X'; /* canary just past the size the parser is given */
    int rc = br_scenario_parse(a, text, err, ERR_CAP);
    BR_ASSERT(rc == BR_OK || rc == BR_E_INVALID);
    BR_ASSERT(err[ERR_CAP] == 'X' && memchr(err, '\0', ERR_CAP) != NULL);
    if (rc == BR_OK) {
        /* Compared before check_runnable: sizing writes queue capacities. */
        BR_ASSERT(br_scenario_parse(b, text, err, ERR_CAP) == BR_OK);
        BR_ASSERT(memcmp(a->events, b->events, sizeof a->events) == 0);
        BR_ASSERT(memcmp(&a->crowd, &b->crowd, sizeof a->crowd) == 0);
        BR_ASSERT(memcmp(&a->payments, &b->payments, sizeof a->payments) == 0);
        check_runnable(a);
        br_scenario_swarm(a, size);
        check_runnable(a);
    } else {
        BR_ASSERT(err[0] != '\0'); /* a refusal always says why */
    }
    free(text);
    free(a);
    free(b);
    return 0;
}
