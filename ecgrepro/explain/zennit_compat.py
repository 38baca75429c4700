"""Import zennit where torchvision does not import: the one workaround, kept narrow.

zennit 0.5.1 (LRP, :mod:`ecgrepro.explain.relevance`) imports its module
``zennit.torchvision`` from its package ``__init__``, and that module imports
``torchvision.models.resnet`` for its canonizers of torchvision's 2-D ResNets.
ecgrepro uses none of them (its 1-D ResNet has its own canonizer), and the CPU
build of torch this project pins has no matching torchvision: PyPI's wheel
fails at import with ``RuntimeError: operator torchvision::nms does not
exist``, and installing it pulls a CUDA build of torch. So zennit is installed
with ``--no-deps`` (``requirements-nodeps.txt``) and imported through
:func:`import_zennit`:

- where ``torchvision.models.resnet`` imports, zennit is imported as it is,
  with no workaround;
- otherwise ``zennit.torchvision`` alone is replaced, before zennit is
  imported, by an empty module whose attributes raise an ``AttributeError``
  that says why. Every other part of zennit is the real one.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

#: Set by :func:`import_zennit`: why torchvision was stood in for, or None (real torchvision).
TORCHVISION_PROBLEM: str | None = None


def torchvision_problem() -> str | None:
    """Why ``torchvision.models.resnet`` cannot be imported here, or None if it can.

    A failed import is undone (its partial ``torchvision*`` modules are dropped
    from ``sys.modules``), so that nothing half-imported is left behind.

    Returns
    -------
    str or None
    """
    if importlib.util.find_spec("torchvision") is None:
        return "is not installed"
    try:
        importlib.import_module("torchvision.models.resnet")
    except Exception as err:  # e.g. RuntimeError: operator torchvision::nms does not exist
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return f"fails to import ({type(err).__name__}: {err})"
    return None


def _stand_in(problem: str) -> types.ModuleType:
    module = types.ModuleType(
        "zennit.torchvision",
        "Stand-in for zennit's torchvision canonizers: torchvision " + problem + ".",
    )

    def __getattr__(name: str):
        raise AttributeError(
            f"zennit.torchvision.{name} is not available: torchvision {problem} "
            "(ecgrepro imports zennit without it; see ecgrepro.explain.zennit_compat)"
        )

    module.__getattr__ = __getattr__
    return module


def import_zennit() -> types.ModuleType:
    """The ``zennit`` package, imported with or without torchvision.

    Returns
    -------
    module
        ``zennit``; where torchvision does not import, its ``zennit.torchvision``
        is the stand-in described in this module's docstring.

    Raises
    ------
    ImportError
        If zennit itself is not installed (``make venv`` installs it).
    """
    global TORCHVISION_PROBLEM
    if "zennit" in sys.modules:
        return sys.modules["zennit"]
    if importlib.util.find_spec("zennit") is None:
        raise ImportError(
            "zennit is not installed; `make venv` installs it from requirements-nodeps.txt"
        )
    TORCHVISION_PROBLEM = torchvision_problem()
    if TORCHVISION_PROBLEM is not None:
        sys.modules["zennit.torchvision"] = _stand_in(TORCHVISION_PROBLEM)
    return importlib.import_module("zennit")
