/*
 * presence.c -- who is still there (issue 13, point 3): see presence.h.
 * Placeholder until the waiting room's server side lands.
 */
#include "presence.h"
