"""The audit log (issue 4) through real mounts and the real CLI: a scripted
workload is logged entry by entry, field by field; kinko audit verify names
every kind of tampering (edited, deleted, swapped, truncated, copied segments)
with its segment and entry number; the log is sealed to auditors only (a staff
user's keys open nothing, no plaintext path in the segment bytes); reviews,
administration and refused unlocks are logged; the show filters and exports
select exactly the matching entries; prune keeps audit.retention_years; two
mounts of one vault write separate segments that both verify."""
import calendar
import csv
import fnmatch
import glob
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from kinko_util import (KINKO, Vault, as_admin, enrol, daemon_pid, is_mounted, kinko, ok, parse_seg, refused,
                        umount, write_pw)

# long passwords (>= password.long_min_length) so that password.mode long
# exempts them from expiry under the test clock; none contains a user id
AUD_PW = "Mq7#Wv2-Lp9x-Tr4"
AUD2_PW = "Hv4%Rt8-Yk2m-Qz6"
STAFF_PW = "Bn6@Qs3-Xe7w-Jc1"

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HOST = socket.gethostname()
with open("/etc/machine-id") as _f:
    MACHINE_ID = _f.read().strip()
T1 = calendar.timegm((2031, 3, 10, 12, 0, 0))   # test clock of the filter test's mounts
YEAR = 365 * 86400


# ---------------------------------------------------------------- helpers

@pytest.fixture(autouse=True)
def run_dir(monkeypatch):
    """A private control-socket directory (short path: AF_UNIX names are limited),
    and no test hook leaking in from the environment."""
    d = tempfile.mkdtemp(prefix="kr-")
    monkeypatch.setenv("KINKO_RUN_DIR", d)
    for k in ("KINKO_TEST_AUDIT_ANY_ROLE", "KINKO_TEST_NO_AUDIT"):
        monkeypatch.delenv(k, raising=False)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def env_with(**kw):
    e = dict(os.environ)
    e.update({k: str(v) for k, v in kw.items()})
    return e


admin = as_admin


class Auditor:
    def __init__(self, v, uid, pwfile):
        self.v, self.uid, self.pwfile = v, uid, pwfile

    def run(self, sub, *args, env=None):
        return kinko("audit", sub, *args, "--vault", self.v.path, "--as", self.uid,
                     "--password-file", self.pwfile, env=env)

    def show(self, *filters, env=None, rc=0):
        p = self.run("show", "--json", *filters, env=env)
        assert p.returncode == rc, f"rc={p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def verify(self, env=None):
        """(text run, parsed --json run)"""
        t = self.run("verify", env=env)
        j = self.run("verify", "--json", env=env)
        assert j.returncode == t.returncode, (t.returncode, j.returncode, j.stderr)
        return t, json.loads(j.stdout)


def add_auditor(v, uid="audrey", password=AUD_PW):
    return Auditor(v, uid, enrol(v, uid, "auditor", password))


def prog(*argv):
    """Run an ordinary program; returns (pid, returncode, stderr)."""
    p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    _, err = p.communicate(timeout=30)
    return p.pid, p.returncode, err


def wait_gone(pid, timeout=15):
    """Until process pid has exited (a zombie counts: PID 1 here may not reap)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with open(f"/proc/{pid}/status") as f:
                if any(line.startswith("State:") and "Z" in line.split()[1] for line in f):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)
    raise AssertionError(f"kinko daemon {pid} still running {timeout}s after the unmount")


def mount(v, user=None, pwfile=None, env=None, mnt=None, extra=()):
    """kinko mount (daemon); returns (mountpoint, daemon pid)."""
    mnt = mnt or tempfile.mkdtemp(prefix="mnt-", dir=v.base)
    os.makedirs(mnt, exist_ok=True)
    p = kinko("mount", v.path, mnt, "--user", user or v.user, "--password-file",
              pwfile or v.pwfile, *extra, env=env)
    ok(p)
    for _ in range(300):
        if is_mounted(mnt):
            break
        time.sleep(0.02)
    assert is_mounted(mnt)
    v.mounts.append(mnt)
    pid = daemon_pid(mnt)
    assert pid, "no kinko daemon found for " + mnt
    return mnt, pid


def unmount(v, mnt, pid):
    """Unmount and wait for the daemon to exit: its last entries (unmount,
    session-end) and the closed head are written on the way out."""
    umount(mnt)
    assert not is_mounted(mnt)
    wait_gone(pid)
    if mnt in v.mounts:
        v.mounts.remove(mnt)


def seg_files(v):
    return sorted(glob.glob(os.path.join(v.path, "audit", "*", "*", "*.kal")))


def seg_name(v, path):
    return os.path.relpath(path, os.path.join(v.path, "audit"))


def write_seg(path, header, records):
    with open(path, "wb") as f:
        f.write(header + b"".join(r for _, r in records))


def by_segment(entries):
    out = {}
    for e in entries:
        out.setdefault(e["segment"], []).append(e)
    return out


def key(e):
    return (e["segment"], e["seq"])


def check_common(e, t0, t1, user="alice"):
    """Fields every entry carries."""
    assert TIME_RE.match(e["time"]), e
    t = calendar.timegm(time.strptime(e["time"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert t0 - 2 <= t <= t1 + 2, (e["time"], t0, t1)
    assert isinstance(e["clock_synced"], bool), e
    assert e["host"] == HOST and e["machine_id"] == MACHINE_ID, e
    assert e["user"] == user, e
    assert e["uid"] == os.getuid(), e
    assert e["result"] in ("ok", "denied", "error"), e
    if e["result"] == "ok":
        assert "reason" not in e and "error" not in e, e
    if e["action"] != "release":
        assert "bytes_read" not in e and "bytes_written" not in e, e
    if e["action"] not in ("open", "create"):
        assert "mode" not in e, e


def kernel_clock_synced():
    """The kernel's view, as adjtimex(2) reports it (what clock_synced should say)."""
    import ctypes

    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                    ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                    ("status", ctypes.c_int), ("pad", ctypes.c_char * 200)]
    tx = Timex()
    st = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(tx))
    return st >= 0 and st != 5 and not (tx.status & 0x0040)   # TIME_ERROR, STA_UNSYNC


