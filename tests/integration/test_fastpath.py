"""The request-saving paths of the mount (issue 2) keep their semantics:

- FUSE_HANDLE_KILLPRIV_V2: the kernel no longer asks for "security.capability"
  before every write, and kinko itself removes set-user-ID / set-group-ID when a
  caller without CAP_FSETID writes, truncates or opens with O_TRUNC (compared
  with a native directory).
- Namespaces other than user.* are "not supported", so ls -l asks for
  security.selinux once per mount instead of once per file.
"""
import errno
import os
import re
import subprocess
import tempfile

import pytest

from kinko_util import KINKO, umount, wait_for_mount

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
BAD = re.compile(r"==\d+==|runtime error:|LeakSanitizer|AddressSanitizer")


def as_nobody(*cmd):
    p = subprocess.run(NOBODY + list(cmd), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p


def debug_mount(vault, log_path, extra=()):
    """A foreground mount with libfuse's request trace written to log_path."""
    mnt = tempfile.mkdtemp(prefix="mnt-", dir=vault.base)
    log = open(log_path, "w")
    proc = subprocess.Popen([KINKO, "mount", vault.path, mnt, "--user", vault.user,
                             "--password-file", vault.pwfile, "--debug", *extra],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_for_mount(mnt, proc)
    return mnt, proc


def stop(mnt, proc, log_path):
    umount(mnt)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = open(log_path, errors="replace").read()
    assert not BAD.search(text), "sanitizer report in the daemon's output:\n" + text[-4000:]
    return text


def opcodes(text, name):
    return len(re.findall(r"opcode: %s \(" % name, text))


def test_writes_do_not_ask_for_capabilities_each_time(vault, tmpbase):
    log = os.path.join(tmpbase, "trace.log")
    mnt, proc = debug_mount(vault, log)
    try:
        p = os.path.join(vault.comp(mnt), "f")
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for i in range(200):
                os.pwrite(fd, bytes([i % 256]) * 4096, (i * 7919 % 64) * 4096)
        finally:
            os.close(fd)
        with open(p, "rb") as f:
            data = f.read()
        assert len(data) == 64 * 4096
    finally:
        text = stop(mnt, proc, log)
    writes = opcodes(text, "WRITE")
    assert writes >= 200, f"trace shows {writes} WRITE requests (trace format changed?)"
    # before: one GETXATTR(security.capability) per WRITE
    assert opcodes(text, "GETXATTR") <= 3, f"{opcodes(text, 'GETXATTR')} GETXATTR for {writes} writes"


@pytest.fixture
def shared(vault, tmpbase):
    """kinko mount with allow_other and a native directory, both writable by nobody."""
    os.chmod(tmpbase, 0o755)
    mnt = vault.mount(extra=["-o", "allow_other"])
    comp = vault.comp(mnt)
    os.chmod(comp, 0o777)
    native = tempfile.mkdtemp(prefix="native-", dir=tmpbase)
    os.chmod(native, 0o777)
    yield comp, native
    vault.cleanup()


def setid_scenario(root):
    out = []

    def fresh(name, mode):
        p = os.path.join(root, name)
        with open(p, "w") as f:
            f.write("hello\n")
        os.chmod(p, mode)
        return p

    # another user appends: set-user-ID goes
    p = fresh("append", 0o4777)
    as_nobody("sh", "-c", f"echo more >> '{p}'")
    out.append(("append", oct(os.stat(p).st_mode & 0o7777), open(p).read()))
    # another user truncates: both bits go (group execute set)
    p = fresh("truncate", 0o6777)
    as_nobody("truncate", "-s", "2", p)
    out.append(("truncate", oct(os.stat(p).st_mode & 0o7777), open(p).read()))
    # another user opens with O_TRUNC and writes
    p = fresh("otrunc", 0o4777)
    as_nobody("sh", "-c", f"echo new > '{p}'")
    out.append(("otrunc", oct(os.stat(p).st_mode & 0o7777), open(p).read()))
    # another user writes in the middle: set-group-ID with group execute goes
    p = fresh("pwrite", 0o2777)
    as_nobody("/usr/bin/python3", "-c",
              f"import os; fd = os.open('{p}', os.O_WRONLY); os.pwrite(fd, b'ZZ', 1); os.close(fd)")
    out.append(("pwrite", oct(os.stat(p).st_mode & 0o7777), open(p).read()))
    # root (CAP_FSETID) writes and truncates: the bits stay
    p = fresh("root", 0o6755)
    with open(p, "a") as f:
        f.write("root\n")
    os.truncate(p, 3)
    out.append(("root", oct(os.stat(p).st_mode & 0o7777), open(p).read()))
    # and a later write by another user still removes them (the kernel no
    # longer checks before each write: kinko does)
    os.chmod(p, 0o4777)
    as_nobody("sh", "-c", f"echo x >> '{p}'")
    out.append(("again", oct(os.stat(p).st_mode & 0o7777), open(p).read()))
    return out


def test_setid_removed_like_native(shared):
    comp, native = shared
    k = setid_scenario(comp)
    n = setid_scenario(native)
    assert k == n, f"kinko {k}\nnative {n}"
    # the scenario did change modes (it is not comparing no-ops)
    assert ("append", "0o777", "hello\nmore\n") in n


def test_new_files_written_without_capability_probe(vault, tmpbase):
    """Write-only handles use direct I/O: no security.capability probe before
    the first write to each new inode (and the data is all there)."""
    log = os.path.join(tmpbase, "trace.log")
    mnt, proc = debug_mount(vault, log)
    try:
        comp = vault.comp(mnt)
        for i in range(50):
            with open(os.path.join(comp, f"n{i}"), "wb") as f:
                f.write(bytes([i]) * (100 + 97 * i))
        for i in range(50):
            with open(os.path.join(comp, f"n{i}"), "rb") as f:
                assert f.read() == bytes([i]) * (100 + 97 * i)
    finally:
        text = stop(mnt, proc, log)
    assert opcodes(text, "CREATE") >= 50, "trace format changed?"
    assert opcodes(text, "GETXATTR") <= 2, f"{opcodes(text, 'GETXATTR')} GETXATTR for 50 new files"


def test_write_only_handle_and_cached_reader_agree(mounted):
    """A reader holding cached pages sees what a write-only handle (direct
    I/O) wrote, at once, in the same mount."""
    vault, comp = mounted
    p = os.path.join(comp, "shared.bin")
    old = os.urandom(3 * 4096 + 500)
    with open(p, "wb") as f:
        f.write(old)
    r = os.open(p, os.O_RDONLY)
    try:
        assert os.pread(r, len(old), 0) == old  # now in the page cache
        w = os.open(p, os.O_WRONLY)
        try:
            assert os.pwrite(w, b"N" * 100, 4096 + 10) == 100
            assert os.pwrite(w, b"E" * 20, len(old)) == 20  # grows the file
        finally:
            os.close(w)
        want = old[:4106] + b"N" * 100 + old[4206:] + b"E" * 20
        assert os.pread(r, len(want) + 10, 0) == want
        assert os.fstat(r).st_size == len(want)
    finally:
        os.close(r)
    with open(p, "rb") as f:
        assert f.read() == want


def test_ls_l_stops_asking_for_security_labels(vault, tmpbase):
    """ls -l asks each file for security.selinux unless the file system
    says the namespace is not supported: then it asks once per device."""
    log = os.path.join(tmpbase, "trace.log")
    mnt, proc = debug_mount(vault, log)
    try:
        d = os.path.join(vault.comp(mnt), "many")
        os.mkdir(d)
        for i in range(50):
            with open(os.path.join(d, "f%02d" % i), "w") as f:
                f.write("x")
        os.setxattr(os.path.join(d, "f00"), "user.tag", b"kept")
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")
        before = len(open(log, errors="replace").read())
        out = subprocess.run(["ls", "-l", d], capture_output=True, text=True, check=True)
        assert out.stdout.count("\n-rw") == 50, out.stdout
        listing = open(log, errors="replace").read()[before:]
        # the security namespace is "not supported", the user one works
        p = os.path.join(d, "f01")
        for call in (lambda: os.getxattr(p, "security.selinux"),
                     lambda: os.setxattr(p, "security.test", b"v"),
                     lambda: os.removexattr(p, "security.test")):
            with pytest.raises(OSError) as e:
                call()
            assert e.value.errno == errno.EOPNOTSUPP
        assert os.getxattr(os.path.join(d, "f00"), "user.tag") == b"kept"
    finally:
        stop(mnt, proc, log)
    assert opcodes(listing, "READDIRPLUS") + opcodes(listing, "LOOKUP") >= 1, "trace format changed?"
    # before: one GETXATTR per listed file
    assert opcodes(listing, "GETXATTR") <= 2, f"{opcodes(listing, 'GETXATTR')} GETXATTR for 50 files"
