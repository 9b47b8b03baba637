"""What an auditor takes away: ``reports`` (JSON, CSV, ``pdf``), ``bundle`` (the evidence
bundle, streamed) within the export ``slots``, and ``verify`` (``plant verify``: the offline
verifier, with ``shape``, ``contents``, ``claims``, ``statement`` and ``verdict``; it needs no
database). Nothing is imported here."""

__all__ = ["bundle", "reports", "slots", "verify"]