def verify_problem_lines(text):
    return [ln for ln in text.splitlines() if re.match(r"^kinko: audit/\S+: entry \d+: ", ln)]


# ---------------------------------------------------------------- 1. the scripted workload

def test_workload_logged_field_by_field(tmpbase):
    t0 = time.time()
    v = Vault(tmpbase)
    aud = add_auditor(v)
    ok(admin(v, "compartment", "create", "ro", "--class", "himitsu"))
    # session 1: the administrator still holds 'ro' read-write: one file in it
    mnt, dpid1 = mount(v)
    with open(os.path.join(mnt, "ro", "existing.txt"), "w") as f:
        f.write("kept\n")
    unmount(v, mnt, dpid1)
    ok(admin(v, "grant", "alice", "ro", "--read-only"))

    # session 2: the scripted workload
    mnt, dpid = mount(v)
    m = lambda *p: os.path.join(mnt, *p)   # noqa: E731
    steps = {}
    steps["sh"] = prog("sh", "-c", f"echo hello > {m('main', 'notes.txt')}")
    steps["cat"] = prog("cat", m("main", "notes.txt"))
    steps["trunc"] = prog("sh", "-c", f"echo hello again > {m('main', 'notes.txt')}")
    steps["mv"] = prog("mv", m("main", "notes.txt"), m("main", "renamed.txt"))
    steps["chmod"] = prog("chmod", "640", m("main", "renamed.txt"))
    steps["setfattr"] = prog("setfattr", "-n", "user.color", "-v", "blue", m("main", "renamed.txt"))
    steps["rmxattr"] = prog("setfattr", "-x", "user.color", m("main", "renamed.txt"))
    steps["mkdir"] = prog("mkdir", m("main", "dir1"))
    steps["rmdir"] = prog("rmdir", m("main", "dir1"))
    steps["rm"] = prog("rm", m("main", "renamed.txt"))
    for k, (_, rc, err) in steps.items():
        assert rc == 0, (k, err)
    app = prog("sh", "-c", f"echo more >> {m('ro', 'existing.txt')}")
    new = prog("sh", "-c", f"echo x > {m('ro', 'new.txt')}")
    assert app[1] != 0 and new[1] != 0, (app, new)
    ok(kinko("lock", mnt))
    locked = prog("cat", m("ro", "existing.txt"))
    assert locked[1] != 0 and "Permission denied" in locked[2], locked
    ok(kinko("unlock", mnt, "--password-file", v.pwfile))
    again = prog("cat", m("ro", "existing.txt"))
    assert again[1] == 0, again
    unmount(v, mnt, dpid)
    t1 = time.time()

    entries = aud.show()
    synced = kernel_clock_synced()
    by_audrey = {e["segment"] for e in entries if e["action"] == "passwd"}
    for e in entries:
        # the auditor's own first-use password change is the one segment by audrey
        check_common(e, t0, t1, user="audrey" if e["segment"] in by_audrey else "alice")
        assert e["clock_synced"] is synced, (e, synced)
    assert [e["action"] for e in entries if e["user"] == "audrey"] == ["passwd", "session-end"]
    segs = by_segment(entries)
    mounts = [s for s, es in segs.items() if es[0]["session"] == "mount"]
    assert len(mounts) == 2, sorted(segs)
    for s, es in segs.items():
        assert [e["seq"] for e in es] == list(range(1, len(es) + 1)), s
        assert all(e["segment"] == s and e["session"] == es[0]["session"] for e in es)
        assert s.startswith(f"{HOST}/"), s
    s1, s2 = sorted(mounts, key=lambda s: segs[s][0]["pid"] != dpid1)
    real = os.path.realpath

    # session 1, exactly
    e1 = segs[s1]
    assert [(e["action"], e.get("path"), e["result"]) for e in e1] == [
        ("mount", None, "ok"), ("create", "ro/existing.txt", "ok"),
        ("release", "ro/existing.txt", "ok"), ("unmount", None, "ok"),
        ("session-end", None, "ok")]
    assert e1[2]["bytes_written"] == 5 and e1[2]["bytes_read"] == 0
    with open("/proc/self/comm") as f:
        me = f.read().strip()
    assert e1[1]["comm"] == e1[2]["comm"] == me and e1[1]["pid"] == e1[2]["pid"] == os.getpid()

    # session 2: the entries of the locked period are checked apart
    e2 = segs[s2]
    acts = [e["action"] for e in e2]
    i_lock, i_unlock = acts.index("lock"), acts.index("unlock")
    during = e2[i_lock + 1:i_unlock]
    # While locked every request is denied and logged; which requests of the cat
    # reach the daemon (getattr, lookup, open) depends on the kernel's caches.
    # Anyone who stats the mountpoint meanwhile (`kinko unlock` resolving it, or
    # another process on this shared machine scanning mounts) gets a getattr of
    # the root denied too: those (path "") are checked by their properties only.
    assert during, "no denied access logged while the mount was locked"
    for e in during:
        assert (e["result"], e["reason"], e["error"]) == ("denied", "locked", "EACCES"), e
    mine = [e for e in during if e["pid"] == locked[0]]
    assert mine and all(e["comm"] == "cat" and e.get("path") in ("ro", "ro/existing.txt")
                        for e in mine), during
    assert all(e.get("path") == "" for e in during if e["pid"] != locked[0]), during
    e2 = e2[:i_lock + 1] + e2[i_unlock:]

    P = lambda name: steps[name][0]   # noqa: E731
    exp = [
        dict(action="mount", comm="kinko", pid=dpid, mountpoint=real(mnt), vault=v.path,
             read_only=False),
        dict(action="create", path="main/notes.txt", comm="sh", pid=P("sh"), mode="w"),
        dict(action="release", path="main/notes.txt", comm="sh", pid=P("sh"), bytes_read=0,
             bytes_written=6),
        dict(action="open", path="main/notes.txt", comm="cat", pid=P("cat"), mode="r"),
        dict(action="release", path="main/notes.txt", comm="cat", pid=P("cat"), bytes_read=6,
             bytes_written=0),
        dict(action="open", path="main/notes.txt", comm="sh", pid=P("trunc"), mode="w",
             truncate=True),
        dict(action="release", path="main/notes.txt", comm="sh", pid=P("trunc"), bytes_read=0,
             bytes_written=12),
        dict(action="rename", path="main/notes.txt", path2="main/renamed.txt", comm="mv",
             pid=P("mv")),
        dict(action="setattr", path="main/renamed.txt", comm="chmod", pid=P("chmod"),
             changes={"mode": "0640"}),
        dict(action="setxattr", path="main/renamed.txt", comm="setfattr", pid=P("setfattr"),
             xattr="user.color"),
        dict(action="removexattr", path="main/renamed.txt", comm="setfattr", pid=P("rmxattr"),
             xattr="user.color"),
        dict(action="mkdir", path="main/dir1", comm="mkdir", pid=P("mkdir")),
        dict(action="rmdir", path="main/dir1", comm="rmdir", pid=P("rmdir")),
        dict(action="unlink", path="main/renamed.txt", comm="rm", pid=P("rm")),
        dict(action="open", path="ro/existing.txt", comm="sh", pid=app[0], mode="w", append=True,
             result="denied", reason="read-only", error="EROFS"),
        dict(action="create", path="ro/new.txt", comm="sh", pid=new[0], mode="w",
             result="denied", reason="read-only", error="EROFS"),
        dict(action="lock", comm="kinko", pid=dpid, why="locked by the user (kinko lock)"),
        dict(action="unlock", comm="kinko", pid=dpid),
        dict(action="open", path="ro/existing.txt", comm="cat", pid=again[0], mode="r"),
        dict(action="release", path="ro/existing.txt", comm="cat", pid=again[0], bytes_read=5,
             bytes_written=0),
        dict(action="unmount", comm="kinko", pid=dpid),
        dict(action="session-end", pid=dpid),
    ]
    # a release is sent by the kernel after the close, asynchronously: it may be
    # logged after the next program's first request, never before its own open
    def order(es):
        return [(e["action"], e.get("path"), e.get("pid")) for e in es if e["action"] != "release"]
    assert order(e2) == order(exp), json.dumps(e2, indent=1)
    assert sorted(map(str, [(e["action"], e.get("path"), e.get("pid")) for e in e2])) == \
        sorted(map(str, [(e["action"], e.get("path"), e.get("pid")) for e in exp]))
    for x in exp:
        (got,) = [e for e in e2 if (e["action"], e.get("path"), e.get("pid")) ==
                  (x["action"], x.get("path"), x.get("pid"))]
        want = {"result": "ok", **x}
        for k, val in want.items():
            assert got.get(k) == val, (k, val, got)
        for k in ("path", "path2", "reason", "error", "xattr", "changes", "append", "truncate"):
            if k not in want:
                assert k not in got, (k, got)
        if x["action"] == "release":
            opener = [e for e in e2 if e["action"] in ("open", "create") and
                      e["pid"] == x["pid"] and e.get("path") == x["path"]]
            assert opener[0]["seq"] < got["seq"]
    # time stamps never go backwards within a session
    assert [e["time"] for e in segs[s2]] == sorted(e["time"] for e in segs[s2])

    # the administration of this test, in CLI segments of their own
    cli = [e for s, es in segs.items() if s not in mounts for e in es]
    adm = [e for e in cli if e["action"] == "admin"]
    cmds = [e["command"] for e in adm]
    for want in ("user add audrey --role auditor", "compartment create ro --class himitsu",
                 "grant alice ro --read-only"):
        assert sum(want in c for c in cmds) == 1, (want, cmds)
    for e in adm:
        assert (e["result"], e["comm"], e["session"]) == ("ok", "kinko", "cli"), e
        assert e["command"].startswith(KINKO), e
        assert segs[e["segment"]][-1]["action"] == "session-end"


