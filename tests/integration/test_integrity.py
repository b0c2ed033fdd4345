"""Integrity of the ciphertext: every tampering with the backing files done
while the vault is NOT mounted must make reads fail with EIO (never return
wrong bytes) and make `kinko fsck` exit 9 naming exactly the damaged item."""
import errno
import json
import mmap
import os
import re
import shutil
import subprocess

import pytest

from kinko_util import Vault, umount

HDR = 76                 # file header
BS = 4096                # plaintext block
OVERHEAD = {"aes-256-gcm": 12 + 16, "xchacha20-poly1305": 24 + 16}
DIRIV = "kinko.diriv"


def cbs(cipher):
    return BS + OVERHEAD[cipher]


def block_off(cipher, i):
    return HDR + i * cbs(cipher)


def cipher_size(cipher, plain):
    if plain == 0:
        return 0
    full, rem = divmod(plain, BS)
    return HDR + full * cbs(cipher) + (rem + OVERHEAD[cipher] if rem else 0)


def pattern(seed, n):
    """Deterministic, distinct per seed, not compressible-looking."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += f"{seed}:{i:08d}|".encode()
        i += 1
    return bytes(out[:n])


class Tracker:
    """Creates entries through a live mount one at a time and records the backing
    path of each by diffing the backing directory listing."""

    def __init__(self, vault, comp):
        self.vault = vault
        self.comp = comp
        self.back = {"": vault.data_dir()}

    def _new(self, rel, make):
        parent = os.path.dirname(rel)
        bdir = self.back[parent]
        before = set(os.listdir(bdir))
        make(os.path.join(self.comp, rel))
        new = set(os.listdir(bdir)) - before
        main = sorted(n for n in new if not n.endswith(".name") and n != "kinko.lt")
        assert len(main) == 1, f"creating {rel} added {sorted(new)} to {bdir}"
        self.back[rel] = os.path.join(bdir, main[0])
        return self.back[rel]

    def file(self, rel, data):
        def make(p):
            with open(p, "wb") as f:
                f.write(data)
        return self._new(rel, make)

    def dir(self, rel):
        return self._new(rel, os.mkdir)

    def symlink(self, rel, target):
        return self._new(rel, lambda p: os.symlink(target, p))


def populate(vault, files=None, dirs=(), symlinks=None, xattrs=None):
    """Mount, create dirs, files {rel: bytes}, symlinks {rel: target} and
    xattrs {rel: {name: value}}, unmount. Returns the Tracker."""
    mnt = vault.mount()
    t = Tracker(vault, vault.comp(mnt))
    for d in dirs:
        t.dir(d)
    for rel, data in (files or {}).items():
        t.file(rel, data)
    for rel, target in (symlinks or {}).items():
        t.symlink(rel, target)
    for rel, xs in (xattrs or {}).items():
        for k, v in xs.items():
            os.setxattr(os.path.join(t.comp, rel), k, v)
    vault.cleanup()
    return t


def flip_bit(path, off, bit=3):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        assert len(b) == 1, f"{path} has no byte at {off}"
        f.seek(off)
        f.write(bytes([b[0] ^ (1 << bit)]))


def read_range(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def write_range(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def assert_eio(path):
    """Opening and reading all of path must fail with EIO; wrong bytes never."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        assert e.errno == errno.EIO, f"{path}: expected EIO, got {e!r}"
        return
    pytest.fail(f"read of tampered {path} succeeded with {len(data)} bytes "
                f"(starts {data[:40]!r}) instead of failing with EIO")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def fsck_report(vault):
    """-> (exit code, set of paths in the text output, json damaged list)."""
    p = vault.fsck()
    text = set()
    for line in p.stdout.splitlines():
        if line.startswith("DAMAGED "):
            m = re.match(rf"DAMAGED {re.escape(vault.compartment)}/(.*?): (.+)$", line)
            assert m, f"unparseable fsck line {line!r}"
            text.add(m.group(1) or "/")  # the compartment root prints as "main/"
    pj = vault.fsck(json_out=True)
    assert pj.returncode == p.returncode, (p.returncode, pj.returncode, pj.stderr)
    doc = json.loads(pj.stdout)
    assert doc["clean"] == (p.returncode == 0)
    return p.returncode, text, doc["damaged"], p


