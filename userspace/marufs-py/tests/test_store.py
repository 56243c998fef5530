"""The marufs Python package against a temporary directory standing in for a
mount (publish semantics of a real mount are tested in guests)."""

import ctypes
import errno
import gc
import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import marufs


@pytest.fixture
def store(tmp_path):
    return marufs.Store(tmp_path, "app")


def addr(buf):
    return np.frombuffer(buf, dtype=np.uint8).ctypes.data


def test_alloc_publish_retrieve_zero_copy(store):
    a = store.alloc(3 << 20)
    assert (a.size, len(a), a.key, a.published, a.writable) == (3 << 20, 3 << 20, None, False, True)
    arr = np.frombuffer(a, dtype=np.float16)
    assert not arr.any()  # zero-filled
    arr[:] = np.arange(arr.size, dtype=np.float16)
    before = addr(a)
    assert store.publish(a, "chunk-0")
    assert (a.key, a.published, a.writable) == ("chunk-0", True, False)
    # The same memory, now read-only: buffers made before stay valid.
    assert addr(a) == before
    assert memoryview(a).readonly
    with pytest.raises(TypeError):
        memoryview(a)[0:1] = b"x"
    with pytest.raises(TypeError, match="not writable"):  # a writable export is refused
        (ctypes.c_char * 4).from_buffer(a)
    v = store.retrieve("chunk-0")
    assert isinstance(v, marufs.KeyView) and (v.key, v.size) == ("chunk-0", 3 << 20)
    got = np.frombuffer(v, dtype=np.float16)
    assert np.array_equal(got, arr)
    assert not got.flags.writeable
    assert memoryview(v).readonly
    with pytest.raises(TypeError):
        memoryview(v)[0] = 1


def test_views_keep_mappings_alive(tmp_path):
    s = marufs.Store(tmp_path, "app")
    s.put("k", b"abc" * 1000)
    arr = np.frombuffer(s.retrieve("k"), dtype=np.uint8)  # the view object is dropped
    a = s.alloc(4096)
    arr2 = np.frombuffer(a, dtype=np.uint8)
    arr2[:] = 9
    assert s.publish(a, "k2")
    assert s.delete("k") and s.delete("k2")
    del a, s
    gc.collect()
    assert bytes(arr[:6]) == b"abcabc" and int(arr2.sum()) == 9 * 4096


def test_dedup_leaves_the_allocation(store):
    assert store.put("k", b"first")
    a = store.alloc(8)
    memoryview(a)[:] = b"secondxx"
    assert not store.publish(a, "k")
    assert a.writable and not a.published
    assert bytes(store.retrieve("k")) == b"first"
    memoryview(a)[0:1] = b"S"
    assert store.publish(a, "k-other")
    assert bytes(store.retrieve("k-other")) == b"Secondxx"
    assert not store.put("k", b"other")


def test_named_allocations(store):
    a = store.alloc(16, key="named")
    assert a.key == "named"
    m = memoryview(a)
    m[:5] = b"hello"
    before = addr(a)
    with pytest.raises(ValueError):
        store.publish(a, "other-name")
    # Published in place: the buffer stays valid and reads the published key.
    assert store.publish(a)
    assert bytes(m[:5]) == b"hello" and addr(a) == before
    assert memoryview(a).readonly
    assert bytes(store.retrieve("named"))[:5] == b"hello"
    with pytest.raises(marufs.MarufsError) as e:
        store.alloc(4, key="named")
    assert e.value.errno == errno.EEXIST
    with pytest.raises(ValueError):
        store.publish(store.alloc(4))  # unnamed needs a key


RELEASE_EARLY = """
import ctypes, sys, marufs
s = marufs.Store(sys.argv[1], "app")
a = s.alloc(1 << 20, key=sys.argv[2] or None)
view = (ctypes.c_char * 128)()
get = ctypes.pythonapi.PyObject_GetBuffer
get.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
assert get(a, ctypes.addressof(view), 1) == 0  # PyBUF_WRITABLE
ptr = ctypes.c_void_p.from_buffer(view).value
rel = ctypes.pythonapi.PyBuffer_Release
rel.argtypes = [ctypes.c_void_p]
rel(ctypes.addressof(view))  # as torch.frombuffer does
ctypes.memset(ptr, 7, 16)
if sys.argv[3] == "free":
    s.free(a)
else:
    assert s.publish(a, None if sys.argv[2] else "k")
assert ctypes.string_at(ptr, 16) == bytes([7]) * 16  # still mapped: no SIGSEGV
"""


@pytest.mark.parametrize(
    "key,op", [("", "free"), ("named", "free"), ("", "publish"), ("named", "publish")]
)
def test_pointer_without_an_export_stays_valid(tmp_path, key, op):
    # torch.frombuffer keeps a reference to the object but releases its
    # buffer at once: the mapping must live as long as the object.
    r = subprocess.run(
        [sys.executable, "-c", RELEASE_EARLY, str(tmp_path), key, op], capture_output=True
    )
    assert r.returncode == 0, r.stderr.decode()


def test_fork_child_reads_a_published_allocation(store):
    a = store.alloc(4096)
    memoryview(a)[:3] = b"abc"
    assert store.publish(a, "k")
    pid = os.fork()
    if pid == 0:
        os._exit(0 if bytes(memoryview(a)[:3]) == b"abc" else 1)
    assert os.waitpid(pid, 0)[1] == 0


