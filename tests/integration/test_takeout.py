"""Approved take-out (持出し, issue 7) through the real CLI and real mounts:
request -> approve -> export to a registered medium -> mount the take-out
vault within its period -> read -> close, with the audit log of the take-out
mount merged into the main vault's; every refusal of the issue (export
without approval, of files not approved, to another medium, mount before or
after the period, mount by another user, self-approval, ...), list/show,
report-lost, the overdue check and request validation.

Time comes from the test-build clock override KINKO_TEST_NOW (unix seconds)
in the environment of every command and mount daemon, with TZ=UTC so that a
DATE means 00:00 UTC. A removable medium is a plain directory that a private
kinko.conf(5) (KINKO_CONFIG) names in removable_paths and maps to the
registered serial in its [media] section."""
import calendar
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from kinko_util import (PASSWORD, Vault, fake_guard, is_mounted, kinko, ok, refused, rbytes,
                        umount, wait_for_mount, write_pw)

ADM_PW = PASSWORD
ADM2_PW = "Hv4%Rt8-Yk2m-Qz6"
ADM3_PW = "Gt5*Np2-Wc8v-Lh3"
AUD_PW = "Mq7#Wv2-Lp9x-Tr4"
ALICE_PW = "Bn6@Qs3-Xe7w-Jc1"
BOB_PW = "Zr4$Kt8-Qn3w-Pd5"
CAROL_PW = "Wy3&Lm9-Fb6s-Ke2"

DAY = 86400


def ts(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s))


NOW = ts(2026, 12, 1, 12)            # the test clock of every command
REAL = object()                      # no clock override: the real clock
PURPOSE = "顧客訪問での説明資料 (customer visit)"

# the JSON object of a take-out (list/show), as the spec lists the keys
KEYS = {"id", "state", "overdue", "requester", "name", "dept", "contact", "files", "medium",
        "purpose", "from", "until", "requested", "approved_by", "approved", "rejected_by",
        "rejected", "reason", "exported", "export_vault", "export_files", "export_bytes",
        "closed", "closed_by", "audit_segments", "lost", "lost_by", "note"}

# files of the main vault: requested ones and ones that must stay behind
A_TXT = "営業資料: 顧客一覧 2026年12月\n".encode() * 50
B_BIN = rbytes(200_000, 7)
CSV = "氏名,給与\n山田,1\n".encode() * 300
OTHER = b"not requested: stays in the vault\n"
HR_OTHER = b"hr: not requested either\n"


# ---------------------------------------------------------------- the site

