"""The book machinery: run the pages and build the Jupyter Book (:mod:`ecgrepro.book.runner`),
the run report and page furniture (:mod:`ecgrepro.book.report`), the headless-Chromium check
of the built HTML (:mod:`ecgrepro.book.checkbook`, with the checks of one loaded page in
:mod:`ecgrepro.book.pagechecks`) and the book's Sphinx extension
(:mod:`ecgrepro.book.sphinx_ext`)."""
