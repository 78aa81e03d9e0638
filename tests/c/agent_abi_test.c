/*
 * Exercises the vSphere agent's C ABI from C: arguments, options, ownership
 * of replies, threads and fork. Run by tests/c_abi.rs against the vSphere
 * simulator, plainly and under valgrind.
 *
 * Usage: agent_abi_test HOST:PORT CA-FILE
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vpoller.h>

#include "check.h"

static const char *host, *ca_file;

/* Runs msg and returns 1 when the status is `status` and the reply starts with `prefix`. */
static int run_expect(vpoller_agent *agent, const char *msg, int status, const char *prefix)
{
    char *reply = vpoller_agent_run(agent, msg);
    int got = vpoller_last_status();
    int ok = reply != NULL && got == status && strncmp(reply, prefix, strlen(prefix)) == 0;
    if (!ok)
        fprintf(stderr, "  %s -> status %d, reply %s\n", msg ? msg : "(null)", got, reply ? reply : "(null)");
    vpoller_free_string(reply);
    return ok;
}

static vpoller_agent *trusted_agent(void)
{
    vpoller_agent *agent = vpoller_agent_new(host, "root", "p4ssw0rd");
    if (agent != NULL && vpoller_agent_set_option(agent, VPOLLER_AGENT_CA_FILE, ca_file) != VPOLLER_OK) {
        vpoller_agent_free(agent);
        return NULL;
    }
    return agent;
}

/* An option counting from 1 to `most`: its default and `most` are taken;
 * 0, one more than `most` and a word are refused with `refusal`. */
static void check_count_option(vpoller_agent *agent, int option, int fallback, int most, const char *refusal)
{
    char text[32];
    snprintf(text, sizeof text, "%d", most);
    CHECK(vpoller_agent_set_option(agent, option, text) == VPOLLER_OK);
    snprintf(text, sizeof text, "%d", fallback);
    CHECK(vpoller_agent_set_option(agent, option, text) == VPOLLER_OK);
    snprintf(text, sizeof text, "%d", most + 1);
    const char *refused[] = {"0", text, "soon"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        CHECK(vpoller_agent_set_option(agent, option, refused[i]) == VPOLLER_ERR_INVALID_ARGUMENT);
        CHECK(strstr(vpoller_last_error(), refusal) != NULL);
    }
}

/* The mirror's options: 1 or 0, and sizes within their bounds. */
static void test_mirror_options(vpoller_agent *agent)
{
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_MIRROR, "0") == VPOLLER_OK);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_MIRROR, "1") == VPOLLER_OK);
    const char *not_switches[] = {"2", "on", "true", "", "-1"};
    for (size_t i = 0; i < sizeof not_switches / sizeof *not_switches; i++) {
        CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_MIRROR, not_switches[i]) ==
              VPOLLER_ERR_INVALID_ARGUMENT);
        CHECK(strstr(vpoller_last_error(), "VPOLLER_AGENT_MIRROR wants 1 (on) or 0 (off)") != NULL);
    }
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_MIRROR, NULL) == VPOLLER_ERR_INVALID_ARGUMENT);

    check_count_option(agent, VPOLLER_AGENT_MIRROR_IDLE_S, VPOLLER_AGENT_DEFAULT_MIRROR_IDLE_S,
                       VPOLLER_AGENT_MAX_MIRROR_IDLE_S,
                       "VPOLLER_AGENT_MIRROR_IDLE_S wants a number of seconds from 1 to 604800");
    check_count_option(agent, VPOLLER_AGENT_MIRROR_MAX_VALUES, VPOLLER_AGENT_DEFAULT_MIRROR_MAX_VALUES,
                       VPOLLER_AGENT_MAX_MIRROR_MAX_VALUES,
                       "VPOLLER_AGENT_MIRROR_MAX_VALUES wants a number of values from 1 to 100000000");
}

