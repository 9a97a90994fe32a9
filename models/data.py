"""Image data for the discrete-latent benchmarks: loaders, splits, dynamic binarisation, batches.

Every loader returns a :class:`Dataset` of float32 pixel intensities in ``[0, 1]``, flattened to
``[N, D]``, split into train/valid/test as in the ARMS and CARMS experiments:

================= ============================================ ====== ====== ====== =======
name              source                                       train  valid  test   image
================= ============================================ ====== ====== ====== =======
``digits``        scikit-learn's bundled 8x8 digits (offline)  1,197  300    300    8x8
``fashion_mnist`` Debian package ``dataset-fashion-mnist``     50,000 10,000 10,000 28x28
``mnist``         MNIST IDX files in a local directory         50,000 10,000 10,000 28x28
``omniglot``      the IWAE ``chardata.mat`` (a local file)     23,000 1,345  8,070  28x28
================= ============================================ ====== ====== ====== =======

The MNIST-style splits are: train = the first 50,000 training images, valid = the last 10,000,
test = the 10,000 test images. The digits split is a seeded permutation (seed
:data:`DIGITS_SPLIT_SEED`) of the 1,797 images: 300 test, 300 valid, the remaining 1,197 train.

Binarisation is *dynamic* (the papers' "dynamic MNIST"): :func:`dynamic_binarize` resamples
``x ~ Bernoulli(intensity)`` for every batch, and :func:`batches` does so for each minibatch of a
shuffled epoch. MNIST and Omniglot cannot be downloaded on machines without internet; their loaders
take a local path and say exactly which files to put where.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS",
    "DIGITS_SPLIT_SEED",
    "FASHION_MNIST_DIR",
    "Dataset",
    "batches",
    "dynamic_binarize",
    "get_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_omniglot",
    "read_idx",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the files (``dpkg -L`` lists them)."""

DIGITS_SPLIT_SEED = 0
"""Seed of the permutation that splits the sklearn digits."""

DIGITS_VALID_SIZE = 300
DIGITS_TEST_SIZE = 300
DIGITS_MAX_VALUE = 16.0
"""sklearn digits pixels are counts ``0..16``."""

MNIST_TRAIN_SIZE = 50_000
"""MNIST-style splits: the first 50,000 training images train, the rest validate."""

MNIST_IMAGE_SHAPE = (28, 28)
UINT8_MAX = 255.0

MNIST_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
"""IDX image files of MNIST and Fashion-MNIST (each also accepted gzipped, with ``.gz``)."""

