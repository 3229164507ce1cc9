/*
 * double_http.c -- plain HTTP to the Stripe test double; see double_http.h.
 */
#include "double_http.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

static size_t collect(char *d, size_t sz, size_t n, void *ctx)
{
    char **buf = ctx;
    size_t old = *buf ? strlen(*buf) : 0;
    char *b = realloc(*buf, old + sz * n + 1);
    assert_non_null(b);
    memcpy(b + old, d, sz * n);
    b[old + sz * n] = '\0';
    *buf = b;
    return sz * n;
}

json_t *double_http(const char *base, const char *method, const char *path, const char *body,
                    int json, const char *idem_key, long *status)
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    char url[512], hk[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    char *buf = NULL;
    struct curl_slist *hd = NULL;
    hd = curl_slist_append(hd, json ? "Content-Type: application/json"
                                    : "Content-Type: application/x-www-form-urlencoded");
    if (idem_key != NULL) {
        snprintf(hk, sizeof hk, "Idempotency-Key: %s", idem_key);
        hd = curl_slist_append(hd, hk);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    if (!json) {
        curl_easy_setopt(h, CURLOPT_USERPWD, DOUBLE_KEY ":");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    if (status != NULL) {
        *status = st;
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    json_t *j = buf ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    return j;
}
