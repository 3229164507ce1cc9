#include <stdio.h>
#include "../engine.h"
int x;
