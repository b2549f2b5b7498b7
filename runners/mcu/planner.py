"""Static arena planning for a compiled model: one byte array holds every
activation tensor and kernel scratch buffer, placed by lifetime.

Pure functions, no model types: the compiler turns its graph into
:class:`BufferUse` records (first and last operator that touch each buffer,
aliases already merged) and :func:`plan_arena` gives each an offset.

Algorithm: greedy first-fit: each buffer, in turn, at the lowest aligned offset
where it overlaps no already-placed buffer whose lifetime overlaps its own. The
order is largest first (TFLite Micro's GreedyMemoryPlanner) and a few others;
the smallest result is kept. What also makes our arenas smaller than TFLM's is what
lives outside them (TFLM also keeps its interpreter structures, persistent
kernel data and quantization parameters in the arena; ours are const in flash
or static) and aliasing (RESHAPE's output is its input; an in-place op's output
is planned over its dying input, chosen by the compiler by trial plans).

Alignment: 16 bytes by default, the same as TFLM's tensor alignment (so the
comparison is of planning, not of padding), and what Helium (M55/M85) vector
loads want. The int8 kernels need only 4 (int32 scratch and word loads), and
the waste is at most alignment - 1 bytes per buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

DEFAULT_ALIGNMENT = 16


@dataclass(frozen=True)
class BufferUse:
    """A buffer that needs ``size`` bytes from operator ``first`` to operator
    ``last`` inclusive (operator indices; -1 = before the first, n_ops = after
    the last)."""

    key: Hashable
    size: int
    first: int
    last: int

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"buffer {self.key!r}: negative size {self.size}")
        if self.last < self.first:
            raise ValueError(f"buffer {self.key!r}: last use {self.last} before first {self.first}")

    def lives_with(self, other: BufferUse) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class ArenaPlan:
    offsets: dict[Hashable, int]
    arena_bytes: int
    alignment: int


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


# Orders in which greedy first-fit places buffers; plan_arena keeps the best.
# Largest first is TFLM's; the others win when a big short-lived buffer placed
# early fragments the space a long-lived one needs (ResNet's residual inputs).
_ORDERS: dict[str, Callable[[BufferUse, int], tuple[int, ...]]] = {
    "size": lambda u, i: (-u.size, u.first, i),
    "longest_lived": lambda u, i: (-(u.last - u.first), -u.size, i),
    "size_x_lifetime": lambda u, i: (-u.size * (u.last - u.first + 1), u.first, i),
    "first_use": lambda u, i: (u.first, -u.size, i),
}


def _first_fit(uses: Sequence[BufferUse], order: Sequence[int], alignment: int) -> dict[int, int]:
    """Offsets (by position in ``uses``) placing each buffer, in ``order``, at the
    lowest aligned offset free of every placed buffer alive at the same time."""
    placed: list[tuple[int, int, BufferUse]] = []  # (offset, aligned size, use)
    offsets: dict[int, int] = {}
    for i in order:
        use = uses[i]
        size = align_up(use.size, alignment)
        if size == 0:
            offsets[i] = 0
            continue
        conflicts = sorted((off, sz) for off, sz, other in placed if other.lives_with(use))
        offset = 0
        for off, sz in conflicts:
            if offset + size <= off:
                break  # fits in the gap below this one
            offset = max(offset, off + sz)
        offsets[i] = offset
        placed.append((offset, size, use))
    return offsets


def plan_arena(buffers: Iterable[BufferUse], alignment: int = DEFAULT_ALIGNMENT) -> ArenaPlan:
    """Offsets for ``buffers`` such that two buffers alive at the same operator
    never share a byte; ``arena_bytes`` is the end of the highest one (aligned).

    Greedy first-fit in a few orders (largest first, longest-lived first, ...);
    the smallest arena wins, ties going to the earlier order in ``_ORDERS``."""
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")
    uses = list(buffers)
    keys = [u.key for u in uses]
    if len(set(keys)) != len(keys):
        raise ValueError("buffer keys must be unique")
    best: tuple[int, dict[int, int]] | None = None
    for sort_key in _ORDERS.values():
        order = sorted(range(len(uses)), key=lambda i, k=sort_key: k(uses[i], i))
        offsets = _first_fit(uses, order, alignment)
        arena = max(
            (offsets[i] + align_up(u.size, alignment) for i, u in enumerate(uses) if u.size),
            default=0,
        )
        if best is None or arena < best[0]:
            best = (arena, offsets)
    assert best is not None or not uses
    arena, offsets = best if best is not None else (0, {})
    return ArenaPlan(
        offsets={uses[i].key: off for i, off in offsets.items()},
        arena_bytes=arena,
        alignment=alignment,
    )


def peak_live_bytes(buffers: Sequence[BufferUse], alignment: int = DEFAULT_ALIGNMENT) -> int:
    """The lower bound no plan can beat: the most bytes alive at one operator."""
    if not buffers:
        return 0
    steps = range(min(b.first for b in buffers), max(b.last for b in buffers) + 1)
    return max(
        sum(align_up(b.size, alignment) for b in buffers if b.first <= t <= b.last) for t in steps
    )


def overlapping_pairs(
    buffers: Sequence[BufferUse], plan: ArenaPlan
) -> list[tuple[Hashable, Hashable]]:
    """Pairs of buffers alive together whose byte ranges intersect (must be empty)."""
    bad = []
    for i, a in enumerate(buffers):
        for b in buffers[i + 1 :]:
            if not a.lives_with(b) or a.size == 0 or b.size == 0:
                continue
            a0, b0 = plan.offsets[a.key], plan.offsets[b.key]
            if a0 < b0 + b.size and b0 < a0 + a.size:
                bad.append((a.key, b.key))
    return bad


def resolve_aliases(aliases: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """For every aliased tensor, its root and its byte offset from the root's start.

    ``aliases[t] = (u, offset)`` says tensor ``t`` starts ``offset`` bytes into
    tensor ``u``'s buffer (0 for a RESHAPE and for an in-place op's output over
    its input; a widening in-place 1x1 conv puts its input at its output's end)."""
    resolved: dict[int, tuple[int, int]] = {}
    for t in aliases:
        seen = {t}
        root, offset = t, 0
        while root in aliases:
            root, step = aliases[root]
            offset += step
            if root in seen:
                raise ValueError(f"alias cycle through tensor {t}")
            seen.add(root)
        resolved[t] = (root, offset)
    return resolved


