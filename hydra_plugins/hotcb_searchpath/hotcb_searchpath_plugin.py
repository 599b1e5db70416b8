"""Makes hotcb's config groups (``hotcb/callbacks``, ``callbacks/hotcb``) available in every
Hydra app, and registers the check that warns when ``hotcb.callbacks`` is composed but
nothing consumes it (:mod:`hydra_plugins.hotcb_searchpath.unconsumed`).

Hydra imports every module under the ``hydra_plugins`` namespace package at startup,
so this file imports nothing but Hydra's plugin base classes.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class HotcbSearchPathPlugin(SearchPathPlugin):
    """Appends ``pkg://hotcb.conf``: the app's own config dir stays first, so options the
    user writes in ``conf/hotcb/callbacks/`` sit beside (and can shadow) the built-ins.

    Prepends ``pkg://hotcb.hydra_conf``, which holds one file: ``hydra/env/default.yaml``
    (Hydra's own is empty), registering the unconsumed-``hotcb.callbacks`` check.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="hotcb", path="pkg://hotcb.conf")
        search_path.prepend(provider="hotcb-check", path="pkg://hotcb.hydra_conf")