class Site:
    """Main vault: adm + adm2 (admins), audrey (auditor), alice and bob (staff,
    with name/dept/contact in their user records), compartments main and hr
    (alice holds both, bob only main), media USB-1 (serial SIM-SERIAL-1, the
    directory usb1) and USB-2 (SIM-SERIAL-2, usb2), and a few files."""

    def __init__(self, base, template=None, state_dir=None, clock=NOW):
        self.base = base
        self.state_dir = state_dir
        self.clock = clock           # the default "now" of every command; REAL: the real clock
        self.run_dir = os.path.join(base, "r")
        os.makedirs(self.run_dir, mode=0o700)
        self.usb1 = os.path.join(base, "usb1")
        self.usb2 = os.path.join(base, "usb2")
        self.local = os.path.join(base, "local")     # on no registered medium
        for d in (self.usb1, self.usb2, self.local):
            os.makedirs(d)
        self.conf = os.path.join(base, "kinko.conf")
        with open(self.conf, "w") as f:
            f.write("# two directories playing USB sticks\n"
                    f"removable_paths = {self.usb1}, {self.usb2}\n"
                    "\n[media]\n"
                    f"SIM-SERIAL-1 = {self.usb1}\n"
                    f"SIM-SERIAL-2 = {self.usb2}\n")
        self.guard_sock = os.path.join(base, "no-guard.sock")   # no guard runs
        self.mounts = []
        if template is not None:
            # a copy of a site made once per module (the setup takes ~10 s)
            self.path = os.path.join(base, "vault")
            shutil.copytree(template.path, self.path, symlinks=True)
            self.pw = {}
            for uid, f in template.pw.items():
                self.pw[uid] = os.path.join(base, os.path.basename(f))
                shutil.copy(f, self.pw[uid])
            return
        self.path = Vault(base, user="adm", password=ADM_PW).path
        self.pw = {"adm": os.path.join(base, "pw-adm")}
        ok(self.admin("compartment", "create", "hr", "--class", "himitsu"))
        self.add_user("adm2", "admin", ADM2_PW, "鈴木次郎", "情報システム部", "内線2000")
        self.add_user("audrey", "auditor", AUD_PW, "監査花子", "監査室", "内線3000")
        self.add_user("alice", "staff", ALICE_PW, "山田花子", "経理部", "内線1234")
        self.add_user("bob", "staff", BOB_PW, "佐藤一郎", "営業部", "内線5678")
        ok(self.admin("grant", "alice", "main"))
        ok(self.admin("grant", "alice", "hr"))
        ok(self.admin("grant", "bob", "main"))
        ok(self.admin("media", "register", "USB-1", "--kind", "usb", "--serial", "SIM-SERIAL-1",
                      "--label", "持出し用1", "--location", "金庫A", "--holder", "alice"))
        ok(self.admin("media", "register", "USB-2", "--kind", "usb", "--serial", "SIM-SERIAL-2",
                      "--label", "持出し用2", "--location", "金庫A", "--holder", "bob"))
        p, mnt = self.mount(self.path, "adm")
        ok(p)
        try:
            os.makedirs(os.path.join(mnt, "main", "docs", "sub"))
            for rel, data in (("main/docs/a.txt", A_TXT), ("main/docs/sub/b.bin", B_BIN),
                              ("main/other.txt", OTHER), ("hr/kyuyo-2026.csv", CSV),
                              ("hr/hyoka.txt", HR_OTHER)):
                with open(os.path.join(mnt, rel), "wb") as f:
                    f.write(data)
        finally:
            self.unmount(mnt)

    # -- running kinko
    def env(self, now=None, tz="UTC", **extra):
        e = dict(os.environ)
        now = self.clock if now is None else now
        e.update(TZ=tz, KINKO_CONFIG=self.conf, KINKO_GUARD_SOCKET=self.guard_sock,
                 KINKO_RUN_DIR=self.run_dir)
        if now is not REAL:
            e["KINKO_TEST_NOW"] = str(now)
        if self.state_dir:
            e["KINKO_STATE_DIR"] = self.state_dir
        e.update(extra)
        return e

    def run(self, user, *args, now=None, env=None):
        """kinko ARGS --vault MAIN --as USER --password-file (USER's)"""
        return kinko(*args, "--vault", self.path, "--as", user, "--password-file",
                     self.pw[user], env=env or self.env(now))

    def admin(self, *args, now=None):
        return self.run("adm", *args, now=now)

    def tk(self, user, *args, now=None, env=None):
        return self.run(user, "takeout", *args, now=now, env=env)

    def add_user(self, uid, role, pw, name, dept, contact):
        secret = os.path.join(self.base, f"secret-{uid}")
        args = ["user", "add", uid, "--role", role, "--secret-file", secret]
        if name:
            args += ["--name", name]
        if dept:
            args += ["--dept", dept]
        if contact:
            args += ["--contact", contact]
        ok(self.admin(*args))
        pwf = write_pw(self.base, f"pw-{uid}", pw)
        ok(kinko("passwd", self.path, "--user", uid, "--password-file", secret,
                 "--new-password-file", pwf, env=self.env()))
        self.pw[uid] = pwf
        return pwf

    # -- mounts (of the main vault or of a take-out vault)
    def mount(self, vault_path, user, now=None, pwfile=None):
        """kinko mount VAULT MNT --user USER; (CompletedProcess, MNT)"""
        mnt = os.path.join(self.base, f"mnt-{user}-{time.monotonic_ns()}")
        os.makedirs(mnt)
        p = kinko("mount", vault_path, mnt, "--user", user, "--password-file",
                  pwfile or self.pw[user], env=self.env(now))
        if p.returncode == 0:
            wait_for_mount(mnt)
            self.mounts.append(mnt)
        return p, mnt

    def unmount(self, mnt):
        umount(mnt)
        assert not is_mounted(mnt)
        if mnt in self.mounts:
            self.mounts.remove(mnt)

    def cleanup(self):
        for m in list(self.mounts):
            umount(m)
        self.mounts = []

    # -- the take-out workflow
    def request(self, user="alice", files=("main/docs", "hr/kyuyo-2026.csv"), medium="USB-1",
                frm="2026-12-01", until="2026-12-03", now=None, extra=()):
        """A successful request with --json; returns its id."""
        p = ok(self.tk(user, "request", "--files", *files, "--medium", medium, "--purpose",
                       PURPOSE, "--from", frm, "--until", until, *extra, "--json", now=now))
        j = json.loads(p.stdout)
        assert re.fullmatch(r"T\d+", j["id"]), j
        return j["id"]

    def approved(self, **kw):
        tid = self.request(**kw)
        ok(self.tk("adm", "approve", tid, "--note", "承認"))
        return tid

    def exported(self, dest=None, now=None, **kw):
        """request + approve + export; (id, DIR)"""
        tid = self.approved(**kw)
        dest = dest or os.path.join(self.usb1, f"kinko-{tid}")
        ok(self.tk(kw.get("user", "alice"), "export", tid, "--to", dest, now=now))
        return tid, dest

    def show(self, tid, user="adm", now=None):
        return json.loads(ok(self.tk(user, "show", tid, "--json", now=now)).stdout)

    def listing(self, user="adm", *flags, now=None):
        j = json.loads(ok(self.tk(user, "list", *flags, "--json", now=now)).stdout)
        assert isinstance(j, list), j
        return j

    def ledger(self):
        return json.loads(ok(self.admin("ledger", "print", "--json")).stdout)

    def ledger_files(self):
        return sorted(glob.glob(os.path.join(self.path, "ledger", "*.klr")))

    def audit(self, *filters, now=None):
        p = ok(self.run("audrey", "audit", "show", "--json", *filters, now=now))
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def template():
    base = tempfile.mkdtemp(prefix="kinko-tk-")
    state = os.path.join(base, "state")
    os.makedirs(state)
    t = Site(os.path.join(base, "t"), state_dir=state)
    yield t
    t.cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def site(tmpbase, template):
    s = Site(tmpbase, template=template)
    yield s
    s.cleanup()


def tree_files(d):
    """relative paths of every regular file below d"""
    out = []
    for root, _, files in os.walk(d):
        out += [os.path.relpath(os.path.join(root, f), d) for f in files]
    return sorted(out)


def empty_or_absent(d):
    return not os.path.exists(d) or os.listdir(d) == []


def read(path):
    with open(path, "rb") as f:
        return f.read()


def alert_hook(site, name="alerts"):
    """policy alert_command = a script appending each alert (one JSON object on
    stdin) to a file as one line; returns a reader of the alerts so far."""
    out = os.path.join(site.base, name + ".jsonl")
    hook = os.path.join(site.base, name + ".sh")
    with open(hook, "w") as f:
        f.write(f"#!/bin/sh\n{{ tr -d '\\n'; echo; }} >> {out}\n")
    os.chmod(hook, 0o755)
    ok(site.admin("policy", "set", "alert_command", hook))

    def alerts(n=1, timeout=5):
        t0 = time.time()
        while True:
            got = []
            if os.path.exists(out):
                got = [json.loads(l) for l in read(out).decode().splitlines() if l.strip()]
            if len(got) >= n or time.time() - t0 > timeout:
                return got
            time.sleep(0.1)
    return alerts


# ---------------------------------------------------------------- 1. the whole cycle

