/*
 * vpoller-cclient: send one task request to vPoller and print the reply, for
 * monitoring systems that run a command per item (Zabbix external checks,
 * Nagios plugins). The options are those of py-vpoller's C client; the message
 * is proper JSON (every value escaped) and holds only the fields given.
 *
 * Exit status: 0 when vPoller replied with "success": 0 (or, through a helper,
 * with a reply that is not a vPoller result object), 1 when it replied with
 * another "success", 2 when no reply came after all attempts, 3 for other
 * errors (the message was refused, the reply was unusable), 64 for usage errors
 * (a CURVE key that is not one included).
 */
#define _POSIX_C_SOURCE 200809L /* getopt */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vpoller.h>

enum { EXIT_REPLY_FAILED = 1, EXIT_NO_REPLY = 2, EXIT_ERROR = 3, EXIT_USAGE = 64 };

static const char usage_text[] =
    "Usage: vpoller-cclient -m method -V host [options]\n"
    "\n"
    "Sends one task request to a vPoller Proxy and prints the reply.\n"
    "\n"
    "Options:\n"
    "  -m method        task method, e.g. vm.get, vm.discover, about (required)\n"
    "  -V host          vSphere host (vCenter or ESXi) known to the worker (required)\n"
    "  -n name          object name (for datastores the datastore URL)\n"
    "  -p properties    comma-separated property paths, e.g. name,runtime.powerState\n"
    "  -k key           key for the method, e.g. a guest process or disk\n"
    "  -c counter       performance counter name (sent as \"counter-name\")\n"
    "  -i instance      performance counter instance\n"
    "  -s max-sample    number of performance samples\n"
    "  -T interval      historical performance interval name\n"
    "  -U username      guest user name\n"
    "  -P password      guest password\n"
    "  -H helper        helper to run in the worker, e.g. vpoller.helpers.zabbix\n"
    "  -r retries       attempts in all (default 3)\n"
    "  -t timeout       milliseconds each attempt waits (default 3000)\n"
    "  -e endpoint      vPoller Proxy endpoint (default tcp://localhost:10123)\n"
    "  -h               show this help\n"
    "\n"
    "CURVE (encrypted, authenticated requests; keys are 40 characters of Z85):\n"
    "  --curve-server-key KEY       the proxy's public key (its frontend's)\n"
    "  --curve-secret-key-file FILE the client's secret key, from a file that\n"
    "                               `vpoller-proxy keygen FILE` wrote\n"
    "  --curve-secret-key KEY       the client's secret key (seen by other local\n"
    "                               users in the process list: prefer the file)\n"
    "  --curve-public-key KEY       the client's public key (checked against the\n"
    "                               secret key; not needed)\n"
    "  Without a secret key the client makes a fresh key pair, which a proxy\n"
    "  that lists the client keys it allows refuses.\n"
    "\n"
    "Exit status: 0 success, 1 vPoller reported a failure, 2 no reply,\n"
    "3 other error, 64 usage error.\n";

static int usage_error(const char *problem)
{
    if (problem != NULL)
        fprintf(stderr, "vpoller-cclient: %s\n", problem);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* A growable NUL-terminated text buffer. */
struct text {
    char *data;
    size_t length;
    size_t capacity;
};

static void text_append(struct text *text, const char *bytes, size_t count)
{
    if (text->length + count + 1 > text->capacity) {
        size_t capacity = text->capacity ? text->capacity : 256;
        while (text->length + count + 1 > capacity)
            capacity *= 2;
        char *grown = realloc(text->data, capacity);
        if (grown == NULL) {
            fputs("vpoller-cclient: out of memory\n", stderr);
            exit(EXIT_ERROR);
        }
        text->data = grown;
        text->capacity = capacity;
    }
    memcpy(text->data + text->length, bytes, count);
    text->length += count;
    text->data[text->length] = '\0';
}

static void text_puts(struct text *text, const char *s)
{
    text_append(text, s, strlen(s));
}

/* Appends `count` bytes of `value` as a JSON string literal. Bytes >= 0x80
 * pass through: the library refuses the message if they are not UTF-8. */
static void append_json_string(struct text *text, const char *value, size_t count)
{
    text_puts(text, "\"");
    for (size_t i = 0; i < count; i++) {
        unsigned char c = (unsigned char)value[i];
        char escaped[8];
        switch (c) {
        case '"': text_puts(text, "\\\""); break;
        case '\\': text_puts(text, "\\\\"); break;
        case '\n': text_puts(text, "\\n"); break;
        case '\r': text_puts(text, "\\r"); break;
        case '\t': text_puts(text, "\\t"); break;
        case '\b': text_puts(text, "\\b"); break;
        case '\f': text_puts(text, "\\f"); break;
        default:
            if (c < 0x20) {
                snprintf(escaped, sizeof escaped, "\\u%04x", c);
                text_puts(text, escaped);
            } else {
                text_append(text, (const char *)&value[i], 1);
            }
        }
    }
    text_puts(text, "\"");
}

/* Appends `, "key": "value"` (without the comma for the first field). */
static void append_field(struct text *text, const char *key, const char *value)
{
    if (value == NULL)
        return;
    text_puts(text, text->length > 1 ? ", " : "");
    append_json_string(text, key, strlen(key));
    text_puts(text, ": ");
    append_json_string(text, value, strlen(value));
}

/* Appends `"properties": ["a", "b"]` from "a,b", split like Python's str.split(','). */
static void append_properties(struct text *text, const char *properties)
{
    if (properties == NULL)
        return;
    text_puts(text, text->length > 1 ? ", " : "");
    text_puts(text, "\"properties\": [");
    const char *start = properties;
    for (;;) {
        const char *comma = strchr(start, ',');
        size_t count = comma ? (size_t)(comma - start) : strlen(start);
        append_json_string(text, start, count);
        if (comma == NULL)
            break;
        text_puts(text, ", ");
        start = comma + 1;
    }
    text_puts(text, "]");
}

/* Parses a whole decimal int option; false when it is not one. */
static int parse_int(const char *value, int *out)
{
    char *end = NULL;
    errno = 0;
    long parsed = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || parsed < INT_MIN || parsed > INT_MAX)
        return 0;
    *out = (int)parsed;
    return 1;
}

