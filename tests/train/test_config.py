"""The one precedence rule of the training config: defaults < file < parent run < --set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cvcycle.errors import InvalidInput
from cvcycle.train.config import TrainConfig, parse_sets, read_config_file, resolve_config

DEFAULT_LR = TrainConfig().lr

# (file, parent, --set, key, expected value, expected source)
PRECEDENCE = [
    ({}, {}, [], "lr", DEFAULT_LR, "default"),
    ({"lr": 0.01}, {}, [], "lr", 0.01, "file"),
    ({"lr": 0.01}, {"lr": 0.02}, [], "lr", 0.02, "parent"),
    ({}, {"lr": 0.02}, ["lr=0.03"], "lr", 0.03, "set"),
    ({"lr": 0.01}, {"lr": 0.02}, ["lr=0.03"], "lr", 0.03, "set"),
    ({"lr": 0.01}, {}, ["lr=0.03"], "lr", 0.03, "set"),
    ({"epochs": 3}, {"lr": 0.02}, [], "epochs", 3, "file"),
    ({}, {}, ["input_size=160x224"], "input_size", (160, 224), "set"),
    ({"input_size": [128, 160]}, {}, [], "input_size", (128, 160), "file"),
    ({}, {}, ["max_seconds=null"], "max_seconds", None, "set"),
    ({}, {}, ["augment=false"], "augment", False, "set"),
    ({}, {}, ["classes=[person, fallen_person]"], "classes", ("person", "fallen_person"), "set"),
    ({"options": {"a": 1}}, {}, ["options.b=2"], "options", {"a": 1, "b": 2}, "set"),
]


@pytest.mark.parametrize(("file", "parent", "sets", "key", "value", "source"), PRECEDENCE)
def test_precedence(
    file: dict[str, Any], parent: dict[str, Any], sets: list[str], key: str, value: Any, source: str
) -> None:
    resolved = resolve_config(file, parent, parse_sets(sets))
    assert getattr(resolved.config, key) == value
    assert resolved.sources[key] == source
    # Every key records where it came from.
    assert set(resolved.sources) == set(TrainConfig.model_fields)


def test_a_set_value_that_the_file_also_sets_wins_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("lr: 0.01\nepochs: 3\n")
    resolved = resolve_config(read_config_file(path), None, parse_sets(["lr=0.005"]))
    assert resolved.config.lr == 0.005 and resolved.sources["lr"] == "set"
    assert resolved.config.epochs == 3 and resolved.sources["epochs"] == "file"
    assert resolved.overrides == {"lr": 0.005}
    (shadowed,) = resolved.shadowed
    assert (shadowed.key, shadowed.value, shadowed.source, shadowed.by) == ("lr", 0.01, "file", "set")
    assert "overridden" in shadowed.describe()


def test_a_parent_value_equal_to_the_file_value_shadows_nothing() -> None:
    resolved = resolve_config({"lr": 0.01}, {"lr": 0.01}, {})
    assert resolved.shadowed == [] and resolved.sources["lr"] == "parent"


def test_a_whole_parent_config_is_repeated_except_for_the_overrides() -> None:
    parent = TrainConfig(lr=0.02, epochs=7, seed=5).to_record()
    resolved = resolve_config(None, parent, parse_sets(["lr=0.005"]))
    assert resolved.config.to_record() == {**parent, "lr": 0.005}
    assert {k for k, v in resolved.sources.items() if v != "parent"} == {"lr"}


# (--set items, expected exception, words the message must contain)
BAD_SETS = [
    (["lrr=0.1"], InvalidInput, ["'lrr'", "--set"]),
    (["lr"], InvalidInput, ["KEY=VALUE"]),
    (["=3"], InvalidInput, ["KEY=VALUE"]),
    (["optimizer.momentum=0.9"], InvalidInput, ["'optimizer.momentum'"]),
    (["lr=fast"], InvalidInput, ["--set lr"]),
    (["epochs=0"], InvalidInput, ["--set epochs"]),
    (["input_size=100"], InvalidInput, ["--set input_size"]),
    (["device=tpu"], InvalidInput, ["--set device", "cuda"]),
]


@pytest.mark.parametrize(("sets", "error", "words"), BAD_SETS)
def test_bad_set_values_are_rejected_naming_the_key(
    sets: list[str], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        resolve_config(None, None, parse_sets(sets))
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_unknown_keys_are_rejected_in_every_layer(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(InvalidInput, match=r"'learning_rate' in config file .*bad\.yaml") as caught:
        read_config_file(path)
    assert caught.value.hint is not None and "known keys" in caught.value.hint
    with pytest.raises(InvalidInput, match="'lrr' in the parent config"):
        resolve_config(None, {"lrr": 1}, None)
    with pytest.raises(InvalidInput, match="'lrr' in --set") as caught:
        parse_sets({"lrr": 0.1})
    assert caught.value.hint is not None and "did you mean 'lr'" in caught.value.hint


def test_a_bad_value_in_the_file_names_the_file_layer() -> None:
    with pytest.raises(InvalidInput, match=r"lr \(from file\)"):
        resolve_config({"lr": -1}, None, None)


@pytest.mark.parametrize(
    ("text", "message"), [("[1, 2", "not valid YAML"), ("- lr\n- 3\n", "mapping"), (None, "cannot read")]
)
def test_unreadable_config_files(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "train.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        read_config_file(path)


def test_an_empty_config_file_is_all_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert resolve_config(read_config_file(path), None, None).config == TrainConfig()


def test_set_none_clears_an_optional_value() -> None:
    for text in ("max_seconds=none", "max_seconds=None", "max_seconds=null"):
        resolved = resolve_config({}, None, parse_sets([text]))
        assert resolved.config.max_seconds is None, text
