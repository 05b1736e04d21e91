"""Looking inside a Flax twin: per-layer capture (:mod:`~jaxnets.debug.intercept`) and torch's
``print(model)`` view (:mod:`~jaxnets.debug.summary`). No torch."""
