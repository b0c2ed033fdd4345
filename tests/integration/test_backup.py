"""Approved backups: kinko backup create (role backup, registered medium,
ciphertext only, incremental, signed manifest, ledger record, guard job),
backup verify (no key), backup restore (admin) and the restore drill."""
import json
import os
import random
import shutil
import subprocess
import time

import pytest

from kinko_util import (KINKO, Vault, as_admin, enrol, fake_guard, kinko, ok, refused, umount,
                        wait_for_mount)

STAFF_PW = "St4ff-Member!pw"
BACKUP_PW = "B4ckup-Operator!pw"


class Site:
    """alice (admin), bob (staff), bk (backup), medium USB-001 registered."""

    def __init__(self, base, comps=("main",)):
        self.v = Vault(base)
        v = self.v
        for c in comps[1:]:
            ok(as_admin(v, "compartment", "create", c, "--class", "himitsu"))
        self.bob = enrol(v, "bob", "staff", STAFF_PW)
        self.bk = enrol(v, "bk", "backup", BACKUP_PW)
        ok(as_admin(v, "media", "register", "USB-001", "--kind", "usb", "--serial", "S1",
                    "--label", "backup stick", "--location", "safe", "--holder", "bk"))

    def backup(self, dest, medium="USB-001", user="bk", pwfile=None, env=None, json_out=True):
        args = ["backup", "create", "--media", medium, "--to", dest]
        if json_out:
            args.append("--json")
        return kinko(*args, "--vault", self.v.path, "--as", user, "--password-file",
                     pwfile or self.bk, env=env)

    def mount(self, user, pwfile, vault_path=None):
        mnt = os.path.join(self.v.base, f"mnt-{user}-{time.monotonic_ns()}")
        os.makedirs(mnt)
        ok(kinko("mount", vault_path or self.v.path, mnt, "--user", user, "--password-file",
                 pwfile))
        wait_for_mount(mnt)
        self.v.mounts.append(mnt)
        return mnt


@pytest.fixture
def site(tmpbase):
    s = Site(tmpbase)
    yield s
    s.v.cleanup()


def fill(comp_dir, n, seed, sizes=(1, 9000)):
    rnd = random.Random(seed)
    for i in range(n):
        d = os.path.join(comp_dir, f"d{i % 7}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:04d}.bin"), "wb") as f:
            f.write(rnd.randbytes(rnd.randint(*sizes)))


def plaintext_on_medium(dest, needle):
    for root, _, files in os.walk(dest):
        for f in files:
            if needle in open(os.path.join(root, f), "rb").read():
                return os.path.join(root, f)
    return None


def test_backup_copies_ciphertext_only_and_is_recorded(site, tmpbase):
    mnt = site.mount("alice", site.v.pwfile)
    secret = b"MY-NUMBER 1234-5678-9012 plaintext marker"
    with open(os.path.join(mnt, "main", "doc.txt"), "wb") as f:
        f.write(secret * 10)
    umount(mnt)
    dest = os.path.join(tmpbase, "medium", "kinko")
    st = json.loads(ok(site.backup(dest)).stdout)
    assert st["signer"] == "bk" and st["medium"] == "USB-001" and st["problems"] == 0
    assert st["files"] >= 8 and st["copied_files"] == st["files"]
    assert plaintext_on_medium(dest, secret) is None
    man = open(os.path.join(dest, "kinko-backup.manifest")).read()
    paths = {e["path"] for e in json.loads(man[:man.rindex("\ned25519:") + 1])["files"]}
    for p in ("kinko.vault", "keys/alice.key", "keys/bk.key", "ledger/000000000001.klr"):
        assert p in paths
    assert any(p.startswith("policy/policy.") for p in paths)
    assert any(p.startswith("grants/") for p in paths)
    assert any(p.startswith("data/") for p in paths)
    assert any(p.startswith("audit/") for p in paths)
    # the ledger knows: who, when, which medium, how much
    recs = json.loads(ok(as_admin(site.v, "ledger", "print", "--json")).stdout)
    b = recs[-1]
    assert b["signer"] == "bk" and b["body"]["event"] == "backup"
    assert b["body"]["medium"] == "USB-001" and b["body"]["files"] == st["files"]
    assert b["body"]["bytes"] == st["bytes"] and b["body"]["copied_bytes"] == st["copied_bytes"]
    assert b["body"]["manifest_sha256"] == st["manifest_sha256"]
    m = json.loads(ok(as_admin(site.v, "media", "list", "--json")).stdout)[0]
    assert m["backups"] == 1 and m["last_backup"]
    ok(as_admin(site.v, "ledger", "verify"))
    v = ok(kinko("backup", "verify", dest, "--json"))
    j = json.loads(v.stdout)
    assert j["ok"] is True and j["files"] == st["files"] and j["signer"] == "bk"
    # audited
    out = ok(as_admin(site.v, "audit", "show", "--json", "--action", "backup")).stdout
    ents = [json.loads(l) for l in out.splitlines() if l.strip()]
    assert any(e["user"] == "bk" and e["result"] == "ok" for e in ents), ents


