"""Everyday tools on a kinko mount: cp -a, tar, rsync, dd, mv, shutil.copytree,
and concurrent writers. Every result is checked against the source bytes (diff -r
plus a metadata walk), then fsck must report a clean vault."""
import os
import random
import shutil
import subprocess
import sys
import tempfile
from kinko_util import fsck_clean, rbytes, read_all, remount

import pytest

BS = 4096


# ---------------------------------------------------------------- helpers

def write_file(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def run(*cmd, **kw):
    p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def pipe(cmd1, cmd2):
    """cmd1 | cmd2; both must succeed."""
    p1 = subprocess.Popen(cmd1, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p2 = subprocess.run(cmd2, stdin=p1.stdout, capture_output=True, text=True)
    p1.stdout.close()
    err1 = p1.stderr.read().decode(errors="replace")
    p1.stderr.close()
    assert p1.wait() == 0, f"{' '.join(cmd1)} -> {p1.returncode}\n{err1[-3000:]}"
    assert p2.returncode == 0, f"{' '.join(cmd2)} -> {p2.returncode}\n{p2.stderr[-3000:]}"


def diff_r(a, b):
    p = subprocess.run(["diff", "-r", "--no-dereference", a, b], capture_output=True, text=True)
    assert p.returncode == 0, f"diff -r {a} {b}:\n{p.stdout[-3000:]}{p.stderr[-1000:]}"


def meta(root, mtime=True):
    """Per entry: type, mode, size, symlink target, (mtime), content digest."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            e = [st.st_mode, st.st_uid, st.st_gid]
            if os.path.islink(p):
                e.append(os.readlink(p))
            elif os.path.isfile(p):
                e += [st.st_size, hash(read_all(p))]
            if mtime and not os.path.isdir(p) and not os.path.islink(p):
                e.append(st.st_mtime_ns)
            out[rel] = tuple(e)
    return out


def assert_same_meta(a, b, mtime=True):
    ma, mb = meta(a, mtime), meta(b, mtime)
    assert ma.keys() == mb.keys(), f"entries differ: {sorted(ma.keys() ^ mb.keys())[:10]}"
    bad = {k: (ma[k], mb[k]) for k in ma if ma[k] != mb[k]}
    assert not bad, f"metadata differs: {dict(list(bad.items())[:5])}"


JP = "機密文書の保管庫"


def make_tree(root):
    """Varied sizes, nested dirs, symlinks, modes, a Japanese name, a hard link,
    an empty dir; fixed mtimes so tools that preserve them can be checked."""
    os.makedirs(os.path.join(root, "a", "b", "c"))
    os.makedirs(os.path.join(root, "empty-dir"))
    os.makedirs(os.path.join(root, JP))
    sizes = [0, 1, 100, 4095, 4096, 4097, 3 * BS, 65537, 300000, (1 << 20) + 3]
    for i, sz in enumerate(sizes):
        d = ["", "a", os.path.join("a", "b"), os.path.join("a", "b", "c"), JP][i % 5]
        write_file(os.path.join(root, d, f"file-{sz}"), rbytes(sz, sz),
                   [0o644, 0o600, 0o755, 0o444, 0o640][i % 5])
    write_file(os.path.join(root, JP, JP + ".txt"), "日本語の内容\n".encode() * 500)
    os.symlink("file-0", os.path.join(root, "link-rel"))
    os.symlink("../../file-4097", os.path.join(root, "a", "b", "link-up"))
    os.symlink("/nonexistent/target", os.path.join(root, "link-dangling"))
    os.symlink(JP, os.path.join(root, "link-dir"))
    os.link(os.path.join(root, "file-0"), os.path.join(root, "hardlink-0"))
    os.chmod(os.path.join(root, "a", "b"), 0o750)
    os.chmod(os.path.join(root, "empty-dir"), 0o700)
    t = 1_500_000_000_000_000_000
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), ns=(t, t), follow_symlinks=False)
            t += 1_000_000_007


@pytest.fixture
def env(mounted, tmpbase):
    """(vault, compartment dir, native source tree, native scratch dir)"""
    vault, comp = mounted
    src = os.path.join(tmpbase, "src")
    make_tree(src)
    scratch = tempfile.mkdtemp(prefix="out-", dir=tmpbase)
    return vault, comp, src, scratch


# ---------------------------------------------------------------- tools

def test_cp_a(env):
    vault, comp, src, out = env
    run("cp", "-a", src, os.path.join(comp, "copy"))
    diff_r(src, os.path.join(comp, "copy"))
    assert_same_meta(src, os.path.join(comp, "copy"))
    c = os.path.join(comp, "copy")
    assert os.stat(os.path.join(c, "file-0")).st_ino == os.stat(os.path.join(c, "hardlink-0")).st_ino
    comp = remount(vault)
    run("cp", "-a", os.path.join(comp, "copy"), os.path.join(out, "back"))
    diff_r(src, os.path.join(out, "back"))
    assert_same_meta(src, os.path.join(out, "back"))
    fsck_clean(vault)


def test_tar_round_trip(env):
    vault, comp, src, out = env
    # an archive written into the mount, extracted out of it (posix format: ns mtimes)
    run("tar", "--format=posix", "-c", "-f", os.path.join(comp, "t.tar"), "-C", src, ".")
    run("tar", "-x", "-f", os.path.join(comp, "t.tar"), "-C", out)
    diff_r(src, out)
    assert_same_meta(src, out)
    # a tree extracted into the mount, archived out of it through a pipe
    os.mkdir(os.path.join(comp, "x"))
    pipe(["tar", "--format=posix", "-c", "-C", src, "."], ["tar", "-x", "-C", os.path.join(comp, "x")])
    diff_r(src, os.path.join(comp, "x"))
    comp = remount(vault)
    out2 = os.path.join(out, "..", "out2")
    os.mkdir(out2)
    pipe(["tar", "--format=posix", "-c", "-C", os.path.join(comp, "x"), "."], ["tar", "-x", "-C", out2])
    diff_r(src, out2)
    assert_same_meta(src, out2)
    # tar's own verification of the archive in the mount against the tree
    run("tar", "-d", "-f", os.path.join(comp, "t.tar"), "-C", src)
    fsck_clean(vault)


def test_rsync(env):
    vault, comp, src, out = env
    dst = os.path.join(comp, "r")
    run("rsync", "-aH", src + "/", dst + "/")
    diff_r(src, dst)
    assert_same_meta(src, dst)
    # change the source; a second rsync replaces files by rename over the old ones
    write_file(os.path.join(src, "a", "file-1"), rbytes(5000, 99), 0o600)
    with open(os.path.join(src, "a", "b", "file-65537"), "r+b") as f:
        f.seek(70000 - 7000)
        f.write(b"changed in the middle")
    os.unlink(os.path.join(src, "a", "b", "file-100"))
    run("rsync", "-aH", "--delete", src + "/", dst + "/")
    diff_r(src, dst)
    # --inplace rewrites inside the existing files
    with open(os.path.join(src, "a", "b", "c", "file-4095"), "r+b") as f:
        f.seek(4090)
        f.write(b"inplace!")
    run("rsync", "-aH", "--inplace", "--no-whole-file", src + "/", dst + "/")
    diff_r(src, dst)
    comp = remount(vault)
    run("rsync", "-aH", os.path.join(comp, "r") + "/", os.path.join(out, "back") + "/")
    diff_r(src, os.path.join(out, "back"))
    assert_same_meta(src, os.path.join(out, "back"))
    fsck_clean(vault)


def test_dd(env):
    vault, comp, src, out = env
    data = rbytes(5 * (1 << 20) + 123, 5)
    nsrc = os.path.join(out, "dd-src")
    write_file(nsrc, data)
    for bs in ("1M", "4k"):
        dst = os.path.join(comp, f"dd-{bs}")
        run("dd", f"if={nsrc}", f"of={dst}", f"bs={bs}", "status=none")
        assert os.stat(dst).st_size == len(data)
        assert read_all(dst) == data, f"dd bs={bs}"
        # read back with dd in the other block size
        back = os.path.join(out, f"back-{bs}")
        run("dd", f"if={dst}", f"of={back}", f"bs={'4k' if bs == '1M' else '1M'}", "status=none")
        run("cmp", nsrc, back)
    # patch the middle with conv=notrunc, same on a native copy
    chunk = os.path.join(out, "chunk")
    write_file(chunk, rbytes(10000, 6))
    model = os.path.join(out, "model")
    shutil.copyfile(nsrc, model)
    for target in (os.path.join(comp, "dd-4k"), model):
        run("dd", f"if={chunk}", f"of={target}", "bs=4k", "seek=3", "conv=notrunc", "status=none")
        run("dd", f"if={chunk}", f"of={target}", "bs=1", "seek=1048570", "count=11",
            "conv=notrunc", "status=none")
    # and skip/count reads at unaligned offsets
    for args in (["bs=1000", "skip=4", "count=9"], ["bs=4097", "skip=1", "count=3"]):
        a = subprocess.run(["dd", f"if={os.path.join(comp, 'dd-4k')}", *args, "status=none"],
                           capture_output=True, check=True).stdout
        b = subprocess.run(["dd", f"if={model}", *args, "status=none"],
                           capture_output=True, check=True).stdout
        assert a == b, f"dd {args}"
    comp = remount(vault)
    run("cmp", os.path.join(comp, "dd-4k"), model)
    run("cmp", os.path.join(comp, "dd-1M"), nsrc)
    fsck_clean(vault)


def test_mv_across_directories(env):
    vault, comp, src, out = env
    run("cp", "-a", src, os.path.join(comp, "one"))
    os.makedirs(os.path.join(comp, "two", "deeper"))
    # within the mount: rename(2)
    run("mv", os.path.join(comp, "one", "a"), os.path.join(comp, "two", "deeper", "a"))
    run("mv", os.path.join(comp, "one", JP, JP + ".txt"), os.path.join(comp, "two"))
    run("mv", os.path.join(comp, "one", "file-4097"), os.path.join(comp, "two", "renamed"))
    diff_r(os.path.join(src, "a"), os.path.join(comp, "two", "deeper", "a"))
    assert read_all(os.path.join(comp, "two", JP + ".txt")) == \
        read_all(os.path.join(src, JP, JP + ".txt"))
    assert read_all(os.path.join(comp, "two", "renamed")) == rbytes(4097, 4097)
    # into the mount from another filesystem and back out: copy + unlink
    shutil.copytree(src, os.path.join(out, "m"), symlinks=True)
    run("mv", os.path.join(out, "m"), os.path.join(comp, "from-outside"))
    assert not os.path.exists(os.path.join(out, "m"))
    diff_r(src, os.path.join(comp, "from-outside"))
    comp = remount(vault)
    run("mv", os.path.join(comp, "from-outside"), os.path.join(out, "m2"))
    assert not os.path.exists(os.path.join(comp, "from-outside"))
    diff_r(src, os.path.join(out, "m2"))
    assert read_all(os.path.join(comp, "two", "renamed")) == rbytes(4097, 4097)
    diff_r(os.path.join(src, "a"), os.path.join(comp, "two", "deeper", "a"))
    fsck_clean(vault)


def test_shutil_copytree(env):
    vault, comp, src, out = env
    shutil.copytree(src, os.path.join(comp, "ct"), symlinks=True)
    diff_r(src, os.path.join(comp, "ct"))
    assert_same_meta(src, os.path.join(comp, "ct"), mtime=False)
    comp = remount(vault)
    shutil.copytree(os.path.join(comp, "ct"), os.path.join(out, "ct"), symlinks=True)
    diff_r(src, os.path.join(out, "ct"))
    shutil.rmtree(os.path.join(comp, "ct"))
    assert os.listdir(comp) == []
    assert os.listdir(vault.data_dir()) == ["kinko.diriv"]
    fsck_clean(vault)


# ---------------------------------------------------------------- concurrency

REGION_WRITER = """
import os, random, sys
path, idx, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(idx)
data = random.Random(1000 + idx).randbytes(end - start)
fd = os.open(path, os.O_RDWR)
# the region in random-sized chunks, in random order, so neighbours interleave
pieces, off = [], start
while off < end:
    n = min(end - off, rng.choice([1, 17, 1000, 4096, 5000, 9000]))
    pieces.append((off, n))
    off += n
rng.shuffle(pieces)
for off, n in pieces:
    view = memoryview(data)[off - start:off - start + n]
    while view:
        w = os.pwrite(fd, view, off)
        view, off = view[w:], off + w
os.close(fd)
"""


def test_concurrent_region_writers(env):
    """4 processes write disjoint, unaligned regions of one file at once (the
    regions share blocks, so each write is a read-modify-write of a neighbour's block)."""
    vault, comp, src, out = env
    p = os.path.join(comp, "shared")
    write_file(p, b"")
    bounds = [0, 300001, 555555, 600003, 1000000]
    procs = [subprocess.Popen([sys.executable, "-c", REGION_WRITER, p, str(i), str(bounds[i]),
                               str(bounds[i + 1])], stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    for pr in procs:
        _, err = pr.communicate(timeout=120)
        assert pr.returncode == 0, err
    want = b"".join(random.Random(1000 + i).randbytes(bounds[i + 1] - bounds[i]) for i in range(4))
    got = read_all(p)
    assert len(got) == len(want)
    bad = [i for i in range(0, len(want), BS) if got[i:i + BS] != want[i:i + BS]]
    assert not bad, f"{len(bad)} blocks differ, first at offset {bad[0] if bad else 0}"
    comp = remount(vault)
    assert read_all(os.path.join(comp, "shared")) == want
    fsck_clean(vault)


MANY_FILES_WRITER = """
import os, random, sys
root, idx = sys.argv[1], int(sys.argv[2])
rng = random.Random(idx)
mine = os.path.join(root, "w%d" % idx)
os.makedirs(mine, exist_ok=True)
for j in range(60):
    size = rng.choice([0, 1, 4095, 4096, 4097, 10000, 70000])
    data = random.Random(idx * 1000 + j).randbytes(size)
    d = mine if j % 3 else os.path.join(root, "common")
    p = os.path.join(d, "f-%d-%d" % (idx, j))
    with open(p + ".tmp", "wb") as f:
        f.write(data)
    os.rename(p + ".tmp", p)   # atomic replace, as editors do
    if j % 7 == 0:
        os.unlink(p)
"""


def test_concurrent_many_files(env):
    """8 processes each create, rename and delete many files (some in a shared directory)."""
    vault, comp, src, out = env
    os.mkdir(os.path.join(comp, "common"))
    procs = [subprocess.Popen([sys.executable, "-c", MANY_FILES_WRITER, comp, str(i)],
                              stderr=subprocess.PIPE, text=True) for i in range(8)]
    for pr in procs:
        _, err = pr.communicate(timeout=120)
        assert pr.returncode == 0, err

    def expected():
        want = {}
        for idx in range(8):
            rng = random.Random(idx)
            for j in range(60):
                size = rng.choice([0, 1, 4095, 4096, 4097, 10000, 70000])
                if j % 7 == 0:
                    continue
                d = f"w{idx}" if j % 3 else "common"
                want[os.path.join(d, f"f-{idx}-{j}")] = random.Random(idx * 1000 + j).randbytes(size)
        return want

    def check(root):
        want = expected()
        got = {}
        for dirpath, _, filenames in os.walk(root):
            for n in filenames:
                p = os.path.join(dirpath, n)
                got[os.path.relpath(p, root)] = read_all(p)
        assert got.keys() == want.keys(), f"names differ: {sorted(got.keys() ^ want.keys())[:10]}"
        bad = [k for k in want if got[k] != want[k]]
        assert not bad, f"contents differ: {bad[:10]}"

    check(comp)
    comp = remount(vault)
    check(comp)
    fsck_clean(vault)
