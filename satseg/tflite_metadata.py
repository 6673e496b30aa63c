"""The model's contract inside the ``.tflite`` file itself: a flatbuffer metadata entry named
``satseg.spec`` holding the spec JSON (classes, colours, normalisation, stride, margin, bands).

TFLite models carry named metadata buffers (the converter writes ``min_runtime_version`` and
``CONVERSION_METADATA`` there); any client can list them with the flatbuffer schema that ships
with ai-edge-litert (``ai_edge_litert.schema_py_generated``), so the file describes itself without
satseg, TensorFlow or a sidecar. Reads and writes use that schema only (no TensorFlow).
"""

from __future__ import annotations

import json
from pathlib import Path

KEY = "satseg.spec"
"""Name of the metadata entry that holds the spec."""


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _bytes(model) -> bytes:
    return Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)


def read_metadata(model) -> dict[str, bytes]:
    """Every metadata entry of a ``.tflite`` file (path or bytes): name -> bytes."""
    m = _schema().Model.GetRootAs(_bytes(model), 0)
    out = {}
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        data = m.Buffers(md.Buffer())
        out[md.Name().decode()] = data.DataAsNumpy().tobytes() if data.DataLength() else b""
    return out


def _code_names(m) -> list[str]:
    """The name of each operator code of a parsed model, in its table's order ("CUSTOM" if unnamed)."""
    names = {v: k for k, v in vars(_schema().BuiltinOperator).items() if not k.startswith("_")}
    return [names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "CUSTOM")
            for c in (m.OperatorCodes(i) for i in range(m.OperatorCodesLength()))]


def op_names(model) -> list[str]:
    """The builtin operators a ``.tflite`` file (path or bytes) uses, by name (its op inventory)."""
    return _code_names(_schema().Model.GetRootAs(_bytes(model), 0))


def operators(model):
    """``(op name, operator, subgraph)`` of every operator of the main graph, in order."""
    m = _schema().Model.GetRootAs(_bytes(model), 0)
    names, g = _code_names(m), m.Subgraphs(0)
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        yield names[op.OpcodeIndex()], op, g


def embedded_spec(model) -> dict | None:
    """The spec document embedded in a ``.tflite`` file, or None when it has none."""
    raw = read_metadata(model).get(KEY)
    return None if raw is None else json.loads(raw.decode())


def with_spec(tflite: bytes, spec: dict) -> bytes:
    """``tflite`` with ``spec`` embedded as the ``satseg.spec`` metadata entry (replacing an old one);
    the graph and its weights are unchanged."""
    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    data = list(json.dumps(spec, sort_keys=True).encode())
    old = next((m for m in (model.metadata or []) if m.name in (KEY, KEY.encode())), None)
    if old is not None:  # the old entry's buffer takes the new spec: no dead bytes left behind
        model.buffers[old.buffer].data = data
        return _packed(model, len(tflite))
    buffer = schema.BufferT()
    buffer.data = data
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = KEY, len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [entry]
    return _packed(model, len(tflite))


def _packed(model, size_hint: int) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def argmax_classes(model) -> int | None:
    """How many classes a whole-image file chooses among: the last axis of its ARG_MAX's input
    (None when the graph has no ARG_MAX)."""
    for name, op, g in operators(model):
        if name == "ARG_MAX":
            return int(g.Tensors(op.Inputs(0)).ShapeAsNumpy()[-1])
    return None
