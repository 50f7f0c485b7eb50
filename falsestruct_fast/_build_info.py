source_hash = "e575cadb2a499e5ee3c11ba0dc1a0248cbede57f3c6ab0517cf41994c6e694eb"
cuda_built = True
native_arch = True
