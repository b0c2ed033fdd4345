"""The take-out vault (issue 7, vault layer) through real mounts: kinko test-export
(test builds) writes a separate vault holding only the approved paths, which mounts
read-only for the requester alone and only within its period, passes fsck, seals its
audit log to the main vault's auditors (not to the requester), and is never written
from damaged source bytes (the export fails naming the file and leaves nothing)."""
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import glob

import pytest

from kinko_util import (Vault, as_admin, enrol, errno_of, is_mounted, kinko, ok, parse_seg,
                        refused, umount, wait_for_mount, write_pw)

AUD_PW = "Mq7#Wv2-Lp9x-Tr4"
STAFF_PW = "Bn6@Qs3-Xe7w-Jc1"
DAY = 86400
KANJI = "個人情報保護特定機密文書管理台帳報告書年度別集計表外部持出承認記録簿"


def jp(n, salt=""):
    """A Japanese name of n characters (3 bytes each in UTF-8)."""
    s = (salt + KANJI * 4)[:n]
    assert len(s) == n
    return s


JP_DIR = jp(60, "部署")
JP_FILE = jp(85, "氏名")          # 255 bytes: the longest name there is
JP_FILE2 = jp(72, "連絡先")
BIG = 5 * 1024 * 1024 + 123


def has_test_export():
    p = kinko("test-export", "--help")
    return p.returncode == 0


pytestmark = pytest.mark.skipif(not has_test_export(),
                                reason="kinko built without -Dtest_hooks=true (no test-export)")


SAN = re.compile(r"==\d+==|runtime error:|LeakSanitizer|AddressSanitizer")


def clean(p):
    """p, after checking its stderr holds no sanitizer report (ASan builds)."""
    assert not SAN.search(p.stderr), p.stderr
    return p


def env_now(t):
    return dict(os.environ, KINKO_TEST_NOW=str(int(t)))


def export(v, to, *vpaths, user=None, pwfile=None, tid="T1", frm=None, until=None, env=None,
           extra=()):
    now = int(time.time())
    frm = now + DAY if frm is None else frm
    until = now + 5 * DAY if until is None else until
    args = ["test-export", v.path, "--user", user or v.user, "--password-file", pwfile or v.pwfile,
            "--to", to, "--id", tid, "--from", frm, "--until", until, *extra]
    for p in vpaths:
        args += ["--file", p]
    return clean(kinko(*args, env=env))


def check(v, *vpaths, user=None, pwfile=None):
    """kvault_vpath_check of each VPATH (kinko test-export --check-only)."""
    args = ["test-export", v.path, "--user", user or v.user, "--password-file", pwfile or v.pwfile,
            "--check-only"]
    for p in vpaths:
        args += ["--file", p]
    return clean(kinko(*args))


def mount_export(d, user, pwfile, t, mnt):
    os.makedirs(mnt, exist_ok=True)
    p = clean(kinko("mount", d, mnt, "--user", user, "--password-file", pwfile, env=env_now(t)))
    if p.returncode == 0:
        wait_for_mount(mnt)
    return p


def tree(root, skip=()):
    """{relpath: (kind, mode, mtime_ns, content|target, xattrs)} of a plaintext tree."""
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in sorted(dns + fns):
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, root)
            if rel in skip:
                continue
            st = os.lstat(p)
            xa = {}
            if not stat.S_ISLNK(st.st_mode):
                xa = {k: os.getxattr(p, k) for k in os.listxattr(p)}
            if stat.S_ISLNK(st.st_mode):
                kind, data = "l", os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                kind, data = "d", None
            elif stat.S_ISREG(st.st_mode):
                kind, data = "f", open(p, "rb").read()
            else:
                kind, data = "o", None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_mtime_ns, data, xa)
    return out


def seg_recipients(path):
    """Recipient ids of an audit segment (header layout of kinko-format(5))."""
    return parse_seg(path)["recipients"]


def policy_body(path):
    """The JSON body of a signed policy file (kinko-format(5): it follows a binary head)."""
    raw = open(path, "rb").read()
    start = raw.index(b'{\n "format"')
    return json.JSONDecoder().raw_decode(raw[start:].decode("utf-8", "replace"))[0]


def backing_files(root):
    out = []
    for dp, _, fns in os.walk(root):
        out += [os.path.join(dp, f) for f in fns]
    return out


