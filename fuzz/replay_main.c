/*
 * replay_main.c -- a plain main for the fuzz harnesses: runs
 * LLVMFuzzerTestOneInput once on every file named on the command line
 * (a directory stands for the regular files in it, in name order; names
 * starting with '.' are skipped, so a .gitkeep keeps an empty directory).
 *
 * No fuzzing engine is involved, so this builds with any compiler: the
 * normal sanitized build (tests/fuzz) links each harness with it and ctest
 * replays the committed seed corpus and every regression case. It is also
 * the quickest way to reproduce a crash under a debugger:
 *     build-asan/tests/fuzz/replay_fuzz_journal fuzz/out/.../crash-1234
 * A harness that fails aborts (br_panic, ASan, UBSan); otherwise this prints
 * how many inputs ran and exits 0. A path that cannot be read is an error
 * (exit 2), so a renamed corpus directory cannot turn the test vacuous.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (16u << 20) /* bytes one input may have */
#define DIR_FILES_MAX 100000u /* entries one directory may list */

/* Runs the harness on one file. Returns 0 or -1 (unreadable). */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    uint8_t *buf = malloc(INPUT_MAX);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }
    size_t n = fread(buf, 1, INPUT_MAX, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        return -1;
    }
    /* An exact-size copy, as libFuzzer gives: a read past the end is caught. */
    uint8_t *exact = malloc(n > 0 ? n : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in dir, in name order. Returns files run, or -1. */
static long run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot open directory %s\n", dir);
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL && count < DIR_FILES_MAX) {
        if (ent->d_name[0] == '.') {
            continue;
        }
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (grown == NULL) {
                break;
            }
            names = grown;
        }
        size_t len = strlen(dir) + 1 + strlen(ent->d_name) + 1;
        names[count] = malloc(len);
        if (names[count] == NULL) {
            break;
        }
        snprintf(names[count], len, "%s/%s", dir, ent->d_name);
        count++;
    }
    closedir(d);
    if (count > 1) {
        qsort(names, count, sizeof *names, by_name);
    }
    long ran = 0;
    for (size_t i = 0; i < count; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(names[i]) != 0) {
                ran = -1;
            } else if (ran >= 0) {
                ran++;
            }
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    long total = 0;
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
            failed = 1;
            continue;
        }
        long ran = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : (run_file(argv[i]) == 0 ? 1 : -1);
        if (ran < 0) {
            failed = 1;
        } else {
            total += ran;
        }
    }
    printf("replay: %ld inputs ran clean\n", total);
    return failed ? 2 : 0;
}
