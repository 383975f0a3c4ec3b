"""The OVF certificate ``<base>.cert``: the manifest's signature and the signer's certificate.

Format (REFERENCE §4)::

    SHA256(vm.mf)= 5a3c…            ← the signature of the manifest's bytes, in hex
    -----BEGIN CERTIFICATE-----     ← the signer's certificate (PEM)
    …
    -----END CERTIFICATE-----
    (more PEM certificates: the chain, at most ``limits.certificate_chain``)

as made by ``openssl dgst -sha256 -sign key.pem vm.mf`` (and ovftool).

Errors (the certificate is invalid): a certificate without the manifest, a
first line that is not ``ALG(<base>.mf)= hex``, an algorithm other than SHA1,
SHA256 or SHA512, a name other than the manifest's, no certificate or one that
does not parse, a chain longer than the limit, a key that is neither RSA
(PKCS#1 v1.5) nor ECDSA, and a signature that does not verify with the first
(leaf) certificate's public key.

Warnings (REFERENCE §3, the preview warnings of an OVF session; the last part
of each id is the warning type in lower case): ``self_signed_certificate``,
``expired_certificate``, ``not_yet_valid_certificate`` (any certificate of the
file), ``untrusted_certificate``.

Trust.  With ``-o ovf.trust_store=PATH`` (``ctx.options["ovf.trust_store"]``, a
PEM bundle the user names, the only file outside the session ever opened)
the leaf must lead to a certificate of the store: it *is* one of them, or it
is directly issued (issuer name and signature) by one of them, or by a
certificate of the file's chain that itself leads there (at most
``certificate_chain`` steps).  This is a plain issuer/signature walk, on
purpose: cryptography's ``x509.verification.PolicyBuilder`` applies the Web
PKI profile (extended key usage, CA flags, no SHA-1, validity at one time),
which refuses the self-signed and openssl-made signing certificates OVF
packages carry and would turn "expired" into "untrusted"; validity is reported
on its own instead.  Without a trust store nothing can vouch for a
certificate: one issued by someone else is reported untrusted, a self-signed
one is reported self-signed (which says the same).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from validator.checks import CheckContext, Reporter
from validator.session import Session, open_regular_file

from .descriptor import Descriptor
from .manifest import certificate_name, excerpt, load, manifest_name

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.hashes import HashAlgorithm
    from cryptography.x509 import Certificate

TRUST_STORE_OPTION = "ovf.trust_store"
#: Largest trust store read, in bytes.
TRUST_STORE_BYTES = 16 << 20
SIGNATURE_ALGORITHMS = ("SHA1", "SHA256", "SHA512")

_FIRST_LINE = re.compile(r"(?P<alg>[^()\s=]+)\((?P<name>.*)\)= (?P<hex>[0-9A-Fa-f]+)")
_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_TRUST_KEY = "ovf.trust_store"
DEFERRED_KEY = "ovf.certificate.deferred"
LATE_KEY = "ovf.certificate.late"


class TrustStore:
    """The CA certificates of ``-o ovf.trust_store``, or why they could not be read."""

    __slots__ = ("certificates", "error")

    def __init__(self, *, error: str | None = None) -> None:
        self.certificates: list[Certificate] = []
        self.error = error


def pem_certificates(data: bytes) -> list[bytes]:
    """The ``CERTIFICATE`` blocks of a PEM text, in order (one linear pass over its lines).

    Other blocks (keys, parameters) and text around the blocks are skipped.
    """
    blocks: list[bytes] = []
    label: bytes | None = None
    body: list[bytes] = []
    for raw in data.split(b"\n"):
        line = raw.strip()
        if label is None:
            m = _BEGIN.fullmatch(line)
            if m is not None:
                label = m.group(1)
                body = [line]
            continue
        body.append(line)
        if line == b"-----END " + label + b"-----":
            if label == b"CERTIFICATE":
                blocks.append(b"\n".join(body) + b"\n")
            label = None
    return blocks


def check(desc: Descriptor, session: Session, ctx: CheckContext, report: Reporter) -> None:
    """Check the certificate, if the session has one (a whole-session check: no file pass)."""
    name = certificate_name(desc)
    file = session.get(name)
    mf_name = manifest_name(desc)
    manifest = session.get(mf_name)
    if session.sequential and not ctx.store.get(LATE_KEY) and (file is None or manifest is None):
        # An archive read from a stream: they may still come, at the end (check_late).
        ctx.store[DEFERRED_KEY] = True
        return
    if file is None or file.source is None:
        return
    if manifest is None or manifest.source is None:
        report.error(name, "validator.ovf.certificate.no_manifest", name, mf_name)
        return
    try:
        data = ctx.read_small(file, ctx.limits.manifest_bytes)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        report.error(name, "validator.ovf.certificate.unreadable", name, reason)
        return
    if data is None:
        report.error(name, "validator.ovf.certificate.too_large", name, ctx.limits.manifest_bytes)
        return
    mf = load(session, ctx, desc)
    try:
        signed = ctx.read_small(manifest, ctx.limits.manifest_bytes)
    except OSError:
        signed = None
    if signed is None or mf is None:
        # The manifest's own problem (too large, unreadable) is reported on it.
        return
    _check(name, mf_name, data, signed, ctx, report)


def check_late(desc: Descriptor, session: Session, ctx: CheckContext, report: Reporter) -> None:
    """After the pass: the check :func:`check` put off because the files were not there yet."""
    if ctx.store.pop(DEFERRED_KEY, False):
        ctx.store[LATE_KEY] = True
        check(desc, session, ctx, report)


def _check(
    name: str, mf_name: str, data: bytes, signed: bytes, ctx: CheckContext, report: Reporter
) -> None:
    first, _, rest = data.partition(b"\n")
    first = first.removesuffix(b"\r")
    try:
        line = first.decode("ascii")
    except UnicodeDecodeError:
        line = ""
    m = _FIRST_LINE.fullmatch(line)
    if m is None or len(m.group("hex")) % 2:
        shown = excerpt(first.decode("utf-8", "replace"))
        report.error(name, "validator.ovf.certificate.bad_signature_line", name, shown, mf_name)
        return
    alg = m.group("alg")
    if alg not in SIGNATURE_ALGORITHMS:
        report.error(name, "validator.ovf.certificate.bad_algorithm", name, excerpt(alg, 20))
        return
    if m.group("name") != mf_name:
        shown = excerpt(m.group("name"))
        report.error(name, "validator.ovf.certificate.wrong_manifest", name, shown, mf_name)
        return
    signature = bytes.fromhex(m.group("hex"))
    chain = _certificates(name, rest, ctx, report)
    if chain is None:
        return
    leaf = chain[0]
    _verify_signature(name, mf_name, leaf, alg, signature, signed, report)
    _warnings(name, chain, ctx, report)


def _certificates(
    name: str, data: bytes, ctx: CheckContext, report: Reporter
) -> list[Certificate] | None:
    from cryptography import x509

    blocks = pem_certificates(data)
    if not blocks:
        report.error(name, "validator.ovf.certificate.no_certificate", name)
        return None
    limit = ctx.limits.certificate_chain
    if len(blocks) > limit:
        report.error(name, "validator.ovf.certificate.chain_too_long", name, len(blocks), limit)
        return None
    chain: list[Certificate] = []
    for number, block in enumerate(blocks, start=1):
        try:
            cert = x509.load_pem_x509_certificate(block)
            cert.subject.rfc4514_string()  # names are parsed lazily: fail here, not later
            cert.issuer.rfc4514_string()
        except Exception as exc:  # ValueError and friends from a hostile encoding
            report.error(
                name, "validator.ovf.certificate.bad_certificate", name, number, _detail(exc)
            )
            return None
        chain.append(cert)
    return chain


def _detail(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _hash(alg: str) -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    if alg == "SHA1":
        return hashes.SHA1()
    return hashes.SHA512() if alg == "SHA512" else hashes.SHA256()


def _verify_signature(
    name: str,
    mf_name: str,
    leaf: Certificate,
    alg: str,
    signature: bytes,
    signed: bytes,
    report: Reporter,
) -> None:
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    try:
        key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        report.error(name, "validator.ovf.certificate.bad_certificate", name, 1, _detail(exc))
        return
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), _hash(alg))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(_hash(alg)))
        else:
            kind = type(key).__name__.lstrip("_").removesuffix("PublicKey") or "?"
            report.error(name, "validator.ovf.certificate.unsupported_key", name, kind)
            return
    except InvalidSignature:
        report.error(name, "validator.ovf.certificate.bad_signature", name, mf_name, alg)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # a signature of the wrong length or encoding for the key
        report.error(name, "validator.ovf.certificate.bad_signature", name, mf_name, alg)


def subject_of(cert: Certificate) -> str:
    return excerpt(cert.subject.rfc4514_string() or "(empty subject)", 200)


def _issued_by(cert: Certificate, issuer: Certificate) -> bool:
    """``cert``'s issuer name is ``issuer``'s subject and ``issuer``'s key signed it."""
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError (names differ), TypeError (key type)
        return False
    return True


