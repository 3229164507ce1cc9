/*
 * sim.h -- the simulator's and replay's command-line entry points, called
 * by the bookingrush binary for `bookingrush sim ...` and
 * `bookingrush replay ...` (argv[0] is the subcommand).
 *
 * Exit codes: 0 all good; 1 an invariant was violated (or digests
 * differed under --check-determinism); 2 usage or input error (a bad
 * scenario, an unreadable or damaged journal); 3 replay diverged from the
 * recorded outcomes.
 */
#ifndef BR_SIM_SIM_H
#define BR_SIM_SIM_H

int br_sim_main(int argc, char **argv);
int br_replay_main(int argc, char **argv);

#endif
