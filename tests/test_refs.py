"""The one grammar of dataset and model references: what parses, to what, and what is refused."""

from __future__ import annotations

import pytest

from cvcycle.errors import InvalidInput
from cvcycle.refs import (
    DatasetRef,
    ModelRef,
    check_alias,
    check_dataset_name,
    check_model_name,
    format_ref,
    is_valid_name,
    parse_dataset_ref,
    parse_model_ref,
)

LONG_NAME = "a" * 200

# (text, parsed reference or the exception it raises)
MODEL_REFS: list[tuple[str, ModelRef | type[Exception]]] = [
    ("detector@7", ModelRef("detector", version=7)),
    ("detector:production", ModelRef("detector", alias="production")),
    ("detector", ModelRef("detector")),
    ("detector@latest", ModelRef("detector", "latest")),
    ("my-model.v2@1", ModelRef("my-model.v2", version=1)),
    ("  detector@3 ", ModelRef("detector", version=3)),
    ("7up:prod.2", ModelRef("7up", alias="prod.2")),
    ("detector@007", ModelRef("detector", version=7)),
    (f"{LONG_NAME}@2147483647", ModelRef(LONG_NAME, version=2147483647)),
    ("detector@2147483648", InvalidInput),  # beyond the database's integer
    (f"{LONG_NAME}a", InvalidInput),
    ("detector@0", InvalidInput),
    ("detector@-1", InvalidInput),
    ("detector@x", InvalidInput),
    ("detector@\u00b2", InvalidInput),  # a digit to str.isdigit, not to int()
    ("detector@", InvalidInput),
    ("detector@LATEST", InvalidInput),
    ("@3", InvalidInput),
    ("detector:", InvalidInput),
    ("detector:9", InvalidInput),
    (":production", InvalidInput),
    ("detector@1:production", InvalidInput),
    ("detector:production@1", InvalidInput),
    ("detector@1@2", InvalidInput),
    ("de tector", InvalidInput),
    ("_detector", InvalidInput),
    ("detector/1", InvalidInput),
    ("", InvalidInput),
]


@pytest.mark.parametrize(("text", "expected"), MODEL_REFS)
def test_parse_model_ref(text: str, expected: ModelRef | type[Exception]) -> None:
    if isinstance(expected, ModelRef):
        assert parse_model_ref(text) == expected
    else:
        with pytest.raises(expected) as caught:
            parse_model_ref(text)
        assert caught.value.hint is not None and "NAME@N" in caught.value.hint  # type: ignore[attr-defined]


# (text, parsed reference or the exception it raises)
DATASET_REFS: list[tuple[str, DatasetRef | type[Exception]]] = [
    ("home", DatasetRef("home")),
    ("home@3", DatasetRef("home", 3)),
    ("home@latest", DatasetRef("home", "latest")),
    ("feed.back-2_x@1", DatasetRef("feed.back-2_x", 1)),
    (" home@2 ", DatasetRef("home", 2)),
    ("home@0", InvalidInput),
    ("home@x", InvalidInput),
    ("home@", InvalidInput),
    ("home@2147483648", InvalidInput),
    ("home:production", InvalidInput),  # datasets have no aliases
    ("bad name", InvalidInput),
    ("@1", InvalidInput),
    ("", InvalidInput),
]


@pytest.mark.parametrize(("text", "expected"), DATASET_REFS)
def test_parse_dataset_ref(text: str, expected: DatasetRef | type[Exception]) -> None:
    if isinstance(expected, DatasetRef):
        assert parse_dataset_ref(text) == expected
    else:
        with pytest.raises(expected):
            parse_dataset_ref(text)


# (reference, how it is written)
FORMATTED: list[tuple[ModelRef | DatasetRef, str]] = [
    (ModelRef("detector", 3), "detector@3"),
    (ModelRef("detector", "latest"), "detector@latest"),
    (ModelRef("detector", alias="production"), "detector:production"),
    (ModelRef("detector"), "detector"),
    (DatasetRef("home", 2), "home@2"),
    (DatasetRef("home", "latest"), "home@latest"),
    (DatasetRef("home"), "home"),
]


@pytest.mark.parametrize(("ref", "text"), FORMATTED)
def test_references_are_written_as_they_are_parsed(ref: ModelRef | DatasetRef, text: str) -> None:
    assert str(ref) == text
    parse = parse_model_ref if isinstance(ref, ModelRef) else parse_dataset_ref
    assert parse(text) == ref


def test_format_ref_writes_version_labels() -> None:
    assert format_ref("detector", 3) == "detector@3"
    assert format_ref("home", "latest") == "home@latest"
    assert format_ref("detector", alias="candidate") == "detector:candidate"
    assert format_ref("detector") == "detector"


def test_model_ref_number_is_set_only_for_a_version() -> None:
    assert parse_model_ref("detector@4").number == 4
    assert parse_model_ref("detector@latest").number is None
    assert parse_model_ref("detector:production").number is None
    assert parse_model_ref("detector").number is None


# (name, valid as a dataset or model name, valid as an alias)
NAMES: list[tuple[str, bool, bool]] = [
    ("detector", True, True),
    ("9lives", True, False),
    ("v1.2_final-b", True, True),
    (LONG_NAME, True, False),  # an alias is at most 100 characters
    ("a" * 100, True, True),
    (f"{LONG_NAME}a", False, False),
    ("", False, False),
    ("-x", False, False),
    (".x", False, False),
    ("a b", False, False),
    ("a@1", False, False),
    ("a:b", False, False),
    ("a/b", False, False),
    ("caf\u00e9", False, False),
]


@pytest.mark.parametrize(("name", "valid_name", "valid_alias"), NAMES)
def test_names_and_aliases(name: str, valid_name: bool, valid_alias: bool) -> None:
    assert is_valid_name(name) is valid_name
    for check in (check_dataset_name, check_model_name):
        if valid_name:
            assert check(name) == name
        else:
            with pytest.raises(InvalidInput) as caught:
                check(name)
            assert caught.value.hint is not None
    if valid_alias:
        assert check_alias(name) == name
    else:
        with pytest.raises(InvalidInput):
            check_alias(name)