def check_fsck(vault, damaged, reason_re=None):
    """fsck must exit 9 and name exactly `damaged` (plaintext paths relative to
    the compartment), in text and in JSON."""
    rc, text, jd, p = fsck_report(vault)
    assert rc == 9, f"fsck exit {rc}, expected 9\nstdout: {p.stdout}\nstderr: {p.stderr}"
    jpaths = {d["path"] for d in jd}
    assert all(d["compartment"] == vault.compartment for d in jd), jd
    assert text == set(damaged), f"fsck text named {text}, expected {set(damaged)}\n{p.stdout}"
    assert jpaths == set(damaged), f"fsck --json named {jd}, expected {set(damaged)}"
    if reason_re:
        for d in jd:
            assert re.search(reason_re, d["reason"]), d
    return jd


def check_mount(vault, eio=(), intact=None):
    mnt = vault.mount()
    comp = vault.comp(mnt)
    try:
        for rel in eio:
            assert_eio(os.path.join(comp, rel))
        for rel, data in (intact or {}).items():
            assert read_bytes(os.path.join(comp, rel)) == data, f"{rel} intact file reads wrong"
    finally:
        vault.cleanup()


# ---------------------------------------------------------------- content

@pytest.mark.parametrize("cipher", ["aes-256-gcm", "xchacha20-poly1305"])
def test_bitflip_in_block(tmpbase, cipher):
    v = Vault(tmpbase, cipher=cipher)
    a, b = pattern("a", 3 * BS + 1000), pattern("b", 5000)
    t = populate(v, {"a.bin": a, "b.bin": b})
    ba = t.back["a.bin"]
    assert os.path.getsize(ba) == cipher_size(cipher, len(a)), "unexpected ciphertext geometry"
    assert os.path.getsize(t.back["b.bin"]) == cipher_size(cipher, len(b))
    flip_bit(ba, block_off(cipher, 1) + OVERHEAD[cipher] + 100)
    check_mount(v, eio=["a.bin"], intact={"b.bin": b})
    jd = check_fsck(v, {"a.bin"}, reason_re=r"block 1\b")
    assert len(jd) == 1


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "xchacha20-poly1305"])
@pytest.mark.parametrize("damaged", [3, 130, 255])
def test_bitflip_in_large_request(tmpbase, cipher, damaged):
    """A 1 MiB request is sealed and opened in two halves on two threads: a
    damaged block in either half fails the whole read, and the other blocks
    of the file still read back (in requests that do not cover the damage)."""
    v = Vault(tmpbase, cipher=cipher)
    big = pattern("big", 256 * BS)
    t = populate(v, {"big.bin": big})
    flip_bit(t.back["big.bin"], block_off(cipher, damaged) + OVERHEAD[cipher] + 7)
    mnt = v.mount()
    p = os.path.join(v.comp(mnt), "big.bin")
    try:
        fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
        try:
            buf = mmap.mmap(-1, 256 * BS)       # O_DIRECT: one aligned 1 MiB read request
            with pytest.raises(OSError) as ei:
                os.preadv(fd, [buf], 0)
            assert ei.value.errno == errno.EIO
            for off in range(0, 256 * BS, 64 * BS):
                if off <= damaged * BS < off + 64 * BS:
                    continue
                part = mmap.mmap(-1, 64 * BS)
                assert os.preadv(fd, [part], off) == 64 * BS
                assert bytes(part) == big[off:off + 64 * BS], f"bytes at {off} differ"
        finally:
            os.close(fd)
    finally:
        v.cleanup()
    check_fsck(v, {"big.bin"}, reason_re=rf"block {damaged}\b")


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "xchacha20-poly1305"])
def test_bitflip_in_header(tmpbase, cipher):
    v = Vault(tmpbase, cipher=cipher)
    a, b = pattern("a", 2 * BS), pattern("b", 100)
    t = populate(v, {"a.bin": a, "b.bin": b})
    flip_bit(t.back["a.bin"], 30)  # inside the file id
    check_mount(v, eio=["a.bin"], intact={"b.bin": b})
    check_fsck(v, {"a.bin"})


