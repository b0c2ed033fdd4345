import os

from kinko_util import kinko


def test_init_mount_write_read(mounted):
    vault, comp = mounted
    p = os.path.join(comp, "hello.txt")
    with open(p, "w") as f:
        f.write("hello")
    with open(p) as f:
        assert f.read() == "hello"
    assert vault.fsck().returncode == 0


def test_version():
    p = kinko("--version")
    assert p.returncode == 0 and p.stdout.startswith("kinko ")
