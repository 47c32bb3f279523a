"""Access: OAuth 2.0 client credentials with private_key_jwt, scoped bearer tokens."""
