/*
 * rush_http.c -- the rush client's two resumable parsers (rush_http.h).
 *
 * The HTTP/1.1 response parser is a byte-at-a-time state machine in nginx's
 * shape: it keeps only what a later byte can change (the current line, the
 * bytes left in a body or chunk) and never looks back at the caller's
 * buffer, so any split of the input gives the same answer.
 *
 *   STATUS --line--> HEADER --empty line--> BODY_LEN   (Content-Length)
 *                      |                    CHUNK_SIZE (chunked) -> CHUNK_DATA -> CHUNK_END -> CHUNK_SIZE
 *                      |                       \-- size 0 --> TRAILER --empty line--> DONE
 *                      |                    BODY_CLOSE (neither: until the peer closes)
 *                      \-- 1xx: back to STATUS
 *
 * Framing is strict because a client that guesses frames wrong reads the
 * next answer as this one's body: two differing Content-Length headers,
 * Content-Length with chunked, a bad hex size, a chunk size of 2^31 or more,
 * more than BR_RUSH_HEADERS_MAX bytes of head, or EOF before a delimited body
 * ends are errors. Lines may end in CRLF or a bare LF.
 *
 * The SSE parser follows the WHATWG "event stream interpretation": lines
 * end with CRLF, LF or CR; a line is handled when its terminator arrives, and
 * an LF right after a CR (possibly in the next buffer) is skipped. Comments
 * only count. An empty line dispatches the collected data.
 */
#include "server/rush_http.h"

#include <stdio.h>
#include <string.h>

#include "core/panic.h"

enum {
    ST_STATUS = 0,
    ST_HEADER,
    ST_BODY_LEN,
    ST_BODY_CLOSE,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_END,
    ST_TRAILER,
    ST_DONE,
    ST_ERROR
};

enum { FL_HTTP10 = 1, FL_KEEPALIVE = 2, FL_TE_OTHER = 4 };

#define CHUNK_SIZE_LIMIT (1ull << 31)
#define CHUNK_LINE_MAX 1024u /* a size line with its extensions */

void br_rush_http_resp_init(struct br_rush_http_resp *p)
{
    memset(p, 0, sizeof *p);
    p->content_length = -1;
    p->state = ST_STATUS;
}

static int fail(struct br_rush_http_resp *p, char *why, const char *msg)
{
    p->state = ST_ERROR;
    if (why != NULL) {
        snprintf(why, 96, "%s", msg);
    }
    return BR_RUSH_PARSE_ERROR;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive equality of a[0..n) with the NUL-terminated word. */
static bool word_eq(const char *a, size_t n, const char *word)
{
    size_t k = strlen(word);
    if (n != k) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower(a[i]) != word[i]) {
            return false;
        }
    }
    return true;
}

/* Trims spaces and tabs around v[0..*n). */
static const char *trim(const char *v, size_t *n)
{
    while (*n > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        (*n)--;
    }
    while (*n > 0 && (v[*n - 1] == ' ' || v[*n - 1] == '\t')) {
        (*n)--;
    }
    return v;
}

/* Appends bytes up to and including an LF to p->line. Returns true when a
 * line is complete (then p->line holds it, NUL-terminated, without CR LF, and
 * p->line_len its full length even if only a prefix fits); *i advances. */
static bool take_line(struct br_rush_http_resp *p, const char *in, size_t n, size_t *i)
{
    while (*i < n) {
        char c = in[(*i)++];
        if (c == '\n') {
            size_t len = p->line_len < sizeof p->line - 1 ? p->line_len : sizeof p->line - 1;
            if (p->line_len > 0 && p->line_len <= sizeof p->line - 1 && p->line[len - 1] == '\r') {
                len--;
                p->line_len--;
            }
            p->line[len] = '\0';
            return true;
        }
        if (p->line_len < sizeof p->line - 1) {
            p->line[p->line_len] = c;
        }
        p->line_len++;
    }
    return false;
}

