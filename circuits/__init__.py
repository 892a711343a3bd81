"""Circuit families built on dynlearn's public API, one module each."""

from .backprop import BackpropMLP as BackpropMLP
from .delta import DeltaRule as DeltaRule
from .hopfield import HopfieldNetwork as HopfieldNetwork
from .leaky import LeakyNetwork as LeakyNetwork
