"""Project-wide constants, the data root and the notebook profiles.

The class order and the lead order matter for every table and model output:
they follow the published code of Zhang et al. (2020), which the paper reuses
(METHODS.md, "Classes").
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

#: The 9 CPSC 2018 classes, in the order of the model's outputs and of every table.
CLASSES: tuple[str, ...] = ("SNR", "AF", "IAVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE")

#: The 12 standard leads, in the order of the model's input channels.
LEADS: tuple[str, ...] = (
    "I",
    "II",
    "III",
    "aVR",
    "aVL",
    "aVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)

#: Environment variable naming the data root (a folder holding ``ptb-xl/`` and ``cpsc2018/``).
DATA_ENV = "ECGREPRO_DATA"

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES_FILE = Path(__file__).resolve().parent / "profiles.yml"

_EXPECTED_LAYOUT = (
    "<root>/ptb-xl/ptbxl_database.csv (+ scp_statements.csv, records100/, records500/) and "
    "<root>/cpsc2018/REFERENCE.csv (+ the CPSC 2018 records in any of: WFDB .hea/.mat, "
    "or the original release's .mat struct ECG)"
)


class DataNotFoundError(FileNotFoundError):
    """No data root with the expected PTB-XL / CPSC 2018 layout was found."""


def candidate_data_roots(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for the data, in order.

    Parameters
    ----------
    explicit : str or path-like, optional
        A root given directly (a notebook parameter). When given, it is the only
        candidate.

    Returns
    -------
    list of pathlib.Path
        ``explicit`` if given; otherwise ``$ECGREPRO_DATA`` if set, then
        ``../shared/ecg-data`` beside the repository (the real sample).
    """
    if explicit:
        return [Path(explicit).expanduser()]
    roots = []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    roots.append(REPO_ROOT.parent / "shared" / "ecg-data")
    return roots


def find_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Return the first candidate folder that holds both datasets.

    Parameters
    ----------
    explicit : str or path-like, optional
        A root given directly; overrides ``$ECGREPRO_DATA``.

    Returns
    -------
    pathlib.Path
        Absolute path of a folder with ``ptb-xl/ptbxl_database.csv`` and
        ``cpsc2018/REFERENCE.csv``.

    Raises
    ------
    DataNotFoundError
        If no candidate has that layout; the message lists every folder looked
        at and the layout expected.
    """
    roots = candidate_data_roots(explicit)
    for root in roots:
        if (root / "ptb-xl" / "ptbxl_database.csv").is_file() and (
            root / "cpsc2018" / "REFERENCE.csv"
        ).is_file():
            return root.resolve()
    looked = ", ".join(str(r) for r in roots)
    raise DataNotFoundError(
        f"No ECG data found. Looked in: {looked}. Expected {_EXPECTED_LAYOUT}. "
        f"Set {DATA_ENV}=/path/to/root (or the notebook parameter data_root)."
    )


def load_profiles(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read the notebook profiles.

    Parameters
    ----------
    path : path-like, optional
        A YAML file: ``defaults`` maps each page to its parameters (the
        paper's settings), every other top-level key is a profile holding only
        what it changes; in both, ``common`` applies to every page. Defaults to
        ``ecgrepro/profiles.yml``.

    Returns
    -------
    dict
        ``{profile: {page: {parameter: value}}}``, complete for every page of
        ``defaults``: defaults' common, defaults' page, the profile's common,
        the profile's page, in that order of precedence (last wins), plus
        ``profile``: the profile's name.

    Raises
    ------
    KeyError
        If a profile names a page that ``defaults`` does not list.
    """
    raw = yaml.safe_load(Path(path or PROFILES_FILE).read_text())
    defaults = raw.pop("defaults", {}) or {}
    pages = [p for p in defaults if p != "common"]
    profiles = {}
    for name, spec in raw.items():
        spec = spec or {}
        unknown = sorted(set(spec) - set(pages) - {"common"})
        if unknown:
            raise KeyError(f"profile {name!r} names pages not in defaults: {unknown}")
        profiles[name] = {
            page: {
                **defaults.get("common", {}),
                **(defaults.get(page) or {}),
                **spec.get("common", {}),
                **(spec.get(page) or {}),
                "profile": name,
            }
            for page in pages
        }
    return profiles
