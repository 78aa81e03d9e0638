"""The C functions of libvpoller, declared once with their ctypes signatures."""

import ctypes
import ctypes.util
import os

OK = 0
ERR_NO_REPLY = 1
ERR_INVALID_ARGUMENT = 2
ERR_INVALID_REPLY = 3
ERR_ZMQ = 4
ERR_INTERNAL = 5
ERR_VSPHERE = 6

# Options of vpoller_client_set_option.
CLIENT_CURVE_SERVER_KEY = 1
CLIENT_CURVE_PUBLIC_KEY = 2
CLIENT_CURVE_SECRET_KEY = 3
CLIENT_CURVE_SECRET_KEY_FILE = 4

# Options of vpoller_agent_set_option.
AGENT_PORT = 1
AGENT_CA_FILE = 2
AGENT_FINGERPRINT = 3
AGENT_INSECURE = 4
AGENT_CONNECT_TIMEOUT_MS = 5
AGENT_TIMEOUT_MS = 6
AGENT_CACHE_TTL_S = 7
AGENT_MIRROR = 8
AGENT_MIRROR_IDLE_S = 9
AGENT_MIRROR_MAX_VALUES = 10

_REPO_BUILD = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "target", "release", "libvpoller.so"
)


def _candidates():
    explicit = os.environ.get("VPOLLER_LIB")
    if explicit:
        return [explicit]
    found = ctypes.util.find_library("vpoller")
    system = [found] if found else []
    return system + ["libvpoller.so.0", "libvpoller.so", "vpoller.dll", os.path.normpath(_REPO_BUILD)]


def _load():
    errors = []
    for candidate in _candidates():
        try:
            return ctypes.CDLL(candidate)
        except OSError as error:
            errors.append("%s (%s)" % (candidate, error))
    raise ImportError(
        "libvpoller not found; build it with `make` or set VPOLLER_LIB to the path of "
        "libvpoller.so. Tried: " + "; ".join(errors)
    )


lib = _load()

# Strings the library returns and the caller frees are c_void_p, not c_char_p:
# ctypes would copy a c_char_p result and lose the pointer to free.
lib.vpoller_client_new.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
lib.vpoller_client_new.restype = ctypes.c_void_p
lib.vpoller_client_free.argtypes = [ctypes.c_void_p]
lib.vpoller_client_free.restype = None
lib.vpoller_client_set_option.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
lib.vpoller_client_set_option.restype = ctypes.c_int
lib.vpoller_client_curve_public_key.argtypes = [ctypes.c_void_p]
lib.vpoller_client_curve_public_key.restype = ctypes.c_void_p
lib.vpoller_run.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.vpoller_run.restype = ctypes.c_void_p
lib.vpoller_last_status.argtypes = []
lib.vpoller_last_status.restype = ctypes.c_int
lib.vpoller_free_string.argtypes = [ctypes.c_void_p]
lib.vpoller_free_string.restype = None
lib.vpoller_last_error.argtypes = []
lib.vpoller_last_error.restype = ctypes.c_char_p
lib.vpoller_version.argtypes = []
lib.vpoller_version.restype = ctypes.c_char_p

lib.vpoller_agent_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
lib.vpoller_agent_new.restype = ctypes.c_void_p
lib.vpoller_agent_set_option.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
lib.vpoller_agent_set_option.restype = ctypes.c_int
lib.vpoller_agent_connect.argtypes = [ctypes.c_void_p]
lib.vpoller_agent_connect.restype = ctypes.c_int
lib.vpoller_agent_run.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.vpoller_agent_run.restype = ctypes.c_void_p
lib.vpoller_agent_free.argtypes = [ctypes.c_void_p]
lib.vpoller_agent_free.restype = None
lib.vpoller_agent_tasks.argtypes = []
lib.vpoller_agent_tasks.restype = ctypes.c_char_p
