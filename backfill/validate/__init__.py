"""Post-backfill validation: acceptance criteria, the users' four checks, spot checks and staleness.

Nothing is imported here on purpose: `backfill.spec` reads `backfill.validate.criteria` while it
loads, and the executor reads `backfill.validate.staleness`; importing the suite from this
package's `__init__` would make both circular. Import the module you need:
`criteria` (the `acceptance:` vocabulary), `suite` (run the checks), `spotcheck`, `staleness`,
`render` (tables, Markdown, JSON).
"""