def test_non_utf8_names_are_logged_readably(tmpbase):
    """File names are bytes: a Shift-JIS name (a zip from a Windows PC) or a
    process whose name is not UTF-8 must still give readable entries, and the
    log must still verify."""
    v = Vault(tmpbase)
    aud = add_auditor(v)
    mnt, dpid = mount(v)
    d = os.path.join(mnt, "main").encode()
    name = "個人情報.txt".encode("shift_jis")
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"sjis")
    assert os.listdir(d) == [name]
    os.unlink(os.path.join(d, name))
    # a process named with bytes that are not UTF-8 creates a file
    code = ("import ctypes,sys; ctypes.CDLL(None).prctl(15, b'kk\\xff\\xfe', 0, 0, 0); "
            "open(sys.argv[1], 'w').write('x')")
    pid, rc, err = prog(sys.executable, "-c", code, os.path.join(mnt, "main", "by-odd-comm"))
    assert rc == 0, err
    unmount(v, mnt, dpid)
    p = aud.run("show", "--json")
    assert p.returncode == 0, p.stderr       # no "not a JSON object" problems
    entries = [json.loads(ln) for ln in p.stdout.splitlines()]
    mine = [e for e in entries if e.get("session") == "mount"]
    acts = [e["action"] for e in mine]
    assert acts.count("create") == 2 and acts.count("unlink") == 1, acts
    (un,) = [e for e in mine if e["action"] == "unlink"]
    assert un["path"].startswith("main/") and un["path"].endswith(".txt"), un
    (odd,) = [e for e in mine if e["action"] == "create" and e["pid"] == pid]
    assert odd["path"] == "main/by-odd-comm" and odd["comm"].startswith("kk"), odd
    t, j = aud.verify()
    assert t.returncode == 0 and j["problems"] == 0, t.stdout


