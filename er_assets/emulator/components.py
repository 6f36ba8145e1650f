"""Connected components of an edge list, vectorised with numpy (no loop over records).

Hook-and-compress: every round points the larger root of each cross-component edge at the
smaller one, then jumps pointers until every record points at its root. Hooks only ever go
to a smaller root, so there are no cycles, and a component's smallest record is never
hooked: it ends as the label of the whole component. When several edges hook the same root
in one round, a plain scatter keeps any one of them (all are valid); it is about twice as
fast as `np.minimum.at`. Rounds keep only the edges still crossing components.
"""

from __future__ import annotations

import numpy as np


def connected_components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label of each of `n` records (its component's smallest index), given edges u[i]-v[i]."""
    parent = np.arange(n, dtype=np.int64)
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    while u.size:
        pu, pv = parent[u], parent[v]
        crossing = pu != pv
        if not crossing.any():
            break
        u, v, pu, pv = u[crossing], v[crossing], pu[crossing], pv[crossing]
        parent[np.maximum(pu, pv)] = np.minimum(pu, pv)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent
