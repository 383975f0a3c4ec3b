"""Remote inputs over real HTTP (nginx on a loopback port): read in place, same verdicts,
clear errors.

The adversarial corpus is validated twice, from its folder and from nginx serving that
folder, and the two results must be the same; the error cases use nginx locations that
ignore ranges, redirect to another host, cut bodies short or answer 403/404.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from validator.engine import Engine
from validator.limits import Limits
from validator.results import NotAllowedInCurrentState, ValidationResult, result_to_json
from validator.session import SessionError

from .adversarial.cases import CASES, Case
from .conftest import ROOT, SAMPLES
from .servers import PASSWORD, USER, nginx_available, start_nginx

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")
if not nginx_available():  # pragma: no cover - the README's apt line installs it
    pytest.skip("nginx is not installed (apt-get install nginx-light)", allow_module_level=True)


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(the folder nginx serves, its base URL): ``BASE/pkg/x`` is ``folder/x``."""
    root = tmp_path_factory.mktemp("www")
    with start_nginx(root, tmp_path_factory.mktemp("nginx")) as base:
        yield root, base


def _open(engine: Engine, raw: str) -> Any:
    from validator.cli import open_input

    return open_input(engine, raw)


def outcome(raw: str, limits: Limits | None = None, **options: str) -> dict[str, Any]:
    """What a validation ends in: the result's JSON, the SessionError's id, or not-allowed."""
    engine = Engine(limits=limits, options=options)
    try:
        result: ValidationResult = engine.validate(_open(engine, raw))
    except SessionError as exc:
        return {"session_error": exc.message_id}
    except NotAllowedInCurrentState as exc:
        return {"not_allowed": sorted(m.id for m in exc.messages)}
    return json.loads(result_to_json(result))  # type: ignore[no-any-return]


