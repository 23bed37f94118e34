"""Post-processing for crime figures: Poisson z, significance labels, control limits.

Pure functions on scalars or pandas objects; none of them modifies its input.
Thresholds follow Wheeler (2018), as set out in KPIS.md: |z| >= 3 is a signal,
1.96 <= |z| < 3 is worth watching, anything smaller is noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SIGNAL_Z = 3.0
WATCH_Z = 1.96
SIGNAL, WATCH, NOISE = "signal", "watch", "noise"
CONTROL_SIGMAS = 3.0


def poisson_z(current, previous):
    """z = 2 * (sqrt(current) - sqrt(previous)) for two Poisson counts."""
    if isinstance(current, pd.Series) or isinstance(previous, pd.Series):
        current_ = pd.to_numeric(current).astype("float64")
        previous_ = pd.to_numeric(previous).astype("float64")
        return 2.0 * (np.sqrt(current_) - np.sqrt(previous_))
    return float(2.0 * (np.sqrt(float(current)) - np.sqrt(float(previous))))


def significance(z):
    """Label z (scalar or Series) "signal", "watch" or "noise"; NaN is noise."""
    if isinstance(z, pd.Series):
        size = pd.to_numeric(z).astype("float64").abs()
        labels = np.select(
            [size >= SIGNAL_Z, size >= WATCH_Z], [SIGNAL, WATCH], default=NOISE
        )
        return pd.Series(labels, index=z.index, dtype="str", name=z.name)
    size = abs(float(z))
    if size >= SIGNAL_Z:
        return SIGNAL
    if size >= WATCH_Z:
        return WATCH
    return NOISE


def rate_per_1000(count, population):
    """count per 1,000 residents; NaN (or None for scalars) where population is 0/NA."""
    if isinstance(count, pd.Series) or isinstance(population, pd.Series):
        residents = pd.to_numeric(population).astype("float64")
        residents = residents.where(residents > 0)
        return pd.to_numeric(count).astype("float64") / residents * 1000.0
    if population is None or pd.isna(population) or population <= 0:
        return None
    return float(count) / float(population) * 1000.0


def c_chart(counts: pd.Series) -> pd.DataFrame:
    """Limits for counts: centre = mean, centre +- 3 sqrt(centre), lower >= 0."""
    values = pd.to_numeric(counts).astype("float64")
    centre = values.mean() if len(values) else np.nan
    sigma = np.sqrt(centre)
    out = pd.DataFrame(index=counts.index)
    out["centre"] = centre
    out["lower"] = max(centre - CONTROL_SIGMAS * sigma, 0.0) if len(values) else np.nan
    out["upper"] = centre + CONTROL_SIGMAS * sigma
    out["outside"] = ((values > out["upper"]) | (values < out["lower"])).astype(bool)
    return out


def u_chart(counts: pd.Series, exposure: pd.Series) -> pd.DataFrame:
    """Control limits for rates: centre = sum(c)/sum(e), centre +- 3 sqrt(centre/e_i).

    Rates are per unit of exposure; a point with no exposure has no rate or limits.
    """
    c = pd.to_numeric(counts).astype("float64")
    e = pd.to_numeric(exposure).astype("float64")
    e = e.where(e > 0)
    total = e.sum()
    centre = c[e.notna()].sum() / total if total > 0 else np.nan
    sigma = np.sqrt(centre / e)
    out = pd.DataFrame(index=counts.index)
    out["rate"] = c / e
    out["centre"] = centre
    out["lower"] = (centre - CONTROL_SIGMAS * sigma).clip(lower=0.0)
    out["upper"] = centre + CONTROL_SIGMAS * sigma
    above, below = out["rate"] > out["upper"], out["rate"] < out["lower"]
    out["outside"] = (above | below).astype(bool)
    return out


def p_chart(successes: pd.Series, trials: pd.Series) -> pd.DataFrame:
    """Control limits for proportions: centre = sum(x)/sum(n), +- 3 sqrt(p(1-p)/n_i).

    Limits are clipped to [0, 1]; a point with no trials has no proportion or limits.
    """
    x = pd.to_numeric(successes).astype("float64")
    n = pd.to_numeric(trials).astype("float64")
    n = n.where(n > 0)
    total = n.sum()
    centre = x[n.notna()].sum() / total if total > 0 else np.nan
    sigma = np.sqrt(centre * (1.0 - centre) / n)
    out = pd.DataFrame(index=successes.index)
    out["proportion"] = x / n
    out["centre"] = centre
    out["lower"] = (centre - CONTROL_SIGMAS * sigma).clip(lower=0.0)
    out["upper"] = (centre + CONTROL_SIGMAS * sigma).clip(upper=1.0)
    above, below = out["proportion"] > out["upper"], out["proportion"] < out["lower"]
    out["outside"] = (above | below).astype(bool)
    return out
