"""LiteRT latency and per-op time of drscreen's TFLite signatures, score vs score + heatmap.

    python bench/litert_op_profile.py [--model=oO_netA --input_size=448] [--threads=1,2]
        [--variants=float32,float16,int8_dynamic] [--runs=10] [--top=12]
    python bench/litert_op_profile.py --tflite=exports/drscreen/1/tflite/drscreen_float32.tflite

Exports the model's TFLite variants (random weights; or reads ``--tflite`` files), then for each
file, thread count and signature (``predict_score``, ``predict_float``) at batch 1:

1. the latency: median of ``--runs`` calls of LiteRT's signature runner (XNNPACK delegate,
   the default CPU path), the two signatures interleaved so both see the same load;
2. the per-op breakdown from LiteRT's op profiler: the time of each op type per run, split
   into ops XNNPACK ran (its own operator names, e.g. ``Convolution (NHWC, F32) IGEMM``) and
   built-in TFLite kernels that ran outside the delegate (upper-case TFLite names, e.g.
   ``TRANSPOSE_CONV``). An op outside the delegate is what a backward rule must avoid.

The profiler is LiteRT's own (``LiteRtCompiledModelGetProfiler`` of ``libLiteRt.so``, enabled
by the ``enable_profiling`` runtime option), reached with ctypes because the Python package
does not expose it. Runtime: ~3 min for net A at 448 px on 2 shared cores.
"""

import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import ai_edge_litert  # noqa: E402
import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

SIGNATURES = ("predict_score", "predict_float")
_FLOAT32 = 1  # kLiteRtElementTypeFloat32
_CPU = 1  # kLiteRtHwAcceleratorCpu
_XNNPACK_OP = 8  # DELEGATE_PROFILED_OPERATOR_INVOKE_EVENT: an op inside the delegate
_BUILTIN_OP = 2  # OPERATOR_INVOKE_EVENT: a TFLite kernel outside any delegate
_ALIGNMENT = 64  # LiteRT's host-memory buffer alignment


class _Layout(ctypes.Structure):
    _fields_ = [
        ("rank_and_flags", ctypes.c_uint32),
        ("dimensions", ctypes.c_int32 * 8),
        ("strides", ctypes.c_uint32 * 8),
    ]


class _RankedTensorType(ctypes.Structure):
    _fields_ = [("element_type", ctypes.c_int32), ("layout", _Layout)]


class _MemoryUsage(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_size_t),
        ("in_use", ctypes.c_size_t),
        ("private", ctypes.c_size_t),
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("tag", ctypes.c_char_p),
        ("event_type", ctypes.c_int32),
        ("start_us", ctypes.c_uint64),
        ("elapsed_us", ctypes.c_uint64),
        ("begin_memory", _MemoryUsage),
        ("end_memory", _MemoryUsage),
        ("metadata1", ctypes.c_uint64),
        ("metadata2", ctypes.c_uint64),
        ("source", ctypes.c_int32),
    ]


