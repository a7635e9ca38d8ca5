"""The server's life cycle in this process: a signal during the start-up load ends it."""

import os
import signal
import threading
import time

from drscreen.serving.server import ServerConfig, serve
from tests.serving.served_process import copy_version, free_port, truncate_variables


def _signal_once_handled(signum: int, original, after_seconds: float) -> threading.Thread:
    """Send ``signum`` to this process ``after_seconds`` after a handler replaced
    ``original`` (never while the default handler would end the test run)."""

    def send() -> None:
        deadline = time.monotonic() + 30
        while signal.getsignal(signum) is original:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        time.sleep(after_seconds)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_sigterm_interrupts_the_start_up_load_retries(exports, tmp_path):
    """serve() on a truncated version alone, retried every 10 s: SIGTERM ends it within 3 s
    (it waited out every retry before), and the previous handler is back."""
    base = str(tmp_path)
    truncate_variables(copy_version(exports, 1, base, 1))
    config = ServerConfig(
        "drscreen", base, port=free_port(), rest_api_port=free_port(),
        max_num_load_retries=1, load_retry_interval_micros=10_000_000,
    )  # fmt: skip
    original = signal.getsignal(signal.SIGTERM)
    sender = _signal_once_handled(signal.SIGTERM, original, after_seconds=1.0)
    start = time.monotonic()
    serve(config)
    sender.join()
    assert time.monotonic() - start < 1.0 + 3.0
    assert signal.getsignal(signal.SIGTERM) is original
