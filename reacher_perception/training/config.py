"""Typed configs of SLAC's data collection, augmentation and training.

Plain frozen dataclasses with no heavy imports, so the command line
(:mod:`reacher_perception.training.commands`) names them without loading torch. Each
field's docstring is its ``--help`` text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reacher_common.config_tools import check_fields
from reacher_perception.slac.config import SlacModelConfig
from reacher_sim.scene import SCENE_FAMILIES, SceneConfig


@dataclass(frozen=True)
class CollectConfig:
    """How the collector drives the simulator.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    sequences: int = 400
    """Number of sequences, >= 1."""
    steps: int = 48
    """Frames per sequence, >= 2."""
    shard_size: int = 100
    """Sequences per .npz shard, >= 1."""
    ik_fraction: float = 0.6
    """Share of sequences driven by the noisy IK controller (the rest random), in [0, 1]."""
    slac_fraction: float = 0.0
    """Share of sequences acted by the all-SLAC loop, drawn before the IK share among the
    rest: the shipped SLAC filter on the rendered frames and the ``slac`` controller's
    actor on its latent (the shipped checkpoints), confidence stop off, with the IK's
    command noise; the states that loop visits (issue 15), in [0, 1]."""
    command_noise: float = 0.2
    """Std of the gaussian noise added to the IK controller's command, rad/s, >= 0."""
    goal_switch_probability: float = 0.02
    """Chance per step of a new goal without success (goal jumps as in the demo), [0, 1]."""
    seed: int = 0
    """Seed of all sampling (use another for held-out data)."""
    scene: SceneConfig = field(default_factory=SceneConfig)
    """What the camera sees around the arm (``reacher_sim.scene``), a new scene per
    sequence; drawn from its own stream, so every scene gets the same motions and goals."""
    held_out: tuple[str, ...] = ()
    """Scene families never drawn (held out of training to test generalisation), e.g.
    ``texture jpeg``; their part of each drawn scene is left clean."""
    clean_fraction: float = 0.0
    """With a scene on: share of sequences left clean, in [0, 1]."""
    single_family_fraction: float = 0.0
    """With a scene on: share of sequences that show one family alone (drawn uniformly
    among the scene's families less ``held_out``); the rest show all of them, in [0, 1]."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'held_out': all(family in SCENE_FAMILIES for family in self.held_out),
            'clean_fraction': 0.0 <= self.clean_fraction <= 1.0,
            'single_family_fraction': (0.0 <= self.single_family_fraction
                                       <= 1.0 - self.clean_fraction),
            'sequences': self.sequences >= 1,
            'steps': self.steps >= 2,
            'shard_size': self.shard_size >= 1,
            'ik_fraction': 0.0 <= self.ik_fraction <= 1.0,
            'slac_fraction': 0.0 <= self.slac_fraction <= 1.0,
            'command_noise': self.command_noise >= 0.0,
            'goal_switch_probability': 0.0 <= self.goal_switch_probability <= 1.0,
        })


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time corruption of the encoder's frames (domain randomisation).

    Each kind hits a sequence with its probability; the decoder still reconstructs the
    clean frames and the heads predict the true state (``LatentModel.losses``).

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    noise_probability: float = 0.2
    """Chance that a sequence gets gaussian pixel noise, in [0, 1]."""
    noise_std_max: float = 0.12
    """Largest noise std (drawn uniformly per sequence), on the [0, 1] pixel scale."""
    colour_probability: float = 0.2
    """Chance of a per-channel gain in [0.7, 1.3] and offset in +-0.12, in [0, 1]."""
    occlusion_probability: float = 0.2
    """Chance of one to two opaque patches of random grey on the whole sequence, [0, 1]."""
    occlusion_size_max: int = 16
    """Largest patch side, pixels (smallest: a quarter of it)."""
    blank_probability: float = 0.2
    """Chance that a run of 1-5 frames (never the first) is replaced by one flat colour,
    as a dropped or blacked-out frame, in [0, 1]."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'noise_probability': 0.0 <= self.noise_probability <= 1.0,
            'noise_std_max': self.noise_std_max >= 0.0,
            'colour_probability': 0.0 <= self.colour_probability <= 1.0,
            'occlusion_probability': 0.0 <= self.occlusion_probability <= 1.0,
            'occlusion_size_max': self.occlusion_size_max >= 4,
            'blank_probability': 0.0 <= self.blank_probability <= 1.0,
        })


