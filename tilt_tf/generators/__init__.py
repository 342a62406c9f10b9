"""Base generative models behind one Generator interface."""
