"""A small labelled container of accumulated statistics that merges exactly and serialises.

:class:`MergeableState` holds named arrays whose first dim is ``condition``, each with a
*role* that says how two states combine:

=========  =====================================================================
role       merge
=========  =====================================================================
count      added (exact integers)
mean, m2   ``{q}_count``, ``{q}_mean``, ``{q}_m2`` form the Moments of a quantity
           ``q``; combined by Chan, Golub & LeVeque's pairwise update
           (:func:`~analysis.performance.moments.merge_moments`)
constant   must agree where both states hold the condition (e.g. the truths)
=========  =====================================================================

States of different conditions stack along ``condition`` (kept sorted), so a merge is
associative and commutative up to rounding of the Moments. The last dim of a variable may be
an open one (``n_pairs_value``: the values a count took), whose coordinates are united, with
count 0 for a value a state never saw. Merging works on NumPy arrays (a few microseconds per
variable); :meth:`MergeableState.to_dataset` gives an :class:`xarray.Dataset` (the roles in
each variable's ``role`` attribute and, as JSON, in the attribute ``summary_state_roles``;
the options in ``summary_state_*`` attributes) that netCDF (or any store of arrays and
JSON-able attributes) keeps and
:meth:`MergeableState.from_dataset` reads back.

References
----------
Chan TF, Golub GH, LeVeque RJ (1983). Algorithms for computing the sample variance: analysis
and recommendations. Am Stat 37:242-247.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np
import xarray as xr

from analysis.performance.moments import Moments, merge_moments

__all__ = ["MergeableState", "STATE_FORMAT"]

#: Version of the layout, stored in every state's attributes and checked when read back.
STATE_FORMAT = 2
ROLES = ("count", "mean", "m2", "constant")
#: Dims in the order every variable is stored; the open dim is last.
DIM_ORDER = ("condition", "method", "estimand", "cohort", "endpoint", "status", "criterion",
             "n_pairs_value")
OPEN_DIM = "n_pairs_value"
_OPTION_PREFIX = "summary_state"
_IDENTITY = ("summary_state", "summary_state_format", "summary_state_roles")


class MergeableState:
    """Accumulated statistics per condition (see module). Subclasses set ``KIND``.

    Parameters
    ----------
    variables : mapping name -> (dims, ndarray, role)
        Dims in :data:`DIM_ORDER` order, ``condition`` first.
    coords : mapping dim -> ndarray
        Labels of every dim used (``condition`` sorted increasing).
    condition_coords : mapping name -> (dims, ndarray)
        Extra coordinates on ``condition`` (dims ``("condition",)``) or scalar (dims ``()``),
        e.g. ``hazard_ratio``.
    attrs : mapping
        The run's attributes carried along, plus this state's options
        (``summary_state_*``; see :meth:`options`).
    """

    KIND = ""

    def __init__(self, variables: Mapping, coords: Mapping, condition_coords: Mapping,
                 attrs: Mapping):
        self._variables = {name: (tuple(dims), np.asarray(values), role)
                           for name, (dims, values, role) in variables.items()}
        self._coords = {dim: np.asarray(values) for dim, values in coords.items()}
        self._condition_coords = {name: (tuple(dims), np.asarray(values))
                                  for name, (dims, values) in condition_coords.items()}
        self._attrs = dict(attrs)
        self._attrs.update(summary_state=self.KIND, summary_state_format=STATE_FORMAT,
                           summary_state_roles=json.dumps(
                               {name: role for name, (_, _, role) in self._variables.items()},
                               sort_keys=True))
        conditions = self._coords["condition"]
        if np.unique(conditions).size != conditions.size:
            raise ValueError(f"{type(self).__name__}: repeated condition labels {list(conditions)}")
        if not np.all(conditions[:-1] < conditions[1:]):  # keep conditions sorted, as merges do
            order = np.argsort(conditions, kind="stable")
            self._coords["condition"] = conditions[order]
            self._variables = {name: (dims, values[order], role)
                               for name, (dims, values, role) in self._variables.items()}
            self._condition_coords = {name: (dims, values[order] if dims else values)
                                      for name, (dims, values) in self._condition_coords.items()}

    # ---------------------------------------------------------------- access and storage

    def options(self) -> dict:
        """The options the state was accumulated with (``summary_state_*`` attributes)."""
        return {key: value for key, value in self._attrs.items()
                if key.startswith(_OPTION_PREFIX) and key not in _IDENTITY}

    @property
    def source_attrs(self) -> dict:
        """The run's attributes carried from the blocks (without the state's own)."""
        return {key: value for key, value in self._attrs.items()
                if not key.startswith(_OPTION_PREFIX)}

    def to_dataset(self, *, roles: bool = True) -> xr.Dataset:
        """The state as an :class:`xarray.Dataset` (a copy): to store, or for a worker to return.

        With ``roles=False``, without the variables' ``role`` attributes and the state's own
        attributes (the plain statistics, as the summary reads them).
        """
        coords = {dim: values.copy() for dim, values in self._coords.items()}
        coords.update({name: (dims, values.copy())
                       for name, (dims, values) in self._condition_coords.items()})
        return xr.Dataset(
            {name: (dims, values.copy(), {"role": role} if roles else {})
             for name, (dims, values, role) in self._variables.items()},
            coords=coords, attrs=dict(self._attrs) if roles else {},
        )

    @classmethod
    def from_dataset(cls, dataset: xr.Dataset):
        """The state stored as ``dataset`` (the output of :meth:`to_dataset`, e.g. from netCDF).

        Raises
        ------
        ValueError
            If ``dataset`` is not a state of this kind and format.
        """
        if dataset.attrs.get("summary_state") != cls.KIND:
            raise ValueError(f"not a {cls.__name__} dataset (attribute summary_state)")
        stored_format = dataset.attrs.get("summary_state_format")
        if stored_format is None or int(stored_format) != STATE_FORMAT:
            raise ValueError(f"{cls.__name__}: format {stored_format!r}, this psmsim reads "
                             f"format {STATE_FORMAT}; recompute the state from the blocks")
        try:  # also kept as one attribute of the state, for stores that drop variables' attributes
            roles = json.loads(dataset.attrs.get("summary_state_roles", "{}"))
        except (TypeError, ValueError):
            roles = {}
        variables = {}
        for name, variable in dataset.data_vars.items():
            role = variable.attrs.get("role", roles.get(name))
            dims = tuple(dim for dim in DIM_ORDER if dim in variable.dims)
            if role not in ROLES or len(dims) != variable.ndim or dims[:1] != ("condition",):
                raise ValueError(f"{cls.__name__}: variable {name} has role {role!r} and dims "
                                 f"{variable.dims}; not a state written by psmsim")
            variables[name] = (dims, np.array(variable.transpose(*dims).values), role)
        coords = {dim: dataset[dim].values for dim in dataset.dims}
        condition_coords = {name: (coord.dims, coord.values)
                            for name, coord in dataset.coords.items() if name not in dataset.dims}
        return cls(variables, coords, condition_coords, dataset.attrs)

    # ---------------------------------------------------------------- merge

    def merge(self, other):
        """The state of this state's replicates and ``other``'s together (see module).

        Raises
        ------
        TypeError
            If ``other`` is another kind of state.
        ValueError
            If the states were accumulated with different options, have other cells or
            variables, or disagree on a constant, a condition coordinate or the run's
            attributes.
        """
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(self).__name__} with {type(other).__name__}")
        attrs = _merged_attrs(self._attrs, other._attrs)
        _check_same_layout(self, other)
        conditions = np.union1d(self._coords["condition"], other._coords["condition"])
        rows = [np.searchsorted(conditions, state._coords["condition"]) for state in (self, other)]
        present = [np.zeros(conditions.size, bool) for _ in rows]
        for mask, row in zip(present, rows):
            mask[row] = True
        shared = present[0] & present[1]
        coords = dict(self._coords, condition=conditions)
        if OPEN_DIM in self._coords:
            coords[OPEN_DIM] = np.union1d(self._coords[OPEN_DIM], other._coords[OPEN_DIM])
        first, second = (state._placed(row, conditions.size, coords) for state, row in
                         zip((self, other), rows))
        variables = {}
        for name, (dims, _, role) in self._variables.items():
            if role == "count":
                values = first[name] + second[name]
            elif role in ("mean", "m2"):
                quantity = name.rsplit("_", 1)[0]
                merged = merge_moments(*(Moments(*(side[f"{quantity}_{part}"]
                                                   for part in ("count", "mean", "m2")))
                                         for side in (first, second)))
                values = getattr(merged, role)
            else:
                values = _agreed(name, first[name], second[name], present, shared)
            variables[name] = (dims, values, role)
        condition_coords = {}
        for name, (dims, values) in self._condition_coords.items():
            other_values = other._condition_coords[name][1]
            if dims == ():
                if not _same(values, other_values):
                    raise ValueError(f"states: coordinate {name} differs; states of one run only")
                condition_coords[name] = (dims, values)
                continue
            placed = [_place(side, row, conditions.size)
                      for side, row in zip((values, other_values), rows)]
            condition_coords[name] = (dims, _agreed(name, *placed, present, shared))
        return type(self)(variables, coords, condition_coords, attrs)

    def _placed(self, rows: np.ndarray, n_conditions: int, coords: Mapping) -> dict:
        """Every variable on the merged conditions (rows) and open values; empty elsewhere."""
        placed = {}
        for name, (dims, values, role) in self._variables.items():
            if dims[-1] == OPEN_DIM and values.shape[-1] != coords[OPEN_DIM].size:
                wide = np.zeros(values.shape[:-1] + (coords[OPEN_DIM].size,), values.dtype)
                wide[..., np.searchsorted(coords[OPEN_DIM], self._coords[OPEN_DIM])] = values
                values = wide
            placed[name] = _place(values, rows, n_conditions, empty=_EMPTY[role])
        return placed


_EMPTY = {"count": 0, "mean": np.nan, "m2": 0.0, "constant": np.nan}


def _place(values: np.ndarray, rows: np.ndarray, n_conditions: int, empty=None) -> np.ndarray:
    """``values`` at ``rows`` of an array of ``n_conditions`` rows; ``empty`` (or 0) elsewhere."""
    out = np.zeros((n_conditions,) + values.shape[1:], dtype=values.dtype)
    if empty is not None:
        out[...] = empty
    out[rows] = values
    return out


def _agreed(name: str, first: np.ndarray, second: np.ndarray, present, shared) -> np.ndarray:
    """A constant: ``first`` where the first state holds the condition, else ``second``."""
    if shared.any() and not _same(first[shared], second[shared]):
        raise ValueError(f"states: {name} differs for the same condition; states of one run only")
    mask = present[0].reshape((-1,) + (1,) * (first.ndim - 1))
    return np.where(mask, first, second)


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _check_same_layout(first: MergeableState, second: MergeableState) -> None:
    layout = [{name: (dims, role) for name, (dims, _, role) in state._variables.items()}
              for state in (first, second)]
    if layout[0] != layout[1]:
        raise ValueError("states: different variables, cannot merge")
    for dim, labels in first._coords.items():
        if dim not in ("condition", OPEN_DIM) and not _same(labels, second._coords[dim]):
            raise ValueError(f"states: different {dim} labels ({list(labels)} vs "
                             f"{list(second._coords[dim])}), cannot merge")
    if first._condition_coords.keys() != second._condition_coords.keys():
        raise ValueError("states: different condition coordinates, cannot merge")


def _merged_attrs(first: Mapping, second: Mapping) -> dict:
    options = [{k: v for k, v in attrs.items() if k.startswith(_OPTION_PREFIX)}
               for attrs in (first, second)]
    for key in sorted(set(options[0]) | set(options[1])):
        if not _same(options[0].get(key), options[1].get(key)):
            raise ValueError(f"states: {key} differs ({options[0].get(key)!r} vs "
                             f"{options[1].get(key)!r}); accumulate every block with the same "
                             "options")
    source = [{k: v for k, v in attrs.items() if not k.startswith(_OPTION_PREFIX)}
              for attrs in (first, second)]
    if source[0] and source[1]:
        differing = sorted(k for k in set(source[0]) | set(source[1])
                           if not _same(source[0].get(k), source[1].get(k)))
        if differing:
            raise ValueError(f"states: run attributes differ ({differing}); states of one run only")
    return {**second, **first}
