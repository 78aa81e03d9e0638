"""VPollerClient over libvpoller: py-vpoller 0.7.3's client interface, faster.

    from vpoller_ffi import VPollerClient   # instead of: from vpoller.client import VPollerClient

    client = VPollerClient(endpoint="tcp://localhost:10123")
    result = client.run({"method": "vm.discover", "hostname": "vc01.example.org"})

With the proxy's CURVE public key the requests travel encrypted:

    client = VPollerClient("tcp://vpoller01:10123",
                           curve_server_key="rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                           curve_secret_key_file="/etc/vpoller/client.key")

And the vSphere agent of vPoller's API documentation, which runs the tasks in
this process, straight against vCenter:

    agent = VSphereAgent(user="root", pwd="p4ssw0rd", host="vc01.example.org")
    agent.connect()
    result = agent.vm_discover(msg={})
"""

import ctypes
import json

from vpoller_ffi import _lib

__all__ = ["VPollerClient", "VSphereAgent", "ClosedError", "VSphereError", "library_version"]
__version__ = "0.1.0"

_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1

_dumps = json.dumps
_c_void_p = ctypes.c_void_p
_byref = ctypes.byref
_string_at = ctypes.string_at
_run = _lib.lib.vpoller_run
_last_status = _lib.lib.vpoller_last_status
_last_error = _lib.lib.vpoller_last_error
_free_string = _lib.lib.vpoller_free_string
_client_free = _lib.lib.vpoller_client_free


class ClosedError(ValueError):
    """Raised when a closed client is used."""


def library_version():
    """The version of the loaded libvpoller."""
    return _lib.lib.vpoller_version().decode("utf-8")


