"""Data loaders, the IDX reader, splits, dynamic binarisation and minibatches."""

import gzip

import numpy as np
import pytest
from scipy.io import savemat

from models import (
    Dataset,
    batches,
    dynamic_binarize,
    get_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_omniglot,
    read_idx,
)
from models.data import FASHION_MNIST_DIR, MNIST_FILES, MNIST_TRAIN_SIZE, OMNIGLOT_VALID_SIZE

IDX_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f8"): 0x0E}
Z_MAX = 4.5  # standard errors allowed for Monte Carlo means (failure rate ~1e-5)


def write_idx(path, array):
    """Write an IDX file by hand (independent of models.data)."""
    array = np.asarray(array)
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, IDX_TYPE_CODES[big_endian.dtype], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + big_endian.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


# -- digits -------------------------------------------------------------------------------------


def test_digits_shapes_ranges_and_split(digits):
    assert digits.name == "digits"
    assert digits.image_shape == (8, 8)
    assert digits.train.shape == (1197, 64)
    assert digits.valid.shape == (300, 64)
    assert digits.test.shape == (300, 64)
    for x in (digits.train, digits.valid, digits.test):
        assert x.dtype == np.float32
        assert x.min() == 0.0
        assert x.max() == 1.0
    np.testing.assert_allclose(digits.train_mean, digits.train.mean(0), rtol=1e-6)
    # the three splits are a permutation of the sklearn data (same multiset of rows)
    from sklearn.datasets import load_digits as sklearn_digits

    original = sklearn_digits().data / 16.0
    together = np.concatenate([digits.train, digits.valid, digits.test]).astype(np.float64)
    assert together.shape == original.shape

    def sort_rows(a):
        return a[np.lexsort(a.T)]

    np.testing.assert_array_equal(sort_rows(together), sort_rows(original))


def test_digits_split_is_deterministic(digits):
    again = load_digits()
    np.testing.assert_array_equal(again.train, digits.train)
    np.testing.assert_array_equal(again.test, digits.test)


# -- IDX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32),
        np.array([0.5, -1.25, 1e300]),
    ],
    ids=["uint8-3d", "int32-2d", "float64-1d"],
)
def test_idx_round_trip(tmp_path, array, suffix):
    path = tmp_path / f"file-idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == array.shape
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_idx_rejects_bad_files(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)
    write_idx(path, np.zeros((3, 2), np.uint8))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="expected"):
        read_idx(path)


# -- MNIST-style loaders --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_loader_splits_local_files(tmp_path, rng, suffix):
    num_valid, num_test, shape = 3, 4, (2, 3)
    train = rng.integers(0, 256, size=(MNIST_TRAIN_SIZE + num_valid, *shape), dtype=np.uint8)
    test = rng.integers(0, 256, size=(num_test, *shape), dtype=np.uint8)
    write_idx(tmp_path / (MNIST_FILES["train"] + suffix), train)
    write_idx(tmp_path / (MNIST_FILES["test"] + suffix), test)
    data = load_mnist(tmp_path)
    assert data.name == "mnist"
    assert data.image_shape == shape
    assert data.train.shape == (MNIST_TRAIN_SIZE, 6)
    np.testing.assert_allclose(data.valid * 255, train[MNIST_TRAIN_SIZE:].reshape(-1, 6), atol=1e-4)
    np.testing.assert_allclose(data.test * 255, test.reshape(-1, 6), atol=1e-4)
    assert get_dataset("mnist", tmp_path).train.shape == data.train.shape


@pytest.mark.parametrize("path", [None, "does-not-exist"])
def test_missing_mnist_names_the_files(tmp_path, path):
    where = None if path is None else tmp_path / path
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*t10k-images-idx3-ubyte"):
        load_mnist(where)
    with pytest.raises(FileNotFoundError, match="cannot download MNIST"):
        get_dataset("mnist", where)


def test_missing_mnist_test_file_is_named(tmp_path):
    write_idx(tmp_path / MNIST_FILES["train"], np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"missing t10k-images-idx3-ubyte \(or"):
        load_mnist(tmp_path)


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST files absent: apt-get install dataset-fashion-mnist",
)
def test_fashion_mnist_from_the_debian_package():
    data = load_fashion_mnist()
    assert data.name == "fashion_mnist"
    assert data.image_shape == (28, 28)
    assert data.train.shape == (50_000, 784)
    assert data.valid.shape == (10_000, 784)
    assert data.test.shape == (10_000, 784)
    assert data.train.min() == 0.0
    assert data.train.max() == 1.0
    assert abs(float(data.train_mean.mean()) - 0.286) < 2e-3


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


