"""Display widgets, one per module; each gets plain data and knows nothing about sockets or MPI."""
