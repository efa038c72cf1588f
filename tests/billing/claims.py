"""ProposedClaims and ledger entries for the billing tests, built in code (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from smart_app.billing.values import ClaimLine, ConsentEvidence, Diagnosis, Performer, ProposedClaim
from smart_app.ledger.values import Entry

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
NURSE = "Practitioner/rn-1"
CARE_MANAGER = "PractitionerRole/cm-1"
DOCTOR = "Practitioner/dr-1"
SUPERVISOR = "Practitioner/dr-2"


def ccm_claim(**changes) -> ProposedClaim:
    """CCM with the 99439 add-on at 2 units plus APCM G0556; two diagnoses; staff, care manager, supervisor."""
    claim = ProposedClaim(
        organization_id="org-1",
        patient_id="pat-1",
        month="2026-03",
        lines=(
            ClaimLine("99490", 1, "ccm", "CCM, first 20 minutes of clinical staff time", 20,
                      {"clinical-staff": 20}, date(2026, 3, 31), rate=66.13, rate_year=2026, entry_ids=("e-1",)),
            ClaimLine("99439", 2, "ccm", "CCM, each additional 20 minutes", 45,
                      {"clinical-staff": 25, "care-manager": 20}, date(2026, 3, 31), rate=50.44, rate_year=2026,
                      entry_ids=("e-2", "e-3")),
            ClaimLine("G0556", 1, "apcm", "APCM, one or fewer chronic conditions", 0, {}, date(2026, 3, 31),
                      rate=15.2, rate_year=2025),
        ),
        diagnoses=(Diagnosis("E11.9", ICD10, "Type 2 diabetes mellitus without complications", "cond-1"),
                   Diagnosis("I10", ICD10, "Essential (primary) hypertension", "cond-2")),
        performers=(Performer(NURSE, "clinical-staff", 45, "Rita Nurse, RN"),
                    Performer(CARE_MANAGER, "care-manager", 20, "Carl Manager"),
                    Performer(SUPERVISOR, "supervising-practitioner", 0, "Dr. Sue Pervisor")),
        consents=(ConsentEvidence("ccm", date(2026, 1, 15), "consent-1", "app"),
                  ConsentEvidence("apcm", date(2026, 2, 1), "Consent/77", "ehr")),
        billing_practitioner=DOCTOR,
        supervising_practitioner=SUPERVISOR,
        place_of_service="11",
        coverage="Coverage/cov-1",
        patient_name="Ada Lovelace",
        patient_birth_date="1950-12-10",
        patient_mrn="MRN-001",
        warnings=("ccm: 5 minutes dated before consent are not counted",),
        decision={"programs": [{"program": "ccm", "minutes_total": 65,
                                "minutes_by_role": {"clinical-staff": 45, "care-manager": 20}}]},
    )
    return replace(claim, **changes)


def entry(**changes) -> Entry:
    """A 20-minute patient call by the nurse on 2026-03-04."""
    base = Entry(
        id="e-1", organization_id="org-1", patient_id="pat-1", performer=NURSE, role="clinical-staff",
        program="ccm", activity="patient-call", start=datetime(2026, 3, 4, 14, 5, tzinfo=UTC), minutes=20,
        month="2026-03", note="Reviewed glucose log", source="manual", shared=False, kind="entry",
        corrects_id=None, reason="", recorded_by=NURSE, recorded_at=datetime(2026, 3, 4, 14, 30, tzinfo=UTC),
        late=False, split_group=None, timer_id=None,
    )
    return replace(base, **changes)
