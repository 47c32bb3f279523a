"""The verifiable log as agencies see it: checkpoints, proofs, entries, bundles, audit."""
