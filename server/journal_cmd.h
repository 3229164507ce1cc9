/*
 * journal_cmd.h -- `bookingrush journal check|repair DATA_DIR [--yes]`:
 * show the damage a start refused and, when asked, cut it (journal_cmd.c).
 */
#ifndef BR_JOURNAL_CMD_H
#define BR_JOURNAL_CMD_H

/* argv[0] is "journal". Returns the process exit code: 0 fine, 1 damage
 * (check) or not repaired (repair), 2 usage. */
int br_journal_main(int argc, char **argv);

#endif
