/*
 * What py-vpoller's old C client (extra/vpoller-cclient, version 0.5.1)
 * puts on the wire, written anew for the interop tests to match its
 * wire behaviour; it links the system's libzmq, as that client does.
 *
 * That client fills one fixed template with all twelve request fields and
 * formats the ones not given on its command line from NULL, which glibc
 * prints as "(null)"; its helper defaults to vpoller.helpers.cclient. It
 * sends the text without a NUL over a REQ socket (LINGER 0), polls for the
 * timeout, and after a silent attempt closes the socket and sends again on
 * a new one; it prints the reply with printf("%s\n"), so the reply must end
 * with the NUL that the cclient helper adds.
 *
 * Usage: legacy-cclient ENDPOINT TIMEOUT_MS RETRIES [FIELD=VALUE ...]
 * FIELD is one of the template's fields (method, hostname, name, properties,
 * key, username, password, counter-id, instance, perf-interval, max-sample,
 * helper); a value for properties goes inside its one-element list as is.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char *const FIELDS[] = {
    "method", "hostname", "name", "properties", "key", "username", "password",
    "counter-id", "instance", "perf-interval", "max-sample", "helper",
};
#define FIELD_COUNT (sizeof FIELDS / sizeof FIELDS[0])

static void *connect_req(void *context, const char *endpoint)
{
    int linger = 0;
    void *socket = zmq_socket(context, ZMQ_REQ);
    if (socket == NULL)
        return NULL;
    zmq_connect(socket, endpoint);
    zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger);
    return socket;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: legacy-cclient ENDPOINT TIMEOUT_MS RETRIES [FIELD=VALUE ...]\n");
        return 64;
    }
    const char *endpoint = argv[1];
    long timeout_ms = strtol(argv[2], NULL, 10);
    long retries = strtol(argv[3], NULL, 10);

    const char *values[FIELD_COUNT];
    for (size_t field = 0; field < FIELD_COUNT; field++)
        values[field] = "(null)";
    values[FIELD_COUNT - 1] = "vpoller.helpers.cclient";
    for (int arg = 4; arg < argc; arg++) {
        const char *equals = strchr(argv[arg], '=');
        size_t field = 0;
        while (equals != NULL && field < FIELD_COUNT
               && (strlen(FIELDS[field]) != (size_t)(equals - argv[arg])
                   || strncmp(FIELDS[field], argv[arg], (size_t)(equals - argv[arg])) != 0))
            field++;
        if (equals == NULL || field == FIELD_COUNT) {
            fprintf(stderr, "legacy-cclient: not FIELD=VALUE with a template field: %s\n", argv[arg]);
            return 64;
        }
        values[field] = equals + 1;
    }

    /* The template's spacing, field order and list around properties. */
    char request[8192];
    int length = snprintf(request, sizeof request,
                          "{\"method\":        \"%s\", \"hostname\":      \"%s\", "
                          "\"name\":          \"%s\", \"properties\":   [\"%s\"], "
                          "\"key\":           \"%s\", \"username\":      \"%s\", "
                          "\"password\":      \"%s\", \"counter-id\":    \"%s\", "
                          "\"instance\":      \"%s\", \"perf-interval\": \"%s\", "
                          "\"max-sample\":    \"%s\", \"helper\":        \"%s\" }",
                          values[0], values[1], values[2], values[3], values[4], values[5],
                          values[6], values[7], values[8], values[9], values[10], values[11]);
    if (length < 0 || (size_t)length >= sizeof request) {
        fprintf(stderr, "legacy-cclient: request too long\n");
        return 64;
    }

    void *context = zmq_ctx_new();
    void *socket = connect_req(context, endpoint);
    if (socket == NULL)
        return 76;
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    int answered = 0;
    while (retries > 0 && !answered) {
        zmq_pollitem_t items[] = {{socket, 0, ZMQ_POLLIN, 0}};
        zmq_send(socket, request, strlen(request), 0);
        zmq_poll(items, 1, timeout_ms);
        if ((items[0].revents & ZMQ_POLLIN) && zmq_msg_recv(&reply, socket, 0) != -1) {
            answered = 1;
        } else {
            retries--;
            zmq_close(socket);
            socket = connect_req(context, endpoint);
            if (socket == NULL)
                return 76;
        }
    }
    int status = 0;
    if (!answered) {
        printf("{ \"success\": 1, \"msg\": \"Did not receive reply from server, aborting...\" }\n");
        status = 69;
    } else {
        /* As the old client prints it: up to the first NUL, which only the
         * cclient helper's replies carry; others are copied with one added
         * here, so that the test reads their text instead of past the end. */
        size_t size = zmq_msg_size(&reply);
        char *text = malloc(size + 1);
        if (text == NULL)
            return 71;
        memcpy(text, zmq_msg_data(&reply), size);
        text[size] = '\0';
        printf("%s\n", text);
        free(text);
    }
    zmq_msg_close(&reply);
    zmq_close(socket);
    zmq_ctx_destroy(context);
    return status;
}
