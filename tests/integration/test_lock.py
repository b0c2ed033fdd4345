"""Issue 4 through real mounts: the control socket (kinko status / lock / unlock),
the lock states (locked, anomaly-locked), the idle lock, the compartment keys
leaving the daemon's memory on a lock, the anomaly windows (files, denials,
hours) with the alert hook, the fail-closed audit log, and the control socket
refusing other users.

Every test runs with its own KINKO_RUN_DIR (a 0700 temp directory) in the
environment of kinko mount and of kinko status/lock/unlock, so the control
sockets of parallel tests and other workers never collide."""
import errno
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from kinko_util import (Vault, daemon_pid, enrol, errno_of, kinko, ok, umount, wait_for_mount,
                        write_pw)

STAFF_PW = "Mq7#Wv2-Lp9x"     # bob (staff)
AUDIT_PW = "Zr4$Kt8-Qn3w"     # audrey (auditor)
WRONG_PW = "Wr0ng#Pass-9xy"
NFILES = 500                  # small files under main/many for the anomaly burst


# ---------------------------------------------------------------- helpers

def admin(v, *args):
    return kinko(*args, "--vault", v.path, "--as", "alice", "--password-file", v.pw["alice"])


def policy(v, key, value):
    ok(admin(v, "policy", "set", key, str(value)))


def mount_as(v, user):
    """kinko mount as `user` (background daemon); returns the mountpoint."""
    mnt = tempfile.mkdtemp(prefix=f"mnt-{user}-", dir=v.base)
    ok(kinko("mount", v.path, mnt, "--user", user, "--password-file", v.pw[user]))
    wait_for_mount(mnt)
    v.mounts.append(mnt)
    return mnt


def status(mnt=None):
    """kinko status [MNT] --json -> the one status object of our mount."""
    p = ok(kinko("status", *([mnt] if mnt else []), "--json"))
    lst = json.loads(p.stdout)
    assert isinstance(lst, list) and len(lst) == 1, p.stdout
    return lst[0]


def state(mnt):
    return status(mnt)["state"]


def wait_state(mnt, want, timeout):
    t0 = time.time()
    st = None
    while time.time() - t0 < timeout:
        st = status(mnt)
        if st["state"] == want:
            return st, time.time() - t0
        time.sleep(0.1)
    raise AssertionError(f"state not {want!r} after {timeout}s: {st}")


def unlock(mnt, pwfile, as_admin=None):
    args = ["unlock", mnt, "--password-file", pwfile]
    if as_admin:
        args += ["--as", as_admin]
    return kinko(*args)


err = errno_of


def audit_show(v, *filters):
    p = kinko("audit", "show", "--vault", v.path, "--as", "audrey", "--password-file",
              v.pw["audrey"], "--json", *filters)
    assert p.returncode == 0, f"audit show rc={p.returncode}\n{p.stderr}"
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def all_access_errnos(comp, name):
    """errno of read, write, create, ls and stat inside a compartment (0 = worked)."""
    f = os.path.join(comp, name)
    return {
        "read": err(read_file, f),
        "write": err(lambda: open(f, "ab").close()),
        "create": err(lambda: open(os.path.join(comp, "new-while-locked"), "wb").close()),
        "ls": err(os.listdir, comp),
        "stat": err(os.stat, f),
    }


def sanitised_host():
    h = socket.gethostname() or "localhost"
    out = []
    for c in h[:64]:
        good = c.isascii() and (c.isalnum() or c in "-_" or (c == "." and out))
        out.append(c if good else "_")
    return "".join(out)


# ---------------------------------------------------------------- fixtures

def _new_vault(base):
    v = Vault(base)                          # alice: admin, compartment main
    v.pw = {"alice": v.pwfile}
    ok(admin(v, "compartment", "create", "arch", "--class", "shagaihi"))
    v.pw["bob"] = enrol(v, "bob", "staff", STAFF_PW)
    v.pw["audrey"] = enrol(v, "audrey", "auditor", AUDIT_PW)
    ok(admin(v, "grant", "bob", "main"))
    ok(admin(v, "grant", "bob", "arch", "--read-only"))
    return v


