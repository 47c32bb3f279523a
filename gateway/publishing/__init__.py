"""Publishing: verify signed messages, append them to the log, apply them, sign receipts."""