def is_self_signed(cert: Certificate) -> bool:
    return cert.subject == cert.issuer and _issued_by(cert, cert)


def _warnings(name: str, chain: list[Certificate], ctx: CheckContext, report: Reporter) -> None:
    leaf = chain[0]
    now = datetime.now(UTC)
    self_signed = is_self_signed(leaf)
    if self_signed:
        report.warning(
            name, "validator.ovf.certificate.self_signed_certificate", name, subject_of(leaf)
        )
    for cert in chain:
        if now > cert.not_valid_after_utc:
            report.warning(
                name,
                "validator.ovf.certificate.expired_certificate",
                name,
                subject_of(cert),
                cert.not_valid_after_utc.isoformat(),
            )
        elif now < cert.not_valid_before_utc:
            report.warning(
                name,
                "validator.ovf.certificate.not_yet_valid_certificate",
                name,
                subject_of(cert),
                cert.not_valid_before_utc.isoformat(),
            )
    path = ctx.options.get(TRUST_STORE_OPTION)
    if not path:
        if not self_signed:
            report.warning(
                name, "validator.ovf.certificate.untrusted_certificate", name, subject_of(leaf)
            )
        return
    store = trust_store(ctx, str(path))
    if store.error is not None:
        report.error(
            name, "validator.ovf.certificate.trust_store_unreadable", name, path, store.error
        )
        return
    if not chains_to(leaf, chain[1:], store.certificates, ctx.limits.certificate_chain):
        report.warning(
            name,
            "validator.ovf.certificate.untrusted_certificate",
            name,
            subject_of(leaf),
        )


