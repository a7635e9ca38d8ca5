"""Throughput of `drscreen serve` over gRPC against in-process calls of the same SavedModel.

    python -m bench.server_throughput            # from the repository root
    python -m bench.server_throughput --model_base_path=runs/export --signature=serving_default

Measures, with ``--clients`` concurrent callers of ``--images_per_request`` images each:
1. requests/s of in-process calls of the SavedModel signature (``tf.saved_model.load``);
2. requests/s of the same calls sent to a `drscreen serve` subprocess over gRPC;
and prints their ratio (the serving overhead). Reliability under load (malformed requests,
slow clients, memory) is `bench/server_load.py`'s. Without ``--model_base_path`` it exports and
serves an untrained `small` network at 192 px (score + sensitivity heatmap, as a trained one
would be served). Runtime: ~2 min on 2 cores.
"""

import concurrent.futures
import os
import signal
import sys
import time
from typing import Any

import numpy as np
import tensorflow as tf
from absl import app, flags

from bench.served import default_export, start_server
from drscreen.serving.client import GrpcClient, images_array
from drscreen.serving.errors import ServingError
from drscreen.serving.model_store import list_versions

_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", "", "Export base (default: a fresh export of an untrained small net)."
)
_SIGNATURE = flags.DEFINE_string("signature", "predict_float", "Signature to call.")
_CLIENTS = flags.DEFINE_integer("clients", 8, "Concurrent callers.")
_REQUESTS_PER_CLIENT = flags.DEFINE_integer("requests_per_client", 25, "Timed calls per caller.")
_IMAGES_PER_REQUEST = flags.DEFINE_integer("images_per_request", 4, "Images in each call.")
_ENABLE_BATCHING = flags.DEFINE_boolean("enable_batching", False, "Serve with batching.")


def _float_batch(base_path: str, signature: str, count: int) -> tuple[np.ndarray, Any]:
    """A seeded float batch for ``signature`` and the newest version loaded in-process."""
    model = tf.saved_model.load(os.path.join(base_path, str(list_versions(base_path)[-1])))
    spec = model.signatures[signature].structured_input_signature[1]["images"]
    rng = np.random.default_rng(0)
    if spec.dtype == tf.string:
        raise app.UsageError("use a float signature (predict_float or predict_score)")
    size = spec.shape[1]
    return rng.uniform(0, 255, (count, size, size, 3)).astype(np.float32), model


def _run_concurrently(call, clients: int, requests_per_client: int) -> tuple[float, int]:
    """Requests/s of ``clients`` threads each making ``requests_per_client`` calls; failures."""

    def caller(_: int) -> int:
        failures = 0
        for _ in range(requests_per_client):
            try:
                call()
            except ServingError as error:
                print(f"failed request: {error}", file=sys.stderr)
                failures += 1
        return failures

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        failures = sum(pool.map(caller, range(clients)))
    return clients * requests_per_client / (time.perf_counter() - start), failures


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    base_path = _MODEL_BASE_PATH.value or default_export()
    signature = _SIGNATURE.value
    batch, model = _float_batch(base_path, signature, _IMAGES_PER_REQUEST.value)
    function = model.signatures[signature]
    clients, per_client = _CLIENTS.value, _REQUESTS_PER_CLIENT.value
    print(f"in-process: {clients} threads × {per_client} calls", file=sys.stderr)
    function(images=tf.constant(batch))
    local_rps, _ = _run_concurrently(
        lambda: function(images=tf.constant(batch))["score"].numpy(), clients, per_client
    )
    print("starting drscreen serve", file=sys.stderr)
    process, target, _ = start_server(
        base_path, rest=False, flags=(f"--enable_batching={_ENABLE_BATCHING.value}",)
    )
    try:
        with GrpcClient(target, "drscreen") as client:
            client.predict(images_array(batch), signature=signature)
            print(f"gRPC: {clients} clients × {per_client} calls", file=sys.stderr)
            served_rps, failures = _run_concurrently(
                lambda: client.predict(batch, signature=signature), clients, per_client
            )
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
    print(f"signature {signature}, {batch.shape[0]} images of {batch.shape[1]}² per request")
    print(f"in-process     : {local_rps:8.1f} requests/s ({clients} threads)")
    print(f"gRPC server    : {served_rps:8.1f} requests/s ({clients} clients, {failures} failed)")
    print(f"overhead ratio : {local_rps / served_rps:8.2f}× (in-process / served)")
    print(f"SIGTERM        : exit code {exit_code}")


if __name__ == "__main__":
    app.run(main)
