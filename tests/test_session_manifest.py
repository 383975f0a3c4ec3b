"""Session manifests (docs/session-manifest.md): YAML and JSON, statuses, safety."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from validator.engine import Engine
from validator.results import NotAllowedInCurrentState
from validator.session import SessionError, TransferStatus

from .conftest import SAMPLES, ids, validate


def write_manifest(folder: Path, data: object, name: str = "session.yaml") -> Path:
    import yaml

    path = folder / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_shipped_example_is_valid() -> None:
    result = validate(SAMPLES / "vm.session.yaml")
    assert not result.has_errors
    assert result.item_type == "ovf"


@pytest.mark.parametrize("name", ["session.yaml", "session.json"])
def test_yaml_and_json(bundle: Path, name: str) -> None:
    disk = (bundle / "vm-disk1.vmdk").read_bytes()
    path = write_manifest(
        bundle,
        {
            "validator-session": 1,
            "files": [
                {"name": "vm.ovf"},
                {
                    "name": "vm-disk1.vmdk",
                    "size": len(disk),
                    "checksum_info": {
                        "algorithm": "SHA1",
                        "checksum": hashlib.sha1(disk).hexdigest(),
                    },
                },
                {"name": "vm.mf"},
            ],
        },
        name,
    )
    session = Engine().open(path)
    assert session.names() == ["vm.ovf", "vm-disk1.vmdk", "vm.mf"]
    assert session.files[1].checksum_info is not None
    assert not Engine().validate(session).has_errors


def test_checksum_mismatch_is_invalid(bundle: Path) -> None:
    path = write_manifest(
        bundle,
        {
            "validator-session": 1,
            "files": [
                {"name": "vm.ovf"},
                {
                    "name": "vm-disk1.vmdk",
                    "checksum_info": {"algorithm": "SHA256", "checksum": "00" * 32},
                },
                {"name": "vm.mf"},
            ],
        },
    )
    result = validate(path)
    assert "validator.core.file.checksum_mismatch" in ids(result)


def test_file_path_may_differ_from_name(bundle: Path) -> None:
    (bundle / "sub").mkdir()
    shutil.move(bundle / "vm-disk1.vmdk", bundle / "sub" / "upload-0001.bin")
    path = write_manifest(
        bundle,
        {
            "validator-session": 1,
            "files": [
                {"name": "vm.ovf"},
                {"name": "vm-disk1.vmdk", "path": "sub/upload-0001.bin"},
                {"name": "vm.mf"},
            ],
        },
    )
    assert not validate(path).has_errors


@pytest.mark.parametrize("status", ["WAITING_FOR_TRANSFER", "TRANSFERRING", "ERROR"])
def test_file_not_received_is_not_allowed(bundle: Path, status: str) -> None:
    path = write_manifest(
        bundle,
        {
            "validator-session": 1,
            "files": [{"name": "vm.ovf"}, {"name": "vm-disk1.vmdk", "status": status}],
        },
    )
    with pytest.raises(NotAllowedInCurrentState) as err:
        validate(path)
    assert err.value.messages[0].args == ("vm-disk1.vmdk", status)


def test_ready_file_without_bytes_is_not_received(bundle: Path) -> None:
    path = write_manifest(
        bundle,
        {
            "validator-session": 1,
            "files": [{"name": "vm.ovf"}, {"name": "absent.vmdk"}],
        },
    )
    session = Engine().open(path)
    assert session.files[1].status is TransferStatus.READY
    with pytest.raises(NotAllowedInCurrentState):
        Engine().validate(session)


def test_declared_size_mismatch_is_not_received(bundle: Path) -> None:
    path = write_manifest(
        bundle,
        {
            "validator-session": 1,
            "files": [{"name": "vm.ovf"}, {"name": "vm-disk1.vmdk", "size": 1}],
        },
    )
    with pytest.raises(NotAllowedInCurrentState) as err:
        validate(path)
    assert err.value.messages[0].id == "validator.core.session.file_size_mismatch"


@pytest.mark.parametrize("rel", ["../outside.bin", "/etc/passwd", "sub/../../x", "~/x"])
def test_paths_outside_the_folder_are_refused(bundle: Path, rel: str) -> None:
    path = write_manifest(
        bundle,
        {
            "validator-session": 1,
            "files": [{"name": "vm.ovf"}, {"name": "vm-disk1.vmdk", "path": rel}],
        },
    )
    result = validate(path)
    assert ("vm-disk1.vmdk", "validator.core.file.outside_bundle") in [
        (e.name, e.error_message.id) for e in result.invalid_files
    ]


def test_link_to_a_folder_outside_is_refused(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "d.vmdk").write_bytes(b"x")
    (bundle / "escape").symlink_to(outside)
    path = write_manifest(
        bundle,
        {
            "validator-session": 1,
            "files": [{"name": "vm.ovf"}, {"name": "vm-disk1.vmdk", "path": "escape/d.vmdk"}],
        },
    )
    assert "validator.core.file.outside_bundle" in ids(validate(path))


@pytest.mark.parametrize(
    ("content", "message_id"),
    [
        ("files: []\n", "validator.core.manifest.not_manifest"),
        ("validator-session: 2\nfiles: []\n", "validator.core.manifest.bad_version"),
        ("validator-session: 1\nfiles: {}\n", "validator.core.manifest.bad_files"),
        ("validator-session: 1\nfile: []\n", "validator.core.manifest.unknown_keys"),
        (
            "validator-session: 1\nitem_type: 3\nfiles: []\n",
            "validator.core.manifest.bad_item_type",
        ),
        ("validator-session: 1\nfiles: [x]\n", "validator.core.manifest.bad_file_entry"),
        ("validator-session: 1\nfiles: [{name: a/b}]\n", "validator.core.manifest.bad_name"),
        (
            "validator-session: 1\nfiles: [{name: a}, {name: a}]\n",
            "validator.core.manifest.duplicate_name",
        ),
        (
            "validator-session: 1\nfiles: [{name: a, status: DONE}]\n",
            "validator.core.manifest.bad_status",
        ),
        (
            "validator-session: 1\nfiles: [{name: a, size: -1}]\n",
            "validator.core.manifest.bad_size",
        ),
        (
            "validator-session: 1\nfiles: [{name: a, checksum_info: 3}]\n",
            "validator.core.manifest.bad_checksum_info",
        ),
        (
            "validator-session: 1\n"
            "files: [{name: a, checksum_info: {algorithm: CRC32, checksum: x}}]\n",
            "validator.core.manifest.bad_algorithm",
        ),
        (
            "validator-session: 1\nfiles: [{name: a, checksum_info: {algorithm: MD5}}]\n",
            "validator.core.manifest.bad_checksum",
        ),
        ("validator-session: 1\nfiles: [{name: a, path: 3}]\n", "validator.core.manifest.bad_path"),
        (
            "validator-session: 1\nfiles: [{name: a, path: nothere}]\n",
            "validator.core.manifest.path_not_found",
        ),
        ("validator-session: 1\nfiles: [\n", "validator.core.manifest.bad_yaml"),
        ("validator-session: !!python/object:os.system x\n", "validator.core.manifest.bad_yaml"),
    ],
)
def test_bad_manifests_are_one_line_errors(tmp_path: Path, content: str, message_id: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SessionError) as err:
        Engine().open(path)
    assert err.value.message_id == message_id


def test_json_errors_and_encoding(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SessionError) as err:
        Engine().open(path)
    assert err.value.message_id == "validator.core.manifest.bad_json"
    path.write_bytes(b'{"validator-session": 1, "files": [{"name": "\xff"}]}')
    with pytest.raises(SessionError) as err:
        Engine().open(path)
    assert err.value.message_id == "validator.core.manifest.not_utf8"
