"""Prefect flows, tasks, deployments and the ``snhc`` command line around the models in ``surrogate``."""
