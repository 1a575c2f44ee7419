"""Device-agnostic linear-algebra kernels: SVD, polar factors, Newton-Schulz, exact order statistics."""
