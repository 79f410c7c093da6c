"""SBML import/export: each feature on a small hand-written model."""

import math

import jax
import jax.numpy as jnp
import libsbml
import numpy as np
import pytest
from conftest import dimerization, immigration_death

from diffssa import Event, MassAction, Propensity, Reaction, ReactionNetwork, simulate
from diffssa.expressions import BinOp, Call, Num, Sym, evaluate
from diffssa.io.sbml import SBMLError, load_sbml, write_sbml


def mathml(formula: str) -> str:
    node = libsbml.parseL3Formula(formula)
    assert node is not None, libsbml.getLastParseL3Error()
    return libsbml.writeMathMLToString(node).split("\n", 1)[1]


def species(sid, amount=None, conc=None, hosu=True, boundary=False, constant=False, comp="C"):
    init = f'initialAmount="{amount}"' if amount is not None else ""
    init = f'initialConcentration="{conc}"' if conc is not None else init
    return (
        f'<species id="{sid}" compartment="{comp}" {init} hasOnlySubstanceUnits="{str(hosu).lower()}" '
        f'boundaryCondition="{str(boundary).lower()}" constant="{str(constant).lower()}"/>'
    )


def parameter(pid, value=None):
    value = f'value="{value}"' if value is not None else ""
    return f'<parameter id="{pid}" {value} constant="true"/>'


def reaction(rid, reactants, products, law, local=None, fast="false", extra="", reversible=False):
    def refs(tag, side):
        if not side:
            return ""
        ref = '<speciesReference species="{}" stoichiometry="{}" constant="true"/>'
        items = "".join(ref.format(s, n) for s, n in side.items())
        return f"<{tag}>{items}</{tag}>"

    params = "".join(f'<localParameter id="{p}" value="{v}"/>' for p, v in (local or {}).items())
    params = f"<listOfLocalParameters>{params}</listOfLocalParameters>" if params else ""
    return (
        f'<reaction id="{rid}" reversible="{str(reversible).lower()}" fast="{fast}" {extra}>'
        f'{refs("listOfReactants", reactants)}{refs("listOfProducts", products)}'
        f"<kineticLaw>{mathml(law)}{params}</kineticLaw></reaction>"
    )


def event(eid, trigger, assignments, extra="", persistent="true", inner=""):
    items = "".join(f'<eventAssignment variable="{v}">{mathml(f)}</eventAssignment>' for v, f in assignments.items())
    return (
        f'<event id="{eid}" useValuesFromTriggerTime="true" {extra}>'
        f'<trigger initialValue="false" persistent="{persistent}">{mathml(trigger)}</trigger>{inner}'
        f"<listOfEventAssignments>{items}</listOfEventAssignments></event>"
    )


def write_model(tmp_path, species_xml, reactions_xml, params_xml="", size="1", rules="", initial="", events="",
                functions="", name="model.xml", units="", model_attrs=""):
    size = f'size="{size}"' if size is not None else ""
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="m" {model_attrs}>{f"<listOfUnitDefinitions>{units}</listOfUnitDefinitions>" if units else ""}
    {f"<listOfFunctionDefinitions>{functions}</listOfFunctionDefinitions>" if functions else ""}
    <listOfCompartments><compartment id="C" spatialDimensions="3" {size} constant="true"/></listOfCompartments>
    <listOfSpecies>{''.join(species_xml)}</listOfSpecies>
    {f"<listOfParameters>{''.join(params_xml)}</listOfParameters>" if params_xml else ""}
    {f"<listOfInitialAssignments>{initial}</listOfInitialAssignments>" if initial else ""}
    {f"<listOfRules>{rules}</listOfRules>" if rules else ""}
    <listOfReactions>{''.join(reactions_xml)}</listOfReactions>
    {f"<listOfEvents>{events}</listOfEvents>" if events else ""}
  </model>
