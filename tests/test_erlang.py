"""Erlang C / Erlang A staffing maths (`forecasting.erlang`) and `csw staffing erlang`.

References are independent of the module: Erlang C by exact rational factorial sums
(`fractions`), Erlang A by an explicit truncated birth-death chain with the tagged
caller's absorbing chain solved by linear algebra and uniformization.
"""

from __future__ import annotations

import json
import math
import random
import shlex
import time
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from forecasting.cli import staffing_app
from forecasting.erlang import (
    StaffingInputError,
    erlang_a_metrics,
    erlang_b,
    erlang_c_metrics,
    required_agents,
)

# ---------------------------------------------------------------------------- references


def ref_erlang_c(volume: int, interval_s: int, aht_s: int, n: int, t: float) -> dict:
    """Erlang C with exact rational sums of A^k / k! (slow, small N only)."""
    a = Fraction(volume * aht_s, interval_s)
    if n <= a:
        return {"p_wait": 1.0, "service_level": 0.0, "occupancy": 1.0}
    terms = [Fraction(1)]
    for k in range(1, n + 1):
        terms.append(terms[-1] * a / k)
    top = terms[n] * Fraction(n) / (n - a)
    p_wait = top / (sum(terms[:n]) + top)
    sl = 1.0 - float(p_wait) * math.exp(-float(n - a) * t / aht_s)
    return {
        "p_wait": float(p_wait),
        "service_level": sl,
        "asa_s": float(p_wait * aht_s / (n - a)),
        "occupancy": float(a / n),
    }


def ref_required_c(volume, interval_s, aht_s, target, t, max_occ) -> int:
    if volume == 0:
        return 0
    n = 1
    while True:
        m = ref_erlang_c(volume, interval_s, aht_s, n, t)
        if m["service_level"] >= target and m["occupancy"] <= max_occ and m["p_wait"] < 1:
            return n
        n += 1


def ref_erlang_a(volume, interval_s, aht_s, n, t, patience, k_max=300) -> dict:
    """M/M/N+M by brute force: truncated chain, tagged caller's absorbing chain."""
    lam, mu, th = volume / interval_s, 1.0 / aht_s, 1.0 / patience
    a = n * mu
    logw = [k * math.log(lam / mu) - math.lgamma(k + 1) for k in range(n + 1)]
    for j in range(1, k_max + 1):
        logw.append(logw[-1] + math.log(lam / (a + j * th)))
    pi = np.exp(np.array(logw) - max(logw))
    pi /= pi.sum()
    q = pi[n:]  # an arrival finds j = 0..k_max callers waiting
    m = k_max + 1
    gen = np.zeros((m, m))  # stage j = callers ahead of the tagged caller
    served = np.zeros(m)
    served[0] = a
    abandon = np.full(m, th)
    for j in range(m):
        gen[j, j] = -(a + (j + 1) * th)
        if j:
            gen[j, j - 1] = a + j * th
    p_served = np.linalg.solve(-gen, served)
    wait_served = np.linalg.solve(-gen, p_served)  # E[wait; answered]
    rate = a + (m + 1) * th  # uniformization: absorbed by time t
    step = np.eye(m) + gen / rate
    by_t_s, by_t_a = np.zeros(m), np.zeros(m)
    g_s, g_a = np.zeros(m), np.zeros(m)
    lt = rate * t
    log_w = -lt
    for k in range(int(lt + 12 * math.sqrt(lt) + 30)):
        by_t_s += math.exp(log_w) * g_s
        by_t_a += math.exp(log_w) * g_a
        g_s = served / rate + step @ g_s
        g_a = abandon / rate + step @ g_a
        log_w += math.log(lt) - math.log(k + 1) if lt > 0 else -math.inf
    p_wait = float(q.sum())
    p_ab = float(q @ (1 - p_served))
    return {
        "p_wait": p_wait,
        "p_abandon": p_ab,
        "service_level": (1 - p_wait + float(q @ by_t_s)) / (1 - float(q @ by_t_a)),
        "asa_s": float(q @ wait_served) / (1 - p_ab),
        "occupancy": lam * aht_s * (1 - p_ab) / n,
    }


# ----------------------------------------------------------------------------- Erlang C


