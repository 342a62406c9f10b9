"""The stages after training, each usable alone: sample, evaluate, export."""
