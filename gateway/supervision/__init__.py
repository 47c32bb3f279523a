"""Classified supervision and dynamic management (闽安委〔2017〕1号 四（一）（二）): inspections,
the supervision plan, and random draws anybody can verify."""
