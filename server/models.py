"""One place that imports every table module, so that the metadata is complete."""
from __future__ import annotations


def import_all_models() -> None:
    """Import each package's models (for Alembic and for tests that build the schema)."""
    import audit.models  # noqa: F401
    import disputes.models  # noqa: F401
    import experts.models  # noqa: F401
    import outcomes.models  # noqa: F401
    import scheduling.models  # noqa: F401
    import scheduling.jobs  # noqa: F401
    import scheduling.outbox  # noqa: F401
    import scheduling.room_record  # noqa: F401
    import server.accounts  # noqa: F401
