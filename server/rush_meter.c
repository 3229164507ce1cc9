/*
 * rush_meter.c -- stub of the contract commit (issue 12); replaced by its owner.
 */
#include "server/rush_meter.h"

typedef int br_rush_meter_stub;
