"""Compiled scoring and exact TreeSHAP for scikit-learn's forests and trees (numba, no Python per row or per tree).

scikit-learn's `predict_proba` walks each tree in C but pays Python and joblib overhead per tree and per call
(a 50-tree forest: ~15 ms for one row, ~20 ms for 5,000), and `shap.TreeExplainer` walks every tree once per row,
its unwound sums one latency-bound chain after another. `FlatForest` lays every tree of a fitted
RandomForestClassifier, ExtraTreesClassifier or DecisionTreeClassifier (two classes) out as flat node arrays and
runs both in nopython code:

- `predict(Z)` equals `model.predict_proba(Z)[:, 1]` bit for bit: the same float32 cast of the input, the same
  `x <= threshold` split and missing-value side per node, the same leaf class fraction, the same sum over trees in
  tree order divided by the tree count.
- `shap(Z)` is path-dependent TreeSHAP (Lundberg et al. 2020, Algorithm 2, as the `shap` package computes it) of
  that probability, 32 rows per walk of each tree (`_shap_block`: 0.26 ms per row against shap's 1.8 ms on the
  bench's 50-tree depth-20 forest): `base + values.sum(axis=1) == predict(Z)` to float rounding, and the values equal
  `shap.TreeExplainer(model)`'s for the positive class (tests/unit/test_models_tree_kernels.py).

>>> import numpy as np
>>> from sklearn.ensemble import RandomForestClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 4)); y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
>>> forest = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(X, y)
>>> flat = FlatForest.of(forest)
>>> bool(np.array_equal(flat.predict(X[:50]), forest.predict_proba(X[:50])[:, 1]))
True
>>> values, base = flat.shap(X[:50])
>>> bool(np.allclose(base + values.sum(axis=1), flat.predict(X[:50]), atol=1e-12))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from features.jit import inline_kernel, kernel, numeric_kernel

#: rows explained together by the block kernel (fewer rows go one at a time: the per-row kernel is faster for them)
ROWS_PER_BLOCK = 32
BLOCK_FROM_ROWS = 3
#: scikit-learn estimators whose fitted trees FlatForest reads (probability-space outputs, averaged over trees)
SUPPORTED = ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier")


#: FlatForest's node arrays and their dtypes, as saved and loaded
ARRAYS: dict[str, Any] = {"roots": np.int64, "left": np.int64, "right": np.int64, "feature": np.int64,
                          "threshold": np.float64, "missing_left": np.bool_, "value": np.float64,
                          "cover": np.float64}  # fmt: skip


@dataclass(frozen=True)
class FlatForest:
    roots: np.ndarray  # int64, T: index of each tree's root in the node arrays
    left: np.ndarray  # int64, N: left child (global index), -1 at a leaf
    right: np.ndarray  # int64, N
    feature: np.ndarray  # int64, N: split feature (unused at a leaf)
    threshold: np.ndarray  # float64, N: go left when x <= threshold
    missing_left: np.ndarray  # bool, N: where a NaN goes
    value: np.ndarray  # float64, N: the positive class's fraction at the node (what predict_proba returns at a leaf)
    cover: np.ndarray  # float64, N: weighted training samples at the node (TreeSHAP's path probabilities)
    max_depth: int
    n_features: int

    @staticmethod
    def supports(model: Any) -> bool:
        return type(model).__name__ in SUPPORTED and len(getattr(model, "classes_", ())) == 2 and (
            getattr(model, "n_outputs_", 1) == 1
        )

    @classmethod
    def of(cls, model: Any) -> FlatForest:
        """The flat layout of a fitted, supported scikit-learn model (see SUPPORTED; two classes, one output)."""
        if not cls.supports(model):
            raise TypeError(f"FlatForest reads {', '.join(SUPPORTED)} with two classes, not {type(model).__name__}")
        trees = [e.tree_ for e in getattr(model, "estimators_", [model])]
        roots, parts, offset = [], [], 0
        for tree in trees:
            n = tree.node_count
            counts = tree.value[:, 0, :]
            total = counts.sum(axis=1)
            # scikit-learn's predict_proba divides a leaf's class values by their sum (0 sums become 1)
            value = counts[:, 1] / np.where(total == 0.0, 1.0, total)
            missing = getattr(tree, "missing_go_to_left", np.zeros(n, dtype=np.uint8))
            parts.append((_shifted(tree.children_left, offset), _shifted(tree.children_right, offset), tree.feature,
                          tree.threshold, np.asarray(missing, dtype=bool), value, tree.weighted_n_node_samples))
            roots.append(offset)
            offset += n
        cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
        return cls(
            roots=np.asarray(roots, dtype=np.int64),
            left=cols[0].astype(np.int64), right=cols[1].astype(np.int64), feature=cols[2].astype(np.int64),
            threshold=cols[3].astype(np.float64), missing_left=cols[4], value=cols[5].astype(np.float64),
            cover=cols[6].astype(np.float64), max_depth=max(int(t.max_depth) for t in trees),
            n_features=int(model.n_features_in_),
        )  # fmt: skip

    def save(self, path: Any) -> None:
        """The node arrays in one .npz (no pickle): what a worker loads instead of the scikit-learn forest."""
        np.savez(path, roots=self.roots, left=self.left, right=self.right, feature=self.feature,
                 threshold=self.threshold, missing_left=self.missing_left, value=self.value, cover=self.cover,
                 shape=np.array([self.max_depth, self.n_features], dtype=np.int64))  # fmt: skip

    @classmethod
    def load(cls, path: Any) -> FlatForest:
        """A forest saved by `save`, checked for consistent node arrays (scikit-learn is not imported)."""
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAYS}
            max_depth, n_features = (int(v) for v in npz["shape"])
        nodes = len(arrays["left"])
        if any(len(arrays[name]) != nodes for name in ARRAYS if name != "roots") or not (
            len(arrays["roots"]) and 0 <= arrays["roots"].min() and arrays["roots"].max() < nodes
            and arrays["left"].max(initial=-1) < nodes and arrays["right"].max(initial=-1) < nodes
            and arrays["feature"][arrays["left"] >= 0].max(initial=-1) < n_features
        ):  # fmt: skip
            raise ValueError(f"{path}: the forest's node arrays do not fit together")
        return cls(**{name: np.ascontiguousarray(arrays[name], dtype=dtype) for name, dtype in ARRAYS.items()},
                   max_depth=max_depth, n_features=n_features)  # fmt: skip

    def _input(self, Z: np.ndarray) -> np.ndarray:
        Z = np.asarray(Z)
        if Z.ndim != 2 or Z.shape[1] != self.n_features:
            raise ValueError(f"FlatForest expects n x {self.n_features} rows, got shape {Z.shape}")
        return np.ascontiguousarray(Z, dtype=np.float32)  # scikit-learn's trees split float32 inputs

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """The positive class's probability per row: `model.predict_proba(Z)[:, 1]`, bit for bit."""
        out = np.empty(len(Z), dtype=np.float64)
        _predict(self._input(Z), self.roots, self.left, self.right, self.feature, self.threshold, self.missing_left,
                 self.value, out)  # fmt: skip
        return out

    def shap(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Path-dependent TreeSHAP of `predict`: (values n x F, base n) with base + values.sum(1) == predict(Z)."""
        X = self._input(Z)
        values = np.zeros((len(X), self.n_features), dtype=np.float64)
        base = float(np.mean(self.value[self.roots]))
        kernel = _shap_block if len(X) >= BLOCK_FROM_ROWS else _shap
        kernel(X, self.roots, self.left, self.right, self.feature, self.threshold, self.missing_left, self.value,
               self.cover, values, self.max_depth)  # fmt: skip
        return values, np.full(len(X), base)


def warm() -> float:
    """Compile the kernels now (or load them from numba's cache) on a one-split tree; returns the seconds it took.
    Run by the setup script and by every model load with a forest, so a first alert never waits for the compiler."""
    import time

    started = time.perf_counter()
    def ints(*v: int) -> np.ndarray:
        return np.array(v, dtype=np.int64)

    stump = FlatForest(roots=ints(0), left=ints(1, -1, -1), right=ints(2, -1, -1), feature=ints(0, -2, -2),
                       threshold=np.array([0.5, -2.0, -2.0]), missing_left=np.zeros(3, dtype=bool),
                       value=np.array([0.5, 0.0, 1.0]), cover=np.array([2.0, 1.0, 1.0]), max_depth=1, n_features=1)
    stump.predict(np.zeros((1, 1)))
    stump.shap(np.zeros((1, 1)))
    stump.shap(np.zeros((BLOCK_FROM_ROWS, 1)))
    return time.perf_counter() - started


def _shifted(child: np.ndarray, offset: int) -> np.ndarray:
    """A tree's child indices into the concatenated node arrays (-1, a leaf's child, stays -1)."""
    return np.where(child >= 0, child + offset, -1)


@inline_kernel
def _path_size(max_depth: int) -> int:
    """Elements of the path buffers: each level's copy of its parent's path starts past it ((D + 3)(D + 4) / 2
    holds a tree of depth D, as the shap package sizes it with a margin); a stack holds one pending sibling per
    level, so max_depth + 4 entries suffice."""
    return (max_depth + 3) * (max_depth + 4) // 2


@inline_kernel
def _goes_left(v: float, threshold: float, missing_left: bool) -> bool:
    """scikit-learn's split: x <= threshold goes left; a NaN (which fails every comparison) goes to the side
    training chose for missing values."""
    return v <= threshold or (v != v and missing_left)


@inline_kernel
def _hot_child(x: np.ndarray, node: int, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
               threshold: np.ndarray, missing_left: np.ndarray) -> int:  # fmt: skip
    return int(left[node]) if _goes_left(x[feature[node]], threshold[node], missing_left[node]) else int(right[node])


@kernel
def _predict(X: np.ndarray, roots: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
             threshold: np.ndarray, missing_left: np.ndarray, value: np.ndarray, out: np.ndarray) -> None:  # fmt: skip
    """Tree by tree over all rows (a tree's nodes stay in cache), summed in tree order as scikit-learn sums."""
    n_trees = roots.shape[0]
    out[:] = 0.0
    for t in range(n_trees):
        for i in range(X.shape[0]):
            x = X[i]
            node = roots[t]
            while left[node] >= 0:
                node = _hot_child(x, node, left, right, feature, threshold, missing_left)
            out[i] += value[node]
    out /= n_trees


# TreeSHAP's "unique path" of (feature, zero fraction, one fraction, permutation weight) per element. Each level of
# the recursion works on its own copy of its parent's path, at offset parent + depth + 1 in four flat arrays.


@inline_kernel
def _extend(fd: np.ndarray, zf: np.ndarray, of: np.ndarray, pw: np.ndarray, at: int, depth: int, zero: float,
            one: float, feat: int) -> None:  # fmt: skip
    fd[at + depth] = feat
    zf[at + depth] = zero
    of[at + depth] = one
    pw[at + depth] = 1.0 if depth == 0 else 0.0
    r = 1.0 / (depth + 1)
    for i in range(depth - 1, -1, -1):
        pw[at + i + 1] += one * pw[at + i] * (i + 1) * r
        pw[at + i] = zero * pw[at + i] * (depth - i) * r


@inline_kernel
def _unwind(fd: np.ndarray, zf: np.ndarray, of: np.ndarray, pw: np.ndarray, at: int, depth: int, k: int) -> None:
    one, zero = of[at + k], zf[at + k]
    following = pw[at + depth]
    for i in range(depth - 1, -1, -1):
        if one != 0.0:
            kept = pw[at + i]
            pw[at + i] = following * (depth + 1) / ((i + 1) * one)
            following = kept - pw[at + i] * zero * (depth - i) / (depth + 1)
        else:
            pw[at + i] = pw[at + i] * (depth + 1) / (zero * (depth - i))
    for i in range(k, depth):
        fd[at + i] = fd[at + i + 1]
        zf[at + i] = zf[at + i + 1]
        of[at + i] = of[at + i + 1]


@numeric_kernel
def _shap_tree(x: np.ndarray, root: int, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
               threshold: np.ndarray, missing_left: np.ndarray, value: np.ndarray, cover: np.ndarray,
               phi: np.ndarray, scale: float, fd: np.ndarray, zf: np.ndarray, of: np.ndarray, pw: np.ndarray,
               stack: np.ndarray, fractions: np.ndarray, reciprocal: np.ndarray, following: np.ndarray,
               total: np.ndarray) -> None:  # fmt: skip
    """One tree's TreeSHAP of one row, depth first with an explicit stack (hot child before cold, as `shap` does).

    A stack entry is (node, depth, parent offset, feature) in `stack` and (zero, one) fractions in `fractions`. A
    node's path copy lives past its parent's, so a pending sibling still finds its parent's path intact."""
    top = 0
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = root, 0, 0, -1
    fractions[0, 0], fractions[0, 1] = 1.0, 1.0
    top = 1
    while top > 0:
        top -= 1
        node, depth, parent, feat = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        zero, one = fractions[top, 0], fractions[top, 1]
        at = parent + depth + 1
        for i in range(depth + 1):
            fd[at + i], zf[at + i] = fd[parent + i], zf[parent + i]
            of[at + i], pw[at + i] = of[parent + i], pw[parent + i]
        _extend(fd, zf, of, pw, at, depth, zero, one, feat)
        if left[node] < 0:
            # an element the row does not follow (one fraction 0) unwinds to the same sum over the path divided by
            # its zero fraction: one O(depth) sum serves them all. A followed one (one fraction 1: a single row's
            # fractions are 0 or 1) has its own chain of dependent steps; the chains of all elements advance
            # together, independent operations the CPU overlaps
            cold_sum = 0.0
            for i in range(depth):
                cold_sum += pw[at + i] * reciprocal[depth - i]
            for k in range(1, depth + 1):
                following[k] = pw[at + depth]
                total[k] = 0.0
            for i in range(depth - 1, -1, -1):
                c = reciprocal[i + 1]
                here = pw[at + i]
                for k in range(1, depth + 1):
                    part = following[k] * c
                    total[k] += part
                    following[k] = here - part * zf[at + k] * (depth - i)
            for k in range(1, depth + 1):
                w = total[k] if of[at + k] != 0.0 else cold_sum / zf[at + k]
                phi[fd[at + k]] += w * (depth + 1) * (of[at + k] - zf[at + k]) * value[node] * scale
            continue
        hot = _hot_child(x, node, left, right, feature, threshold, missing_left)
        cold = right[node] if hot == left[node] else left[node]
        split = feature[node]
        incoming_zero, incoming_one = 1.0, 1.0
        k = 0
        while k <= depth and fd[at + k] != split:
            k += 1
        if k <= depth:  # already split on this feature higher up: undo that split and redo it here
            incoming_zero, incoming_one = zf[at + k], of[at + k]
            _unwind(fd, zf, of, pw, at, depth, k)
            depth -= 1
        w = cover[node]
        # pushed cold first, so the hot child is explained first
        stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = cold, depth + 1, at, split
        fractions[top, 0], fractions[top, 1] = cover[cold] / w * incoming_zero, 0.0
        stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2], stack[top + 1, 3] = hot, depth + 1, at, split
        fractions[top + 1, 0], fractions[top + 1, 1] = cover[hot] / w * incoming_zero, incoming_one
        top += 2


@numeric_kernel
def _shap(X: np.ndarray, roots: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
          threshold: np.ndarray, missing_left: np.ndarray, value: np.ndarray, cover: np.ndarray, values: np.ndarray,
          max_depth: int) -> None:  # fmt: skip
    size, levels = _path_size(max_depth), max_depth + 4
    fd = np.full(size, -1, dtype=np.int64)
    zf = np.zeros(size)
    of = np.zeros(size)
    pw = np.zeros(size)
    stack = np.zeros((levels, 4), dtype=np.int64)
    fractions = np.zeros((levels, 2))
    reciprocal = 1.0 / np.maximum(np.arange(size + 1), 1.0)
    following = np.zeros(levels)
    total = np.zeros(levels)
    scale = 1.0 / roots.shape[0]
    for i in range(X.shape[0]):
        for t in range(roots.shape[0]):
            _shap_tree(X[i], roots[t], left, right, feature, threshold, missing_left, value, cover, values[i], scale,
                       fd, zf, of, pw, stack, fractions, reciprocal, following, total)  # fmt: skip


@numeric_kernel
def _shap_block(X: np.ndarray, roots: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
                threshold: np.ndarray, missing_left: np.ndarray, value: np.ndarray, cover: np.ndarray,
                values: np.ndarray, max_depth: int) -> None:  # fmt: skip
    """TreeSHAP of ROWS_PER_BLOCK rows at a time: every row visits every node of a tree in the same order, and
    the path's features and zero fractions depend on the tree alone; only the one fractions (0 or 1: does the row
    follow this path) and the permutation weights are per row. So the block walks each tree once, with per-row
    arithmetic in the innermost loops: independent chains the CPU overlaps (the unwound sum is a chain of
    dependent multiplications, latency-bound one row at a time). Children are visited left before right, whatever
    the row's hot side: the same sums in another order (differences of float rounding, ~1e-16)."""
    n = X.shape[0]
    size, levels = _path_size(max_depth), max_depth + 4
    reciprocal = 1.0 / np.maximum(np.arange(size + 1), 1.0)
    fd = np.full(size, -1, dtype=np.int64)
    zf = np.zeros(size)
    scale = 1.0 / roots.shape[0]
    for lo in range(0, n, ROWS_PER_BLOCK):
        R = min(ROWS_PER_BLOCK, n - lo)
        of = np.zeros((size, R))
        pw = np.zeros((size, R))
        s_int = np.zeros((levels, 4), dtype=np.int64)  # node, depth, parent, feature
        s_zero = np.zeros(levels)
        s_one = np.zeros((levels, R))
        following = np.zeros(R)
        total = np.zeros(R)
        cold_sum = np.zeros(R)
        incoming_one = np.zeros(R)
        for t in range(roots.shape[0]):
            s_int[0, 0], s_int[0, 1], s_int[0, 2], s_int[0, 3] = roots[t], 0, 0, -1
            s_zero[0] = 1.0
            s_one[0, :] = 1.0
            top = 1
            while top > 0:
                top -= 1
                node, depth, parent, feat = s_int[top, 0], s_int[top, 1], s_int[top, 2], s_int[top, 3]
                zero = s_zero[top]
                at = parent + depth + 1
                for i in range(depth + 1):
                    fd[at + i] = fd[parent + i]
                    zf[at + i] = zf[parent + i]
                    for r in range(R):
                        of[at + i, r] = of[parent + i, r]
                        pw[at + i, r] = pw[parent + i, r]
                # extend the path by (feat, zero, one)
                fd[at + depth] = feat
                zf[at + depth] = zero
                first = 1.0 if depth == 0 else 0.0
                for r in range(R):
                    of[at + depth, r] = s_one[top, r]
                    pw[at + depth, r] = first
                step = 1.0 / (depth + 1)
                for i in range(depth - 1, -1, -1):
                    up = (i + 1) * step
                    down = zero * (depth - i) * step
                    for r in range(R):
                        pw[at + i + 1, r] += s_one[top, r] * pw[at + i, r] * up
                        pw[at + i, r] = pw[at + i, r] * down
                if left[node] < 0:
                    leaf = value[node] * scale
                    for r in range(R):
                        cold_sum[r] = 0.0
                    for i in range(depth):
                        c = reciprocal[depth - i]
                        for r in range(R):
                            cold_sum[r] += pw[at + i, r] * c
                    for k in range(1, depth + 1):
                        z = zf[at + k]
                        f = fd[at + k]
                        for r in range(R):
                            following[r] = pw[at + depth, r]
                            total[r] = 0.0
                        for i in range(depth - 1, -1, -1):  # the unwound sum of a followed element (one = 1)
                            c = reciprocal[i + 1]
                            back = z * (depth - i)
                            for r in range(R):
                                part = following[r] * c
                                total[r] += part
                                following[r] = pw[at + i, r] - part * back
                        for r in range(R):
                            o = of[at + k, r]
                            w = total[r] if o != 0.0 else cold_sum[r] / z
                            values[lo + r, f] += w * (depth + 1) * (o - z) * leaf
                    continue
                split = feature[node]
                k = 0
                while k <= depth and fd[at + k] != split:
                    k += 1
                incoming_zero = 1.0
                for r in range(R):
                    incoming_one[r] = 1.0
                if k <= depth:  # split on this feature higher up: unwind that element, redo the split here
                    incoming_zero = zf[at + k]
                    for r in range(R):
                        incoming_one[r] = of[at + k, r]
                        o = of[at + k, r]
                        nxt = pw[at + depth, r]
                        for i in range(depth - 1, -1, -1):
                            if o != 0.0:
                                kept = pw[at + i, r]
                                pw[at + i, r] = nxt * (depth + 1) / ((i + 1) * o)
                                nxt = kept - pw[at + i, r] * incoming_zero * (depth - i) / (depth + 1)
                            else:
                                pw[at + i, r] = pw[at + i, r] * (depth + 1) / (incoming_zero * (depth - i))
                    for i in range(k, depth):
                        fd[at + i] = fd[at + i + 1]
                        zf[at + i] = zf[at + i + 1]
                        for r in range(R):
                            of[at + i, r] = of[at + i + 1, r]
                    depth -= 1
                w = cover[node]
                thr = threshold[node]
                go_missing = missing_left[node]
                for side in range(2):  # right pushed first: left explained first
                    child = right[node] if side == 0 else left[node]
                    s_int[top, 0], s_int[top, 1], s_int[top, 2], s_int[top, 3] = child, depth + 1, at, split
                    s_zero[top] = cover[child] / w * incoming_zero
                    for r in range(R):
                        goes_left = _goes_left(X[lo + r, split], thr, go_missing)
                        s_one[top, r] = incoming_one[r] if goes_left == (side == 1) else 0.0
                    top += 1


if __name__ == "__main__":
    print(f"tree kernels ready in {warm():.1f} s")
