"""Task defaults are the documented recipes: `train TASK` with no flags builds the task's recipe, `--quick` its
small preset, flags given replace single fields, and every documented `train` command builds its recipe.

Nothing here trains: the command lines go through the real parser and the configuration `train` would run.
"""

import re
import shlex
from pathlib import Path

import pytest

from seq2seq_edge.cli.parser import build_parser, train_configs
from seq2seq_edge.training import ConfigError, ModelConfig, TrainConfig
from seq2seq_edge.training.config import AutoencoderConfig
from seq2seq_edge.training.recipes import QUICK, RECIPES, match_recipe, recipe_for
from seq2seq_edge.training.tasks import FAMILIES, TASKS

ROOT = Path(__file__).parents[1]


def _configs(argv: str) -> tuple:
    """The (model, train) configurations `seq2seq-edge ARGV` would train."""
    return train_configs(build_parser().parse_args(shlex.split(argv)))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_train_with_no_flags_is_the_task_recipe(task):
    from seq2seq_edge.training.fit import _recipe_defaults

    recipe = recipe_for(task)
    assert recipe is not None and recipe.family == FAMILIES[task][0]
    assert _configs(f"train {task} --out r") == recipe.configs()
    assert _recipe_defaults(task, None, None) == recipe.configs()  # train(task, out) in Python
    assert recipe.command == f"seq2seq-edge train {task} --out RUN_DIR"


def test_the_recipes_each_task_trains_by_default():
    """The documented configurations, written out: what the README's recipe sections trained."""
    lstm64 = AutoencoderConfig(cell="lstm", units=(64,))
    expected = {
        "dates": (ModelConfig(units=128, embedding_dim=32), TrainConfig(samples=20000, epochs=4, patience=2)),
        "sine": (ModelConfig(), TrainConfig()),
        "g2p": (ModelConfig(units=384, layers=2, embedding_dim=64, dropout=0.3),
                TrainConfig(samples=200000, batch_size=128, epochs=100, patience=3, lr_patience=1, max_minutes=55)),
        "ecg": (lstm64, TrainConfig(epochs=80, patience=10, batch_size=32)),
        "kdd135": (lstm64, TrainConfig(epochs=100, patience=10, batch_size=32)),
    }
    assert {task: recipe_for(task).configs() for task in TASKS} == expected


@pytest.mark.parametrize("task", sorted(TASKS))
def test_quick_is_the_small_preset(task):
    small = {
        "dates": (ModelConfig(units=128, layers=1, embedding_dim=32), TrainConfig(samples=20000, epochs=3)),
        "sine": (ModelConfig(units=128, layers=1, embedding_dim=32), TrainConfig(samples=20000, epochs=3)),
        "g2p": (ModelConfig(units=128, layers=1, embedding_dim=32), TrainConfig(samples=20000, epochs=3)),
        "ecg": (AutoencoderConfig(cell="gru", units=(32,)),
                TrainConfig(epochs=50, patience=0, batch_size=32, learning_rate=0.01)),
        "kdd135": (AutoencoderConfig(cell="gru", units=(32,)), TrainConfig(epochs=30, patience=0, batch_size=32)),
    }
    assert _configs(f"train {task} --quick --out r") == QUICK[task].configs() == small[task]
    assert QUICK[task].command == f"seq2seq-edge train {task} --quick --out RUN_DIR"


def test_flags_given_replace_the_recipes_fields():
    model, config = recipe_for("ecg").configs()
    assert _configs("train ecg --out r --epochs 5 --units 16,8 --seed 2") == (
        AutoencoderConfig(cell=model.cell, units=(16, 8)), TrainConfig(**{**vars(config), "epochs": 5, "seed": 2}))
    model, config = _configs("train g2p --quick --out r --units 32 --bidirectional --dropout 0.1 --lr-patience 1")
    assert model == ModelConfig(units=32, layers=1, embedding_dim=32, bidirectional=True, dropout=0.1)
    assert config == TrainConfig(samples=20000, epochs=3, lr_patience=1)
    # The combination is checked, not each flag alone: the g2p recipe has a time budget to fall over.
    assert _configs("train g2p --out r --lr-schedule budget")[1].max_minutes == 55
    with pytest.raises(ConfigError, match=r"set max_minutes too"):
        _configs("train dates --out r --lr-schedule budget")
    with pytest.raises(ConfigError, match=r"units must be a positive integer, got 0"):
        _configs("train dates --out r --units 0")
    # Another family than the task's recipe: that family's defaults, the recipe's training.
    assert _configs("train sine --family autoencoder --out r") == (AutoencoderConfig(), recipe_for("sine").configs()[1])


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_every_recipe_command_builds_its_recipe(recipe):
    model, config = _configs(recipe.command.removeprefix("seq2seq-edge "))
    assert (model, config) == recipe.configs()
    assert match_recipe(recipe.task, model, config) is recipe
    assert match_recipe(recipe.task, model, TrainConfig(**{**vars(config), "seed": 7})) is recipe  # any seed


def _documented_train_commands() -> list[str]:
    """Every `seq2seq-edge train TASK --out ...` line of the README and the docs (continuation lines joined)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = "\n".join(re.sub(r"\\\n\s*", "", p.read_text(encoding="utf-8")) for p in pages if p.is_file())
    lines = re.findall(r"^\s*(seq2seq-edge train [a-z0-9]+ [^\n`#]*--out [^\n`#]*)", text, re.MULTILINE)
    return [line.strip() for line in lines if line.split()[2] in TASKS]


def test_documented_recipe_commands_build_their_recipes():
    """Each recipe the README documents results for is trained by a command the README (or the docs) shows,
    exactly: the command read by the CLI builds the recipe's configuration (so its run records the floors)."""
    built = []
    for command in _documented_train_commands():
        argv = shlex.split(command)[1:]
        if any(a.startswith("--distribute") or a in ("--workers", "--worker-index") for a in argv):
            argv = argv[: next(i for i, a in enumerate(argv) if a.startswith("--distribute"))]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # not a command as typed (a placeholder); the recipes' commands must parse
            continue
        built.append((argv[1], *train_configs(args)))
    documented = {"g2p", "g2p-attention", "g2p-attention-512", "ecg", "kdd135", "dates-quick"}
    for recipe in RECIPES:
        if recipe.name in documented:
            assert (recipe.task, *recipe.configs()) in built, recipe.name


def test_recipes_are_consistent():
    names = [r.name for r in RECIPES]
    assert len(set(names)) == len(names)
    assert set(QUICK) == set(TASKS) and all(r.family == FAMILIES[r.task][0] for r in RECIPES)
    # Floors where the README or a test measured the recipe; sine's and g2p's quick preset have none.
    assert {r.name for r in RECIPES if not r.floors} == {"sine", "sine-quick", "g2p-quick"}
    for recipe in RECIPES:
        assert recipe.command.startswith(f"seq2seq-edge train {recipe.task} ")
        assert all(op in (">=", "<=") for op, _ in recipe.floors.values()), recipe.name
    quick = QUICK["ecg"].configs()
    assert match_recipe("ecg", *quick).name == "ecg-quick"
    full = TrainConfig(epochs=80, patience=10, batch_size=32)
    assert match_recipe("ecg", AutoencoderConfig(cell="lstm", units=(64,)), full).name == "ecg"
    assert match_recipe("ecg", AutoencoderConfig(cell="lstm", units=(64,)), TrainConfig(epochs=80, patience=10,
                        batch_size=32, learning_rate=0.01)) is None  # not the documented learning rate
    assert match_recipe("ecg", AutoencoderConfig(cell="lstm", units=(32,)), full) is None
    assert match_recipe("kdd135", AutoencoderConfig(cell="lstm", units=(64,)), full) is None  # another task
    assert match_recipe("sine", AutoencoderConfig(), recipe_for("sine").configs()[1]) is None  # another family


def test_train_help_shows_each_tasks_recipe_and_preset(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = re.sub(r"-\s+", "-", re.sub(r"\s+", " ", capsys.readouterr().out))  # argparse wraps at hyphens too
    assert "ecg: --units 64 --epochs 80 --batch-size 32 --patience 10" in text
    assert "ecg: --cell gru --units 32 --epochs 50 --batch-size 32 --learning-rate 0.01 --patience 0" in text


def test_quickstart_trains_the_dates_recipe():
    """The README's first command (`seq2seq-edge quickstart`) trains the dates recipe, so its run records the
    recipe's floor."""
    import inspect

    from seq2seq_edge.cli.quickstart import quickstart

    defaults = {k: v.default for k, v in inspect.signature(quickstart).parameters.items()}
    args = build_parser().parse_args(["quickstart"])
    _, config = recipe_for("dates").configs()
    assert (defaults["samples"], defaults["epochs"]) == (args.samples, args.epochs) == (config.samples, config.epochs)
