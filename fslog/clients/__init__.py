"""Clients of the log: the producer, consumers (plain and group), stdin ingest and the
--exec executor."""
