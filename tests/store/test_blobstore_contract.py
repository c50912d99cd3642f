"""The blob store contract, run unchanged against file://, memory:// and a real S3 server."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from cvcycle.errors import CorruptBlob, InvalidInput, NotFound
from cvcycle.store import BlobRef

from .conftest import StoreEnv


def blob(seed: int, size: int = 20_000) -> bytes:
    """Deterministic incompressible bytes standing in for a JPEG."""
    return random.Random(seed).randbytes(size)


def rel(key: str) -> str:
    return f"sha256/{key[:2]}/{key[2:4]}/{key}"


ABSENT = hashlib.sha256(b"never stored").hexdigest()


def test_round_trip(env: StoreEnv) -> None:
    data = blob(1)
    ref = env.store.put_bytes(data)

    assert ref == BlobRef(hashlib.sha256(data).hexdigest(), len(data))
    assert env.store.get_bytes(ref.key) == data
    assert env.store.get_bytes(ref.key, size=ref.size) == data
    assert env.store.exists(ref.key)
    with env.store.open(ref.key) as stream:
        assert stream.read() == data
    env.store.verify(ref.key, ref.size)
    assert list(env.store.iter_keys()) == [ref.key]
    assert env.list_raw() == [rel(ref.key)]  # the documented layout, nothing else left behind
    assert env.store.local_path(ref.key, ref.size).read_bytes() == data


def test_empty_blob(env: StoreEnv) -> None:
    ref = env.store.put_bytes(b"")
    assert ref.size == 0
    assert env.store.get_bytes(ref.key, size=0) == b""
    env.store.verify(ref.key, 0)


def test_put_of_a_stored_blob_does_not_rewrite_it(env: StoreEnv) -> None:
    data = blob(2)
    ref = env.store.put_bytes(data)
    # Replace the stored bytes behind the store's back with same-size different bytes: if the
    # second put rewrote the blob, the original bytes would come back.
    marker = blob(3, len(data))
    env.write_raw(rel(ref.key), marker)

    assert env.store.put_bytes(data) == ref
    # Had the put rewritten the blob, the original bytes would read back; the marker is still
    # there, and reads refuse it.
    with pytest.raises(CorruptBlob, match=hashlib.sha256(marker).hexdigest()):
        env.store.get_bytes(ref.key)


def test_put_repairs_a_blob_of_the_wrong_size(env: StoreEnv) -> None:
    data = blob(4)
    ref = env.store.put_bytes(data)
    env.write_raw(rel(ref.key), data[:100])  # e.g. torn by a power loss

    assert env.store.put_bytes(data) == ref
    assert env.store.get_bytes(ref.key, ref.size) == data


def test_truncated_blob_fails_size_verification(env: StoreEnv) -> None:
    data = blob(5)
    ref = env.store.put_bytes(data)
    env.write_raw(rel(ref.key), data[: ref.size // 2])

    with pytest.raises(CorruptBlob) as excinfo:
        env.store.get_bytes(ref.key, size=ref.size)
    message = str(excinfo.value)
    assert ref.key in message
    assert str(ref.size) in message
    assert str(ref.size // 2) in message

    with pytest.raises(CorruptBlob, match=ref.key):
        env.store.verify(ref.key, ref.size)
    with pytest.raises(CorruptBlob, match=ref.key):
        env.store.local_path(ref.key, ref.size)
    # Without a recorded size only the digest can tell.
    with pytest.raises(CorruptBlob, match="hash to"):
        env.store.verify(ref.key)


def test_digest_verification(env: StoreEnv) -> None:
    data = blob(6)
    ref = env.store.put_bytes(data)
    env.store.verify(ref.key, ref.size)

    flipped = bytearray(data)
    flipped[1234] ^= 0xFF  # one bit-rotted byte, same size
    env.write_raw(rel(ref.key), bytes(flipped))

    bad_digest = hashlib.sha256(flipped).hexdigest()
    for read in (
        lambda: env.store.verify(ref.key, ref.size),
        lambda: env.store.get_bytes(ref.key, ref.size),  # the size alone cannot tell
        lambda: env.store.get_bytes(ref.key),
        lambda: env.store.local_path(ref.key, ref.size),
    ):
        with pytest.raises(CorruptBlob) as excinfo:
            read()
        assert ref.key in str(excinfo.value)
        assert bad_digest in str(excinfo.value)
        assert excinfo.value.hint is not None and "cvcycle store verify" in excinfo.value.hint


def test_a_stream_read_to_its_end_fails_on_a_damaged_blob(env: StoreEnv) -> None:
    data = blob(10, 3 * (1 << 20) + 17)  # several chunks
    ref = env.store.put_bytes(data)
    with env.store.open(ref.key) as stream:  # an intact blob streams to its end silently
        assert b"".join(iter(lambda: stream.read(100_000), b"")) == data

    flipped = bytearray(data)
    flipped[-1] ^= 0x01
    env.write_raw(rel(ref.key), bytes(flipped))

    with env.store.open(ref.key) as stream, pytest.raises(CorruptBlob, match=ref.key):
        while stream.read(1 << 20):
            pass
    with env.store.open(ref.key) as stream, pytest.raises(CorruptBlob, match=ref.key):
        stream.read()
    with env.store.open(ref.key) as stream:
        assert stream.read(1000) == data[:1000]  # what was read so far is not judged yet
        with pytest.raises(CorruptBlob):
            stream.read()
        with pytest.raises(CorruptBlob):  # and it stays an error, not a quiet end of stream
            stream.read(10)


def test_a_stream_that_seeks_is_not_judged(env: StoreEnv) -> None:
    data = blob(11, 50_000)
    ref = env.store.put_bytes(data)
    flipped = bytearray(data)
    flipped[0] ^= 0x01
    env.write_raw(rel(ref.key), bytes(flipped))

    with env.store.open(ref.key) as stream:
        stream.seek(10)  # a resumed copy: its caller hashes the whole copy itself
        assert stream.read() == bytes(flipped[10:])


def test_absent_blob_is_not_found(env: StoreEnv) -> None:
    assert not env.store.exists(ABSENT)
    with pytest.raises(NotFound, match=ABSENT):
        env.store.get_bytes(ABSENT)
    with pytest.raises(NotFound, match=ABSENT):
        env.store.get_bytes(ABSENT, size=20_000)
    with pytest.raises(NotFound, match=ABSENT):
        env.store.open(ABSENT)
    with pytest.raises(NotFound, match=ABSENT):
        env.store.verify(ABSENT)
    with pytest.raises(NotFound, match=ABSENT):
        env.store.local_path(ABSENT)
    with pytest.raises(NotFound, match=ABSENT):
        env.store.delete(ABSENT)
    assert list(env.store.iter_keys()) == []


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "abc",
        ABSENT.upper(),
        ABSENT + "0",
        ABSENT[:-1] + "g",
        "../" + ABSENT[3:],
        f"{ABSENT[:2]}/{ABSENT[2:4]}/{ABSENT[4:]}",
    ],
)
def test_invalid_key_is_rejected_naming_it(env: StoreEnv, bad_key: str) -> None:
    calls = [
        lambda: env.store.get_bytes(bad_key),
        lambda: env.store.verify(bad_key),
        lambda: env.store.exists(bad_key),
        lambda: env.store.local_path(bad_key),
        lambda: env.store.open(bad_key),
        lambda: env.store.delete(bad_key),
    ]
    for call in calls:
        with pytest.raises(InvalidInput) as excinfo:
            call()
        assert repr(bad_key) in str(excinfo.value)
    assert env.list_raw() == []


def test_invalid_size_is_rejected(env: StoreEnv) -> None:
    ref = env.store.put_bytes(b"x")
    with pytest.raises(InvalidInput):
        env.store.get_bytes(ref.key, size=-1)


def test_put_file_streams_a_multi_megabyte_file(env: StoreEnv, tmp_path: Path) -> None:
    # Larger than the 1 MiB chunk and not a multiple of it, so the last partial chunk counts.
    data = random.Random(7).randbytes(5 * (1 << 20) + 12_345)
    source = tmp_path / "video.mp4"
    source.write_bytes(data)

    ref = env.store.put_file(source)

    assert ref == BlobRef(hashlib.sha256(data).hexdigest(), len(data))
    assert env.store.get_bytes(ref.key, ref.size) == data
    env.store.verify(ref.key, ref.size)
    assert env.store.put_file(source) == ref  # idempotent
    assert env.store.put_bytes(data) == ref  # the same bytes by another route, the same blob
    assert env.list_raw() == [rel(ref.key)]  # no temporary left behind


def test_put_file_rejects_what_is_not_a_file(env: StoreEnv, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        env.store.put_file(tmp_path / "missing.jpg")
    with pytest.raises(InvalidInput, match="directory"):
        env.store.put_file(tmp_path)


def test_put_many_keeps_input_order(env: StoreEnv) -> None:
    items = [blob(seed, 2_000 + seed) for seed in range(40)]
    items += [items[3], items[0]]  # duplicates within the batch

    refs = env.store.put_many(items)

    assert refs == [BlobRef(hashlib.sha256(d).hexdigest(), len(d)) for d in items]
    assert sorted(env.store.iter_keys()) == sorted({r.key for r in refs})
    for data, ref in zip(items, refs, strict=True):
        assert env.store.get_bytes(ref.key, ref.size) == data


def test_put_many_consumes_a_generator(env: StoreEnv) -> None:
    refs = env.store.put_many(blob(seed, 500) for seed in range(100, 130))
    assert [r.key for r in refs] == [hashlib.sha256(blob(s, 500)).hexdigest() for s in range(100, 130)]
    assert env.store.put_many([]) == []


def test_put_many_stops_on_bad_input(env: StoreEnv) -> None:
    with pytest.raises(InvalidInput, match="str"):
        env.store.put_many([b"ok", "not bytes"])  # type: ignore[list-item]


def test_delete(env: StoreEnv) -> None:
    keep, gone = env.store.put_bytes(blob(8)), env.store.put_bytes(blob(9))
    env.store.delete(gone.key)

    assert not env.store.exists(gone.key)
    with pytest.raises(NotFound):
        env.store.get_bytes(gone.key)
    with pytest.raises(NotFound):
        env.store.delete(gone.key)
    assert list(env.store.iter_keys()) == [keep.key]
    assert env.store.put_bytes(blob(9)) == gone  # a collected blob can come back


def test_iter_keys_lists_only_blobs(env: StoreEnv) -> None:
    refs = [env.store.put_bytes(blob(seed, 100)) for seed in range(20)]
    stray = hashlib.sha256(b"stray").hexdigest()
    env.write_raw(f"tmp/123-{stray}", b"a write in flight")
    env.write_raw(f"sha256/{stray[:2]}/{stray[2:4]}/.DS_Store", b"junk")
    env.write_raw(f"sha256/00/00/{stray}", b"a blob in the wrong fan-out directory")
    env.write_raw(f"other/{stray}", b"not under sha256/")

    assert list(env.store.iter_keys()) == sorted(r.key for r in refs)


def test_a_blob_damaged_after_a_checked_read_is_caught_again(env: StoreEnv) -> None:
    data = blob(12)
    ref = env.store.put_bytes(data)
    assert env.store.local_path(ref.key, ref.size).read_bytes() == data  # checked once, remembered
    assert env.store.get_bytes(ref.key) == data

    flipped = bytearray(data)
    flipped[7] ^= 0x01
    env.write_raw(rel(ref.key), bytes(flipped))

    with pytest.raises(CorruptBlob, match=ref.key):
        env.store.get_bytes(ref.key)
    if not env.remote:  # the stored file itself changed: the remembered check no longer holds
        with pytest.raises(CorruptBlob, match=ref.key):
            env.store.local_path(ref.key, ref.size)


def test_iter_blobs_lists_sizes_and_ages(env: StoreEnv) -> None:
    refs = sorted((env.store.put_bytes(blob(seed, 100 + seed)) for seed in range(5)), key=lambda r: r.key)
    env.write_raw(f"tmp/1-{refs[0].key}", b"a write in flight")

    listed = list(env.store.iter_blobs())

    assert [(b.key, b.size) for b in listed] == [(r.key, r.size) for r in refs]
    for info in listed:
        assert info.modified is not None
        assert env.store.modified(info.key) == pytest.approx(info.modified, abs=1.0)
    assert env.store.modified(ABSENT) is None
