"""POSIX semantics of regular files in a kinko mount, compared with a native
filesystem: open flags, offsets, sizes, pread/pwrite, truncate.

Every scenario runs in the kinko compartment directory and in a plain temp
directory on the same machine; the observable results (errno, sizes, bytes)
must agree, and where the expected bytes are known they are checked too."""
import errno
import os
import random
import subprocess
import tempfile
import time

import pytest
from kinko_util import Vault, errno_of, fsck_clean, rbytes, read_all

BS = 4096


# ---------------------------------------------------------------- helpers

def write_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def pwrite_all(fd, data, off):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, off)
        view = view[n:]
        off += n


def remount(vault):
    """Unmount every mount of the vault and mount it again; returns the compartment dir."""
    vault.cleanup()
    return vault.comp(vault.mount())


def backing_files(vault):
    """Backing files of user entries (excluding kinko's own files) in the compartment root."""
    d = vault.data_dir()
    return [os.path.join(d, n) for n in os.listdir(d)
            if n != "kinko.diriv" and not n.endswith(".name")]


def describe_diff(a, b):
    if len(a) != len(b):
        return f"sizes differ: {len(a)} != {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first differing byte at offset {i}: {x:#x} != {y:#x}"
    return "equal"


def assert_same_bytes(got, want, what=""):
    assert got == want, f"{what}: {describe_diff(got, want)}"


@pytest.fixture
def env(mounted, tmpbase):
    """(vault, kinko compartment dir, native temp dir)"""
    vault, comp = mounted
    native = tempfile.mkdtemp(prefix="native-", dir=tmpbase)
    return vault, comp, native


def on_both(comp, native, fn):
    """Run fn(root) in both trees; return (kinko result, native result)."""
    return fn(comp), fn(native)


# ---------------------------------------------------------------- open flags

