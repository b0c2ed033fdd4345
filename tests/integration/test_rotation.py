"""Key rotation, revocation, re-encryption and crypto-erasure (issue 6),
through the real CLI and real FUSE mounts: rotation is picked up by a mounted
workstation without remounting; rekey re-encrypts everything, survives
kill -9 at random points, never races a mount and destroys the old keys, so
a revoked user's copied key file and grants open nothing; erasure writes a
signed certificate that verifies (and fails once altered); the recovery key
re-grants a compartment nobody can open any more."""
import base64
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import pytest

from kinko_util import (KINKO, PASSWORD, Vault, kinko, ok, read_all, rbytes, umount,
                        wait_for_mount, write_pw)

STAFF_PW = "Mq7#Wv2-Lp9x"


# ---------------------------------------------------------------- helpers

def admin(vault, *args, env=None):
    return kinko(*args, "--vault", vault.path, "--as", vault.user, "--password-file",
                 vault.pwfile, env=env)


def refused(p, code, *needles):
    assert p.returncode != 0, f"expected a refusal, got rc=0\nstdout: {p.stdout}\nstderr: {p.stderr}"
    if code is not None:
        assert p.returncode == code, f"rc={p.returncode}, expected {code}\nstderr: {p.stderr}"
    for n in needles:
        assert n in p.stderr, f"{n!r} not in stderr:\n{p.stderr}"
    return p


def enrol(vault, uid, password=STAFF_PW):
    secret = os.path.join(vault.base, f"secret-{uid}")
    ok(admin(vault, "user", "add", uid, "--role", "staff", "--secret-file", secret))
    pwf = write_pw(vault.base, f"pw-{uid}", password)
    ok(kinko("passwd", vault.path, "--user", uid, "--password-file", secret,
             "--new-password-file", pwf))
    return pwf


def mount_as(vault, user, pwfile):
    mnt = tempfile.mkdtemp(prefix=f"mnt-{user}-", dir=vault.base)
    p = kinko("mount", vault.path, mnt, "--user", user, "--password-file", pwfile)
    if p.returncode == 0:
        wait_for_mount(mnt)
        vault.mounts.append(mnt)
    return p, mnt


def comps(vault):
    return {c["name"]: c for c in json.loads(ok(admin(vault, "compartment", "list", "--json")).stdout)}


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def epochs_on_disk(vault, comp_id):
    """Every epoch recorded in the backing tree of a compartment, read from the
    raw bytes as kinko-format(5) lays them out: {(kind, epoch): count}, plus
    the leftover internal names."""
    root = os.path.join(vault.path, "data", comp_id)
    seen, leftovers = {}, []

    def note(kind, e):
        seen[(kind, e)] = seen.get((kind, e), 0) + 1
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            if name.startswith("kinko.rk.") or name == "kinko.rekey" or ".tmp." in name:
                leftovers.append(os.path.relpath(p, root))
                continue
            for x in os.listxattr(p, follow_symlinks=False):
                if x.startswith("user.kk"):
                    note("xattr", int(x[7:].split(".")[0]))
            if os.path.islink(p):
                t = os.readlink(p)
                if t.startswith("kinko.lt:"):  # a long target: its side file
                    t = open(os.path.join(root, "kinko.lt", t[9:])).read()
                    note("long symlink", struct.unpack("<I", b64url_decode(t)[:4])[0])
                note("symlink", struct.unpack("<I", b64url_decode(t)[:4])[0])
                continue
            if name in dirs or not os.path.isfile(p) or name.startswith("kinko.ln.") and name.endswith(".name"):
                continue
            if os.path.basename(d) == "kinko.lt":  # an old one left behind shows its epoch
                note("side file", struct.unpack("<I", b64url_decode(open(p).read())[:4])[0])
                continue
            with open(p, "rb") as f:
                b = f.read(76)
            if name == "kinko.diriv":
                assert b[:2] == b"kD"
                note("dir", struct.unpack("<I", b[4:8])[0])
            elif b:
                assert b[:2] == b"kF", p
                note("file", struct.unpack("<I", b[8:12])[0])
    return seen, leftovers


