"""The `rules` command: `check FILE` validates a rule file, `evaluate FACTS.json` decides a month,
`import-rvu FILE.csv` writes CMS's relative value figures into a rule file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from smart_app.rules.document import load_document
from smart_app.rules.errors import FactsError, RuleFileError
from smart_app.rules.evaluate import Policy, evaluate
from smart_app.rules.loader import default_rule_set, load_rule_set, rule_file_path
from smart_app.rules.questionnaires import for_rule_set
from smart_app.rules.rvu_file import RvuFileError, read_rvu_file
from smart_app.rules.rvu_import import import_rvu

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _add_subcommands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rules_command", required=True, metavar="{check,evaluate,import-rvu}")
    check = sub.add_parser("check", help="validate one rule file against the schema")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(rules_handler=_check)
    ev = sub.add_parser("evaluate", help="decide the billable codes for one patient-month")
    ev.add_argument("facts", metavar="FACTS.json")
    ev.add_argument("--rules", metavar="FILE",
                    help="rule file (default: the shipped Medicare file for the month's year)")
    ev.add_argument("--policy", default="most_supported",
                    help="most_supported (default), highest_rate, or prefer:CODE,CODE,...")
    ev.set_defaults(rules_handler=_evaluate)
    rvu = sub.add_parser("import-rvu", help="write CMS's relative value figures into a rule file",
                         description="Read CMS's national relative value file (PPRRVU<year>_<release>_nonQPP.csv, "
                                     "as CMS ships it) and write, for every code of the rule file, its RVUs, "
                                     "the conversion factor, the national amounts and a source naming the file. "
                                     "Everything else in the rule file, comments included, stays as it was. "
                                     "Codes the file lacks or does not pay are reported and left alone.")
    rvu.add_argument("file", metavar="FILE.csv", help="CMS's PPRRVU file")
    rvu.add_argument("--rules", metavar="RULES.yaml", type=Path, default=None,
                     help="rule file to update (default: the shipped Medicare file for the CSV's year)")
    rvu.add_argument("--note", default="", help="a note for the source entry, e.g. where the copy came from")
    rvu.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    rvu.set_defaults(rules_handler=_import_rvu)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `rules` command (with `check`, `evaluate` and `import-rvu`) to the app's CLI."""
    parser = subparsers.add_parser("rules", help="billing rule sets: check files, evaluate a month, import CMS "
                                                 "relative values")
    _add_subcommands(parser)
    # The app CLI dispatches on `func`; `handler` is kept for callers that use that name.
    parser.set_defaults(func=run, handler=run)


def _parse_policy(text: str) -> Policy:
    if text.startswith("prefer:"):
        codes = tuple(c.strip() for c in text.removeprefix("prefer:").split(",") if c.strip())
        return Policy("prefer", codes)
    if text in ("most_supported", "highest_rate"):
        return Policy(text)  # type: ignore[arg-type]
    raise FactsError("--policy", f"unknown policy '{text}'")


def _check(args: argparse.Namespace) -> int:
    rule_set = load_rule_set(args.file)
    n = sum(len(f.codes) for f in rule_set.families.values())
    # The questionnaires of its rating scales must agree with it (total-score code, highest total).
    forms = for_rule_set(rule_set)
    print(f"{args.file}: ok ({rule_set.payer} {rule_set.year}, {len(rule_set.families)} "
          f"families, {n} codes, {len(forms)} questionnaires: {', '.join(forms) or 'none'})")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    policy = _parse_policy(args.policy)
    facts, entries, month = load_document(args.facts)
    rule_set = load_rule_set(args.rules) if args.rules else default_rule_set(
        "medicare", int(month[:4]))
    decision = evaluate(facts, entries, rule_set, month=month, policy=policy)
    json.dump(decision.to_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def _import_rvu(args: argparse.Namespace) -> int:
    rvu = read_rvu_file(args.file)
    target: Path = args.rules or rule_file_path("medicare", rvu.year)
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(str(target), "", f"cannot read the file ({err.strerror})") from None
    report = import_rvu(text, str(target), rvu, note=args.note)
    changed = report.text != text
    if changed and not args.dry_run:
        # Written beside the target and moved over it, so a failed write never leaves half a rule file.
        temporary = target.with_name(f".{target.name}.import")
        temporary.write_text(report.text, encoding="utf-8")
        os.replace(temporary, target)
    verb = "would import" if args.dry_run else "imported"
    print(f"{target}: {verb} {len(report.imported)} code(s) from {rvu.name} ({rvu.year} {rvu.release} release, "
          f"conversion factor {rvu.conversion_factor}) as source '{report.source_key}'"
          + ("" if changed else "; the file already held these figures"))
    if report.not_imported:
        print(f"{len(report.not_imported)} code(s) not imported, rates left as they were:")
        for code, why in report.not_imported:
            print(f"  {code}: {why}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run a parsed `rules` command; errors become a message on stderr and exit code 2."""
    try:
        handler: Callable[[argparse.Namespace], int] = args.rules_handler
        return handler(args)
    except (RuleFileError, FactsError, RvuFileError) as err:
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(err.hint, file=sys.stderr)
        return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: `python -m smart_app.rules.command {check,evaluate,import-rvu} ...`."""
    parser = argparse.ArgumentParser(prog="smart-app rules",
                                     description="Billing rule sets: check, evaluate, import CMS relative values.")
    _add_subcommands(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
