import argparse
import subprocess
import sys

from service.repository.card import read_card
from service.training.cli import add_train_arguments, run_train


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="calibserve train")
    add_train_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults():
    args = _parse()
    assert (args.dataset, args.loss, args.version, args.arch, args.calibrator) == ("digits", "flsd53", 1, "mlp", "auto")
    assert args.hidden == (64,) and not args.no_curvature and not args.overwrite
    assert _parse("--hidden", "128,64").hidden == (128, 64)


def test_train_writes_a_version(tmp_path, capsys):
    args = _parse(
        "--dataset",
        "wine",
        "--loss",
        "focal",
        "--gamma",
        "2",
        "--name",
        "w",
        "--version",
        "3",
        "--epochs",
        "2",
        "--repository",
        str(tmp_path),
        "--calibrator",
        "temperature",
        "--no-curvature",
        "--no-progress",
    )
    assert run_train(args) == 0
    card = read_card(tmp_path / "w" / "3")
    assert (card.name, card.version, card.loss.name, card.loss.gamma) == ("w", 3, "focal", 2.0)
    assert str(tmp_path / "w" / "3") in capsys.readouterr().out
    assert run_train(args) == 2  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_mnist1d_cnn1d_fixed_epochs_sgd(tmp_path):
    args = _parse(
        *("--dataset", "mnist1d", "--samples", "300", "--arch", "cnn1d", "--loss", "cross_entropy"),
        *("--optimizer", "sgd", "--fixed-epochs", "--epochs", "3", "--repository", str(tmp_path)),
        *("--calibrator", "temperature", "--no-curvature", "--no-progress"),
    )
    assert (args.samples, args.optimizer, args.fixed_epochs, args.lr) == (300, "sgd", True, None)
    assert run_train(args) == 0
    card = read_card(tmp_path / "mnist1d" / "1")
    assert card.data.dataset == "mnist1d" and card.input.shape == [40] and len(card.classes) == 10
    assert card.data.n_train + card.data.n_val + card.data.n_test == 300
    assert "SGD momentum 0.9, lr 0.05" in card.description and "kept epoch 3 of 3" in card.description
    assert "fixed epochs" in card.description


def test_bad_input_is_exit_code_two(tmp_path, capsys):
    assert run_train(_parse("--loss", "focal", "--repository", str(tmp_path))) == 2
    assert "gamma" in capsys.readouterr().err
    assert run_train(_parse("--calibrator", "magic", "--repository", str(tmp_path))) == 2
    assert "magic" in capsys.readouterr().err
    csv = tmp_path / "one.csv"
    csv.write_text("a,y\n" + "".join(f"{i},x\n" for i in range(20)))
    assert run_train(_parse("--dataset", "one", "--data-file", str(csv), "--repository", str(tmp_path))) == 2
    assert "two classes" in capsys.readouterr().err
    assert run_train(_parse("--samples", "100", "--repository", str(tmp_path))) == 2
    assert "mnist1d only" in capsys.readouterr().err


def test_building_the_parser_does_not_import_torch():
    code = (
        "import argparse, sys\n"
        "from service.training.cli import add_train_arguments\n"
        "add_train_arguments(argparse.ArgumentParser())\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
