"""Puts ``cnnpl_example/conf`` on Hydra's config search path, so its YAML options are selectable.

Hydra finds this class itself (it scans the ``hydra_plugins`` namespace package). It only names a
folder: it must not import ``cnnpl_example``, which cnnpl loads through its entry point. The package
is the one this folder is named after (``<package>_searchpath``), so a copy renamed as the README
says finds its own ``conf/``.
"""

from __future__ import annotations

import importlib.util

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

PACKAGE = __name__.rpartition(".")[2].removesuffix("_searchpath")  # cnnpl_example


class CnnplExampleSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        spec = importlib.util.find_spec(PACKAGE)  # finds the folder without running the package
        if spec is not None and spec.submodule_search_locations:
            folder = next(iter(spec.submodule_search_locations))
            search_path.append(provider=PACKAGE, path=f"file://{folder}/conf")
