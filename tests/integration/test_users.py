"""Users, roles, compartments and grants (issue 3) through the real CLI and real
mounts: each staff member sees only the compartments granted to them, grant
files cannot be reused across users, read-only grants refuse every write,
the administrator limits and forbidden ids hold, and the user lifecycle
(disable, enable, remove, revoke) takes effect at the next unlock."""
import errno
import glob
import json
import os
import shutil
import tempfile

import pytest

from kinko_util import PASSWORD, Vault, kinko, ok, umount, wait_for_mount, write_pw

STAFF_PW = "Mq7#Wv2-Lp9x"   # strong: letters, digits, symbols; contains none of the ids used


# ---------------------------------------------------------------- helpers

def admin(vault, *args, as_user=None, pwfile=None):
    """An administrative command authenticated as the vault's admin (or as_user)."""
    return kinko(*args, "--vault", vault.path, "--as", as_user or vault.user,
                 "--password-file", pwfile or vault.pwfile)


def refused(p, code, *needles):
    """The command failed with exit code `code` and stderr mentions every needle."""
    assert p.returncode != 0, f"expected a refusal, got rc=0\nstdout: {p.stdout}\nstderr: {p.stderr}"
    if code is not None:
        codes = code if isinstance(code, tuple) else (code,)
        assert p.returncode in codes, f"rc={p.returncode}, expected {codes}\nstderr: {p.stderr}"
    for n in needles:
        assert n in p.stderr, f"{n!r} not in stderr:\n{p.stderr}"
    return p


def enrol(vault, uid, role="staff", password=STAFF_PW, extra=()):
    """user add with a secret file, then the user's first password; returns the password file."""
    assert uid not in password.lower()
    secret = os.path.join(vault.base, f"secret-{uid}")
    ok(admin(vault, "user", "add", uid, "--role", role, "--secret-file", secret, *extra))
    pwf = write_pw(vault.base, f"pw-{uid}", password)
    ok(kinko("passwd", vault.path, "--user", uid, "--password-file", secret,
             "--new-password-file", pwf))
    return pwf


def mount_as(vault, user, pwfile, extra=()):
    """kinko mount as any user; returns (CompletedProcess, mountpoint)."""
    mnt = tempfile.mkdtemp(prefix=f"mnt-{user}-", dir=vault.base)
    p = kinko("mount", vault.path, mnt, "--user", user, "--password-file", pwfile, *extra)
    if p.returncode == 0:
        wait_for_mount(mnt)
        vault.mounts.append(mnt)
    return p, mnt


def mount_ok(vault, user, pwfile):
    p, mnt = mount_as(vault, user, pwfile)
    ok(p)
    return mnt


def comp_ids(vault):
    p = ok(admin(vault, "compartment", "list", "--json"))
    return {c["name"]: c["id"] for c in json.loads(p.stdout)}


def users_json(vault):
    return {u["id"]: u for u in json.loads(ok(admin(vault, "user", "list", "--json")).stdout)}


def grant_files(vault, user):
    return sorted(glob.glob(os.path.join(vault.path, "grants", "*", "*", f"{user}.grant")))


def rel(vault, path):
    return os.path.relpath(path, vault.path)


@pytest.fixture(scope="module")
def org_template():
    """Built once per module (Argon2 is slow): alice (admin, holds main/hr/sales),
    bob (staff: hr), carol (staff: sales). Each test gets its own copy."""
    base = tempfile.mkdtemp(prefix="kinko-org-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINKO_STATE_DIR", os.path.join(base, "state"))
        mp.delenv("KINKO_TEST_NOW", raising=False)
        mp.delenv("KINKO_VAULT", raising=False)
        v = Vault(base)
        ok(admin(v, "compartment", "create", "hr", "--class", "himitsu"))
        ok(admin(v, "compartment", "create", "sales", "--class", "shagaihi"))
        enrol(v, "bob")
        enrol(v, "carol")
        ok(admin(v, "grant", "bob", "hr"))
        ok(admin(v, "grant", "carol", "sales"))
        cids = comp_ids(v)
    yield base, cids
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def org(tmpbase, org_template):
    """A private copy of the organisation vault (own directory, own workstation state)."""
    src, cids = org_template
    base = os.path.join(tmpbase, "org")
    shutil.copytree(src, base, ignore=shutil.ignore_patterns("state"))
    v = Vault.__new__(Vault)          # an existing vault: no kinko init
    v.base, v.path, v.user, v.password = base, os.path.join(base, "vault"), "alice", PASSWORD
    v.pwfile, v.compartment, v.mounts = os.path.join(base, "pw-alice"), "main", []
    v.pw = {u: os.path.join(base, f"pw-{u}") for u in ("alice", "bob", "carol")}
    v.cids = cids
    yield v
    v.cleanup()


