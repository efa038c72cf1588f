"""Month end: rollup of the ledger into proposed claims, biller review, write-back and superbills."""
