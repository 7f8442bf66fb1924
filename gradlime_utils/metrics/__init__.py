"""Metrics: how an explanation is scored, and what chance scores (:mod:`.nulls`)."""