/* The long options, each a CURVE setting of the client. */
enum { OPT_CURVE_SERVER_KEY = 256, OPT_CURVE_PUBLIC_KEY, OPT_CURVE_SECRET_KEY, OPT_CURVE_SECRET_KEY_FILE };

static const struct option long_options[] = {
    {"curve-server-key", required_argument, NULL, OPT_CURVE_SERVER_KEY},
    {"curve-public-key", required_argument, NULL, OPT_CURVE_PUBLIC_KEY},
    {"curve-secret-key", required_argument, NULL, OPT_CURVE_SECRET_KEY},
    {"curve-secret-key-file", required_argument, NULL, OPT_CURVE_SECRET_KEY_FILE},
    {NULL, 0, NULL, 0},
};

/* The name of the long option whose getopt value is `value`; NULL for a short one. */
static const char *long_name(int value)
{
    for (const struct option *option = long_options; option->name != NULL; option++)
        if (option->val == value)
            return option->name;
    return NULL;
}

/* The libvpoller option each long option sets, in the order they are applied
 * (the secret key before the public key, which is checked against it). */
enum { CURVE_FILE, CURVE_SECRET, CURVE_PUBLIC, CURVE_SERVER, CURVE_SETTINGS };
static const struct {
    int value;
    int option;
} curve_settings[CURVE_SETTINGS] = {
    [CURVE_FILE] = {OPT_CURVE_SECRET_KEY_FILE, VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE},
    [CURVE_SECRET] = {OPT_CURVE_SECRET_KEY, VPOLLER_CLIENT_CURVE_SECRET_KEY},
    [CURVE_PUBLIC] = {OPT_CURVE_PUBLIC_KEY, VPOLLER_CLIENT_CURVE_PUBLIC_KEY},
    [CURVE_SERVER] = {OPT_CURVE_SERVER_KEY, VPOLLER_CLIENT_CURVE_SERVER_KEY},
};

