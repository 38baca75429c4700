"""One door for a book page: its parameters, its pipeline, captions, figures, glue and cost.

A notebook declares only ``profile``, ``data_root``, ``build_dir`` and its own parameters; the
parameters it shares with other pages (:data:`ecgrepro.parameters.PAGE_SHARED`: the pipeline's,
the SHAP selection, ``n_boot``) come from the profile, passed by the book runner, or, for a
notebook run by hand, the paper's values. Every page then reads::

    page = Page("faithfulness", globals())   # first code cell: shows the parameters
    pipe = page.pipeline(extra=("planted_records",))
    ...
    page.caption("10.1", "what the axes show", models="Ours_2", data="PTB-XL test records")
    page.finish()                            # last code cell: glues the run cost

The work itself lives in the package (``ecgrepro.explain``, ``ecgrepro.evaluate``, ...); a page
holds its parameters, the calls, its figures' captions and its prose (as QuantEcon's lectures do).

What a page runs leaves no noise on it (issue #25, item 5): the pipeline's progress lines
(artifacts reused or trained, one line per epoch), the explanation store's lines (re-read or
computed) and every Python warning raised while the page runs go, timestamped, to the page's log
file ``<build>/logs/<stem>.log`` (appended run after run); :attr:`Page.warnings` counts the
warnings, and :meth:`Page.finish` records the count and the file in the run report.
"""

from __future__ import annotations

import time
import warnings
from datetime import datetime
from pathlib import Path

from ecgrepro.book.report import (
    data_scope,
    figure_caption,
    page_parameters,
    run_cost,
    shown_path,
    write_run_facts,
)
from ecgrepro.catalogue import SETUP_PARAMETERS
from ecgrepro.claims import claim_records, verdict_line
from ecgrepro.config import REPO_ROOT
from ecgrepro.parameters import PAGE_SHARED, page_declared


class PageLog(list):
    """The lines of a page's stored results (re-read or computed), also written to its log file.

    A list of str, so ``len(page.log)`` and :meth:`Page.reused` count them as before; each
    :meth:`append` also goes to the page's log file (``log=page.log.append`` is a logger).

    Parameters
    ----------
    write : callable
        Writes one line to the log file (:meth:`Page.write`).
    """

    def __init__(self, write):
        super().__init__()
        self._write = write

    def append(self, line: str) -> None:
        """Keep ``line`` and write it to the page's log file."""
        super().append(line)
        self._write(line)


