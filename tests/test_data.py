"""The MNIST loader: real files, every kind of bad file, the cache and the download path."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from reprodl import data

LABEL_COUNTS_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
LABEL_COUNTS_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SMALL = "t10k-labels-idx1-ubyte"


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return data.load_mnist(mnist_dir)


def test_real_mnist_shapes_types_and_split(mnist):
    assert mnist.full_train.images.shape == (60000, 28, 28)
    assert mnist.full_train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.full_train.labels.dtype == np.int64
    assert (len(mnist.train), len(mnist.validation), len(mnist.test)) == (55000, 5000, 10000)
    # read_data_sets: validation is the first 5,000 training examples, train the rest
    np.testing.assert_array_equal(mnist.validation.images, mnist.full_train.images[:5000])
    np.testing.assert_array_equal(mnist.train.labels, mnist.full_train.labels[5000:])


def test_real_mnist_matches_published_statistics(mnist):
    assert np.bincount(mnist.full_train.labels).tolist() == LABEL_COUNTS_TRAIN
    assert np.bincount(mnist.test.labels).tolist() == LABEL_COUNTS_TEST
    assert round(float(mnist.full_train.images.mean() / 255), 7) == 0.1306605


def test_hashes_match_shared_readme(mnist_dir):
    readme = Path(mnist_dir) / "README.md"
    if not readme.exists():
        pytest.skip("no README beside the data")
    table = dict(
        re.findall(
            r"\|\s*([a-z0-9-]+-ubyte)\s*\|\s*[\d,]+\s*\|\s*([0-9a-f]{64})", readme.read_text()
        )
    )
    assert table == {name: digest for name, (digest, _) in data.FILES.items()}


def test_md5_of_train_images_is_the_published_one(mnist_dir):
    content = gzip.decompress((Path(mnist_dir) / "train-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.md5(content).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"


SPLITS = ("train", "validation", "test", "full_train")


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("field", ["images", "labels"])
def test_loaded_arrays_are_read_only(mnist, split, field):
    array = getattr(getattr(mnist, split), field)
    before = array[:3].copy()
    assert not array.flags.writeable
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        array[0] = 7
    with pytest.raises(ValueError, match="output array is read-only"):
        array += 1
    with pytest.raises(ValueError, match="cannot set WRITEABLE flag to True"):
        array.flags.writeable = True
    np.testing.assert_array_equal(array[:3], before)
    # the splits are views of one cached copy: that is why none of them may be written
    assert np.shares_memory(
        array, getattr(mnist.full_train if split != "test" else mnist.test, field)
    )


def test_a_copy_is_writable_and_leaves_the_cache_alone(mnist):
    labels = mnist.train.labels.copy()
    labels[:] = 0
    assert mnist.train.labels.any() and data.load_mnist(mnist.source).train.labels.any()


def test_to_float_scales_to_unit_interval(mnist):
    x = data.to_float(mnist.test.images[:10])
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() == 1.0


# -- IDX parsing on synthetic bytes ------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_roundtrip():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(a)), a)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x00\x01\x08\x01" + b"\x00" * 8, "wrong magic"),
        (b"\x00\x00\x0d\x01" + b"\x00" * 8, "wrong magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (idx_bytes(np.zeros((4, 2)))[:-1], "declares"),
        (idx_bytes(np.zeros((4, 2))) + b"\x00", "declares"),
    ],
)
def test_parse_idx_rejects_bad_bytes(content, message):
    with pytest.raises(data.MnistError, match=message):
        data.parse_idx(content, "some-file")


# -- bad files in an explicit folder: clear error naming the file, nothing modified ----------


@pytest.fixture
def folder_copy(mnist_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.FILES:
        shutil.copy(Path(mnist_dir) / f"{name}.gz", folder / f"{name}.gz")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_uncompressed_files_are_accepted(folder_copy):
    gz = folder_copy / f"{SMALL}.gz"
    (folder_copy / SMALL).write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    assert len(data.load_mnist(folder_copy).test) == 10000


def test_data_env_variable_is_used(folder_copy, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(folder_copy))
    assert data.load_mnist().source == str(folder_copy.resolve())


def corrupt_truncated(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def corrupt_not_gzip(p: Path) -> None:
    p.write_bytes(b"this is not gzip")


def corrupt_one_byte(p: Path) -> None:
    content = bytearray(gzip.decompress(p.read_bytes()))
    content[-1] ^= 0xFF
    p.write_bytes(gzip.compress(bytes(content)))


def corrupt_short_content(p: Path) -> None:
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-100]))


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (corrupt_truncated, "not a valid gzip"),
        (corrupt_not_gzip, "not a valid gzip"),
        (corrupt_one_byte, "does not match"),
        (corrupt_short_content, "truncated"),
    ],
)
def test_bad_file_gives_clear_error_and_is_left_alone(folder_copy, corrupt, message):
    bad = folder_copy / f"{SMALL}.gz"
    corrupt(bad)
    before = snapshot(folder_copy)
    with pytest.raises(data.MnistError, match=message) as err:
        data.load_mnist(folder_copy)
    assert str(bad) in str(err.value)
    assert snapshot(folder_copy) == before


def test_truncated_and_overlong_raw_files_are_named(folder_copy):
    content = gzip.decompress((folder_copy / f"{SMALL}.gz").read_bytes())
    (folder_copy / f"{SMALL}.gz").unlink()
    raw = folder_copy / SMALL
    raw.write_bytes(content[:5004])
    with pytest.raises(
        data.MnistError, match=r"5,004 bytes of content, expected 10,008 \(truncated\)"
    ):
        data.load_mnist(folder_copy)
    raw.write_bytes(content + b"\x00")
    with pytest.raises(
        data.MnistError, match=r"10,009 bytes of content, expected 10,008 \(too long\)"
    ):
        data.load_mnist(folder_copy)


def _touch(path: Path, seconds_later: int) -> None:
    """Move ``path``'s modification time, as any rewrite of the file does."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds_later * 10**9))


