"""Experiments reproduced by the benchmark scripts, kept out of the shipped ``bbans_models`` package.

- ``toy2d_data``, ``toy2d_vae``: 2-D toy distributions and 2-latent MLP VAEs / IWAEs (``benchmarks/toy2d.py``);
- ``mse``: a ConvVAE trained on squared error instead of its likelihood, made codable
  (``benchmarks/mse_vs_likelihood.py``).

The scripts run as ``python benchmarks/NAME.py``, so ``benchmarks/`` is first on ``sys.path`` and they import
``experiments.*``; the tests put ``benchmarks/`` on ``sys.path`` the same way.
"""
