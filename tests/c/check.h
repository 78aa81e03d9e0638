/*
 * The checks of the C test programs: CHECK counts a passed or failed
 * condition (and names a failed one on stderr); report() prints the totals
 * the Rust side looks for and gives the exit code.
 */
#ifndef VPOLLER_TEST_CHECK_H
#define VPOLLER_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(condition)                                                       \
    do {                                                                       \
        if (condition) {                                                       \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #condition);                                               \
        }                                                                      \
    } while (0)

static int report(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif
