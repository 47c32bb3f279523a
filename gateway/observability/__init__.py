"""What operators watch over HTTP: the Prometheus `/metrics` endpoint and the figures it reads
(the delivery backlog per subscription, the outbox's lag). The structured logs it sits beside
are cross-cutting (gateway.logs): every feature writes them."""
