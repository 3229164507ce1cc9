/*
 * rush_crowd.c -- stub of the contract commit (issue 12); replaced by its owner.
 */
#include "server/rush_crowd.h"

typedef int br_rush_crowd_stub;
