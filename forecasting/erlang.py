"""Erlang staffing: how many agents an interval needs to meet a service-level target.

Vectorised with numpy: every function takes scalars or arrays (broadcast together, one
element per interval) and returns arrays of the broadcast shape.

Models
------
``erlang_c`` (M/M/N, callers never hang up)
    Offered traffic ``A = λ·AHT`` Erlangs, with ``λ = volume / interval_s`` per second.
    Erlang B by the stable recursion ``B(0) = 1, B(n) = A·B(n-1) / (n + A·B(n-1))`` (no
    factorials, fine for thousands of agents), then for ``N > A``::

        P(wait) = N·B / (N − A·(1 − B))
        SL(T)   = 1 − P(wait)·exp(−(N − A)·T / AHT)
        ASA     = P(wait)·AHT / (N − A)
        occupancy = A / N

    For ``N <= A`` the queue grows without bound: P(wait) = 1, SL = 0, ASA = inf and
    occupancy = 1 (every agent always busy).

``erlang_a`` (M/M/N+M, callers hang up after an exponential patience of mean θ⁻¹ =
``patience_s``)
    The steady state of the birth-death chain (arrivals λ; in state N + j departures
    N·μ + j·θ) is ``π_{N+j} = π_N·ρ_j`` with ``ρ_j = Π_{k≤j} λ / (N·μ + k·θ)``. The sums
    over ``j`` are evaluated in log space, in blocks, until the tail is below 1e-16 of the
    total (the truncation where the remaining states carry negligible probability), so
    they neither overflow nor lose the tail. The waiting-time measures follow in closed
    form from the same sums (a tagged caller who finds ``j`` callers waiting ahead is
    answered with probability ``Nμ / (Nμ + (j+1)θ)`` after a sum of exponential stages
    of rates ``Nμ + iθ``; its generating function gives P(answered after T) and
    P(abandoned after T)). Reported:

    - ``p_wait``: share of arrivals that find every agent busy;
    - ``p_abandon``: share of arrivals that hang up before being answered (= θ·E[queue]/λ);
    - ``service_level``: answered within T **among arrivals that did not abandon within
      T** (short abandons excluded, the usual contact-centre definition:
      answered ≤ T / (answered + abandoned after T)). With this definition Erlang A never
      reports a lower service level than Erlang C for the same agents, so it never needs
      more agents, and it converges to Erlang C as the patience grows;
    - ``asa_s``: mean wait of the answered contacts;
    - ``occupancy``: carried traffic per agent, ``A·(1 − p_abandon) / N``.

    Erlang A is stable for any ``N`` (callers leave), so it does not require ``N > A``.

Chat concurrency
    An agent handling ``c`` chats at once is modelled as one server that works ``c`` times
    as fast: the effective handle time is ``AHT / c`` (so the traffic is ``A / c``) and that
    effective AHT is used everywhere AHT appears above (SL decay, ASA). It is the usual
    first-order approximation; it ignores that agents slow down when they juggle chats,
    which is better captured by measuring AHT at the concurrency actually worked.

Required agents
    The smallest ``N`` with ``SL ≥ target`` and ``occupancy ≤ max_occupancy`` (and, for
    Erlang C, ``N > A``), comparisons within 1e-12. Scheduled headcount is
    ``ceil(N / (1 − shrinkage))``. Zero volume needs 0 agents. Erlang C scans ``N``
    upwards through the Erlang B recursion for all intervals at once; Erlang A starts at
    the Erlang C answer (always feasible for Erlang A, see above) and searches downwards
    (galloping, then bisection), which assumes SL and occupancy are monotone in ``N``.

Speed (one core, 10 000 intervals, 0-650 Erlangs each): Erlang C about 0.03 s, Erlang A
about 0.2-0.4 s (slowest with very long patience, where the galloping search can step below
the traffic and the queue sums get long). ``tests/test_erlang.py`` guards 1 s and 5 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Model = Literal["erlang_c", "erlang_a"]
MODELS: tuple[str, ...] = ("erlang_c", "erlang_a")

_TOL = 1e-12  # slack on the SL and occupancy comparisons (floating-point noise)
_LOG_EPS = math.log(1e-17)  # series tails below this share of the total are dropped
_BLOCK = 64  # series terms evaluated per numpy step
_MAX_TERMS = 50_000_000  # safety stop for the Erlang A series

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class StaffingInputError(ValueError):
    """An input to the staffing maths is out of range.

    ``parameter`` names the argument, ``problem`` says what is wrong with it and ``fix``
    what to pass instead, so a command line can re-word the message with its own option
    names.
    """

    def __init__(self, parameter: str, problem: str, fix: str) -> None:
        self.parameter = parameter
        self.problem = problem
        self.fix = fix
        super().__init__(f"{parameter} {problem}; {fix}")


@dataclass(frozen=True)
class QueueMetrics:
    """Queue measures for given agents, one element per interval."""

    traffic: FloatArray  # offered traffic in Erlangs (after concurrency)
    service_level: FloatArray  # share answered within T (see module docstring)
    asa_s: FloatArray  # average speed of answer of answered contacts, seconds
    occupancy: FloatArray  # busy share of agents' time
    p_wait: FloatArray  # share of arrivals that have to wait
    p_abandon: FloatArray  # share of arrivals that hang up (0 for Erlang C)


@dataclass(frozen=True)
class StaffingResult:
    """Required agents and the queue measures at that staffing, one element per interval."""

    model: str
    required_agents: IntArray  # agents on the floor (logged in, available)
    required_headcount: IntArray  # ceil(required_agents / (1 - shrinkage))
    traffic: FloatArray
    service_level: FloatArray
    asa_s: FloatArray
    occupancy: FloatArray
    p_wait: FloatArray
    p_abandon: FloatArray

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (scalars for 0-d results, lists otherwise), e.g. for JSON."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
        return out


# --------------------------------------------------------------------------- validation


def _check(
    name: str,
    ok: NDArray[np.bool_] | None,
    problem: str,
    fix: str,
    arr: FloatArray,
) -> None:
    if ok is None or bool(np.all(ok)):
        return
    bad = arr[~ok] if arr.ndim else arr
    got = np.ravel(bad)[0]
    raise StaffingInputError(name, f"{problem} (got {got:g})", fix)


def _float_array(name: str, value: ArrayLike, fix: str) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StaffingInputError(name, f"must be a number or an array of numbers ({exc})", fix) from exc
    if not np.all(np.isfinite(arr)):
        raise StaffingInputError(name, "must be finite (got NaN or infinity)", fix)
    return arr


def _validated(
    volume: ArrayLike,
    interval_s: ArrayLike,
    aht_s: ArrayLike,
    sl_seconds: ArrayLike,
    concurrency: ArrayLike,
    patience_s: ArrayLike | None,
) -> dict[str, FloatArray]:
    v = _float_array("volume", volume, "pass contacts per interval, 0 or more")
    _check("volume", v >= 0, "must be >= 0", "pass contacts per interval, 0 or more", v)
    i = _float_array("interval_s", interval_s, "pass the interval length in seconds, e.g. 1800")
    _check(
        "interval_s",
        i > 0,
        "must be > 0",
        "pass the interval length in seconds, e.g. 1800",
        i,
    )
    a = _float_array("aht_s", aht_s, "pass the average handle time in seconds, e.g. 180")
    _check("aht_s", a > 0, "must be > 0", "pass the average handle time in seconds, e.g. 180", a)
    t = _float_array("sl_seconds", sl_seconds, "pass the service-level threshold in seconds")
    _check(
        "sl_seconds",
        t >= 0,
        "must be >= 0",
        "pass the service-level threshold in seconds, e.g. 20",
        t,
    )
    c = _float_array("concurrency", concurrency, "pass contacts an agent handles at once, >= 1")
    _check(
        "concurrency",
        c >= 1,
        "must be >= 1",
        "pass the number of contacts an agent handles at once (1 for voice, e.g. 2-3 for chat)",
        c,
    )
    out = {"volume": v, "interval_s": i, "aht_s": a, "sl_seconds": t, "concurrency": c}
    if patience_s is not None:
        p = _float_array("patience_s", patience_s, "pass the mean patience in seconds")
        _check(
            "patience_s",
            p > 0,
            "must be > 0",
            "pass the mean time callers wait before hanging up, in seconds, e.g. 300",
            p,
        )
        out["patience_s"] = p
    return out


def _validated_targets(
    sl_target: ArrayLike, max_occupancy: ArrayLike, shrinkage: ArrayLike
) -> dict[str, FloatArray]:
    s = _float_array("sl_target", sl_target, "pass a share in (0, 1], e.g. 0.8 for 80 %")
    _check(
        "sl_target",
        (s > 0) & (s <= 1),
        "must be in (0, 1]",
        "pass a share, e.g. 0.8 for 80 %, not a percentage",
        s,
    )
    o = _float_array("max_occupancy", max_occupancy, "pass a share in (0, 1], e.g. 0.85")
    _check(
        "max_occupancy",
        (o > 0) & (o <= 1),
        "must be in (0, 1]",
        "pass a share, e.g. 0.85, or 1 for no occupancy cap",
        o,
    )
    k = _float_array("shrinkage", shrinkage, "pass a share in [0, 1), e.g. 0.3")
    _check(
        "shrinkage",
        (k >= 0) & (k < 1),
        "must be in [0, 1)",
        "pass the share of paid time not on the floor, e.g. 0.3 for 30 %",
        k,
    )
    return {"sl_target": s, "max_occupancy": o, "shrinkage": k}


def _validated_agents(agents: ArrayLike) -> FloatArray:
    fix = "pass a whole number of agents, 0 or more"
    n = _float_array("agents", agents, fix)
    _check("agents", (n >= 0) & (n == np.floor(n)), "must be a whole number >= 0", fix, n)
    return n


def _check_model(model: str, patience_s: ArrayLike | None) -> None:
    if model not in MODELS:
        raise StaffingInputError(
            "model",
            f"must be 'erlang_c' or 'erlang_a' (got {model!r})",
            "pick 'erlang_c' (nobody hangs up) or 'erlang_a' (callers hang up; needs a patience)",
        )
    if model == "erlang_a" and patience_s is None:
        raise StaffingInputError(
            "patience_s",
            "is required by model='erlang_a'",
            "pass the mean time callers wait before hanging up, in seconds, e.g. 300",
        )


# ------------------------------------------------------------------------------ Erlang B


def _erlang_b_flat(traffic: FloatArray, agents: IntArray) -> FloatArray:
    """Erlang B for 1-d arrays, one pass of the recursion up to max(agents)."""
    out = np.ones_like(traffic)
    if traffic.size == 0:
        return out
    order = np.argsort(agents, kind="stable")
    n_sorted = agents[order]
    a = traffic[order]
    b = np.ones_like(a)
    for n in range(1, int(n_sorted[-1]) + 1):
        k = int(np.searchsorted(n_sorted, n, side="left"))  # entries with agents >= n
        ab = a[k:] * b[k:]
        b[k:] = ab / (n + ab)
    out[order] = b
    return out


def erlang_b(traffic: ArrayLike, agents: ArrayLike) -> FloatArray:
    """Blocking probability of an M/M/N/N system (Erlang B), broadcast over the inputs."""
    a = _float_array("traffic", traffic, "pass offered traffic in Erlangs, 0 or more")
    _check("traffic", a >= 0, "must be >= 0", "pass offered traffic in Erlangs", a)
    n = _validated_agents(agents)
    a, n = np.broadcast_arrays(a, n)
    return _erlang_b_flat(a.ravel(), n.ravel().astype(np.int64)).reshape(a.shape)


# ------------------------------------------------------------------------------ Erlang C


def _erlang_c_flat(
    traffic: FloatArray, agents: FloatArray, b: FloatArray, t: FloatArray, aht: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """P(wait), SL, ASA, occupancy from Erlang B, with the N <= A and A = 0 conventions."""
    a, n = traffic, agents
    stable = n > a
    gap = np.where(stable, n - a, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_wait = np.where(stable, n * b / (n - a * (1.0 - b)), 1.0)
        sl = np.where(stable, 1.0 - p_wait * np.exp(-gap * t / aht), 0.0)
        asa = np.where(stable, p_wait * aht / gap, np.inf)
        occ = np.where(stable, a / np.where(n > 0, n, 1.0), 1.0)
    zero = a == 0
    p_wait = np.where(zero, 0.0, p_wait)
    sl = np.clip(np.where(zero, 1.0, sl), 0.0, 1.0)
    asa = np.where(zero, 0.0, asa)
    occ = np.where(zero, 0.0, occ)
    return p_wait, sl, asa, occ


def _erlang_c_required_flat(
    traffic: FloatArray, t: FloatArray, aht: FloatArray, target: FloatArray, max_occ: FloatArray
) -> tuple[IntArray, FloatArray]:
    """Smallest N per interval (Erlang C) and Erlang B at that N: one upward scan for all."""
    size = traffic.size
    required = np.zeros(size, dtype=np.int64)
    b_at = np.ones(size)
    idx = np.flatnonzero(traffic > 0)
    a, tt, ah, tg, mo = traffic[idx], t[idx], aht[idx], target[idx], max_occ[idx]
    b = np.ones(idx.size)
    n = 0
    while idx.size:
        n += 1
        ab = a * b
        b = ab / (n + ab)
        stable = n > a
        gap = np.where(stable, n - a, 1.0)
        p_wait = n * b / np.where(stable, n - a * (1.0 - b), 1.0)
        sl = 1.0 - p_wait * np.exp(-gap * tt / ah)
        done = stable & (sl >= tg - _TOL) & (a / n <= mo + _TOL)
        if done.any():
            required[idx[done]] = n
            b_at[idx[done]] = b[done]
            keep = ~done
            idx, a, tt, ah, tg, mo, b = (
                idx[keep],
                a[keep],
                tt[keep],
                ah[keep],
                tg[keep],
                mo[keep],
                b[keep],
            )
    return required, b_at


def erlang_c_metrics(
    volume: ArrayLike,
    interval_s: ArrayLike,
    aht_s: ArrayLike,
    agents: ArrayLike,
    sl_seconds: ArrayLike,
    concurrency: ArrayLike = 1.0,
) -> QueueMetrics:
    """Erlang C measures for a given number of agents per interval (broadcast)."""
    p = _validated(volume, interval_s, aht_s, sl_seconds, concurrency, None)
    n = _validated_agents(agents)
    v, i, h, t, c, n = np.broadcast_arrays(
        p["volume"], p["interval_s"], p["aht_s"], p["sl_seconds"], p["concurrency"], n
    )
    shape = v.shape
    v, i, h, t, c, n = (x.ravel() for x in (v, i, h, t, c, n))
    aht = h / c
    traffic = v * aht / i
    b = _erlang_b_flat(traffic, n.astype(np.int64))
    p_wait, sl, asa, occ = _erlang_c_flat(traffic, n, b, t, aht)
    return QueueMetrics(*(x.reshape(shape) for x in (traffic, sl, asa, occ, p_wait, np.zeros_like(traffic))))


# ------------------------------------------------------------------------------ Erlang A


def _logsumexp_rows(x: FloatArray) -> FloatArray:
    m = np.max(x, axis=1)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(x - safe[:, None]), axis=1))


def _series(x: FloatArray, v: FloatArray, with_asa: bool) -> dict[str, FloatArray]:
    """Log of the Erlang A sums over the waiting states, for 1-d arrays ``x``, ``v``.

    With ``t_j = v^j / Π_{k=1..j} (x + k)`` (``t_0 = 1``; for ``v = λ/θ`` and
    ``x = Nμ/θ`` these are the ``ρ_j`` of the chain):

    - ``s0 = Σ_j t_j`` and ``s1 = Σ_j v^j / Π_{k=1..j} (x + 1 + k)``,
    - ``sm = Σ_{m≥1} m·t_{m-1} / (x + m)`` (``= Σ_m m·t_m / v``),
    - ``asa = Σ_j t_j · x/(x+j+1) · Σ_{i≤j} 1/(x+i+1)`` (only when ``with_asa``).

    Terms are accumulated in log space block by block; an entry stops once the ratio of
    successive terms is below 1 and the geometric bound on the (j+1)-weighted tail is
    below 1e-17 of ``s0``.
    """
    size = x.size
    log_v = np.full(size, -np.inf)
    np.log(v, out=log_v, where=v > 0)
    res = {
        "s0": np.zeros(size),
        "s1": np.zeros(size),
        "sm": np.full(size, -np.inf),
    }
    if with_asa:
        cum0 = 1.0 / (x + 1.0)
        res["asa"] = np.log(x / (x + 1.0) * cum0)
    # running state of the active entries
    idx = np.arange(size)
    xa, lva = x, log_v
    lt0 = np.zeros(size)  # log t_j at the end of the previous block
    lt1 = np.zeros(size)
    cum = 1.0 / (x + 1.0) if with_asa else None
    j0 = 0
    while idx.size:
        if j0 > _MAX_TERMS:
            raise RuntimeError("Erlang A series did not converge; check patience_s and volume")
        j = np.arange(j0 + 1, j0 + _BLOCK + 1, dtype=np.float64)
        xj = xa[:, None] + j[None, :]
        log_xj = np.log(xj)
        with np.errstate(invalid="ignore"):
            blk0 = lt0[:, None] + np.cumsum(lva[:, None] - log_xj, axis=1)
            blk1 = lt1[:, None] + np.cumsum(lva[:, None] - np.log(xj + 1.0), axis=1)
        prev = np.concatenate([lt0[:, None], blk0[:, :-1]], axis=1)  # log t_{j-1}
        blkm = np.log(j)[None, :] + prev - log_xj
        res["s0"][idx] = np.logaddexp(res["s0"][idx], _logsumexp_rows(blk0))
        res["s1"][idx] = np.logaddexp(res["s1"][idx], _logsumexp_rows(blk1))
        res["sm"][idx] = np.logaddexp(res["sm"][idx], _logsumexp_rows(blkm))
        if with_asa:
            cums = cum[:, None] + np.cumsum(1.0 / (xj + 1.0), axis=1)
            blka = blk0 + np.log(xa[:, None] / (xj + 1.0) * cums)
            res["asa"][idx] = np.logaddexp(res["asa"][idx], _logsumexp_rows(blka))
            cum = cums[:, -1]
        lt0, lt1 = blk0[:, -1], blk1[:, -1]
        j_last = j0 + _BLOCK
        # ratio of the next terms, and a bound on Σ_{k≥1} (J+k+1) t_{J+k}
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.exp(lva - np.log(xa + j_last + 1.0))
            tail = lt0 + np.log(r) + np.log((j_last + 1.0) / (1.0 - r) + 1.0 / (1.0 - r) ** 2)
        done = (r < 1.0) & (tail < res["s0"][idx] + _LOG_EPS)
        done |= np.isneginf(lt0)  # v = 0: only t_0
        keep = ~done
        idx, xa, lva, lt0, lt1 = idx[keep], xa[keep], lva[keep], lt0[keep], lt1[keep]
        if with_asa:
            cum = cum[keep]
        j0 = j_last
    return res


def _erlang_a_flat(
    lam: FloatArray,
    aht: FloatArray,
    agents: FloatArray,
    t: FloatArray,
    patience: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """P(wait), SL, ASA, occupancy, P(abandon) of M/M/N+M for 1-d arrays."""
    size = lam.size
    traffic = lam * aht
    p_wait = np.zeros(size)
    sl = np.ones(size)
    asa = np.zeros(size)
    occ = np.zeros(size)
    p_ab = np.zeros(size)
    # nobody on the floor: everybody waits and hangs up
    empty = (lam > 0) & (agents == 0)
    p_wait[empty], sl[empty], asa[empty], occ[empty], p_ab[empty] = 1.0, 0.0, np.inf, 1.0, 1.0
    k = np.flatnonzero((lam > 0) & (agents > 0))
    if k.size == 0:
        return p_wait, sl, asa, occ, p_ab
    lm, ah, n, tt, pt = lam[k], aht[k], agents[k], t[k], patience[k]
    theta = 1.0 / pt
    mu_n = n / ah  # service rate of the whole floor when all agents are busy
    x = mu_n * pt
    y = lm * pt
    b = _erlang_b_flat(traffic[k], n.astype(np.int64))
    at_y = _series(x, y, with_asa=True)
    at_t = _series(x, y * np.exp(-theta * tt), with_asa=False)
    with np.errstate(divide="ignore", over="ignore"):
        log_c = np.log1p(-b) - np.log(b)  # (1 - B) / B, +inf when B underflows
        log_den = np.logaddexp(log_c, at_y["s0"])  # π_N = 1 / den
        pw = np.exp(at_y["s0"] - log_den)
        pa = np.minimum(np.exp(at_y["sm"] - log_den), 1.0)
        served = 1.0 - pa
        log_e = -(mu_n + theta) * tt - y * np.expm1(-theta * tt)
        served_after = np.exp(np.log(x / (x + 1.0)) + log_e + at_t["s1"] - log_den)
        abandon_after = np.exp(log_e + at_t["sm"] - log_den)
        within = np.clip(served - served_after, 0.0, None)
        p_wait[k] = pw
        p_ab[k] = pa
        sl[k] = np.clip(within / (served + abandon_after), 0.0, 1.0)
        asa[k] = np.exp(at_y["asa"] - log_den) * pt / served
        occ[k] = np.minimum(traffic[k] * served / n, 1.0)
    return p_wait, sl, asa, occ, p_ab


def erlang_a_metrics(
    volume: ArrayLike,
    interval_s: ArrayLike,
    aht_s: ArrayLike,
    agents: ArrayLike,
    sl_seconds: ArrayLike,
    patience_s: ArrayLike,
    concurrency: ArrayLike = 1.0,
) -> QueueMetrics:
    """Erlang A (M/M/N+M) measures for a given number of agents per interval (broadcast).

    ``service_level`` is the share answered within ``sl_seconds`` among arrivals that did
    not hang up within ``sl_seconds``; ``asa_s`` is the mean wait of answered contacts.
    """
    p = _validated(volume, interval_s, aht_s, sl_seconds, concurrency, patience_s)
    n = _validated_agents(agents)
    v, i, h, t, c, pt, n = np.broadcast_arrays(
        p["volume"],
        p["interval_s"],
        p["aht_s"],
        p["sl_seconds"],
        p["concurrency"],
        p["patience_s"],
        n,
    )
    shape = v.shape
    v, i, h, t, c, pt, n = (x.ravel() for x in (v, i, h, t, c, pt, n))
    aht = h / c
    lam = v / i
    p_wait, sl, asa, occ, p_ab = _erlang_a_flat(lam, aht, n, t, pt)
    return QueueMetrics(*(x.reshape(shape) for x in (lam * aht, sl, asa, occ, p_wait, p_ab)))


def _erlang_a_required_flat(
    lam: FloatArray,
    aht: FloatArray,
    t: FloatArray,
    patience: FloatArray,
    target: FloatArray,
    max_occ: FloatArray,
    upper: IntArray,
) -> IntArray:
    """Smallest feasible N below the Erlang C answer ``upper``: gallop down, then bisect."""
    hi = upper.copy()  # feasible
    lo = np.full(hi.size, -1, dtype=np.int64)  # infeasible; -1 while not yet found
    step = np.ones(hi.size, dtype=np.int64)
    active = hi > 1
    while True:
        idx = np.flatnonzero(active)
        if idx.size == 0:
            return hi
        gallop = lo[idx] < 0
        cand = np.where(gallop, np.maximum(hi[idx] - step[idx], 1), (lo[idx] + hi[idx]) // 2)
        p_wait, sl, asa, occ, p_ab = _erlang_a_flat(
            lam[idx], aht[idx], cand.astype(np.float64), t[idx], patience[idx]
        )
        ok = (sl >= target[idx] - _TOL) & (occ <= max_occ[idx] + _TOL)
        hi[idx[ok]] = cand[ok]
        step[idx[ok & gallop]] *= 2
        lo[idx[~ok]] = cand[~ok]
        active[idx] = (hi[idx] > 1) & ((lo[idx] < 0) | (hi[idx] - lo[idx] > 1))


# ------------------------------------------------------------------------- required agents


def required_agents(
    volume: ArrayLike,
    interval_s: ArrayLike,
    aht_s: ArrayLike,
    sl_target: ArrayLike,
    sl_seconds: ArrayLike,
    max_occupancy: ArrayLike = 0.85,
    shrinkage: ArrayLike = 0.3,
    concurrency: ArrayLike = 1.0,
    model: Model | str = "erlang_c",
    patience_s: ArrayLike | None = None,
) -> StaffingResult:
    """Agents needed per interval to answer ``sl_target`` of contacts within ``sl_seconds``.

    All numeric arguments broadcast (one element per interval). ``volume`` is contacts in
    an interval of ``interval_s`` seconds, ``aht_s`` the average handle time, ``shrinkage``
    the share of paid time not on the floor, ``concurrency`` the contacts an agent works at
    once (effective AHT = AHT / concurrency). ``model`` is ``"erlang_c"`` or ``"erlang_a"``
    (which needs ``patience_s``, the callers' mean patience; ignored by Erlang C).

    Raises ``StaffingInputError`` (a ``ValueError``) naming the bad argument and the fix.
    """
    _check_model(model, patience_s)
    p = _validated(
        volume,
        interval_s,
        aht_s,
        sl_seconds,
        concurrency,
        patience_s if model == "erlang_a" else None,
    )
    g = _validated_targets(sl_target, max_occupancy, shrinkage)
    names = ["volume", "interval_s", "aht_s", "sl_seconds", "concurrency"]
    if model == "erlang_a":
        names.append("patience_s")
    arrays = np.broadcast_arrays(*(p[k] for k in names), g["sl_target"], g["max_occupancy"], g["shrinkage"])
    shape = arrays[0].shape
    flat = dict(
        zip(
            [*names, "sl_target", "max_occupancy", "shrinkage"],
            (a.ravel() for a in arrays),
            strict=True,
        )
    )
    aht = flat["aht_s"] / flat["concurrency"]
    traffic = flat["volume"] * aht / flat["interval_s"]
    t = flat["sl_seconds"]
    n_c, b = _erlang_c_required_flat(traffic, t, aht, flat["sl_target"], flat["max_occupancy"])
    if model == "erlang_c":
        n = n_c
        p_wait, sl, asa, occ = _erlang_c_flat(traffic, n.astype(np.float64), b, t, aht)
        p_ab = np.zeros_like(traffic)
    else:
        lam = flat["volume"] / flat["interval_s"]
        n = _erlang_a_required_flat(
            lam, aht, t, flat["patience_s"], flat["sl_target"], flat["max_occupancy"], n_c
        )
        p_wait, sl, asa, occ, p_ab = _erlang_a_flat(lam, aht, n.astype(np.float64), t, flat["patience_s"])
    # round away float noise first: 14 / (1 - 0.3) is 20.000000000000004, not 21 agents
    headcount = np.ceil(np.round(n / (1.0 - flat["shrinkage"]), 9)).astype(np.int64)
    return StaffingResult(
        model=model,
        required_agents=n.reshape(shape),
        required_headcount=headcount.reshape(shape),
        traffic=traffic.reshape(shape),
        service_level=sl.reshape(shape),
        asa_s=asa.reshape(shape),
        occupancy=occ.reshape(shape),
        p_wait=p_wait.reshape(shape),
        p_abandon=p_ab.reshape(shape),
    )


__all__ = [
    "MODELS",
    "Model",
    "QueueMetrics",
    "StaffingInputError",
    "StaffingResult",
    "erlang_a_metrics",
    "erlang_b",
    "erlang_c_metrics",
    "required_agents",
]
