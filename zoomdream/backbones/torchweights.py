"""Read PyTorch state-dict files (``.pth``) into numpy arrays, without PyTorch.

A ``.pth`` file is a pickle, and a pickle can name any importable callable and call it
while it loads: ``torch.load`` of a stranger's file can run anything. This reader unpickles
with an allow-list of exactly the names a state dict needs (the tensor-rebuild functions,
the typed storage classes, ``collections.OrderedDict``), each mapped to a stand-in of our
own, so nothing from the file is ever imported or called. Everything else is refused.

Two layouts are read:

- *legacy* (``torch.save(..., _use_new_zipfile_serialization=False)``, and every file from
  PyTorch < 1.6): five pickles in a row (magic number, protocol version, system info, the
  state dict, whose tensors refer to storages by persistent id, and the list of storage
  keys), then each storage in that order as an int64 little-endian element count followed
  by its raw little-endian bytes;
- *zip* (PyTorch >= 1.6): ``<name>/data.pkl`` (the state dict, same persistent ids) and one
  member ``<name>/data/<key>`` of raw bytes per storage.

Convention: tensors come back as C-contiguous numpy arrays of the storage's dtype, in
PyTorch's own layout (a convolution kernel is (out, in, kh, kw)); the storage offset, size
and stride of each tensor are honoured, so views of a shared storage read what PyTorch would.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoomdream.errors import ZoomdreamError

__all__ = ["load_state_dict", "LEGACY_MAGIC"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the legacy format's first pickle
LEGACY_PROTOCOL = 1001  # its second

# torch.<Name>Storage -> numpy dtype (little-endian). The only classes a state dict's pickle names.
# numpy has no bfloat16: those storages are read as their 16-bit patterns and widened to float32.
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


class _Refused(Exception):
    """Something in the file that a state dict does not hold; becomes a one-line ZoomdreamError."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` and friends: only the dtype matters."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_DTYPES[self.name])


@dataclass(frozen=True, slots=True)
class _StorageRef:
    """A storage the pickle points at by persistent id; its bytes come later (legacy) or from a zip member."""

    key: str
    dtype: np.dtype
    numel: int
    view: tuple | None = None  # legacy views: (view key, offset in elements, size in elements)
    bfloat16: bool = False  # the elements are bfloat16 bit patterns (uint16)


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """What ``torch._utils._rebuild_tensor_v2`` was asked to build; made real once the storages are read."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _refuse_build(self, state):
    raise _Refused("a BUILD of an object after it was made, which a state dict never needs")


# A pickle's BUILD opcode sets an object's state after it was made, through ``__setstate__`` or
# else its ``__dict__``. The stand-ins have no ``__dict__`` (slots) and refuse ``__setstate__``
# (which slotted frozen dataclasses would otherwise get), so nothing in the file alters one
# after it was checked.
for _cls in (_StorageType, _StorageRef, _TensorRef):
    _cls.__setstate__ = _refuse_build


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _StorageRef) or not _ints(size) or not _ints(stride) or len(size) != len(stride) \
            or not isinstance(storage_offset, int) or storage_offset < 0:
        raise _Refused("a tensor with a malformed storage, size or stride")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _TensorRef):
        raise _Refused("a parameter that is not a tensor")
    return data


def _ints(values) -> bool:
    return isinstance(values, tuple) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                             for v in values)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that knows only the names above; ``find_class`` refuses the rest before anything runs."""

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)  # a fresh one per file
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"'{module}.{name}', which a state dict never needs") from None

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata])
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int) and pid[4] >= 0):
            raise _Refused(f"an unknown persistent id {str(pid)[:60]}")
        view = pid[5] if len(pid) == 6 else None
        if view is not None and not (isinstance(view, tuple) and len(view) == 3 and _ints(view[1:])):
            raise _Refused("a malformed storage view")
        return _StorageRef(pid[2], pid[1].dtype, pid[4], view, pid[1].name == "BFloat16Storage")


def _unpickle(data, path) -> object:
    try:
        return _StateDictUnpickler(data if hasattr(data, "read") else io.BytesIO(data)).load()
    except _Refused as e:
        raise ZoomdreamError(f"{path}: refused: the file names {e}; only PyTorch state dicts are read") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, MemoryError, RecursionError) as e:
        raise ZoomdreamError(f"{path}: not a PyTorch weights file ({type(e).__name__}: {str(e)[:80]})") from None


def _check_state_dict(obj, path) -> dict:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # training checkpoints often wrap it
    if not isinstance(obj, dict) or not obj:
        raise ZoomdreamError(f"{path}: refused: the file holds a {type(obj).__name__}, not a state dict "
                             "(a mapping of names to tensors)")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, _TensorRef):
            raise ZoomdreamError(f"{path}: refused: entry {str(k)[:60]!r} is a {type(v).__name__}, not a tensor; "
                                 "only state dicts (names -> tensors) are read")
    return obj


