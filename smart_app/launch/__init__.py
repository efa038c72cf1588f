"""SMART EHR launch: organization registry, discovery, authorize with PKCE, callback, tokens."""
