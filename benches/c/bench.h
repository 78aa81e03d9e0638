/* Shared helpers of the C benchmark programs. */
#ifndef VPOLLER_BENCH_H
#define VPOLLER_BENCH_H

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The request of a typical monitoring item. */
#define BENCH_MSG \
    "{\"method\": \"vm.get\", \"hostname\": \"vc01.example.org\", \"name\": \"vm01\", " \
    "\"properties\": [\"runtime.powerState\"]}"

static inline double bench_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Reads `<endpoint> <calls>` from argv or exits with a usage message. */
static inline int bench_args(int argc, char **argv, const char **endpoint, long *calls)
{
    if (argc < 3 || (*calls = strtol(argv[2], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: %s ENDPOINT CALLS [...]\n", argv[0]);
        exit(64);
    }
    *endpoint = argv[1];
    return 0;
}

#endif
