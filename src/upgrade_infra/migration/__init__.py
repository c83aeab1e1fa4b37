"""Database migration testing: fingerprints before/after, a lock/WAL sampler, integrity checks,
reversibility and compatibility verdicts, cross-major restores, static lint, and the report.

Modules are imported where used (``from upgrade_infra.migration import rehearsal``) so that
``upgrade_infra.restore.fingerprint`` can use :mod:`.schema` without pulling in the rest.
"""
