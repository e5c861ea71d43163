"""``convscope train|run --local-workers N``: a cluster of N worker processes on this machine.

    convscope train --local-workers 2 --dataset mnist-sample --epochs 2

Each worker is ``python -m convscope`` with the same flags (less --local-workers)
and TF_CONFIG naming a free localhost port per worker; worker 0 is the chief and
writes the run folder. The launcher prints the TF_CONFIG each worker gets, which
is what a user sets on real machines (with their host names), waits for every
worker, and exits with the chief's code, or with the first failed worker's,
naming it. The chief's output passes through; the others' lines are prefixed
``[worker N]``. This module imports no TensorFlow: the launcher only waits.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

from convscope.errors import ConvscopeError

# After one worker failed, the others stop by themselves once their collectives time out
# (distribute.COLLECTIVE_TIMEOUT_SECONDS) or the health check notices; this long after
# that, the launcher ends those still running.
STRAGGLER_SECONDS = 90


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on localhost (held open together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            handle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            handle.bind(("localhost", 0))
            sockets.append(handle)
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def tf_config(addresses: list[str], index: int) -> str:
    """The TF_CONFIG of worker ``index`` in a cluster of ``addresses``."""
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def without_local_workers(argv: list[str]) -> list[str]:
    """``argv`` less ``--local-workers N`` (or ``--local-workers=N``)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--local-workers":
            skip = True
        elif not item.startswith("--local-workers="):
            kept.append(item)
    return kept


def launch_local_workers(count: int, argv: list[str]) -> int:
    """Start ``count`` local workers running ``convscope argv``; wait for all; return the exit code.

    Args:
        count: workers, at least 2.
        argv: the command line after ``convscope`` (``--local-workers`` is removed from it).

    Returns:
        The chief's exit code, or the first failed worker's when the chief succeeded.

    Raises:
        ConvscopeError: fewer than 2 workers, or TF_CONFIG already set (this process is a worker itself).
    """
    if count < 2:
        raise ConvscopeError(f"--local-workers {count}: expected 2 or more worker processes (1 is a plain run: drop the flag)")
    if os.environ.get("TF_CONFIG"):
        raise ConvscopeError("--local-workers with TF_CONFIG set: this process is already a cluster's worker; unset TF_CONFIG or drop --local-workers")
    argv = without_local_workers(argv)
    addresses = [f"localhost:{port}" for port in free_ports(count)]
    print(f"Starting {count} workers on this machine ({', '.join(addresses)}); worker 0 is the chief and writes the run folder.", flush=True)
    print("On separate machines, run the same command (without --local-workers) on each, with its host names in TF_CONFIG:", flush=True)
    for index in range(count):
        print(f"  worker {index}: TF_CONFIG='{tf_config(addresses, index)}'", flush=True)
    processes, relays = [], []
    for index in range(count):
        environment = {**os.environ, "TF_CONFIG": tf_config(addresses, index)}
        if index == 0:
            processes.append(subprocess.Popen([sys.executable, "-m", "convscope", *argv], env=environment))
            continue
        process = subprocess.Popen([sys.executable, "-m", "convscope", *argv], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        relay = threading.Thread(target=relay_lines, args=(process.stdout, f"[worker {index}] "), daemon=True)
        relay.start()
        relays.append(relay)
    codes = wait_for_workers(processes)
    for relay in relays:
        relay.join(timeout=5)
    failed = [index for index, code in enumerate(codes) if code != 0]
    for index in failed:
        print(f"convscope: error: worker {index} ({addresses[index]}) exited with code {codes[index]}", file=sys.stderr, flush=True)
    return codes[0] if codes[0] != 0 else (codes[failed[0]] if failed else 0)


def relay_lines(stream, prefix: str) -> None:
    """Copy a worker's output to ours, line by line, each line prefixed."""
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


def wait_for_workers(processes: list[subprocess.Popen]) -> list[int]:
    """Every worker's exit code; once one has failed, the others get STRAGGLER_SECONDS to stop before being ended."""
    first_failure = None
    while any(process.poll() is None for process in processes):
        if first_failure is None and any(process.returncode not in (None, 0) for process in processes):
            first_failure = time.monotonic()
        if first_failure is not None and time.monotonic() - first_failure > STRAGGLER_SECONDS:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
        time.sleep(0.2)
    return [process.returncode for process in processes]
