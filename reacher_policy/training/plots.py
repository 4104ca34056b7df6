"""Figures of a training run: the learning curve."""

from __future__ import annotations

from pathlib import Path


def plot_learning_curve(evaluations: list[dict[str, float]], path: Path, episodes: int,
                        title: str) -> None:
    """Plot evaluation success against env steps, with the 90% line, as a PNG.

    :param evaluations: the periodic evaluations (``env_steps``, ``success_rate``).
    :param path: the PNG to write.
    :param episodes: episodes per evaluation (the y label says it).
    :param title: the figure's title.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    steps = [row['env_steps'] for row in evaluations]
    success = [row['success_rate'] for row in evaluations]
    fig, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(steps, success, marker='o')
    axis.axhline(0.9, color='grey', linestyle='--', linewidth=0.8)
    axis.set_xlabel('env steps')
    axis.set_ylabel(f'success ({episodes} episodes)')
    axis.set_ylim(0.0, 1.02)
    axis.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
