"""The Python half of py-share.sh: python3 py_share.py store|fetch|readback MOUNT."""

import hashlib
import json
import random
import sys
import time

import marufs

N = 12


def chunk(i: int) -> bytes:
    # 2-6 MiB: KV chunks are not unit-sized; the last unit of most is partial.
    n = (2 << 20) + random.Random(i).randrange(4 << 20)
    return random.Random(1000 + i).randbytes(n)


def store(mount: str) -> None:
    s = marufs.Store(mount, "app")
    assert s.is_marufs, "not a marufs mount"
    manifest = []
    t0 = time.monotonic()
    for i in range(N):
        data = chunk(i)
        a = s.alloc(len(data))  # pool memory, writable, unnamed
        mv = memoryview(a)
        before = mv.tobytes()[:16]
        assert before == bytes(16), "a new allocation is not zero-filled"
        mv[:] = data  # written in place: no staging buffer
        mv.release()
        assert s.publish(a, f"chunk-{i}")  # named and published in place
        assert a.published and not a.writable
        # The allocation's memory now reads the published key.
        assert hashlib.sha256(memoryview(a)).hexdigest() == hashlib.sha256(data).hexdigest()
        manifest.append(
            {"key": f"chunk-{i}", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    el = time.monotonic() - t0
    # A second publish of an existing name is refused (deduplication).
    dup = s.alloc(16)
    assert not s.publish(dup, "chunk-0")
    s.free(dup)
    assert s.put("manifest", json.dumps(manifest).encode())
    mb = sum(m["size"] for m in manifest) / (1 << 20)
    print(f"[a] stored {N} chunks ({mb:.1f} MiB) zero copy in {el:.2f} s; counters {s.counters()}")


def fetch(mount: str) -> None:
    s = marufs.Store(mount, "app")
    assert s.is_marufs, "not a marufs mount"
    v = s.retrieve("manifest")
    assert v is not None
    manifest = json.loads(bytes(v))
    names = [m["key"] for m in manifest]
    found = s.batch_exists(names + ["no-such-chunk"])
    assert found == [True] * N + [False], found
    print(f"[b] batched lookup of {N + 1} names: {s.lookup_mode}")
    t0 = time.monotonic()
    for m, view in zip(manifest, s.batch_retrieve(names), strict=True):
        assert view is not None, m["key"]
        assert view.size == m["size"], (m["key"], view.size)
        mv = memoryview(view)
        assert mv.readonly
        # Hashed straight from the mapping of pool memory (no copy).
        got = hashlib.sha256(mv).hexdigest()
        assert got == m["sha256"], f"{m['key']}: bytes differ"
        try:
            mv[0] = 0
        except TypeError:
            pass
        else:
            raise AssertionError("a retrieved key was writable")
        mv.release()
    el = time.monotonic() - t0
    pin = s.pin("chunk-3")
    assert pin is not None and s.delete("chunk-3")
    assert not s.exists("chunk-3")
    pv = pin.map()
    assert hashlib.sha256(memoryview(pv)).hexdigest() == manifest[3]["sha256"], (
        "pinned bytes changed"
    )
    pin.unpin()
    assert s.put("from-b", b"written by host b " * 1000)
    print(f"[b] verified {N} chunks zero copy in {el:.2f} s; deleted a pinned one, its bytes held")


def readback(mount: str) -> None:
    s = marufs.Store(mount, "app")
    v = s.retrieve("from-b")
    assert v is not None and bytes(v) == b"written by host b " * 1000
    assert not s.exists("chunk-3"), "B's delete is not seen on A"
    print("[a] read B's key; B's delete seen")


if __name__ == "__main__":
    {"store": store, "fetch": fetch, "readback": readback}[sys.argv[1]](sys.argv[2])
