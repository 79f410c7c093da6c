"""The public API: one screen of grouped exports, and a core that runs without the optional extras."""

import inspect
import subprocess
import sys
import textwrap

import pytest

import diffssa
from diffssa.optional import pyplot, require

# scipy is not blocked: JAX itself requires it (jaxlib calls its LAPACK on CPU), so it is always installed.
EXTRAS = ("pandas", "matplotlib", "pyabf", "tqdm")


def test_every_export_exists_once_and_says_what_it_is():
    assert len(diffssa.__all__) == len(set(diffssa.__all__))
    for name in diffssa.__all__:
        obj = getattr(diffssa, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"diffssa.{name} has no docstring"
    for name in ("fit", "solve_cme", "finite_difference_gradient", "GradientEstimate", "as_key", "simulate_batches"):
        assert name in diffssa.__all__


# Blocks the optional packages the way a machine without the extras lacks them, then uses the core.
CORE_WITHOUT_EXTRAS = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked: " + name)

    sys.meta_path.insert(0, Block())
    import diffssa
    from diffssa import estimate_gradient, fit, moment_loss, parse_network, simulate, solve_cme, write_sbml, load_sbml

    net = parse_network("species X = 0\\nparameter k = 10\\nparameter mu = 0.5\\n0 -> X @ k\\nX -> 0 @ mu")
    tr = simulate(net, [1.0, 2.0], key=0, runs=50)
    g = estimate_gradient(net, [2.0], "X", ["k"], key=1, runs=50)
    result = fit(lambda p, key: moment_loss(simulate(net, [2.0], key=key, runs=20, params=p), "X", [6.0]),
                 {{"k": 5.0}}, key=2, steps=2, progress=True)
    write_sbml(net, "m.xml"); load_sbml("m.xml")
    solve_cme(net, [1.0], bounds={{"X": 60}})
    from diffssa.cli import main
    assert main(["simulate", "m.xml", "--t-end", "2", "--points", "3", "--runs", "20", "--out", "o.csv"]) == 0
    tr.to_csv("summary.csv"); tr.to_csv("long.csv", summary=False)
    loaded = sorted(m for m in BLOCKED if m in sys.modules)
    assert not loaded, loaded
    try:
        tr.to_dataframe()
    except ImportError as err:
        assert "pip install 'diffssa[dataframe]'" in str(err), err
    else:
        raise AssertionError("to_dataframe worked without pandas")
    print("core ok")
""")


def test_core_runs_without_the_extras(tmp_path):
    """Simulation, gradients, fitting, SBML, the master equation, CSV output (library and CLI), with pandas,
    matplotlib, pyabf and tqdm unimportable; a feature that needs one names its extra."""
    code = CORE_WITHOUT_EXTRAS.format(blocked=EXTRAS)
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "core ok" in run.stdout, run.stderr[-3000:]


def test_a_missing_extra_is_named():
    with pytest.raises(ImportError, match=r"the plot needs no_such_module: pip install 'diffssa\[plot\]'"):
        require("no_such_module", "plot", "the plot")
    assert pyplot("a test").get_backend().lower() == "agg"