OMNIGLOT_FILE = "chardata.mat"
OMNIGLOT_VALID_SIZE = 1_345
"""The last 1,345 training images of ``chardata.mat`` are the validation set (IWAE, ARMS)."""

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type codes (third magic byte) and their big-endian NumPy dtypes."""

_IDX_HEADER = 4
_IDX_DIM_BYTES = 4


@dataclass(frozen=True, eq=False)
class Dataset:
    """A split image data set with intensities in ``[0, 1]``.

    Attributes:
        name: Data set name (a key of :data:`DATASETS`).
        train: ``[N_train, D]`` float array.
        valid: ``[N_valid, D]`` float array.
        test: ``[N_test, D]`` float array.
        image_shape: ``(rows, cols)`` with ``rows * cols == D`` (row-major flattening).
        train_mean: ``[D]`` float64 mean of ``train`` (computed; for centring and output biases).
    """

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    image_shape: tuple[int, int]
    train_mean: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        num_pixels = int(np.prod(self.image_shape))
        for split in ("train", "valid", "test"):
            x = getattr(self, split)
            if x.ndim != 2 or x.shape[1] != num_pixels:
                raise ValueError(
                    f"{self.name} {split} has shape {x.shape}; expected [N, {num_pixels}] for "
                    f"images of shape {self.image_shape}"
                )
            if x.size and (x.min() < 0.0 or x.max() > 1.0):
                raise ValueError(f"{self.name} {split} has values outside [0, 1]")
        object.__setattr__(self, "train_mean", self.train.mean(axis=0, dtype=np.float64))

    @property
    def num_pixels(self) -> int:
        """``D``, the number of pixels per image."""
        return self.train.shape[1]


# -- IDX files ----------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped (``.gz``) or raw.

    Args:
        path: File path; a name ending in ``.gz`` is decompressed.

    Returns:
        The array, with the file's shape and its dtype in native byte order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < _IDX_HEADER or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:_IDX_HEADER]!r})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    dims_end = _IDX_HEADER + _IDX_DIM_BYTES * ndim
    shape = tuple(
        int.from_bytes(raw[i : i + _IDX_DIM_BYTES], "big")
        for i in range(_IDX_HEADER, dims_end, _IDX_DIM_BYTES)
    )
    expected = dims_end + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes, expected {expected} for shape {shape}")
    data = np.frombuffer(raw, dtype=dtype, offset=dims_end).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _load_mnist_like(name: str, directory: str | os.PathLike | None, how_to_get: str) -> Dataset:
    if directory is None:
        raise FileNotFoundError(
            f"{name} needs a local directory holding {_file_list()}; {how_to_get}"
        )
    directory = Path(directory)
    found = {split: _find(directory, stem) for split, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[split] for split, p in found.items() if p is None]
    if missing:
        raise FileNotFoundError(
            f"{name}: missing {', '.join(missing)} (or the same name + '.gz') in "
            f"'{directory}'; the directory must hold {_file_list()}; {how_to_get}"
        )
    train_images, test_images = read_idx(found["train"]), read_idx(found["test"])
    if train_images.ndim != 3 or train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"{name}: expected [N, rows, cols] images with equal sizes, got "
            f"{train_images.shape} and {test_images.shape}"
        )
    train = _to_unit(train_images)
    return Dataset(
        name,
        train=train[:MNIST_TRAIN_SIZE],
        valid=train[MNIST_TRAIN_SIZE:],
        test=_to_unit(test_images),
        image_shape=(int(train_images.shape[1]), int(train_images.shape[2])),
    )


def _file_list() -> str:
    return " and ".join(f"'{stem}' (or '{stem}.gz')" for stem in MNIST_FILES.values())


def _to_unit(images: np.ndarray) -> np.ndarray:
    """``[N, rows, cols]`` uint8 -> ``[N, rows * cols]`` float32 in ``[0, 1]``."""
    return (images.reshape(images.shape[0], -1) / np.float32(UINT8_MAX)).astype(np.float32)


# -- loaders ------------------------------------------------------------------------------------


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), scaled to ``[0, 1]`` (works offline).

    Returns:
        ``Dataset("digits")`` with 1,197 train, 300 valid and 300 test images of 64 pixels, split by
        a permutation seeded with :data:`DIGITS_SPLIT_SEED`.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.data / DIGITS_MAX_VALUE).astype(np.float32)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(x.shape[0])
    test_idx = order[:DIGITS_TEST_SIZE]
    valid_idx = order[DIGITS_TEST_SIZE : DIGITS_TEST_SIZE + DIGITS_VALID_SIZE]
    train_idx = order[DIGITS_TEST_SIZE + DIGITS_VALID_SIZE :]
    rows, cols = bunch.images.shape[1:]
    return Dataset(
        "digits",
        train=x[train_idx],
        valid=x[valid_idx],
        test=x[test_idx],
        image_shape=(int(rows), int(cols)),
    )


def load_fashion_mnist(path: str | os.PathLike | None = None) -> Dataset:
    """Fashion-MNIST from its IDX files (by default those of the Debian package).

    Args:
        path: Directory holding ``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte``
            (each raw or ``.gz``); default :data:`FASHION_MNIST_DIR`.

    Returns:
        ``Dataset("fashion_mnist")``: 50,000 train, 10,000 valid, 10,000 test, 784 pixels.

    Raises:
        FileNotFoundError: The files are missing (with the install command).
    """
    return _load_mnist_like(
        "fashion_mnist",
        FASHION_MNIST_DIR if path is None else path,
        "install them with 'apt-get install dataset-fashion-mnist' (files in "
        f"{FASHION_MNIST_DIR}) or pass the directory of the official release",
    )


def load_mnist(path: str | os.PathLike | None) -> Dataset:
    """MNIST from IDX files in a local directory (MNIST cannot be downloaded here).

    Args:
        path: Directory holding ``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte``, each
            raw or gzipped (``.gz``), as distributed at http://yann.lecun.com/exdb/mnist/.

    Returns:
        ``Dataset("mnist")``: 50,000 train, 10,000 valid, 10,000 test, 784 pixels.

    Raises:
        FileNotFoundError: ``path`` is ``None`` or lacks a file; the message names the files.
    """
    return _load_mnist_like(
        "mnist",
        path,
        "copy the two MNIST image files there from a machine with internet access (this "
        "machine cannot download MNIST)",
    )


def load_omniglot(path: str | os.PathLike | None) -> Dataset:
    """Omniglot as used by IWAE, ARMS and CARMS: the 28x28 ``chardata.mat``.

    ``chardata.mat`` stores ``data`` (784 x 24,345) and ``testdata`` (784 x 8,070), one image per
    *column*, each image flattened in column-major (MATLAB/Fortran) order. The standard IWAE
    preprocessing, ``data.T.reshape(-1, 28, 28).reshape(-1, 784, order="F")``, turns them into
    row-major images; this function does the same as
    ``data.T.reshape(-1, 28, 28).transpose(0, 2, 1).reshape(-1, 784)``. The last 1,345 training
    images are the validation set (23,000 train). Intensities are already in ``[0, 1]``.

    Args:
        path: ``chardata.mat`` itself or a directory holding it (the IWAE repository's
            ``datasets/OMNIGLOT/chardata.mat``; MD5 ``21ecaf34373511aa7691cf2e0802aa3d``).

    Returns:
        ``Dataset("omniglot")``: 23,000 train, 1,345 valid, 8,070 test, 784 pixels.

    Raises:
        FileNotFoundError: ``path`` is ``None`` or does not lead to ``chardata.mat``.
    """
    file = None if path is None else Path(path)
    if file is not None and file.is_dir():
        file = file / OMNIGLOT_FILE
    if file is None or not file.is_file():
        raise FileNotFoundError(
            f"omniglot needs the IWAE file '{OMNIGLOT_FILE}' (from the IWAE repository, "
            f"datasets/OMNIGLOT/{OMNIGLOT_FILE}); pass its path or its directory "
            f"(got {None if path is None else str(path)!r}); this machine cannot download it"
        )
    from scipy.io import loadmat

    raw = loadmat(file)
    rows, cols = MNIST_IMAGE_SHAPE

    def images(key: str) -> np.ndarray:
        columns = np.asarray(raw[key], dtype=np.float32)
        return columns.T.reshape(-1, rows, cols).transpose(0, 2, 1).reshape(-1, rows * cols)

    train = images("data")
    return Dataset(
        "omniglot",
        train=np.ascontiguousarray(train[:-OMNIGLOT_VALID_SIZE]),
        valid=np.ascontiguousarray(train[-OMNIGLOT_VALID_SIZE:]),
        test=np.ascontiguousarray(images("testdata")),
        image_shape=MNIST_IMAGE_SHAPE,
    )


DATASETS: dict[str, Callable[[str | os.PathLike | None], Dataset]] = {
    "digits": lambda path: load_digits(),
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "omniglot": load_omniglot,
}
"""Loader by data set name; each takes the optional ``path`` (ignored by ``digits``)."""


def get_dataset(name: str, path: str | os.PathLike | None = None) -> Dataset:
    """Load a data set by name.

    Args:
        name: ``"digits"``, ``"fashion_mnist"``, ``"mnist"`` or ``"omniglot"``.
        path: Local directory or file for the loaders that need one (see each loader).

    Returns:
        The :class:`Dataset`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names are {sorted(DATASETS)}")
    return DATASETS[name](path)


