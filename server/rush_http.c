/*
 * rush_http.c -- stub of the contract commit (issue 12); replaced by its owner.
 */
#include "server/rush_http.h"

typedef int br_rush_http_stub;