def test_load_mnist_caches_per_folder_and_rereads_a_changed_file(folder_copy, tmp_path):
    first = data.load_mnist(folder_copy)
    assert data.load_mnist(folder_copy) is first  # the same arrays, not read again
    assert data.load_mnist(folder_copy / ".." / folder_copy.name) is first  # the same folder
    # another folder with the same files: fresh arrays, with their own source
    other = tmp_path / "other"
    shutil.copytree(folder_copy, other)
    elsewhere = data.load_mnist(other)
    assert elsewhere is not first and elsewhere.source == str(other.resolve())
    assert not np.shares_memory(elsewhere.test.labels, first.test.labels)
    np.testing.assert_array_equal(elsewhere.test.labels, first.test.labels)
    # a file rewritten with the same content (a new modification time): read again
    _touch(folder_copy / f"{SMALL}.gz", 5)
    again = data.load_mnist(folder_copy)
    assert again is not first and not again.test.labels.flags.writeable
    np.testing.assert_array_equal(again.test.labels, first.test.labels)
    # a file recompressed differently (another size): read again and verified again
    gz = folder_copy / f"{SMALL}.gz"
    gz.write_bytes(gzip.compress(gzip.decompress(gz.read_bytes()), compresslevel=1))
    recompressed = data.load_mnist(folder_copy)
    assert recompressed is not again
    np.testing.assert_array_equal(recompressed.test.labels, first.test.labels)
    # a file corrupted after it was loaded is never served from the cache
    corrupt_not_gzip(gz)
    with pytest.raises(data.MnistError, match=f"{SMALL}.gz: not a valid gzip file"):
        data.load_mnist(folder_copy)
    # a file replaced by its uncompressed twin: another path, read again
    gz.unlink()
    (folder_copy / SMALL).write_bytes(gzip.decompress((other / f"{SMALL}.gz").read_bytes()))
    raw = data.load_mnist(folder_copy)
    assert raw is not recompressed
    np.testing.assert_array_equal(raw.test.labels, first.test.labels)


def test_missing_file_is_named(folder_copy):
    (folder_copy / f"{SMALL}.gz").unlink()
    with pytest.raises(data.MnistError, match=SMALL):
        data.load_mnist(folder_copy)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(data.MnistError, match="does-not-exist"):
        data.load_mnist(tmp_path / "does-not-exist")


# -- cache and download, against a server on the loopback interface ---------------------------


@pytest.fixture
def mirror(tmp_path):
    """An HTTP server on 127.0.0.1 serving a folder; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(data, "cache_dir", lambda: cache)
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    return cache


def test_download_fills_cache_and_verifies(mirror, empty_cache, mnist_dir):
    served, url = mirror
    for name in data.FILES:
        shutil.copy(Path(mnist_dir) / f"{name}.gz", served / f"{name}.gz")
    mnist = data.load_mnist(mirrors=[url])
    assert len(mnist.full_train) == 60000
    assert sorted(p.name for p in empty_cache.iterdir()) == sorted(f"{n}.gz" for n in data.FILES)
    # the second load is served from memory: no mirror is asked
    assert data.load_mnist(mirrors=["http://127.0.0.1:9/"]) is mnist
    # a cached file that changed is read again (and verified) from the cache folder
    _touch(empty_cache / f"{SMALL}.gz", 5)
    again = data.load_mnist(mirrors=["http://127.0.0.1:9/"])
    assert again is not mnist and not again.full_train.labels.flags.writeable
    np.testing.assert_array_equal(again.test.labels, mnist.test.labels)


def test_download_skips_bad_mirror_and_leaves_no_partial_file(mirror, tmp_path, mnist_dir):
    served, url = mirror
    (served / f"{SMALL}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01garbage"))
    dest = tmp_path / "dest"
    with pytest.raises(data.DownloadError, match="could not download") as err:
        data.download(SMALL, dest, mirrors=[url, "http://127.0.0.1:9/"])
    assert "bytes of content" in str(err.value) and "127.0.0.1:9" in str(err.value)
    assert list(dest.iterdir()) == []
    # the second mirror in the list is used when the first one fails
    shutil.copy(Path(mnist_dir) / f"{SMALL}.gz", served / f"{SMALL}.gz")
    path = data.download(SMALL, dest, mirrors=["http://127.0.0.1:9/", url])
    assert path == dest / f"{SMALL}.gz"
    assert sorted(p.name for p in dest.iterdir()) == [f"{SMALL}.gz"]
    data.verify(SMALL, gzip.decompress(path.read_bytes()), path)


def test_no_network_gives_clear_error(empty_cache):
    with pytest.raises(data.DownloadError, match="no network"):
        data.load_mnist(mirrors=["http://127.0.0.1:9/"])


def test_bad_cached_file_is_replaced_not_trusted(mirror, empty_cache, mnist_dir):
    served, url = mirror
    empty_cache.mkdir(parents=True)
    for name in data.FILES:
        shutil.copy(Path(mnist_dir) / f"{name}.gz", served / f"{name}.gz")
        shutil.copy(Path(mnist_dir) / f"{name}.gz", empty_cache / f"{name}.gz")
    corrupt_one_byte(empty_cache / f"{SMALL}.gz")
    mnist = data.load_mnist(mirrors=[url])
    assert np.bincount(mnist.test.labels).tolist() == LABEL_COUNTS_TEST
    data.verify(SMALL, gzip.decompress((empty_cache / f"{SMALL}.gz").read_bytes()), "cache")
