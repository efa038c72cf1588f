"""Structure checks of the FHIR resources the app writes: FHIR R4 (fhirclient's 4.0.1 models) and R4B (fhir.resources).

EHRs speak R4, while fhir.resources validates R4B, which differs in places (an extension may carry
`valueCodeableReference` in R4B, not in R4). Each resource is checked against both, so R4B-only drift is
caught here instead of by an EHR refusing the write. The models check elements, types and cardinality, not
invariants or profiles: the builders check the invariants they could break. Both model packages are slow to
import, so each model is imported the first time a resource of its type is checked.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

# fhirclient names the element in its messages by the model object's repr.
_MODEL_REPR = re.compile(r"<fhirclient\.models\.\w+\.(\w+) object at 0x[0-9a-f]+>")

WRITTEN = ("Bundle", "CarePlan", "ChargeItem", "Claim", "Communication", "Consent", "DocumentReference", "Goal",
           "Observation", "QuestionnaireResponse", "Task")


def _r4b_model(rtype: str) -> type[BaseModel]:
    """fhir.resources' R4B model of a type the app writes."""
    if rtype == "Bundle":
        from fhir.resources.R4B.bundle import Bundle
        return Bundle
    if rtype == "CarePlan":
        from fhir.resources.R4B.careplan import CarePlan
        return CarePlan
    if rtype == "Goal":
        from fhir.resources.R4B.goal import Goal
        return Goal
    if rtype == "ChargeItem":
        from fhir.resources.R4B.chargeitem import ChargeItem
        return ChargeItem
    if rtype == "Claim":
        from fhir.resources.R4B.claim import Claim
        return Claim
    if rtype == "Communication":
        from fhir.resources.R4B.communication import Communication
        return Communication
    if rtype == "Consent":
        from fhir.resources.R4B.consent import Consent
        return Consent
    if rtype == "DocumentReference":
        from fhir.resources.R4B.documentreference import DocumentReference
        return DocumentReference
    if rtype == "Observation":
        from fhir.resources.R4B.observation import Observation
        return Observation
    if rtype == "QuestionnaireResponse":
        from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
        return QuestionnaireResponse
    from fhir.resources.R4B.task import Task
    return Task


def _r4_model(rtype: str) -> Any:
    """fhirclient's R4 (4.0.1) model class of a type the app writes (fhirclient is untyped)."""
    if rtype == "Bundle":
        from fhirclient.models.bundle import Bundle
        return Bundle
    if rtype == "CarePlan":
        from fhirclient.models.careplan import CarePlan
        return CarePlan
    if rtype == "Goal":
        from fhirclient.models.goal import Goal
        return Goal
    if rtype == "ChargeItem":
        from fhirclient.models.chargeitem import ChargeItem
        return ChargeItem
    if rtype == "Claim":
        from fhirclient.models.claim import Claim
        return Claim
    if rtype == "Communication":
        from fhirclient.models.communication import Communication
        return Communication
    if rtype == "Consent":
        from fhirclient.models.consent import Consent
        return Consent
    if rtype == "DocumentReference":
        from fhirclient.models.documentreference import DocumentReference
        return DocumentReference
    if rtype == "Observation":
        from fhirclient.models.observation import Observation
        return Observation
    if rtype == "QuestionnaireResponse":
        from fhirclient.models.questionnaireresponse import QuestionnaireResponse
        return QuestionnaireResponse
    from fhirclient.models.task import Task
    return Task


def _r4_problems(error: Exception, path: str) -> list[str]:
    """fhirclient's nested validation errors as "element.path: what is wrong", one per problem."""
    nested = getattr(error, "errors", None)
    if not isinstance(nested, list):
        return [f"{path}: " + _MODEL_REPR.sub(r"\1", str(error))]
    here = ".".join(p for p in (path, getattr(error, "path", None) or "") if p)
    return [problem for inner in nested for problem in _r4_problems(inner, here)]


def check_structure(resource: dict) -> None:
    """Check `resource` against R4B and R4; ValueError naming the version and each element that does not fit."""
    from fhirclient.models.fhirabstractbase import FHIRValidationError

    rtype = resource.get("resourceType")
    if rtype not in WRITTEN:
        raise ValueError(f"{rtype!r} is not a resource type the app writes ({', '.join(WRITTEN)})")
    try:
        _r4b_model(rtype).model_validate(resource)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or rtype}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"not valid FHIR R4B: {problems}") from exc
    try:
        _r4_model(rtype)(resource, strict=True)
    except FHIRValidationError as exc:
        problems = "; ".join(_r4_problems(exc, rtype))
        raise ValueError(f"not valid FHIR R4 (as EHRs read it): {problems}") from exc
