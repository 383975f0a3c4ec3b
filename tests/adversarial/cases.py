"""The adversarial corpus: named hostile bundles and exactly what each must produce.

Every case is built at test time in an empty case folder (``build(case,
outside)`` returns the path to validate; ``outside`` is a sibling folder for
link targets and canaries that must never be opened).  What is expected is
one of:

- ``ids``: the message ids of ``invalid_files`` (as a set: exactly these when
  ``exact``, at least these otherwise), and ``missing`` when given;
- ``session_error``: the ``SessionError`` id (CLI exit status 2); a damaged
  archive (cut short, not a tar) is a finding instead: ``ids`` (exit status 1);
- ``not_allowed``: ``NotAllowedInCurrentState`` (CLI exit status 2).

``tests/test_adversarial.py`` runs each case through the engine under the
audit hook (nothing outside the case folder opened, nothing written, no
network or subprocess) and a selection through the CLI.
"""

from __future__ import annotations

import gzip
import os
import struct
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .bundles import (
    SAMPLE_DISK,
    SAMPLE_OVF,
    Member,
    descriptor,
    disk_element,
    file_element,
    iso_image,
    manifest_text,
    package,
    sample_members,
    signed,
    symlink,
    tar_bytes,
    vmdk_descriptor,
    vmdk_with_descriptor,
    write,
)

Build = Callable[[Path, Path], Path]


@dataclass(frozen=True)
class Case:
    name: str
    area: str
    build: Build
    ids: tuple[str, ...] = ()
    missing: tuple[str, ...] | None = None
    session_error: str | None = None
    not_allowed: bool = False
    exact: bool = True
    limits: dict[str, int] = field(default_factory=dict)
    #: Command-line tools the builder needs.
    tools: tuple[str, ...] = ()
    #: Also run through the CLI in a subprocess.
    cli: bool = False
    #: A bug in code owned elsewhere makes this case fail (reported): an expected failure.
    known_bug: str = ""
    #: ``ids`` are preview warnings only: the item is valid (exit status 0).
    warnings_only: bool = False

    @property
    def exit_status(self) -> int:
        if self.session_error or self.not_allowed:
            return 2
        if self.warnings_only:
            return 0
        return 1 if self.ids or self.missing else 0

    def expected_ids(self) -> set[str]:
        found = set(self.ids)
        if self.session_error:
            found.add(self.session_error)
        return found


CASES: list[Case] = []


def case(name: str, area: str, **kw: object) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        CASES.append(Case(name, area, build, **kw))  # type: ignore[arg-type]
        return build

    return register


def href_case(name: str, href: str, message: str, cli: bool = False) -> None:
    """A descriptor whose only File has a hostile href (the disk is beside it)."""

    def build(d: Path, outside: Path) -> Path:
        return package(d, descriptor([file_element("file1", href)]), disk=None)

    CASES.append(Case(name, "href", build, ids=(message,), cli=cli))


OVF = "validator.ovf"
DOCTYPE = f"{OVF}.xml.doctype"
MALFORMED = f"{OVF}.xml.malformed"

# -- §4: hrefs that would leave the package ------------------------------------------
href_case("href-dotdot", "../../../../etc/passwd", f"{OVF}.file.href_traversal", cli=True)
href_case("href-dotdot-middle", "disks/../../etc/passwd", f"{OVF}.file.href_traversal")
href_case("href-absolute", "/etc/passwd", f"{OVF}.file.href_absolute")
href_case("href-url-http", "http://127.0.0.1:9/disk.vmdk", f"{OVF}.file.href_url")
href_case("href-url-file", "file:///etc/passwd", f"{OVF}.file.href_url")
href_case("href-url-https-userinfo", "https://user:pw@example.invalid/x", f"{OVF}.file.href_url")
href_case("href-backslash-traversal", "..\\..\\etc\\passwd", f"{OVF}.file.href_traversal")
href_case("href-windows-drive", "C:\\Windows\\win.ini", f"{OVF}.file.href_absolute")
href_case("href-windows-drive-slash", "C:/Windows/win.ini", f"{OVF}.file.href_absolute")
href_case("href-unc", "\\\\server\\share\\disk.vmdk", f"{OVF}.file.href_absolute")
href_case("href-subfolder", "disks/vm-disk1.vmdk", f"{OVF}.file.href_not_plain")
href_case("href-dot", ".", f"{OVF}.file.href_not_plain")
href_case("href-tab", "vm&#9;disk.vmdk", f"{OVF}.file.href_not_plain")
href_case("href-overlong", "a" * 300 + ".vmdk", f"{OVF}.file.href_not_plain")
href_case("href-proc-self", "/proc/self/environ", f"{OVF}.file.href_absolute")


@case("href-duplicate", "href", ids=(f"{OVF}.file.duplicate_href",))
def _dup_href(d: Path, o: Path) -> Path:
    files = [file_element("file1", "vm-disk1.vmdk"), file_element("file2", "vm-disk1.vmdk")]
    return package(d, descriptor(files))


@case("file-id-duplicate", "href", ids=(f"{OVF}.file.duplicate_id",))
def _dup_id(d: Path, o: Path) -> Path:
    files = [file_element("file1", "vm-disk1.vmdk"), file_element("file1", "other.vmdk")]
    return package(d, descriptor(files), extra={"other.vmdk": SAMPLE_DISK})


