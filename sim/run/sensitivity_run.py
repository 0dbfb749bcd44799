"""``psmsim sensitivity RUN_DIR``: the sensitivity indices of a finished sweep, printed and
saved as ``sensitivity.nc`` + ``sensitivity.csv``; for an unmeasured-confounder sweep (``[sweep]
surface``) also the bias surface (``bias_surface.nc``) beside the E-value of the paper's
hazard ratio, the Lin–Psaty–Kronmal bias factor and the measured covariates as benchmarks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from analysis.performance.sensitivity.of_sweep import sensitivity_to_frame, sweep_sensitivity
from sim.errors import RunFolderError
from sim.run.folder_lock import FolderLock
from sim.run.store import SUMMARY_NC
from sim.run.atomic_files import atomic_write_bytes, read_dataset, write_dataset

__all__ = ["SensitivityOutcome", "sensitivity_folder", "format_sensitivity"]

SENSITIVITY_NC = "sensitivity.nc"
SENSITIVITY_CSV = "sensitivity.csv"
_SHOWN = ("power_logrank", "bias_marginal", "coverage_marginal")


@dataclass(frozen=True)
class SensitivityOutcome:
    report: str
    paths: tuple[Path, ...]
    sensitivity: xr.Dataset


def _open_summary(run_dir: Path) -> xr.Dataset:
    path = Path(run_dir) / SUMMARY_NC
    if not path.exists():
        raise RunFolderError(f"{run_dir}: no {SUMMARY_NC} here; run `psmsim sweep SCENARIO SWEEP "
                             f"--out {run_dir}` first")
    try:
        summary = read_dataset(path)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: cannot be read as netCDF ({exc})") from None
    if "sweep_design" not in summary.attrs:
        raise RunFolderError(f"{run_dir}: holds a plain run, not a sweep; sensitivity indices need "
                             "`psmsim sweep SCENARIO SWEEP`")
    return summary


def _number(value: float, width: int = 7) -> str:
    return f"{value:{width}.3f}" if np.isfinite(value) else f"{'—':>{width}}"


def format_sensitivity(sensitivity: xr.Dataset, *, endpoint: str = "pfs") -> str:
    """The printed report: the main indices of power, bias and coverage (matched cohort)."""
    design = sensitivity.attrs["sweep_design"]
    lines = [f"sensitivity of sweep {sensitivity.attrs.get('sweep_name', '')} ({design} design; "
             f"matched cohort, {endpoint.upper()})"]
    for measure in _SHOWN:
        if measure not in sensitivity.measure.values:
            continue
        for method in sensitivity.method.values:
            cell = sensitivity.sel({"measure": measure, "method": method, "endpoint": endpoint})
            lines.append(f"\n{measure}, {method}")
            if design == "factorial":
                scale = "logit scale" if bool(cell.logit_scale) else "identity scale"
                width = max(24, *(len(str(t)) for t in cell.term.values))
                lines.append(f"  {'term':<{width}} {'eta²':>7} {'noise η²':>9} {'p(noise)':>9}   ({scale})")
                for term in cell.term.values:
                    row = cell.sel(term=term)
                    lines.append(f"  {str(term):<{width}} {_number(float(row.eta_squared))} "
                                 f"{_number(float(row.eta_squared_noise), 9)} "
                                 f"{_number(float(row.noise_p_value), 9)}")
            elif design == "one_at_a_time":
                lines.append(f"  {'factor':<24} {'low':>9} {'high':>9} {'swing':>9} {'± MCSE':>8}")
                order = np.argsort(-np.abs(np.nan_to_num(cell.swing.values)))
                for i in order:
                    row = cell.isel(factor=i)
                    lines.append(f"  {str(row.factor.values):<24} {_number(float(row.estimate_low), 9)} "
                                 f"{_number(float(row.estimate_high), 9)} {_number(float(row.swing), 9)} "
                                 f"{_number(float(row.swing_mcse), 8)}")
            elif design == "morris":
                lines.append(f"  {'factor':<24} {'mu*':>9} {'± CI':>8} {'sigma':>9} {'noise σ²%':>9}"
                             f"   (noise alone: mu* ≈ {_number(float(cell.mu_star_noise)).strip()})")
                for factor in cell.factor.values:
                    row = cell.sel(factor=factor)
                    lines.append(f"  {str(factor):<24} {_number(float(row.mu_star), 9)} "
                                 f"{_number(float(row.mu_star_conf), 8)} {_number(float(row.sigma), 9)} "
                                 f"{_number(100 * float(row.sigma_noise_share), 9)}")
            else:
                lines.append(f"  {'factor':<24} {'S1':>7} {'± CI':>7} {'ST':>7} {'± CI':>7} "
                             f"{'S1 corr':>8} {'ST corr':>8}   (noise share of the output variance: "
                             f"{_number(100 * float(cell.noise_share)).strip()}%)")
                for factor in cell.factor.values:
                    row = cell.sel(factor=factor)
                    lines.append(f"  {str(factor):<24} {_number(float(row.s1))} {_number(float(row.s1_conf))} "
                                 f"{_number(float(row.st))} {_number(float(row.st_conf))} "
                                 f"{_number(float(row.s1_corrected), 8)} {_number(float(row.st_corrected), 8)}")
    return "\n".join(lines)


def sensitivity_folder(run_dir: Path) -> SensitivityOutcome:
    """Compute, write and format the sensitivity indices of the sweep in ``run_dir`` (refused
    while a sweep is writing it; locked shared meanwhile, :meth:`FolderLock.shared`)."""
    run_dir = Path(run_dir)
    with FolderLock.shared(run_dir, command="psmsim sensitivity"):
        return _sensitivity_folder(run_dir)


def _sensitivity_folder(run_dir: Path) -> SensitivityOutcome:
    summary = _open_summary(run_dir)
    sensitivity = sweep_sensitivity(summary, seed=int(summary.attrs.get("root_seed", 1)))
    nc_path, csv_path = run_dir / SENSITIVITY_NC, run_dir / SENSITIVITY_CSV
    write_dataset(nc_path, sensitivity)
    atomic_write_bytes(csv_path, sensitivity_to_frame(sensitivity).to_csv(index=False).encode())
    report = format_sensitivity(sensitivity)
    paths: tuple[Path, ...] = (nc_path, csv_path)
    surface = json.loads(summary.attrs.get("sweep_surface", "null"))
    if surface:
        from sim.run.unmeasured import unmeasured_report

        text, surface_path = unmeasured_report(run_dir, summary, x=surface[0], y=surface[1])
        report += "\n\n" + text
        paths += (surface_path,)
    return SensitivityOutcome(report, paths, sensitivity)
