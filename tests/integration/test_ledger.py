"""The media ledger (台帳): kinko media register|move|handover|dispose|list|
export-usbguard and kinko ledger verify|print. Records are files under
VAULT/ledger/ (one per entry, hash-chained, signed); verify names each bad one."""
import csv
import io
import json
import os
import shutil
import subprocess

import pytest

from kinko_util import KINKO, Vault, as_admin, enrol, kinko, ok, refused

STAFF_PW = "St4ff-Member!pw"
BACKUP_PW = "B4ckup-Operator!pw"
AUDIT_PW = "Aud1t-Reviewer!pw"


@pytest.fixture
def v(tmpbase):
    v = Vault(tmpbase)
    yield v
    v.cleanup()


def media(v, *args, as_user=None, pwfile=None):
    return as_admin(v, "media", *args, as_user=as_user, pwfile=pwfile)


def register(v, mid="USB-001", kind="usb", serial="0401ABCDEF", holder="山田"):
    return ok(media(v, "register", mid, "--kind", kind, "--serial", serial, "--label",
                    f"経理 {mid}", "--location", "金庫A", "--holder", holder))


def listing(v, **kw):
    return {m["id"]: m for m in json.loads(ok(media(v, "list", "--json", **kw)).stdout)}


def records(v):
    d = os.path.join(v.path, "ledger")
    return sorted(f for f in os.listdir(d) if f.endswith(".klr"))


def verify(v, *extra):
    return as_admin(v, "ledger", "verify", *extra)


def test_register_move_handover_dispose_list(v, tmpbase):
    register(v)
    register(v, "HDD-7", "hdd", "WD-123")
    ok(media(v, "move", "USB-001", "--location", "本社 3F 金庫B"))
    ok(media(v, "handover", "USB-001", "--to", "佐藤"))
    cert = os.path.join(tmpbase, "certificate.pdf")
    with open(cert, "wb") as f:
        f.write(b"%PDF disposal certificate of HDD-7\n")
    ok(media(v, "dispose", "HDD-7", "--method", "crush", "--certificate", cert))
    m = listing(v)
    assert m["USB-001"]["location"] == "本社 3F 金庫B"
    assert m["USB-001"]["holder"] == "佐藤"
    assert m["USB-001"]["state"] == "active" and m["USB-001"]["kind"] == "usb"
    assert m["HDD-7"]["state"] == "disposed" and m["HDD-7"]["dispose_method"] == "crush"
    import hashlib
    assert m["HDD-7"]["certificate_sha256"] == hashlib.sha256(open(cert, "rb").read()).hexdigest()
    assert records(v) == [f"{i:012d}.klr" for i in range(1, 6)]
    p = ok(verify(v))
    assert "5 record(s) verified, 0 problem(s)" in p.stdout
    # a disposed medium cannot move any more; an id is never registered twice
    refused(media(v, "move", "HDD-7", "--location", "x"), 1, "disposed")
    refused(media(v, "register", "HDD-7", "--kind", "hdd", "--serial", "s", "--label", "l",
                  "--location", "x", "--holder", "y"), 10, "already in the ledger")
    refused(media(v, "handover", "NOPE", "--to", "x"), 1, "not registered")
    assert len(records(v)) == 5


def test_handover_record_says_from_to_by_when(v):
    register(v, holder="山田")
    ok(media(v, "handover", "USB-001", "--to", "佐藤"))
    recs = json.loads(ok(as_admin(v, "ledger", "print", "--json")).stdout)
    h = recs[-1]
    assert h["body"] == {"event": "handover", "medium": "USB-001", "from": "山田", "to": "佐藤",
                         "by": "alice"}
    assert h["signer"] == "alice" and h["time"].endswith("Z") and h["seq"] == 2


def test_print_csv_for_the_paper_ledger(v):
    register(v)
    ok(media(v, "move", "USB-001", "--location", "倉庫"))
    out = ok(as_admin(v, "ledger", "print", "--csv")).stdout
    rows = list(csv.reader(io.StringIO(out.lstrip("\ufeff"))))
    assert rows[0] == ["番号", "日時(UTC)", "記録者", "事象", "媒体ID", "内容"]
    assert [r[3] for r in rows[1:]] == ["register", "move"]
    assert "location=倉庫" in rows[2][5]
    lst = ok(media(v, "list", "--csv")).stdout
    rows = list(csv.reader(io.StringIO(lst.lstrip("\ufeff"))))
    assert rows[0][:6] == ["媒体ID", "種別", "製造番号", "ラベル", "保管場所", "保管者"]
    assert rows[1][0] == "USB-001" and rows[1][4] == "倉庫"
    table = ok(as_admin(v, "ledger", "print")).stdout
    assert "媒体管理台帳" in table and "USB-001" in table


