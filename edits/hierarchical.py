"""A Bayesian hierarchical count model of edits per neuron, and posterior predictive intervals for the
full-table totals (the seed's "next step": a Bayesian hierarchical model for uncertainty quantification).

Model, per dataset d (mouse-like, fly-like, ...; fitted jointly when several are given):

    edits_i   = floor(X_i),  X_i ~ LogNormal(loc_d, s_d)   (a lognormal count model, heavy right tail:
                                                          P(e) = Φ((ln(e+1) − loc)/s) − Φ((ln e − loc)/s))
    merges_i  | edits_i ~ BetaBinomial(edits_i, p_d·c_d, (1 − p_d)·c_d)  (merges and splits jointly: the
                                                                      split count is edits − merges)

Partial pooling across datasets: log s_d, logit p_d and log c_d are each Normal(hyper-mean, hyper-sd) with
hyper-means ~ Normal(0, 2) and hyper-sds ~ HalfNormal(1) (non-centred); the scale loc_d ~ Normal(3, 3) is
not pooled (the datasets' scales differ twenty-fold). Why this family: by maximum likelihood on the
embedded fly-like table a negative binomial under-states the spread (sd 22 vs 36) and fits far worse
(negative log-likelihood 548,081 vs 530,637); the lognormal count takes the tail's weight from the body's
shape, so a sample that misses the tail is not read as light-tailed. It is the Poisson-lognormal's limit
without the Poisson layer (which needs a latent per neuron, slow under NUTS); its mean is 5 % low on the
fly-like table (17.9 vs 18.83), whose tail above 65 edits is fatter than lognormal. Measured coverage
(edits/coverage.json): the fly-like mean 141/150 seeds at n = 100 but 34/40 at n = 500, where the interval is
narrow enough for that bias to show.

Posterior predictive of the whole table (N neurons, n sampled): the sampled neurons are known, the N − n
others are drawn from the model. Per posterior draw θ their total edits and merges are the sum of N − n
independent draws, taken as bivariate normal with the model's mean and covariance (N − n ≥ 1,800 here; the
parameter uncertainty, of order (N − n)/√n, dominates the predictive noise of order √(N − n)). Intervals are
the equal-tailed quantiles of the predictive draws of the population mean, merge share and total.

Fitted with NumPyro's NUTS (JAX on CPU; 300 warm-up and 500 kept draws, one chain, tree depth <= 7), data
collapsed to distinct (edits, merges) pairs with counts as weights and padded to a power of two. The whole
run is one jitted function of (data, key), compiled once per padded shape (`_sampler`): the first fit costs
the compilation (~10-15 s on 2 busy cores), later fits only the sampling (~100 leapfrog steps per draw, most
trajectories reach the depth limit; 6-20 s on 2 shared cores, bench/edits.py times it).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from proofpilot.edits.records import Estimate

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
log = logging.getLogger(__name__)

METHOD = "posterior predictive, hierarchical lognormal-count x beta-binomial model (NumPyro NUTS)"
POOLED = ("log_s", "logit_p", "log_c")
WARMUP, DRAWS = 300, 500
_SAMPLERS: dict = {}


@dataclass(frozen=True)
class DatasetCounts:
    """One dataset's sampled neurons (edits, merges) and its table size N."""

    name: str
    edits: np.ndarray
    merges: np.ndarray
    population: int


@dataclass(frozen=True)
class ModelIntervals:
    """Posterior predictive estimates of one dataset's full-table statistics."""

    name: str
    mean_edits: Estimate
    merge_share: Estimate
    projected_total: Estimate
    projected_merges: Estimate
    projected_splits: Estimate
    divergences: int
    seconds: float


def _padded(datasets: list[DatasetCounts]) -> dict[str, np.ndarray]:
    groups = []
    for d in datasets:
        pairs, sizes = np.unique(np.stack([d.edits, d.merges], axis=1), axis=0, return_counts=True)
        groups.append((pairs, sizes))
    width = max(128, 1 << math.ceil(math.log2(max(len(s) for _, s in groups))))
    e = np.zeros((len(datasets), width), dtype=np.float32)
    m, wt = np.zeros_like(e), np.zeros_like(e)
    for i, (pairs, sizes) in enumerate(groups):
        e[i, : len(sizes)], m[i, : len(sizes)], wt[i, : len(sizes)] = pairs[:, 0], pairs[:, 1], sizes
    return {"e": e, "m": m, "wt": wt}


