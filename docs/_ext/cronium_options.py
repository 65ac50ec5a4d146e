"""The ``cronium-options`` directive: a table of every ``[cronium]`` option, read at build time from the
provider's declaration (``cronium_provider.get_provider_info``), so the docs cannot drift from it."""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx

from cronium_provider.get_provider_info import get_provider_info


def _literal(value: Any) -> nodes.Node:
    return nodes.literal(text=str(value)) if value not in (None, "") else nodes.Text("none")


def _row(*cells: nodes.Node) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += nodes.paragraph("", "", cell)
        row += entry
    return row


class CroniumOptions(Directive):
    has_content = False

    def run(self) -> list[nodes.Node]:
        options = get_provider_info()["config"]["cronium"]["options"]
        headings = ("option", "default", "what it does")
        group = nodes.tgroup(cols=len(headings))
        for width in (25, 20, 55):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += _row(*(nodes.Text(h) for h in headings))
        group += head
        body = nodes.tbody()
        for name, option in options.items():
            cell = nodes.inline()
            cell += nodes.target("", "", ids=[f"option-{name.replace('_', '-')}"])
            cell += nodes.literal(text=name)
            cell += nodes.Text(f" ({option['type']})")
            what = nodes.inline()
            what += nodes.Text(option["description"])
            if option.get("example") not in (None, ""):
                what += nodes.Text(" Example: ")
                what += nodes.literal(text=str(option["example"]))
            body += _row(cell, _literal(option.get("default")), what)
        group += body
        table = nodes.table(classes=["cronium-options"])
        table += group
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cronium-options", CroniumOptions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
