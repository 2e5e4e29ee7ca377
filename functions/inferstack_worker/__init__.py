"""Batch worker container entry point (console script ``inferstack-worker``)."""
