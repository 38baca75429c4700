"""The 12-lead printout (issue #25, item 3): layout, mm scale, padding, overlay checks, pages."""

import matplotlib
import matplotlib.text

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ecgrepro.config import LEADS  # noqa: E402
from ecgrepro.plots import ECG_ROWS, ecg_grid, ecg_grids, ecg_strips  # noqa: E402

FS = 100


def _record(n=1000, amplitude=1.0, seed=0):
    """12 leads of beats (1 mV spikes every 0.8 s, each lead its own size) plus noise, mV."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    beat = np.exp(-(((t % 0.8) - 0.3) ** 2) / 0.0004)
    sizes = np.linspace(-1.5, 1.5, 12)[:, None]
    return (amplitude * sizes * beat + 0.02 * rng.standard_normal((12, n))).astype(np.float32)


def _axes(fig, kind):
    """The figure's segment axes of one kind ("grid" or "rhythm"), in reading order."""
    axes = [ax for ax in fig.axes if ax.get_label().startswith(f"{kind}:")]
    return sorted(axes, key=lambda ax: (-round(ax.get_position().y1, 6), ax.get_position().x0))


def _mm(fig, ax):
    """The axes' width and height on the figure, mm."""
    box = ax.get_position()
    w_in, h_in = fig.get_size_inches()
    return box.width * w_in * 25.4, box.height * h_in * 25.4


def _footer(fig):
    """The figure's texts, as one line."""
    return " ".join(" ".join(t.get_text().split()) for t in fig.texts)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_layout_is_3_by_4_leads_and_a_lead_ii_rhythm_strip():
    fig = ecg_grid(_record(), FS)
    grid, rhythm = _axes(fig, "grid"), _axes(fig, "rhythm")
    order = [name for row in ECG_ROWS for name in row]
    assert order == ["I", "aVR", "V1", "V4", "II", "aVL", "V2", "V5", "III", "aVF", "V3", "V6"]
    assert [ax.get_label() for ax in grid] == [f"grid:{name}" for name in order]
    # each segment is named at its start, and the name is the axes' first text
    assert [ax.texts[0].get_text() for ax in grid] == order
    # 3 rows of 4 columns; column k is the k-th 2.5 s quarter of the 10 s
    rows = {round(ax.get_position().y0, 6) for ax in grid}
    assert len(rows) == 3
    for k, ax in enumerate(grid):
        assert ax.get_xlim()[1] == pytest.approx(2.5 * (k % 4 + 1))
        assert ax.lines[0].get_xdata()[0] == pytest.approx(2.5 * (k % 4))
    # one rhythm strip, lead II over the whole record, under the grid
    assert [ax.get_label() for ax in rhythm] == ["rhythm:II"]
    assert rhythm[0].get_position().y1 <= min(ax.get_position().y0 for ax in grid) + 1e-9
    np.testing.assert_allclose(rhythm[0].lines[0].get_ydata(), _record()[LEADS.index("II")])


def test_one_mm_scale_for_all_leads_equal_in_time_and_amplitude():
    fig = ecg_grid(_record(), FS)
    assert "25 mm/s, 10 mm/mV" in _footer(fig)
    for ax in _axes(fig, "grid") + _axes(fig, "rhythm"):
        w_mm, h_mm = _mm(fig, ax)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert w_mm / (x1 - x0) == pytest.approx(25.0)  # mm/s
        assert h_mm / (y1 - y0) == pytest.approx(10.0)  # mm/mV
        # 1 mm of time (0.04 s) is as long as 1 mm of amplitude (0.1 mV)
        assert 0.04 * w_mm / (x1 - x0) == pytest.approx(0.1 * h_mm / (y1 - y0))
    # the grid lines: 1 mm (0.04 s, 0.1 mV) and 5 mm (0.2 s, 0.5 mV)
    ax = _axes(fig, "grid")[0]
    for which, dt, dv in (("minor", 0.04, 0.1), ("major", 0.2, 0.5)):
        (lines,) = [c for c in ax.collections if c.get_label() == which]
        ends = np.array(lines.get_segments())
        xs = ends[ends[:, 0, 0] == ends[:, 1, 0], 0, 0]  # vertical lines
        ys = ends[ends[:, 0, 1] == ends[:, 1, 1], 0, 1]  # horizontal
        assert np.diff(xs) == pytest.approx(np.full(len(xs) - 1, dt))
        assert np.diff(ys) == pytest.approx(np.full(len(ys) - 1, dv))
        assert xs[0] == pytest.approx(-0.4) and 2.5 - dt < xs[-1] <= 2.5  # lines to the edges