def populate(comp, seed=1, big=False):
    """A tree with every kind of item kinko encrypts."""
    rnd = random.Random(seed)
    os.makedirs(os.path.join(comp, "docs", "deep", "er"))
    os.makedirs(os.path.join(comp, "給付" * 20))
    sizes = [0, 1, 4095, 4096, 4097, 70000, 300000] + ([3 << 20, 1 << 20] if big else [])
    for i, n in enumerate(sizes):
        with open(os.path.join(comp, "docs", f"f{i}.bin"), "wb") as f:
            f.write(rnd.randbytes(n))
    for i in range(12):
        with open(os.path.join(comp, "docs", "deep", f"small{i}.txt"), "wb") as f:
            f.write(rnd.randbytes(rnd.randrange(1, 9000)))
    with open(os.path.join(comp, "給付" * 20, "名前" * 40), "w") as f:
        f.write("long name, long directory name\n")
    with open(os.path.join(comp, "docs", "deep", "er", "bottom"), "w") as f:
        f.write("bottom\n")
    os.symlink("../docs/f1.bin", os.path.join(comp, "docs", "deep", "link"))
    os.symlink("/some/where/" + "x" * 200, os.path.join(comp, "longlink"))
    os.symlink("/very/long/" + "給付/" * 500, os.path.join(comp, "docs", "longest"))  # a side file
    os.setxattr(os.path.join(comp, "docs", "f2.bin"), "user.note", b"a note")
    os.setxattr(os.path.join(comp, "docs"), "user.dir", b"dir attr")
    os.link(os.path.join(comp, "docs", "f3.bin"), os.path.join(comp, "docs", "deep", "hardlink"))
    os.chmod(os.path.join(comp, "docs", "f4.bin"), 0o640)


def snapshot(comp):
    """Everything a user can see: contents, link targets, xattrs, modes, links."""
    out = {}
    for d, dirs, files in os.walk(comp):
        for name in sorted(dirs + files):
            p = os.path.join(d, name)
            rel = os.path.relpath(p, comp)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", oct(st.st_mode), sorted((x, os.getxattr(p, x)) for x in os.listxattr(p)))
            else:
                out[rel] = ("file", read_all(p), oct(st.st_mode), st.st_nlink, int(st.st_mtime),
                            sorted((x, os.getxattr(p, x)) for x in os.listxattr(p)))
    return out


def assert_all_epoch(vault, comp_id, epoch):
    seen, leftovers = epochs_on_disk(vault, comp_id)
    old = {k: n for k, n in seen.items() if k[1] != epoch}
    assert not old, f"items left under older epochs: {old}"
    assert not leftovers, f"rekey left internal files: {leftovers}"
    assert ("file", epoch) in seen and ("dir", epoch) in seen
    # one side file per long symlink: the old ones went with the old symlinks
    assert seen.get(("side file", epoch)) == seen.get(("long symlink", epoch)), seen
    return seen


# ---------------------------------------------------------------- rotation

def test_rotation_picked_up_by_a_mounted_workstation(vault):
    mnt = vault.mount()
    comp = vault.comp(mnt)
    with open(os.path.join(comp, "before"), "wb") as f:
        f.write(b"under epoch 1")
    cid = comps(vault)["main"]["id"]
    p = ok(admin(vault, "key", "rotate", "main", "--json"))
    assert json.loads(p.stdout)["epoch"] == 2
    assert comps(vault)["main"]["epoch"] == 2
    time.sleep(1.2)   # the daemon looks for a newer policy at most once a second
    with open(os.path.join(comp, "after"), "wb") as f:
        f.write(b"under epoch 2")
    os.mkdir(os.path.join(comp, "newdir"))
    os.symlink("target", os.path.join(comp, "newlink"))
    os.setxattr(os.path.join(comp, "before"), "user.k", b"v")
    with open(os.path.join(comp, "before"), "r+b") as f:   # rewritten: empty, then new content
        f.truncate(0)
        f.write(b"rewritten")
    seen, _ = epochs_on_disk(vault, cid)
    assert seen.get(("file", 2)) == 2 and ("file", 1) not in seen, seen
    assert seen.get(("dir", 2)) == 1 and seen.get(("dir", 1)) == 1, seen
    assert seen.get(("symlink", 2)) == 1 and seen.get(("xattr", 2)) == 1, seen
    # the old epoch stays readable until re-keyed; nothing was remounted
    assert read_all(os.path.join(comp, "after")) == b"under epoch 2"
    assert read_all(os.path.join(comp, "before")) == b"rewritten"
    umount(mnt)
    ok(vault.fsck())


