"""Outbound HTTP, wherever the gateway calls out (deliveries to receivers, cosignature requests
to witnesses): every address vetted as the connection opens (no private, loopback or
link-local address unless allowed; no DNS rebinding past the check), every wait cut to the
attempt's deadline, at most a bounded part of any answer read. Below the feature packages:
it imports none of them."""