@pytest.fixture(scope="module")
def template():
    """Built once (Argon2 is slow): alice (admin; main, arch), bob (staff: main rw,
    arch read-only), audrey (auditor). main/doc.txt, main/many/f000..f499 (bob),
    arch/doc.txt (alice). Each test gets a private copy."""
    base = tempfile.mkdtemp(prefix="kinko-lock-tpl-")
    run = tempfile.mkdtemp(prefix="kinko-run-")
    os.chmod(run, 0o700)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINKO_STATE_DIR", os.path.join(base, "state"))
        mp.setenv("KINKO_RUN_DIR", run)
        mp.delenv("KINKO_TEST_NOW", raising=False)
        mp.delenv("KINKO_VAULT", raising=False)
        v = _new_vault(base)
        try:
            mb = mount_as(v, "bob")
            c = os.path.join(mb, "main")
            with open(os.path.join(c, "doc.txt"), "wb") as f:
                f.write(b"main document\n" * 100)
            os.mkdir(os.path.join(c, "many"))
            for i in range(NFILES):
                with open(os.path.join(c, "many", f"f{i:03d}"), "wb") as f:
                    f.write(b"file %d\n" % i)
            umount(mb)
            ma = mount_as(v, "alice")
            with open(os.path.join(ma, "arch", "doc.txt"), "wb") as f:
                f.write(b"archived, read-only for bob\n")
            umount(ma)
        finally:
            v.cleanup()
    yield base
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def run_dir(tmpbase, monkeypatch):
    d = os.path.join(tmpbase, "run")
    os.mkdir(d, 0o700)
    os.chmod(d, 0o700)
    monkeypatch.setenv("KINKO_RUN_DIR", d)
    return d


@pytest.fixture
def v(tmpbase, template, run_dir):
    base = os.path.join(tmpbase, "org")
    shutil.copytree(template, base, ignore=shutil.ignore_patterns("state"))
    v = Vault.__new__(Vault)
    v.base, v.path, v.user, v.password = base, os.path.join(base, "vault"), "bob", STAFF_PW
    v.compartment, v.mounts = "main", []
    v.pw = {u: os.path.join(base, f"pw-{u}") for u in ("alice", "bob", "audrey")}
    v.pwfile = v.pw["bob"]
    yield v
    v.cleanup()


# ---------------------------------------------------------------- 1. status, lock, unlock

