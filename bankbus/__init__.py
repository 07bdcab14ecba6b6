"""bankbus."""
