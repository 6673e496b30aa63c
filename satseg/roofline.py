"""What a LiteRT file asks of a machine, layer by layer, at the size it runs: multiply-accumulates
(MACs) and bytes moved, read off the served graph itself (not the Keras model scaled by area), and
the machine it runs on: CPU model, instruction sets, cores, library versions. With a measured
compute rate and memory bandwidth these give each layer's roofline: the time it could not beat.

numpy and ai-edge-litert only (the edge install): a device engineer can run it where the file runs.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
         "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve")
"""The instruction sets that decide int8 and float32 convolution speed (x86 and Arm names as /proc
lists them): AVX-512 VNNI and AMX make int8 GEMMs many times faster than float32; plain AVX2 does not."""


def machine_info() -> dict:
    """The machine a measurement ran on: CPU model, the instruction sets in :data:`FLAGS` it has,
    logical cores and the ones this process may use, and the versions of what computed."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags |= set(value.split())
    except OSError:
        pass
    return {"cpu": model, "arch": platform.machine(), "flags": [f for f in FLAGS if f in flags],
            "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "versions": _versions(), "system": f"{platform.system()} {platform.release()}"}


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("numpy", "ai-edge-litert", "tensorflow", "keras"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine_line(m: dict) -> str:
    """One line naming a machine, for the tables its figures appear in."""
    flags = ", ".join(m["flags"]) or "none listed"
    v = m.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("ai-edge-litert", "numpy") if k in v)
    return f"{m['cpu']} ({m['arch']}; {m['usable_cores']} of {m['logical_cores']} cores; {flags}; {libs})"


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Measured bytes per second of a large array copy (read + write), the memory roof."""
    a = np.ones(megabytes << 18, np.float32)  # megabytes MB
    b = np.empty_like(a)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - t0)
    return 2 * a.nbytes / float(np.median(times[1:]))


def layer_costs(path, hw: tuple[int, int] | None = None) -> list[dict]:
    """Every operator of a LiteRT file at input height and width ``hw`` (whole-image files take
    any; None: the file's own shape): its name, MACs, and bytes read and written (its inputs,
    weights included, and outputs, at their stored types)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from satseg.tflite_metadata import operators

    path = Path(path)
    # without the XNNPACK delegate, whose tensors keep placeholder shapes until a call
    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inp = it.get_input_details()[0]
    if hw is not None and tuple(inp["shape"][1:3]) != tuple(hw):
        it.resize_tensor_input(inp["index"], [1, *hw, int(inp["shape"][-1])])
    it.allocate_tensors()
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    out = []
    for name, op, _ in operators(path):
        ins = [tensors[j] for j in op.InputsAsNumpy() if j >= 0 and j in tensors]
        outs = [tensors[j] for j in op.OutputsAsNumpy() if j in tensors]
        out.append({"op": name, "macs": _macs(name, ins, outs), "bytes": sum(_bytes(t) for t in ins + outs),
                    "out_shape": [int(v) for v in outs[0]["shape"]] if outs else []})
    return out


def _bytes(t) -> int:
    return int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize


def _macs(name: str, ins, outs) -> int:
    if not outs or not ins:
        return 0
    out = [int(v) for v in outs[0]["shape"]]
    if name == "CONV_2D":  # filter (Cout, kh, kw, Cin)
        _, kh, kw, cin = ins[1]["shape"]
        return int(np.prod(out)) * int(kh * kw * cin)
    if name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, Cout)
        _, kh, kw, _ = ins[1]["shape"]
        return int(np.prod(out)) * int(kh * kw)
    if name == "TRANSPOSE_CONV":  # inputs: output shape, filter (Cout, kh, kw, Cin), input
        cout, kh, kw, _ = ins[1]["shape"]
        return int(np.prod(ins[2]["shape"])) * int(kh * kw * cout)
    if name == "FULLY_CONNECTED":  # weights (units, in)
        return int(np.prod(out)) * int(ins[1]["shape"][-1])
    if name == "BATCH_MATMUL":
        return int(np.prod(out)) * int(ins[0]["shape"][-1])
    return 0


def roofline(costs: list[dict], macs_per_s: float, bytes_per_s: float, seconds: float | None = None) -> dict:
    """Each layer's lower bound, ``max(MACs / compute rate, bytes / bandwidth)``, and the graph's
    (their sum); with the measured ``seconds``, how far above that bound the file runs."""
    layers = []
    for c in costs:
        compute, memory = c["macs"] / macs_per_s, c["bytes"] / bytes_per_s
        layers.append({**c, "compute_ms": 1e3 * compute, "memory_ms": 1e3 * memory,
                       "bound_ms": 1e3 * max(compute, memory), "bound": "compute" if compute >= memory else "memory",
                       "macs_per_byte": c["macs"] / c["bytes"] if c["bytes"] else None})
    total = sum(x["bound_ms"] for x in layers)
    out = {"macs": sum(c["macs"] for c in costs), "bytes": sum(c["bytes"] for c in costs), "bound_ms": total,
           "compute_bound_ms": sum(x["compute_ms"] for x in layers),
           "memory_bound_ms": sum(x["memory_ms"] for x in layers), "layers": layers}
    if seconds is not None:
        out["measured_ms"] = 1e3 * seconds
        out["x_roofline"] = 1e3 * seconds / total if total else None
    return out