def test_rotate_revoke_needs_a_remaining_grantee(vault):
    refused(admin(vault, "key", "rotate", "main", "--revoke", vault.user), 7, "no grantee would be left")
    refused(admin(vault, "key", "rotate", "nosuch"), 7, "no such compartment")
    assert comps(vault)["main"]["epoch"] == 1
    for cmd in (["key"], ["recovery"], ["certificate"]):
        p = kinko(*cmd, "--help")
        assert p.returncode == 0 and "usage:" in p.stdout


# ---------------------------------------------------------------- rekey

def test_rekey_reencrypts_everything_and_destroys_old_keys(vault):
    mnt = vault.mount()
    populate(vault.comp(mnt))
    before = snapshot(vault.comp(mnt))
    umount(mnt)
    cid = comps(vault)["main"]["id"]
    # a side file no symlink refers to (as sshfs leaves behind): fsck notes
    # it; the rekey removes it with the other epoch-1 ciphertext
    lt = os.path.join(vault.path, "data", cid, "kinko.lt")
    (side,) = os.listdir(lt)
    shutil.copy(os.path.join(lt, side), os.path.join(lt, "0" * 32))
    notes = json.loads(vault.fsck(json_out=True).stdout)["notes"]
    assert len(notes) == 1 and "kinko.lt/" + "0" * 32 in notes[0]["note"], notes
    ok(admin(vault, "key", "rotate", "main"))
    ok(admin(vault, "key", "rotate", "main"))
    p = ok(admin(vault, "key", "rekey", "main", "--json"))
    res = json.loads(p.stdout)
    assert res["epoch"] == 3 and sorted(res["destroyed_epochs"]) == [1, 2]
    assert res["files"] >= 20 and res["bytes"] > 400000
    assert_all_epoch(vault, cid, 3)
    assert sorted(os.listdir(os.path.join(vault.path, "grants", cid))) == ["3"]
    pol = json.loads(ok(admin(vault, "policy", "show", "--json")).stdout)
    assert pol["serial"] >= 4
    mnt = vault.mount()
    assert snapshot(vault.comp(mnt)) == before
    umount(mnt)
    fs = json.loads(vault.fsck(json_out=True).stdout)
    assert fs["clean"] and fs["files"] >= 20 and fs["notes"] == []
    assert "0" * 32 not in os.listdir(lt) and len(os.listdir(lt)) == 1
    # nothing left to do: a second run is a no-op
    res = json.loads(ok(admin(vault, "key", "rekey", "main", "--json")).stdout)
    assert res["files"] == 0 and res["destroyed_epochs"] == []


