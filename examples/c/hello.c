/*
 * The vPoller API documentation's Ruby example, line for line in C over
 * libvpoller: send a vm.discover task request and print the reply.
 *
 * Usage: hello [endpoint [vsphere-host]]
 *        (defaults: tcp://localhost:10123 and vc01.example.org)
 */
#include <stdio.h>
#include <string.h>
#include <vpoller.h>

int main(int argc, char **argv)
{
    const char *endpoint = argc > 1 ? argv[1] : "tcp://localhost:10123";
    const char *hostname = argc > 2 ? argv[2] : "vc01.example.org";

    /* msg = {:method => "vm.discover", :hostname => "vc01.example.org"} */
    char msg[512];
    /* A host name needs no JSON escaping once it is only letters, digits, '.', '-', '_' and ':'. */
    if (hostname[strspn(hostname, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:")] != '\0' ||
        snprintf(msg, sizeof msg, "{\"method\": \"vm.discover\", \"hostname\": \"%s\"}", hostname) >=
            (int)sizeof msg) {
        fprintf(stderr, "hello: unusable vSphere host name: %s\n", hostname);
        return 64;
    }

    /* context = ZMQ::Context.new(1); socket = context.socket(ZMQ::REQ) */
    puts("Connecting to vPoller ...");
    vpoller_client *client = vpoller_client_new(endpoint, 3, 3000);
    if (client == NULL) {
        fprintf(stderr, "hello: %s\n", vpoller_last_error());
        return 1;
    }

    /* socket.send_string(msg.to_json); socket.recv_string(result) */
    puts("Sending task request to vPoller ...");
    char *result = vpoller_run(client, msg);
    if (result == NULL) {
        fprintf(stderr, "hello: out of memory\n");
        vpoller_client_free(client);
        return 1;
    }
    printf("Received reply from vPoller: %s\n", result);

    int status = vpoller_last_status();
    vpoller_free_string(result);
    vpoller_client_free(client);
    return status == VPOLLER_OK ? 0 : 1;
}
