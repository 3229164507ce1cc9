/* log.h -- the logger moved to adapters/log.h (adapters log too); this name
 * stays for the server's modules. */
#ifndef BR_SERVER_LOG_H
#define BR_SERVER_LOG_H

#include "adapters/log.h"

#endif
