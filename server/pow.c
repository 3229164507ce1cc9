/*
 * pow.c -- proof of work at the door (issue 13, point 5): see pow.h.
 * Placeholder until the waiting room's HTTP side lands.
 */
#include "pow.h"
