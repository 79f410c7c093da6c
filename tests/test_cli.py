"""The command line: outputs in the documented formats, bad input as exit status 2 with a message."""

import json
from pathlib import Path

import pandas as pd
import pytest

from diffssa.cli import main
from diffssa.cme import solve_cme
from diffssa.language import load_network

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DIMER = str(EXAMPLES / "dimerization.rxn")


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