def test_bitflip_in_header_mac(tmpbase):
    v = Vault(tmpbase)
    a = pattern("a", 10)
    t = populate(v, {"a.bin": a})
    flip_bit(t.back["a.bin"], HDR - 1, bit=7)
    check_mount(v, eio=["a.bin"])
    check_fsck(v, {"a.bin"})


def test_two_blocks_swapped(tmpbase):
    c = "aes-256-gcm"
    v = Vault(tmpbase)
    a, b = pattern("a", 3 * BS + 17), pattern("b", 300)
    t = populate(v, {"a.bin": a, "b.bin": b})
    ba = t.back["a.bin"]
    b0 = read_range(ba, block_off(c, 0), cbs(c))
    b1 = read_range(ba, block_off(c, 1), cbs(c))
    assert b0 != b1
    write_range(ba, block_off(c, 0), b1)
    write_range(ba, block_off(c, 1), b0)
    check_mount(v, eio=["a.bin"], intact={"b.bin": b})
    check_fsck(v, {"a.bin"}, reason_re=r"block 0\b")


def test_block_copied_from_other_file(tmpbase):
    c = "aes-256-gcm"
    v = Vault(tmpbase)
    a, b = pattern("a", 2 * BS + 5), pattern("b", 2 * BS + 5)
    t = populate(v, {"a.bin": a, "b.bin": b})
    write_range(t.back["a.bin"], block_off(c, 1), read_range(t.back["b.bin"], block_off(c, 1), cbs(c)))
    check_mount(v, eio=["a.bin"], intact={"b.bin": b})
    check_fsck(v, {"a.bin"})


def test_headers_swapped_between_files(tmpbase):
    v = Vault(tmpbase)
    a, b, c = pattern("a", 6000), pattern("b", 6000), pattern("c", 10)
    t = populate(v, {"a.bin": a, "b.bin": b, "c.bin": c})
    ha = read_range(t.back["a.bin"], 0, HDR)
    hb = read_range(t.back["b.bin"], 0, HDR)
    write_range(t.back["a.bin"], 0, hb)
    write_range(t.back["b.bin"], 0, ha)
    check_mount(v, eio=["a.bin", "b.bin"], intact={"c.bin": c})
    check_fsck(v, {"a.bin", "b.bin"})


@pytest.mark.parametrize("keep", [10, 2000], ids=["cut-in-overhead", "cut-in-payload"])
def test_truncated_inside_block(tmpbase, keep):
    c = "aes-256-gcm"
    v = Vault(tmpbase)
    a, b = pattern("a", 3 * BS + 300), pattern("b", 50)
    t = populate(v, {"a.bin": a, "b.bin": b})
    os.truncate(t.back["a.bin"], block_off(c, 1) + keep)
    check_mount(v, eio=["a.bin"], intact={"b.bin": b})
    check_fsck(v, {"a.bin"})


@pytest.mark.parametrize("nblocks", [1, 2])
def test_truncated_at_block_boundary(tmpbase, nblocks):
    """The block that becomes last was sealed with last=0: must fail."""
    c = "aes-256-gcm"
    v = Vault(tmpbase)
    a, b = pattern("a", 3 * BS + 300), pattern("b", 50)
    t = populate(v, {"a.bin": a, "b.bin": b})
    os.truncate(t.back["a.bin"], block_off(c, nblocks))
    check_mount(v, eio=["a.bin"], intact={"b.bin": b})
    check_fsck(v, {"a.bin"})


def test_truncated_to_header_only(tmpbase):
    """Block boundary 0: kinko never leaves a header without blocks (an empty file
    has no header), so a header-only file is a truncation and must not read as
    an empty file."""
    v = Vault(tmpbase)
    a, b = pattern("a", 3 * BS + 300), pattern("b", 50)
    t = populate(v, {"a.bin": a, "b.bin": b})
    os.truncate(t.back["a.bin"], HDR)
    check_mount(v, eio=["a.bin"], intact={"b.bin": b})
    check_fsck(v, {"a.bin"})


# ---------------------------------------------------------------- moving files

