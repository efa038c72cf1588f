"""FHIR R4 resources for an established care plan: a US Core CarePlan with its Goals, or a DocumentReference
holding the patient copy, and the updates that retire them when a newer version is established.

Pure builders (no I/O, no clock), validated against R4 and R4B (`ehr.fhir_models`) before they leave. One business
identifier per version (`business_identifier`), so signing twice or retrying sends nothing twice:

| builder | resource | identifier kind and parts |
| --- | --- | --- |
| `goal_resource` | Goal per measurable goal | care-plan-goal: org, version id, goal number |
| `care_plan_resource` | CarePlan (US Core shape) | care-plan: org, version id |
| `care_plan_document` | DocumentReference (LOINC 18776-5), the patient copy | care-plan-document: org, version id |
| `retired_copy` | the delivered resource with its EHR id and a retiring status | unchanged |

Retiring (a newer version established): the CarePlan is revoked (the new one `replaces` it), the DocumentReference
superseded (the new one `relatesTo` replaces it), and the old version's Goals are cancelled. Why cancelled rather
than left active: the new version carries every goal it keeps as a Goal of its own, so old Goals left active would
list each goal twice among the patient's active goals; "cancelled" (no longer pursued as written) is the closest
lifecycle status, and the revoked CarePlan still points at them for the record. Not entered-in-error: nothing
was wrong with them.

The CarePlan's period starts on the day the plan was established and has no end: a plan stays in force until a
newer version replaces it (the review date is when it is looked at again, not when it lapses).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Sequence
from datetime import datetime
from html import escape

from smart_app.billing.fhir_resources import ResourceInvalid, business_identifier, full_url
from smart_app.ehr.fhir_models import check_structure
from smart_app.ehr.record import LOINC
from smart_app.ledger.care_plans import LABELS, CarePlanVersion
from smart_app.statuses import CarePlanStatus

CAREPLAN_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
US_CORE_DOC_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
PLAN_OF_CARE_LOINC = ("18776-5", "Plan of care note")
XHTML = "http://www.w3.org/1999/xhtml"
# What retires each resource type when a newer version replaces it (see the module docstring).
RETIRED = {"CarePlan": ("status", "revoked"), "Goal": ("lifecycleStatus", "cancelled"),
           "DocumentReference": ("status", "superseded")}
KINDS = ("care-plan", "care-plan-goal", "care-plan-document")


def _invalid(resource: str, problem: str) -> ResourceInvalid:
    return ResourceInvalid(f"The app built an invalid FHIR {resource} ({problem}).",
                           "Nothing was sent to the EHR; tell the app's support team.")


def _validated(resource: dict) -> dict:
    try:
        check_structure(resource)
    except ValueError as exc:
        raise _invalid(str(resource.get("resourceType")), str(exc)) from exc
    return resource


def _established(version: CarePlanVersion) -> str:
    if version.status is not CarePlanStatus.ESTABLISHED or version.established_on is None:
        raise _invalid("CarePlan", f"version {version.number} is a draft; only an established plan is shared")
    return version.established_on.isoformat()


def plan_identifier(organization_id: str, version_id: str) -> dict:
    """The CarePlan's business identifier for a version."""
    return business_identifier("care-plan", organization_id, version_id)


def goal_identifier(organization_id: str, version_id: str, number: int) -> dict:
    """The business identifier of a version's goal number `number` (from 1)."""
    return business_identifier("care-plan-goal", organization_id, version_id, number)


def document_identifier(organization_id: str, version_id: str) -> dict:
    """The DocumentReference's business identifier for a version."""
    return business_identifier("care-plan-document", organization_id, version_id)


def _patient(version: CarePlanVersion) -> dict:
    return {"reference": f"Patient/{version.patient_id}"}


def goal_resources(version: CarePlanVersion) -> list[dict]:
    """One Goal per measurable goal: active, the description, the target with its due date, who expressed it."""
    start = _established(version)
    goals = []
    for number, goal in enumerate(version.content.goals, start=1):
        goals.append(_validated({
            "resourceType": "Goal",
            "identifier": [goal_identifier(version.organization_id, version.id, number)],
            "lifecycleStatus": "active",
            "description": {"text": goal.description},
            "subject": _patient(version),
            "startDate": start,
            # gol-1: a target with a detail needs its measure (what is measured: the goal's own words).
            "target": [{"measure": {"text": goal.description}, "detailString": goal.target,
                        "dueDate": goal.due.isoformat()}],
            "expressedBy": {"reference": version.written_by},
        }))
    return goals


