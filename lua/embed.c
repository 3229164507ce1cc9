/*
 * embed.c -- build-time generator of the embedded Lua scripts (scripts.h).
 *
 *   br_lua_embed OUT.c lib.lua script.lua...
 *
 * Writes OUT.c with one entry per script: `local` constants taken from the
 * core's headers (error values, states, effect kinds, limits), the parts of
 * lib.lua the script needs, then the script. The constants are printed from
 * the C definitions themselves, so a Lua script can never disagree with the
 * core about a number.
 *
 * Only what a script uses is included, because Redis runs a script's whole
 * chunk on every call: each `local function` of the prelude is a closure
 * made again per call. lib.lua is cut into definitions (a line starting
 * with `local` at column 0, with the comment lines right above it); a
 * definition is included when the script, or a definition already
 * included, mentions its name; a line marked `--@keep` is always included.
 * Constants likewise. Definitions keep lib.lua's order, so each is still
 * defined before its users. Sources become byte arrays (a long string
 * literal would trip -Woverlength-strings).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/redis.h"
#include "core/cmd.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/queue.h"

#define SOURCE_MAX (1u << 20)
#define LINES_MAX 4096
#define CONSTS_MAX 128
#define BLOCKS_MAX 256

struct buf {
    char *p;
    size_t n;
};

static void put(struct buf *b, const char *s, size_t len)
{
    if (b->n + len > SOURCE_MAX) {
        fprintf(stderr, "br_lua_embed: a script is larger than %u bytes\n", SOURCE_MAX);
        exit(1);
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
}

static void puts_buf(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

struct constant {
    const char *name;
    long long value;
};

/* Every number the scripts may use, from the core's own definitions. */
static size_t constants(struct constant *c)
{
    size_t n = 0;
#define C(sym) c[n++] = (struct constant){#sym, (long long)(sym)}
#define ERR(sym, val, code, status, msg) C(sym);
    BR_ERR_MAP(ERR)
#undef ERR
    C(BR_QS_NONE);
    C(BR_QS_PREQUEUE);
    C(BR_QS_WAITING);
    C(BR_QS_ADMITTED);
    C(BR_QS_USED);
    C(BR_QS_EXPIRED);
    C(BR_QS_LEFT);
    C(BR_PASS_LIVE);
    C(BR_PASS_USED);
    C(BR_PASS_EXPIRED);
    C(BR_HOLD_HELD);
    C(BR_HOLD_CONFIRMED);
    C(BR_HOLD_EXPIRED);
    C(BR_HOLD_CANCELLED);
    C(BR_HOLD_REFUNDED);
    C(BR_PAY_PENDING);
    C(BR_PAY_FAILED);
    C(BR_PAY_CONFIRMED);
    C(BR_PAY_REFUND_PENDING);
    C(BR_PAY_REFUNDED);
    C(BR_FX_PASS_ISSUED);
    C(BR_FX_PASS_EXPIRED);
    C(BR_FX_PROVIDER_CHARGE);
    C(BR_FX_PROVIDER_REFUND);
    C(BR_FX_BOOKING_CONFIRMED);
    C(BR_FX_BOOKING_EXPIRED);
    C(BR_FX_NOTIFY);
    C(BR_ROLE_ORGANIZER);
    C(BR_ROLE_ADMIN);
    C(BR_ROLE_COUNT);
    C(BR_NAME_MAX);
    C(BR_EMAIL_MAX);
    C(BR_ZONE_NAME_MAX);
    C(BR_PASSWORD_HASH_LEN);
    C(BR_SALT_LEN);
    C(BR_EVENT_ZONES_MAX);
    C(BR_EVENT_ID_MAX);
    C(BR_ZONE_CAPACITY_MAX);
    C(BR_HOLD_QUANTITY_MAX);
    C(BR_PER_USER_LIMIT_MAX);
    C(BR_PRICE_MINOR_MAX);
    C(BR_TTL_MS_MAX);
    C(BR_ADMIT_PER_TICK_MAX);
    C(BR_MAX_ACTIVE_MAX);
    C(BR_SWEEP_MAX);
    C(BR_PASS_EXPIRE_MAX);
    C(BR_REFUND_BACKOFF_MS_MIN);
    C(BR_REFUND_BACKOFF_MS_MAX);
    C(BR_NOW_MS_MAX);
    C(BR_REDIS_NEED_OPEN);
#undef C
    if (n > CONSTS_MAX) {
        fprintf(stderr, "br_lua_embed: more than %d constants\n", CONSTS_MAX);
        exit(1);
    }
    return n;
}

static void read_file(struct buf *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        put(b, chunk, n);
    }
    fclose(f);
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Does text[0..len) mention the identifier name (as a whole word)? */
static bool mentions(const char *text, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl <= len; i++) {
        if (memcmp(text + i, name, nl) == 0 && (i == 0 || !ident_char(text[i - 1])) &&
            (i + nl == len || !ident_char(text[i + nl]))) {
            return true;
        }
    }
    return false;
}

/* One definition of lib.lua: bytes [from, to) and the name it defines. */
struct block {
    char name[64];
    size_t from, to;
    bool keep; /* marked --@keep, or the header before the first definition */
};

static bool starts_with(const char *s, const char *end, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(end - s) >= n && memcmp(s, prefix, n) == 0;
}