def test_a_writer_that_dies_leaves_nothing(tmp_path):
    code = (
        "import marufs, os, sys; s = marufs.Store(sys.argv[1], 'app'); s.alloc(4096); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert marufs.Store(tmp_path, "app").list() == []


def test_free_is_deferred_while_buffers_exist(store, tmp_path):
    a = store.alloc(1 << 20)
    arr = np.frombuffer(a, dtype=np.uint8)
    arr[:] = 1
    store.free(a)
    assert not a.writable
    assert int(arr[-1]) == 1  # still mapped
    with pytest.raises(BufferError):
        memoryview(a)
    with pytest.raises(ValueError):
        store.publish(a, "late")
    del arr
    gc.collect()
    assert a.exports == 0
    assert store.list() == []
    assert list((tmp_path / "app").iterdir()) == []


def test_put_accepts_typed_buffers(store):
    x = np.arange(1000, dtype=np.float32)
    assert store.put("f32", x)
    assert np.array_equal(np.frombuffer(store.retrieve("f32"), dtype=np.float32), x)
    assert store.put("ba", bytearray(b"xyz")) and bytes(store.retrieve("ba")) == b"xyz"
    assert store.put("empty", b"") and len(store.retrieve("empty")) == 0


def test_lookups_and_batches(store):
    for i in range(10):
        store.put(f"k{i}", bytes([i]) * (i + 1))
    names = [f"k{i}" for i in range(12)]
    assert store.batch_exists(names) == [True] * 10 + [False] * 2
    views = store.batch_retrieve(names)
    assert [None if v is None else bytes(v) for v in views] == [
        bytes([i]) * (i + 1) for i in range(10)
    ] + [None, None]
    st = store.batch_stat(["k3", "nope"])
    assert st[0].size == 4 and st[0].name == "k3" and st[1] is None
    assert store.stat("k9").size == 10
    assert store.exists("k1") and not store.exists("zz")
    assert sorted(i.name for i in store.list()) == sorted(names[:10])
    assert store.delete("k1") and not store.delete("k1")
    assert store.retrieve("k1") is None
    c = store.counters()
    assert c["stored"] == 10 and c["deleted"] == 1
    s = store.stats()
    assert s["app"]["name"] == "app" and s["app"]["keys"] == 9 and s["pool"]["marufs"] is False


def test_pins(store):
    store.put("p", b"pinned bytes")
    with store.pin("p") as p:
        assert p.pinned and p.size == 12
        assert store.delete("p")
        assert bytes(p.map()) == b"pinned bytes"  # mapped after the delete
    assert not p.pinned
    with pytest.raises(ValueError):
        p.map()
    assert store.pin("gone") is None


def test_errors_are_oserrors(tmp_path):
    s = marufs.Store(tmp_path, "app")
    for bad in ["a/b", "", ".", "x" * 256]:
        with pytest.raises(marufs.MarufsError) as e:
            s.put(bad, b"x")
        assert isinstance(e.value, OSError) and e.value.errno == errno.EINVAL
        assert "invalid name" in str(e.value)
    with pytest.raises(marufs.MarufsError) as e:
        marufs.Store(tmp_path, "missing", create=False)
    assert e.value.errno == errno.ENOENT
    with pytest.raises(ValueError):
        marufs.Store(tmp_path, "app", coherence="sometimes")
    marufs.validate_name("fine")
    with pytest.raises(marufs.MarufsError):
        marufs.validate_name("not/fine")
    assert marufs.NAME_MAX == 255


def test_threads_share_a_store(store):
    # The GIL is released around system calls: many threads storing and
    # retrieving at once must still see exactly their own bytes.
    errors = []

    def work(t):
        try:
            for i in range(50):
                k = f"t{t}-{i}"
                a = store.alloc(4096)
                np.frombuffer(a, dtype=np.uint8)[:] = t
                assert store.publish(a, k)
                v = store.retrieve(k)
                assert bytes(v) == bytes([t]) * 4096
        except Exception as e:
            errors.append(e)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert len(store.list()) == 400


def _writer(path, n, q):
    s = marufs.Store(path, "shared")
    for i in range(n):
        a = s.alloc(1 << 16)
        np.frombuffer(a, dtype=np.uint32)[:] = i
        s.publish(a, f"c{i}")
    q.put("done")


def test_two_processes_share_one_store(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_writer, args=(str(tmp_path), 20, q))
    p.start()
    assert q.get(timeout=60) == "done"
    p.join(60)
    assert p.exitcode == 0
    s = marufs.Store(tmp_path, "shared", create=False)
    names = [f"c{i}" for i in range(20)]
    assert all(s.batch_exists(names))
    for i, v in enumerate(s.batch_retrieve(names)):
        assert (np.frombuffer(v, dtype=np.uint32) == i).all()


def test_torch_frombuffer(store):
    torch = pytest.importorskip("torch")
    a = store.alloc(1024)
    t = torch.frombuffer(a, dtype=torch.float32)
    t[:] = 2.5
    assert store.publish(a, "t")
    v = store.retrieve("t")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that the buffer is read-only
        r = torch.frombuffer(v, dtype=torch.float32)
    assert torch.equal(r, t)


def test_eviction(tmp_path):
    import os

    s = marufs.Store(tmp_path, "app", quota=10 * 4096, high_pct=90, low_pct=50)
    for i in range(8):
        assert s.put(f"k{i}", bytes([i]) * 4096)
        os.utime(tmp_path / "app" / f"k{i}", ns=(10**18 + i, 10**18 + i))
    with s.pin("k0"):
        got = s.make_room(2 * 4096)
        assert got["keys"] == 5
        assert sorted(k.name for k in s.list()) == ["k0", "k6", "k7"]
    assert s.evict(1)["keys"] == 1 and not s.exists("k0")
    assert s.counters()["evicted"] == 6
    a = s.alloc(4096, evict=True)
    assert s.publish(a, "new")
    with pytest.raises(ValueError):
        marufs.Store(tmp_path, "app", high_pct=50, low_pct=60)
