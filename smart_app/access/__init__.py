"""Who may do what: app roles and time roles per organization, and where they come from."""
