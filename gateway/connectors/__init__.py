"""The gateway's side of the connectors: gathering a decision's facts from the database for the
pure renderers in `connectors`, the market regulator's snapshots, and their routes."""
