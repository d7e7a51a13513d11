"""Hand-written (fused) updates, one module per algorithm family, each tested against the autograd update in
the algorithm's file (algos/backends.py says when they run)."""
