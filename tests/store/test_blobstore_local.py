"""Local-filesystem specifics: URLs, atomic writes against killed writers, temporaries, settings."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cvcycle
from cvcycle.errors import InvalidInput
from cvcycle.settings import Settings
from cvcycle.store import BlobStore, open_store

from .conftest import StoreEnv, make_env


@pytest.fixture
def local(tmp_path: Path, request: pytest.FixtureRequest) -> StoreEnv:
    return make_env("file", tmp_path, request)


def test_plain_path_and_file_url_name_the_same_store(tmp_path: Path) -> None:
    root = tmp_path / "a store é"  # needs percent-encoding in the URL
    by_path = BlobStore.from_url(str(root))
    by_url = BlobStore.from_url(root.as_uri())
    assert by_path.url == by_url.url == root.as_uri()
    assert not root.exists()  # nothing is created until the first write

    ref = by_path.put_bytes(b"frame")

    assert root.is_dir()
    assert by_url.get_bytes(ref.key, ref.size) == b"frame"
    assert by_url.local_path(ref.key) == root / "sha256" / ref.key[:2] / ref.key[2:4] / ref.key


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = BlobStore.from_url("rel/store")
    assert store.url == (tmp_path / "rel" / "store").as_uri()


def test_local_path_is_the_stored_file(local: StoreEnv) -> None:
    ref = local.store.put_bytes(b"jpeg bytes")
    path = local.store.local_path(ref.key, ref.size)
    assert path.read_bytes() == b"jpeg bytes"
    assert path.is_relative_to(Path(local.prefix))
    assert not local.cache_dir.exists()  # local stores never copy into the read cache


def test_put_of_a_stored_blob_keeps_the_file_and_refreshes_its_age(local: StoreEnv, tmp_path: Path) -> None:
    data = os.urandom(20_000)
    ref = local.store.put_bytes(data)
    path = local.store.local_path(ref.key)
    source = tmp_path / "same.jpg"
    source.write_bytes(data)
    old = time.time() - 2 * 24 * 3600

    for put in (
        lambda: local.store.put_bytes(data),
        lambda: local.store.put_file(source),
        lambda: local.store.put_many([data, data]),
    ):
        os.utime(path, (old, old))
        before = os.stat(path)
        put()
        after = os.stat(path)
        assert after.st_ino == before.st_ino  # not rewritten
        # Its age starts again, so gc's grace period covers the caller until it records the blob.
        assert after.st_mtime > old + 3600
    assert local.list_raw() == [f"sha256/{ref.key[:2]}/{ref.key[2:4]}/{ref.key}"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
def test_writer_killed_midway_leaves_no_visible_blob(local: StoreEnv, tmp_path: Path) -> None:
    """SIGKILL a process in the middle of put_file: only a temporary remains, never a blob.

    The child streams from a named pipe that this test feeds, so it is provably midway (part of the
    data copied to its temporary, the rest not yet sent) when it is killed.
    """
    root = Path(local.prefix)
    data = os.urandom(4 * (1 << 20))
    key = hashlib.sha256(data).hexdigest()
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    child_code = "import sys; from pathlib import Path; from cvcycle.store import BlobStore; "
    child_code += "BlobStore.from_url(sys.argv[1]).put_file(Path(sys.argv[2]))"
    src_dir = str(Path(cvcycle.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src_dir, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", child_code, local.store.url, str(fifo)], env=env)
    try:
        fd = _open_fifo_for_writing(fifo, child)
        try:
            os.write(fd, data[: 3 * (1 << 20)])  # blocks until the child has read most of it
            partial = _wait_for_partial_temporary(root / "tmp", child)
            child.send_signal(signal.SIGKILL)
            child.wait()
        finally:
            os.close(fd)  # only now: closing earlier would send EOF and let the child finish
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert child.returncode == -signal.SIGKILL
    assert 0 < partial.stat().st_size < len(data)  # the killed writer really was midway
    assert not local.store.exists(key)
    assert list(local.store.iter_keys()) == []
    assert not (root / "sha256").exists() or not any(p.is_file() for p in (root / "sha256").rglob("*"))

    # The leftover is harmless: a new write of the same bytes succeeds, and purging removes it.
    ref = local.store.put_bytes(data)
    assert ref.key == key
    local.store.verify(key, len(data))
    assert partial.exists()
    assert local.store.purge_temporaries(older_than=0) == 1
    assert not partial.exists()
    assert local.store.get_bytes(key, len(data)) == data


def _open_fifo_for_writing(fifo: Path, child: subprocess.Popen[bytes]) -> int:
    """Open the pipe once the child has opened it for reading (without hanging if it died)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"child never opened the pipe (exit code {child.poll()})")
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        return fd