def test_unregistered_or_disposed_medium_refused(site, tmpbase):
    dest = os.path.join(tmpbase, "m1")
    refused(site.backup(dest, medium="USB-999"), 7, "medium 'USB-999' is not registered")
    assert not os.path.exists(os.path.join(dest, "kinko-backup.manifest"))
    cert = os.path.join(tmpbase, "cert")
    open(cert, "w").write("crushed\n")
    ok(as_admin(site.v, "media", "dispose", "USB-001", "--method", "crush", "--certificate", cert))
    refused(site.backup(dest), 7, "medium 'USB-001' was disposed of")
    assert not os.path.exists(os.path.join(dest, "kinko-backup.manifest"))
    out = ok(as_admin(site.v, "audit", "show", "--json", "--action", "backup")).stdout
    reasons = {json.loads(l).get("reason") for l in out.splitlines() if l.strip()}
    assert {"medium-not-registered", "medium-disposed"} <= reasons


def test_non_backup_user_cannot_create(site, tmpbase):
    dest = os.path.join(tmpbase, "m2")
    refused(site.backup(dest, user="bob", pwfile=site.bob), 7, "may not")
    refused(site.backup(dest, user="alice", pwfile=site.v.pwfile), 7, "may not")
    assert not os.path.exists(os.path.join(dest, "kinko-backup.manifest"))


def test_tampered_backup_names_the_file(site, tmpbase):
    mnt = site.mount("alice", site.v.pwfile)
    fill(os.path.join(mnt, "main"), 20, 1)
    umount(mnt)
    dest = os.path.join(tmpbase, "m3")
    ok(site.backup(dest))
    ok(kinko("backup", "verify", dest))
    man = open(os.path.join(dest, "kinko-backup.manifest")).read()
    files = json.loads(man[:man.rindex("\ned25519:") + 1])["files"]
    victim = next(e for e in files if e["type"] == "f" and e["path"].startswith("data/")
                  and e["size"] > 100)
    obj = os.path.join(dest, "objects", victim["sha256"][:2], victim["sha256"])
    data = bytearray(open(obj, "rb").read())
    data[50] ^= 1
    open(obj, "wb").write(bytes(data))
    r = kinko("backup", "verify", dest)
    assert r.returncode == 9, r.stdout + r.stderr
    assert f"kinko: {victim['path']}: hash differs from the manifest: edited" in r.stdout
    j = json.loads(kinko("backup", "verify", dest, "--json").stdout)
    assert [i["file"] for i in j["issues"]] == [victim["path"]]
    # a missing object is named too
    victim2 = next(e for e in files if e["path"] == "keys/alice.key")
    os.unlink(os.path.join(dest, "objects", victim2["sha256"][:2], victim2["sha256"]))
    r = kinko("backup", "verify", dest)
    assert "kinko: keys/alice.key: missing from the backup" in r.stdout
    # restore refuses a damaged backup and leaves nothing behind
    nv = os.path.join(tmpbase, "nv")
    refused(kinko("backup", "restore", dest, "--to", nv, "--as", "alice", "--password-file",
                  site.v.pwfile), None)
    assert not os.path.exists(nv)


