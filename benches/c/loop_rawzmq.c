/* The floor: a raw libzmq REQ loop with one reused socket, no checks, no
 * retries; prints seconds per call. */
#include "bench.h" /* first: it sets _POSIX_C_SOURCE */

#include <string.h>
#include <zmq.h>


int main(int argc, char **argv)
{
    const char *endpoint;
    long calls;
    bench_args(argc, argv, &endpoint, &calls);
    void *context = zmq_ctx_new();
    void *socket = zmq_socket(context, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(socket, endpoint) != 0)
        return 1;
    static char reply[65536];
    size_t length = strlen(BENCH_MSG);
    for (long i = -100; i < calls; i++) {
        static double started;
        if (i == 0)
            started = bench_now();
        if (zmq_send(socket, BENCH_MSG, length, 0) < 0 || zmq_recv(socket, reply, sizeof reply, 0) < 0)
            return 1;
        if (i == calls - 1)
            printf("%.9f\n", (bench_now() - started) / (double)calls);
    }
    zmq_close(socket);
    zmq_ctx_term(context);
    return 0;
}