def test_whole_cycle(site):
    s = site
    nrec = len(s.ledger_files())
    # alice requests: a directory of main and a file of hr, medium USB-1
    p = ok(s.tk("alice", "request", "--files", "main/docs", "hr/kyuyo-2026.csv", "--medium",
                "USB-1", "--purpose", PURPOSE, "--from", "2026-12-01", "--until", "2026-12-03"))
    tid = f"T{nrec + 1}"      # "T" + the ledger sequence number of the request record
    assert f"kinko: take-out {tid} requested: 2 path(s) on medium USB-1" in p.stdout, p.stdout
    assert len(s.ledger_files()) == nrec + 1
    # the personal fields are sealed: no plaintext file name or person in the ledger
    raw = read(s.ledger_files()[-1])
    for secret in ("kyuyo-2026.csv", "main/docs", "山田花子", "経理部", "内線1234", "顧客訪問"):
        assert secret.encode() not in raw, f"{secret!r} readable in the ledger record"
    j = s.show(tid)
    assert j["state"] == "pending" and j["requester"] == "alice" and j["medium"] == "USB-1"
    assert (j["name"], j["dept"], j["contact"]) == ("山田花子", "経理部", "内線1234")
    assert sorted(j["files"]) == ["hr/kyuyo-2026.csv", "main/docs"]
    assert j["purpose"] == PURPOSE
    assert j["from"] == "2026-12-01T00:00:00Z"
    assert j["until"] in ("2026-12-04T00:00:00Z", "2026-12-03T23:59:59Z"), j["until"]

    ok(s.tk("adm", "approve", tid, "--note", "顧客訪問のため承認"))
    j = s.show(tid, user="alice")
    assert j["state"] == "approved" and j["approved_by"] == "adm" and j["approved"]

    dest = os.path.join(s.usb1, "takeout")
    p = ok(s.tk("alice", "export", tid, "--to", dest))
    m = re.search(rf"take-out {tid} exported to (\S+): (\d+) files, (\d+) bytes; usable "
                  r"(\S+) \.\. (\S+) by alice", p.stdout)
    assert m, p.stdout
    assert os.path.realpath(m.group(1)) == os.path.realpath(dest)
    assert int(m.group(2)) == 3 and int(m.group(3)) == len(A_TXT) + len(B_BIN) + len(CSV)
    assert m.group(4).startswith("2026-12-01"), m.group(4)
    # the medium holds a vault, no plaintext
    assert os.path.isfile(os.path.join(dest, "kinko.vault"))
    for root, _, files in os.walk(dest):
        for f in files:
            data = read(os.path.join(root, f))
            assert A_TXT[:30] not in data and CSV[:20] not in data, f"plaintext in {f}"
            assert b"kyuyo-2026" not in data, f"plaintext name in {f}"
    j = s.show(tid)
    assert j["state"] == "exported" and j["export_files"] == 3
    assert j["export_bytes"] == len(A_TXT) + len(B_BIN) + len(CSV)
    assert re.fullmatch(r"[0-9a-f]{32}", j["export_vault"] or ""), j["export_vault"]

    # mount the take-out vault within the period as alice and read with ordinary programs
    p, mnt = s.mount(dest, "alice", now=NOW + 3600)
    ok(p)
    assert sorted(os.listdir(mnt)) == ["hr", "main"]
    assert tree_files(os.path.join(mnt, "main")) == ["docs/a.txt", "docs/sub/b.bin"]
    assert tree_files(os.path.join(mnt, "hr")) == ["kyuyo-2026.csv"]
    cat = subprocess.run(["cat", os.path.join(mnt, "main", "docs", "a.txt")], capture_output=True)
    assert cat.returncode == 0 and cat.stdout == A_TXT
    assert read(os.path.join(mnt, "main", "docs", "sub", "b.bin")) == B_BIN
    assert subprocess.run(["cmp", "-s", "-", os.path.join(mnt, "hr", "kyuyo-2026.csv")],
                          input=CSV).returncode == 0
    assert not os.path.exists(os.path.join(mnt, "main", "other.txt"))
    assert not os.path.exists(os.path.join(mnt, "hr", "hyoka.txt"))
    # read-only grants: nothing can be written to the take-out
    w = subprocess.run(["sh", "-c", f"echo x >> {os.path.join(mnt, 'main', 'docs', 'a.txt')}"],
                       capture_output=True)
    assert w.returncode != 0, "a take-out file could be written"
    assert read(os.path.join(mnt, "main", "docs", "a.txt")) == A_TXT
    s.unmount(mnt)

    # close (the requester): the audit log comes home, the keys are destroyed
    ok(s.tk("alice", "close", tid, "--from", dest, now=NOW + 7200))
    p, mnt2 = s.mount(dest, "alice", now=NOW + 7300)
    assert p.returncode != 0, "the export still mounts after close"
    assert not is_mounted(mnt2)
    left = tree_files(dest) if os.path.isdir(dest) else []
    assert not [f for f in left if f.endswith(".key") or f.endswith(".grant")
                or f.startswith("keys/") or f.startswith("grants/")], left
    assert not [f for f in left if f.startswith("data/")], left
    j = s.show(tid, now=NOW + 7400)
    assert j["state"] == "closed" and j["closed_by"] == "alice" and j["closed"]
    assert j["overdue"] is False and j["audit_segments"] == 1, j

    # the take-out mount's accesses are in the main vault's audit log, marked
    ents = s.audit(now=NOW + 7400)
    # (the CLI steps carry "takeout" too; the mount's entries sit in VAULT/audit/@takeout/ID/)
    tk = [e for e in ents if e.get("takeout") == tid and e.get("session") == "mount"]
    assert tk, "no audit entry of the take-out mount in the main vault's log"
    assert all(e["user"] == "alice" for e in tk), tk
    assert all(e["segment"].startswith(f"@takeout/{tid}/") for e in tk), tk
    assert os.path.isdir(os.path.join(s.path, "audit", "@takeout", tid))
    acts = {(e["action"], e.get("path")) for e in tk if e["result"] == "ok"}
    assert ("open", "main/docs/a.txt") in acts, acts
    assert ("release", "main/docs/a.txt") in acts, acts
    assert ("open", "hr/kyuyo-2026.csv") in acts, acts
    rel = [e for e in tk if e["action"] == "release" and e.get("path") == "main/docs/a.txt"]
    assert any(e.get("bytes_read") == len(A_TXT) for e in rel), rel
    # nothing of the main vault's own mounts is marked as the take-out's
    assert not [e for e in ents if e.get("takeout") == tid and e.get("path") == "main/other.txt"]
    v = s.run("audrey", "audit", "verify", now=NOW + 7400)
    assert v.returncode == 0, v.stdout + v.stderr

    # the ledger: request, approve, export, close, each signed by who did it
    recs = [r for r in s.ledger() if str(r["body"].get("event", "")).startswith("takeout-")]
    assert [(r["body"]["event"], r["signer"]) for r in recs] == [
        ("takeout-request", "alice"), ("takeout-approve", "adm"),
        ("takeout-export", "alice"), ("takeout-close", "alice")], recs
    assert recs[0]["seq"] == nrec + 1
    v = ok(s.admin("ledger", "verify"))
    assert "0 problem(s)" in v.stdout, v.stdout
    # nothing overdue now
    ok(kinko("takeout", "check", "--vault", s.path, env=s.env(NOW + 10 * DAY)))


