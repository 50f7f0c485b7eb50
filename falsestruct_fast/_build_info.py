source_hash = "f95b7d79060514c8cb499b8c1cf32d800f582610de4330790357ac7daded3e1f"
cuda_built = True
native_arch = True
