"""Crafted files: every reader checks declared sizes before allocating and names the file."""
import resource

import h5py
import numpy as np
import pytest

import spikefuse.data._limits as limits
from spikefuse.data.cifar10dvs import read_cifar10dvs_aedat
from spikefuse.data.events import NMNIST, SHD, CorruptDatasetError, DVSGesture, read_gesture_npy, read_nmnist_bin

from test_data_events import make_gesture, make_nmnist, nmnist_bytes, write_heidelberg


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _refused(root, match):
    before = _rss_mb()
    with pytest.raises(CorruptDatasetError, match=match) as ei:
        SHD(root, "train")[0]
    assert str(root / "shd_train.h5") in str(ei.value) and "\n" not in str(ei.value)
    assert _rss_mb() - before < 200  # no GiB allocation on the way to the error


def _sparse(path, n, *, labels_only=False):
    """A few-kB file declaring ``n`` samples whose chunks were never written."""
    with h5py.File(path, "w") as f:
        sp = f.create_group("spikes")
        if labels_only:
            write = [([0.1], [1])] * 2
            sp.create_dataset("times", (2,), dtype=h5py.vlen_dtype(np.float32))
            sp.create_dataset("units", (2,), dtype=h5py.vlen_dtype(np.uint16))
            for i, (t, u) in enumerate(write):
                sp["times"][i], sp["units"][i] = np.float32(t), np.uint16(u)
        else:
            sp.create_dataset("times", (n,), dtype=h5py.vlen_dtype(np.float32), chunks=(1000,))
            sp.create_dataset("units", (n,), dtype=h5py.vlen_dtype(np.uint16), chunks=(1000,))
        f.create_dataset("labels", (n,), dtype=np.int64, chunks=(1000,))


def test_hdf5_declared_counts_above_limits(tmp_path):
    _sparse(tmp_path / "shd_train.h5", 10**9)
    assert (tmp_path / "shd_train.h5").stat().st_size < 10_000
    _refused(tmp_path, "declares 1000000000 entries in /labels")


def test_hdf5_declared_bytes_not_stored(tmp_path):
    _sparse(tmp_path / "shd_train.h5", 10**6)  # below the limits, but no chunk was written
    _refused(tmp_path, "stores only")


def test_hdf5_vlen_length_beyond_file(tmp_path):
    p = tmp_path / "shd_train.h5"
    write_heidelberg(p, [([0.1, 0.2], [1, 2]), ([0.3], [4])], [1, 2])
    with h5py.File(p, "r") as f:
        off = f["spikes/times"].id.get_offset()
    data = bytearray(p.read_bytes())
    data[off + 16: off + 20] = (10**7).to_bytes(4, "little")  # sample 1 claims 10 M spike times
    p.write_bytes(bytes(data))
    _refused(tmp_path, r"events in /spikes/times .* but the file holds only")
    data[off + 16: off + 20] = (2**31).to_bytes(4, "little")
    p.write_bytes(bytes(data))
    _refused(tmp_path, "events in sample 1 of /spikes/times")


def test_hdf5_scalar_and_non_vlen(tmp_path):
    p = tmp_path / "shd_train.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("spikes/times", data=1.0)
        f.create_dataset("spikes/units", data=1)
        f.create_dataset("labels", data=3)
    _refused(tmp_path, "/labels must be a 1-D dataset .* got a scalar")
    with h5py.File(p, "w") as f:
        f.create_dataset("spikes/times", (3,), dtype=np.float32)
        f.create_dataset("spikes/units", (3,), dtype=np.int16)
        f.create_dataset("labels", data=np.zeros(3, np.uint8))
    _refused(tmp_path, "variable-length")
    with h5py.File(p, "w") as f:
        f.create_group("spikes/times")
        f.create_dataset("spikes/units", (3,), dtype=np.int16)
        f.create_dataset("labels", data=np.zeros(3, np.uint8))
    _refused(tmp_path, "missing dataset /spikes/times")


