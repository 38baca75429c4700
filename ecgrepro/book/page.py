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
"""

from __future__ import annotations

import time
from pathlib import Path

from ecgrepro.book.report import (
    data_scope,
    figure_caption,
    page_parameters,
    run_cost,
    write_run_facts,
)
from ecgrepro.catalogue import SETUP_PARAMETERS
from ecgrepro.parameters import PAGE_SHARED, page_declared


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
    log : list of str
        What :meth:`cached` re-read or computed, one line each.
    pipes : list of ecgrepro.pipeline.Pipeline
        The pipelines :meth:`pipeline` opened, in order.

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
        self.log: list[str] = []
        self.pipes: list = []
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
            Its run facts (device, data inventory) are recorded for the book's run report.

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
        """Display the pipeline's notes on the data (records skipped, releases, padding)."""
        for note in self.pipe.data_notes():
            _show(f"**Note:** {note}")

    def glue(self, **values) -> None:
        """Glue each value under its name, for ``{glue:text}`` in the prose (not displayed)."""
        from myst_nb import glue

        for name, value in values.items():
            glue(name, value, display=False)

    def cached(self, name: str, payload: dict, compute):
        """An explanation result through the store (:func:`ecgrepro.explain.store.cached`).

        Stored under ``<build>/artifacts/explain``; what was re-read or computed goes to
        :attr:`log`.
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

    def finish(self) -> None:
        """Glue ``run_cost`` for the "About this page" box (the page's last code cell)."""
        cost = run_cost(self.stem, {"profile": self.profile, "pipes": dict(enumerate(self.pipes))})
        self.glue(run_cost=cost)


def _show(markdown: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(markdown))