int main(int argc, char **argv)
{
    const char *method = NULL, *host = NULL, *name = NULL, *properties = NULL, *key = NULL;
    const char *counter = NULL, *instance = NULL, *max_sample = NULL, *interval = NULL;
    const char *username = NULL, *password = NULL, *helper = NULL;
    const char *endpoint = "tcp://localhost:10123";
    int retries = 3, timeout_ms = 3000;
    const char *curve[CURVE_SETTINGS] = {NULL};

    int option;
    opterr = 0;
    /* '+': options end at the first other argument, as POSIX getopt does. */
    while ((option = getopt_long(argc, argv, "+:m:V:n:p:k:c:i:s:T:U:P:H:r:t:e:h", long_options, NULL)) != -1) {
        switch (option) {
        case OPT_CURVE_SERVER_KEY:
        case OPT_CURVE_PUBLIC_KEY:
        case OPT_CURVE_SECRET_KEY:
        case OPT_CURVE_SECRET_KEY_FILE:
            if (*optarg == '\0') { /* an unset variable, most likely: not "no CURVE" */
                char problem[64];
                snprintf(problem, sizeof problem, "option --%s needs a value, not \"\"", long_name(option));
                return usage_error(problem);
            }
            for (size_t i = 0; i < CURVE_SETTINGS; i++)
                if (curve_settings[i].value == option)
                    curve[i] = optarg;
            break;
        case 'm': method = optarg; break;
        case 'V': host = optarg; break;
        case 'n': name = optarg; break;
        case 'p': properties = optarg; break;
        case 'k': key = optarg; break;
        case 'c': counter = optarg; break;
        case 'i': instance = optarg; break;
        case 's': max_sample = optarg; break;
        case 'T': interval = optarg; break;
        case 'U': username = optarg; break;
        case 'P': password = optarg; break;
        case 'H': helper = optarg; break;
        case 'e': endpoint = optarg; break;
        case 'r':
            if (!parse_int(optarg, &retries) || retries < 1)
                return usage_error("-r needs a whole number of attempts, at least 1");
            break;
        case 't':
            if (!parse_int(optarg, &timeout_ms) || timeout_ms < 1)
                return usage_error("-t needs a whole number of milliseconds, at least 1");
            break;
        case 'h': fputs(usage_text, stdout); return 0;
        case ':': {
            char problem[64];
            if (long_name(optopt) != NULL)
                snprintf(problem, sizeof problem, "option --%s needs a value", long_name(optopt));
            else
                snprintf(problem, sizeof problem, "option -%c needs a value", optopt);
            return usage_error(problem);
        }
        default: {
            char problem[128];
            if (optopt == 0) /* a long option that does not exist, as given */
                snprintf(problem, sizeof problem, "unknown option %s", argv[optind - 1]);
            else
                snprintf(problem, sizeof problem, "unknown option -%c", optopt);
            return usage_error(problem);
        }
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument");
    if (method == NULL || host == NULL)
        return usage_error("-m method and -V host are required");
    int secret_given = curve[CURVE_FILE] != NULL || curve[CURVE_SECRET] != NULL;
    if ((secret_given || curve[CURVE_PUBLIC] != NULL) && curve[CURVE_SERVER] == NULL)
        return usage_error("the client's CURVE keys need --curve-server-key (without it nothing is encrypted)");
    if (curve[CURVE_FILE] != NULL && curve[CURVE_SECRET] != NULL)
        return usage_error("--curve-secret-key and --curve-secret-key-file: give one of them");
    if (curve[CURVE_PUBLIC] != NULL && !secret_given)
        return usage_error("--curve-public-key needs --curve-secret-key or --curve-secret-key-file");

    struct text msg = {0};
    text_puts(&msg, "{");
    append_field(&msg, "method", method);
    append_field(&msg, "hostname", host);
    append_field(&msg, "name", name);
    append_properties(&msg, properties);
    append_field(&msg, "key", key);
    append_field(&msg, "username", username);
    append_field(&msg, "password", password);
    append_field(&msg, "counter-name", counter);
    append_field(&msg, "instance", instance);
    append_field(&msg, "perf-interval", interval);
    append_field(&msg, "max-sample", max_sample);
    append_field(&msg, "helper", helper);
    text_puts(&msg, "}");

    vpoller_client *client = vpoller_client_new(endpoint, retries, timeout_ms);
    if (client == NULL) {
        fprintf(stderr, "vpoller-cclient: %s\n", vpoller_last_error());
        free(msg.data);
        return EXIT_ERROR;
    }
    for (size_t i = 0; i < CURVE_SETTINGS; i++) {
        if (curve[i] != NULL && vpoller_client_set_option(client, curve_settings[i].option, curve[i]) != VPOLLER_OK) {
            char problem[1024];
            snprintf(problem, sizeof problem, "--%s: %s", long_name(curve_settings[i].value), vpoller_last_error());
            vpoller_client_free(client);
            free(msg.data);
            return usage_error(problem);
        }
    }

    char *reply = NULL;
    int status = vpoller_try_run(client, msg.data, &reply);
    free(msg.data);
    int exit_code;
    if (reply == NULL) {
        fputs("vpoller-cclient: out of memory\n", stderr);
        exit_code = EXIT_ERROR;
    } else {
        puts(reply);
        if (status == VPOLLER_OK) {
            /* -1: not a vPoller result object (a helper's output), still an answer. */
            int success = vpoller_reply_success(reply);
            exit_code = (success == 0 || success == -1) ? 0 : EXIT_REPLY_FAILED;
        } else {
            fprintf(stderr, "vpoller-cclient: %s\n", vpoller_last_error());
            exit_code = status == VPOLLER_ERR_NO_REPLY ? EXIT_NO_REPLY : EXIT_ERROR;
        }
    }
    vpoller_free_string(reply);
    vpoller_client_free(client);
    return exit_code;
}