def test_rekey_never_races_a_mount(vault, tmpbase):
    mnt = vault.mount()
    populate(vault.comp(mnt))
    ok(admin(vault, "key", "rotate", "main"))
    p = refused(admin(vault, "key", "rekey", "main"), None, "in use", "mount by user 'alice'",
                "on host", "since", os.path.realpath(mnt))
    umount(mnt)
    vault.mounts.clear()
    # a mount while rekey holds the vault is refused with who holds it
    env = dict(os.environ, KINKO_TEST_REKEY_DELAY_MS="150")
    rk = subprocess.Popen([KINKO, "key", "rekey", "main", "--vault", vault.path, "--as", vault.user,
                           "--password-file", vault.pwfile], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert rk.poll() is None, rk.communicate()
        m2 = tempfile.mkdtemp(prefix="mnt-", dir=tmpbase)
        p = kinko("mount", vault.path, m2, "--user", vault.user, "--password-file", vault.pwfile)
        refused(p, 8, "in use", "rekey by user 'alice'", "since")
    finally:
        out, err = rk.communicate(timeout=120)
    assert rk.returncode == 0, err
    assert_all_epoch(vault, comps(vault)["main"]["id"], 2)
    assert not [f for f in os.listdir(os.path.join(vault.path, "locks")) if f.endswith(".holder")]


def test_rekey_survives_kill9_at_random_points(vault, tmpbase):
    """20 runs: rotate, kill -9 the rekey after a random delay, run it again;
    every time all files intact, fsck clean, no old-epoch item left."""
    mnt = vault.mount()
    populate(vault.comp(mnt), big=True)
    ref = os.path.join(tmpbase, "ref")
    shutil.copytree(vault.comp(mnt), ref, symlinks=True)
    before = snapshot(vault.comp(mnt))
    umount(mnt)
    vault.mounts.clear()
    cid = comps(vault)["main"]["id"]
    rnd = random.Random(6)
    env = dict(os.environ, KINKO_TEST_REKEY_DELAY_MS="4")   # test builds: 4 ms per item
    cmd = [KINKO, "key", "rekey", "main", "--vault", vault.path, "--as", vault.user,
           "--password-file", vault.pwfile]
    # how long a whole run takes here (this build, this machine): the kills
    # are spread over it
    ok(admin(vault, "key", "rotate", "main"))
    t0 = time.monotonic()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    full = time.monotonic() - t0
    killed_mid_run = run = 0
    epoch = 2
    while killed_mid_run < 20:   # 20 kills that land while rekey runs
        run += 1
        assert run <= 40, f"only {killed_mid_run} of {run - 1} kills landed during a run"
        ok(admin(vault, "key", "rotate", "main"))
        epoch += 1
        rk = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.05, 0.9) * full)
        if rk.poll() is None:
            killed_mid_run += 1
        rk.send_signal(signal.SIGKILL)
        rk.wait()
        ok(admin(vault, "key", "rekey", "main"))
        assert_all_epoch(vault, cid, epoch)
        assert sorted(os.listdir(os.path.join(vault.path, "grants", cid))) == [str(epoch)]
        fs = json.loads(vault.fsck(json_out=True).stdout)
        assert fs["clean"], fs["damaged"]
        mnt = vault.mount()
        assert subprocess.run(["diff", "-r", "--no-dereference", ref, vault.comp(mnt)]).returncode == 0
        assert snapshot(vault.comp(mnt)) == before
        umount(mnt)
        vault.mounts.clear()
    assert killed_mid_run == 20


# ---------------------------------------------------------------- revocation

def test_revoked_users_copied_key_and_grant_decrypt_nothing(vault, tmpbase, monkeypatch):
    bobpw = enrol(vault, "bob")
    ok(admin(vault, "grant", "bob", "main"))
    p, mnt = mount_as(vault, "bob", bobpw)
    ok(p)
    populate(os.path.join(mnt, "main"))
    umount(mnt)
    vault.mounts.clear()
    cid = comps(vault)["main"]["id"]
    # what bob could have copied before leaving: his key file, his grants,
    # the policy naming him, the vault header
    aside = os.path.join(tmpbase, "aside")
    shutil.copytree(vault.path, aside, ignore=shutil.ignore_patterns("data"))
    assert os.path.exists(os.path.join(aside, "grants", cid, "1", "bob.grant"))
    p = ok(admin(vault, "user", "remove", "bob", "--rotate"))
    assert "re-keyed to epoch 2" in p.stdout and "keys of epoch 1 destroyed" in p.stdout
    assert not os.path.exists(os.path.join(vault.path, "keys", "bob.key"))
    assert not os.path.exists(os.path.join(vault.path, "grants", cid, "1"))
    assert_all_epoch(vault, cid, 2)
    # bob's copies against today's ciphertext, on a workstation he controls
    frank = os.path.join(tmpbase, "frank")
    shutil.copytree(aside, frank)
    shutil.copytree(os.path.join(vault.path, "data"), os.path.join(frank, "data"), symlinks=True)
    monkeypatch.setenv("KINKO_STATE_DIR", os.path.join(tmpbase, "bob-state"))
    fs = kinko("fsck", frank, "--user", "bob", "--password-file", bobpw, "--json")
    j = json.loads(fs.stdout)
    assert fs.returncode == 9 and not j["clean"]
    assert j["blocks"] == 0 and j["bytes"] == 0 and j["files"] == 0, j
    assert j["damaged"] and all(d["compartment"] == "main" for d in j["damaged"]), j["damaged"]
    # and the mount shows nothing readable
    m = tempfile.mkdtemp(prefix="mnt-bob-", dir=tmpbase)
    p = kinko("mount", frank, m, "--user", "bob", "--password-file", bobpw)
    if p.returncode == 0:
        wait_for_mount(m)
        try:
            try:
                names = os.listdir(os.path.join(m, "main"))
            except OSError:
                names = []
            assert names == [], names
        finally:
            umount(m)


