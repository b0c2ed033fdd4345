"""Second factor (IC card / PKI) through the real CLI and real FUSE mounts.

An administrator puts the organisation's CA into the signed policy (kinko policy
set-ca), binds a user's key file to an X.509 certificate at `kinko user add --cert`,
and from then on unlocking that user needs the password AND the certificate's
private key (--cert-key, PEM / encrypted PEM / PKCS#12 / provider:). The certificate
is checked against the policy CA at every unlock at the current time (KINKO_TEST_NOW
in -Dtest_hooks=true builds). second_factor.classes closes compartments of those
classes to users without a factor; password.mode two-factor refuses such users.

The certificates come from tests/vectors/x509/gen_fixtures.sh (run once per module
into a temp dir): ca.pem (2020..2040) issues ec.pem "bob-ec" and p384.pem
"carol-p384" (2024-01-01..2030-01-01), expired.pem (2020..2021) and notyet.pem
(2035..2036); other.pem is another CA, which issued othercert.pem.

Tests that move the clock need a -Dtest_hooks=true build (else skipped); the others
pin KINKO_TEST_NOW to 2027-03-01, which a build without hooks ignores (the real
clock then has to be inside 2024..2030).
"""
import calendar
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from kinko_util import PASSWORD, Vault, is_mounted, kinko, ok, refused, umount, wait_for_mount

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "vectors", "x509", "gen_fixtures.sh")


def utc(s):
    """'YYYY-mm-dd HH:MM:SS' (UTC) -> unix seconds"""
    return calendar.timegm(time.strptime(s, "%Y-%m-%d %H:%M:%S"))


# every test runs on a fixed clock (ignored by builds without test hooks, where the
# real clock is used: ec.pem / p384.pem are valid from 2024 to 2030)
NOW = utc("2027-03-01 00:00:00")


# ---------------------------------------------------------------- fixtures / helpers