class ProfiledModel:
    """One signature of a ``.tflite`` file compiled by LiteRT on CPU with the profiler on."""

    def __init__(self, path: str, signature: str, threads: int):
        package = os.path.dirname(ai_edge_litert.__file__)
        self._lib = ctypes.CDLL(os.path.join(package, "libLiteRt.so"))
        self._libc = ctypes.CDLL(None)
        self._libc.malloc.restype = ctypes.c_void_p
        self._libc.malloc.argtypes = [ctypes.c_size_t]
        self._declare()
        lib = self._lib
        self._environment = ctypes.c_void_p()
        self._check(lib.LiteRtCreateEnvironment(0, None, ctypes.byref(self._environment)), "env")
        self._model = ctypes.c_void_p()
        self._check(
            lib.LiteRtCreateModelFromFile(
                self._environment, path.encode(), ctypes.byref(self._model)
            ),
            f"reading {path}",
        )
        options = ctypes.c_void_p()
        self._check(lib.LiteRtCreateOptions(ctypes.byref(options)), "options")
        self._check(lib.LiteRtSetOptionsHardwareAccelerators(options, _CPU), "accelerators")
        for identifier, toml in (
            ("runtime_options_string", "enable_profiling = true\n"),
            ("xnnpack", f"num_threads = {threads}\n"),
        ):
            self._check(
                lib.LiteRtAddOpaqueOptions(options, self._opaque(identifier, toml)), identifier
            )
        self._compiled = ctypes.c_void_p()
        self._check(
            lib.LiteRtCreateCompiledModel(
                self._environment, self._model, options, ctypes.byref(self._compiled)
            ),
            "compiling",
        )
        signatures = Interpreter(model_path=path).get_signature_list()
        if signature not in signatures:
            raise ValueError(f"{path} has no signature {signature!r}; it has {sorted(signatures)}")
        runner = Interpreter(model_path=path).get_signature_runner(signature)
        self._signature_index = list(signatures).index(signature)
        self._arrays = []
        inputs = [self._buffer(d["shape"], True) for d in runner.get_input_details().values()]
        outputs = [self._buffer(d["shape"], False) for d in runner.get_output_details().values()]
        self._inputs = (ctypes.c_void_p * len(inputs))(*inputs)
        self._outputs = (ctypes.c_void_p * len(outputs))(*outputs)
        self._profiler = ctypes.c_void_p()
        self._check(
            lib.LiteRtCompiledModelGetProfiler(self._compiled, ctypes.byref(self._profiler)),
            "profiler",
        )

    def _declare(self) -> None:
        lib, pointer = self._lib, ctypes.c_void_p
        out = ctypes.POINTER(ctypes.c_void_p)
        lib.LiteRtCreateEnvironment.argtypes = [ctypes.c_int, pointer, out]
        lib.LiteRtCreateModelFromFile.argtypes = [pointer, ctypes.c_char_p, out]
        lib.LiteRtCreateOptions.argtypes = [out]
        lib.LiteRtSetOptionsHardwareAccelerators.argtypes = [pointer, ctypes.c_int]
        lib.LiteRtCreateOpaqueOptions.argtypes = [ctypes.c_char_p, pointer, pointer, out]
        lib.LiteRtAddOpaqueOptions.argtypes = [pointer, pointer]
        lib.LiteRtCreateCompiledModel.argtypes = [pointer, pointer, pointer, out]
        lib.LiteRtCreateTensorBufferFromHostMemory.argtypes = [
            ctypes.POINTER(_RankedTensorType),
            pointer,
            ctypes.c_size_t,
            pointer,
            out,
        ]
        lib.LiteRtRunCompiledModel.argtypes = [
            pointer,
            ctypes.c_size_t,
            ctypes.c_size_t,
            pointer,
            ctypes.c_size_t,
            pointer,
        ]
        lib.LiteRtCompiledModelGetProfiler.argtypes = [pointer, out]
        for name in ("LiteRtStartProfiler", "LiteRtStopProfiler", "LiteRtResetProfiler"):
            getattr(lib, name).argtypes = [pointer]
        lib.LiteRtGetNumProfilerEvents.argtypes = [pointer, ctypes.POINTER(ctypes.c_int)]
        lib.LiteRtGetProfilerEvents.argtypes = [pointer, ctypes.c_int, pointer]

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"LiteRT {what} failed (status {status})")

    def _opaque(self, identifier: str, toml: str) -> ctypes.c_void_p:
        """Opaque options whose payload is a malloc'ed TOML string LiteRT frees itself."""
        data = toml.encode() + b"\0"
        payload = self._libc.malloc(len(data))
        ctypes.memmove(payload, data, len(data))
        handle = ctypes.c_void_p()
        free = ctypes.cast(self._libc.free, ctypes.c_void_p)
        self._check(
            self._lib.LiteRtCreateOpaqueOptions(
                identifier.encode(), payload, free, ctypes.byref(handle)
            ),
            f"{identifier} options",
        )
        return handle

    def _buffer(self, shape, fill: bool) -> ctypes.c_void_p:
        shape = [1, *shape[1:]]
        tensor_type = _RankedTensorType(element_type=_FLOAT32)
        tensor_type.layout.rank_and_flags = len(shape)
        for axis, size in enumerate(shape):
            tensor_type.layout.dimensions[axis] = int(size)
        nbytes = 4 * int(np.prod(shape))
        raw = np.zeros(nbytes + _ALIGNMENT, np.uint8)
        start = (-raw.ctypes.data) % _ALIGNMENT
        values = raw[start : start + nbytes].view(np.float32)
        if fill:
            values[:] = np.random.default_rng(0).uniform(0, 255, values.size)
        self._arrays.append(raw)
        buffer = ctypes.c_void_p()
        self._check(
            self._lib.LiteRtCreateTensorBufferFromHostMemory(
                ctypes.byref(tensor_type), values.ctypes.data, nbytes, None, ctypes.byref(buffer)
            ),
            "tensor buffer",
        )
        return buffer

    def _run(self) -> None:
        self._check(
            self._lib.LiteRtRunCompiledModel(
                self._compiled,
                self._signature_index,
                len(self._inputs),
                self._inputs,
                len(self._outputs),
                self._outputs,
            ),
            "run",
        )

    def op_times(self, runs: int) -> dict[tuple[str, bool], tuple[float, float]]:
        """(op type, inside XNNPACK) -> (ms per run, calls per run), over ``runs`` runs."""
        self._run()  # warm-up
        lib = self._lib
        lib.LiteRtResetProfiler(self._profiler)
        self._check(lib.LiteRtStartProfiler(self._profiler), "profiler start")
        for _ in range(runs):
            self._run()
        self._check(lib.LiteRtStopProfiler(self._profiler), "profiler stop")
        count = ctypes.c_int()
        self._check(lib.LiteRtGetNumProfilerEvents(self._profiler, ctypes.byref(count)), "events")
        events = (_Event * count.value)()
        self._check(lib.LiteRtGetProfilerEvents(self._profiler, count.value, events), "events")
        totals = defaultdict(lambda: [0.0, 0])
        for event in events:
            if event.event_type not in (_XNNPACK_OP, _BUILTIN_OP) or not event.tag:
                continue
            key = (event.tag.decode(), event.event_type == _XNNPACK_OP)
            totals[key][0] += event.elapsed_us / 1e3 / runs
            totals[key][1] += 1 / runs
        return {key: (ms, calls) for key, (ms, calls) in totals.items()}


