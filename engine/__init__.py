"""Training side of ens-tui: runs on MPI ranks, never imports Textual."""
