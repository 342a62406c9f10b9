"""tilt_tf: exponential tilting of generative models in TensorFlow."""
