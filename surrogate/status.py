"""The one vocabulary of outcomes, shared by model evaluations, physics solves, lab rows and MLflow runs."""

from enum import Enum


class Status(str, Enum):
    """Outcome of an evaluation. The values are MLflow's run statuses, so a child run's status is the same word.

    Examples
    --------
    >>> Status.FINISHED == "FINISHED"
    True
    """

    FINISHED = "FINISHED"  # evaluated (by the model, the physics model or the lab)
    FAILED = "FAILED"  # could not be evaluated; the reason goes with it
    PENDING = "PENDING"  # a lab recipe made but not yet measured

    def __str__(self) -> str:
        return self.value
