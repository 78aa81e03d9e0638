/* One client shared by THREADS threads, each making `calls` requests that the
 * stand-in answers after 20 ms; prints calls per second. */
#include "bench.h" /* first: it sets _POSIX_C_SOURCE */

#include <pthread.h>
#include <vpoller.h>


#define SLOW_MSG "{\"method\": \"vm.get\", \"name\": \"vm01\", \"stand_in\": {\"delay_ms\": 20}}"

static vpoller_client *client;
static long calls;
static int failures;

static void *work(void *unused)
{
    (void)unused;
    for (long i = 0; i < calls; i++) {
        char *reply = NULL;
        if (vpoller_try_run(client, SLOW_MSG, &reply) != VPOLLER_OK)
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
        vpoller_free_string(reply);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *endpoint;
    bench_args(argc, argv, &endpoint, &calls);
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (threads < 1 || threads > 256)
        return 64;
    client = vpoller_client_new(endpoint, 3, 5000);
    if (client == NULL)
        return 1;
    pthread_t ids[256];
    double started = bench_now();
    for (int t = 0; t < threads; t++)
        pthread_create(&ids[t], NULL, work, NULL);
    for (int t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);
    double elapsed = bench_now() - started;
    vpoller_client_free(client);
    if (failures)
        return 1;
    printf("%.3f\n", (double)threads * (double)calls / elapsed);
    return 0;
}
