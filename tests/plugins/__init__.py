"""Example user plugins, loaded from configuration by the tests (and a model for users)."""
