"""Remote-store specifics: the local read cache behind local_path, and uploads cut short on S3."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cvcycle.errors import CorruptBlob, NotFound

from .conftest import BUCKET, S3Server, StoreEnv, make_env


def rel(key: str) -> str:
    return f"sha256/{key[:2]}/{key[2:4]}/{key}"


def cache_temporaries(env: StoreEnv) -> list[str]:
    tmp = env.cache_dir / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def test_local_path_fetches_into_the_cache_once(remote_env: StoreEnv) -> None:
    data = os.urandom(300_000)
    ref = remote_env.store.put_bytes(data)

    path = remote_env.store.local_path(ref.key, ref.size)

    assert path == remote_env.cache_dir / rel(ref.key)
    assert path.read_bytes() == data
    assert cache_temporaries(remote_env) == []
    # A second call is served from the cache: even if the remote copy were replaced behind the
    # store's back, the cached (digest-checked) bytes come back without a fetch.
    remote_env.write_raw(rel(ref.key), os.urandom(len(data)))
    assert remote_env.store.local_path(ref.key, ref.size) == path
    assert remote_env.store.local_path(ref.key) == path
    assert path.read_bytes() == data


def test_local_path_refetches_a_damaged_cache_copy(remote_env: StoreEnv) -> None:
    data = os.urandom(100_000)
    ref = remote_env.store.put_bytes(data)
    path = remote_env.store.local_path(ref.key, ref.size)
    path.write_bytes(data[:10])  # the cache is local, disposable, and can be damaged

    assert remote_env.store.local_path(ref.key, ref.size).read_bytes() == data


def test_local_path_never_caches_a_corrupt_remote_blob(remote_env: StoreEnv) -> None:
    data = os.urandom(100_000)
    ref = remote_env.store.put_bytes(data)
    flipped = bytearray(data)
    flipped[0] ^= 1
    remote_env.write_raw(rel(ref.key), bytes(flipped))

    with pytest.raises(CorruptBlob, match=ref.key):
        remote_env.store.local_path(ref.key, ref.size)
    remote_env.write_raw(rel(ref.key), data[:5])
    with pytest.raises(CorruptBlob, match=f"expected {ref.size} bytes, got 5"):
        remote_env.store.local_path(ref.key, ref.size)

    assert not (remote_env.cache_dir / rel(ref.key)).exists()
    assert cache_temporaries(remote_env) == []


def test_delete_drops_the_cached_copy(remote_env: StoreEnv) -> None:
    ref = remote_env.store.put_bytes(b"collected")
    path = remote_env.store.local_path(ref.key)
    remote_env.store.delete(ref.key)

    assert not path.exists()
    with pytest.raises(NotFound):
        remote_env.store.local_path(ref.key)


def test_s3_upload_cut_short_is_invisible(
    s3_server: S3Server, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A writer killed mid-upload leaves an incomplete multipart upload: no object, no blob."""
    env = make_env("s3", tmp_path, request)
    prefix = env.prefix
    data = os.urandom(6 * (1 << 20))
    key = hashlib.sha256(data).hexdigest()
    client = s3_server.client
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=f"{prefix}/{rel(key)}")
    client.upload_part(
        Bucket=BUCKET,
        Key=f"{prefix}/{rel(key)}",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=data[: 5 * (1 << 20)],
    )
    try:
        assert not env.store.exists(key)
        assert list(env.store.iter_keys()) == []
        with pytest.raises(NotFound):
            env.store.get_bytes(key)

        ref = env.store.put_bytes(data)  # the next writer is not disturbed by the dangling upload
        assert env.store.get_bytes(ref.key, ref.size) == data
    finally:
        client.abort_multipart_upload(Bucket=BUCKET, Key=f"{prefix}/{rel(key)}", UploadId=upload["UploadId"])


def test_local_path_refetches_a_cache_copy_damaged_in_place(remote_env: StoreEnv) -> None:
    data = os.urandom(100_000)
    ref = remote_env.store.put_bytes(data)
    path = remote_env.store.local_path(ref.key, ref.size)
    flipped = bytearray(data)
    flipped[500] ^= 0x01
    path.write_bytes(bytes(flipped))  # same size: only the digest can tell

    assert remote_env.store.local_path(ref.key, ref.size).read_bytes() == data
