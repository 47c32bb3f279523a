"""Agency registry: agencies, their public keys and their publish rights."""
