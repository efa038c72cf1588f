"""The FHIR gateway: reads from the EHR into values the app uses, and write-back."""
