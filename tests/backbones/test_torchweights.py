"""PyTorch state-dict files read without PyTorch: real weights load, anything but a state dict is refused."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from zoomdream.backbones import efficientnet, torchweights
from zoomdream.errors import ZoomdreamError

SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


def _header() -> bytes:
    return b"".join(pickle.dumps(v, protocol=2) for v in (torchweights.LEGACY_MAGIC, 1001, SYS_INFO))


@pytest.fixture(scope="module")
def lite0_path():
    return efficientnet.packaged_weights_path("efficientnet-lite0")


def test_the_lite0_checkpoint_loads_with_its_names_shapes_and_dtypes(lite0_path):
    state = torchweights.load_state_dict(lite0_path)
    assert len(state) == 296
    assert list(state)[:2] == ["_conv_stem.weight", "_bn0.weight"]  # file order kept
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(v.flags.c_contiguous and v.flags.writeable for v in state.values())
    assert np.isfinite(state["_conv_head.weight"]).all() and 0.01 < np.abs(state["_conv_head.weight"]).mean() < 1


class _Evil:
    """Unpickling this runs a shell command (or eval): what a hostile .pth does to torch.load."""

    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return self.call, (self.arg,)


@pytest.mark.parametrize("where", ["state dict", "first pickle"])
@pytest.mark.parametrize("how", ["os.system", "builtins.eval"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, where, how):
    import builtins
    import os

    marker = tmp_path / "ran"
    if how == "os.system":
        payload = _Evil(os.system, f"touch {marker}")
    else:
        payload = _Evil(builtins.eval, f"open({str(marker)!r}, 'w').close()")
    evil = pickle.dumps(collections.OrderedDict(weight=payload), protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(_header() + evil if where == "state dict" else evil)
    with pytest.raises(ZoomdreamError) as info:
        torchweights.load_state_dict(path)
    msg = str(info.value)
    assert "evil.pth: refused" in msg and how.split(".")[1] in msg and "\n" not in msg
    assert not marker.exists()


def test_a_pickle_cannot_rewrite_the_stand_ins_it_is_given(tmp_path, lite0_path):
    # GLOBAL torch.FloatStorage, then BUILD {"name": "DoubleStorage"} on it: would make later files misread
    build = b"\x80\x02ctorch\nFloatStorage\n}X\x04\x00\x00\x00nameX\x0d\x00\x00\x00DoubleStoragesb."
    path = tmp_path / "build.pth"
    path.write_bytes(_header() + build)
    with pytest.raises(ZoomdreamError, match="build.pth: refused: the file names a BUILD of an object"):
        torchweights.load_state_dict(path)
    assert torchweights.load_state_dict(lite0_path)["_fc.weight"].dtype == np.float32


def test_a_file_that_holds_anything_but_a_state_dict_is_refused(tmp_path):
    for name, obj, reason in [("list.pth", [1, 2, 3], "holds a list, not a state dict"),
                              ("numbers.pth", {"a": 1.5}, "entry 'a' is a float, not a tensor"),
                              ("empty.pth", {}, "not a state dict")]:
        path = tmp_path / name
        path.write_bytes(_header() + pickle.dumps(obj, protocol=2) + pickle.dumps([], protocol=2))
        with pytest.raises(ZoomdreamError, match=f"{name}: refused: .*{reason}"):
            torchweights.load_state_dict(path)


def test_truncated_and_foreign_files_are_refused(tmp_path, lite0_path):
    data = lite0_path.read_bytes()
    for name, blob, reason in [("cut_storage.pth", data[: len(data) - 1000], "truncated"),
                               ("cut_pickle.pth", data[:5000], "not a PyTorch weights file"),
                               ("text.pth", b"hello, not weights", "not a PyTorch weights file"),
                               ("empty.pth", b"", "not a PyTorch weights file")]:
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(ZoomdreamError, match=f"{name}: .*{reason}") as info:
            torchweights.load_state_dict(path)
        assert "\n" not in str(info.value)
    with pytest.raises(ZoomdreamError, match="missing.pth: weights file not found"):
        torchweights.load_state_dict(tmp_path / "missing.pth")


# -- files written the way torch.save writes them, by a stand-in `torch` module ------------------------------


@pytest.fixture()
def fake_torch(monkeypatch):
    """`torch.FloatStorage`, `torch.LongStorage` and `torch._utils._rebuild_tensor_v2` as pickle sees them."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("FloatStorage", "LongStorage", "BFloat16Storage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, np.ascontiguousarray(array).ravel()


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.args = storage, (offset, size, stride)

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, *self.args, False, collections.OrderedDict())