def test_revoke_rotate_is_the_complete_revocation(vault):
    bobpw = enrol(vault, "bob")
    ok(admin(vault, "grant", "bob", "main"))
    mnt = vault.mount()
    with open(os.path.join(vault.comp(mnt), "x"), "w") as f:
        f.write("x")
    umount(mnt)
    vault.mounts.clear()
    cid = comps(vault)["main"]["id"]
    p = ok(admin(vault, "revoke", "bob", "main", "--rotate"))
    assert "rotated to epoch 2" in p.stdout and "destroyed" in p.stdout
    assert "bob" not in [g["user"] for g in comps(vault)["main"]["grantees"]]
    assert_all_epoch(vault, cid, 2)
    p, _ = mount_as(vault, "bob", bobpw)
    refused(p, 7)


# ---------------------------------------------------------------- erasure

def test_erase_writes_a_certificate_that_verifies(vault, tmpbase):
    ok(admin(vault, "compartment", "create", "hr", "--class", "himitsu"))
    mnt = vault.mount()
    populate(os.path.join(mnt, "hr"))
    with open(os.path.join(mnt, "main", "keep"), "w") as f:
        f.write("main stays")
    hid = comps(vault)["hr"]["id"]
    r = tempfile.mktemp(dir=tmpbase)
    ok(admin(vault, "recovery", "create", "--out", r))
    assert os.path.exists(os.path.join(vault.path, "recovery", hid))
    refused(admin(vault, "compartment", "erase", "hr", "--yes"), None, "in use", "mount by user")
    umount(mnt)
    vault.mounts.clear()
    refused(admin(vault, "compartment", "erase", "hr"), 2, "--yes")  # not a terminal
    p = ok(admin(vault, "compartment", "erase", "hr", "--yes", "--json"))
    res = json.loads(p.stdout)
    assert res["files"] >= 20 and res["symlinks"] == 3 and res["key_files"] >= 2
    assert not os.path.exists(os.path.join(vault.path, "data", hid))
    assert not os.path.exists(os.path.join(vault.path, "grants", hid))
    assert not os.path.exists(os.path.join(vault.path, "recovery", hid))
    assert "hr" not in comps(vault)
    cert = res["certificate"]
    p = ok(kinko("certificate", "verify", cert, "--vault", vault.path, "--json"))
    body = json.loads(p.stdout)
    assert body["valid"] and body["compartment"]["name"] == "hr"
    assert body["erased"]["files"] == res["files"] and body["erased_by"]["user"] == "alice"
    ok(kinko("certificate", "verify", cert))
    text = open(cert).read()
    altered = os.path.join(tmpbase, "altered.cert")
    n = body["erased"]["files"]
    with open(altered, "w") as f:
        f.write(text.replace(f'"files": {n}', f'"files": {n - 1}', 1))
    assert open(altered).read() != text
    refused(kinko("certificate", "verify", altered), 5, "signature does not verify")
    with open(altered, "w") as f:
        f.write(text.replace('"hr"', '"hx"', 1))
    refused(kinko("certificate", "verify", altered, "--vault", vault.path), 5)
    # the other compartment is untouched
    mnt = vault.mount()
    assert read_all(os.path.join(mnt, "main", "keep")) == b"main stays"
    assert os.listdir(mnt) == ["main"]
    umount(mnt)
    ok(vault.fsck())