def test_every_text_is_at_least_9_pt_at_the_saved_size():
    fig = ecg_grid(_record(), FS, np.linspace(0, 1, 1000), overlay_label="map", title="record")
    fig.canvas.draw()  # creates the colour bar's tick labels
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    assert len(texts) > 20
    assert min(t.get_fontsize() for t in texts) >= 9


def test_large_voltages_halve_the_gain_for_every_lead_and_say_so():
    fig = ecg_grid(_record(amplitude=2.5), FS)
    assert "25 mm/s, 5 mm/mV" in _footer(fig)
    gains = {round(_mm(fig, ax)[1] / np.ptp(ax.get_ylim()), 6) for ax in fig.axes if ax.lines}
    assert gains == {5.0}
    fig = ecg_grid(_record(amplitude=2.5), FS, mm_per_mv=10)
    assert "25 mm/s, 10 mm/mV" in _footer(fig)


def test_front_padding_is_not_drawn():
    x = _record()
    x[:, :300] = 7.0  # a value the record never takes, in the 3 s of padding
    overlay = np.full((12, 1000), 0.25)
    overlay[:, :300] = 0.9
    fig = ecg_grid(x, FS, overlay, n_valid=700, overlay_label="map")
    for ax in fig.axes:
        for line in ax.lines:
            assert not np.any(np.isclose(line.get_ydata(), 7.0))
        for image in ax.images:
            assert not np.any(np.isclose(image.get_array(), 0.9))
        assert ax.get_ylim()[1] < 7.0
    grid = _axes(fig, "grid")
    # the record's own 7 s: 1.75 s a column, time 0 at its first sample
    i = LEADS.index("V6")
    drawn = np.concatenate([ax.lines[0].get_ydata() for ax in grid if ax.get_label() == "grid:V6"])
    np.testing.assert_allclose(drawn, x[i, 300 + 525 : 1000])
    assert _axes(fig, "rhythm")[0].get_xlim()[1] == pytest.approx(7.0)
    assert "3.0 s of zero-padding" in _footer(fig)


def test_overlay_is_shaded_behind_each_lead_with_a_colour_bar():
    overlay = np.zeros((12, 1000))
    overlay[LEADS.index("V1"), 600:620] = 1.0  # V1's column is 5-7.5 s
    fig = ecg_grid(_record(), FS, overlay, overlay_label="saliency 1 - m")
    shaded = {ax.get_label() for ax in fig.axes if ax.images and ax.images[0].get_array().count()}
    assert shaded == {"grid:V1"}
    ax = next(a for a in fig.axes if a.get_label() == "grid:V1")
    assert ax.images[0].get_zorder() < ax.lines[0].get_zorder()  # behind the trace
    bars = [a for a in fig.axes if a.get_ylabel() == "saliency 1 - m"]
    assert len(bars) == 1
    # one map over time is drawn behind every lead
    fig = ecg_grid(_record(), FS, overlay[LEADS.index("V1")])
    shaded = {ax.get_label() for ax in fig.axes if ax.images and ax.images[0].get_array().count()}
    assert shaded == {"grid:V1", "grid:V2", "grid:V3", "rhythm:II"}


@pytest.mark.parametrize("shape", [(11, 1000), (12, 999), (1000, 12), (12, 1000, 1), (999,)])
def test_overlay_of_the_wrong_shape_raises(shape):
    with pytest.raises(ValueError, match=r"overlay must have shape \(12, 1000\)"):
        ecg_grid(_record(), FS, np.zeros(shape))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_valid": 0}, "n_valid"),
        ({"n_valid": 1001}, "n_valid"),
        ({"qrs": np.zeros(999, bool)}, "qrs"),
    ],
)
def test_bad_padding_or_qrs_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ecg_grid(_record(), FS, **kwargs)
    with pytest.raises(ValueError, match="signal"):
        ecg_grid(_record()[:8], FS)