def test_file_copied_from_other_vault(tmpbase):
    v = Vault(tmpbase)
    a, b = pattern("a", 5000), pattern("b", 70)
    t = populate(v, {"a.bin": a, "b.bin": b})
    other_base = os.path.join(tmpbase, "other")
    os.mkdir(other_base)
    v2 = Vault(other_base)  # same user, password, compartment name
    evil = pattern("evil", 5000)
    t2 = populate(v2, {"a.bin": evil})
    shutil.copyfile(t2.back["a.bin"], t.back["a.bin"])
    check_mount(v, eio=["a.bin"], intact={"b.bin": b})
    check_fsck(v, {"a.bin"})
    # the other vault is untouched and still reads its own file
    check_mount(v2, intact={"a.bin": evil})


def test_file_copied_from_other_directory(tmpbase):
    v = Vault(tmpbase)
    x1, x2 = pattern("d1", 5000), pattern("d2", 5000)
    t = populate(v, {"d1/f": x1, "d2/f": x2}, dirs=["d1", "d2"])
    shutil.copyfile(t.back["d1/f"], t.back["d2/f"])
    check_mount(v, eio=["d2/f"], intact={"d1/f": x1})
    check_fsck(v, {"d2/f"}, reason_re="bound to another name")


def test_two_files_swapped_by_rename(tmpbase):
    v = Vault(tmpbase)
    a, b, c = pattern("a", 3000), pattern("b", 3000), pattern("c", 3000)
    t = populate(v, {"a.bin": a, "b.bin": b, "c.bin": c})
    ba, bb = t.back["a.bin"], t.back["b.bin"]
    tmp = ba + ".tmp-swap"
    os.rename(ba, tmp)
    os.rename(bb, ba)
    os.rename(tmp, bb)
    check_mount(v, eio=["a.bin", "b.bin"], intact={"c.bin": c})
    check_fsck(v, {"a.bin", "b.bin"}, reason_re="bound to another name")


def test_diriv_replaced_by_other_directorys(tmpbase):
    v = Vault(tmpbase)
    x1, x2 = pattern("d1", 100), pattern("d2", 100)
    t = populate(v, {"d1/f": x1, "d2/f": x2}, dirs=["d1", "d2"])
    src = os.path.join(t.back["d1"], DIRIV)
    dst = os.path.join(t.back["d2"], DIRIV)
    os.chmod(dst, 0o600)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o400)
    mnt = v.mount()
    comp = v.comp(mnt)
    try:
        # names in d2 cannot be read: opening the file by its name fails with
        # EIO, and so must listing d2 (an empty listing would be wrong: d2 has
        # an entry, and e.g. a mirroring tool would delete its copy)
        assert_eio(os.path.join(comp, "d2", "f"))
        assert read_bytes(os.path.join(comp, "d1", "f")) == x1
        try:
            listing = os.listdir(os.path.join(comp, "d2"))
        except OSError as e:
            listing = e
    finally:
        v.cleanup()
    check_fsck(v, {"d2"}, reason_re="another directory")
    if isinstance(listing, OSError):
        assert listing.errno == errno.EIO, listing
    else:
        pytest.fail(f"listing d2 with a foreign directory IV succeeded: {listing}")


def test_two_directories_swapped_by_rename(tmpbase):
    v = Vault(tmpbase)
    x1, x2, c = pattern("d1", 100), pattern("d2", 100), pattern("c", 100)
    t = populate(v, {"d1/f": x1, "d2/f": x2, "c": c}, dirs=["d1", "d2"])
    b1, b2 = t.back["d1"], t.back["d2"]
    os.rename(b1, b1 + ".tmp-swap")
    os.rename(b2, b1)
    os.rename(b1 + ".tmp-swap", b2)
    check_mount(v, eio=["d1/f", "d2/f"], intact={"c": c})
    check_fsck(v, {"d1", "d2"}, reason_re="another directory")


def test_untampered_control(tmpbase):
    """The populate/unmount/remount cycle itself leaves a clean vault."""
    v = Vault(tmpbase)
    files = {"a.bin": pattern("a", 3 * BS + 1), "d/b": pattern("b", 10), "L" * 200: b"long"}
    populate(v, files, dirs=["d"], symlinks={"ln": "/x/y"}, xattrs={"a.bin": {"user.k": b"v"}})
    check_mount(v, intact=files)
    rc, text, jd, p = fsck_report(v)
    assert rc == 0 and not text and not jd, p.stdout