</sbml>
"""
    path = tmp_path / name
    path.write_text(text)
    return path


def rates(net, **state):
    """Propensities of ``net`` at the given counts (others at their initial values), default parameters."""
    compiled = net.compile()
    x = jnp.asarray([state.get(s, n) for s, n in {**net.species, **net.variables}.items()], jnp.float32)
    theta = jnp.asarray(list(net.parameters.values()), jnp.float32)
    return np.asarray(compiled.propensities(x, theta))


def test_amounts_and_concentrations_in_a_compartment_of_size_two(tmp_path):
    path = write_model(
        tmp_path,
        [species("A", amount=10), species("B", conc=3, hosu=False), species("D", amount=4, hosu=False)],
        [reaction(f"r{s}", {s: 1}, {}, f"k * {s}") for s in "BAD"],
        [parameter("k", 0.5)],
        size="2",
    )
    net = load_sbml(path)
    assert net.species == {"A": 10, "B": 6, "D": 4}  # amounts: B = 3 (conc) * 2; D's initialAmount is an amount
    assert net.volume == 2.0
    # B and D read as concentrations in the laws (amount / 2), A as an amount
    np.testing.assert_allclose(rates(net), [0.5 * 6 / 2, 0.5 * 10, 0.5 * 4 / 2], rtol=1e-6)


def test_boundary_and_constant_species_are_not_changed_by_reactions(tmp_path):
    path = write_model(
        tmp_path,
        [species("S", amount=5, boundary=True), species("X", amount=0),
         species("Sink", amount=0, boundary=True, constant=True)],
        [reaction("in", {"S": 1}, {"X": 1}, "k * S"), reaction("out", {"X": 1}, {"Sink": 1}, "mu * X")],
        [parameter("k", 1.0), parameter("mu", 0.5)],
    )
    net = load_sbml(path)
    assert list(net.species) == ["S", "X", "Sink"]
    np.testing.assert_array_equal(net.stoichiometry, [[0, 1, 0], [0, -1, 0]])
    traj = simulate(net, np.linspace(0, 5, 6), key=0, runs=50)
    assert np.all(np.asarray(traj["S"]) == 5) and np.all(np.asarray(traj["Sink"]) == 0)
    assert float(traj.mean()[-1, 1]) > 3  # X heads to k * S / mu = 10


def test_global_and_local_parameters(tmp_path):
    path = write_model(
        tmp_path,
        [species("X", amount=3)],
        [reaction("R1", {"X": 1}, {}, "k * X", local={"k": 2.0}), reaction("R2", {}, {"X": 1}, "k")],
        [parameter("k", 1.0)],
    )
    net = load_sbml(path)
    assert net.parameters == {"k": 1.0, "R1_k": 2.0}
    np.testing.assert_allclose(rates(net), [6.0, 1.0])
    clash = write_model(
        tmp_path,
        [species("X", amount=3)],
        [reaction("R1", {"X": 1}, {}, "k * X", local={"k": 2.0})],
        [parameter("R1_k", 1.0)],
        name="clash.xml",
    )
    with pytest.raises(SBMLError, match=r"reaction 'R1'.*local parameter 'k'.*'R1_k'"):
        load_sbml(clash)


def test_non_unit_and_batch_stoichiometry(tmp_path):
    path = write_model(
        tmp_path,
        [species("X", amount=10), species("Y", amount=0)],
        [reaction("dim", {"X": 2}, {"Y": 1}, "c * X * (X - 1) / 2"), reaction("batch", {}, {"X": 5}, "a")],
        [parameter("c", 0.1), parameter("a", 1.0)],
    )
    net = load_sbml(path)
    np.testing.assert_array_equal(net.stoichiometry, [[-2, 1], [5, 0]])
    np.testing.assert_allclose(rates(net), [0.1 * 10 * 9 / 2, 1.0], rtol=1e-6)  # the law as written


def test_parameter_assignment_rules_are_inlined(tmp_path):
    rules = (
        f'<assignmentRule variable="kk">{mathml("2 * k")}</assignmentRule>'
        f'<assignmentRule variable="k3">{mathml("kk + X")}</assignmentRule>'
    )
    path = write_model(
        tmp_path,
        [species("X", amount=4)],
        [reaction("r", {"X": 1}, {}, "k3 * X")],
        [parameter("k", 1.5), '<parameter id="kk" constant="false"/>', '<parameter id="k3" constant="false"/>'],
        rules=rules,
    )
    net = load_sbml(path)
    assert net.parameters == {"k": 1.5}
    np.testing.assert_allclose(rates(net), [(2 * 1.5 + 4) * 4])


def test_species_assignment_rules_affine_kept_exact_nonlinear_refused(tmp_path):
    species_xml = [species("X", amount=10), species("y", amount=0)]
    path = write_model(
        tmp_path, species_xml, [reaction("birth", {"X": 1}, {"X": 2}, "X"), reaction("death", {"X": 1}, {}, "X")],
        rules=f'<assignmentRule variable="y">{mathml("2 * X + 1")}</assignmentRule>',
    )
    net = load_sbml(path)
    assert net.species == {"X": 10, "y": 21}
    np.testing.assert_array_equal(net.stoichiometry, [[1, 2], [-1, -2]])
    traj = simulate(net, np.linspace(0, 1, 5), key=1, runs=20)
    np.testing.assert_array_equal(np.asarray(traj["y"]), 2 * np.asarray(traj["X"]) + 1)
    bad = write_model(  # an event reads y, so it must stay a count (output-only rules become observables)
        tmp_path, species_xml, [reaction("death", {"X": 1}, {}, "X")],
        rules=f'<assignmentRule variable="y">{mathml("X * X")}</assignmentRule>', name="bad.xml",
        events=event("cap", "y > 100", {"X": "0"}),
    )
    with pytest.raises(SBMLError, match=r"assignmentRule 'y'.*affine"):
        load_sbml(bad)


def test_initial_assignments_are_evaluated_in_dependency_order(tmp_path):
    initial = (
        f'<initialAssignment symbol="X">{mathml("2 * k")}</initialAssignment>'
        f'<initialAssignment symbol="k">{mathml("3 * j")}</initialAssignment>'
    )
    path = write_model(
        tmp_path,
        [species("X", amount=0)],
        [reaction("r", {"X": 1}, {}, "k * X")],
        [parameter("j", 2.0), parameter("k", 1.0)],
        initial=initial,
    )
    net = load_sbml(path)
    assert net.parameters == {"j": 2.0, "k": 6.0}
    assert net.species == {"X": 12}


def test_function_definitions_and_mathml_functions(tmp_path):
    functions = (
        '<functionDefinition id="f"><math xmlns="http://www.w3.org/1998/Math/MathML">'
        "<lambda><bvar><ci> a </ci></bvar><bvar><ci> b </ci></bvar>"
        "<apply><times/><ci> a </ci><ci> b </ci></apply></lambda></math></functionDefinition>"
    )
    law = ("f(k, X) + piecewise(1, X > 2, 0) + log(2, 8) + root(3, 27) + ln(exp(2)) + abs(-1) + floor(1.5)"
           " + ceil(1.5) + pi - pi")
    path = write_model(tmp_path, [species("X", amount=4)], [reaction("r", {"X": 1}, {}, law)], [parameter("k", 0.5)],
                       functions=functions)
    np.testing.assert_allclose(rates(load_sbml(path)), [0.5 * 4 + 1 + 3 + 3 + 2 + 1 + 1 + 2], rtol=1e-6)


def _event_model(tmp_path):
    events = event("reset", "time >= 5", {"Y": "100"}) + event("cap", "X > 20", {"X": "0", "Y": "Y + 1"})
    return write_model(
        tmp_path,
        [species("X", amount=0), species("Y", amount=0)],
        [reaction("in", {}, {"X": 1}, "k")],
        [parameter("k", 10.0)],
        events=events,
    )


def test_events_are_built_from_triggers_and_assignments(tmp_path):
    net = load_sbml(_event_model(tmp_path))
    reset, cap = net.events
    assert reset == Event(Call("geq", (Sym("time"), Num(5.0))), {"Y": Num(100.0)}, "reset", False)
    assert cap.name == "cap" and cap.initial_value is False
    assert cap.trigger == Call("gt", (Sym("X"), Num(20.0)))
    assert cap.assignments == {"X": Num(0.0), "Y": BinOp("+", Sym("Y"), Num(1.0))}


def test_events_with_time_and_species_triggers_simulate(tmp_path):
    net = load_sbml(_event_model(tmp_path))
    traj = simulate(net, np.array([4.99, 5.0, 7.0]), key=3, runs=200)
    x, y = np.asarray(traj["X"]), np.asarray(traj["Y"])
    assert np.all(y[:, 0] < 100) and np.all(y[:, 1:] >= 100)  # Y := 100 exactly at t = 5
    assert np.all(x <= 20) and x.max() >= 15  # X is reset whenever it passes 20: every 2.1 time units on average
    assert 1.5 < np.mean(y[:, 0]) < 3.0 and 0.5 < np.mean(y[:, 2] - y[:, 1]) < 1.5  # Y counts the resets


def test_gradient_through_an_sbml_parameter(tmp_path):
    path = write_model(
        tmp_path,
        [species("X", amount=0)],
        [reaction("in", {}, {"X": 1}, "k"), reaction("out", {"X": 1}, {}, "mu * X")],
        [parameter("k", 10.0), parameter("mu", 0.5)],
    )
    net = load_sbml(path)
    times = np.array([0.0, 1.0, 2.0])

    def mean_at_end(k):
        return simulate(net, times, key=0, runs=300, params={"k": k}, max_steps=200).mean()[-1, 0]

    grad = jax.grad(mean_at_end)(jnp.float32(10.0))
    exact = (1 - math.exp(-0.5 * 2)) / 0.5  # d/dk of E X(2) = (k / mu)(1 - e^{-2 mu})
    assert np.isfinite(grad) and abs(float(grad) - exact) < 0.3 * exact


@pytest.mark.parametrize(
    "what, kwargs, message",
    [
        ("delay", dict(events=event("late", "time >= 1", {"X": "0"},
                                    inner=f"<delay>{mathml('1')}</delay>")), r"event 'late'.*delay"),
        ("algebraic rule", dict(rules=f"<algebraicRule>{mathml('p - 2')}</algebraicRule>",
                                params_xml=['<parameter id="p" constant="false"/>']), r"algebraicRule"),
        ("rate rule", dict(rules=f'<rateRule variable="p">{mathml("1")}</rateRule>',
                           params_xml=['<parameter id="p" value="0" constant="false"/>']), r"rateRule 'p'"),
        ("fast reaction", dict(reactions_xml=[reaction("quick", {"X": 1}, {}, "X", fast="true")]),
         r"reaction 'quick'.*fast"),
        ("non-integer stoichiometry", dict(reactions_xml=[reaction("half", {"X": 1}, {"X": 1.5}, "X")]),
         r"reaction 'half'.*species 'X'.*1\.5"),
        ("priority", dict(events=event("first", "time >= 1", {"X": "0"},
                                       inner=f"<priority>{mathml('1')}</priority>")), r"event 'first'.*priorit"),
        ("non-persistent trigger", dict(events=event("flaky", "time >= 1", {"X": "0"}, persistent="false")),
         r"event 'flaky'.*persistent"),
        ("event assigning a constant species", dict(
            species_xml=[species("X", amount=1), species("S", amount=1, boundary=True, constant=True)],
            events=event("bad", "time >= 1", {"S": "2"})),
         r"(?s)line 19: .*eventAssignment.*species with id 'S'.*constant"),  # found by libsbml's validation
        ("time in a kinetic law", dict(reactions_xml=[reaction("clock", {}, {"X": 1}, "time")]),
         r"reaction 'clock'.*time"),
    ],
)
def test_unsupported_features_are_refused_by_name(tmp_path, what, kwargs, message):
    args = dict(species_xml=[species("X", amount=1)], reactions_xml=[reaction("r", {"X": 1}, {}, "X")])
    args.update(kwargs)
    with pytest.raises(SBMLError, match=message):
        load_sbml(write_model(tmp_path, **args))


def test_sbml_packages_are_refused(tmp_path):
    write_sbml(immigration_death(), tmp_path / "core.xml")
    text = (tmp_path / "core.xml").read_text()
    fbc = 'xmlns:fbc="http://www.sbml.org/sbml/level3/version1/fbc/version2" fbc:required="false" level='
    (tmp_path / "fbc.xml").write_text(text.replace("level=", fbc, 1).replace("<model ", '<model fbc:strict="false" '))
    with pytest.raises(SBMLError, match="package 'fbc'"):
        load_sbml(tmp_path / "fbc.xml")


def test_malformed_xml_reports_libsbml_message_and_line(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">\n'
        '  <model id="m">\n'
        '    <listOfSpecies>\n'
        '      <species id="X" </listOfSpecies>\n'
        "  </model>\n</sbml>\n"
    )
    with pytest.raises(SBMLError, match=r"broken\.xml.*\n  line 5: .*not well-formed"):
        load_sbml(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SBMLError, match="nothere.xml: no such file"):
        load_sbml(tmp_path / "nothere.xml")


def _round_trip_networks():
    hill = ReactionNetwork(
        {"A": 5, "B": 0}, {"v": 2.0, "K": 3.0},
        [Reaction({}, {"B": 1}, Propensity("v * hill(A, K, 2) + min(A, 1) * max(B, 0) + sqrt(A) * log10(10)")),
         Reaction({"B": 1}, {}, Propensity("B * exp(-K / 10)"))],
        events=[Event("geq(time, 3)", {"A": "A + 2"}, "bump", False), Event("gt(B, 4)", {"B": 0}, "clear")],
    )
    bimolecular = ReactionNetwork(
        {"X": 30, "Y": 20, "Z": 0}, {"k": 0.5, "k2": "0.25"},
        [Reaction({"X": 1, "Y": 1}, {"Z": 1}, MassAction("k")),
         Reaction({"X": 3}, {"Y": 1}, MassAction("2 * k2")),
         Reaction({"Z": 1}, {"X": 1, "Y": 1}, MassAction(0.1))],
        volume=2.5,
    )
    switched = ReactionNetwork(
        {"X": 0}, {"k": 20.0, "mu": 1.0},
        [Reaction({}, {"X": 1}, Propensity("k * on"), "make"), Reaction({"X": 1}, {}, MassAction("mu"), "decay")],
        events=[Event("geq(time, 2)", {"on": 0.0}, "off")], variables={"on": 1.0}, observables={"ratio": "X / (1 + X)"},
    )
    return [immigration_death(), dimerization(), hill, bimolecular, switched]


@pytest.mark.parametrize(
    "net", _round_trip_networks(),
    ids=["immigration_death", "dimerization", "hill_events", "bimolecular_v2.5", "variable_observable"],
)
def test_write_then_load_round_trip(tmp_path, net):
    path = tmp_path / "out.xml"
    write_sbml(net, path)
    doc = libsbml.readSBMLFromFile(str(path))
    doc.checkConsistency()
    errors = [doc.getError(i).getMessage() for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    assert errors == []
    back = load_sbml(path)
    assert back.species == net.species and back.parameters == net.parameters and back.volume == net.volume
    assert back.variables == net.variables and set(back.observables) == set(net.observables)
    np.testing.assert_array_equal(back.stoichiometry, net.stoichiometry)
    assert [r.name for r in back.reactions] == [r.name for r in net.reactions]
    assert [(e.name, e.initial_value, tuple(e.assignments)) for e in back.events] == \
        [(e.name, e.initial_value, tuple(e.assignments)) for e in net.events]
    rng = np.random.default_rng(0)
    for _ in range(5):
        state = {s: float(rng.integers(0, 40)) for s in net.species}
        np.testing.assert_allclose(rates(back, **state), rates(net, **state), rtol=1e-5)


def test_write_refuses_callable_laws(tmp_path):
    net = ReactionNetwork({"X": 1}, {"k": 1.0}, [Reaction({"X": 1}, {}, Propensity(lambda x, p: p["k"] * x["X"]))])
    with pytest.raises(ValueError, match="callable"):
        write_sbml(net, tmp_path / "out.xml")


MICROMOLE = ('<unitDefinition id="umol"><listOfUnits><unit kind="mole" exponent="1" scale="-6" multiplier="1"/>'
             "</listOfUnits></unitDefinition>")


def _micromolar_model(tmp_path, name="conc.xml"):
    """0.1 uM of X in 1e-15 L (60.2 molecules), degraded at k = 0.5 per unit of time; law in umol / time."""
    return write_model(
        tmp_path,
        [species("X", conc=0.1, hosu=False), species("Y", conc=0, hosu=False)],
        [reaction("deg", {"X": 1}, {"Y": 1}, "C * k * X")],
        [parameter("k", 0.5)],
        size="1e-15", units=MICROMOLE, model_attrs='substanceUnits="umol"', name=name,
        events=event("dose", "time >= 1", {"X": "X + 0.2"}),
    )


def test_tiny_concentrations_are_refused_without_a_scale_never_loaded_as_zeros(tmp_path):
    with pytest.raises(SBMLError, match=r"species 'X': initial amount 1e-16 is not a whole number.*scale="):
        load_sbml(_micromolar_model(tmp_path))


def test_avogadro_scale_converts_substance_units_to_molecules(tmp_path):
    with pytest.warns(UserWarning, match=r"rounded to whole molecules: X 60\.2214 -> 60"):
        net = load_sbml(_micromolar_model(tmp_path), scale="avogadro")
    f = 6.02214179e23 * 1e-6  # molecules per umol
    assert net.species == {"X": 60, "Y": 0}
    np.testing.assert_allclose(rates(net), [0.5 * 60], rtol=1e-5)  # f * C * k * (X / (f * C))
    (dose,) = net.events  # X + 0.2 uM in 1e-15 L: 120.4 more molecules, rounded to whole ones
    value = evaluate(dose.assignments["X"], {"X": 60.0, "Y": 0.0, "k": 0.5, "time": 1.0})
    assert float(value) == round(60 + 0.2 * 1e-15 * f) == 180


def test_numeric_scale_and_its_refusals(tmp_path):
    path = _micromolar_model(tmp_path)
    with pytest.raises(SBMLError, match=r"model 'm': every initial amount rounds to 0 molecules with scale=1000\.0"):
        load_sbml(path, scale=1000.0)
    net = load_sbml(path, scale=1e18)  # 1e18 molecules per umol: X = 100 exactly, no warning
    assert net.species == {"X": 100, "Y": 0}
    np.testing.assert_allclose(rates(net), [0.5 * 100], rtol=1e-5)
    for bad in (0, -1.0, "moles", True):
        with pytest.raises(SBMLError, match=r"scale must be None, 'avogadro' or a positive number"):
            load_sbml(path, scale=bad)
    grams = write_model(tmp_path, [species("X", amount=1)], [reaction("r", {"X": 1}, {}, "X")],
                        model_attrs='substanceUnits="gram"', name="grams.xml")
    with pytest.raises(SBMLError, match=r"unit 'gram': is not a substance unit"):
        load_sbml(grams, scale="avogadro")
    unset = write_model(tmp_path, [species("X", amount=1)], [reaction("r", {"X": 1}, {}, "X")], name="unset.xml")
    with pytest.raises(SBMLError, match=r"needs the model's substanceUnits"):
        load_sbml(unset, scale="avogadro")
    items = write_model(tmp_path, [species("X", amount=7)], [reaction("r", {"X": 1}, {}, "X")],
                        model_attrs='substanceUnits="item"', name="items.xml")
    assert load_sbml(items, scale="avogadro").species == {"X": 7}


def test_reversible_net_laws_are_split_into_two_reactions(tmp_path):
    reactions = [
        reaction("bind", {"A": 1, "B": 1}, {"D": 1}, "C * (kf * A * B - kr * D)", reversible=True),
        reaction("mm", {"D": 1}, {"E": 1}, "(V * D / K - V2 * E / K2) / (1 + D / K + E / K2)", reversible=True),
        reaction("flagged", {"E": 1}, {}, "k * E", reversible=True),  # cannot be negative: kept as it is
    ]
    params = [parameter(p, v) for p, v in dict(kf=0.1, kr=2.0, V=3.0, K=4.0, V2=5.0, K2=6.0, k=0.7).items()]
    path = write_model(tmp_path, [species(s, amount=n) for s, n in dict(A=10, B=5, D=3, E=2).items()],
                       reactions, params, size="2")
    net = load_sbml(path)
    assert [r.name for r in net.reactions] == ["bind_forward", "bind_reverse", "mm_forward", "mm_reverse", "flagged"]
    np.testing.assert_array_equal(
        net.stoichiometry,
        [[-1, -1, 1, 0], [1, 1, -1, 0], [0, 0, -1, 1], [0, 0, 1, -1], [0, 0, 0, -1]],
    )
    denominator = 1 + 3 / 4 + 2 / 6
    np.testing.assert_allclose(
        rates(net), [2 * 0.1 * 50, 2 * 2.0 * 3, 3 * 3 / 4 / denominator, 5 * 2 / 6 / denominator, 0.7 * 2], rtol=1e-5
    )


@pytest.mark.parametrize("law", ["kf * A + (kr * D - 1)", "(kf * A - kr * D) - 1"])
def test_reversible_laws_that_are_not_a_difference_are_refused_at_load(tmp_path, law):
    path = write_model(
        tmp_path, [species("A", amount=1), species("D", amount=1)],
        [reaction("odd", {"A": 1}, {"D": 1}, law, reversible=True)],
        [parameter("kf", 1.0), parameter("kr", 1.0)],
    )
    with pytest.raises(SBMLError, match=r"reaction 'odd': reversible with a kinetic law that is not a difference"):
        load_sbml(path)


def test_events_assigning_parameters_make_them_variables(tmp_path):
    """Production at k = 20 until t = 2, then k = k / 4: a variable assigned by a time event, exact means."""
    path = write_model(
        tmp_path, [species("X", amount=0)],
        [reaction("make", {}, {"X": 1}, "k"), reaction("decay", {"X": 1}, {}, "mu * X")],
        ['<parameter id="k" value="20" constant="false"/>', parameter("mu", 1.0)],
        events=event("slow", "time >= 2", {"k": "k / 4"}),
    )
    net = load_sbml(path)
    assert net.parameters == {"mu": 1.0} and net.variables == {"k": 20.0}
    assert net.events[0].assignments == {"k": BinOp("/", Sym("k"), Num(4.0))}
    times = np.array([1.0, 2.0, 4.0])
    tr = simulate(net, times, key=5, runs=4000, estimator=None)
    np.testing.assert_array_equal(np.asarray(tr["k"])[0], [20.0, 5.0, 5.0])
    m2 = 20 * (1 - math.exp(-2))
    exact = np.array([20 * (1 - math.exp(-1)), m2, 5 + (m2 - 5) * math.exp(-2)])
    se = np.sqrt(exact / 4000)  # X is Poisson throughout
    assert np.all(np.abs(np.asarray(tr.mean())[:, 0] - exact) < 5 * se)


def test_piecewise_time_forcing_becomes_exact_time_events(tmp_path):
    """0 -> X at k while 1 <= t < 3 (written with both spellings), X -> 0 at mu: switched by two events."""
    law = "piecewise(k, time >= 1 && 3 > time, 0)"
    path = write_model(
        tmp_path, [species("X", amount=0)],
        [reaction("make", {}, {"X": 1}, law), reaction("decay", {"X": 1}, {}, "mu * X")],
        [parameter("k", 30.0), parameter("mu", 0.5)],
    )
    net = load_sbml(path)
    assert net.variables == {"time_geq_1": 0.0, "time_lt_3": 1.0}
    assert [(e.trigger, e.assignments) for e in net.events] == [
        (Call("geq", (Sym("time"), Num(1.0))), {"time_geq_1": Num(1.0)}),
        (Call("geq", (Sym("time"), Num(3.0))), {"time_lt_3": Num(0.0)}),
    ]
    times = np.array([0.5, 1.0, 2.0, 3.0, 5.0])
    tr = simulate(net, times, key=2, runs=4000, estimator=None)
    on = lambda t: 60 * (1 - np.exp(-0.5 * (t - 1)))  # mean while production is on
    exact = np.where(times < 1, 0.0, np.where(times <= 3, on(np.minimum(times, 3)), on(3) * np.exp(-0.5 * (times - 3))))
    se = np.sqrt(np.maximum(exact, 1e-9) / 4000)
    assert np.all(np.abs(np.asarray(tr.mean())[:, 0] - exact) < 5 * se)


@pytest.mark.parametrize("law", ["k * time", "piecewise(k, time < X, 0)", "k * ceil(sin(time))"])
def test_other_uses_of_time_in_laws_are_refused_naming_the_reaction(tmp_path, law):
    path = write_model(tmp_path, [species("X", amount=1)], [reaction("forced", {}, {"X": 1}, law)],
                       [parameter("k", 1.0)])
    with pytest.raises(SBMLError, match=r"reaction 'forced': math uses time \(other than compared with a constant"):
        load_sbml(path)


def test_output_only_species_rules_of_any_form_become_observables(tmp_path):
    rules = (f'<assignmentRule variable="ratio">{mathml("X * X / (1 + X)")}</assignmentRule>'
             f'<assignmentRule variable="total">{mathml("X + 2")}</assignmentRule>')
    path = write_model(
        tmp_path, [species("X", amount=3), species("ratio", amount=0), species("total", amount=0)],
        [reaction("birth", {}, {"X": 1}, "2"), reaction("death", {"X": 1}, {}, "X")], rules=rules,
    )
    net = load_sbml(path)
    assert net.species == {"X": 3, "total": 5}  # the affine rule stays an exact count
    assert set(net.observables) == {"ratio"}
    tr = simulate(net, np.linspace(0, 2, 5), key=0, runs=50, estimator=None)
    x = np.asarray(tr["X"])
    np.testing.assert_allclose(np.asarray(tr["ratio"]), x * x / (1 + x), rtol=1e-6)


def test_events_assigning_compartments_are_refused(tmp_path):
    path = write_model(
        tmp_path, [species("X", amount=1)], [reaction("r", {"X": 1}, {}, "X")],
        events=event("grow", "time >= 1", {"C": "2"}),
    )
    path.write_text(path.read_text().replace('size="1" constant="true"', 'size="1" constant="false"'))
    with pytest.raises(SBMLError, match=r"event 'grow': assigns 'C'; only species and parameters"):
        load_sbml(path)


def _level3_version2(path):
    """The file at ``path`` rewritten as SBML Level 3 Version 2 (libsbml marks every such document with
    its l3v2extendedmath plugin)."""
    text = path.read_text().replace("level3/version1/core", "level3/version2/core").replace('version="1"', 'version="2"')
    text = text.replace(' fast="false"', "")  # L3V1 requires it, L3V2 forbids it
    path.write_text(text)
    return path


def test_level_3_version_2_documents_load(tmp_path):
    """L3V2 was refused whole ('package l3v2extendedmath') before: a plain model loads and simulates;
    an event without a trigger (optional in L3V2) and math beyond the reader's (rem) are refused by name."""
    path = _level3_version2(write_model(
        tmp_path, [species("X", amount=10)], [reaction("death", {"X": 1}, {}, "k * X")], [parameter("k", 0.5)]))
    net = load_sbml(path)
    assert net.species == {"X": 10} and net.parameters == {"k": 0.5}
    tr = simulate(net, [0.0, 1.0], key=0, runs=10)
    assert np.all(np.asarray(tr.states)[:, 0, 0] == 10)

    no_trigger = '<event id="e" useValuesFromTriggerTime="true"><listOfEventAssignments>' \
                 f'<eventAssignment variable="X">{mathml("1")}</eventAssignment></listOfEventAssignments></event>'
    path = _level3_version2(write_model(tmp_path, [species("X", amount=10)], [], [parameter("k", 0.5)],
                                        events=no_trigger, name="e.xml"))
    with pytest.raises(SBMLError, match="event 'e'.*has no trigger"):
        load_sbml(path)

    rem = '<math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>k</ci>' \
          '<apply><rem/><ci>X</ci><cn>2</cn></apply></apply></math>'
    law = f'<reaction id="r" reversible="false"><listOfReactants><speciesReference species="X" stoichiometry="1" ' \
          f'constant="true"/></listOfReactants><kineticLaw>{rem}</kineticLaw></reaction>'
    path = _level3_version2(write_model(tmp_path, [species("X", amount=10)], [law], [parameter("k", 0.5)],
                                        name="r.xml"))
    with pytest.raises(SBMLError, match="unsupported MathML"):
        load_sbml(path)
