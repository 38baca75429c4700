"""ECG figures as clinicians read them: the 12-lead printout on ECG paper (issue #25, item 3).

The standard layout (3 rows of 4 leads, 2.5 s each, and a rhythm strip), one amplitude scale for
all leads, on the paper grid of an ECG machine: 1 mm = 0.04 s and 0.1 mV, 5 mm squares, 25 mm/s
and 10 mm/mV (the half or quarter gain for large voltages, said under the figure), 1 mm of time as
long as 1 mm of amplitude. A map (Grad-CAM, a deletion mask) is shaded behind the traces.
:mod:`ecgrepro.plots` re-exports the public functions.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

#: The standard 12-lead printout, row by row; column k shows the k-th quarter of the window.
ECG_ROWS: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
#: ECG paper speed, mm/s (1 mm = 0.04 s; a 5 mm square = 0.2 s).
MM_PER_S = 25.0
#: Gains tried, mm/mV, when none is given: the first whose 3 x 4 grid fits in ``_GRID_MM``
#: (10: the standard; 5 and 2.5: the half and quarter gains of a machine, for large voltages).
GAINS = (10.0, 5.0, 2.5)
_GRID_MM = 150.0  # the 3 rows' height budget at the automatic gain, mm
_STRIP_MM = 50.0  # a rhythm strip row's, mm
_CAL_S = 0.4  # room for the 1 mV, 0.2 s calibration pulse before each row, s
_MM_IN, _PT_MM = 1 / 25.4, 0.3528  # inches per mm, mm per point
_GRID = (("minor", 1.0, "#f6cccc", 0.35), ("major", 5.0, "#e39595", 0.7))  # (mm, colour, lw)


def _overlay_cmap(name: str):
    """``name`` from 30% to 90%, transparent at 0 and 75% opaque at 1: zeros stay blank."""
    from matplotlib.colors import ListedColormap

    rgba = plt.get_cmap(name)(np.linspace(0.3, 0.9, 256))
    rgba[:, 3] = 0.75 * np.linspace(0, 1, 256) ** 0.5
    return ListedColormap(rgba)


def _checked(signal, n_valid, overlay=None, qrs=None, n_leads: int = 12):
    """The valid part (the last ``n_valid`` samples) of a signal, its overlay and QRS mask."""
    signal = np.asarray(signal, dtype=float)
    if signal.ndim != 2 or signal.shape[0] != n_leads:
        raise ValueError(f"signal must have shape ({n_leads}, n_samples), got {signal.shape}")
    n = signal.shape[1]
    nv = n if n_valid is None else int(n_valid)
    if not 1 <= nv <= n:
        raise ValueError(f"n_valid must be between 1 and n_samples = {n}, got {n_valid}")
    if overlay is not None:
        overlay = np.asarray(overlay, dtype=float)
        if overlay.shape == (n,):
            overlay = np.broadcast_to(overlay, (n_leads, n))
        if overlay.shape != (n_leads, n):
            raise ValueError(
                f"overlay must have shape ({n_leads}, {n}) (leads x samples, as the signal) or "
                f"({n},) (one map over time), got {overlay.shape}"
            )
        overlay = overlay[:, n - nv :]
    if qrs is not None:
        qrs = np.asarray(qrs, dtype=bool)
        if qrs.shape != (n,):
            raise ValueError(f"qrs must have shape ({n},), got {qrs.shape}")
        qrs = qrs[n - nv :]
    return signal[:, n - nv :], overlay, qrs


def _row(signal, segments, kind: str, gain: float) -> dict:
    """A printed row: its ``(lead index, name, first, stop)`` segments and its mV range.

    The range covers the segments' samples and the calibration pulse (0 to 1 mV), with 2 mm
    below and 4 mm above (the lead name), its edges on 5 mm lines.
    """
    values = np.concatenate([signal[i, a:b] for i, _, a, b in segments] + [np.array([0.0, 1.0])])
    step = 5.0 / gain
    lo = np.floor((values.min() - 2.0 / gain) / step) * step
    hi = np.ceil((values.max() + 4.0 / gain) / step) * step
    return {"segments": segments, "lo": lo, "hi": hi, "kind": kind, "times": kind == "rhythm"}


def _grid_rows(signal, edges, gain: float) -> list[dict]:
    """The 3 rows of 4 leads (:data:`ECG_ROWS`), column k over samples ``edges[k]:edges[k+1]``."""
    from ecgrepro.config import LEADS

    return [
        _row(
            signal,
            [(LEADS.index(m), m, edges[k], edges[k + 1]) for k, m in enumerate(names)],
            "grid",
            gain,
        )
        for names in ECG_ROWS
    ]


def _rhythm_rows(signal, lead: int, name: str, step: int, gain: float) -> list[dict]:
    """A lead's whole signal in rows of ``step`` samples, as a rhythm strip."""
    n = signal.shape[1]
    return [
        _row(signal, [(lead, name, a, min(a + step, n))], "rhythm", gain) for a in range(0, n, step)
    ]


