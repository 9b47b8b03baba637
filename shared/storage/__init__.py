"""Storage: the database engine, the append-only ledger and the entity heads."""