static void test_new_and_options(void)
{
    CHECK(vpoller_agent_new(NULL, "u", "p") == NULL);
    CHECK(vpoller_last_status() == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vpoller_last_error(), "host") != NULL);
    CHECK(vpoller_agent_new("h", NULL, "p") == NULL);
    CHECK(vpoller_agent_new("h", "u", NULL) == NULL);
    CHECK(vpoller_agent_new("", "u", "p") == NULL);
    CHECK(vpoller_agent_new("vc01:notaport", "u", "p") == NULL);
    CHECK(vpoller_agent_new("vc\xff", "u", "p") == NULL);
    CHECK(vpoller_last_status() == VPOLLER_ERR_INVALID_ARGUMENT);

    vpoller_agent *agent = vpoller_agent_new("vc01.example.org", "u", "secret-pw");
    CHECK(agent != NULL);
    CHECK(vpoller_agent_set_option(agent, 99, "1") == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_PORT, "port") == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_PORT, "0") == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_PORT, NULL) == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_CA_FILE, "/no/such/ca.pem") ==
          VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vpoller_last_error(), "/no/such/ca.pem") != NULL);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_FINGERPRINT, "12:34") == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_INSECURE, "maybe") == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_TIMEOUT_MS, "-5") == VPOLLER_ERR_INVALID_ARGUMENT);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_PORT, "8443") == VPOLLER_OK);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_TIMEOUT_MS, "5000") == VPOLLER_OK);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_CONNECT_TIMEOUT_MS, "2000") == VPOLLER_OK);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_CACHE_TTL_S, "0") == VPOLLER_OK);
    CHECK(vpoller_agent_set_option(agent, VPOLLER_AGENT_INSECURE, "1") == VPOLLER_OK);
    CHECK(vpoller_agent_set_option(NULL, VPOLLER_AGENT_PORT, "443") == VPOLLER_ERR_INVALID_ARGUMENT);
    test_mirror_options(agent);
    vpoller_agent_free(agent);
    vpoller_agent_free(NULL);

    const char *tasks = vpoller_agent_tasks();
    CHECK(strstr(tasks, "vm.discover") != NULL && strstr(tasks, "perf.interval.info") != NULL);
    int words = 1;
    for (const char *c = tasks; *c; c++)
        words += *c == ' ';
    CHECK(words == 52);
}

static void test_runs(vpoller_agent *agent)
{
    CHECK(vpoller_agent_connect(agent) == VPOLLER_OK);
    CHECK(run_expect(agent, "{\"method\": \"vm.get\", \"name\": \"DC0_H0_VM0\", \"properties\": [\"runtime.powerState\"]}",
                     VPOLLER_OK,
                     "{\"success\": 0, \"msg\": \"Successfully retrieved object properties\", \"result\": "
                     "[{\"name\": \"DC0_H0_VM0\", \"runtime.powerState\": \"poweredOn\"}]}"));
    CHECK(run_expect(agent, "{\"method\": \"vm.get\", \"name\": \"Z\xc3\xbcrich-\xd0\x92\xd0\x9c-\xe8\x99\x9a\xe6\x8b\x9f\xe6\x9c\xba\", \"properties\": [\"name\"]}",
                     VPOLLER_OK, "{\"success\": 0"));
    CHECK(run_expect(agent, "{\"method\": \"vm.get\", \"name\": \"none\", \"properties\": [\"name\"]}", VPOLLER_OK,
                     "{\"success\": 1, \"msg\": \"Cannot find object none\"}"));
    CHECK(run_expect(agent, "not json", VPOLLER_OK, "{\"success\": 1, \"msg\": \"Invalid message received\"}"));
    CHECK(run_expect(agent, "{\"method\": \"nope\"}", VPOLLER_OK,
                     "{\"success\": 1, \"msg\": \"Unknown or missing task/method name\"}"));
    CHECK(run_expect(agent, "{\"method\": \"vm.get\"}", VPOLLER_OK, "{\"success\": 1, \"msg\": \"Invalid task request\"}"));
    CHECK(run_expect(agent, NULL, VPOLLER_ERR_INVALID_ARGUMENT, "{\"success\": 1"));
    CHECK(run_expect(agent, "{\"name\": \"\xff\"}", VPOLLER_ERR_INVALID_ARGUMENT, "{\"success\": 1"));
    CHECK(run_expect(NULL, "{\"method\": \"about\"}", VPOLLER_ERR_INVALID_ARGUMENT, "{\"success\": 1"));
    CHECK(vpoller_agent_connect(NULL) == VPOLLER_ERR_INVALID_ARGUMENT);
}

