/* openapi.h -- the OpenAPI document (server/openapi.json), embedded in the
 * binary at build time by server/embed.cmake. */
#ifndef BR_OPENAPI_H
#define BR_OPENAPI_H

#include <stddef.h>

extern const char br_openapi_json[];   /* NUL-terminated */
extern const size_t br_openapi_json_len; /* without the NUL */

#endif
