"""The EHR chart pages: a patient list, and a chart that embeds the app through an EHR launch."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from smart_app.sandbox.auth import launch_url, user_cookie
from smart_app.sandbox.authstate import Context
from smart_app.sandbox.dates import value_range
from smart_app.sandbox.pages import message_page, render
from smart_app.sandbox.runtime import Sandbox, sandbox_of
from smart_app.sandbox.users import display_name, list_users

MENU = [("summary", "Summary"), ("problems", "Problems"), ("medications", "Medications"),
        ("billing", "Claims and documents"), ("app", "Care coordination app")]
# What apps write back that a biller or clinician looks for in the chart.
BILLING_TYPES = ("Claim", "ChargeItem", "DocumentReference", "Observation", "Task", "Communication", "Consent")


def _concept_text(concept: object) -> str:
    if isinstance(concept, list):
        return ", ".join(filter(None, (_concept_text(c) for c in concept)))
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding["code"])
    return ""


def mrn(patient: dict) -> str:
    """The medical record number: the identifier typed MR, else the first identifier."""
    identifiers = patient.get("identifier") or []
    for ident in identifiers:
        codes = [c.get("code") for c in (ident.get("type") or {}).get("coding") or []]
        if "MR" in codes:
            return str(ident.get("value", ""))
    return str(identifiers[0].get("value", "")) if identifiers else ""


def latest_encounter(sandbox: Sandbox, patient_id: str) -> str | None:
    """The id of the patient's most recent encounter, if any."""
    def start(encounter: dict) -> str:
        found = value_range(encounter.get("period") or {})
        return found[0].isoformat() if found else ""

    encounters = sandbox.store.candidates("Encounter", patient=patient_id)
    return max(encounters, key=start)["id"] if encounters else None


def _patient_summary(patient: dict) -> dict:
    return {"id": patient["id"], "name": display_name(patient),
            "birth_date": patient.get("birthDate", ""), "gender": patient.get("gender", ""),
            "mrn": mrn(patient), "href": f"/ehr/chart/{patient['id']}"}


async def patient_list(request: Request) -> Response:
    """GET /ehr/: every patient with a link to the chart."""
    patients = [_patient_summary(p) for p in sandbox_of(request).store.candidates("Patient")]
    patients.sort(key=lambda p: p["name"])
    return render("patients.html", title="Patients", patients=patients)


def _section(sandbox: Sandbox, patient_id: str, view: str) -> tuple[str, list[list[str]]]:
    store = sandbox.store
    if view == "problems":
        return "Problems", [
            [_concept_text(c.get("code")), _concept_text(c.get("clinicalStatus")),
             c.get("onsetDateTime", c.get("recordedDate", ""))]
            for c in store.candidates("Condition", patient=patient_id)
        ]
    if view == "billing":
        rows = []
        for rtype in BILLING_TYPES:
            for r in store.candidates(rtype, patient=patient_id):
                if rtype == "Observation" and not any("smart-app" in str(i.get("system", ""))
                                                      for i in r.get("identifier") or []):
                    continue  # clinical observations belong to other views
                what = _billing_text(r)
                rows.append([f"{rtype}/{r.get('id', '')}", what, r.get("status", ""),
                             (r.get("meta") or {}).get("lastUpdated", "")[:16]])
        return "Claims and documents written by apps", rows
    if view == "medications":
        rows = []
        for rtype in ("MedicationRequest", "MedicationStatement"):
            for m in store.candidates(rtype, patient=patient_id):
                rows.append([_concept_text(m.get("medicationCodeableConcept")) or
                             (m.get("medicationReference") or {}).get("display", ""),
                             m.get("status", "")])
        return "Medications", rows
    rows = [[e.get("id", ""), _concept_text(e.get("type")), (e.get("period") or {}).get(
        "start", "")] for e in store.candidates("Encounter", patient=patient_id)]
    rows += [["Coverage", _concept_text(c.get("type")), c.get("status", "")]
             for c in store.candidates("Coverage", patient=patient_id)]
    return "Summary", rows


def _code(concept: object) -> str:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return str(codings[0].get("code", "")) if codings else _concept_text(concept)


def _billing_text(resource: dict) -> str:
    kind = resource.get("resourceType")
    if kind == "Claim":
        items = [f"{_code(i.get('productOrService'))} x{(i.get('quantity') or {}).get('value', 1)}"
                 for i in resource.get("item") or []]
        return "; ".join(items)
    if kind == "ChargeItem":
        return f"{_code(resource.get('code'))} x{(resource.get('quantity') or {}).get('value', 1)}"
    if kind == "Observation":
        value = resource.get("valueQuantity") or {}
        return f"{_concept_text(resource.get('code'))}: {value.get('value', '')} {value.get('unit', '')}".strip()
    if kind == "DocumentReference":
        attachment = ((resource.get("content") or [{}])[0]).get("attachment") or {}
        return attachment.get("title") or _concept_text(resource.get("type"))
    return _concept_text(resource.get("code") or resource.get("category") or resource.get("scope"))


async def chart(request: Request) -> Response:
    """GET/POST /ehr/chart/{patient_id}: banner, menu, user picker and the app in an iframe."""
    sandbox = sandbox_of(request)
    patient_id = request.path_params["patient_id"]
    patient = sandbox.store.get("Patient", patient_id)
    if patient is None:
        return message_page("Patient not found", f"No patient with id {patient_id}.", 404)
    users = list_users(sandbox.store)
    known = {u.id for u in users}
    chosen = request.query_params.get("user")
    if request.method == "POST":
        form = await request.form()
        chosen = str(form.get("user") or "") or chosen
    view = request.query_params.get("view", "app")
    if view not in dict(MENU):
        view = "app"
    if chosen in known:
        if request.method == "POST":
            # Post/redirect/get so a reload does not resubmit the user picker.
            response: Response = RedirectResponse(f"{request.url.path}?view={view}", 303)
        else:
            response = _render_chart(sandbox, patient, users, chosen, view)
        response.set_cookie("sandbox_user", chosen, httponly=True, samesite="lax")
        return response
    return _render_chart(sandbox, patient, users, user_cookie(request, sandbox), view)


def _render_chart(sandbox: Sandbox, patient: dict, users: list, user_id: str | None,
                  view: str) -> Response:
    launch_src, section_title = "", ""
    rows: list[list[str]] = []
    if view == "app":
        launch = sandbox.auth.create_launch(
            Context(patient["id"], latest_encounter(sandbox, patient["id"]), user_id)
        )
        launch_src = launch_url(sandbox, launch)
    else:
        section_title, rows = _section(sandbox, patient["id"], view)
    # A fresh launch token per render: never let a browser cache the page.
    return render("chart.html", headers={"Cache-Control": "no-store"}, patient=_patient_summary(patient),
                  users=users, user_id=user_id, view=view, menu=MENU, title=display_name(patient),
                  launch_src=launch_src, section_title=section_title, rows=rows)


async def ehr_home(request: Request) -> Response:
    """GET /ehr: send the browser to the patient list."""
    return RedirectResponse("/ehr/", 307)


routes = [
    Route("/ehr", ehr_home, methods=["GET"]),
    Route("/ehr/", patient_list, methods=["GET"]),
    Route("/ehr/chart/{patient_id}", chart, methods=["GET", "POST"]),
]
