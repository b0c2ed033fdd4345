"""FUSE over io_uring: with the kernel's fuse.enable_uring on, kinko's
requests travel through rings (kinko status says so) and ordinary programs
see the same file system as through /dev/fuse; -o no_io_uring keeps
/dev/fuse; unmount and SIGTERM end the ring workers. The kernel parameter is
global: the test turns it on and puts it back (root only; skipped on a
kernel without it)."""
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from kinko_util import daemon_pid, fsck_clean, kinko, ok

PARAM = "/sys/module/fuse/parameters/enable_uring"


@pytest.fixture(scope="module")
def uring_on():
    if not os.path.exists(PARAM):
        pytest.skip("this kernel has no FUSE over io_uring (fuse.enable_uring)")
    if os.geteuid() != 0:
        pytest.skip("turning fuse.enable_uring on needs root")
    old = open(PARAM).read().strip()
    with open(PARAM, "w") as f:
        f.write("1")
    yield
    with open(PARAM, "w") as f:
        f.write(old)


def status(mnt):
    lst = json.loads(ok(kinko("status", mnt, "--json")).stdout)
    assert len(lst) == 1, lst
    return lst[0]


@pytest.fixture
def umnt(uring_on, vault):
    mnt = vault.mount()
    os.listdir(mnt)  # a first request through the rings
    yield vault, mnt, vault.comp(mnt)
    vault.cleanup()


def test_requests_go_through_io_uring(umnt):
    vault, mnt, comp = umnt
    assert status(mnt)["transport"] == "io_uring"
    p = ok(kinko("status", mnt))
    assert "requests via: io_uring" in p.stdout, p.stdout


def test_no_io_uring_option_keeps_dev_fuse(uring_on, vault):
    mnt = vault.mount(extra=("-o", "no_io_uring"))
    os.listdir(vault.comp(mnt))
    assert status(mnt)["transport"] == "dev_fuse"
    vault.cleanup()


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_ordinary_programs_over_io_uring(umnt, tmp_path):
    """cp -a of a tree with files from empty to 5 MiB (larger than one
    request), diff -r, tar round trip, rename, hard and long symlinks, xattrs,
    truncate, a 3,000-entry directory, mmap, random reads and writes against
    a native twin, then fsck."""
    vault, mnt, comp = umnt
    src = tmp_path / "src"
    rng = random.Random(7)
    for d in range(5):
        (src / f"d{d}" / "sub").mkdir(parents=True)
        for i in range(12):
            size = rng.choice([0, 1, 4095, 4096, 4097, 65536, 300000, 1 << 20, (5 << 20) + 17])
            (src / f"d{d}" / ("sub" if i % 3 == 0 else "") / f"f{i}-日本語.bin").write_bytes(
                rng.randbytes(size))
    os.symlink("d0/f1-日本語.bin", src / "link")
    subprocess.run(["cp", "-a", str(src), os.path.join(comp, "tree")], check=True)
    subprocess.run(["diff", "-r", str(src), os.path.join(comp, "tree")], check=True)
    tarball = tmp_path / "t.tar"
    subprocess.run(["tar", "-C", comp, "-cf", str(tarball), "tree"], check=True)
    os.mkdir(os.path.join(comp, "untar"))
    subprocess.run(["tar", "-C", os.path.join(comp, "untar"), "-xf", str(tarball)], check=True)
    subprocess.run(["diff", "-r", str(src), os.path.join(comp, "untar", "tree")], check=True)
    os.rename(os.path.join(comp, "untar"), os.path.join(comp, "moved"))
    os.link(os.path.join(comp, "moved", "tree", "d1", "f1-日本語.bin"), os.path.join(comp, "hard"))
    assert os.stat(os.path.join(comp, "hard")).st_nlink == 2
    long_target = "/".join(["x" * 60] * 60)
    os.symlink(long_target, os.path.join(comp, "long"))
    assert os.readlink(os.path.join(comp, "long")) == long_target
    os.setxattr(os.path.join(comp, "hard"), "user.note", b"v" * 3000)
    assert os.getxattr(os.path.join(comp, "hard"), "user.note") == b"v" * 3000
    big = os.path.join(comp, "big")
    subprocess.run(["dd", "if=/dev/urandom", "of=" + big, "bs=4M", "count=3", "status=none"], check=True)
    os.truncate(big, 5_000_001)
    assert os.stat(big).st_size == 5_000_001
    os.mkdir(os.path.join(comp, "many"))
    for i in range(3000):
        open(os.path.join(comp, "many", f"n{i:05d}"), "w").close()
    assert len(os.listdir(os.path.join(comp, "many"))) == 3000
    # random 4k reads and writes, same on a native twin
    native = tmp_path / "twin"
    data = rng.randbytes(2 << 20)
    native.write_bytes(data)
    f = os.path.join(comp, "twin")
    with open(f, "wb") as o:
        o.write(data)
    fd_k, fd_n = os.open(f, os.O_RDWR), os.open(native, os.O_RDWR)
    for _ in range(400):
        off = rng.randrange(0, 2 << 20)
        if rng.random() < 0.5:
            buf = rng.randbytes(rng.randrange(1, 9000))
            assert os.pwrite(fd_k, buf, off) == os.pwrite(fd_n, buf, off)
        else:
            n = rng.randrange(1, 9000)
            assert os.pread(fd_k, n, off) == os.pread(fd_n, n, off)
    os.close(fd_k)
    os.close(fd_n)
    assert sha(f) == sha(native)
    import mmap
    with open(f, "r+b") as o:
        m = mmap.mmap(o.fileno(), 0)
        m[100:104] = b"MMAP"
        m.flush()
        m.close()
    with open(f, "rb") as o:
        assert o.read(104)[100:] == b"MMAP"
    assert status(mnt)["transport"] == "io_uring"
    vault.cleanup()
    fsck_clean(vault)


