"""Signature suites, JWS, key store, JWKS, checkpoint signing and Merkle log math; pure."""
