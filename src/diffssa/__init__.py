"""diffssa: exact, batched and differentiable stochastic simulation of reaction networks in JAX."""

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
from .gradients import (
    BiasWarning,
    GradCheck,
    GradientEstimate,
    estimate_gradient,
    gradcheck,
)
from .io.language import format_network, load_network, parse_network
from .io.sbml import SBMLError, load_sbml, write_sbml
from .model import (
    CompiledNetwork,
    Event,
    MassAction,
    Propensity,
    Reaction,
    ReactionNetwork,
)
from .simulation.api import simulate
from .simulation.problems import SimulationBudgetError
from .simulation.tau_leap import PoissonSurrogate, TauLeap
from .simulation.trajectories import Trajectories, time_grid

__version__ = "0.1.0"