def chains_to(
    leaf: Certificate, intermediates: list[Certificate], anchors: list[Certificate], limit: int
) -> bool:
    """Whether ``leaf`` leads to a trust anchor through ``intermediates`` (issuer walk)."""
    current = leaf
    used: set[bytes] = set()
    for _ in range(limit + 1):
        if any(current == anchor for anchor in anchors):
            return True
        if any(_issued_by(current, anchor) for anchor in anchors):
            return True
        step = None
        for cert in intermediates:
            key = cert.fingerprint(_hash("SHA256"))
            if key not in used and cert != current and _issued_by(current, cert):
                used.add(key)
                step = cert
                break
        if step is None:
            return False
        current = step
    return False


def trust_store(ctx: CheckContext, path: str) -> TrustStore:
    """The PEM bundle named by the option, read once per validation."""

    def read() -> TrustStore:
        from cryptography import x509

        try:
            # The user named this file: a link to it is followed, on purpose.
            with open_regular_file(Path(os.path.realpath(path))) as fh:
                data = fh.read(TRUST_STORE_BYTES + 1)
        except OSError as exc:
            return TrustStore(error=exc.strerror or str(exc))
        if len(data) > TRUST_STORE_BYTES:
            return TrustStore(error=f"larger than {TRUST_STORE_BYTES} bytes")
        store = TrustStore()
        for block in pem_certificates(data):
            try:
                store.certificates.append(x509.load_pem_x509_certificate(block))
            except ValueError as exc:
                return TrustStore(error=_detail(exc))
        if not store.certificates:
            return TrustStore(error="no PEM certificate in it")
        return store

    return ctx.cached(_TRUST_KEY, read)