@pytest.fixture(scope="module")
def fx():
    """Directory with the x509 fixtures (certificates, keys, PKCS#12 files)."""
    d = tempfile.mkdtemp(prefix="kinko-2fa-fx-")
    p = subprocess.run(["sh", GEN, d], capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or not os.path.exists(os.path.join(d, "done")):
        log = open(os.path.join(d, "gen.log")).read()[-3000:] if os.path.exists(
            os.path.join(d, "gen.log")) else ""
        shutil.rmtree(d, ignore_errors=True)
        raise AssertionError(f"gen_fixtures.sh failed ({p.returncode}): {p.stderr}\n{log}")
    with open(os.path.join(d, "p12pass"), "w") as f:
        f.write("p12-secret\n")
    with open(os.path.join(d, "pempass"), "w") as f:
        f.write("pem-secret\n")
    with open(os.path.join(d, "badpass"), "w") as f:
        f.write("not-the-secret\n")
    yield lambda name: os.path.join(d, name)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def has_clock():
    """Does this kinko honour KINKO_TEST_NOW (-Dtest_hooks=true)? kinko init records
    the time in the policy."""
    d = tempfile.mkdtemp(prefix="kinko-2fa-clock-")
    try:
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        env = dict(os.environ, KINKO_TEST_NOW="1000000000", KINKO_STATE_DIR=os.path.join(d, "st"))
        p = kinko("init", os.path.join(d, "v"), "--user", "alice", "--password-file", pw, env=env)
        assert p.returncode == 0, p.stderr
        raw = open(os.path.join(d, "v", "policy", "policy.1"), "rb").read()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return b'"2001-09-09T01:46:40Z"' in raw


@pytest.fixture
def clock(has_clock):
    if not has_clock:
        pytest.skip("kinko was built without -Dtest_hooks=true: KINKO_TEST_NOW is ignored")


@pytest.fixture(autouse=True)
def env(tmpbase, monkeypatch):
    """Own failed-unlock / policy-serial state per test; fixed clock."""
    d = os.path.join(tmpbase, "state")
    os.makedirs(d)
    monkeypatch.setenv("KINKO_STATE_DIR", d)
    monkeypatch.setenv("KINKO_TEST_NOW", str(NOW))
    monkeypatch.delenv("KINKO_VAULT", raising=False)
    return d


@pytest.fixture
def v(tmpbase, env):
    """A vault: administrator alice, compartment 'main' (class gokuhi, the default)."""
    vault = Vault(tmpbase)
    yield vault
    vault.cleanup()


def set_now(monkeypatch, t):
    monkeypatch.setenv("KINKO_TEST_NOW", str(int(t)))


def write(base, name, text):
    p = os.path.join(base, name)
    with open(p, "w") as f:
        f.write(text + "\n")
    return p


def admin(vault, *args):
    """An administration command run by alice."""
    return kinko(*args, "--vault", vault.path, "--as", vault.user,
                 "--password-file", vault.pwfile)


def mount_as(vault, user, pwfile, *extra):
    """kinko mount as USER; returns (CompletedProcess, mountpoint). A successful mount
    is registered for cleanup; a refused one must not have mounted anything."""
    mnt = tempfile.mkdtemp(prefix=f"mnt-{user}-", dir=vault.base)
    p = kinko("mount", vault.path, mnt, "--user", user, "--password-file", pwfile, *extra)
    if p.returncode == 0:
        wait_for_mount(mnt)
        vault.mounts.append(mnt)
    else:
        assert not is_mounted(mnt), f"refused mount (rc {p.returncode}) left {mnt} mounted"
    return p, mnt


def unmount(vault, mnt):
    umount(mnt)
    assert not is_mounted(mnt)
    vault.mounts.remove(mnt)


def add_user(vault, uid, cert=None):
    """kinko user add UID --role staff [--cert CERT]; returns the enrolment secret file."""
    secret = os.path.join(vault.base, f"secret-{uid}-{len(os.listdir(vault.base))}")
    args = ["user", "add", uid, "--role", "staff", "--secret-file", secret]
    if cert:
        args += ["--cert", cert]
    ok(admin(vault, *args))
    return secret


def relax_lockout(vault):
    """No growing delay after failed unlocks (the refusals below are deliberate)."""
    ok(admin(vault, "policy", "set", "unlock.delay_ms", "0"))
    ok(admin(vault, "policy", "set", "unlock.max_failures", "100"))


def user_json(vault, uid):
    return json.loads(ok(admin(vault, "user", "show", uid, "--json")).stdout)


def policy_json(vault):
    return json.loads(ok(admin(vault, "policy", "show", "--json")).stdout)


def enrol_bob(vault, fx, cert="ec.pem", key="ec.key", pw="B0b-Pa55word!"):
    """set-ca (if needed), bob with CERT, grant main, first use with KEY: returns pwfile."""
    if not policy_json(vault)["second_factor.ca_cert"]:
        ok(admin(vault, "policy", "set-ca", fx("ca.pem")))
    secret = add_user(vault, "bob", fx(cert))
    ok(admin(vault, "grant", "bob", "main"))
    bobpw = write(vault.base, f"pw-bob-{len(os.listdir(vault.base))}", pw)
    ok(kinko("passwd", vault.path, "--user", "bob", "--password-file", secret,
             "--new-password-file", bobpw, "--cert-key", fx(key)))
    return bobpw


def keyfile(vault, uid):
    return os.path.join(vault.path, "keys", f"{uid}.key")


# ---------------------------------------------------------------- 1. enrolment, mount, keys

def test_certificate_bound_user_needs_the_private_key(v, fx):
    relax_lockout(v)
    ok(admin(v, "policy", "set-ca", fx("ca.pem")))
    assert policy_json(v)["second_factor.ca_cert"] is True
    secret = add_user(v, "bob", fx("ec.pem"))
    ok(admin(v, "grant", "bob", "main"))
    bob = user_json(v, "bob")
    assert bob["second_factor"] is True
    assert {"compartment": "main", "access": "rw"} in bob["grants"]
    assert user_json(v, "alice")["second_factor"] is False

    # first use: the enrolment secret + the private key, a new password set at mount
    bobpw = write(v.base, "pw-bob", "B0b-Pa55word!")
    p, mnt = mount_as(v, "bob", secret, "--new-password-file", bobpw, "--cert-key", fx("ec.key"))
    ok(p)
    assert os.listdir(mnt) == ["main"]
    with open(os.path.join(mnt, "main", "card.txt"), "w") as f:
        f.write("written with the IC card\n")
    with open(os.path.join(mnt, "main", "card.txt")) as f:
        assert f.read() == "written with the IC card\n"
    unmount(v, mnt)

    # the right password but no private key
    p, _ = mount_as(v, "bob", bobpw)
    refused(p, 6, "--cert-key", "keys/bob.key")
    assert "second factor" in p.stderr
    # another user's private key (carol-p384), and a wrong key of the right type
    for key in ("p384.key", "ec_wrong.key"):
        p, _ = mount_as(v, "bob", bobpw, "--cert-key", fx(key))
        refused(p, 6, "does not match the certificate")
    # the right private key but a wrong password: still refused
    p, _ = mount_as(v, "bob", write(v.base, "pw-wrong", "Wr0ng-Pa55word!"), "--cert-key", fx("ec.key"))
    refused(p, 6, "wrong password")

    # PKCS#12 with its password: works and the earlier file is readable
    p, mnt = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.p12"), "--cert-pass-file", fx("p12pass"))
    ok(p)
    with open(os.path.join(mnt, "main", "card.txt")) as f:
        assert f.read() == "written with the IC card\n"
    unmount(v, mnt)
    # PKCS#12 with a wrong password / without one
    p, _ = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.p12"), "--cert-pass-file", fx("badpass"))
    refused(p, 6, "ec.p12")
    assert "password" in p.stderr
    # another user's PKCS#12 with its right password
    p, _ = mount_as(v, "bob", bobpw, "--cert-key", fx("rsa.p12"), "--cert-pass-file", fx("p12pass"))
    refused(p, 6, "does not match the certificate")

    # an encrypted PEM key with its passphrase, and the provider: form (OSSL_STORE)
    p, mnt = mount_as(v, "bob", bobpw, "--cert-key", fx("ec_enc.key"), "--cert-pass-file", fx("pempass"))
    ok(p)
    assert os.path.exists(os.path.join(mnt, "main", "card.txt"))
    unmount(v, mnt)
    p, _ = mount_as(v, "bob", bobpw, "--cert-key", fx("ec_enc.key"), "--cert-pass-file", fx("badpass"))
    refused(p, 6, "ec_enc.key")
    p, mnt = mount_as(v, "bob", bobpw, "--cert-key", "provider:file:" + fx("ec.key"))
    ok(p)
    assert os.path.exists(os.path.join(mnt, "main", "card.txt"))
    unmount(v, mnt)

    # a password change keeps the certificate binding (a fresh factor secret is sealed)
    newpw = write(v.base, "pw-bob-2", "N3w-B0b-Pa55!")
    ok(kinko("passwd", v.path, "--user", "bob", "--password-file", bobpw,
             "--new-password-file", newpw, "--cert-key", fx("ec.key")))
    p, _ = mount_as(v, "bob", newpw)
    refused(p, 6, "--cert-key")
    p, _ = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
    refused(p, 6, "wrong password")
    p, mnt = mount_as(v, "bob", newpw, "--cert-key", fx("ec.key"))
    ok(p)
    with open(os.path.join(mnt, "main", "card.txt")) as f:
        assert f.read() == "written with the IC card\n"
    unmount(v, mnt)
    assert user_json(v, "bob")["second_factor"] is True

    # a --cert-key file that does not exist: named, and not reported as "no vault" (exit 3)
    p, _ = mount_as(v, "bob", newpw, "--cert-key", fx("no-such.key"))
    refused(p, None, "no-such.key")
    assert p.returncode != 3, f"a missing --cert-key file exits 3 (no vault): {p.stderr}"


# ---------------------------------------------------------------- 2. enrolment refusals

def test_user_add_refuses_certificates_the_ca_does_not_vouch_for(v, fx):
    # no CA in the policy yet
    p = admin(v, "user", "add", "bob", "--role", "staff", "--cert", fx("ec.pem"),
              "--secret-file", os.path.join(v.base, "s-noca"))
    refused(p, None, "set the organisation's CA first", "set-ca")
    noca = p
    assert not os.path.exists(keyfile(v, "bob"))
    assert not os.path.exists(os.path.join(v.base, "s-noca"))
    assert [u["id"] for u in json.loads(ok(admin(v, "user", "list", "--json")).stdout)] == ["alice"]

    ok(admin(v, "policy", "set-ca", fx("ca.pem")))
    cases = [
        ("othercert.pem", "not issued by the organisation's CA"),   # issued by the other CA
        ("other.pem", "not issued by the organisation's CA"),       # the other CA itself
        ("expired.pem", "expired"),                                 # 2020..2021
        ("notyet.pem", "not valid before"),                         # 2035..2036
    ]
    for i, (cert, reason) in enumerate(cases):
        s = os.path.join(v.base, f"s-{i}")
        p = admin(v, "user", "add", f"bob{i}", "--role", "staff", "--cert", fx(cert), "--secret-file", s)
        refused(p, 7, reason, cert)
        assert not os.path.exists(keyfile(v, f"bob{i}")), cert
        assert not os.path.exists(s), cert
    assert "expired on 2021-01-01" in refused(admin(
        v, "user", "add", "bobx", "--role", "staff", "--cert", fx("expired.pem")), 7).stderr
    assert "not valid before 2035-01-01" in refused(admin(
        v, "user", "add", "bobx", "--role", "staff", "--cert", fx("notyet.pem")), 7).stderr
    assert [u["id"] for u in json.loads(ok(admin(v, "user", "list", "--json")).stdout)] == ["alice"]

    # and a good one is accepted: the refusals were about the certificates
    add_user(v, "bob", fx("ec.pem"))
    assert user_json(v, "bob")["second_factor"] is True
    assert os.path.exists(keyfile(v, "bob"))

    # alice's password was right: 'no CA in the policy' is not exit 6 ("wrong password")
    assert noca.returncode != 6, f"'no CA in the policy' exits 6 (wrong password): {noca.stderr}"


# ---------------------------------------------------------------- 3. validity in time

def test_certificate_validity_is_checked_at_every_unlock(tmpbase, fx, clock, monkeypatch):
    """ec.pem (valid 2024-01-01 .. 2030-01-01) works while the clock is inside its
    validity, stops working once the clock passes notAfter (or is before notBefore),
    and works again back inside. The vault is made a month before the end so no
    password expires on the way (60 days)."""
    not_before, not_after = utc("2024-01-01 00:00:00"), utc("2030-01-01 00:00:00")
    set_now(monkeypatch, utc("2029-12-01 00:00:00"))
    v = Vault(tmpbase)
    try:
        relax_lockout(v)
        bobpw = enrol_bob(v, fx)
        p, mnt = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
        ok(p)
        with open(os.path.join(mnt, "main", "f"), "w") as f:
            f.write("before expiry\n")
        unmount(v, mnt)

        # the last second of validity still works (notAfter is inclusive, RFC 5280)
        set_now(monkeypatch, not_after)
        p, mnt = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
        ok(p)
        unmount(v, mnt)
        # one second later, and weeks later: refused, saying it expired (and when)
        for t in (not_after + 1, not_after + 20 * 86400):
            set_now(monkeypatch, t)
            p, _ = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
            refused(p, 6, "expired on 2030-01-01")
        # any unlock: fsck and passwd are refused as well
        refused(kinko("fsck", v.path, "--user", "bob", "--password-file", bobpw,
                      "--cert-key", fx("ec.key")), 6, "expired")
        refused(kinko("passwd", v.path, "--user", "bob", "--password-file", bobpw,
                      "--new-password-file", write(tmpbase, "pw-n", "N3w-B0b-Pa55!"),
                      "--cert-key", fx("ec.key")), 6, "expired")
        # alice has no certificate: her unlocks do not depend on bob's
        ok(admin(v, "user", "list"))

        # a clock before notBefore: refused
        set_now(monkeypatch, not_before - 1)
        p, _ = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
        refused(p, 6, "not valid before 2024-01-01")

        # back inside the validity period: works again, the data is intact
        set_now(monkeypatch, utc("2029-12-20 12:00:00"))
        p, mnt = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
        ok(p)
        with open(os.path.join(mnt, "main", "f")) as f:
            assert f.read() == "before expiry\n"
        unmount(v, mnt)
    finally:
        v.cleanup()


# ---------------------------------------------------------------- 4. second_factor.classes

def test_second_factor_classes(v, fx):
    relax_lockout(v)
    ok(admin(v, "compartment", "create", "general", "--class", "himitsu"))
    # carol: no certificate, grants of the gokuhi 'main' and the himitsu 'general'
    # given before the policy asks for a second factor
    secret = add_user(v, "carol")
    ok(admin(v, "grant", "carol", "main"))
    ok(admin(v, "grant", "carol", "general"))
    carolpw = write(v.base, "pw-carol", "Kar0l-Pa55word!")
    ok(kinko("passwd", v.path, "--user", "carol", "--password-file", secret,
             "--new-password-file", carolpw))
    p, mnt = mount_as(v, "carol", carolpw)
    ok(p)
    assert sorted(os.listdir(mnt)) == ["general", "main"]
    with open(os.path.join(mnt, "main", "kimitsu.txt"), "w") as f:
        f.write("gokuhi data\n")
    unmount(v, mnt)

    # the classes setting needs the CA first (else nobody could open them)
    p = admin(v, "policy", "set", "second_factor.classes", "gokuhi")
    refused(p, 7, "set-ca")
    assert policy_json(v)["second_factor.classes"] == []
    ok(admin(v, "policy", "set-ca", fx("ca.pem")))
    ok(admin(v, "policy", "set", "second_factor.classes", "gokuhi"))
    assert policy_json(v)["second_factor.classes"] == ["gokuhi"]

    # a grant of a gokuhi compartment to a user without a certificate: refused
    add_user(v, "dave")
    p = admin(v, "grant", "dave", "main")
    refused(p, 7, "second factor", "dave", "main")
    assert user_json(v, "dave")["grants"] == []
    assert not os.path.exists(os.path.join(v.path, "grants", _comp_hex(v, "main"), "1", "dave.grant"))
    # himitsu is not listed: granted
    ok(admin(v, "grant", "dave", "general"))
    # with a certificate: granted
    secret = add_user(v, "bob", fx("ec.pem"))
    ok(admin(v, "grant", "bob", "main"))
    ok(admin(v, "grant", "bob", "general"))
    assert {g["compartment"] for g in user_json(v, "bob")["grants"]} == {"main", "general"}

    bobpw = write(v.base, "pw-bob", "B0b-Pa55word!")
    p, mnt = mount_as(v, "bob", secret, "--new-password-file", bobpw, "--cert-key", fx("ec.key"))
    ok(p)
    assert sorted(os.listdir(mnt)) == ["general", "main"]
    with open(os.path.join(mnt, "main", "kimitsu.txt")) as f:
        assert f.read() == "gokuhi data\n"
    with open(os.path.join(mnt, "main", "bob.txt"), "w") as f:
        f.write("from bob\n")
    unmount(v, mnt)

    # carol still holds her gokuhi grant but has no second factor: 'main' stays closed
    assert {g["compartment"] for g in user_json(v, "carol")["grants"]} == {"main", "general"}
    p, mnt = mount_as(v, "carol", carolpw)
    ok(p)
    assert os.listdir(mnt) == ["general"]
    assert not os.path.exists(os.path.join(mnt, "main"))
    with pytest.raises(FileNotFoundError):
        open(os.path.join(mnt, "main", "kimitsu.txt"))
    with open(os.path.join(mnt, "general", "g.txt"), "w") as f:
        f.write("himitsu data\n")
    with open(os.path.join(mnt, "general", "g.txt")) as f:
        assert f.read() == "himitsu data\n"
    unmount(v, mnt)

    # a user whose only grants need a factor he lacks has nothing to mount
    ok(admin(v, "revoke", "carol", "general"))
    p, _ = mount_as(v, "carol", carolpw)
    refused(p, 7, "carol")


def _comp_hex(vault, name):
    for c in json.loads(ok(admin(vault, "compartment", "list", "--json")).stdout):
        if c["name"] == name:
            return c["id"]
    raise AssertionError(f"no compartment {name}")


# ---------------------------------------------------------------- 5. password.mode two-factor

def test_password_mode_two_factor(v, fx):
    relax_lockout(v)
    ok(admin(v, "policy", "set-ca", fx("ca.pem")))
    bob_secret = add_user(v, "bob", fx("ec.pem"))
    carol_secret = add_user(v, "carol")
    ok(admin(v, "grant", "bob", "main"))
    ok(admin(v, "grant", "carol", "main"))
    carolpw = write(v.base, "pw-carol", "Kar0l-Pa55word!")
    ok(kinko("passwd", v.path, "--user", "carol", "--password-file", carol_secret,
             "--new-password-file", carolpw))
    p, mnt = mount_as(v, "carol", carolpw)   # fine while the mode is 'expiring'
    ok(p)
    unmount(v, mnt)

    # the mode is set by a second administrator who has a certificate (an
    # administrator without one is refused: see the next test)
    dave_secret = os.path.join(v.base, "secret-dave")
    ok(admin(v, "user", "add", "dave", "--role", "admin", "--secret-file", dave_secret,
             "--cert", fx("p384.pem")))
    davepw = write(v.base, "pw-dave", "D4ve-Pa55word!")
    ok(kinko("passwd", v.path, "--user", "dave", "--password-file", dave_secret,
             "--new-password-file", davepw, "--cert-key", fx("p384.key")))
    ok(kinko("policy", "set", "password.mode", "two-factor", "--vault", v.path, "--as", "dave",
             "--password-file", davepw, "--cert-key", fx("p384.key")))

    # carol (no certificate) cannot unlock at all, with the reason
    p, _ = mount_as(v, "carol", carolpw)
    refused(p, 7, "two-factor", "no second factor")
    refused(kinko("fsck", v.path, "--user", "carol", "--password-file", carolpw), 7, "two-factor")

    # bob, with his certificate, chooses an 8-character mixed password at first use
    short = write(v.base, "pw-bob", "Xy7!pq2#")
    p, mnt = mount_as(v, "bob", bob_secret, "--new-password-file", short, "--cert-key", fx("ec.key"))
    ok(p)
    with open(os.path.join(mnt, "main", "two.txt"), "w") as f:
        f.write("two-factor\n")
    unmount(v, mnt)
    p, mnt = mount_as(v, "bob", short, "--cert-key", fx("ec.key"))
    ok(p)
    with open(os.path.join(mnt, "main", "two.txt")) as f:
        assert f.read() == "two-factor\n"
    unmount(v, mnt)
    # the factor is still required with it
    p, _ = mount_as(v, "bob", short)
    refused(p, 6, "--cert-key")
    # a 7-character password is still too short, and one without a symbol is refused
    for bad, why in (("Xy7!pq2", "too short"), ("Xy7apq2b", "symbol")):
        p = kinko("passwd", v.path, "--user", "bob", "--password-file", short,
                  "--new-password-file", write(v.base, "pw-bad", bad), "--cert-key", fx("ec.key"))
        refused(p, 7, why)


def test_two_factor_mode_password_does_not_expire(v, fx, clock, monkeypatch):
    """password.mode two-factor: the 8-character password of a user with a certificate
    does not expire (it would after 60 days in mode expiring)."""
    relax_lockout(v)
    ok(admin(v, "policy", "set-ca", fx("ca.pem")))
    bob_secret = os.path.join(v.base, "secret-bob")
    # bob is an administrator with a certificate: he may switch the mode
    ok(admin(v, "user", "add", "bob", "--role", "admin", "--secret-file", bob_secret,
             "--cert", fx("ec.pem")))
    ok(admin(v, "grant", "bob", "main"))
    short = write(v.base, "pw-bob", "Xy7!pq2#")
    ok(kinko("passwd", v.path, "--user", "bob", "--password-file", bob_secret,
             "--new-password-file", short, "--cert-key", fx("ec.key")))
    # mode expiring (the default): 61 days later the password has expired
    set_now(monkeypatch, NOW + 61 * 86400)
    p, _ = mount_as(v, "bob", short, "--cert-key", fx("ec.key"))
    refused(p, 7, "expired")
    set_now(monkeypatch, NOW)
    ok(kinko("policy", "set", "password.mode", "two-factor", "--vault", v.path, "--as", "bob",
             "--password-file", short, "--cert-key", fx("ec.key")))
    set_now(monkeypatch, NOW + 200 * 86400)
    p, mnt = mount_as(v, "bob", short, "--cert-key", fx("ec.key"))
    ok(p)
    assert "expire" not in p.stderr
    unmount(v, mnt)


def test_two_factor_mode_does_not_lock_out_every_administrator(v, fx):
    """alice, the only administrator, has no certificate. Switching to password.mode
    two-factor must not leave a vault nobody can administer: either the change is
    refused (like second_factor.classes without a CA) or alice can still undo it."""
    ok(admin(v, "policy", "set-ca", fx("ca.pem")))
    p = admin(v, "policy", "set", "password.mode", "two-factor")
    if p.returncode == 0:
        undo = admin(v, "policy", "set", "password.mode", "expiring")
        assert undo.returncode == 0, (
            "after 'policy set password.mode two-factor' by an administrator without a "
            f"certificate no administrator can unlock any more (rc {undo.returncode}): {undo.stderr}")
    else:
        assert "second factor" in p.stderr or "certificate" in p.stderr, p.stderr
        assert policy_json(v)["password.mode"] == "expiring"


# ---------------------------------------------------------------- 6. swapped key files

def test_key_file_bound_to_another_certificate_is_refused(v, fx):
    relax_lockout(v)
    bobpw = enrol_bob(v, fx)                       # bound to ec.pem (bob-ec)
    p, mnt = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
    ok(p)
    with open(os.path.join(mnt, "main", "x"), "w") as f:
        f.write("bob's\n")
    unmount(v, mnt)
    aside = os.path.join(v.base, "bob.key.ec")
    shutil.copy2(keyfile(v, "bob"), aside)

    # carol, bound to p384.pem: her key file put in place of bob's
    carol_secret = add_user(v, "carol", fx("p384.pem"))
    carolpw = write(v.base, "pw-carol", "Kar0l-Pa55word!")
    ok(kinko("passwd", v.path, "--user", "carol", "--password-file", carol_secret,
             "--new-password-file", carolpw, "--cert-key", fx("p384.key")))
    shutil.copy2(keyfile(v, "carol"), keyfile(v, "bob"))
    for pw, key in ((bobpw, "ec.key"), (carolpw, "p384.key")):
        p, _ = mount_as(v, "bob", pw, "--cert-key", fx(key))
        refused(p, 5, "keys/bob.key")
    shutil.copy2(aside, keyfile(v, "bob"))
    p, mnt = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
    ok(p)
    unmount(v, mnt)

    # bob re-enrolled with another certificate (p384.pem): the policy now records its
    # fingerprint; the old key file (bound to ec.pem) copied back is refused
    ok(admin(v, "user", "remove", "bob"))
    assert not os.path.exists(keyfile(v, "bob"))
    newpw = enrol_bob(v, fx, cert="p384.pem", key="p384.key", pw="B0b-N3w-Pa55!")
    p, mnt = mount_as(v, "bob", newpw, "--cert-key", fx("p384.key"))
    ok(p)
    unmount(v, mnt)
    current = os.path.join(v.base, "bob.key.p384")
    shutil.copy2(keyfile(v, "bob"), current)
    shutil.copy2(aside, keyfile(v, "bob"))
    # old password + old card: the key file opens, but it is not the policy's
    p, _ = mount_as(v, "bob", bobpw, "--cert-key", fx("ec.key"))
    refused(p, 5, "keys/bob.key")
    # the new card does not open the old file
    p, _ = mount_as(v, "bob", newpw, "--cert-key", fx("p384.key"))
    refused(p, None, "does not match the certificate")
    # fsck refuses it as well
    refused(kinko("fsck", v.path, "--user", "bob", "--password-file", bobpw,
                  "--cert-key", fx("ec.key")), 5, "keys/bob.key")
    # the right file back: works
    shutil.copy2(current, keyfile(v, "bob"))
    p, mnt = mount_as(v, "bob", newpw, "--cert-key", fx("p384.key"))
    ok(p)
    unmount(v, mnt)
