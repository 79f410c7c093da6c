"""diffssa: exact, batched and differentiable stochastic simulation of reaction networks in JAX.

The public API, by concept (data flows one way: model -> simulation -> expectations -> loss):

* **Models**: :class:`ReactionNetwork` of :class:`Reaction` s with :class:`MassAction` or
  :class:`Propensity` laws and :class:`Event` s; :class:`CompiledNetwork` is what the engines run.
* **Reading and writing** (:mod:`diffssa.io`): the reaction language (:func:`parse_network`,
  :func:`load_network`, :func:`format_network`) and SBML (:func:`load_sbml`, :func:`write_sbml`).
* **Simulation** (:mod:`diffssa.simulation`): :func:`simulate` (exact, or :class:`TauLeap`),
  :func:`simulate_batches`, :class:`Trajectories`, :func:`time_grid`.
* **Gradients**: the estimators (:class:`Surrogate`, :class:`ScoreFunction`, :class:`PoissonPairs`
  and the named instances in :data:`ESTIMATORS`), :func:`estimate_gradient`, :func:`gradcheck`.
* **References** (:mod:`diffssa.reference`): :func:`solve_cme` (exact master equation),
  :func:`finite_difference_gradient` (coupled finite differences).
* **Fitting**: :func:`fit` (an optax loop), :func:`moment_loss`.
* **Keys and devices**: :func:`as_key` (a JAX key from a 64-bit seed), :func:`use_cpu_cores`.

The paper's validations live in :mod:`diffssa.applications`; the command line in :mod:`diffssa.cli`.
"""

from .compiled import CompiledNetwork
from .devices import use_cpu_cores
from .estimators import (
    DIRECT,
    DIRECT_RELAXED,
    ESTIMATORS,
    PAIRS,
    SCORE,
    THINNING,
    THINNING_GUMBEL,
    Estimator,
    PoissonPairs,
    ScoreFunction,
    Surrogate,
)
from .fitting import FitResult, fit, moment_loss
from .gradients import (
    BiasWarning,
    GradCheck,
    GradientEstimate,
    estimate_gradient,
    gradcheck,
)
from .io.language import (
    ReactionLanguageError,
    format_network,
    load_network,
    parse_network,
)
from .io.sbml import SBMLError, load_sbml, write_sbml
from .kinetics import MassAction, Propensity
from .model import ReactionNetwork
from .reactions import Event, Reaction
from .reference.cme import CMESolution, solve_cme
from .reference.finite_differences import FiniteDifference, finite_difference_gradient
from .rng import as_key
from .simulation.api import simulate
from .simulation.batches import simulate_batches
from .simulation.problems import SimulationBudgetError
from .simulation.tau_leap import PoissonSurrogate, TauLeap
from .simulation.trajectories import Trajectories, time_grid

__version__ = "0.1.0"

__all__ = [
    # models
    "ReactionNetwork", "Reaction", "MassAction", "Propensity", "Event", "CompiledNetwork",
    # reading and writing
    "parse_network", "load_network", "format_network", "ReactionLanguageError", "load_sbml", "write_sbml", "SBMLError",
    # simulation
    "simulate", "simulate_batches", "Trajectories", "time_grid", "TauLeap", "PoissonSurrogate", "SimulationBudgetError",
    # gradients
    "Estimator", "Surrogate", "ScoreFunction", "PoissonPairs", "ESTIMATORS", "THINNING", "THINNING_GUMBEL", "DIRECT",
    "DIRECT_RELAXED", "SCORE", "PAIRS", "estimate_gradient", "GradientEstimate", "gradcheck", "GradCheck", "BiasWarning",
    # references
    "solve_cme", "CMESolution", "finite_difference_gradient", "FiniteDifference",
    # fitting
    "fit", "FitResult", "moment_loss",
    # keys and devices
    "as_key", "use_cpu_cores",
]
