"""A deterministic simulation of the command protocol (see :mod:`tests.sim.world`)."""