# ---------------------------------------------------------------- visibility

def test_staff_see_only_their_compartments(org):
    v = org
    mb = mount_ok(v, "bob", v.pw["bob"])
    mc = mount_ok(v, "carol", v.pw["carol"])
    ma = mount_ok(v, "alice", v.pw["alice"])
    assert sorted(os.listdir(mb)) == ["hr"]
    assert sorted(os.listdir(mc)) == ["sales"]
    assert sorted(os.listdir(ma)) == ["hr", "main", "sales"]
    # names of other compartments do not resolve either
    for m, other in ((mb, "sales"), (mb, "main"), (mc, "hr"), (mc, "main")):
        assert not os.path.exists(os.path.join(m, other)), (m, other)
        with pytest.raises(FileNotFoundError):
            open(os.path.join(m, other, "x"), "w")
    # data written by one grantee is seen by the other grantee (alice), not by bob
    with open(os.path.join(mc, "sales", "plan.txt"), "w") as f:
        f.write("売上計画\n")
    with open(os.path.join(mb, "hr", "salaries.txt"), "w") as f:
        f.write("給与\n")
    umount(mc)
    umount(mb)
    with open(os.path.join(ma, "sales", "plan.txt")) as f:
        assert f.read() == "売上計画\n"
    with open(os.path.join(ma, "hr", "salaries.txt")) as f:
        assert f.read() == "給与\n"