# -- binarisation and batches -------------------------------------------------------------------


def dynamic_binarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample binary pixels ``Bernoulli(x)`` (fresh for every call), in ``x``'s float dtype.

    Args:
        x: Intensities in ``[0, 1]``, any shape.
        rng: Seeded NumPy generator.

    Returns:
        An array of 0.0 and 1.0 with ``x``'s shape and dtype.
    """
    return (rng.random(x.shape) < x).astype(x.dtype)


def batches(
    x: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    binarize: bool = True,
    drop_last: bool = True,
) -> Iterator[np.ndarray]:
    """One shuffled epoch of minibatches, each dynamically binarised.

    Args:
        x: ``[N, D]`` intensities.
        batch_size: Rows per batch.
        rng: Seeded generator, used for the shuffle and the binarisation.
        binarize: Resample binary pixels per batch (``False`` yields the intensities).
        drop_last: Drop the final short batch (constant shapes avoid re-``jit``).

    Yields:
        ``[batch_size, D]`` arrays (the last one shorter when ``drop_last=False``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(x.shape[0])
    stop = x.shape[0] - x.shape[0] % batch_size if drop_last else x.shape[0]
    for start in range(0, stop, batch_size):
        batch = x[order[start : start + batch_size]]
        yield dynamic_binarize(batch, rng) if binarize else batch
