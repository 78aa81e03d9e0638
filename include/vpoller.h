/*
 * libvpoller: a client for vPoller, the distributed VMware vSphere poller.
 *
 * Generated from the library's Rust sources by cbindgen; do not edit.
 * Regenerate with `make header`.
 *
 * Strings: every `const char *` argument is a NUL-terminated UTF-8 string that
 * the library only reads during the call. Every `char *` result is owned by the
 * caller and released with vpoller_free_string().
 *
 * Threads: a vpoller_client may be used by many threads at once; the last
 * status and error are per thread.
 *
 * fork(): a child process may keep using a client it inherited; it gets its
 * own ZeroMQ context and sockets and leaves the parent's alone. As with any
 * library that runs threads, fork while another thread is inside a libvpoller
 * call only if the child then calls exec or _exit.
 *
 * Link with `pkg-config --cflags --libs vpoller`.
 */

#ifndef VPOLLER_H
#define VPOLLER_H

#include <stddef.h>

/**
 * The call succeeded. For `vpoller_run` and `vpoller_try_run`: a reply came
 * from vPoller (whatever its own `success` field says).
 */
#define VPOLLER_OK 0

/**
 * No reply from vPoller within any of the attempts; the result is
 * `{"success": 1, "msg": "Did not receive response, aborting..."}`.
 */
#define VPOLLER_ERR_NO_REPLY 1

/**
 * A NULL pointer, text that is not UTF-8, or a message that is not a JSON
 * object. Nothing was sent.
 */
#define VPOLLER_ERR_INVALID_ARGUMENT 2

/**
 * vPoller's reply cannot be returned as a C string (invalid UTF-8, an
 * interior NUL byte, or more than one frame).
 */
#define VPOLLER_ERR_INVALID_REPLY 3

/**
 * ZeroMQ refused an operation (for example an endpoint it cannot parse).
 */
#define VPOLLER_ERR_ZMQ 4

/**
 * A bug inside libvpoller was caught before it could crash the program.
 */
#define VPOLLER_ERR_INTERNAL 5

/**
 * The vSphere host could not be reached, refused the login, sent an
 * untrusted certificate, answered with a fault or not in time (agent calls).
 */
#define VPOLLER_ERR_VSPHERE 6

/**
 * Attempts per request when `vpoller_client_new` is given 0 or less
 * (py-vpoller's default).
 */
#define VPOLLER_DEFAULT_RETRIES 3

/**
 * Milliseconds each attempt waits when `vpoller_client_new` is given 0 or
 * less (py-vpoller's default).
 */
#define VPOLLER_DEFAULT_TIMEOUT_MS 3000

/**
 * The vSphere API's port for an agent unless set ("443").
 */
#define VPOLLER_AGENT_DEFAULT_PORT 443

/**
 * VPOLLER_AGENT_CONNECT_TIMEOUT_MS unless set.
 */
#define VPOLLER_AGENT_DEFAULT_CONNECT_TIMEOUT_MS 10000

/**
 * VPOLLER_AGENT_TIMEOUT_MS unless set.
 */
#define VPOLLER_AGENT_DEFAULT_TIMEOUT_MS 60000

/**
 * VPOLLER_AGENT_CACHE_TTL_S unless set.
 */
#define VPOLLER_AGENT_DEFAULT_CACHE_TTL_S 300

/**
 * The largest VPOLLER_AGENT_TIMEOUT_MS and VPOLLER_AGENT_CONNECT_TIMEOUT_MS
 * accepted (one hour).
 */
#define VPOLLER_AGENT_MAX_TIMEOUT_MS 3600000

/**
 * VPOLLER_AGENT_MIRROR_IDLE_S unless set.
 */
#define VPOLLER_AGENT_DEFAULT_MIRROR_IDLE_S 900

/**
 * The largest VPOLLER_AGENT_MIRROR_IDLE_S accepted (one week).
 */
#define VPOLLER_AGENT_MAX_MIRROR_IDLE_S 604800

/**
 * VPOLLER_AGENT_MIRROR_MAX_VALUES unless set.
 */
#define VPOLLER_AGENT_DEFAULT_MIRROR_MAX_VALUES 1000000

/**
 * The largest VPOLLER_AGENT_MIRROR_MAX_VALUES accepted.
 */
#define VPOLLER_AGENT_MAX_MIRROR_MAX_VALUES 100000000

