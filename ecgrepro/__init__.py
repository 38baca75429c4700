"""ecgrepro: an executable reproduction of Habeeb & Goyal's 12-lead ECG paper.

Data flows one way through the package::

    ecgrepro.data -> ecgrepro.models -> ecgrepro.train -> ecgrepro.evaluate
    -> ecgrepro.explain -> ecgrepro.plots

``ecgrepro.config`` (class and lead names, data root, profiles) and
``ecgrepro.paper`` (the values the paper prints) are leaves that any module may
import. Notebooks under ``notebooks/`` sit on top and import from the package.
"""

__version__ = "0.1.0"
