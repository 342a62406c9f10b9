"""What is trained on top of a base: the latent tilt (the paper's method) and
the pixel-space EBM baseline, behind one `Method` interface (base.py)."""
