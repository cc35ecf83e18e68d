"""The warehouse contract: one suite every Warehouse implementation must pass."""