/* "HTTP/1.x SSS[ reason]". */
static int parse_status(struct br_rush_http_resp *p, char *why)
{
    const char *l = p->line;
    if (p->line_len >= sizeof p->line - 1 || strncmp(l, "HTTP/1.", 7) != 0 ||
        (l[7] != '0' && l[7] != '1') || l[8] != ' ') {
        return fail(p, why, "bad status line");
    }
    int status = 0;
    for (int k = 9; k < 12; k++) {
        if (l[k] < '0' || l[k] > '9') {
            return fail(p, why, "bad status code");
        }
        status = status * 10 + (l[k] - '0');
    }
    if ((l[12] != ' ' && l[12] != '\0') || status < 100) {
        return fail(p, why, "bad status code");
    }
    p->status = status;
    p->flags = l[7] == '0' ? FL_HTTP10 : 0;
    p->state = ST_HEADER;
    return BR_RUSH_PARSE_AGAIN;
}

/* Digits only, below 2^62. Returns -1 otherwise. */
static int64_t parse_uint(const char *v, size_t n)
{
    if (n == 0 || n > 18) {
        return -1;
    }
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* Walks the comma-separated tokens of a Connection or Transfer-Encoding value. */
static void connection_tokens(struct br_rush_http_resp *p, const char *v, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == ',') {
            size_t k = i - start;
            const char *t = trim(v + start, &k);
            if (word_eq(t, k, "close")) {
                p->close = true;
            } else if (word_eq(t, k, "keep-alive")) {
                p->flags |= FL_KEEPALIVE;
            }
            start = i + 1;
        }
    }
}

static void transfer_encoding(struct br_rush_http_resp *p, const char *v, size_t n)
{
    size_t start = 0;
    bool last_chunked = false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == ',') {
            size_t k = i - start;
            const char *t = trim(v + start, &k);
            last_chunked = word_eq(t, k, "chunked");
            start = i + 1;
        }
    }
    if (last_chunked) {
        p->chunked = true;
    } else {
        p->flags |= FL_TE_OTHER; /* RFC 9112 6.3: the body runs until close */
    }
}

static int parse_header(struct br_rush_http_resp *p, char *why)
{
    const char *l = p->line;
    const char *colon = memchr(l, ':', strlen(l));
    if (colon == NULL || colon == l) {
        return fail(p, why, "bad header line");
    }
    size_t name_len = (size_t)(colon - l);
    size_t n = strlen(colon + 1);
    const char *v = trim(colon + 1, &n);
    bool truncated = p->line_len >= sizeof p->line - 1;
    if (word_eq(l, name_len, "content-length")) {
        int64_t cl = truncated ? -1 : parse_uint(v, n);
        if (cl < 0) {
            return fail(p, why, "bad Content-Length");
        }
        if (p->content_length >= 0 && p->content_length != cl) {
            return fail(p, why, "two different Content-Length headers");
        }
        p->content_length = cl;
    } else if (word_eq(l, name_len, "transfer-encoding")) {
        if (truncated) {
            return fail(p, why, "Transfer-Encoding too long");
        }
        transfer_encoding(p, v, n);
    } else if (word_eq(l, name_len, "connection")) {
        connection_tokens(p, v, n);
    } else if (word_eq(l, name_len, "retry-after")) {
        int64_t s = parse_uint(v, n);
        p->retry_after_s = s < 0 ? 0 : s > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)s;
    } else if (word_eq(l, name_len, "content-type")) {
        size_t k = n < sizeof p->content_type - 1 ? n : sizeof p->content_type - 1;
        memcpy(p->content_type, v, k);
        p->content_type[k] = '\0';
    }
    return BR_RUSH_PARSE_AGAIN;
}

