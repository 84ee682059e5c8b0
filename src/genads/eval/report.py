"""A self-contained HTML report: sections of text, tables and embedded PNG figures.

Each capability of the demo pipeline adds its own section. Figures are matplotlib figures made
by ``eval/plots.py`` from returned metrics; they are embedded as base64 PNG, so the report is one
file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from genads.data.dataset import atomic_write_text


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[dict]]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)
    """(caption, base64 PNG)."""


def figure_png(fig) -> str:
    """Encode a matplotlib figure as base64 PNG and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    return html.escape(str(value))


def table_html(rows: list[dict]) -> str:
    if not rows:
        return "<p><em>(empty)</em></p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #333}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:13px;color:#555}nav a{margin-right:1em}
"""


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        """Add (or get) a section by title."""
        for s in self.sections:
            if s.title == title:
                return s
        self.sections.append(Section(title))
        return self.sections[-1]

    def to_html(self) -> str:
        nav = " ".join(f'<a href="#s{i}">{html.escape(s.title)}</a>' for i, s in enumerate(self.sections))
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1><nav>{nav}</nav>"]
        for i, s in enumerate(self.sections):
            parts.append(f'<h2 id="s{i}">{html.escape(s.title)}</h2>')
            parts += [f"<p>{p}</p>" for p in s.paragraphs]
            for caption, rows in s.tables:
                parts.append(f"<h3>{html.escape(caption)}</h3>{table_html(rows)}" if caption else table_html(rows))
            for caption, png in s.images:
                parts.append(f"<figure><img src='data:image/png;base64,{png}'><figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.to_html())
        return path


TABLE_KEYS: tuple[str, ...] = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20")


def protocol_rows(model: str, result: dict, keys: tuple[str, ...] = TABLE_KEYS) -> list[dict]:
    """Two test rows for one model's ``evaluate_split_both`` record, side by side: nothing ruled out, then the
    history ruled out (a record without the second protocol gives only the first)."""
    rows = [{"model": model, "protocol": "nothing ruled out", **{k: result["test"][k] for k in keys if k in result["test"]}}]
    if "history_ruled_out" in result:
        excl = result["history_ruled_out"]["test"]
        rows.append({"model": model, "protocol": "history ruled out", **{k: excl[k] for k in keys if k in excl}})
    return rows