# -- Omniglot -----------------------------------------------------------------------------------


def test_omniglot_orientation_and_split(tmp_path, rng):
    """chardata.mat holds one column-major image per column; the loader returns row-major rows."""
    num_train, num_test = OMNIGLOT_VALID_SIZE + 5, 3
    images = rng.random((num_train + num_test, 28, 28))
    images[:, 0, :] = 1.0  # top row lit: a transposed image would light the left column
    images[:, 1:, :] = np.minimum(images[:, 1:, :], 0.5)
    columns = np.stack([img.ravel(order="F") for img in images], axis=1)  # 784 x N, MATLAB order
    savemat(
        tmp_path / "chardata.mat",
        {"data": columns[:, :num_train], "testdata": columns[:, num_train:]},
    )
    data = load_omniglot(tmp_path)
    assert data.image_shape == (28, 28)
    assert data.train.shape == (5, 784)
    assert data.valid.shape == (OMNIGLOT_VALID_SIZE, 784)
    assert data.test.shape == (num_test, 784)
    expected = images.reshape(-1, 784).astype(np.float32)
    np.testing.assert_array_equal(data.train, expected[:5])
    np.testing.assert_array_equal(data.valid, expected[5:num_train])
    np.testing.assert_array_equal(data.test, expected[num_train:])
    assert np.all(data.test.reshape(-1, 28, 28)[:, 0, :] == 1.0)
    # the standard IWAE reshape gives the same rows
    iwae = columns.T.reshape(-1, 28, 28).reshape(-1, 784, order="F").astype(np.float32)
    np.testing.assert_array_equal(iwae[:num_train][:5], data.train)
    assert get_dataset("omniglot", tmp_path / "chardata.mat").test.shape == (num_test, 784)


@pytest.mark.parametrize("path", [None, "nowhere"])
def test_missing_omniglot_names_the_file(tmp_path, path):
    where = None if path is None else tmp_path / path
    with pytest.raises(FileNotFoundError, match=r"IWAE file 'chardata.mat'"):
        load_omniglot(where)


# -- dispatch, validation, binarisation, batches --------------------------------------------------


def test_get_dataset_dispatch(digits):
    assert get_dataset("digits").train.shape == digits.train.shape
    with pytest.raises(ValueError, match=r"unknown data set 'cifar'.*'digits'"):
        get_dataset("cifar")


def test_dataset_validates_shapes_and_range():
    ok = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"expected \[N, 4\]"):
        Dataset("toy", ok, np.zeros((2, 3)), ok, (2, 2))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        Dataset("toy", ok, ok + 2, ok, (2, 2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dynamic_binarize(rng, dtype):
    x = np.full((200, 500), 0.3, dtype=dtype)
    x[:, :100] = 0.0
    x[:, 100:200] = 1.0
    b = dynamic_binarize(x, rng)
    assert b.dtype == dtype
    assert b.shape == x.shape
    assert set(np.unique(b)) == {0.0, 1.0}
    assert np.all(b[:, :100] == 0.0)
    assert np.all(b[:, 100:200] == 1.0)
    rest = b[:, 200:]
    se = np.sqrt(0.3 * 0.7 / rest.size)
    assert abs(rest.mean() - 0.3) < Z_MAX * se
    # fresh samples on every call
    assert not np.array_equal(dynamic_binarize(x, rng), b)


def test_batches_cover_an_epoch(rng):
    x = np.linspace(0.0, 1.0, 23 * 2).reshape(23, 2)
    out = list(batches(x, 5, rng, binarize=False))
    assert [b.shape for b in out] == [(5, 2)] * 4
    seen = np.concatenate(out)
    assert len(np.unique(seen[:, 0])) == 20  # 20 distinct rows, 3 dropped
    out = list(batches(x, 5, rng, binarize=False, drop_last=False))
    assert [len(b) for b in out] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.sort(np.concatenate(out)[:, 0]), x[:, 0])
    binary = list(batches(x, 5, rng))
    assert all(set(np.unique(b)) <= {0.0, 1.0} for b in binary)
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(x, 0, rng))
