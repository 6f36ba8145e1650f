"""Dependency graphs of JIL jobs: box membership as clusters, conditions as labelled edges.

The DOT text is written here (no Graphviz bindings); SVG and PNG come from the `dot` binary.
Edges are labelled with the condition's status code (s f d t n e v); anything but success is
dashed, and a job that a condition or box_name names but the file does not define is drawn
dotted grey, so a missing upstream is visible rather than silently absent.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from autosys_bridge.jil.conditions import ExitCodeAtom, StatusAtom, ValueAtom, atoms
from autosys_bridge.jil.model import Statement

FORMATS = ("dot", "svg", "png")


class GraphRenderError(Exception):
    """Graphviz is missing or failed; the message is one line."""


@dataclass(frozen=True)
class Edge:
    source: str  # job name, `JOB^INS`, `$$GLOBAL` for a v() condition, `@RESOURCE` for a claim
    target: str
    code: str  # s f d t n e v, or r for a resource claim
    label: str


@dataclass
class Graph:
    jobs: dict[str, Statement]
    edges: list[Edge] = field(default_factory=list)

    def box_of(self, name: str) -> str | None:
        job = self.jobs.get(name)
        return job.box_name if job is not None else None

    @property
    def unknown(self) -> set[str]:
        """Names referenced by conditions or box_name that no statement defines."""
        referenced = {e.source for e in self.edges if e.code not in ("v", "r")}
        referenced |= {job.box_name for job in self.jobs.values() if job.box_name}
        return {name for name in referenced if name not in self.jobs}


def build_graph(jobs: dict[str, Statement]) -> Graph:
    graph = Graph(jobs)
    for name, job in sorted(jobs.items()):
        for attribute, condition in job.conditions.items():
            for atom in atoms(condition):
                graph.edges.append(_edge(atom, name, attribute))
        for claim in job.values("resources"):
            resource, _, quantity = claim.strip("() ").partition(",")
            graph.edges.append(Edge(f"@{resource.strip()}", name, "r", f"{quantity.split(',')[0].strip().lower()}"))
    return graph


def _edge(atom, target: str, attribute: str) -> Edge:
    prefix = "" if attribute == "condition" else f"{attribute} "
    if isinstance(atom, ValueAtom):
        return Edge(f"$${atom.variable}", target, "v", f"{prefix}v {atom.operator} {atom.value}")
    source = atom.job.to_jil()
    if isinstance(atom, ExitCodeAtom):
        return Edge(source, target, "e", f"{prefix}e {atom.operator} {atom.value}")
    assert isinstance(atom, StatusAtom)
    lookback = f" ({atom.lookback})" if atom.lookback is not None else ""
    return Edge(source, target, atom.code, f"{prefix}{atom.code}{lookback}")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'


def to_dot(graph: Graph, title: str = "jil") -> str:
    """Deterministic DOT text: boxes as (nested) clusters, sorted nodes and edges."""
    lines = [
        f"digraph {_quote(title)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    unknown = graph.unknown
    boxes = {name for name, job in graph.jobs.items() if job.job_type == "BOX"} | {
        job.box_name for job in graph.jobs.values() if job.box_name
    }
    members: dict[str | None, list[str]] = {}
    for name in sorted(set(graph.jobs) | unknown):
        members.setdefault(graph.box_of(name), []).append(name)
    drawn: set[str] = set()

    def emit(container: str | None, indent: str) -> None:
        for name in members.get(container, []):
            if name in drawn:
                continue
            drawn.add(name)
            if name in boxes:
                lines.append(f"{indent}subgraph {_quote('cluster_' + name)} {{")
                style = (
                    'style="dotted"; color=grey50; fontcolor=grey50'
                    if name in unknown
                    else 'style="rounded"; color=steelblue'
                )
                lines.append(f"{indent}  label={_quote(name)}; {style};")
                lines.append(f"{indent}  {_node(name, graph, unknown, box=True)}")
                emit(name, indent + "  ")
                lines.append(f"{indent}}}")
            else:
                lines.append(f"{indent}{_node(name, graph, unknown)}")

    emit(None, "  ")
    # Boxes that contain each other (invalid, but it happens) are not reachable from the top.
    for name in sorted(set(graph.jobs) | unknown):
        if name not in drawn:
            drawn.add(name)
            lines.append(f"  {_node(name, graph, unknown)}")
    for variable in sorted({e.source for e in graph.edges if e.source.startswith("$$")}):
        lines.append(
            f"  {_quote(variable)} [shape=note, label={_quote('global ' + variable[2:])}, fillcolor=lightyellow];"
        )
    for resource in sorted({e.source for e in graph.edges if e.code == "r"}):
        lines.append(
            f"  {_quote(resource)} [shape=cylinder, label={_quote('resource ' + resource[1:])}, fillcolor=honeydew];"
        )
    for edge in sorted(graph.edges, key=lambda e: (e.target, e.source, e.label)):
        style = {"s": "", "r": ", style=dotted, arrowhead=none"}.get(edge.code, ", style=dashed")
        colour = {"s": "darkgreen", "f": "firebrick", "t": "firebrick"}.get(edge.code, "grey30")
        lines.append(
            f"  {_quote(edge.source)} -> {_quote(edge.target)} [label={_quote(edge.label)}, color={colour}{style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node(name: str, graph: Graph, unknown: set[str], box: bool = False) -> str:
    if name in unknown:
        base, _, instance = name.partition("^")
        label = (
            f"{_escape(base)}\\n(instance {_escape(instance)})" if instance else f"{_escape(name)}\\n(not defined here)"
        )
        return f'{_quote(name)} [label="{label}", style="dotted", color=grey50, fontcolor=grey50];'
    job = graph.jobs[name]
    shape = ", shape=folder, fillcolor=aliceblue" if box else ""
    return f'{_quote(name)} [label="{_escape(name)}\\n{job.job_type or "?"}"{shape}];'


def render(dot_text: str, fmt: str) -> bytes:
    """DOT as-is, or SVG/PNG through Graphviz's `dot`."""
    if fmt == "dot":
        return dot_text.encode()
    binary = shutil.which("dot")
    if binary is None:
        raise GraphRenderError("Graphviz 'dot' not found on PATH: install graphviz, or use -f dot")
    result = subprocess.run([binary, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=120)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise GraphRenderError(f"dot -T{fmt} failed: {message[0] if message else result.returncode}")
    return result.stdout
