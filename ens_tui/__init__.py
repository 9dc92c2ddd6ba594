"""ens-tui: train a deep ensemble on MPI ranks, watch it live, read its uncertainty report.

This package is the user's side (CLI, launcher, Textual and Rich front ends); it never imports
torch or mpi4py, so the app opens fast and stays responsive while ranks train.
"""

__version__ = "0.1.0"
