"""Circuit families built on dynlearn's public API, one module each (plus the toolbox
`_layers` and the feedback pathways `feedback`, `pal` that circuits share)."""

from .backprop import BackpropMLP as BackpropMLP
from .delta import DeltaRule as DeltaRule
from .ep import EPNetwork as EPNetwork
from .feedback_mlp import FeedbackMLP as FeedbackMLP
from .hebbian import ActivationLearner as ActivationLearner
from .hebbian import HebbianNetwork as HebbianNetwork
from .hopfield import HopfieldNetwork as HopfieldNetwork
from .latent_equilibrium import LENetwork as LENetwork
from .leaky import LeakyNetwork as LeakyNetwork
from .microcircuit import Microcircuit as Microcircuit
from .pc import PCNetwork as PCNetwork
