"""Metrics: how any map is scored, whatever method made it, and what chance scores (:mod:`.nulls`, the one home
of every null and chance construct)."""
