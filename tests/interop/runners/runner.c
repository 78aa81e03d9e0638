/*
 * Interop runner over the C ABI: one vpoller_client for its whole life.
 *
 * Usage: interop-runner ENDPOINT RETRIES TIMEOUT_MS
 * Reads one request per line; writes each reply as "<byte length>\n<reply>\n".
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vpoller.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: interop-runner ENDPOINT RETRIES TIMEOUT_MS\n");
        return 64;
    }
    vpoller_client *client = vpoller_client_new(argv[1], atoi(argv[2]), atoi(argv[3]));
    if (client == NULL) {
        fprintf(stderr, "interop-runner: %s\n", vpoller_last_error());
        return 1;
    }
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    while ((length = getline(&line, &capacity, stdin)) > 0) {
        if (line[length - 1] == '\n')
            line[length - 1] = '\0';
        char *reply = vpoller_run(client, line);
        if (reply == NULL)
            return 1;
        printf("%zu\n%s\n", strlen(reply), reply);
        fflush(stdout);
        vpoller_free_string(reply);
    }
    free(line);
    vpoller_client_free(client);
    return 0;
}
