/*
 * sig_check.c -- the webhook verifier as a command, for tests/stripe/sig.sh:
 *   sig_check SECRETS HEADER PAYLOAD_FILE NOW_S [TOLERANCE_S]
 * SECRETS is comma-separated (rotation). Exit 0 = verified, 1 = refused
 * (BR_E_UNAUTHORIZED), 2 = malformed header (BR_E_INVALID), 3 = usage.
 * The payload file is read as raw bytes (at most 1 MiB).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/provider_sig.h"
#include "core/err.h"

int main(int argc, char **argv)
{
    if (argc < 5 || strlen(argv[1]) >= 1024) {
        fprintf(stderr, "usage: sig_check SECRETS HEADER PAYLOAD_FILE NOW_S [TOLERANCE_S]\n");
        return 3;
    }
    char secrets_buf[1024];
    strcpy(secrets_buf, argv[1]);
    const char *secrets[BR_PROVIDER_SIG_SECRETS_MAX];
    size_t n = 0;
    for (char *tok = strtok(secrets_buf, ","); tok != NULL && n < BR_PROVIDER_SIG_SECRETS_MAX;
         tok = strtok(NULL, ",")) {
        secrets[n++] = tok;
    }
    FILE *f = fopen(argv[3], "rb");
    if (n == 0 || f == NULL) {
        fprintf(stderr, "sig_check: no secret or cannot read %s\n", argv[3]);
        return 3;
    }
    static char payload[1 << 20];
    size_t len = fread(payload, 1, sizeof payload, f);
    fclose(f);
    long long now = strtoll(argv[4], NULL, 10);
    long long tol = argc > 5 ? strtoll(argv[5], NULL, 10) : BR_PROVIDER_SIG_TOLERANCE_S;
    int rc = br_provider_sig_verify_any(secrets, n, argv[2], payload, len, now, tol);
    return rc == BR_OK ? 0 : rc == BR_E_UNAUTHORIZED ? 1 : 2;
}
