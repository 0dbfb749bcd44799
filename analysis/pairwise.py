"""numpy's pairwise summation, compiled (numba): the sums of the compiled kernels (survival's
and the PS model's deviance) in numpy's order, so that they equal the numpy paths'
``.sum(axis=1)`` bit for bit.

numpy sums a contiguous row of doubles by ``pairwise_sum`` (numpy/_core/src/umath/loops_utils.h):
blocks of up to 128 terms in eight interleaved partial sums combined pairwise, longer ranges
halved at a multiple of 8. Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True, error_model="numpy")
def block_sum(a, start, n):
    """numpy's pairwise sum of ``a[start:start + n]`` for ``n <= 128``: sequential below 8
    terms, else eight interleaved partial sums combined pairwise, then the rest in order.
    Beyond 128 terms the same eight lanes run on (numpy halves the range first:
    :func:`pairwise_sum`), which differs from numpy's sum by rounding only."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = start + 8
    stop = start + n - n % 8
    while i < stop:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + n:
        res += a[i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True, error_model="numpy")
def pairwise_sum(a, start, n, stack, partial):
    """``a[start:start + n].sum()`` in numpy's order (``pairwise_sum``: blocks of up to 128
    terms, larger ranges halved at a multiple of 8), bit for bit; without recursion (numba
    cannot cache a recursive function): the halvings are walked with an explicit ``stack``
    (int64, shape (64, 3): start, length, stage) and ``partial`` (float, shape (64,): the left
    halves' sums)."""
    if n <= 128:
        return block_sum(a, start, n)
    top = 0
    stack[0, 0], stack[0, 1], stack[0, 2] = start, n, 0
    value = 0.0
    while top >= 0:
        s, m, stage = stack[top, 0], stack[top, 1], stack[top, 2]
        if m <= 128 or stage == 2:
            value = block_sum(a, s, m) if m <= 128 else partial[top] + value
            top -= 1
            continue  # `value` goes to the parent (stage 1: its left half; 2: its right half)
        half = m // 2
        half -= half % 8
        if stage == 0:
            stack[top, 2] = 1
            top += 1
            stack[top, 0], stack[top, 1], stack[top, 2] = s, half, 0
        else:  # the left half's sum is in `value`
            partial[top] = value
            stack[top, 2] = 2
            top += 1
            stack[top, 0], stack[top, 1], stack[top, 2] = s + half, m - half, 0
    return value
