"""The FHIR gateway against an independent FHIR R4 engine (Medplum's fhir-router, see medplum/)."""
