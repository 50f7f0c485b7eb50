source_hash = "03fb0794da1ed2071311e1b546f1843c2d984334ede36d7076e45c91696d88ae"
cuda_built = True
native_arch = True
