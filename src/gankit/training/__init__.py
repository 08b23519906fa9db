"""Training: the D and G steps and the loop around them."""
