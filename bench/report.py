"""The benchmark's table (metric, backend, value, target, ratio/pass) and its JSON under bench/results/."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    metric: str
    backend: str
    value: float | None
    unit: str
    target: str = ""
    # value / target limit where the target is a limit; None for figures without a target.
    ratio: float | None = None
    passed: bool | None = None
    note: str = ""


def limit_row(metric: str, backend: str, value: float | None, unit: str, limit: float, *, below: bool = True,
              inclusive: bool = False, note: str = "") -> Row:
    """A figure with a ceiling: ratio = value / limit, pass when under it (or at it, if inclusive)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Row(metric, backend, None, unit, f"{'<=' if inclusive else '<'} {limit:g} {unit}".strip(), None,
                   False, note or "not measured")
    ok = value <= limit if inclusive else value < limit
    sign = "<=" if inclusive else "<"
    return Row(metric, backend, value, unit, f"{sign} {limit:g} {unit}".strip(), round(value / limit, 2), ok, note)


def info_row(metric: str, backend: str, value: float | None, unit: str, note: str = "") -> Row:
    return Row(metric, backend, value, unit, note=note)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 100:
        return f"{int(value)}"
    return f"{value:g}" if isinstance(value, int) else f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def table(rows: list[Row]) -> str:
    headers = ("metric", "backend", "value", "target", "ratio", "pass", "note")
    cells = [(r.metric, r.backend, f"{_fmt(r.value)} {r.unit}".strip(), r.target,
              "-" if r.ratio is None else f"{r.ratio:.2f}",
              "-" if r.passed is None else ("PASS" if r.passed else "MISS"), r.note) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip() for cell in cells]
    return "\n".join(out)


def write(document: dict, revision: str) -> Path:
    """bench/results/<UTC timestamp>-<revision>.json and bench/results/latest.json; the first path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = revision.replace("+", "-")
    path = RESULTS / f"{stamp}-{safe}.json"
    text = json.dumps(document, indent=2, default=str)
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path


def rows_json(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
