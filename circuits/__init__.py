"""Circuit families built on dynlearn's public API, one module each."""

from .backprop import BackpropMLP as BackpropMLP
from .delta import DeltaRule as DeltaRule
from .hopfield import HopfieldNetwork as HopfieldNetwork
from .latent_equilibrium import LENetwork as LENetwork
from .leaky import LeakyNetwork as LeakyNetwork
from .microcircuit import Microcircuit as Microcircuit
