from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="plots need matplotlib (vtgkit[viz])")

from vtgkit.structures import Moment  # noqa: E402
from vtgkit.viz.timeline import figure_to_bytes, plot_timeline, save_timeline  # noqa: E402


def test_plot_has_curve_moments_and_truth(tmp_path: Path) -> None:
    saliency = np.sin(np.arange(40) / 4.0)
    moments = [Moment(10.0, 30.0, 0.9), Moment(50.0, 60.0, 0.4), Moment(0.0, 2.0, 0.1)]
    figure = plot_timeline(saliency, 2.0, moments, [Moment(12.0, 28.0)], query="a <b> & c", top_k=2)
    main, truth = figure.axes
    assert main.get_title() == "a <b> & c"
    assert main.get_xlim() == (0.0, 80.0)
    labels = [text.get_text() for text in main.texts]
    assert labels == ["#1 0.90", "#2 0.40"]  # only top_k drawn, best first
    assert len(main.patches) >= 3  # two moment spans + the saliency stairs
    assert len(truth.patches) == 1
    png = save_timeline(tmp_path / "t.png", figure).read_bytes()
    svg = save_timeline(tmp_path / "t.svg", figure).read_text(encoding="utf-8")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in svg


def test_plot_without_saliency_or_truth() -> None:
    figure = plot_timeline(None, 2.0, [Moment(1.0, 3.0, 0.5)], duration=10.0)
    assert len(figure.axes) == 1 and figure.axes[0].get_xlim() == (0.0, 10.0)
    assert figure_to_bytes(figure, "svg").lstrip().startswith(b"<?xml")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_timeline(None, 2.0)
    with pytest.raises(ValueError, match="clip_len"):
        plot_timeline([1.0], 0.0)
    with pytest.raises(ValueError, match=".png or .svg"):
        save_timeline(tmp_path / "t.jpg", plot_timeline([1.0, 2.0], 1.0))
