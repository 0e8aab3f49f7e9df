/*
 * What every libFuzzer harness here starts with: libFuzzer's two entry
 * points declared (for -Wmissing-prototypes), and CHECK, which reports a
 * broken invariant as "FUZZ_NAME: cond: why" and abort()s so that libFuzzer
 * keeps the input.  A harness defines FUZZ_NAME ("fuzz-policy") first.
 */
#ifndef AUA_FUZZ_H
#define AUA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz.h"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, FUZZ_NAME ": %s: ", #cond);           \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
            abort();                                              \
        }                                                         \
    } while (0)

#endif