def latencies(path: str, threads: int, runs: int) -> dict[str, float]:
    """Median ms per call of each signature at batch 1 (signature runner), interleaved."""
    runners, images = {}, None
    for signature in SIGNATURES:
        interpreter = Interpreter(model_path=path, num_threads=threads)
        if signature in interpreter.get_signature_list():
            runners[signature] = interpreter.get_signature_runner(signature)
            shape = runners[signature].get_input_details()["images"]["shape"]
            images = np.random.default_rng(0).uniform(0, 255, (1, *shape[1:])).astype(np.float32)
    times = {signature: [] for signature in runners}
    for runner in runners.values():
        runner(images=images)
    for _ in range(runs):
        for signature, runner in runners.items():
            start = time.perf_counter()
            runner(images=images)
            times[signature].append(1e3 * (time.perf_counter() - start))
    return {signature: statistics.median(values) for signature, values in times.items()}


def _report_ops(op_times: dict, top: int) -> None:
    total = sum(ms for ms, _ in op_times.values())
    outside = sum(ms for (_, inside), (ms, _) in op_times.items() if not inside)
    share = 100 * outside / total
    print(f"    profiled {total:.1f} ms/run, outside XNNPACK {outside:.1f} ms ({share:.0f} %)")
    ranked = sorted(op_times.items(), key=lambda item: -item[1][0])
    for (name, inside), (ms, calls) in ranked[:top]:
        where = "xnnpack" if inside else "OUTSIDE"
        print(f"    {ms:9.2f} ms {100 * ms / total:5.1f} %  x{calls:<5.0f} {where:8} {name}")


def _export(model_name: str, input_size: int, variants: tuple[str, ...], directory: str) -> dict:
    import keras

    from drscreen.export import ExportConfig, export, tflite
    from drscreen.models import build

    keras.utils.set_random_seed(0)
    model = build(model_name, input_size=input_size)
    result = export(
        model,
        directory,
        ExportConfig(formats=("tflite",), tflite_variants=variants, calibration_images=8),
    )
    return {
        variant: os.path.join(result.path, "tflite", tflite.file_name(variant))
        for variant in variants
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="oO_netA")
    parser.add_argument("--input_size", type=int, default=448)
    parser.add_argument("--variants", default="float32,float16")
    parser.add_argument("--tflite", default="", help="Comma-separated .tflite files (no export).")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        if args.tflite:
            files = {os.path.basename(path): path for path in args.tflite.split(",")}
        else:
            variants = tuple(args.variants.split(","))
            files = _export(args.model, args.input_size, variants, directory)
            print(f"{args.model} at {args.input_size} px, random weights, batch 1")
        print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs", flush=True)
        for label, path in files.items():
            print(f"{label}: {os.path.getsize(path) / 1e6:.1f} MB")
            for threads in (int(value) for value in args.threads.split(",")):
                times = latencies(path, threads, args.runs)
                ratio = ""
                if len(times) == 2:
                    ratio = f" -> x{times['predict_float'] / times['predict_score']:.2f}"
                summary = ", ".join(f"{name} {ms:.1f} ms" for name, ms in times.items())
                print(f"  {threads} thread(s): {summary}{ratio}", flush=True)
                for signature in times:
                    print(f"   op profile of {signature} ({threads} thread(s)):")
                    profiled = ProfiledModel(path, signature, threads)
                    _report_ops(profiled.op_times(max(3, args.runs // 2)), args.top)
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
