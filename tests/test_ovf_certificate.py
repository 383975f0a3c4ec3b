"""The OVF certificate (<base>.cert): signatures made with openssl, certificate warnings,
trust stores."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

from validator.limits import Limits

from .conftest import CliResult
from .ovf_packages import Outcome, check, sample_package

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl needed")

CERT = "vm.cert"
MF = "vm.mf"
SELF_SIGNED = "validator.ovf.certificate.self_signed_certificate"
EXPIRED = "validator.ovf.certificate.expired_certificate"
NOT_YET_VALID = "validator.ovf.certificate.not_yet_valid_certificate"
UNTRUSTED = "validator.ovf.certificate.untrusted_certificate"


def openssl(*args: str, cwd: Path) -> bytes:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=True)
    return proc.stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys and certificates made with openssl: RSA and EC self-signed, a CA and its leaf."""
    k = tmp_path_factory.mktemp("keys")
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa.key",
        "-out", "rsa.pem", "-days", "30", "-subj", "/CN=rsa signer", cwd=k,
    )  # fmt: skip
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.key", cwd=k)
    openssl(
        "req", "-x509", "-new", "-key", "ec.key", "-out", "ec.pem", "-days", "30",
        "-subj", "/CN=ec signer", cwd=k,
    )  # fmt: skip
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "30", "-subj", "/CN=Test CA", cwd=k,
    )  # fmt: skip
    openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key",
        "-out", "leaf.csr", "-subj", "/CN=leaf signer", cwd=k,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "30", cwd=k,
    )  # fmt: skip
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key",
        "-out", "other.pem", "-days", "30", "-subj", "/CN=Other CA", cwd=k,
    )  # fmt: skip
    return k


def sign(d: Path, key: Path, cert_pem: bytes, alg: str = "sha256") -> None:
    """``openssl dgst -<alg> -sign key vm.mf`` as the first line, then the PEM certificate."""
    sig = openssl("dgst", f"-{alg}", "-sign", str(key), MF, cwd=d)
    (d / CERT).write_bytes(f"{alg.upper()}({MF})= {sig.hex()}\n".encode() + cert_pem)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cert")


def signed(root: Path, keys: Path, name: str, who: str = "rsa", alg: str = "sha256") -> Path:
    d = sample_package(root / name)
    sign(d, keys / f"{who}.key", (keys / f"{who}.pem").read_bytes(), alg)
    return d


@pytest.mark.parametrize(("who", "alg"), [("rsa", "sha256"), ("rsa", "sha1"), ("ec", "sha512")])
def test_good_signature(root: Path, keys: Path, who: str, alg: str) -> None:
    out = check(signed(root, keys, f"good-{who}-{alg}", who, alg))
    assert out.errors == []
    assert out.warnings == [(CERT, SELF_SIGNED)]


def test_tampered_manifest(root: Path, keys: Path) -> None:
    d = signed(root, keys, "tampered")
    mf = (d / MF).read_text()
    (d / MF).write_text(mf.replace("SHA256(vm.ovf)= d", "SHA256(vm.ovf)= e"))
    out = check(d)
    assert (CERT, "validator.ovf.certificate.bad_signature") in out.errors
    assert ("vm.ovf", "validator.ovf.manifest.digest_mismatch") in out.errors


def test_signed_with_another_key(root: Path, keys: Path) -> None:
    d = sample_package(root / "otherkey")
    sign(d, keys / "ec.key", (keys / "rsa.pem").read_bytes())
    assert check(d).ids == ["validator.ovf.certificate.bad_signature"]


def test_certificate_without_manifest(root: Path, keys: Path) -> None:
    d = signed(root, keys, "nomf")
    (d / MF).unlink()
    out = check(d)
    assert out.errors == [(CERT, "validator.ovf.certificate.no_manifest")]


def edit_cert(root: Path, keys: Path, name: str, change: Callable[[bytes], bytes]) -> Outcome:
    d = signed(root, keys, name)
    (d / CERT).write_bytes(change((d / CERT).read_bytes()))
    return check(d)


@pytest.mark.parametrize(
    ("change", "message_id"),
    [
        (
            lambda b: b.replace(b"(vm.mf)", b"(other.mf)"),
            "validator.ovf.certificate.wrong_manifest",
        ),
        (lambda b: b.replace(b"SHA256(", b"MD5("), "validator.ovf.certificate.bad_algorithm"),
        (lambda b: b.replace(b")= ", b")=  "), "validator.ovf.certificate.bad_signature_line"),
        (lambda b: b"\n" + b, "validator.ovf.certificate.bad_signature_line"),
        (lambda b: b.split(b"-----BEGIN")[0], "validator.ovf.certificate.no_certificate"),
        (
            lambda b: b.replace(
                b"-----BEGIN CERTIFICATE-----\n", b"-----BEGIN CERTIFICATE-----\nAAAA"
            ),
            "validator.ovf.certificate.bad_certificate",
        ),
        (
            lambda b: b[:-300] + b"\n-----END CERTIFICATE-----\n",
            "validator.ovf.certificate.bad_certificate",
        ),
    ],
)
def test_broken_certificates(
    root: Path, keys: Path, change: Callable[[bytes], bytes], message_id: str
) -> None:
    out = edit_cert(root, keys, f"broken-{message_id.rsplit('.', 1)[1]}-{id(change)}", change)
    assert out.ids == [message_id]


