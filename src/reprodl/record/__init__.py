"""Run records, for your own training and the book's: the digests of weights
(:mod:`~reprodl.record.fingerprint`), a model's variables by stable names and their digests
(:mod:`~reprodl.record.state`), the run record itself (:mod:`~reprodl.record.runrecord`), where
two records part (:mod:`~reprodl.record.compare`) and a map of where they differ
(:mod:`~reprodl.record.digest_map`).

Part of the toolkit: importing it or any of its modules never pins and never changes the caller's
process. The old paths ``reprodl.fingerprint``, ``reprodl.records`` and ``reprodl.training.state``
are the same modules under their former names.
"""
