"""The activity vocabulary is data: loaded, validated, and asked which activities suit a program."""

from __future__ import annotations

from pathlib import Path

import pytest

from smart_app.errors import ConfigError
from smart_app.ledger.values import PROGRAMS
from smart_app.ledger.vocabulary import default_vocabulary, load_vocabulary


def test_the_shipped_vocabulary_covers_every_program() -> None:
    vocabulary = default_vocabulary()
    assert vocabulary.get("medication-reconciliation").label == "Medication reconciliation"
    for program in PROGRAMS:
        assert vocabulary.for_program(program), program
    assert [a.code for a in vocabulary.for_program("cocm")].count("psychiatric-case-review") == 1
    assert "psychiatric-case-review" not in [a.code for a in vocabulary.for_program("pcm")]


@pytest.mark.parametrize(("text", "message"), [
    ("", "no [[activity]]"),
    ('[[activity]]\ncode = "a"\nlabel = ""\nprograms = ["ccm"]', "non-empty code and label"),
    ('[[activity]]\ncode = "a"\nlabel = "A"\nprograms = []', "lists no programs"),
    ('[[activity]]\ncode = "a"\nlabel = "A"\nprograms = ["ccm", "rpm"]', "unknown programs ['rpm']"),
    ('[[activity]]\ncode = "a"\nlabel = "A"\nprograms = ["ccm"]\n' * 2, "appears twice"),
    ("[[activity]\n", "cannot read"),
])
def test_a_broken_vocabulary_is_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "activities.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_vocabulary(path)
    assert message in caught.value.message and caught.value.hint
