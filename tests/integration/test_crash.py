"""Crash safety: kill -9 of the daemon under concurrent writers, then lazy
unmount and remount. Everything complete before the kill must read back;
fsck may name only what was in flight; vault metadata must stay usable.
Clean shutdown on SIGTERM/SIGINT/SIGHUP."""
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from kinko_util import Vault, daemon_pid, is_mounted, kinko


def pattern(seed, n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += f"{seed}:{i:08d}|".encode()
        i += 1
    return bytes(out[:n])


def small_size(i):
    return (i * 1543) % 9000  # 0 .. 8999: empty, one block, two blocks


# Writers run as separate processes; each logs a unit of work to its log file
# (outside the mount) only after the unit is complete (file closed, dir filled).
WRITER = r'''
import os, sys
{funcs}
kind, comp, log = sys.argv[1:4]
lf = open(log, "a", buffering=1)
try:
    if kind == "stream":
        with open(os.path.join(comp, "stream.bin"), "wb", buffering=0) as f:
            i = 0
            while True:
                f.write(pattern("s%d" % i, 10000))
                i += 1
                if i == 1:
                    lf.write("0\n")
    elif kind == "small":
        os.mkdir(os.path.join(comp, "small"))
        i = 0
        while True:
            with open(os.path.join(comp, "small", "f%05d" % i), "wb") as f:
                f.write(pattern("f%d" % i, small_size(i)))
            lf.write("%d\n" % i)
            i += 1
    elif kind == "dirs":
        os.mkdir(os.path.join(comp, "dirs"))
        i = 0
        while True:
            d = os.path.join(comp, "dirs", "d%05d" % i)
            os.mkdir(d)
            with open(os.path.join(d, "x"), "wb") as f:
                f.write(pattern("d%d" % i, 5000))
            lf.write("%d\n" % i)
            i += 1
    elif kind == "rename":
        # a complete file renamed back and forth (same dir and across dirs)
        names = [os.path.join(comp, "ren", "r.dat"), os.path.join(comp, "ren", "r2.dat"),
                 os.path.join(comp, "ren2", "r.dat")]
        i = 0
        while True:
            os.rename(names[i % 3], names[(i + 1) % 3])
            i += 1
            lf.write("%d\n" % i)
except OSError as e:
    lf.write("stopped %s\n" % e.errno)
'''

PRE = {  # complete before the writers start
    "pre/a.txt": pattern("pre-a", 100),
    "pre/b.bin": pattern("pre-b", 3 * 4096),
    "pre/c.bin": pattern("pre-c", 100000),
    "top.txt": pattern("top", 4097),
}
RENAMED = pattern("renamed", 9000)
REN_NAMES = ["ren/r.dat", "ren/r2.dat", "ren2/r.dat"]


def alive(pid):
    """True while pid runs (a zombie left for a non-reaping init counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def meta_state(vault):
    """Contents of the vault metadata outside data/ (header, keys, policy, grants);
    locks/ is runtime state (mount holder files), not metadata."""
    st = {}
    for d, dirs, files in os.walk(vault.path):
        dirs[:] = [x for x in dirs
                   if os.path.join(d, x) not in (os.path.join(vault.path, "data"),
                                                 os.path.join(vault.path, "audit"),
                                                 os.path.join(vault.path, "locks"))]
        for n in files:
            p = os.path.join(d, n)
            st[os.path.relpath(p, vault.path)] = read(p)
    return st


def read(p):
    with open(p, "rb") as f:
        return f.read()


def logged(log):
    done, stopped = [], None
    if os.path.exists(log):
        for line in open(log):
            line = line.strip()
            if line.startswith("stopped"):
                stopped = line
            elif line:
                done.append(int(line))
    return done, stopped


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.25, 0.5, 0.8])
def test_kill9_under_writers(tmpbase, delay):
    v = Vault(tmpbase)
    meta = meta_state(v)
    mnt = v.mount()
    comp = v.comp(mnt)
    os.makedirs(os.path.join(comp, "pre"))
    for d in ("ren", "ren2"):
        os.mkdir(os.path.join(comp, d))
    for rel, data in PRE.items():
        with open(os.path.join(comp, rel), "wb") as f:
            f.write(data)
    with open(os.path.join(comp, REN_NAMES[0]), "wb") as f:
        f.write(RENAMED)

    script = os.path.join(tmpbase, "writer.py")
    with open(script, "w") as f:
        f.write(WRITER.format(funcs=inspect.getsource(pattern) + inspect.getsource(small_size)))
    logs = {k: os.path.join(tmpbase, f"log-{k}") for k in ("stream", "small", "dirs", "rename")}
    procs = [subprocess.Popen([sys.executable, script, k, comp, logs[k]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for k in logs]
    procs.append(subprocess.Popen(["dd", "if=/dev/zero", f"of={os.path.join(comp, 'dd.bin')}",
                                   "bs=64k", "count=800", "status=none"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    pid = daemon_pid(mnt)
    assert pid, "daemon not found"
    # every writer is busy (has completed one unit of work) before the clock starts
    t0 = time.time()
    while not all(logged(lg)[0] for lg in logs.values()):
        assert time.time() - t0 < 20, {k: logged(lg) for k, lg in logs.items()}
        time.sleep(0.01)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            pytest.fail(f"writer {p.args} hung after the daemon was killed")
    for _ in range(100):
        if not alive(pid):
            break
        time.sleep(0.05)
    subprocess.run(["fusermount3", "-u", "-z", mnt], check=True, capture_output=True)
    assert not is_mounted(mnt)
    v.mounts.remove(mnt)

    small, _ = logged(logs["small"])
    dirs, _ = logged(logs["dirs"])
    n_small = max(small) + 1 if small else 0
    n_dirs = max(dirs) + 1 if dirs else 0
    in_flight = {"dd.bin", "stream.bin", f"small/f{n_small:05d}",
                 f"dirs/d{n_dirs:05d}", f"dirs/d{n_dirs:05d}/x"}

    # metadata intact: unchanged, and mount works (policy, key file, grants, root diriv)
    assert meta_state(v) == meta
    mnt2 = v.mount(mnt)
    comp2 = v.comp(mnt2)
    try:
        for rel, data in PRE.items():
            assert read(os.path.join(comp2, rel)) == data, f"{rel} damaged by the crash"
        for i in small:
            assert read(os.path.join(comp2, "small", f"f{i:05d}")) == \
                pattern(f"f{i}", small_size(i)), f"small/f{i:05d}"
        for i in dirs:
            assert read(os.path.join(comp2, "dirs", f"d{i:05d}", "x")) == pattern(f"d{i}", 5000)
        present = [n for n in REN_NAMES if os.path.lexists(os.path.join(comp2, n))]
        assert len(present) == 1, f"renamed file under {present} after the crash"
        ren, _ = logged(logs["rename"])
        n = max(ren) if ren else 0
        assert present[0] in (REN_NAMES[n % 3], REN_NAMES[(n + 1) % 3]), (present, n)
        assert read(os.path.join(comp2, present[0])) == RENAMED
        # new writes work after the crash
        with open(os.path.join(comp2, "after.txt"), "wb") as f:
            f.write(b"after the crash")
        assert read(os.path.join(comp2, "after.txt")) == b"after the crash"
    finally:
        v.cleanup()

    p = v.fsck(json_out=True)
    assert p.returncode in (0, 9), (p.returncode, p.stderr)
    doc = json.loads(p.stdout)
    named = {d["path"] for d in doc["damaged"]}
    assert named <= in_flight, (f"fsck named files that were not being written: "
                                f"{sorted(named - in_flight)}\n{doc['damaged']}")
    if not named:
        return
    # recovery: what was in flight can be removed through the mount, leaving a clean vault
    mnt3 = v.mount(mnt)
    comp3 = v.comp(mnt3)
    try:
        for rel in sorted(named, key=lambda r: -r.count("/")):
            p = os.path.join(comp3, rel)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)
    finally:
        v.cleanup()
    p = v.fsck(json_out=True)
    assert p.returncode == 0, f"after removing {sorted(named)}: {p.stdout}"


def _fg_mount(v):
    mnt, proc = v.mount(foreground=True)
    comp = v.comp(mnt)
    with open(os.path.join(comp, "f.txt"), "wb") as f:
        f.write(b"written before the signal")
    return mnt, proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_foreground_signal_unmounts_cleanly(tmpbase, sig):
    v = Vault(tmpbase)
    mnt, proc = _fg_mount(v)
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"kinko mount -f ignored {sig!r}")
    err = proc.stderr.read()
    assert rc == 0, (rc, err)
    assert not is_mounted(mnt), "still in /proc/self/mountinfo after the daemon exited"
    v.mounts.remove(mnt)
    mnt = v.mount(mnt)
    assert read(os.path.join(v.comp(mnt), "f.txt")) == b"written before the signal"
    v.cleanup()
    assert v.fsck().returncode == 0


def test_background_daemon_sigterm(tmpbase):
    v = Vault(tmpbase)
    mnt = v.mount()
    with open(os.path.join(v.comp(mnt), "f.txt"), "wb") as f:
        f.write(b"bg")
    pid = daemon_pid(mnt)
    assert pid
    os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        if not is_mounted(mnt) and not alive(pid):
            break
        time.sleep(0.05)
    assert not is_mounted(mnt), "SIGTERM to the daemon did not unmount"
    assert not alive(pid), "daemon still running after SIGTERM"
    v.mounts.remove(mnt)
    assert v.fsck().returncode == 0


def test_umount_command(tmpbase):
    v = Vault(tmpbase)
    mnt = v.mount()
    pid = daemon_pid(mnt)
    f = open(os.path.join(v.comp(mnt), "busy.txt"), "wb")
    try:
        p = kinko("umount", mnt)
        assert p.returncode != 0, "umount succeeded with a file open"
        assert "busy" in p.stderr
        assert is_mounted(mnt)
    finally:
        f.close()
    p = kinko("umount", mnt)
    assert p.returncode == 0, p.stderr
    assert not is_mounted(mnt)
    for _ in range(200):
        if not alive(pid):
            break
        time.sleep(0.05)
    assert not alive(pid), "daemon still running after umount"
    v.mounts.remove(mnt)
