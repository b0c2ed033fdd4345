"""A mount by an ordinary user, without allow_other: the kernel does no
permission checks of its own (no default_permissions), so the daemon, which
runs as that user, must give the same answers as a native directory of that
user's. Every case is run as nobody in a native directory and in the mount
and the results are compared."""
import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from kinko_util import KINKO, PASSWORD, umount, wait_for_mount

NOBODY_UID = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups"]
BAD = ("==ERROR", "runtime error:", "LeakSanitizer", "AddressSanitizer")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as nobody")

# Runs as nobody: one result per case, the errno name or "ok" (or a value).
PROBE = r'''
import errno, json, os, subprocess, sys

def res(f, *a):
    try:
        v = f(*a)
        return "ok" if v is None or isinstance(v, int) else v
    except OSError as e:
        return errno.errorcode[e.errno]

def opener(p, flags):
    return lambda: os.close(os.open(p, flags))

def touch(p, data=b"x"):
    with open(p, "wb") as f:
        f.write(data)

base = sys.argv[1]
out = {}
d = os.path.join(base, "d")
os.mkdir(d)
for mode in (0o000, 0o100, 0o200, 0o400, 0o500, 0o600, 0o700, 0o070, 0o007, 0o044):
    f = os.path.join(d, "f%03o" % mode)
    touch(f)
    os.chmod(f, mode)
    k = "%03o" % mode
    out[k + " open r"] = res(opener(f, os.O_RDONLY))
    out[k + " open w"] = res(opener(f, os.O_WRONLY))
    out[k + " open rw"] = res(opener(f, os.O_RDWR))
    out[k + " open r|trunc"] = res(opener(f, os.O_RDONLY | os.O_TRUNC))
    out[k + " open w|append"] = res(opener(f, os.O_WRONLY | os.O_APPEND))
    out[k + " truncate"] = res(os.truncate, f, 1)
    out[k + " access"] = [os.access(f, m) for m in (os.F_OK, os.R_OK, os.W_OK, os.X_OK,
                                                   os.R_OK | os.W_OK)]
    out[k + " utime now"] = res(os.utime, f)
    out[k + " utime set"] = res(os.utime, f, (1, 2))
    out[k + " setxattr"] = res(os.setxattr, f, "user.k", b"v")
    out[k + " getxattr"] = res(lambda: os.getxattr(f, "user.k").decode())
    out[k + " listxattr"] = res(os.listxattr, f)
    out[k + " setxattr create existing"] = res(os.setxattr, f, "user.k", b"w", os.XATTR_CREATE)
    out[k + " setxattr replace missing"] = res(os.setxattr, f, "user.none", b"w", os.XATTR_REPLACE)
    out[k + " removexattr missing"] = res(os.removexattr, f, "user.none")
    out[k + " chmod"] = res(os.chmod, f, mode)
    out[k + " rename"] = res(os.rename, f, f + ".r")
    out[k + " link"] = res(os.link, f + ".r", f + ".l")
    out[k + " unlink"] = res(os.unlink, f + ".l")

# execve: the kernel itself only asks for some x bit
for mode in (0o100, 0o477, 0o500, 0o700, 0o011):
    x = os.path.join(d, "x%03o" % mode)
    with open(x, "wb") as fh:
        fh.write(open("/bin/true", "rb").read())
    os.chmod(x, mode)
    out["exec %03o" % mode] = res(lambda: subprocess.run([x]).returncode)

# write-only file: writes through a handle that cannot read
w = os.path.join(d, "wonly")
touch(w, b"abcdef")
os.chmod(w, 0o200)
fd = os.open(w, os.O_WRONLY)
os.pwrite(fd, b"XY", 2)
os.close(fd)
os.chmod(w, 0o600)
out["write-only rmw"] = open(w, "rb").read().decode()

# directories
for mode in (0o000, 0o100, 0o300, 0o400, 0o500, 0o600, 0o700):
    k = "dir %03o" % mode
    s = os.path.join(d, "s%03o" % mode)
    os.mkdir(s)
    touch(os.path.join(s, "g"))
    os.mkdir(os.path.join(s, "sub"))
    os.stat(os.path.join(s, "g"))          # now cached by the kernel
    os.chmod(s, mode)
    out[k + " stat child"] = res(lambda: os.stat(os.path.join(s, "g")).st_size)
    out[k + " open child"] = res(opener(os.path.join(s, "g"), os.O_RDONLY))
    out[k + " list"] = res(lambda: sorted(os.listdir(s)))
    out[k + " create"] = res(touch, os.path.join(s, "new"))
    out[k + " mkdir"] = res(os.mkdir, os.path.join(s, "newd"))
    out[k + " symlink"] = res(os.symlink, "g", os.path.join(s, "ln"))
    out[k + " rename in"] = res(os.rename, os.path.join(s, "g"), os.path.join(s, "g2"))
    out[k + " rename out"] = res(os.rename, os.path.join(s, "sub"), os.path.join(d, "out%03o" % mode))
    out[k + " unlink"] = res(os.unlink, os.path.join(s, "g"))
    out[k + " access"] = [os.access(s, m) for m in (os.R_OK, os.W_OK, os.X_OK)]
    out[k + " chdir"] = res(os.chdir, s)
    os.chdir(base)
    os.chmod(s, 0o700)
    out[k + " after"] = sorted(os.listdir(s))
# an empty directory without write permission in a writable parent
e = os.path.join(d, "empty")
os.mkdir(e)
os.chmod(e, 0o500)
out["rmdir 500 empty"] = res(os.rmdir, e)
# a directory without write permission moved to another parent (its ".." changes)
m = os.path.join(d, "mv")
os.mkdir(m)
os.mkdir(os.path.join(d, "to"))
os.chmod(m, 0o500)
out["rename 500 dir away"] = res(os.rename, m, os.path.join(d, "to", "mv"))
print(json.dumps(out))
'''


