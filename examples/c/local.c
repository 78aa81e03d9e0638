/*
 * The vPoller API documentation's local example in C over libvpoller: run
 * vPoller tasks in this process, straight against a vSphere host, with no
 * proxy or worker:
 *
 *     agent = VSphereAgent(user='root', pwd='p4ssw0rd', host='vc01.example.org')
 *     agent.connect()
 *     result = agent.vm_discover(msg={})
 *
 * Usage: local HOST[:PORT] USER PASSWORD [CA-FILE] [MSG...]
 *        CA-FILE: a PEM file of the CA that signed the host's certificate
 *        ("-": the system's trusted roots). MSG: task requests as JSON
 *        (default: {"method": "vm.discover"}).
 * Exits 0 when every task succeeded, 1 when one failed, 2 when the host
 * cannot be reached or refuses the login, 64 for usage errors.
 */
#include <stdio.h>
#include <string.h>
#include <vpoller.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: local HOST[:PORT] USER PASSWORD [CA-FILE] [MSG...]\n");
        return 64;
    }

    /* agent = VSphereAgent(user=..., pwd=..., host=...) */
    vpoller_agent *agent = vpoller_agent_new(argv[1], argv[2], argv[3]);
    if (agent == NULL) {
        fprintf(stderr, "local: %s\n", vpoller_last_error());
        return 64;
    }
    if (argc > 4 && strcmp(argv[4], "-") != 0 &&
        vpoller_agent_set_option(agent, VPOLLER_AGENT_CA_FILE, argv[4]) != VPOLLER_OK) {
        fprintf(stderr, "local: %s\n", vpoller_last_error());
        vpoller_agent_free(agent);
        return 64;
    }

    /* agent.connect() */
    if (vpoller_agent_connect(agent) != VPOLLER_OK) {
        fprintf(stderr, "local: cannot connect: %s\n", vpoller_last_error());
        vpoller_agent_free(agent);
        return 2;
    }

    /* result = agent.vm_discover(msg={}) */
    static char *const discover[] = {"{\"method\": \"vm.discover\"}"};
    char *const *messages = argc > 5 ? argv + 5 : discover;
    int count = argc > 5 ? argc - 5 : 1;
    int status = 0;
    for (int i = 0; i < count; i++) {
        char *result = vpoller_agent_run(agent, messages[i]);
        if (result == NULL) {
            fprintf(stderr, "local: out of memory\n");
            status = 2;
            break;
        }
        puts(result);
        if (vpoller_reply_success(result) != 0)
            status = 1;
        vpoller_free_string(result);
    }

    vpoller_agent_free(agent); /* logs out */
    return status;
}
