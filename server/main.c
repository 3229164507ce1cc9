/*
 * main.c -- the bookingrush binary: one executable, one subcommand per
 * role. `serve` runs the server (serve.h); `sim` and `replay` belong to the
 * simulator library (sim/sim.h), which receives argv starting at the
 * subcommand. `--version` (or `version`) prints the build's version.
 * Usage errors of every subcommand are printed by adapters/cli.h.
 */
#include <stdio.h>
#include <string.h>

#include "adapters/cli.h"
#include "server/journal_cmd.h"
#include "server/migrate_cmd.h"
#include "server/serve.h"
#include "server/trace_cmd.h"
#ifdef BR_HAVE_SIM
#include "server/rush.h"
#include "sim/sim.h"
#endif
#ifdef BR_HAVE_KAFKA
#include "server/kafka_dev_cmd.h"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: bookingrush COMMAND [options]\n\n"
               "commands:\n"
               "  serve    run the server on the embedded default (see `serve --help`)\n"
               "  sim      run a simulated on-sale from a scenario (see `sim --help`)\n"
               "  replay   re-run a recorded journal through the core, report divergence\n"
               "  rush     rehearse an on-sale against a running deployment over HTTP\n"
               "           (see `rush --help`)\n"
               "  journal  check or repair a data dir's journal (see `journal --help`)\n"
               "  migrate  apply the PostgreSQL schema migrations (see `migrate --help`)\n"
               "  trace    export an event's log from Redis as a journal (see `trace --help`)\n"
               "  kafka-dev  a Kafka mock cluster on 127.0.0.1 for local runs and tests\n"
               "           (see `kafka-dev --help`; in memory only)\n"
               "  version  the version and the commit this binary was built from\n"
               "  help     this text\n\n"
               "The design (architecture, invariants, journal format, Redis keys):\n"
               "docs/DESIGN.md in the source tree.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? BR_CLI_EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("bookingrush %s (commit %s)\n", br_cli_version(), br_cli_commit());
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0) {
        return br_serve_main(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "journal") == 0) {
        return br_journal_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "migrate") == 0) {
        return br_migrate_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "trace") == 0) {
        return br_trace_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "kafka-dev") == 0) {
#ifdef BR_HAVE_KAFKA
        return br_kafka_dev_main(argc - 1, argv + 1);
#else
        return br_cli_usage_error(NULL, "kafka-dev: this binary was built without librdkafka");
#endif
    }
#ifdef BR_HAVE_SIM
    if (strcmp(argv[1], "sim") == 0) {
        return br_sim_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "replay") == 0) {
        return br_replay_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "rush") == 0) {
        return br_rush_main(argc - 1, argv + 1);
    }
#endif
    if (argv[1][0] == '-') {
        return br_cli_unknown_option(NULL, argv[1]);
    }
    return br_cli_usage_error(NULL, "unknown command '%s'", argv[1]);
}
