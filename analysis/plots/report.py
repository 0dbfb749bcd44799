"""A report as plain data, rendered as one self-contained HTML page or as Markdown.

A :class:`Report` is a title and a list of :class:`Section` s; a section holds blocks —
:class:`Paragraph`, :class:`BulletList`, :class:`Table`, :class:`Figure` (PNG bytes) — and may
be built by any *section builder* (see :mod:`analysis.plots.report_sections`). Rendering is pure
text: :func:`render_html` embeds every figure as a base64 PNG ``data:`` URI and its style sheet
inline, so the page opens offline and makes no request; :func:`render_markdown` refers to the
figures by the file names a caller chooses. Nothing here touches the disk.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

__all__ = ["BulletList", "Figure", "Paragraph", "Report", "Section", "Table", "render_html", "render_markdown"]


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of text; ``**bold**`` and ```code``` spans are rendered in both formats."""

    text: str


@dataclass(frozen=True)
class BulletList:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of text cells; ``note`` is printed under it. ``numeric``: cells are numbers
    (kept on one line; the first column may wrap)."""

    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    numeric: bool = False


@dataclass(frozen=True)
class Figure:
    """A figure as PNG bytes; ``name`` is its file stem (Markdown) and HTML id."""

    name: str
    caption: str
    png: bytes
    alt: str = ""


Block = Union[Paragraph, BulletList, Table, Figure]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]
    anchor: str = ""

    @property
    def id(self) -> str:
        return self.anchor or re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    sections: tuple[Section, ...]
    footer: str = ""
    figures: tuple[Figure, ...] = field(init=False, default=())

    def __post_init__(self):
        found = tuple(b for s in self.sections for b in s.blocks if isinstance(b, Figure))
        figure_names(found)
        object.__setattr__(self, "figures", found)


# --------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1b1b1b;
background:#fff;line-height:1.5}
main{max-width:68rem;margin:0 auto;padding:1.5rem 1.5rem 4rem}
h1{font-size:1.7rem;margin:0.2rem 0}h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:2px solid #0072B2;
padding-bottom:0.2rem}
.subtitle{color:#555;margin:0 0 1rem}
nav{background:#f3f6f9;border:1px solid #dde3ea;border-radius:6px;padding:0.6rem 1rem;margin:1rem 0}
nav a{margin-right:1.1rem;color:#0072B2;text-decoration:none;white-space:nowrap}
table{border-collapse:collapse;margin:0.6rem 0 0.3rem;font-size:0.86rem;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:0.3rem 0}
th,td{border-bottom:1px solid #e3e3e3;padding:0.25rem 0.55rem;text-align:left;vertical-align:top}
th{background:#f3f6f9}
table.numeric td+td,table.numeric th+th{white-space:nowrap}
.note{font-size:0.82rem;color:#555;margin:0.1rem 0 1rem}
figure{margin:1.2rem 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:0.88rem;color:#333;margin-top:0.3rem}
code{background:#f3f3f3;padding:0 0.25rem;border-radius:3px;font-size:0.9em}
.wide{overflow-x:auto}
footer{margin-top:3rem;font-size:0.8rem;color:#666}
"""


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _block_html(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline_html(block.text)}</p>"
    if isinstance(block, BulletList):
        items = "".join(f"<li>{_inline_html(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_inline_html(cell)}</th>" for cell in block.header)
        body = "".join("<tr>" + "".join(f"<td>{_inline_html(cell)}</td>" for cell in row) + "</tr>"
                       for row in block.rows)
        note = f'<p class="note">{_inline_html(block.note)}</p>' if block.note else ""
        kind = ' class="numeric"' if block.numeric else ""
        return (f'<div class="wide"><table{kind}><caption>{_inline_html(block.caption)}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}")
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        alt = html.escape(block.alt or block.caption, quote=True)
        return (f'<figure id="figure-{html.escape(block.name, quote=True)}">'
                f'<img src="data:image/png;base64,{data}" alt="{alt}">'
                f"<figcaption>{_inline_html(block.caption)}</figcaption></figure>")
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(report: Report) -> str:
    """The report as one HTML5 page: inline style sheet, figures as ``data:`` URIs, no script and
    no external resource."""
    nav = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in report.sections)
    sections = "".join(
        f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{"".join(_block_html(b) for b in s.blocks)}</section>'
        for s in report.sections)
    footer = f"<footer>{_inline_html(report.footer)}</footer>" if report.footer else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>{html.escape(report.title)}</h1>"
        f'<p class="subtitle">{_inline_html(report.subtitle)}</p><nav>{nav}</nav>{sections}{footer}</main>'
        "</body></html>\n"
    )


# --------------------------------------------------------------------------- Markdown
def _cell_markdown(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _block_markdown(block: Block, figure_path: Callable[[Figure], str]) -> str:
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, BulletList):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        lines = [f"**{block.caption}**", "",
                 "| " + " | ".join(_cell_markdown(c) for c in block.header) + " |",
                 "|" + "|".join("---" for _ in block.header) + "|"]
        lines += ["| " + " | ".join(_cell_markdown(c) for c in row) + " |" for row in block.rows]
        if block.note:
            lines += ["", f"*{block.note}*"]
        return "\n".join(lines)
    if isinstance(block, Figure):
        return f"![{block.alt or block.caption}]({figure_path(block)})\n\n*{block.caption}*"
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(report: Report, *, figure_path: Callable[[Figure], str]) -> str:
    """The report as Markdown; ``figure_path(figure)`` gives the (relative) file of each figure."""
    parts = [f"# {report.title}", "", report.subtitle, ""]
    parts += [f"- [{s.title}](#{s.id})" for s in report.sections] + [""]
    for section in report.sections:
        parts += [f"## {section.title}", ""]
        for block in section.blocks:
            parts += [_block_markdown(block, figure_path), ""]
    if report.footer:
        parts += ["---", "", report.footer, ""]
    return "\n".join(parts)


def figure_names(figures: Sequence[Figure]) -> list[str]:
    """The figures' names; a repeated name is a bug of the section builders."""
    names = [f.name for f in figures]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"report figures: names repeated {repeated}")
    return names