# ---------------------------------------------------------------- 2. verify names tampering

@pytest.fixture(scope="module")
def base_log():
    """A vault with an auditor and one mount session of 9 entries, built once;
    each tampering test works on its own copy."""
    d = tempfile.mkdtemp(prefix="kinko-audbase-")
    rd = tempfile.mkdtemp(prefix="kr-")
    mp = pytest.MonkeyPatch()
    try:
        os.makedirs(os.path.join(d, "st"))
        mp.setenv("KINKO_STATE_DIR", os.path.join(d, "st"))
        mp.setenv("KINKO_RUN_DIR", rd)
        v = Vault(d)
        aud = add_auditor(v)
        mnt, dpid = mount(v)
        for i in range(3):
            with open(os.path.join(mnt, "main", f"f{i}"), "w") as f:
                f.write("x" * (i + 1))
        unmount(v, mnt, dpid)
        (seg,) = [p for p in seg_files(v) if parse_seg(p)["kind"] == "mount"]
        assert len(parse_seg(seg)["records"]) == 9   # mount, 3 x (create, release), unmount, end
        yield d, os.path.relpath(seg, v.path), aud.pwfile
    finally:
        mp.undo()
        for m in glob.glob(os.path.join(d, "mnt-*")):
            umount(m)
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(rd, ignore_errors=True)


@pytest.fixture
def tlog(base_log, tmpbase):
    d, segrel, _ = base_log
    dst = os.path.join(tmpbase, "copy")
    shutil.copytree(d, dst, symlinks=True,
                    ignore=shutil.ignore_patterns("mnt-*", "st"))
    v = Vault.__new__(Vault)
    v.base, v.path, v.user, v.mounts = dst, os.path.join(dst, "vault"), "alice", []
    v.pwfile = os.path.join(dst, "pw-alice")
    aud = Auditor(v, "audrey", os.path.join(dst, "pw-audrey"))
    seg = os.path.join(v.path, segrel)
    return v, aud, seg, seg_name(v, seg), parse_seg(seg)


def assert_one_problem(aud, segname, entry, needle):
    t, j = aud.verify()
    assert t.returncode == 9, f"rc={t.returncode}\n{t.stdout}\n{t.stderr}"
    assert j["problems"] == 1 and len(j["issues"]) == 1, json.dumps(j, indent=1)
    (iss,) = j["issues"]
    assert (iss["segment"], iss["entry"]) == (segname, entry), iss
    assert needle in iss["problem"], iss
    lines = verify_problem_lines(t.stdout + t.stderr)
    assert lines == [f"kinko: audit/{segname}: entry {entry}: {iss['problem']}"], t.stdout
    assert "1 problem(s)" in t.stdout, t.stdout
    return iss


def test_verify_untouched_log_is_clean(tlog):
    v, aud, seg, name, s = tlog
    n0 = sum(len(x["records"]) for x in map(parse_seg, seg_files(v)) if "audrey" in x["recipients"])
    pj = aud.run("verify", "--json")
    assert pj.returncode == 0, pj.stdout + pj.stderr
    # every entry of every segment sealed to the auditor was verified
    assert json.loads(pj.stdout)["entries"] == n0 >= 9 + 2, (pj.stdout, n0)
    t, j = aud.verify()
    assert t.returncode == 0, t.stdout + t.stderr
    assert re.search(r"\b0 problem\(s\)", t.stdout), t.stdout
    assert not verify_problem_lines(t.stdout + t.stderr)
    assert j["problems"] == 0 and j["issues"] == []
    # a closed session leaves no note about a crash
    assert not [n for n in j["notes"] if n["segment"] == name], j["notes"]


def test_verify_detects_edited_ciphertext(tlog):
    v, aud, seg, name, s = tlog
    recs = list(s["records"])
    seq, raw = recs[2]
    b = bytearray(raw)
    b[12 + 5] ^= 0x01          # one byte inside entry 3's ciphertext
    recs[2] = (seq, bytes(b))
    write_seg(seg, s["header"], recs)
    assert_one_problem(aud, name, 3, "edited")
    # show also reports it, and shows every other entry of the segment
    p = aud.run("show", "--json")
    assert p.returncode == 9, p.stderr
    assert f"kinko: audit/{name}: entry 3: " in p.stderr
    got = sorted(e["seq"] for e in map(json.loads, p.stdout.splitlines()) if e["segment"] == name)
    assert got == [1, 2, 4, 5, 6, 7, 8, 9]


def test_verify_detects_deleted_entry(tlog):
    v, aud, seg, name, s = tlog
    recs = [r for r in s["records"] if r[0] != 4]
    write_seg(seg, s["header"], recs)
    assert_one_problem(aud, name, 4, "gap: entry 4 missing")


def test_verify_detects_swapped_entries(tlog):
    v, aud, seg, name, s = tlog
    recs = list(s["records"])
    recs[4], recs[5] = recs[5], recs[4]     # entries 5 and 6
    write_seg(seg, s["header"], recs)
    iss = assert_one_problem(aud, name, 5, "out of order")
    assert "after entry 6" in iss["problem"]


def test_verify_detects_truncation_at_record_boundary(tlog):
    v, aud, seg, name, s = tlog
    write_seg(seg, s["header"], s["records"][:6])
    iss = assert_one_problem(aud, name, 7, "truncated")
    # the head says 9, the segment holds 6
    assert re.search(r"\b9\b", iss["problem"]) and re.search(r"\b6\b", iss["problem"]), iss


