"""The kinko command line: exit codes, messages, refusal of damaged or foreign
vault metadata, password handling (files, stdin, terminal), mount access
control and secret hygiene of the daemon."""
import hashlib
import os
import pty
import re
import select
import shutil
import subprocess
import termios
import time

import pytest

from kinko_util import KINKO, PASSWORD, Vault, daemon_pid, is_mounted, kinko, umount

COMMANDS = ["init", "mount", "umount", "passwd", "fsck"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def tree_state(root):
    """Every entry under root: name -> (type, mode, size, sha256, file mtime);
    a vault's locks/ is runtime state (mount holder files), not content."""
    st = {}
    for d, dirs, files in os.walk(root):
        # the audit log records the attempt: that is the one expected write;
        # locks/ is runtime state
        dirs[:] = [x for x in dirs
                   if os.path.join(d, x) not in (os.path.join(root, "audit"), os.path.join(root, "locks"))]
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            s = os.lstat(p)
            if os.path.islink(p):
                st[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                st[rel] = ("d", s.st_mode)
            else:
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
                st[rel] = ("f", s.st_mode, s.st_size, h, s.st_mtime_ns)
    return st


def changed(before, after):
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def write_pw(base, name, pw):
    p = os.path.join(base, name)
    with open(p, "w") as f:
        f.write(pw + "\n")
    return p


def run_cmd(cmd, vault, mnt, pwfile, extra=()):
    """Run a vault command with the given password file."""
    if cmd == "mount":
        return kinko("mount", vault.path, mnt, "--user", vault.user, "--password-file", pwfile, *extra)
    if cmd == "fsck":
        return kinko("fsck", vault.path, "--user", vault.user, "--password-file", pwfile, *extra)
    if cmd == "passwd":
        newpw = write_pw(vault.base, "pw-new-unused", "Brand-new-pass-1")
        return kinko("passwd", vault.path, "--user", vault.user, "--password-file", pwfile,
                     "--new-password-file", newpw, *extra)
    raise ValueError(cmd)


def one_line(stderr):
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


@pytest.fixture
def mnt(tmpbase):
    m = os.path.join(tmpbase, "mnt")
    os.mkdir(m)
    yield m
    umount(m)


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("cmd", ["mount", "fsck", "passwd"])
def test_wrong_password(vault, mnt, cmd):
    bad = write_pw(vault.base, "pw-bad", "not-the-password")
    before = tree_state(vault.path)
    p = run_cmd(cmd, vault, mnt, bad)
    assert p.returncode == 6, (p.returncode, p.stderr)
    line = one_line(p.stderr)
    assert f"keys/{vault.user}.key" in line, line
    assert "password" in line.lower(), line
    assert not is_mounted(mnt)
    assert tree_state(vault.path) == before, changed(before, tree_state(vault.path))


@pytest.mark.parametrize("cmd", ["mount", "fsck", "passwd"])
def test_missing_vault_dir(vault, mnt, cmd):
    vault.path = os.path.join(vault.base, "no-such-vault")
    p = run_cmd(cmd, vault, mnt, vault.pwfile)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "no-such-vault" in p.stderr
    assert not os.path.exists(vault.path)


@pytest.mark.parametrize("cmd", ["mount", "fsck", "passwd"])
@pytest.mark.parametrize("content", ["empty", "files"])
def test_dir_is_not_a_vault(tmpbase, mnt, cmd, content):
    v = Vault(tmpbase)
    notv = os.path.join(tmpbase, "plain")
    os.mkdir(notv)
    if content == "files":
        os.mkdir(os.path.join(notv, "keys"))
        with open(os.path.join(notv, "README"), "w") as f:
            f.write("hello\n")
    before = tree_state(notv)
    v.path = notv
    p = run_cmd(cmd, v, mnt, v.pwfile)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "kinko.vault" in p.stderr or "not a kinko vault" in p.stderr, p.stderr
    assert tree_state(notv) == before


def _edit(path, off, fn):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[off] = fn(data[off])
        f.seek(0)
        f.write(data)


@pytest.mark.parametrize("cmd", ["mount", "fsck"])
def test_vault_version_newer(vault, mnt, cmd):
    hdr = os.path.join(vault.path, "kinko.vault")
    with open(hdr, "r+b") as f:
        data = f.read()
        assert int.from_bytes(data[8:10], "little") == 1
        f.seek(8)
        f.write((2).to_bytes(2, "little"))
    p = run_cmd(cmd, vault, mnt, vault.pwfile)
    assert p.returncode == 4, (p.returncode, p.stderr)
    assert "newer" in p.stderr, p.stderr
    assert "kinko.vault" in p.stderr, p.stderr
    assert not is_mounted(mnt)


# offsets: magic, header length, vault id, reserved, root key, created, signature
@pytest.mark.parametrize("off", [0, 10, 20, 34, 40, 70, 100, 139])
def test_vault_header_byte_flipped(vault, mnt, off):
    _edit(os.path.join(vault.path, "kinko.vault"), off, lambda b: b ^ 0x01)
    for cmd in ("mount", "fsck"):
        p = run_cmd(cmd, vault, mnt, vault.pwfile)
        assert p.returncode == 5, (cmd, off, p.returncode, p.stderr)
        assert "kinko.vault" in p.stderr, p.stderr
        assert not is_mounted(mnt)


@pytest.mark.parametrize("size", [0, 9, 70, 139])
def test_vault_header_truncated(vault, mnt, size):
    os.truncate(os.path.join(vault.path, "kinko.vault"), size)
    for cmd in ("mount", "fsck"):
        p = run_cmd(cmd, vault, mnt, vault.pwfile)
        assert p.returncode == 5, (cmd, size, p.returncode, p.stderr)
        assert "kinko.vault" in p.stderr, p.stderr


def test_vault_header_extended(vault, mnt):
    with open(os.path.join(vault.path, "kinko.vault"), "ab") as f:
        f.write(b"\0")
    p = run_cmd("mount", vault, mnt, vault.pwfile)
    assert p.returncode == 5, (p.returncode, p.stderr)


@pytest.mark.parametrize("cmd", ["mount", "fsck"])
def test_policy_body_edited(vault, mnt, cmd):
    pol = os.path.join(vault.path, "policy", "policy.1")
    data = open(pol, "rb").read()
    i = data.find(b'"' + vault.user.encode() + b'"')
    assert i > 0, "user id not found in the policy body"
    _edit(pol, i + 1, lambda b: ord("b") if b != ord("b") else ord("c"))
    before = tree_state(vault.path)
    p = run_cmd(cmd, vault, mnt, vault.pwfile)
    assert p.returncode == 5, (p.returncode, p.stderr)
    assert "policy/policy.1" in p.stderr, p.stderr
    assert not is_mounted(mnt)
    assert tree_state(vault.path) == before


def _grant(vault):
    (comp,) = os.listdir(os.path.join(vault.path, "grants"))
    return f"grants/{comp}/1/{vault.user}.grant"


@pytest.mark.parametrize("cmd", ["mount", "fsck"])
def test_grant_file_edited(vault, mnt, cmd):
    g = _grant(vault)
    _edit(os.path.join(vault.path, g), 100, lambda b: b ^ 0x01)
    p = run_cmd(cmd, vault, mnt, vault.pwfile)
    assert p.returncode == 5, (p.returncode, p.stderr)
    assert g in one_line(p.stderr)
    assert not is_mounted(mnt)


@pytest.mark.parametrize("what", ["policy", "grant"])
def test_vault_metadata_file_missing(vault, mnt, what):
    """A vault whose kinko.vault is present but whose signed policy or the
    user's grant is gone is damaged (5), not 'no vault' (3)."""
    rel = "policy/policy.1" if what == "policy" else _grant(vault)
    os.unlink(os.path.join(vault.path, rel))
    for cmd in ("mount", "fsck"):
        p = run_cmd(cmd, vault, mnt, vault.pwfile)
        assert p.returncode == 5, (cmd, p.returncode, p.stderr)
        assert os.path.dirname(rel) in p.stderr, p.stderr
        assert not is_mounted(mnt)


@pytest.mark.parametrize("cmd", ["mount", "fsck", "passwd"])
def test_key_file_from_other_vault(tmpbase, mnt, cmd):
    v = Vault(tmpbase)
    ob = os.path.join(tmpbase, "other")
    os.mkdir(ob)
    v2 = Vault(ob)  # same user id and password
    shutil.copyfile(os.path.join(v2.path, "keys", "alice.key"),
                    os.path.join(v.path, "keys", "alice.key"))
    before = tree_state(v.path)
    p = run_cmd(cmd, v, mnt, v.pwfile)
    assert p.returncode == 5, (p.returncode, p.stderr)
    assert "keys/alice.key" in one_line(p.stderr)
    assert not is_mounted(mnt)
    assert tree_state(v.path) == before


def test_init_on_existing_vault(vault):
    before = tree_state(vault.path)
    for extra in ([], ["--cipher", "xchacha20-poly1305"], ["--user", "bob"]):
        p = kinko("init", vault.path, "--password-file", vault.pwfile, *extra)
        assert p.returncode == 10, (extra, p.returncode, p.stderr)
        assert vault.path in p.stderr
    assert tree_state(vault.path) == before
    assert vault.fsck().returncode == 0


def test_init_on_non_empty_dir(tmpbase):
    d = os.path.join(tmpbase, "busy")
    os.mkdir(d)
    with open(os.path.join(d, "precious.txt"), "w") as f:
        f.write("keep me\n")
    pw = write_pw(tmpbase, "pw", PASSWORD)
    before = tree_state(d)
    p = kinko("init", d, "--user", "alice", "--password-file", pw)
    assert p.returncode == 10, (p.returncode, p.stderr)
    assert "not empty" in p.stderr
    assert tree_state(d) == before


def test_init_in_empty_existing_dir_works(tmpbase):
    d = os.path.join(tmpbase, "empty")
    os.mkdir(d)
    pw = write_pw(tmpbase, "pw", PASSWORD)
    p = kinko("init", d, "--user", "alice", "--password-file", pw)
    assert p.returncode == 0, p.stderr
    assert os.path.exists(os.path.join(d, "kinko.vault"))


def test_mount_on_missing_mountpoint(vault):
    p = kinko("mount", vault.path, os.path.join(vault.base, "nope"), "--user", vault.user,
              "--password-file", vault.pwfile)
    assert p.returncode == 8, (p.returncode, p.stderr)


# ---------------------------------------------------------------- usage

@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_for_every_command(cmd):
    for args in ([cmd, "--help"], [cmd, "-h"], ["help", cmd], [cmd, "x", "--help"]):
        p = kinko(*args)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        assert f"usage: kinko {cmd}" in p.stdout, (args, p.stdout)
        assert "Exit codes" in p.stdout


def test_main_help_lists_commands():
    for args in (["--help"], ["-h"], ["help"]):
        p = kinko(*args)
        assert p.returncode == 0
        for c in COMMANDS:
            assert re.search(rf"^\s+{c}\s", p.stdout, re.M), (c, p.stdout)
    p = kinko()
    assert p.returncode == 2
    assert "usage" in p.stderr


def test_unknown_command():
    p = kinko("frobnicate", "x")
    assert p.returncode == 2, p.returncode
    assert "frobnicate" in p.stderr


@pytest.mark.parametrize("args", [["mount"], ["fsck"], ["init"], ["passwd"], ["umount"],
                                  ["fsck", "--bogus", "x"], ["init", "a", "b"],
                                  ["init", "x", "--cipher", "rot13"],
                                  ["init", "x", "--class", "ultra"],
                                  ["mount", "v", "m", "-o", "exec_anything"]])
def test_usage_errors(tmpbase, args):
    p = kinko(*[os.path.join(tmpbase, a) if a in ("x", "a", "b", "v", "m") else a for a in args])
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert p.stderr.strip()
    assert os.listdir(tmpbase) == []


def test_version():
    p = kinko("--version")
    assert p.returncode == 0
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "meson.build")).read()
    ver = re.search(r"version\s*:\s*'([^']+)'", src).group(1)
    assert re.match(rf"^kinko {re.escape(ver)} \(format \d+\)$", p.stdout.strip()), p.stdout


