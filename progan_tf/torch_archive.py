"""PyTorch zip archives (TorchScript `torch.jit.save` files and `torch.save` files) read as plain
Python records and numpy arrays, without torch and without running anything in the file.

An archive is a zip holding `<name>/data.pkl`, a pickle of the saved object, and one raw
little-endian buffer per tensor storage under `<name>/data/<key>`. `load` unpickles data.pkl
with a restricted unpickler that allows only the globals such files name for their contents:
- `__torch__.<module>.<Class>` (TorchScript modules): each becomes a `ScriptObject` record of
  its class name and attributes (parameters, submodules, ints and lists); no class is imported;
- `torch._utils._rebuild_tensor_v2` and `torch.<Dtype>Storage`: tensors, as numpy arrays read
  from the archive's storage buffers, their shapes and strides checked against the buffer;
- `collections.OrderedDict` and `torch.jit._pickle.build_*list`: dicts and lists.
Any other global is refused by name, so a hostile file can name no function to call. The
TorchScript code in the archive (`code/`) is not read: callers know the network it describes.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import zipfile
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


# What a malformed pickle makes Python's unpickler raise (besides the reader's own refusals);
# the release pickles' reader catches the same
UNPICKLING_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    AttributeError,
    TypeError,
    ValueError,
    IndexError,
    KeyError,
    ImportError,
    RecursionError,
    MemoryError,
)


class ArchiveError(ValueError):
    """The file is not a PyTorch archive this reader accepts; the message names the file."""


class ScriptObject:
    """A TorchScript module: its class (`__torch__.inceptionv3.Conv2dLayer` -> "Conv2dLayer")
    and its attributes in the order the file lists them."""

    type_name = ""

    def __init__(self, type_name: str = "", attributes: dict[str, Any] | None = None):
        self.type_name = type_name or self.type_name
        self.attributes = dict(attributes or {})

    def __setstate__(self, state):  # unpickling: NEWOBJ (no __init__), then BUILD
        if not isinstance(state, dict):
            raise ArchiveError(f"{self.type_name}'s state is not a dict of attributes")
        self.attributes = dict(state)

    def children(self) -> list[tuple[str, ScriptObject]]:
        """Submodules in order (a Sequential's layers in the order it runs them)."""
        return [(k, v) for k, v in self.attributes.items() if isinstance(v, ScriptObject)]

    def __getitem__(self, name: str) -> Any:
        return self.attributes[name]

    def __repr__(self) -> str:
        return f"ScriptObject({self.type_name}, {list(self.attributes)})"


def _script_class(qualified: str) -> type:
    return type("ScriptObject", (ScriptObject,), {"type_name": qualified.rsplit(".", 1)[-1]})


def _list(values):
    return list(values)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, budget: int):
        super().__init__(file)
        self.archive, self.prefix, self.remaining = archive, prefix, budget
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name in (
            "build_intlist",
            "build_doublelist",
            "build_boollist",
            "build_tensorlist",
        ):
            return _list
        raise ArchiveError(
            f"names the global {module}.{name}, which a saved network's weights do not need; "
            "refusing to load it (nothing in the file was run)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ArchiveError(f"has a persistent id {str(pid)[:80]} that is not a storage")
        _, kind, key, _location, numel = pid
        if kind not in _STORAGE_DTYPES or not isinstance(key, str):
            raise ArchiveError(f"has a storage of unknown type {str(kind)[:40]}")
        if key not in self.storages:
            dtype = np.dtype(_STORAGE_DTYPES[kind])
            name = f"{self.prefix}data/{key}"
            try:
                info = self.archive.getinfo(name)
            except KeyError:
                raise ArchiveError(f"lacks the storage {name}") from None
            if info.compress_type != zipfile.ZIP_STORED:  # torch stores them uncompressed
                raise ArchiveError(f"storage {name} is compressed; torch's are not")
            if info.file_size != int(numel) * dtype.itemsize or info.file_size > self.remaining:
                raise ArchiveError(
                    f"storage {name} holds {info.file_size:,} bytes, not the {int(numel):,} "
                    f"{dtype.name} values it is declared with"
                )
            self.remaining -= info.file_size
            raw = self.archive.read(name)
            self.storages[key] = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)
        return self.storages[key]

    @staticmethod
    def _rebuild_tensor(storage, offset, size, stride, *_rest) -> np.ndarray:
        if not isinstance(storage, np.ndarray):
            raise ArchiveError("has a tensor without a storage")
        size, stride, offset = (
            tuple(int(n) for n in size),
            tuple(int(n) for n in stride),
            int(offset),
        )
        if len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0:
            raise ArchiveError(f"has a tensor of size {size} and stride {stride}")
        last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset
        if math.prod(size) and last >= storage.size:
            raise ArchiveError(f"has a tensor of size {size} reaching past its storage")
        view = np.lib.stride_tricks.as_strided(
            storage[offset:],
            shape=size,
            strides=tuple(s * storage.itemsize for s in stride),
            writeable=False,
        )
        return np.array(view)  # a copy: nothing aliases the storage


def load(path: str) -> Any:
    """The object saved in a PyTorch zip archive (a TorchScript module as ScriptObject records,
    a state dict as a dict of numpy arrays). ArchiveError, naming `path`, on anything else."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise ArchiveError(f"{path}: not a PyTorch zip archive ({error})") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ArchiveError(f"{path}: not a PyTorch zip archive (no <name>/data.pkl in it)")
        prefix = pickles[0][: -len("data.pkl")]
        budget = os.path.getsize(path)  # storages are stored uncompressed: at most the file
        try:
            data = archive.read(pickles[0])
            return _Unpickler(io.BytesIO(data), archive, prefix, budget).load()
        except ArchiveError as error:
            raise ArchiveError(f"{path}: {error}") from None
        except (*UNPICKLING_ERRORS, zipfile.BadZipFile) as error:
            raise ArchiveError(
                f"{path}: not a readable PyTorch archive ({type(error).__name__}: "
                f"{str(error)[:200]})"
            ) from None
