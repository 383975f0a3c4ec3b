"""The server knows no item type: what it keeps, refuses and previews comes from the type.

A third-party type (``sealed``: a ``.blob`` and its detached ``.seal``) gets the same
treatment the OVF adapter's manifest and certificate get — checked not kept, refused
after the data, its signer shown in the preview — with no line of the server naming it;
and a type whose answers raise or have the wrong shape leaves the server working, with
its plugin named in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.test_server_support import Api, fast_users
from validator.checks import CheckContext, ItemType
from validator.hookspecs import hookimpl
from validator.server import create_app
from validator.server.service import ServerConfig
from validator.server.uploads import signature_preview
from validator.session import Session

API_US = "/api/content/library/item/update-session"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class Sealed(ItemType):
    name = "sealed"
    summary = "a blob and its detached seal (a test type)"

    def detect(self, session: Session) -> int:
        return 50 if any(n.endswith(".blob") for n in session.names()) else 0

    def kept_in_storage(self, name: str) -> bool:
        return not name.endswith(".seal")

    def refuse_addition(
        self, name: str, present: Sequence[str]
    ) -> tuple[str, tuple[str, ...]] | None:
        blob = next((n for n in present if n.endswith(".blob")), None)
        if name.endswith(".seal") and blob is not None:
            # Any catalog message will do for the test: the server answers with it.
            return "validator.core.plugin.failed", ("sealed", "refuse_addition", f"{blob} first")
        return None


class SealedPlugin:
    @hookimpl
    def validator_item_types(self) -> list[ItemType]:
        return [Sealed()]

    @hookimpl
    def validator_describe(
        self, item_type: str, session: Session, ctx: CheckContext
    ) -> dict[str, Any] | None:
        if item_type != "sealed":
            return None
        if session.get("a.seal") is None:
            return {"signature": None}
        return {
            "signature": {
                "subject": "CN=sealer",
                "issuer": "CN=sealer",
                "self_signed": True,
                "signature_verifies": True,
                "certificates": [PEM],
            }
        }


class Unruly(ItemType):
    """Answers the server's questions badly: raises, or answers in the wrong shape."""

    name = "unruly"
    summary = "a type whose server answers fail (a test type)"

    def detect(self, session: Session) -> int:
        return 50 if any(n.endswith(".u") for n in session.names()) else 0

    def kept_in_storage(self, name: str) -> bool:
        raise RuntimeError("kept_in_storage exploded")

    def refuse_addition(self, name: str, present: Sequence[str]) -> Any:
        return ("just one thing",) if name == "odd.u" else ["not", "a tuple"]


class UnrulyPlugin:
    @hookimpl
    def validator_item_types(self) -> list[ItemType]:
        return [Unruly()]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        ServerConfig(data_dir=tmp_path / "data"),
        fast_users(),
        [("sealed-plugin", SealedPlugin()), ("unruly-plugin", UnrulyPlugin())],
    )
    with TestClient(app) as c:
        yield c
    app.state.service.close()


def _put(api: Api, sid: str, name: str, data: bytes) -> dict[str, Any]:
    info = api.add(sid, name, size=len(data))
    assert api.upload(info, data).status_code == 200
    return info


