"""Energy backends: a name -> an ASE calculator plus the provenance that identifies it.

Built-in names:

* ``chgnet`` (default): CHGNet pretrained universal potential (Deng et al., Nat. Mach. Intell. 5,
  1031 (2023)); its wheel ships the weights, so nothing is downloaded at run time.
* ``sevennet``: SevenNet-0 (Park et al., J. Chem. Theory Comput. 20, 4857 (2024)); the ``sevenn``
  wheel ships its weights. About 8x slower than CHGNet here; offered for barrier cross-checks.
* ``module:Class`` or ``module:function``: any importable ASE calculator (called with no arguments).

Heavy imports happen inside :func:`get_calculator` (torch takes seconds to import).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import platform
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

from kmc.exceptions import ConfigError

__all__ = ["Backend", "get_calculator", "BUILTIN_CALCULATORS"]

BUILTIN_CALCULATORS = ("chgnet", "sevennet")
_MLIP_HINT = 'install the optional extra with `pip install -e ".[mlip]"` (it pins the CPU torch==2.13.0)'


@dataclass
class Backend:
    """An ASE calculator and the facts that identify it (recorded with every computed number)."""

    name: str
    calculator: Any
    provenance: dict[str, Any] = field(default_factory=dict)


def _version(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except Exception:  # noqa: BLE001 - a version string is best effort
        return "unknown"


def _announcements(quiet: bool):
    """Where an MLIP's start-up messages go: stderr (stdout must stay clean for --json), or
    nowhere under --quiet."""
    if not quiet:
        return contextlib.redirect_stdout(sys.stderr)
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
    return stack


def _chgnet(threads: int | None, quiet: bool = False) -> Backend:
    try:
        # lazy: the optional [mlip] extra (torch alone takes ~2 s to import)
        import torch
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError as exc:
        raise ConfigError(f"calculator 'chgnet' needs the chgnet package ({exc}); {_MLIP_HINT}.") from None
    if threads:
        torch.set_num_threads(int(threads))
    # CHGNet converts a grad-tracking tensor to a float on every call and warns about it (harmless)
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad", category=UserWarning)
    with _announcements(quiet):
        model = CHGNet.load(verbose=False)
        calc = CHGNetCalculator(model=model, use_device="cpu", on_isolated_atoms="ignore")
    return Backend("chgnet", calc, {
        "calculator": "chgnet", "chgnet_version": _version("chgnet"),
        "weights": f"CHGNet {getattr(model, 'version', None) or 'pretrained'} (shipped in the chgnet wheel)",
        "torch_version": torch.__version__, "device": "cpu",
        "citation": "B. Deng et al., Nat. Mach. Intell. 5, 1031 (2023)"})


def _sevennet(threads: int | None, quiet: bool = False) -> Backend:
    try:
        # lazy: optional (sevenn is no dependency; torch alone takes ~2 s to import)
        import torch
        from sevenn.calculator import SevenNetCalculator
    except ImportError as exc:
        raise ConfigError(f"calculator 'sevennet' needs the sevenn package ({exc}); "
                          "install it with `pip install sevenn` next to the [mlip] extra.") from None
    if threads:
        torch.set_num_threads(int(threads))
    with _announcements(quiet):
        calc = SevenNetCalculator("7net-0", device="cpu")
    return Backend("sevennet", calc, {
        "calculator": "sevennet", "sevenn_version": _version("sevenn"), "weights": "SevenNet-0 (7net-0)",
        "torch_version": torch.__version__, "device": "cpu",
        "citation": "Y. Park et al., J. Chem. Theory Comput. 20, 4857 (2024)"})


def get_calculator(name: str = "chgnet", threads: int | None = None, quiet: bool = False) -> Backend:
    """Return the energy backend called ``name``.

    Parameters
    ----------
    name
        ``"chgnet"``, ``"sevennet"`` or ``"module:attribute"`` naming an ASE calculator class or a
        factory function that takes no arguments.
    threads
        Torch intra-op threads for the MLIP backends (None: torch's default).
    quiet
        Discard the MLIP's start-up messages (default: they go to stderr).

    Returns
    -------
    Backend
        The calculator and its provenance (package versions, weights, citation, platform).

    Raises
    ------
    ConfigError
        If the name is unknown or its package is not installed.
    """
    key = name.strip().lower()
    if key == "chgnet":
        backend = _chgnet(threads, quiet)
    elif key == "sevennet":
        backend = _sevennet(threads, quiet)
    elif ":" in name:
        mod, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"calculator {name!r} cannot be imported ({exc}); give 'module:Class' of an "
                              "installed ASE calculator.") from None
        backend = Backend(name, factory(), {"calculator": name, "module_version": _version(mod.split(".")[0])})
    else:
        raise ConfigError(f"unknown calculator {name!r}; use one of {', '.join(BUILTIN_CALCULATORS)} or "
                          "'module:Class' for any ASE calculator.")
    backend.provenance.update({"python": platform.python_version(), "ase_version": _version("ase")})
    return backend
