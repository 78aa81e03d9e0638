/*
 * vpoller.so: a Zabbix loadable module (module API version 2) over
 * libvpoller. It declares the few Zabbix structures it needs, in the layout
 * Zabbix keeps stable by only appending fields (6.0, 7.x), and calls no
 * Zabbix function, so it loads into zabbix_agentd, zabbix_proxy and
 * zabbix_server without a Zabbix source tree, and survives Zabbix upgrades.
 *
 * Item keys (py-vpoller's module's, plus discovery):
 *   vpoller[method, hostname, name, properties, key, username, password,
 *           counter-name, instance, perf-interval]
 *   vpoller.discovery[method, hostname, ...]    low-level discovery JSON
 *   vpoller.echo[anything]                      the parameters, for checks
 *
 * Configuration: /etc/zabbix/vpoller_module.conf (or the file named by the
 * VPOLLER_MODULE_CONF environment variable), py-vpoller's keys:
 *   vPollerProxy = tcp://localhost:10123
 *   vPollerTimeout = 10000       (milliseconds per attempt, 1000-60000)
 *   vPollerRetries = 1           (attempts, 1-100)
 * and libvpoller's own:
 *   vPollerLocal = /var/lib/vconnector/vconnector.db
 *     answer items in the agent's processes, straight against the vSphere
 *     hosts of that registry (vpoller-worker hosts add ...): no proxy or
 *     worker needed; vPollerProxy and vPollerRetries are then unused.
 *   vPollerMirror = on           (local mode: a live mirror of the properties
 *                                 asked for; off: every item asks vCenter, as
 *                                 py-vpoller does; also yes/no, true/false, 1/0)
 *   vPollerMirrorIdle = 900      (local mode: seconds a mirrored property no
 *                                 item asks for stays, 1-604800)
 *   vPollerMirrorMaxValues = 1000000  (local mode: property values one host's
 *                                 mirror holds, 1-100000000)
 *   vPollerCurveServerKey = <40 characters of Z85>
 *     the vPoller Proxy frontend's CURVE public key: requests travel
 *     encrypted and authenticated (ZeroMQ's CURVE), to that proxy only.
 *   vPollerCurveSecretKeyFile = /etc/zabbix/vpoller_client.key
 *     the module's own CURVE secret key, in a file that `vpoller-proxy keygen
 *     FILE` wrote, readable by the Zabbix user only (for a proxy that lists
 *     the client keys it allows; without one the module makes a fresh key
 *     pair in each process).
 *   vPollerCurveSecretKey = <Z85>    the same key given in this file instead
 *   vPollerCurvePublicKey = <Z85>    the module's public key, checked against
 *                                    the secret key (not needed)
 *   (Z85 has '#': in these keys' values only a '#' after white space starts
 *   a comment.)
 * A bad file is reported on stderr (the agent's log) and the defaults used,
 * except for the CURVE keys: a key that is not one, a key file that cannot
 * be used, or client keys without vPollerCurveServerKey make the module
 * fail to load, rather than send the requests unencrypted or with keys
 * other than those meant.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <vpoller.h>

/* ---- The Zabbix module interface (API version 2), declared here: only the
 * leading fields the module uses; later Zabbix releases append more. ---- */

#define ZBX_MODULE_API_VERSION 2
#define ZBX_MODULE_OK 0
#define ZBX_MODULE_FAIL -1
#define SYSINFO_RET_OK 0
#define SYSINFO_RET_FAIL 1
#define CF_HAVEPARAMS 1

#define AR_UINT64 0x01
#define AR_DOUBLE 0x02
#define AR_STRING 0x04
#define AR_TEXT 0x08
#define AR_MESSAGE 0x20

typedef struct {
    char *key;
    int nparam;
    char **params;
    uint64_t lastlogsize;
    int mtime;
} AGENT_REQUEST;

typedef struct {
    uint64_t lastlogsize;
    uint64_t ui64;
    double dbl;
    char *str;
    char *text;
    char *msg;
    void **logs;
    int type;
    int mtime;
} AGENT_RESULT;

