"""Throughput of the validator on large OVF packages, against openssl in the same run.

    python bench/bench.py [--size-mib 1024] [--runs 3] [--keep]

Builds, under a temporary folder (removed afterwards unless ``--keep``), an
OVF package with two disks of ``--size-mib`` MiB each: raw images filled from
``/dev/urandom`` converted by ``qemu-img convert -O vmdk -o
subformat=streamOptimized`` (random data does not compress, so each disk stays
about as large as its capacity and hashing is real work), a descriptor and a
SHA256 manifest; then the same package as an ``.ova`` (Python ``tarfile``) and
a one-disk package (a hard link to the first disk, nothing copied).

Each case is run ``--runs`` times after one warm-up read of every file (so all
cases read from the page cache) and the median wall time is reported, with
the child's peak RSS (``os.wait4``) and its ratio to the openssl command over
the same bytes:

| case | command | openssl reference | target |
|---|---|---|---|
| folder | ``validator pkg/`` | ``openssl dgst -sha256`` over its files, one by one | ≤ 0.75 |
| ova | ``validator vm.ova`` | ``openssl dgst -sha256 vm.ova`` | ≤ 0.80 |
| stdin | ``cat vm.ova | validator -`` | ``openssl dgst -sha256 vm.ova`` | ≤ 1.20 |
| single | ``validator one/`` (one disk) | ``openssl dgst -sha256`` over its files | ≤ 1.15 |

and peak RSS ≤ 100 MiB for every validator case.  The deep grain check
(``-o ovf.inflate=true``, off by default) is measured without a target, as
the ratio of a run with it to the same run without it: ``inflate`` on the
random disk of ``single``, and ``os`` / ``os-inflate`` on a third disk of
compressible data as real disks hold (``--os-mib`` MiB of ``tar cf - /usr``,
converted the same way; ``--os-mib 0`` leaves them out).  An ISO case is added with
the image ``bench/iso.py`` builds (``iso.build``; needs genisoimage), validated
through a session manifest that declares its SHA-256 (target ≤ 1.15).
Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
STREAM = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
VALIDATOR = [sys.executable, "-m", "validator", "--progress", "never", "-q"]


@dataclass
class Case:
    """One measured command and the openssl command it is compared with."""

    name: str
    command: list[str]
    reference: list[str]
    target: float | None  # None: measured, no target (the deep grain check's cost)
    stdin_file: Path | None = None  # fed through `cat FILE |`
    expect_status: int = 0


@dataclass
class Measure:
    seconds: float
    max_rss_mib: float
    status: int
    cpu: float = 0.0  # user + system seconds of the child (not of `cat`)


def run(command: list[str], stdin_file: Path | None = None) -> Measure:
    """Wall time, peak RSS and exit status of one child (the last of a `cat |` pipe)."""
    start = time.perf_counter()
    feeder = None
    stdin: Any = subprocess.DEVNULL
    if stdin_file is not None:
        feeder = subprocess.Popen(["cat", str(stdin_file)], stdout=subprocess.PIPE)
        stdin = feeder.stdout
    proc = subprocess.Popen(
        command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=ENV
    )
    if feeder is not None and feeder.stdout is not None:
        feeder.stdout.close()
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if feeder is not None:
        feeder.wait()
    seconds = time.perf_counter() - start
    if err.strip():
        sys.stderr.write(err.decode(errors="replace"))
    cpu = usage.ru_utime + usage.ru_stime
    return Measure(seconds, usage.ru_maxrss / 1024, proc.returncode, cpu)


def median(command: list[str], runs: int, stdin_file: Path | None = None) -> Measure:
    measures = [run(command, stdin_file) for _ in range(runs)]
    return Measure(
        statistics.median(m.seconds for m in measures),
        max(m.max_rss_mib for m in measures),
        max(m.status for m in measures),
        statistics.median(m.cpu for m in measures),
    )


# -- the package ---------------------------------------------------------------------


def random_raw(path: Path, size: int) -> None:
    with open(path, "wb") as out, open("/dev/urandom", "rb") as rnd:
        left = size
        while left:
            n = min(left, 16 * MiB)
            out.write(rnd.read(n))
            left -= n


def ovf_text(disks: list[tuple[str, int, int]]) -> str:
    files = "\n".join(
        f'    <File ovf:id="file{i}" ovf:href="{name}" ovf:size="{size}"/>'
        for i, (name, size, _cap) in enumerate(disks, 1)
    )
    disk_el = "\n".join(
        f'    <Disk ovf:diskId="vmdisk{i}" ovf:fileRef="file{i}" ovf:capacity="{cap}" '
        f'ovf:format="{STREAM}"/>'
        for i, (_name, _size, cap) in enumerate(disks, 1)
    )
    items = "\n".join(
        f"""      <Item>
        <rasd:ElementName>Hard Disk {i}</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk{i}</rasd:HostResource>
        <rasd:InstanceID>{10 + i}</rasd:InstanceID>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>"""
        for i in range(1, len(disks) + 1)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
{files}
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
{disk_el}
  </DiskSection>
  <VirtualSystem ovf:id="bench">
    <Info>Benchmark machine</Info>
    <VirtualHardwareSection>
      <Info>Virtual hardware</Info>
{items}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_package(folder: Path, disks: list[Path], capacity: int) -> list[Path]:
    """vm.ovf and vm.mf in ``folder`` for disks already there; returns the files in order."""
    entries = [(d.name, d.stat().st_size, capacity) for d in disks]
    (folder / "vm.ovf").write_text(ovf_text(entries), encoding="utf-8")
    lines = [f"SHA256({p.name})= {sha256(p)}\n" for p in [folder / "vm.ovf", *disks]]
    (folder / "vm.mf").write_text("".join(lines), encoding="utf-8")
    return [folder / "vm.ovf", folder / "vm.mf", *disks]


def build(tmp: Path, size_mib: int) -> dict[str, Any]:
    qemu = shutil.which("qemu-img")
    if qemu is None:
        raise SystemExit("bench: qemu-img is needed (apt-get install qemu-utils)")
    pkg = tmp / "pkg"
    pkg.mkdir()
    capacity = size_mib * MiB
    disks = []
    for i in (1, 2):
        raw = tmp / f"disk{i}.raw"
        random_raw(raw, capacity)
        disk = pkg / f"disk{i}.vmdk"
        subprocess.run(
            [qemu, "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
             str(raw), str(disk)],
            check=True,
        )
        raw.unlink()
        disks.append(disk)
    files = write_package(pkg, disks, capacity)
    ova = tmp / "vm.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for path in files:
            tar.add(path, arcname=path.name, recursive=False)
    one = tmp / "one"
    one.mkdir()
    os.link(disks[0], one / disks[0].name)
    one_files = write_package(one, [one / disks[0].name], capacity)
    return {"pkg": pkg, "files": files, "ova": ova, "one": one, "one_files": one_files}


def build_os_disk(tmp: Path, size_mib: int) -> dict[str, Any]:
    """A one-disk package whose disk holds compressible data: the first bytes of a tar of /usr.

    Real disks (an operating system, applications) compress about 3:1; random data does
    not compress, so inflating it costs little and would understate the deep check.
    """
    qemu = shutil.which("qemu-img")
    assert qemu is not None
    folder = tmp / "os"
    folder.mkdir()
    raw = tmp / "os.raw"
    with open(raw, "wb") as out:
        tar = subprocess.Popen(
            ["tar", "cf", "-", "/usr"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert tar.stdout is not None
        left = size_mib * MiB
        while left and (block := tar.stdout.read(min(left, 16 * MiB))):
            out.write(block)
            left -= len(block)
        tar.kill()
        tar.wait()
        out.truncate(size_mib * MiB)
    disk = folder / "os.vmdk"
    subprocess.run(
        [qemu, "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
         str(raw), str(disk)],
        check=True,
    )
    raw.unlink()
    return {"os": folder, "os_files": write_package(folder, [disk], size_mib * MiB)}


def found(tmp: Path) -> dict[str, Any]:
    """A package built earlier with --keep."""
    pkg, one = tmp / "pkg", tmp / "one"
    order = ["vm.ovf", "vm.mf"]
    files = [pkg / n for n in order] + sorted(pkg.glob("*.vmdk"))
    one_files = [one / n for n in order] + sorted(one.glob("*.vmdk"))
    return {"pkg": pkg, "files": files, "ova": tmp / "vm.ova", "one": one, "one_files": one_files}


# -- the cases ---------------------------------------------------------------------


def _iso_cases(tmp: Path, size_mib: int) -> list[Case]:
    """The ISO adapter's case, with the image ``bench/iso.py`` builds (genisoimage).

    The image is validated through a session manifest that declares its
    SHA-256, so its bytes are hashed in the one streaming pass.
    """
    if shutil.which("genisoimage") is None:
        print("bench: no genisoimage, the iso case is skipped")
        return []
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import iso  # bench/iso.py
    except ImportError:
        return []
    finally:
        sys.path.pop(0)
    folder = tmp / "iso"
    folder.mkdir(exist_ok=True)
    image = Path(iso.build(folder, size_mib * MiB))
    manifest = folder / "session.yaml"
    manifest.write_text(
        "validator-session: 1\nfiles:\n"
        f"  - name: {image.name}\n"
        f"    checksum_info: {{algorithm: SHA256, checksum: '{sha256(image)}'}}\n",
        encoding="utf-8",
    )
    return [
        Case("iso", [*VALIDATOR, str(manifest)], ["openssl", "dgst", "-sha256", str(image)], 1.15)
    ]


def cases(built: dict[str, Any]) -> list[Case]:
    ssl = ["openssl", "dgst", "-sha256"]
    ova = str(built["ova"])
    inflate = [*VALIDATOR, "-o", "ovf.inflate=true"]
    extra = []
    if "os" in built:
        os_ref = [*ssl, *map(str, built["os_files"])]
        extra = [
            Case("os", [*VALIDATOR, str(built["os"])], os_ref, None),
            Case("os-inflate", [*inflate, str(built["os"])], os_ref, None),
        ]
    return [
        Case("folder", [*VALIDATOR, str(built["pkg"])], [*ssl, *map(str, built["files"])], 0.75),
        Case("ova", [*VALIDATOR, ova], [*ssl, ova], 0.80),
        Case("stdin", [*VALIDATOR, "-"], [*ssl, ova], 1.20, stdin_file=built["ova"]),
        Case(
            "single", [*VALIDATOR, str(built["one"])], [*ssl, *map(str, built["one_files"])], 1.15
        ),
        Case("inflate", [*inflate, str(built["one"])], [*ssl, *map(str, built["one_files"])], None),
        *extra,
    ]


@contextlib.contextmanager
def _nginx(root: Path, tmp: Path) -> Iterator[str | None]:
    """The tests' nginx (tests/servers.py) serving ``root``, or ``None`` without nginx."""
    sys.path.insert(0, str(ROOT))
    try:
        from tests.servers import nginx_available, start_nginx
    finally:
        sys.path.pop(0)
    if not nginx_available():
        print("bench: no nginx (apt-get install nginx-light), the http case is skipped")
        yield None
        return
    with start_nginx(root, tmp) as base:
        yield base


