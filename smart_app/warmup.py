"""Start-up of a serving process: load the large, long-lived reference data before the first request, then
keep the garbage collector from walking it again.

The ICD-10-CM code tree and the HCUP chronic-condition table are loaded on first use (a few seconds, a few
hundred thousand objects). Loaded lazily, the first clinician after a deploy waits for them; left in the
collected heap, every full collection walks them all, which showed as 100-250 ms pauses in the panel's and
the API's slowest requests. `gc.freeze()` moves everything alive at that point out of the collector's view;
objects created afterwards are collected as usual.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable

from smart_app.rules.chronic import classify_icd10cm
from smart_app.rules.loader import rule_set_named
from smart_app.rules.questionnaires import for_rule_set

log = logging.getLogger(__name__)

# A code whose classification reads both tables: the code tree (validity, ancestors) and the HCUP table.
_PROBE_CODE = "E11.9"


def prepare_process(rule_sets: Iterable[str]) -> None:
    """Load the rule sets, their questionnaires and the code tables now, then freeze the heap; call once before
    serving. A broken rule or questionnaire file stops the start-up here, not a clinician's first request."""
    for name in dict.fromkeys(rule_sets):
        for_rule_set(rule_set_named(name))
    classify_icd10cm(_PROBE_CODE)
    gc.collect()
    gc.freeze()
    log.info("reference data loaded; %d objects frozen out of garbage collection", gc.get_freeze_count())
