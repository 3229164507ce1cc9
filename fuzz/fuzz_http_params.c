/*
 * fuzz_http_params.c -- fuzz target: the server's parsers of request text
 * that are pure functions today (server/ratelimit.h, server/render.h,
 * server/log.h): the client address behind X-Forwarded-For, trusted-proxy
 * CIDR lists and rate-limit specs (configuration), RFC 3339 date-times
 * (event bodies), role names (role bodies), and the escaping of request
 * text into log lines.
 *
 * Input: a mode byte, then text (cut at the first NUL, as C strings are).
 * Mode (byte % 6):
 *   0  "<peer>\n<X-Forwarded-For>" through br_client_addr with a fixed
 *      trusted list: the answer is the peer or one of the listed hops, and
 *      NUL-terminated within BR_ADDR_TEXT_MAX;
 *   1  br_cidr_parse_list: -1 or a count within the cap, prefix lengths
 *      within the family's width; each range matches its own address;
 *   2  br_rate_parse: on success rps > 0 (or off) and 1 <= burst, finite;
 *   3  br_time_parse: on success the time formats and parses back to the
 *      same millisecond, between 1970 and 9999;
 *   4  br_log_escape into a buffer of a size the input picks: NUL-terminated
 *      inside the buffer, no raw control byte or unescaped quote;
 *   5  br_role_parse and br_log_level_parse: a parsed name round-trips.
 *
 * Request bodies are fuzz_http_body's; routes, path ids, the events list's
 * query and the other request headers are fuzz_http_route's.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/panic.h"
#include "server/log.h"
#include "server/ratelimit.h"
#include "server/render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 4096u

static void check_client_addr(const char *text)
{
    const char *nl = strchr(text, '\n');
    char peer[BR_ADDR_TEXT_MAX + 16];
    size_t plen = nl ? (size_t)(nl - text) : strlen(text);
    if (plen >= sizeof peer) {
        plen = sizeof peer - 1;
    }
    memcpy(peer, text, plen);
    peer[plen] = '\0';
    struct br_cidr trusted[4];
    int n = br_cidr_parse_list("10.0.0.0/8,127.0.0.1,::1/128,fd00::/8", trusted, 4);
    BR_ASSERT(n == 4);
    char out[BR_ADDR_TEXT_MAX + 1];
    out[BR_ADDR_TEXT_MAX] = 'X'; /* a canary past the documented size */
    br_client_addr(peer, nl ? nl + 1 : NULL, trusted, (unsigned)n, out);
    BR_ASSERT(memchr(out, '\0', BR_ADDR_TEXT_MAX) != NULL && out[BR_ADDR_TEXT_MAX] == 'X');
    /* The answer is the peer (cut to fit) or a hop taken from the header. */
    BR_ASSERT(strncmp(out, peer, BR_ADDR_TEXT_MAX - 1) == 0 || (nl && strstr(nl + 1, out)));
}

static void check_cidr(const char *text)
{
    struct br_cidr list[BR_CIDR_MAX];
    int n = br_cidr_parse_list(text, list, BR_CIDR_MAX);
    BR_ASSERT(n >= -1 && n <= (int)BR_CIDR_MAX);
    for (int i = 0; i < n; i++) {
        BR_ASSERT(list[i].family == AF_INET || list[i].family == AF_INET6);
        BR_ASSERT(list[i].bits <= (list[i].family == AF_INET ? 32u : 128u));
        char addr[INET6_ADDRSTRLEN];
        BR_ASSERT(inet_ntop(list[i].family, list[i].addr, addr, sizeof addr) != NULL);
        BR_ASSERT(br_cidr_match(&list[i], 1, addr));
    }
}

static void check_rate(const char *text)
{
    struct br_rate r = {.rps = -1, .burst = -1};
    if (br_rate_parse(text, &r) != 0) {
        return;
    }
    BR_ASSERT(isfinite(r.rps) && isfinite(r.burst));
    BR_ASSERT((r.rps == 0 && r.burst == 0) || (r.rps > 0 && r.burst >= 1));
}

static void check_time(const char *text)
{
    int64_t ms = 0;
    if (br_time_parse(text, &ms) != 0) {
        return;
    }
    BR_ASSERT(ms >= 0 && ms < 253402300800000LL); /* 1970-01-01 .. 9999-12-31T23:59:59.999Z */
    char again[BR_TIME_TEXT_MAX];
    br_time_format(ms, again);
    BR_ASSERT(memchr(again, '\0', sizeof again) != NULL);
    int64_t back = -1;
    BR_ASSERT(br_time_parse(again, &back) == 0 && back == ms);
}

static void check_escape(const char *text, uint8_t size_byte)
{
    size_t cap = 1 + size_byte; /* 1..256 bytes */
    char *out = malloc(cap);
    if (out == NULL) {
        return;
    }
    char *r = br_log_escape(text, out, cap);
    BR_ASSERT(r == out);
    size_t n = strnlen(out, cap);
    BR_ASSERT(n < cap);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        BR_ASSERT(c >= 0x20 && c != 0x7f);
        if (c == '"') {
            /* a quote only ever appears escaped */
            size_t slashes = 0;
            for (size_t k = i; k > 0 && out[k - 1] == '\\'; k--) {
                slashes++;
            }
            BR_ASSERT(slashes % 2 == 1);
        }
    }
    free(out);
}

static void check_names(const char *text)
{
    uint8_t role = 0;
    if (br_role_parse(text, &role) == 0) {
        BR_ASSERT(strcmp(br_role_text(role), text) == 0);
    }
    enum br_log_level level;
    (void)br_log_level_parse(text, &level);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > TEXT_MAX) {
        return 0;
    }
    char *text = malloc(size);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 6u) {
    case 0:
        check_client_addr(text);
        break;
    case 1:
        check_cidr(text);
        break;
    case 2:
        check_rate(text);
        break;
    case 3:
        check_time(text);
        break;
    case 4:
        check_escape(text, (uint8_t)(data[0] >> 3));
        break;
    default:
        check_names(text);
        break;
    }
    free(text);
    return 0;
}
