"""fraudstream/infra."""