def test_verify_detects_segment_copied_to_other_host(tlog):
    v, aud, seg, name, s = tlog
    month = os.path.basename(os.path.dirname(seg))
    other = os.path.join(v.path, "audit", "otherhost", month)
    os.makedirs(other)
    shutil.copy2(seg, other)
    shutil.copy2(seg + ".head", other)
    copied = f"otherhost/{month}/{os.path.basename(seg)}"
    t, j = aud.verify()
    assert t.returncode == 9, t.stdout + t.stderr
    want = f"of host '{HOST}' found under 'otherhost'"
    hits = [i for i in j["issues"] if i["segment"] == copied and want in i["problem"]]
    assert hits and hits[0]["entry"] == 0, json.dumps(j, indent=1)
    # the original is not blamed
    assert all(i["segment"] == copied for i in j["issues"]), j["issues"]
    assert f"kinko: audit/{copied}: entry 0: segment {want}" in t.stdout, t.stdout


def test_verify_detects_segment_copied_within_the_host(tlog):
    """A whole session replayed: the same segment (same session id, same MACs)
    under a second name in its own host directory doubles every entry."""
    v, aud, seg, name, s = tlog
    month = os.path.basename(os.path.dirname(seg))
    y, mo = map(int, month.split("-"))
    earlier = f"{y - (mo == 1):04d}-{(mo - 2) % 12 + 1:02d}"
    other = os.path.join(v.path, "audit", HOST, earlier)
    os.makedirs(other)
    shutil.copy2(seg, other)
    shutil.copy2(seg + ".head", other)
    copied = f"{HOST}/{earlier}/{os.path.basename(seg)}"
    # audit show lists the 9 replayed entries as if they had happened twice, so
    # verify must name the copy (its session id is that of another segment)
    t, j = aud.verify()
    assert t.returncode == 9, t.stdout + t.stderr
    assert any(i["segment"] in (copied, name) for i in j["issues"]), json.dumps(j, indent=1)


def test_verify_detects_deleted_segment_whose_head_remains(tlog):
    """The segment of a whole mount session deleted; its head file (count 9,
    closed) is still there."""
    v, aud, seg, name, s = tlog
    os.unlink(seg)
    t, j = aud.verify()
    assert t.returncode == 9, t.stdout + t.stderr
    assert any(i["segment"] == name for i in j["issues"]), json.dumps(j, indent=1)
    assert f"kinko: audit/{name}: entry " in t.stdout


def anchors_for(v, path, upto=None):
    """A syslog line as the writer logs a checkpoint: vault id, segment,
    entries, first 16 bytes of the last entry's MAC."""
    s = parse_seg(path)
    recs = s["records"][:upto] if upto else s["records"]
    vid = s["header"][8:24].hex()
    tag = recs[-1][1][-32:-16].hex()
    return (f"Nov 25 20:00:00 {HOST} kinko[1]: kinko-audit checkpoint vault={vid} "
            f"seg={seg_name(v, path)} entries={len(recs)} tag={tag}\n")


def test_verify_with_syslog_checkpoints(tlog):
    v, aud, seg, name, s = tlog
    anchors = os.path.join(v.base, "syslog.txt")
    with open(anchors, "w") as f:
        f.write("unrelated line\n" + anchors_for(v, seg, upto=4) + anchors_for(v, seg))
    p = aud.run("verify", "--json", "--anchors", anchors)
    assert p.returncode == 0 and json.loads(p.stdout)["problems"] == 0, p.stdout + p.stderr
    # truncated to 6 entries and the head deleted: the checkpoint still knows 9
    write_seg(seg, s["header"], s["records"][:6])
    os.unlink(seg + ".head")
    p = aud.run("verify", "--json", "--anchors", anchors)
    assert p.returncode == 9, p.stdout + p.stderr
    probs = [(i["segment"], i["entry"], i["problem"]) for i in json.loads(p.stdout)["issues"]]
    assert (name, 0, "head file missing (segment truncated or replaced?)") in probs, probs
    assert any(sg == name and n == 7 and "syslog checkpoint" in pr for sg, n, pr in probs), probs
    # the whole segment gone: only the checkpoint remembers it
    os.unlink(seg)
    p = aud.run("verify", "--json", "--anchors", anchors)
    assert p.returncode == 9, p.stdout + p.stderr
    probs = [(i["segment"], i["problem"]) for i in json.loads(p.stdout)["issues"]]
    assert probs and all(sg == name and "missing" in pr for sg, pr in probs), probs


# ---------------------------------------------------------------- 3. sealed to auditors only