def test_request_message_names_the_days(site):
    """The confirmation names the period as the user gave it (the spec's message):
    --until 2026-12-03 is printed as 2026-12-03, not as the next midnight."""
    s = site
    p = ok(s.tk("alice", "request", "--files", "main/docs", "hr/kyuyo-2026.csv", "--medium",
                "USB-1", "--purpose", PURPOSE, "--from", "2026-12-01", "--until", "2026-12-03"))
    assert re.search(r"kinko: take-out T\d+ requested: 2 path\(s\) on medium USB-1, 2026-12-01 \.\. "
                     r"2026-12-03; waiting for an administrator's approval", p.stdout), p.stdout


def test_close_by_admin_and_only_its_own_vault(site):
    """An admin may close; close checks DIR is the vault exported for that id."""
    s = site
    t1, d1 = s.exported()
    t2, d2 = s.exported(files=("main/docs/a.txt",))
    refused(s.tk("adm", "close", t1, "--from", d2), None, t1)
    assert s.show(t1)["state"] == "exported"
    assert glob.glob(os.path.join(d2, "keys", "*.key")), "the refused close destroyed keys"
    ok(s.tk("adm", "close", t1, "--from", d1))
    j = s.show(t1)
    assert j["state"] == "closed" and j["closed_by"] == "adm"
    # closing again is refused
    refused(s.tk("adm", "close", t1, "--from", d1), None)
    # t2 still mounts
    p, mnt = s.mount(d2, "alice")
    ok(p)
    assert tree_files(os.path.join(mnt, "main")) == ["docs/a.txt"]
    s.unmount(mnt)


# ---------------------------------------------------------------- 2. refusals

def test_export_without_approval_refused(site):
    s = site
    tid = s.request()
    dest = os.path.join(s.usb1, "x")
    refused(s.tk("alice", "export", tid, "--to", dest), 7, "pending")
    assert empty_or_absent(dest)
    assert s.show(tid)["state"] == "pending"
    assert "takeout-export" not in [r["body"].get("event") for r in s.ledger()]


def test_export_of_files_not_approved_refused(site):
    s = site
    tid = s.approved()
    dest = os.path.join(s.usb1, "x")
    refused(s.tk("alice", "export", tid, "--to", dest, "--files", "main/other.txt"), 7,
            f"not approved for take-out {tid}")
    assert empty_or_absent(dest)
    # a sibling whose name starts like an approved path is not below it
    refused(s.tk("alice", "export", tid, "--to", dest, "--files", "main/docs2"), 7)
    refused(s.tk("alice", "export", tid, "--to", dest, "--files", "hr"), 7,
            f"not approved for take-out {tid}")
    assert empty_or_absent(dest)
    assert s.show(tid)["state"] == "approved"
    # a path below an approved one is fine: only it is exported
    ok(s.tk("alice", "export", tid, "--to", dest, "--files", "main/docs/sub"))
    p, mnt = s.mount(dest, "alice")
    ok(p)
    assert os.listdir(mnt) == ["main"]
    assert tree_files(os.path.join(mnt, "main")) == ["docs/sub/b.bin"]
    assert read(os.path.join(mnt, "main", "docs", "sub", "b.bin")) == B_BIN
    s.unmount(mnt)
    assert s.show(tid)["export_files"] == 1


def test_export_to_another_medium_refused(site):
    s = site
    tid = s.approved()                         # for USB-1 (SIM-SERIAL-1)
    dest = os.path.join(s.usb2, "x")           # USB-2's directory (SIM-SERIAL-2)
    refused(s.tk("alice", "export", tid, "--to", dest), 7, "SIM-SERIAL-1", "SIM-SERIAL-2")
    assert empty_or_absent(dest)
    # a directory on no registered medium at all
    dest2 = os.path.join(s.local, "x")
    refused(s.tk("alice", "export", tid, "--to", dest2), 7, "SIM-SERIAL-1")
    assert empty_or_absent(dest2)
    assert s.show(tid)["state"] == "approved"
    # a not-empty directory on the right medium: exit 10
    dest3 = os.path.join(s.usb1, "full")
    os.makedirs(dest3)
    with open(os.path.join(dest3, "keep.txt"), "w") as f:
        f.write("mine\n")
    refused(s.tk("alice", "export", tid, "--to", dest3), 10)
    assert os.listdir(dest3) == ["keep.txt"]


