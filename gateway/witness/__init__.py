"""`gateway witness`: the C2SP tlog-witness a consumer agency runs beside its own systems."""