@case("disk-id-duplicate", "href", ids=(f"{OVF}.disk.duplicate_id",))
def _dup_disk(d: Path, o: Path) -> Path:
    return package(d, descriptor(disks=[disk_element(), disk_element(file_ref=None)]))


# -- §7: XML that tries to reach outside -------------------------------------------
def xml_case(name: str, prolog: str, message: str = DOCTYPE, cli: bool = False, **kw: str) -> None:
    def build(d: Path, outside: Path) -> Path:
        (outside / "canary.txt").write_text("secret\n")
        text = prolog.replace("@CANARY@", str(outside / "canary.txt"))
        return package(d, descriptor(prolog=text, **kw))

    CASES.append(Case(name, "xml", build, ids=(message,), cli=cli))


LAUGHS = (
    '<!DOCTYPE Envelope [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>\n"
)
xml_case("xml-billion-laughs", LAUGHS, info="&j;", cli=True)
xml_case("xml-external-entity-file", '<!DOCTYPE E [<!ENTITY x SYSTEM "file://@CANARY@">]>\n',
         info="&x;")  # fmt: skip
xml_case("xml-external-entity-http",
         '<!DOCTYPE E [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>\n', info="&x;")  # fmt: skip
xml_case("xml-external-dtd", '<!DOCTYPE Envelope SYSTEM "file://@CANARY@">\n')
xml_case("xml-external-dtd-http", '<!DOCTYPE Envelope PUBLIC "-//X//Y" "http://127.0.0.1:9/d">\n')
xml_case("xml-parameter-entity",
         '<!DOCTYPE E [<!ENTITY % p SYSTEM "file://@CANARY@"> %p;]>\n')  # fmt: skip
xml_case("xml-doctype-only", "<!DOCTYPE Envelope>\n")
xml_case("xml-external-dtd-etc-passwd", '<!DOCTYPE Envelope SYSTEM "/etc/passwd">\n')
xml_case("xml-external-dtd-dev-zero", '<!DOCTYPE Envelope SYSTEM "/dev/zero">\n')
xml_case("xml-internal-entity-unused", '<!DOCTYPE Envelope [<!ENTITY x "y">]>\n')


@case("xml-external-dtd-fifo", "xml", ids=(DOCTYPE,), cli=True)
def _dtd_fifo(d: Path, o: Path) -> Path:
    # Before xmlsafe refused every external load, libxml2 opened this and blocked forever.
    os.mkfifo(o / "fifo")
    return package(d, descriptor(prolog=f'<!DOCTYPE Envelope SYSTEM "{o / "fifo"}">\n'))


@case("xml-xinclude-not-run", "xml", ids=())
def _xinclude(d: Path, o: Path) -> Path:
    (o / "canary.txt").write_text("secret\n")
    inc = (
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{o / "canary.txt"}" '
        'parse="text"/>'
    )
    return package(
        d,
        descriptor(
            system_extra=f"<AnnotationSection><Info>a</Info><Annotation>{inc}</Annotation>"
            "</AnnotationSection>"
        ),
    )


@case("xml-stylesheet-pi-not-fetched", "xml", ids=())
def _pi(d: Path, o: Path) -> Path:
    (o / "canary.xsl").write_text("<x/>")
    pi = f'<?xml-stylesheet type="text/xsl" href="file://{o / "canary.xsl"}"?>\n'
    return package(d, descriptor(prolog=pi))


@case("xml-schema-location-not-fetched", "xml", ids=())
def _schema(d: Path, o: Path) -> Path:
    (o / "canary.xsd").write_text("<x/>")
    attrs = f' xsi:schemaLocation="{descriptor.__module__} file://{o / "canary.xsd"}"'
    return package(d, descriptor(root_attrs=attrs))


@case("xml-not-utf8", "xml", ids=(MALFORMED,))
def _latin1(d: Path, o: Path) -> Path:
    return package(d, descriptor(info="caf\xe9").encode("latin-1"))


@case("xml-utf16-valid", "xml", ids=())
def _utf16(d: Path, o: Path) -> Path:
    text = descriptor().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    return package(d, text.encode("utf-16"))


@case("xml-random-bytes", "xml", ids=(MALFORMED,), cli=True)
def _random_ovf(d: Path, o: Path) -> Path:
    return package(d, os.urandom(4096).replace(b"<", b"."), disk=None)


@case("xml-zero-bytes", "xml", ids=(MALFORMED,))
def _empty_ovf(d: Path, o: Path) -> Path:
    return package(d, b"", disk=None)