def _plain_tree(folder: Path) -> bool:
    """Only regular files and folders, no dot-files: what a web server can show as it is."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if name.startswith(".") or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                return False
    return True


REMOTE_CASES = [c for c in CASES if not c.known_bug]


@pytest.mark.parametrize("case", REMOTE_CASES, ids=lambda c: c.name)
def test_adversarial_case_has_the_same_verdict_over_http(
    case: Case, www: tuple[Path, str], tmp_path: Path
) -> None:
    missing_tools = [t for t in case.tools if __import__("shutil").which(t) is None]
    if missing_tools:
        pytest.skip(f"needs {', '.join(missing_tools)}")
    root, base = www
    served = root / f"case-{case.name}"
    served.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    path = case.build(served, outside)
    if not _plain_tree(served):
        pytest.skip("links, FIFOs and dot-files exist only on a local file system")
    rel = path.relative_to(root)
    url = f"{base}/pkg/{'/'.join(rel.parts)}" + ("/" if path.is_dir() else "")
    limits = Limits().replace(**case.limits)
    local = outcome(str(path), limits)
    remote = outcome(url, limits)
    text = json.dumps(remote).replace(url, str(path)).replace(url.rstrip("/"), str(path))
    assert json.loads(text) == local


def test_every_sample_is_the_same_over_http(www: tuple[Path, str]) -> None:
    root, base = www
    (root / "samples").symlink_to(SAMPLES)  # nginx follows it; the validator never sees it
    names = ["vm.ovf", "vm.session.yaml", "broken/missing-disk/vm.ovf",
             "broken/bad-references/vm.ovf", "broken/hostile/entities.ovf"]  # fmt: skip
    for name in names:
        local = outcome(str(SAMPLES / name))
        remote = json.loads(
            json.dumps(outcome(f"{base}/pkg/samples/{name}")).replace(
                f"{base}/pkg/samples/", f"{SAMPLES}/"
            )
        )
        assert remote == local, name
    assert outcome(f"{base}/pkg/samples/vm.ovf") == {
        "value": {"has_errors": False, "invalid_files": [], "missing_files": []}
    }


def _ova(folder: Path, names: list[str], src: Path = SAMPLES) -> Path:
    ova = folder / "vm.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            tar.add(src / name, arcname=name, recursive=False)
    return ova


@pytest.fixture
def served_ova(www: tuple[Path, str], request: pytest.FixtureRequest) -> tuple[Path, str]:
    root, base = www
    folder = root / f"ova-{request.node.name}"
    folder.mkdir()
    _ova(folder, ["vm.ovf", "vm.mf", "vm-disk1.vmdk"])
    return folder, f"{base}/pkg/{folder.name}/vm.ova"


def test_ova_over_http_is_valid_and_read_by_ranges(served_ova: tuple[Path, str]) -> None:
    folder, url = served_ova
    assert outcome(url) == outcome(str(folder / "vm.ova"))
    assert outcome(url)["value"]["has_errors"] is False


def cli_run(
    *args: str, timeout: int = 60, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "validator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_http_errors_are_one_line_exit_2(served_ova: tuple[Path, str], www: Any) -> None:
    folder, url = served_ova
    _root, base = www
    rel = f"{folder.name}/vm.ova"
    one_line_error(cli_run(f"{base}/pkg/{folder.name}/nothing.ova"), "not found")
    one_line_error(cli_run(f"{base}/forbidden/{rel}"), "HTTP 403")
    one_line_error(cli_run(f"{base}/norange/{rel}"), "ignores range requests")
    one_line_error(cli_run(f"{base}/elsewhere/{rel}"), "another host", "follow_redirects")
    one_line_error(cli_run("-o", "remote.retries=0", f"{base}/short/{rel}"), "closed after")
    one_line_error(cli_run("-o", "remote.timeout=soon", url), "remote.timeout")
    one_line_error(cli_run(f"http://user:secret@127.0.0.1:9/{rel}"), "password")


def test_redirects_to_the_same_host_are_followed_others_on_request(
    served_ova: tuple[Path, str], www: Any
) -> None:
    folder, _url = served_ova
    _root, base = www
    rel = f"{folder.name}/vm.ova"
    assert cli_run(f"{base}/moved/{rel}").returncode == 0
    proc = cli_run("-o", "remote.follow_redirects=true", f"{base}/elsewhere/{rel}")
    assert proc.returncode == 0, proc.stderr
    assert "localhost" not in proc.stdout  # the result names the input as it was given


def test_a_body_cut_short_while_reading_is_a_result(www: tuple[Path, str]) -> None:
    """The descriptor arrives whole, the disk's body ends early: that file's read_error."""
    root, base = www
    folder = root / "short-ovf"
    folder.mkdir()
    for name in ("vm.ovf", "vm.mf", "vm-disk1.vmdk"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    proc = cli_run("-o", "remote.retries=1", "-f", "json", f"{base}/short/short-ovf/vm.ovf")
    assert proc.returncode == 1, proc.stderr
    errors = json.loads(proc.stdout)["value"]["invalid_files"]
    assert [(e["name"], e["error_message"]["id"]) for e in errors] == [
        ("vm-disk1.vmdk", "validator.core.file.read_error")
    ]
    assert "closed after 16384 of" in errors[0]["error_message"]["default_message"]
    proc = cli_run(
        "-o", "remote.retries=0", "-o", "remote.timeout=0.5", f"{base}/stall/short-ovf/vm.ovf"
    )
    assert proc.returncode == 1
    assert "no data from the server for 0.5 s" in proc.stdout


def test_file_urls_are_local_paths(tmp_path: Path) -> None:
    url = (SAMPLES / "vm.ovf").as_uri()
    assert outcome(url) == outcome(str(SAMPLES / "vm.ovf"))
    proc = cli_run(url)
    assert proc.returncode == 0 and proc.stdout.startswith(url), proc.stdout + proc.stderr


def test_iso_is_checked_with_a_few_small_range_reads(
    www: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    gen = shutil.which("genisoimage")
    if gen is None:
        pytest.skip("needs genisoimage")
    root, base = www
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(8 << 20))
    (src / "a.txt").write_text("hello\n")
    folder = root / "iso"
    folder.mkdir()
    subprocess.run(
        [gen, "-quiet", "-J", "-R", "-o", str(folder / "image.iso"), str(src)], check=True
    )
    from validator import remote

    fetched: list[int] = []
    real = remote.HttpClient.read

    def counting(self: Any, url: str, start: int, end: int) -> Any:
        fetched.append(end - start)
        return real(self, url, start, end)

    monkeypatch.setattr(remote.HttpClient, "read", counting)
    got = outcome(f"{base}/pkg/iso/image.iso")
    assert got == outcome(str(folder / "image.iso"))
    assert got["value"]["has_errors"] is False
    size = (folder / "image.iso").stat().st_size
    assert len(fetched) <= 8 and sum(fetched) < size / 16, fetched


def test_plain_runs_do_not_import_the_remote_stack() -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['validator', {str(SAMPLES / 'vm.ovf')!r}]\n"
        "try:\n    runpy.run_module('validator', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('fsspec', 'aiohttp', 'dask', 'distributed', 's3fs',"
        " 'validator.remote', 'validator.batch') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_credentials_come_from_netrc(
    served_ova: tuple[Path, str], www: Any, tmp_path: Path
) -> None:
    folder, _url = served_ova
    _root, base = www
    url = f"{base}/private/{folder.name}/vm.ova"
    one_line_error(cli_run(url, extra_env={"NETRC": str(tmp_path / "none")}), "HTTP 401")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    proc = cli_run(url, extra_env={"NETRC": str(netrc)})
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    # credentials go to the input's own host only, not to another one a redirect names
    netrc.write_text(
        f"machine 127.0.0.1 login {USER} password {PASSWORD}\n"
        f"machine localhost login {USER} password {PASSWORD}\n"
    )
    proc = cli_run(
        "-o", "remote.follow_redirects=true", f"{base}/elsewhere-private/{folder.name}/vm.ova",
        extra_env={"NETRC": str(netrc)},
    )  # fmt: skip
    one_line_error(proc, "HTTP 401")
