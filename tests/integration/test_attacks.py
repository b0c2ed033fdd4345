"""Attacks on the access-control metadata of a vault (issue 3): whoever can
write the vault directory edits, forges, swaps or replays policy, grant and
key files. Every such change must be refused at unlock with a non-zero exit
and a message naming the file, and never give anyone keys the signed policy
does not give them."""
import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile

import pytest

from kinko_util import KINKO, PASSWORD, Vault, is_mounted, kinko, ok, refused, wait_for_mount, write_pw

STAFF_PW = "Mq7#Wv2-Lp9x"


# ---------------------------------------------------------------- helpers

def admin(vault, *args, as_user=None, pwfile=None, env=None):
    return kinko(*args, "--vault", vault.path, "--as", as_user or vault.user,
                 "--password-file", pwfile or vault.pwfile, env=env)


def enrol(vault, uid, role="staff"):
    secret = os.path.join(vault.base, f"secret-{uid}")
    ok(admin(vault, "user", "add", uid, "--role", role, "--secret-file", secret))
    pwf = write_pw(vault.base, f"pw-{uid}", STAFF_PW)
    ok(kinko("passwd", vault.path, "--user", uid, "--password-file", secret,
             "--new-password-file", pwf))
    return pwf


def mount_as(vault, user, pwfile=None, extra=(), env=None):
    mnt = tempfile.mkdtemp(prefix=f"mnt-{user}-", dir=vault.base)
    pwfile = pwfile or vault.pw[user]
    p = kinko("mount", vault.path, mnt, "--user", user, "--password-file", pwfile, *extra, env=env)
    if p.returncode == 0:
        wait_for_mount(mnt)
        vault.mounts.append(mnt)
    else:
        assert not is_mounted(mnt)
    return p, mnt


def fsck_as(vault, user):
    return kinko("fsck", vault.path, "--user", user, "--password-file", vault.pw[user])


# policy envelope: "KINKOPOL" | u16 version | u16 flags | vault_id[16] | u64 serial |
# u32 body_len | body | str8 signer | signer sig[64] | root sig[64]   (little endian)
BODY_OFF = 8 + 2 + 2 + 16 + 8 + 4


def policy_files(vault):
    d = os.path.join(vault.path, "policy")
    return sorted((int(n.split(".")[1]), os.path.join(d, n)) for n in os.listdir(d))


def newest_policy(vault):
    return policy_files(vault)[-1]


