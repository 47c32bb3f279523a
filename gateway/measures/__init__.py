"""Joint incentives and restrictions: the measure catalog and what applies to an enterprise."""