def _http_cases(built: dict[str, Any], base: str) -> list[Case]:
    """The same .ova over HTTP from the local nginx, against openssl on the local file."""
    ova = built["ova"]
    url = f"{base}/pkg/{ova.name}"
    return [Case("ova-http", [*VALIDATOR, url], ["openssl", "dgst", "-sha256", str(ova)], 1.0)]


def _small_catalog(tmp: Path, count: int) -> Path:
    """``count`` copies of the sample package, each in its own folder (hard links)."""
    cat = tmp / "catalog"
    cat.mkdir(exist_ok=True)
    for i in range(count):
        folder = cat / f"pkg{i:04d}"
        if folder.exists():
            continue
        folder.mkdir()
        for name in ("vm.ovf", "vm.mf", "vm-disk1.vmdk"):
            os.link(ROOT / "samples" / name, folder / name)
    return cat


def batch_scaling(tmp: Path, count: int, runs: int) -> dict[str, Any]:
    """``validator batch`` over ``count`` small packages with 1 and 2 workers (target ≥ 1.7×).

    Throughput is the run's own (its summary's items/s: from the catalog listing to the
    last record, the interpreter's start-up left out); wall time is the whole command.
    The two are interleaved, median of ``runs``.
    """
    cat = _small_catalog(tmp, count)
    rates: dict[int, list[float]] = {1: [], 2: []}
    walls: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(runs):
        for workers in (1, 2):
            cmd = [sys.executable, "-m", "validator", "batch", str(cat), "-w", str(workers)]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV)
            walls[workers].append(time.perf_counter() - start)
            summary = done.stderr.strip().splitlines()[-1]
            rate = summary.rsplit("MiB/s, ", 1)[1].split()[0]
            rates[workers].append(float(rate.replace(",", "")))
    out: dict[str, Any] = {"items": count}
    for workers in (1, 2):
        out[f"w{workers}_s"] = round(statistics.median(walls[workers]), 3)
        out[f"w{workers}_items_per_s"] = round(statistics.median(rates[workers]), 1)
    out["speedup"] = round(out["w2_items_per_s"] / out["w1_items_per_s"], 2)
    return out


