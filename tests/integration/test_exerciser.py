"""fsx-style random-operation exerciser.

A deterministic stream of operations (write, pwrite through long-lived handles,
append, truncate, read, rename, link, unlink, fsync) on a handful of names is
applied to the kinko compartment and to a model (a plain temp directory on the
native filesystem). Every operation's result (bytes read, errno) must agree, and
every CHECK_EVERY operations the full contents, sizes and link counts of all
names are compared. Three times along the way (and at the end) the vault is
unmounted and mounted again, so nothing cached in the daemon hides on-disk damage.

On a mismatch the seed and the operation log are printed. Reproduce with
  KINKO_FSX_SEED=<seed> KINKO_FSX_OPS=<n> python3 -m pytest -q test_exerciser.py
"""
import os
import random
import tempfile

import pytest
from kinko_util import fsck_clean

BS = 4096
SEED = int(os.environ.get("KINKO_FSX_SEED", "20240917"))
NOPS = int(os.environ.get("KINKO_FSX_OPS", "3000"))
CHECK_EVERY = 100
MAXOFF = 200 * 1024
JP = "暗号化された金庫の中の長い日本語のファイル名" * 3  # 66 chars: a long backing name
NAMES = ["f0", "f1", "f2", "sub/f3", "sub/f4", "sub/" + JP]
NSLOTS = 3


class Side:
    """One tree (kinko or model) with its long-lived handles."""

    def __init__(self, root):
        self.root = root
        self.slots = [None] * NSLOTS

    def p(self, name):
        return os.path.join(self.root, name)

    def close_all(self):
        for i, fd in enumerate(self.slots):
            if fd is not None:
                os.close(fd)
                self.slots[i] = None


