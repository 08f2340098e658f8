import random
import socket

import numpy as np
import pytest

from service.training.data import (
    BUNDLED,
    TrainingDataError,
    check_training_data,
    load_bundled,
    load_dataset,
    load_mnist1d,
    split_dataset,
)
from service.training.options import BUNDLED_DATASETS


@pytest.mark.parametrize(
    ("name", "n", "d", "first_class"),
    [
        ("digits", 1797, 64, "0"),
        ("breast_cancer", 569, 30, "malignant"),
        ("wine", 178, 13, "class_0"),
        ("iris", 150, 4, "setosa"),
    ],
)
def test_bundled_datasets(name, n, d, first_class):
    ds = load_bundled(name)
    assert ds.X.shape == (n, d) and ds.X.dtype == np.float32
    assert ds.y.dtype == np.int64 and ds.y.min() == 0 and ds.y.max() == len(ds.classes) - 1
    assert ds.classes[0] == first_class


def test_cli_dataset_names_match_the_loaders():
    assert set(BUNDLED) == set(BUNDLED_DATASETS)


def test_unknown_dataset():
    with pytest.raises(TrainingDataError, match="unknown dataset"):
        load_bundled("mnist")


def test_csv_label_column_by_name_and_default_last(tmp_path):
    rows = ["a,label,b"] + [f"{i},{'cat' if i % 2 else 'dog'},{i * 0.5}" for i in range(20)]
    path = tmp_path / "pets.csv"
    path.write_text("\n".join(rows) + "\n")
    ds = load_dataset("pets", data_file=path, label_column="label")
    assert ds.classes == ["cat", "dog"] and ds.X.shape == (20, 2)
    np.testing.assert_array_equal(ds.X[3], [3.0, 1.5])
    assert ds.y[3] == 0  # "cat"
    with pytest.raises(TrainingDataError, match="numeric"):
        load_dataset("pets", data_file=path)  # default label column is "b"; "label" is then a feature


def test_csv_numeric_labels_sort_numerically(tmp_path):
    rows = ["x,y"] + [f"{i},{[2, 10, 1][i % 3]}" for i in range(30)]
    path = tmp_path / "n.csv"
    path.write_text("\n".join(rows))
    assert load_dataset("n", data_file=path).classes == ["1", "2", "10"]


def test_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, X=rng.normal(size=(30, 3)), y=np.repeat([5, 7, 9], 10))
    ds = load_dataset("d", data_file=path)
    assert ds.classes == ["5", "7", "9"] and ds.n_features == 3
    np.savez(tmp_path / "bad.npz", features=np.zeros((3, 2)))
    with pytest.raises(TrainingDataError, match="'X'"):
        load_dataset("bad", data_file=tmp_path / "bad.npz")


def test_degenerate_data_is_rejected():
    X = np.zeros((20, 3))
    with pytest.raises(TrainingDataError, match="two classes"):
        check_training_data(X, np.zeros(20))
    X_nan = X.copy()
    X_nan[4, 1] = np.nan
    with pytest.raises(TrainingDataError, match="NaN/inf"):
        check_training_data(X_nan, np.arange(20) % 2)
    with pytest.raises(TrainingDataError, match="at least 5"):
        check_training_data(np.zeros((6, 3)), np.array([0, 0, 0, 1, 1, 1]))
    with pytest.raises(TrainingDataError, match="no feature"):
        check_training_data(np.zeros((20, 0)), np.arange(20) % 2)


def test_split_is_stratified_disjoint_and_seeded():
    ds = load_bundled("iris")
    a, b, c = (split_dataset(ds, seed=s) for s in (0, 0, 1))
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (90, 30, 30)
    for part in (a.y_train, a.y_val, a.y_test):
        assert np.all(np.bincount(part) == len(part) // 3)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)
    parts = np.vstack([a.X_train, a.X_val, a.X_test])
    np.testing.assert_array_equal(np.sort(parts.view("V16").ravel()), np.sort(ds.X.view("V16").ravel()))


@pytest.fixture
def no_network(monkeypatch):
    """Every way out of the process raises and is recorded (a library may swallow the error, so tests
    assert on the record, not only on the exception)."""
    attempts: list[tuple[object, ...]] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError(f"network call attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_socket_guard_sees_the_mnist1d_url_loader(no_network, tmp_path, capsys):
    # The guard works: the package's URL loader (which calibserve never calls) tries the network under it.
    from mnist1d.data import get_dataset, get_dataset_args

    args = get_dataset_args()
    args.num_samples = 100
    get_dataset(args, path=str(tmp_path / "mnist1d.pkl"), download=True)
    assert no_network, "the URL loader should have tried to connect"
    assert "Downloading" in capsys.readouterr().out


def test_mnist1d_is_generated_without_network(no_network):
    np.random.seed(5)
    random.seed(5)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    ds = load_dataset("mnist1d", samples=500)
    assert ds.X.shape == (500, 40) and ds.X.dtype == np.float32
    assert ds.classes == [str(i) for i in range(10)] and np.all(np.bincount(ds.y) == 50)
    # the generator reseeds the global RNGs; the caller's state comes back
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert random.getstate() == py_state
    np.testing.assert_array_equal(load_mnist1d(500).X, ds.X)  # generated deterministically
    assert no_network == []


def test_mnist1d_rows_are_the_packages_own_generation():
    # The package's default 80/20 cut of the same generation, concatenated, is our full set of rows.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 300
    reference = make_dataset(args)
    ds = load_mnist1d(300)
    np.testing.assert_allclose(ds.X, np.vstack([reference["x"], reference["x_test"]]).astype(np.float32))
    np.testing.assert_array_equal(ds.y, np.concatenate([reference["y"], reference["y_test"]]))


def test_samples_applies_to_mnist1d_only():
    with pytest.raises(TrainingDataError, match="mnist1d only"):
        load_dataset("digits", samples=100)
    with pytest.raises(TrainingDataError, match="at least 250"):
        load_mnist1d(100)