LONG_TARGET = "../" + "/".join(["承認済みの書類"] * 180)  # 3,779 bytes


def build_world(base):
    """A main vault: alice (admin, the requester), carol (auditor), bob (staff with
    a grant to main), compartments main and sec, and a tree with long Japanese
    names, a 5 MiB file, an empty file, subdirectories, symlinks (one long), xattrs, a hard
    link and a FIFO."""
    v = Vault(base)
    carol_pw = enrol(v, "carol", "auditor", AUD_PW)
    bob_pw = enrol(v, "bob", "staff", STAFF_PW)
    ok(as_admin(v, "grant", "bob", "main"))
    ok(as_admin(v, "compartment", "create", "sec", "--class", "himitsu"))
    mnt = v.mount()
    m, s = os.path.join(mnt, "main"), os.path.join(mnt, "sec")
    docs = os.path.join(m, "docs")
    os.makedirs(os.path.join(docs, "sub", "deeper"))
    os.makedirs(os.path.join(m, JP_DIR, "中"))
    os.makedirs(os.path.join(m, "private"))
    with open(os.path.join(docs, "big.bin"), "wb") as f:
        f.write(os.urandom(BIG))
    open(os.path.join(docs, "empty"), "wb").close()
    with open(os.path.join(docs, "sub", "a.txt"), "w") as f:
        f.write("alpha\n")
    with open(os.path.join(docs, "sub", "deeper", "b.txt"), "w") as f:
        f.write("beta " * 1000)
    os.setxattr(os.path.join(docs, "sub", "a.txt"), "user.comment", "承認済み".encode())
    os.setxattr(os.path.join(docs, "sub"), "user.dirnote", b"\x00\x01binary")
    os.setxattr(os.path.join(m, JP_DIR), "user.ancestor", b"not approved")
    os.symlink("sub/a.txt", os.path.join(docs, "link"))
    os.symlink(LONG_TARGET, os.path.join(docs, "longlink"))  # kept in a side file
    os.link(os.path.join(docs, "sub", "a.txt"), os.path.join(docs, "hard"))
    os.mkfifo(os.path.join(docs, "pipe"))
    os.chmod(os.path.join(docs, "sub", "deeper", "b.txt"), 0o640)
    with open(os.path.join(m, JP_DIR, JP_FILE), "w") as f:
        f.write("名前: 山田太郎\n" * 50)
    with open(os.path.join(m, JP_DIR, "中", JP_FILE2), "wb") as f:
        f.write(os.urandom(70000))
    with open(os.path.join(m, JP_DIR, "not-approved.txt"), "w") as f:
        f.write("stays home\n")
    with open(os.path.join(m, "private", "secret.txt"), "w") as f:
        f.write("not for take-out\n")
    with open(os.path.join(m, "top.txt"), "w") as f:
        f.write("top\n")
    os.makedirs(os.path.join(s, "x"))
    with open(os.path.join(s, "x", "s.txt"), "w") as f:
        f.write("sec compartment\n")
    os.utime(os.path.join(docs, "sub", "a.txt"), ns=(1_600_000_000_000_000_000,
                                                      1_600_000_000_123_456_789))
    os.utime(os.path.join(s, "x"), ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    snap = {"main/docs": tree(docs, skip=("pipe",)),
            "main/" + JP_DIR + "/" + JP_FILE: open(os.path.join(m, JP_DIR, JP_FILE), "rb").read(),
            "main/" + JP_DIR + "/中": tree(os.path.join(m, JP_DIR, "中")),
            "sec": tree(s)}
    v.cleanup()
    return v, {"carol": carol_pw, "bob": bob_pw}, snap


@pytest.fixture(scope="module")
def world():
    base = tempfile.mkdtemp(prefix="kinko-to-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINKO_STATE_DIR", os.path.join(base, "state"))
        mp.delenv("KINKO_TEST_NOW", raising=False)
        os.makedirs(os.path.join(base, "state"))
        v, pws, snap = build_world(base)
        now = int(time.time())
        out = os.path.join(base, "takeout")
        p = export(v, out, "main/docs", "main/" + JP_DIR + "/" + JP_FILE,
                   "main/" + JP_DIR + "/中/", "sec", frm=now + DAY, until=now + 5 * DAY,
                   extra=["--progress"])
        ok(p)
        yield {"v": v, "pws": pws, "snap": snap, "out": out, "export": p, "base": base,
               "from": now + DAY, "until": now + 5 * DAY}
    for line in open("/proc/self/mountinfo"):
        mp_ = line.split()[4]
        if mp_.startswith(base):
            umount(mp_)
    shutil.rmtree(base, ignore_errors=True)


def test_export_holds_exactly_the_approved_paths(world, tmpbase):
    v, out, snap = world["v"], world["out"], world["snap"]
    # the counts printed: regular files and symlinks of the approved paths; the FIFO skipped
    exp_files = sum(1 for e in snap["main/docs"].values() if e[0] in "fl") + 1 + \
        sum(1 for e in snap["main/" + JP_DIR + "/中"].values() if e[0] in "fl") + \
        sum(1 for e in snap["sec"].values() if e[0] in "fl")
    assert f": {exp_files} files," in world["export"].stdout, world["export"].stdout
    assert "1 skipped" in world["export"].stdout, world["export"].stdout
    # progress after each file or symlink: bytes so far of the total from the first pass
    prog = [tuple(map(int, re.match(r"progress (\d+)/(\d+) (\d+)$", line).groups()))
            for line in world["export"].stderr.splitlines() if line.startswith("progress ")]
    assert [c for _, _, c in prog] == list(range(1, exp_files + 1)), prog
    assert all(b1 <= b2 for (b1, _, _), (b2, _, _) in zip(prog, prog[1:])), prog
    assert prog[-1][0] == prog[-1][1] and all(t == prog[-1][1] for _, t, _ in prog), prog
    assert prog[-1][0] > BIG
    assert sorted(os.listdir(out)) == ["data", "grants", "keys", "kinko.vault", "policy"]
    assert os.listdir(os.path.join(out, "keys")) == ["alice.key"]      # no root file, no one else

    mnt = os.path.join(tmpbase, "m")
    ok(mount_export(out, "alice", v.pwfile, world["from"] + 3600, mnt))
    try:
        assert sorted(os.listdir(mnt)) == ["main", "sec"]
        m = os.path.join(mnt, "main")
        # only the approved paths and the directories on their way
        assert sorted(os.listdir(m)) == sorted(["docs", JP_DIR])
        assert sorted(os.listdir(os.path.join(m, JP_DIR))) == sorted([JP_FILE, "中"])
        assert not os.path.exists(os.path.join(m, "private"))
        # a directory only on the way travels without its xattrs
        assert "user.ancestor" not in os.listxattr(os.path.join(m, JP_DIR))
        assert not os.path.exists(os.path.join(m, "top.txt"))
        assert not os.path.exists(os.path.join(m, JP_DIR, "not-approved.txt"))
        # every byte, mode, mtime, xattr and symlink target as in the main vault
        got = tree(os.path.join(m, "docs"))
        assert got == snap["main/docs"]
        assert "pipe" not in got                                       # FIFOs are not taken out
        assert got["link"][0] == "l" and got["link"][3] == "sub/a.txt"
        assert got["longlink"][0] == "l" and got["longlink"][3] == LONG_TARGET
        assert got["sub/a.txt"][4] == {"user.comment": "承認済み".encode()}
        assert got["sub"][4] == {"user.dirnote": b"\x00\x01binary"}
        assert got["sub/a.txt"][2] == 1_600_000_000_123_456_789
        assert got["sub/deeper/b.txt"][1] == 0o640
        assert len(got["big.bin"][3]) == BIG
        # the hard link became a separate file with the same content
        assert got["hard"][3] == got["sub/a.txt"][3]
        assert os.stat(os.path.join(m, "docs", "hard")).st_ino != \
            os.stat(os.path.join(m, "docs", "sub", "a.txt")).st_ino
        assert open(os.path.join(m, JP_DIR, JP_FILE), "rb").read() == \
            snap["main/" + JP_DIR + "/" + JP_FILE]
        assert tree(os.path.join(m, JP_DIR, "中")) == snap["main/" + JP_DIR + "/中"]
        assert tree(os.path.join(mnt, "sec")) == snap["sec"]
        # and diff -r agrees, against a live mount of the main vault
        src = v.mount()
        try:
            for rel in ("main/docs", "main/" + JP_DIR + "/中", "sec"):
                d = subprocess.run(["diff", "-r", "--no-dereference", "-x", "pipe",
                                    os.path.join(src, rel), os.path.join(mnt, rel)],
                                   capture_output=True, text=True)
                assert d.returncode == 0, d.stdout + d.stderr
        finally:
            v.cleanup()
        # read-only: no write, create, remove, rename or xattr change gets through
        ro = (30, 13)   # EROFS, EACCES
        assert errno_of(open, os.path.join(m, "docs", "sub", "a.txt"), "w") in ro
        assert errno_of(open, os.path.join(m, "docs", "new.txt"), "w") in ro
        assert errno_of(os.mkdir, os.path.join(m, "docs", "nd")) in ro
        assert errno_of(os.unlink, os.path.join(m, "docs", "empty")) in ro
        assert errno_of(os.rename, os.path.join(m, "docs", "empty"),
                        os.path.join(m, "docs", "e2")) in ro
        assert errno_of(os.setxattr, os.path.join(m, "docs", "empty"), "user.x", b"1") in ro
        assert open(os.path.join(m, "docs", "sub", "a.txt")).read() == "alpha\n"
    finally:
        umount(mnt)
    assert not is_mounted(mnt)

    # fsck of the take-out vault: clean, everything there verified
    f = kinko("fsck", out, "--user", "alice", "--password-file", v.pwfile, "--json",
              env=env_now(world["from"] + 3600))
    assert f.returncode == 0, f.stdout + f.stderr
    j = json.loads(f.stdout)
    assert j["clean"] and j["damaged"] == [] and j["compartments_skipped"] == 0
    assert j["files"] == exp_files - 2 and j["symlinks"] == 2            # the symlinks apart
    big_bytes = sum(len(e[3]) for s in ("main/docs", "main/" + JP_DIR + "/中", "sec")
                    for e in world["snap"][s].values() if e[0] == "f")
    assert j["bytes"] == big_bytes + len(snap["main/" + JP_DIR + "/" + JP_FILE])


def test_takeout_policy_and_keys(world):
    """One signed policy (serial 1) by the synthetic admin; the requester as staff with
    read-only grants and the main vault's keys; auditors as public keys only."""
    out = world["out"]
    assert os.listdir(os.path.join(out, "policy")) == ["policy.1"]
    body = policy_body(os.path.join(out, "policy", "policy.1"))
    assert body["serial"] == 1 and body["updated_by"] == "kinko-takeout"
    users = {u["id"]: u for u in body["users"]}
    assert set(users) == {"kinko-takeout", "alice", "carol"}
    assert users["kinko-takeout"]["role"] == "admin"
    assert users["alice"]["role"] == "staff" and users["carol"]["role"] == "auditor"
    assert {c["name"]: c["class"] for c in body["compartments"]} == {"main": "gokuhi",
                                                                      "sec": "himitsu"}
    assert all(c["current_epoch"] == 1 for c in body["compartments"])
    assert all(g["user"] == "alice" and g["access"] == "ro" for g in body["grants"])
    assert len(body["grants"]) == 2
    t = body["settings"]["takeout"]
    assert t["id"] == "T1" and t["requester"] == "alice" and t["medium"] == "TEST"
    assert t["approver"] == "test"
    mp = os.path.join(world["v"].path, "policy")
    newest = max(os.listdir(mp), key=lambda n: int(n.split(".")[1]))
    main_body = policy_body(os.path.join(mp, newest))
    assert t["main_vault"] == main_body["vault_id"] != body["vault_id"]
    main_users = {u["id"]: u for u in main_body["users"]}
    for uid in ("alice", "carol"):
        assert users[uid]["box_pk"] == main_users[uid]["box_pk"]
        assert users[uid]["sign_pk"] == main_users[uid]["sign_pk"]
    assert users["alice"]["password_changed"] == main_users["alice"]["password_changed"]
    # new compartment ids
    assert not {c["id"] for c in body["compartments"]} & {c["id"] for c in main_body["compartments"]}


def test_period_is_enforced(world, tmpbase, state_dir):
    v, out = world["v"], world["out"]
    mnt = os.path.join(tmpbase, "m")
    p = refused(mount_export(out, "alice", v.pwfile, world["from"] - 1, mnt), 7,
                "take-out T1 may be used from ")
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(world["from"]))
    assert iso in p.stderr
    p = refused(mount_export(out, "alice", v.pwfile, world["until"], mnt), 7,
                "take-out T1 ended at ", "kinko takeout close")
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(world["until"])) in p.stderr
    assert not is_mounted(mnt)
    # refusals for the period are not failed unlocks: a wrong password afterwards is
    # still only a wrong password, and the right one still works inside the period
    bad = write_pw(tmpbase, "bad", "Wr0ng-Passw0rd!x")
    for _ in range(5):
        refused(mount_export(out, "alice", v.pwfile, world["from"] - 1, mnt), 7)
    refused(mount_export(out, "alice", bad, world["from"] + 10, mnt), 6)
    ok(mount_export(out, "alice", v.pwfile, world["until"] - 1, mnt))
    umount(mnt)


