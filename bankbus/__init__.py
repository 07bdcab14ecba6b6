"""The bank bus: simulate, import, publish and replay transactions."""
