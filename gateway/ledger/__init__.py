"""Enterprise state and the three ledgers (basic / required / achieved) with their history."""