def gen_op(rng):
    """One random operation (a tuple); the same stream for both sides."""
    kind = rng.choices(
        ["write", "append", "truncate", "read", "rename", "link", "unlink", "fsync",
         "hopen", "hwrite", "hread", "htrunc", "hclose"],
        weights=[22, 6, 10, 14, 7, 4, 4, 1, 5, 12, 6, 3, 4])[0]
    name = rng.choice(NAMES)

    def offset():
        return rng.choice([rng.randrange(0, MAXOFF), rng.randrange(0, MAXOFF // BS) * BS,
                           rng.randrange(1, MAXOFF // BS) * BS - 1,
                           rng.randrange(1, MAXOFF // BS) * BS + 1, rng.randrange(0, 3 * BS)])

    def length():
        return rng.choice([1, 2, rng.randrange(1, 100), BS, BS - 1, BS + 1,
                           rng.randrange(1, 4 * BS), rng.randrange(1, 20 * BS)])

    if kind in ("write", "hwrite"):
        n = length()
        return (kind, name if kind == "write" else rng.randrange(NSLOTS), offset(), n,
                rng.getrandbits(32))
    if kind == "append":
        return (kind, name, length(), rng.getrandbits(32))
    if kind in ("truncate", "htrunc"):
        size = rng.choice([0, offset(), offset(), rng.randrange(0, 3 * BS)])
        return (kind, name if kind == "truncate" else rng.randrange(NSLOTS), size)
    if kind in ("read", "hread"):
        return (kind, name if kind == "read" else rng.randrange(NSLOTS), offset(), length())
    if kind in ("rename", "link"):
        return (kind, name, rng.choice(NAMES))
    if kind == "hopen":
        return (kind, rng.randrange(NSLOTS), name)
    if kind == "hclose":
        return (kind, rng.randrange(NSLOTS))
    return (kind, name)


def data_for(n, seed):
    return random.Random(seed).randbytes(n)


def apply(side, op):
    """Apply op to one side; returns ('ok', value) or ('err', errno)."""
    kind = op[0]
    try:
        if kind == "write":
            _, name, off, n, s = op
            fd = os.open(side.p(name), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                w = os.pwrite(fd, data_for(n, s), off)
            finally:
                os.close(fd)
            return ("ok", w)
        if kind == "append":
            _, name, n, s = op
            fd = os.open(side.p(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                w = os.write(fd, data_for(n, s))
            finally:
                os.close(fd)
            return ("ok", w)
        if kind == "truncate":
            os.truncate(side.p(op[1]), op[2])
            return ("ok", None)
        if kind == "read":
            _, name, off, n = op
            fd = os.open(side.p(name), os.O_RDONLY)
            try:
                return ("ok", os.pread(fd, n, off))
            finally:
                os.close(fd)
        if kind == "rename":
            os.rename(side.p(op[1]), side.p(op[2]))
            return ("ok", None)
        if kind == "link":
            os.link(side.p(op[1]), side.p(op[2]))
            return ("ok", None)
        if kind == "unlink":
            os.unlink(side.p(op[1]))
            return ("ok", None)
        if kind == "fsync":
            fd = os.open(side.p(op[1]), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return ("ok", None)
        if kind == "hopen":
            _, slot, name = op
            if side.slots[slot] is not None:
                os.close(side.slots[slot])
                side.slots[slot] = None
            side.slots[slot] = os.open(side.p(name), os.O_RDWR)
            return ("ok", None)
        if kind == "hclose":
            if side.slots[op[1]] is not None:
                os.close(side.slots[op[1]])
                side.slots[op[1]] = None
            return ("ok", None)
        # handle operations: an unopened slot is a no-op on both sides
        fd = side.slots[op[1]]
        if fd is None:
            return ("ok", "no handle")
        if kind == "hwrite":
            _, _, off, n, s = op
            return ("ok", os.pwrite(fd, data_for(n, s), off))
        if kind == "hread":
            _, _, off, n = op
            return ("ok", os.pread(fd, n, off), os.fstat(fd).st_size)
        if kind == "htrunc":
            os.ftruncate(fd, op[2])
            return ("ok", os.fstat(fd).st_size)
    except OSError as e:
        return ("err", e.errno)
    raise AssertionError(f"unknown op {op}")


def state(side):
    out = {}
    for name in NAMES:
        p = side.p(name)
        try:
            st = os.stat(p)
            with open(p, "rb") as f:
                out[name] = (st.st_size, st.st_nlink, f.read())
        except FileNotFoundError:
            out[name] = None
        except OSError as e:
            out[name] = ("error", e.errno)
    return out


def fmt_op(op):
    return " ".join(str(x) for x in op)


def diff_state(k, m):
    lines = []
    for name in NAMES:
        a, b = k[name], m[name]
        if a == b:
            continue
        if a is None or b is None or len(a) != 3 or len(b) != 3:
            lines.append(f"{name}: kinko {a!r:.80} model {b!r:.80}")
            continue
        if a[:2] != b[:2]:
            lines.append(f"{name}: kinko size/nlink {a[:2]} model {b[:2]}")
        first = next((i for i, (x, y) in enumerate(zip(a[2], b[2])) if x != y), None)
        if first is not None:
            lines.append(f"{name}: contents differ first at offset {first}")
    return "; ".join(lines)


def run_exerciser(vault, comp, model_root, seed, nops, remount_at, mount_extra=()):
    """remount_at: op indices before which the vault is unmounted and mounted again."""
    rng = random.Random(seed)
    os.mkdir(os.path.join(comp, "sub"))
    os.mkdir(os.path.join(model_root, "sub"))
    kin, model = Side(comp), Side(model_root)
    log = []

    def fail(msg):
        kin.close_all()  # open handles would make the unmount in the teardown fail
        model.close_all()
        print(f"\n=== kinko exerciser failure: seed={seed} ops={len(log)} ===")
        for i, line in enumerate(log):
            print(f"{i:5d} {line}")
        tail = "\n".join(f"{i:5d} {line}" for i, line in list(enumerate(log))[-25:])
        pytest.fail(f"seed {seed}, after op {len(log) - 1}: {msg}\n"
                    f"(reproduce: KINKO_FSX_SEED={seed} KINKO_FSX_OPS={nops})\nlast ops:\n{tail}",
                    pytrace=False)

    def compare(when):
        k, m = state(kin), state(model)
        if k != m:
            fail(f"state differs {when}: {diff_state(k, m)}")

    for i in range(nops):
        if i in remount_at:
            kin.close_all()
            model.close_all()
            log.append("-- remount (all handles closed)")
            compare("before remount")
            vault.cleanup()
            kin.root = vault.comp(vault.mount(extra=mount_extra))
            compare("after remount")
        op = gen_op(rng)
        log.append(fmt_op(op) if op[0] not in ("write", "hwrite", "append") else
                   fmt_op(op[:-1]) + f" data_seed={op[-1]}")
        rk, rm = apply(kin, op), apply(model, op)
        if rk != rm:
            fail(f"op result differs: kinko {rk!r:.200} model {rm!r:.200}")
        if i % CHECK_EVERY == CHECK_EVERY - 1:
            compare(f"at op {i}")
    kin.close_all()
    model.close_all()
    compare("at the end")
    vault.cleanup()
    kin.root = vault.comp(vault.mount(extra=mount_extra))
    compare("after the final remount")
    return log


def test_exerciser(mounted, tmpbase):
    vault, comp = mounted
    model = tempfile.mkdtemp(prefix="model-", dir=tmpbase)
    remounts = {NOPS // 4, NOPS // 2, 3 * NOPS // 4}
    log = run_exerciser(vault, comp, model, SEED, NOPS, remounts)
    assert len(log) == NOPS + len(remounts)
    fsck_clean(vault)


def test_exerciser_writeback_cache(vault, tmpbase):
    """The same exerciser (another seed, fewer ops) with the kernel's writeback cache."""
    mnt = vault.mount(extra=["-o", "writeback_cache"])
    model = tempfile.mkdtemp(prefix="model-", dir=tmpbase)
    n = max(NOPS // 3, 1)
    log = run_exerciser(vault, vault.comp(mnt), model, SEED + 1, n, {n // 2},
                        mount_extra=["-o", "writeback_cache"])
    assert len(log) == n + 1
    fsck_clean(vault)
