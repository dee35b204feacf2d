"""`hydra/launcher=ray`: run a sweep's jobs as tasks on a Ray cluster (the `ray` extra).

Hydra only instantiates launchers that live in the `hydra_plugins` namespace, so the launcher
sits here; it needs nothing from Hydra's own Ray plugin (whose pins clash with joblib's).
"""
