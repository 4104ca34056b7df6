"""SLAC as a reinforcement learner: the agent of arXiv 1907.00953 sec. 5, algorithm 1.

The latent model is the perception package's :class:`reacher_perception.slac.latent.
LatentModel` (one model, imported, not copied); this package adds what the agent needs
around it, one module per part:

- :mod:`.config`: :class:`SlacAgentConfig` (no torch, so the CLI can parse it cheaply).
- :mod:`.buffer`: the sequence replay buffer (frames as uint8, episode-start padding).
- :mod:`.networks`: the reward factor p(r_t | z_t, a_t, z_{t+1}), the actor and the twin
  critic, and the ELBO with the reward term.
- :mod:`.agent`: :class:`SlacAgent`, shaped like a Stable-Baselines3 algorithm
  (``learn``, ``predict``, ``save``/``load``, and ``update_latent`` /
  ``update_actor_critic`` callable alone).
- :mod:`.train`: ``reacher policy train --algo slac`` (evaluation, TensorBoard, curve).

docs/slac_agent.md explains the choices and the deviations from the paper.
"""
