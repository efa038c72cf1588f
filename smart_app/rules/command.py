"""The `rules` command: `check FILE` validates a rule file, `evaluate FACTS.json` decides a month."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from smart_app.rules.document import load_document
from smart_app.rules.errors import FactsError, RuleFileError
from smart_app.rules.evaluate import Policy, evaluate
from smart_app.rules.loader import default_rule_set, load_rule_set

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _add_subcommands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rules_command", required=True, metavar="{check,evaluate}")
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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `rules` command (with `check` and `evaluate`) to the app's CLI."""
    parser = subparsers.add_parser("rules", help="billing rule sets: check files, evaluate a month")
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
    print(f"{args.file}: ok ({rule_set.payer} {rule_set.year}, {len(rule_set.families)} "
          f"families, {n} codes)")
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


def run(args: argparse.Namespace) -> int:
    """Run a parsed `rules` command; errors become a message on stderr and exit code 2."""
    try:
        handler: Callable[[argparse.Namespace], int] = args.rules_handler
        return handler(args)
    except (RuleFileError, FactsError) as err:
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(err.hint, file=sys.stderr)
        return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: `python -m smart_app.rules.command {check,evaluate} ...`."""
    parser = argparse.ArgumentParser(prog="smart-app rules",
                                     description="Billing rule sets: check and evaluate.")
    _add_subcommands(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