/* The empty line after the headers: picks the body's framing. */
static int headers_end(struct br_rush_http_resp *p, char *why)
{
    if (p->status >= 100 && p->status < 200 && p->status != 101) {
        /* An interim answer: the real one follows. */
        p->state = ST_STATUS;
        p->content_length = -1;
        p->chunked = p->close = false;
        p->retry_after_s = 0;
        p->content_type[0] = '\0';
        return BR_RUSH_PARSE_AGAIN;
    }
    if (p->content_length >= 0 && (p->chunked || (p->flags & FL_TE_OTHER) != 0)) {
        return fail(p, why, "Content-Length with Transfer-Encoding");
    }
    if ((p->flags & FL_HTTP10) != 0 && (p->flags & FL_KEEPALIVE) == 0) {
        p->close = true;
    }
    p->headers_done = true;
    if (p->status == 204 || p->status == 304) {
        p->state = ST_DONE;
    } else if (p->chunked) {
        p->state = ST_CHUNK_SIZE;
    } else if ((p->flags & FL_TE_OTHER) == 0 && p->content_length >= 0) {
        p->left = (uint64_t)p->content_length;
        p->state = p->left == 0 ? ST_DONE : ST_BODY_LEN;
    } else {
        p->close = true;
        p->state = ST_BODY_CLOSE;
    }
    return BR_RUSH_PARSE_AGAIN;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "<hex>[ ; ext]". */
static int parse_chunk_size(struct br_rush_http_resp *p, char *why)
{
    if (p->line_len > CHUNK_LINE_MAX) {
        return fail(p, why, "chunk size line too long");
    }
    const char *l = p->line;
    uint64_t size = 0;
    size_t i = 0;
    for (; hex_digit(l[i]) >= 0; i++) {
        size = size * 16 + (uint64_t)hex_digit(l[i]);
        if (size >= CHUNK_SIZE_LIMIT) {
            return fail(p, why, "chunk size too large");
        }
    }
    if (i == 0) {
        return fail(p, why, "bad chunk size");
    }
    while (l[i] == ' ' || l[i] == '\t') {
        i++;
    }
    if (l[i] != '\0' && l[i] != ';') {
        return fail(p, why, "bad chunk size");
    }
    p->left = size;
    p->state = size == 0 ? ST_TRAILER : ST_CHUNK_DATA;
    return BR_RUSH_PARSE_AGAIN;
}

/* One step on a complete line in a line-reading state. */
static int on_line(struct br_rush_http_resp *p, char *why)
{
    switch (p->state) {
    case ST_STATUS:
        if (p->line_len == 0 && p->status == 0 && p->header_bytes <= 2) {
            return BR_RUSH_PARSE_AGAIN; /* RFC 9112 2.2: an empty line before the status line */
        }
        return parse_status(p, why);
    case ST_HEADER:
        return p->line_len == 0 ? headers_end(p, why) : parse_header(p, why);
    case ST_CHUNK_SIZE:
        return parse_chunk_size(p, why);
    case ST_CHUNK_END:
        if (p->line_len != 0) {
            return fail(p, why, "chunk data not followed by CRLF");
        }
        p->state = ST_CHUNK_SIZE;
        return BR_RUSH_PARSE_AGAIN;
    case ST_TRAILER:
        if (p->line_len == 0) {
            p->state = ST_DONE;
        }
        return BR_RUSH_PARSE_AGAIN;
    default:
        BR_ASSERT(false);
        return BR_RUSH_PARSE_ERROR;
    }
}

int br_rush_http_feed(struct br_rush_http_resp *p, const char *in, size_t n, size_t *used,
                      br_rush_body_fn fn, void *ctx, char why[96])
{
    size_t i = 0;
    int rc = BR_RUSH_PARSE_AGAIN;
    while (rc == BR_RUSH_PARSE_AGAIN && p->state != ST_DONE && p->state != ST_ERROR && i < n) {
        if (p->state == ST_BODY_LEN || p->state == ST_CHUNK_DATA || p->state == ST_BODY_CLOSE) {
            size_t k = n - i;
            if (p->state != ST_BODY_CLOSE && p->left < k) {
                k = (size_t)p->left;
            }
            if (fn != NULL && k > 0) {
                fn(ctx, in + i, k);
            }
            i += k;
            if (p->state != ST_BODY_CLOSE) {
                p->left -= k;
                if (p->left == 0) {
                    p->state = p->state == ST_BODY_LEN ? ST_DONE : ST_CHUNK_END;
                }
            }
            continue;
        }
        size_t start = i;
        bool line = take_line(p, in, n, &i);
        if (p->state == ST_STATUS || p->state == ST_HEADER || p->state == ST_TRAILER) {
            p->header_bytes += i - start;
            if (p->header_bytes > BR_RUSH_HEADERS_MAX) {
                rc = fail(p, why, "headers too large");
                break;
            }
        } else if (p->line_len > CHUNK_LINE_MAX) {
            rc = fail(p, why, "chunk size line too long");
            break;
        }
        if (line) {
            rc = on_line(p, why);
            p->line_len = 0;
        }
    }
    if (used != NULL) {
        *used = i;
    }
    if (p->state == ST_ERROR) {
        return BR_RUSH_PARSE_ERROR;
    }
    return p->state == ST_DONE ? BR_RUSH_PARSE_DONE : BR_RUSH_PARSE_AGAIN;
}

int br_rush_http_eof(struct br_rush_http_resp *p)
{
    if (p->state == ST_BODY_CLOSE || p->state == ST_DONE) {
        p->state = ST_DONE;
        return BR_RUSH_PARSE_DONE;
    }
    p->state = ST_ERROR;
    return BR_RUSH_PARSE_ERROR;
}

/* ---- server-sent events ---- */

void br_rush_sse_init(struct br_rush_sse *s)
{
    memset(s, 0, sizeof *s);
}

static void sse_dispatch(struct br_rush_sse *s, br_rush_sse_fn fn, void *ctx)
{
    if (s->id_buf_set) {
        memcpy(s->last_id, s->id_buf, sizeof s->last_id);
        s->has_id = s->id_buf[0] != '\0';
    }
    if (s->data_set && fn != NULL) {
        s->data[s->data_len] = '\0';
        struct br_rush_sse_event ev = {s->event[0] != '\0' ? s->event : "message", s->data,
                                       s->data_len};
        fn(ctx, &ev);
    }
    s->data_set = false;
    s->data_len = 0;
    s->event[0] = '\0';
}

/* One field line. -1 when a value exceeds its limit. */
static int sse_field(struct br_rush_sse *s, const char *name, size_t name_len, const char *v,
                     size_t n)
{
    if (name_len == 5 && memcmp(name, "event", 5) == 0) {
        if (n >= sizeof s->event) {
            return -1;
        }
        memcpy(s->event, v, n);
        s->event[n] = '\0';
    } else if (name_len == 4 && memcmp(name, "data", 4) == 0) {
        size_t need = s->data_len + (s->data_set ? 1 : 0) + n;
        if (need >= sizeof s->data) {
            return -1;
        }
        if (s->data_set) {
            s->data[s->data_len++] = '\n';
        }
        memcpy(s->data + s->data_len, v, n);
        s->data_len += n;
        s->data_set = true;
    } else if (name_len == 2 && memcmp(name, "id", 2) == 0) {
        if (memchr(v, '\0', n) != NULL) {
            return 0; /* WHATWG: an id with NUL is ignored */
        }
        if (n >= sizeof s->id_buf) {
            return -1;
        }
        memcpy(s->id_buf, v, n);
        s->id_buf[n] = '\0';
        s->id_buf_set = true;
    } else if (name_len == 5 && memcmp(name, "retry", 5) == 0) {
        uint64_t ms = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] < '0' || v[i] > '9') {
                return 0; /* WHATWG: not all digits, ignored */
            }
            ms = ms * 10 + (uint64_t)(v[i] - '0');
            if (ms > UINT32_MAX) {
                ms = UINT32_MAX;
            }
        }
        if (n > 0) {
            s->retry_ms = (uint32_t)ms;
        }
    }
    return 0;
}

