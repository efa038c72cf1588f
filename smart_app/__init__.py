"""SMART-on-FHIR app that captures care-coordination time and bills care-management codes."""

__version__ = "0.1.0"