/* Cuts lib.lua into blocks (see the file comment). */
static size_t cut(const struct buf *lib, struct block *blocks)
{
    size_t count = 0, line_count = 0;
    static size_t line_at[LINES_MAX];
    for (size_t i = 0; i < lib->n && line_count < LINES_MAX; i++) {
        if (i == 0 || lib->p[i - 1] == '\n') {
            line_at[line_count++] = i;
        }
    }
    blocks[count++] = (struct block){.name = "", .from = 0, .to = lib->n, .keep = true};
    for (size_t l = 0; l < line_count; l++) {
        const char *s = lib->p + line_at[l];
        const char *end = l + 1 < line_count ? lib->p + line_at[l + 1] : lib->p + lib->n;
        if (!starts_with(s, end, "local ")) {
            continue;
        }
        const char *name = s + 6;
        if (starts_with(name, end, "function ")) {
            name += 9;
        }
        size_t nl = 0;
        while (name + nl < end && ident_char(name[nl]) && nl < 63) {
            nl++;
        }
        /* The comment lines right above belong to this definition. */
        size_t first = l;
        while (first > 0 && line_at[first - 1] > blocks[count - 1].from &&
               starts_with(lib->p + line_at[first - 1], lib->p + lib->n, "--")) {
            first--;
        }
        if (count >= BLOCKS_MAX) {
            fprintf(stderr, "br_lua_embed: lib.lua has too many definitions\n");
            exit(1);
        }
        blocks[count - 1].to = line_at[first];
        struct block *b = &blocks[count++];
        memset(b, 0, sizeof *b);
        memcpy(b->name, name, nl);
        b->from = line_at[first];
        b->to = lib->n;
        /* --@keep on the definition's own line */
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        b->keep = false;
        for (const char *q = s; q + 7 <= (eol ? eol : end); q++) {
            if (memcmp(q, "--@keep", 7) == 0) {
                b->keep = true;
            }
        }
    }
    return count;
}

/* The full source of one script: constants and lib blocks it needs, then it. */
static void assemble(struct buf *out, const struct buf *lib, const struct block *blocks,
                     size_t nblocks, const struct constant *consts, size_t nconsts,
                     const struct buf *script)
{
    static bool in[BLOCKS_MAX];
    for (size_t i = 0; i < nblocks; i++) {
        in[i] = blocks[i].keep;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < nblocks; i++) {
            if (in[i]) {
                continue;
            }
            bool used = mentions(script->p, script->n, blocks[i].name);
            for (size_t j = 1; j < nblocks && !used; j++) { /* not the header's prose */
                used = in[j] && mentions(lib->p + blocks[j].from, blocks[j].to - blocks[j].from,
                                         blocks[i].name);
            }
            if (used) {
                in[i] = true;
                changed = true;
            }
        }
    }
    out->n = 0;
    /* A shebang without flags: Redis then refuses any key outside the slot
     * of the first one a script touches (without it, old-style scripts may
     * cross slots), so "one script, one slot" is checked by Redis itself. */
    puts_buf(out, "#!lua\n");
    puts_buf(out, "-- generated by lua/embed.c: the core's numbers (core/*.h), what the script "
                  "needs of lib.lua, then the script\n");
    for (size_t k = 0; k < nconsts; k++) {
        bool used = mentions(script->p, script->n, consts[k].name);
        for (size_t j = 1; j < nblocks && !used; j++) {
            used = in[j] &&
                   mentions(lib->p + blocks[j].from, blocks[j].to - blocks[j].from, consts[k].name);
        }
        if (used) {
            char line[160];
            int n =
                snprintf(line, sizeof line, "local %s = %lld\n", consts[k].name, consts[k].value);
            put(out, line, (size_t)n);
        }
    }
    for (size_t i = 0; i < nblocks; i++) {
        if (in[i]) {
            put(out, lib->p + blocks[i].from, blocks[i].to - blocks[i].from);
        }
    }
    put(out, script->p, script->n);
}

/* "dir/reserve.lua" -> "reserve" */
static void script_name(const char *path, char *name, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strcspn(base, ".");
    if (len >= cap) {
        len = cap - 1;
    }
    memcpy(name, base, len);
    name[len] = 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: br_lua_embed OUT.c lib.lua script.lua...\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    struct buf lib = {.p = malloc(SOURCE_MAX), .n = 0};
    struct buf script = {.p = malloc(SOURCE_MAX), .n = 0};
    struct buf full = {.p = malloc(SOURCE_MAX), .n = 0};
    static struct block blocks[BLOCKS_MAX];
    static struct constant consts[CONSTS_MAX];
    if (lib.p == NULL || script.p == NULL || full.p == NULL) {
        return 1;
    }
    read_file(&lib, argv[2]);
    size_t nblocks = cut(&lib, blocks);
    size_t nconsts = constants(consts);
    fprintf(out, "/* generated by lua/embed.c from the lua/ scripts: do not edit */\n");
    fprintf(out, "#include \"lua/scripts.h\"\n\n");
    int count = argc - 3;
    for (int i = 0; i < count; i++) {
        script.n = 0;
        read_file(&script, argv[3 + i]);
        assemble(&full, &lib, blocks, nblocks, consts, nconsts, &script);
        fprintf(out, "static const unsigned char s%d[] = {", i);
        for (size_t k = 0; k < full.n; k++) {
            fprintf(out, "%s%d,", k % 24 == 0 ? "\n    " : "", (int)(unsigned char)full.p[k]);
        }
        fprintf(out, "0};\n\n");
    }
    fprintf(out, "const struct br_lua_script br_lua_scripts[] = {\n");
    for (int i = 0; i < count; i++) {
        char name[64];
        script_name(argv[3 + i], name, sizeof name);
        fprintf(out, "    {\"%s\", (const char *)s%d, sizeof s%d - 1},\n", name, i, i);
    }
    fprintf(out, "};\n\nconst unsigned br_lua_script_count = %d;\n", count);
    free(lib.p);
    free(script.p);
    free(full.p);
    return fclose(out) == 0 ? 0 : 1;
}