class Page:
    """A page's parameters and furniture.

    Parameters
    ----------
    stem : str
        The notebook's stem, a key of :data:`ecgrepro.parameters.PAGE_SHARED`.
    namespace : dict
        The notebook's ``globals()``. A shared parameter it lacks (a notebook run by hand) is
        set to the paper's value (``profiles.yml`` ``defaults``), so the page's code reads
        ``fs_hz`` as if it had declared it.

    Attributes
    ----------
    stem : str
    profile : str
        The profile the page ran with (``custom`` by hand).
    log : PageLog
        What :meth:`cached` re-read or computed, one line each (also in :attr:`log_path`).
    log_path : pathlib.Path
        ``<build>/logs/<stem>.log``: the pipeline's and the store's lines and the warnings,
        timestamped, appended run after run; created on the first line.
    warnings : int
        How many Python warnings were raised (and shown, after Python's filters) while the
        page ran; each is in :attr:`log_path`, none on the page.
    pipes : list of ecgrepro.pipeline.Pipeline
        The pipelines :meth:`pipeline` opened, in order.

    Notes
    -----
    From construction to :meth:`finish` (or :meth:`close`), ``warnings.showwarning`` is the
    page's: a warning goes to :attr:`log_path`, not to the notebook's stderr.

    Raises
    ------
    KeyError
        If ``stem`` is not a page of :data:`~ecgrepro.parameters.PAGE_SHARED`.
    """

    def __init__(self, stem: str, namespace: dict):
        if stem not in PAGE_SHARED:
            raise KeyError(f"unknown page {stem!r}; known: {', '.join(PAGE_SHARED)}")
        self.stem = stem
        self.ns = namespace
        for name, value in page_declared(stem).items():
            namespace.setdefault(name, value)
        self.profile = namespace.get("profile", "custom")
        build = Path(namespace.get("build_dir") or REPO_ROOT / "_build")  # as setup() has it
        self.log_path = build / "logs" / f"{stem}.log"
        self.log = PageLog(self.write)
        self.pipes: list = []
        from ecgrepro.book.display import install

        install()  # every DataFrame the page shows: 2 decimals, '-' for NaN, no 0..n index
        self.warnings = 0
        self.claims: list = []
        self._began = False
        self._shown, self._hook = warnings.showwarning, self._showwarning
        warnings.showwarning = self._hook
        self.started = time.perf_counter()

    def __getitem__(self, name: str):
        """A parameter's value as the page runs with it."""
        return self.ns[name]

    def parameters(self) -> str:
        """The front matter's parameter line (Markdown); starts the page's clock."""
        return page_parameters(self.stem, self.ns)

    def show_parameters(self) -> None:
        """Display :meth:`parameters` (the page's first output)."""
        _show(self.parameters())

    def pipeline(self, *, label_mapping: str | None = None, extra: tuple[str, ...] = ()):
        """Open the page's pipeline with its parameters, by keyword.

        Parameters
        ----------
        label_mapping : str, optional
            Instead of the page's ``label_mapping`` (the labels page opens both).
        extra : tuple of str
            The page's own parameters that its catalogue models or derived datasets read
            (``lstm_lead``, ``planted_records``, ...), passed to setup's ``extra``.

        Returns
        -------
        ecgrepro.pipeline.Pipeline
            Its run facts (device, data inventory) are recorded for the book's run report; its
            progress lines (``pipe.model(name)``: artifact reused or trained, the epochs) go to
            :attr:`log_path`, not to the page.

        Raises
        ------
        ecgrepro.parameters.ParameterError, ecgrepro.config.DataNotFoundError
            As :func:`ecgrepro.pipeline.setup`.
        """
        from ecgrepro.pipeline import setup

        kw = {k: self.ns[k] for k in SETUP_PARAMETERS if k in self.ns}  # setup's keywords
        if label_mapping is not None:
            kw["label_mapping"] = label_mapping
        pipe = setup(
            self.ns.get("data_root", ""),
            self.ns.get("build_dir", ""),
            **kw,
            extra={name: self.ns[name] for name in extra},
            log=self.write,  # pipe.model(...)'s lines go to the page's log file
        )
        write_run_facts(pipe.build, pipe.run_facts())
        self.pipes.append(pipe)
        return pipe

    @property
    def pipe(self):
        """The first pipeline :meth:`pipeline` opened."""
        if not self.pipes:
            raise RuntimeError(f"{self.stem}: page.pipeline() was not called")
        return self.pipes[0]

    @property
    def build(self) -> Path:
        """The build folder (tables, figures, artifacts)."""
        return self.pipe.build

    def show_data_notes(self) -> None:
        """Display the pipeline's notes on the data (records missing, releases, padding).

        The data root in a note is shown as :func:`~ecgrepro.book.report.shown_path` gives it.
        """
        root = str(self.pipe.root)
        for note in self.pipe.data_notes():
            _show(f"**Note:** {note.replace(root, shown_path(root)) if root else note}")

    def note(self, text: str) -> None:
        """Display a note to the reader (``**Note:** text``, Markdown), not a printed line.

        For what a page says when it has nothing to show (``figures["lbbb"] if "lbbb" in
        figures else page.note("no LBBB record in the test set")``): a ``print`` would be a
        console stream on the page (issue #25, item 5).
        """
        _show(f"**Note:** {text}")

    def glue(self, **values) -> None:
        """Glue each value under its name, for ``{glue:text}`` in the prose (not displayed)."""
        from myst_nb import glue

        for name, value in values.items():
            glue(name, value, display=False)

    def cached(self, name: str, payload: dict, compute):
        """An explanation result through the store (:func:`ecgrepro.explain.store.cached`).

        Stored under ``<build>/artifacts/explain``; what was re-read or computed goes to
        :attr:`log` and the page's log file, not to the page.
        """
        from ecgrepro.explain.store import cached

        return cached(self.pipe.artifacts / "explain", name, payload, compute, log=self.log.append)

    def reused(self) -> int:
        """How many of :attr:`log`'s results were re-read rather than computed."""
        return sum("reusing" in line for line in self.log)

    def savefig(self, fig, name: str, dpi: int = 120) -> None:
        """Save a figure as ``<build>/figures/<name>`` (PNG at ``dpi``)."""
        fig.savefig(self.build / "figures" / name, dpi=dpi)

    def caption(self, number: str, what: str, *, models: str, data: str, scope: bool = True):
        """Display a figure's caption (:func:`ecgrepro.book.report.figure_caption`).

        ``scope``: append the records the numbers rest on (:func:`data_scope`).
        """
        if scope:
            data = f"{data}; {data_scope(self.pipe.datasets)}"
        _show(figure_caption(number, what, models=models, data=data, profile=self.profile))

    def write(self, line: str) -> None:
        """Append ``line`` to :attr:`log_path`, each of its lines timestamped (not shown).

        The page's logger: the pipeline's (:meth:`pipeline`) and the store's (:attr:`log`)
        lines come here. The first line of a run is preceded by one naming the page and profile.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().isoformat(sep=" ", timespec="seconds")
        with self.log_path.open("a", encoding="utf-8") as fh:
            if not self._began:
                fh.write(f"{stamp} === {self.stem}: run with the {self.profile} profile\n")
                self._began = True
            for part in str(line).splitlines() or [""]:
                fh.write(f"{stamp} {part}\n")

    def _showwarning(self, message, category, filename, lineno, file=None, line=None):
        """``warnings.showwarning`` while the page runs: to :attr:`log_path`, counted."""
        self.warnings += 1
        self.write(f"warning: {category.__name__}: {message} ({filename}:{lineno})")

    def warnings_text(self) -> str:
        """``"no warnings"``, or how many and where they are (glued as ``run_warnings``)."""
        if not self.warnings:
            return "no warnings"
        s = "" if self.warnings == 1 else "s"
        return f"{self.warnings} warning{s}, in the page's log `{shown_path(self.log_path)}`"

    def close(self) -> None:
        """Give ``warnings.showwarning`` back (:meth:`finish` calls it); idempotent."""
        if warnings.showwarning == self._hook:
            warnings.showwarning = self._shown

    def finish(self) -> None:
        """The page's last code cell: glue ``run_cost`` and ``run_warnings``, record the count.

        ``run_cost`` is for the "About this page" box; ``run_warnings`` is
        :meth:`warnings_text`. The warnings' count and the log file go to the run facts
        (``run.warnings``, ``run.log`` in the run report); warnings are then shown as usual.
        """
        self.close()
        cost = run_cost(self.stem, {"profile": self.profile, "pipes": dict(enumerate(self.pipes))})
        facts = {"warnings": self.warnings, "log": str(self.log_path)}
        facts["claims"] = claim_records(self.stem, self.claims)  # the book's claims table
        write_run_facts(self.log_path.parents[1], facts)
        from IPython.display import Markdown

        verdict = Markdown(verdict_line(self.claims))  # {glue:md}`verdict` in the About box
        self.glue(run_cost=cost, run_warnings=self.warnings_text(), verdict=verdict)

    def claim(self, *claims) -> None:
        """Record the claims of the paper or a companion that this page tests (``Claim`` rows).

        :meth:`finish` writes them with the run facts (``<build>/run/<stem>.json``), from which
        the book runner builds the claims table of the first page, and glues ``verdict``, the
        About box's line
        (:func:`ecgrepro.claims.verdict_line`).
        """
        self.claims.extend(claims)


def _show(markdown: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(markdown))