def narrative(version: CarePlanVersion) -> str:
    """The plan as XHTML for `CarePlan.text` (US Core requires a narrative): every element, escaped."""
    content = version.content

    def items(values: Sequence[str]) -> str:
        return "<ul>" + "".join(f"<li>{escape(v)}</li>" for v in values) + "</ul>"

    def para(label: str, text: str) -> str:
        return f"<p><b>{escape(label)}</b>: {escape(text)}</p>"

    parts = [f"<p><b>Comprehensive care plan, version {version.number}</b>, established "
             f"{escape(_established(version))}; review due {escape(str(version.review_due or ''))}.</p>",
             f"<p><b>{escape(LABELS['problems'])}</b></p>", items(content.problems),
             para(LABELS["expected_outcome"], content.expected_outcome), para(LABELS["prognosis"], content.prognosis),
             f"<p><b>{escape(LABELS['goals'])}</b></p>",
             items([f"{g.description}: {g.target} by {g.due.isoformat()}" for g in content.goals]),
             para(LABELS["symptom_management"], content.symptom_management),
             f"<p><b>{escape(LABELS['interventions'])}</b></p>",
             items([f"{i.action} ({i.responsible})" for i in content.interventions]),
             para(LABELS["medication_management"], content.medication_management),
             *([para(LABELS["allergies"], content.allergies)] if content.allergies else []),
             para(LABELS["community_services"], content.community_services),
             para(LABELS["coordination"], content.coordination),
             para("Periodic review", f"every {content.review_every_months} month(s)")]
    return f'<div xmlns="{XHTML}">{"".join(parts)}</div>'


def care_plan_resource(version: CarePlanVersion, goals: Sequence[dict], *, conditions: Sequence[str] = (),
                       replaces: str | None = None) -> dict:
    """The version as a US Core CarePlan: active, intent plan, category assess-plan, the narrative, its Goals by
    their `urn:uuid:` fullUrls (the outbox rewrites them), the Conditions it addresses ("Condition/<id>") and the
    CarePlan it replaces ("CarePlan/<id>")."""
    start = _established(version)
    content = version.content
    resource: dict = {
        "resourceType": "CarePlan",
        "identifier": [plan_identifier(version.organization_id, version.id)],
        "text": {"status": "additional", "div": narrative(version)},
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": CAREPLAN_CATEGORY, "code": "assess-plan",
                                  "display": "Assessment and Plan of Treatment"}]}],
        "title": f"Comprehensive care plan, version {version.number}",
        "description": content.expected_outcome,
        "subject": _patient(version),
        "period": {"start": start},
        "created": start,
        "author": {"reference": version.written_by},
        "activity": [{"detail": {"status": "not-started", "description": f"{i.action} ({i.responsible})"}}
                     for i in content.interventions],
        "note": [{"text": f"{LABELS[name]}: {getattr(content, name)}"}
                 for name in ("prognosis", "symptom_management", "medication_management", "community_services",
                              "coordination")],
    }
    if goals:  # FHIR has no empty arrays
        resource["goal"] = [{"reference": full_url(goal)} for goal in goals]
    if conditions:
        resource["addresses"] = [{"reference": ref} for ref in conditions]
    if replaces:
        resource["replaces"] = [{"reference": replaces}]
    return _validated(resource)


def care_plan_document(version: CarePlanVersion, pdf: bytes, *, created: datetime, replaces: str | None = None) -> dict:
    """The patient-copy PDF as a DocumentReference (LOINC 18776-5 "Plan of care note"), naming the one it
    replaces ("DocumentReference/<id>") in relatesTo."""
    start = _established(version)
    if not pdf.startswith(b"%PDF"):
        raise _invalid("DocumentReference", "the patient copy is not a PDF")
    if created.tzinfo is None:
        raise _invalid("DocumentReference", "created has no timezone")
    title = f"Care plan, version {version.number} (patient copy)"
    resource: dict = {
        "resourceType": "DocumentReference",
        "identifier": [document_identifier(version.organization_id, version.id)],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": LOINC, "code": PLAN_OF_CARE_LOINC[0], "display": PLAN_OF_CARE_LOINC[1]}],
                 "text": "Comprehensive care plan"},
        "category": [{"coding": [{"system": US_CORE_DOC_CATEGORY, "code": "clinical-note",
                                  "display": "Clinical Note"}]}],
        "subject": _patient(version),
        "date": created.isoformat(),
        "author": [{"reference": version.written_by}],
        "description": title,
        "content": [{"attachment": {
            "contentType": "application/pdf", "data": base64.b64encode(pdf).decode("ascii"), "size": len(pdf),
            # FHIR: "the calculated hash of the data using SHA-1, represented using base64".
            "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),  # SHA-1 because FHIR says so
            "title": title, "creation": created.isoformat()}}],
        "context": {"period": {"start": start}},
    }
    if replaces:
        resource["relatesTo"] = [{"code": "replaces", "target": {"reference": replaces}}]
    return _validated(resource)


def retired_copy(resource: dict, fhir_id: str) -> dict:
    """A copy of a delivered CarePlan, Goal or DocumentReference with its EHR id and retiring status (`RETIRED`)."""
    rtype = str(resource.get("resourceType"))
    if rtype not in RETIRED:
        raise _invalid(rtype, "not a care-plan resource")
    if not fhir_id:
        raise _invalid(rtype, "a retired copy needs the id the EHR gave the resource")
    field, status = RETIRED[rtype]
    old = copy.deepcopy(resource)
    old["id"], old[field] = fhir_id, status
    if rtype == "CarePlan":
        for activity in old.get("activity") or []:
            activity.get("detail", {})["status"] = "cancelled"
    return _validated(old)