def test_cannot_use_other_users_grant_file(org):
    v = org
    mc = mount_ok(v, "carol", v.pw["carol"])
    with open(os.path.join(mc, "sales", "plan.txt"), "w") as f:
        f.write("secret plan\n" * 1000)
    umount(mc)
    gdir_sales = os.path.join(v.path, "grants", v.cids["sales"], "1")
    gdir_hr = os.path.join(v.path, "grants", v.cids["hr"], "1")

    # 1. carol's grant copied to bob's name in the same compartment: the signed policy
    #    gives bob no grant there, so nothing opens; bob still sees only hr
    shutil.copyfile(os.path.join(gdir_sales, "carol.grant"), os.path.join(gdir_sales, "bob.grant"))
    mb = mount_ok(v, "bob", v.pw["bob"])
    assert os.listdir(mb) == ["hr"]
    umount(mb)

    # 2. fsck as bob neither reads nor lists carol's files: damage one, bob's fsck is clean
    #    and counts no sales file; carol's fsck names it
    data = os.path.join(v.path, "data", v.cids["sales"])
    (enc,) = [n for n in os.listdir(data) if not n.startswith("kinko.")]
    with open(os.path.join(data, enc), "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 1]))
    pb = kinko("fsck", v.path, "--user", "bob", "--password-file", v.pw["bob"], "--json")
    assert pb.returncode == 0, pb.stdout + pb.stderr
    jb = json.loads(pb.stdout)
    assert jb["clean"] and jb["damaged"] == [] and jb["files"] == 0, jb
    assert jb["compartments_skipped"] == 2, jb
    assert "plan" not in pb.stdout
    pc = kinko("fsck", v.path, "--user", "carol", "--password-file", v.pw["carol"], "--json")
    assert pc.returncode == 9, pc.stdout + pc.stderr
    assert [d["path"] for d in json.loads(pc.stdout)["damaged"]] == ["plan.txt"]

    # 3. carol's sales grant in place of bob's own hr grant: refused, naming the file
    bob_hr = os.path.join(gdir_hr, "bob.grant")
    shutil.copyfile(os.path.join(gdir_sales, "carol.grant"), bob_hr)
    p, _ = mount_as(v, "bob", v.pw["bob"])
    refused(p, 5, rel(v, bob_hr))
    # 4. fsck as bob is refused the same way
    p = kinko("fsck", v.path, "--user", "bob", "--password-file", v.pw["bob"])
    refused(p, 5, rel(v, bob_hr))


# ---------------------------------------------------------------- read-only grants

def test_read_only_grant_refuses_writes(org):
    v = org
    ma = mount_ok(v, "alice", v.pw["alice"])
    s = os.path.join(ma, "sales")
    with open(os.path.join(s, "doc.txt"), "w") as f:
        f.write("読み取り専用\n")
    os.setxattr(os.path.join(s, "doc.txt"), "user.tag", b"v1")
    os.mkdir(os.path.join(s, "sub"))
    os.mkdir(os.path.join(s, "empty"))
    with open(os.path.join(s, "sub", "inner.txt"), "w") as f:
        f.write("inner\n")
    umount(ma)
    ok(admin(v, "grant", "bob", "sales", "--read-only"))
    sh = json.loads(ok(admin(v, "user", "show", "bob", "--json")).stdout)
    assert {"compartment": "sales", "access": "ro"} in sh["grants"]

    mb = mount_ok(v, "bob", v.pw["bob"])
    c = os.path.join(mb, "sales")
    doc = os.path.join(c, "doc.txt")
    # reading works
    with open(doc) as f:
        assert f.read() == "読み取り専用\n"
    assert os.getxattr(doc, "user.tag") == b"v1"
    assert sorted(os.listdir(c)) == ["doc.txt", "empty", "sub"]

    st0 = os.stat(doc)
    ops = {
        "create": lambda: os.close(os.open(os.path.join(c, "new.txt"), os.O_CREAT | os.O_WRONLY, 0o644)),
        "write (O_WRONLY)": lambda: os.close(os.open(doc, os.O_WRONLY)),
        "write (O_RDWR)": lambda: os.close(os.open(doc, os.O_RDWR)),
        "append": lambda: os.close(os.open(doc, os.O_WRONLY | os.O_APPEND)),
        "open O_TRUNC": lambda: os.close(os.open(doc, os.O_WRONLY | os.O_TRUNC)),
        "truncate": lambda: os.truncate(doc, 0),
        "unlink": lambda: os.unlink(doc),
        "mkdir": lambda: os.mkdir(os.path.join(c, "newdir")),
        "rmdir": lambda: os.rmdir(os.path.join(c, "empty")),
        "rename": lambda: os.rename(doc, os.path.join(c, "renamed.txt")),
        "rename into dir": lambda: os.rename(doc, os.path.join(c, "sub", "doc.txt")),
        "setxattr": lambda: os.setxattr(doc, "user.tag", b"v2"),
        "new xattr": lambda: os.setxattr(doc, "user.other", b"x"),
        "removexattr": lambda: os.removexattr(doc, "user.tag"),
        "symlink": lambda: os.symlink("doc.txt", os.path.join(c, "ln")),
        "link": lambda: os.link(doc, os.path.join(c, "hardlink")),
        "mknod fifo": lambda: os.mkfifo(os.path.join(c, "fifo")),
        "chmod": lambda: os.chmod(doc, 0o600),
        "utime": lambda: os.utime(doc, (1, 1)),
    }
    wrong = {}
    for name, op in ops.items():
        try:
            op()
            wrong[name] = "succeeded"
        except OSError as e:
            if e.errno != errno.EROFS:
                wrong[name] = f"errno {errno.errorcode.get(e.errno, e.errno)}"
    st1 = os.stat(doc)
    umount(mb)
    assert not wrong, f"on a read-only grant these did not fail with EROFS: {wrong}"

    # nothing changed: alice sees the same tree, content, xattrs, mode and times
    assert (st1.st_size, st1.st_mode, st1.st_mtime_ns) == (st0.st_size, st0.st_mode, st0.st_mtime_ns)
    ma = mount_ok(v, "alice", v.pw["alice"])
    s = os.path.join(ma, "sales")
    assert sorted(os.listdir(s)) == ["doc.txt", "empty", "sub"]
    assert os.listdir(os.path.join(s, "sub")) == ["inner.txt"]
    with open(os.path.join(s, "doc.txt")) as f:
        assert f.read() == "読み取り専用\n"
    assert os.getxattr(os.path.join(s, "doc.txt"), "user.tag") == b"v1"
    assert os.listxattr(os.path.join(s, "doc.txt")) == ["user.tag"]


def test_read_write_grant_can_write(org):
    """Control for the read-only test: the same operations work with a normal grant."""
    v = org
    mb = mount_ok(v, "bob", v.pw["bob"])
    c = os.path.join(mb, "hr")
    doc = os.path.join(c, "doc.txt")
    with open(doc, "w") as f:
        f.write("x" * 10000)
    os.truncate(doc, 10)
    os.setxattr(doc, "user.tag", b"v")
    os.mkdir(os.path.join(c, "d"))
    os.rename(doc, os.path.join(c, "d", "doc.txt"))
    assert os.path.getsize(os.path.join(c, "d", "doc.txt")) == 10


# ---------------------------------------------------------------- roles and ids

def test_third_admin_refused(org):
    v = org
    enrol(v, "dan", role="admin")          # the second administrator: allowed
    assert os.path.exists(os.path.join(v.path, "keys", "dan.root"))
    before = sorted(os.listdir(os.path.join(v.path, "policy")))
    p = admin(v, "user", "add", "erin", "--role", "admin",
              "--secret-file", os.path.join(v.base, "secret-erin"))
    refused(p, 7, "erin", "maximum", "admin.max = 2")
    assert not os.path.exists(os.path.join(v.path, "keys", "erin.key"))
    assert not os.path.exists(os.path.join(v.path, "keys", "erin.root"))
    assert not os.path.exists(os.path.join(v.base, "secret-erin"))
    assert sorted(os.listdir(os.path.join(v.path, "policy"))) == before
    assert set(users_json(v)) == {"alice", "bob", "carol", "dan"}
    # also refused when the second admin asks
    p = admin(v, "user", "add", "erin", "--role", "admin", as_user="dan",
              pwfile=os.path.join(v.base, "pw-dan"))
    refused(p, 7, "maximum")
    # erin can still be added as staff, and a third admin once the policy allows it
    enrol(v, "erin", role="staff")
    ok(admin(v, "policy", "set", "admin.max", "3"))
    enrol(v, "frank", role="admin")
    roles = {k: u["role"] for k, u in users_json(v).items()}
    assert roles == {"alice": "admin", "bob": "staff", "carol": "staff", "dan": "admin",
                     "erin": "staff", "frank": "admin"}


@pytest.mark.parametrize("uid", ["admin", "root", "guest", "user", "test", "shared", "common",
                                 "administrator", "backup", "temp"])
def test_default_ids_refused(org, uid):
    p = admin(org, "user", "add", uid, "--role", "staff")
    refused(p, 7, uid, "shared or default")
    assert not os.path.exists(os.path.join(org.path, "keys", f"{uid}.key"))
    assert "enrolment secret" not in p.stdout


def test_forbidden_ids_extendable_and_init_refuses_default(vault, tmpbase):
    v = vault
    ok(admin(v, "policy", "set", "ids.forbidden", "kyoyu,madoguchi"))
    js = json.loads(ok(admin(v, "policy", "show", "--json")).stdout)
    assert js["ids.forbidden"] == ["kyoyu", "madoguchi"]
    for uid in ("kyoyu", "madoguchi"):
        refused(admin(v, "user", "add", uid, "--role", "staff"), 7, uid, "shared or default")
    enrol(v, "kyoyu2")          # not on the list: fine
    # kinko init refuses a default id for the first administrator
    d = os.path.join(tmpbase, "v2")
    p = kinko("init", d, "--user", "root", "--password-file", v.pwfile)
    refused(p, 7, "root")
    assert not os.path.exists(os.path.join(d, "kinko.vault"))


def test_auditor_and_backup_cannot_be_granted(org):
    v = org
    enrol(v, "audrey", role="auditor")
    enrol(v, "bk1", role="backup")
    for uid, role in (("audrey", "auditor"), ("bk1", "backup")):
        for extra in ((), ("--read-only",)):
            p = admin(v, "grant", uid, "hr", *extra)
            refused(p, 7, uid, role)
        assert grant_files(v, uid) == []
        assert users_json(v)[uid]["grants"] == []
        # and with no grant there is nothing to mount
        p, _ = mount_as(v, uid, os.path.join(v.base, f"pw-{uid}"))
        refused(p, 7, uid)


def test_staff_cannot_administer(org):
    v = org
    bob = dict(as_user="bob", pwfile=v.pw["bob"])
    refused(admin(v, "user", "add", "erin", "--role", "staff", **bob), 7, "not an active administrator")
    refused(admin(v, "grant", "bob", "sales", **bob), 7, "not an active administrator")
    refused(admin(v, "user", "disable", "carol", **bob), 7, "not an active administrator")
    refused(admin(v, "policy", "set", "admin.max", "5", **bob), 7, "not an active administrator")
    refused(admin(v, "compartment", "create", "x", "--class", "himitsu", **bob), 7)
    assert "erin" not in users_json(v)
    # reading is allowed
    ok(admin(v, "policy", "show", **bob))
    ok(admin(v, "user", "list", **bob))


# ---------------------------------------------------------------- lifecycle

def test_disable_enable_remove(org):
    v = org
    mount_ok(v, "bob", v.pw["bob"])
    v.cleanup()

    ok(admin(v, "user", "disable", "bob"))
    assert users_json(v)["bob"]["state"] == "disabled"
    p, _ = mount_as(v, "bob", v.pw["bob"])
    refused(p, 7, "policy/", "disabled")
    p = kinko("fsck", v.path, "--user", "bob", "--password-file", v.pw["bob"])
    refused(p, 7, "disabled")
    # carol is unaffected
    mount_ok(v, "carol", v.pw["carol"])
    v.cleanup()

    ok(admin(v, "user", "enable", "bob"))
    assert users_json(v)["bob"]["state"] == "active"
    mb = mount_ok(v, "bob", v.pw["bob"])
    assert os.listdir(mb) == ["hr"]
    v.cleanup()

    key = os.path.join(v.path, "keys", "bob.key")
    saved = open(key, "rb").read()
    saved_grants = {g: open(g, "rb").read() for g in grant_files(v, "bob")}
    assert saved_grants
    ok(admin(v, "user", "remove", "bob"))
    assert not os.path.exists(key)
    assert grant_files(v, "bob") == []
    assert "bob" not in users_json(v)
    p, _ = mount_as(v, "bob", v.pw["bob"])
    refused(p, 7, "bob")
    # restoring the old key and grant files from a backup does not bring bob back
    with open(key, "wb") as f:
        f.write(saved)
    for g, b in saved_grants.items():
        with open(g, "wb") as f:
            f.write(b)
    p, _ = mount_as(v, "bob", v.pw["bob"])
    refused(p, 7, "bob", "not in the signed policy")
    # the others still work
    mount_ok(v, "carol", v.pw["carol"])


def test_admin_cannot_disable_or_remove_self(org):
    v = org
    for sub in ("disable", "remove"):
        p = admin(v, "user", sub, "alice")
        refused(p, 7, "alice", "own account")
    u = users_json(v)["alice"]
    assert u["state"] == "active" and u["role"] == "admin"
    assert os.path.exists(os.path.join(v.path, "keys", "alice.key"))
    assert os.path.exists(os.path.join(v.path, "keys", "alice.root"))
    ma = mount_ok(v, "alice", v.pw["alice"])
    assert sorted(os.listdir(ma)) == ["hr", "main", "sales"]


def test_unknown_user_operations(org):
    v = org
    for sub in ("disable", "enable", "remove", "show"):
        refused(admin(v, "user", sub, "nosuch"), None, "nosuch")
    refused(admin(v, "grant", "nosuch", "hr"), None, "nosuch")
    refused(admin(v, "grant", "bob", "nosuchcomp"), None, "nosuchcomp")
    refused(admin(v, "user", "add", "bob", "--role", "staff"), 10, "already exists")
    refused(admin(v, "user", "add", "erin", "--role", "chief"), 2, "chief")


def test_revoke_removes_access_at_next_mount(org):
    v = org
    ok(admin(v, "grant", "bob", "sales"))
    mb = mount_ok(v, "bob", v.pw["bob"])
    assert sorted(os.listdir(mb)) == ["hr", "sales"]
    with open(os.path.join(mb, "sales", "bobs-note.txt"), "w") as f:
        f.write("note\n")
    v.cleanup()
    sales_grant = os.path.join(v.path, "grants", v.cids["sales"], "1", "bob.grant")
    assert os.path.exists(sales_grant)

    out = ok(admin(v, "revoke", "bob", "sales")).stdout
    assert "grant removed" in out
    assert not os.path.exists(sales_grant)
    assert [g["compartment"] for g in users_json(v)["bob"]["grants"]] == ["hr"]
    mb = mount_ok(v, "bob", v.pw["bob"])
    assert os.listdir(mb) == ["hr"]
    assert not os.path.exists(os.path.join(mb, "sales"))
    v.cleanup()
    # revoking again: nothing to revoke
    refused(admin(v, "revoke", "bob", "sales"), None, "bob")
    # the data itself is still there for the remaining grantees
    ma = mount_ok(v, "carol", v.pw["carol"])
    with open(os.path.join(ma, "sales", "bobs-note.txt")) as f:
        assert f.read() == "note\n"
    # revoking the last grant leaves nothing to mount
    ok(admin(v, "revoke", "bob", "hr"))
    p, _ = mount_as(v, "bob", v.pw["bob"])
    refused(p, 7, "no compartment grant")


# ---------------------------------------------------------------- listings

def test_user_list_and_show_json_japanese(vault):
    v = vault
    ok(admin(v, "compartment", "create", "jinji", "--class", "gokuhi"))
    enrol(v, "yamada.taro", extra=("--name", "山田 太郎", "--dept", "総務部 人事課",
                                    "--contact", "内線 1234・yamada@example.jp"))
    enrol(v, "sato", role="auditor", extra=("--name", "佐藤 花子", "--dept", "監査室"))
    ok(admin(v, "grant", "yamada.taro", "jinji", "--read-only"))

    users = json.loads(ok(admin(v, "user", "list", "--json")).stdout)
    assert [u["id"] for u in users] == ["alice", "yamada.taro", "sato"]
    fields = {"id", "role", "state", "name", "dept", "contact", "created", "second_factor", "grants"}
    for u in users:
        assert fields <= set(u), u
    by = {u["id"]: u for u in users}
    y = by["yamada.taro"]
    assert (y["role"], y["state"], y["name"], y["dept"], y["contact"]) == \
        ("staff", "active", "山田 太郎", "総務部 人事課", "内線 1234・yamada@example.jp")
    assert y["second_factor"] is False
    assert y["grants"] == [{"compartment": "jinji", "access": "ro"}]
    assert by["sato"]["role"] == "auditor" and by["sato"]["name"] == "佐藤 花子"
    assert by["sato"]["grants"] == []
    assert by["alice"]["role"] == "admin"
    assert {g["compartment"] for g in by["alice"]["grants"]} == {"main", "jinji"}

    show = json.loads(ok(admin(v, "user", "show", "yamada.taro", "--json")).stdout)
    assert show == y
    # the plain forms print the same information
    text = ok(admin(v, "user", "show", "yamada.taro")).stdout
    for s in ("yamada.taro", "staff", "active", "山田 太郎", "総務部 人事課",
              "内線 1234・yamada@example.jp", "jinji(ro)"):
        assert s in text, (s, text)
    text = ok(admin(v, "user", "list")).stdout
    for s in ("alice", "yamada.taro", "sato", "auditor", "佐藤 花子", "監査室"):
        assert s in text, (s, text)
    # a staff member can list too, and sees the same data
    assert json.loads(ok(admin(v, "user", "list", "--json", as_user="yamada.taro",
                               pwfile=os.path.join(v.base, "pw-yamada.taro"))).stdout) == users


def test_compartment_list(org):
    v = org
    ok(admin(v, "grant", "bob", "sales", "--read-only"))
    comps = json.loads(ok(admin(v, "compartment", "list", "--json")).stdout)
    by = {c["name"]: c for c in comps}
    assert set(by) == {"main", "hr", "sales"}
    assert (by["main"]["class"], by["hr"]["class"], by["sales"]["class"]) == \
        ("gokuhi", "himitsu", "shagaihi")
    assert all(c["epoch"] == 1 for c in comps)
    def grantees(name):
        return sorted((g["user"], g["access"]) for g in by[name]["grantees"])
    assert grantees("hr") == [("alice", "rw"), ("bob", "rw")]
    assert grantees("sales") == [("alice", "rw"), ("bob", "ro"), ("carol", "rw")]
    assert grantees("main") == [("alice", "rw")]
    for c in comps:   # the id is the backing directory name
        assert os.path.isdir(os.path.join(v.path, "data", c["id"]))
        assert os.path.isdir(os.path.join(v.path, "grants", c["id"], "1"))
    text = ok(admin(v, "compartment", "list")).stdout
    assert "bob(ro)" in text and "carol(rw)" in text and "himitsu" in text
    # a duplicate name and a bad class are refused
    refused(admin(v, "compartment", "create", "hr", "--class", "himitsu"), 10, "already exists")
    refused(admin(v, "compartment", "create", "x", "--class", "topsecret"), 2)
    assert len(json.loads(ok(admin(v, "compartment", "list", "--json")).stdout)) == 3


# ---------------------------------------------------------------- policy settings

def test_policy_show_and_set_validation(org):
    v = org
    js = json.loads(ok(admin(v, "policy", "show", "--json")).stdout)
    expect = {"admin.max": 2, "password.mode": "expiring", "password.min_length": 8,
              "password.long_min_length": 13, "password.max_age_days": 60,
              "password.warn_days": 7, "unlock.max_failures": 5, "unlock.delay_ms": 1000,
              "second_factor.classes": [], "ids.forbidden": [], "second_factor.ca_cert": False,
              "updated_by": "alice"}
    for k, val in expect.items():
        assert js[k] == val, (k, js)
    serial = js["serial"]
    newest = max(int(n.split(".")[1]) for n in os.listdir(os.path.join(v.path, "policy")))
    assert serial == newest

    bad = [
        (("no.such.key", "1"), "unknown setting"),
        (("password.min_length", "5"), "from 8 to 1024"),
        (("password.min_length", "ten"), "whole number"),
        (("password.min_length", "9x"), "whole number"),
        (("admin.max", "0"), "admin.max"),
        (("unlock.max_failures", "0"), "unlock.max_failures"),
        (("unlock.delay_ms", "60001"), "unlock.delay_ms"),
        (("password.mode", "never"), "expiring, long or two-factor"),
        (("ids.forbidden", "ok,Bad Id!"), "not a user id"),
        (("second_factor.classes", "himitsu,topsecret"), "not a class"),
    ]
    for args, reason in bad:
        p = admin(v, "policy", "set", *args)
        refused(p, (2, 7), reason)
    js2 = json.loads(ok(admin(v, "policy", "show", "--json")).stdout)
    assert js2 == js, "a refused setting changed the policy"

    # a second factor for a class cannot be required before the CA is known
    refused(admin(v, "policy", "set", "second_factor.classes", "gokuhi"), 7, "CA first")
    assert json.loads(ok(admin(v, "policy", "show", "--json")).stdout) == js

    ok(admin(v, "policy", "set", "password.min_length", "10"))
    ok(admin(v, "policy", "set", "password.warn_days", "3"))
    ok(admin(v, "policy", "set", "unlock.delay_ms", "0"))
    js3 = json.loads(ok(admin(v, "policy", "show", "--json")).stdout)
    assert js3["serial"] == serial + 3
    assert js3["password.min_length"] == 10
    assert js3["password.warn_days"] == 3
    assert js3["unlock.delay_ms"] == 0
    assert js3["second_factor.classes"] == []
    # the setting is applied: a 9-character password is now too short
    p = kinko("passwd", v.path, "--user", "bob", "--password-file", v.pw["bob"],
              "--new-password-file", write_pw(v.base, "nine", "Ab3$efgh9"))
    refused(p, 7, "at least 10")
    # staff may read the policy, not change it
    js4 = json.loads(ok(admin(v, "policy", "show", "--json", as_user="bob", pwfile=v.pw["bob"])).stdout)
    assert js4 == js3
    refused(admin(v, "policy", "set", "admin.max", "3", as_user="bob", pwfile=v.pw["bob"]), 7)
    # usage errors
    refused(admin(v, "policy", "set", "admin.max"), 2)
    refused(admin(v, "policy", "frobnicate"), 2)


def test_user_remove_refuses_the_last_grantee(org):
    """kinko user remove must not strand a compartment (as kinko revoke refuses):
    bob becomes the only grantee of hr, so removing him is refused and nothing changes."""
    v = org
    ok(admin(v, "revoke", "alice", "hr"))            # bob alone holds hr now
    refused(admin(v, "user", "remove", "bob"), 7, "hr", "last grant")
    ma = mount_ok(v, "bob", v.pw["bob"])               # bob is still there, with hr
    assert "hr" in os.listdir(ma)
    ok(admin(v, "user", "remove", "carol"))            # sales keeps alice: carol may go