def test_other_users_of_the_main_vault_are_refused(world, tmpbase):
    mnt = os.path.join(tmpbase, "m")
    bob = world["pws"]["bob"]
    # bob is enrolled in the main vault (with a grant to main) but not in the take-out
    ok(kinko("fsck", world["v"].path, "--user", "bob", "--password-file", bob))
    refused(mount_export(world["out"], "bob", bob, world["from"] + 10, mnt), 7)
    # nor can the auditor use it: no key file in the take-out vault
    refused(mount_export(world["out"], "carol", world["pws"]["carol"], world["from"] + 10, mnt), 7)
    assert not is_mounted(mnt)


def test_audit_log_is_sealed_to_the_main_vaults_auditors(world, tmpbase):
    v, out = world["v"], world["out"]
    mnt = os.path.join(tmpbase, "m")
    t = world["from"] + 7200
    ok(mount_export(out, "alice", v.pwfile, t, mnt))
    open(os.path.join(mnt, "main", "docs", "sub", "a.txt")).read()
    umount(mnt)
    segs = glob.glob(os.path.join(out, "audit", "*", "*", "*.kal"))
    assert segs, os.listdir(out)
    for s in segs:
        assert seg_recipients(s) == ["carol"], s
    # the requester cannot read it: refused as staff, and past the role check her
    # keys open no segment
    refused(kinko("audit", "show", "--vault", out, "--as", "alice", "--password-file", v.pwfile,
                  env=env_now(t)), 7)
    e = env_now(t)
    e["KINKO_TEST_AUDIT_ANY_ROLE"] = "1"
    p = kinko("audit", "show", "--json", "--vault", out, "--as", "alice", "--password-file",
              v.pwfile, env=e)
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout + p.stderr
    raw = b"".join(open(s, "rb").read() for s in segs)
    assert b"a.txt" not in raw and "承認".encode() not in raw