def test_a_third_party_type_keeps_refuses_and_previews(client: TestClient) -> None:
    api = Api(client)
    item = api.item("sealed")
    sid = api.session(item)
    seal = _put(api, sid, "a.seal", b"seal")
    assert seal["keep_in_storage"] is False
    assert _put(api, sid, "a.blob", b"data")["keep_in_storage"] is True
    # The type's rule, with its message: a seal after the blob is refused.
    r = api.req("POST", f"{API_US}/{sid}/file", json={"name": "b.seal", "source_type": "PUSH"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_type"] == "INVALID_ARGUMENT"
    assert body["messages"][0]["id"] == "validator.core.plugin.failed"
    assert body["messages"][0]["args"] == ["sealed", "refuse_addition", "a.blob first"]
    # Re-adding the seal itself is judged against the other files (the blob is there).
    r = api.req("POST", f"{API_US}/{sid}/file", json={"name": "a.seal", "source_type": "PUSH"})
    assert r.status_code == 400
    # The preview's certificate comes from the type's validator_describe.
    r = api.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert r.status_code == 200 and r.json()["has_errors"] is False, r.text
    preview = api.req("GET", f"{API_US}/{sid}").json()["preview_info"]
    assert preview["certificate_info"] == {
        "issuer": "CN=sealer",
        "subject": "CN=sealer",
        "self_signed": True,
        "x509": PEM,
    }
    assert preview["cert_chain"] == [PEM]
    # complete publishes what the type keeps: the blob, not the seal.
    assert api.req("POST", f"{API_US}/{sid}?action=complete").status_code == 204
    files = api.req("GET", f"/api/content/library/item/{item}/file").json()
    assert [f["name"] for f in files] == ["a.blob"]


def test_failing_answers_take_the_defaults_and_name_the_plugin(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api(client)
    sid = api.session(api.item("unruly"))
    caplog.set_level(logging.WARNING, logger="validator.server")
    # kept_in_storage raised: the file is kept (the default); refuse_addition answered a
    # list: not the documented shape, so nothing is refused.
    assert _put(api, sid, "a.u", b"x")["keep_in_storage"] is True
    # A tuple of the wrong shape: logged and ignored, the addition goes through.
    assert _put(api, sid, "odd.u", b"y")["keep_in_storage"] is True
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "plugin unruly-plugin failed in unruly.kept_in_storage" in logged
    assert "kept_in_storage exploded" in logged
    assert "plugin unruly-plugin answered unruly.refuse_addition with a list" in logged
    assert "item type unruly refused odd.u" in logged
    r = api.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert r.status_code == 200 and r.json()["has_errors"] is False
    # No describe hook for this type: no certificate in the preview.
    assert "certificate_info" not in api.req("GET", f"{API_US}/{sid}").json()["preview_info"]


@pytest.mark.parametrize(
    "facts",
    [
        None,
        {},
        {"signature": None},
        {"signature": "signed"},
        {"signature": {"signature_verifies": False, "certificates": [PEM]}},
        {"signature": {"signature_verifies": "yes", "certificates": [PEM]}},
        {"signature": {"signature_verifies": True}},
        {"signature": {"signature_verifies": True, "certificates": []}},
        {"signature": {"signature_verifies": True, "certificates": [PEM, 3]}},
        {"signature": {"signature_verifies": True, "certificates": PEM}},
    ],
)
def test_no_preview_certificate_without_a_verified_chain(facts: Any) -> None:
    assert signature_preview(facts) == {}


def test_preview_certificate_from_facts() -> None:
    facts = {
        "signature": {
            "subject": "CN=a",
            "issuer": "CN=b",
            "self_signed": False,
            "signature_verifies": True,
            "certificates": [PEM, PEM.replace("MIIB", "MIIC")],
        }
    }
    out = signature_preview(facts)
    assert out["certificate_info"] == {
        "issuer": "CN=b",
        "subject": "CN=a",
        "self_signed": False,
        "x509": PEM,
    }
    assert len(out["cert_chain"]) == 2


def test_the_server_code_names_no_item_type() -> None:
    """What an item type keeps, refuses or previews is asked of it: no name, string or
    import in a server module names a built-in type, its files or its modules (docs and
    comments may use OVF as an example)."""
    import ast
    import re

    import validator.server

    words = re.compile(r"\bovf\b|\biso\b|\.mf\b|\.cert\b|validator_plugins|\bvmdk\b", re.I)
    found = []
    for path in sorted(Path(validator.server.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = "" if id(node) in docstrings else node.value
            elif isinstance(node, ast.Name):
                text = node.id
            elif isinstance(node, ast.Attribute):
                text = node.attr
            elif isinstance(node, ast.Import | ast.ImportFrom):
                module = getattr(node, "module", None) or ""
                text = " ".join([module, *(a.name for a in node.names)])
            else:
                continue
            if words.search(text):
                found.append(f"{path.name}:{node.lineno}: {text[:80]}")
    assert found == []


def test_other_names_are_read_only_when_the_type_looks() -> None:
    from validator.server.sessions import _Names

    reads: list[int] = []

    def read() -> list[str]:
        reads.append(1)
        return ["a.blob", "b.blob"]

    names = _Names(read)
    assert reads == []  # an item type that never looks costs no query
    assert list(names) == ["a.blob", "b.blob"] and names[0] == "a.blob" and len(names) == 2
    assert reads == [1]  # read once, then kept
