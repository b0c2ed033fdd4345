"""One vault directory mounted twice at once, and a vault living on sshfs."""
import filecmp
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from kinko_util import Vault, fsck_clean, umount, wait_for_mount

TIMEOUT = 1.0  # attr/entry timeout of kinko mounts


def settle():
    time.sleep(TIMEOUT + 0.3)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, data, mode="wb"):
    with open(p, mode) as f:
        f.write(data)


@pytest.fixture
def two(vault):
    a = vault.comp(vault.mount())
    b = vault.comp(vault.mount())
    assert a != b
    yield vault, a, b
    vault.cleanup()


def test_new_file_visible_in_other_mount(two):
    v, a, b = two
    data = os.urandom(3 * 4096 + 11)
    write(os.path.join(a, "new.bin"), data)
    assert read(os.path.join(b, "new.bin")) == data
    os.mkdir(os.path.join(a, "dir"))
    write(os.path.join(a, "dir", "inner"), b"inner")
    assert os.listdir(os.path.join(b, "dir")) == ["inner"]
    assert read(os.path.join(b, "dir", "inner")) == b"inner"
    # and the other way round, into a directory the first mount created
    write(os.path.join(b, "dir", "from-b"), b"from b")
    assert read(os.path.join(a, "dir", "from-b")) == b"from b"


def test_overwrite_seen_after_timeout_and_reopen(two):
    v, a, b = two
    pa, pb = os.path.join(a, "f"), os.path.join(b, "f")
    write(pa, b"old content")
    assert read(pb) == b"old content"
    assert os.stat(pb).st_size == 11
    new = os.urandom(10000)
    write(pa, new)  # O_TRUNC rewrite: new file header
    settle()
    assert os.stat(pb).st_size == len(new)
    assert read(pb) == new


def test_append_seen_through_open_file(two):
    v, a, b = two
    pa, pb = os.path.join(a, "log"), os.path.join(b, "log")
    write(pa, b"line 1\n")
    with open(pb, "rb") as fb:
        assert fb.read() == b"line 1\n"
        write(pa, b"line 2\n" * 1000, "ab")
        settle()
        fb.seek(0)
        assert fb.read() == b"line 1\n" + b"line 2\n" * 1000


def test_rename_seen_in_other_mount(two):
    v, a, b = two
    write(os.path.join(a, "before"), b"renamed content")
    os.mkdir(os.path.join(a, "d1"))
    write(os.path.join(a, "d1", "x"), b"in d1")
    assert read(os.path.join(b, "before")) == b"renamed content"
    assert read(os.path.join(b, "d1", "x")) == b"in d1"
    os.rename(os.path.join(a, "before"), os.path.join(a, "after"))
    os.rename(os.path.join(a, "d1"), os.path.join(a, "d2"))
    settle()
    assert not os.path.exists(os.path.join(b, "before"))
    assert read(os.path.join(b, "after")) == b"renamed content"
    assert not os.path.exists(os.path.join(b, "d1"))
    assert read(os.path.join(b, "d2", "x")) == b"in d1"
    assert sorted(os.listdir(b)) == ["after", "d2"]
    # a file moved to another directory in one mount
    os.rename(os.path.join(a, "after"), os.path.join(a, "d2", "moved"))
    settle()
    assert read(os.path.join(b, "d2", "moved")) == b"renamed content"


def test_rewrite_of_file_renamed_in_other_mount(two):
    """B holds f open; A renames f to g; B then truncates and rewrites it (a new
    file header). The file must stay readable under its new name in both mounts."""
    v, a, b = two
    write(os.path.join(a, "f"), b"old" * 100)
    with open(os.path.join(b, "f"), "r+b") as fb:
        assert fb.read(6) == b"oldold"
        os.rename(os.path.join(a, "f"), os.path.join(a, "g"))
        settle()
        fb.truncate(0)
        fb.seek(0)
        fb.write(b"new from b")
    settle()
    for m in (a, b):
        try:
            got = read(os.path.join(m, "g"))
        except OSError as e:
            pytest.fail(f"{m}/g unreadable after the rewrite in the other mount: {e}")
        assert got == b"new from b"
    v.cleanup()
    p = v.fsck()
    assert p.returncode == 0, p.stdout


def test_unlink_seen_in_other_mount(two):
    v, a, b = two
    write(os.path.join(a, "gone"), b"x")
    assert os.path.exists(os.path.join(b, "gone"))
    os.unlink(os.path.join(a, "gone"))
    settle()
    with pytest.raises(FileNotFoundError):
        read(os.path.join(b, "gone"))