/**
 * Option for `vpoller_client_set_option`: the vPoller Proxy's CURVE public
 * key, 40 characters of Z85 (as `vpoller-proxy keygen` prints it). Set,
 * requests travel encrypted and authenticated (ZeroMQ's CURVE), and only a
 * proxy holding that key's secret can read or answer them; a proxy that
 * does not speak CURVE, or refuses the client, gives no reply. "" (the
 * default): plain ZMTP, as py-vpoller speaks it.
 */
#define VPOLLER_CLIENT_CURVE_SERVER_KEY 1

/**
 * Option: the client's own CURVE public key (Z85), given with its secret
 * key (VPOLLER_CLIENT_CURVE_SECRET_KEY); it must be that secret key's.
 * Set without the secret key, requests fail with
 * VPOLLER_ERR_INVALID_ARGUMENT until the secret key is set too. Optional:
 * the secret key alone is enough.
 */
#define VPOLLER_CLIENT_CURVE_PUBLIC_KEY 2

/**
 * Option: the client's own CURVE secret key (Z85), for a proxy that lets in
 * only the client keys it lists. Unset, the client makes a fresh key pair
 * when the server key is set (`vpoller_client_curve_public_key` shows its
 * public key).
 */
#define VPOLLER_CLIENT_CURVE_SECRET_KEY 3

/**
 * Option: the path of a file holding the client's CURVE secret key, one
 * line of Z85 as `vpoller-proxy keygen FILE` writes it (a czmq
 * certificate's `secret-key` line is taken too); it sets
 * VPOLLER_CLIENT_CURVE_SECRET_KEY to that key, which then stays out of
 * command lines and configuration files. On Unix a file that its group or
 * others may read is refused (chmod 600). "" unsets the secret key.
 */
#define VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE 4

/**
 * Option for `vpoller_agent_set_option`: the HTTPS port of the vSphere API,
 * as decimal text ("443" unless set, or the port given in the host).
 */
#define VPOLLER_AGENT_PORT 1

/**
 * Option: a PEM file of CA certificates to verify the host's certificate
 * against, instead of the system's trusted roots.
 */
#define VPOLLER_AGENT_CA_FILE 2

/**
 * Option: the SHA-256 (64 hex digits) or SHA-1 (40 hex digits) fingerprint
 * the host's certificate must have, with or without colons. The error for
 * an untrusted certificate shows its SHA-256 fingerprint.
 */
#define VPOLLER_AGENT_FINGERPRINT 3

/**
 * Option: "1" turns certificate verification off (only on a network you
 * trust: anyone on the path could read the password); "0" turns it back on
 * (the system's roots).
 */
#define VPOLLER_AGENT_INSECURE 4

/**
 * Option: how long connecting may take, in milliseconds ("10000"; at most
 * "3600000", one hour).
 */
#define VPOLLER_AGENT_CONNECT_TIMEOUT_MS 5

/**
 * Option: how long one task may take in all, in milliseconds ("60000"; at
 * most "3600000", one hour).
 */
#define VPOLLER_AGENT_TIMEOUT_MS 6

/**
 * Option: how long object lookups are cached, in seconds ("300"; "0": off).
 */
#define VPOLLER_AGENT_CACHE_TTL_S 7

/**
 * Option: "1" (unless set) keeps a live mirror of the properties asked for,
 * which the vSphere host's update stream keeps current, and answers from
 * it; "0" asks the host on every request, exactly as py-vpoller does (other
 * values are refused). The mirror is the agent's one departure from
 * py-vpoller in how a request is served.
 */
#define VPOLLER_AGENT_MIRROR 8

/**
 * Option: how long a mirrored property nobody asks for stays in the mirror,
 * in seconds ("900"; "1" to "604800", one week).
 */
#define VPOLLER_AGENT_MIRROR_IDLE_S 9

/**
 * Option: the most property values (objects times properties) the mirror
 * holds; beyond them, properties are read from the host on every request
 * ("1000000", about 200 MB; "1" to "100000000"; VPOLLER_AGENT_MIRROR "0"
 * turns the mirror off).
 */
#define VPOLLER_AGENT_MIRROR_MAX_VALUES 10

/**
 * `vpoller_zabbix_value`: the item has no value; `*text` holds the reason
 * (vPoller's message), for Zabbix's "not supported".
 */
#define VPOLLER_ZABBIX_FAIL 0

/**
 * `vpoller_zabbix_value`: a whole number from 0 up, as decimal text.
 */