def test_damaged_source_fails_the_export_and_leaves_nothing(tmpbase):
    v = Vault(tmpbase)
    enrol(v, "carol", "auditor", AUD_PW)
    mnt = v.mount()
    d = os.path.join(mnt, "main", "docs")
    os.makedirs(d)
    with open(os.path.join(d, "big.bin"), "wb") as f:
        f.write(os.urandom(BIG))
    with open(os.path.join(d, JP_FILE), "w") as f:
        f.write("ok\n" * 100)
    os.makedirs(os.path.join(mnt, "main", "other"))
    with open(os.path.join(mnt, "main", "other", "fine.txt"), "w") as f:
        f.write("fine\n")
    v.cleanup()
    # flip one byte in the middle of the biggest backing file (big.bin)
    victim = max(backing_files(v.data_dir()), key=os.path.getsize)
    assert os.path.getsize(victim) > BIG
    with open(victim, "r+b") as f:
        f.seek(os.path.getsize(victim) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))
    # a new directory: gone again
    new = os.path.join(tmpbase, "new-out")
    refused(export(v, new, "main/docs"), 1, "main/docs/big.bin", "authentication")
    assert not os.path.exists(new), os.listdir(new)
    # an empty directory that existed: stays, empty
    empty = os.path.join(tmpbase, "empty-out")
    os.mkdir(empty)
    refused(export(v, empty, "main"), 1, "main/docs/big.bin")
    assert os.listdir(empty) == []
    # the walk is pruned to the approved paths: the rest still goes out, verified
    ok(export(v, empty, "main/other", "main/docs/" + JP_FILE))
    assert os.path.exists(os.path.join(empty, "kinko.vault"))
    f = kinko("fsck", empty, "--user", "alice", "--password-file", v.pwfile, "--json",
              env=env_now(time.time() + 2 * DAY))
    assert f.returncode == 0 and json.loads(f.stdout)["files"] == 2, f.stdout + f.stderr

    # a damaged directory on the way: the check and the export name it (EIO), nothing made
    other = [d for d in glob.glob(os.path.join(v.data_dir(), "*"))
             if os.path.isdir(d) and len([n for n in os.listdir(d) if n != "kinko.diriv"]) == 1]
    assert len(other) == 1, other
    iv = os.path.join(other[0], "kinko.diriv")
    with open(iv, "r+b") as f:
        f.seek(40)
        b = f.read(1)
        f.seek(40)
        f.write(bytes([b[0] ^ 1]))
    refused(check(v, "main/other/fine.txt"), 1, "main/other/fine.txt", "cannot be reached",
            "main/other: directory IV file")
    refused(check(v, "main/other"), 1, "main/other: directory IV file")
    ok(check(v, "main/docs/" + JP_FILE))
    again = os.path.join(tmpbase, "again")
    refused(export(v, again, "main/other/fine.txt"), 1, "main/other: directory IV file")
    refused(export(v, again, "main"), 1, "main/other: directory IV file")
    assert not os.path.exists(again)
    # the damage is not on the way to this one: it goes out
    ok(export(v, again, "main/docs/" + JP_FILE))


