"""The command line: outputs in the documented formats, bad input as exit status 2 with a message."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from diffssa.cli import main
from diffssa.io.language import load_network
from diffssa.reference.cme import solve_cme

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DIMER = str(EXAMPLES / "dimerization.rxn")
DECAY = "parameter k = 1\nparameter j = 2\nspecies X = 30\nX -> 0 @ k\n0 -> X @ j\n"


def test_simulate_writes_mean_and_sd_columns(tmp_path):
    out, plot = tmp_path / "d.csv", tmp_path / "d.png"
    code = main(["simulate", DIMER, "--t-end", "10", "--points", "5", "--runs", "500", "--seed", "1",
                 "--out", str(out), "--plot", str(plot), "--param", "k2=0.02"])
    assert code == 0
    frame = pd.read_csv(out, comment="#")
    assert list(frame.columns) == ["time", "P-mean", "P-sd", "P2-mean", "P2-sd"]
    assert frame["time"].tolist() == [0, 2, 4, 6, 8, 10]
    assert frame["P-mean"][0] == 100 and frame["P-sd"][0] == 0
    assert (frame["P-mean"] + 2 * frame["P2-mean"]).round(4).eq(100).all()
    assert plot.stat().st_size > 1000


@pytest.mark.parametrize("method", ["direct", "next-reaction"])
def test_simulate_is_reproducible_from_the_seed(tmp_path, method):
    for name in ("a", "b"):
        assert main(["simulate", DIMER, "--t-end", "5", "--points", "5", "--runs", "100", "--seed", "3",
                     "--method", method, "--out", str(tmp_path / f"{name}.csv")]) == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


@pytest.mark.parametrize("estimator", ["auto", "straight-through", "finite-difference", "score-function"])
def test_gradient_prints_one_json_object(capsys, estimator):
    code = main(["gradient", DIMER, "--t-end", "2", "--runs", "2000", "--seed", "1", "--species", "P",
                 "--wrt", "k1,k2", "--estimator", estimator, "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"value", "gradient", "stderr", "estimator", "unbiased", "check"} <= set(out)
    assert out["estimator"] == {"auto": "pairs", "straight-through": "thinning"}.get(estimator, estimator)
    assert out["unbiased"] == (estimator in ("auto", "score-function"))
    assert (out["check"] is not None) == (estimator == "straight-through")
    assert set(out["gradient"]) == {"k1", "k2"} and set(out["stderr"]) == {"k1", "k2"}
    exact = solve_cme(load_network(DIMER), [2.0])  # E[P(2)] = 83.62, dE/dk1 = -13689, dE/dk2 = 15.4
    assert abs(out["value"] - exact.mean[0, 0]) < 0.5  # SD of P(2) is 3.4: SE 0.08 with 2000 runs
    for i, name in enumerate(exact.parameter_names):
        g, se, true = out["gradient"][name], out["stderr"][name], exact.mean_gradient[0, 0, i]
        assert abs(g - true) < 4 * se + 0.03 * abs(true), (name, g, se, true)


@pytest.mark.parametrize("args, message", [
    (["simulate", "missing.rxn", "--t-end", "1", "--points", "1", "--out", "x.csv"], "missing.rxn"),
    (["simulate", DIMER, "--t-end", "1", "--points", "1", "--out", "x.csv", "--param", "k9=1"], "--param: unknown parameter 'k9'"),
    (["simulate", DIMER, "--t-end", "1", "--points", "1", "--out", "x.csv", "--param", "k1=abc"], "k1"),
    (["simulate", DIMER, "--t-end", "1", "--points", "1", "--out", "x.csv", "--param", "k1=-1"], "non-negative"),
    (["simulate", DIMER, "--t-end", "-1", "--points", "1", "--out", "x.csv"], "t_end"),
    (["gradient", DIMER, "--t-end", "1", "--species", "Q", "--wrt", "k1"], "--species: unknown species 'Q'"),
    (["gradient", DIMER, "--t-end", "1", "--species", "Q", "--wrt", "k1", "--estimator", "finite-difference"],
     "--species: unknown species 'Q'"),
    (["gradient", DIMER, "--t-end", "1", "--species", "P", "--wrt", "kk"], "unknown parameter 'kk'"),
])
def test_bad_input_exits_2_naming_the_item(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffssa: error:") and message in err


def test_malformed_model_file_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.rxn"
    bad.write_text("parameter k = 1\nspecies X = 3\nX -> 0 @ k\nX => Y @ k\n")
    assert main(["simulate", str(bad), "--t-end", "1", "--points", "1", "--out", str(tmp_path / "x.csv")]) == 2
    assert "bad.rxn:4" in capsys.readouterr().err


def test_demo_writes_plot_and_json(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path), "--steps", "5", "--runs", "200"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"k1", "k2", "k1_rel_error", "k2_rel_error", "trajectories", "seconds"} <= set(summary)
    assert (tmp_path / "dimerization-fit.png").stat().st_size > 1000


def _run(tmp_path, *extra, name="o.csv"):
    return main(["simulate", DIMER, "--t-end", "4", "--points", "4", "--runs", "20", "--out", str(tmp_path / name),
                 *extra])


def test_seeds_use_all_64_bits(tmp_path, capsys):
    assert _run(tmp_path, "--seed", "0", name="a.csv") == 0
    assert _run(tmp_path, "--seed", str(2**32), name="b.csv") == 0  # was jax.random.PRNGKey(seed): same as 0
    body = [pd.read_csv(tmp_path / n, comment="#") for n in ("a.csv", "b.csv")]
    assert not body[0].equals(body[1])
    assert "# seed: 4294967296" in (tmp_path / "b.csv").read_text()
    assert _run(tmp_path, "--seed", str(2**64)) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("diffssa: error: argument --seed:") and str(2**64) in err


def test_batched_seeds_use_all_64_bits():
    import numpy as np

    from diffssa.simulation.batches import simulate_batches

    network = load_network(DIMER)
    x = [next(simulate_batches(network, [0.0, 5.0], key=k, runs=4, batch_size=4, max_steps=1000)).states
         for k in (0, 2**32)]
    assert not np.array_equal(np.asarray(x[0]), np.asarray(x[1]))


def test_exhausted_budget_is_exit_3_unless_allowed(tmp_path, capsys):
    assert _run(tmp_path, "--max-steps", "5") == 3
    err = capsys.readouterr().err
    assert "20 of 20 trajectories" in err and "--max-steps" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()
    assert _run(tmp_path, "--max-steps", "5", "--allow-exhausted") == 0
    assert "warning" in capsys.readouterr().err
    frame = pd.read_csv(tmp_path / "o.csv", comment="#")
    assert frame["P-mean"].isna().iloc[-1] and frame["P-mean"].iloc[0] == 100
    decay = tmp_path / "decay.rxn"
    decay.write_text(DECAY)
    assert main(["gradient", str(decay), "--t-end", "2", "--runs", "20", "--species", "X", "--wrt", "k",
                 "--max-steps", "5"]) == 3
    assert "--max-steps" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--points", "100000000"], "--points"),
    (["--points", "1e8"], "--points"),
    (["--points", "2.5"], "--points"),
    (["--runs", "100000000", "--points", "1000"], "--runs"),
    (["--points", "4", "--trajectories", "x.txt"], ".npz"),
    (["--points", "4", "--runs", "5000000", "--trajectories", "t.csv"], ".npz"),
    (["--points", "4", "--out", "missing/x.csv"], "--out missing/x.csv"),
    (["--points", "4", "--plot", "missing/x.png"], "--plot"),
    (["--points", "4", "--trajectories", "missing/x.npz"], "--trajectories"),
    (["--points", "4", "--plot", "x.foo"], "--plot x.foo: unknown image format 'foo'"),
    (["--points", "4", "--trajectories", "x.csv"], "--trajectories x.csv: the same file as --out"),
    (["--points", "4", "--out", "."], "is a folder"),
    (["--times", "0,2,1"], "--times: '1'"),
    (["--times", "0,inf"], "--times: 'inf'"),
    (["--times=-1,2"], "--times: '-1'"),
    (["--times", "0,x"], "--times: 'x'"),
    (["--times", "0,1", "--points", "4"], "--times"),
    ([], "--t-end and --points"),
])
def test_simulate_refuses_before_running(tmp_path, capsys, monkeypatch, extra, message):
    from diffssa.cli import simulate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(simulate, "simulate_in_batches", lambda *a, **k: pytest.fail("simulated"))
    args = ["simulate", DIMER, "--out", "x.csv"] + (["--t-end", "4"] if "--points" in extra else []) + extra
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffssa: error:") and message in err and len(err.strip().splitlines()) == 1, err


def test_times_trajectories_and_provenance(tmp_path):
    import numpy as np

    out, traj, npz = tmp_path / "s.csv", tmp_path / "t.csv", tmp_path / "t.npz"
    base = ["simulate", DIMER, "--times", "0,0.5,2,2,10", "--runs", "7", "--seed", "5", "--param", "k2=0.02",
            "--plot", str(tmp_path / "p.png"), "--samples", "2", "--out", str(out)]
    assert main(base + ["--trajectories", str(traj)]) == 0
    assert main(base + ["--trajectories", str(npz)]) == 0
    text = out.read_text()
    for line in ["# seed: 5", f"# model: {DIMER}", "# runs: 7", "# max_steps: 100000", "# method: direct",
                 "# parameters: k1=0.001 k2=0.02*", "# diffssa_version: "]:
        assert line in text, line
    summary = pd.read_csv(out, comment="#")
    assert summary["time"].tolist() == [0, 0.5, 2, 2, 10]
    long = pd.read_csv(traj, comment="#")
    assert list(long.columns) == ["run", "time", "P", "P2"] and len(long) == 7 * 5
    data = np.load(npz)
    assert data["states"].shape == (7, 5, 2) and list(data["species"]) == ["P", "P2"]
    assert json.loads(str(data["metadata"]))["overridden"] == ["k2"]
    np.testing.assert_array_equal(long[["P", "P2"]].to_numpy().reshape(7, 5, 2), data["states"])
    np.testing.assert_allclose(summary["P-mean"], data["states"][:, :, 0].mean(axis=0))
    np.testing.assert_allclose(summary["P2-sd"], data["states"][:, :, 1].std(axis=0, ddof=1))
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_one_run_gradient_json_is_strict(tmp_path, capsys):
    decay = tmp_path / "decay.rxn"
    decay.write_text(DECAY)
    args = ["gradient", str(decay), "--t-end", "2", "--runs", "1", "--seed", "2", "--species", "X", "--wrt", "k",
            "--param", "k=0.5"]
    assert main(args + ["--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert out["stderr"]["k"] is None and out["runs"] == 1 and out["seed"] == 2
    assert out["parameters"] == {"k": 0.5, "j": 2.0} and out["overridden"] == ["k"]
    assert out["model"] == str(decay) and out["max_steps"] == 10_000 and "diffssa_version" in out
    assert out["method"] == "direct" and out["species"] == "X" and out["t_end"] == 2
    assert "Warning" not in captured.err
    assert main(args) == 0
    assert "at least 2 runs" in capsys.readouterr().out


SWITCHED = """parameter k = 20
species X = 0
variable on = 1
observable doubled = 2 * X + on
0 -> X @= k * on
X -> 0 @ 1
event off when time >= 2: on = 0
"""


def test_variables_and_observables_reach_every_output(tmp_path):
    """Summary and per-trajectory CSVs carry the variable and the observable; counts as integers."""
    model = tmp_path / "switched.rxn"
    model.write_text(SWITCHED)
    out, long = tmp_path / "s.csv", tmp_path / "t.csv"
    assert main(["simulate", str(model), "--times", "0,1,3", "--runs", "20", "--seed", "2", "--out", str(out),
                 "--trajectories", str(long)]) == 0
    summary = pd.read_csv(out, comment="#")
    assert list(summary.columns) == ["time", "X-mean", "X-sd", "on-mean", "on-sd", "doubled-mean", "doubled-sd"]
    assert summary["on-mean"].tolist() == [1.0, 1.0, 0.0]
    rows = pd.read_csv(long, comment="#")
    assert (rows["doubled"] == 2 * rows["X"] + rows["on"]).all()
    assert str(rows["X"].dtype) == "int64"


def test_large_counts_in_float64_and_growth_past_float32_named(tmp_path, capsys):
    """2e7 molecules are simulated in float64 (recorded in the header); a float32 count that grows past
    2**24 is exit 2 naming the species and --precision."""
    big = tmp_path / "big.rxn"
    big.write_text("species X = 20000000\nparameter mu = 0.0001\nX -> 0 @ mu\n")
    out = tmp_path / "big.csv"
    assert main(["simulate", str(big), "--t-end", "1", "--points", "1", "--runs", "50", "--seed", "0",
                 "--out", str(out)]) == 0
    assert "# precision: float64" in out.read_text()
    table = pd.read_csv(out, comment="#")
    assert table["X-sd"][1] > 20  # about 45: float32 counts would give 0
    grow = tmp_path / "grow.rxn"
    grow.write_text("species X = 16777000\nparameter k = 1000\n0 -> X @ k\n")
    assert main(["simulate", str(grow), "--t-end", "1", "--points", "1", "--runs", "4", "--seed", "0",
                 "--out", str(tmp_path / "g.csv")]) == 2
    assert "species 'X' reached" in capsys.readouterr().err
    assert main(["simulate", str(grow), "--t-end", "1", "--points", "1", "--runs", "4", "--seed", "0",
                 "--precision", "float64", "--out", str(tmp_path / "g.csv")]) == 0


def test_scale_converts_sbml_concentrations_and_is_refused_for_rxn(tmp_path, capsys):
    """Goldbeter 1995 (BIOMD0000000016) is in micromolar: refused without --scale, naming a species;
    with --scale avogadro it runs and the header records the scale."""
    model = str(Path(__file__).parent / "data" / "biomodels" / "BIOMD0000000016.xml")
    out = tmp_path / "g.csv"
    base = ["simulate", model, "--t-end", "1", "--points", "1", "--runs", "5", "--seed", "0", "--out", str(out)]
    assert main(base) == 2
    assert "not a whole number" in capsys.readouterr().err
    assert main(base + ["--scale", "avogadro"]) == 0
    assert "# scale: avogadro" in out.read_text()
    assert main(["simulate", DIMER, "--t-end", "1", "--points", "1", "--scale", "10", "--out", str(out)]) == 2
    assert "SBML files only" in capsys.readouterr().err
    assert main(base + ["--scale", "-3"]) == 2


def _unimportable(monkeypatch, *packages):
    """``import`` of each package (and of its submodules already loaded) raises ImportError."""
    for name in [m for m in list(sys.modules) if m.split(".")[0] in packages] + list(packages):
        monkeypatch.setitem(sys.modules, name, None)


def test_simulate_writes_pandas_csv_bytes_without_pandas_or_tqdm(tmp_path, monkeypatch):
    """simulate needs neither pandas nor tqdm (several batches ask for a progress bar), and writes the
    bytes pandas' ``to_csv`` wrote: shortest floats, integer counts, blank cells where the budget ran out."""
    from diffssa.cli import runs
    from diffssa.cli.simulate import parse_times

    model = tmp_path / "switched.rxn"
    model.write_text(SWITCHED)
    out, long = tmp_path / "s.csv", tmp_path / "t.csv"
    monkeypatch.setattr(runs, "SIMULATION_BATCH", 8)
    with monkeypatch.context() as blocked:
        _unimportable(blocked, "pandas", "tqdm")
        assert main(["simulate", str(model), "--times", "0,0.5,1,3", "--runs", "20", "--seed", "2", "--max-steps",
                     "60", "--allow-exhausted", "--out", str(out), "--trajectories", str(long)]) == 0
    result = runs.simulate_in_batches(load_network(str(model)), parse_times("0,0.5,1,3"), 20, 2, 60,
                                      on_exhausted="ignore")
    assert 0 < result.exhausted.sum() < 20
    frame = result.to_dataframe(summary=False)
    frame["X"] = frame["X"].round().astype("Int64")
    for path, table in [(out, result.to_dataframe()), (long, frame)]:
        text = path.read_text()
        header = "\n".join(line for line in text.splitlines() if line.startswith("#")) + "\n"
        assert text == header + table.to_csv(index=False)
    assert ",,," in text


def test_plot_without_matplotlib_is_exit_2_before_simulating(tmp_path, capsys, monkeypatch):
    from diffssa.cli import simulate

    monkeypatch.setattr(simulate, "simulate_in_batches", lambda *a, **k: pytest.fail("simulated"))
    _unimportable(monkeypatch, "matplotlib")
    assert _run(tmp_path, "--plot", str(tmp_path / "p.png")) == 2
    err = capsys.readouterr().err
    assert err == "diffssa: error: --plot needs matplotlib: pip install 'diffssa[plot]'\n"
