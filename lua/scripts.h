/*
 * scripts.h -- the Lua scripts embedded in the binary.
 *
 * lua/embed.c generates the table at build time from the .lua files: each entry
 * is one script's full source, i.e. the constants generated from the core's
 * headers, then lib.lua, then the script itself. The adapter loads them with
 * SCRIPT LOAD (adapters/redis.c); nothing is read from disk at run time.
 */
#ifndef BR_LUA_SCRIPTS_H
#define BR_LUA_SCRIPTS_H

#include <stddef.h>

struct br_lua_script {
    const char *name; /* the file name without ".lua": "reserve" */
    const char *text; /* the full source, NUL-terminated */
    size_t len;       /* strlen(text) */
};

extern const struct br_lua_script br_lua_scripts[];
extern const unsigned br_lua_script_count;

#endif