def _model(e, m, wt):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.nn import sigmoid
    from jax.scipy.special import betaln, gammaln, log_ndtr

    n_sets = e.shape[0]
    params = {}
    for name in POOLED:
        hyper_mu = numpyro.sample(f"{name}_mu", dist.Normal(0.0, 2.0))
        hyper_sd = numpyro.sample(f"{name}_sd", dist.HalfNormal(1.0))
        z = numpyro.sample(f"{name}_z", dist.Normal(0.0, 1.0).expand([n_sets]).to_event(1))
        params[name] = hyper_mu + hyper_sd * z
    loc = numpyro.sample("loc", dist.Normal(3.0, 3.0).expand([n_sets]).to_event(1))[:, None]
    scale = jnp.exp(params["log_s"])[:, None]
    # P(edits = e) = P(e <= X < e + 1), X lognormal(loc, scale): log(Φ(hi) − Φ(lo)), Φ(lo) = 0 at e = 0
    hi = (jnp.log(e + 1) - loc) / scale
    lo = jnp.where(e > 0, (jnp.log(jnp.maximum(e, 1)) - loc) / scale, -jnp.inf)
    upper = jnp.where(lo > 0, log_ndtr(-lo), log_ndtr(hi))  # the far tail computed from the right
    lower = jnp.where(lo > 0, log_ndtr(-hi), log_ndtr(lo))
    ll_e = upper + jnp.log1p(-jnp.exp(jnp.minimum(lower - upper, -1e-12)))
    p = sigmoid(params["logit_p"])[:, None]
    c = jnp.exp(params["log_c"])[:, None]
    a, b = p * c, (1 - p) * c
    ll_m = gammaln(e + 1) - gammaln(m + 1) - gammaln(e - m + 1) + betaln(m + a, e - m + b) - betaln(a, b)
    numpyro.factor("loglik", jnp.sum(jnp.where(wt > 0, wt * (ll_e + ll_m), 0.0)))


def _sampler(data: dict[str, np.ndarray]):
    """One jitted NUTS run (warm-up, then DRAWS kept) for data of this padded shape, built once per shape.

    NumPyro's MCMC.run compiles its sampling loop again on every call even with jit_model_args (measured:
    11-14 s of XLA compilation per fit, the same shape each time), so the sampler is assembled here from
    NumPyro's functional NUTS (initialize_model + hmc's init/sample kernels) inside one `jax.jit` of
    (data, key): a later fit of the same shape runs the compiled program. Same settings as before: NUTS,
    target acceptance 0.9, tree depth <= 7, diagonal mass matrix, init at the prior medians."""
    import jax
    from numpyro.infer import init_to_median
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    shape = data["e"].shape
    if shape in _SAMPLERS:
        return _SAMPLERS[shape]
    info = initialize_model(
        jax.random.PRNGKey(0), _model, model_kwargs=data, dynamic_args=True, init_strategy=init_to_median
    )
    init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")
    start = info.param_info.z

    def run(d, key):
        state = init_kernel(start, num_warmup=WARMUP, target_accept_prob=0.9, max_tree_depth=7,
                            model_kwargs=d, rng_key=key)  # fmt: skip
        state = jax.lax.fori_loop(0, WARMUP, lambda _, s: sample_kernel(s, model_kwargs=d), state)

        def step(s, _):
            s = sample_kernel(s, model_kwargs=d)
            return s, (s.z, s.diverging)

        _, (z, diverging) = jax.lax.scan(step, state, None, length=DRAWS)
        return jax.vmap(info.postprocess_fn(**d))(z), diverging

    _SAMPLERS[shape] = jax.jit(run)
    return _SAMPLERS[shape]


def fit(datasets: list[DatasetCounts], seed: int = 0) -> dict[str, np.ndarray]:
    """Posterior draws (DRAWS per parameter, one chain after WARMUP) of the joint model."""
    import jax

    data = _padded(datasets)
    samples, diverging = _sampler(data)(data, jax.random.PRNGKey(seed))
    draws = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    draws["diverging"] = np.asarray(diverging)
    return draws


