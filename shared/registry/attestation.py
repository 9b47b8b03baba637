"""What a certificate is signed as: an in-toto Statement v1 with the registry's certification
predicate, in a DSSE envelope of the in-toto payload type. The offline verifier reads these
too, without loading the rest of the registry."""

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://plant-registry.dev/certification/v1"
