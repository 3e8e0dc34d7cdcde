"""The command line: ``python -m cnnpl [overrides]``, a Hydra app over ``conf/train.yaml``.

Errors a user can fix (:class:`cnnpl.CnnplError`) end the run with one line on stderr and exit
status 2; ``HYDRA_FULL_ERROR=1`` shows the full traceback instead. Lightning is imported only when
training starts, so ``--help`` and ``--cfg job`` stay fast.
"""

from __future__ import annotations

import os
import sys

from omegaconf import DictConfig

from cnnpl.config import CONFIG_NAME, config_dir, register_component_configs
from cnnpl.errors import CnnplError

EXIT_USAGE = 2


def run(cfg: DictConfig) -> float | None:
    """The Hydra task: train, and return ``test/acc`` (what a sweeper would optimise)."""
    from cnnpl.train import train

    try:
        metrics = train(cfg)
    except CnnplError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"cnnpl: error: {err}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    return metrics.get("test/acc")


def main() -> None:
    import hydra

    register_component_configs()
    app = hydra.main(config_path=str(config_dir()), config_name=CONFIG_NAME, version_base="1.3")(run)
    app()