# ---------------------------------------------------------------- passwords

def test_passwd(mounted):
    vault, comp = mounted
    with open(os.path.join(comp, "data.txt"), "wb") as f:
        f.write(b"survives a password change\n" * 500)
    vault.cleanup()
    before = tree_state(vault.path)
    newpw = write_pw(vault.base, "pw-new", "N3w-passw0rd!")
    p = kinko("passwd", vault.path, "--user", vault.user, "--password-file", vault.pwfile,
              "--new-password-file", newpw)
    assert p.returncode == 0, p.stderr
    after = tree_state(vault.path)
    assert changed(before, after) == {f"keys/{vault.user}.key"}
    # old password refused
    p = kinko("fsck", vault.path, "--user", vault.user, "--password-file", vault.pwfile)
    assert p.returncode == 6, (p.returncode, p.stderr)
    # new password works and the data is still readable
    vault.pwfile = newpw
    assert vault.fsck().returncode == 0
    mnt = vault.mount()
    with open(os.path.join(vault.comp(mnt), "data.txt"), "rb") as f:
        assert f.read() == b"survives a password change\n" * 500
    vault.cleanup()


def test_password_from_stdin(vault, mnt):
    p = kinko("fsck", vault.path, "--user", vault.user, "--password-file", "-",
              input=vault.password + "\n")
    assert p.returncode == 0, p.stderr
    p = kinko("fsck", vault.path, "--user", vault.user, "--password-file", "-", input="wrong\n")
    assert p.returncode == 6, p.stderr
    p = kinko("mount", vault.path, mnt, "--user", vault.user, "--password-file", "-",
              input=vault.password + "\n")
    assert p.returncode == 0, p.stderr
    assert is_mounted(mnt)
    assert os.listdir(mnt) == [vault.compartment]
    umount(mnt)
    # passwd: old password from stdin, new from a file
    newpw = write_pw(vault.base, "pw-new", "From-stdin-2")
    p = kinko("passwd", vault.path, "--user", vault.user, "--password-file", "-",
              "--new-password-file", newpw, input=vault.password + "\n")
    assert p.returncode == 0, p.stderr
    p = kinko("fsck", vault.path, "--user", vault.user, "--password-file", "-",
              input="From-stdin-2\n")
    assert p.returncode == 0, p.stderr
    # both from stdin is a usage error
    p = kinko("passwd", vault.path, "--password-file", "-", "--new-password-file", "-",
              input="a\nb\n")
    assert p.returncode == 2


