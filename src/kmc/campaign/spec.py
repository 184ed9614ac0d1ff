"""Campaign vocabulary shared by the campaign runner and its figures: the analysis bases and how
grid values are written in labels."""
from __future__ import annotations

import json
from typing import Any

#: analysis basis -> (value key, standard-error key, fit y*T, ArrheniusFit basis name, unit)
BASES = {
    "sigma": ("sigma_S_cm", "sigma_err_S_cm", True, "sigma", "S_cm"),
    "D_tracer": ("D_tracer_cm2_s", "D_tracer_err_cm2_s", False, "D_tracer", "cm2_s"),
    "D_jump": ("D_jump_cm2_s", "D_jump_err_cm2_s", False, "D_jump", "cm2_s"),
}


def is_dopants(value: Any) -> bool:
    """Whether a grid value is a ``[dopants]`` table."""
    return isinstance(value, dict) and all(
        isinstance(v, dict) and "site" in v and "per_formula_unit" in v for v in value.values())


def plain_fmt(value: Any) -> str:
    """A value for labels: strings bare, numbers short, a ``[dopants]`` table as
    ``Ga 0.25 on Li1`` (``none`` when empty)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    if is_dopants(value):
        return ", ".join(f"{el} {plain_fmt(v['per_formula_unit'])} on {v['site']}"
                         for el, v in value.items()) or "none"
    return fmt_value(value)


def fmt_value(value: Any) -> str:
    """A value as TOML-like text for messages (strings quoted)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", " = ") if isinstance(value, dict) else None)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
