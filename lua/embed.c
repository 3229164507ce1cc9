/*
 * embed.c -- build-time generator of the embedded Lua library (scripts.h).
 *
 *   br_lua_embed OUT.c lib.lua script.lua...
 *
 * Writes OUT.c with one Redis Functions library (FUNCTION LOAD, run with
 * FCALL): `local` constants taken from the core's headers (error values,
 * states, effect kinds, limits: only those some source mentions), lib.lua,
 * then each script's body as a local function, then one
 * redis.register_function per script. The constants are printed from the C
 * definitions themselves, so a Lua script can never disagree with the core
 * about a number.
 *
 * Redis runs a library's top level once, at load: the helpers of lib.lua
 * are made once there, not once per call as with EVAL (a script's whole
 * chunk runs on every EVALSHA). Each registered callback sets the per-call
 * state (lib.lua's begin) and runs its script's function.
 *
 * The library and its functions are named with the placeholder "@V@",
 * which the adapter replaces with a hash of the text it loads (redis.c), so
 * two builds never run each other's code on one server, as EVALSHA's SHA1
 * made sure before. Issue 13's numbers are the fields of one table Q
 * (q_constants). Limits: Lua 5.1 allows 200 locals in the library's top
 * level and 60 upvalues per function; FUNCTION LOAD refuses a library over
 * either, which every test that opens the adapter would show.
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
#define CONSTS_MAX 128
#define SCRIPTS_MAX 32

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
    C(BR_FX_PROVIDER_QUERY);
    C(BR_FX_PROVIDER_VOID);
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
    C(BR_SAGA_STEP_MAX);
    C(BR_PASS_EXPIRE_MAX);
    C(BR_REFUND_BACKOFF_MS_MIN);
    C(BR_REFUND_BACKOFF_MS_MAX);
    C(BR_PAYMENT_CHECK_MS_MIN);
    C(BR_PAYMENT_CHECK_MS_MAX);
    C(BR_PAYMENT_CHECK_BACKOFF_MS_MAX);
    C(BR_NOW_MS_MAX);
    C(BR_REDIS_NEED_OPEN);
#undef C
    if (n > CONSTS_MAX) {
        fprintf(stderr, "br_lua_embed: more than %d constants\n", CONSTS_MAX);
        exit(1);
    }
    return n;
}

/* Issue 13's numbers, printed as the fields of one table `Q` (Q.GATE_OPEN,
 * Q.QM_CLOSED, ...: the name without "BR_"): Lua 5.1 allows 200 locals in
 * the library's top level and the locals above use most of them; these
 * are read on the waiting room's paths only, where a field lookup costs
 * nothing that matters. */
