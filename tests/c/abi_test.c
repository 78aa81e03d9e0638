/*
 * Exercises libvpoller's C ABI from C, the way C programs use it: edge cases,
 * ownership, threads and fork. Run by tests/c_abi.rs against the stand-in
 * proxy, plainly and under valgrind.
 *
 * Usage: abi_test <stand-in endpoint>
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#endif
#include <vpoller.h>

#include "check.h"

static const char *endpoint;

static int starts_with(const char *text, const char *prefix)
{
    return text != NULL && strncmp(text, prefix, strlen(prefix)) == 0;
}

/* Runs msg, checks the status, returns 1 when the reply starts with `prefix`. */
static int run_expect(vpoller_client *client, const char *msg, int status, const char *prefix)
{
    char *reply = NULL;
    int got = vpoller_try_run(client, msg, &reply);
    int ok = got == status && starts_with(reply, prefix);
    if (!ok)
        fprintf(stderr, "  %s -> status %d (%s), reply %s\n", msg, got, vpoller_status_str(got),
                reply ? reply : "(null)");
    vpoller_free_string(reply);
    return ok;
}

static void test_statics(void)
{
    const char *version = vpoller_version();
    CHECK(version != NULL && strchr(version, '.') != NULL);
    CHECK(strcmp(vpoller_status_str(VPOLLER_ERR_NO_REPLY), "no reply from vPoller") == 0);
    CHECK(strcmp(vpoller_status_str(12345), "unknown status") == 0);
    CHECK(vpoller_reply_success(NULL) == -1);
    CHECK(vpoller_reply_success("{\"success\": 0, \"msg\": \"ok\"}") == 0);
    CHECK(vpoller_reply_success("poweredOn") == -1);
    /* The client's defaults, as py-vpoller's (not the agent's task timeout). */
    CHECK(VPOLLER_DEFAULT_RETRIES == 3 && VPOLLER_DEFAULT_TIMEOUT_MS == 3000);
    CHECK(VPOLLER_AGENT_DEFAULT_TIMEOUT_MS == 60000 && VPOLLER_AGENT_MAX_TIMEOUT_MS == 3600000);
    vpoller_free_string(NULL);
    vpoller_client_free(NULL);
}

static void test_client_new(void)
{
    CHECK(vpoller_client_new(NULL, 3, 3000) == NULL);
    CHECK(vpoller_last_status() == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vpoller_last_error(), "endpoint is NULL") != NULL);
    CHECK(vpoller_client_new("bogus://x", 3, 3000) == NULL);
    CHECK(vpoller_last_status() == VPOLLER_ERR_ZMQ);
    CHECK(vpoller_client_new("tcp://\xff:1", 3, 3000) == NULL);
    CHECK(vpoller_last_status() == VPOLLER_ERR_INVALID_ARGUMENT);

    vpoller_client *client = vpoller_client_new(endpoint, -1, 0);
    CHECK(client != NULL);
    CHECK(vpoller_last_status() == VPOLLER_OK);
    CHECK(strcmp(vpoller_last_error(), "") == 0);
    vpoller_client_free(client);
}

static void test_bad_messages(vpoller_client *client)
{
    static const char *const bad[] = {
        "", "vm.discover", "{\"method\": ", "[1, 2]", "\"x\"", "3", "null", "{\"a\": \"\xff\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(run_expect(client, bad[i], VPOLLER_ERR_INVALID_ARGUMENT,
                         "{\"success\": 1, \"msg\": \"Invalid argument: "));
    }
    char *reply = vpoller_run(client, NULL);
    CHECK(reply != NULL && strcmp(reply, "{\"success\": 1, \"msg\": \"Invalid argument: msg is NULL\"}") == 0);
    CHECK(vpoller_last_status() == VPOLLER_ERR_INVALID_ARGUMENT);
    vpoller_free_string(reply);

    reply = vpoller_run(NULL, "{\"method\": \"about\"}");
    CHECK(reply != NULL && strstr(reply, "client is NULL") != NULL);
    vpoller_free_string(reply);

    CHECK(vpoller_try_run(client, "{\"method\": \"about\"}", NULL) == VPOLLER_ERR_INVALID_ARGUMENT);
}