def test_hdf5_chunked_uncompressed_and_compressed_layouts(tmp_path):
    for j, kw in enumerate((dict(chunks=(2,)), dict(chunks=(2,), compression="gzip"))):
        (tmp_path / str(j)).mkdir()
        p = tmp_path / str(j) / "shd_train.h5"
        with h5py.File(p, "w") as f:
            for key, dt, vals in (("times", np.float32, [[0.1, 0.2], [0.3], []]), ("units", np.uint16, [[1, 2], [4], []])):
                ds = f.create_dataset(f"spikes/{key}", (3,), dtype=h5py.vlen_dtype(dt), **kw)
                for i, v in enumerate(vals):
                    ds[i] = np.asarray(v, dt)
            f.create_dataset("labels", data=np.array([0, 1, 2], np.uint8))
        ds = SHD(tmp_path / str(j), "train", T=2, max_time=0.4)
        assert ds[0][0].sum() == 2 and ds[1][0].sum() == 1 and ds[2][0].sum() == 0
        assert (ds._lengths is None) == ("compression" in kw)


def test_event_file_size_limit(tmp_path, monkeypatch):
    make_nmnist(tmp_path)
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 9)
    p = tmp_path / "Train" / "3" / "00001.bin"
    with pytest.raises(CorruptDatasetError, match=r"00001\.bin: 20 bytes is larger than .*limit 9"):
        read_nmnist_bin(p)
    with pytest.raises(CorruptDatasetError, match="limit 9"):
        NMNIST(tmp_path, "train")[0]


def _npy_with_shape(path, shape):
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
        fh.write(b"\x00" * 64)


@pytest.mark.parametrize("shape", [(10**12, 4), (2**40, 2**40)])  # the second overflows an int64 product
def test_npy_header_declaring_huge_shape(tmp_path, shape):
    p = tmp_path / "0.npy"
    _npy_with_shape(p, shape)
    before = _rss_mb()
    with pytest.raises(CorruptDatasetError, match=r"0\.npy: truncated .npy file"):
        read_gesture_npy(p)
    assert _rss_mb() - before < 200


def test_hidden_and_system_folders_ignored(tmp_path):
    make_nmnist(tmp_path)
    for junk in ("__MACOSX", ".git"):
        (tmp_path / "Train" / junk / "3").mkdir(parents=True)
        (tmp_path / "Train" / junk / "3" / "._00001.bin").write_bytes(b"\x00" * 3)
    (tmp_path / "Train" / "3" / "._00001.bin").write_bytes(b"\x00" * 3)  # macOS resource fork
    ds = NMNIST(tmp_path, "train", T=3)
    assert len(ds) == 2 and ds.labels.tolist() == [3, 7]
    make_gesture(tmp_path)
    (tmp_path / "ibmGestureTrain" / "__MACOSX" / "user01_led").mkdir(parents=True)
    (tmp_path / "ibmGestureTrain" / "__MACOSX" / "user01_led" / "._3.npy").write_bytes(b"junk")
    (tmp_path / "ibmGestureTrain" / ".cache").mkdir()
    (tmp_path / "ibmGestureTrain" / ".cache" / "5.npy").write_bytes(b"junk")
    assert len(DVSGesture(tmp_path, "train", T=2)) == 2


def test_aedat_truncated_and_limit(tmp_path, monkeypatch):
    p = tmp_path / "a.aedat"
    p.write_bytes(b"#!AER-DAT2.0\r\n# x\r\n" + b"\x00" * 12)
    with pytest.raises(CorruptDatasetError, match=r"a\.aedat: 12 event bytes"):
        read_cifar10dvs_aedat(p)
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 10)
    with pytest.raises(CorruptDatasetError, match="larger than"):
        read_cifar10dvs_aedat(p)
    assert nmnist_bytes([]) == b""