def test_published_calculator_case():
    r = required_agents(100, 1800, 180, 0.8, 20, max_occupancy=0.85, shrinkage=0.30)
    assert int(r.required_agents) == 14
    assert int(r.required_headcount) == 20  # 14 / 0.7 is 20.000000000000004 in floats
    assert float(r.service_level) == pytest.approx(0.888, abs=5e-4)
    assert float(r.traffic) == pytest.approx(10.0)
    assert float(r.occupancy) == pytest.approx(10 / 14)
    assert float(r.p_abandon) == 0.0
    below = erlang_c_metrics(100, 1800, 180, 13, 20)
    assert float(below.service_level) < 0.8


def test_erlang_c_matches_exact_fraction_reference():
    rnd = random.Random(20240618)
    cases = []
    for _ in range(50):
        interval = rnd.choice([900, 1800, 3600])
        aht = rnd.randint(30, 600)
        # keep the traffic under ~25 Erlangs so the rational reference stays quick
        volume = rnd.randint(0, max(1, int(25 * interval / aht)))
        cases.append(
            (
                volume,
                interval,
                aht,
                rnd.uniform(0.5, 0.95),
                rnd.choice([0, 10, 20, 30, 60]),
                rnd.uniform(0.7, 1.0),
            )
        )
    vol, interval, aht, target, t, occ = (np.array(c, dtype=float) for c in zip(*cases, strict=True))
    got = required_agents(vol, interval, aht, target, t, max_occupancy=occ, shrinkage=0.0)
    for i, (v, iv, h, tg, tt, mo) in enumerate(cases):
        n = ref_required_c(v, iv, h, tg, tt, mo)
        assert got.required_agents[i] == n, cases[i]
        if n:
            ref = ref_erlang_c(v, iv, h, n, tt)
            for key in ("p_wait", "service_level", "asa_s", "occupancy"):
                assert getattr(got, key)[i] == pytest.approx(ref[key], rel=1e-9, abs=1e-12)
            # and the metrics function at N - 1 (possibly unstable) agrees too
            m = erlang_c_metrics(v, iv, h, n - 1, tt)
            ref = ref_erlang_c(v, iv, h, n - 1, tt)
            assert float(m.p_wait) == pytest.approx(ref["p_wait"], rel=1e-9)
            assert float(m.service_level) == pytest.approx(ref["service_level"], abs=1e-12)


def test_erlang_b_recursion_against_factorials():
    for a, n in [(0.5, 1), (3.0, 5), (10.0, 14), (20.0, 30)]:
        ref = (a**n / math.factorial(n)) / sum(a**k / math.factorial(k) for k in range(n + 1))
        assert float(erlang_b(a, n)) == pytest.approx(ref, rel=1e-12)
    assert float(erlang_b(5.0, 0)) == 1.0


def test_thousands_of_agents_without_overflow():
    # 2 000 and 6 000 Erlangs; no occupancy cap so the SL decides
    r = required_agents([20_000, 60_000], 1800, 180, 0.9, 20, max_occupancy=1.0)
    assert np.all(r.required_agents > 2000)
    for arr in (r.service_level, r.asa_s, r.occupancy, r.p_wait):
        assert np.all(np.isfinite(arr))
    assert np.all(r.service_level >= 0.9)
    below = erlang_c_metrics([20_000, 60_000], 1800, 180, r.required_agents - 1, 20)
    assert np.all(below.service_level < 0.9)
    b = erlang_b([1000.0, 5000.0], [1200, 5000])
    assert np.all(np.isfinite(b)) and np.all((b > 0) & (b < 1))
    ra = required_agents(
        [20_000, 60_000], 1800, 180, 0.9, 20, max_occupancy=1.0, model="erlang_a", patience_s=120
    )
    assert np.all(np.isfinite(ra.service_level)) and np.all(ra.service_level >= 0.9)
    assert np.all(ra.required_agents <= r.required_agents)


def test_zero_volume_and_broadcasting():
    vol = np.array([[0, 50, 100], [0, 200, 400]])
    r = required_agents(vol, 1800, 180, 0.8, 20)
    assert r.required_agents.shape == (2, 3)
    assert r.required_agents[0, 0] == 0 and r.required_headcount[1, 0] == 0
    assert r.service_level[0, 0] == 1.0 and r.asa_s[0, 0] == 0.0 and r.occupancy[0, 0] == 0.0
    assert np.all(np.diff(r.required_agents, axis=1) > 0)
    ra = required_agents(vol, 1800, 180, 0.8, 20, model="erlang_a", patience_s=200)
    assert ra.required_agents[0, 0] == 0 and ra.p_abandon[0, 0] == 0.0
    assert json.dumps(r.to_dict())  # plain Python values