def test_edited_manifest_fails_its_signature(site, tmpbase):
    dest = os.path.join(tmpbase, "m4")
    ok(site.backup(dest))
    p = os.path.join(dest, "kinko-backup.manifest")
    s = open(p).read().replace('"medium": "USB-001"', '"medium": "USB-002"', 1)
    open(p, "w").write(s)
    refused(kinko("backup", "verify", dest), 5, "signature does not verify")


def ed25519_sign(base, msg):
    """(raw public key, signature) with a fresh Ed25519 key, by the openssl tool."""
    key = os.path.join(base, "stranger.pem")
    if not os.path.exists(key):
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True,
                       capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    m = os.path.join(base, "msg")
    open(m, "wb").write(msg)
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", m],
                         check=True, capture_output=True).stdout
    return der[-32:], sig


def test_manifest_resigned_by_a_stranger_is_refused(site, tmpbase):
    """A tampered object with a manifest edited to match and re-signed with a key
    that is not bk's key in the backed-up policy."""
    dest = os.path.join(tmpbase, "m5")
    ok(site.backup(dest))
    p = os.path.join(dest, "kinko-backup.manifest")
    text = open(p).read()
    body = text[:text.rindex("\ned25519:") + 1]
    man = json.loads(body)
    e = next(e for e in man["files"] if e["path"] == "keys/bk.key")
    obj = os.path.join(dest, "objects", e["sha256"][:2], e["sha256"])
    forged = open(obj, "rb").read()[:-1] + b"X"
    import hashlib
    h = hashlib.sha256(forged).hexdigest()
    os.makedirs(os.path.join(dest, "objects", h[:2]), exist_ok=True)
    open(os.path.join(dest, "objects", h[:2], h), "wb").write(forged)
    e["sha256"] = h
    pk, _ = ed25519_sign(tmpbase, b"x")
    man["signer_pk"] = pk.hex()
    body = json.dumps(man, indent=1, ensure_ascii=False) + "\n"
    _, sig = ed25519_sign(tmpbase, body.encode())
    open(p, "w").write(body + "ed25519:" + sig.hex() + "\n")
    refused(kinko("backup", "verify", dest), 5, "signer 'bk' is not an active backup user")


def test_guard_job_registered_first(site, tmpbase):
    """The job goes to the guard socket before any byte is written; a refusal stops it."""
    with fake_guard(os.path.join(tmpbase, "guard.sock")) as g:
        env = dict(os.environ, KINKO_GUARD_SOCKET=g.path)
        dest = os.path.join(tmpbase, "m6")
        ok(site.backup(dest, env=env))
        req = g.seen[0]
        assert req["op"] == "register-job" and req["kind"] == "backup"
        assert req["medium"] == "USB-001" and req["user"] == "bk"
        assert req["dest"] == os.path.realpath(dest) and req["vault"] == os.path.realpath(site.v.path)
        assert isinstance(req["pid"], int) and req["pid"] > 1
        g.answer = {"ok": False, "error": "medium not mounted"}
        dest2 = os.path.join(tmpbase, "m7")
        refused(site.backup(dest2, env=env), 7, "refused the job: medium not mounted")
        assert not os.path.exists(os.path.join(dest2, "kinko-backup.manifest"))
    # no guard at all: the backup goes on
    env["KINKO_GUARD_SOCKET"] = os.path.join(tmpbase, "none.sock")
    ok(site.backup(os.path.join(tmpbase, "m8"), env=env))


def test_restore_by_non_admin_is_undone(site, tmpbase):
    dest = os.path.join(tmpbase, "m9")
    ok(site.backup(dest))
    nv = os.path.join(tmpbase, "nv")
    refused(kinko("backup", "restore", dest, "--to", nv, "--as", "bk", "--password-file",
                  site.bk), 7, "only an administrator")
    assert not os.path.exists(nv)
    os.makedirs(nv)
    open(os.path.join(nv, "x"), "w").write("x")
    refused(kinko("backup", "restore", dest, "--to", nv, "--as", "alice", "--password-file",
                  site.v.pwfile), 10, "not empty")
    assert os.listdir(nv) == ["x"]


def tree_bytes(root):
    total = 0
    for r, _, fs in os.walk(root):
        for f in fs:
            total += os.path.getsize(os.path.join(r, f))
    return total