def _wait_for_partial_temporary(tmp_dir: Path, child: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 60
    while True:
        found = [p for p in tmp_dir.glob("*") if p.stat().st_size > 0] if tmp_dir.exists() else []
        if found:
            return found[0]
        if child.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"child wrote no temporary (exit code {child.poll()})")
        time.sleep(0.01)


def test_leftover_temporary_is_invisible_until_purged(local: StoreEnv) -> None:
    root = Path(local.prefix)
    data = os.urandom(50_000)
    key = hashlib.sha256(data).hexdigest()
    # What a writer killed before its rename leaves: a partial copy under tmp/.
    leftover = root / "tmp" / f"4242-{key}"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(data[:10_000])

    assert not local.store.exists(key)
    assert list(local.store.iter_keys()) == []
    assert local.store.purge_temporaries() == 0  # too recent: it may be a live writer's file
    assert leftover.exists()

    old = time.time() - 2 * 24 * 3600
    os.utime(leftover, (old, old))
    assert local.store.purge_temporaries(delete=False) == 1  # a dry run counts, keeps
    assert leftover.exists()
    assert local.store.purge_temporaries() == 1
    assert not leftover.exists()


def test_unknown_scheme_is_invalid_input_with_a_hint() -> None:
    with pytest.raises(InvalidInput, match="nosuchfs") as excinfo:
        BlobStore.from_url("nosuchfs://bucket/prefix")
    assert excinfo.value.hint and "s3://" in excinfo.value.hint


def test_missing_driver_is_invalid_input_with_a_hint() -> None:
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed, so gs:// has its driver")
    with pytest.raises(InvalidInput, match="gs://") as excinfo:
        BlobStore.from_url("gs://bucket/prefix")
    assert excinfo.value.hint and "pip install" in excinfo.value.hint


@pytest.mark.parametrize("url", ["", "   ", "file://otherhost/srv/store"])
def test_malformed_url_is_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput):
        BlobStore.from_url(url)


def test_storage_options_do_not_apply_to_local_stores(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="key"):
        BlobStore.from_url(str(tmp_path), key="testing")


def test_remote_local_path_needs_a_cache_dir() -> None:
    store = BlobStore.from_url("memory://no-cache")
    ref = store.put_bytes(b"x")
    with pytest.raises(InvalidInput, match="cache") as excinfo:
        store.local_path(ref.key)
    assert excinfo.value.hint and "cache_dir" in excinfo.value.hint
    store.delete(ref.key)


def test_open_store_follows_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    store = open_store(settings)
    assert store.url == (tmp_path / "home" / "store").as_uri()
    assert store.cache_dir == tmp_path / "home" / "cache"
    ref = store.put_bytes(b"configured")
    assert (tmp_path / "home" / "store" / "sha256" / ref.key[:2]).is_dir()

    remote = open_store(
        Settings(home=tmp_path / "home", store_url="memory://configured", cache_dir=tmp_path / "c")
    )
    assert remote.url == "memory://configured"
    assert remote.cache_dir == tmp_path / "c"