def test_concurrency_halves_the_traffic():
    one = required_agents(200, 1800, 600, 0.8, 30, concurrency=1)
    two = required_agents(200, 1800, 600, 0.8, 30, concurrency=2)
    assert float(two.traffic) == pytest.approx(float(one.traffic) / 2)
    half_aht = required_agents(200, 1800, 300, 0.8, 30)
    assert int(two.required_agents) == int(half_aht.required_agents)
    assert int(two.required_agents) < int(one.required_agents)


def test_ten_thousand_intervals_are_fast():
    rng = np.random.default_rng(7)
    vol = rng.integers(0, 500, 10_000)
    aht = rng.uniform(120, 600, 10_000)
    start = time.perf_counter()
    r = required_agents(vol, 1800, aht, 0.8, 20)
    elapsed_c = time.perf_counter() - start
    start = time.perf_counter()
    ra = required_agents(vol, 1800, aht, 0.8, 20, model="erlang_a", patience_s=180)
    elapsed_a = time.perf_counter() - start
    assert elapsed_c < 1.0, elapsed_c
    assert elapsed_a < 5.0, elapsed_a
    assert np.all(ra.required_agents <= r.required_agents)
    assert np.all(r.service_level[vol > 0] >= 0.8 - 1e-12)


# ----------------------------------------------------------------------------- Erlang A


@pytest.mark.parametrize(
    "case",
    [
        (100, 1800, 180, 12, 20, 120),
        (100, 1800, 180, 8, 20, 60),  # overloaded: fewer agents than Erlangs
        (300, 1800, 240, 30, 30, 200),
        (50, 900, 300, 5, 60, 40),
        (100, 1800, 180, 14, 0, 300),
        (20, 1800, 600, 3, 120, 900),
    ],
)
def test_erlang_a_matches_brute_force_chain(case):
    ref = ref_erlang_a(*case)
    got = erlang_a_metrics(*case)
    for key, value in ref.items():
        assert float(getattr(got, key)) == pytest.approx(value, rel=1e-8, abs=1e-11), key


def test_erlang_a_needs_no_more_agents_than_erlang_c():
    rng = np.random.default_rng(11)
    n = 300
    args = dict(
        volume=rng.integers(1, 400, n),
        interval_s=1800,
        aht_s=rng.uniform(60, 600, n),
        sl_target=rng.uniform(0.5, 0.95, n),
        sl_seconds=rng.choice([0, 10, 20, 60], n),
        max_occupancy=rng.uniform(0.7, 1.0, n),
    )
    patience = rng.uniform(10, 2000, n)
    c = required_agents(**args)
    a = required_agents(**args, model="erlang_a", patience_s=patience)
    assert np.all(a.required_agents <= c.required_agents)
    assert np.all(a.required_agents >= 1)
    assert np.all(a.service_level >= args["sl_target"] - 1e-12)
    assert np.all(a.occupancy <= args["max_occupancy"] + 1e-12)
    # the search found the smallest: one agent fewer fails the target or the cap
    fewer = erlang_a_metrics(
        args["volume"], 1800, args["aht_s"], a.required_agents - 1, args["sl_seconds"], patience
    )
    fails = (fewer.service_level < args["sl_target"]) | (fewer.occupancy > args["max_occupancy"])
    assert np.all(fails)


def test_erlang_a_converges_to_erlang_c_as_patience_grows():
    c = required_agents(100, 1800, 180, 0.8, 20, max_occupancy=1.0)
    previous = 0
    for patience in (30, 300, 3_000, 30_000, 1e6, 1e9):
        a = required_agents(100, 1800, 180, 0.8, 20, max_occupancy=1.0, model="erlang_a", patience_s=patience)
        assert previous <= int(a.required_agents) <= int(c.required_agents)
        previous = int(a.required_agents)
    assert previous == int(c.required_agents)
    agents = np.arange(11, 20)
    mc = erlang_c_metrics(100, 1800, 180, agents, 20)
    ma = erlang_a_metrics(100, 1800, 180, agents, 20, patience_s=1e9)
    for key in ("service_level", "asa_s", "occupancy", "p_wait"):
        np.testing.assert_allclose(getattr(ma, key), getattr(mc, key), rtol=1e-5)
    assert np.all(ma.p_abandon < 1e-6)