@contextlib.contextmanager
def owner_mount(**extra_env):
    """(base, mountpoint, run): a vault of nobody's mounted by nobody."""
    st = os.stat("/dev/fuse")
    if st.st_mode & 0o006 != 0o006:
        os.chmod("/dev/fuse", 0o666)   # Debian's default; this machine may be stricter
    base = tempfile.mkdtemp(prefix="kinko-owner-", dir="/tmp")
    os.chmod(base, 0o755)
    os.chown(base, NOBODY_UID, NOBODY_UID)
    kbin = os.path.join(base, "kinko")
    shutil.copy(KINKO, kbin)
    os.chmod(kbin, 0o755)
    env = dict(os.environ, HOME=base, KINKO_STATE_DIR=os.path.join(base, "state"), **extra_env)

    def run(*args, check=True, **kw):
        p = subprocess.run(AS_NOBODY + list(args), capture_output=True, text=True, env=env,
                           timeout=120, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"{args} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    pw = os.path.join(base, "pw")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    os.chown(pw, NOBODY_UID, NOBODY_UID)
    run(kbin, "init", os.path.join(base, "vault"), "--user", "bob", "--password-file", pw)
    mnt = os.path.join(base, "mnt")
    run("mkdir", mnt)
    daemon = subprocess.Popen(AS_NOBODY + [kbin, "mount", os.path.join(base, "vault"), mnt,
                                           "--user", "bob", "--password-file", pw, "-f"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_mount(mnt, daemon)
        yield base, mnt, run
    finally:
        umount(mnt)
        try:
            _, err = daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, err = daemon.communicate()
        os.chmod("/dev/fuse", stat.S_IMODE(st.st_mode))
        shutil.rmtree(base, ignore_errors=True)
    assert not any(b in err for b in BAD), err[-4000:]


@pytest.fixture
def owner():
    with owner_mount() as o:
        yield o


def mount_options(mnt):
    for line in open("/proc/self/mounts"):
        f = line.split()
        if f[1] == mnt:
            return f[3].split(",")
    raise AssertionError(f"{mnt} not in /proc/self/mounts")


def test_owner_mount_leaves_checks_to_the_daemon(owner):
    base, mnt, run = owner
    assert "default_permissions" not in mount_options(mnt)
    # the virtual root: r-x for its owner
    p = run(sys.executable, "-c", "import os,sys; r=sys.argv[1]; "
            "print([os.access(r, m) for m in (os.R_OK, os.W_OK, os.X_OK)])", mnt)
    assert p.stdout.strip() == "[True, False, True]"


def test_permissions_match_native(owner):
    base, mnt, run = owner
    probe = os.path.join(base, "probe.py")
    with open(probe, "w") as f:
        f.write(PROBE)
    native = os.path.join(base, "native")
    run("mkdir", native)
    want = json.loads(run(sys.executable, probe, native).stdout)
    got = json.loads(run(sys.executable, probe, os.path.join(mnt, "main")).stdout)
    diff = {k: (want[k], got.get(k)) for k in want if want[k] != got.get(k)}
    assert not diff, "native vs kinko: " + json.dumps(diff, indent=1)
    # the matrix exercised refusals as well as successes
    assert want["000 open r"] == "EACCES" and want["600 open rw"] == "ok"
    assert want["dir 600 stat child"] == "EACCES" and want["write-only rmw"] == "abXYef"


# Runs as nobody: stat a/b/f (cached by the kernel), take the search
# permission from a, stat again after WAIT seconds; three times.
CHMOD_PROBE = r'''
import errno, os, sys, time
d, wait = sys.argv[1], float(sys.argv[2])
os.makedirs(os.path.join(d, "a", "b"))
open(os.path.join(d, "a", "b", "f"), "w").close()
r = []
for _ in range(3):
    os.stat(os.path.join(d, "a", "b", "f"))
    os.chmod(os.path.join(d, "a"), 0o600)
    time.sleep(wait)
    try:
        os.stat(os.path.join(d, "a", "b", "f"))
        r.append("ok")
    except OSError as e:
        r.append(errno.errorcode[e.errno])
    os.chmod(os.path.join(d, "a"), 0o700)
    r.append(os.stat(os.path.join(d, "a", "b", "f")).st_size)
print(r)
'''


def test_chmod_of_directory_forgets_cached_names(owner):
    """The kernel caches names for the entry timeout; without its own checks a
    stat through a cached name would still succeed after the directory lost
    its search permission. A new epoch (Linux 6.16) closes it before chmod
    returns."""
    base, mnt, run = owner
    p = run(sys.executable, "-c", CHMOD_PROBE, os.path.join(mnt, "main", "cache"), "0")
    assert p.stdout.strip() == "['EACCES', 0, 'EACCES', 0, 'EACCES', 0]"


def test_chmod_of_directory_forgets_names_on_older_kernels():
    """Without FUSE_NOTIFY_INC_EPOCH (Linux < 6.16) the names are invalidated
    one by one right after the reply (the kernel holds the directory's lock
    until then): a moment later, well within the 1 s entry timeout, a stat
    through them is refused."""
    with owner_mount(KINKO_NO_EPOCH="1") as (base, mnt, run):
        p = run(sys.executable, "-c", CHMOD_PROBE, os.path.join(mnt, "main", "old"), "0.05")
        assert p.stdout.strip() == "['EACCES', 0, 'EACCES', 0, 'EACCES', 0]"


def backing(base, dirs=False):
    """Backing objects of the vault in base (kinko's own files left out)."""
    out = []
    for root, ds, fs in os.walk(os.path.join(base, "vault", "data")):
        names = ds if dirs else fs
        out += [os.path.join(root, n) for n in names
                if n != "kinko.diriv" and not n.endswith(".name")]
    return sorted(out)


def nobody_py(run, code, *args):
    return run(sys.executable, "-c", code, *map(str, args)).stdout.strip()


def test_refused_link_leaves_the_header_bound(owner):
    """A link into a directory without write permission is refused before the
    file's header is rewritten as linked (no longer bound to its name)."""
    base, mnt, run = owner
    c = os.path.join(mnt, "main")
    nobody_py(run, "import os,sys; c=sys.argv[1]; os.mkdir(c+'/ro'); "
              "open(c+'/f','w').write('x'*5000); os.chmod(c+'/ro', 0o500)", c)
    (f,) = backing(base)
    before = open(f, "rb").read()
    got = nobody_py(run, "import os,sys,errno\ntry: os.link(sys.argv[1]+'/f', sys.argv[1]+'/ro/g')\n"
                    "except OSError as e: print(errno.errorcode[e.errno])", c)
    assert got == "EACCES"
    assert open(f, "rb").read() == before, "the refused link rewrote the file's header"


def test_refused_rmdir_and_rename_keep_the_directory_iv(owner):
    """rmdir of an empty directory, and a rename over one, in a directory
    without write permission are refused before the IV file is removed."""
    base, mnt, run = owner
    c = os.path.join(mnt, "main")
    nobody_py(run, "import os,sys; c=sys.argv[1]; os.makedirs(c+'/p/x'); os.mkdir(c+'/p/y'); "
              "os.mkdir(c+'/q'); os.chmod(c+'/p/x', 0o500); os.chmod(c+'/p', 0o500)", c)
    got = nobody_py(run, "import os,sys,errno\nc=sys.argv[1]\nr=[]\n"
                    "for f,a in ((os.rmdir,(c+'/p/x',)),(os.rename,(c+'/q',c+'/p/x')),"
                    "(os.rename,(c+'/p/y',c+'/p/x'))):\n"
                    "  try: f(*a); r.append('ok')\n"
                    "  except OSError as e: r.append(errno.errorcode[e.errno])\nprint(r)", c)
    assert got == "['EACCES', 'EACCES', 'EACCES']"
    for d in backing(base, dirs=True):
        assert os.path.exists(os.path.join(d, "kinko.diriv")), f"{d} lost its IV file"
    assert nobody_py(run, "import os,sys; os.chmod(sys.argv[1]+'/p', 0o700); "
                     "print(sorted(os.listdir(sys.argv[1]+'/p')), os.listdir(sys.argv[1]+'/p/x'))",
                     c) == "['x', 'y'] []"


def test_unreadable_iv_file_in_a_searchable_directory(owner):
    """An IV file the owner cannot open inside a directory they may search is
    damage (EIO and an integrity alarm); the directory keeps its mode."""
    base, mnt, run = owner
    c = os.path.join(mnt, "main")
    nobody_py(run, "import os,sys; os.makedirs(sys.argv[1]+'/s/t')", c)
    umount(mnt)
    dirs = backing(base, dirs=True)          # the compartment, s, s/t
    (sdir,) = [d for d in dirs if os.path.dirname(d) == dirs[0]]
    os.chmod(os.path.join(sdir, "kinko.diriv"), 0)
    mode = os.stat(sdir).st_mode & 0o7777
    run(os.path.join(base, "kinko"), "mount", os.path.join(base, "vault"), mnt, "--user", "bob",
        "--password-file", os.path.join(base, "pw"))
    got = nobody_py(run, "import os,sys,errno\ntry: os.listdir(sys.argv[1]+'/s')\n"
                    "except OSError as e: print(errno.errorcode[e.errno])", c)
    assert got == "EIO"
    assert os.stat(sdir).st_mode & 0o7777 == mode


def test_root_mounts_keep_kernel_checks_when_asked(vault):
    mnt = vault.mount()
    assert "default_permissions" not in mount_options(mnt)
    umount(mnt)
    mnt = vault.mount(extra=["-o", "default_permissions"])
    assert "default_permissions" in mount_options(mnt)
    umount(mnt)
    mnt = vault.mount(extra=["-o", "allow_other"])
    opts = mount_options(mnt)
    assert "default_permissions" in opts and "allow_other" in opts
