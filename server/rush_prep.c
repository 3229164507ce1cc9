/*
 * rush_prep.c -- stub of the contract commit (issue 12); replaced by its owner.
 */
#include "server/rush.h"

typedef int br_rush_prep_stub;