def tensor_lifetimes(
    n_ops: int,
    op_inputs: Sequence[Sequence[int]],
    op_outputs: Sequence[Sequence[int]],
    sizes: dict[int, int],
    graph_inputs: Iterable[int],
    graph_outputs: Iterable[int],
    aliases: dict[int, tuple[int, int]] | None = None,
) -> list[BufferUse]:
    """One :class:`BufferUse` per planned tensor (keys: tensor indices in ``sizes``;
    constants and omitted inputs are simply absent from it).

    ``aliases`` (see :func:`resolve_aliases`) puts a tensor inside another's
    buffer; a group is one buffer, keyed by its root, as large as its furthest
    member reaches, live from the first write of any member to the last read of
    any. Graph inputs live for the whole invocation (one upload is inferred many
    times) and graph outputs to its end (the host reads them afterwards).
    """
    placement = resolve_aliases(aliases or {})

    def root(t: int) -> int:
        return placement[t][0] if t in placement else t

    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(t: int, at: int) -> None:
        if t < 0 or t not in sizes:
            return
        r = root(t)
        first[r] = min(first.get(r, at), at)
        last[r] = max(last.get(r, at), at)

    for t in graph_inputs:
        touch(t, -1)
        touch(t, n_ops)
    for op in range(n_ops):
        for t in op_outputs[op]:
            touch(t, op)
        for t in op_inputs[op]:
            touch(t, op)
    for t in graph_outputs:
        touch(t, n_ops)
    size_of: dict[int, int] = {}
    for t, size in sizes.items():
        r, offset = placement.get(t, (t, 0))
        size_of[r] = max(size_of.get(r, 0), offset + size)
    return [BufferUse(r, size_of[r], first[r], last[r]) for r in sorted(first)]
