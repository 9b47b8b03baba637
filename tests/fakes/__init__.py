"""Local fakes of Google's servers, speaking their wire protocols, for the real clients."""
