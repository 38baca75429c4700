"""A Sphinx extension for the book's HTML: each page loads each script once.

sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL = ...``) on
``env-before-read-docs``; when Sphinx emits that event more than once in a build, the script is
registered twice and every page throws ``Identifier 'THEBE_JS_URL' has already been declared``
(found by ``make check-book``). This extension drops repeated scripts from each page's context.
Listed in ``_config.yml`` (``sphinx: extra_extensions``).
"""

from __future__ import annotations


def _script_key(script) -> tuple:
    """What makes two script entries the same: file name, inline body and attributes."""
    filename = str(getattr(script, "filename", script) or "")  # None and "" both mean inline
    attributes = getattr(script, "attributes", {}) or {}
    return filename, tuple(sorted((str(k), str(v)) for k, v in attributes.items()))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context`` handler: keep the first of identical script entries."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    scripts[:] = kept


def setup(app):
    """Register the handler (early: ``html-page-context`` stops at the first handler that
    returns a template name)."""
    app.connect("html-page-context", drop_repeated_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