def _pickle_state(torch, state) -> bytes:
    kinds = {np.dtype(np.float32): torch.FloatStorage, np.dtype(np.int64): torch.LongStorage,
             np.dtype(np.uint16): torch.BFloat16Storage}  # bfloat16 as its bit patterns

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", kinds[obj.array.dtype], obj.key, "cpu", obj.array.size)
            return None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(state)
    return buf.getvalue()


def _views(torch):
    """One shared storage seen through an offset, a transpose and a strided slice, plus int64 and bfloat16 ones."""
    base = np.arange(24, dtype=np.float32) * 0.5
    shared, longs = _Storage("140", base), _Storage("7", np.array([3, -4], np.int64))
    halves = _Storage("9", np.array([0x3F80, 0xC000, 0x3EC0], np.uint16))  # bfloat16 1, -2, 0.375
    state = collections.OrderedDict([
        ("a.weight", _Tensor(shared, 0, (2, 3, 4), (12, 4, 1))),
        ("a.transposed", _Tensor(shared, 0, (4, 6), (1, 4))),
        ("a.tail", _Tensor(shared, 20, (4,), (1,))),
        ("a.every_third", _Tensor(shared, 1, (2, 2), (9, 3))),
        ("count", _Tensor(longs, 0, (2,), (1,))),
        ("half", _Tensor(halves, 0, (3,), (1,))),
    ])
    want = {"a.weight": base.reshape(2, 3, 4), "a.transposed": base.reshape(6, 4).T, "a.tail": base[20:],
            "a.every_third": np.array([[base[1], base[4]], [base[10], base[13]]]), "count": np.array([3, -4]),
            "half": np.array([1, -2, 0.375], np.float32)}
    return state, [shared, longs, halves], want


def test_offsets_strides_and_shared_storages_read_as_pytorch_would(tmp_path, fake_torch):
    state, storages, want = _views(fake_torch)
    blob = _header() + _pickle_state(fake_torch, state) + pickle.dumps([s.key for s in storages], protocol=2)
    blob += b"".join(struct.pack("<q", s.array.size) + s.array.astype(s.array.dtype.newbyteorder("<")).tobytes()
                     for s in storages)
    path = tmp_path / "views.pth"
    path.write_bytes(blob)
    got = torchweights.load_state_dict(path)
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
        assert got[k].dtype == want[k].dtype


def test_the_zip_format_reads_the_same_tensors(tmp_path, fake_torch):
    state, storages, want = _views(fake_torch)
    path = tmp_path / "new.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("new/data.pkl", _pickle_state(fake_torch, state))
        z.writestr("new/byteorder", "little")
        for s in storages:
            z.writestr(f"new/data/{s.key}", s.array.tobytes())
    got = torchweights.load_state_dict(path)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_a_tensor_past_the_end_of_its_storage_is_refused(tmp_path, fake_torch):
    small = _Storage("1", np.zeros(4, np.float32))
    blob = _header() + _pickle_state(fake_torch, {"w": _Tensor(small, 2, (3,), (1,))})
    blob += pickle.dumps(["1"], protocol=2) + struct.pack("<q", 4) + small.array.tobytes()
    path = tmp_path / "overrun.pth"
    path.write_bytes(blob)
    with pytest.raises(ZoomdreamError, match="overrun.pth: a tensor reaches past the end of its storage"):
        torchweights.load_state_dict(path)