def test_status_lock_unlock(v, run_dir):
    mnt = mount_as(v, "bob")
    comp = os.path.join(mnt, "main")
    doc = os.path.join(comp, "doc.txt")
    expected = b"main document\n" * 100
    assert read_file(doc) == expected

    st = status(mnt)
    assert st["user"] == "bob"
    assert os.path.realpath(st["mountpoint"]) == os.path.realpath(mnt)
    assert os.path.realpath(st["vault"]) == os.path.realpath(v.path)
    assert st["state"] == "unlocked" and not st["reason"]
    assert st["pid"] == daemon_pid(mnt)
    assert sorted((c["name"], c["read_only"]) for c in st["compartments"]) == \
        [("arch", True), ("main", False)]
    assert st["idle_lock_s"] == 300
    assert 295 <= st["idle_left_s"] <= 300
    assert st["audit"]["ok"] is True and st["audit"]["status"] == "ok"
    # without MNT: the only mount with a socket in our run dir
    assert status(None)["mountpoint"] == st["mountpoint"]
    # the human form
    p = ok(kinko("status", mnt))
    assert "bob" in p.stdout and "unlocked" in p.stdout and "arch (read-only)" in p.stdout

    # a mapping made before the lock: touching it afterwards must not show plaintext
    mapper = subprocess.Popen([sys.executable, "-c", MAPPER, doc], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    # a file descriptor opened (and read: page cache filled) before the lock
    fd = os.open(doc, os.O_RDONLY)
    wfd = os.open(os.path.join(comp, "w.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        assert mapper.stdout.readline() == "main document\n"
        assert os.pread(fd, 4096, 0) == expected[:4096]
        os.write(wfd, b"before the lock\n")

        ok(kinko("lock", mnt))
        st = status(mnt)
        assert st["state"] == "locked" and st["reason"], st
        assert st["idle_left_s"] == 0
        errs = all_access_errnos(comp, "doc.txt")
        assert errs == dict.fromkeys(errs, errno.EACCES), errs
        assert err(os.pread, fd, 4096, 0) == errno.EACCES, "plaintext served after the lock"
        assert err(os.write, wfd, b"while locked\n") == errno.EACCES
        out, _ = mapper.communicate("\n", timeout=20)
        assert "main document" not in out and mapper.returncode != 0, (out, mapper.returncode)

        # a wrong password is refused and the mount stays locked
        wrong = write_pw(v.base, "pw-wrong", WRONG_PW)
        p = unlock(mnt, wrong)
        assert p.returncode == 6, (p.returncode, p.stderr)
        assert state(mnt) == "locked"
        assert err(read_file, doc) == errno.EACCES

        ok(unlock(mnt, v.pw["bob"]))
        st = status(mnt)
        assert st["state"] == "unlocked" and st["idle_left_s"] >= 295
        assert read_file(doc) == expected
        assert os.pread(fd, 4096, 0) == expected[:4096]
        os.write(wfd, b"after the unlock\n")
    finally:
        os.close(fd)
        os.close(wfd)
        if mapper.poll() is None:
            mapper.kill()
            mapper.wait()
    assert read_file(os.path.join(comp, "w.txt")) == b"before the lock\nafter the unlock\n"
    assert not os.path.exists(os.path.join(comp, "new-while-locked"))
    assert sorted(os.listdir(comp)) == ["doc.txt", "many", "w.txt"]

    # the audit log has the lock, the refused and the accepted unlock
    umount(mnt)
    ent = audit_show(v, "--user", "bob")
    locks = [e for e in ent if e["action"] == "lock"]
    assert len(locks) == 1 and "kinko lock" in json.dumps(locks[0]), locks
    unl = [(e["result"], e.get("reason")) for e in ent if e["action"] == "unlock"]
    assert ("denied", "password") in unl and ("ok", None) in unl, unl
    denied = [e for e in ent if e["result"] == "denied" and e.get("reason") == "locked"]
    assert len(denied) >= 5, [(e["action"], e.get("path")) for e in denied]


MAPPER = r"""
import mmap, sys
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
print(m[:14].decode(), flush=True)
sys.stdin.readline()
print(m[:14].decode(), flush=True)   # after the lock: SIGBUS expected
"""


# ---------------------------------------------------------------- 2. idle lock

def test_idle_lock(v):
    policy(v, "lock.idle_seconds", 2)
    mnt = mount_as(v, "bob")
    doc = os.path.join(mnt, "main", "doc.txt")
    assert status(mnt)["idle_lock_s"] == 2

    # a process that keeps reading keeps the mount unlocked
    t0 = time.time()
    while time.time() - t0 < 5:
        with open(doc, "rb") as f:
            assert f.read(100)
        st = status(mnt)
        assert st["state"] == "unlocked", f"locked while in use after {time.time() - t0:.1f}s: {st}"
        time.sleep(0.5)

    # then idle: locked about 2 s after the last access
    with open(doc, "rb") as f:
        assert f.read(100)
    st, waited = wait_state(mnt, "locked", 6)
    assert waited >= 1.5, f"idle lock after only {waited:.1f}s"
    assert "idle" in st["reason"], st
    assert err(read_file, doc) == errno.EACCES
    # kinko unlock without MNT: the only mount of this user
    ok(kinko("unlock", "--password-file", v.pw["bob"]))
    assert state(mnt) == "unlocked"
    assert read_file(doc) == b"main document\n" * 100


# ---------------------------------------------------------------- 3. keys leave the daemon's memory

def derived_keys(v, user):
    p = ok(kinko("test-keys", v.path, "--user", user, "--password-file", v.pw[user]))
    keys = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        comp, epoch = parts[0], parts[1]
        kv = dict(x.split("=", 1) for x in parts[2:])
        content, names, meta = (bytes.fromhex(kv[k]) for k in ("content", "names", "meta"))
        assert len(content) == 32 and len(names) == 64 and len(meta) >= 32, line
        keys[f"{comp}/{epoch}/content"] = content
        keys[f"{comp}/{epoch}/names[0:32]"] = names[:32]
        keys[f"{comp}/{epoch}/names[32:64]"] = names[32:]
        keys[f"{comp}/{epoch}/meta"] = meta
    assert any("main/" in k for k in keys) and any("arch/" in k for k in keys), p.stdout
    return keys


def scan_memory(pid, needles):
    """names of the needles found in the process's writable or anonymous memory"""
    found = set()
    regions = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            perms = parts[1]
            name = parts[5].strip() if len(parts) > 5 else ""
            if name in ("[vvar]", "[vsyscall]", "[vdso]", "[vvar_vclock]"):
                continue
            # writable memory and readable anonymous memory (PROT_NONE regions are
            # guard pages or reserved malloc arena space: no data)
            if "w" in perms or ("r" in perms and (name == "" or name.startswith("["))):
                regions.append((lo, hi))
    assert regions
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for lo, hi in regions:
            # ASan's shadow memory is terabytes of reserved, writable space: not
            # where the daemon keeps data
            if hi - lo > (4 << 30):
                continue
            step = 64 << 20
            for off in range(lo, hi, step):
                try:   # chunks overlap by 63 bytes so no needle is cut in two
                    data = os.pread(fd, min(step + 63, hi - off), off)
                except OSError:
                    break
                for k, n in needles.items():
                    if k not in found and n in data:
                        found.add(k)
    finally:
        os.close(fd)
    return found


def test_lock_wipes_keys_from_daemon_memory(v):
    keys = derived_keys(v, "bob")
    mnt = mount_as(v, "bob")
    pid = daemon_pid(mnt)
    assert pid and status(mnt)["pid"] == pid
    comp = os.path.join(mnt, "main")
    for i in range(5):
        with open(os.path.join(comp, f"n{i}.txt"), "wb") as f:
            f.write(os.urandom(9000))
        read_file(os.path.join(comp, f"n{i}.txt"))
    read_file(os.path.join(comp, "doc.txt"))
    os.listdir(comp)
    read_file(os.path.join(mnt, "arch", "doc.txt"))
    os.setxattr(os.path.join(comp, "doc.txt"), "user.k", b"v")

    before = scan_memory(pid, keys)
    assert before, "no key found in the unlocked daemon: the memory scan cannot work"

    ok(kinko("lock", mnt))
    assert state(mnt) == "locked"
    after = scan_memory(pid, keys)

    ok(unlock(mnt, v.pw["bob"]))
    assert read_file(os.path.join(comp, "doc.txt")) == b"main document\n" * 100
    assert os.listdir(os.path.join(mnt, "arch")) == ["doc.txt"]
    with open(os.path.join(comp, "n0.txt"), "ab") as f:
        f.write(b"more")
    assert scan_memory(pid, keys), "keys not back after the unlock (scan sanity)"

    # a second lock, after an unlock through the control socket, wipes them as well
    ok(kinko("lock", mnt))
    assert state(mnt) == "locked"
    after2 = scan_memory(pid, keys)
    ok(unlock(mnt, v.pw["bob"]))
    assert len(read_file(os.path.join(comp, "n0.txt"))) == 9004
    assert not after and not after2, \
        f"keys still in the daemon's memory after kinko lock: first lock {sorted(after)}, " \
        f"second lock {sorted(after2)} (before the lock: {sorted(before)})"


# ---------------------------------------------------------------- 4. anomalies

def test_anomaly_files_burst(v):
    out = os.path.join(v.base, "alert.json")
    hook = os.path.join(v.base, "hook.sh")
    with open(hook, "w") as f:
        f.write(f"#!/bin/sh\ncat > {out}.tmp && mv {out}.tmp {out}\n")
    os.chmod(hook, 0o755)
    policy(v, "anomaly.files_limit", 100)
    policy(v, "alert_command", hook)

    mnt = mount_as(v, "bob")
    many = os.path.join(mnt, "main", "many")
    names = sorted(os.listdir(many))
    assert len(names) == NFILES
    # 50 files: below the limit
    for n in names[:50]:
        read_file(os.path.join(many, n))
    time.sleep(0.3)
    assert state(mnt) == "unlocked"
    assert not os.path.exists(out)
    # the kernel forgetting the inodes (memory pressure) must not make the same
    # 50 files count twice
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")

    got, errs = 0, {}
    for n in names:
        e = err(read_file, os.path.join(many, n))
        if e == 0:
            got += 1
        else:
            errs[e] = errs.get(e, 0) + 1
    assert 100 <= got <= 102, f"{got} files read with a limit of 100"
    assert set(errs) == {errno.EACCES}, errs

    st, _ = wait_state(mnt, "anomaly-locked", 3)
    assert "distinct files" in st["reason"], st
    assert err(read_file, os.path.join(mnt, "main", "doc.txt")) == errno.EACCES

    # the hook got the alert JSON on stdin
    t0 = time.time()
    while not os.path.exists(out) and time.time() - t0 < 5:
        time.sleep(0.1)
    assert os.path.exists(out), "alert_command did not run"
    alert = json.loads(read_file(out))
    assert alert["event"] == "anomaly-lock" and alert["user"] == "bob", alert
    assert "distinct files" in alert["reason"], alert

    # the audit log has it (entries reach the disk ~0.2 s after the event)
    time.sleep(0.5)
    ent = audit_show(v, "--action", "anomaly-lock")
    assert len(ent) == 1, ent
    assert ent[0]["user"] == "bob" and ent[0]["session"] == "mount"
    assert "distinct files" in json.dumps(ent[0]), ent[0]

    # the user alone cannot unlock
    p = unlock(mnt, v.pw["bob"])
    assert p.returncode != 0 and "administrator" in p.stderr, (p.returncode, p.stderr)
    assert state(mnt) == "anomaly-locked"
    # nor can a non-administrator clear it
    p = unlock(mnt, v.pw["audrey"], as_admin="audrey")
    assert p.returncode != 0, p.stdout
    assert state(mnt) == "anomaly-locked"
    # the administrator clears it to "locked"; then the user's password
    ok(unlock(mnt, v.pw["alice"], as_admin="alice"))
    assert state(mnt) == "locked"
    assert err(read_file, os.path.join(mnt, "main", "doc.txt")) == errno.EACCES
    ok(unlock(mnt, v.pw["bob"]))
    assert state(mnt) == "unlocked"
    assert read_file(os.path.join(many, names[-1])) == b"file %d\n" % (NFILES - 1)
    assert read_file(os.path.join(mnt, "main", "doc.txt")) == b"main document\n" * 100


def test_normal_workload_no_anomaly(v):
    mnt = mount_as(v, "bob")
    many = os.path.join(mnt, "main", "many")
    for i in range(50):
        assert read_file(os.path.join(many, f"f{i:03d}")) == b"file %d\n" % i
    for i in range(10):
        with open(os.path.join(mnt, "main", f"out{i}"), "wb") as f:
            f.write(b"x" * 5000)
    assert read_file(os.path.join(mnt, "arch", "doc.txt"))
    time.sleep(0.5)
    st = status(mnt)
    assert st["state"] == "unlocked" and st["audit"]["ok"], st
    assert audit_show(v, "--action", "anomaly-lock") == []
    assert audit_show(v, "--result", "denied") == []


def test_anomaly_denied_writes(v):
    policy(v, "anomaly.denials_limit", 5)
    mnt = mount_as(v, "bob")
    doc = os.path.join(mnt, "arch", "doc.txt")
    assert read_file(doc) == b"archived, read-only for bob\n"
    errs = [err(lambda: os.close(os.open(doc, os.O_WRONLY))) for _ in range(5)]
    assert errs == [errno.EROFS] * 5
    time.sleep(0.4)
    assert state(mnt) == "unlocked", "5 denials (= the limit) locked the mount"
    errs = [err(lambda: os.close(os.open(doc, os.O_WRONLY))) for _ in range(3)]
    assert errs[0] == errno.EROFS and errs[-1] == errno.EACCES, errs
    st, _ = wait_state(mnt, "anomaly-locked", 3)
    time.sleep(0.4)                       # the timer thread finishes the anomaly lock
    st = status(mnt)
    assert st["state"] == "anomaly-locked" and "denied accesses" in st["reason"], st
    assert err(read_file, doc) == errno.EACCES
    assert err(read_file, os.path.join(mnt, "main", "doc.txt")) == errno.EACCES
    # a user's kinko lock on top neither downgrades the state nor hides the anomaly
    ok(kinko("lock", mnt))
    st = status(mnt)
    assert st["state"] == "anomaly-locked", st
    assert "denied accesses" in st["reason"], f"anomaly reason lost after kinko lock: {st}"
    p = unlock(mnt, v.pw["bob"])
    assert p.returncode != 0 and "denied accesses" in p.stderr, (p.returncode, p.stderr)


def test_anomaly_outside_hours(v):
    lt = time.localtime()
    start = (lt.tm_hour + 2) % 24
    window = f"{start:02d}:00-{(start + 1) % 24:02d}:00"     # excludes the current hour
    policy(v, "anomaly.hours", window)
    mnt = mount_as(v, "bob")
    assert err(os.listdir, os.path.join(mnt, "main")) == errno.EACCES
    st, _ = wait_state(mnt, "anomaly-locked", 3)
    assert "hours" in st["reason"], st
    assert err(read_file, os.path.join(mnt, "main", "doc.txt")) == errno.EACCES
    p = unlock(mnt, v.pw["bob"])
    assert p.returncode != 0
    assert state(mnt) == "anomaly-locked"


# ---------------------------------------------------------------- 6. fail closed

def _ro_bind(d):
    subprocess.run(["mount", "--bind", d, d], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", d], check=True)


def _ro_unbind(d):
    for _ in range(50):
        if subprocess.run(["umount", d], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", d], capture_output=True)


def test_audit_fail_closed(v):
    mnt = mount_as(v, "bob")
    comp = os.path.join(mnt, "main")
    with open(os.path.join(comp, "before.txt"), "wb") as f:
        f.write(b"written before the failure\n")
    assert read_file(os.path.join(comp, "doc.txt"))
    time.sleep(0.4)

    hosts = os.listdir(os.path.join(v.path, "audit"))
    host = sanitised_host()
    assert host in hosts, (host, hosts)
    hdir = os.path.join(v.path, "audit", host)
    target = os.path.join(comp, "many", "f007")
    _ro_bind(hdir)
    try:
        t0 = time.time()
        first = None
        while time.time() - t0 < 1.5:
            if err(read_file, target) == errno.EACCES:
                first = time.time() - t0
                break
            time.sleep(0.05)
        assert first is not None, "access still allowed 1.5 s after the audit log became unwritable"
        st = status(mnt)
        assert st["audit"]["ok"] is False, st
        assert "cannot be written" in st["audit"]["status"] and \
            "Read-only file system" in st["audit"]["status"], st
        errs = all_access_errnos(comp, "before.txt")
        assert errs == dict.fromkeys(errs, errno.EACCES), errs
        time.sleep(0.6)
        assert status(mnt)["audit"]["ok"] is False
    finally:
        _ro_unbind(hdir)

    t0 = time.time()
    back = None
    while time.time() - t0 < 2.5:
        if err(read_file, target) == 0:
            back = time.time() - t0
            break
        time.sleep(0.1)
    assert back is not None, f"access not restored 2.5 s after the audit log became writable: {status(mnt)}"
    st = status(mnt)
    assert st["audit"]["ok"] is True and st["audit"]["status"] == "ok", st
    with open(os.path.join(comp, "after.txt"), "wb") as f:
        f.write(b"after\n")
    umount(mnt)
    v.mounts.clear()

    p = kinko("audit", "verify", "--vault", v.path, "--as", "audrey", "--password-file",
              v.pw["audrey"], "--json")
    assert p.returncode == 0, f"verify rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    assert json.loads(p.stdout)["problems"] == 0, p.stdout
    ent = [e for e in audit_show(v, "--user", "bob") if e["session"] == "mount"]
    mine = [e for e in ent if e["segment"] == ent[-1]["segment"]]
    acts = [(e["action"], e.get("path"), e["result"], e.get("reason")) for e in mine]
    assert ("create", "main/before.txt", "ok", None) in acts, acts
    assert ("open", "main/doc.txt", "ok", None) in acts, acts
    denied = [e for e in mine if e["result"] == "denied" and e.get("reason") == "audit-failed"]
    assert len(denied) >= 5, acts
    assert any(e.get("path") == "main/many/f007" for e in denied), acts
    assert ("create", "main/after.txt", "ok", None) in acts, acts
    seqs = [e["seq"] for e in mine]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    # in order: before, the denials, after
    order = [e["seq"] for e in mine if e.get("path") == "main/before.txt"][:1] + \
        [denied[0]["seq"]] + [e["seq"] for e in mine if e.get("path") == "main/after.txt"][:1]
    assert order == sorted(order), order


# ---------------------------------------------------------------- 7. the control socket

PEER = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(8)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect": e.errno})); sys.exit(0)
res = {}
try:
    s.sendall(sys.argv[2].encode() + b"\n")
    s.shutdown(socket.SHUT_WR)
except OSError as e:    # the daemon already closed the connection
    res["send"] = e.errno
data = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
except socket.timeout:
    res["recv"] = "timeout"
except OSError as e:
    res["recv"] = e.errno
res["reply"] = data.decode()
print(json.dumps(res))
"""


def peer(sock, req, uid):
    kw = {"user": uid, "group": uid, "extra_groups": []} if uid else {}
    p = subprocess.run([sys.executable, "-c", PEER, sock, req], capture_output=True, text=True,
                       timeout=20, **kw)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_control_socket_refuses_other_users(v, run_dir, tmpbase):
    mnt = mount_as(v, "bob")
    socks = glob.glob(os.path.join(run_dir, "*.sock"))
    assert len(socks) == 1, os.listdir(run_dir)
    sock = socks[0]
    assert os.stat(run_dir).st_mode & 0o777 == 0o700
    assert os.stat(sock).st_mode & 0o777 == 0o600

    # root (the mounting user) gets answers
    r = peer(sock, '{"op":"status"}', 0)
    assert json.loads(r["reply"])["state"] == "unlocked", r

    # nobody cannot even reach the socket through the modes (the directories
    # made traversable for this check only)
    base_mode = os.stat(tmpbase).st_mode & 0o777
    os.chmod(tmpbase, 0o711)
    os.chmod(run_dir, 0o711)
    try:
        r = peer(sock, '{"op":"lock"}', 65534)
        assert r.get("connect") == errno.EACCES, r
        # with the modes opened (for the test only) the daemon's peer check refuses
        os.chmod(sock, 0o666)
        for req in ('{"op":"status"}', '{"op":"lock"}',
                    json.dumps({"op": "unlock", "password": STAFF_PW})):
            r = peer(sock, req, 65534)
            assert "connect" not in r, r
            assert r.get("reply", "") == "", f"uid 65534 got an answer to {req}: {r}"
            assert r.get("recv") in (None, errno.ECONNRESET), f"connection not closed: {r}"
    finally:
        os.chmod(sock, 0o600)
        os.chmod(run_dir, 0o700)
        os.chmod(tmpbase, base_mode)
    st = status(mnt)
    assert st["state"] == "unlocked", st
    assert read_file(os.path.join(mnt, "main", "doc.txt")) == b"main document\n" * 100
    # and the real lock request over the same socket works for root
    r = peer(sock, '{"op":"lock"}', 0)
    assert json.loads(r["reply"])["state"] == "locked", r
    assert err(read_file, os.path.join(mnt, "main", "doc.txt")) == errno.EACCES


# ---------------------------------------------------------------- 8. fixes found in review

def test_anomaly_lock_survives_remount(v):
    """Unmounting must not end an anomaly lock: the next mount on this workstation
    is refused until an administrator clears it (kinko user enable)."""
    lt = time.localtime()
    start = (lt.tm_hour + 2) % 24
    policy(v, "anomaly.hours", f"{start:02d}:00-{(start + 1) % 24:02d}:00")
    mnt = mount_as(v, "bob")
    assert err(os.listdir, os.path.join(mnt, "main")) == errno.EACCES
    wait_state(mnt, "anomaly-locked", 3)
    time.sleep(0.5)              # the timer thread records the lock
    umount(mnt)
    v.mounts.remove(mnt)
    policy(v, "anomaly.hours", "any")
    mnt2 = tempfile.mkdtemp(prefix="mnt-again-", dir=v.base)
    p = kinko("mount", v.path, mnt2, "--user", "bob", "--password-file", v.pw["bob"])
    assert p.returncode == 7, (p.returncode, p.stderr)
    assert "anomaly" in p.stderr and "kinko user enable bob" in p.stderr, p.stderr
    assert not os.path.ismount(mnt2)
    ok(admin(v, "user", "enable", "bob"))
    ok(kinko("mount", v.path, mnt2, "--user", "bob", "--password-file", v.pw["bob"]))
    wait_for_mount(mnt2)
    v.mounts.append(mnt2)
    assert read_file(os.path.join(mnt2, "main", "doc.txt")).startswith(b"main document")


def test_admin_clear_refused_without_anomaly(v):
    mnt = mount_as(v, "bob")
    ok(kinko("lock", mnt))
    p = unlock(mnt, v.pw["alice"], as_admin="alice")
    assert p.returncode == 2 and "not locked after an anomaly" in p.stderr, (p.returncode, p.stderr)
    assert state(mnt) == "locked"
    ok(unlock(mnt, v.pw["bob"]))
    assert state(mnt) == "unlocked"


def test_revoke_while_locked_closes_the_compartment(v):
    """A grant revoked while the mount is locked: after the unlock the compartment is
    gone from the mount and refused (EACCES), never read with wiped keys (EIO)."""
    mnt = mount_as(v, "bob")
    arch = os.path.join(mnt, "arch")
    assert read_file(os.path.join(arch, "doc.txt")).startswith(b"archived")
    fd = os.open(os.path.join(arch, "doc.txt"), os.O_RDONLY)
    try:
        ok(kinko("lock", mnt))
        ok(admin(v, "revoke", "bob", "arch"))
        ok(unlock(mnt, v.pw["bob"]))
        assert sorted(os.listdir(mnt)) == ["main"]
        assert err(os.pread, fd, 100, 0) == errno.EACCES
        assert err(os.stat, arch) in (errno.ENOENT, errno.EACCES)
        assert read_file(os.path.join(mnt, "main", "doc.txt")).startswith(b"main document")
        assert status(mnt)["integrity_errors"] == 0
    finally:
        os.close(fd)


def test_status_skips_mounts_of_other_run_dirs(v, tmpbase, monkeypatch):
    """kinko status without MNT lists only the mounts whose control socket it can
    reach; a kinko mount served from another run directory (another user) is
    skipped cleanly (under ASan: no leak of the skipped request)."""
    mine = mount_as(v, "bob")
    other_run = os.path.join(tmpbase, "run-other")
    os.mkdir(other_run, 0o700)
    monkeypatch.setenv("KINKO_RUN_DIR", other_run)
    theirs = mount_as(v, "alice")
    monkeypatch.setenv("KINKO_RUN_DIR", os.path.join(tmpbase, "run"))
    st = status()                       # exactly one: ours
    assert st["mountpoint"] == os.path.realpath(mine) and st["user"] == "bob", st
    assert os.path.ismount(theirs)