def test_vpath_check(world):
    v = world["v"]
    for p in ("main", "sec", "main/docs", "main/docs/", "/main/docs/sub//a.txt", "main/docs/link",
              "main/docs/pipe", "main/docs/empty", "main/" + JP_DIR + "/" + JP_FILE,
              "main/" + JP_DIR + "/中/" + JP_FILE2):
        assert check(v, p).stdout.strip() == "ok " + p, p
    refused(check(v, "main/docs/nope"), 3, "main/docs/nope", "no such file or directory")
    refused(check(v, "main/docs/big.bin/x"), 3, "main/docs/big.bin/x")
    refused(check(v, "main/" + JP_DIR + "/" + JP_FILE2), 3, JP_FILE2)
    refused(check(v, "mian"), 3, "no such compartment 'mian'")
    refused(check(v, "main/a/../b"), 2)
    refused(check(v, ""), 2)
    # bob holds main, not sec
    bob = world["pws"]["bob"]
    ok(check(v, "main/docs/sub/a.txt", user="bob", pwfile=bob))
    refused(check(v, "sec/x", user="bob", pwfile=bob), 7, "sec/x", "holds no usable key")


def test_refusals_change_nothing(world, tmpbase):
    v = world["v"]
    to = os.path.join(tmpbase, "o")
    # a path that does not exist, named
    refused(export(v, to, "main/docs", "main/nope/x.txt"), 3, "main/nope/x.txt")
    refused(export(v, to, "nosuchcomp"), 3, "nosuchcomp")
    refused(export(v, to, "main/../sec"), 2)
    # a compartment the requester holds no grant for (bob: main only)
    refused(export(v, to, "sec", user="bob", pwfile=world["pws"]["bob"]), 7, "sec")
    # an empty period
    now = int(time.time())
    refused(export(v, to, "sec", frm=now + 10, until=now + 10), 2)
    assert not os.path.exists(to)
    # DIR not empty / already a vault
    os.mkdir(to)
    open(os.path.join(to, "x"), "w").close()
    refused(export(v, to, "sec"), 10, "not empty")
    assert os.listdir(to) == ["x"]
    refused(export(v, world["out"], "sec"), 10)
    # the wrong password for the take-out key file
    bad = write_pw(tmpbase, "bad", "Wr0ng-Passw0rd!x")
    refused(export(v, os.path.join(tmpbase, "o2"), "sec", pwfile=bad), 6)
    assert not os.path.exists(os.path.join(tmpbase, "o2"))


def test_no_auditor_but_the_requester_is_refused(tmpbase):
    v = Vault(tmpbase)              # alice alone: the only admin is the requester
    mnt = v.mount()
    open(os.path.join(mnt, "main", "f"), "w").close()
    v.cleanup()
    to = os.path.join(tmpbase, "o")
    refused(export(v, to, "main"), 7,
            "no auditor or other administrator to seal the take-out's audit log to")
    assert not os.path.exists(to)
    # with a second administrator (and still no auditor) the log is sealed to them
    enrol(v, "dave", "admin", AUD_PW)
    ok(export(v, to, "main"))
    body = policy_body(os.path.join(to, "policy", "policy.1"))
    assert {u["id"]: u["role"] for u in body["users"]} == {
        "kinko-takeout": "admin", "alice": "staff", "dave": "auditor"}