def test_staff_keys_cannot_read_the_log(tmpbase):
    v = Vault(tmpbase)
    add_auditor(v)
    staff_pw = enrol(v, "bob", "staff", STAFF_PW)
    ok(admin(v, "grant", "bob", "main"))
    secret_name, secret_dir, body = "geheimplan-7Q.txt", "personal-records", "content-XYZZY-4711"
    mnt, dpid = mount(v)
    os.mkdir(os.path.join(mnt, "main", secret_dir))
    with open(os.path.join(mnt, "main", secret_dir, secret_name), "w") as f:
        f.write(body)
    os.setxattr(os.path.join(mnt, "main", secret_dir, secret_name), "user.classified", b"1")
    unmount(v, mnt, dpid)
    mnt, dpid = mount(v, "bob", staff_pw)
    with open(os.path.join(mnt, "main", secret_dir, secret_name)) as f:
        assert f.read() == body
    unmount(v, mnt, dpid)
    staff = Auditor(v, "bob", staff_pw)

    # without the test hook a staff user is refused (and that is logged)
    refused(staff.run("show", "--json"), 7)
    refused(staff.run("verify"), 7)
    refused(staff.run("export", "--format", "jsonl"), 7)
    # nor is the administrator the log's reader while there are auditors
    refused(Auditor(v, "alice", v.pwfile).run("show", "--json"), 7, "auditor")

    # past the role check, bob's keys open no segment
    any_role = env_with(KINKO_TEST_AUDIT_ANY_ROLE=1)
    segs = [seg_name(v, p) for p in seg_files(v)]
    p = staff.run("show", "--json", env=any_role)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "", p.stdout
    t, j = staff.verify(env=any_role)
    assert t.returncode == 0 and j["problems"] == 0 and j["entries"] == 0, j
    notes = {n["segment"]: n["note"] for n in j["notes"]}
    for sname in segs:   # every segment, including bob's own mount session
        assert sname in notes and notes[sname].startswith("not sealed to bob"), (sname, notes)
        # sealed to the auditor, or (kinko init, before any auditor) to the admin
        assert "audrey" in notes[sname] or "readable by: alice)" in notes[sname], notes[sname]
    assert sum("readable by: alice)" in n for n in notes.values()) == 1, notes
    assert "not sealed to bob" in t.stdout

    # the auditor reads everything, bob's refused attempts included
    entries = Auditor(v, "audrey", os.path.join(v.base, "pw-audrey")).show()
    assert any(e["user"] == "bob" and e["action"] == "open" and
               e.get("path") == f"main/{secret_dir}/{secret_name}" for e in entries)
    reviews = [e for e in entries if e["user"] == "bob" and e["action"] == "audit-review"]
    refusals = [e for e in reviews if e["result"] == "denied"]
    assert len(refusals) == 3 and all(e["reason"] == "permission" for e in refusals), reviews
    assert [e for e in entries if e["user"] == "alice" and e["action"] == "audit-review"
            and e["result"] == "denied"], "the administrator's refused review is not logged"
    # and the segment bytes hold no plaintext name, path, attribute or content
    raw = b"".join(open(p, "rb").read() for p in glob.glob(
        os.path.join(v.path, "audit", "**", "*"), recursive=True) if os.path.isfile(p))
    for s in (secret_name, secret_dir, "geheimplan", "user.classified", body, "main/",
              tmpbase, os.path.basename(mnt), "audit-review", "setxattr"):
        assert s.encode() not in raw, s


# ---------------------------------------------------------------- 4. reviews, admin, unlocks

def test_reviews_admin_commands_and_refused_unlocks_are_logged(tmpbase):
    v = Vault(tmpbase)
    a1 = add_auditor(v, "audrey", AUD_PW)
    a2 = add_auditor(v, "yuki", AUD2_PW)
    enrol(v, "bob", "staff", STAFF_PW)
    ok(admin(v, "grant", "bob", "main", "--read-only"))
    bad = write_pw(tmpbase, "bad", "not-the-Password-1")
    mnt = tempfile.mkdtemp(dir=tmpbase)
    p = kinko("mount", v.path, mnt, "--user", "alice", "--password-file", bad)
    assert p.returncode == 6 and not is_mounted(mnt), p.stderr

    # the first auditor looks at alice's entries
    ok(a1.run("show", "--user", "alice"))
    ok(a1.run("verify"))
    seen = a2.show("--action", "audit-review")
    by_a1 = sorted((e for e in seen if e["user"] == "audrey"), key=lambda e: e["time"])
    assert [e["review"] for e in by_a1] == ["show", "verify"], by_a1
    sh = by_a1[0]
    assert sh["filter_user"] == "alice" and sh["result"] == "ok" and sh["session"] == "cli"
    assert "audit show --user alice" in sh["command"] and sh["comm"] == "kinko"
    assert isinstance(sh["entries_shown"], int) and sh["entries_shown"] > 0
    assert "filter_user" not in by_a1[1]
    # and the first auditor sees the second's review in turn
    seen1 = a1.show("--user", "yuki", "--action", "audit-review")
    assert [(e["review"], e.get("filter_action")) for e in seen1] == [("show", "audit-review")]

    entries = a1.show()
    adm = [e for e in entries if e["action"] == "admin"]
    for want in ("user add audrey --role auditor", "user add yuki --role auditor",
                 "user add bob --role staff", "grant bob main --read-only"):
        hit = [e for e in adm if want in e["command"]]
        assert len(hit) == 1, (want, [e["command"] for e in adm])
        assert (hit[0]["user"], hit[0]["result"]) == ("alice", "ok"), hit[0]
    unl = [e for e in entries if e["action"] == "unlock" and e["session"] == "cli"]
    assert len(unl) == 1, unl
    u = unl[0]
    assert (u["user"], u["result"], u["reason"], u["error"]) == \
        ("alice", "denied", "password", "EACCES"), u
    assert f"mount {v.path} {mnt}" in u["command"], u
    assert "path" not in u


def test_refused_admin_command_is_logged(tmpbase):
    """A staff member trying administration is refused (exit 7); the attempt is
    an access attempt and belongs in the log like a refused review does."""
    v = Vault(tmpbase)
    aud = add_auditor(v)
    bob_pw = enrol(v, "bob", "staff", STAFF_PW)
    refused(admin(v, "user", "add", "eve", "--role", "admin", as_user="bob", pwfile=bob_pw), 7)
    refused(admin(v, "grant", "bob", "main", as_user="bob", pwfile=bob_pw), 7)
    refused(kinko("audit", "show", "--vault", v.path, "--as", "bob", "--password-file", bob_pw), 7)
    entries = aud.show("--user", "bob")
    # the refused review is there ...
    assert [(e["action"], e["result"], e["reason"]) for e in entries
            if e["action"] == "audit-review"] == [("audit-review", "denied", "permission")]
    # ... and so must be the refused administration, with its command line
    adm = [e for e in entries if e["action"] == "admin"]
    assert sorted(("user add eve" in e["command"], "grant bob main" in e["command"]) for e in adm) \
        == [(False, True), (True, False)], entries
    assert all((e["result"], e["reason"]) == ("denied", "permission") for e in adm), adm


