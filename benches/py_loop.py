"""Python contenders: `py_loop.py MODE ENDPOINT CALLS` prints seconds per call.

MODE py-vpoller: py-vpoller 0.7.3's VPollerClient (as deployed today).
MODE binding:    this project's vpoller_ffi.VPollerClient, same interface.
"""
import sys
import time

MSG = {"method": "vm.get", "hostname": "vc01.example.org", "name": "vm01", "properties": ["runtime.powerState"]}


def main():
    mode, endpoint, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "py-vpoller":
        from vpoller.client import VPollerClient
    elif mode == "binding":
        from vpoller_ffi import VPollerClient
    else:
        raise SystemExit("unknown mode %r" % mode)
    client = VPollerClient(endpoint=endpoint, timeout=3000, retries=3)
    for _ in range(20):
        client.run(MSG)
    started = time.perf_counter()
    for _ in range(calls):
        if not client.run(MSG).startswith('{"success": 0'):
            raise SystemExit("no reply")
    print("%.9f" % ((time.perf_counter() - started) / calls))


if __name__ == "__main__":
    main()
