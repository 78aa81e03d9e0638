/* `calls` requests for a reply of SIZE bytes (default 16 MiB); prints seconds
 * per call and the process's peak resident set in bytes. */
#include "bench.h" /* first: it sets _POSIX_C_SOURCE */

#include <string.h>
#include <sys/resource.h>
#include <vpoller.h>


int main(int argc, char **argv)
{
    const char *endpoint;
    long calls;
    bench_args(argc, argv, &endpoint, &calls);
    long size = argc > 3 ? strtol(argv[3], NULL, 10) : 16L * 1024 * 1024;
    char msg[160];
    snprintf(msg, sizeof msg, "{\"method\": \"vm.discover\", \"stand_in\": {\"reply_size\": %ld}}", size);
    vpoller_client *client = vpoller_client_new(endpoint, 1, 60000);
    if (client == NULL)
        return 1;
    double started = bench_now();
    for (long i = 0; i < calls; i++) {
        char *reply = vpoller_run(client, msg);
        if (vpoller_last_status() != VPOLLER_OK || (long)strlen(reply) != size)
            return 1;
        vpoller_free_string(reply);
    }
    double per_call = (bench_now() - started) / (double)calls;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("%.9f %ld\n", per_call, usage.ru_maxrss * 1024L);
    vpoller_client_free(client);
    return 0;
}
