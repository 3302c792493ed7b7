"""The real MNIST: find it, verify it, parse it, split it.

Sources, in order: the ``data_dir`` argument, the ``REPRODL_DATA`` environment variable, the
cache folder, and last the public mirrors (downloaded into the cache). Every file is checked
against the SHA-256 of its *uncompressed* IDX content before it is used, so a ``.gz`` recompressed
differently is accepted and a corrupt or truncated file never is. IDX is parsed with NumPy.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reprodl.errors import DownloadError, MnistError

#: Environment variable naming a folder with the four MNIST files.
DATA_ENV = "REPRODL_DATA"

#: SHA-256 of the uncompressed IDX content, and the content's size in bytes.
FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60_008,
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7_840_016,
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10_008,
    ),
}

#: Public mirrors of the four ``.gz`` files, tried in order.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)

#: Size of the validation set carved from the front of the training file, as TF1's
#: ``read_data_sets`` did.
VALIDATION_SIZE = 5000

_IDX_DTYPES = {0x08: np.uint8}


@dataclass(frozen=True)
class Split:
    """Images as uint8 ``(n, 28, 28)`` and labels as int64 ``(n,)``.

    The splits :func:`load_mnist` returns are read-only views of one process-wide copy: writing
    into them raises ``ValueError``; take ``.copy()`` to change an array.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Mnist:
    """The data set: the classic 55,000/5,000/10,000 split, plus the full 60,000 training set."""

    train: Split
    validation: Split
    test: Split
    full_train: Split
    source: str


def cache_dir() -> Path:
    """The platform cache folder where downloads are kept."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("reprodl")) / "mnist"


def _gunzip(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise MnistError(f"{path}: not a valid gzip file ({exc})") from exc


def _read_content(path: Path) -> bytes:
    """The uncompressed bytes of ``path`` (gzip or raw IDX)."""
    return _gunzip(path) if path.suffix == ".gz" else path.read_bytes()


def verify(name: str, content: bytes, origin: str | Path) -> None:
    """Raise :class:`MnistError` unless ``content`` is exactly the known file ``name``."""
    digest, size = FILES[name]
    if len(content) != size:
        raise MnistError(
            f"{origin}: {len(content):,} bytes of content, expected {size:,} "
            f"({'truncated' if len(content) < size else 'too long'})"
        )
    actual = hashlib.sha256(content).hexdigest()
    if actual != digest:
        raise MnistError(f"{origin}: SHA-256 {actual} does not match the known {digest}")


def parse_idx(content: bytes, origin: str | Path = "<bytes>") -> np.ndarray:
    """Parse an IDX file (unsigned-byte data) into an array of its declared shape."""
    if len(content) < 4:
        raise MnistError(f"{origin}: too short for an IDX header ({len(content)} bytes)")
    zero, dtype_code, ndim = content[0] << 8 | content[1], content[2], content[3]
    if zero != 0 or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise MnistError(
            f"{origin}: wrong magic number 0x{content[:4].hex()} (not an IDX ubyte file)"
        )
    header = 4 + 4 * ndim
    if len(content) < header:
        raise MnistError(f"{origin}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(content) != expected:
        raise MnistError(
            f"{origin}: IDX header declares {shape} ({expected:,} bytes), file has {len(content):,}"
        )
    return np.frombuffer(content, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(shape)


def _find_in(folder: Path, name: str) -> Path | None:
    """The file ``name`` in ``folder``: uncompressed if it is there (no gunzip to pay; verified
    alike), else ``name.gz``."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_verified(path: Path, name: str) -> bytes:
    content = _read_content(path)
    verify(name, content, path)
    return content


def download(
    name: str, dest_dir: Path, mirrors: Sequence[str] = MIRRORS, timeout: float = 30
) -> Path:
    """Fetch ``name.gz`` from the first mirror that delivers verified content.

    The bytes go to a temporary file in ``dest_dir`` that is renamed into place only after its
    content matches the known SHA-256, so an interrupted or corrupt download never replaces a file.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{name}.gz"
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{name}.gz"
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
            verify(name, _gunzip(tmp), url)
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, OSError, MnistError) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(
        f"could not download {name}.gz from any mirror (no network?). Put the four MNIST files "
        f"in a folder and pass it as data_dir or set {DATA_ENV}.\n  " + "\n  ".join(failures)
    )


def _from_folder(folder: Path) -> dict[str, bytes]:
    """Read and verify all four files from an explicit folder; never modifies it."""
    if not folder.is_dir():
        raise MnistError(f"MNIST folder {folder} does not exist")
    contents = {}
    for name in FILES:
        path = _find_in(folder, name)
        if path is None:
            raise MnistError(f"{folder}: missing {name}.gz (or uncompressed {name})")
        contents[name] = _load_verified(path, name)
    return contents


def _from_cache(folder: Path, mirrors: Sequence[str]) -> dict[str, bytes]:
    """Use verified cached files; download missing ones and replace any bad one."""
    contents = {}
    for name in FILES:
        path = _find_in(folder, name)
        if path is not None:
            try:
                contents[name] = _load_verified(path, name)
                continue
            except MnistError:
                pass  # a bad cached file is replaced, never trusted
        contents[name] = _load_verified(download(name, folder, mirrors), name)
    return contents


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array``, itself made read-only, so that the view cannot be made
    writable again (NumPy refuses ``writeable = True`` on a view of a read-only base)."""
    array.flags.writeable = False
    return array.view()


def _split(contents: dict[str, bytes], source: str) -> Mnist:
    """The four arrays, read-only (every split is a view of them, and they are cached)."""
    arrays = {name: parse_idx(content, name) for name, content in contents.items()}
    train_images = _read_only(arrays["train-images-idx3-ubyte"])
    train_labels = _read_only(arrays["train-labels-idx1-ubyte"].astype(np.int64))
    test = Split(
        _read_only(arrays["t10k-images-idx3-ubyte"]),
        _read_only(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)),
    )
    v = VALIDATION_SIZE
    return Mnist(
        train=Split(train_images[v:], train_labels[v:]),
        validation=Split(train_images[:v], train_labels[:v]),
        test=test,
        full_train=Split(train_images, train_labels),
        source=source,
    )


_LOADED: dict[tuple, Mnist] = {}


def _state(folder: Path) -> tuple:
    """Identity of a folder's MNIST files (path, size, mtime), so a changed file is re-read."""
    found = [_find_in(folder, name) for name in FILES]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) if p else None for p in found)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, mirrors: Sequence[str] = MIRRORS
) -> Mnist:
    """Load verified MNIST: ``data_dir``, else ``$REPRODL_DATA``, else the cache, else download.

    Raises :class:`MnistError` for a missing folder or file or a corrupt one,
    :class:`DownloadError` when nothing can be fetched. Arrays are read-only.
    """
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None
    if explicit is not None:
        folder = Path(explicit).expanduser().resolve()
        key = ("folder", str(folder), _state(folder) if folder.is_dir() else None)
        if key not in _LOADED:
            _LOADED[key] = _split(_from_folder(folder), str(folder))
    else:
        folder = cache_dir()
        key = ("cache", str(folder), _state(folder) if folder.is_dir() else None)
        if key not in _LOADED:
            mnist = _split(_from_cache(folder, mirrors), str(folder))
            key = ("cache", str(folder), _state(folder))
            _LOADED[key] = mnist
    return _LOADED[key]


def to_float(images: np.ndarray) -> np.ndarray:
    """Scale uint8 images to float32 in [0, 1], the input every model of the book expects."""
    return (np.asarray(images, dtype=np.float32) / np.float32(255)).astype(np.float32)
