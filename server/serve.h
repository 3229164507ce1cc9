/* serve.h -- the `serve` subcommand: the whole product in one process. */
#ifndef BR_SERVE_H
#define BR_SERVE_H

/* argv holds the options after "serve". Returns the process exit code:
 * 0 after a clean shutdown (or --help), 1 when start-up failed, 2 on a bad
 * option. */
int br_serve_main(int argc, char **argv);

#endif
