"""Integrity: canonical bytes, digests, the Merkle log, signed notes and certificates."""