static void test_replies(vpoller_client *client)
{
    char *reply = vpoller_run(client, "{\"method\": \"vm.discover\", \"hostname\": \"vc01\"}");
    CHECK(vpoller_last_status() == VPOLLER_OK);
    CHECK(strcmp(vpoller_last_error(), "") == 0);
    CHECK(reply != NULL && vpoller_reply_success(reply) == 0);
    CHECK(reply != NULL && strstr(reply, "\"method\": \"vm.discover\"") != NULL);
    vpoller_free_string(reply);

    /* Non-ASCII text passes through unchanged. */
    reply = vpoller_run(client, "{\"method\": \"vm.get\", \"name\": \"Z\xc3\xbcrich \xe8\x99\x9a\"}");
    CHECK(reply != NULL && strstr(reply, "\"name\": \"Z\xc3\xbcrich \xe8\x99\x9a\"") != NULL);
    vpoller_free_string(reply);

    /* The cclient helper's trailing NUL is removed: the string ends in the JSON. */
    reply = vpoller_run(client, "{\"method\": \"about\", \"stand_in\": {\"nul\": true}}");
    CHECK(reply != NULL && strlen(reply) > 3 && strcmp(reply + strlen(reply) - 3, "}]}") == 0);
    vpoller_free_string(reply);

    CHECK(run_expect(client, "{\"stand_in\": {\"reply_hex\": \"7b007d\"}}", VPOLLER_ERR_INVALID_REPLY,
                     "{\"success\": 1, \"msg\": \"Invalid reply from vPoller: the reply holds a NUL"));
    CHECK(run_expect(client, "{\"stand_in\": {\"reply_hex\": \"7bff7d\"}}", VPOLLER_ERR_INVALID_REPLY,
                     "{\"success\": 1, \"msg\": \"Invalid reply from vPoller: the reply is not valid UTF-8"));

    /* 16 MiB in one reply. */
    reply = vpoller_run(client, "{\"method\": \"vm.discover\", \"stand_in\": {\"reply_size\": 16777216}}");
    CHECK(reply != NULL && strlen(reply) == 16777216);
    CHECK(vpoller_reply_success(reply) == 0);
    vpoller_free_string(reply);
}

static void test_no_reply(void)
{
    /* Attempts of a second: the dropped request costs 2 s, and the answered
       one afterwards has time to spare under valgrind on a busy machine. */
    vpoller_client *client = vpoller_client_new(endpoint, 2, 1000);
    CHECK(run_expect(client, "{\"method\": \"about\", \"stand_in\": {\"drop\": true}}", VPOLLER_ERR_NO_REPLY,
                     "{\"success\": 1, \"msg\": \"Did not receive response, aborting...\"}"));
    CHECK(strcmp(vpoller_last_error(), "Did not receive response, aborting...") == 0);
    /* The same client works afterwards. */
    CHECK(run_expect(client, "{\"method\": \"about\"}", VPOLLER_OK, "{\"success\": 0"));
    vpoller_client_free(client);
}

struct thread_job {
    vpoller_client *client;
    int id;
    int mismatches;
};

static void *thread_main(void *argument)
{
    struct thread_job *job = argument;
    for (int call = 0; call < 20; call++) {
        char msg[128], expected[64];
        snprintf(msg, sizeof msg, "{\"method\": \"vm.get\", \"name\": \"t%d-c%d\"}", job->id, call);
        snprintf(expected, sizeof expected, "\"name\": \"t%d-c%d\"", job->id, call);
        char *reply = NULL;
        if (vpoller_try_run(job->client, msg, &reply) != VPOLLER_OK || strstr(reply, expected) == NULL)
            job->mismatches++;
        vpoller_free_string(reply);
    }
    return NULL;
}

static void test_threads(vpoller_client *client)
{
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    struct thread_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct thread_job){client, i, 0};
        CHECK(pthread_create(&threads[i], NULL, thread_main, &jobs[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(jobs[i].mismatches == 0);
    }
}

#ifndef _WIN32 /* fork: POSIX only */
static void test_fork(vpoller_client *client)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char *reply = vpoller_run(client, "{\"method\": \"about\", \"who\": \"child\"}");
        int ok = vpoller_last_status() == VPOLLER_OK && strstr(reply, "\"who\": \"child\"") != NULL;
        vpoller_free_string(reply);
        _exit(ok ? 0 : 1);
    }
    CHECK(run_expect(client, "{\"method\": \"about\", \"who\": \"parent\"}", VPOLLER_OK, "{\"success\": 0"));
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(run_expect(client, "{\"method\": \"about\", \"who\": \"parent\"}", VPOLLER_OK, "{\"success\": 0"));
}
#endif

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: abi_test <endpoint>\n");
        return 64;
    }
    endpoint = argv[1];

    test_statics();
    test_client_new();
    vpoller_client *client = vpoller_client_new(endpoint, 3, 10000);
    CHECK(client != NULL);
    if (client != NULL) {
        test_bad_messages(client);
        test_replies(client);
        test_threads(client);
#ifndef _WIN32
        test_fork(client);
#endif
        vpoller_client_free(client);
    }
    test_no_reply();

    return report();
}