def test_failed_create_over_long_name_keeps_its_side_file(two):
    """Mount a still holds a negative entry for a name too long to encrypt in
    place when mount b makes a directory of that name. An O_CREAT open of the
    name in a then reaches a's daemon, which fails it with EISDIR; the side
    file holding the directory's full encrypted name must stay."""
    v, a, b = two
    name = "長い名前のフォルダ" * 9
    assert not os.path.exists(os.path.join(a, name))  # a caches "no such name"
    os.mkdir(os.path.join(b, name))
    write(os.path.join(b, name, "inside"), b"kept")
    with pytest.raises(IsADirectoryError):
        os.open(os.path.join(a, name), os.O_CREAT | os.O_WRONLY, 0o644)
    settle()
    for m in (a, b):
        assert os.listdir(m) == [name]
        assert read(os.path.join(m, name, "inside")) == b"kept"
    v.cleanup()
    fsck_clean(v)
    m = v.comp(v.mount())
    assert os.listdir(m) == [name]


def test_long_symlink_across_mounts(two):
    """A symlink whose target lives in a side file: made in one mount, read,
    hard-linked and removed in the other; a symlink(2) of the same name from
    a mount that still caches "no such name" fails with EEXIST and leaves
    the existing side file alone; the last link takes the side file."""
    v, a, b = two
    lt = os.path.join(v.data_dir(), "kinko.lt")
    t1, t2 = "/".join(["共有"] * 500), "/".join(["x" * 50] * 70)
    assert not os.path.lexists(os.path.join(a, "l"))  # a caches "no such name"
    os.symlink(t1, os.path.join(b, "l"))
    assert len(os.listdir(lt)) == 1
    with pytest.raises(FileExistsError):
        os.symlink(t2, os.path.join(a, "l"))
    assert len(os.listdir(lt)) == 1
    settle()
    assert os.readlink(os.path.join(a, "l")) == t1
    os.link(os.path.join(a, "l"), os.path.join(a, "l2"), follow_symlinks=False)
    os.unlink(os.path.join(b, "l"))
    settle()
    assert os.readlink(os.path.join(b, "l2")) == t1 and len(os.listdir(lt)) == 1
    os.unlink(os.path.join(b, "l2"))
    end = time.monotonic() + 10  # goes when b's kernel forgets the inode
    while os.listdir(lt) and time.monotonic() < end:
        time.sleep(0.02)
    assert os.listdir(lt) == []
    v.cleanup()
    fsck_clean(v)


def test_both_mounts_then_fsck_clean(two):
    v, a, b = two
    for i in range(20):
        write(os.path.join(a if i % 2 else b, f"f{i}"), os.urandom(i * 1000))
    settle()
    assert sorted(os.listdir(a)) == sorted(os.listdir(b)) == sorted(f"f{i}" for i in range(20))
    v.cleanup()
    p = v.fsck()
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------- sshfs

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshfs_dir(tmpbase):
    """A local directory exported over sshfs (root@localhost with a throwaway
    key and a private sshd). -> (remote_dir, sshfs mountpoint)"""
    for tool in ("sshfs", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed")
    sshd = "/usr/sbin/sshd"
    if not os.access(sshd, os.X_OK):
        pytest.skip("sshd not installed")
    d = os.path.join(tmpbase, "ssh")
    os.mkdir(d, 0o700)
    key, hostkey = os.path.join(d, "id"), os.path.join(d, "hostkey")
    for k in (key, hostkey):
        p = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k],
                           capture_output=True, text=True)
        if p.returncode:
            pytest.skip(f"ssh-keygen failed: {p.stderr}")
    shutil.copyfile(key + ".pub", os.path.join(d, "authorized_keys"))
    port = _free_port()
    cfg = os.path.join(d, "sshd_config")
    with open(cfg, "w") as f:
        f.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {hostkey}