def _int_arg(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError("%s out of range: %d" % (name, value))
    return value


class _Handle(object):
    """Owns one vpoller_client. Every call holds a reference while it runs,
    so the handle is freed (by reference counting) only after close() or the
    client's collection *and* the last running call: no lock on the hot path."""

    __slots__ = ("address",)

    def __init__(self, address):
        self.address = address

    def __del__(self, _free=_client_free):
        # The default argument keeps the function reachable while the
        # interpreter tears modules down at exit.
        _free(self.address)


class _AgentHandle(_Handle):
    """Owns one vpoller_agent, as _Handle a client."""

    __slots__ = ()

    def __del__(self, _free=_lib.lib.vpoller_agent_free):
        _free(self.address)


class _Closable(object):
    """close(), closed and use as a context manager, over self._handle: the
    object is released once it is closed (or collected) and the calls still
    running on it are done; using it afterwards raises ClosedError. Closing
    twice is fine."""

    _handle = None

    def close(self):
        """Releases the libvpoller object (an agent logs out); calls still
        running finish first."""
        self._handle = None

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class VPollerClient(_Closable):
    """A client of one vPoller Proxy endpoint, with py-vpoller's constructor.

    timeout is the milliseconds each attempt waits, retries the attempts in
    all (0 or less: py-vpoller's defaults, 3000 and 3). Unlike py-vpoller's
    client, one instance keeps its sockets across calls and may be shared by
    threads, which run in parallel.

    CURVE (None or "": unset; keys are 40 characters of Z85):
    curve_server_key, the proxy's public key: requests travel encrypted and
    authenticated, and only that proxy can read or answer them (a proxy
    without CURVE, or one that refuses the client, gives no reply).
    curve_secret_key_file, a file holding the client's secret key as
    `vpoller-proxy keygen FILE` writes it (readable by its owner only), or
    curve_secret_key, the key itself; curve_public_key, the client's public
    key, checked against the secret key (not needed). Without a secret key
    the client makes a fresh key pair (see curve_public_key()). A key that is
    not one, or a public key that is not the secret key's, raises ValueError
    naming the keyword.
    """

    _handle = None  # set last in __init__; None once closed

    def __init__(self, endpoint, timeout=3000, retries=3, curve_server_key=None, curve_public_key=None,
                 curve_secret_key=None, curve_secret_key_file=None):
        if not isinstance(endpoint, str):
            raise TypeError("endpoint must be a str, not %s" % type(endpoint).__name__)
        self.endpoint = endpoint
        self.timeout = _int_arg("timeout", timeout)
        self.retries = _int_arg("retries", retries)
        given = {"curve_server_key": curve_server_key, "curve_public_key": curve_public_key,
                 "curve_secret_key": curve_secret_key, "curve_secret_key_file": curve_secret_key_file}
        curve = []
        for name, option in _CURVE_OPTIONS:
            value = given[name]
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError("%s must be a str, not %s" % (name, type(value).__name__))
            curve.append((name, option, _c_string(name, value)))
        address = _lib.lib.vpoller_client_new(_c_string("endpoint", endpoint), retries, timeout)
        if not address:
            raise ValueError(
                "cannot use endpoint %r: %s" % (endpoint, _lib.lib.vpoller_last_error().decode("utf-8"))
            )
        handle = _Handle(address)  # frees the client if a key is refused
        for name, option, text in curve:
            if _lib.lib.vpoller_client_set_option(address, option, text) != _lib.OK:
                raise ValueError("%s: %s" % (name, _last_error().decode("utf-8")))
        self._handle = handle

    def curve_public_key(self):
        """The client's CURVE public key (Z85) once curve_server_key is set:
        the one given, or that of the fresh key pair it made, for the proxy's
        list of allowed clients; None without CURVE."""
        handle = self._handle
        if handle is None:
            raise ClosedError("closed vPoller client")
        address = _lib.lib.vpoller_client_curve_public_key(handle.address)
        if not address and _last_status() == _lib.OK:
            return None  # no server key set
        return _take_string(address)

    def run(self, msg):
        """Sends msg (a dict, or a JSON object as a str) and returns vPoller's
        reply as a str, exactly as the worker sent it.

        Like py-vpoller, returns '{"success": 1, "msg": "Did not receive
        response, aborting..."}' when no reply came after all attempts.
        Raises TypeError or ValueError for a message that is not a JSON object.
        """
        # The hot path, called thousands of times a minute: names bound once
        # at import, three foreign calls, no lock.
        if type(msg) is dict:
            text = _dumps(msg).encode()  # json.dumps escapes NUL: nothing to check
        else:
            text = _message_bytes(msg)
        handle = self._handle  # keeps the client alive until this call returns
        if handle is None:
            raise ClosedError("closed vPoller client")
        address = _run(handle.address, text)
        if _last_status() == _lib.ERR_INVALID_ARGUMENT:
            _free_string(address)
            raise ValueError(_last_error().decode("utf-8"))
        return _take_string(address)

    def __repr__(self):
        return "VPollerClient(endpoint=%r, timeout=%r, retries=%r%s)" % (
            self.endpoint, self.timeout, self.retries, ", closed" if self.closed else "")


# The CURVE keywords and their libvpoller options, in the order they are set
# (a public key is checked against the secret key set before it).
_CURVE_OPTIONS = (
    ("curve_secret_key_file", _lib.CLIENT_CURVE_SECRET_KEY_FILE),
    ("curve_secret_key", _lib.CLIENT_CURVE_SECRET_KEY),
    ("curve_public_key", _lib.CLIENT_CURVE_PUBLIC_KEY),
    ("curve_server_key", _lib.CLIENT_CURVE_SERVER_KEY),
)


def _take_string(address):
    """The text of a string libvpoller returned, which is then freed."""
    if not address:
        raise MemoryError("libvpoller could not allocate the reply")
    try:
        return _string_at(address).decode("utf-8")
    finally:
        _free_string(address)


def _message_bytes(msg):
    if isinstance(msg, dict):
        # What py-vpoller's send_json puts on the wire.
        text = json.dumps(msg)
    elif isinstance(msg, str):
        text = msg
    else:
        raise TypeError("message must be a dict or a JSON str, not %s" % type(msg).__name__)
    return _c_string("message", text)


def _c_string(name, text):
    """text as UTF-8 bytes for a C string argument; ValueError if it cannot be one."""
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("%s is not valid text: %s" % (name, error))
    if b"\0" in encoded:
        raise ValueError("%s contains a NUL character" % name)
    return encoded


class VSphereError(Exception):
    """The vSphere host cannot be reached, refused the login or sent a
    certificate that is not trusted."""


_AGENT_OPTIONS = (
    ("port", _lib.AGENT_PORT),
    ("ca_file", _lib.AGENT_CA_FILE),
    ("fingerprint", _lib.AGENT_FINGERPRINT),
    ("insecure", _lib.AGENT_INSECURE),
    ("connect_timeout", _lib.AGENT_CONNECT_TIMEOUT_MS),
    ("timeout", _lib.AGENT_TIMEOUT_MS),
    ("cache_ttl", _lib.AGENT_CACHE_TTL_S),
    ("mirror", _lib.AGENT_MIRROR),
    ("mirror_idle", _lib.AGENT_MIRROR_IDLE_S),
    ("mirror_max_values", _lib.AGENT_MIRROR_MAX_VALUES),
)


class VSphereAgent(_Closable):
    """The vSphere agent: vPoller's tasks run in this process, straight
    against one vCenter or ESXi host, with the replies a vPoller worker sends.

    user, pwd, host: the vSphere login (host may carry ":port"). Options
    (None: the library's default): port; ca_file (a PEM file of CA
    certificates) or fingerprint (the certificate's SHA-256 or SHA-1) in place
    of the system's trusted roots; insecure=True to skip verification;
    connect_timeout and timeout (one whole task) in milliseconds; cache_ttl in
    seconds (0: no lookup cache); mirror=False to ask the host on every
    request, exactly as py-vpoller does (True, the default: a live mirror of
    the properties asked for answers them); mirror_idle, how long a mirrored
    property nobody asks for stays, in seconds (1 to 604800);
    mirror_max_values, the most property values the mirror holds (1 to
    100000000). Nothing is sent until connect() or the first task.

    Every task has a method, its name with dots made underscores
    (vm.perf.metric.get is vm_perf_metric_get), which takes the message as
    msg=, keywords, or both (keywords win; a keyword's underscores become
    dashes: counter_name= is "counter-name") and returns the reply as a dict.
    One agent may be shared by threads; their tasks run in parallel.
    """

    _handle = None  # set in __init__; None once closed

    def __init__(self, user, pwd, host, port=None, ca_file=None, fingerprint=None, insecure=False,
                 connect_timeout=None, timeout=None, cache_ttl=None, mirror=None, mirror_idle=None,
                 mirror_max_values=None):
        for name, value in (("user", user), ("pwd", pwd), ("host", host)):
            if not isinstance(value, str):
                raise TypeError("%s must be a str, not %s" % (name, type(value).__name__))
        self.user = user
        self.host = host
        address = _lib.lib.vpoller_agent_new(
            _c_string("host", host), _c_string("user", user), _c_string("pwd", pwd))
        if not address:
            raise ValueError("cannot make an agent for %r: %s" % (host, _last_error().decode("utf-8")))
        self._handle = _AgentHandle(address)
        values = {"port": port, "ca_file": ca_file, "fingerprint": fingerprint, "insecure": insecure,
                  "connect_timeout": connect_timeout, "timeout": timeout, "cache_ttl": cache_ttl,
                  "mirror": mirror, "mirror_idle": mirror_idle, "mirror_max_values": mirror_max_values}
        for name, option in _AGENT_OPTIONS:
            value = values[name]
            if value is None or (name == "insecure" and value is False):
                continue
            text = _option_text(name, value)
            if _lib.lib.vpoller_agent_set_option(address, option, text) != _lib.OK:
                reason = _last_error().decode("utf-8")
                self.close()
                raise ValueError("%s: %s" % (name, reason))

    def _address(self):
        handle = self._handle
        if handle is None:
            raise ClosedError("closed vSphere agent")
        return handle

    def connect(self):
        """Logs in now, so that a wrong password, an unreachable host or an
        untrusted certificate shows at once (tasks log in by themselves too).
        Returns self; raises VSphereError with the reason."""
        handle = self._address()
        if _lib.lib.vpoller_agent_connect(handle.address) != _lib.OK:
            raise VSphereError(_last_error().decode("utf-8"))
        return self

    def run(self, msg):
        """Runs a task request (a dict, or a JSON object as a str) and returns
        the reply text a vPoller worker sends, failures included."""
        text = _message_bytes(msg)
        handle = self._address()  # keeps the agent alive until this call returns
        address = _lib.lib.vpoller_agent_run(handle.address, text)
        if _last_status() == _lib.ERR_INVALID_ARGUMENT:
            _free_string(address)
            raise ValueError(_last_error().decode("utf-8"))
        return _take_string(address)

    def run_task(self, task, msg=None, **fields):
        """Runs task with msg's fields and the keyword fields; the reply as a dict."""
        if msg is None:
            msg = {}
        if not isinstance(msg, dict):
            raise TypeError("msg must be a dict, not %s" % type(msg).__name__)
        message = dict(msg)
        for key, value in fields.items():
            message[key.replace("_", "-")] = value
        message["method"] = task
        return json.loads(self.run(message))

    def __repr__(self):
        # Never the password.
        return "VSphereAgent(user=%r, host=%r%s)" % (self.user, self.host, ", closed" if self.closed else "")


def _option_text(name, value):
    if name in ("insecure", "mirror"):
        if not isinstance(value, bool):
            raise TypeError("%s must be a bool, not %s" % (name, type(value).__name__))
        return b"1" if value else b"0"
    if name in ("ca_file", "fingerprint"):
        if not isinstance(value, str):
            raise TypeError("%s must be a str, not %s" % (name, type(value).__name__))
        return _c_string(name, value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    return str(value).encode()


def _task_method(task):
    def method(self, msg=None, **fields):
        return self.run_task(task, msg, **fields)

    method.__name__ = task.replace(".", "_")
    method.__qualname__ = "VSphereAgent." + method.__name__
    method.__doc__ = "Runs the %s task; the reply as a dict." % task
    return method


TASKS = tuple(_lib.lib.vpoller_agent_tasks().decode("ascii").split())

for _task in TASKS:
    setattr(VSphereAgent, _task.replace(".", "_"), _task_method(_task))
del _task