def test_restore_drill_and_incremental(tmpbase, capfd):
    """1,000 files in 3 compartments -> backup -> vault deleted -> restore ->
    mounted as two users -> diff -r equal. Then 1% of the files change and a
    second backup copies about 1% of the bytes."""
    s = Site(tmpbase, comps=("main", "kyufu", "jinji"))
    v = s.v
    ok(as_admin(v, "grant", "bob", "kyufu"))
    ok(as_admin(v, "grant", "bob", "jinji", "--read-only"))
    ref = os.path.join(tmpbase, "ref")
    mnt = s.mount("alice", v.pwfile)
    for i, c in enumerate(("main", "kyufu", "jinji")):
        fill(os.path.join(mnt, c), 334 if i < 2 else 332, 100 + i, sizes=(1, 20000))
    shutil.copytree(mnt, ref, symlinks=True)
    umount(mnt)
    nfiles = sum(len(fs) for _, _, fs in os.walk(ref))
    assert nfiles == 1000
    dest = os.path.join(tmpbase, "usb", "kinko")
    t0 = time.monotonic()
    st1 = json.loads(ok(s.backup(dest)).stdout)
    t_full = time.monotonic() - t0
    assert st1["copied_bytes"] == st1["bytes"] and st1["files"] > 1000
    ok(kinko("backup", "verify", dest))

    # 1% of the files change (same sizes), then a second backup
    mnt = s.mount("alice", v.pwfile)
    rnd = random.Random(7)
    changed = rnd.sample(sorted(os.path.join(r, f)[len(ref) + 1:] for r, _, fs in os.walk(ref)
                                for f in fs), 10)
    changed_bytes = 0
    for rel in changed:
        n = os.path.getsize(os.path.join(ref, rel))
        data = rnd.randbytes(n)
        for root in (mnt, ref):
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
        changed_bytes += n
    umount(mnt)
    t0 = time.monotonic()
    st2 = json.loads(ok(s.backup(dest)).stdout)
    t_incr = time.monotonic() - t0
    frac = st2["copied_bytes"] / st2["bytes"]
    with capfd.disabled():
        print(f"\n[backup] full: {st1['files']} files {st1['bytes']} B copied in {t_full:.2f}s; "
              f"incremental after changing 10/1000 files ({changed_bytes} B plaintext): "
              f"copied {st2['copied_files']} files {st2['copied_bytes']} B = {100 * frac:.2f}% "
              f"of {st2['bytes']} B, read {st2['read_files']} files, in {t_incr:.2f}s; "
              f"{st2['removed_objects']} stale objects removed")
    # the 10 changed files, plus the new audit segments and ledger records
    assert st2["copied_files"] >= 10 and st2["copied_files"] < 40
    assert changed_bytes <= st2["copied_bytes"] <= 0.03 * st2["bytes"]
    assert st2["removed_objects"] >= 10   # the old versions of the changed files
    assert tree_bytes(os.path.join(dest, "objects")) < 1.05 * st2["bytes"]
    ok(kinko("backup", "verify", dest))

    # the drill: the vault is lost
    shutil.rmtree(v.path)
    restored = os.path.join(tmpbase, "restored")
    p = ok(kinko("backup", "restore", dest, "--to", restored, "--as", "alice",
                 "--password-file", v.pwfile))
    assert "restored" in p.stdout
    ma = s.mount("alice", v.pwfile, restored)
    mb = s.mount("bob", s.bob, restored)
    assert sorted(os.listdir(ma)) == ["jinji", "kyufu", "main"]
    assert sorted(os.listdir(mb)) == ["jinji", "kyufu"]
    d = subprocess.run(["diff", "-r", ref, ma], capture_output=True, text=True)
    assert d.returncode == 0, d.stdout[-2000:]
    for c in ("kyufu", "jinji"):
        d = subprocess.run(["diff", "-r", os.path.join(ref, c), os.path.join(mb, c)],
                           capture_output=True, text=True)
        assert d.returncode == 0, d.stdout[-2000:]
    umount(ma)
    umount(mb)
    ok(kinko("fsck", restored, "--user", "alice", "--password-file", v.pwfile))
    # the restored vault's ledger still verifies and the restore was audited
    out = ok(kinko("ledger", "verify", "--vault", restored, "--as", "alice", "--password-file",
                   v.pwfile))
    assert "0 problem(s)" in out.stdout
    recs = json.loads(ok(kinko("ledger", "print", "--json", "--vault", restored, "--as", "alice",
                               "--password-file", v.pwfile)).stdout)
    assert recs[-1]["body"]["event"] == "restore" and recs[-1]["signer"] == "alice"
    assert recs[-1]["body"]["medium"] == "USB-001" and recs[-1]["body"]["files"] == st2["files"]
    v.cleanup()