def test_export_registers_the_guard_job_first(site):
    """kind "takeout" goes to the guard socket before a byte is written; a refusal stops it."""
    s = site
    with fake_guard(os.path.join(s.base, "g.sock")) as g:
        t1 = s.approved()
        t2 = s.approved()
        env = s.env(KINKO_GUARD_SOCKET=g.path)
        g.answer = {"ok": False, "error": "medium not mounted"}
        d1 = os.path.join(s.usb1, "g1")
        refused(s.tk("alice", "export", t1, "--to", d1, env=env), 7, "medium not mounted")
        assert empty_or_absent(d1)
        assert s.show(t1)["state"] == "approved"
        g.answer = {"ok": True}
        d2 = os.path.join(s.usb1, "g2")
        ok(s.tk("alice", "export", t2, "--to", d2, env=env))
        assert len(g.seen) == 2, g.seen
        req = g.seen[1]
        assert req["op"] == "register-job" and req["kind"] == "takeout", req
        assert req["medium"] == "USB-1" and req["user"] == "alice", req
        assert req["dest"] == os.path.realpath(d2), req
        assert req["vault"] == os.path.realpath(s.path), req


def test_mount_before_the_period_refused(site):
    s = site
    tid, dest = s.exported(frm="2026-12-05", until="2026-12-07")
    frm = ts(2026, 12, 5)
    p, mnt = s.mount(dest, "alice", now=frm - 60)
    refused(p, 7, f"take-out {tid} may be used from")
    assert not is_mounted(mnt)
    p, mnt = s.mount(dest, "alice", now=frm)          # from: allowed
    ok(p)
    assert read(os.path.join(mnt, "main", "docs", "a.txt")) == A_TXT
    s.unmount(mnt)


def test_mount_after_the_period_refused(site):
    s = site
    tid, dest = s.exported()                         # 2026-12-01 .. 2026-12-03 (UTC)
    end = ts(2026, 12, 4)
    p, mnt = s.mount(dest, "alice", now=end - 120)  # the last minutes: allowed
    ok(p)
    assert read(os.path.join(mnt, "hr", "kyuyo-2026.csv")) == CSV
    s.unmount(mnt)
    p, mnt = s.mount(dest, "alice", now=end)
    refused(p, 7, f"take-out {tid} ended at")
    assert not is_mounted(mnt)
    p, mnt = s.mount(dest, "alice", now=end + 30 * DAY)
    refused(p, 7, f"take-out {tid} ended at")


def test_mount_locked_when_the_period_ends(tmpbase):
    """A mount that outlives the period is locked when it ends (real clock: the
    daemon's test clock stands still)."""
    s = Site(tmpbase, clock=REAL)
    try:
        t0 = int(time.time())
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        end = t0 + 25
        tid, dest = s.exported(frm=iso(t0 - 60), until=iso(end))
        p, mnt = s.mount(dest, "alice")
        ok(p)
        assert read(os.path.join(mnt, "main", "docs", "a.txt")) == A_TXT
        assert time.time() < end - 2, "setup too slow for the period"
        time.sleep(max(0, end - time.time()) + 0.5)
        errs = {}
        for _ in range(60):                   # locked within a few seconds of the end
            try:
                read(os.path.join(mnt, "hr", "kyuyo-2026.csv"))
            except OSError as e:
                errs[e.errno] = errs.get(e.errno, 0) + 1
                break
            time.sleep(0.1)
        assert errs, "the take-out mount still serves files after its period ended"
        with pytest.raises(OSError):
            read(os.path.join(mnt, "main", "docs", "a.txt"))
        st = json.loads(ok(kinko("status", mnt, "--json", env=s.env())).stdout)
        assert st[0]["state"] != "unlocked", st
        s.unmount(mnt)
        p, mnt = s.mount(dest, "alice")
        refused(p, 7, f"take-out {tid} ended at")
    finally:
        s.cleanup()


def test_period_edited_on_the_medium_refused(site):
    """The period is in the take-out vault's signed policy: extending it by
    editing the file on the medium makes the vault refuse to mount."""
    s = site
    tid, dest = s.exported()                         # until end of 2026-12-03
    late = ts(2026, 12, 5)
    (pol,) = glob.glob(os.path.join(dest, "policy", "policy.*"))
    orig = read(pol)
    n = orig.count(b"2026-12-0")
    assert n >= 1, "the period is not in the take-out vault's policy"
    with open(pol, "wb") as f:
        f.write(orig.replace(b"2026-12-0", b"2027-12-0"))   # same length, a year later
    p, mnt = s.mount(dest, "alice", now=late)
    assert p.returncode != 0, "a take-out vault with an edited period mounted"
    assert not is_mounted(mnt)
    with open(pol, "wb") as f:
        f.write(orig)
    p, mnt = s.mount(dest, "alice", now=late)
    refused(p, 7, f"take-out {tid} ended at")


def test_export_after_the_period_refused(site):
    s = site
    tid = s.approved()
    dest = os.path.join(s.usb1, "late")
    refused(s.tk("alice", "export", tid, "--to", dest, now=ts(2026, 12, 4, 1)), 7)
    assert empty_or_absent(dest)
    assert s.show(tid, now=ts(2026, 12, 4, 1))["state"] == "approved"


def test_mount_by_another_user_refused(site):
    s = site
    tid, dest = s.exported()
    p, mnt = s.mount(dest, "bob")                    # enrolled in the main vault
    refused(p, 7)
    assert not is_mounted(mnt)
    p, mnt = s.mount(dest, "adm")                    # even an administrator
    refused(p, 7)
    assert not is_mounted(mnt)
    # alice's name with someone else's password
    p, mnt = s.mount(dest, "alice", pwfile=s.pw["bob"])
    refused(p, 6)
    assert not is_mounted(mnt)


def test_self_approval_refused(site):
    s = site
    tid = s.request(user="adm", files=("main/docs/a.txt",),
                    extra=("--name", "管理太郎", "--dept", "総務部", "--contact", "内線1000"))
    refused(s.tk("adm", "approve", tid), 7, "an administrator cannot approve their own take-out")
    assert s.show(tid)["state"] == "pending"
    assert "takeout-approve" not in [r["body"].get("event") for r in s.ledger()]
    ok(s.tk("adm2", "approve", tid))
    j = s.show(tid)
    assert j["state"] == "approved" and j["approved_by"] == "adm2"
    # only a pending one can be approved
    refused(s.tk("adm2", "approve", tid), 7)


