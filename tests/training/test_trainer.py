import numpy as np
import pytest
import torch

from service.training.data import Split, TrainingDataError, load_bundled, split_dataset
from service.training.models import build_classifier
from service.training.objectives import make_objective
from service.training.pipeline import fit_classifier
from service.training.seeding import deterministic
from service.training.trainer import TrainConfig, make_optimiser, stratified_batches, train_model


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def test_same_seed_gives_identical_weights():
    a, b, c = (fit_classifier(dataset="wine", loss="flsd53", epochs=5, seed=s, progress=False) for s in (7, 7, 8))
    for wa, wb in zip(_weights(a.model), _weights(b.model), strict=True):
        assert torch.equal(wa, wb)
    assert not all(torch.equal(wa, wc) for wa, wc in zip(_weights(a.model), _weights(c.model), strict=True))


def test_training_leaves_global_torch_state_alone():
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    threads = torch.get_num_threads()
    fit_classifier(dataset="iris", loss="cross_entropy", epochs=2, progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_early_stopping_restores_the_best_epoch():
    ds = load_bundled("iris")
    split = split_dataset(ds, seed=0)
    with deterministic(0):
        model = build_classifier(split.X_train, 3, hidden=(256,))
    config = TrainConfig(epochs=300, lr=0.05, patience=3, progress=False)
    result = train_model(model, make_objective("cross_entropy"), split, config)
    assert result.stopped_early and result.epochs_run < 300
    assert result.epochs_run == result.best_epoch + 3
    best_val = min(h["val_loss"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val_loss"] == best_val
    with torch.no_grad():
        restored = make_objective("cross_entropy")(model(torch.as_tensor(split.X_val)), torch.as_tensor(split.y_val))
    assert restored.item() == pytest.approx(best_val, rel=1e-6)


def test_without_patience_all_epochs_run_and_last_weights_are_kept():
    ds = load_bundled("iris")
    split = split_dataset(ds, seed=0)
    with deterministic(0):
        model = build_classifier(split.X_train, 3, hidden=(256,))
    config = TrainConfig(epochs=40, lr=0.05, patience=None, progress=False)
    result = train_model(model, make_objective("cross_entropy"), split, config)
    assert not result.stopped_early and result.epochs_run == result.best_epoch == 40
    with torch.no_grad():
        last = make_objective("cross_entropy")(model(torch.as_tensor(split.X_val)), torch.as_tensor(split.y_val))
    assert last.item() == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)


def test_training_improves_on_chance():
    trained = fit_classifier(dataset="digits", loss="focal", gamma=2.0, epochs=8, progress=False)
    with torch.no_grad():
        pred = trained.model(torch.as_tensor(trained.split.X_test)).argmax(1).numpy()
    assert (pred == trained.split.y_test).mean() > 0.85


def _split(X: np.ndarray, y: np.ndarray) -> Split:
    return Split(X, y, X, y, X, y)


def test_degenerate_training_data_raises():
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    model = build_classifier(X, 2)
    cfg = TrainConfig(epochs=1, progress=False)
    with pytest.raises(TrainingDataError, match="two classes"):
        train_model(model, make_objective("cross_entropy"), _split(X, np.zeros(20, dtype=np.int64)), cfg)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(TrainingDataError, match="NaN"):
        train_model(model, make_objective("cross_entropy"), _split(X_nan, np.arange(20) % 2), cfg)


def test_binary_loss_on_multiclass_data_raises():
    with pytest.raises(TrainingDataError, match="binary"):
        fit_classifier(dataset="iris", loss="anyloss_f1", epochs=1, progress=False)


def test_stratified_batches_cover_every_row_with_both_classes():
    y = np.array([0] * 90 + [1] * 10)
    batches = stratified_batches(y, 20, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(100))
    assert [int(y[b].sum()) for b in batches] == [2] * 5


def test_anyloss_training_learns_breast_cancer():
    trained = fit_classifier(dataset="breast_cancer", loss="anyloss_f1", epochs=15, progress=False)
    with torch.no_grad():
        logits = trained.model(torch.as_tensor(trained.split.X_test))
    assert torch.all(logits[:, 0] == 0)
    assert (logits.argmax(1).numpy() == trained.split.y_test).mean() > 0.9


def test_sgd_step_schedule_drops_the_rate_tenfold_at_half_and_three_quarters():
    model = torch.nn.Linear(3, 2)
    optimiser, schedule = make_optimiser(model, TrainConfig(epochs=8, lr=0.1, optimiser="sgd", weight_decay=5e-4))
    assert isinstance(optimiser, torch.optim.SGD)
    assert optimiser.defaults["momentum"] == 0.9 and optimiser.defaults["weight_decay"] == 5e-4
    assert schedule is not None
    rates = []
    for _ in range(8):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    np.testing.assert_allclose(rates, [0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    adam, none = make_optimiser(model, TrainConfig())
    assert isinstance(adam, torch.optim.Adam) and none is None
    with pytest.raises(ValueError, match="unknown optimiser"):
        make_optimiser(model, TrainConfig(optimiser="lbfgs"))


def test_sgd_fixed_epochs_trains_every_epoch():
    split = split_dataset(load_bundled("wine"), seed=0)
    with deterministic(0):
        model = build_classifier(split.X_train, 3)
    config = TrainConfig(epochs=12, lr=0.05, patience=None, optimiser="sgd", progress=False)
    result = train_model(model, make_objective("cross_entropy"), split, config)
    assert result.epochs_run == result.best_epoch == 12 and not result.stopped_early
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
