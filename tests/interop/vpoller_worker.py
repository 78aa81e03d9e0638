"""Starts py-vpoller 0.7.3's worker manager on current Python.

Usage: vpoller_worker.py -f CONFIG -c CONCURRENCY

The released vpoller-worker fails at start-up on Python >= 3.2 with
"TypeError: option values must be strings": VPollerWorkerManager passes
defaults holding ints, bools and None to ConfigParser, which since Python 3.2
accepts only strings. This wrapper turns those defaults into strings before
load_config() reads them and then starts the manager as `vpoller-worker start`
does. Nothing else of the worker is changed.
"""

import argparse

from vpoller.worker import VPollerWorkerManager


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", dest="config", required=True, help="vPoller configuration file")
    parser.add_argument("-c", dest="concurrency", type=int, default=0, help="worker processes (0: one per CPU)")
    args = parser.parse_args()

    manager = VPollerWorkerManager(config_file=args.config, num_workers=args.concurrency)
    manager.config_defaults = {
        key: "" if value is None else str(value) for key, value in manager.config_defaults.items()
    }
    manager.start()


if __name__ == "__main__":
    main()
