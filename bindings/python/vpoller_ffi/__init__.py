"""VPollerClient over libvpoller: py-vpoller 0.7.3's client interface, faster.

    from vpoller_ffi import VPollerClient   # instead of: from vpoller.client import VPollerClient

    client = VPollerClient(endpoint="tcp://localhost:10123")
    result = client.run({"method": "vm.discover", "hostname": "vc01.example.org"})
"""

import ctypes
import json

from vpoller_ffi import _lib

__all__ = ["VPollerClient", "ClosedError", "library_version"]
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


class VPollerClient(object):
    """A client of one vPoller Proxy endpoint, with py-vpoller's constructor.

    timeout is the milliseconds each attempt waits, retries the attempts in
    all (0 or less: py-vpoller's defaults, 3000 and 3). Unlike py-vpoller's
    client, one instance keeps its sockets across calls and may be shared by
    threads, which run in parallel.
    """

    _handle = None  # set last in __init__; None once closed

    def __init__(self, endpoint, timeout=3000, retries=3):
        if not isinstance(endpoint, str):
            raise TypeError("endpoint must be a str, not %s" % type(endpoint).__name__)
        self.endpoint = endpoint
        self.timeout = _int_arg("timeout", timeout)
        self.retries = _int_arg("retries", retries)
        address = _lib.lib.vpoller_client_new(_c_string("endpoint", endpoint), retries, timeout)
        if not address:
            raise ValueError(
                "cannot use endpoint %r: %s" % (endpoint, _lib.lib.vpoller_last_error().decode("utf-8"))
            )
        self._handle = _Handle(address)

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
        if not address:
            raise MemoryError("libvpoller could not allocate the reply")
        try:
            result = _string_at(address).decode("utf-8")
        finally:
            _free_string(address)
        return result

    def close(self):
        """Releases the client's sockets; calls still running finish first.
        Using the client afterwards raises ClosedError; closing twice is fine."""
        self._handle = None

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return "VPollerClient(endpoint=%r, timeout=%r, retries=%r%s)" % (
            self.endpoint, self.timeout, self.retries, ", closed" if self.closed else "")


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
