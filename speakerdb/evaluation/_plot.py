"""DET plots with matplotlib, an optional extra (``pip install 'speakerdb[plot]'``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ..decision._metrics import DetCurve
from ..errors import InputError

__all__ = ["draw_det", "require_matplotlib", "write_det_plot"]

_INSTALL = "pip install 'speakerdb[plot]'"
# Probit axis ticks, as error rates.
_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def require_matplotlib() -> None:
    """Raise :class:`InputError` naming the install command when matplotlib is missing."""
    if not _have_matplotlib():
        raise InputError(f"writing a DET plot needs matplotlib: `{_INSTALL}`, or leave out --det")


def _have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_det_plot(
    curves: dict[str, DetCurve], path: str | Path, threshold: float | None = None
) -> Path:
    """Draw each curve (false-reject against false-accept rate, probit axes) into a PNG,
    with its equal-error point and, given ``threshold``, the operating point there."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    try:
        draw_det(axes, curves, threshold)
        figure.tight_layout()
        out = Path(path)
        figure.savefig(out, format="png")
    except OSError as exc:
        raise InputError(f"{path}: cannot write the DET plot ({exc})") from exc
    finally:
        plt.close(figure)
    return out


def draw_det(axes: Any, curves: dict[str, DetCurve], threshold: float | None) -> None:
    """The DET plot on matplotlib ``axes``: curves, their marked points, and a note for a
    curve without errors (which would otherwise lie entirely off the axes)."""
    ticks = _probit(np.array(_TICKS))
    limits = (float(ticks[0]), float(_probit(np.array([0.5]))[0]))
    for label, curve in curves.items():
        (line,) = axes.plot(_probit(curve.far), _probit(curve.frr), label=label)
        _mark_points(axes, curve, threshold, line.get_color(), limits)
        if _error_free(curve):
            axes.text(
                0.5,
                0.5,
                f"{label}: no errors\n(target and non-target scores do not overlap)",
                transform=axes.transAxes,
                ha="center",
                va="center",
            )
    labels = [f"{t:.1%}".replace(".0%", "%") for t in _TICKS]
    axes.set_xticks(ticks, labels)
    axes.set_yticks(ticks, labels)
    axes.set_xlim(*limits)
    axes.set_ylim(*limits)
    axes.plot(limits, limits, color="0.8", linewidth=0.8, linestyle=":")
    axes.set_xlabel("false-accept rate")
    axes.set_ylabel("false-reject rate")
    axes.set_title("DET curve")
    axes.grid(True, color="0.9")
    axes.legend(loc="upper right")


def _mark_points(
    axes: Any,
    curve: DetCurve,
    threshold: float | None,
    color: str,
    limits: tuple[float, float],
) -> None:
    """The equal-error point (a circle) and the operating threshold's point (a square);
    points below the axes' range are drawn on its edge, so they stay visible."""
    i = int(np.argmin(np.abs(curve.far - curve.frr)))
    eer = (curve.far[i] + curve.frr[i]) / 2
    points = [(i, "o", f"EER {eer:.1%}")]
    if threshold is not None:
        j = min(int(np.searchsorted(curve.thresholds, threshold)), curve.thresholds.size - 1)
        points.append((j, "s", f"threshold {threshold:.3f}"))
    for k, marker, label in points:
        x, y = np.clip(_probit(np.array([curve.far[k], curve.frr[k]])), *limits)
        axes.plot([x], [y], marker=marker, color=color, linestyle="none", label=label)


def _error_free(curve: DetCurve) -> bool:
    """Whether some threshold makes no error at all."""
    return bool(np.any((curve.far == 0) & (curve.frr == 0)))


def _probit(rates: np.ndarray) -> np.ndarray:
    """The normal deviate of each rate (clipped away from 0 and 1)."""
    from statistics import NormalDist

    clipped = np.clip(np.asarray(rates, dtype=np.float64), 1e-4, 1 - 1e-4)
    inverse = NormalDist().inv_cdf
    return np.array([inverse(float(p)) for p in clipped])
