"""Circuit families built on dynlearn's public API, one module each."""

from .hopfield import HopfieldNetwork as HopfieldNetwork
from .leaky import LeakyNetwork as LeakyNetwork