#define VPOLLER_ZABBIX_UINT64 1

/**
 * `vpoller_zabbix_value`: any other number, as text for strtod.
 */
#define VPOLLER_ZABBIX_DOUBLE 2

/**
 * `vpoller_zabbix_value`: text.
 */
#define VPOLLER_ZABBIX_TEXT 3

/**
 * An agent for one vSphere host. Opaque: create it with
 * `vpoller_agent_new`, release it with `vpoller_agent_free`.
 */
typedef struct vpoller_agent vpoller_agent;

/**
 * A client of one vPoller Proxy endpoint. Opaque: create it with
 * `vpoller_client_new`, release it with `vpoller_client_free`.
 */
typedef struct vpoller_client vpoller_client;

/**
 * Requests answered in this process, without proxy or worker, by the
 * agents of the vSphere hosts in a host registry (vconnector's SQLite
 * database, as `vpoller-worker hosts` manages it). Opaque: create it with
 * `vpoller_local_new`, release it with `vpoller_local_free`.
 */
typedef struct vpoller_local vpoller_local;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Creates a client of the vPoller Proxy at `endpoint`, e.g.
 * "tcp://localhost:10123".
 *
 * `retries` is the number of attempts per request in all, `timeout_ms` how
 * long each attempt waits for the reply; 0 or less means the defaults of
 * py-vpoller (3 attempts, 3000 ms). No connection is needed yet: the proxy
 * may start later.
 *
 * On "tcp://" and "ipc://" endpoints the calling thread speaks ZeroMQ's
 * wire protocol (ZMTP 3.0, as a REQ socket) itself, and no thread is
 * started; other endpoints ("inproc://", source addresses, other
 * transports) use a libzmq REQ socket.
 *
 * Returns a new client owned by the caller, to be released with
 * `vpoller_client_free`; or NULL when `endpoint` is NULL, not UTF-8 or
 * refused by ZeroMQ, with the reason in `vpoller_last_error()`.
 * `endpoint` is only read during the call.
 */
vpoller_client *vpoller_client_new(const char *endpoint, int retries, int timeout_ms);

/**
 * Releases a client and closes its sockets. NULL does nothing.
 *
 * No other thread may be using `client` during or after this call.
 */
void vpoller_client_free(vpoller_client *client);

/**
 * Sets one of the VPOLLER_CLIENT_* options of `client` to `value`, a
 * NUL-terminated UTF-8 string (surrounding white space is ignored); ""
 * unsets the option.
 *
 * Returns VPOLLER_OK, or VPOLLER_ERR_INVALID_ARGUMENT for a NULL `client`
 * or `value` (use "" to unset), text that is not UTF-8, an unknown option, a
 * key that is not 40 characters of Z85, a public key that is not the secret
 * key's, or a key file that cannot be read, holds no key or may be read by
 * others (the reason in `vpoller_last_error()`); the options are then as
 * they were.
 *
 * May be called while other threads run requests on the same client:
 * requests already under way finish as they began, the next ones use the
 * new setting. `value` is only read during the call.
 */
int vpoller_client_set_option(vpoller_client *client, int option, const char *value);

/**
 * The client's CURVE public key (40 characters of Z85) once
 * VPOLLER_CLIENT_CURVE_SERVER_KEY is set: the one given, or that of the
 * fresh key pair the client made, for a proxy's list of allowed clients.
 *
 * Returns a new string owned by the caller, to be released with
 * `vpoller_free_string`; or NULL, with `vpoller_last_status()` VPOLLER_OK,
 * when no server key is set or a public key is set without its secret key;
 * or NULL with VPOLLER_ERR_INVALID_ARGUMENT for a NULL `client`
 * (VPOLLER_ERR_INTERNAL when memory runs out).
 */
char *vpoller_client_curve_public_key(const vpoller_client *client);

/**
 * Sends `msg`, a JSON object as UTF-8 text such as
 * {"method": "vm.get", "hostname": "vc01", "name": "vm01", "properties": ["runtime.powerState"]},
 * and waits for vPoller's reply, retrying as configured.
 *
 * Returns a new NUL-terminated string owned by the caller, to be released
 * with `vpoller_free_string`: vPoller's reply exactly as the worker sent it
 * (less a trailing NUL byte), or, when there is none, a failure result of the
 * same shape, `{"success": 1, "msg": "<reason>"}`. The reason is also in
 * `vpoller_last_error()`, and `vpoller_last_status()` tells the cases apart
 * without parsing: VPOLLER_OK for a reply from vPoller. Returns NULL only
 * when memory for the string cannot be allocated.
 *
 * A NULL `client` or `msg`, invalid UTF-8, text that is not JSON and JSON
 * that is not an object are refused at once, without sending anything.
 * `msg` is only read during the call. Many threads may run requests on one
 * client at the same time; they proceed in parallel.
 */