static size_t q_constants(struct constant *c)
{
    size_t n = 0;
#define C(sym) c[n++] = (struct constant){&(#sym)[3], (long long)(sym)}
#define QM(sym, val, name) C(sym);
    BR_QUEUE_MODE_MAP(QM)
#undef QM
#define GATE(sym, val, name) C(sym);
    BR_QUEUE_GATE_MAP(GATE)
#undef GATE
    C(BR_QUEUE_MODE_COUNT);
    C(BR_QS_LAPSED);
    C(BR_QS_PASSTHROUGH);
    C(BR_FX_QUEUE_STATE);
    C(BR_FX_PLACE_LAPSED);
    C(BR_QF_INVENTORY_AWARE);
    C(BR_QF_ALL);
    C(BR_QSET_MODE);
    C(BR_QSET_MAX_ACTIVE);
    C(BR_QSET_ADMIT_PER_MIN);
    C(BR_ADMIT_PER_MIN_MAX);
    C(BR_PACE_BURST_MS);
    C(BR_PRESENCE_BATCH_MAX);
    C(BR_PRESENCE_TTL_S_MAX);
    C(BR_LAPSE_SKIP_MAX);
    C(BR_RATE_BUCKET_MS);
    C(BR_RATE_BUCKETS);
    C(BR_POW_BITS_MAX);
#undef C
    if (n > CONSTS_MAX) {
        fprintf(stderr, "br_lua_embed: more than %d constants in Q\n", CONSTS_MAX);
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
    if (argc < 4 || argc - 3 > SCRIPTS_MAX) {
        fprintf(stderr, "usage: br_lua_embed OUT.c lib.lua script.lua... (at most %d)\n",
                SCRIPTS_MAX);
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    int count = argc - 3;
    static struct buf scripts[SCRIPTS_MAX];
    static char names[SCRIPTS_MAX][64];
    struct buf lib = {.p = malloc(SOURCE_MAX), .n = 0};
    struct buf full = {.p = malloc(SOURCE_MAX), .n = 0};
    static struct constant consts[CONSTS_MAX];
    if (lib.p == NULL || full.p == NULL) {
        return 1;
    }
    read_file(&lib, argv[2]);
    for (int i = 0; i < count; i++) {
        scripts[i].p = malloc(SOURCE_MAX);
        if (scripts[i].p == NULL) {
            return 1;
        }
        read_file(&scripts[i], argv[3 + i]);
        script_name(argv[3 + i], names[i], sizeof names[i]);
    }
    size_t nconsts = constants(consts);
    puts_buf(&full, "#!lua name=br_@V@\n");
    puts_buf(&full, "-- generated by lua/embed.c: the core's numbers (core/*.h), lib.lua, then "
                    "each script as a function\n");
    for (size_t k = 0; k < nconsts; k++) {
        bool used = mentions(lib.p, lib.n, consts[k].name);
        for (int i = 0; i < count && !used; i++) {
            used = mentions(scripts[i].p, scripts[i].n, consts[k].name);
        }
        if (used) {
            char line[160];
            int n =
                snprintf(line, sizeof line, "local %s = %lld\n", consts[k].name, consts[k].value);
            put(&full, line, (size_t)n);
        }
    }
    static struct constant qconsts[CONSTS_MAX];
    size_t nq = q_constants(qconsts);
    puts_buf(&full, "local Q = {\n");
    for (size_t k = 0; k < nq; k++) {
        char line[160];
        int n = snprintf(line, sizeof line, "    %s = %lld,\n", qconsts[k].name, qconsts[k].value);
        put(&full, line, (size_t)n);
    }
    puts_buf(&full, "}\n");
    put(&full, lib.p, lib.n);
    for (int i = 0; i < count; i++) {
        char line[160];
        int n = snprintf(line, sizeof line, "\nlocal function script_%s()\n", names[i]);
        put(&full, line, (size_t)n);
        put(&full, scripts[i].p, scripts[i].n);
        puts_buf(&full, "\nend\n");
    }
    puts_buf(&full, "\n");
    for (int i = 0; i < count; i++) {
        char line[256];
        int n = snprintf(line, sizeof line,
                         "redis.register_function('%s_@V@', function(keys, args) begin(keys, args) "
                         "return script_%s() end)\n",
                         names[i], names[i]);
        put(&full, line, (size_t)n);
    }
    fprintf(out, "/* generated by lua/embed.c from the lua/ scripts: do not edit */\n");
    fprintf(out, "#include \"lua/scripts.h\"\n\n");
    fprintf(out, "static const unsigned char library[] = {");
    for (size_t k = 0; k < full.n; k++) {
        fprintf(out, "%s%d,", k % 24 == 0 ? "\n    " : "", (int)(unsigned char)full.p[k]);
    }
    fprintf(out, "0};\n\n");
    fprintf(out, "const char *const br_lua_library = (const char *)library;\n");
    fprintf(out, "const size_t br_lua_library_len = sizeof library - 1;\n\n");
    fprintf(out, "const char *const br_lua_functions[] = {\n");
    for (int i = 0; i < count; i++) {
        fprintf(out, "    \"%s\",\n", names[i]);
    }
    fprintf(out, "};\n\nconst unsigned br_lua_function_count = %d;\n", count);
    for (int i = 0; i < count; i++) {
        free(scripts[i].p);
    }
    free(lib.p);
    free(full.p);
    return fclose(out) == 0 ? 0 : 1;
}
