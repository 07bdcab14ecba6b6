"""The scoring API: one transaction scored on request, the way the stream would score it next (`fraudstream api`)."""
