"""The time ledger: append-only time entries with corrections, server-side timers and month locks."""
