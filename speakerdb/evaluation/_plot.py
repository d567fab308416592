"""DET plots with matplotlib, an optional extra (``pip install 'speakerdb[plot]'``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..decision._metrics import DetCurve
from ..errors import InputError

__all__ = ["require_matplotlib", "write_det_plot"]

_INSTALL = "pip install 'speakerdb[plot]'"
# Probit axis ticks, as error rates.
_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def require_matplotlib() -> None:
    """Raise :class:`InputError` naming the install command when matplotlib is missing."""
    if not _have_matplotlib():
        raise InputError(f"writing a DET plot needs matplotlib: `{_INSTALL}`, or leave out --det")


def _have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_det_plot(curves: dict[str, DetCurve], path: str | Path) -> Path:
    """Draw each curve (false-reject against false-accept rate, probit axes) into a PNG."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    try:
        for label, curve in curves.items():
            axes.plot(_probit(curve.far), _probit(curve.frr), label=label)
        ticks = _probit(np.array(_TICKS))
        labels = [f"{t:.1%}".replace(".0%", "%") for t in _TICKS]
        axes.set_xticks(ticks, labels)
        axes.set_yticks(ticks, labels)
        limits = (float(ticks[0]), float(_probit(np.array([0.5]))[0]))
        axes.set_xlim(*limits)
        axes.set_ylim(*limits)
        axes.plot(limits, limits, color="0.8", linewidth=0.8, linestyle=":")
        axes.set_xlabel("false-accept rate")
        axes.set_ylabel("false-reject rate")
        axes.set_title("DET curve")
        axes.grid(True, color="0.9")
        axes.legend(loc="upper right")
        figure.tight_layout()
        out = Path(path)
        figure.savefig(out, format="png")
    except OSError as exc:
        raise InputError(f"{path}: cannot write the DET plot ({exc})") from exc
    finally:
        plt.close(figure)
    return out


def _probit(rates: np.ndarray) -> np.ndarray:
    """The normal deviate of each rate (clipped away from 0 and 1)."""
    from statistics import NormalDist

    clipped = np.clip(np.asarray(rates, dtype=np.float64), 1e-4, 1 - 1e-4)
    inverse = NormalDist().inv_cdf
    return np.array([inverse(float(p)) for p in clipped])
