"""Simulation: the exact engines, tau-leaping, drivers and the trajectories they return."""
