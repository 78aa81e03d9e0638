/* `calls` requests through vpoller_run on one client; prints seconds per call. */
#include "bench.h" /* first: it sets _POSIX_C_SOURCE */

#include <string.h>
#include <vpoller.h>


int main(int argc, char **argv)
{
    const char *endpoint;
    long calls;
    bench_args(argc, argv, &endpoint, &calls);
    vpoller_client *client = vpoller_client_new(endpoint, 3, 3000);
    if (client == NULL)
        return 1;
    for (int warm = 0; warm < 100; warm++)
        vpoller_free_string(vpoller_run(client, BENCH_MSG));
    double started = bench_now();
    for (long i = 0; i < calls; i++) {
        char *reply = vpoller_run(client, BENCH_MSG);
        if (vpoller_last_status() != VPOLLER_OK)
            return 1;
        vpoller_free_string(reply);
    }
    printf("%.9f\n", (bench_now() - started) / (double)calls);
    vpoller_client_free(client);
    return 0;
}