def test_chain_limit(root: Path, keys: Path) -> None:
    d = signed(root, keys, "chain")
    with (d / CERT).open("ab") as fh:
        fh.write((keys / "ca.pem").read_bytes())
    assert check(d).errors == []
    out = check(d, limits=Limits().replace(certificate_chain=1))
    assert out.ids == ["validator.ovf.certificate.chain_too_long"]


def test_unsupported_key(root: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert = make_cert(key, "ed", dt.timedelta(days=-1), dt.timedelta(days=1))
    d = sample_package(root / "ed25519")
    sig = key.sign((d / MF).read_bytes())
    (d / CERT).write_bytes(f"SHA256({MF})= {sig.hex()}\n".encode() + cert)
    assert check(d).ids == ["validator.ovf.certificate.unsupported_key"]


# -- warnings --------------------------------------------------------------------------


def make_cert(key: object, cn: str, start: dt.timedelta, end: dt.timedelta) -> bytes:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    public = key.public_key()  # type: ignore[attr-defined]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + start)
        .not_valid_after(now + end)
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(key, algorithm)  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("start", "end", "warning"),
    [(-30, -1, EXPIRED), (1, 30, NOT_YET_VALID)],
)
def test_validity_warnings(root: Path, keys: Path, start: int, end: int, warning: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = make_cert(key, "dated", dt.timedelta(days=start), dt.timedelta(days=end))
    (root / f"{warning}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    d = sample_package(root / f"dated-{start}")
    sign(d, root / f"{warning}.key", pem)
    out = check(d)
    assert out.errors == []
    assert sorted(out.warning_ids) == sorted([SELF_SIGNED, warning])


def test_ca_issued_without_trust_store_is_untrusted(root: Path, keys: Path) -> None:
    out = check(signed(root, keys, "leaf", "leaf"))
    assert out.errors == []
    assert out.warnings == [(CERT, UNTRUSTED)]


def test_trust_store(root: Path, keys: Path) -> None:
    d = signed(root, keys, "trusted", "leaf")
    store = str(keys / "ca.pem")
    out = check(d, options={"ovf.trust_store": store})
    assert (out.errors, out.warnings) == ([], [])
    out = check(d, options={"ovf.trust_store": str(keys / "other.pem")})
    assert out.warnings == [(CERT, UNTRUSTED)]
    # a self-signed signer trusted by being in the store: still self-signed, not untrusted
    s = signed(root, keys, "trusted-self", "rsa")
    out = check(s, options={"ovf.trust_store": str(keys / "rsa.pem")})
    assert out.warnings == [(CERT, SELF_SIGNED)]
    out = check(s, options={"ovf.trust_store": store})
    assert sorted(out.warning_ids) == sorted([SELF_SIGNED, UNTRUSTED])


def test_trust_store_through_an_intermediate_in_the_file(root: Path, keys: Path) -> None:
    """Leaf, then the CA in the .cert; the store holds the CA: trusted through the walk."""
    d = signed(root, keys, "chain-trust", "leaf")
    with (d / CERT).open("ab") as fh:
        fh.write((keys / "ca.pem").read_bytes())
    bundle = root / "bundle.pem"
    bundle.write_bytes((keys / "other.pem").read_bytes() + (keys / "ca.pem").read_bytes())
    out = check(d, options={"ovf.trust_store": str(bundle)})
    assert (out.errors, out.warnings) == ([], [])


def test_unusable_trust_store(root: Path, keys: Path) -> None:
    d = signed(root, keys, "badstore", "leaf")
    out = check(d, options={"ovf.trust_store": str(root / "nope.pem")})
    assert out.ids == ["validator.ovf.certificate.trust_store_unreadable"]
    (root / "empty.pem").write_text("nothing here\n")
    out = check(d, options={"ovf.trust_store": str(root / "empty.pem")})
    assert out.ids == ["validator.ovf.certificate.trust_store_unreadable"]


def test_cli_shows_warnings_and_takes_the_trust_store(
    root: Path, keys: Path, cli: Callable[..., CliResult]
) -> None:
    d = signed(root, keys, "cli", "leaf")
    res = cli(d)
    assert res.code == 0
    assert "warning: vm.cert" in res.out and "does not lead to a trusted" in res.out
    res = cli("-o", f"ovf.trust_store={keys / 'ca.pem'}", d)
    assert res.code == 0 and "warning" not in res.out


def test_hostile_pem_is_linear(root: Path, keys: Path) -> None:
    d = signed(root, keys, "hostile")
    first = (d / CERT).read_bytes().split(b"\n", 1)[0] + b"\n"
    (d / CERT).write_bytes(first + b"-----BEGIN CERTIFICATE-----\n" * 200_000)
    assert check(d).ids == ["validator.ovf.certificate.no_certificate"]
