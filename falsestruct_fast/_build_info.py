source_hash = "c21d155de7a67282044dee0d5adde576681ab8d7d2452ca9ad9bc30d70128dff"
cuda_built = True
native_arch = True
