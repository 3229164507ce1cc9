/*
 * scripts.h -- the Lua library embedded in the binary.
 *
 * lua/embed.c generates it at build time from the .lua files: one Redis
 * Functions library made of the constants generated from the core's
 * headers, lib.lua, then every script as a function registered under its
 * file name. The library's name and its function names carry the
 * placeholder "@V@", which the adapter replaces with a hash of the text it
 * loads (adapters/redis.c): function "reserve" is FCALLed as
 * "reserve_<hash>". Nothing is read from disk at run time.
 */
#ifndef BR_LUA_SCRIPTS_H
#define BR_LUA_SCRIPTS_H

#include <stddef.h>

extern const char *const br_lua_library; /* NUL-terminated */
extern const size_t br_lua_library_len;  /* strlen(br_lua_library) */
extern const char *const br_lua_functions[]; /* the file names without ".lua": "reserve" */
extern const unsigned br_lua_function_count;

#endif
