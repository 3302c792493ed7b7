"""Run records, for your own training and the book's: where two records part
(:mod:`~reprodl.record.compare`) and a map of where they differ
(:mod:`~reprodl.record.digest_map`). The record format itself is :mod:`reprodl.records`, the
digests :mod:`reprodl.fingerprint`.

Part of the toolkit: importing it never pins and never changes the caller's process.
"""
