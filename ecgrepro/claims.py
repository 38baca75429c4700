"""The book's verdicts: each claim of the paper and the companions, the paper's number, ours.

Every page states the claims it tests as :class:`Claim` rows, computed from its results
(never typed): the claim in words, the paper's number, ours with its 95% interval, and a
verdict from :data:`VERDICTS`. :meth:`ecgrepro.book.page.Page.claim` collects them,
:meth:`~ecgrepro.book.page.Page.finish` writes them with the page's run facts
(``<build>/run/<page>.json``, :func:`claim_records`) and glues the page's verdict line for its
"About this page" box, and the book runner gathers every page's claims into
``tables/claims.csv`` and the claims table on the book's first page
(:func:`claims_markdown`), verdicts first (issue #25, item 1).

A verdict reads an interval, not a point: a difference the paper reports holds where our 95%
interval lies on the paper's side of 0, does not hold where it lies on the other side, and the
sample cannot tell where it contains 0 (:func:`direction_verdict`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: The verdicts a claim can get.
HOLDS, FAILS, CANNOT_TELL = "holds", "does not hold", "the sample cannot tell"
VERDICTS = (HOLDS, FAILS, CANNOT_TELL)

#: The pages' short names in the claims table.
PAGE_NAMES = {
    "table1_dataset": "Table 1",
    "table2_generalisation": "Table 2",
    "table3_retraining": "Table 3",
    "labels_and_the_gap": "Labels",
    "fig2-5_shap_per_lead": "Figs 2-5",
    "fig6-8_gradcam": "Figs 6-8",
    "companion_a_relevance": "Companion A",
    "companion_b_deletion_mask": "Companion B",
    "companion_c_clusters": "Companion C",
    "faithfulness": "Faithfulness",
}

#: Columns of ``claims.csv``.
CLAIM_COLUMNS = ["page", "key", "claim", "paper", "ours", "verdict", "basis"]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper or a companion, tested on one page.

    Attributes
    ----------
    key : str
        Short identifier, unique on its page (``gap_f1``).
    claim : str
        The claim in words, as the paper makes it.
    paper : str
        The paper's number ("-" where it prints none).
    ours : str
        Our number with its 95% interval (:func:`interval_text`), or a count.
    verdict : str
        One of :data:`VERDICTS`.
    basis : str
        One sentence: what the verdict rests on (the interval, the records, the profile).
    """

    key: str
    claim: str
    paper: str
    ours: str
    verdict: str
    basis: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.key!r}: verdict {self.verdict!r} not in {VERDICTS}")


def interval_text(value: float, low: float, high: float, digits: int = 2) -> str:
    """``0.15 [0.02, 0.29]``; ``-`` for a missing value or bound.

    Parameters
    ----------
    value, low, high : float
        A point estimate and its interval.
    digits : int
        Decimals shown (the CSVs keep full precision).

    Returns
    -------
    str
    """

    def f(v) -> str:
        return "-" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"

    return f"{f(value)} [{f(low)}, {f(high)}]"


def direction_verdict(low: float, high: float, paper_sign: int = 1) -> str:
    """Whether a difference the paper reports holds, read from our 95% interval.

    Parameters
    ----------
    low, high : float
        Our interval of the difference (ours minus the comparison, in the claim's direction).
    paper_sign : {1, -1}
        The side of 0 the paper reports (1: a positive difference, e.g. a gap).

    Returns
    -------
    str
        :data:`HOLDS` where the interval lies on the paper's side of 0, :data:`FAILS` where it
        lies on the other side, :data:`CANNOT_TELL` where it contains 0 or is undefined.

    Raises
    ------
    ValueError
        If ``paper_sign`` is not 1 or -1.
    """
    if paper_sign not in (1, -1):
        raise ValueError(f"paper_sign must be 1 or -1, not {paper_sign!r}")
    if not (np.isfinite(low) and np.isfinite(high)):
        return CANNOT_TELL
    lo, hi = sorted((paper_sign * low, paper_sign * high))
    if lo > 0:
        return HOLDS
    if hi < 0:
        return FAILS
    return CANNOT_TELL


def claim_records(page: str, claims: list[Claim]) -> list[dict]:
    """One page's claims as JSON-ready rows, for its run facts (``claims`` in
    ``<build>/run/<page>.json``, written by :func:`ecgrepro.book.report.write_run_facts`).

    Parameters
    ----------
    page : str
        The notebook's stem (for the error).
    claims : list of Claim

    Returns
    -------
    list of dict

    Raises
    ------
    ValueError
        If two claims share a key.
    """
    keys = [c.key for c in claims]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{page}: claim keys repeat: {keys}")
    return [asdict(c) for c in claims]


def collect_claims(build: Path, pages: list[str]) -> pd.DataFrame:
    """Every page's claims, in the book's page order (pages without claims contribute none).

    Parameters
    ----------
    build : pathlib.Path
    pages : list of str
        Notebook stems in ``_toc.yml`` order.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CLAIM_COLUMNS`.
    """
    rows = []
    for page in pages:
        path = Path(build) / "run" / f"{page}.json"  # the page's run facts
        if path.exists():
            rows += [{"page": page, **c} for c in json.loads(path.read_text()).get("claims", [])]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def verdict_line(claims: list[Claim]) -> str:
    """The About box's verdict line: each claim's verdict in a few words.

    Parameters
    ----------
    claims : list of Claim

    Returns
    -------
    str
        Markdown, e.g. ``**Verdict:** the gap in mean F1: holds (ours 0.15 [0.02, 0.29],
        paper 0.49).``; a plain sentence where the page tests no claim.
    """
    if not claims:
        return "**Verdict:** this page tests no claim of the paper; it documents a method."
    parts = [f"{c.claim}: **{c.verdict}** (ours {c.ours}; paper {c.paper})" for c in claims]
    return "**Verdict:** " + "; ".join(parts) + "."


def claims_markdown(claims: pd.DataFrame, titles: dict[str, str] | None = None) -> str:
    """The claims table of the book's first page (MyST Markdown), one row per claim.

    Parameters
    ----------
    claims : pandas.DataFrame
        :func:`collect_claims`.
    titles : dict of str -> str, optional
        Page stem -> link text; default :data:`PAGE_NAMES` (else the stem).

    Returns
    -------
    str
        A Markdown table ``Claim | Paper | Ours [95% CI] | Verdict | Page`` with a
        ``{doc}`` link per page, or one sentence where no page recorded a claim.
    """
    if claims.empty:
        return "No page of this build recorded a claim (were the pages executed?).\n"
    titles = PAGE_NAMES if titles is None else titles
    lines = ["| Claim | Paper | Ours [95% CI] | Verdict | Page |", "|---|---|---|---|---|"]
    for r in claims.itertuples():
        link = f"{{doc}}`{titles.get(r.page, r.page)} <../notebooks/{r.page}>`"
        cells = [r.claim, r.paper, r.ours, f"**{r.verdict}**", link]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    counts = claims.verdict.value_counts()
    summary = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS)
    return "\n".join(lines) + f"\n\n{len(claims)} claims: {summary}.\n"


def stage_claims(build: Path, pages: list[str]) -> str:
    """Gather the pages' claims: write ``<build>/tables/claims.csv``, return the Markdown table.

    Called by the book runner when it stages the sources (the first page includes the table).

    Parameters
    ----------
    build : pathlib.Path
    pages : list of str
        Notebook stems in ``_toc.yml`` order.

    Returns
    -------
    str
        :func:`claims_markdown` of :func:`collect_claims`.
    """
    table = collect_claims(build, pages)
    out = Path(build) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "claims.csv", index=False)
    return claims_markdown(table)
