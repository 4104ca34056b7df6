"""The hooks :meth:`reacher_policy.training.slac.agent.SlacAgent.learn` calls.

SB3's ``BaseCallback`` in miniature; the CLI's progress bar, evaluations and checkpoints
(``train.py``, ``dmc_train.py``) are subclasses.
"""

from __future__ import annotations

from typing import Any


class SlacCallback:
    """Hooks :meth:`SlacAgent.learn` calls (SB3's ``BaseCallback`` in miniature)."""

    def on_training_start(self, agent: Any) -> None:
        """Before the first env step."""

    def on_step(self, agent: Any) -> bool:
        """After every env step and its updates; False stops training."""
        return True

    def on_training_end(self, agent: Any) -> None:
        """After the last env step."""