def three_records(v):
    register(v)
    ok(media(v, "move", "USB-001", "--location", "B"))
    ok(media(v, "handover", "USB-001", "--to", "佐藤"))
    ok(verify(v))
    return os.path.join(v.path, "ledger")


def test_edited_record_is_named(v):
    d = three_records(v)
    p = os.path.join(d, "000000000002.klr")
    data = bytearray(open(p, "rb").read())
    i = data.index(b'"B"')
    data[i + 1] = ord("C")  # location B -> C, same length
    open(p, "wb").write(bytes(data))
    r = verify(v)
    assert r.returncode == 9, r.stdout + r.stderr
    assert "ledger/000000000002.klr: record 2 edited" in r.stdout
    assert "000000000001.klr" not in r.stdout
    j = json.loads(verify(v, "--json").stdout)
    assert j["problems"] >= 1 and {i["record"] for i in j["issues"]} >= {2}
    # the edited record no longer counts: the medium is still at A
    assert listing(v)["USB-001"]["location"] == "金庫A"


def test_deleted_record_is_named(v):
    d = three_records(v)
    os.unlink(os.path.join(d, "000000000002.klr"))
    r = verify(v)
    assert r.returncode == 9
    assert "record 2 missing (deleted)" in r.stdout, r.stdout


def test_reordered_records_are_named(v):
    d = three_records(v)
    a, b = os.path.join(d, "000000000002.klr"), os.path.join(d, "000000000003.klr")
    os.rename(a, a + ".x")
    os.rename(b, a)
    os.rename(a + ".x", b)
    r = verify(v)
    assert r.returncode == 9
    assert "record 2 holds number 3 (renamed or reordered)" in r.stdout, r.stdout
    assert "record 3 holds number 2 (renamed or reordered)" in r.stdout


def test_replaced_record_breaks_the_chain(v):
    """A record rewritten and re-signed by a real key still breaks the chain link."""
    d = three_records(v)
    r2 = open(os.path.join(d, "000000000002.klr"), "rb").read()
    # record 3 moved in place of record 2's successor slot is not enough: put
    # a copy of record 1 (validly signed) where record 2 was
    r1 = open(os.path.join(d, "000000000001.klr"), "rb").read()
    open(os.path.join(d, "000000000002.klr"), "wb").write(r1)
    r = verify(v)
    assert r.returncode == 9
    out = r.stdout
    assert "record 2 holds number 1" in out
    assert "record 3 does not chain to record 2" in out or "record 2 does not chain" in out
    open(os.path.join(d, "000000000002.klr"), "wb").write(r2)
    ok(verify(v))


def test_stray_file_and_malformed_record_named(v):
    d = three_records(v)
    open(os.path.join(d, "notes.txt"), "w").write("x")
    open(os.path.join(d, "000000000004.klr"), "wb").write(b"kLR\x01" + b"\xff" * 60)
    r = verify(v)
    assert r.returncode == 9
    assert "ledger/notes.txt: not a ledger record" in r.stdout
    assert "record 4 malformed" in r.stdout


def test_roles(v, tmpbase):
    bob = enrol(v, "bob", "staff", STAFF_PW)
    bk = enrol(v, "bk", "backup", BACKUP_PW)
    aud = enrol(v, "audrey", "auditor", AUDIT_PW)
    register(v)
    # staff: nothing; backup and auditor: read only
    refused(media(v, "register", "X", "--kind", "usb", "--serial", "s", "--label", "l",
                  "--location", "x", "--holder", "y", as_user="bob", pwfile=bob), 7, "may not")
    refused(media(v, "list", as_user="bob", pwfile=bob), 7)
    refused(as_admin(v, "ledger", "verify", as_user="bob", pwfile=bob), 7)
    for u, pw in (("bk", bk), ("audrey", aud)):
        assert "USB-001" in listing(v, as_user=u, pwfile=pw)
        ok(as_admin(v, "ledger", "verify", as_user=u, pwfile=pw))
        refused(media(v, "move", "USB-001", "--location", "z", as_user=u, pwfile=pw), 7)
    assert len(records(v)) == 1