# ---------------------------------------------------------------- recovery

def test_recovery_key_regrants_a_compartment_nobody_can_open(vault, tmpbase):
    rkey = os.path.join(tmpbase, "recovery.key")
    ok(admin(vault, "recovery", "create", "--out", rkey))
    assert os.stat(rkey).st_mode & 0o777 == 0o600
    refused(admin(vault, "recovery", "create", "--out", rkey + "2"), 10, "already has a recovery key")
    ok(admin(vault, "compartment", "create", "hr", "--class", "himitsu"))
    bobpw = enrol(vault, "bob")
    ok(admin(vault, "grant", "bob", "hr"))
    p, mnt = mount_as(vault, "bob", bobpw)
    ok(p)
    with open(os.path.join(mnt, "hr", "salary.csv"), "w") as f:
        f.write("bob,100\n")
    umount(mnt)
    vault.mounts.clear()
    ok(admin(vault, "key", "rotate", "hr"))       # the new epoch is sealed to the recovery key too
    st = json.loads(ok(admin(vault, "recovery", "status", "--json")).stdout)
    hr = [c for c in st["compartments"] if c["name"] == "hr"][0]
    assert st["recovery_key"] and hr["covered_epochs"] == [1, 2]
    ok(admin(vault, "revoke", "alice", "hr"))
    # bob forgot his password: his key file is of no use to anyone now
    os.unlink(os.path.join(vault.path, "keys", "bob.key"))
    carolpw = enrol(vault, "carol")
    refused(admin(vault, "grant", "carol", "hr"), 7, "holds no key")
    bad = os.path.join(tmpbase, "bad.key")
    with open(bad, "w") as f:
        f.write(open(rkey).read().replace("secret ", "secret 00", 1)[:-3] + "\n")
    refused(admin(vault, "recovery", "grant", "hr", "carol", "--key", bad), None)
    ok(admin(vault, "recovery", "grant", "hr", "carol", "--key", rkey))
    p, mnt = mount_as(vault, "carol", carolpw)
    ok(p)
    assert read_all(os.path.join(mnt, "hr", "salary.csv")) == b"bob,100\n"
    umount(mnt)


# ---------------------------------------------------------------- throughput

def test_rekey_throughput_against_a_plain_copy(vault, tmpbase):
    mnt = vault.mount()
    comp = vault.comp(mnt)
    for i in range(4):
        with open(os.path.join(comp, f"big{i}"), "wb") as f:
            f.write(rbytes(16 << 20, i))
    umount(mnt)
    vault.mounts.clear()
    cid = comps(vault)["main"]["id"]
    src = os.path.join(vault.path, "data", cid)
    t0 = time.monotonic()
    subprocess.run(["cp", "-a", src, os.path.join(tmpbase, "plain-copy")], check=True)
    os.sync()
    plain = time.monotonic() - t0
    ok(admin(vault, "key", "rotate", "main"))
    res = json.loads(ok(admin(vault, "key", "rekey", "main", "--json")).stdout)
    ratio = res["seconds"] / plain
    print(f"\nrekey: {res['bytes'] / res['seconds'] / 2**20:.0f} MiB/s over {res['bytes'] >> 20} MiB "
          f"in {res['seconds']:.2f} s; plain copy (cp -a + sync) {plain:.2f} s; ratio {ratio:.2f}")
    assert res["bytes"] >= 64 << 20
    assert ratio < 25, f"rekey {res['seconds']:.2f} s vs plain copy {plain:.2f} s"