def test_rejected_request_cannot_be_exported(site):
    s = site
    tid = s.request()
    ok(s.tk("adm", "reject", tid, "--reason", "目的が不明確"))
    j = s.show(tid, user="alice")
    assert j["state"] == "rejected" and j["rejected_by"] == "adm" and j["rejected"]
    assert j["reason"] == "目的が不明確"
    dest = os.path.join(s.usb1, "x")
    refused(s.tk("alice", "export", tid, "--to", dest), 7, "rejected")
    assert empty_or_absent(dest)
    refused(s.tk("adm2", "approve", tid), 7)       # only a pending one
    assert s.show(tid)["state"] == "rejected"
    ev = [(r["body"].get("event"), r["signer"]) for r in s.ledger()]
    assert ("takeout-reject", "adm") in ev and "takeout-approve" not in [e for e, _ in ev]


def test_approve_or_reject_by_staff_refused(site):
    s = site
    tid = s.request()
    refused(s.tk("bob", "approve", tid), 7)
    refused(s.tk("alice", "approve", tid), 7)
    refused(s.tk("bob", "reject", tid, "--reason", "no"), 7)
    refused(s.tk("audrey", "approve", tid), 7)
    assert s.show(tid)["state"] == "pending"
    assert not [r for r in s.ledger() if r["body"].get("event") in
                ("takeout-approve", "takeout-reject")]


def test_export_by_someone_else_refused(site):
    s = site
    tid = s.approved()
    for user in ("bob", "adm", "adm2"):
        dest = os.path.join(s.usb1, f"by-{user}")
        refused(s.tk(user, "export", tid, "--to", dest), 7)
        assert empty_or_absent(dest)
    assert s.show(tid)["state"] == "approved"
    # exported once: not again
    ok(s.tk("alice", "export", tid, "--to", os.path.join(s.usb1, "ok")))
    dest = os.path.join(s.usb1, "again")
    refused(s.tk("alice", "export", tid, "--to", dest), 7, "exported")
    assert empty_or_absent(dest)


# ---------------------------------------------------------------- 3. list / show