def test_erlang_a_edge_cases():
    m = erlang_a_metrics([0, 100], 1800, 180, [0, 0], 20, patience_s=60)
    assert m.service_level.tolist() == [1.0, 0.0]
    assert m.p_abandon.tolist() == [0.0, 1.0]
    # many agents for a trickle: nobody waits, Erlang B underflows to 0 without NaN
    m = erlang_a_metrics(1, 1800, 180, 400, 20, patience_s=60)
    assert float(m.p_wait) == 0.0 and float(m.service_level) == 1.0


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"volume": -1}, "volume must be >= 0"),
        ({"volume": [1, float("nan")]}, "volume must be finite"),
        ({"interval_s": 0}, "interval_s must be > 0"),
        ({"aht_s": 0}, "aht_s must be > 0"),
        ({"sl_target": 80}, "not a percentage"),
        ({"sl_target": 0}, "sl_target must be in (0, 1]"),
        ({"sl_seconds": -5}, "sl_seconds must be >= 0"),
        ({"max_occupancy": 1.2}, "max_occupancy must be in (0, 1]"),
        ({"shrinkage": 1.0}, "shrinkage must be in [0, 1)"),
        ({"concurrency": 0.5}, "concurrency must be >= 1"),
        ({"model": "erlang_x"}, "model must be 'erlang_c' or 'erlang_a'"),
        ({"model": "erlang_a"}, "patience_s is required"),
        ({"model": "erlang_a", "patience_s": 0}, "patience_s must be > 0"),
        ({"volume": "lots"}, "volume must be a number"),
    ],
)
def test_bad_input_names_problem_and_fix(kwargs, fragment):
    args = {
        "volume": 100,
        "interval_s": 1800,
        "aht_s": 180,
        "sl_target": 0.8,
        "sl_seconds": 20,
    } | kwargs
    with pytest.raises(ValueError) as info:
        required_agents(**args)
    assert isinstance(info.value, StaffingInputError)
    assert fragment in str(info.value)
    assert "; " in str(info.value)  # problem; fix


def test_bad_agents():
    with pytest.raises(StaffingInputError, match="whole number"):
        erlang_c_metrics(100, 1800, 180, 12.5, 20)


# ----------------------------------------------------------------------------------- CLI

runner = CliRunner()
BASE = shlex.split(
    "erlang --volume 100 --interval-minutes 30 --aht-seconds 180 --sl-target 0.8 "
    "--sl-seconds 20 --max-occupancy 0.85 --shrinkage 0.3"
)


def test_cli_json():
    res = runner.invoke(staffing_app, [*BASE, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["required_agents"] == 14 and out["required_headcount"] == 20
    assert out["service_level"] == pytest.approx(0.888, abs=5e-4)
    assert out["model"] == "erlang_c" and out["inputs"]["interval_minutes"] == 30


def test_cli_erlang_a_and_concurrency():
    res = runner.invoke(
        staffing_app,
        [*BASE, "--model", "erlang_a", "--patience-seconds", "300", "--concurrency", "2", "--json"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["traffic"] == pytest.approx(5.0)
    assert 0 < out["p_abandon"] < 0.1 and out["required_agents"] <= 8
    table = runner.invoke(staffing_app, [*BASE, "--model", "erlang_a", "--patience-seconds", "300"])
    assert table.exit_code == 0
    assert "Abandonment" in table.stdout and "Required agents" in table.stdout


def test_cli_table():
    res = runner.invoke(staffing_app, BASE)
    assert res.exit_code == 0
    assert "14" in res.stdout and "20" in res.stdout and "88.8%" in res.stdout


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--aht-seconds", "0"], "--aht-seconds must be > 0"),
        (["--sl-target", "80"], "--sl-target must be in (0, 1]"),
        (["--shrinkage", "1.5"], "--shrinkage must be in [0, 1)"),
        (["--interval-minutes", "-30"], "--interval-minutes must be > 0"),
        (["--model", "erlang_a"], "--patience-seconds is required"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(extra, fragment):
    res = runner.invoke(staffing_app, [*BASE, *extra])
    assert res.exit_code == 2
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], res.stderr
    assert "Traceback" not in res.output


def test_cli_is_mounted_on_csw():
    from csw.cli import app

    res = runner.invoke(app, ["staffing", *BASE, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["required_agents"] == 14
