"""Helpers for integration tests: real vaults, real FUSE mounts (sshfs-style
wait_for_mount / cleanup), run as root in CI."""
import contextlib
import json
import os
import random
import socket
import struct
import subprocess
import tempfile
import threading
import time

KINKO = os.environ.get("KINKO_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "src", "kinko")
PASSWORD = "Corr3ct-Horse!battery"


def write_pw(base, name, pw):
    """A password file holding pw on its first line."""
    p = os.path.join(base, name)
    with open(p, "w") as f:
        f.write(pw + "\n")
    return p


def kinko(*args, input=None, check=False, timeout=120, env=None):
    """Run the kinko CLI; returns CompletedProcess (text)."""
    p = subprocess.run([KINKO, *map(str, args)], input=input, capture_output=True,
                       text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"kinko {' '.join(map(str, args))} -> {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def is_mounted(mnt):
    mnt = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == mnt:
                return True
    return False


def wait_for_mount(mnt, proc=None, timeout=15):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if is_mounted(mnt):
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"kinko exited with {proc.returncode} before mounting: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError(f"{mnt} not mounted after {timeout}s")


def umount(mnt):
    """Unmount and wait for the daemon to finish (it completes the audit log
    after the unmount), so the vault is quiet when this returns."""
    if not is_mounted(mnt):
        return
    pid = daemon_pid(mnt)
    subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
    for _ in range(100):
        if not is_mounted(mnt):
            break
        time.sleep(0.05)
    else:
        subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
    for _ in range(500):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return          # exited; a foreground daemon awaits its parent's wait()
        except (OSError, TypeError, IndexError):
            return
        time.sleep(0.02)


class Vault:
    """A vault directory with one admin user and a password file."""

    def __init__(self, base, user="alice", password=PASSWORD, cipher=None, compartment="main"):
        self.base = base
        self.path = os.path.join(base, "vault")
        self.user = user
        self.password = password
        self.pwfile = os.path.join(base, f"pw-{user}")
        with open(self.pwfile, "w") as f:
            f.write(password + "\n")
        self.compartment = compartment
        args = ["init", self.path, "--user", user, "--password-file", self.pwfile,
                "--compartment", compartment]
        if cipher:
            args += ["--cipher", cipher]
        kinko(*args, check=True)
        self.mounts = []

    def mount(self, mnt=None, extra=(), foreground=False):
        """Mount (background daemon by default); returns the mountpoint."""
        if mnt is None:
            mnt = tempfile.mkdtemp(prefix="mnt-", dir=self.base)
        os.makedirs(mnt, exist_ok=True)
        args = [KINKO, "mount", self.path, mnt, "--user", self.user,
                "--password-file", self.pwfile, *extra]
        if foreground:
            proc = subprocess.Popen(args + ["-f"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            wait_for_mount(mnt, proc)
            self.mounts.append(mnt)
            return mnt, proc
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"mount failed ({p.returncode}): {p.stderr}")
        wait_for_mount(mnt)
        self.mounts.append(mnt)
        return mnt

    def comp(self, mnt):
        return os.path.join(mnt, self.compartment)

    def data_dir(self):
        """The backing directory of the first compartment (ciphertext)."""
        d = os.path.join(self.path, "data")
        (name,) = os.listdir(d)
        return os.path.join(d, name)

    def fsck(self, json_out=False):
        args = ["fsck", self.path, "--user", self.user, "--password-file", self.pwfile]
        if json_out:
            args.append("--json")
        return kinko(*args)

    def cleanup(self):
        for m in self.mounts:
            umount(m)
        self.mounts = []


def daemon_pid(mnt):
    """PID of the kinko daemon serving mnt (by its command line)."""
    mnt = os.path.realpath(mnt)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"kinko") and b"mount" in argv and \
                any(os.path.realpath(a.decode(errors="ignore")) == mnt for a in argv if a):
            return int(pid)
    return None


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def rbytes(n, seed):
    return random.Random(seed).randbytes(n)


def errno_of(fn, *args, **kw):
    """0 if fn(*args) succeeds, else its errno."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


def fsck_clean(vault):
    p = vault.fsck()
    assert p.returncode == 0, f"fsck exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"


def remount(vault):
    vault.cleanup()
    return vault.comp(vault.mount())


def ok(p):
    assert p.returncode == 0, f"rc={p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def refused(p, code, *needles):
    assert p.returncode != 0, f"expected a refusal, got rc=0\nstdout: {p.stdout}\nstderr: {p.stderr}"
    if code is not None:
        assert p.returncode == code, f"rc={p.returncode}, expected {code}\nstderr: {p.stderr}"
    for n in needles:
        assert n in p.stderr, f"{n!r} not in stderr:\n{p.stderr}"
    return p


def as_admin(v, *args, as_user=None, pwfile=None, env=None):
    """kinko ARGS --vault V --as ADMIN --password-file F (the vault's first user by default)."""
    return kinko(*args, "--vault", v.path, "--as", as_user or v.user,
                 "--password-file", pwfile or v.pwfile, env=env)


def enrol(v, uid, role, password):
    """kinko user add with an enrolment secret (by the vault's first user), then the
    user's first password; returns the password file."""
    secret = os.path.join(v.base, f"secret-{uid}")
    ok(as_admin(v, "user", "add", uid, "--role", role, "--secret-file", secret))
    pwf = write_pw(v.base, f"pw-{uid}", password)
    ok(kinko("passwd", v.path, "--user", uid, "--password-file", secret,
             "--new-password-file", pwf))
    return pwf


class FakeGuard:
    """A guard socket (kinko-guard(1) protocol, one JSON line each way) that
    records every request in .seen and answers .answer."""

    def __init__(self, path):
        self.path = path
        self.seen = []
        self.answer = {"ok": True}


@contextlib.contextmanager
def fake_guard(path):
    g = FakeGuard(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            g.seen.append(json.loads(c.makefile().readline()))
            c.sendall((json.dumps(g.answer) + "\n").encode())
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield g
    finally:
        srv.close()


def parse_seg(path):
    """Split a segment per the layout of kinko-format(5): header, records."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"kAL\x01"
    hlen = struct.unpack_from("<I", data, 4)[0]
    off = 4 + 4 + 16 + 16 + 8
    fields = []
    for _ in range(4):                 # host, machine_id, user, kind
        n = data[off]
        fields.append(data[off + 1:off + 1 + n].decode())
        off += 1 + n
    nrec = data[off]
    off += 1
    recips = []
    for _ in range(nrec):
        n = data[off]
        recips.append(data[off + 1:off + 1 + n].decode())
        off += 1 + n + 112
    assert off + 32 == hlen, "header length does not match its fields"
    recs = []
    off = hlen
    while off < len(data):
        ctlen, seq = struct.unpack_from("<IQ", data, off)
        end = off + 12 + ctlen + 32
        assert end <= len(data)
        recs.append((seq, data[off:end]))
        off = end
    assert [s for s, _ in recs] == list(range(1, len(recs) + 1))
    return {"header": data[:hlen], "host": fields[0], "machine": fields[1], "user": fields[2],
            "kind": fields[3], "recipients": recips, "records": recs}
