"""SLAC's sequential latent variable model (Lee et al. 2019, arXiv 1907.00953, sec. 4).

The runtime of the ``slac`` perception backend, one module per part: :mod:`.config`
(model sizes, the state heads' targets), :mod:`.network` (encoder, decoder, gaussian
factors), :mod:`.latent` (the latent model, its ELBO and the filter step),
:mod:`.checkpoint` (the checkpoint format, save and load) and :mod:`.estimator` (the
``slac`` perception backend). Data collection, augmentation and training are in
:mod:`reacher_perception.training`, which this package never imports.
"""
