"""The reaction language: parsing, propensities, round trips through format_network, error messages."""

import math
import sys
import types
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dimerization

from diffssa import Event, MassAction, Propensity, Reaction, ReactionNetwork
from diffssa.expressions import Call, Num, Sym, parse_expression
from diffssa.io.language import (
    ReactionLanguageError,
    format_network,
    load_network,
    parse_network,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def propensities(net, counts, **params):
    """Propensities at ``counts`` (species order) with the network's parameters, overridden by ``params``."""
    theta = jnp.array([params.get(p, v) for p, v in net.parameters.items()], jnp.float32)
    return np.asarray(net.compile().propensities(jnp.asarray(counts, jnp.float32), theta))


def test_example_files_parse_and_round_trip():
    files = sorted(EXAMPLES.glob("*.rxn"))
    assert {f.stem for f in files} >= {"dimerization", "birth_death", "immigration_death", "pure_birth", "gene_bursting"}
    for f in files:
        net = load_network(f)
        assert parse_network(format_network(net)) == net, f.name


def test_dimerization_example():
    net = load_network(EXAMPLES / "dimerization.rxn")
    assert net.species == {"P": 100, "P2": 0}
    assert net.parameters == {"k1": 0.001, "k2": 0.01}
    assert [r.name for r in net.reactions] == ["dimerisation", "dissociation"]
    np.testing.assert_array_equal(net.stoichiometry, [[-2, 1], [2, -1]])
    np.testing.assert_allclose(propensities(net, [100, 7]), [0.001 * 100 * 99 / 2, 0.01 * 7], rtol=1e-6)
    assert propensities(net, [1, 0])[0] == 0.0
    assert net.stoichiometry.tolist() == dimerization().stoichiometry.tolist()


def test_example_stoichiometries():
    expected = {
        "birth_death": [[1], [-1]],
        "immigration_death": [[1], [-1]],
        "pure_birth": [[1]],
        "gene_bursting": [[5], [-1]],
    }
    for stem, nu in expected.items():
        assert load_network(EXAMPLES / f"{stem}.rxn").stoichiometry.tolist() == nu, stem
    burst = load_network(EXAMPLES / "gene_bursting.rxn")
    np.testing.assert_allclose(propensities(burst, [40]), [2.0, 0.1 * 40], rtol=1e-6)


def test_coefficient_spellings_comments_and_declaration_order():
    net = parse_network(
        """
        # reactions first, declarations after: names resolve once the text is read
        2P -> P2 @ k1   # no space
        P + P -> P2 @ k1 # repeated species add up
        2 P2 + 3Q -> 0 @ k1

        parameter k1 = 0.5
        species Q = 7
        species P = 10 # order of declaration is the state order
        species P2 = 0
        """
    )
    assert net.species_names == ("Q", "P", "P2")
    assert net.reactions[0].reactants == net.reactions[1].reactants == {"P": 2}
    np.testing.assert_array_equal(net.stoichiometry, [[0, -2, 1], [0, -2, 1], [-3, 0, -2]])
    a = propensities(net, [7, 10, 4])
    np.testing.assert_allclose(a, [0.5 * 45, 0.5 * 45, 0.5 * math.comb(4, 2) * math.comb(7, 3)], rtol=1e-6)


def test_mass_action_rate_expression_and_volume():
    net = parse_network(
        "parameter k = 2\nparameter c = 3\nspecies A = 5\nspecies B = 1\nvolume 4\n"
        "A + B -> 0 @ k * c\n0 -> A @ c / 2\n"
    )
    assert net.volume == 4.0
    np.testing.assert_allclose(propensities(net, [5, 2]), [6 * 4 ** -1 * 10, 1.5 * 4], rtol=1e-6)


def test_full_propensity_expressions():
    net = parse_network(
        """
        parameter mu = 0.2
        parameter K = 10
        parameter vmax = 3
        species X = 4
        species Y = 1
        X -> 0 @= mu * X
        0 -> X @= vmax * hill(Y, K, 2)
        Y -> 0 @= exp(-mu) * log(X + 1) + min(X, Y) ^ 2 - max(X, 2 * Y) / 4
        """
    )
    x, y = 4.0, 6.0
    expected = [0.2 * x, 3 * y**2 / (10**2 + y**2), math.exp(-0.2) * math.log(x + 1) + min(x, y) ** 2 - max(x, 2 * y) / 4]
    np.testing.assert_allclose(propensities(net, [x, y]), expected, rtol=1e-5)
    assert isinstance(net.reactions[0].law, Propensity)
    np.testing.assert_allclose(propensities(net, [x, y], mu=0.5)[0], 0.5 * x, rtol=1e-6)


def test_names_and_reversible_shorthand():
    net = parse_network(
        "parameter kf = 1\nparameter kb = 2\nspecies A = 3\nspecies B = 4\nspecies C = 0\n"
        "bind: A + B <-> C @ kf, kb\nA <-> B @= min(kf, A), kb * B\nmake_c: 0 -> C @ kf\n"
    )
    assert [r.name for r in net.reactions] == ["bind_fwd", "bind_rev", "R3", "R4", "make_c"]
    np.testing.assert_array_equal(net.stoichiometry, [[-1, -1, 1], [1, 1, -1], [-1, 1, 0], [1, -1, 0], [0, 0, 1]])
    np.testing.assert_allclose(propensities(net, [3, 4, 5]), [12, 10, 1, 8, 1], rtol=1e-6)


def test_events():
    net = parse_network(
        """
        parameter k = 1
        species P = 100
        species P2 = 0
        P -> P2 @ k
        event when time >= 25: P = 50
        event refill when P2 > 30: P = 100, P2 = 0
        event initially false when and(gt(P, 3), lt(P2, 2)): P2 = P2 + k
        event late when 40 < time: P = min(P, 10)
        """
    )
    first, refill, initial, late = net.events
    assert first == Event(Call("geq", (Sym("time"), Num(25.0))), {"P": Num(50.0)})
    assert refill.name == "refill" and refill.trigger == Call("gt", (Sym("P2"), Num(30.0)))
    assert refill.assignments == {"P": Num(100.0), "P2": Num(0.0)}
    assert initial.initial_value is False and initial.trigger == parse_expression("and(gt(P, 3), lt(P2, 2))")
    assert late.trigger == Call("lt", (Num(40.0), Sym("time")))
    assert parse_network(format_network(net)) == net


def test_round_trip_of_a_network_built_in_python():
    net = ReactionNetwork(
        {"A": 3, "B": 0},
        {"k": 0.1, "tiny": 1.2345678901234567e-9, "n": 2.0},
        [
            Reaction({"A": 2}, {"B": 1}, MassAction("k * n"), "pair"),
            Reaction({}, {"A": 5}, MassAction(0.25)),
            Reaction({"B": 1}, {}, Propensity("tiny * B ^ n / (1 + (A - 1) ^ 2)"), "R7"),
        ],
        volume=2.5,
        name="test net",
        events=[Event("leq(time, 5)", {"A": "A + 1"}, "e1", initial_value=False), Event("geq(B, 2)", {"B": 0})],
    )
    text = format_network(net)
    assert parse_network(text) == net
    assert "volume 2.5" in text and "network test net" in text and "R7: B -> 0 @=" in text
    assert parse_network(format_network(dimerization())) == dimerization()


def test_format_refuses_what_the_language_cannot_express():
    law = Propensity(lambda x, p: p["k"] * x["A"])
    net = ReactionNetwork({"A": 1}, {"k": 1.0}, [Reaction({"A": 1}, {}, law)])
    with pytest.raises(ValueError, match="callable"):
        format_network(net)
    named = ReactionNetwork({"A": 1}, {"k": 1.0}, [Reaction({"A": 1}, {}, MassAction("k"), "decay of A")])
    with pytest.raises(ValueError, match="decay of A"):
        format_network(named)
    with pytest.raises(ValueError, match="#"):
        format_network(ReactionNetwork({"A": 1}, {"k": 1.0}, [Reaction({"A": 1}, {}, MassAction("k"))], name="a#b"))


def test_load_network_suffixes_and_missing_files(tmp_path, monkeypatch):
    model = tmp_path / "model.txt"
    model.write_text("parameter k = 1\nspecies X = 0\n0 -> X @ k\n")
    assert load_network(model).species == {"X": 0}
    bad = tmp_path / "model.rxn"
    bad.write_text("species X = 0\n0 -> Y @ 1\n")
    with pytest.raises(ReactionLanguageError, match=r"model\.rxn:2: .*'Y'"):
        load_network(bad)
    with pytest.raises(ValueError, match=r"model\.csv.*\.rxn.*\.sbml"):
        load_network(tmp_path / "model.csv")
    with pytest.raises(ValueError, match="not found.*missing.rxn"):
        load_network(tmp_path / "missing.rxn")
    sbml = tmp_path / "model.xml"
    sbml.write_text("<sbml/>")
    fake = types.ModuleType("diffssa.io.sbml")
    fake.load_sbml = lambda path, scale=None: ("sbml", Path(path).name, scale)
    monkeypatch.setitem(sys.modules, "diffssa.io.sbml", fake)
    assert load_network(sbml) == ("sbml", "model.xml", None)
    assert load_network(sbml, scale="avogadro") == ("sbml", "model.xml", "avogadro")


HEADER = "parameter k1 = 0.001\nspecies P = 100\nspecies P2 = 0\n"  # lines 1-3


@pytest.mark.parametrize(
    "body, line, tokens",
    [
        ("2 Q -> P2 @ k1", 4, ["unknown species 'Q'", "2 Q -> P2 @ k1"]),
        ("P -> P2 @ kk", 4, ["unknown parameter 'kk'"]),
        ("P -> P2 @ k1 * P", 4, ["'P'", "'@='"]),
        ("P -> 0 @= mu * P", 4, ["'mu'"]),
        ("P -> 0 @= k1 * time", 4, ["'time'"]),
        ("parameter k = -1\nP -> P2 @ k", 5, ["non-negative", "-1", "@ k"]),
        ("parameter k = nan", 4, ["finite", "'nan'"]),
        ("parameter k = inf", 4, ["finite", "'inf'"]),
        ("parameter k = fast", 4, ["number", "'fast'"]),
        ("species X = -3", 4, ["non-negative integer", "'-3'"]),
        ("species X = 2.5", 4, ["non-negative integer", "'2.5'"]),
        ("1.5 P -> P2 @ k1", 4, ["positive integer", "'1.5'"]),
        ("0 P -> P2 @ k1", 4, ["positive integer", "'0'"]),
        ("P P2 @ k1", 4, ["expected a reaction with '->'", "P P2 @ k1"]),
        ("hello world", 4, ["malformed line", "hello world"]),
        ("P -> P2 k1", 4, ["missing '@"]),
        ("P -> P2 @", 4, ["missing rate law"]),
        ("P -> P2 @ k1 $", 4, ["'$'"]),
        ("P -> P2 ! @ k1", 4, ["malformed term", "'P2 !'"]),
        ("-> P2 @ k1", 4, ["no reactants", "write 0"]),
        ("P -> P2 -> P @ k1", 4, ["one '->'"]),
        ("P <-> P2 @ k1", 4, ["FORWARD, BACKWARD", "got 1"]),
        ("P -> P2 @ k1, k1", 4, ["one rate law", "got 2"]),
        ("P -> 0 @= foo(P)", 4, ["unknown function 'foo'"]),
        ("species P = 5", 4, ["duplicate declaration of 'P'", "line 2"]),
        ("parameter k1 = 2", 4, ["duplicate declaration of 'k1'", "line 1"]),
        ("parameter P2 = 2", 4, ["duplicate declaration of 'P2'", "species"]),
        ("species time = 2", 4, ["'time'", "reserved"]),
        ("species Y", 4, ["species NAME = VALUE", "species Y"]),
        ("volume 1\nvolume 2", 5, ["duplicate 'volume'", "line 4"]),
        ("volume -2", 4, ["positive", "'-2'"]),
        ("event when P > 3 > 2: P = 1", 4, ["one comparison"]),
        ("event when P > 3: P == 1", 4, ["'= 1'"]),
        ("event when P > 3: 1 = P", 4, ["malformed assignment", "'1 = P'"]),
        ("event when P > 3", 4, ["malformed event"]),
        ("event when P > 3: Q = 1", 4, ["'Q'"]),
        ("event when Z > 3: P = 1", 4, ["'Z'"]),
        ("event when P > 3: P = 1, P = 2", 4, ["assigned twice", "'P'"]),
    ],
)
def test_errors_name_file_line_and_token(body, line, tokens):
    text = HEADER + body + "\nP -> P2 @ k1\n"
    with pytest.raises(ReactionLanguageError) as info:
        parse_network(text, source="model.rxn")
    message = str(info.value)
    assert message.startswith(f"model.rxn:{line}: "), message
    for token in tokens:
        assert token in message, message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "no reactions"),
        ("# only a comment\nparameter k = 1\nspecies X = 1\n", "no reactions"),
        ("parameter k = 1\nX -> 0 @ k\n", "no species declared"),
    ],
)
def test_empty_networks(text, expected):
    with pytest.raises(ReactionLanguageError, match=f"^model.rxn: .*{expected}"):
        parse_network(text, source="model.rxn")