def per_item_overhead(runs: int = 200) -> float:
    """Seconds per ``validate_item`` of samples/vm.ovf in one process (target ≤ 5 ms)."""
    code = (
        "import time\n"
        "from validator.batch import Item, Settings, validate_item\n"
        "from validator.limits import Limits\n"
        f"item, s = Item({str(ROOT / 'samples' / 'vm.ovf')!r}), Settings(Limits())\n"
        "validate_item(item, s)\n"
        "t = time.perf_counter()\n"
        f"for _ in range({runs}): validate_item(item, s)\n"
        f"print((time.perf_counter() - t) / {runs})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(done.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=1024, help="capacity of each disk (MiB)")
    p.add_argument("--runs", type=int, default=3, help="runs per case (median)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    p.add_argument("--reuse", type=Path, help="measure a folder kept by --keep (no build)")
    p.add_argument("--no-iso", action="store_true", help="leave out the ISO case")
    p.add_argument("--os-mib", type=int, default=1024,
                   help="size of the compressible disk of the os cases (MiB; 0: none)")
    p.add_argument("--no-http", action="store_true", help="leave out the .ova over HTTP case")
    p.add_argument("--no-batch", action="store_true", help="leave out the batch measurements")
    p.add_argument("--batch-items", type=int, default=200, help="packages in the batch case")
    p.add_argument("--only", help="comma-separated case names to run (default: all)")
    opts = p.parse_args(argv)
    tmp = opts.reuse or Path(tempfile.mkdtemp(prefix="validator-bench-"))
    if opts.reuse:
        opts.keep = True
    ok = True
    rows = []
    try:
        t0 = time.perf_counter()
        built = found(tmp) if opts.reuse else build(tmp, opts.size_mib)
        if opts.reuse and (tmp / "os").is_dir():
            built["os"] = tmp / "os"
            built["os_files"] = [tmp / "os" / n for n in ("vm.ovf", "vm.mf", "os.vmdk")]
        elif not opts.reuse and opts.os_mib > 0:
            built.update(build_os_disk(tmp, opts.os_mib))
        server = contextlib.ExitStack()
        base = None if opts.no_http else server.enter_context(_nginx(tmp, tmp / "nginx"))
        all_cases = cases(built) + ([] if opts.no_iso else _iso_cases(tmp, opts.size_mib))
        if base is not None:
            all_cases += _http_cases(built, base)
        if opts.only:
            wanted = set(opts.only.split(","))
            all_cases = [c for c in all_cases if c.name in wanted]
        ssl = subprocess.run(["openssl", "version"], capture_output=True, text=True)
        ssl_version = ssl.stdout.strip()
        print(
            f"built in {time.perf_counter() - t0:.1f} s: 2 disks of "
            f"{built['files'][2].stat().st_size / MiB:,.0f} MiB, "
            f"vm.ova {built['ova'].stat().st_size / MiB:,.0f} MiB; {os.cpu_count()} CPUs; "
            f"{ssl_version}; load average {os.getloadavg()[0]:.2f}"
        )
        for case in all_cases:  # warm the page cache
            run(case.reference)
        header = f"{'case':<10} {'validator s':>11} {'openssl s':>10} {'ratio':>7} {'target':>7} "
        print(header + f"{'peak RSS MiB':>13} {'cpu s':>7} {'ssl cpu':>7}  result")
        for case in all_cases:
            ref = median(case.reference, opts.runs)
            got = median(case.command, opts.runs, case.stdin_file)
            ratio = got.seconds / ref.seconds
            within = case.target is None or ratio <= case.target
            passed = within and got.max_rss_mib <= 100 and got.status == 0
            ok = ok and passed
            verdict = "ok" if passed else f"MISSED (exit {got.status})"
            target = "-" if case.target is None else f"{case.target:.2f}"
            print(
                f"{case.name:<10} {got.seconds:>11.3f} {ref.seconds:>10.3f} {ratio:>7.2f} "
                f"{target:>7} {got.max_rss_mib:>13.1f} {got.cpu:>7.2f} {ref.cpu:>7.2f}"
                f"  {verdict}"
            )
            rows.append(
                {"case": case.name, "validator_s": round(got.seconds, 3),
                 "openssl_s": round(ref.seconds, 3), "ratio": round(ratio, 3),
                 "target": case.target, "peak_rss_mib": round(got.max_rss_mib, 1),
                 "cpu_s": round(got.cpu, 3), "openssl_cpu_s": round(ref.cpu, 3),
                 "status": got.status}
            )
        by_case = {row["case"]: row for row in rows}
        for plain, deep in (("single", "inflate"), ("os", "os-inflate")):
            if plain in by_case and deep in by_case:
                a, b = by_case[plain], by_case[deep]
                wall = b["validator_s"] / a["validator_s"] - 1
                cpu = b["cpu_s"] / a["cpu_s"] - 1
                print(f"-o ovf.inflate=true costs {deep} {wall:+.0%} wall time and {cpu:+.0%} "
                      f"CPU time over {plain}")
        server.close()
        if not opts.no_batch:
            scaling = batch_scaling(tmp, opts.batch_items, max(3, opts.runs))
            overhead = per_item_overhead()
            passed = scaling["speedup"] >= 1.7 and overhead <= 0.005
            ok = ok and passed
            print(
                f"batch of {scaling['items']} small packages: 1 worker {scaling['w1_s']:.2f} s "
                f"({scaling['w1_items_per_s']} items/s), 2 workers {scaling['w2_s']:.2f} s "
                f"({scaling['w2_items_per_s']} items/s): {scaling['speedup']:.2f}x (target "
                f">= 1.7); per item in one process {overhead * 1000:.2f} ms (target <= 5)  "
                + ("ok" if passed else "MISSED")
            )
            rows.append({"case": "batch", **scaling, "per_item_ms": round(overhead * 1000, 2)})
        print(f"load average at the end {os.getloadavg()[0]:.2f} (others' work skews the ratios)")
        if opts.json:
            print(json.dumps(rows, indent=2))
    finally:
        if opts.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
