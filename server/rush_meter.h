/*
 * rush_meter.h -- what a rush measures while it runs: per-route latency and
 * status/code counts, the opening-spike and login-storm windows, pass
 * delivery latency, the server's samples, and the once-a-second progress line.
 */
#ifndef BR_SERVER_RUSH_METER_H
#define BR_SERVER_RUSH_METER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "server/rush.h"
#include "server/rush_hist.h"
#include "server/rush_net.h"

enum br_rush_window { BR_RUSH_WIN_SPIKE = 0, BR_RUSH_WIN_STORM, BR_RUSH_WIN_COUNT };
#define BR_RUSH_CODES_MAX 32u           /* error codes kept per route, then OTHER */
struct br_rush_server_sample {          /* per target, once a second */
    double rss_bytes, vmhwm_bytes;      /* vmhwm 0 unless --server-pid */
    uint32_t open_fds, sse_streams, inflight, queue_length, admitted;
};
struct br_rush_meter;
int br_rush_meter_new(struct br_rush_meter **m, int64_t t0_us);
void br_rush_meter_free(struct br_rush_meter *m);
void br_rush_meter_request(struct br_rush_meter *m, const struct br_rush_resp *r, const char *code); /* code NULL */
void br_rush_meter_window(struct br_rush_meter *m, enum br_rush_window w, int64_t from_us, int64_t to_us);
void br_rush_meter_pass(struct br_rush_meter *m, int64_t admit_to_pass_ms, bool reconnected);
void br_rush_meter_storm_login(struct br_rush_meter *m, int status, int64_t latency_us, bool retried);
void br_rush_meter_server(struct br_rush_meter *m, uint32_t target, const struct br_rush_server_sample *s);
void br_rush_meter_tick(struct br_rush_meter *m, int64_t now_us, const struct br_rush_progress *p, FILE *f);
const struct br_rush_hist *br_rush_meter_route(const struct br_rush_meter *m, unsigned route);

#endif /* BR_SERVER_RUSH_METER_H */
