"""Each page's tables and figures as downloads, and every image linked to its full size (#25,
items 3 and 8): the outputs manifest of a page run, the Downloads cell of a staged notebook,
and the image links of the book's Sphinx extension on a tiny project."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import papermill as pm
import pytest
import yaml

from ecgrepro.book import downloads, runner
from ecgrepro.config import REPO_ROOT

NBSP = "\u00a0"


def write(path, text: str, mtime_s: float | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime_s is not None:
        os.utime(path, (mtime_s, mtime_s))
    return path


def notebook(cells) -> dict:
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def markdown(source: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": source}


# --- the outputs manifest ---------------------------------------------------------------------


def test_a_page_run_records_the_tables_and_figures_it_wrote(tmp_path, monkeypatch):
    """Written = new, or rewritten (even with the same bytes), in the order written; a file the
    page left alone, another folder's file and the runner's page_times.csv are not."""
    build = tmp_path / "build"
    old = 1_000_000_000  # 2001: long before the page runs
    write(build / "tables" / "untouched.csv", "a\n1\n", old)
    write(build / "figures" / "rewritten.png", "png", old)
    write(build / "artifacts" / "model.pt", "weights", old)
    write(downloads.outputs_path(build, "table1_dataset"), '{"files": ["tables/stale.csv"]}')

    def fake_page(nb_in, nb_out, **kwargs):
        later = os.stat(build / "tables" / "untouched.csv").st_mtime + 10
        write(build / "tables" / "new.csv", "b\n2\n", later + 1)
        write(build / "figures" / "rewritten.png", "png", later + 2)  # same bytes, rewritten
        write(build / "figures" / "notes.txt", "not a figure", later + 3)
        write(build / "artifacts" / "model.pt", "weights 2", later + 4)
        write(Path(nb_out), json.dumps(notebook([])))

    monkeypatch.setattr(pm, "execute_notebook", fake_page)
    runner.execute_notebooks("quick", {}, tmp_path, build, only=["table1_dataset"])
    assert downloads.read_outputs(build, "table1_dataset") == [
        "tables/new.csv",
        "figures/rewritten.png",
    ]
    assert (build / "tables" / "page_times.csv").is_file()  # the runner's, written after


def test_a_failed_page_leaves_no_manifest_of_an_earlier_run(tmp_path, monkeypatch):
    build = tmp_path / "build"
    write(downloads.outputs_path(build, "table1_dataset"), '{"files": ["tables/old.csv"]}')

    def failing_page(*args, **kwargs):
        raise RuntimeError("the page failed")

    monkeypatch.setattr(pm, "execute_notebook", failing_page)
    with pytest.raises(RuntimeError, match="the page failed"):
        runner.execute_notebooks("quick", {}, tmp_path, build, only=["table1_dataset"])
    assert downloads.read_outputs(build, "table1_dataset") is None


# --- the Downloads cell -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_bytes, text",
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (25_650, "25.6 kB"), (1_300_000, "1.3 MB")],
)
def test_sizes_read_as_a_reader_reads_them(n_bytes, text):
    assert downloads.human_size(n_bytes) == text


def staged_build(tmp_path):
    """A build with two executed pages (one with references, one without) and a third page
    executed by an older runner (no manifest)."""
    build = tmp_path / "build"
    write(build / "tables" / "t2.csv", "x" * 2500)
    write(build / "tables" / "flags.csv", "y" * 12)
    write(build / "figures" / "fig1.png", "z" * 72_500)
    write(build / "tables" / "page_times.csv", "page,seconds\n")
    write(build / "tables" / "not_written_by_any_page.csv", "stale")
    nbs = build / "src" / "notebooks"
    refs = markdown("## References\n\n```{footbibliography}\n```", "refs")
    write(nbs / "table2.ipynb", json.dumps(notebook([markdown("# Table 2", "t"), refs])))
    write(nbs / "plain.ipynb", json.dumps(notebook([markdown("# Plain", "p")])))
    write(nbs / "old.ipynb", json.dumps(notebook([markdown("# Old", "o")])))
    manifests = {
        "table2": ["tables/t2.csv", "figures/fig1.png", "tables/flags.csv", "tables/gone.csv"],
        "plain": ["tables/flags.csv"],
    }
    for page, files in manifests.items():
        write(downloads.outputs_path(build, page), json.dumps({"page": page, "files": files}))
    return build


def cells(build, page):
    return json.loads((build / "src" / "notebooks" / f"{page}.ipynb").read_text())["cells"]


def test_a_staged_page_ends_with_its_downloads_before_its_references(tmp_path, capsys):
    build = staged_build(tmp_path)
    src = build / "src"
    assert downloads.stage_downloads(build, src) == ["old"]
    assert capsys.readouterr().out.strip().endswith("(no Downloads section): old")
    first, dl, refs = cells(build, "table2")
    assert (first["id"], dl["id"], refs["id"]) == ("t", downloads.DOWNLOADS_CELL, "refs")
    text = dl["source"]
    assert text.startswith("## Downloads\n")
    tables = next(line for line in text.splitlines() if line.startswith("- Tables"))
    figures = next(line for line in text.splitlines() if line.startswith("- Figures"))
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a> \(([^)]+)\)', tables) == [
        ("../tables/t2.csv", "t2.csv", f"2.5{NBSP}kB"),  # in the order written
        ("../tables/flags.csv", "flags.csv", f"12{NBSP}B"),
    ]
    assert re.findall(r'<a href="([^"]+)">', figures) == ["../figures/fig1.png"]
    assert "gone.csv" not in text  # listed, but no longer on disk
    assert cells(build, "plain")[-1]["source"].count("<a href=") == 1  # at the end
    assert [c["id"] for c in cells(build, "old")] == ["o"]  # no manifest: no Downloads
    copied = sorted(p.relative_to(src / "_outputs").as_posix() for p in src.rglob("_outputs/*/*"))
    assert copied == [
        "figures/fig1.png",
        "tables/flags.csv",
        "tables/page_times.csv",
        "tables/t2.csv",
    ]
    # staged again (a rebuild without execution, the PDF): replaced, never repeated
    write(build / "figures" / "fig1.png", "z" * 1_300_000)
    downloads.stage_downloads(build, src)
    staged = [c for c in cells(build, "table2") if c["id"] == downloads.DOWNLOADS_CELL]
    assert len(staged) == 1 and f"(1.3{NBSP}MB)" in staged[0]["source"]
    assert (src / "_outputs" / "figures" / "fig1.png").stat().st_size == 1_300_000


def test_the_book_copies_the_staged_outputs_to_the_html_root(tmp_path):
    """stage_book fills _outputs, which _config.yml's html_extra_path publishes."""
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert downloads.STAGED_OUTPUTS in config["sphinx"]["config"]["html_extra_path"]
    build = tmp_path / "build"
    write(build / "tables" / "table1.csv", "class,count\n")
    write(build / "src" / "notebooks" / "table1_dataset.ipynb", json.dumps(notebook([])))
    write(downloads.outputs_path(build, "table1_dataset"), '{"files": ["tables/table1.csv"]}')
    src = runner.stage_book(build, mathjax=False)
    assert (src / downloads.STAGED_OUTPUTS / "tables" / "table1.csv").is_file()
    assert 'href="../tables/table1.csv"' in cells(build, "table1_dataset")[-1]["source"]