static int sse_line(struct br_rush_sse *s, br_rush_sse_fn fn, void *ctx)
{
    const char *l = s->line;
    size_t n = s->line_len;
    s->line_len = 0;
    if (n == 0) {
        sse_dispatch(s, fn, ctx);
        return 0;
    }
    if (l[0] == ':') {
        s->comments++;
        return 0;
    }
    const char *colon = memchr(l, ':', n);
    if (colon == NULL) {
        return sse_field(s, l, n, "", 0);
    }
    size_t name_len = (size_t)(colon - l);
    const char *v = colon + 1;
    size_t v_len = n - name_len - 1;
    if (v_len > 0 && v[0] == ' ') {
        v++;
        v_len--;
    }
    return sse_field(s, l, name_len, v, v_len);
}

int br_rush_sse_feed(struct br_rush_sse *s, const char *in, size_t n, br_rush_sse_fn fn, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (s->cr_pending) {
            s->cr_pending = false;
            if (c == '\n') {
                continue; /* the LF of a CRLF whose CR ended the line */
            }
        }
        if (c == '\r' || c == '\n') {
            s->cr_pending = c == '\r';
            if (sse_line(s, fn, ctx) != 0) {
                return -1;
            }
            continue;
        }
        if (s->line_len >= sizeof s->line) {
            return -1;
        }
        s->line[s->line_len++] = c;
    }
    return 0;
}
