"""Property tests of every parser (tests/adversarial/fuzz.py): valid structures from the
real samples, mutated; nothing but the documented errors escapes, every id is in the
English catalog, and the same input gives the same result.

Bounded by the ``ci`` profile (``HYPOTHESIS_PROFILE=campaign`` runs long; see
``tests/fuzz_campaign.py`` for a campaign that keeps failures as regressions).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .adversarial.fuzz import KNOWN_BUGS, TARGETS, fuzz_settings

#: Examples per target in the normal suite (the slow, whole-engine ones run fewer).
EXAMPLES = {
    "descriptor": 100,
    "xmlsafe": 100,
    "session_manifest": 60,
    "ovf_manifest": 100,
    "certificate": 60,
    "vmdk": 80,
    "vmdk_chunking": 80,
    "ova": 50,
    "ova_stream": 40,
    "iso": 40,
    "bundle": 40,
    "cli": 25,
}


def test_every_target_has_a_budget() -> None:
    assert set(EXAMPLES) == set(TARGETS)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_BUGS[n], strict=False))
        if n in KNOWN_BUGS
        else n
        for n in sorted(TARGETS)
    ],
)
def test_target(name: str) -> None:
    target = TARGETS[name]

    @fuzz_settings(max_examples=EXAMPLES[name])
    @given(data=st.data())
    def prop(data: st.DataObject) -> None:
        target.run(data.draw(target.strategy(), label=name))

    prop()
