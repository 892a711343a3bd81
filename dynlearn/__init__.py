"""dynlearn: networks as ODE/SDE systems, learning without backpropagation.

The engine: `AbstractDynamics` (a system), stimuli, `simulate` (integrate over a span, with
events), `equilibrate` (to a fixed point, with implicit gradients), learning (plastic
circuits and `Learning`, the modes `SettleThenUpdate` and `AlwaysOn`, `fit`, seeds,
pruning), Datasets and analysis.
"""

from . import _accessor  # noqa: F401  (registers the `ds.dynlearn` accessor)
from . import analysis as analysis
from . import data as data
from . import hardware as hardware
from . import plot as plot
from . import registry as registry
from . import spiking as spiking
from . import validation as validation
from ._batches import epoch_batches as epoch_batches
from ._batches import epoch_keys as epoch_keys
from ._batches import padded_chunks as padded_chunks
from ._checkpoint import CheckpointMismatch as CheckpointMismatch
from ._checkpoint import atomic_write as atomic_write
from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import save_checkpoint as save_checkpoint
from ._dataset import config_of as config_of
from ._dataset import load_netcdf as load_netcdf
from ._dataset import save_netcdf as save_netcdf
from ._dataset import to_dataset as to_dataset
from ._dynamics import AbstractDynamics as AbstractDynamics
from ._dynamics import AbstractEnergyDynamics as AbstractEnergyDynamics
from ._dynamics import all_time_constants as all_time_constants
from ._dynamics import check_step as check_step
from ._dynamics import gradient_flow as gradient_flow
from ._dynamics import total_diffusion as total_diffusion
from ._equilibrate import Equilibrium as Equilibrium
from ._equilibrate import equilibrate as equilibrate
from ._equilibrate import tree_norm as tree_norm
from ._events import AbstractEvent as AbstractEvent
from ._fit import FitResult as FitResult
from ._fit import accuracy_curve as accuracy_curve
from ._fit import evaluate as evaluate
from ._fit import fit as fit
from ._gradual import GradualPruning as GradualPruning
from ._gradual import cubic_sparsity as cubic_sparsity
from ._learner import AbstractBatchLearner as AbstractBatchLearner
from ._learner import AbstractLearner as AbstractLearner
from ._learner import check_batch as check_batch
from ._learner import squared_error as squared_error
from ._metadata import MetadataWarning as MetadataWarning
from ._metadata import describe as describe
from ._metadata import missing_metadata as missing_metadata
from ._modes import AbstractMode as AbstractMode
from ._modes import AlwaysOn as AlwaysOn
from ._modes import Recipe as Recipe
from ._modes import SettleThenUpdate as SettleThenUpdate
from ._modes import inverse_time as inverse_time
from ._plastic import AbstractPlastic as AbstractPlastic
from ._plastic import Inertia as Inertia
from ._plastic import Learning as Learning
from ._plastic import RMSNormalised as RMSNormalised
from ._plastic import stream_count as stream_count
from ._pruning import Pruned as Pruned
from ._pruning import prune as prune
from ._runs import check_writable as check_writable
from ._runs import run_folder as run_folder
from ._runs import writable_folder as writable_folder
from ._seeds import evaluate_seeds as evaluate_seeds
from ._seeds import fit_seeds as fit_seeds
from ._seeds import stack as stack
from ._seeds import unstack as unstack
from ._sharding import data_mesh as data_mesh
from ._sharding import initialize_distributed as initialize_distributed
from ._sharding import to_host as to_host
from ._simulate import Trajectory as Trajectory
from ._simulate import select as select
from ._simulate import simulate as simulate
from ._solvers import SOLVERS as SOLVERS
from ._solvers import check_finite as check_finite
from ._stimulus import AbstractStimulus as AbstractStimulus
from ._stimulus import Constant as Constant
from ._stimulus import Presentation as Presentation
from ._stimulus import StimulusStream as StimulusStream
from ._stimulus import as_stimulus as as_stimulus
from ._stimulus import input_and_target as input_and_target

__version__ = "0.1.0"