# ---------------------------------------------------------------- 5. filters and exports

@pytest.fixture
def two_day_log(tmpbase):
    """alice's and bob's mount sessions an hour apart on 2031-03-10 (test clock),
    with reads, writes, a rename and denials, plus today's administration."""
    v = Vault(tmpbase)
    ok(admin(v, "policy", "set", "password.mode", "long"))
    aud = add_auditor(v)
    bob_pw = enrol(v, "bob", "staff", STAFF_PW)
    ok(admin(v, "grant", "bob", "main"))
    mnt, dpid = mount(v, env=env_with(KINKO_TEST_NOW=T1))
    c = os.path.join(mnt, "main")
    with open(os.path.join(c, "a.txt"), "w") as f:
        f.write("alpha")
    os.mkdir(os.path.join(c, "sub"))
    with open(os.path.join(c, "sub", "b.log"), "w") as f:
        f.write("beta")
    assert prog("cat", os.path.join(c, "a.txt"))[1] == 0
    os.rename(os.path.join(c, "sub", "b.log"), os.path.join(c, "sub", "b2.txt"))
    ok(kinko("lock", mnt))
    assert prog("cat", os.path.join(c, "a.txt"))[1] != 0
    unmount(v, mnt, dpid)
    mnt, dpid = mount(v, "bob", bob_pw, env=env_with(KINKO_TEST_NOW=T1 + 3600))
    c = os.path.join(mnt, "main")
    with open(os.path.join(c, "c.txt"), "w") as f:
        f.write("gamma")
    assert prog("cat", os.path.join(c, "a.txt"))[1] == 0
    unmount(v, mnt, dpid)
    return v, aud


def ts(e):
    return calendar.timegm(time.strptime(e["time"][:19], "%Y-%m-%dT%H:%M:%S"))


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


FILTERS = [
    (("--user", "bob"), lambda e: e["user"] == "bob"),
    (("--path", "main/sub/*"),
     lambda e: any(fnmatch.fnmatchcase(e.get(k) or "\0", "main/sub/*") for k in ("path", "path2"))),
    (("--path", "*.txt"),
     lambda e: any(fnmatch.fnmatchcase(e.get(k) or "\0", "*.txt") for k in ("path", "path2"))),
    (("--action", "create"), lambda e: e["action"] == "create"),
    (("--result", "denied"), lambda e: e["result"] == "denied"),
    (("--since", iso(T1 + 1800)), lambda e: ts(e) >= T1 + 1800),
    (("--until", iso(T1 + 1800)), lambda e: ts(e) < T1 + 1800),
    (("--since", "2031-03-10", "--until", "2031-03-11"),
     lambda e: T1 - 12 * 3600 <= ts(e) < T1 + 12 * 3600),
    (("--user", "alice", "--action", "open", "--result", "ok"),
     lambda e: (e["user"], e["action"], e["result"]) == ("alice", "open", "ok")),
]


def test_show_filters_select_exactly_the_matching_entries(two_day_log):
    v, aud = two_day_log
    base = aud.show()
    basekeys = {key(e) for e in base}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert {e["time"][:10] for e in base} >= {"2031-03-10", today}
    for args, pred in FILTERS:
        want = [key(e) for e in base if pred(e)]
        assert want and len(want) < len(base), (args, "filter test needs both kinds")
        got = aud.show(*args)
        assert [key(e) for e in got if key(e) in basekeys] == want, args
        # entries written after the baseline (the reviews themselves) match too
        for e in got:
            assert pred(e), (args, e)
    # bad filters are usage errors
    for bad in (("--since", "last week"), ("--until", "2031-13-45"), ("--result", "maybe")):
        refused(aud.run("show", *bad), 2)
    # the denials are the create/open refusals of the locked mount, nothing else
    den = aud.show("--result", "denied", "--user", "alice")
    assert den and all(e.get("reason") == "locked" for e in den if e["session"] == "mount")


def test_export_csv_and_jsonl(two_day_log):
    v, aud = two_day_log
    base = aud.show()
    p = ok(aud.run("export", "--format", "csv"))
    rows = list(csv.reader(io.StringIO(p.stdout)))
    header = rows[0]
    for col in ("time", "clock_synced", "user", "uid", "pid", "comm", "host", "machine_id",
                "action", "path", "path2", "result", "reason", "bytes_read", "bytes_written",
                "segment", "seq"):
        assert col in header, header
    recs = [dict(zip(header, r)) for r in rows[1:]]
    assert all(len(r) == len(header) for r in rows), "ragged CSV"
    byk = {(r["segment"], int(r["seq"])): r for r in recs}
    assert set(byk) >= {key(e) for e in base}
    for e in base:
        r = byk[key(e)]
        for col in ("time", "user", "action", "result", "host", "machine_id", "segment"):
            assert r[col] == str(e[col]), (col, r, e)
        for col in ("path", "path2", "reason", "comm"):
            assert r[col] == (e.get(col) or ""), (col, r, e)
        assert r["clock_synced"] == ("true" if e["clock_synced"] else "false")
        assert int(r["uid"]) == e["uid"] and int(r["pid"]) == e["pid"]
        if e["action"] == "release":
            assert (int(r["bytes_read"]), int(r["bytes_written"])) == \
                (e["bytes_read"], e["bytes_written"])
        else:
            assert r["bytes_read"] == r["bytes_written"] == ""
    # filters apply to exports, and --out writes a file
    out = os.path.join(v.base, "export.jsonl")
    ok(aud.run("export", "--format", "jsonl", "--user", "bob", "--out", out))
    with open(out) as f:
        lines = [json.loads(ln) for ln in f if ln.strip()]
    want = [e for e in base if e["user"] == "bob"]
    assert [e for e in lines if key(e) in {key(x) for x in base}] == want
    assert all(e["user"] == "bob" for e in lines)
    # an existing export is not overwritten
    before = open(out).read()
    assert aud.run("export", "--format", "jsonl", "--out", out).returncode != 0
    assert open(out).read() == before
    refused(aud.run("export", "--format", "xml"), 2)