def test_progress_bar_only_on_a_terminal(site, tmpbase):
    import pty
    dest = os.path.join(tmpbase, "m10")
    ok(site.backup(dest))
    # not a terminal: quiet
    p = ok(kinko("backup", "verify", dest))
    assert "\r" not in p.stderr and "%" not in p.stderr
    # a terminal on stderr: a bar that reaches 100%
    master, slave = pty.openpty()
    proc = subprocess.Popen([KINKO, "backup", "verify", dest], stdout=subprocess.PIPE,
                            stderr=slave, text=True)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 0
    proc.stdout.close()
    os.close(master)
    text = out.decode(errors="replace")
    assert "verify" in text and "100%" in text and "files" in text, text
    # --quiet on a terminal: none
    master, slave = pty.openpty()
    proc = subprocess.Popen([KINKO, "backup", "verify", dest, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    assert proc.wait(timeout=60) == 0
    try:
        rest = os.read(master, 4096)
    except OSError:
        rest = b""
    os.close(master)
    assert b"%" not in rest


def test_backup_inside_the_vault_refused(site):
    dest = os.path.join(site.v.path, "data", "bk")
    refused(site.backup(dest), 2, "cannot be written inside the vault")
    assert not os.path.exists(os.path.join(dest, "kinko-backup.manifest"))


def test_special_files_and_symlinks_restored(site, tmpbase):
    import stat
    mnt = site.mount("alice", site.v.pwfile)
    c = os.path.join(mnt, "main")
    os.mkfifo(os.path.join(c, "pipe"), 0o640)
    os.symlink("target/of/link", os.path.join(c, "link"))
    long_target = "/".join(["長い"] * 570)  # 3,989 bytes: the sealed target goes to a side file
    os.symlink(long_target, os.path.join(c, "longlink"))
    os.makedirs(os.path.join(c, "deep", "er"))
    os.link(os.path.join(c, "longlink"), os.path.join(c, "deep", "longlink2"), follow_symlinks=False)
    with open(os.path.join(c, "deep", "er", "f"), "wb") as f:
        f.write(b"x" * 5000)
    os.chmod(os.path.join(c, "deep", "er", "f"), 0o604)
    umount(mnt)
    dest = os.path.join(tmpbase, "m11")
    ok(site.backup(dest))
    man = open(os.path.join(dest, "kinko-backup.manifest")).read()
    types = {e["type"] for e in json.loads(man[:man.rindex("\ned25519:") + 1])["files"]}
    assert types == {"d", "f", "l", "p"}
    nv = os.path.join(tmpbase, "nv11")
    ok(kinko("backup", "restore", dest, "--to", nv, "--as", "alice", "--password-file",
             site.v.pwfile))
    m2 = site.mount("alice", site.v.pwfile, nv)
    c2 = os.path.join(m2, "main")
    st = os.lstat(os.path.join(c2, "pipe"))
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    assert os.readlink(os.path.join(c2, "link")) == "target/of/link"
    assert os.readlink(os.path.join(c2, "longlink")) == long_target
    # hard links of a long symlink share its side file: restored as hard links again
    assert os.lstat(os.path.join(c2, "longlink")).st_nlink == 2
    os.unlink(os.path.join(c2, "longlink"))
    assert os.readlink(os.path.join(c2, "deep", "longlink2")) == long_target
    assert open(os.path.join(c2, "deep", "er", "f"), "rb").read() == b"x" * 5000
    assert stat.S_IMODE(os.stat(os.path.join(c2, "deep", "er", "f")).st_mode) == 0o604
    umount(m2)
    ok(kinko("fsck", nv, "--user", "alice", "--password-file", site.v.pwfile))
