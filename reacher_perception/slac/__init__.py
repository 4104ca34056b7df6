"""SLAC's sequential latent variable model (Lee et al. 2019, arXiv 1907.00953, sec. 4).

Modules, one per part: :mod:`.config` (model sizes), :mod:`.network` (encoder, decoder,
gaussian factors), :mod:`.latent` (the latent model, its ELBO and the filter step),
:mod:`.data` (collection, on-disk format, augmentation), :mod:`.train` (updates,
checkpoints, plots) and :mod:`.estimator` (the ``slac`` perception backend).
"""