# ---------------------------------------------------------------- 6. retention

def test_prune_keeps_the_retention_period(tmpbase):
    v = Vault(tmpbase)
    ok(admin(v, "policy", "set", "password.mode", "long"))
    aud = add_auditor(v)
    mnt, dpid = mount(v)
    unmount(v, mnt, dpid)
    now = time.time()
    y, mo = time.gmtime(now)[:2]
    month = f"{y:04d}-{mo:02d}"
    nxt = f"{y + mo // 12:04d}-{mo % 12 + 1:02d}"
    mdir = os.path.join(v.path, "audit", HOST, month)
    segs_before = set(os.listdir(mdir))
    assert any(n.endswith(".kal") for n in segs_before)

    p = aud.run("prune", "--before", nxt)
    refused(p, 7, month, "audit.retention_years")
    assert segs_before <= set(os.listdir(mdir))
    # four years on: still inside the five years
    p = aud.run("prune", "--before", nxt, env=env_with(KINKO_TEST_NOW=int(now + 4 * YEAR)))
    refused(p, 7, month)
    assert segs_before <= set(os.listdir(mdir))
    # the refusals are logged
    pr = aud.show("--action", "audit-prune")
    assert [(e["result"], e["reason"], e["before"]) for e in pr] == \
        [("denied", "retention", nxt)] * 2, pr

    later = env_with(KINKO_TEST_NOW=int(now + 7 * YEAR))
    p = ok(aud.run("prune", "--before", nxt, env=later))
    assert "removed 1 month(s)" in p.stdout, p.stdout
    assert not os.path.exists(mdir)
    left = [seg_name(v, s) for s in seg_files(v)]
    assert left and all(not s.startswith(f"{HOST}/{month}/") for s in left), left
    entries = aud.show(env=later)
    assert all(not e["segment"].startswith(f"{HOST}/{month}/") for e in entries)
    pr = [e for e in entries if e["action"] == "audit-prune"]
    # the refusal four years on is in a later month and stays; the prune is logged
    assert sorted((e["result"], e["before"]) for e in pr) == [("denied", nxt), ("ok", nxt)], pr
    t, j = aud.verify(env=later)
    assert t.returncode == 0 and j["problems"] == 0, t.stdout


# ---------------------------------------------------------------- 7. two mounts at once

def test_two_mounts_write_separate_segments_that_verify(tmpbase):
    v = Vault(tmpbase)
    aud = add_auditor(v)
    staff_pw = enrol(v, "bob", "staff", STAFF_PW)
    ok(admin(v, "grant", "bob", "main"))
    m1, p1 = mount(v)
    m2, p2 = mount(v)
    # bob's mount is reachable by other local users: the audit names their uid
    pub = tempfile.mkdtemp(prefix="kinko-pub-")
    try:
        os.chmod(pub, 0o755)
        m3, p3 = mount(v, "bob", staff_pw, mnt=os.path.join(pub, "m"), extra=("-o", "allow_other"))
        for m, name in ((m1, "one"), (m2, "two"), (m3, "three"), (m1, "one-b"), (m2, "two-b")):
            with open(os.path.join(m, "main", name), "w") as f:
                f.write(name)
        for m in (m1, m2, m3):
            assert sorted(os.listdir(os.path.join(m, "main"))) == \
                sorted(["one", "two", "three", "one-b", "two-b"])
        os.chmod(os.path.join(m3, "main"), 0o755)
        nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 "cat", os.path.join(m3, "main", "three")],
                                capture_output=True, text=True)
        assert nobody.stdout == "three", nobody.stderr
        for m, p in ((m1, p1), (m2, p2), (m3, p3)):
            unmount(v, m, p)
    finally:
        umount(os.path.join(pub, "m"))
        shutil.rmtree(pub, ignore_errors=True)
    t, j = aud.verify()
    assert t.returncode == 0 and j["problems"] == 0, t.stdout
    entries = aud.show()
    segs = by_segment(entries)
    ms = {es[0]["mountpoint"]: (s, es) for s, es in segs.items() if es[0]["action"] == "mount"}
    assert set(ms) == {os.path.realpath(m) for m in (m1, m2, m3)}
    assert len({s for s, _ in ms.values()}) == 3
    for m, pid, user, names in ((m1, p1, "alice", ["one", "one-b"]),
                                (m2, p2, "alice", ["two", "two-b"]),
                                (m3, p3, "bob", ["three"])):
        s, es = ms[os.path.realpath(m)]
        assert [e["seq"] for e in es] == list(range(1, len(es) + 1))
        assert all(e["user"] == user for e in es)
        assert es[0]["pid"] == pid and es[-1]["action"] == "session-end"
        assert [e["path"] for e in es if e["action"] == "create"] == [f"main/{n}" for n in names]
        assert not [n for n in j["notes"] if n["segment"] == s], j["notes"]
        seg = parse_seg(os.path.join(v.path, "audit", s))
        assert (seg["kind"], seg["user"], seg["host"]) == ("mount", user, HOST)
        assert "audrey" in seg["recipients"] and "bob" not in seg["recipients"], seg["recipients"]
        for e in es:
            want_uid = 65534 if e.get("comm") == "cat" else os.getuid()
            assert e["uid"] == want_uid, e
    s3 = ms[os.path.realpath(m3)][1]
    cat = [(e["action"], e["path"], e["uid"], e.get("bytes_read")) for e in s3
           if e.get("comm") == "cat"]
    assert cat == [("open", "main/three", 65534, None), ("release", "main/three", 65534, 5)], s3
