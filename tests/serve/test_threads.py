"""ONNX Runtime threads per model instance: the CPUs shared among instances, or as config.pbtxt says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cvcycle.registry.triton import TensorSpec, model_config
from cvcycle.serve.model_config import parse_model_config
from cvcycle.serve.repository import ModelRepository
from cvcycle.serve.runtimes import LoadFailure, SessionThreads, open_instances, session_threads


def config_of(instance_count: int = 1, **parameters: str) -> Any:
    text = model_config(
        "affine",
        max_batch_size=8,
        inputs=[TensorSpec("x", "FP32", (-1, 4))],
        outputs=[TensorSpec("y", "FP32", (-1, 4))],
        instance_count=instance_count,
        parameters=parameters or None,
    )
    return parse_model_config(text)


@pytest.mark.parametrize(("instances", "expected"), [(1, 4), (2, 2), (3, 1), (8, 1)])
def test_the_cpus_are_shared_among_the_instances(instances: int, expected: int) -> None:
    assert session_threads(config_of(instances), cpus=4) == SessionThreads(expected)


def test_the_server_flag_and_then_the_config_take_precedence() -> None:
    assert session_threads(config_of(2), server_threads=3, cpus=4).intra_op == 3
    assert session_threads(config_of(2, intra_op_thread_count="1"), server_threads=3, cpus=4).intra_op == 1
    # "0", as in Triton's examples, leaves the choice to the server.
    assert session_threads(config_of(2, intra_op_thread_count="0"), cpus=4).intra_op == 2
    assert session_threads(config_of(1, intra_op_thread_count=" 3 "), cpus=4).intra_op == 3


def test_inter_op_threads_and_the_execution_mode() -> None:
    chosen = session_threads(config_of(1, inter_op_thread_count="2", execution_mode="1"), cpus=2)
    assert chosen == SessionThreads(intra_op=2, inter_op=2, parallel=True)
    assert not session_threads(config_of(1, execution_mode="0"), cpus=2).parallel


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("intra_op_thread_count", "two", "a whole number of threads (0: the server chooses)"),
        ("intra_op_thread_count", "-1", "a whole number of threads (0: the server chooses)"),
        ("inter_op_thread_count", "1.5", "a whole number of threads (0: ONNX Runtime's default)"),
        ("execution_mode", "2", "0 (sequential) or 1 (parallel)"),
    ],
)
def test_a_parameter_that_is_not_a_count_is_refused_by_name(key: str, value: str, allowed: str) -> None:
    with pytest.raises(LoadFailure) as caught:
        session_threads(config_of(1, **{key: value}))
    assert str(caught.value) == f"config.pbtxt parameter {key!r} must be {allowed}, got {value!r}"


def test_the_sessions_run_with_the_threads_chosen(tmp_path: Path, affine: Any) -> None:
    (tmp_path / "model.onnx").write_bytes(affine(2.0, 1.0))
    instances = open_instances(config_of(2, inter_op_thread_count="3"), tmp_path, threads=0)
    assert len(instances) == 2
    for instance in instances:
        options = instance.session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (
            session_threads(config_of(2)).intra_op,
            3,
        )


def test_the_repository_reports_a_bad_thread_count(publish: Any, repo: Path, affine: Any) -> None:
    publish("affine", 1, affine(2.0, 1.0), parameters={"intra_op_thread_count": "many"})
    repository = ModelRepository(repo)
    repository.start()
    try:
        (row,) = repository.index()
        assert row.state == "UNAVAILABLE"
        assert row.reason == (
            "failed to load: config.pbtxt parameter 'intra_op_thread_count' must be a whole number "
            "of threads (0: the server chooses), got 'many'"
        )
    finally:
        repository.close()
