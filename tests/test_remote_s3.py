"""s3:// inputs against an S3-compatible server started locally (moto's ThreadedMotoServer).

Production means real object storage; moto answers the same S3 API (ranged GETs,
listings, HEAD) on a loopback port.  Credentials and the endpoint come from the
environment, where s3fs (botocore) reads them, never from the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator

import pytest

from .conftest import ROOT, SAMPLES
from .servers import free_port

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

SAMPLE = ("vm.ovf", "vm.mf", "vm-disk1.vmdk")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    try:
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                              aws_access_key_id="testing", aws_secret_access_key="testing",
                              region_name="us-east-1")  # fmt: skip
        client.create_bucket(Bucket="catalog")
        for name in SAMPLE:
            client.upload_file(str(SAMPLES / name), "catalog", f"pkg/{name}")
        ova = tmp_path_factory.mktemp("ova") / "vm.ova"
        with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name in SAMPLE:
                tar.add(SAMPLES / name, arcname=name)
        client.upload_file(str(ova), "catalog", "vm.ova")
        client.upload_file(str(SAMPLES / "broken" / "missing-disk" / "vm.ovf"), "catalog",
                           "missing/vm.ovf")  # fmt: skip
        yield env
    finally:
        server.stop()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "validator", *args],
        capture_output=True, text=True, cwd=ROOT, env={**clean, **env}, timeout=120, check=False,
    )  # fmt: skip


def test_s3_inputs_have_the_local_verdicts(s3: dict[str, str]) -> None:
    proc = run(s3, "-f", "json", "s3://catalog/vm.ova")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"]["has_errors"] is False
    proc = run(s3, "s3://catalog/pkg/vm.ovf")
    assert proc.returncode == 0, proc.stderr
    proc = run(s3, "-f", "json", "s3://catalog/missing/vm.ovf")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["value"]["missing_files"] == ["vm-disk1.vmdk", "vm-disk2.vmdk"]
    local = run({}, "-f", "json", str(SAMPLES / "broken" / "missing-disk" / "vm.ovf"))
    assert json.loads(local.stdout)["value"]["missing_files"] == ["vm-disk2.vmdk"]


def test_s3_errors_are_one_line(s3: dict[str, str]) -> None:
    proc = run(s3, "s3://catalog/nothing.ova")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "not found" in proc.stderr
    proc = run({**s3, "AWS_SECRET_ACCESS_KEY": "wrong"}, "s3://nobucket/x.ova")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_batch_over_a_bucket(s3: dict[str, str]) -> None:
    proc = run(s3, "batch", "s3://catalog/", "-w", "2")
    found = {json.loads(line)["input"]: json.loads(line) for line in proc.stdout.splitlines()}
    assert sorted(found) == ["s3://catalog/missing", "s3://catalog/pkg", "s3://catalog/vm.ova"]
    assert found["s3://catalog/vm.ova"]["status"] == "valid"
    assert found["s3://catalog/vm.ova"]["etag"]
    assert found["s3://catalog/pkg"]["status"] == "valid"
    assert found["s3://catalog/missing"]["status"] == "invalid"
    assert proc.returncode == 1, proc.stderr