@case("xml-truncated", "xml", ids=(MALFORMED,))
def _truncated_ovf(d: Path, o: Path) -> Path:
    return package(d, SAMPLE_OVF[: len(SAMPLE_OVF) // 2])


@case("xml-nul-byte", "xml", ids=(MALFORMED,))
def _nul_ovf(d: Path, o: Path) -> Path:
    return package(d, descriptor(info="a\x00b"))


@case("xml-wrong-root", "xml", ids=(f"{OVF}.envelope.not_envelope",))
def _wrong_root(d: Path, o: Path) -> Path:
    return package(d, '<?xml version="1.0"?><html><body/></html>', disk=None)


@case("xml-wrong-namespace", "xml", ids=(f"{OVF}.envelope.bad_namespace",))
def _wrong_ns(d: Path, o: Path) -> Path:
    return package(d, descriptor(ns="http://example.invalid/ovf"))


@case("xml-huge-attribute", "xml", ids=(f"{OVF}.file.href_not_plain",))
def _huge_attr(d: Path, o: Path) -> Path:
    return package(d, descriptor([file_element("file1", "x" * 2_000_000)]), disk=None)


@case("xml-attribute-over-parser-limit", "xml", ids=(MALFORMED,))
def _giant_attr(d: Path, o: Path) -> Path:
    return package(d, descriptor([file_element("file1", "x" * 11_000_000)]), disk=None)


@case("xml-deep-nesting", "xml", ids=(f"{OVF}.limit.descriptor_depth",))
def _deep(d: Path, o: Path) -> Path:
    nest = "<a>" * 200 + "</a>" * 200
    return package(d, descriptor(system_extra=f"<Annotation>{nest}</Annotation>"))


@case("xml-very-deep-nesting", "xml", ids=(MALFORMED,))
def _very_deep(d: Path, o: Path) -> Path:
    nest = "<a>" * 100_000 + "</a>" * 100_000
    return package(d, descriptor(system_extra=nest))


@case("xml-nested-collections-limit-raised", "xml", ids=(f"{OVF}.content.nested_in_system",),
      limits={"descriptor_depth": 100_000})  # fmt: skip
def _nested_collections(d: Path, o: Path) -> Path:
    # The content walk recurses: with the depth limit raised, libxml2's own bound holds it.
    n = 240
    nest = "".join(f'<VirtualSystemCollection ovf:id="c{i}"><Info>x</Info>' for i in range(n))
    return package(d, descriptor(system_extra=nest + "</VirtualSystemCollection>" * n))


@case("xml-many-elements", "xml", ids=(f"{OVF}.limit.descriptor_elements",),
      limits={"descriptor_elements": 1000})  # fmt: skip
def _many(d: Path, o: Path) -> Path:
    return package(d, descriptor(system_extra="<x/>" * 5000))


@case("xml-oversized", "xml", ids=(f"{OVF}.limit.descriptor_size",),
      limits={"descriptor_bytes": 4096})  # fmt: skip
def _big(d: Path, o: Path) -> Path:
    return package(d, descriptor(system_extra="<!-- " + "p" * 10_000 + " -->"))


@case("xml-many-references", "xml", ids=(f"{OVF}.limit.references",), limits={"references": 50})
def _refs(d: Path, o: Path) -> Path:
    files = [file_element(f"f{i}", f"d{i}.vmdk") for i in range(60)]
    return package(d, descriptor(files, disks=[]), disk=None)


# -- names and links inside a bundle ----------------------------------------------
@case("link-disk-to-etc-passwd", "links", ids=("validator.core.file.link",), cli=True)
def _link_disk(d: Path, o: Path) -> Path:
    package(d, disk=None)
    symlink("/etc/passwd", d / "vm-disk1.vmdk")
    return d


@case("link-disk-lone-descriptor", "links", ids=("validator.core.file.link",))
def _link_disk_ovf(d: Path, o: Path) -> Path:
    (o / "disk.vmdk").write_bytes(SAMPLE_DISK)
    path = package(d, disk=None)
    symlink(o / "disk.vmdk", d / "vm-disk1.vmdk")
    return path


@case("link-descriptor-in-folder", "links", ids=("validator.core.file.link",))
def _link_desc(d: Path, o: Path) -> Path:
    (o / "vm.ovf").write_text(descriptor())
    write(d, {"vm-disk1.vmdk": SAMPLE_DISK, "real.ovf": descriptor()})
    symlink(o / "vm.ovf", d / "vm.ovf")
    return d


@case("link-relative-dotdot", "links", ids=("validator.core.file.link",))
def _link_rel(d: Path, o: Path) -> Path:
    (o / "disk.vmdk").write_bytes(SAMPLE_DISK)
    path = package(d, disk=None)
    symlink(f"../{o.name}/disk.vmdk", d / "vm-disk1.vmdk")
    return path


@case("link-to-directory", "links", ids=("validator.core.file.link",))
def _link_dir(d: Path, o: Path) -> Path:
    package(d, disk=None)
    symlink("/etc", d / "vm-disk1.vmdk")
    return d


@case("link-dangling", "links", ids=("validator.core.file.link",))
def _dangling(d: Path, o: Path) -> Path:
    package(d, disk=None)
    symlink(o / "nothing-here", d / "vm-disk1.vmdk")
    return d


@case("fifo-as-disk", "links", ids=("validator.core.file.not_regular",), cli=True)
def _fifo(d: Path, o: Path) -> Path:
    package(d, disk=None)
    os.mkfifo(d / "vm-disk1.vmdk")
    return d


@case("fifo-as-disk-lone-descriptor", "links", ids=("validator.core.file.not_regular",))
def _fifo_ovf(d: Path, o: Path) -> Path:
    path = package(d, disk=None)
    os.mkfifo(d / "vm-disk1.vmdk")
    return path


@case("hardlink-is-a-plain-file", "links", ids=())
def _hardlink(d: Path, o: Path) -> Path:
    (o / "disk.vmdk").write_bytes(SAMPLE_DISK)
    package(d, disk=None)
    os.link(o / "disk.vmdk", d / "vm-disk1.vmdk")
    return d


@case("name-not-utf8", "names", ids=("validator.core.file.bad_name",), cli=True)
def _bad_name(d: Path, o: Path) -> Path:
    package(d)
    fd = os.open(os.fsencode(d) + b"/\xff\xfe-junk.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    return d


@case("name-with-newline", "names", ids=("validator.core.file.bad_name",), cli=True)
def _nl_name(d: Path, o: Path) -> Path:
    package(d)
    (d / "evil\nname.vmdk").write_bytes(b"x")
    return d


@case("name-with-backslash", "names", ids=("validator.core.file.bad_name",))
def _bs_name(d: Path, o: Path) -> Path:
    package(d)
    (d / "..\\..\\x.vmdk").write_bytes(b"x")
    return d


@case("name-255-bytes", "names", ids=(f"{OVF}.file.unreferenced",))
def _long_name(d: Path, o: Path) -> Path:
    package(d)
    (d / ("é" * 126 + ".x")).write_bytes(b"x")
    return d


@case("name-case-trick-descriptors", "names", ids=(f"{OVF}.session.multiple_descriptors",))
def _case_trick(d: Path, o: Path) -> Path:
    package(d, extra={"VM.OVF": descriptor()})
    return d


@case("name-descriptor-wrong-suffix", "names", session_error="validator.core.input.no_type")
def _no_ovf(d: Path, o: Path) -> Path:
    write(d, {"vm.ovf.bak": descriptor(), "notes.txt": "x"})
    return d


@case("disk-in-subfolder-ignored", "names", ids=(), missing=("vm-disk1.vmdk",))
def _subfolder(d: Path, o: Path) -> Path:
    package(d, disk=None, extra={"sub/vm-disk1.vmdk": SAMPLE_DISK})
    return d


@case("folder-over-max-files", "limits", session_error="validator.core.input.too_many_files",
      limits={"max_files": 5})  # fmt: skip
def _many_files(d: Path, o: Path) -> Path:
    package(d, extra={f"x{i}.bin": b"" for i in range(10)})
    return d


# -- session manifests (docs/session-manifest.md) ------------------------------------
def session_case(name: str, body: str, expect: dict[str, object], cli: bool = False) -> None:
    def build(d: Path, outside: Path) -> Path:
        (outside / "canary.txt").write_text("secret\n")
        package(d / "bundle")
        (d / "link-out").symlink_to(outside, target_is_directory=True)
        text = body.replace("@OUT@", str(outside)).replace("@OUTNAME@", outside.name)
        write(d, {"session.yaml": text})
        return d / "session.yaml"

    CASES.append(Case(name, "session-manifest", build, cli=cli, **expect))  # type: ignore[arg-type]


HEAD = "validator-session: 1\nitem_type: ovf\nfiles:\n  - {name: vm.ovf, path: bundle/vm.ovf}\n"
OUTSIDE = {"ids": ("validator.core.file.outside_bundle",), "exact": False}
session_case("session-path-dotdot", HEAD + "  - {name: x, path: ../@OUTNAME@/canary.txt}\n",
             OUTSIDE, cli=True)  # fmt: skip
session_case("session-path-absolute", HEAD + "  - {name: x, path: /etc/passwd}\n", OUTSIDE)
session_case("session-path-canary-absolute", HEAD + "  - {name: x, path: @OUT@/canary.txt}\n",
             OUTSIDE)  # fmt: skip
session_case("session-path-via-link", HEAD + "  - {name: x, path: link-out/canary.txt}\n", OUTSIDE)
session_case("session-path-home", HEAD + "  - {name: x, path: ~root/.bashrc}\n", OUTSIDE)
session_case("session-path-backslash", HEAD + "  - {name: x, path: '..\\..\\etc\\passwd'}\n",
             OUTSIDE)  # fmt: skip
session_case("session-name-with-nul", HEAD + '  - {name: "x\\0y"}\n',
             {"session_error": "validator.core.manifest.bad_name"})  # fmt: skip
session_case("session-path-with-nul", HEAD + '  - {name: x, path: "bundle/vm.ovf\\0/etc/passwd"}\n',
             OUTSIDE)  # fmt: skip
session_case("session-yaml-surrogate", HEAD + '  - {name: "\\udcff.vmdk"}\n',
             {"session_error": "validator.core.manifest.bad_yaml"})  # fmt: skip


@case("session-json-surrogate-name", "session-manifest",
      session_error="validator.core.manifest.bad_name", cli=True)  # fmt: skip
def _json_surrogate(d: Path, o: Path) -> Path:
    write(d, {"s.json": '{"validator-session": 1, "files": [{"name": "\\udcff\\n.vmdk"}]}'})
    return d / "s.json"


session_case("session-path-to-dev", HEAD + "  - {name: x, path: /dev/zero}\n", OUTSIDE)
session_case("session-name-with-slash", HEAD + "  - {name: ../x}\n",
             {"session_error": "validator.core.manifest.bad_name"})  # fmt: skip
session_case("session-yaml-python-tag",
             "validator-session: 1\nfiles: !!python/object/apply:os.system ['true']\n",
             {"session_error": "validator.core.manifest.bad_yaml"})  # fmt: skip
session_case(
    "session-yaml-alias-bomb",
    "validator-session: 1\nx: &a [1,1,1,1,1,1,1,1,1,1]\n"
    + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
              for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    + "files: [*i]\n",
    {"session_error": "validator.core.manifest.unknown_keys"},
)  # fmt: skip
session_case("session-yaml-deep-nesting", "validator-session: 1\nfiles: " + "[" * 50_000 + "\n",
             {"session_error": "validator.core.manifest.bad_yaml"})  # fmt: skip
session_case("session-size-not-integer", HEAD + "  - {name: y, size: .inf}\n",
             {"session_error": "validator.core.manifest.bad_size"})  # fmt: skip
session_case("session-not-received", HEAD + "  - {name: vm-disk1.vmdk, status: TRANSFERRING}\n",
             {"not_allowed": True})  # fmt: skip
session_case(
    "session-size-mismatch",
    HEAD + "  - {name: vm-disk1.vmdk, path: bundle/vm-disk1.vmdk, size: 1}\n",
    {"not_allowed": True},
)
session_case(
    "session-checksum-mismatch",
    HEAD + "  - name: vm-disk1.vmdk\n    path: bundle/vm-disk1.vmdk\n"
    "    checksum_info: {algorithm: SHA256, checksum: '00'}\n",
    {"ids": ("validator.core.file.checksum_mismatch",)},
)


@case("session-json-deep-nesting", "session-manifest",
      session_error="validator.core.manifest.bad_json")  # fmt: skip
def _json_deep(d: Path, o: Path) -> Path:
    write(d, {"s.json": '{"validator-session": 1, "files": ' + "[" * 100_000 + "]" * 100_000 + "}"})
    return d / "s.json"


@case("session-not-utf8", "session-manifest", session_error="validator.core.manifest.not_utf8")
def _sm_latin(d: Path, o: Path) -> Path:
    write(d, {"s.yaml": "validator-session: 1\nfiles: []\n# caf\xe9\n".encode("latin-1")})
    return d / "s.yaml"


@case("session-oversized", "session-manifest", session_error="validator.core.manifest.too_large",
      limits={"manifest_bytes": 1024})  # fmt: skip
def _sm_big(d: Path, o: Path) -> Path:
    write(d, {"s.yaml": "validator-session: 1\nfiles: []\n" + "#" * 5000 + "\n"})
    return d / "s.yaml"


@case("session-over-max-files", "session-manifest",
      session_error="validator.core.input.too_many_files", limits={"max_files": 3})  # fmt: skip
def _sm_many(d: Path, o: Path) -> Path:
    body = "".join(f"  - {{name: f{i}}}\n" for i in range(5))
    write(d, {"s.yaml": "validator-session: 1\nitem_type: ovf\nfiles:\n" + body})
    return d / "s.yaml"


@case("session-manifest-is-a-link", "session-manifest",
      session_error="validator.core.manifest.unreadable")  # fmt: skip
def _sm_link(d: Path, o: Path) -> Path:
    (o / "s.yaml").write_text("validator-session: 1\nfiles: []\n")
    symlink(o / "s.yaml", d / "s.yaml")
    return d / "s.yaml"


@case("session-manifest-is-a-fifo", "session-manifest",
      session_error="validator.core.manifest.unreadable")  # fmt: skip
def _sm_fifo(d: Path, o: Path) -> Path:
    # Opened blocking, this hung forever; now opened non-blocking and refused.
    os.mkfifo(d / "s.yaml")
    return d / "s.yaml"


# -- manifests (§4) ------------------------------------------------------------------
MF = "validator.ovf.manifest"


def mf_case(name: str, lines: Callable[[Path], str], *ids: str, **kw: object) -> None:
    def build(d: Path, outside: Path) -> Path:
        path = package(d)
        write(d, {"vm.mf": lines(d)})
        return path

    CASES.append(Case(name, "manifest", build, ids=ids, **kw))  # type: ignore[arg-type]


def _good_mf(d: Path) -> str:
    return manifest_text(d, ["vm.ovf", "vm-disk1.vmdk"])


def _tampered_disk_mf(d: Path) -> str:
    text = _good_mf(d)
    disk = bytearray((d / "vm-disk1.vmdk").read_bytes())
    disk[-600] ^= 0xFF
    (d / "vm-disk1.vmdk").write_bytes(bytes(disk))
    return text


mf_case("mf-digest-mismatch", _tampered_disk_mf, f"{MF}.digest_mismatch", exact=False, cli=True)
mf_case("mf-names-outside", lambda d: _good_mf(d) + "SHA256(../../etc/passwd)= " + "0" * 64
        + "\nSHA256(/etc/shadow)= " + "0" * 64 + "\n", f"{MF}.unreferenced")  # fmt: skip
mf_case("mf-name-with-spaces", lambda d: _good_mf(d).replace("(vm.ovf)", "( vm.ovf )"),
        f"{MF}.name_spaces", f"{MF}.unlisted")  # fmt: skip
mf_case("mf-md5", lambda d: _good_mf(d).replace("SHA256(vm.ovf)", "MD5(vm.ovf)"),
        f"{MF}.bad_algorithm", f"{MF}.unlisted")  # fmt: skip
mf_case("mf-duplicate-line", lambda d: _good_mf(d) * 2, f"{MF}.duplicate")
mf_case("mf-short-digest", lambda d: "SHA256(vm.ovf)= abcd\n" + _good_mf(d).split("\n")[1] + "\n",
        f"{MF}.bad_digest_length", f"{MF}.unlisted")  # fmt: skip
mf_case("mf-disk-not-listed", lambda d: _good_mf(d).split("\n")[0] + "\n", f"{MF}.unlisted")
mf_case("mf-binary-garbage", lambda d: os.urandom(300).hex() + "\n\x00\xff", f"{MF}.malformed",
        f"{MF}.unlisted")  # fmt: skip


# -- certificates (§4) -------------------------------------------------------------------
CERT = "validator.ovf.certificate"


def cert_case(name: str, edit: Callable[[Path], None], *ids: str, **kw: object) -> None:
    def build(d: Path, outside: Path) -> Path:
        path = package(d)
        signed(d)
        edit(d)
        return path

    CASES.append(Case(name, "certificate", build, ids=ids, tools=("openssl",), **kw))  # type: ignore[arg-type]


def _edit(name: str, fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / name).write_bytes(fn((d / name).read_bytes()))

    return edit


def _first_line(fn: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        first, _, rest = data.partition(b"\n")
        return fn(first) + b"\n" + rest

    return edit


def _flip_signature(first: bytes) -> bytes:
    return first[:-4] + (b"0000" if not first.endswith(b"0000") else b"1111")


cert_case(
    "cert-self-signed-valid", lambda d: None, f"{CERT}.self_signed_certificate", warnings_only=True
)
cert_case("cert-without-manifest", lambda d: (d / "vm.mf").unlink(), f"{CERT}.no_manifest")
cert_case("cert-signature-tampered", _edit("vm.cert", _first_line(_flip_signature)),
          f"{CERT}.bad_signature", exact=False, cli=True)  # fmt: skip
cert_case("cert-manifest-tampered", _edit("vm.mf", lambda b: b.replace(b"SHA256(vm.ovf)",
          b"SHA256(vm.ovf) ")), f"{CERT}.bad_signature", exact=False)  # fmt: skip
cert_case("cert-bad-first-line", _edit("vm.cert", _first_line(lambda f: b"not a signature")),
          f"{CERT}.bad_signature_line")  # fmt: skip
cert_case("cert-names-another-manifest", _edit("vm.cert", _first_line(
    lambda f: f.replace(b"(vm.mf)", b"(../../etc/passwd)"))), f"{CERT}.wrong_manifest")  # fmt: skip
cert_case("cert-md5", _edit("vm.cert", _first_line(lambda f: f.replace(b"SHA256", b"MD5"))),
          f"{CERT}.bad_algorithm")  # fmt: skip
cert_case("cert-no-pem", _edit("vm.cert", lambda b: b.partition(b"\n")[0] + b"\n"),
          f"{CERT}.no_certificate")  # fmt: skip
cert_case("cert-garbage-pem", _edit("vm.cert", lambda b: b.partition(b"\n")[0]
          + b"\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
          f"{CERT}.bad_certificate")  # fmt: skip
cert_case("cert-chain-too-long", _edit("vm.cert", lambda b: b + b.partition(b"\n")[2] * 12),
          f"{CERT}.chain_too_long")  # fmt: skip


# -- gzip and chunks (§4) -------------------------------------------------------------------
GZ = "validator.ovf.gzip"


def gz_case(name: str, content: Callable[[], bytes], *ids: str, **kw: object) -> None:
    def build(d: Path, outside: Path) -> Path:
        files = [file_element("file1", "vm-disk1.vmdk", ' ovf:compression="gzip"')]
        return package(d, descriptor(files), disk=content())

    CASES.append(Case(name, "gzip", build, ids=ids, **kw))  # type: ignore[arg-type]


gz_case("gzip-valid", lambda: gzip.compress(SAMPLE_DISK))
gz_case("gzip-bomb", lambda: gzip.compress(SAMPLE_DISK + bytes(8 << 20), 9), f"{GZ}.too_large",
        limits={"gzip_decompressed_bytes": 1 << 20}, cli=True)  # fmt: skip
gz_case("gzip-truncated", lambda: gzip.compress(SAMPLE_DISK)[:-100], f"{GZ}.truncated",
        exact=False)  # fmt: skip
gz_case("gzip-not-gzip", lambda: SAMPLE_DISK, f"{GZ}.not_gzip")
gz_case(
    "gzip-trailing-garbage", lambda: gzip.compress(SAMPLE_DISK) + b"tail", f"{GZ}.trailing_data"
)
gz_case("gzip-corrupt", lambda: (lambda g: g[:40] + bytes(200) + g[240:])(
    gzip.compress(SAMPLE_DISK)), f"{GZ}.corrupt", exact=False)  # fmt: skip


@case("chunk-missing", "chunks", ids=(), missing=("vm-disk1.vmdk.000000001",))
def _chunk_missing(d: Path, o: Path) -> Path:
    half = len(SAMPLE_DISK) // 2
    files = [
        file_element(
            "file1", "vm-disk1.vmdk", f' ovf:chunkSize="{half}" ovf:size="{len(SAMPLE_DISK)}"'
        )
    ]
    return package(d, descriptor(files), disk=None,
                   extra={"vm-disk1.vmdk.000000000": SAMPLE_DISK[:half]})  # fmt: skip


@case("chunk-count-absurd", "chunks", ids=("validator.ovf.chunk.too_many",), exact=False)
def _chunk_absurd(d: Path, o: Path) -> Path:
    attrs = ' ovf:chunkSize="1" ovf:size="99999999999999999999"'
    files = [file_element("file1", "vm-disk1.vmdk", attrs)]
    return package(d, descriptor(files), disk=None,
                   extra={"vm-disk1.vmdk.000000000": SAMPLE_DISK[:1]})  # fmt: skip


@case("size-absurd", "chunks", ids=("validator.ovf.size.mismatch",))
def _size_absurd(d: Path, o: Path) -> Path:
    files = [file_element("file1", "vm-disk1.vmdk", ' ovf:size="99999999999999999999"')]
    return package(d, descriptor(files))


# -- VMDK (§5): CVE-2022-47951 and friends ------------------------------------------------
VM = "validator.ovf.vmdk"


def vmdk_case(name: str, disk: Callable[[], bytes], *ids: str, **kw: object) -> None:
    def build(d: Path, outside: Path) -> Path:
        return package(d, disk=disk())

    CASES.append(Case(name, "vmdk", build, ids=ids, **kw))  # type: ignore[arg-type]


def _desc(fn: Callable[[str], str]) -> Callable[[], bytes]:
    return lambda: vmdk_with_descriptor(fn(vmdk_descriptor()))


CREATE = 'createType="streamOptimized"'
EXTENT = 'RW 131072 SPARSE "vm-disk1.vmdk"'
vmdk_case("vmdk-createtype-case-trick", _desc(lambda t: t.replace(
    CREATE, 'CREATETYPE="streamOptimized"\ncreateType="monolithicFlat"')),
    f"{VM}.descriptor_key_case", exact=False, cli=True)  # fmt: skip
vmdk_case("vmdk-flat-extent-etc-passwd", _desc(lambda t: t.replace(
    EXTENT, 'RW 2048 FLAT "/etc/passwd" 0')), f"{VM}.bad_extent_type", exact=False)  # fmt: skip
vmdk_case("vmdk-second-extent-outside", _desc(lambda t: t.replace(
    EXTENT, EXTENT + '\nRW 2048 SPARSE "../../../etc/shadow"')), f"{VM}.extent_count",
    exact=False)  # fmt: skip
vmdk_case("vmdk-extent-lowercase-flat", _desc(lambda t: t.replace(
    EXTENT, 'RW 131072 flat "/etc/passwd" 0')), f"{VM}.extent_count", f"{VM}.descriptor_bad_line",
    exact=False)  # fmt: skip
vmdk_case("vmdk-duplicate-key", _desc(lambda t: t.replace(CREATE, CREATE + "\n" + CREATE)),
          f"{VM}.descriptor_duplicate_key")  # fmt: skip
vmdk_case("vmdk-has-parent", _desc(lambda t: t.replace("parentCID=ffffffff",
          'parentCID=12345678\nparentFileNameHint="/etc/passwd"')), f"{VM}.has_parent",
          exact=False)  # fmt: skip
vmdk_case("vmdk-monolithic-flat", _desc(lambda t: t.replace(CREATE, 'createType="monolithicFlat"')),
          f"{VM}.bad_create_type", exact=False)  # fmt: skip
vmdk_case("vmdk-descriptor-not-utf8", lambda: SAMPLE_DISK[:512] + b"# Disk\xff\xfe\xc3"
          + SAMPLE_DISK[521:], f"{VM}.descriptor_not_text", exact=False)  # fmt: skip
vmdk_case("vmdk-zero-capacity", lambda: SAMPLE_DISK[:12] + struct.pack("<Q", 0) + SAMPLE_DISK[20:],
          f"{VM}.zero_capacity", exact=False, cli=True)  # fmt: skip
vmdk_case("vmdk-huge-capacity", lambda: SAMPLE_DISK[:12] + struct.pack("<Q", (1 << 64) - 1)
          + SAMPLE_DISK[20:], f"{VM}.capacity_exceeds_declared", exact=False)  # fmt: skip
vmdk_case("vmdk-bad-magic", lambda: b"XXXX" + SAMPLE_DISK[4:], f"{VM}.not_vmdk")
vmdk_case("vmdk-truncated", lambda: SAMPLE_DISK[: len(SAMPLE_DISK) // 2], f"{VM}.truncated",
          exact=False)  # fmt: skip
vmdk_case("vmdk-zero-bytes", lambda: b"", f"{VM}.too_short", exact=False)
vmdk_case("vmdk-random-bytes", lambda: os.urandom(65536), f"{VM}.not_vmdk")
vmdk_case("vmdk-text-descriptor-as-disk", lambda: vmdk_descriptor().replace(EXTENT,
          'RW 2048 FLAT "/etc/passwd" 0').encode(), f"{VM}.too_short")  # fmt: skip


# -- OVA (§4): members that are not plain files ------------------------------------------------
OVA = "validator.ovf.ova"


def ova_case(name: str, members: Callable[[], list[Member]], *ids: str, **kw: object) -> None:
    def build(d: Path, outside: Path) -> Path:
        write(d, {"vm.ova": tar_bytes(members())})
        return d / "vm.ova"

    CASES.append(Case(name, "ova", build, ids=ids, **kw))  # type: ignore[arg-type]


def _plus(*extra: Member) -> Callable[[], list[Member]]:
    return lambda: [*sample_members(), *extra]


ova_case("ova-valid", sample_members)
ova_case("ova-symlink-member", _plus(Member("evil.vmdk", kind=tarfile.SYMTYPE,
         linkname="/etc/passwd")), f"{OVA}.member_link", cli=True)  # fmt: skip
ova_case("ova-hardlink-member", _plus(Member("evil.vmdk", kind=tarfile.LNKTYPE,
         linkname="/etc/passwd")), f"{OVA}.member_link")  # fmt: skip
ova_case("ova-dotdot-member", _plus(Member("../../evil.vmdk", b"x")), f"{OVA}.member_bad_name")
ova_case("ova-absolute-member", _plus(Member("/etc/cron.d/evil", b"x")), f"{OVA}.member_bad_name")
ova_case("ova-device-member", _plus(Member("dev.vmdk", kind=tarfile.CHRTYPE)),
         f"{OVA}.member_device")  # fmt: skip
ova_case("ova-fifo-member", _plus(Member("fifo.vmdk", kind=tarfile.FIFOTYPE)), f"{OVA}.member_fifo")
ova_case("ova-directory-member", _plus(Member("dir", kind=tarfile.DIRTYPE)),
         f"{OVA}.member_directory")  # fmt: skip
ova_case("ova-duplicate-member", _plus(Member("vm-disk1.vmdk", b"second copy")),
         f"{OVA}.duplicate_member")  # fmt: skip
ova_case("ova-descriptor-not-first", lambda: sample_members()[::-1], f"{OVA}.descriptor_not_first")


@case("ova-pax-path-traversal", "ova", ids=(f"{OVA}.member_bad_name",))
def _ova_pax(d: Path, o: Path) -> Path:
    name = "../" * 40 + "etc/cron.d/evil"  # > 100 bytes: the name travels in a pax header
    data = tar_bytes([*sample_members(), Member(name, b"x")], fmt=tarfile.PAX_FORMAT)
    write(d, {"vm.ova": data})
    return d / "vm.ova"


@case("ova-gnu-longname-traversal", "ova", ids=(f"{OVA}.member_bad_name",))
def _ova_gnu(d: Path, o: Path) -> Path:
    name = "a/" * 60 + "../" * 70 + "evil"
    data = tar_bytes([*sample_members(), Member(name, b"x")], fmt=tarfile.GNU_FORMAT)
    write(d, {"vm.ova": data})
    return d / "vm.ova"


@case("ova-member-size-past-the-end", "ova", ids=(f"{OVA}.truncated",))
def _ova_size(d: Path, o: Path) -> Path:
    data = bytearray(tar_bytes(sample_members()))
    data[124:136] = b"77777777777\0"  # the first member claims 8 GiB - 1
    chk = sum(data[:148]) + 8 * 32 + sum(data[156:512])
    data[148:156] = f"{chk:06o}\0 ".encode()
    write(d, {"vm.ova": bytes(data)})
    return d / "vm.ova"


@case("ova-bad-header-checksum", "ova", ids=(f"{OVA}.bad_header",))
def _ova_chk(d: Path, o: Path) -> Path:
    data = bytearray(tar_bytes(sample_members()))
    second_header = 512 + ((len(descriptor()) + 511) // 512) * 512
    data[second_header + 3] ^= 0x20  # a name byte: the header's checksum no longer matches
    write(d, {"vm.ova": bytes(data)})
    return d / "vm.ova"


@case("ova-truncated", "ova", ids=(f"{OVA}.truncated",), cli=True)
def _ova_cut(d: Path, o: Path) -> Path:
    data = tar_bytes(sample_members())
    write(d, {"vm.ova": data[: len(data) // 2 + 100]})
    return d / "vm.ova"


@case("ova-random-bytes", "ova", ids=(f"{OVA}.not_tar",))
def _ova_random(d: Path, o: Path) -> Path:
    write(d, {"vm.ova": os.urandom(10_000)})
    return d / "vm.ova"


@case("ova-zero-bytes", "ova", ids=(f"{OVA}.truncated",))
def _ova_empty(d: Path, o: Path) -> Path:
    write(d, {"vm.ova": b""})
    return d / "vm.ova"


@case("ova-is-a-fifo", "ova", session_error="validator.core.input.not_regular",
      limits={"plugin_seconds": 2},
)  # fmt: skip
def _ova_fifo(d: Path, o: Path) -> Path:
    os.mkfifo(d / "vm.ova")
    return d / "vm.ova"


# -- ISO (§6) --------------------------------------------------------------------------------
ISO = "validator.iso"


def iso_case(name: str, edit: Callable[[bytes], bytes], *ids: str, **kw: object) -> None:
    def build(d: Path, outside: Path) -> Path:
        data = edit(iso_image(outside, outside / "clean.iso"))
        write(d, {"image.iso": data})
        return d / "image.iso"

    CASES.append(Case(name, "iso", build, ids=ids, tools=("genisoimage",), **kw))  # type: ignore[arg-type]


def _pvd_field(at: int, value: bytes) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        out = bytearray(data)
        out[16 * 2048 + at : 16 * 2048 + at + len(value)] = value
        return bytes(out)

    return edit


iso_case("iso-valid", lambda b: b)
iso_case("iso-truncated", lambda b: b[: len(b) // 2], f"{ISO}.image.truncated", exact=False,
         cli=True)  # fmt: skip
iso_case("iso-random-bytes", lambda b: os.urandom(len(b)), f"{ISO}.image.not_iso")
iso_case("iso-zero-bytes", lambda b: b"", f"{ISO}.image.empty")
iso_case("iso-endian-mismatch", _pvd_field(80, struct.pack("<I", 7)),
         f"{ISO}.descriptor.endian_mismatch", exact=False)  # fmt: skip
iso_case("iso-bad-block-size", _pvd_field(128, struct.pack("<H", 3) + struct.pack(">H", 3)),
         f"{ISO}.descriptor.bad_block_size", exact=False)  # fmt: skip
iso_case("iso-no-terminator", lambda b: b[: 16 * 2048] + bytes(len(b) - 16 * 2048),
         f"{ISO}.image.not_iso", exact=False)  # fmt: skip
