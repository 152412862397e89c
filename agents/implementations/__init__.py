"""Agent implementations. Each module registers its kinds with ``agents.registry.register``; import it here."""