def _auto_gain(rows_at, budget_mm: float) -> float:
    """The first of :data:`GAINS` whose rows (``rows_at(gain)``) fit in ``budget_mm``."""
    for gain in GAINS:
        if sum((r["hi"] - r["lo"]) * gain for r in rows_at(gain)) <= budget_mm:
            return gain
    return GAINS[-1]


def _paper(ax, x0, x1, lo, hi, gain: float) -> None:
    """The ECG paper grid on an axes: 1 mm and 5 mm lines (0.04 s, 0.2 s; 1 / gain mV).

    Each kind of line is one collection (labelled ``"minor"`` or ``"major"``), on absolute
    time and amplitude, so that the lines run on across adjacent axes; no ticks, no frame.
    """
    from matplotlib.collections import LineCollection

    for which, mm, colour, lw in _GRID:
        dx, dy = mm / MM_PER_S, mm / gain
        xs = np.arange(np.ceil(x0 / dx - 1e-6), np.floor(x1 / dx + 1e-6) + 1) * dx
        ys = np.arange(np.ceil(lo / dy - 1e-6), np.floor(hi / dy + 1e-6) + 1) * dy
        segments = [((x, lo), (x, hi)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
        lines = LineCollection(segments, colors=colour, linewidths=lw, zorder=0.5 + 0.1 * mm)
        lines.set_label(which)
        ax.add_collection(lines)
    ax.set(xlim=(x0, x1), ylim=(lo, hi))
    ax.set_axis_off()


def _draw_row(fig, size, at, row, block, fs_hz, mm_per_mv, cmap):
    """Draw one row at ``at`` = (left, top) mm; return its image (or None)."""
    (w_mm, h_mm), (x_mm, top) = size, at
    lo, hi, image = row["lo"], row["hi"], None
    h = (hi - lo) * mm_per_mv
    for k, (lead, name, a, b) in enumerate(row["segments"]):
        x0, x1 = a / fs_hz - (_CAL_S if k == 0 else 0.0), b / fs_hz
        w = (x1 - x0) * MM_PER_S
        ax = fig.add_axes((x_mm / w_mm, 1 - (top + h) / h_mm, w / w_mm, h / h_mm))
        ax.set_label(f"{row['kind']}:{name}")
        x_mm += w
        _paper(ax, x0, x1, lo, hi, mm_per_mv)
        t, y = np.arange(a, b) / fs_hz, block["signal"][lead, a:b]
        if block["overlay"] is not None:
            image = ax.imshow(
                np.ma.masked_less_equal(block["overlay"][lead, a:b][None, :], 0),
                extent=(a / fs_hz, b / fs_hz, lo, hi),
                aspect="auto",
                cmap=cmap,
                vmin=0,
                vmax=block["vmax"],
                interpolation="nearest",
                zorder=0.2,
            )
        ax.plot(t, y, color="k", lw=0.8, zorder=3)
        if k == 0:  # the calibration pulse: 1 mV (10 mm at 10 mm/mV) for 0.2 s (5 mm)
            c = x0 + np.array([0, 0.08, 0.08, 0.28, 0.28, _CAL_S])
            ax.plot(c, [0, 0, 1, 1, 0, 0], color="k", lw=0.8, zorder=3)
        elif len(y):  # a short bar where the lead changes, as a printout marks it
            ax.plot([x0, x0], y[0] + np.array([-2.5, 2.5]) / mm_per_mv, color="k", lw=1, zorder=3)
        if row["kind"] == "rhythm" and block["qrs"] is not None:
            ax.fill_between(
                t,
                lo,
                lo + 1.5 / mm_per_mv,
                where=block["qrs"][a:b],
                step="mid",
                color="0.4",
                lw=0,
                zorder=2,
            )
        ax.text(
            a / fs_hz + 0.04,
            hi - 0.6 / mm_per_mv,
            name,
            fontsize=10,
            fontweight="bold",
            va="top",
            zorder=4,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 0.5},
        )
        if row["times"]:
            for s in np.arange(np.ceil(a / fs_hz), b / fs_hz + 1e-9):
                ax.text(s, lo, f"{s:g} s", fontsize=9, ha="center", va="top", clip_on=False)
    return image


def _ecg_figure(blocks: list[dict], title: str, fs_hz: float, mm_per_mv: float, cmap: str):
    """Lay blocks (a title, rows of ECG paper, a colour bar, a footer) out top to bottom."""
    import textwrap

    width = (
        max(
            sum(b / fs_hz - a / fs_hz for _, _, a, b in row["segments"]) + _CAL_S
            for block in blocks
            for row in block["rows"]
        )
        * MM_PER_S
    )
    has_bar = any(block["colourbar"] for block in blocks)
    left, w_mm = 6.0, 6.0 + width + (32.0 if has_bar else 6.0)

    def wrap(text, pt):  # to the figure's width, at about 0.55 em a character
        chars = int((w_mm - 2 * left) / (0.55 * pt * _PT_MM))
        return "\n".join(textwrap.fill(line, chars) for line in text.split("\n")) if text else ""

    def lines(text, pt):
        return text.count("\n") + 1 if text else 0

    title = wrap(title, 11)
    plan, y = [], 4.0 + lines(title, 11) * 11 * _PT_MM * 1.3
    for block in blocks:
        head = wrap(block["title"], 10)
        y += lines(head, 10) * 10 * _PT_MM * 1.3 + (1.5 if head else 0)
        tops = []
        for row in block["rows"]:
            tops.append(y)
            y += (row["hi"] - row["lo"]) * mm_per_mv + (5.0 if row["times"] else 0.0)
        foot = wrap(block["footer"], 9)
        plan.append((head, tops, y, foot))
        y += 6.0 + (lines(foot, 9) * 9 * _PT_MM * 1.3)
    h_mm = y + 2.0
    fig = plt.figure(figsize=(w_mm * _MM_IN, h_mm * _MM_IN))
    if title:
        fig.text(left / w_mm, 1 - 2.0 / h_mm, title, fontsize=11, va="top")
    cmap = _overlay_cmap(cmap)
    for block, (head, tops, bottom, foot) in zip(blocks, plan, strict=True):
        if head:
            fig.text(
                left / w_mm,
                1 - (tops[0] - 1.0) / h_mm,
                head,
                fontsize=10,
                va="bottom",
                color=block.get("title_colour", "k"),
            )
        images = [
            _draw_row(fig, (w_mm, h_mm), (left, top), row, block, fs_hz, mm_per_mv, cmap)
            for row, top in zip(block["rows"], tops, strict=True)
        ]
        if foot:
            fig.text(left / w_mm, 1 - (bottom + 1.0) / h_mm, foot, fontsize=9, va="top")
        if block["colourbar"] and images[0] is not None:
            last = min(2, len(tops) - 1)  # beside the 12 leads (or the strip)
            rows = block["rows"][last]
            span = tops[last] + (rows["hi"] - rows["lo"]) * mm_per_mv - tops[0]
            span = min(max(span, 40.0), h_mm - 2.0 - tops[0])  # at least 4 cm long
            box = ((left + width + 4) / w_mm, 1 - (tops[0] + span) / h_mm, 4 / w_mm, span / h_mm)
            cax = fig.add_axes(box)
            bar = fig.colorbar(images[0], cax=cax)
            bar.set_label(block["label"], fontsize=9)
            bar.ax.tick_params(labelsize=9)
            bar.ax.yaxis.get_offset_text().set_fontsize(9)
    return fig


def ecg_grids(
    signal: np.ndarray,
    fs_hz: float,
    panels: dict,
    *,
    n_valid: int | None = None,
    title: str = "",
    qrs: np.ndarray | None = None,
    mm_per_mv: float | None = None,
    grid_s: float = 10.0,
    rhythm_lead: str = "II",
    cmap: str = "Blues",
):
    """One record as a 12-lead printout per map, stacked: 3 x 4 leads and a rhythm strip.

    Each panel is the standard layout (:data:`ECG_ROWS`: I, aVR, V1, V4 / II, aVL, V2, V5 /
    III, aVF, V3, V6), column k showing the k-th quarter of the first ``grid_s`` seconds of the
    record (2.5 s of a 10 s record, as an ECG machine prints), then ``rhythm_lead`` over the
    whole record in rows of ``grid_s`` seconds. All leads share one amplitude scale on ECG
    paper: 1 mm and 5 mm lines, 25 mm/s (1 mm = 0.04 s) and ``mm_per_mv`` (10: 1 mm = 0.1 mV);
    1 mm of time and 1 mm of amplitude have the same length, and the figure is drawn to size
    (printed at 100%, the grid is in mm). Each row starts with a 1 mV, 0.2 s calibration
    pulse; lead names at each segment's start; the scale in the corner text under each panel.
    Issue #25, "What to build" 3.

    Parameters
    ----------
    signal : numpy.ndarray, shape (12, n_samples), float, mV
        Leads in :data:`ecgrepro.config.LEADS` order.
    fs_hz : float
        Sampling frequency, Hz.
    panels : dict of str -> dict or None
        Panel title -> its map, drawn top to bottom. Keys of the dict: ``overlay``
        (numpy.ndarray, shape (12, n_samples), or (n_samples,) for one map over time, >= 0;
        shaded behind each lead's trace, blank where <= 0; None: no map), ``label`` (the
        colour bar's), ``vmax`` (the top of the colour scale, whose bottom is 0; default the
        map's largest value) and ``empty`` (text added to the title, in red, when the map has
        no positive value).
    n_valid : int, optional
        Valid samples: the last ``n_valid`` (the rest is front zero-padding, not shown: time 0
        is the record's first sample). Default: all.
    title : str
        The figure's title (the record).
    qrs : numpy.ndarray of bool, shape (n_samples,), optional
        QRS samples (:func:`ecgrepro.explain.qrs_mask`), marked by grey bars under the rhythm
        strip.
    mm_per_mv : float, optional
        Gain, mm/mV. Default: 10 (the standard), or the half or quarter gain
        (:data:`GAINS`) where the 3 rows would be taller than 15 cm, as a machine halves it
        for large voltages; the corner text gives the gain used.
    grid_s : float
        Seconds in the 3 x 4 grid and in each rhythm-strip row.
    rhythm_lead : str
        The rhythm strip's lead.
    cmap : str
        Matplotlib colour map of the maps (from 30% to 90%; transparent at 0, 75% opaque at
        the top).

    Returns
    -------
    matplotlib.figure.Figure
        Segment axes labelled ``"grid:<lead>"``, rhythm-strip rows ``"rhythm:<lead>"``.

    Raises
    ------
    ValueError
        If ``signal`` is not (12, n_samples), ``n_valid`` not in 1..n_samples, an overlay not
        (12, n_samples) or (n_samples,), or ``qrs`` not (n_samples,).
    """
    from ecgrepro.config import LEADS

    sig, _, marks = _checked(signal, n_valid, None, qrs)
    n, nv = np.shape(signal)[-1], sig.shape[1]
    step = max(int(round(grid_s * fs_hz)), 4)
    edges = np.round(np.linspace(0, min(nv, step), 5)).astype(int)
    gain = mm_per_mv or _auto_gain(lambda g: _grid_rows(sig, edges, g), _GRID_MM)
    rows = _grid_rows(sig, edges, gain) + _rhythm_rows(
        sig, LEADS.index(rhythm_lead), rhythm_lead, step, gain
    )
    footer = (
        f"{MM_PER_S:g} mm/s, {gain:g} mm/mV; {fs_hz:g} Hz; {edges[-1] / fs_hz:.1f} s of "
        f"{nv / fs_hz:.1f} s in the grid ({edges[1] / fs_hz:.2f} s a column); rhythm strip: "
        f"lead {rhythm_lead}, all {nv / fs_hz:.1f} s"
    )
    if nv < n:
        footer += f"; the {(n - nv) / fs_hz:.1f} s of zero-padding in front not shown"
    if marks is not None:
        footer += "\ngrey bars under the rhythm strip: QRS complexes"
    blocks = []
    for head, panel in (panels or {"": None}).items():
        panel = panel or {}
        overlay = _checked(signal, n_valid, panel.get("overlay"))[1]
        peak = float(overlay.max()) if overlay is not None else 0.0
        empty = overlay is not None and peak <= 0 and panel.get("empty")
        blocks.append(
            {
                "title": f"{head} {panel['empty']}".strip() if empty else head,
                "title_colour": "C3" if empty else "k",
                "rows": rows,
                "signal": sig,
                "overlay": overlay,
                "qrs": marks,
                "vmax": panel.get("vmax") or peak or 1.0,
                "label": panel.get("label", ""),
                "colourbar": overlay is not None and peak > 0,
                "footer": "",
            }
        )
    blocks[-1]["footer"] = footer  # the scale, once, under the last panel
    return _ecg_figure(blocks, title, fs_hz, gain, cmap)


def ecg_grid(
    signal: np.ndarray,
    fs_hz: float,
    overlay: np.ndarray | None = None,
    *,
    overlay_label: str = "",
    vmax: float | None = None,
    n_valid: int | None = None,
    title: str = "",
    qrs: np.ndarray | None = None,
    mm_per_mv: float | None = None,
    grid_s: float = 10.0,
    rhythm_lead: str = "II",
    cmap: str = "Blues",
):
    """One record as a standard 12-lead printout, with an optional map behind the traces.

    :func:`ecg_grids` with one panel: 3 x 4 leads of 2.5 s and a rhythm strip, one amplitude
    scale for all leads, on ECG paper at 25 mm/s and 10 mm/mV (or the half gain for large
    voltages, :func:`ecg_grids`). Issue #25, "What to build" 3.

    Parameters
    ----------
    signal : numpy.ndarray, shape (12, n_samples), float, mV
        Leads in :data:`ecgrepro.config.LEADS` order.
    fs_hz : float
        Sampling frequency, Hz.
    overlay : numpy.ndarray, shape (12, n_samples) or (n_samples,), optional
        A map per lead and sample (a Grad-CAM, a deletion mask; >= 0, e.g. 0-1), shaded behind
        the traces, blank where <= 0, with a colour bar.
    overlay_label : str
        The colour bar's label.
    vmax : float, optional
        Top of the colour scale (bottom: 0); default the map's largest value.
    n_valid, title, qrs, mm_per_mv, grid_s, rhythm_lead, cmap
        As :func:`ecg_grids`.

    Returns
    -------
    matplotlib.figure.Figure
        As :func:`ecg_grids`.

    Raises
    ------
    ValueError
        As :func:`ecg_grids`.
    """
    panel = {"overlay": overlay, "label": overlay_label, "vmax": vmax}
    return ecg_grids(
        signal,
        fs_hz,
        {"": panel},
        n_valid=n_valid,
        title=title,
        qrs=qrs,
        mm_per_mv=mm_per_mv,
        grid_s=grid_s,
        rhythm_lead=rhythm_lead,
        cmap=cmap,
    )


def ecg_strips(
    strips: list,
    fs_hz: float,
    *,
    title: str = "",
    overlay_label: str = "",
    vmax: float = 1.0,
    mm_per_mv: float | None = None,
    line_s: float = 10.0,
    cmap: str = "Blues",
):
    """Single-lead rhythm strips on ECG paper, each with a map on one shared colour scale.

    Each strip is printed as a rhythm strip (:func:`ecg_grids`' paper, calibration pulse and
    lead name; 25 mm/s, one gain for all strips), its map shaded behind the trace. Issue #25,
    "What to build" 3.

    Parameters
    ----------
    strips : list of dict
        Drawn top to bottom, each with ``signal`` (numpy.ndarray, shape (n_samples,), mV),
        ``lead`` (its name), ``title``, and optionally ``overlay`` (shape (n_samples,), >= 0,
        shaded behind the trace) and ``n_valid`` (the last ``n_valid`` samples are shown).
    fs_hz : float
        Sampling frequency, Hz.
    title : str
        The figure's title.
    overlay_label : str
        The colour bar's label (beside the first strip).
    vmax : float
        Top of the shared colour scale (bottom: 0).
    mm_per_mv : float, optional
        Gain, mm/mV; default 10, or the half or quarter gain (:data:`GAINS`) where a strip
        would be taller than 5 cm.
    line_s : float
        Seconds per printed row; a longer strip wraps.
    cmap : str
        As :func:`ecg_grids`.

    Returns
    -------
    matplotlib.figure.Figure
        Rows labelled ``"rhythm:<lead>"``.

    Raises
    ------
    ValueError
        If a signal is not 1-D, an overlay's shape differs from it or ``n_valid`` is out of
        range.
    """
    step = max(int(round(line_s * fs_hz)), 1)
    checked = []
    for strip in strips:
        raw = np.asarray(strip["signal"], dtype=float)
        if raw.ndim != 1:
            raise ValueError(f"a strip's signal must have shape (n_samples,), got {raw.shape}")
        overlay = strip.get("overlay")
        overlay = None if overlay is None else np.asarray(overlay, dtype=float)[None]
        sig, ov, _ = _checked(raw[None], strip.get("n_valid"), overlay, n_leads=1)
        checked.append((strip, sig, ov))

    def tallest(gain):
        return [
            max(
                (r for _, sig, _ in checked for r in _rhythm_rows(sig, 0, "", step, gain)),
                key=lambda r: r["hi"] - r["lo"],
            )
        ]

    gain = mm_per_mv or (_auto_gain(tallest, _STRIP_MM) if checked else GAINS[0])
    blocks = [
        {
            "title": strip.get("title", ""),
            "rows": _rhythm_rows(sig, 0, strip["lead"], step, gain),
            "signal": sig,
            "overlay": ov,
            "qrs": None,
            "vmax": vmax,
            "label": overlay_label,
            "colourbar": k == 0 and ov is not None,
            "footer": "",
        }
        for k, (strip, sig, ov) in enumerate(checked)
    ]
    if blocks:
        blocks[-1]["footer"] = f"{MM_PER_S:g} mm/s, {gain:g} mm/mV; {fs_hz:g} Hz"
    return _ecg_figure(blocks, title, fs_hz, gain, cmap)