# --- every image opens full size --------------------------------------------------------------


def png_bytes(width=300, height=120) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def build_tiny_book(tmp_path, builder: str = "html"):
    """A two-page project: a notebook with an output image (as myst-nb renders the pages) and
    an rst page with a plain image, a sized one and one that already links elsewhere."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    src = tmp_path / "src"
    (src / "pages").mkdir(parents=True)
    (src / "big.png").write_bytes(png_bytes())
    (src / "conf.py").write_text(
        'extensions = ["myst_nb", "ecgrepro.book.sphinx_ext"]\n'
        'nb_execution_mode = "off"\nexclude_patterns = ["_build"]\n'
    )
    (src / "index.rst").write_text(
        "Index\n=====\n\n.. toctree::\n\n   pages/output\n\n"
        ".. image:: big.png\n\n"
        ".. image:: big.png\n   :width: 100px\n\n"
        ".. image:: big.png\n   :target: https://example.org/\n"
    )
    output = {
        "output_type": "display_data",
        "data": {"image/png": base64.b64encode(png_bytes(400, 160)).decode(), "text/plain": "x"},
        "metadata": {},
    }
    code = {
        "cell_type": "code",
        "id": "c1",
        "metadata": {},
        "execution_count": 1,
        "source": "plot()",
        "outputs": [output],
    }
    nb = notebook([markdown("# Output", "m1"), code])
    nb["metadata"] = {
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    (src / "pages" / "output.ipynb").write_text(json.dumps(nb))
    warnings = io.StringIO()
    out = tmp_path / builder
    with docutils_namespace():
        app = Sphinx(src, src, out, tmp_path / "doctrees", builder, status=None, warning=warnings)
        app.build()
    assert warnings.getvalue() == ""
    return out


def test_every_image_links_to_its_full_size_file(tmp_path):
    html = build_tiny_book(tmp_path)
    index = (html / "index.html").read_text()
    links = re.findall(r'<a ([^>]*)>\s*<img [^>]*src="([^"]+)"', index)
    assert len(re.findall(r"<img ", index)) == 3 and len(links) == 3
    (plain, plain_src), (sized, sized_src), (target, _) = links
    assert 'href="_images/big.png"' in plain and plain_src == "_images/big.png"
    assert "image-reference" in plain
    assert 'href="_images/big.png"' in sized  # Sphinx's own link for a scaled image
    assert 'href="https://example.org/"' in target  # an image's own link is kept
    assert not re.search(r"<a [^>]*>\s*<a ", index)  # and none gets a second one
    page = (html / "pages" / "output.html").read_text()
    (output_link,) = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>\s*<img [^>]*src="([^"]+)"', page)
    href, img_src = output_link
    assert href == img_src and href.startswith("../_images/")  # myst-nb's copy of the output
    assert (html / "pages" / href).resolve().read_bytes() == png_bytes(400, 160)


def test_other_builders_get_no_image_link(tmp_path):
    out = build_tiny_book(tmp_path, builder="text")
    assert "output" in (out / "pages" / "output.txt").read_text().lower()
