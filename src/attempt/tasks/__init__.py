"""The benchmark suite of the paper: a registry of `Task` descriptions.

Example:
    >>> from attempt.tasks import get_task
    >>> get_task("rte").format({"sentence1": "A.", "sentence2": "B.", "label": 0})
    ('rte sentence1: A. sentence2: B.', 'entailment')
"""

from attempt.tasks import glue, mrqa, others, superglue  # noqa: F401  (registers the tasks)
from attempt.tasks.base import (
    KINDS,
    SMALL_TASK_LIMIT,
    UNKNOWN_LABEL,
    Task,
    UnknownTaskError,
    get_task,
    list_tasks,
    register_task,
)

__all__ = [
    "KINDS",
    "SMALL_TASK_LIMIT",
    "UNKNOWN_LABEL",
    "Task",
    "UnknownTaskError",
    "get_task",
    "list_tasks",
    "register_task",
]
