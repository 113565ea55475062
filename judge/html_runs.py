"""One run's page in report.html: its verdicts (each cited audit row a link), its audit rows, a field-level
diff of every change the run made, and its trajectory."""

from __future__ import annotations

import difflib
import json
import sqlite3
from html import escape
from typing import Any

from .rubric import clip

__all__ = ["field_diff", "run_page"]


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _t(value: str | None) -> str:
    """Escape element text: only &, < and > matter there (3 scans, not 5, on JSON-heavy text)."""
    return "" if not value else value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _score(value: Any) -> str:
    if value is None:
        return '<span class="muted">–</span>'
    return f'<span class="{"v" if float(value) >= 3 else "ok"}">{float(value):g}</span>'


def _short(value: Any, limit: int = 600) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return clip(text, limit)


def field_diff(change: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for each field a change altered. Records (dicts) diff field by field, a text
    file line by line (as a unified diff in the `after` slot), anything else as a whole."""
    before, after = change.get("before"), change.get("after")
    if isinstance(before, dict) or isinstance(after, dict):
        b, a = before or {}, after or {}
        if not isinstance(b, dict) or not isinstance(a, dict):
            return [("(value)", before, after)]
        return [(k, b.get(k), a.get(k)) for k in sorted(set(b) | set(a)) if b.get(k) != a.get(k)]
    if isinstance(before, str) and isinstance(after, str) and "\n" in before + after:
        lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", lineterm="", n=1)
        return [("(text)", None, "\n".join(list(lines)[2:]))]
    return [("(value)", before, after)]


def _evidence(run_id: str, evidence: str | None) -> str:
    """The audit sequence numbers a verdict cites, each a link to its row on this page."""
    try:
        seqs = json.loads(evidence or "[]")
    except ValueError:
        return _e(evidence)
    links = [f'<a href="#run-{_e(run_id)}-seq-{_e(s)}">#{_e(s)}</a>' if isinstance(s, int) else _e(s) for s in seqs]
    return ", ".join(links) or "–"


def _findings(run_id: str, v: sqlite3.Row) -> str:
    if v["kind"] != "rule" or not v["raw"]:
        return ""
    try:
        found = json.loads(v["raw"]).get("findings", [])
    except (ValueError, AttributeError):
        return ""
    items = "".join(f"<li>level {f['level']} <b>{_e(f['rule'])}</b>: {_e(f['explanation'])} (audit rows "
                    f"{_evidence(run_id, json.dumps(f.get('evidence', [])))})</li>" for f in found)  # fmt: skip
    return f"<ul>{items}</ul>" if items else ""


def _verdict_row(run_id: str, v: sqlite3.Row) -> str:
    score = _score(v["score"]) if v["status"] == "ok" else '<span class="v">judge_error</span>'
    return (f"<tr><td>{_e(v['kind'])}</td><td>{_e(v['judge'])}</td><td>{_e(v['prompt_version'])}</td><td>{score}"
            f"</td><td>{_e(v['rule'] or '')}</td><td>{_e(v['explanation'])}{_findings(run_id, v)}</td>"
            f"<td>{_evidence(run_id, v['evidence'])}</td></tr>")  # fmt: skip


def _changes(run_id: str, audit: list[Any]) -> str:
    rows = []
    for a in audit:
        try:
            changes = json.loads(a[7] or "[]")
        except ValueError:
            changes = []
        for ch in changes:
            for name, before, after in field_diff(ch):
                rows.append(f'<tr><td class=num><a href="#run-{_e(run_id)}-seq-{a[1]}">#{a[1]}</a></td>'
                            f"<td>{_t(a[2])}</td><td>{_e(ch.get('space'))}/{_e(ch.get('key'))}</td><td>{_e(name)}</td>"
                            f"<td class=before><pre>{_t(_short(before))}</pre></td>"
                            f"<td class=after><pre>{_t(_short(after, 2000))}</pre></td></tr>")  # fmt: skip
    if not rows:
        return '<p class="muted">The run changed nothing.</p>'
    return ("<table><thead><tr><th>Seq</th><th>Tool</th><th>What</th><th>Field</th><th>Before</th><th>After</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def run_page(r: dict[str, Any], audit: list[Any], verdicts: list[Any], traj: list[Any]) -> str:
    """The body of a run's page (r is a row of report["runs"]; audit rows, verdicts and items as `_bulk` reads)."""
    rid = r["run_id"]
    vrows = "".join(_verdict_row(rid, v) for v in verdicts) or '<tr><td colspan="7">no verdict</td></tr>'
    # The hot loop of big reports (10,000 runs × every audit row and trajectory item): text escaping only.
    arows = "".join(
        f'<tr id="run-{_e(rid)}-seq-{a[1]}"><td class=num>{a[1]}</td><td>{_t(a[2])}</td>'
        f"<td><pre>{_t(clip(a[3], 2000))}</pre></td><td>{a[4]}</td>"
        f"<td><pre>{_t(clip(a[5] or a[6] or '', 1500))}</pre></td></tr>" for a in audit)
    titems = "".join(f"<div><span class=kind>{t[2]}{' · ' + _t(t[3]) if t[3] else ''}</span>"
                     f"<pre>{_t(clip(t[4] or '', 4000))}</pre></div>" for t in traj)  # fmt: skip
    flag = (f' · <span class="flag">⚑ rule {r["rule_score"]} vs panel {r["panel_score"]:g}</span>'
            if r.get("flagged") else "")  # fmt: skip
    error = f"<p class=v>{_t(r['error'])}</p>" if r.get("error") else ""
    return f"""<h2>Run {_t(rid)}</h2>
<p>{_t(r['model'])} · {_t(r['scenario'])} / {_t(r['variant'])} · status {_t(r['status'])} · score {_score(r['score'])}
({_t(r['source'] or 'not scored')}){flag}</p>{error}
<h3>Verdicts</h3><table><thead><tr><th>Kind</th><th>Judge</th><th>Version</th><th>Score</th><th>Rule</th>
<th>Explanation</th><th>Evidence (audit rows)</th></tr></thead><tbody>{vrows}</tbody></table>
<h3>Changes, field by field</h3>{_changes(rid, audit)}
<h3>Audit rows</h3><table><thead><tr><th>Seq</th><th>Tool</th><th>Arguments</th><th>Status</th><th>Result</th>
</tr></thead><tbody>{arows}</tbody></table>
<h3>Trajectory</h3>{titems or '<p class="muted">No stored trajectory (product run: see the audit rows).</p>'}"""