def test_list_pending_and_json_keys(site):
    s = site
    t1 = s.request()
    t2 = s.approved(files=("main/docs/a.txt",))
    t3 = s.request(files=("hr",))
    ok(s.tk("adm", "reject", t3, "--reason", "不要"))
    pend = s.listing("adm", "--pending")
    assert [o["id"] for o in pend] == [t1], pend
    for o in s.listing("adm", "--all"):
        assert KEYS <= set(o), sorted(KEYS - set(o))
    default = {o["id"]: o for o in s.listing("adm")}
    assert set(default) == {t1, t2}, default          # not the rejected one
    assert {o["id"] for o in s.listing("adm", "--all")} == {t1, t2, t3}
    o = default[t2]
    assert o["state"] == "approved" and o["requester"] == "alice" and o["medium"] == "USB-1"
    assert o["files"] == ["main/docs/a.txt"] and o["purpose"] == PURPOSE
    assert o["overdue"] is False and o["exported"] is None and o["closed"] is None
    assert o["approved_by"] == "adm" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                                                       o["approved"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", o["requested"])
    # show: every field (and its history in the table form)
    j = s.show(t1)
    assert KEYS <= set(j) and j["id"] == t1 and j["state"] == "pending"
    txt = ok(s.tk("adm", "show", t2)).stdout
    for needle in (t2, "alice", "USB-1", "main/docs/a.txt", "山田花子", "経理部", "内線1234"):
        assert needle in txt, (needle, txt)
    refused(s.tk("adm", "show", "T9999"), None, "T9999")
    table = ok(s.tk("adm", "list")).stdout
    assert t1 in table and t2 in table and t3 not in table


def test_list_overdue(site):
    s = site
    t1, d1 = s.exported()                             # until end of 2026-12-03
    t2, _ = s.exported(until="2026-12-10", files=("main/docs/a.txt",))
    t3, d3 = s.exported(files=("hr",))
    ok(s.tk("alice", "close", t3, "--from", d3))     # returned: never overdue
    assert s.listing("adm", "--overdue") == []        # within the period
    late = ts(2026, 12, 5)
    od = s.listing("adm", "--overdue", now=late)
    assert [o["id"] for o in od] == [t1], od
    assert od[0]["overdue"] is True and od[0]["state"] == "exported"
    assert od[0]["requester"] == "alice" and od[0]["medium"] == "USB-1"
    assert t3 not in {o["id"] for o in s.listing("adm", now=late)}   # closed: not by default
    byid = {o["id"]: o for o in s.listing("adm", "--all", now=late)}
    assert byid[t1]["overdue"] is True
    assert byid[t2]["overdue"] is False and byid[t3]["overdue"] is False
    assert s.show(t1, now=late)["overdue"] is True


def test_staff_see_only_their_own(site):
    s = site
    ta = s.request()
    tb = s.request(user="bob", files=("main/other.txt",), medium="USB-2")
    assert {o["id"] for o in s.listing("alice", "--all")} == {ta}
    assert {o["id"] for o in s.listing("bob", "--all")} == {tb}
    assert {o["id"] for o in s.listing("adm", "--all")} == {ta, tb}
    assert {o["id"] for o in s.listing("audrey", "--all")} == {ta, tb}
    refused(s.tk("bob", "show", ta), 7)
    assert s.show(tb, user="bob")["files"] == ["main/other.txt"]
    # the auditor of the moment of the request reads the sealed details
    j = s.show(ta, user="audrey")
    assert sorted(j["files"]) == ["hr/kyuyo-2026.csv", "main/docs"]
    assert j["name"] == "山田花子" and j.get("sealed") in (None, False)


def test_details_sealed_to_a_later_admin(site):
    s = site
    tid = s.request()
    ok(s.admin("policy", "set", "admin.max", "3"))
    s.add_user("adm3", "admin", ADM3_PW, "新任三郎", "情報システム部", "内線2001")
    j = s.show(tid, user="adm3")
    assert j["sealed"] is True, j
    for k in ("name", "dept", "contact", "files", "purpose"):
        assert j[k] is None, (k, j)
    # what an overdue check needs stays in clear
    assert j["id"] == tid and j["requester"] == "alice" and j["medium"] == "USB-1"
    assert j["state"] == "pending" and j["from"] == "2026-12-01T00:00:00Z" and j["until"]
    lst = {o["id"]: o for o in s.listing("adm3", "--all")}
    assert lst[tid]["sealed"] is True and lst[tid]["files"] is None
    # an admin of the moment still reads them
    j = s.show(tid, user="adm")
    assert j.get("sealed") in (None, False) and j["name"] == "山田花子"
    # requests made after adm3 joined are sealed to adm3 as well
    t2 = s.request(files=("main/docs/a.txt",))
    j2 = s.show(t2, user="adm3")
    assert j2.get("sealed") in (None, False) and j2["files"] == ["main/docs/a.txt"]


def test_dates_are_local_time(site):
    """DATE = 00:00 of that day in the local time zone (TZ), until = end of that day."""
    s = site
    p = ok(s.tk("alice", "request", "--files", "main/docs/a.txt", "--medium", "USB-1",
                "--purpose", PURPOSE, "--from", "2026-12-02", "--until", "2026-12-02", "--json",
                env=s.env(tz="Asia/Tokyo")))
    tid = json.loads(p.stdout)["id"]
    j = s.show(tid)
    assert j["from"] == "2026-12-01T15:00:00Z", j["from"]
    assert j["until"] in ("2026-12-02T15:00:00Z", "2026-12-02T14:59:59Z"), j["until"]
    p = ok(s.tk("alice", "request", "--files", "main/docs/a.txt", "--medium", "USB-1",
                "--purpose", PURPOSE, "--from", "2026-12-02T09:30:00Z", "--until",
                "2026-12-02T17:00:00Z", "--json"))
    j = s.show(json.loads(p.stdout)["id"])
    assert (j["from"], j["until"]) == ("2026-12-02T09:30:00Z", "2026-12-02T17:00:00Z")


# ---------------------------------------------------------------- 4. report-lost, check

def test_report_lost(site):
    s = site
    alerts = alert_hook(s)
    tid, dest = s.exported()
    refused(s.tk("bob", "report-lost", tid), 7)
    t_pending = s.request(files=("main/docs/a.txt",))
    refused(s.tk("alice", "report-lost", t_pending), None)   # not exported: nothing to lose
    assert s.show(t_pending)["state"] == "pending"
    assert alerts(1, timeout=1) == []

    ok(s.tk("alice", "report-lost", tid, "--note", "電車内で紛失", now=NOW + 600))
    j = s.show(tid)
    assert j["state"] == "lost" and j["lost_by"] == "alice" and j["lost"]
    assert j["note"] == "電車内で紛失" or "電車内で紛失" in json.dumps(j, ensure_ascii=False)
    recs = [r for r in s.ledger() if r["body"].get("event") == "takeout-lost"]
    assert len(recs) == 1 and recs[0]["signer"] == "alice", recs
    got = alerts(1)
    assert len(got) == 1, got
    assert got[0]["alert"] == "takeout-lost" and got[0]["takeout"] == tid, got[0]
    # audited
    ents = s.audit()
    assert any(tid in json.dumps(e) and e["user"] == "alice" for e in ents), \
        "no audit entry for the loss"
    # a lost take-out is not overdue: it is lost
    p = kinko("takeout", "check", "--vault", s.path, env=s.env(ts(2026, 12, 10)))
    assert p.returncode == 0, p.stdout + p.stderr
    ok(s.admin("ledger", "verify"))


def test_check_overdue_alerts(site):
    s = site
    alerts = alert_hook(s)
    p = kinko("takeout", "check", "--vault", s.path, env=s.env())
    assert p.returncode == 0, p.stdout + p.stderr          # none at all
    tid, dest = s.exported()
    p = kinko("takeout", "check", "--vault", s.path, env=s.env(ts(2026, 12, 3, 12)))
    assert p.returncode == 0, p.stdout + p.stderr          # within the period
    assert alerts(1, timeout=1) == []
    # after the period, not returned: exit 9, an alert per take-out, no password asked
    late = ts(2026, 12, 6)
    p = kinko("takeout", "check", "--vault", s.path, env=s.env(late))
    assert p.returncode == 9, p.stdout + p.stderr
    assert tid in p.stdout + p.stderr
    got = alerts(1)
    assert [a["alert"] for a in got] == ["takeout-overdue"], got
    assert got[0]["takeout"] == tid, got[0]
    p = kinko("takeout", "check", "--json", "--vault", s.path, env=s.env(late))
    assert p.returncode == 9
    assert tid in json.dumps(json.loads(p.stdout))
    # returned late: nothing overdue any more
    ok(s.tk("alice", "close", tid, "--from", dest, now=late))
    p = kinko("takeout", "check", "--vault", s.path, env=s.env(late + DAY))
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------- 5. request validation

def req(s, user="alice", files=("main/docs",), medium="USB-1", frm="2026-12-01",
        until="2026-12-03", extra=(), now=NOW):
    return s.tk(user, "request", "--files", *files, "--medium", medium, "--purpose", PURPOSE,
                "--from", frm, "--until", until, *extra, now=now)


def test_request_until_before_from_refused(site):
    s = site
    n = len(s.ledger_files())
    p = refused(req(s, frm="2026-12-05", until="2026-12-03"), None, "period")
    assert p.returncode in (2, 7), p.returncode
    p = refused(req(s, frm="2026-12-02T10:00:00Z", until="2026-12-02T10:00:00Z"), None, "period")
    assert p.returncode in (2, 7), p.returncode
    # until in the past
    p = refused(req(s, frm="2026-11-20", until="2026-11-25"), None)
    assert p.returncode in (2, 7), p.returncode
    # not a date
    refused(req(s, frm="2026-13-01", until="2026-12-03"), 2)
    assert len(s.ledger_files()) == n


def test_request_period_longer_than_max_days_refused(site):
    s = site
    n = len(s.ledger_files())
    p = refused(req(s, until="2027-01-15"), None, "30")            # default takeout.max_days
    assert p.returncode in (2, 7), p.returncode
    ok(req(s, until="2026-12-20"))
    ok(s.admin("policy", "set", "takeout.max_days", "5"))
    p = refused(req(s, until="2026-12-07"), None, "5")
    assert p.returncode in (2, 7), p.returncode
    ok(req(s, until="2026-12-04"))
    evs = [r["body"].get("event") for r in s.ledger()]
    assert evs.count("takeout-request") == 2, evs
    assert len(s.ledger_files()) == n + 2


def test_request_unknown_or_disposed_medium_refused(site):
    s = site
    n = len(s.ledger_files())
    refused(req(s, medium="USB-999"), 7, "USB-999")
    cert = os.path.join(s.base, "cert.txt")
    with open(cert, "w") as f:
        f.write("crushed\n")
    ok(s.admin("media", "dispose", "USB-2", "--method", "crush", "--certificate", cert))
    refused(req(s, medium="USB-2"), 7, "USB-2")
    evs = [r["body"].get("event") for r in s.ledger()]
    assert "takeout-request" not in evs, evs
    assert len(s.ledger_files()) == n + 1        # the disposal only


def test_request_vpath_missing_or_not_granted_refused(site):
    s = site
    p = refused(req(s, files=("main/docs", "main/nope.txt")), None, "main/nope.txt")
    assert p.returncode in (1, 7), p.returncode
    p = refused(req(s, files=("nosuch/x",)), None, "nosuch/x")
    assert p.returncode in (1, 7), p.returncode
    # bob holds no grant for hr
    p = refused(req(s, user="bob", files=("hr/kyuyo-2026.csv",), medium="USB-2"), None,
                "hr/kyuyo-2026.csv")
    assert p.returncode in (1, 7), p.returncode
    assert "takeout-request" not in [r["body"].get("event") for r in s.ledger()]
    # the whole compartment is a valid VPATH
    tid = s.request(files=("hr",))
    assert s.show(tid)["files"] == ["hr"]
    # --files may be repeated; each takes the words that follow it
    p = ok(s.tk("alice", "request", "--files", "main/docs/a.txt", "main/other.txt", "--medium",
                "USB-1", "--files", "hr/hyoka.txt", "--purpose", PURPOSE, "--from", "2026-12-01",
                "--until", "2026-12-02", "--json"))
    tid = json.loads(p.stdout)["id"]
    assert sorted(s.show(tid)["files"]) == ["hr/hyoka.txt", "main/docs/a.txt", "main/other.txt"]


def test_request_needs_name_dept_contact(site):
    s = site
    s.add_user("carol", "staff", CAROL_PW, "田中三子", "人事部", None)   # no contact
    ok(s.admin("grant", "carol", "main"))
    refused(req(s, user="carol"), 2, "contact")
    assert "takeout-request" not in [r["body"].get("event") for r in s.ledger()]
    tid = s.request(user="carol", files=("main/docs",), extra=("--contact", "090-0000-0000"))
    j = s.show(tid)
    assert (j["name"], j["dept"], j["contact"]) == ("田中三子", "人事部", "090-0000-0000")
    # given values win over the user record
    t2 = s.request(extra=("--name", "山田 花子 (旧姓 鈴木)", "--dept", "経理部 第二課"))
    j = s.show(t2)
    assert (j["name"], j["dept"], j["contact"]) == ("山田 花子 (旧姓 鈴木)", "経理部 第二課",
                                                   "内線1234")


def test_takeout_help_and_usage():
    p = kinko("takeout", "--help")
    assert p.returncode == 0, p.stderr
    for verb in ("request", "list", "show", "approve", "reject", "export", "close",
                 "report-lost", "check"):
        assert verb in p.stdout, (verb, p.stdout)
    p = kinko("takeout", "frobnicate")
    assert p.returncode == 2, p.stdout + p.stderr


# ---------------------------------------------------------------- review findings

def test_approver_disabled_later_keeps_the_approval(site):
    """A step an administrator took stays taken when they are disabled: the
    take-out must not fall back to pending and be exported a second time."""
    s = site
    tid, dest = s.exported()
    ok(s.run("adm2", "user", "disable", "adm"))
    j = s.show(tid, user="adm2")
    assert j["state"] == "exported" and j["approved_by"] == "adm", j
    refused(s.tk("adm2", "approve", tid), 7, "not pending")
    again = os.path.join(s.usb1, "again")
    refused(s.tk("alice", "export", tid, "--to", again), 7, "exported")
    assert empty_or_absent(again)
    # and it is still overdue-checked after its period
    p = s.tk("adm2", "check", now=ts(2026, 12, 10))
    assert p.returncode == 9 and tid in p.stdout, (p.returncode, p.stdout, p.stderr)


def test_a_later_admin_cannot_approve_what_they_cannot_read(site):
    s = site
    tid = s.request()
    ok(s.admin("policy", "set", "admin.max", "3"))
    s.add_user("adm3", "admin", ADM3_PW, "新任三郎", "情報システム部", "内線2001")
    refused(s.tk("adm3", "approve", tid), 7, "not sealed to adm3")
    assert s.show(tid)["state"] == "pending"


def test_media_entry_with_two_paths_is_an_error(site):
    s = site
    tid = s.approved()
    with open(s.conf, "a") as f:
        f.write("[media]\nX-1 = /a,/b,/c,/d,/e,/f,/g,/h,/i\n")
    dest = os.path.join(s.usb1, "x")
    p = s.tk("alice", "export", tid, "--to", dest)
    assert p.returncode != 0 and "exactly one" in p.stderr, (p.returncode, p.stderr)
    assert empty_or_absent(dest)
