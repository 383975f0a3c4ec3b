"""The adversarial corpus: named hostile bundles and exactly what each must produce.

Every case is built at test time in an empty case folder (``build(case,
outside)`` returns the path to validate; ``outside`` is a sibling folder for
link targets and canaries that must never be opened).  What is expected is
one of:

- ``ids``: the message ids of ``invalid_files`` (as a set: exactly these when
  ``exact``, at least these otherwise), and ``missing`` when given;
- ``session_error``: the ``SessionError`` id (CLI exit status 2);
- ``not_allowed``: ``NotAllowedInCurrentState`` (CLI exit status 2).

``tests/test_adversarial.py`` runs each case through the engine under the
audit hook (nothing outside the case folder opened, nothing written, no
network or subprocess) and a selection through the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .bundles import (
    SAMPLE_DISK,
    SAMPLE_OVF,
    descriptor,
    disk_element,
    file_element,
    package,
    symlink,
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

    @property
    def exit_status(self) -> int:
        if self.session_error or self.not_allowed:
            return 2
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
    return package(d, descriptor(system_extra=f"<Annotation>{inc}</Annotation>"))


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