def test_o_creat_o_excl(env):
    vault, comp, native = env

    def scenario(root):
        p = os.path.join(root, "excl")
        out = []
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        os.write(fd, b"first")
        os.close(fd)
        out.append(errno_of(os.open, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        out.append(errno_of(os.open, p, os.O_RDONLY | os.O_CREAT | os.O_EXCL))
        # O_EXCL on a dangling symlink: EEXIST, and no file created at the target
        os.symlink("nowhere", os.path.join(root, "dangling"))
        out.append(errno_of(os.open, os.path.join(root, "dangling"),
                            os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        out.append(os.path.lexists(os.path.join(root, "nowhere")))
        # O_EXCL on a directory
        os.mkdir(os.path.join(root, "adir"))
        out.append(errno_of(os.open, os.path.join(root, "adir"), os.O_RDONLY | os.O_CREAT | os.O_EXCL))
        out.append(read_all(p))
        out.append(os.stat(p).st_mode & 0o7777)
        return out

    k, n = on_both(comp, native, scenario)
    assert k == n
    assert k[0] == errno.EEXIST and k[5] == b"first"
    fsck_clean(vault)


def test_o_trunc(env):
    vault, comp, native = env
    data = rbytes(3 * BS + 17, 1)

    def scenario(root):
        p = os.path.join(root, "t")
        out = []
        write_file(p, data)
        fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
        out.append(os.fstat(fd).st_size)
        os.write(fd, b"abc")
        os.close(fd)
        out += [os.stat(p).st_size, read_all(p)]
        write_file(p, data)
        fd = os.open(p, os.O_RDWR | os.O_TRUNC)
        out.append(os.read(fd, 100))
        os.close(fd)
        out.append(os.stat(p).st_size)
        # O_RDONLY|O_TRUNC truncates on Linux
        write_file(p, data)
        fd = os.open(p, os.O_RDONLY | os.O_TRUNC)
        out.append(os.read(fd, 100))
        os.close(fd)
        out.append(os.stat(p).st_size)
        # truncate then write past the old header/first block
        write_file(p, data)
        fd = os.open(p, os.O_RDWR | os.O_TRUNC)
        os.pwrite(fd, b"Z" * 10, 5000)
        os.close(fd)
        out.append(read_all(p))
        return out

    k, n = on_both(comp, native, scenario)
    assert k == n
    assert k[1] == 3 and k[2] == b"abc" and k[-1] == b"\0" * 5000 + b"Z" * 10
    comp = remount(vault)
    assert read_all(os.path.join(comp, "t")) == b"\0" * 5000 + b"Z" * 10
    fsck_clean(vault)


def test_o_append_two_fds_interleaved(env):
    vault, comp, native = env
    sizes = [1, 4095, 4097, 10, 8192, 3, 4096, 1, 12289, 7]
    chunks = [rbytes(s, 100 + i) for i, s in enumerate(sizes)]

    def scenario(root):
        p = os.path.join(root, "app")
        write_file(p, b"head")
        fa = os.open(p, os.O_WRONLY | os.O_APPEND)
        fb = os.open(p, os.O_RDWR | os.O_APPEND)
        for i, c in enumerate(chunks):
            os.write(fa if i % 2 == 0 else fb, c)
        # pwrite on an O_APPEND fd appends on Linux (the offset is ignored)
        os.pwrite(fb, b"PW", 0)
        os.lseek(fb, 0, os.SEEK_SET)
        head = os.read(fb, 4)
        os.close(fa)
        os.close(fb)
        return head, os.stat(p).st_size, read_all(p)

    k, n = on_both(comp, native, scenario)
    want = b"head" + b"".join(chunks) + b"PW"
    assert_same_bytes(n[2], want, "native")
    assert k[0] == n[0] and k[1] == n[1]
    assert_same_bytes(k[2], want, "kinko")
    fsck_clean(vault)


def test_o_rdonly_write_ebadf(env):
    vault, comp, native = env

    def scenario(root):
        p = os.path.join(root, "ro")
        write_file(p, b"content")
        fd = os.open(p, os.O_RDONLY)
        e = errno_of(os.write, fd, b"x")
        e2 = errno_of(os.pwrite, fd, b"x", 3)
        e3 = errno_of(os.ftruncate, fd, 1)
        os.close(fd)
        return e, e2, e3, read_all(p)

    k, n = on_both(comp, native, scenario)
    assert k == n
    assert k[0] == errno.EBADF and k[3] == b"content"
    fsck_clean(vault)


def test_o_wronly_read_ebadf(env):
    vault, comp, native = env

    def scenario(root):
        p = os.path.join(root, "wo")
        write_file(p, b"content")
        fd = os.open(p, os.O_WRONLY)
        e = errno_of(os.read, fd, 10)
        e2 = errno_of(os.pread, fd, 10, 0)
        os.write(fd, b"C")
        os.close(fd)
        return e, e2, read_all(p)

    k, n = on_both(comp, native, scenario)
    assert k == n
    assert k[0] == errno.EBADF and k[2] == b"Content"
    fsck_clean(vault)


def test_restrictive_modes_still_usable_by_owner_root(env):
    """Write-only (0200), read-only (0400) and 0000 files: root may still open them
    for writing, exactly as on a native filesystem."""
    vault, comp, native = env
    modes = [0o200, 0o400, 0o000]

    def scenario(root, mode):
        p = os.path.join(root, f"m{mode:o}")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.fchmod(fd, mode)  # independent of the umask
        os.write(fd, b"A" * 5000)
        os.close(fd)
        out = [os.stat(p).st_mode & 0o7777]
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"B" * 10)
        os.close(fd)
        fd = os.open(p, os.O_RDWR)
        os.pwrite(fd, b"C", 4096)
        os.close(fd)
        out += [os.stat(p).st_mode & 0o7777, os.stat(p).st_size, read_all(p)]
        return out

    want = b"A" * 4096 + b"C" + b"A" * 903 + b"B" * 10
    for mode in modes:
        k, n = scenario(comp, mode), scenario(native, mode)
        assert k == n, f"mode {mode:o}"
        assert k[0] == mode and k[3] == want
    comp = remount(vault)
    for mode in modes:
        p = os.path.join(comp, f"m{mode:o}")
        assert read_all(p) == want
        assert os.stat(p).st_mode & 0o7777 == mode
    fsck_clean(vault)


def test_o_nofollow(env):
    """O_NOFOLLOW only refuses a symlink as the last component: regular files and
    directories open normally (cp, mv, rsync and tar all open with it)."""
    vault, comp, native = env

    def scenario(root):
        p = os.path.join(root, "f")
        write_file(p, b"regular file")
        os.mkdir(os.path.join(root, "d"))
        os.symlink("f", os.path.join(root, "l"))
        out = []
        for flags in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_CLOEXEC):
            try:
                fd = os.open(p, flags | os.O_NOFOLLOW)
            except OSError as e:
                out.append(("err", e.errno))
                continue
            out.append(("ok", os.pread(fd, 100, 0) if flags != os.O_WRONLY else b""))
            os.close(fd)
        out.append(errno_of(lambda: os.close(os.open(os.path.join(root, "d"),
                                                     os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY))))
        out.append(errno_of(os.open, os.path.join(root, "l"), os.O_RDONLY | os.O_NOFOLLOW))
        fd = os.open(os.path.join(root, "new"), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        os.write(fd, b"created")
        os.close(fd)
        out.append(read_all(os.path.join(root, "new")))
        return out

    k, n = on_both(comp, native, scenario)
    assert n[0] == ("ok", b"regular file") and n[5] == errno.ELOOP
    assert k == n
    fsck_clean(vault)


def test_o_append_writeback_cache(vault, tmpbase):
    """With -o writeback_cache the kernel turns O_APPEND writes into page writes at
    explicit offsets; the result must still be the plain concatenation."""
    comp = vault.comp(vault.mount(extra=["-o", "writeback_cache"]))
    native = tempfile.mkdtemp(prefix="native-", dir=tmpbase)

    def scenario(root):
        p = os.path.join(root, "wb")
        write_file(p, b"a" * 10)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"BB")
        os.write(fd, b"CC")
        os.close(fd)
        return os.stat(p).st_size, read_all(p)

    k, n = on_both(comp, native, scenario)
    assert n == (14, b"a" * 10 + b"BBCC")
    assert k == n
    vault.cleanup()
    comp = vault.comp(vault.mount())
    assert read_all(os.path.join(comp, "wb")) == b"a" * 10 + b"BBCC"
    fsck_clean(vault)


# ---------------------------------------------------------------- offsets and sizes

BASE_LEN = 3 * BS + 100
OFFSETS = [0, 1, 4095, 4096, 4097, 2 * BS - 2, BASE_LEN - 1, BASE_LEN, BASE_LEN + 1,
           (1 << 20) + 4097]
LENGTHS = [1, 3, 4096, 9000]


def test_write_at_offset(env):
    """pwrite of several lengths at each offset into a 3-block file and into an
    empty file; the whole file must equal the model and the native result."""
    vault, comp, native = env
    base = rbytes(BASE_LEN, 7)
    expected = {}
    for off in OFFSETS:
        for i, ln in enumerate(LENGTHS):
            data = rbytes(ln, 1000 + i)
            for kind, start in (("full", base), ("empty", b"")):
                name = f"{kind}-{off}-{ln}"
                model = bytearray(start)
                if len(model) < off:
                    model += b"\0" * (off - len(model))
                model[off:off + ln] = data
                expected[name] = bytes(model)
                for root in (comp, native):
                    p = os.path.join(root, name)
                    write_file(p, start)
                    fd = os.open(p, os.O_RDWR)
                    assert os.pwrite(fd, data, off) == ln, name
                    # read back through the same fd right away
                    assert os.pread(fd, ln, off) == data, name
                    os.close(fd)
    bad = []
    for name, want in expected.items():
        assert read_all(os.path.join(native, name)) == want, f"native {name}"
        k = read_all(os.path.join(comp, name))
        if k != want or os.stat(os.path.join(comp, name)).st_size != len(want):
            bad.append(f"{name}: {describe_diff(k, want)}")
    assert not bad, "kinko differs (kind-offset-length): " + "; ".join(bad)
    comp = remount(vault)
    for name, want in expected.items():
        k = read_all(os.path.join(comp, name))
        if k != want:
            bad.append(f"{name}: {describe_diff(k, want)}")
    assert not bad, "after remount: " + "; ".join(bad)
    fsck_clean(vault)


def test_read_at_offset(env):
    """pread/read of several lengths at each offset, including across and past EOF."""
    vault, comp, native = env
    base = rbytes(BASE_LEN, 8)
    for root in (comp, native):
        write_file(os.path.join(root, "r"), base)
    comp = remount(vault)  # reads come from disk, not from anything cached
    fk = os.open(os.path.join(comp, "r"), os.O_RDONLY)
    fn = os.open(os.path.join(native, "r"), os.O_RDONLY)
    bad = []
    try:
        for off in OFFSETS:
            for ln in LENGTHS + [BS + 1, 3 * BS]:
                want = base[off:off + ln]
                assert os.pread(fn, ln, off) == want
                if os.pread(fk, ln, off) != want:
                    bad.append(f"pread({ln}, {off})")
                os.lseek(fk, off, os.SEEK_SET)
                if os.read(fk, ln) != want:
                    bad.append(f"lseek({off})+read({ln})")
    finally:
        os.close(fk)
        os.close(fn)
    assert not bad
    fsck_clean(vault)


def test_sparse_gap_beyond_eof(env):
    vault, comp, native = env
    far = 5 * (1 << 20) + 3

    def scenario(root):
        p = os.path.join(root, "sparse")
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        os.write(fd, b"start")
        os.lseek(fd, far, os.SEEK_SET)
        os.write(fd, b"END")
        os.close(fd)
        return os.stat(p).st_size, read_all(p)

    k, n = on_both(comp, native, scenario)
    want = b"start" + b"\0" * (far - 5) + b"END"
    assert n == (len(want), want)
    assert k[0] == len(want)
    assert_same_bytes(k[1], want, "kinko sparse file")
    comp = remount(vault)
    with open(os.path.join(comp, "sparse"), "rb") as f:
        f.seek(far - 10)
        assert f.read() == b"\0" * 10 + b"END"
    fsck_clean(vault)


def test_pread_pwrite_random(env):
    """200 random pwrite/pread calls on one open fd, against a model."""
    vault, comp, native = env
    rng = random.Random(4242)
    model = bytearray()
    fk = os.open(os.path.join(comp, "pp"), os.O_RDWR | os.O_CREAT, 0o600)
    fn = os.open(os.path.join(native, "pp"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for i in range(200):
            off = rng.choice([rng.randrange(0, 6 * BS), rng.randrange(0, 8) * BS,
                              rng.randrange(1, 8) * BS - 1])
            ln = rng.choice([1, rng.randrange(1, 300), rng.randrange(1, 3 * BS), BS])
            if rng.random() < 0.6:
                data = rng.randbytes(ln)
                assert os.pwrite(fk, data, off) == ln
                os.pwrite(fn, data, off)
                if len(model) < off:
                    model += b"\0" * (off - len(model))
                model[off:off + ln] = data
            else:
                want = bytes(model[off:off + ln])
                assert os.pread(fn, ln, off) == want
                got = os.pread(fk, ln, off)
                assert got == want, f"op {i}: pread({ln}, {off}): {describe_diff(got, want)}"
            assert os.fstat(fk).st_size == len(model)
    finally:
        os.close(fk)
        os.close(fn)
    assert_same_bytes(read_all(os.path.join(comp, "pp")), bytes(model), "final")
    fsck_clean(vault)


SIZES = [0, 1, 4095, 4096, 4097, 3 * BS, (1 << 20) + 3]


def test_file_sizes(env):
    """Files of boundary sizes written in one call and in odd chunks: stat size,
    contents (before and after remount) and the ciphertext size of the format."""
    vault, comp, native = env
    for size in SIZES:
        data = rbytes(size, size)
        write_file(os.path.join(comp, f"one-{size}"), data)
        write_file(os.path.join(native, f"one-{size}"), data)
        with open(os.path.join(comp, f"chunks-{size}"), "wb") as f:
            for i in range(0, size, 1000):
                f.write(data[i:i + 1000])
        for name in (f"one-{size}", f"chunks-{size}"):
            st = os.stat(os.path.join(comp, name))
            assert st.st_size == size == os.stat(os.path.join(native, f"one-{size}")).st_size
            assert_same_bytes(read_all(os.path.join(comp, name)), data, name)
    # the ciphertext of a file: empty -> 0 bytes; else header + per block nonce/tag
    want_csizes = []
    for size in SIZES:
        nblocks = (size + BS - 1) // BS
        want_csizes += [0 if size == 0 else 76 + size + 28 * nblocks] * 2
    csizes = sorted(os.stat(p).st_size for p in backing_files(vault))
    assert csizes == sorted(want_csizes)
    comp = remount(vault)
    for size in SIZES:
        data = rbytes(size, size)
        for name in (f"one-{size}", f"chunks-{size}"):
            assert os.stat(os.path.join(comp, name)).st_size == size
            assert_same_bytes(read_all(os.path.join(comp, name)), data, name + " after remount")
    fsck_clean(vault)


# ---------------------------------------------------------------- truncate

TRUNC_SIZES = [0, 1, 4095, 4096, 4097, 2 * BS - 1, 2 * BS, 2 * BS + 1, 3 * BS + 99]


def test_truncate_shrink_boundaries(env):
    vault, comp, native = env
    base = rbytes(3 * BS + 100, 9)
    cases = [(how, sz) for how in ("truncate", "ftruncate") for sz in TRUNC_SIZES]
    for how, sz in cases:
        for root in (comp, native):
            p = os.path.join(root, f"{how}-{sz}")
            write_file(p, base)
            if how == "truncate":
                os.truncate(p, sz)
            else:
                fd = os.open(p, os.O_RDWR)
                os.ftruncate(fd, sz)
                assert os.fstat(fd).st_size == sz
                os.close(fd)
    for how, sz in cases:
        p = os.path.join(comp, f"{how}-{sz}")
        assert os.stat(p).st_size == sz
        assert read_all(os.path.join(native, f"{how}-{sz}")) == base[:sz]
        assert_same_bytes(read_all(p), base[:sz], f"{how} shrink to {sz}")
        # the new last block must be a valid last block: append after it
        with open(p, "ab") as f:
            f.write(b"tail")
        assert_same_bytes(read_all(p), base[:sz] + b"tail", f"append after {how} to {sz}")
    comp = remount(vault)
    for how, sz in cases:
        assert_same_bytes(read_all(os.path.join(comp, f"{how}-{sz}")), base[:sz] + b"tail",
                          f"after remount {how} {sz}")
    fsck_clean(vault)


def test_truncate_grow_sparse(env):
    vault, comp, native = env
    base = rbytes(100, 10)
    sizes = [101, 4095, 4096, 4097, 3 * BS + 5, (1 << 20) + 1]
    targets = [(how, sz) for how in ("truncate", "ftruncate") for sz in sizes]
    for how, sz in targets:
        for root in (comp, native):
            p = os.path.join(root, f"{how}-{sz}")
            write_file(p, base)
            if how == "truncate":
                os.truncate(p, sz)
            else:
                fd = os.open(p, os.O_WRONLY)
                os.ftruncate(fd, sz)
                os.close(fd)
    for how, sz in targets:
        want = base + b"\0" * (sz - len(base))
        assert read_all(os.path.join(native, f"{how}-{sz}")) == want
        assert os.stat(os.path.join(comp, f"{how}-{sz}")).st_size == sz
        assert_same_bytes(read_all(os.path.join(comp, f"{how}-{sz}")), want, f"{how} grow to {sz}")
    # grow an empty file (no header yet)
    p = os.path.join(comp, "empty-grow")
    write_file(p, b"")
    os.truncate(p, 5000)
    assert read_all(p) == b"\0" * 5000
    comp = remount(vault)
    assert read_all(os.path.join(comp, "empty-grow")) == b"\0" * 5000
    for how, sz in targets:
        assert_same_bytes(read_all(os.path.join(comp, f"{how}-{sz}")),
                          base + b"\0" * (sz - len(base)), f"after remount {how} {sz}")
    fsck_clean(vault)


def test_truncate_to_zero_and_rewrite(env):
    vault, comp, native = env
    a, b = rbytes(3 * BS + 1, 11), rbytes(BS + 7, 12)

    def scenario(root):
        p = os.path.join(root, "z")
        write_file(p, a)
        os.truncate(p, 0)
        out = [os.stat(p).st_size, read_all(p)]
        with open(p, "r+b") as f:
            f.write(b)
        out.append(read_all(p))
        fd = os.open(p, os.O_RDWR)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"xy", 10)
        os.close(fd)
        out.append(read_all(p))
        return out

    k, n = on_both(comp, native, scenario)
    assert k == n
    assert k[0] == 0 and k[2] == b and k[3] == b"\0" * 10 + b"xy"
    comp = remount(vault)
    assert read_all(os.path.join(comp, "z")) == b"\0" * 10 + b"xy"
    fsck_clean(vault)


def test_truncate_while_other_fd_open(env):
    vault, comp, native = env
    base = rbytes(3 * BS + 50, 13)

    def scenario(root):
        p = os.path.join(root, "o")
        write_file(p, base)
        out = []
        rw = os.open(p, os.O_RDWR)
        ro = os.open(p, os.O_RDONLY)
        out.append(os.pread(rw, 10, BS))
        os.truncate(p, 100)                      # by path, another handle
        out += [os.fstat(rw).st_size, os.pread(rw, 200, 0), os.pread(ro, 10, BS)]
        os.pwrite(rw, b"W" * 7, 5000)            # grows again, gap zeros
        out += [os.fstat(ro).st_size, os.pread(ro, 6000, 0)]
        os.ftruncate(rw, 0)                      # to zero through one fd...
        os.pwrite(rw, b"again", 0)               # ...and a fresh header
        out.append(os.pread(ro, 100, 0))
        w2 = os.open(p, os.O_WRONLY)
        os.ftruncate(w2, BS + 1)                 # grow through a third fd
        os.close(w2)
        out.append(os.pread(ro, 2 * BS, 0))
        os.close(rw)
        os.close(ro)
        out.append(read_all(p))
        return out

    k, n = on_both(comp, native, scenario)
    for i, (x, y) in enumerate(zip(k, n)):
        assert x == y, f"step {i}: kinko {x!r:.80} != native {y!r:.80}"
    assert k[-1] == b"again" + b"\0" * (BS + 1 - 5)
    comp = remount(vault)
    assert read_all(os.path.join(comp, "o")) == k[-1]
    fsck_clean(vault)


# ---------------------------------------------------------------- a full backing store

@pytest.fixture
def small_vault(tmpbase):
    """A vault alone on a 24 MiB tmpfs: (vault, compartment dir, tmpfs dir)."""
    fs = os.path.join(tmpbase, "small")
    os.makedirs(fs)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", fs], check=True)
    try:
        v = Vault(fs)
        yield v, v.comp(v.mount()), fs
        v.cleanup()
    finally:
        subprocess.run(["umount", fs], check=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_truncate_beyond_the_backing_store_is_efbig_and_changes_nothing(small_vault):
    """kinko files have no holes (growth writes sealed zeros), so a size the
    backing filesystem has no room for is refused at once, as ext4 refuses
    sizes beyond its limit; the file keeps its size and bytes."""
    v, comp, fs = small_vault
    p = os.path.join(comp, "f")
    data = rbytes(5000, 7)
    write_file(p, data)
    before = free_bytes(fs)
    for size in (999999999999999, 1 << 40, 64 << 20):
        assert errno_of(os.truncate, p, size) == errno.EFBIG, size
        fd = os.open(p, os.O_RDWR)
        try:
            assert errno_of(os.ftruncate, fd, size) == errno.EFBIG, size
        finally:
            os.close(fd)
        assert os.stat(p).st_size == 5000
        assert read_all(p) == data
    assert free_bytes(fs) >= before - (1 << 20)   # nothing was written on the way
    os.truncate(p, 1 << 20)                       # a growth that fits works
    assert read_all(p) == data + bytes((1 << 20) - 5000)
    v.cleanup()
    fsck_clean(v)


def test_write_that_runs_out_of_space_leaves_the_file_whole(small_vault):
    """A write that grows a file and fails half way (ENOSPC) is undone: the
    file keeps its old size, its old last block is whole again, fsck is clean.
    Before, the blocks written so far stayed, none sealed as the last one,
    and the file's end read as damaged (EIO)."""
    v, comp, fs = small_vault
    p = os.path.join(comp, "f")
    data = rbytes(3 * 4096 + 1234, 8)             # a partial last block
    write_file(p, data)
    ballast = os.path.join(fs, "ballast")
    room = free_bytes(fs) - 600 * 1024            # leave 600 KiB free
    with open(ballast, "wb") as f:
        f.write(bytes(room))
    try:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        try:
            e = errno_of(os.write, fd, rbytes(1 << 20, 9))
        finally:
            os.close(fd)
        assert e == errno.ENOSPC, e
        assert os.stat(p).st_size == len(data)
        assert read_all(p) == data
    finally:
        os.unlink(ballast)
    # still writable afterwards, at the right place
    with open(p, "ab") as f:
        f.write(b"tail")
    assert read_all(p) == data + b"tail"
    v.cleanup()
    fsck_clean(v)


def test_chown_to_the_same_owner_updates_ctime(env):
    """chown(f, -1, -1) changes only the change time, on files, directories
    and symbolic links alike (pjdfstest chown/00.t expects it of ext4)."""
    _, comp, native = env

    def scenario(root):
        os.mkdir(os.path.join(root, "d"))
        write_file(os.path.join(root, "f"), b"x")
        os.symlink("f", os.path.join(root, "l"))
        changed = []
        for n in ("f", "d", "l"):
            p = os.path.join(root, n)
            before = os.lstat(p)
            time.sleep(0.02)
            os.chown(p, -1, -1, follow_symlinks=False)
            after = os.lstat(p)
            changed.append((n, after.st_ctime_ns > before.st_ctime_ns,
                            after.st_uid == before.st_uid and after.st_gid == before.st_gid,
                            after.st_mtime_ns == before.st_mtime_ns))
        return changed

    k, n = on_both(comp, native, scenario)
    assert n == [(x, True, True, True) for x in ("f", "d", "l")], n
    assert k == n
