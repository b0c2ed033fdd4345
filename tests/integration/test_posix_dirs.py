"""POSIX semantics of names and directories in a kinko mount, compared with a
native filesystem: rename (incl. renameat2 flags), unlink, mkdir/rmdir, large
directories, readdir positions, Japanese and maximum-length names.

The format binds a file's header and a directory's IV file to its name, so
after every rename the contents are read back (a binding bug shows as EIO)."""
import ctypes
import errno
import os
import random
import stat
import subprocess
import tempfile

import pytest
from kinko_util import fsck_clean, rbytes, read_all, remount

BS = 4096
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

libc = ctypes.CDLL(None, use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
libc.renameat2.restype = ctypes.c_int


class Dirent(ctypes.Structure):  # glibc struct dirent (64-bit ino/off)
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


libc.opendir.argtypes = [ctypes.c_char_p]
libc.opendir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.telldir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.seekdir.restype = None
libc.rewinddir.argtypes = [ctypes.c_void_p]
libc.rewinddir.restype = None
libc.closedir.argtypes = [ctypes.c_void_p]


# ---------------------------------------------------------------- helpers

def errno_of(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


def renameat2(old, new, flags):
    """0 or the errno of renameat2(2)."""
    r = libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    return 0 if r == 0 else ctypes.get_errno()


def write_file(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def snapshot(root):
    """{relative path: ('d', mode) | ('f', mode, bytes) | ('l', target)} of a tree;
    reading every file is the point (a binding bug shows as EIO here)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777)
            else:
                out[rel] = ("f", st.st_mode & 0o7777, read_all(p))
    return out


def make_tree(root, seed=0):
    """A small tree: files of several sizes, a nested dir, an empty file, a symlink."""
    os.makedirs(os.path.join(root, "sub", "deep"))
    write_file(os.path.join(root, "a"), rbytes(5000, seed + 1))
    write_file(os.path.join(root, "empty"), b"")
    write_file(os.path.join(root, "sub", "b"), rbytes(BS, seed + 2))
    write_file(os.path.join(root, "sub", "deep", "c"), rbytes(3 * BS + 1, seed + 3), 0o600)
    os.symlink("../a", os.path.join(root, "sub", "link"))


def jname(n, variant=0):
    """A Japanese name of n characters (3 UTF-8 bytes each)."""
    pool = "秘密の書類金庫日本語名前漢字試験東京大阪暗号鍵束"
    s = pool[variant % len(pool):] + pool[:variant % len(pool)]
    return (s * (n // len(s) + 1))[:n]


@pytest.fixture
def env(mounted, tmpbase):
    vault, comp = mounted
    native = tempfile.mkdtemp(prefix="native-", dir=tmpbase)
    return vault, comp, native


def on_both(comp, native, fn):
    return fn(comp), fn(native)


def compare_both(comp, native, fn):
    k, n = on_both(comp, native, fn)
    assert k == n, f"kinko {k!r:.300}\nnative {n!r:.300}"
    return k


# ---------------------------------------------------------------- rename

def test_rename_file_over_file(env):
    vault, comp, native = env

    def scenario(root):
        a, b = os.path.join(root, "a"), os.path.join(root, "b")
        write_file(a, rbytes(5000, 1))
        write_file(b, rbytes(100, 2))
        fd_b = os.open(b, os.O_RDONLY)            # the replaced file stays readable
        os.rename(a, b)
        old = os.pread(fd_b, 200, 0)
        os.close(fd_b)
        return os.path.exists(a), read_all(b), old, sorted(os.listdir(root))

    r = compare_both(comp, native, scenario)
    assert r[1] == rbytes(5000, 1) and r[2] == rbytes(100, 2)
    comp = remount(vault)
    assert read_all(os.path.join(comp, "b")) == rbytes(5000, 1)
    fsck_clean(vault)


def test_rename_dir_over_empty_dir(env):
    vault, comp, native = env

    def scenario(root):
        make_tree(os.path.join(root, "src"))
        os.mkdir(os.path.join(root, "dst"))
        os.rename(os.path.join(root, "src"), os.path.join(root, "dst"))
        return sorted(os.listdir(root)), snapshot(root)

    r = compare_both(comp, native, scenario)
    assert r[0] == ["dst"]
    comp = remount(vault)
    assert snapshot(comp) == snapshot(native)
    fsck_clean(vault)


def test_rename_dir_over_nonempty_dir_enotempty(env):
    vault, comp, native = env

    def scenario(root):
        make_tree(os.path.join(root, "src"))
        os.mkdir(os.path.join(root, "dst"))
        write_file(os.path.join(root, "dst", "keep"), b"keep")
        e = errno_of(os.rename, os.path.join(root, "src"), os.path.join(root, "dst"))
        e2 = renameat2(os.path.join(root, "src"), os.path.join(root, "dst"), 0)
        return e, e2, snapshot(root)

    r = compare_both(comp, native, scenario)
    assert r[0] == errno.ENOTEMPTY
    fsck_clean(vault)


def test_rename_file_over_dir_eisdir(env):
    vault, comp, native = env

    def scenario(root):
        write_file(os.path.join(root, "f"), b"file")
        os.mkdir(os.path.join(root, "d"))
        os.mkdir(os.path.join(root, "full"))
        write_file(os.path.join(root, "full", "x"), b"x")
        return (errno_of(os.rename, os.path.join(root, "f"), os.path.join(root, "d")),
                errno_of(os.rename, os.path.join(root, "f"), os.path.join(root, "full")),
                snapshot(root))

    r = compare_both(comp, native, scenario)
    assert r[0] == errno.EISDIR
    fsck_clean(vault)


def test_rename_dir_over_file_enotdir(env):
    vault, comp, native = env

    def scenario(root):
        write_file(os.path.join(root, "f"), b"file")
        make_tree(os.path.join(root, "d"))
        return (errno_of(os.rename, os.path.join(root, "d"), os.path.join(root, "f")),
                snapshot(root))

    r = compare_both(comp, native, scenario)
    assert r[0] == errno.ENOTDIR
    fsck_clean(vault)


def test_rename_into_other_directory(env):
    vault, comp, native = env

    def scenario(root):
        for d in ("d1", "d2", "d2/inner"):
            os.mkdir(os.path.join(root, d))
        write_file(os.path.join(root, "d1", "f"), rbytes(9000, 3))
        write_file(os.path.join(root, "top"), rbytes(10, 4))
        write_file(os.path.join(root, "d2", "inner", "victim"), b"old")
        os.rename(os.path.join(root, "d1", "f"), os.path.join(root, "d2", "f"))
        os.rename(os.path.join(root, "top"), os.path.join(root, "d1", "top2"))
        # and over an existing file in a third directory
        os.rename(os.path.join(root, "d2", "f"), os.path.join(root, "d2", "inner", "victim"))
        return snapshot(root)

    r = compare_both(comp, native, scenario)
    assert r["d2/inner/victim"][2] == rbytes(9000, 3)
    comp = remount(vault)
    assert snapshot(comp) == r
    fsck_clean(vault)


def test_rename_directory_with_contents(env):
    vault, comp, native = env

    def scenario(root):
        make_tree(os.path.join(root, "t"))
        os.mkdir(os.path.join(root, "other"))
        os.rename(os.path.join(root, "t"), os.path.join(root, "t2"))
        s1 = snapshot(root)
        os.rename(os.path.join(root, "t2"), os.path.join(root, "other", "t3"))
        s2 = snapshot(root)
        # rename a nested dir upwards, then new files in it
        os.rename(os.path.join(root, "other", "t3", "sub"), os.path.join(root, "up"))
        write_file(os.path.join(root, "up", "new"), b"new file")
        os.mkdir(os.path.join(root, "up", "newdir"))
        write_file(os.path.join(root, "up", "newdir", "n2"), rbytes(4097, 9))
        return s1, s2, snapshot(root)

    r = compare_both(comp, native, scenario)
    comp = remount(vault)
    assert snapshot(comp) == r[2]
    fsck_clean(vault)


def test_renameat2_noreplace(env):
    vault, comp, native = env

    def scenario(root):
        a, b, c = (os.path.join(root, x) for x in "abc")
        write_file(a, rbytes(5000, 5))
        write_file(b, b"bbb")
        os.mkdir(os.path.join(root, "d"))
        out = [renameat2(a, b, RENAME_NOREPLACE),
               renameat2(a, os.path.join(root, "d"), RENAME_NOREPLACE),
               renameat2(a, c, RENAME_NOREPLACE),
               renameat2(os.path.join(root, "d"), os.path.join(root, "d2"), RENAME_NOREPLACE),
               renameat2(b, b, RENAME_NOREPLACE),
               renameat2(b, c, RENAME_NOREPLACE | RENAME_EXCHANGE)]
        return out, snapshot(root)

    r = compare_both(comp, native, scenario)
    assert r[0][:4] == [errno.EEXIST, errno.EEXIST, 0, 0]
    assert r[1]["c"][2] == rbytes(5000, 5) and r[1]["b"][2] == b"bbb"
    comp = remount(vault)
    assert snapshot(comp) == r[1]
    fsck_clean(vault)


def test_renameat2_exchange_files(env):
    vault, comp, native = env

    def scenario(root):
        os.mkdir(os.path.join(root, "d"))
        a, b = os.path.join(root, "a"), os.path.join(root, "d", "b")
        write_file(a, rbytes(5000, 6))
        write_file(b, rbytes(3 * BS, 7), 0o600)
        write_file(os.path.join(root, "e"), b"")
        out = [renameat2(a, b, RENAME_EXCHANGE)]
        s1 = snapshot(root)
        out.append(renameat2(a, os.path.join(root, "e"), RENAME_EXCHANGE))  # with an empty file
        out.append(renameat2(a, os.path.join(root, "missing"), RENAME_EXCHANGE))
        return out, s1, snapshot(root)

    r = compare_both(comp, native, scenario)
    assert r[0] == [0, 0, errno.ENOENT]
    assert r[1]["a"][2] == rbytes(3 * BS, 7) and r[1]["d/b"][2] == rbytes(5000, 6)
    comp = remount(vault)
    assert snapshot(comp) == r[2]
    fsck_clean(vault)


def test_renameat2_exchange_file_and_dir(env):
    vault, comp, native = env

    def scenario(root):
        write_file(os.path.join(root, "f"), rbytes(6000, 8))
        make_tree(os.path.join(root, "d"))
        out = [renameat2(os.path.join(root, "f"), os.path.join(root, "d"), RENAME_EXCHANGE)]
        s1 = snapshot(root)
        # exchange back, across directories this time
        os.mkdir(os.path.join(root, "x"))
        os.rename(os.path.join(root, "f"), os.path.join(root, "x", "dd"))
        out.append(renameat2(os.path.join(root, "x", "dd"), os.path.join(root, "d"),
                             RENAME_EXCHANGE))
        return out, s1, snapshot(root)

    r = compare_both(comp, native, scenario)
    assert r[0] == [0, 0]
    assert r[1]["d"][0] == "f" and r[1]["f"][0] == "d" and r[1]["f/sub/deep/c"][0] == "f"
    comp = remount(vault)
    assert snapshot(comp) == r[2]
    fsck_clean(vault)


def test_renameat2_exchange_dirs(env):
    vault, comp, native = env

    def scenario(root):
        make_tree(os.path.join(root, "p", "one"), 10)
        make_tree(os.path.join(root, "q", "two"), 20)
        out = renameat2(os.path.join(root, "p", "one"), os.path.join(root, "q", "two"),
                        RENAME_EXCHANGE)
        write_file(os.path.join(root, "p", "one", "added"), b"added")
        return out, snapshot(root)

    r = compare_both(comp, native, scenario)
    assert r[0] == 0
    comp = remount(vault)
    assert snapshot(comp) == r[1]
    fsck_clean(vault)


def test_rename_same_name(env):
    vault, comp, native = env

    def scenario(root):
        write_file(os.path.join(root, "f"), rbytes(5000, 11))
        os.mkdir(os.path.join(root, "d"))
        return (errno_of(os.rename, os.path.join(root, "f"), os.path.join(root, "f")),
                errno_of(os.rename, os.path.join(root, "d"), os.path.join(root, "d")),
                errno_of(os.rename, os.path.join(root, "d"), os.path.join(root, "d", "x")),
                snapshot(root))

    r = compare_both(comp, native, scenario)
    assert r[:2] == (0, 0) and r[2] == errno.EINVAL
    comp = remount(vault)
    assert snapshot(comp) == r[3]
    fsck_clean(vault)


def test_rename_hardlinks_of_same_file_is_noop(env):
    vault, comp, native = env

    def scenario(root):
        a, b = os.path.join(root, "a"), os.path.join(root, "b")
        write_file(a, rbytes(5000, 12))
        os.link(a, b)
        e = errno_of(os.rename, a, b)  # POSIX: both names stay, nothing happens
        return e, sorted(os.listdir(root)), os.stat(a).st_nlink, read_all(a), read_all(b)

    r = compare_both(comp, native, scenario)
    assert r[:3] == (0, ["a", "b"], 2)
    comp = remount(vault)
    assert read_all(os.path.join(comp, "a")) == read_all(os.path.join(comp, "b")) == r[3]
    fsck_clean(vault)


def test_rename_readonly_directories(env):
    """Directories with mode 0500/0000 (their IV file is rewritten on rename):
    rename them, rename over an empty 0500 directory, use them after a remount."""
    vault, comp, native = env

    def scenario(root):
        j = lambda *a: os.path.join(root, *a)  # noqa: E731
        make_tree(j("ro"))
        os.chmod(j("ro", "sub"), 0o000)
        os.chmod(j("ro"), 0o500)
        os.rename(j("ro"), j("ro2"))
        os.mkdir(j("other"))
        os.rename(j("ro2"), j("other", "ro3"))
        os.mkdir(j("empty"), 0o500)
        os.mkdir(j("src"))
        write_file(j("src", "x"), b"x")
        e = errno_of(os.rename, j("src"), j("empty"))
        write_file(j("other", "ro3", "sub", "new"), b"created in a 0000 dir")
        return e, snapshot(root)

    r = compare_both(comp, native, scenario)
    assert r[0] == 0
    comp = remount(vault)
    assert snapshot(comp) == r[1]
    fsck_clean(vault)


def test_rename_keeps_mtime(env):
    """rename(2) changes only the ctime of the renamed object: the mtime of the
    renamed file or directory stays what it was (rsync, cp -a, tar, make rely on it)."""
    vault, comp, native = env
    T = 1_500_000_000_123_456_789

    def scenario(root):
        j = lambda *a: os.path.join(root, *a)  # noqa: E731
        make_tree(j("d"))
        os.mkdir(j("other"))
        write_file(j("f"), rbytes(5000, 14))
        write_file(j("g"), rbytes(100, 15))
        write_file(j("empty"), b"")
        for n in ("d", "f", "g", "empty"):
            os.utime(j(n), ns=(T, T))
        out = []
        os.rename(j("f"), j("f2"))                        # same directory
        out.append(("f2", os.stat(j("f2")).st_mtime_ns))
        os.rename(j("f2"), j("other", "f3"))              # another directory
        out.append(("other/f3", os.stat(j("other", "f3")).st_mtime_ns))
        os.rename(j("empty"), j("empty2"))
        out.append(("empty2", os.stat(j("empty2")).st_mtime_ns))
        os.rename(j("d"), j("d2"))                        # directory, same parent
        out.append(("d2", os.stat(j("d2")).st_mtime_ns))
        renameat2(j("other", "f3"), j("g"), RENAME_EXCHANGE)
        out.append(("g", os.stat(j("g")).st_mtime_ns))
        out.append(("other/f3", os.stat(j("other", "f3")).st_mtime_ns))
        os.rename(j("g"), j("other", "f3"))               # over an existing file
        out.append(("other/f3 (replaced)", os.stat(j("other", "f3")).st_mtime_ns))
        return out

    r = compare_both(comp, native, scenario)
    assert all(m == T for _, m in r)
    fsck_clean(vault)


# ---------------------------------------------------------------- unlink, mkdir, rmdir

def test_unlink(env):
    vault, comp, native = env

    def scenario(root):
        p = os.path.join(root, "f")
        write_file(p, rbytes(5000, 13))
        os.mkdir(os.path.join(root, "d"))
        fd = os.open(p, os.O_RDWR)
        out = [errno_of(os.unlink, p), os.path.exists(p), errno_of(os.unlink, p),
               errno_of(os.unlink, os.path.join(root, "d")),
               errno_of(os.unlink, os.path.join(root, "nodir", "x")),
               errno_of(os.unlink, os.path.join(root, "d", "missing"))]
        # an open fd of an unlinked file keeps working
        os.pwrite(fd, b"after", 4096)
        out += [os.pread(fd, 10000, 0), os.fstat(fd).st_size]
        os.close(fd)
        # the name can be reused at once
        write_file(p, b"reborn")
        out.append(read_all(p))
        return out

    r = compare_both(comp, native, scenario)
    assert r[:6] == [0, False, errno.ENOENT, errno.EISDIR, errno.ENOENT, errno.ENOENT]
    fsck_clean(vault)


def test_mkdir_rmdir(env):
    vault, comp, native = env

    def scenario(root):
        j = lambda *a: os.path.join(root, *a)  # noqa: E731
        out = [errno_of(os.mkdir, j("d"), 0o755), errno_of(os.mkdir, j("d")),
               errno_of(os.mkdir, j("missing", "x")), os.stat(j("d")).st_mode & 0o7777]
        write_file(j("d", "f"), b"x")
        write_file(j("file"), b"x")
        out += [errno_of(os.rmdir, j("d")), errno_of(os.rmdir, j("nothere")),
                errno_of(os.rmdir, j("file")), errno_of(os.mkdir, j("file")),
                errno_of(os.mkdir, j("file", "sub"))]
        os.unlink(j("d", "f"))
        out += [errno_of(os.rmdir, j("d")), os.path.exists(j("d"))]
        # a directory with mode 0500: root can still create in it and remove it
        os.mkdir(j("ro"))
        os.chmod(j("ro"), 0o500)
        out.append(os.stat(j("ro")).st_mode & 0o7777)
        write_file(j("ro", "in"), b"inside")
        out += [read_all(j("ro", "in")), errno_of(os.rmdir, j("ro"))]
        os.unlink(j("ro", "in"))
        out += [errno_of(os.rmdir, j("ro")), os.path.exists(j("ro"))]
        # an empty 0500 directory (never had entries)
        os.mkdir(j("ro2"), 0o500)
        out += [os.stat(j("ro2")).st_mode & 0o7777, errno_of(os.rmdir, j("ro2")),
                os.path.exists(j("ro2"))]
        # nested mkdir -p and rmdir of the chain
        os.makedirs(j("p", "q", "r", "s"))
        out.append(errno_of(os.rmdir, j("p", "q")))
        os.removedirs(j("p", "q", "r", "s"))
        out += [os.path.exists(j("p")), sorted(os.listdir(root))]
        return out

    r = compare_both(comp, native, scenario)
    assert r[0] == 0 and r[1] == errno.EEXIST and r[4] == errno.ENOTEMPTY
    assert r[-1] == ["file"]
    # no leftovers of removed directories in the backing store
    d = vault.data_dir()
    assert len([n for n in os.listdir(d) if n != "kinko.diriv"]) == 1
    fsck_clean(vault)


# ---------------------------------------------------------------- readdir

def test_readdir_10000_entries(env):
    vault, comp, native = env
    d = os.path.join(comp, "big")
    os.mkdir(d)
    names = [f"entry-{i:05d}" + ("-x" * (i % 7)) for i in range(10000)]
    for i, n in enumerate(names):
        if i % 10:  # mknod(2) of a regular file: half the FUSE requests of open+close
            os.mknod(os.path.join(d, n), 0o644 | stat.S_IFREG)
        else:
            os.close(os.open(os.path.join(d, n), os.O_CREAT | os.O_WRONLY, 0o644))
    # a few non-empty files among them
    for i in range(0, 10000, 1000):
        write_file(os.path.join(d, names[i]), rbytes(i + 1, i))
    seen = [e.name for e in os.scandir(d)]
    assert len(seen) == len(set(seen)), "duplicate names in scandir"
    assert sorted(seen) == sorted(names)
    p = subprocess.run(["ls", "-f", d], capture_output=True, text=True, check=True)
    ls = p.stdout.split("\n")[:-1]
    assert sorted(ls) == sorted(names + [".", ".."])
    assert len(ls) == len(set(ls))
    comp = remount(vault)
    d = os.path.join(comp, "big")
    seen = os.listdir(d)
    assert len(seen) == 10000 and set(seen) == set(names)
    for i in range(0, 10000, 1000):
        assert read_all(os.path.join(d, names[i])) == rbytes(i + 1, i)
    fsck_clean(vault)


def listing_while_deleting(d, names, rng):
    """Delete random batches; after each, a fresh listing must be exactly the rest."""
    problems = []
    left = set(names)
    while left:
        batch = rng.sample(sorted(left), min(len(left), rng.randrange(1, 60)))
        for n in batch:
            os.unlink(os.path.join(d, n))
        left -= set(batch)
        got = os.listdir(d)
        if len(got) != len(set(got)) or set(got) != left:
            problems.append(f"after deleting {len(names) - len(left)}: "
                            f"extra {sorted(set(got) - left)[:5]} missing {sorted(left - set(got))[:5]}")
    return problems


def iterate_and_delete(d):
    """One open directory stream; delete every entry as it is returned."""
    it = os.scandir(d)
    seen = []
    for e in it:
        seen.append(e.name)
        os.unlink(os.path.join(d, e.name))
    it.close()
    return seen


def telldir_seekdir(d):
    """Read 100 entries, telldir, read the rest, seekdir back and read again; then
    delete the first 100 entries and continue from the saved position."""
    dp = libc.opendir(os.fsencode(d))
    assert dp, f"opendir failed: {os.strerror(ctypes.get_errno())}"

    def read_rest():
        out = []
        while True:
            ent = libc.readdir(dp)
            if not ent:
                return out
            name = ent.contents.d_name.decode()
            if name not in (".", ".."):
                out.append(name)

    def read_n(n):
        out = []
        while len(out) < n:
            ent = libc.readdir(dp)
            assert ent, "directory ended early"
            name = ent.contents.d_name.decode()
            if name not in (".", ".."):
                out.append(name)
        return out

    try:
        first = read_n(100)
        pos = libc.telldir(dp)
        rest = read_rest()
        libc.seekdir(dp, pos)
        again = read_rest()
        libc.rewinddir(dp)
        full = read_rest()
        libc.seekdir(dp, pos)
        for n in first:
            os.unlink(os.path.join(d, n))
        after_delete = read_rest()
    finally:
        libc.closedir(dp)
    return first, rest, again, full, after_delete


def test_readdir_repeated_listing_while_deleting(env):
    vault, comp, native = env
    names = [f"n{i:04d}" + "z" * (i % 13) for i in range(600)]
    for root in (comp, native):
        os.mkdir(os.path.join(root, "del"))
        for n in names:
            os.close(os.open(os.path.join(root, "del", n), os.O_CREAT | os.O_WRONLY, 0o644))
    assert listing_while_deleting(os.path.join(native, "del"), names, random.Random(1)) == []
    problems = listing_while_deleting(os.path.join(comp, "del"), names, random.Random(1))
    assert problems == []
    assert os.listdir(os.path.join(comp, "del")) == []
    os.rmdir(os.path.join(comp, "del"))
    fsck_clean(vault)


def test_readdir_iterate_while_deleting(env):
    vault, comp, native = env
    names = [f"it{i:04d}" for i in range(1500)]
    for root in (comp, native):
        os.mkdir(os.path.join(root, "it"))
        for n in names:
            os.close(os.open(os.path.join(root, "it", n), os.O_CREAT | os.O_WRONLY, 0o644))
    seen_n = iterate_and_delete(os.path.join(native, "it"))
    assert sorted(seen_n) == names and os.listdir(os.path.join(native, "it")) == []
    seen_k = iterate_and_delete(os.path.join(comp, "it"))
    assert len(seen_k) == len(set(seen_k)), "an entry was returned twice"
    assert sorted(seen_k) == names, f"missed {sorted(set(names) - set(seen_k))[:10]}"
    assert os.listdir(os.path.join(comp, "it")) == []
    fsck_clean(vault)


def test_readdir_telldir_seekdir(env):
    vault, comp, native = env
    names = [f"sd{i:04d}" + "q" * (i % 29) for i in range(400)]
    for root in (comp, native):
        os.mkdir(os.path.join(root, "sd"))
        for n in names:
            os.close(os.open(os.path.join(root, "sd", n), os.O_CREAT | os.O_WRONLY, 0o644))
    for root in (native, comp):
        first, rest, again, full, after_delete = telldir_seekdir(os.path.join(root, "sd"))
        where = "native" if root == native else "kinko"
        assert sorted(first + rest) == names, where
        assert again == rest, f"{where}: seekdir(telldir()) does not resume at the same entry"
        assert full == first + rest, f"{where}: rewinddir gives another order"
        assert after_delete == rest, f"{where}: entries after the saved position changed " \
                                     f"when earlier ones were deleted"
    fsck_clean(vault)


# ---------------------------------------------------------------- Japanese and long names

JP_LENGTHS = [1, 20, 60, 70, 85]


def test_japanese_names(env):
    """Files and directories named with 1..85 Japanese characters (85 = 255 bytes):
    create, list, read, rename (short<->long), nest, remount, delete."""
    vault, comp, native = env

    def scenario(root):
        out = []
        for n in JP_LENGTHS:
            f, d = jname(n, 0), jname(n, 1)
            assert len(f.encode()) == 3 * n
            write_file(os.path.join(root, f), rbytes(n * 100, n))
            os.mkdir(os.path.join(root, d))
            # nested: dir/dir/file, all with long names
            os.mkdir(os.path.join(root, d, jname(n, 2)))
            write_file(os.path.join(root, d, jname(n, 2), jname(n, 3)), rbytes(n + 4096, n))
        out.append(sorted(os.listdir(root)))
        out.append(snapshot(root))
        # rename every file to a name of every other length, and back
        for n in JP_LENGTHS:
            for m in JP_LENGTHS:
                src, dst = jname(n, 0), jname(m, 13)
                os.rename(os.path.join(root, src), os.path.join(root, dst))
                out.append(read_all(os.path.join(root, dst)) == rbytes(n * 100, n))
                os.rename(os.path.join(root, dst), os.path.join(root, src))
        # rename files into the nested directories (across dirs, long names both sides)
        for n in JP_LENGTHS:
            os.rename(os.path.join(root, jname(n, 0)),
                      os.path.join(root, jname(n, 1), jname(n, 2), jname(n, 5)))
        # rename a long-named file over another long-named file
        os.rename(os.path.join(root, jname(85, 1), jname(85, 2), jname(85, 5)),
                  os.path.join(root, jname(85, 1), jname(85, 2), jname(85, 3)))
        # rename long-named directories
        for n in JP_LENGTHS:
            os.rename(os.path.join(root, jname(n, 1)), os.path.join(root, jname(n, 6)))
        out.append(snapshot(root))
        return out

    r = compare_both(comp, native, scenario)
    assert all(x is True for x in r[2:-1])
    comp = remount(vault)
    assert snapshot(comp) == r[-1]
    fsck_clean(vault)
    # delete everything; nothing may be left in the backing dirs but the IV file
    for n in JP_LENGTHS:
        top = os.path.join(comp, jname(n, 6))
        for name in os.listdir(os.path.join(top, jname(n, 2))):
            os.unlink(os.path.join(top, jname(n, 2), name))
        os.rmdir(os.path.join(top, jname(n, 2)))
        os.rmdir(top)
    assert os.listdir(comp) == []
    assert os.listdir(vault.data_dir()) == ["kinko.diriv"]
    fsck_clean(vault)


def test_name_too_long(env):
    """86 Japanese characters (258 bytes) and 256 ASCII bytes: ENAMETOOLONG for
    every call that creates or looks up the name."""
    vault, comp, native = env
    long_names = [jname(86), "a" * 256, "é" * 128]
    ok_names = [jname(85), "b" * 255, "é" * 127 + "x"]

    def scenario(root):
        out = []
        write_file(os.path.join(root, "src"), b"data")
        os.mkdir(os.path.join(root, "dir"))
        for name in long_names:
            p = os.path.join(root, name)
            out += [errno_of(os.open, p, os.O_CREAT | os.O_WRONLY, 0o644),
                    errno_of(os.mkdir, p),
                    errno_of(os.symlink, "src", p),
                    errno_of(os.link, os.path.join(root, "src"), p),
                    errno_of(os.rename, os.path.join(root, "src"), p),
                    errno_of(os.rename, os.path.join(root, "dir"), p),
                    errno_of(os.mkfifo, p),
                    errno_of(os.stat, p),
                    errno_of(os.unlink, p)]
        for name in ok_names:
            p = os.path.join(root, name)
            write_file(p, name.encode())
            out.append(read_all(p))
            os.rename(p, p[:-1] + "Z")
            out.append(read_all(p[:-1] + "Z"))
        out.append(sorted(os.listdir(root)))
        return out

    r = compare_both(comp, native, scenario)
    assert r[:9] == [errno.ENAMETOOLONG] * 9
    comp = remount(vault)
    assert snapshot(comp) == snapshot(native)
    fsck_clean(vault)
