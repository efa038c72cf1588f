"""axe-core (from npm, `make axe`) injected into a page or frame: the WCAG 2.0, 2.1 and 2.2 A and AA rules'
violations, each said as what to fix (rule, impact, the elements, axe's help)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

AXE_JS = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_source() -> str:
    """axe.min.js as installed by `make axe`; skips without it, but fails under CI, where `make test` installs it."""
    if not AXE_JS.exists():
        message = f"axe-core is not installed at {AXE_JS}; run `make axe` (npm ci in tests/browser/axe)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS.read_text(encoding="utf-8")


def violations(frame: object) -> list[str]:
    """Run axe on the document of `frame` (a Playwright Page or Frame); one readable line per element at fault.

    The browser context must bypass the page's CSP (`bypass_csp=True`): the app allows only its own scripts,
    and axe comes in as an inline script.
    """
    if frame.evaluate("() => typeof window.axe === 'undefined'"):
        frame.add_script_tag(content=axe_source())
    found = frame.evaluate(
        """async (tags) => {
             const result = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                                     resultTypes: ["violations"]});
             return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
               nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary}))}));
           }""", TAGS)
    lines = []
    for rule in found:
        for node in rule["nodes"]:
            summary = " ".join((node["summary"] or "").split())
            lines.append(f"{rule['id']} ({rule['impact']}) at {node['target']}: {rule['help']}. {summary} "
                         f"[{rule['url']}]")
    return lines


def report(problems: dict[str, list[str]]) -> str:
    """Problems by page, for an assertion message that says what to fix and where."""
    return "\n".join(f"{where}:\n  " + "\n  ".join(lines) for where, lines in problems.items() if lines)
