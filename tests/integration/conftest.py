import os
import re
import shutil
import tempfile

import pytest

from kinko_util import Vault, umount

# sanitizer reports in any captured output fail the test (sshfs conftest style)
BAD = re.compile(r"==\d+==|runtime error:|LeakSanitizer|AddressSanitizer")


@pytest.fixture
def tmpbase():
    d = tempfile.mkdtemp(prefix="kinko-it-")
    yield d
    for line in open("/proc/self/mountinfo"):
        mp = line.split()[4]
        if mp.startswith(d):
            umount(mp)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def vault(tmpbase):
    v = Vault(tmpbase)
    yield v
    v.cleanup()


@pytest.fixture
def mounted(vault):
    """(vault, path of the compartment directory inside a live mount)"""
    mnt = vault.mount()
    yield vault, vault.comp(mnt)
    vault.cleanup()


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    """Per-test workstation state (policy serial, failure counts), and no
    clock override or default vault leaking in from the environment."""
    d = str(tmp_path / "kinko-state")
    os.makedirs(d, exist_ok=True)
    monkeypatch.setenv("KINKO_STATE_DIR", d)
    monkeypatch.delenv("KINKO_TEST_NOW", raising=False)
    monkeypatch.delenv("KINKO_VAULT", raising=False)
    return d


@pytest.fixture(autouse=True)
def police_output(capfd):
    yield
    out, err = capfd.readouterr()
    if BAD.search(out) or BAD.search(err):
        pytest.fail("sanitizer report in output:\n" + err[-4000:])