# ---------------------------------------------------------------- names, links, xattrs

def test_longname_sidecar_edited(tmpbase):
    v = Vault(tmpbase)
    long_name = "L" * 200
    data, other = pattern("long", 3000), pattern("o", 10)
    t = populate(v, {long_name: data, "o.bin": other})
    back = t.back[long_name]
    assert os.path.basename(back).startswith("kinko.ln."), back
    side = back + ".name"
    assert os.path.exists(side)
    enc = open(side).read()
    i = len(enc) // 2
    edited = enc[:i] + ("A" if enc[i] != "A" else "B") + enc[i + 1:]
    os.chmod(side, 0o600)
    with open(side, "w") as f:
        f.write(edited)
    mnt = v.mount()
    comp = v.comp(mnt)
    try:
        names = os.listdir(comp)
        # the edited name must not appear under any other (wrong) name
        assert set(names) <= {long_name, "o.bin"}, names
        assert "o.bin" in names
        # content integrity is independent of the sidecar: correct bytes or EIO
        try:
            got = read_bytes(os.path.join(comp, long_name))
        except OSError as e:
            assert e.errno == errno.EIO, e
        else:
            assert got == data
        assert read_bytes(os.path.join(comp, "o.bin")) == other
    finally:
        v.cleanup()
    # the plaintext name is unknowable: the damage is reported at the directory,
    # naming the backing long name
    jd = check_fsck(v, {"/"})
    assert os.path.basename(back) in jd[0]["reason"], jd


def test_failed_rename_to_long_name_leaves_no_sidecar(tmpbase):
    """A rename to a name too long to encrypt in place writes the full
    encrypted name beside the hashed one first; when the backing rename then
    fails, that side file must go too."""
    v = Vault(tmpbase)
    mnt = v.mount()
    t = Tracker(v, v.comp(mnt))
    try:
        t.dir("a")
        dst = t.dir("b")
        # empty: nothing to rebind, so the backing rename itself is what fails
        src = t.file("a/f", b"")
        # an immutable file cannot be renamed (EPERM), not even by root
        if subprocess.run(["chattr", "+i", src], capture_output=True).returncode != 0:
            pytest.skip("the backing file system has no immutable attribute")
        try:
            with pytest.raises(OSError) as e:
                os.rename(os.path.join(t.comp, "a/f"), os.path.join(t.comp, "b", "L" * 200))
            assert e.value.errno == errno.EPERM
            assert sorted(os.listdir(dst)) == ["kinko.diriv"], os.listdir(dst)
        finally:
            subprocess.run(["chattr", "-i", src], check=True)
        assert read_bytes(os.path.join(t.comp, "a/f")) == b""
        assert not os.path.exists(os.path.join(t.comp, "b", "L" * 200))
    finally:
        v.cleanup()
    rc, text, jd, p = fsck_report(v)
    assert rc == 0 and not text and not jd, p.stdout


def test_symlink_target_edited(tmpbase):
    v = Vault(tmpbase)
    t = populate(v, {"f": b"x"}, symlinks={"ln": "/some/where/over/the/rainbow",
                                           "ok": "/intact/target"})
    back = t.back["ln"]
    enc = os.readlink(back)
    i = len(enc) // 2
    edited = enc[:i] + ("A" if enc[i] != "A" else "B") + enc[i + 1:]
    os.unlink(back)
    os.symlink(edited, back)
    mnt = v.mount()
    comp = v.comp(mnt)
    try:
        with pytest.raises(OSError) as ei:
            os.readlink(os.path.join(comp, "ln"))
        assert ei.value.errno == errno.EIO
        assert os.readlink(os.path.join(comp, "ok")) == "/intact/target"
    finally:
        v.cleanup()
    check_fsck(v, {"ln"}, reason_re="symlink")


LONG1, LONG2 = "/".join(["L" * 99] * 35), "/".join(["M" * 99] * 36)


def side_file(t, rel):
    """The side file of a long symlink's target, from its backing reference."""
    ref = os.readlink(t.back[rel])
    assert ref.startswith("kinko.lt:") and len(ref) == 41, ref
    return os.path.join(t.vault.data_dir(), "kinko.lt", ref[9:])