def test_password_empty_refused(tmpbase):
    pw = write_pw(tmpbase, "pw-empty", "")
    d = os.path.join(tmpbase, "v")
    p = kinko("init", d, "--user", "alice", "--password-file", pw)
    assert p.returncode != 0
    assert "empty password" in p.stderr
    assert not os.path.exists(os.path.join(d, "kinko.vault"))


def test_password_file_missing(vault):
    p = kinko("fsck", vault.path, "--user", vault.user, "--password-file",
              os.path.join(vault.base, "nope"))
    assert p.returncode != 0
    assert "nope" in p.stderr


def _no_tty(args):
    return subprocess.run([KINKO, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60, start_new_session=True)


def test_no_terminal_and_no_password_file(vault, mnt):
    d = os.path.join(vault.base, "new-vault")
    for args in (["init", d, "--user", "alice"],
                 ["fsck", vault.path, "--user", vault.user],
                 ["mount", vault.path, mnt, "--user", vault.user],
                 ["passwd", vault.path, "--user", vault.user]):
        p = _no_tty(args)
        assert p.returncode not in (0, 6), (args, p.returncode, p.stderr)
        line = one_line(p.stderr)
        assert "terminal" in line and "--password-file" in line, line
    assert not os.path.exists(d)
    assert not is_mounted(mnt)


def _pty_run(argv, answers, timeout=30):
    """Run argv on a new pty as its controlling terminal. answers: list of
    (prompt, text); each text is typed once the prompt appeared and echo is off.
    Returns (exit code, everything the program wrote to the terminal)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    deadline = time.time() + timeout

    def pump(t=0.05):
        nonlocal out
        r, _, _ = select.select([fd], [], [], t)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
        return True

    try:
        for prompt, text in answers:
            start = len(out)
            while prompt.encode() not in out[start:]:
                assert time.time() < deadline, f"no prompt {prompt!r}; got {out!r}"
                if not pump():
                    raise AssertionError(f"program ended before {prompt!r}: {out!r}")
            # wait until the program turned echo off (termios is shared with the slave)
            while termios.tcgetattr(fd)[3] & termios.ECHO:
                assert time.time() < deadline, "echo never turned off"
                time.sleep(0.01)
            os.write(fd, text.encode() + b"\n")
        while time.time() < deadline and pump(0.2):
            pass
    finally:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == 0:
            for _ in range(100):
                time.sleep(0.05)
                wpid, status = os.waitpid(pid, os.WNOHANG)
                if wpid:
                    break
            else:
                os.kill(pid, 9)
                _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_init_interactive_prompt(tmpbase):
    d = os.path.join(tmpbase, "v")
    secret = "Typed-Pa55word"
    rc, out = _pty_run([KINKO, "init", d, "--user", "alice"],
                       [("New vault password: ", secret), ("Repeat the password: ", secret)])
    assert rc == 0, out
    assert secret not in out, f"password echoed: {out!r}"
    assert os.path.exists(os.path.join(d, "kinko.vault"))
    pw = write_pw(tmpbase, "pw", secret)
    assert kinko("fsck", d, "--user", "alice", "--password-file", pw).returncode == 0
    # the same interactive prompt unlocks it
    rc, out = _pty_run([KINKO, "fsck", d, "--user", "alice"], [("Password for alice: ", secret)])
    assert rc == 0, out
    assert "clean" in out and secret not in out


def test_init_interactive_mismatch(tmpbase):
    d = os.path.join(tmpbase, "v")
    rc, out = _pty_run([KINKO, "init", d, "--user", "alice"],
                       [("New vault password: ", "first-Passw0rd"),
                        ("Repeat the password: ", "second-Passw0rd")])
    assert rc not in (0, None), out
    assert "do not match" in out, out
    assert not os.path.exists(d), os.listdir(d)


# ---------------------------------------------------------------- access control

def _as_nobody(code):
    """Run python code as uid/gid 65534; returns its stdout (stripped)."""
    p = subprocess.run(NOBODY + ["/usr/bin/python3", "-c", code], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


PROBE = """
import errno, os
p, op = {path!r}, {op!r}
try:
    if op == 'stat':
        os.stat(p)
    elif op == 'list':
        os.listdir(p)
    else:
        open(p, 'rb').read()
    print('OK')
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def probe(path, op="read"):
    return _as_nobody(PROBE.format(path=path, op=op))


def _open_up(tmpbase):
    """mkdtemp dirs are 0700: let other users reach the mountpoints, and check
    that the probe itself works on an ordinary file."""
    os.chmod(tmpbase, 0o755)
    ctl = os.path.join(tmpbase, "control.txt")
    with open(ctl, "w") as f:
        f.write("x")
    os.chmod(ctl, 0o644)
    assert probe(ctl) == "OK"
    os.chmod(ctl, 0o600)
    assert probe(ctl) == "EACCES"


def test_mount_only_for_mounting_user(mounted):
    vault, comp = mounted
    _open_up(vault.base)
    mnt = os.path.dirname(comp)
    os.chmod(comp, 0o755)
    with open(os.path.join(comp, "pub.txt"), "w") as f:
        f.write("public\n")
    os.chmod(os.path.join(comp, "pub.txt"), 0o644)
    p = subprocess.run(NOBODY + ["ls", mnt], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "Permission denied" in p.stderr, p.stderr
    # without allow_other FUSE refuses every request of another user, even a stat
    assert probe(mnt, "stat") == "EACCES"
    assert probe(mnt, "list") == "EACCES"
    assert probe(os.path.join(comp, "pub.txt")) == "EACCES"
    # root itself can use it
    assert open(os.path.join(comp, "pub.txt")).read() == "public\n"


@pytest.fixture
def allow_other(vault):
    _open_up(vault.base)
    mnt = vault.mount(extra=["-o", "allow_other"])
    comp = vault.comp(mnt)
    os.chmod(comp, 0o755)
    for name, mode in (("pub.txt", 0o644), ("priv.txt", 0o600)):
        p = os.path.join(comp, name)
        with open(p, "w") as f:
            f.write(name)
        os.chmod(p, mode)
    yield vault, mnt, comp
    vault.cleanup()


def test_allow_other_private_file_denied(allow_other):
    vault, mnt, comp = allow_other
    # allow_other lets the request through to the kernel permission check
    assert probe(mnt, "stat") == "OK"
    assert probe(os.path.join(comp, "priv.txt")) == "EACCES"


def test_allow_other_world_readable_file_readable(allow_other):
    vault, mnt, comp = allow_other
    got = probe(os.path.join(comp, "pub.txt"))
    assert got == "OK", (f"with -o allow_other a 0644 file in a 0755 compartment is not readable "
                         f"by another user ({got}); mount root mode is "
                         f"{oct(os.stat(mnt).st_mode & 0o7777)}")


def test_daemon_secret_hygiene(tmpbase):
    secret = "Zq7-unique-Secret-for-proc-check"
    v = Vault(tmpbase, password=secret)
    mnt = v.mount()
    try:
        pid = daemon_pid(mnt)
        assert pid, "daemon not found"
        with open(f"/proc/{pid}/limits") as f:
            lim = f.read()
        m = re.search(r"^Max core file size\s+(\S+)\s+(\S+)", lim, re.M)
        assert m, lim
        assert m.group(1) == "0", f"RLIMIT_CORE soft limit of the daemon is {m.group(1)}"
        for what in ("cmdline", "environ"):
            with open(f"/proc/{pid}/{what}", "rb") as f:
                blob = f.read()
            assert secret.encode() not in blob, f"password in /proc/{pid}/{what}"
        # the background daemon is detached from the caller's session
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert int(fields[3]) == pid, "daemon is not a session leader (setsid)"
    finally:
        v.cleanup()
