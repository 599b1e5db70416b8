"""Hydra integration: callbacks as ``hotcb/callbacks`` config-group options, hydration of
the initial set (:mod:`hotcb.hydra.hydrate`), live ops as override deltas
(:mod:`hotcb.hydra.deltas`) and ``hotcb export-config`` (:mod:`hotcb.hydra.export`)."""
