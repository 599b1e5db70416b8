"""Makes hotcb's config groups (``hotcb/callbacks``) available in every Hydra app.

Hydra imports every module under the ``hydra_plugins`` namespace package at startup,
so this file imports nothing but Hydra's plugin base classes.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class HotcbSearchPathPlugin(SearchPathPlugin):
    """Appends ``pkg://hotcb.conf``: the app's own config dir stays first, so options the
    user writes in ``conf/hotcb/callbacks/`` sit beside (and can shadow) the built-ins."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="hotcb", path="pkg://hotcb.conf")
