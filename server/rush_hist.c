/*
 * rush_hist.c -- stub of the contract commit (issue 12); replaced by its owner.
 */
#include "server/rush_hist.h"

typedef int br_rush_hist_stub;
