"""A Sphinx extension for the book's HTML: each page loads each script once, and every image
opens full size.

sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL = ...``) on
``env-before-read-docs``; when Sphinx emits that event more than once in a build, the script is
registered twice and every page throws ``Identifier 'THEBE_JS_URL' has already been declared``
(found by ``make check-book``). This extension drops repeated scripts from each page's context.

The theme scales every image to the text column, and a notebook's output images (which myst-nb
copies to ``_images/``) carry no size, so Sphinx's own ``html_scaled_image_link`` (which links
only images given a width, height or scale) leaves them unlinked: a figure's small print could
not be read. :func:`link_images` wraps every other image in a link to its own file, so that it
opens full size on click (issue #25, item 3).

Listed in ``_config.yml`` (``sphinx: extra_extensions``).
"""

from __future__ import annotations

import posixpath
import urllib.parse

from docutils import nodes

#: The class of the link around an image: Sphinx's own, for its scaled-image links.
IMAGE_LINK_CLASS = "reference internal image-reference"


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


class full_size_link(nodes.General, nodes.Element):  # lower case, as docutils names nodes
    """A link from the image it holds to the image's own file (HTML builders only)."""


def sphinx_links_itself(app, image) -> bool:
    """Whether Sphinx's ``html_scaled_image_link`` links this image itself.

    Sphinx (``StandaloneHTMLBuilder.post_process_images``) links an image given a width, height
    or scale and without the ``no-scaled-link`` class; such an image must not get a second link.

    Parameters
    ----------
    app : sphinx.application.Sphinx
    image : docutils.nodes.image

    Returns
    -------
    bool
    """
    sized = any(key in image for key in ("scale", "width", "height"))
    return (
        bool(app.config.html_scaled_image_link)
        and bool(getattr(app.builder, "html_scaled_image_link", False))
        and sized
        and ("no-scaled-link" not in image["classes"])
    )


def link_images(app, doctree, docname) -> None:
    """``doctree-resolved`` handler: wrap every image of an HTML page in a :class:`full_size_link`.

    Images already inside a link, and those Sphinx links itself (:func:`sphinx_links_itself`),
    are left as they are. Other builders (LaTeX for the PDF) are left alone.

    Parameters
    ----------
    app : sphinx.application.Sphinx
    doctree : docutils.nodes.document
        The resolved page, before the builder picks each image's file.
    docname : str
    """
    if app.builder.format != "html":
        return
    for image in list(doctree.findall(nodes.image)):
        if isinstance(image.parent, (nodes.reference, full_size_link)):
            continue
        if sphinx_links_itself(app, image):
            continue
        link = full_size_link()
        image.replace_self(link)
        link.append(image)


def image_href(builder, uri: str) -> str:
    """The URL of an image's file as the HTML page refers to it.

    Sphinx's HTML writer does the same for the ``<img>`` (``HTML5Translator.visit_image``): an
    image it copied (``builder.images``, filled when the page is written) is under ``_images/``
    relative to the page; any other URI (a remote image) stays as it is.

    Parameters
    ----------
    builder : sphinx.builders.html.StandaloneHTMLBuilder
        While it writes the page (its ``images`` and ``imgpath`` are the page's).
    uri : str
        The image node's ``uri``.

    Returns
    -------
    str
    """
    if uri in builder.images:
        return posixpath.join(builder.imgpath, urllib.parse.quote(builder.images[uri]))
    return uri


def _visit_full_size_link(self, node) -> None:
    """Open ``<a href=...>`` to the file of the image inside (HTML translator)."""
    image = next(iter(node.findall(nodes.image)), None)
    if image is None:  # nothing to link
        return
    node["href"] = image_href(self.builder, image["uri"])
    self.body.append(self.starttag(node, "a", "", href=node["href"], CLASS=IMAGE_LINK_CLASS))


def _depart_full_size_link(self, node) -> None:
    """Close the ``<a>`` of :func:`_visit_full_size_link`."""
    if "href" in node:
        self.body.append("</a>")


def setup(app):
    """Register the handlers (the scripts' early: ``html-page-context`` stops at the first
    handler that returns a template name) and the image link node."""
    app.connect("html-page-context", drop_repeated_scripts, priority=100)
    app.add_node(full_size_link, html=(_visit_full_size_link, _depart_full_size_link))
    app.connect("doctree-resolved", link_images)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
