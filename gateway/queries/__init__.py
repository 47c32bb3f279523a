"""Credit queries: an enterprise standing with a signed attestation; every query recorded."""
