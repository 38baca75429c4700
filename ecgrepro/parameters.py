"""Every page and command parameter in one table, and their validation.

:data:`PARAMETERS` lists every name declared in the ``parameters`` cell of a
notebook under ``notebooks/`` and every name of ``ecgrepro/profiles.yml``,
each with its type, its allowed values and a one-line meaning.
:func:`validate` converts a set of values to those types and checks them
against the table, so that a bad value stops a build or a training at once,
before any data is read, with one line naming the parameter
(:class:`ParameterError`), instead of a traceback later on.

The ranges are those within which the code is meaningful, not the paper's
values: ``fs_hz`` in (0, 1000] Hz with ``fs_hz * window_s`` a whole number of
samples, ``window_s`` in (0, 60] s, at least one epoch, a positive learning
rate, and so on. Values given with the right type are returned unchanged (an
int given for a float parameter stays an int), so validating a profile cannot
change a single number of the book.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ecgrepro.config import LEADS

#: The types a parameter can have.
KINDS = ("int", "float", "bool", "str", "list of int")

#: Allowed strings of the ``str`` parameters with choices (``lstm_lead``: :data:`LEADS`).
AMP = ("off", "bf16")  # ecgrepro.runtime.AMP_MODES
MAPPINGS = ("published", "rhythm-aware")  # ecgrepro.data.labels.MAPPING_FILES
BASELINES = ("zeros", "mean")
STAGES = ("layer1", "layer2", "layer3", "layer4")
QRS_METHODS = ("prominence", "peak", "cwt", "dwt")

_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


class ParameterError(ValueError):
    """A page or command parameter with a value it does not allow, or an unknown name.

    The message is one line: the parameter, the value given and the values
    allowed (and the page, where known).
    """


def _where(page: str | None) -> str:
    return f" (page {page})" if page else ""


def _error(name: str, value, allowed: str, page: str | None = None) -> ParameterError:
    """The one-line error for ``name = value``."""
    return ParameterError(f"parameter {name}{_where(page)}: got {value!r}; allowed: {allowed}")


@dataclass(frozen=True)
class Parameter:
    """One row of :data:`PARAMETERS`.

    Attributes
    ----------
    name : str
    kind : {"int", "float", "bool", "str", "list of int"}
        ``float`` takes an int as well (kept an int); ``list of int`` is a
        non-empty list whose items are checked against the bounds.
    meaning : str
        One line.
    low, high : float, optional
        Bounds of a number (of each item of a list); None: unbounded.
    low_open, high_open : bool
        True where the bound itself is excluded.
    choices : tuple of str, optional
        The allowed values of a ``str`` parameter; None: any string.
    from_bool : tuple of str, optional
        ``(value for False, value for True)``: a ``str`` parameter that also
        takes a bool (YAML 1.1 reads ``off`` as False).
    """

    name: str
    kind: str
    meaning: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    from_bool: tuple[str, str] | None = None

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``an integer >= 1`` or ``a number in (0, 60]``."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            if self.name == "device":
                return "auto, cpu, cuda, cuda:N or mps"
            return "one of " + ", ".join(self.choices) if self.choices else "a string"
        noun = {"int": "an integer", "float": "a number", "list of int": "a non-empty list of"}
        noun = noun[self.kind] + (" integers" if self.kind == "list of int" else "")
        low, high = _number_text(self.low), _number_text(self.high)
        if low and high:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{low}, {high}{right}"
        if low:
            return f"{noun} {'>' if self.low_open else '>='} {low}"
        if high:
            return f"{noun} {'<' if self.high_open else '<='} {high}"
        return noun

    def convert(self, value, page: str | None = None):
        """``value`` as this parameter's type, checked against its allowed values.

        Parameters
        ----------
        value : object
            An int, float, bool, str (``"1e-4"``, ``"5"``, ``"true"``, ``"[4, 6]"``
            are converted), list, or path-like for a ``str`` parameter without choices.
        page : str, optional
            Named in the error message.

        Returns
        -------
        object
            ``value`` itself where it already has the right type (an int for a
            ``float`` parameter included), else the converted value.

        Raises
        ------
        ParameterError
            If the value cannot be converted or is not allowed.
        """
        error = _error(self.name, value, self.allowed(), page)
        if self.kind == "bool":
            return _to_bool(value, error)
        if self.kind == "str":
            return self._to_str(value, error)
        if self.kind == "list of int":
            items = _to_list(value, error)
            return [self._in_range(_to_int(v, error), error) for v in items]
        number = _to_int(value, error) if self.kind == "int" else _to_float(value, error)
        return self._in_range(number, error)

    def _to_str(self, value, error: ParameterError) -> str:
        if isinstance(value, bool) and self.from_bool:
            return self.from_bool[int(value)]
        if isinstance(value, os.PathLike) and not self.choices:
            value = os.fspath(value)
        if not isinstance(value, str):
            raise error
        if self.name == "device" and not _DEVICE.fullmatch(value):
            raise error
        if self.choices and value not in self.choices:
            raise error
        return value

    def _in_range(self, number, error: ParameterError):
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            raise error
        if self.high is not None and (
            number > self.high or (self.high_open and number == self.high)
        ):
            raise error
        return number


def _number_text(x: float | None) -> str:
    """A bound as text: ``4294967295``, ``0.5``; empty for None."""
    if x is None:
        return ""
    return str(int(x)) if x == int(x) else f"{x:g}"


def _to_bool(value, error: ParameterError) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise error


def _to_int(value, error: ParameterError) -> int:
    if isinstance(value, bool):
        raise error
    if isinstance(value, int):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                raise error from None
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    raise error


def _to_float(value, error: ParameterError) -> int | float:
    if isinstance(value, bool):
        raise error
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, numbers.Real):
        number = int(value) if isinstance(value, numbers.Integral) else float(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise error from None
    else:
        raise error
    if not math.isfinite(number):
        raise error
    return number


def _to_list(value, error: ParameterError) -> list:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        value = [v for v in re.split(r"[,\s]+", text) if v]
    if not isinstance(value, list | tuple) or not value:
        raise error
    return list(value)


def _p(name: str, kind: str, meaning: str, **allowed) -> Parameter:
    return Parameter(name, kind, meaning, **allowed)


def _upto(high: float) -> dict:
    """Bounds (0, high]."""
    return {"low": 0, "high": high, "low_open": True}


_GE1 = {"low": 1}
_GE0 = {"low": 0}
_GT0 = {"low": 0, "low_open": True}
_PERCENT = _upto(100)
_SEEDS = {"low": 0, "high": 2**32 - 1}  # numpy's and scikit-learn's seeds

#: Every page and command parameter: name -> :class:`Parameter`.
PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        # every page
        _p("profile", "str", "the profile that produced the page (the book passes its name)"),
        _p("data_root", "str", "data root; empty: $ECGREPRO_DATA, then ../shared/ecg-data"),
        _p("build_dir", "str", "tables, figures and artifacts go below it; empty: <repo>/_build"),
        # data and training (ecgrepro.pipeline.setup, ecgrepro train)
        _p("fs_hz", "float", "model input sampling frequency, Hz", **_upto(1000)),
        _p("window_s", "float", "input window, s: the last window_s s are kept", **_upto(60)),
        _p("epochs", "int", "epochs of the Original", **_GE1),
        _p("epochs_ours", "int", "epochs of Ours_1, Ours_2 and the later pages' models", **_GE1),
        _p("batch_size", "int", "training batch (a distributed training's global one)", **_GE1),
        _p("lr", "float", "Adam learning rate", **_GT0),
        _p("seed", "int", "seeds the CPSC folds and replicate 0 (k: seed + k)", **_SEEDS),
        _p("n_seeds", "int", "training replicates of the Original", **_GE1),
        _p("n_seeds_ours", "int", "training replicates of Ours_1 and Ours_2", **_GE1),
        _p("device", "str", "auto: CUDA when present, else the CPU"),
        _p("n_boot", "int", "bootstrap resamples of every 95% interval", **_GE1),
        _p("retrain", "bool", "train even where an artifact has the same key"),
        _p("amp", "str", "mixed precision (off: faithful)", choices=AMP, from_bool=AMP),
        _p("compile", "bool", "torch.compile for training and scoring"),
        _p("deterministic", "bool", "deterministic algorithms in training (true: faithful)"),
        _p("augment_cpsc_in_ours2", "bool", "Ours_2 augments CPSC records too (false: faithful)"),
        _p("label_mapping", "str", "PTB-XL labels (rhythm-aware: labels page)", choices=MAPPINGS),
        # SHAP (Figures 2-5), reused by the faithfulness page
        _p("n_background", "int", "SHAP background records", **_GE1),
        _p("n_explained", "int", "SHAP explained records, published selection", **_GE1),
        _p("nsamples", "int", "GradientExplainer samples per explained record", **_GE1),
        _p("n_per_class", "int", "principled SHAP variant: test records per class", **_GE1),
        _p("exact_per_panel", "int", "records per panel with exact lead Shapley values", **_GE0),
        _p("exact_baseline", "str", "absent leads: zeros or the training mean", choices=BASELINES),
        # Companion A
        _p("n_steps", "int", "Integrated Gradients steps", **_GE1),
        _p("n_per_group", "int", "test records per group and dataset (0: all)", **_GE0),
        _p("before_ms", "float", "average-beat window before the R peak, ms", **_upto(1000)),
        _p("after_ms", "float", "average-beat window after the R peak, ms", **_upto(1000)),
        # Figures 6-8 and Companion B
        _p("layer", "str", "Grad-CAM layer: a residual stage of the ResNet-34", choices=STAGES),
        _p("percentile", "float", "Grad-CAM display threshold, percentile", **_PERCENT),
        _p("qrs_method", "str", "neurokit2 ecg_delineate method", choices=QRS_METHODS),
        _p("n_iter", "int", "Adam iterations per deletion mask", **_GE1),
        _p("mask_lr", "float", "Adam learning rate on the mask", **_GT0),
        _p("l1", "float", "weight of the deleted share", **_GE0),
        _p("tv", "float", "weight of the mask's total variation", **_GE0),
        _p("blur_hz", "float", "deleted signal: its low-pass copy below this, Hz", **_GT0),
        _p("bin_ms", "float", "mask resolution, ms", **_upto(1000)),
        _p("top_percent", "float", "Jaccard overlap of each map's top share, %", **_PERCENT),
        _p("lstm_lead", "str", "the lead of Companion B's LSTM", choices=LEADS),
        _p("lstm_epochs", "int", "LSTM training epochs", **_GE1),
        _p("lstm_lr", "float", "LSTM Adam learning rate", **_GT0),
        # Companion C
        _p("layers", "str", "layer2-4, or layer4's 3 blocks", choices=("stages", "layer4_blocks")),
        _p("n_components", "int", "PCA components", **_GE1),
        _p("ks", "list of int", "numbers of clusters K tried", **_GE1),
        _p("k_seeds", "int", "mixtures per K (stability across seeds)", **_GE1),
        _p("min_stability", "float", "K: lowest BIC among those this stable", low=0, high=1),
        _p("max_fit_steps", "int", "time steps the PCA and the mixtures see", **_GE1),
        _p("n_wave_records", "int", "test records delineated (0: all)", **_GE0),
        _p("n_estimators", "int", "trees of each surrogate forest", **_GE1),
        # faithfulness
        _p("n_records", "int", "test records per model and dataset", **_GE1),
        _p("n_curve_steps", "int", "points of each curve, minus one", **_GE1),
        _p("lerf_variants", "bool", "LeRF under every replacement (false: interpolation only)"),
        _p("n_random_records", "int", "records of the randomisation checks", **_GE1),
        _p("randomise_exact12", "bool", "12-lead exact Shapley values in the randomisation checks"),
        _p("randomise_exact8", "bool", "8-lead exact Shapley values in the randomisation checks"),
        _p("data_randomisation", "bool", "compare with a model trained on shuffled labels"),
        _p("planted_records", "int", "PTB-XL records given planted markers (0: all)", **_GE0),
        _p("planted_epochs", "int", "epochs of the planted-marker ResNet-34", **_GE1),
        _p("planted_lr", "float", "its Adam learning rate", **_GT0),
        _p("planted_batch", "int", "its training batch", **_GE1),
        _p("planted_depth_mv", "float", "depth of the planted notch, mV", **_GT0),
        _p("n_planted_explain", "int", "explained test records per marker", **_GE1),
        _p("exact12_records", "int", "12-lead exact Shapley records (0: all; < 0: none)"),
        _p("planted_exact8_records", "int", "8-lead exact Shapley records (0: all; < 0: none)"),
    )
}


#: The model pipeline's parameters (:func:`ecgrepro.pipeline.setup`), shared by the pages.
SETUP = (
    "fs_hz",
    "window_s",
    "epochs",
    "epochs_ours",
    "batch_size",
    "lr",
    "seed",
    "device",
    "retrain",
    "augment_cpsc_in_ours2",
    "label_mapping",
    "amp",
    "compile",
    "deterministic",
)
#: The SHAP page's selection, which the faithfulness page re-reads.
SHAP = (
    "n_background",
    "n_explained",
    "nsamples",
    "n_per_class",
    "exact_per_panel",
    "exact_baseline",
)
_NO_OURS = tuple(n for n in SETUP if n not in ("epochs_ours", "augment_cpsc_in_ours2"))

#: Per page, the shared parameters its notebook does not declare: the book runner passes them
#: from the profile (``profiles.yml``, ``common``), and :class:`ecgrepro.book.page.Page` sets
#: the paper's values (``defaults``) where a notebook runs by hand. A notebook's ``parameters``
#: cell declares only ``profile``, ``data_root``, ``build_dir`` and the page's own parameters.
PAGE_SHARED: dict[str, tuple[str, ...]] = {
    "table1_dataset": ("label_mapping",),
    "table2_generalisation": (*_NO_OURS, "n_seeds", "n_boot"),
    "table3_retraining": (*SETUP, "n_seeds", "n_seeds_ours", "n_boot"),
    "labels_and_the_gap": (*(n for n in SETUP if n != "label_mapping"), "n_seeds", "n_boot"),
    "fig2-5_shap_per_lead": (*SETUP, *SHAP),
    "companion_a_relevance": (*SETUP, "n_boot"),
    "fig6-8_gradcam": SETUP,
    "companion_b_deletion_mask": SETUP,
    "companion_c_clusters": (*SETUP, "n_boot"),
    "faithfulness": (*SETUP, *SHAP, "n_boot"),
}
#: What every parameters cell declares first.
PAGE_FRONT = ("profile", "data_root", "build_dir")


def notebook_parameters(page: str, notebooks: os.PathLike | None = None) -> dict[str, object]:
    """The names and literal defaults a notebook's cell tagged ``parameters`` assigns, in order.

    Parameters
    ----------
    page : str
        The notebook's stem under ``notebooks/``.
    notebooks : path-like, optional
        The notebook folder; default ``<repo>/notebooks``.

    Returns
    -------
    dict
        Name -> default value (``ast.literal_eval`` of the right-hand side).

    Raises
    ------
    FileNotFoundError
        If the notebook does not exist.
    ValueError
        If it has no cell tagged ``parameters``, or a default is not a literal.
    """
    import ast
    import json
    from pathlib import Path

    from ecgrepro.config import REPO_ROOT

    path = Path(notebooks or REPO_ROOT / "notebooks") / f"{page}.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            out = {}
            for node in tree.body:
                if isinstance(node, ast.Assign):
                    for t in node.targets:
                        if isinstance(t, ast.Name):
                            try:
                                out[t.id] = ast.literal_eval(node.value)
                            except ValueError as e:
                                raise ValueError(
                                    f"{path}: parameter {t.id} has no literal default"
                                ) from e
            return out
    raise ValueError(f"{path}: no cell tagged 'parameters'")


def page_declared(page: str, notebooks: os.PathLike | None = None) -> dict[str, object]:
    """Every parameter of a page with its default: what the book may pass it.

    Parameters
    ----------
    page : str
        The notebook's stem.
    notebooks : path-like, optional
        The notebook folder; default ``<repo>/notebooks``.

    Returns
    -------
    dict
        ``profile``, ``data_root``, ``build_dir``, then the page's shared parameters
        (:data:`PAGE_SHARED`, with the paper's values of ``profiles.yml`` ``defaults``), then
        the rest of its notebook's ``parameters`` cell (:func:`notebook_parameters`).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`notebook_parameters`; ValueError also if a notebook declares a shared
        parameter itself (it would hide the profile's value).
    """
    from ecgrepro.config import load_profiles

    own = notebook_parameters(page, notebooks)
    shared = PAGE_SHARED.get(page, ())
    twice = sorted(set(shared) & set(own))
    if twice:
        raise ValueError(
            f"notebook {page} declares shared parameters {twice}: the book passes them "
            "(ecgrepro.parameters.PAGE_SHARED); remove them from its parameters cell"
        )
    paper = load_profiles()["paper"][page] if shared else {}
    front = {k: own[k] for k in PAGE_FRONT if k in own}
    return {
        **front,
        **{k: paper[k] for k in shared},
        **{k: v for k, v in own.items() if k not in front},
    }


def validate(
    params: Mapping[str, object], page: str | None = None, *, check_device: bool = True
) -> dict:
    """Check page or command parameters against :data:`PARAMETERS`; return them converted.

    Parameters
    ----------
    params : mapping of str -> object
        Parameter name -> value, e.g. a page's merged profile and ``-p`` values,
        or :func:`ecgrepro.pipeline.setup`'s arguments. Strings are converted where
        the type asks for it (``"1e-4"`` for a float, ``"5"`` for an int,
        ``"true"``/``"false"`` for a bool, ``"[4, 6]"`` for a list); an int
        given for a float parameter is kept as it is.
    page : str, optional
        The page the values are for, named in the message.
    check_device : bool
        Also check that ``device`` is present on this machine
        (:func:`check_device_available`).

    Returns
    -------
    dict
        The same names, in the same order, with the converted values; a value
        already of its parameter's type is returned unchanged.

    Raises
    ------
    ParameterError
        At the first unknown name or bad value, with one line naming the
        parameter, the value and the values allowed; also where ``fs_hz *
        window_s`` is not a whole number of samples >= 1, ``blur_hz`` is not
        below ``fs_hz / 2``, or (``check_device``) the device is absent.
    """
    out = {}
    for name, value in params.items():
        spec = PARAMETERS.get(name)
        if spec is None:
            raise ParameterError(
                f"unknown parameter {name!r}{_where(page)}; known: {', '.join(PARAMETERS)}"
            )
        out[name] = spec.convert(value, page)
    if "fs_hz" in out and "window_s" in out:
        fs_hz, window_s = out["fs_hz"], out["window_s"]
        n_samples = fs_hz * window_s
        if round(n_samples) < 1 or abs(n_samples - round(n_samples)) > 1e-6 * n_samples:
            raise ParameterError(
                f"parameters fs_hz and window_s{_where(page)}: got fs_hz={fs_hz!r} and "
                f"window_s={window_s!r} ({n_samples:g} samples); allowed: fs_hz * window_s "
                "a whole number of samples >= 1"
            )
    if "blur_hz" in out and "fs_hz" in out and not out["blur_hz"] < out["fs_hz"] / 2:
        raise _error(
            "blur_hz",
            out["blur_hz"],
            f"a number in (0, fs_hz / 2) = (0, {out['fs_hz'] / 2:g})",
            page,
        )
    if check_device and "device" in out:
        check_device_available(out["device"], page)
    return out


def check_device_available(device: str, page: str | None = None) -> str:
    """Check that a ``device`` parameter names a device this machine has.

    ``auto`` and ``cpu`` always pass (torch is not imported for them); ``cuda``
    and ``cuda:N`` need :func:`torch.cuda.is_available` (and N below the number
    of devices), ``mps`` :func:`torch.backends.mps.is_available`.

    Parameters
    ----------
    device : str
        A value :func:`validate` allows.
    page : str, optional
        Named in the message.

    Returns
    -------
    str
        ``device``.

    Raises
    ------
    ParameterError
        If the device is absent; the message lists the devices present.
    """
    if device in ("auto", "cpu"):
        return device
    import torch

    present = ["auto", "cpu"]
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_cuda:
        present += ["cuda"] + [f"cuda:{i}" for i in range(n_cuda)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        present.append("mps")
    if device in present:
        return device
    absent = "no CUDA device" if device.startswith("cuda") and not n_cuda else f"no {device}"
    raise ParameterError(
        f"parameter device{_where(page)}: got {device!r}, but this machine has {absent}; "
        f"allowed here: {', '.join(present)}"
    )


def check_profile(profile: str, profiles: Mapping[str, object]) -> None:
    """Check a ``--profile`` name against ``ecgrepro/profiles.yml``.

    Parameters
    ----------
    profile : str
    profiles : mapping
        :func:`ecgrepro.config.load_profiles`.

    Raises
    ------
    ParameterError
        If ``profile`` is not one of them (one line listing the known ones).
    """
    if profile not in profiles:
        raise ParameterError(
            f"unknown profile {profile!r} (--profile); known: {', '.join(sorted(profiles))} "
            "(ecgrepro/profiles.yml)"
        )
