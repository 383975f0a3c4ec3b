"""A site policy: one more rule for the built-in ``ovf`` item type.

ACME only accepts OVF packages that carry a manifest, so that every upload can
be checked for integrity.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

from validator.checks import Reporter
from validator.hookspecs import hookimpl
from validator.messages import CatalogSource
from validator.session import Session


@hookimpl
def validator_message_catalogs() -> Iterable[CatalogSource]:
    return [CatalogSource("acme.policy", files("acme_validator") / "catalogs" / "policy")]


@hookimpl
def validator_prepare_session(item_type: str, session: Session, report: Reporter) -> None:
    if item_type != "ovf":
        return
    for name in session.names():
        if name.endswith(".ovf") and session.get(name[: -len(".ovf")] + ".mf") is None:
            report.error(name, "acme.policy.manifest_required", name)
