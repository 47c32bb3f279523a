"""Delivery: subscriptions, transactional outbox, signed push with persistent retries, feed."""
