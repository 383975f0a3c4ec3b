"""Message catalogs: every id used in code is in every shipped catalog, with the same
placeholders, and no catalog entry is unused."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from validator.messages import (
    SHIPPED_LOCALES,
    Catalogs,
    CatalogSource,
    format_template,
    locale_from_environment,
    normalize_locale,
    placeholders,
)
from validator.registry import build_registry

from .conftest import ROOT

SOURCE_DIRS = [ROOT / "validator", ROOT / "plugins"]
ID = re.compile(r"^validator\.[a-z0-9_]+(\.[a-z0-9_]+)+$")


def catalog_dirs() -> list[Path]:
    return sorted({p.parent for d in SOURCE_DIRS for p in d.rglob("catalogs/en.toml")})


def load(path: Path) -> dict[str, str]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert all(isinstance(v, str) for v in data.values()), path
    return data


def ids_in_code() -> dict[str, list[str]]:
    """Every string literal that looks like a message id, with where it is used."""
    found: dict[str, list[str]] = {}
    for d in SOURCE_DIRS:
        for path in d.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and ID.match(node.value)
                    and not node.value.endswith((".py", ".yaml", ".toml"))
                ):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault(node.value, []).append(where)
    return found


def english() -> dict[str, tuple[Path, str]]:
    out: dict[str, tuple[Path, str]] = {}
    for d in catalog_dirs():
        for key, template in load(d / "en.toml").items():
            assert key not in out, f"{key} is in two catalogs: {out[key][0]} and {d}"
            out[key] = (d, template)
    return out


def namespaces() -> set[str]:
    return {".".join(k.split(".")[:2]) for k in english()}


def test_there_are_catalogs() -> None:
    dirs = catalog_dirs()
    assert ROOT / "validator" / "catalogs" in dirs
    assert ROOT / "plugins" / "ovf" / "catalogs" in dirs


def test_every_id_used_in_code_is_in_the_english_catalog() -> None:
    known = english()
    spaces = namespaces()
    used = {k: v for k, v in ids_in_code().items() if ".".join(k.split(".")[:2]) in spaces}
    missing = {k: v for k, v in used.items() if k not in known}
    assert not missing, f"ids used in code but in no catalog: {missing}"


def test_no_catalog_entry_is_unused() -> None:
    used = ids_in_code()
    unused = sorted(k for k in english() if k not in used)
    assert not unused, f"catalog entries no code uses: {unused}"


@pytest.mark.parametrize("locale", [loc for loc in SHIPPED_LOCALES if loc != "en"])
def test_every_shipped_locale_is_complete(locale: str) -> None:
    for d in catalog_dirs():
        en = load(d / "en.toml")
        path = d / f"{locale}.toml"
        assert path.exists(), f"{path} is missing"
        other = load(path)
        assert set(other) == set(en), (
            f"{path}: missing {sorted(set(en) - set(other))}, extra {sorted(set(other) - set(en))}"
        )
        for key, template in en.items():
            assert placeholders(other[key]) == placeholders(template), f"{path}: {key}"
            assert other[key].strip(), f"{path}: {key} is empty"


def test_placeholders_are_numbered_from_zero() -> None:
    for key, (_d, template) in english().items():
        nums = placeholders(template)
        assert nums == set(range(len(nums))), f"{key}: placeholders {sorted(nums)}"


def test_registry_loads_the_catalogs_of_plugins() -> None:
    reg = build_registry()
    cats = reg.catalogs
    msg = cats.message("validator.core.session.file_not_received", ("disk.vmdk", "ERROR"))
    assert msg.default_message == (
        "File disk.vmdk has transfer errors or has not been fully received yet (status: ERROR)."
    )
    assert msg.localized is None
    de = cats.message("validator.core.session.file_not_received", ("d", "ERROR"), "de")
    assert de.localized and de.localized != de.default_message
    assert "d" in de.localized
    # An unknown locale falls back to English.
    xx = cats.message("validator.core.session.file_not_received", ("d", "ERROR"), "xx")
    assert xx.localized == xx.default_message
    assert {"en", "de", "fr", "ja"} <= set(cats.locales())
    assert not [p for p in reg.problems if "catalog" in p[0]]


def test_template_formatting_is_not_str_format() -> None:
    assert format_template("{0} and {1}", ("a", "b")) == "a and b"
    assert format_template("{0.__class__} {x} {1}", ("a",)) == "{0.__class__} {x} {1}"
    assert format_template("${property}", ()) == "${property}"


def test_unknown_id_still_shows_id_and_args(tmp_path: Path) -> None:
    (tmp_path / "en.toml").write_text('"acme.a" = "A {0}"\n', encoding="utf-8")
    cats = Catalogs([("acme", CatalogSource("acme", tmp_path))])
    assert cats.message("acme.a", ("1",)).default_message == "A 1"
    assert cats.message("acme.nope", ("1",)).default_message == "acme.nope 1"


def test_catalog_outside_namespace_is_reported(tmp_path: Path) -> None:
    (tmp_path / "en.toml").write_text('"other.a" = "A"\n"acme.b" = "B"\n', encoding="utf-8")
    problems: list[tuple[object, ...]] = []
    cats = Catalogs(
        [("acme", CatalogSource("acme", tmp_path))], on_problem=lambda *a: problems.append(a)
    )
    assert cats.template("acme.b") == "B"
    assert cats.template("other.a") is None
    assert problems and problems[0][0] == "validator.core.registry.catalog_namespace"


def test_broken_catalog_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "en.toml").write_text('"acme.a" = [unclosed\n', encoding="utf-8")
    problems: list[tuple[object, ...]] = []
    cats = Catalogs(
        [("acme", CatalogSource("acme", tmp_path))], on_problem=lambda *a: problems.append(a)
    )
    assert cats.message("acme.a").default_message == "acme.a"
    assert problems[0][0] == "validator.core.registry.catalog_error"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"LANG": "C.UTF-8"}, None),
        ({"LANG": "en_US.UTF-8"}, None),
        ({"LANG": "de_DE.UTF-8"}, "de"),
        ({"LANG": "de_DE.UTF-8", "LC_ALL": "fr_FR.UTF-8"}, "fr"),
        ({"LC_MESSAGES": "ja_JP.UTF-8", "LANG": "de_DE"}, "ja"),
        ({"LANG": "pt_BR.UTF-8"}, None),
    ],
)
def test_locale_from_environment(env: dict[str, str], expected: str | None) -> None:
    assert locale_from_environment(env) == expected


def test_normalize_locale() -> None:
    assert normalize_locale("de-DE") == "de"
    assert normalize_locale("ja_JP.eucJP@x") == "ja"
    assert normalize_locale("POSIX") is None


def test_unquoted_dotted_id_is_reported_not_nested(tmp_path: Path) -> None:
    # In TOML a bare a.b.c key makes nested tables: a catalog must quote its ids.
    (tmp_path / "en.toml").write_text('acme.a = "A"\n', encoding="utf-8")
    problems: list[tuple[object, ...]] = []
    cats = Catalogs(
        [("acme", CatalogSource("acme", tmp_path))], on_problem=lambda *a: problems.append(a)
    )
    assert cats.message("acme.a").default_message == "acme.a"
    assert problems[0][0] == "validator.core.registry.catalog_error"
    assert "quoted" in str(problems[0][3])
