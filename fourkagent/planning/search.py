"""The paper's rollback search over step orderings, as pure functions on a JSON tree.

A tree node is a :class:`~fourkagent.state.records.TreeNode` (a plain dict) whose ``children`` maps a step
name to the child produced by running that step first from this node.
Each (node, first step) pair is tried once, so the search is bounded by the number of orderings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import cast

from typing_extensions import Unpack

from fourkagent.state.records import NodeFields, Tree, TreeNode

ROOT = "n0"


def new_node(tree: Tree, parent: str | None, step: str | None, **fields: Unpack[NodeFields]) -> tuple[Tree, str]:
    """Return a copy of ``tree`` with a new node (child of ``parent`` via ``step``) and its id."""
    nid = f"n{len(tree)}"
    node = cast(TreeNode, {"id": nid, "parent": parent, "step": step, "children": {}, "failed": False, "best": None})
    node.update(fields)  # the caller gives the rest (tests build partial nodes)
    out = _copy(tree)
    out[nid] = node
    if parent is not None and step is not None:
        out[parent]["children"][step] = nid
    return out, nid


def _copy(tree: Tree) -> Tree:
    """A copy of ``tree`` whose nodes and children maps can be changed without changing ``tree``."""
    return {k: v | {"children": dict(v["children"])} for k, v in tree.items()}


def path_steps(tree: Tree, node: str) -> list[str]:
    """Steps applied from the root to ``node``, in order."""
    steps: list[str] = []
    cur: str | None = node
    while cur is not None:
        parent, step = tree[cur]["parent"], tree[cur]["step"]
        if parent is None or step is None:  # the root
            break
        steps.append(step)
        cur = parent
    return steps[::-1]


def path_nodes(tree: Tree, node: str) -> list[str]:
    """Node ids from the root to ``node``."""
    ids: list[str] = []
    cur: str | None = node
    while cur is not None:
        ids.append(cur)
        cur = tree[cur]["parent"]
    return ids[::-1]


def remaining(all_steps: list[str], tree: Tree, node: str) -> list[str]:
    """The multiset of steps not yet applied on the path to ``node`` (in ``all_steps`` order)."""
    left = Counter(all_steps) - Counter(path_steps(tree, node))
    out: list[str] = []
    for s in all_steps:
        if left[s] > 0:
            out.append(s)
            left[s] -= 1
    return out


def fully_expanded(tree: Tree, node: str, agenda: list[str]) -> bool:
    """Whether every remaining step has already been tried first from ``node``."""
    return all(s in tree[node]["children"] for s in set(agenda))


@dataclass(frozen=True)
class RollbackResult:
    """Where the search continues after a failed step."""

    tree: Tree
    cursor: str
    agenda: list[str]
    compromise: bool
    backtracked: list[str]
    """Nodes left behind because every ordering from them failed."""


def rollback(tree: Tree, cursor: str, failed_step: str, agenda: list[str], all_steps: list[str]) -> RollbackResult:
    """Push the failed step back and move up while nodes are fully expanded.

    ``agenda`` is the remaining plan *after* the failed step. When even the root is fully expanded,
    continue from the best image seen (the paper's compromise).
    """
    out = _copy(tree)
    plan = [failed_step, *agenda]
    node = cursor
    left: list[str] = []
    while fully_expanded(out, node, plan):
        best = out[node]["best"] = _best_of_children(out, node)
        parent, step = out[node]["parent"], out[node]["step"]
        if parent is None or step is None:  # the root
            return RollbackResult(out, best, remaining(all_steps, out, best), True, left)
        left.append(node)
        plan = [step, *plan]
        node = parent
    return RollbackResult(out, node, plan, False, left)


def _best_of_children(tree: Tree, node: str) -> str:
    cands = [tree[c]["best"] or c for c in tree[node]["children"].values()]
    return max(cands, key=lambda c: (tree[c]["score"], -int(c[1:])))