static void *thread_main(void *argument)
{
    vpoller_agent *agent = argument;
    long failures = 0;
    for (int i = 0; i < 5; i++)
        failures += !run_expect(agent, "{\"method\": \"host.get\", \"name\": \"DC0_H0\", \"properties\": [\"name\"]}",
                                VPOLLER_OK, "{\"success\": 0");
    return (void *)failures;
}

static void test_threads(vpoller_agent *agent)
{
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&threads[i], NULL, thread_main, agent) == 0);
    for (int i = 0; i < 4; i++) {
        void *failures = NULL;
        CHECK(pthread_join(threads[i], &failures) == 0);
        CHECK(failures == NULL);
    }
}

static void test_fork(vpoller_agent *agent)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The child keeps using the agent it inherited, over its own connections. */
        int ok = run_expect(agent, "{\"method\": \"vm.host.get\", \"name\": \"DC0_H0_VM0\"}", VPOLLER_OK,
                            "{\"success\": 0");
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The child did not log the parent's session out. */
    CHECK(run_expect(agent, "{\"method\": \"about\"}", VPOLLER_OK, "{\"msg\": \"Successfully retrieved properties\", \"success\": 0"));
}

static void test_failures(void)
{
    vpoller_agent *untrusted = vpoller_agent_new(host, "root", "p4ssw0rd");
    CHECK(untrusted != NULL);
    CHECK(vpoller_agent_connect(untrusted) == VPOLLER_ERR_VSPHERE);
    CHECK(strstr(vpoller_last_error(), "not trusted") != NULL);
    CHECK(strstr(vpoller_last_error(), "p4ssw0rd") == NULL);
    CHECK(run_expect(untrusted, "{\"method\": \"about\"}", VPOLLER_OK, "{\"success\": 1, \"msg\": \"Task about failed: "));
    vpoller_agent_free(untrusted);

    vpoller_agent *nobody = vpoller_agent_new("127.0.0.1:9", "root", "pw");
    CHECK(nobody != NULL);
    CHECK(vpoller_agent_set_option(nobody, VPOLLER_AGENT_INSECURE, "1") == VPOLLER_OK);
    CHECK(vpoller_agent_connect(nobody) == VPOLLER_ERR_VSPHERE);
    CHECK(strstr(vpoller_last_error(), "cannot reach 127.0.0.1:9") != NULL);
    vpoller_agent_free(nobody);
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "--no-fork") == 0)) {
        fprintf(stderr, "usage: agent_abi_test HOST:PORT CA-FILE [--no-fork]\n");
        return 64;
    }
    int fork_too = argc == 3;
    host = argv[1];
    ca_file = argv[2];

    test_new_and_options();
    vpoller_agent *agent = trusted_agent();
    CHECK(agent != NULL);
    if (agent != NULL) {
        test_runs(agent);
        test_threads(agent);
        if (fork_too)
            test_fork(agent);
        vpoller_agent_free(agent);
    }
    test_failures();

    /* With the mirror off, every task asks the host, as py-vpoller does. */
    vpoller_agent *asking = trusted_agent();
    CHECK(asking != NULL);
    if (asking != NULL) {
        CHECK(vpoller_agent_set_option(asking, VPOLLER_AGENT_MIRROR, "0") == VPOLLER_OK);
        CHECK(run_expect(asking, "{\"method\": \"vm.get\", \"name\": \"DC0_H0_VM0\", \"properties\": [\"runtime.powerState\"]}",
                         VPOLLER_OK, "{\"success\": 0"));
        vpoller_agent_free(asking);
    }

    return report();
}
