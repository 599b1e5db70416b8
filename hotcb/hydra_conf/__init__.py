"""Config hotcb's search-path plugin puts before Hydra's own: ``hydra/env/default.yaml``
(Hydra's is empty) registers :class:`hydra_plugins.hotcb_searchpath.unconsumed.UnconsumedCheck`,
which warns when a job composes ``hotcb.callbacks`` and nothing consumes it."""
