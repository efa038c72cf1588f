"""The SMART v2 scopes the app asks for: per resource type, least privilege, no wildcards."""

from __future__ import annotations

# Identity and context: who is working (fhirUser via OpenID Connect) and on which patient.
IDENTITY = ("launch", "openid", "fhirUser", "online_access")

# What the in-chart page reads to decide eligibility and show the chart context.
PATIENT_READS = (
    "patient/Patient.r",
    "patient/Condition.rs",
    "patient/Observation.rs",
    "patient/Consent.rs",
    "patient/Encounter.rs",
    "patient/Procedure.rs",
    "patient/CarePlan.rs",
    "patient/CareTeam.rs",
    "patient/Coverage.rs",
) + (
    # Read only by the care-plan editor, to seed a draft (medication management, allergies).
    "patient/MedicationRequest.rs",
    "patient/AllergyIntolerance.rs",
)
# The month-end jobs never seed a care plan: their reads leave these out (least privilege).
CARE_PLAN_ONLY_READS = ("patient/MedicationRequest.rs", "patient/AllergyIntolerance.rs")

# What the page writes back as the user works: consents captured in the app.
PATIENT_WRITES = ("patient/Consent.c",)

# The care team's own records, which sit outside the patient compartment.
# Who the user is (Oracle Health users may be Persons), and the PractitionerRoles that may map to roles.
USER_READS = ("user/Practitioner.r", "user/PractitionerRole.rs", "user/Person.r")

# A person's own sign-in (billers, administrators): who they are, and nothing of any patient.
SIGN_IN = ("openid", "fhirUser", "online_access")


def launch_scopes() -> str:
    """The space-separated scope string for an EHR launch."""
    return " ".join(IDENTITY + PATIENT_READS + PATIENT_WRITES + USER_READS)


def sign_in_scopes() -> str:
    """The scope string for a standalone sign-in without a patient."""
    return " ".join(SIGN_IN + USER_READS)

# SMART Backend Services (no user present): the month-end rollup reads facts and writes back.
BACKEND_READS = tuple(s.replace("patient/", "system/") for s in PATIENT_READS if s not in CARE_PLAN_ONLY_READS) + (
    "system/Practitioner.rs", "system/PractitionerRole.rs")
# Write-back creates, reads back what it wrote to find it again, and updates what a corrected claim replaced
# (entered-in-error, or superseded for documents: billing.supersede).
BACKEND_WRITES = ("system/Claim.crus", "system/ChargeItem.crus", "system/Observation.crus", "system/Task.crus",
                  "system/Communication.crus", "system/DocumentReference.crus", "system/Consent.crs",
                  # Rating scales item by item (s: the search by identifier before a create, where the EHR has no
                  # conditional create), and the signed care plan with its goals (superseded by the next).
                  "system/QuestionnaireResponse.crs", "system/CarePlan.crus", "system/Goal.crus")


def backend_scopes() -> str:
    """The space-separated scope string for SMART Backend Services."""
    return " ".join(BACKEND_READS + BACKEND_WRITES)
