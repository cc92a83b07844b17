"""Carry a decision to another machine: locks, wheelhouses (and, next, Dockerfiles,
conda files and build scripts). Reads a :class:`~torchup.choose.plan.Plan`; downloads
through :mod:`torchup.index`; never installs (that is :mod:`torchup.envs`)."""