typedef struct {
    char *key;
    unsigned flags;
    int (*function)(AGENT_REQUEST *request, AGENT_RESULT *result);
    char *test_param;
} ZBX_METRIC;

/* ---- Configuration. ---- */

#define DEFAULT_CONF "/etc/zabbix/vpoller_module.conf"

static char proxy[1024] = "tcp://localhost:10123";
static char local_db[1024] = "";
static int timeout_ms = 10000;
static int retries = 1;
static int item_timeout_s = 0;
/* The local mode's mirror settings, as vpoller_local_set_option text; "" is
 * the library's default. */
static char mirror[2] = "";
static char mirror_idle_s[16] = "";
static char mirror_max_values[16] = "";
/* The CURVE settings, as vpoller_client_set_option text; "" is unset. */
static char curve_server_key[64] = "";
static char curve_public_key[64] = "";
static char curve_secret_key[64] = "";
static char curve_secret_key_file[1024] = "";
/* Set when a CURVE setting of the file is unusable: the module does not load. */
static int curve_refused = 0;

static void warn(const char *what, const char *detail)
{
    fprintf(stderr, "vpoller module: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

/* Lower-cases text in place. */
static char *lower(char *text)
{
    for (char *c = text; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return text;
}

/* A whole number from 1 to most, as its decimal text in out (16 bytes);
 * 0 when value is not one. */
static int count_setting(const char *value, long most, char *out)
{
    char *end = NULL;
    long parsed = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || parsed < 1 || parsed > most)
        return 0;
    snprintf(out, 16, "%ld", parsed);
    return 1;
}

static char *trim(char *text)
{
    while (isspace((unsigned char)*text))
        text++;
    size_t length = strlen(text);
    while (length > 0 && isspace((unsigned char)text[length - 1]))
        text[--length] = '\0';
    return text;
}

static const struct {
    const char *key;
    char *value;
    size_t size;
} curve_keys[] = {
    {"vPollerCurveServerKey", curve_server_key, sizeof curve_server_key},
    {"vPollerCurvePublicKey", curve_public_key, sizeof curve_public_key},
    {"vPollerCurveSecretKey", curve_secret_key, sizeof curve_secret_key},
    {"vPollerCurveSecretKeyFile", curve_secret_key_file, sizeof curve_secret_key_file},
};

/* Whether the text from start to end, white space trimmed, names a CURVE setting. */
static int is_curve_key(const char *start, const char *end)
{
    while (start < end && isspace((unsigned char)*start))
        start++;
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    for (size_t i = 0; i < sizeof curve_keys / sizeof *curve_keys; i++)
        if (strlen(curve_keys[i].key) == (size_t)(end - start) &&
            strncmp(start, curve_keys[i].key, (size_t)(end - start)) == 0)
            return 1;
    return 0;
}

/* Takes key = value when key is a CURVE setting (1), or says it is not one
 * (0). The key itself is checked by the library in zbx_module_init. */
static int curve_setting(const char *key, const char *value, const char *where)
{
    for (size_t i = 0; i < sizeof curve_keys / sizeof *curve_keys; i++) {
        if (strcmp(key, curve_keys[i].key) != 0)
            continue;
        if (strlen(value) >= curve_keys[i].size) {
            char problem[128];
            snprintf(problem, sizeof problem, "%s is too long, the module is not loaded", key);
            warn(problem, where);
            curve_refused = 1;
        } else {
            strcpy(curve_keys[i].value, value);
        }
        return 1;
    }
    return 0;
}

/* Applies the CURVE settings to a new client; 0 (with the reason in
 * vpoller_last_error()) and the setting's name in *refused when the library
 * refuses one. The secret key goes first: the public key is checked against it. */
static int apply_curve(vpoller_client *target, const char **refused)
{
    const struct {
        int option;
        const char *value;
        const char *key;
    } settings[] = {
        {VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE, curve_secret_key_file, "vPollerCurveSecretKeyFile"},
        {VPOLLER_CLIENT_CURVE_SECRET_KEY, curve_secret_key, "vPollerCurveSecretKey"},
        {VPOLLER_CLIENT_CURVE_PUBLIC_KEY, curve_public_key, "vPollerCurvePublicKey"},
        {VPOLLER_CLIENT_CURVE_SERVER_KEY, curve_server_key, "vPollerCurveServerKey"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) {
        if (settings[i].value[0] != '\0' &&
            vpoller_client_set_option(target, settings[i].option, settings[i].value) != VPOLLER_OK) {
            *refused = settings[i].key;
            return 0;
        }
    }
    return 1;
}

/* Whether the CURVE settings can be used, each problem reported: checked
 * once, when the module loads, on a client that is then released (each
 * process that answers items makes its own). */
static int curve_usable(void)
{
    if (curve_refused)
        return 0;
    int secret_given = curve_secret_key[0] != '\0' || curve_secret_key_file[0] != '\0';
    if (curve_server_key[0] == '\0') {
        if (secret_given || curve_public_key[0] != '\0') {
            warn("the module's CURVE keys need vPollerCurveServerKey (without it nothing is encrypted), "
                 "the module is not loaded", NULL);
            return 0;
        }
        return 1;
    }
    if (curve_secret_key[0] != '\0' && curve_secret_key_file[0] != '\0') {
        warn("vPollerCurveSecretKey and vPollerCurveSecretKeyFile: give one of them, the module is not loaded",
             NULL);
        return 0;
    }
    if (curve_public_key[0] != '\0' && !secret_given) {
        warn("vPollerCurvePublicKey needs vPollerCurveSecretKey or vPollerCurveSecretKeyFile, "
             "the module is not loaded", NULL);
        return 0;
    }
    if (local_db[0] != '\0')
        warn("the CURVE keys are unused in local mode (vPollerLocal)", NULL);
    /* Any tcp:// endpoint will do (nothing is sent); vPollerProxy's own
     * problems are reported when an item is asked for, as without CURVE. */
    vpoller_client *check = vpoller_client_new("tcp://127.0.0.1:1", 1, 1000);
    if (check == NULL) {
        warn("cannot check the CURVE keys, the module is not loaded", vpoller_last_error());
        return 0;
    }
    const char *refused = NULL;
    int usable = apply_curve(check, &refused);
    if (!usable) {
        char problem[128];
        snprintf(problem, sizeof problem, "bad %s, the module is not loaded", refused);
        warn(problem, vpoller_last_error());
    }
    vpoller_client_free(check);
    return usable;
}

/* Reads KEY = VALUE lines; '#' starts a comment. Unknown keys and bad
 * values are reported and ignored. */
static void load_config(const char *path)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return; /* no file: the defaults, as py-vpoller's module */
    char line[2048];
    int number = 0;
    while (fgets(line, sizeof line, file) != NULL) {
        number++;
        char *hash = strchr(line, '#');
        char *assign = strchr(line, '=');
        if (hash != NULL && assign != NULL && hash > assign && is_curve_key(line, assign)) {
            /* Z85 keys hold '#': in their values only one after white space starts a comment. */
            while (hash != NULL && !isspace((unsigned char)hash[-1]))
                hash = strchr(hash + 1, '#');
        }
        if (hash != NULL)
            *hash = '\0';
        char *text = trim(line);
        if (*text == '\0')
            continue;
        char *equals = strchr(text, '=');
        char where[64];
        snprintf(where, sizeof where, "%s line %d", path, number);
        if (equals == NULL) {
            warn("not KEY = VALUE, ignored", where);
            continue;
        }
        *equals = '\0';
        char *key = trim(text), *value = trim(equals + 1), *end = NULL;
        if (strcmp(key, "vPollerProxy") == 0) {
            if (*value == '\0' || strlen(value) >= sizeof proxy)
                warn("bad vPollerProxy, the default is used", where);
            else
                strcpy(proxy, value);
        } else if (strcmp(key, "vPollerLocal") == 0) {
            if (strlen(value) >= sizeof local_db)
                warn("vPollerLocal is too long, ignored", where);
            else
                strcpy(local_db, value);
        } else if (strcmp(key, "vPollerTimeout") == 0) {
            long parsed = strtol(value, &end, 10);
            if (*value == '\0' || *end != '\0' || parsed < 1000 || parsed > 60000)
                warn("vPollerTimeout must be 1000 to 60000 (ms), the default is used", where);
            else
                timeout_ms = (int)parsed;
        } else if (strcmp(key, "vPollerRetries") == 0) {
            long parsed = strtol(value, &end, 10);
            if (*value == '\0' || *end != '\0' || parsed < 1 || parsed > 100)
                warn("vPollerRetries must be 1 to 100, the default is used", where);
            else
                retries = (int)parsed;
        } else if (strcmp(key, "vPollerMirror") == 0) {
            lower(value);
            if (strcmp(value, "on") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 ||
                strcmp(value, "1") == 0)
                strcpy(mirror, "1");
            else if (strcmp(value, "off") == 0 || strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
                     strcmp(value, "0") == 0)
                strcpy(mirror, "0");
            else
                warn("vPollerMirror must be on or off, the default (on) is used", where);
        } else if (strcmp(key, "vPollerMirrorIdle") == 0) {
            if (!count_setting(value, VPOLLER_AGENT_MAX_MIRROR_IDLE_S, mirror_idle_s))
                warn("vPollerMirrorIdle must be 1 to 604800 (seconds), the default is used", where);
        } else if (strcmp(key, "vPollerMirrorMaxValues") == 0) {
            if (!count_setting(value, VPOLLER_AGENT_MAX_MIRROR_MAX_VALUES, mirror_max_values))
                warn("vPollerMirrorMaxValues must be 1 to 100000000, the default is used", where);
        } else if (curve_setting(key, value, where)) {
            /* taken, or refused (curve_refused) */
        } else {
            warn("unknown key, ignored", where);
        }
    }
    fclose(file);
}

/* ---- The client, made lazily in each process that answers items. ---- */

static vpoller_client *client;
static pid_t client_pid;

static vpoller_client *get_client(void)
{
    pid_t pid = getpid();
    if (client != NULL && client_pid == pid)
        return client;
    /* A client inherited from the parent is left alone (libvpoller drops
     * what it holds in a forked child by itself). */
    int attempt_ms = timeout_ms;
    if (item_timeout_s > 0 && attempt_ms * retries > item_timeout_s * 1000)
        attempt_ms = item_timeout_s * 1000 / retries; /* all attempts within the item timeout */
    if (attempt_ms < 1)
        attempt_ms = 1;
    client = vpoller_client_new(proxy, retries, attempt_ms);
    client_pid = pid;
    const char *refused = NULL;
    if (client != NULL && !apply_curve(client, &refused)) {
        /* Checked when the module loaded; a key file changed since, say. The
         * reason is in vpoller_last_error() for the item; the next item tries anew. */
        vpoller_client_free(client);
        client = NULL;
    }
    return client;
}

/* The local worker, in local mode, also made in each process. */
static vpoller_local *local;
static pid_t local_pid;

static vpoller_local *get_local(void)
{
    pid_t pid = getpid();
    if (local != NULL && local_pid == pid)
        return local;
    int task_ms = timeout_ms;
    if (item_timeout_s > 0 && task_ms > item_timeout_s * 1000)
        task_ms = item_timeout_s * 1000;
    local = vpoller_local_new(local_db, task_ms);
    local_pid = pid;
    const struct {
        int option;
        const char *value;
    } settings[] = {
        {VPOLLER_AGENT_MIRROR, mirror},
        {VPOLLER_AGENT_MIRROR_IDLE_S, mirror_idle_s},
        {VPOLLER_AGENT_MIRROR_MAX_VALUES, mirror_max_values},
    };
    for (size_t i = 0; local != NULL && i < sizeof settings / sizeof *settings; i++)
        if (settings[i].value[0] != '\0' &&
            vpoller_local_set_option(local, settings[i].option, settings[i].value) != VPOLLER_OK)
            warn("a mirror setting was refused, the default is used", vpoller_last_error());
    return local;
}

/* The reply to msg: from the local worker, or the proxy. NULL when neither
 * can be made (the reason in vpoller_last_error()). */
static char *send_request(const char *msg)
{
    if (local_db[0] != '\0') {
        vpoller_local *worker = get_local();
        return worker != NULL ? vpoller_local_run(worker, msg) : NULL;
    }
    vpoller_client *connection = get_client();
    if (connection == NULL)
        return NULL;
    char *reply = NULL;
    vpoller_try_run(connection, msg, &reply);
    return reply;
}

/* ---- Results. ---- */

static int fail(AGENT_RESULT *result, const char *message)
{
    result->msg = strdup(message != NULL ? message : "vpoller: unknown error");
    result->type |= AR_MESSAGE;
    return SYSINFO_RET_FAIL;
}

static int ask(AGENT_REQUEST *request, AGENT_RESULT *result, int discovery)
{
    char *msg = vpoller_zabbix_request(request->nparam, (const char *const *)request->params);
    if (msg == NULL)
        return fail(result, vpoller_last_error());
    char *reply = send_request(msg);
    if (reply == NULL) {
        vpoller_free_string(msg);
        return fail(result, vpoller_last_error());
    }
    char *text = NULL;
    int kind = vpoller_zabbix_value(msg, reply, discovery, &text);
    vpoller_free_string(msg);
    vpoller_free_string(reply);
    int status = SYSINFO_RET_OK;
    switch (kind) {
    case VPOLLER_ZABBIX_UINT64:
        result->ui64 = strtoull(text, NULL, 10);
        result->type |= AR_UINT64;
        break;
    case VPOLLER_ZABBIX_DOUBLE:
        result->dbl = strtod(text, NULL);
        result->type |= AR_DOUBLE;
        break;
    case VPOLLER_ZABBIX_TEXT:
        result->text = strdup(text);
        result->type |= AR_TEXT;
        break;
    default:
        status = fail(result, text);
    }
    vpoller_free_string(text);
    return status;
}

static int item_vpoller(AGENT_REQUEST *request, AGENT_RESULT *result)
{
    return ask(request, result, 0);
}

static int item_discovery(AGENT_REQUEST *request, AGENT_RESULT *result)
{
    return ask(request, result, 1);
}

static int item_echo(AGENT_REQUEST *request, AGENT_RESULT *result)
{
    size_t length = 1;
    for (int i = 0; i < request->nparam; i++)
        length += strlen(request->params[i] ? request->params[i] : "") + 1;
    char *text = malloc(length);
    if (text == NULL)
        return fail(result, "vpoller: out of memory");
    text[0] = '\0';
    for (int i = 0; i < request->nparam; i++) {
        if (i > 0)
            strcat(text, ",");
        strcat(text, request->params[i] ? request->params[i] : "");
    }
    result->text = text;
    result->type |= AR_TEXT;
    return SYSINFO_RET_OK;
}

/* ---- The module's exports. ---- */

static ZBX_METRIC items[] = {
    {"vpoller", CF_HAVEPARAMS, item_vpoller, "about,vc01.example.org,,fullName"},
    {"vpoller.discovery", CF_HAVEPARAMS, item_discovery, "vm.discover,vc01.example.org"},
    {"vpoller.echo", CF_HAVEPARAMS, item_echo, "hello"},
    {NULL, 0, NULL, NULL},
};

int zbx_module_api_version(void)
{
    return ZBX_MODULE_API_VERSION;
}

int zbx_module_init(void)
{
    const char *path = getenv("VPOLLER_MODULE_CONF");
    load_config(path != NULL && *path != '\0' ? path : DEFAULT_CONF);
    /* Never fail but for the CURVE keys (failing stops the whole daemon):
     * without them the requests would go unencrypted, or to any server. */
    if (!curve_usable())
        return ZBX_MODULE_FAIL;
    return ZBX_MODULE_OK;
}

int zbx_module_uninit(void)
{
    if (client != NULL && client_pid == getpid())
        vpoller_client_free(client);
    client = NULL;
    if (local != NULL && local_pid == getpid())
        vpoller_local_free(local);
    local = NULL;
    return ZBX_MODULE_OK;
}

void zbx_module_item_timeout(int seconds)
{
    item_timeout_s = seconds;
}

ZBX_METRIC *zbx_module_item_list(void)
{
    return items;
}