def _check_long_links(v, eio, intact):
    mnt = v.mount()
    comp = v.comp(mnt)
    try:
        for rel in eio:
            with pytest.raises(OSError) as ei:
                os.readlink(os.path.join(comp, rel))
            assert ei.value.errno == errno.EIO, rel
        for rel, target in intact.items():
            assert os.readlink(os.path.join(comp, rel)) == target
    finally:
        v.cleanup()


@pytest.mark.parametrize("how", ["edited", "deleted", "swapped", "truncated", "fifo", "symlink",
                                 "unreadable-dir"])
def test_long_symlink_side_file_tampered(tmpbase, how):
    """The side file of a long target is checked against the hash its
    reference names and then authenticated: an edited, deleted, truncated or
    swapped side file gives EIO (never another target) and fsck names the
    symlink."""
    v = Vault(tmpbase)
    t = populate(v, {"f": b"x"}, symlinks={"a": LONG1, "b": LONG2, "ok": LONG2 + "/ok"})
    sa, sb = side_file(t, "a"), side_file(t, "b")
    os.chmod(sa, 0o600)
    if how == "edited":
        data = bytearray(read_bytes(sa))
        data[len(data) // 2] = ord("A") if data[len(data) // 2] != ord("A") else ord("B")
        write_range(sa, 0, bytes(data))
    elif how == "deleted":
        os.unlink(sa)
    elif how == "truncated":
        os.truncate(sa, 4000)
    elif how == "fifo":  # must not hang the reader
        os.unlink(sa)
        os.mkfifo(sa)
    elif how == "symlink":  # to b's side file: not followed
        os.unlink(sa)
        os.symlink(os.path.basename(sb), sa)
    elif how == "unreadable-dir":  # kinko.lt replaced by a symlink to a copy of it
        lt = os.path.dirname(sa)
        shutil.copytree(lt, lt + ".copy")
        os.rename(lt, lt + ".old")
        os.symlink(os.path.basename(lt) + ".copy", lt)
    else:
        os.chmod(sb, 0o600)
        tmp = sa + ".tmp"
        os.rename(sa, tmp)
        os.rename(sb, sa)
        os.rename(tmp, sb)
    bad = ["a", "b"] if how == "swapped" else ["a", "b", "ok"] if how == "unreadable-dir" else ["a"]
    _check_long_links(v, bad, {} if how == "unreadable-dir" else {"ok": LONG2 + "/ok"})
    check_fsck(v, set(bad), reason_re="long symlink target kinko.lt/[0-9a-f]{32}")


def test_long_symlink_side_file_orphan_and_foreign(tmpbase):
    """fsck notes a side file no symlink refers to (it damages nothing: the
    vault stays clean) and reports anything else in kinko.lt as damage at
    the compartment root; the symlinks still read."""
    v = Vault(tmpbase)
    t = populate(v, symlinks={"a": LONG1})
    sa = side_file(t, "a")
    shutil.copy(sa, os.path.join(os.path.dirname(sa), "0" * 32))
    _check_long_links(v, [], {"a": LONG1})
    rc, text, jd, p = fsck_report(v)
    assert rc == 0 and not text and not jd, p.stdout
    assert re.search(r"^NOTE main/: orphan long symlink target kinko.lt/0{32}: ", p.stdout, re.M), p.stdout
    notes = json.loads(v.fsck(json_out=True).stdout)["notes"]
    assert [(n["compartment"], n["path"]) for n in notes] == [("main", "/")], notes
    assert "kinko.lt/" + "0" * 32 in notes[0]["note"]
    os.unlink(os.path.join(os.path.dirname(sa), "0" * 32))
    open(os.path.join(os.path.dirname(sa), "planted"), "w").close()
    check_fsck(v, {"/"}, reason_re="foreign entry 'kinko.lt/planted'")
    os.unlink(os.path.join(os.path.dirname(sa), "planted"))
    # a copy of the vault that did not keep hard links: two symlinks, one side file
    mnt = v.mount()
    os.link(os.path.join(v.comp(mnt), "a"), os.path.join(v.comp(mnt), "a2"), follow_symlinks=False)
    v.cleanup()
    root = os.path.dirname(t.back["a"])
    (back2,) = [p for p in (os.path.join(root, n) for n in os.listdir(root))
                if os.path.islink(p) and p != t.back["a"]]
    os.unlink(back2)  # the hard link becomes a symlink of its own, same reference
    os.symlink(os.readlink(t.back["a"]), back2)
    jd = check_fsck(v, {"/"}, reason_re="shared by separate symlinks")
    assert len(jd) == 1


def test_long_symlink_in_a_damaged_directory_is_no_orphan(tmpbase):
    """A directory whose IV file is damaged hides its entries from fsck; the
    side file of a long symlink in it is then not reported as an orphan (fsck
    names the directory alone)."""
    v = Vault(tmpbase)
    t = populate(v, dirs=["d"], symlinks={"d/l": LONG1, "ok": LONG2})
    div = os.path.join(t.back["d"], DIRIV)
    os.chmod(div, 0o600)
    flip_bit(div, 30)
    check_fsck(v, {"d"})


def _backing_xattr(path):
    names = [n for n in os.listxattr(path) if n.startswith("user.kk1.")]
    assert len(names) == 1, os.listxattr(path)
    return names[0]


def test_xattr_value_edited(tmpbase):
    v = Vault(tmpbase)
    data = pattern("x", 100)
    t = populate(v, {"f": data, "g": b"g"},
                 xattrs={"f": {"user.tag": b"secret-value"}, "g": {"user.tag": b"other"}})
    back = t.back["f"]
    xn = _backing_xattr(back)
    val = bytearray(os.getxattr(back, xn))
    val[len(val) // 2] ^= 0x10
    os.setxattr(back, xn, bytes(val))
    mnt = v.mount()
    comp = v.comp(mnt)
    try:
        with pytest.raises(OSError) as ei:
            os.getxattr(os.path.join(comp, "f"), "user.tag")
        assert ei.value.errno == errno.EIO
        assert os.getxattr(os.path.join(comp, "g"), "user.tag") == b"other"
        assert read_bytes(os.path.join(comp, "f")) == data  # content is intact
    finally:
        v.cleanup()
    check_fsck(v, {"f"}, reason_re="xattr")


def test_foreign_file_dropped_in(tmpbase):
    v = Vault(tmpbase)
    a, b = pattern("a", 100), pattern("b", 100)
    t = populate(v, {"a": a, "d/b": b}, dirs=["d"])
    with open(os.path.join(t.back[""], "notes.txt"), "w") as f:
        f.write("dropped by someone else\n")
    with open(os.path.join(t.back["d"], "stray file"), "w") as f:
        f.write("x")
    mnt = v.mount()
    comp = v.comp(mnt)
    try:
        assert sorted(os.listdir(comp)) == ["a", "d"]
        assert os.listdir(os.path.join(comp, "d")) == ["b"]
        assert read_bytes(os.path.join(comp, "a")) == a
        assert read_bytes(os.path.join(comp, "d", "b")) == b
    finally:
        v.cleanup()
    jd = check_fsck(v, {"/", "d"})
    reasons = {d["path"]: d["reason"] for d in jd}
    assert "notes.txt" in reasons["/"], reasons
    assert "stray file" in reasons["d"], reasons


# ---------------------------------------------------------------- logging

def test_daemon_logs_integrity_errors(tmpbase):
    c = "aes-256-gcm"
    v = Vault(tmpbase)
    a = pattern("a", 2 * BS)
    t = populate(v, {"a.bin": a})
    flip_bit(t.back["a.bin"], block_off(c, 0) + 50)
    mnt, proc = v.mount(foreground=True)
    try:
        assert_eio(os.path.join(v.comp(mnt), "a.bin"))
    finally:
        umount(mnt)
        v.mounts.remove(mnt)
        try:
            proc.wait(timeout=20)
        except Exception:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert proc.returncode == 0, (proc.returncode, err)
    lines = [l for l in err.splitlines() if "integrity" in l]
    assert lines, f"no integrity error logged; stderr was:\n{err}"
    assert any(os.path.basename(t.back["a.bin"]) in l for l in lines), lines
