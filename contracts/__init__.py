"""Message contracts and the pure domain rules behind them: schemas, USCC, grades, policy data.

Imports nothing from gateway/, connectors/ or keys/; does no I/O beyond reading its own files.
"""
