"""The model: validation of bad input, kinetic-law conventions, expressions."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dimerization

from diffssa import Event, MassAction, Propensity, Reaction, ReactionNetwork
from diffssa.expressions import ExpressionError, evaluate, parse_expression, to_string


def propensities(net, x):
    c = net.compile()
    theta = jnp.array([net.parameters[p] for p in net.parameter_names], jnp.float32)
    return np.asarray(c.propensities(jnp.asarray(x, jnp.float32), theta))


def test_mass_action_uses_combinatorial_convention():
    net = dimerization()
    a = propensities(net, [100, 7])
    assert a[0] == pytest.approx(0.001 * 100 * 99 / 2, rel=1e-6)
    assert a[1] == pytest.approx(0.01 * 7, rel=1e-6)
    assert propensities(net, [1, 0])[0] == 0.0  # one P cannot dimerise


def test_trimolecular_and_heteromolecular_with_volume():
    net = ReactionNetwork(
        {"A": 10, "B": 4}, {"k": 2.0, "c": 0.5},
        [Reaction({"A": 3}, {"B": 1}, MassAction("k")), Reaction({"A": 1, "B": 1}, {}, MassAction("c"))],
        volume=2.0,
    )
    a = propensities(net, [10, 4])
    assert a[0] == pytest.approx(2.0 * 2.0 ** (1 - 3) * math.comb(10, 3), rel=1e-6)
    assert a[1] == pytest.approx(0.5 * 2.0 ** (1 - 2) * 10 * 4, rel=1e-6)


def test_custom_propensity_expression_and_callable():
    net = ReactionNetwork(
        {"X": 5}, {"Vm": 3.0, "K": 2.0},
        [
            Reaction({}, {"X": 1}, Propensity("Vm * hill(X, K, 2)")),
            Reaction({"X": 1}, {}, Propensity(lambda x, p: p["K"] * x["X"] ** 2)),
        ],
    )
    a = propensities(net, [5])
    assert a[0] == pytest.approx(3.0 * 25 / (4 + 25), rel=1e-6)
    assert a[1] == pytest.approx(2.0 * 25, rel=1e-6)


def test_batch_stoichiometry():
    net = ReactionNetwork({"X": 0}, {"a": 1.0}, [Reaction({}, {"X": 5}, MassAction("a"))])
    assert net.stoichiometry.tolist() == [[5]]


def test_reactant_and_net_change_matrices():
    """2 A -> A + 3 B: consumes 2 A, changes A by -1 and B by +3; the compiled matrices are the same
    (float32, with a column of zeros for each variable)."""
    net = ReactionNetwork({"A": 2, "B": 0}, {"k": 1.0}, [Reaction({"A": 2}, {"A": 1, "B": 3}, MassAction("k"))],
                          variables={"v": 1.0})
    assert net.reactant_matrix.tolist() == [[2, 0]]
    assert net.stoichiometry.tolist() == [[-1, 3]]
    compiled = net.compile()
    assert compiled.reactants.tolist() == [[2.0, 0.0, 0.0]]
    assert compiled.stoichiometry.tolist() == [[-1.0, 3.0, 0.0]]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ReactionNetwork({"X": 1}, {"k": 1.0}, [Reaction({"Y": 1}, {}, MassAction("k"))]), "unknown species 'Y'"),
        (lambda: ReactionNetwork({"X": 1}, {"k": 1.0}, [Reaction({"X": 1}, {}, MassAction("q"))]), "unknown parameter 'q'"),
        (lambda: ReactionNetwork({"X": 1}, {"k": -1.0}, [Reaction({"X": 1}, {}, MassAction("k"))]), "non-negative"),
        (lambda: ReactionNetwork({"X": 1}, {"k": float("nan")}, [Reaction({"X": 1}, {}, MassAction("k"))]), "'k' must be finite"),
        (lambda: ReactionNetwork({"X": -3}, {"k": 1.0}, [Reaction({"X": 1}, {}, MassAction("k"))]), "species 'X'"),
        (lambda: ReactionNetwork({"X": 2.5}, {"k": 1.0}, [Reaction({"X": 1}, {}, MassAction("k"))]), "species 'X'"),
        (lambda: ReactionNetwork({"X": 1}, {"k": 1.0}, [Reaction({"X": 1.5}, {}, MassAction("k"))]), "coefficient of 'X'"),
        (lambda: ReactionNetwork({"X": 1}, {"k": 1.0}, []), "no reactions"),
        (lambda: ReactionNetwork({}, {"k": 1.0}, [Reaction({}, {}, MassAction("k"))]), "no species"),
        (lambda: ReactionNetwork({"X": 1}, {}, [Reaction({"X": 1}, {}, Propensity("mu * X"))]), "'mu'"),
        (lambda: ReactionNetwork({"X": 1}, {"k": 1.0}, [Reaction({"X": 1}, {}, MassAction("k"))],
                                 events=[Event("gt(Y, 3)", {"X": 0})]), "unknown name 'Y'"),
    ],
)
def test_bad_input_is_refused_naming_the_item(build, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def test_overrides_are_checked():
    net = dimerization()
    with pytest.raises(ValueError, match="unknown parameter 'k3'"):
        net.with_parameters(k3=1.0)
    with pytest.raises(ValueError, match="unknown species 'Q'"):
        net.initial_state({"Q": 1})
    assert net.with_parameters(k1=0.5).parameters["k1"] == 0.5


@pytest.mark.parametrize("text, value", [
    ("1 + 2 * 3", 7.0), ("-2 ^ 2", -4.0), ("2 ^ 3 ^ 2", 512.0), ("(1 + 2) * 3", 9.0),
    ("max(1, 5, 3) - min(4, 2)", 3.0), ("hill(2, 2, 1)", 0.5), ("exp(log(3))", 3.0), ("2 ** 3", 8.0),
])
def test_expressions_evaluate_and_round_trip(text, value):
    tree = parse_expression(text)
    assert float(evaluate(tree, {})) == pytest.approx(value, rel=1e-6)
    assert parse_expression(to_string(tree)) == tree


@pytest.mark.parametrize("text, message", [
    ("1 +", "end of expression"), ("foo(1)", "unknown function 'foo'"), ("hill(1, 2)", "takes 3"),
    ("2 $ 3", "unexpected character '\\$'"), ("(1 + 2", "expected '\\)'"), ("", "empty"),
])
def test_malformed_expressions_name_the_token(text, message):
    with pytest.raises(ExpressionError, match=message):
        parse_expression(text)


def test_custom_law_never_fires_without_its_reactants():
    net = ReactionNetwork({"X": 0}, {"c": 1.5}, [Reaction({"X": 1}, {}, Propensity("c"))])
    assert propensities(net, [0])[0] == 0.0
    assert propensities(net, [1])[0] == pytest.approx(1.5)
