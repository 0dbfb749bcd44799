"""Several batches analysed as one: the per-call cost of the engine paid once for all of them.

A runner block of B replicates is one call of :func:`analysis.plan.analyse.analyse_cohorts`,
and each call costs about 1 ms of Python between its compiled kernels whatever B is (a liu2021
block of 100 replicates: about a tenth of its analysis). Consecutive blocks of one grid point
can be analysed as one batch — the *segments* of the batch — and give exactly the numbers each
block gives alone, provided

- every random draw of a segment comes from that segment's own generator, in the order a call
  on the segment alone makes it: the plan's only random part must be the matching, which is
  run segment by segment (:func:`match_by_segment`); a plan with bootstrap draws is analysed
  block by block (:func:`segments_allowed`);
- every statistic of a replicate depends on that replicate alone. The engine computes row by
  row (its kernels loop over replicates; numpy reduces along the patient axis), except in two
  places: a categorical PS covariate gets one indicator column per level seen anywhere in the
  batch (:func:`analysis.propensity.design.design_matrix`), so segments are joined only when
  they have the same levels (:func:`same_design_levels`); and the Cox Newton sums of a batch
  are padded to its largest event count (numpy's packed layout, whose pairwise sums they
  reproduce), so the survival pass is told the segments and pads each to its own
  (:func:`analysis.survival.endpoint.analyse_endpoint`).

The runner checks the whole result of joined blocks against the blocks analysed alone in its
tests, file by file to the byte (``tests/sim/run/test_block_groups.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Sequence

import numpy as np

from analysis.cohort import CohortBatch, segment_rows
from analysis.plan.options import Plan
from analysis.propensity.matched_sets import MatchResult


@dataclass(frozen=True)
class SegmentStreams:
    """The random generators of a batch made of consecutive segments: segment s, rows
    ``sum(sizes[:s])`` to ``sum(sizes[:s + 1])``, draws from ``generators[s]``."""

    generators: tuple[np.random.Generator, ...]
    sizes: tuple[int, ...]

    def __post_init__(self):
        if len(self.generators) != len(self.sizes) or not self.sizes:
            raise ValueError("SegmentStreams: one generator per segment, at least one segment")

    def slices(self) -> list[slice]:
        """The rows of each segment."""
        return segment_rows(self.sizes)


def segments_allowed(plan: Plan) -> bool:
    """True when segments can share a call of the engine with ``plan``: a matching estimator
    (its only random draws are the matching's) with model-based or robust Cox SEs (no
    bootstrap draws) and without pair strata (the one survival path, the fused pass, that
    gives each segment its own Newton-sum width: :func:`analysis.survival.endpoint.analyse_endpoint`)."""
    return plan.estimator == "matching" and plan.cox_se in ("model", "robust") and not plan.stratify_pairs


def same_design_levels(batches: Sequence[CohortBatch], plan: Plan) -> bool:
    """True when every batch has the same number of levels (largest code + 1) of each
    categorical covariate of the plan's PS model, so the joined batch's PS design has the
    columns of each batch's own."""
    names = plan.ps_covariates or batches[0].covariate_names
    first = batches[0]
    index = [first.covariate_names.index(n) for n in names if n in first.covariate_names]
    categorical = [j for j in index if first.covariate_kinds[j] == "categorical"]
    if not categorical:
        return True
    levels = {tuple(int(np.nanmax(b.covariates[:, :, j])) for j in categorical) for b in batches}
    return len(levels) == 1


def concatenate_batches(batches: Sequence[CohortBatch]) -> CohortBatch:
    """The batches' replicates in order, as one batch (arrays joined along the replicate axis;
    names from the first batch, which every batch must share)."""
    first = batches[0]
    for other in batches[1:]:
        if (other.covariate_names, other.covariate_kinds, other.ae_names) != (
                first.covariate_names, first.covariate_kinds, first.ae_names):
            raise ValueError("batches: different covariates or adverse events cannot be joined")
    if len(batches) == 1:
        return first
    joined = {}
    for item in fields(CohortBatch):
        value = getattr(first, item.name)
        if isinstance(value, np.ndarray):
            joined[item.name] = np.concatenate([getattr(b, item.name) for b in batches], axis=0)
        else:
            joined[item.name] = value
    return CohortBatch(**joined)


def match_by_segment(match: Callable[..., MatchResult], streams: SegmentStreams, distance: np.ndarray,
                     treated: np.ndarray, *, mask: np.ndarray, caliper, **options) -> MatchResult:
    """``match(distance, treated, mask=..., caliper=..., rng=generator, **options)`` on each
    segment with its own generator, the results joined along the replicate axis (each
    segment's draws are those of a call on it alone). ``caliper``: None, a number or one width
    per replicate (shape (replicate,))."""
    parts = []
    for rows, generator in zip(streams.slices(), streams.generators):
        width = caliper[rows] if isinstance(caliper, np.ndarray) and caliper.ndim == 1 else caliper
        parts.append(match(distance[rows], treated[rows], mask=mask[rows], caliper=width, rng=generator, **options))
    if len(parts) == 1:
        return parts[0]
    return MatchResult(**{item.name: np.concatenate([getattr(p, item.name) for p in parts], axis=0)
                          for item in fields(MatchResult)})