def test_init_writes_the_recovery_key_once(tmpbase):
    pw = write_pw(tmpbase, "pw-init", PASSWORD)
    rkey = os.path.join(tmpbase, "init.rkey")
    v = os.path.join(tmpbase, "v2")
    p = ok(kinko("init", v, "--user", "alice", "--password-file", pw, "--recovery-out", rkey))
    assert "recovery key written" in p.stdout
    assert os.stat(rkey).st_mode & 0o777 == 0o600
    lines = open(rkey).read().splitlines()
    assert "kinko-recovery-key 1" in lines and any(x.startswith("secret ") for x in lines)
    st = json.loads(ok(kinko("recovery", "status", "--json", "--vault", v, "--as", "alice",
                             "--password-file", pw)).stdout)
    assert st["recovery_key"] and st["compartments"][0]["covered_epochs"] == [1]
    # written once: an existing file is never overwritten
    p = kinko("init", os.path.join(tmpbase, "v3"), "--user", "alice", "--password-file", pw,
              "--recovery-out", rkey)
    assert p.returncode == 10 and "written once" in p.stderr
    assert not os.path.exists(os.path.join(tmpbase, "v3"))
    assert open(rkey).read().splitlines() == lines


def test_rekey_keeps_old_keys_for_a_damaged_file_and_its_directory_readable(vault):
    mnt = vault.mount()
    comp = vault.comp(mnt)
    os.mkdir(os.path.join(comp, "d"))
    for i in range(5):
        with open(os.path.join(comp, "d", f"ok{i}"), "wb") as f:
            f.write(rbytes(10000, i))
    with open(os.path.join(comp, "d", "bad"), "wb") as f:   # 64 blocks: both crypto threads
        f.write(rbytes(64 * 4096, 99))
    umount(mnt)
    vault.mounts.clear()
    cid = comps(vault)["main"]["id"]
    # the largest backing file in d is "bad": flip a byte in block 40 (second half)
    ddir = [os.path.join(vault.data_dir(), n) for n in os.listdir(vault.data_dir())
            if os.path.isdir(os.path.join(vault.data_dir(), n))][0]
    bad = max((os.path.join(ddir, n) for n in os.listdir(ddir) if not n.startswith("kinko.")),
              key=os.path.getsize)
    with open(bad, "r+b") as f:
        f.seek(76 + 40 * 4124 + 100)
        b = f.read(1)
        f.seek(76 + 40 * 4124 + 100)
        f.write(bytes([b[0] ^ 1]))
    ok(admin(vault, "key", "rotate", "main"))
    p = refused(admin(vault, "key", "rekey", "main"), 5, "d/bad", "block 40 fails authentication",
                "old epoch keys are kept")
    assert os.path.isdir(os.path.join(vault.path, "grants", cid, "1"))
    seen, leftovers = epochs_on_disk(vault, cid)
    assert seen.get(("file", 1)) == 1 and ("dir", 1) not in seen and not leftovers, seen
    # every name is readable, the intact files too; the damaged one up to its damage
    mnt = vault.mount()
    comp = vault.comp(mnt)
    assert sorted(os.listdir(os.path.join(comp, "d"))) == ["bad"] + [f"ok{i}" for i in range(5)]
    for i in range(5):
        assert read_all(os.path.join(comp, "d", f"ok{i}")) == rbytes(10000, i)
    with open(os.path.join(comp, "d", "bad"), "rb") as f:
        assert f.read(40 * 4096) == rbytes(64 * 4096, 99)[:40 * 4096]
    os.unlink(os.path.join(comp, "d", "bad"))
    umount(mnt)
    vault.mounts.clear()
    res = json.loads(ok(admin(vault, "key", "rekey", "main", "--json")).stdout)
    assert res["destroyed_epochs"] == [1]
    assert_all_epoch(vault, cid, 2)
    ok(vault.fsck())


def test_user_remove_rotate_refuses_the_last_grantee(vault):
    enrol(vault, "bob")
    ok(admin(vault, "compartment", "create", "hr", "--class", "himitsu"))
    ok(admin(vault, "grant", "bob", "hr"))
    ok(admin(vault, "revoke", "alice", "hr"))
    refused(admin(vault, "user", "remove", "bob", "--rotate"), 7, "last grant of compartment 'hr'")
    assert [g["user"] for g in comps(vault)["hr"]["grantees"]] == ["bob"]
    assert comps(vault)["hr"]["epoch"] == 1
