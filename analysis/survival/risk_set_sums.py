"""Sums of per-row values over the risk sets, tie groups and earlier times of a risk-set
table (:class:`RiskSetSums`), each accumulated from its own terms only, for the multi-covariate
Cox fit (:mod:`analysis.survival.cox_regression`)."""

from __future__ import annotations

import numpy as np


def _by_stratum(values, stratum_index, n_strata, scan):
    """``scan`` (a cumulative sum along axis 1) of ``values`` (R, N[, p]) restarted at every
    stratum: each stratum's scan carries only its own rows (the others zeroed), so a sum is
    never the difference of two larger ones. One pass per stratum index (a handful)."""
    if n_strata == 1:
        return scan(values)
    out = np.zeros(values.shape)
    for k in range(n_strata):
        inside = stratum_index == k
        if values.ndim == 3:
            inside = inside[:, :, None]
        out += np.where(inside, scan(np.where(inside, values, 0.0)), 0.0)
    return out


def _suffix_sum(values):
    return np.cumsum(values[:, ::-1], axis=1)[:, ::-1]


def _prefix_sum(values):
    return np.cumsum(values, axis=1)


class RiskSetSums:
    """Sums over the risk set, the own tie group and the earlier groups of the stratum, for
    ``rows`` of a risk-set table in table order: any object with ``tie_first``, ``tie_last``,
    ``stratum_first``, ``stratum_last`` (int, (replicate, row)) and ``event`` (bool) as
    :class:`analysis.survival.risk_sets.RiskSetTable` has them. Values are (replicate, row) or
    (replicate, row, p).

    Each is accumulated from its own terms only: the risk set from the stratum's last row
    backwards (as R ``coxph``'s C code accumulates its denominators, adding patients as time
    decreases), the earlier groups forwards from the stratum's first row, a tie group as the
    sum of its rows. Differences of running totals (a cumulative sum at the risk set's end
    minus one at its start) would carry the rounding of the larger total: with large
    coefficients the risks span many orders of magnitude and a late risk set's sum, tiny
    beside the early patients' risks, would be lost (the log-likelihood then jumps by 1e-3
    between nearly equal coefficients, and whether Newton stops short of the maximum depends
    on the BLAS's rounding)."""

    def __init__(self, rows):
        self.rows = rows
        n_replicates, n_rows = rows.tie_first.shape
        positions = np.arange(n_rows)
        stratum_start = rows.stratum_first == positions
        self.stratum_index = np.cumsum(stratum_start, axis=1) - 1
        self.n_strata = int(self.stratum_index.max(initial=0)) + 1
        tie_start = (rows.tie_first == positions).ravel()
        self.group_starts = np.flatnonzero(tie_start)
        self.group_of_row = np.cumsum(tie_start) - 1
        # the row before the own tie group, when it is in the same stratum (else none: -1)
        self.before_group = np.where(rows.tie_first > rows.stratum_first, rows.tie_first - 1, -1)

    def _at(self, values, index):
        """``values[r, index[r, i]]`` (0 where ``index`` is -1)."""
        clipped = np.maximum(index, 0)
        if values.ndim == 3:
            taken = np.take_along_axis(values, clipped[:, :, None], axis=1)
            return np.where((index >= 0)[:, :, None], taken, 0.0)
        return np.where(index >= 0, np.take_along_axis(values, clipped, axis=1), 0.0)

    def risk_set(self, values):
        """sum over rows ``tie_first[i] .. stratum_last[i]`` (the risk set of row i's time)."""
        suffix = _by_stratum(values, self.stratum_index, self.n_strata, _suffix_sum)
        return self._at(suffix, self.rows.tie_first)

    def own_group(self, values):
        """sum over rows ``tie_first[i] .. tie_last[i]`` (row i's tie group)."""
        shape = values.shape
        flat = values.reshape((shape[0] * shape[1],) + shape[2:])
        if flat.shape[0] == 0:
            return np.zeros(shape)
        sums = np.add.reduceat(flat, self.group_starts, axis=0)
        return sums[self.group_of_row].reshape(shape)

    def earlier_groups(self, values):
        """sum over rows ``stratum_first[i] .. tie_first[i] - 1`` (earlier times, same stratum)."""
        prefix = _by_stratum(values, self.stratum_index, self.n_strata, _prefix_sum)
        return self._at(prefix, self.before_group)

    def up_to(self, values, kept_values):
        """sum over risk sets holding each row: earlier groups, plus the own group's terms
        (``kept_values`` = the Efron-reduced ones for event rows, ``values`` for the others)."""
        event = self.rows.event if values.ndim == 2 else self.rows.event[:, :, None]
        return self.earlier_groups(values) + np.where(event, self.own_group(kept_values), self.own_group(values))
