import pytest
import torch

from service.training import losses
from service.training.objectives import LOSS_NAMES, make_objective


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_named_loss_builds_and_runs(name):
    objective = make_objective(name, gamma=2.0 if name == "focal" else None, beta=2.0)
    logits = torch.randn(8, 2, requires_grad=True)
    loss = objective(logits, torch.tensor([0, 1] * 4))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert objective.binary_only == name.startswith("anyloss_")


def test_card_fields():
    assert make_objective("cross_entropy").gamma == 0.0
    assert make_objective("focal", gamma=3.0).gamma == 3.0
    flsd53 = make_objective("flsd53")
    assert flsd53.gamma == 3.0 and "0.2" in str(flsd53.params["gamma_schedule"])
    assert make_objective("flsd52").gamma == 2.0
    assert make_objective("anyloss_f1").params == {"amplifier_L": 73.0, "metric": "fbeta", "beta": 1.0}
    assert "extension" in str(make_objective("anyloss_mcc").params["note"])


def test_objectives_are_the_mean_reduced_losses():
    logits, labels = torch.randn(10, 3), torch.arange(10) % 3
    torch.testing.assert_close(
        make_objective("focal", gamma=2.0)(logits, labels), losses.focal_loss(logits, labels, 2.0)
    )
    torch.testing.assert_close(
        make_objective("flsd52")(logits, labels), losses.flsd_loss(logits, labels, gamma_high=2.0)
    )


def test_focal_needs_gamma_and_unknown_names_fail():
    with pytest.raises(ValueError, match="gamma"):
        make_objective("focal")
    with pytest.raises(ValueError, match="unknown loss"):
        make_objective("hinge")
    with pytest.raises(ValueError, match="unknown loss"):
        make_objective("anyloss_auc")