def _moments(draws: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Per posterior draw: mean, variance and second moment of edits per neuron, merge share p, BB
    concentration c. floor(X) of a lognormal X: E = E[X] − 1/2, E[·²] = E[X²] − E[X] + 1/6 (uniform
    fractional part; error ≪ the parameter uncertainty)."""

    def pooled(name):
        return draws[f"{name}_mu"] + draws[f"{name}_sd"] * draws[f"{name}_z"][:, i]

    loc, s2 = draws["loc"][:, i], np.exp(2 * pooled("log_s"))
    ex, ex2 = np.exp(loc + s2 / 2), np.exp(2 * loc + 2 * s2)
    mean = np.maximum(ex - 0.5, 0.0)
    second = np.maximum(ex2 - ex + 1 / 6, mean**2)
    p = 1 / (1 + np.exp(-pooled("logit_p")))
    return {"mean": mean, "var": second - mean**2, "second": second, "p": p,
            "c": np.exp(pooled("log_c"))}  # fmt: skip


def predictive(
    draws: dict[str, np.ndarray], i: int, data: DatasetCounts, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Predictive draws of the table's total edits and merges (sampled neurons known, the rest drawn)."""
    mo = _moments(draws, i)
    rest = data.population - len(data.edits)
    p, c = mo["p"], mo["c"]
    var_m = rest * (p * (1 - p) * (mo["mean"] + (mo["second"] - mo["mean"]) / (c + 1)) + p * p * mo["var"])
    var_e, cov = rest * mo["var"], rest * p * mo["var"]
    z1, z2 = rng.standard_normal((2, len(p)))
    sd_e = np.sqrt(np.maximum(var_e, 0))
    edits = rest * mo["mean"] + sd_e * z1
    cond = np.sqrt(np.maximum(var_m - np.where(var_e > 0, cov**2 / np.maximum(var_e, 1e-300), 0), 0))
    merges = rest * p * mo["mean"] + np.where(sd_e > 0, cov / np.maximum(sd_e, 1e-300), 0) * z1 + cond * z2
    total = data.edits.sum() + np.maximum(edits, 0)
    merged = data.merges.sum() + np.clip(merges, 0, None)
    return {"total": total, "merges": np.minimum(merged, total)}


def _interval(values: np.ndarray, level: float) -> Estimate:
    lo, mid, hi = np.quantile(values, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return Estimate(float(mid), (float(lo), float(hi)), METHOD)


def model_intervals(
    datasets: list[DatasetCounts], level: float = 0.95, seed: int = 0
) -> list[ModelIntervals]:
    """Fit the joint model and return each dataset's posterior predictive estimates (medians, equal tails)."""
    started = time.perf_counter()
    draws = fit(datasets, seed)
    seconds = time.perf_counter() - started
    rng = np.random.default_rng(seed)
    out = []
    for i, d in enumerate(datasets):
        pred = predictive(draws, i, d, rng)
        total, merges = pred["total"], pred["merges"]
        out.append(
            ModelIntervals(
                name=d.name,
                mean_edits=_interval(total / d.population, level),
                merge_share=_interval(merges / total, level),
                projected_total=_interval(total, level),
                projected_merges=_interval(merges, level),
                projected_splits=_interval(total - merges, level),
                divergences=int(draws["diverging"].sum()),
                seconds=seconds,
            )
        )
    return out


def fit_samples(per_neuron, samples, population: int, config) -> tuple[ModelIntervals, ...]:
    """The model fitted to each sample of an `edits` run (one dataset, ok neurons only); a census has no
    sampling error and is not fitted."""
    ok = per_neuron[per_neuron["status"] == "ok"].drop_duplicates("root_id").set_index("root_id")
    out = []
    for sample in samples:
        rows = ok.loc[ok.index.intersection(sample.root_ids)]
        if len(rows) >= population or len(rows) < 2:
            continue
        data = DatasetCounts(
            sample.label, rows["n_edits"].to_numpy(int), rows["n_merges"].to_numpy(int), population
        )
        (fitted,) = model_intervals([data], config.ci_level, config.seed)
        log.info("model fit %s: %.1f s, %d divergences", sample.label, fitted.seconds, fitted.divergences)
        out.append(fitted)
    return tuple(out)


def model_dict(m: ModelIntervals) -> dict:
    """summary.json's `model` entry of one sample."""
    out: dict = {"sample": m.name, "method": METHOD, "divergences": m.divergences, "fit_seconds": m.seconds}
    for key in ("mean_edits", "merge_share", "projected_total", "projected_merges", "projected_splits"):
        est = getattr(m, key)
        out[key], out[f"{key}_ci"] = est.value, list(est.ci) if est.ci else None
    return out
