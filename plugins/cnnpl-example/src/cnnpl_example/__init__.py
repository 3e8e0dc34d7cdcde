"""cnnpl-example: a cnnpl plugin, and the template to copy for your own.

Importing this package registers (see ``python -m cnnpl.list``):

* ``pool=softpool``: SoftPool, a softmax-weighted average of each window (:mod:`.pooling`);
* ``conv=coord_conv2d``: CoordConv, a convolution that also sees each pixel's coordinates (:mod:`.conv`);
* ``model=tiny_net``: a two-block network for quick experiments (:mod:`.models`);
* ``callbacks=[default,epoch_timer]``: logs each training epoch's wall time (:mod:`.callbacks`).

cnnpl imports it through the ``cnnpl.plugins`` entry point declared in ``pyproject.toml``.
Its YAML options (``pool=softpool_sharp``, ``experiment=cnnpl_example``) live in ``conf/`` and reach
Hydra's search path through ``hydra_plugins/cnnpl_example_searchpath``.
"""

from . import callbacks, conv, models, pooling

__version__ = "0.1.0"

__all__ = ["callbacks", "conv", "models", "pooling"]