def test_concurrent_writers_and_readers_over_io_uring(umnt):
    """Eight threads write and read back their own files at once: requests
    from both CPUs, several at a time per queue."""
    vault, mnt, comp = umnt
    errors = []

    def work(n):
        try:
            rng = random.Random(n)
            for i in range(20):
                p = os.path.join(comp, f"w{n}-{i}")
                data = rng.randbytes(rng.randrange(0, 400000))
                with open(p, "wb") as o:
                    o.write(data)
                with open(p, "rb") as o:
                    if o.read() != data:
                        errors.append(p)
        except OSError as e:
            errors.append(repr(e))

    th = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    [t.start() for t in th]
    [t.join() for t in th]
    assert errors == []
    assert len(os.listdir(comp)) == 160


def wait_gone(pid, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_unmount_and_sigterm_end_the_ring_workers(uring_on, vault):
    for how in ("umount", "sigterm"):
        mnt = vault.mount()
        comp = vault.comp(mnt)
        with open(os.path.join(comp, how), "w") as o:
            o.write(how)
        pid = daemon_pid(mnt)
        assert status(mnt)["transport"] == "io_uring"
        if how == "umount":
            ok(kinko("umount", mnt))
        else:
            os.kill(pid, signal.SIGTERM)
        assert wait_gone(pid), f"daemon still running after {how}"
        vault.mounts.remove(mnt)
    comp = vault.comp(vault.mount())
    assert open(os.path.join(comp, "umount")).read() == "umount"
    assert open(os.path.join(comp, "sigterm")).read() == "sigterm"
    vault.cleanup()
    fsck_clean(vault)


def test_owner_mount_and_fastpath_tests_over_io_uring(uring_on):
    """The owner-mount and fast-path tests again, with every mount on
    io_uring: a handler that replies and then invalidates names under a
    directory (chmod of a directory in an owner mount on a kernel without
    FUSE_NOTIFY_INC_EPOCH) hung here while its reply waited for the handler
    to return; notifications from ring handlers now go out after the
    commit."""
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_owner_mount.py", "test_fastpath.py"],
                       cwd=here, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]


def test_rings_that_cannot_be_made_leave_dev_fuse(uring_on, vault):
    """With io_uring switched off for processes (kernel.io_uring_disabled=2)
    the kernel still offers FUSE over io_uring, but kinko cannot make its
    rings: it must not ask for them, or the kernel would hold every request
    until rings that never come register. The mount works over /dev/fuse."""
    knob = "/proc/sys/kernel/io_uring_disabled"
    if not os.path.exists(knob):
        pytest.skip("no kernel.io_uring_disabled")
    old = open(knob).read().strip()
    with open(knob, "w") as f:
        f.write("2")
    try:
        mnt = vault.mount()
        comp = vault.comp(mnt)
        p = subprocess.run(["sh", "-c", f"echo hi > '{comp}/f' && cat '{comp}/f'"],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout == "hi\n", p
        assert status(mnt)["transport"] == "dev_fuse"
    finally:
        with open(knob, "w") as f:
            f.write(old)
    vault.cleanup()