char *vpoller_run(vpoller_client *client, const char *msg);

/**
 * Like `vpoller_run`, and returns the status (VPOLLER_OK when vPoller
 * replied, otherwise a VPOLLER_ERR_* code) while the text goes to `*reply`.
 *
 * On return `*reply` is a new string owned by the caller (release it with
 * `vpoller_free_string`): the reply, or for a failure the result
 * `{"success": 1, "msg": "<reason>"}`; NULL only when memory ran out. A NULL
 * `reply` is VPOLLER_ERR_INVALID_ARGUMENT and nothing is sent.
 */
int vpoller_try_run(vpoller_client *client, const char *msg, char **reply);

/**
 * The `success` field of a vPoller reply: 0 when vPoller succeeded, 1 (or
 * another value) when it reports a failure, -1 when `reply` is NULL or not
 * a JSON object with an integer `success` (the output of a helper such as
 * vpoller.helpers.zabbix is plain text). Does not change the last status.
 */
int vpoller_reply_success(const char *reply);

/**
 * Releases a string returned by `vpoller_run`, `vpoller_try_run` or
 * another call whose result the caller owns. NULL does nothing. Each string
 * must be released exactly once.
 */
void vpoller_free_string(char *s);

/**
 * The status of the last call on this thread that reports one
 * (`vpoller_client_new`, `vpoller_client_set_option`,
 * `vpoller_client_curve_public_key`, `vpoller_run`, `vpoller_try_run`):
 * VPOLLER_OK or a VPOLLER_ERR_* code. Other threads' calls do not change it.
 */
int vpoller_last_status(void);

/**
 * A description of the last failure on this thread, "" after a success.
 * Never NULL. Owned by the library: valid until the next libvpoller call
 * on this thread; do not free it.
 */
const char *vpoller_last_error(void);

/**
 * A short static description of a status code, e.g. "no reply from
 * vPoller". Never NULL; do not free it.
 */
const char *vpoller_status_str(int status);

/**
 * The library's version, e.g. "0.1.0". Never NULL; do not free it.
 */
const char *vpoller_version(void);

/**
 * Creates an agent for the vSphere host `host` (a name or address, with an
 * optional ":port"), logging in as `user` with `pwd`. Nothing is sent yet:
 * `vpoller_agent_connect` or the first `vpoller_agent_run` logs in.
 * Certificates are verified against the system's trusted roots unless an
 * option says otherwise.
 *
 * Returns a new agent owned by the caller, to be released with
 * `vpoller_agent_free`; or NULL when an argument is NULL, not UTF-8 or
 * unusable, with the reason in `vpoller_last_error()`. The strings are
 * copied; the password appears in no message.
 */
vpoller_agent *vpoller_agent_new(const char *host, const char *user, const char *pwd);

/**
 * Sets one of the VPOLLER_AGENT_* options to `value` (text, see each
 * option). Takes effect with the next request; changing how the host is
 * reached (port, certificate checks, connect timeout) logs in anew.
 *
 * Returns VPOLLER_OK, or VPOLLER_ERR_INVALID_ARGUMENT for an unknown option,
 * a bad value (text that is not a number where one is wanted, a timeout
 * above one hour, a mirror setting outside its range) or an unreadable CA
 * file (the reason in `vpoller_last_error()`), leaving the options as they
 * were. Not to be called while another thread runs a request on the same
 * agent.
 */
int vpoller_agent_set_option(vpoller_agent *agent, int option, const char *value);

/**
 * Logs in now, so that a wrong password, an unreachable host or an
 * untrusted certificate shows at once (tasks also log in by themselves).
 * Returns VPOLLER_OK, VPOLLER_ERR_VSPHERE (the reason in
 * `vpoller_last_error()`) or VPOLLER_ERR_INVALID_ARGUMENT for a NULL agent.
 */
int vpoller_agent_connect(vpoller_agent *agent);

