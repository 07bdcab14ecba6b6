"""fraudstream core: contracts, settings, errors, clock, infrastructure and the command line."""

__version__ = "0.1.0"
