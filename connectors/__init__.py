"""Per-agency connectors: each consumer kind's view of a message and how it is delivered."""
