"""Fixtures for the blob store tests: one store per test on each backend, plus a back door.

Every behavioural test runs against the local filesystem (``file://``), fsspec's in-memory
filesystem (``memory://``) and a real S3 wire-protocol server (moto's ThreadedMotoServer on
127.0.0.1, reached through s3fs). The back door writes and lists raw objects behind the store's back
(plain files, fsspec, boto3), to corrupt blobs the way a failing disk or a stray tool would.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:
    import cvcycle  # noqa: F401
except ImportError:  # the project is not installed in the venv: test the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from cvcycle.store import BlobStore

BUCKET = "bucket"


@dataclass
class S3Server:
    """A moto S3 server with one bucket, and the options that point s3fs at it."""

    endpoint: str
    client: Any  # boto3 S3 client

    def storage_options(self) -> dict[str, Any]:
        return {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    reason = "S3 variant needs moto[server], s3fs and boto3 importable"
    moto_server = pytest.importorskip("moto.server", reason=reason)
    pytest.importorskip("s3fs", reason=reason)
    boto3 = pytest.importorskip("boto3", reason=reason)
    # Port 0: the OS picks a free port; the server reports which one it bound.
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        yield S3Server(endpoint, client)
    finally:
        server.stop()


@dataclass
class StoreEnv:
    """A fresh, empty store on one backend and raw access to what lies under its root."""

    kind: str
    store: BlobStore
    cache_dir: Path
    prefix: str  # the store root relative to the bucket (remote) or the root directory (file)
    write_raw: Callable[[str, bytes], None]  # (path relative to the store root, bytes)
    list_raw: Callable[[], list[str]]  # every object/file under the root, relative to it

    @property
    def remote(self) -> bool:
        return self.kind != "file"


def make_env(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> StoreEnv:
    cache_dir = tmp_path / "cache"
    prefix = f"prefix-{uuid.uuid4().hex}"  # one namespace per test on shared servers
    if kind == "file":
        root = tmp_path / "store"

        def write_file(rel: str, data: bytes) -> None:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        def list_files() -> list[str]:
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

        store = BlobStore.from_url(root.as_uri(), cache_dir=cache_dir)
        return StoreEnv(kind, store, cache_dir, str(root), write_file, list_files)
    if kind == "memory":
        import fsspec

        fs = fsspec.filesystem("memory")
        base = f"/{BUCKET}/{prefix}"

        def write_memory(rel: str, data: bytes) -> None:
            fs.pipe_file(f"{base}/{rel}", data)

        def list_memory() -> list[str]:
            return sorted(p[len(base) + 1 :] for p in fs.find(base))

        request.addfinalizer(lambda: fs.rm(base, recursive=True) if fs.exists(base) else None)
        store = BlobStore.from_url(f"memory://{BUCKET}/{prefix}", cache_dir=cache_dir)
        return StoreEnv(kind, store, cache_dir, prefix, write_memory, list_memory)
    if kind == "s3":
        server: S3Server = request.getfixturevalue("s3_server")

        def write_s3(rel: str, data: bytes) -> None:
            server.client.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=data)

        def list_s3() -> list[str]:
            pages = server.client.get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, Prefix=prefix + "/"
            )
            return sorted(o["Key"][len(prefix) + 1 :] for page in pages for o in page.get("Contents", []))

        store = BlobStore.from_url(f"s3://{BUCKET}/{prefix}", cache_dir=cache_dir, **server.storage_options())
        return StoreEnv(kind, store, cache_dir, prefix, write_s3, list_s3)
    raise AssertionError(kind)


@pytest.fixture(params=["file", "memory", "s3"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> StoreEnv:
    """The same store contract on every backend."""
    return make_env(request.param, tmp_path, request)


@pytest.fixture(params=["memory", "s3"])
def remote_env(request: pytest.FixtureRequest, tmp_path: Path) -> StoreEnv:
    """Backends whose local_path goes through the read cache."""
    return make_env(request.param, tmp_path, request)