def _tensor(ref: _TensorRef, storages: dict, path) -> np.ndarray:
    flat = storages[ref.storage.key]
    if ref.storage.view is not None:
        _, start, n = ref.storage.view
        flat = flat[start:start + n]
    if not ref.size or 0 not in ref.size:
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
        if last >= flat.size:
            raise ZoomdreamError(f"{path}: a tensor reaches past the end of its storage "
                                 f"({last + 1} > {flat.size} elements); the file is damaged")
    else:
        return np.zeros(ref.size, np.float32 if ref.storage.bfloat16 else flat.dtype.newbyteorder("="))
    view = np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.size,
                                           strides=[s * flat.itemsize for s in ref.stride], writeable=False)
    if ref.storage.bfloat16:  # the top half of a float32
        return (view.astype(np.uint32) << 16).view(np.float32)
    return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C")  # a copy: native byte order, own memory


def _load_legacy(f, path) -> dict[str, np.ndarray]:
    if _unpickle(f, path) != LEGACY_MAGIC:
        raise ZoomdreamError(f"{path}: not a PyTorch weights file (no legacy magic number and not a zip)")
    if _unpickle(f, path) != LEGACY_PROTOCOL:
        raise ZoomdreamError(f"{path}: unsupported PyTorch file protocol version")
    info = _unpickle(f, path)
    if isinstance(info, dict) and info.get("little_endian") is False:
        raise ZoomdreamError(f"{path}: a big-endian PyTorch file; only little-endian files are read")
    state = _check_state_dict(_unpickle(f, path), path)
    keys = _unpickle(f, path)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ZoomdreamError(f"{path}: not a PyTorch weights file (malformed storage list)")
    wanted = {ref.storage.key: ref.storage.dtype for ref in state.values()}
    if set(wanted) - set(keys):
        raise ZoomdreamError(f"{path}: a tensor refers to a storage the file does not contain; the file is damaged")
    storages = {}
    for key in keys:
        head = f.read(8)
        if len(head) != 8:
            raise ZoomdreamError(f"{path}: truncated (storage {len(storages) + 1} of {len(keys)} is missing)")
        (numel,) = struct.unpack("<q", head)
        if key not in wanted:  # torch.save writes only the storages its tensors use
            raise ZoomdreamError(f"{path}: storage {key[:20]} belongs to no tensor; the file is damaged")
        dtype = wanted[key]
        nbytes = numel * dtype.itemsize
        data = f.read(nbytes) if numel >= 0 else b""
        if numel < 0 or len(data) != nbytes:
            raise ZoomdreamError(f"{path}: truncated (storage {len(storages) + 1} of {len(keys)} ends early)")
        storages[key] = np.frombuffer(data, dtype)
    return {name: _tensor(ref, storages, path) for name, ref in state.items()}


def _load_zip(path) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pkl) != 1:
                raise ZoomdreamError(f"{path}: a zip file without one <name>/data.pkl; not a PyTorch weights file")
            root = pkl[0][: -len("data.pkl")]
            if root + "byteorder" in names and z.read(root + "byteorder").strip() != b"little":
                raise ZoomdreamError(f"{path}: a big-endian PyTorch file; only little-endian files are read")
            state = _check_state_dict(_unpickle(z.read(pkl[0]), path), path)
            storages = {}
            for ref in state.values():
                key = ref.storage.key
                if key not in storages:
                    try:
                        data = z.read(f"{root}data/{key}")
                    except KeyError:
                        raise ZoomdreamError(f"{path}: storage {key} is missing from the zip; the file is damaged") \
                            from None
                    usable = len(data) // ref.storage.dtype.itemsize * ref.storage.dtype.itemsize
                    storages[key] = np.frombuffer(data[:usable], ref.storage.dtype)
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ZoomdreamError(f"{path}: unreadable zip ({str(e)[:80]})") from None
    return {name: _tensor(ref, storages, path) for name, ref in state.items()}


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state-dict file, by name, as numpy arrays (PyTorch layout).

    Raises a one-line ZoomdreamError naming ``path`` when the file is missing, truncated,
    not a PyTorch file, or holds anything but a mapping of names to tensors (code objects,
    modules, other classes: refused before anything in the file is called).
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            return _load_legacy(f, path)
    except FileNotFoundError:
        raise ZoomdreamError(f"{path}: weights file not found") from None
    except IsADirectoryError:
        raise ZoomdreamError(f"{path}: a directory, not a weights file") from None