def test_every_ledger_command_is_audited(v):
    register(v)
    ok(media(v, "list"))
    ok(verify(v))
    out = ok(as_admin(v, "audit", "show", "--json")).stdout
    ents = [json.loads(l) for l in out.splitlines() if l.strip()]
    acts = [(e["action"], e.get("command", "")) for e in ents]
    assert any(a == "media" and "media register USB-001" in c for a, c in acts), acts
    assert any(a == "media" and "media list" in c for a, c in acts)
    assert any(a == "ledger" and "ledger verify" in c for a, c in acts)


def test_export_usbguard_and_udev(v, tmpbase):
    register(v, "USB-001", "usb", "0401ABC")
    register(v, "USB-002", "usb", "DEAD-2")
    register(v, "SD-1", "sd", "SDSERIAL")
    cert = os.path.join(tmpbase, "cert.txt")
    open(cert, "w").write("wiped\n")
    ok(media(v, "dispose", "USB-002", "--method", "wipe", "--certificate", cert))
    rules = os.path.join(tmpbase, "rules.conf")
    udev = os.path.join(tmpbase, "70-kinko.rules")
    ok(media(v, "export-usbguard", "--rules", rules, "--udev", udev))
    r = open(rules).read()
    assert '# kinko medium USB-001\nallow serial "0401ABC" with-interface one-of { 08:*:* }\n' in r
    assert "DEAD-2" not in r and "SDSERIAL" not in r
    assert r.strip().splitlines()[-1].startswith("block with-interface one-of { 08:*:* }")
    u = open(udev).read()
    assert '# kinko medium USB-001\nATTRS{serial}=="0401ABC", GOTO="kinko_media_end"\n' in u
    assert "DEAD-2" not in u and 'ATTR{authorized}="0"' in u
    # stdout: the USBGuard rules
    assert 'serial "0401ABC"' in ok(media(v, "export-usbguard")).stdout
    parser = shutil.which("usbguard-rule-parser")
    if parser:  # the real USBGuard grammar, where it is installed
        p = subprocess.run([parser, "-f", rules], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    # a serial that cannot be quoted in a rule is left out, with a note
    register(v, "USB-Q", "usb", 'evil" allow')
    r = ok(media(v, "export-usbguard")).stdout
    assert "evil" not in r and "# medium USB-Q skipped" in r


def test_concurrent_writers_never_share_a_number(v):
    """Two writers at once (as two workstations on a network share would)."""
    register(v)
    procs = []
    for i in range(2):
        script = " ; ".join(
            f"{KINKO} media move USB-001 --location L{i}-{k} --vault {v.path} --as alice "
            f"--password-file {v.pwfile} >/dev/null" for k in range(4))
        procs.append(subprocess.Popen(["sh", "-c", script]))
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert records(v) == [f"{i:012d}.klr" for i in range(1, 10)]
    p = ok(verify(v))
    assert "9 record(s) verified, 0 problem(s)" in p.stdout


def test_newest_records_removed_are_noticed_by_this_workstation(v, state_dir):
    d = three_records(v)
    os.unlink(os.path.join(d, "000000000003.klr"))
    r = verify(v)
    assert r.returncode == 9
    assert "ledger/000000000003.klr: record 3 missing (deleted): this workstation saw it" in r.stdout
    os.unlink(os.path.join(d, "000000000002.klr"))
    r = verify(v)
    assert "records 2 to 3 missing (deleted): this workstation saw them" in r.stdout
    # another workstation (fresh state) sees no gap: the limit of a ledger alone
    fresh = os.path.join(state_dir, "other-host")
    os.makedirs(fresh)
    r = kinko("ledger", "verify", "--vault", v.path, "--as", "alice", "--password-file", v.pwfile,
              env=dict(os.environ, KINKO_STATE_DIR=fresh))
    assert r.returncode == 0, r.stdout


def test_tail_replaced_with_a_validly_signed_record_is_noticed(v):
    d = three_records(v)
    os.unlink(os.path.join(d, "000000000003.klr"))
    # an administrator writes a different record 3 in its place
    p = media(v, "move", "USB-001", "--location", "elsewhere")
    assert p.returncode == 0 or "problem" in p.stderr
    r = verify(v)
    assert r.returncode == 9
    assert "record 3 is not the record 3 this workstation saw (replaced)" in r.stdout, r.stdout
