source_hash = "d849f0d0a13e73af0e8d328a270345443440471fbe7d2645a414c586b7c76c80"
cuda_built = True
native_arch = True
