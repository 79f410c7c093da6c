"""Simulation: from a compiled network to trajectories on a time grid.

* :mod:`.api`: :func:`~diffssa.simulate`, the entry point (method, estimator, precision, devices);
  :mod:`.arguments` checks and lays out its arguments, :mod:`.problems` reports what runs met;
* :mod:`.engine` (the direct method's step), :mod:`.next_reaction`, :mod:`.pairs` (coupled pairs of
  the pairs estimator), :mod:`.tau_leap`; :mod:`.events` compiles a network's events for them;
* :mod:`.drivers` (the loops that run a step over a batch), :mod:`.sharding` (the batch over devices);
* :mod:`.trajectories`: the result type and its expectations; :mod:`.batches`: many trajectories in
  batches of bounded memory.
"""
