/*
 * rush_report.c -- stub of the contract commit (issue 12); replaced by its owner.
 */
#include "server/rush_report.h"

typedef int br_rush_report_stub;
