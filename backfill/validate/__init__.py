"""Post-backfill validation: the users' four checks, acceptance criteria, spot checks and staleness.

Nothing is imported here on purpose: importing the suite from this package's `__init__` would
load the warehouse checks for whoever needs one small module. Import the module you need:
`suite` (run the checks), `spotcheck`, `staleness`, `render` (tables, Markdown, JSON). The
`acceptance:` vocabulary the spec loads is core, in `backfill.acceptance`.
"""