def parse_policy(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"KINKOPOL", raw[:8]
    (serial,) = struct.unpack_from("<Q", raw, 28)
    (blen,) = struct.unpack_from("<I", raw, 36)
    body = raw[BODY_OFF:BODY_OFF + blen]
    return raw, serial, json.loads(body), blen


def rel(vault, path):
    return os.path.relpath(path, vault.path)


# grant: "KINKOGRT" | u16 version | u16 flags | vault_id[16] | comp_id[16] | u32 epoch |
# str8 user | commitment[32] | sealed[32 + 48]
def grant_pack(vault_id, comp_id, epoch, user, commitment, sealed):
    u = user.encode()
    return (b"KINKOGRT" + struct.pack("<HH", 1, 0) + vault_id + comp_id + struct.pack("<I", epoch)
            + bytes([len(u)]) + u + commitment + sealed)


def grant_unpack(raw):
    assert raw[:8] == b"KINKOGRT"
    ver, flags = struct.unpack_from("<HH", raw, 8)
    vid, cid = raw[12:28], raw[28:44]
    (epoch,) = struct.unpack_from("<I", raw, 44)
    n = raw[48]
    user = raw[49:49 + n].decode()
    cm = raw[49 + n:81 + n]
    sealed = raw[81 + n:]
    return dict(version=ver, flags=flags, vault_id=vid, comp_id=cid, epoch=epoch, user=user,
                commitment=cm, sealed=sealed)


def box_seal(msg, pk):
    """libsodium crypto_box_seal (anonymous sealed box to an X25519 public key)."""
    try:
        from nacl.public import PublicKey, SealedBox
        return SealedBox(PublicKey(pk)).encrypt(msg)
    except ImportError:
        pass
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    assert lib.sodium_init() >= 0
    out = ctypes.create_string_buffer(len(msg) + 48)
    assert lib.crypto_box_seal(out, msg, ctypes.c_ulonglong(len(msg)), pk) == 0
    return out.raw


def commitment(epoch_key, vault_id, comp_id, epoch):
    """kformat_epoch_commitment: BLAKE2b-256 keyed with the epoch key."""
    msg = b"kinko-commit-v1\0" + vault_id + comp_id + struct.pack("<I", epoch)
    return hashlib.blake2b(msg, key=epoch_key, digest_size=32).digest()


@pytest.fixture(scope="module")
def org_template():
    """alice (admin: main, hr), bob and dan (staff, both granted hr; same-length ids)."""
    base = tempfile.mkdtemp(prefix="kinko-atk-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINKO_STATE_DIR", os.path.join(base, "state"))
        mp.delenv("KINKO_TEST_NOW", raising=False)
        mp.delenv("KINKO_VAULT", raising=False)
        v = Vault(base)
        ok(admin(v, "compartment", "create", "hr", "--class", "himitsu"))
        enrol(v, "bob")
        enrol(v, "dan")
        ok(admin(v, "grant", "bob", "hr"))
        ok(admin(v, "grant", "dan", "hr"))
        cids = {c["name"]: c["id"] for c in
                json.loads(ok(admin(v, "compartment", "list", "--json")).stdout)}
        v.pw = {"alice": v.pwfile, "bob": os.path.join(base, "pw-bob"),
                "dan": os.path.join(base, "pw-dan")}
        p, mnt = mount_as(v, "bob")
        ok(p)
        with open(os.path.join(mnt, "hr", "payroll.txt"), "w") as f:
            f.write("給与明細\n")
        v.cleanup()
    yield base, cids
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def org(tmpbase, org_template):
    src, cids = org_template
    base = os.path.join(tmpbase, "org")
    shutil.copytree(src, base, ignore=shutil.ignore_patterns("state", "mnt-*"))
    v = Vault.__new__(Vault)          # an existing vault: no kinko init
    v.base, v.path, v.user, v.password = base, os.path.join(base, "vault"), "alice", PASSWORD
    v.pwfile, v.compartment, v.mounts = os.path.join(base, "pw-alice"), "main", []
    v.pw = {u: os.path.join(base, f"pw-{u}") for u in ("alice", "bob", "dan")}
    v.cids = cids
    yield v
    v.cleanup()


def grant_path(v, comp, user, epoch=1):
    return os.path.join(v.path, "grants", v.cids[comp], str(epoch), f"{user}.grant")


def assert_works(v, user, expect=("hr",)):
    p, mnt = mount_as(v, user)
    ok(p)
    assert set(expect) <= set(os.listdir(mnt)), os.listdir(mnt)
    v.cleanup()


# ---------------------------------------------------------------- policy files

@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_policy_body_byte_flipped(org, where):
    v = org
    serial, path = newest_policy(v)
    raw, _, _, blen = parse_policy(path)
    off = BODY_OFF + {"start": 0, "middle": blen // 2, "end": blen - 1}[where]
    b = bytearray(raw)
    b[off] ^= 0x01
    with open(path, "wb") as f:
        f.write(b)
    name = rel(v, path)
    for user in ("alice", "bob"):
        p, _ = mount_as(v, user)
        refused(p, 5, name)
    refused(fsck_as(v, "dan"), 5, name)
    refused(admin(v, "user", "list"), 5, name)


def test_policy_edit_read_only_to_read_write(org):
    """bob has a read-only grant; flipping "ro" to "rw" in the JSON is refused."""
    v = org
    ok(admin(v, "grant", "bob", "hr", "--read-only"))
    serial, path = newest_policy(v)
    raw, _, body, _ = parse_policy(path)
    assert {"user": "bob", "compartment": v.cids["hr"], "access": "ro"} in body["grants"]
    needle = b'"user": "bob",\n   "compartment": "%s",\n   "access": "ro"' % v.cids["hr"].encode()
    assert raw.count(needle) == 1, raw[BODY_OFF:BODY_OFF + 2000]
    with open(path, "wb") as f:
        f.write(raw.replace(needle, needle[:-4] + b'"rw"'))
    p, mnt = mount_as(v, "bob")
    refused(p, 5, rel(v, path), "signature")


def test_policy_edit_reenables_disabled_user(org):
    v = org
    ok(admin(v, "user", "disable", "dan"))
    refused(mount_as(v, "dan")[0], 7, "disabled")
    serial, path = newest_policy(v)
    raw = open(path, "rb").read()
    # "state": "disabled" -> "state": "active"   (the length changes: fix the body length too)
    i = raw.index(b'"id": "dan"')
    j = raw.index(b'"disabled"', i)
    forged = raw[:j] + b'"active"' + raw[j + len(b'"disabled"'):]
    (blen,) = struct.unpack_from("<I", raw, 36)
    forged = forged[:36] + struct.pack("<I", blen - 2) + forged[40:]
    with open(path, "wb") as f:
        f.write(forged)
    p, _ = mount_as(v, "dan")
    refused(p, 5, rel(v, path))


def test_forged_higher_serial(org):
    v = org
    serial, path = newest_policy(v)
    raw, _, body, blen = parse_policy(path)
    nxt = os.path.join(v.path, "policy", f"policy.{serial + 1}")

    # 1. a plain copy under the next serial's name
    shutil.copyfile(path, nxt)
    for user in ("alice", "bob"):
        refused(mount_as(v, user)[0], 5, rel(v, nxt))
    # 2. copied and edited: serial in the envelope and the JSON, one more user rights
    s_old, s_new = b'"serial": %d' % serial, b'"serial": %d' % (serial + 1)
    assert len(s_old) == len(s_new) and raw.count(s_old) == 1
    forged = bytearray(raw.replace(s_old, s_new))
    struct.pack_into("<Q", forged, 28, serial + 1)
    g_old = b'"user": "bob",\n   "compartment": "%s"' % v.cids["hr"].encode()
    g_new = b'"user": "bob",\n   "compartment": "%s"' % v.cids["main"].encode()
    assert forged.count(g_old) == 1
    forged = forged.replace(g_old, g_new)
    with open(nxt, "wb") as f:
        f.write(forged)
    for user in ("alice", "bob", "dan"):
        refused(mount_as(v, user)[0], 5, rel(v, nxt))
    refused(admin(v, "policy", "show"), 5, rel(v, nxt))
    # 3. a far-away serial
    far = os.path.join(v.path, "policy", "policy.999999")
    os.rename(nxt, far)
    refused(mount_as(v, "bob")[0], 5, rel(v, far))
    # the forgery did not move this workstation's serial: removing it restores access
    os.unlink(far)
    assert_works(v, "bob")
    assert_works(v, "alice", ("hr", "main"))


def test_replayed_older_policy(org, tmpbase):
    v = org
    serial, path = newest_policy(v)
    saved = open(path, "rb").read()
    ok(admin(v, "user", "disable", "dan"))            # policy serial + 1
    new_serial, new_path = newest_policy(v)
    assert new_serial == serial + 1
    assert_works(v, "alice", ("hr", "main"))           # this workstation has seen serial + 1
    refused(mount_as(v, "dan")[0], 7, "disabled")
    # the attacker restores the old state (dan active) by deleting the newer policy
    os.unlink(new_path)
    assert open(path, "rb").read() == saved
    for user in ("dan", "alice", "bob"):
        p, _ = mount_as(v, user)
        refused(p, 5, "policy/", "replayed")
    refused(fsck_as(v, "dan"), 5, "policy/")
    refused(admin(v, "user", "list"), 5, "policy/")
    # control: the refusal comes from this workstation's record of serial + 1 (a workstation
    # that never saw it cannot tell; that is the documented limit of replay detection)
    fresh = os.path.join(tmpbase, "fresh-state")
    os.makedirs(fresh)
    p, _ = mount_as(v, "bob", env=dict(os.environ, KINKO_STATE_DIR=fresh))
    ok(p)
    v.cleanup()


def test_replayed_policy_renamed_to_newer_serial(org):
    """The old signed policy copied over the newest one's name: still refused."""
    v = org
    serial, path = newest_policy(v)
    saved = open(path, "rb").read()
    ok(admin(v, "user", "disable", "dan"))
    new_serial, new_path = newest_policy(v)
    with open(new_path, "wb") as f:
        f.write(saved)
    refused(mount_as(v, "dan")[0], 5, rel(v, new_path))


# ---------------------------------------------------------------- grant files

def test_grant_swapped_between_users(org):
    v = org
    gb, gd = grant_path(v, "hr", "bob"), grant_path(v, "hr", "dan")
    b, d = open(gb, "rb").read(), open(gd, "rb").read()
    with open(gb, "wb") as f:
        f.write(d)
    with open(gd, "wb") as f:
        f.write(b)
    p, _ = mount_as(v, "bob")
    refused(p, 5, rel(v, gb))
    p, _ = mount_as(v, "dan")
    refused(p, 5, rel(v, gd))
    refused(fsck_as(v, "bob"), 5, rel(v, gb))
    # alice's grant is untouched
    assert_works(v, "alice", ("hr", "main"))


def test_grant_of_other_user_relabelled(org):
    """dan's grant with its user field rewritten to bob: not sealed to bob's key."""
    v = org
    gb, gd = grant_path(v, "hr", "bob"), grant_path(v, "hr", "dan")
    g = grant_unpack(open(gd, "rb").read())
    assert g["user"] == "dan"
    forged = grant_pack(g["vault_id"], g["comp_id"], g["epoch"], "bob", g["commitment"], g["sealed"])
    assert forged[:48] == open(gd, "rb").read()[:48]
    with open(gb, "wb") as f:
        f.write(forged)
    p, _ = mount_as(v, "bob")
    refused(p, 5, rel(v, gb), "not sealed to user 'bob'")


def forged_grant(v, user, comp, consistent_commitment):
    """A grant sealing a random attacker-chosen key to user's public key (from the policy)."""
    _, _, body, _ = parse_policy(newest_policy(v)[1])
    (u,) = [x for x in body["users"] if x["id"] == user]
    (c,) = [x for x in body["compartments"] if x["id"] == v.cids[comp]]
    pol_cm = bytes.fromhex(c["epochs"][0]["commitment"])
    vault_id = bytes.fromhex(body["vault_id"])
    comp_id = bytes.fromhex(c["id"])
    # our layout matches the real grant file of this user (parsed and re-packed byte for byte)
    raw = open(grant_path(v, comp, user), "rb").read()
    real = grant_unpack(raw)
    assert grant_pack(real["vault_id"], real["comp_id"], real["epoch"], real["user"],
                      real["commitment"], real["sealed"]) == raw
    assert len(real["sealed"]) == 80 and (real["version"], real["flags"]) == (1, 0)
    assert (real["vault_id"], real["comp_id"], real["epoch"], real["user"], real["commitment"]) == \
        (vault_id, comp_id, 1, user, pol_cm)
    key = os.urandom(32)
    cm = commitment(key, vault_id, comp_id, 1) if consistent_commitment else pol_cm
    return grant_pack(vault_id, comp_id, 1, user, cm, box_seal(key, bytes.fromhex(u["box_pk"])))


def test_forged_grant_attacker_key_with_policy_commitment(org):
    v = org
    gb = grant_path(v, "hr", "bob")
    forged = forged_grant(v, "bob", "hr", consistent_commitment=False)
    with open(gb, "wb") as f:
        f.write(forged)
    p, _ = mount_as(v, "bob")
    refused(p, 5, rel(v, gb), "commitment")
    refused(fsck_as(v, "bob"), 5, rel(v, gb), "commitment")
    assert_works(v, "dan")


def test_forged_grant_attacker_key_with_own_commitment(org):
    v = org
    gb = grant_path(v, "hr", "bob")
    forged = forged_grant(v, "bob", "hr", consistent_commitment=True)
    with open(gb, "wb") as f:
        f.write(forged)
    p, _ = mount_as(v, "bob")
    refused(p, 5, rel(v, gb), "commitment")


def test_revoked_user_restores_saved_grant(org):
    """A revoked user who kept a copy of their grant file gets no access by putting it back:
    the signed policy no longer lists the grant."""
    v = org
    ok(admin(v, "grant", "bob", "main"))
    gb = grant_path(v, "hr", "bob")
    saved = open(gb, "rb").read()
    ok(admin(v, "revoke", "bob", "hr"))
    assert not os.path.exists(gb)
    with open(gb, "wb") as f:
        f.write(saved)
    p, mnt = mount_as(v, "bob")
    ok(p)
    assert os.listdir(mnt) == ["main"]
    assert not os.path.exists(os.path.join(mnt, "hr"))
    v.cleanup()
    ok(admin(v, "revoke", "bob", "main"))
    with open(gb, "wb") as f:
        f.write(saved)
    refused(mount_as(v, "bob")[0], 7, "no compartment grant")


# ---------------------------------------------------------------- key files

def test_key_file_replaced_by_other_users(org):
    v = org
    kb, kd = (os.path.join(v.path, "keys", f"{u}.key") for u in ("bob", "dan"))
    shutil.copyfile(kd, kb)
    # with bob's password, and with dan's (dan trying to pass as bob)
    for pw in (v.pw["bob"], v.pw["dan"]):
        p, _ = mount_as(v, "bob", pw)
        refused(p, 5, rel(v, kb))
    refused(fsck_as(v, "bob"), 5, rel(v, kb))
    # an administrator's key file replaced by a staff member's
    ka = os.path.join(v.path, "keys", "alice.key")
    shutil.copyfile(kd, ka)
    refused(admin(v, "user", "add", "mallory", "--role", "admin", pwfile=v.pw["dan"]), 5, rel(v, ka))
    refused(mount_as(v, "alice", v.pw["dan"])[0], 5, rel(v, ka))
    # dan himself is unaffected
    assert_works(v, "dan")


def test_key_file_relabelled(org):
    """dan's key file with its user field rewritten to bob: the key file's authenticated data
    no longer matches, so neither password opens it."""
    v = org
    kb, kd = (os.path.join(v.path, "keys", f"{u}.key") for u in ("bob", "dan"))
    raw = open(kd, "rb").read()
    off = 8 + 2 + 2 + 16 + 32          # magic, version, flags, vault id, root pk -> str8 user
    assert raw[off] == 3 and raw[off + 1:off + 4] == b"dan"
    with open(kb, "wb") as f:
        f.write(raw[:off + 1] + b"bob" + raw[off + 4:])
    for pw in (v.pw["bob"], v.pw["dan"]):
        p, _ = mount_as(v, "bob", pw)
        assert p.returncode in (5, 6), p.stderr
        assert rel(v, kb) in p.stderr, p.stderr


def test_copied_root_key_gives_no_admin_rights(org):
    v = org
    shutil.copyfile(os.path.join(v.path, "keys", "alice.root"), os.path.join(v.path, "keys", "bob.root"))
    before = [s for s, _ in policy_files(v)]
    p = admin(v, "user", "add", "mallory", "--role", "admin", as_user="bob", pwfile=v.pw["bob"])
    refused(p, 7, "not an active administrator")
    p = admin(v, "grant", "bob", "main", as_user="bob", pwfile=v.pw["bob"])
    refused(p, 7)
    assert [s for s, _ in policy_files(v)] == before
    assert not os.path.exists(os.path.join(v.path, "keys", "mallory.key"))


# ---------------------------------------------------------------- guessing

def test_parallel_guesses_do_not_exceed_max_failures(org):
    """unlock.max_failures bounds the number of password guesses on a workstation; guesses
    started at the same time must not each get a full try."""
    v = org
    ok(admin(v, "policy", "set", "unlock.max_failures", "3"))
    ok(admin(v, "policy", "set", "unlock.delay_ms", "100"))
    wrong = write_pw(v.base, "wrong", "Wrong-pass-1!")
    procs = [subprocess.Popen([KINKO, "fsck", v.path, "--user", "bob", "--password-file", wrong],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    res = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    guessed = [e for rc, e in res if rc == 6]
    assert all(rc in (6, 7) for rc, _ in res), res
    # the right password is refused now
    refused(fsck_as(v, "bob"), 7, "locked")
    assert len(guessed) <= 3, \
        f"{len(guessed)} of 8 parallel guesses were checked with unlock.max_failures = 3"