PidFile none
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
""")
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", cfg], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    sshopts = ["-o", f"IdentityFile={key}", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
               "-o", "LogLevel=ERROR"]
    local = os.path.join(tmpbase, "sshfs-mnt")
    remote = os.path.join(tmpbase, "remote")
    os.mkdir(local)
    os.mkdir(remote)
    try:
        ok, last = False, ""
        for _ in range(50):
            if proc.poll() is not None:
                break
            p = subprocess.run(["ssh", "-p", str(port), *sshopts, "root@127.0.0.1", "true"],
                               capture_output=True, text=True, timeout=20)
            if p.returncode == 0:
                ok = True
                break
            last = p.stderr
            time.sleep(0.1)
        if not ok:
            err = proc.stderr.read().decode() if proc.poll() is not None else last
            pytest.skip(f"cannot ssh to root@localhost: {err.strip()[-300:]}")
        p = subprocess.run(["sshfs", "-p", str(port), *sshopts, f"root@127.0.0.1:{remote}", local],
                           capture_output=True, text=True, timeout=30)
        if p.returncode:
            pytest.skip(f"sshfs mount failed: {p.stderr.strip()}")
        wait_for_mount(local)
        yield remote, local
    finally:
        umount(local)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_vault_on_sshfs(sshfs_dir):
    remote, local = sshfs_dir
    base = os.path.join(local, "base")
    os.mkdir(base)
    v = Vault(base)  # init over sshfs
    assert os.path.exists(os.path.join(remote, "base", "vault", "kinko.vault"))
    src = os.path.join(os.path.dirname(local), "src")
    os.mkdir(src)
    secret = b"plaintext-marker-" + os.urandom(8).hex().encode()
    with open(os.path.join(src, "big.bin"), "wb") as f:
        f.write(os.urandom(300 * 1024) + secret)
    with open(os.path.join(src, "small.txt"), "wb") as f:
        f.write(secret + b"\n")
    os.mkdir(os.path.join(src, "sub"))
    with open(os.path.join(src, "sub", "x"), "wb") as f:
        f.write(b"x" * 5000)
    mntdir = os.path.join(os.path.dirname(local), "kmnt")  # the mountpoint itself is local
    mnt = v.mount(mntdir)
    try:
        dst = os.path.join(v.comp(mnt), "copy")
        shutil.copytree(src, dst)
        cmp = filecmp.dircmp(src, dst)
        assert not cmp.diff_files and not cmp.left_only and not cmp.right_only, cmp.report()
        assert filecmp.cmp(os.path.join(src, "sub", "x"), os.path.join(dst, "sub", "x"), shallow=False)
        assert filecmp.cmp(os.path.join(src, "big.bin"), os.path.join(dst, "big.bin"), shallow=False)
        os.rename(os.path.join(dst, "small.txt"), os.path.join(dst, "sub", "moved.txt"))
        assert read(os.path.join(dst, "sub", "moved.txt")) == secret + b"\n"
        os.unlink(os.path.join(dst, "sub", "x"))
        # a long symlink target's side file goes with the last link here too
        (cdir,) = os.listdir(os.path.join(remote, "base", "vault", "data"))
        lt = os.path.join(remote, "base", "vault", "data", cdir, "kinko.lt")
        target = "/".join(["sshfs"] * 600)
        os.symlink(target, os.path.join(dst, "ll"))
        os.link(os.path.join(dst, "ll"), os.path.join(dst, "sub", "ll2"), follow_symlinks=False)
        assert os.readlink(os.path.join(dst, "sub", "ll2")) == target and len(os.listdir(lt)) == 1
        os.unlink(os.path.join(dst, "ll"))
        assert os.readlink(os.path.join(dst, "sub", "ll2")) == target and len(os.listdir(lt)) == 1
        os.unlink(os.path.join(dst, "sub", "ll2"))
        # sshfs reports no link counts (1 for both names, then ESTALE), so
        # the side file stays: fsck notes it as an orphan, the vault is clean
        left = os.listdir(lt)
        assert len(left) <= 1
    finally:
        v.cleanup()
    # remount and compare again, then fsck
    mnt = v.mount(mntdir)
    try:
        dst = os.path.join(v.comp(mnt), "copy")
        assert filecmp.cmp(os.path.join(src, "big.bin"), os.path.join(dst, "big.bin"), shallow=False)
        assert sorted(os.listdir(os.path.join(dst, "sub"))) == ["moved.txt"]
    finally:
        v.cleanup()
    p = v.fsck(json_out=True)
    assert p.returncode == 0, p.stdout + p.stderr
    notes = json.loads(p.stdout)["notes"]
    assert [n["note"].split(":")[0] for n in notes] == ["orphan long symlink target kinko.lt/" + x
                                                        for x in left], notes
    # only ciphertext reached the server
    for d, _, files in os.walk(os.path.join(remote, "base", "vault")):
        for n in files:
            assert secret not in read(os.path.join(d, n)), os.path.join(d, n)