/**
 * Runs the vPoller task request `msg`, a JSON object as UTF-8 text such as
 * {"method": "vm.get", "name": "vm01", "properties": ["runtime.powerState"]}
 * ("hostname" is not needed), in this process against the agent's host.
 *
 * Returns a new NUL-terminated string owned by the caller, to be released
 * with `vpoller_free_string`: the reply a py-vpoller worker sends,
 * {"success": 0, "msg": ..., "result": ...}, or its failure form
 * {"success": 1, "msg": "..."} (an unknown task, a missing object, the host
 * unreachable: "Task METHOD failed: REASON"). NULL only when memory
 * runs out. `vpoller_last_status()` is VPOLLER_OK when the task ran (its
 * own success is in the reply), VPOLLER_ERR_INVALID_ARGUMENT for a NULL
 * agent or msg or text that is not UTF-8.
 *
 * Many threads may run tasks on one agent at once; they proceed in parallel
 * over one login. Each call is bounded by VPOLLER_AGENT_TIMEOUT_MS.
 */
char *vpoller_agent_run(vpoller_agent *agent, const char *msg);

/**
 * Releases an agent: logs out of the vSphere host (not in a forked child,
 * whose session is its parent's too) and closes its connections. NULL does
 * nothing. No other thread may be using `agent` during or after this call.
 */
void vpoller_agent_free(vpoller_agent *agent);

/**
 * The names of every task an agent runs ("about", "vm.discover", ...),
 * separated by single spaces, in no particular order. The string is static:
 * do not free it. Bindings make one method per task from it.
 */
const char *vpoller_agent_tasks(void);

/**
 * The vPoller request for a Zabbix item key's parameters, `nparam` strings
 * in the order `method, hostname, name, properties, key, username,
 * password, counter-name, instance, perf-interval` (empty or NULL ones are
 * left out; `properties` is comma separated). Returns the JSON text (free
 * with `vpoller_free_string`), or NULL with the reason in
 * `vpoller_last_error()` when `method` or `hostname` is missing, a
 * parameter is not UTF-8 or there are more than ten.
 */
char *vpoller_zabbix_request(int nparam, const char *const *params);

/**
 * The value of the item that sent `request` (from `vpoller_zabbix_request`)
 * and got `reply` (the text `vpoller_run` returned, a failure included);
 * with `discovery` non-zero, the result in low-level discovery form
 * (`{"data": [{"{#VSPHERE.VM.NAME}": ...}, ...]}`). Writes the value's text,
 * or the reason there is none, to `*text` (free with `vpoller_free_string`)
 * and returns one of the VPOLLER_ZABBIX_* types. `*text` is left as it was
 * only if a bug inside the library was caught (VPOLLER_ZABBIX_FAIL then).
 */
int vpoller_zabbix_value(const char *request, const char *reply, int discovery, char **text);

/**
 * Opens the host registry at `db`; each task may take `timeout_ms` (0 or
 * less: 60000). Returns a new handle owned by the caller, or NULL with the
 * reason in `vpoller_last_error()`.
 */
vpoller_local *vpoller_local_new(const char *db, int timeout_ms);

/**
 * Sets one of the VPOLLER_AGENT_* options every host's agent shares
 * (VPOLLER_AGENT_TIMEOUT_MS, VPOLLER_AGENT_CACHE_TTL_S, VPOLLER_AGENT_MIRROR,
 * VPOLLER_AGENT_MIRROR_IDLE_S, VPOLLER_AGENT_MIRROR_MAX_VALUES) to `value`,
 * as `vpoller_agent_set_option` reads it; the agents take it from their
 * next request on. The others (port, certificate checks) come from each
 * host's row in the registry.
 *
 * Returns VPOLLER_OK, or VPOLLER_ERR_INVALID_ARGUMENT for a NULL argument,
 * an option not shared by the agents or a bad value (the reason in
 * `vpoller_last_error()`), leaving the settings as they were. Not to be
 * called while another thread runs a request on the same handle.
 */
int vpoller_local_set_option(vpoller_local *local, int option, const char *value);

/**
 * Runs the task request `msg` (with its `hostname`) against that host's
 * agent and returns the reply text a vPoller worker sends (free with
 * `vpoller_free_string`); NULL only for a NULL argument or when memory
 * runs out. Threads may share the handle.
 */
char *vpoller_local_run(const vpoller_local *local, const char *msg);

/**
 * Releases a handle from `vpoller_local_new`; NULL does nothing.
 */
void vpoller_local_free(vpoller_local *local);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* VPOLLER_H */