@dataclass(frozen=True)
class SlacTrainConfig:
    """Train the SLAC latent model (encoder, latent dynamics, decoder, state heads)."""

    data: Path = Path('data/slac/train')
    """Folder of dataset shards (from 'reacher perception collect')."""
    out: Path = Path('runs/slac')
    """Run folder: checkpoint.pt (resumable), final.pt (weights only), metrics.jsonl,
    tb/ (TensorBoard), loss_curves.png, reconstructions.png."""
    updates: int = 5000
    """Total Adam updates of the latent model (resumed runs count from their step)."""
    batch_size: int = 32
    """Sequences per update."""
    sequence_length: int = 5
    """Frames per training window, >= 2 (the paper: 8 steps + 1). Shorter windows of more
    sequences for the same compute: the goal is constant within a window, so 16 windows
    carry only 16 goals; with 16 x 9 the goal head stayed at chance (~80 mm) for 1350
    updates."""
    learning_rate: float = 3e-3
    """Adam's initial step size, cosine-decayed to a tenth (the paper: 1e-4 constant, for
    ~20x more updates). In a supervised trial of the encoder alone, 1e-3 left the goal at
    chance (~90 mm RMS) for 350 updates where 3e-3 reached 13 mm."""
    clean_updates: int = 2000
    """Updates before the augmentation starts (its probabilities then ramp up linearly over
    as many more). In trials, the encoder learned nothing (state heads at chance for 300
    supervised updates, the goal for 1650 SLAC updates) when corrupted frames came from
    the start; on clean frames it did, so corruption comes once the state is readable."""
    warmup_updates: int = 500
    """Updates of linear learning-rate warm-up from ~0, >= 1."""
    grad_clip_norm: float = 1e5
    """Largest global L2 norm of the gradient (clipped above it); 0 turns clipping off.
    Clean updates of the keypoint model have norms of 2-4e4; without clipping, a run with
    keypoints diverged (state errors 1e7 mm) within 100 updates of the corruption's
    onset (the first corrupted batches' errors are large, and Adam's first step along a
    gradient spike is several times its step size). The checkpoint shipped before this
    option was trained without it."""
    seed: int = 0
    """Seed of the model's initialisation, the batches and the augmentation."""
    threads: int = 1
    """torch CPU threads (the machine is shared)."""
    log_every: int = 50
    """Updates between metric logs (TensorBoard, metrics.jsonl, progress bar)."""
    checkpoint_every: int = 500
    """Updates between resumable checkpoints."""
    resume: bool = True
    """Continue from out/checkpoint.pt when it exists (its config must match)."""
    heads_only_from: Path | None = None
    """Probe mode: load this checkpoint, freeze everything but the state heads, re-fit
    them (the 'frozen latent' alternative of LatentModel's docstring)."""
    init_from: Path | None = None
    """Fine-tuning: start from this checkpoint's weights (same model config and geometry,
    except that a model without input normalisation may start one with 'standardize':
    ``training/warm_start.py``) with a fresh optimizer and schedule; the shipped scene
    model is the clean-trained checkpoint fine-tuned this way (docs/slac.md)."""
    normalize_background: bool = False
    """Show the encoder each frame with its table repainted, after the augmentation, as
    perception_node reads it with ``normalize_background`` (``reacher_perception.
    background``); the decoder still reconstructs the clean frame."""
    model: SlacModelConfig = field(default_factory=SlacModelConfig)
    """Model sizes and loss weights."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training-time corruption of the encoder's frames."""
