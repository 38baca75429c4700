"""The book pages' work: one module per page family, called by its notebook.

A notebook keeps its parameters, its calls, its glue, its captions and its prose
(:class:`ecgrepro.book.page.Page`); the steps a page strings together (selecting records,
tabulating, drawing its figures) live here, so that a page reads as the argument it makes.
Reusable methods stay in :mod:`ecgrepro.explain`, :mod:`ecgrepro.evaluate` and the like.
"""
