"""The gateway: FastAPI app, database, log, ledgers, workers and CLI.

The only package that touches the database; it builds on `contracts` and `keys`.
"""
