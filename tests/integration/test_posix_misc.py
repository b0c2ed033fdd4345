"""POSIX semantics in a kinko mount beyond plain read/write, compared with a
native filesystem: symlinks, hard links, chmod/chown, timestamps, statfs,
fsync, fallocate, locks, xattrs, FIFOs and mmap."""
import errno
import fcntl
import mmap
import os
import random
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from kinko_util import fsck_clean, rbytes, read_all, remount

import pytest

BS = 4096
NOBODY = 65534


# ---------------------------------------------------------------- helpers

def errno_of(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


def write_file(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def jname(n, variant=0):
    pool = "秘密の書類金庫日本語名前漢字試験東京大阪暗号鍵束"
    s = pool[variant % len(pool):] + pool[:variant % len(pool)]
    return (s * (n // len(s) + 1))[:n]


@pytest.fixture
def env(mounted, tmpbase):
    vault, comp = mounted
    native = tempfile.mkdtemp(prefix="native-", dir=tmpbase)
    return vault, comp, native


def compare_both(comp, native, fn):
    k, n = fn(comp), fn(native)
    assert k == n, f"kinko {k!r:.400}\nnative {n!r:.400}"
    return k


def py(code, *args, timeout=30):
    """Start a helper python process (for locks, FIFOs, concurrent access)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------- symlinks

SYMLINK_TARGETS = {
    "rel": "sub/target",
    "abs": "/etc/hostname",
    "dangling": "does/not/exist",
    "long": "/".join(["d" * 99] * 30),  # 2999 bytes: sealed, still inline
    "longer": "/".join(["e" * 99] * 35),  # 3499 bytes: in a side file
    "max": "/".join(["f" * 99] * 40) + "/" + "g" * 95,  # 4095 bytes, PATH_MAX - 1
    "jp-long": "../" + "/".join([jname(80, i) for i in range(16)]),  # 3858 bytes
    "jp": "../" + jname(30) + "/" + jname(50, 3),
    "dots": "../../..",
}


def test_symlinks(env):
    vault, comp, native = env
    assert 2990 <= len(SYMLINK_TARGETS["long"]) <= 3010
    assert len(SYMLINK_TARGETS["max"]) == 4095
    assert 3800 <= len(SYMLINK_TARGETS["jp-long"].encode()) <= 4095

    def scenario(root):
        os.mkdir(os.path.join(root, "sub"))
        write_file(os.path.join(root, "sub", "target"), b"through the link")
        out = []
        for name, target in SYMLINK_TARGETS.items():
            p = os.path.join(root, "l-" + name)
            out.append((name, errno_of(os.symlink, target, p)))
            if os.path.lexists(p):
                st = os.lstat(p)
                out.append((name, os.readlink(p), st.st_size, stat.S_ISLNK(st.st_mode)))
        out.append(read_all(os.path.join(root, "l-rel")))
        out.append(errno_of(os.stat, os.path.join(root, "l-dangling")))
        out.append(errno_of(os.symlink, "x", os.path.join(root, "l-rel")))
        # symlink to a directory: listing and creating through it
        os.symlink("sub", os.path.join(root, "l-dir"))
        out.append(sorted(os.listdir(os.path.join(root, "l-dir"))))
        write_file(os.path.join(root, "l-dir", "via-link"), b"v")
        out.append(read_all(os.path.join(root, "sub", "via-link")))
        out.append(os.path.isdir(os.path.join(root, "l-dir")))
        out.append(os.path.islink(os.path.join(root, "l-dir")))
        # a symlink is renamed, not followed
        os.rename(os.path.join(root, "l-rel"), os.path.join(root, "sub", "moved"))
        out.append(os.readlink(os.path.join(root, "sub", "moved")))
        out.append(errno_of(read_all, os.path.join(root, "sub", "moved")))
        # 4096-byte target is too long everywhere
        out.append(errno_of(os.symlink, "x" * 4096, os.path.join(root, "l-4096")))
        return out

    r = compare_both(comp, native, scenario)
    for name, target in SYMLINK_TARGETS.items():
        assert (name, 0) in r, f"symlink {name} failed"
        assert (name, target, len(target.encode()), True) in r
    comp = remount(vault)
    for name, target in SYMLINK_TARGETS.items():
        if name == "rel":
            continue
        p = os.path.join(comp, "l-" + name)
        assert os.readlink(p) == target, name
        assert os.lstat(p).st_size == len(target.encode()), name
    assert os.readlink(os.path.join(comp, "sub", "moved")) == "sub/target"
    fsck_clean(vault)


def side_files(vault):
    d = os.path.join(vault.data_dir(), "kinko.lt")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def side_files_gone_to(vault, n, timeout=10):
    """The side file of a symlink whose last link went is removed when the
    kernel forgets that inode, which it reports a moment after the unlink."""
    end = time.monotonic() + timeout
    while len(side_files(vault)) != n and time.monotonic() < end:
        time.sleep(0.02)
    return len(side_files(vault)) == n


def test_long_symlink_side_file_goes_with_the_last_link(env):
    """A target too long to seal into the backing symlink (over ~3,000 bytes)
    lives in a side file (kinko.lt/ of the compartment): one per symlink,
    shared by its hard links, removed with the last link whether by unlink
    or by a rename over it, kept by RENAME_EXCHANGE; fsck stays clean."""
    vault, comp, native = env
    t1, t2, t3 = ("/".join([c * 99] * 40) for c in "abc")
    sub = os.path.join(comp, "sub")
    os.mkdir(sub)
    os.symlink(t1, os.path.join(comp, "l1"))
    os.symlink("short", os.path.join(comp, "short"))
    assert len(side_files(vault)) == 1          # the short one is inline
    os.link(os.path.join(comp, "l1"), os.path.join(sub, "l1b"), follow_symlinks=False)
    assert len(side_files(vault)) == 1          # a hard link shares it
    assert os.lstat(os.path.join(sub, "l1b")).st_nlink == 2
    os.unlink(os.path.join(comp, "l1"))
    assert len(side_files(vault)) == 1 and os.readlink(os.path.join(sub, "l1b")) == t1
    os.unlink(os.path.join(sub, "l1b"))
    assert side_files_gone_to(vault, 0)         # the last link took it
    # a rename over a long symlink removes the one replaced
    os.symlink(t2, os.path.join(comp, "l2"))
    os.symlink(t3, os.path.join(sub, "l3"))
    keep = side_files(vault)
    assert len(keep) == 2
    os.rename(os.path.join(comp, "l2"), os.path.join(sub, "l3"))
    assert side_files_gone_to(vault, 1) and os.readlink(os.path.join(sub, "l3")) == t2
    # a file renamed over it too
    write_file(os.path.join(comp, "f"), b"f")
    os.rename(os.path.join(comp, "f"), os.path.join(sub, "l3"))
    assert side_files_gone_to(vault, 0)
    # RENAME_EXCHANGE and a failed rename keep both
    os.symlink(t1, os.path.join(comp, "x1"))
    os.symlink(t3, os.path.join(sub, "x3"))
    r = py("""
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2)
        print(rc, ctypes.get_errno())
        """, os.path.join(comp, "x1"), os.path.join(sub, "x3"))
    assert r.communicate()[0].split() == ["0", "0"]
    assert os.readlink(os.path.join(comp, "x1")) == t3 and os.readlink(os.path.join(sub, "x3")) == t1
    assert len(side_files(vault)) == 2
    assert errno_of(os.rename, os.path.join(comp, "x1"), os.path.join(comp, "sub")) == errno.EISDIR
    assert len(side_files(vault)) == 2
    # tar and cp -a carry them; fsck verifies every side file and knows them all
    out = subprocess.run(["tar", "-C", comp, "-cf", "-", "x1", "sub"], check=True,
                         capture_output=True).stdout
    os.mkdir(os.path.join(comp, "t"))
    subprocess.run(["tar", "-C", os.path.join(comp, "t"), "-xf", "-"], input=out, check=True)
    assert os.readlink(os.path.join(comp, "t", "sub", "x3")) == t1
    subprocess.run(["cp", "-a", os.path.join(comp, "x1"), os.path.join(comp, "x1c")], check=True)
    assert os.readlink(os.path.join(comp, "x1c")) == t3
    assert len(side_files(vault)) == 5
    comp = remount(vault)
    assert os.readlink(os.path.join(comp, "x1")) == t3
    assert os.lstat(os.path.join(comp, "x1")).st_size == len(t3)
    fsck_clean(vault)
    subprocess.run(["rm", "-rf", os.path.join(comp, "t"), os.path.join(comp, "sub"),
                    os.path.join(comp, "x1"), os.path.join(comp, "x1c")], check=True)
    assert side_files_gone_to(vault, 0)
    fsck_clean(vault)


def test_unlinked_long_symlink_read_through_o_path(env):
    """A descriptor opened with O_PATH | O_NOFOLLOW on a symlink reads its
    target after the last name is gone (readlinkat(fd, "")), as on a native
    filesystem: a long target's side file stays while the kernel holds the
    inode and goes when the descriptor is closed."""
    vault, comp, native = env
    long_t, short_t = "/".join(["標的"] * 500), "short/target"
    for base in (comp, native):
        for name, t in (("long", long_t), ("short", short_t)):
            p = os.path.join(base, name)
            os.symlink(t, p)
            fd = os.open(p, os.O_PATH | os.O_NOFOLLOW)
            os.unlink(p)
            assert os.readlink("", dir_fd=fd) == t, (base, name)
            if base == comp and name == "long":
                assert len(side_files(vault)) == 1
            os.close(fd)
    assert side_files_gone_to(vault, 0)
    # a rename over it likewise
    p, q = os.path.join(comp, "l"), os.path.join(comp, "other")
    os.symlink(long_t, p)
    write_file(q, b"x")
    fd = os.open(p, os.O_PATH | os.O_NOFOLLOW)
    os.rename(q, p)
    assert os.readlink("", dir_fd=fd) == long_t
    assert len(side_files(vault)) == 1
    os.close(fd)
    assert side_files_gone_to(vault, 0)
    fsck_clean(vault)


# ---------------------------------------------------------------- hard links

def test_hard_links(env):
    vault, comp, native = env

    def scenario(root):
        a, b, c = (os.path.join(root, x) for x in ("a", "b", "c"))
        os.mkdir(os.path.join(root, "d"))
        write_file(a, rbytes(5000, 1))
        os.link(a, b)
        os.link(a, os.path.join(root, "d", "c"))
        out = [os.stat(a).st_nlink, os.stat(a).st_ino == os.stat(b).st_ino, read_all(b)]
        # write through one name, visible through the others
        with open(b, "r+b") as f:
            f.seek(4090)
            f.write(b"through b")
        out += [read_all(a), read_all(os.path.join(root, "d", "c"))]
        # unlink one name: the others keep the content and the count drops
        os.unlink(a)
        out += [os.stat(b).st_nlink, read_all(b)]
        # rename of a hard-linked file, then read through both names
        os.rename(b, c)
        os.rename(os.path.join(root, "d", "c"), os.path.join(root, "d", "c2"))
        out += [read_all(c), read_all(os.path.join(root, "d", "c2")), os.stat(c).st_nlink]
        # append through one name, truncate through the other
        with open(c, "ab") as f:
            f.write(b"appended")
        os.truncate(os.path.join(root, "d", "c2"), 4100)
        out += [read_all(c), os.stat(c).st_size]
        # a hard link of a symlink (linkat without AT_SYMLINK_FOLLOW)
        os.symlink("c", os.path.join(root, "sl"))
        os.link(os.path.join(root, "sl"), os.path.join(root, "sl2"), follow_symlinks=False)
        out += [os.readlink(os.path.join(root, "sl2")), os.lstat(os.path.join(root, "sl")).st_nlink]
        # link errors
        out += [errno_of(os.link, c, os.path.join(root, "d", "c2")),
                errno_of(os.link, os.path.join(root, "d"), os.path.join(root, "dl")),
                errno_of(os.link, os.path.join(root, "nope"), os.path.join(root, "x"))]
        return out

    r = compare_both(comp, native, scenario)
    assert r[0] == 3 and r[1] is True
    comp = remount(vault)
    want = bytearray(rbytes(5000, 1))
    want[4090:4099] = b"through b"
    want = bytes(want[:4100])
    assert r[-7] == want
    assert read_all(os.path.join(comp, "c")) == want
    assert read_all(os.path.join(comp, "d", "c2")) == want
    assert os.stat(os.path.join(comp, "c")).st_nlink == 2
    assert os.readlink(os.path.join(comp, "sl2")) == "c"
    fsck_clean(vault)


def test_hard_link_of_empty_file_then_unlink_and_write(env):
    """An empty file gets a second name, the second name is removed, then the
    file is written through its first name: it must stay readable (also after a
    remount), as on any filesystem."""
    vault, comp, native = env

    def scenario(root):
        a, b = os.path.join(root, "a"), os.path.join(root, "b")
        write_file(a, b"")
        os.link(a, b)
        os.unlink(b)
        with open(a, "r+b") as f:
            f.write(b"written after the link went away")
        return read_all(a), os.stat(a).st_nlink

    r = compare_both(comp, native, scenario)
    assert r == (b"written after the link went away", 1)
    comp = remount(vault)
    assert read_all(os.path.join(comp, "a")) == r[0]
    fsck_clean(vault)


def test_hard_link_truncated_to_zero_then_rewritten(env):
    """A linked file loses its second name, is truncated to 0 and rewritten through
    the remaining name: the contents must survive a remount."""
    vault, comp, native = env

    def scenario(root):
        a, b = os.path.join(root, "a"), os.path.join(root, "b")
        write_file(a, rbytes(5000, 2))
        os.link(a, b)
        os.unlink(b)
        os.truncate(a, 0)
        with open(a, "r+b") as f:
            f.write(b"new life")
        return read_all(a)

    r = compare_both(comp, native, scenario)
    assert r == b"new life"
    comp = remount(vault)
    assert read_all(os.path.join(comp, "a")) == r
    fsck_clean(vault)


def test_hard_link_name_replaced_by_rename_then_rewritten(env):
    """One name of a linked file is replaced by rename(2); the file is then emptied
    and rewritten through its remaining name: readable, also after a remount."""
    vault, comp, native = env

    def scenario(root):
        a, b, c = (os.path.join(root, x) for x in ("a", "b", "c"))
        write_file(a, rbytes(5000, 4))
        os.link(a, b)
        write_file(c, b"replacement")
        os.rename(c, a)          # a now names another file; b is the last name
        os.truncate(b, 0)
        with open(b, "r+b") as f:
            f.write(rbytes(4097, 5))
        return read_all(a), read_all(b), os.stat(b).st_nlink

    r = compare_both(comp, native, scenario)
    assert r == (b"replacement", rbytes(4097, 5), 1)
    comp = remount(vault)
    assert read_all(os.path.join(comp, "b")) == rbytes(4097, 5)
    assert read_all(os.path.join(comp, "a")) == b"replacement"
    fsck_clean(vault)


def test_link_keeps_mtime(env):
    """link(2) changes only the ctime of the file, never its mtime."""
    vault, comp, native = env
    T = 1_400_000_000_987_654_321

    def scenario(root):
        a = os.path.join(root, "a")
        write_file(a, rbytes(5000, 3))
        os.utime(a, ns=(T, T))
        os.link(a, os.path.join(root, "b"))
        out = [os.stat(a).st_mtime_ns]
        os.unlink(os.path.join(root, "b"))
        out.append(os.stat(a).st_mtime_ns)
        return out

    r = compare_both(comp, native, scenario)
    assert r == [T, T]
    fsck_clean(vault)


# ---------------------------------------------------------------- attributes

def test_chmod(env):
    vault, comp, native = env
    modes = [0o000, 0o400, 0o644, 0o755, 0o777, 0o4755, 0o2755, 0o1777, 0o6711]

    def scenario(root):
        out = []
        write_file(os.path.join(root, "f"), b"x")
        os.mkdir(os.path.join(root, "d"))
        for m in modes:
            os.chmod(os.path.join(root, "f"), m)
            os.chmod(os.path.join(root, "d"), m)
            out.append((m, os.stat(os.path.join(root, "f")).st_mode,
                        os.stat(os.path.join(root, "d")).st_mode))
        fd = os.open(os.path.join(root, "f"), os.O_RDONLY)
        os.fchmod(fd, 0o640)
        out.append(os.fstat(fd).st_mode)
        os.close(fd)
        os.chmod(os.path.join(root, "d"), 0o755)
        return out

    r = compare_both(comp, native, scenario)
    comp = remount(vault)
    assert os.stat(os.path.join(comp, "f")).st_mode == r[-1]
    fsck_clean(vault)


def test_chown(env):
    vault, comp, native = env
    assert os.geteuid() == 0, "run as root"

    def scenario(root):
        f, d, l = (os.path.join(root, x) for x in ("f", "d", "l"))
        write_file(f, b"x")
        os.mkdir(d)
        os.symlink("f", l)
        out = [(os.stat(f).st_uid, os.stat(f).st_gid)]
        os.chown(f, NOBODY, NOBODY)
        os.chown(d, NOBODY, -1)
        out += [(os.stat(f).st_uid, os.stat(f).st_gid), (os.stat(d).st_uid, os.stat(d).st_gid)]
        os.chown(f, -1, 0)
        out.append((os.stat(f).st_uid, os.stat(f).st_gid))
        # lchown changes the link, not the target
        os.chown(l, NOBODY, NOBODY, follow_symlinks=False)
        out += [(os.lstat(l).st_uid, os.lstat(l).st_gid), (os.stat(f).st_uid, os.stat(f).st_gid)]
        # new entries belong to the caller (root), even inside nobody's dir
        write_file(os.path.join(d, "new"), b"y")
        out.append((os.stat(os.path.join(d, "new")).st_uid, os.stat(os.path.join(d, "new")).st_gid))
        fd = os.open(f, os.O_RDONLY)
        os.fchown(fd, 0, NOBODY)
        out.append((os.fstat(fd).st_uid, os.fstat(fd).st_gid))
        os.close(fd)
        return out

    r = compare_both(comp, native, scenario)
    assert r[1] == (NOBODY, NOBODY)
    comp = remount(vault)
    st = os.stat(os.path.join(comp, "f"))
    assert (st.st_uid, st.st_gid) == r[-1]
    fsck_clean(vault)


def test_utimens(env):
    vault, comp, native = env
    a_ns, m_ns = 1_000_000_123_456_789, 1_234_567_890_987_654_321

    def scenario(root):
        f, d, l = (os.path.join(root, x) for x in ("f", "d", "l"))
        write_file(f, b"x")
        os.mkdir(d)
        os.symlink("f", l)
        out = []
        os.utime(f, ns=(a_ns, m_ns))
        st = os.stat(f)
        out.append((st.st_atime_ns, st.st_mtime_ns))
        os.utime(d, ns=(5, 7_000_000_000))
        st = os.stat(d)
        out.append((st.st_atime_ns, st.st_mtime_ns))
        os.utime(l, ns=(11, 13), follow_symlinks=False)
        out += [(os.lstat(l).st_atime_ns, os.lstat(l).st_mtime_ns), os.stat(f).st_mtime_ns]
        subprocess.run(["touch", "-d", "2001-02-03 04:05:06.123456789 UTC", f], check=True)
        out.append(os.stat(f).st_mtime_ns)
        subprocess.run(["touch", "-m", "-d", "1970-01-01 00:00:01 UTC", d], check=True)
        out.append(os.stat(d).st_mtime_ns)
        # through an open fd (futimens)
        fd = os.open(f, os.O_RDWR)
        os.utime(fd, ns=(42, 43))
        out.append((os.fstat(fd).st_atime_ns, os.fstat(fd).st_mtime_ns))
        os.close(fd)
        # writing updates mtime to about now
        before = time.time_ns()
        with open(f, "ab") as fh:
            fh.write(b"more")
        out.append(os.stat(f).st_mtime_ns >= before - 2_000_000_000)
        return out

    r = compare_both(comp, native, scenario)
    assert r[0] == (a_ns, m_ns) and r[4] == 981173106123456789
    comp = remount(vault)
    assert os.stat(os.path.join(comp, "d")).st_mtime_ns == 1_000_000_000
    fsck_clean(vault)


def test_statfs(env):
    vault, comp, native = env
    sv = os.statvfs(comp)
    assert sv.f_namemax == 255
    assert sv.f_bsize > 0 and sv.f_blocks > 0 and sv.f_bavail <= sv.f_blocks
    assert os.statvfs(os.path.dirname(comp)).f_namemax == 255
    # free space follows the backing filesystem
    nv = os.statvfs(vault.path)
    assert abs(sv.f_blocks * sv.f_frsize - nv.f_blocks * nv.f_frsize) <= nv.f_frsize


def test_fsync_fdatasync(env):
    vault, comp, native = env
    data = rbytes(3 * BS + 5, 3)
    p = os.path.join(comp, "sync")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.pwrite(fd, b"DATASYNC", 100)
    os.fdatasync(fd)
    os.close(fd)
    dfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)  # fsync of a read-only fd is allowed
    os.close(fd)
    want = data[:100] + b"DATASYNC" + data[108:]
    comp = remount(vault)
    assert read_all(os.path.join(comp, "sync")) == want
    fsck_clean(vault)


# ---------------------------------------------------------------- fallocate

def test_posix_fallocate(env):
    vault, comp, native = env
    base = rbytes(3 * BS + 100, 4)

    def scenario(root):
        out = []
        p = os.path.join(root, "fa")
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        os.posix_fallocate(fd, 0, 10000)  # on an empty file
        out += [os.fstat(fd).st_size, os.pread(fd, 20000, 0)]
        os.pwrite(fd, base, 0)
        os.posix_fallocate(fd, 100, 200)  # inside: no change
        out += [os.fstat(fd).st_size, os.pread(fd, 20000, 0)]
        os.posix_fallocate(fd, 12000, 9000)  # straddles EOF: grows with zeros
        out += [os.fstat(fd).st_size, os.pread(fd, 30000, 0)]
        os.close(fd)
        fd = os.open(p, os.O_RDONLY)
        out.append(errno_of(os.posix_fallocate, fd, 0, 100000))
        os.close(fd)
        return out

    r = compare_both(comp, native, scenario)
    assert r[0] == 10000 and r[1] == b"\0" * 10000
    assert r[4] == 21000 and r[5] == base + b"\0" * (21000 - len(base))
    comp = remount(vault)
    assert read_all(os.path.join(comp, "fa")) == r[5]
    fsck_clean(vault)


def test_fallocate_punch_hole_and_keep_size(env):
    vault, comp, native = env
    base = rbytes(5 * BS + 123, 5)

    def fa(*args):
        p = subprocess.run(["fallocate", *map(str, args)], capture_output=True, text=True)
        return p.returncode

    def scenario(root):
        out = []
        p = os.path.join(root, "ph")
        write_file(p, base)
        out.append(fa("-p", "-o", 4000, "-l", 5000, p))     # straddles two blocks
        out += [os.stat(p).st_size, read_all(p)]
        out.append(fa("-p", "-o", 0, "-l", BS, p))          # one whole block
        out.append(fa("-p", "-o", 5 * BS, "-l", 10 * BS, p))  # across EOF: size kept
        out += [os.stat(p).st_size, read_all(p)]
        out.append(fa("-n", "-o", 0, "-l", 1 << 20, p))     # keep size: no change
        out += [os.stat(p).st_size]
        out.append(fa("-z", "-o", 10, "-l", 20, p))         # zero range inside
        out.append(fa("-z", "-o", 6 * BS, "-l", 100, p))    # zero range past EOF grows
        out += [os.stat(p).st_size, read_all(p)]
        out.append(fa("-l", 8 * BS, os.path.join(root, "new")))  # new file
        out += [os.stat(os.path.join(root, "new")).st_size,
                read_all(os.path.join(root, "new")) == b"\0" * 8 * BS]
        return out

    r = compare_both(comp, native, scenario)
    want = bytearray(base)
    want[4000:9000] = b"\0" * 5000
    assert r[0] == 0 and r[1] == len(base) and r[2] == bytes(want)
    comp = remount(vault)
    assert read_all(os.path.join(comp, "ph")) == r[-4]
    fsck_clean(vault)


# ---------------------------------------------------------------- locks

LOCK_CHILD = """
import errno, fcntl, os, sys, time
path, kind = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
f = (lambda op: fcntl.lockf(fd, op)) if kind == "lockf" else (lambda op: fcntl.flock(fd, op))
try:
    f(fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("nb-ok", flush=True)
except OSError as e:
    print("nb-" + errno.errorcode[e.errno], flush=True)
t0 = time.time()
f(fcntl.LOCK_EX)
print("got %.3f" % time.time(), flush=True)
f(fcntl.LOCK_UN)
"""


@pytest.mark.parametrize("kind", ["lockf", "flock"])
def test_locks_between_processes(env, kind):
    vault, comp, native = env
    results = {}
    for where, root in (("native", native), ("kinko", comp)):
        p = os.path.join(root, "lockme")
        write_file(p, b"lock")
        fd = os.open(p, os.O_RDWR)
        (fcntl.lockf if kind == "lockf" else fcntl.flock)(fd, fcntl.LOCK_EX)
        child = py(LOCK_CHILD, p, kind)
        first = child.stdout.readline().strip()
        time.sleep(0.4)  # the child is now blocked in the waiting lock call
        released = time.time()
        (fcntl.lockf if kind == "lockf" else fcntl.flock)(fd, fcntl.LOCK_UN)
        out, err = child.communicate(timeout=20)
        os.close(fd)
        assert child.returncode == 0, err
        got = float(out.split()[1])
        results[where] = (first, got >= released - 0.05)
    assert results["native"][0] in ("nb-EAGAIN", "nb-EACCES")
    assert results["kinko"] == results["native"]
    fsck_clean(vault)


def test_lock_conflicts_shared_exclusive(env):
    """Shared locks coexist, an exclusive one conflicts (lockf ranges too)."""
    vault, comp, native = env
    code = """
    import errno, fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    res = []
    for op, args in ((fcntl.LOCK_SH, ()), (fcntl.LOCK_EX, ())):
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB); res.append("ok"); fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as e:
            res.append(errno.errorcode[e.errno])
    for start in (0, 100):  # lockf on byte ranges: [0,10) is held by the parent
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, start); res.append("ok")
        except OSError as e:
            res.append(errno.errorcode[e.errno])
    print(" ".join(res))
    """
    results = {}
    for where, root in (("native", native), ("kinko", comp)):
        p = os.path.join(root, "sh")
        write_file(p, b"x" * 200)
        fd = os.open(p, os.O_RDWR)
        fd2 = os.open(p, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_SH)
        fcntl.lockf(fd2, fcntl.LOCK_EX, 10, 0)
        child = py(code, p)
        out, err = child.communicate(timeout=20)
        assert child.returncode == 0, err
        results[where] = out.split()
        os.close(fd)
        os.close(fd2)
    assert results["native"][0] == "ok" and results["native"][1] != "ok"
    assert results["kinko"] == results["native"]
    fsck_clean(vault)


# ---------------------------------------------------------------- xattrs

def test_xattrs(env):
    vault, comp, native = env
    values = {
        "user.plain": b"value",
        "user.binary": bytes(range(256)) + b"\0\0\xff",
        "user.jp": "日本語の値、金庫".encode(),
        "user.big": rbytes(2048, 6),
        "user.empty": b"",
        "user." + jname(20): b"japanese name",
    }

    def scenario(root):
        out = []
        f = os.path.join(root, "f")
        d = os.path.join(root, "d")
        write_file(f, rbytes(5000, 7))
        os.mkdir(d)
        for target in (f, d):
            for k, v in values.items():
                os.setxattr(target, k, v)
            out.append(sorted(os.listxattr(target)))
            out.append({k: os.getxattr(target, k) for k in values})
            out.append(errno_of(os.getxattr, target, "user.missing"))
            out.append(errno_of(os.setxattr, target, "user.plain", b"new", os.XATTR_CREATE))
            out.append(errno_of(os.setxattr, target, "user.nope", b"new", os.XATTR_REPLACE))
            out.append(errno_of(os.setxattr, target, "user.plain", b"replaced", os.XATTR_REPLACE))
            out.append(errno_of(os.setxattr, target, "user.fresh", b"created", os.XATTR_CREATE))
            out.append(os.getxattr(target, "user.plain"))
            out.append(os.getxattr(target, "user.fresh"))
            os.removexattr(target, "user.fresh")
            out.append(errno_of(os.removexattr, target, "user.fresh"))
            out.append(sorted(os.listxattr(target)))
        # user.* on a symlink itself: not permitted; reading finds nothing
        l = os.path.join(root, "l")
        os.symlink("f", l)
        out.append(errno_of(os.setxattr, l, "user.s", b"v", follow_symlinks=False))
        out.append(errno_of(os.getxattr, l, "user.plain", follow_symlinks=False))
        out.append(os.listxattr(l, follow_symlinks=False))
        out.append(os.getxattr(l, "user.plain"))  # followed: the file's value
        # the file content is untouched by xattr operations
        out.append(read_all(f) == rbytes(5000, 7))
        return out

    r = compare_both(comp, native, scenario)
    assert r[2:9] == [errno.ENODATA, errno.EEXIST, errno.ENODATA, 0, 0, b"replaced", b"created"]
    comp = remount(vault)
    for target in (os.path.join(comp, "f"), os.path.join(comp, "d")):
        got = {k: os.getxattr(target, k) for k in os.listxattr(target)}
        want = dict(values, **{"user.plain": b"replaced"})
        assert got == want
    # plaintext names and values do not reach the backing store
    for n in os.listdir(vault.data_dir()):
        bp = os.path.join(vault.data_dir(), n)
        for xn in os.listxattr(bp, follow_symlinks=False):
            assert "plain" not in xn and "big" not in xn
            assert b"replaced" not in os.getxattr(bp, xn, follow_symlinks=False)
    fsck_clean(vault)


def test_xattr_large_values(env):
    """Values up to 4 KiB, each on its own file: kinko must accept what the native
    filesystem under the vault accepts (ext4 here: one 4 KiB block per inode, a
    4096-byte value fails natively). Encryption adds 28 bytes to a value and
    lengthens its name, so kinko's ceiling on ext4 is 3968 bytes (documented in
    kinko-format(5)); between that and the native ceiling kinko says ENOSPC."""
    vault, comp, native = env
    sizes = [1024, 2048, 3072, 3900, 3968, 4000, 4096]

    def scenario(root):
        out = []
        for sz in sizes:
            f = os.path.join(root, f"x{sz}")
            write_file(f, b"x")
            e = errno_of(os.setxattr, f, "user.big", rbytes(sz, sz))
            out.append((sz, e, os.getxattr(f, "user.big") == rbytes(sz, sz) if e == 0 else None))
        return out

    k, n = scenario(comp), scenario(native)
    assert all(e == 0 for sz, e, ok in n if sz <= 4000), "native fs holds less than assumed"
    for (sz, ke, kok), (_, ne, nok) in zip(k, n):
        if sz <= 3968 or ne != 0:
            assert (ke, kok) == (ne, nok), f"size {sz}: kinko {ke, kok} native {ne, nok}"
        else:
            assert ke in (0, errno.ENOSPC), f"size {sz}: kinko errno {ke}"
            assert ke != 0 or kok, f"size {sz}: value read back wrong"
    comp = remount(vault)
    for sz, e, ok in k:
        if e == 0:
            assert os.getxattr(os.path.join(comp, f"x{sz}"), "user.big") == rbytes(sz, sz)
    fsck_clean(vault)


def test_xattr_size_query_and_erange(env):
    vault, comp, native = env
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.getxattr.restype = ctypes.c_ssize_t
    libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    libc.listxattr.restype = ctypes.c_ssize_t
    libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]

    def scenario(root):
        f = os.path.join(root, "f")
        write_file(f, b"x")
        os.setxattr(f, "user.v", b"0123456789")
        os.setxattr(f, "user.w", b"")
        bf = os.fsencode(f)
        buf = ctypes.create_string_buffer(64)
        out = [libc.getxattr(bf, b"user.v", None, 0)]
        r = libc.getxattr(bf, b"user.v", buf, 5)
        out.append((r, ctypes.get_errno() if r < 0 else 0))
        out.append(libc.getxattr(bf, b"user.w", None, 0))
        out.append(libc.listxattr(bf, None, 0))
        r = libc.listxattr(bf, buf, 3)
        out.append((r, ctypes.get_errno() if r < 0 else 0))
        return out

    r = compare_both(comp, native, scenario)
    assert r[0] == 10 and r[1] == (-1, errno.ERANGE) and r[2] == 0
    fsck_clean(vault)


# ---------------------------------------------------------------- FIFOs

FIFO_WRITER = """
import os, random, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
data = random.Random(1).randbytes(200000)
view = memoryview(data)
while view:
    view = view[os.write(fd, view[:7000]):]
os.close(fd)
"""


def test_fifo(env):
    vault, comp, native = env
    want = random.Random(1).randbytes(200000)

    def scenario(root):
        p = os.path.join(root, "fifo")
        os.mkfifo(p, 0o640)
        out = [stat.S_ISFIFO(os.stat(p).st_mode), os.stat(p).st_mode & 0o7777,
               errno_of(os.mkfifo, p)]
        w = py(FIFO_WRITER, p)
        with open(p, "rb") as f:
            got = f.read()
        w.communicate(timeout=20)
        out += [w.returncode, got == want, len(got)]
        return out

    r = compare_both(comp, native, scenario)
    assert r[0] is True and r[4] is True
    comp = remount(vault)
    assert stat.S_ISFIFO(os.stat(os.path.join(comp, "fifo")).st_mode)
    os.unlink(os.path.join(comp, "fifo"))
    fsck_clean(vault)


# ---------------------------------------------------------------- mmap

def test_mmap_read(env):
    vault, comp, native = env
    data = rbytes(3 * BS + 777, 8)
    write_file(os.path.join(comp, "m"), data)
    comp = remount(vault)
    with open(os.path.join(comp, "m"), "rb") as f:
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
            assert len(mm) == len(data)
            assert mm[:] == data
            assert mm[BS - 3:BS + 3] == data[BS - 3:BS + 3]
            assert mm[-5:] == data[-5:]
        # a private mapping can be written without touching the file
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE) as mm:
            mm[0:4] = b"PRIV"
            assert mm[0:4] == b"PRIV"
    assert read_all(os.path.join(comp, "m")) == data
    fsck_clean(vault)


def test_mmap_shared_write(env):
    vault, comp, native = env
    data = rbytes(3 * BS + 777, 9)

    def scenario(root):
        p = os.path.join(root, "ms")
        write_file(p, data)
        with open(p, "r+b") as f:
            with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE) as mm:
                mm[0:5] = b"HELLO"
                mm[BS - 2:BS + 2] = b"ABCD"          # straddles a block boundary
                mm[len(data) - 3:] = b"END"          # last bytes of the short last block
                mm.flush()
            # read() through another descriptor sees the stores
            with open(p, "rb") as g:
                seen = g.read()
        return seen, os.stat(p).st_size

    r = compare_both(comp, native, scenario)
    want = bytearray(data)
    want[0:5] = b"HELLO"
    want[BS - 2:BS + 2] = b"ABCD"
    want[-3:] = b"END"
    assert r == (bytes(want), len(data))
    comp = remount(vault)
    assert read_all(os.path.join(comp, "ms")) == bytes(want)
    # a shared mapping after ftruncate growth: the new page reads as zeros
    p = os.path.join(comp, "ms")
    with open(p, "r+b") as f:
        f.truncate(len(data) + BS)
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE) as mm:
            assert mm[len(data):] == b"\0" * BS
            mm[-1:] = b"Z"
            mm.flush()
    comp = remount(vault)
    assert read_all(os.path.join(comp, "ms")) == bytes(want) + b"\0" * (BS - 1) + b"Z"
    fsck_clean(vault)