def test_stacked_panels_and_an_empty_map():
    panels = {
        "as defined": {"overlay": np.zeros(1000), "empty": "(zero everywhere)"},
        "published": {"overlay": np.linspace(0, 2e-6, 1000), "label": "Grad-CAM"},
    }
    fig = ecg_grids(_record(), FS, panels, qrs=np.arange(1000) % 80 < 8)
    assert len(_axes(fig, "grid")) == 24 and len(_axes(fig, "rhythm")) == 2
    empty = [t for t in fig.texts if "(zero everywhere)" in " ".join(t.get_text().split())]
    assert len(empty) == 1 and empty[0].get_color() == "C3"
    assert [a.get_ylabel() for a in fig.axes if a.get_ylabel()] == ["Grad-CAM"]
    assert "QRS complexes" in _footer(fig)


def test_a_long_record_wraps_its_rhythm_strip():
    x = np.tile(_record(), 3)  # 30 s
    fig = ecg_grid(x, FS)
    assert _axes(fig, "grid")[-1].get_xlim()[1] == pytest.approx(10.0)  # the first 10 s
    assert [ax.get_xlim()[1] for ax in _axes(fig, "rhythm")] == pytest.approx([10, 20, 30])


def test_strips_share_one_colour_scale_and_check_their_maps():
    x = _record()[LEADS.index("II")]
    strips = [
        {"signal": x, "lead": "II", "overlay": np.linspace(0, 1, 1000), "title": "a"},
        {"signal": x, "lead": "II", "overlay": np.zeros(1000), "n_valid": 500, "title": "b"},
    ]
    fig = ecg_strips(strips, FS, overlay_label="saliency 1 - m")
    rows = _axes(fig, "rhythm")
    assert len(rows) == 2 and rows[1].get_xlim()[1] == pytest.approx(5.0)
    assert [a.get_ylabel() for a in fig.axes if a.get_ylabel()] == ["saliency 1 - m"]
    assert "25 mm/s, 10 mm/mV" in _footer(fig)
    with pytest.raises(ValueError, match="overlay"):
        ecg_strips([{**strips[0], "overlay": np.zeros(999)}], FS)


class _Page:
    """The page attributes the figure steps read; saved figures are only named."""

    def __init__(self):
        self.saved = []

    def __getitem__(self, key):
        return {"fs_hz": FS, "profile": "test"}[key]

    def savefig(self, fig, name, dpi=120):
        self.saved.append(name)


def _cams(n_valid=800):
    drawn = pd.DataFrame(
        {
            "record": ["cpsc/A0001"],
            "labels": ["LBBB"],
            "target": ["LBBB"],
            "score": [0.9],
            "threshold": [0.5],
        },
        index=pd.Index(["lbbb"]),
    )
    time_map = np.zeros((1, 1000), np.float32)
    time_map[0, 500:560] = np.linspace(0, 1, 60)
    return {
        "drawn": drawn,
        "x": _record()[None],
        "n_valid": np.array([n_valid]),
        "maps": {"time": time_map, "published": np.zeros((1, 1000), np.float32)},
        "qrs": pd.DataFrame({"mask": [np.arange(1000) % 80 < 8]}, index=drawn.index),
    }


def test_page_figures_keep_their_files_and_show_every_map():
    from ecgrepro.pages import deletion_mask, gradcam

    page, cams = _Page(), _cams()
    figures = gradcam.case_figures(page, cams, 95.0)
    # the published map is zero everywhere: not saved under the paper's figure's name (#25)
    assert page.saved == ["fig6_gradcam_lbbb.png", "fig6_gradcam_lbbb_published_empty_map.png"]
    fig = figures["lbbb"]
    assert len(_axes(fig, "grid")) == 24  # as defined, then published
    assert "published" in _footer(fig).split("ReLU removed the whole map")[0]
    masks = {
        "saliency": np.full((1, 12, 1000), 0.5, np.float32),
        "probability_start": np.array([0.9]),
        "probability": np.array([0.2]),
        "deleted": np.array([0.1]),
        "mask_bins": np.full((1, 12, 250), 0.5, np.float32),
        "valid_bins": np.ones((1, 250), bool),
    }
    figures = deletion_mask.case_figures(page, cams, masks, 95.0)
    assert page.saved[-1] == "companion_b_lbbb.png"
    assert len(_axes(figures["lbbb"], "grid")) == 36  # mask, as defined, published
    fig, table = deletion_mask.lead_masks_figure(page, cams, {"A": masks, "B": masks}, "II")
    assert page.saved[-1] == "companion_b_lstm.png"
    assert len(_axes(fig, "rhythm")) == 2 and table.deleted_share_lead.tolist() == [0.5, 0.5]
